//! The SmartCard-HSM card driver: the commands of the protocol reference,
//! built and parsed with `picohsm-wire`, and the one place where status
//! words become CK_RVs ([`sw_to_rv`]).

pub mod admin;
pub mod pka;
pub mod pkcs15;
#[cfg(test)]
mod trace_tests;
pub mod x509;

use cryptoki_sys::*;
use picohsm_wire::apdu::{build, build_extended};
use picohsm_wire::codes::{pin_ref, AID};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use crate::error::{Error, Result};
use crate::transport::Link;

/// The CK_RV of a status word, for the command that got it (§1.4). PIN
/// commands map 63Cx/6983 themselves (see [`verify`]).
pub fn sw_to_rv(sw: StatusWord) -> CK_RV {
    match sw.0 {
        0x9000 | 0x9001 => CKR_OK,
        0x6982 => CKR_USER_NOT_LOGGED_IN,
        0x6983 => CKR_PIN_LOCKED,
        0x6984 => CKR_DATA_INVALID,
        0x6985 | 0x6986 => CKR_FUNCTION_REJECTED,
        0x6700 => CKR_DATA_LEN_RANGE,
        0x6A80 => CKR_DATA_INVALID,
        0x6A81 => CKR_MECHANISM_INVALID,
        0x6A82 | 0x6A88 => CKR_OBJECT_HANDLE_INVALID,
        0x6A84 | 0x6581 => CKR_DEVICE_MEMORY,
        0x6400 => CKR_USER_NOT_LOGGED_IN,
        x if x & 0xFFF0 == 0x63C0 => CKR_PIN_INCORRECT,
        _ => CKR_DEVICE_ERROR,
    }
}

/// A status word as an error.
pub fn sw_error(sw: StatusWord, origin: &'static str) -> Error {
    Error::new(sw_to_rv(sw), origin)
}

/// Sends one APDU, following 61xx with GET RESPONSE; returns data and SW.
pub fn exchange(link: &mut dyn Link, apdu: &[u8]) -> Result<(Vec<u8>, StatusWord)> {
    let mut r = link.transmit(apdu)?;
    let mut sw =
        StatusWord::from_response(&r).ok_or(Error::new(CKR_DEVICE_ERROR, "short response"))?;
    r.truncate(r.len() - 2);
    while sw.sw1() == 0x61 {
        let mut more = link.transmit(&[0x00, 0xC0, 0x00, 0x00, sw.sw2()])?;
        sw = StatusWord::from_response(&more)
            .ok_or(Error::new(CKR_DEVICE_ERROR, "short response"))?;
        more.truncate(more.len() - 2);
        r.extend_from_slice(&more);
    }
    Ok((r, sw))
}

/// As [`exchange`], failing on anything but 9000/9001.
pub fn ok(link: &mut dyn Link, apdu: &[u8], origin: &'static str) -> Result<Vec<u8>> {
    let (d, sw) = exchange(link, apdu)?;
    if sw.is_ok() {
        Ok(d)
    } else {
        Err(sw_error(sw, origin))
    }
}

/// What SELECT of the applet tells (§2.3 tag 85).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppletInfo {
    /// Device options (EF 100E).
    pub options: u16,
    /// Firmware version.
    pub version: (u8, u8),
}

/// SELECT of the SmartCard-HSM applet. This is a logout: call it only when
/// connecting, never while the token is logged in.
pub fn select_applet(link: &mut dyn Link) -> Result<AppletInfo> {
    let (fcp, sw) = exchange(link, &build(0x00, 0xA4, 0x04, 0x00, AID, 256))?;
    if !sw.is_ok() {
        return Err(Error::new(CKR_TOKEN_NOT_RECOGNIZED, "not a SmartCard-HSM"));
    }
    let p = tlv::parse_one(&fcp)
        .ok()
        .and_then(|(t, _)| tlv::find(t.value, 0x85).ok().flatten())
        .map(|t| t.value)
        .filter(|v| v.len() >= 5)
        .ok_or(Error::new(CKR_TOKEN_NOT_RECOGNIZED, "FCP without tag 85"))?;
    let n = p.len();
    Ok(AppletInfo {
        options: u16::from_be_bytes([p[0], p[1]]),
        version: (p[n - 2], p[n - 1]),
    })
}

/// Reads a whole EF by FID (B1 with P1P2 = FID and the offset DO); `None`
/// if it does not exist. Small files take one APDU: a short answer to an
/// extended Le is the end of the file.
pub fn read_ef(link: &mut dyn Link, fid: u16) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let mut off = vec![0x54, 0x02];
        off.extend_from_slice(&(out.len() as u16).to_be_bytes());
        let (d, sw) = exchange(
            link,
            &build_extended(0x00, 0xB1, (fid >> 8) as u8, fid as u8, &off, 65536),
        )?;
        match sw.0 {
            0x9000 => {}
            0x6A82 if out.is_empty() => return Ok(None),
            0x6282 => return Ok(Some(out)),
            _ => return Err(sw_error(sw, "READ BINARY")),
        }
        let n = d.len();
        out.extend_from_slice(&d);
        // Cards answer up to their I/O buffer; anything shorter than that
        // and than what was asked is the end.
        if n == 0 || n < 1024 || out.len() >= 0xFFFF {
            return Ok(Some(out));
        }
    }
}

/// Writes a whole EF (creating it), in chunks that fit one APDU.
pub fn write_ef(link: &mut dyn Link, fid: u16, data: &[u8]) -> Result<()> {
    const CHUNK: usize = 1024;
    let mut offset = 0usize;
    loop {
        let end = (offset + CHUNK).min(data.len());
        let mut body = Vec::with_capacity(end - offset + 10);
        tlv::push(&mut body, 0x54, &(offset as u16).to_be_bytes());
        tlv::push(&mut body, 0x53, &data[offset..end]);
        ok(
            link,
            &build_extended(0x00, 0xD7, (fid >> 8) as u8, fid as u8, &body, 0),
            "UPDATE BINARY",
        )?;
        offset = end;
        if offset >= data.len() {
            return Ok(());
        }
    }
}

/// Deletes an EF; a missing one is not an error.
pub fn delete_ef(link: &mut dyn Link, fid: u16) -> Result<()> {
    let (_, sw) = exchange(link, &build(0x00, 0xE4, 0x02, 0x00, &fid.to_be_bytes(), 0))?;
    if sw.is_ok() || sw == StatusWord::FILE_NOT_FOUND {
        Ok(())
    } else {
        Err(sw_error(sw, "DELETE FILE"))
    }
}

/// ENUMERATE OBJECTS: the FIDs of keys and descriptors.
pub fn enumerate(link: &mut dyn Link) -> Result<Vec<u16>> {
    let d = ok(
        link,
        &[0x80, 0x58, 0x00, 0x00, 0x00, 0x00, 0x00],
        "ENUMERATE OBJECTS",
    )?;
    Ok(d.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// State of a PIN as the status query reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// Verified in this session.
    Verified,
    /// Not verified; this many tries left.
    TriesLeft(u8),
    /// Blocked.
    Blocked,
    /// No such PIN (not initialised, or PKA-only).
    Absent,
    /// Transport PIN: must be changed before use.
    Transport,
}

/// VERIFY without data (§5.1): the state of a PIN.
pub fn pin_state(link: &mut dyn Link, reference: u8) -> Result<PinState> {
    let (_, sw) = exchange(link, &[0x00, 0x20, 0x00, reference])?;
    Ok(match sw.0 {
        0x9000 => PinState::Verified,
        0x6983 => PinState::Blocked,
        0x6A88 => PinState::Absent,
        0x6984 => PinState::Transport,
        _ => match sw.pin_tries() {
            Some(n) => PinState::TriesLeft(n),
            None => return Err(sw_error(sw, "VERIFY status")),
        },
    })
}

/// VERIFY with the user PIN: CKR_PIN_INCORRECT (tries left are in the
/// token flags after), CKR_PIN_LOCKED.
pub fn verify(link: &mut dyn Link, reference: u8, pin: &[u8]) -> Result<()> {
    let (_, sw) = exchange(link, &build(0x00, 0x20, 0x00, reference, pin, 0))?;
    match sw.0 {
        0x9000 => Ok(()),
        0x6983 => Err(Error::new(CKR_PIN_LOCKED, "PIN blocked")),
        0x6984 => Err(Error::new(CKR_PIN_EXPIRED, "transport PIN must be changed")),
        0x6A88 => Err(Error::new(
            CKR_USER_PIN_NOT_INITIALIZED,
            "no PIN on the token",
        )),
        _ if sw.pin_tries().is_some() => Err(Error::new(CKR_PIN_INCORRECT, "wrong PIN")),
        _ => Err(sw_error(sw, "VERIFY")),
    }
}

/// The user PIN reference, for callers that do not import picohsm-wire.
pub const USER_PIN: u8 = pin_ref::USER;

/// SIGN (§7.2) with key `id` and algorithm byte `algo`.
pub fn sign(link: &mut dyn Link, id: u8, algo: u8, data: &[u8]) -> Result<Vec<u8>> {
    ok(
        link,
        &build_extended(0x80, 0x68, id, algo, data, 65536),
        "SIGN",
    )
}

/// ECDH (DECIPHER algorithm `80`, §7.3) of key `id` with the peer's
/// uncompressed point: the shared X coordinate (the card's leading `04`
/// removed). A point the card refuses (6A80) is the caller's bad
/// parameter, CKR_MECHANISM_PARAM_INVALID.
pub fn ecdh(link: &mut dyn Link, id: u8, point: &[u8]) -> Result<Vec<u8>> {
    let (mut d, sw) = exchange(link, &build_extended(0x80, 0x62, id, 0x80, point, 65536))?;
    match sw.0 {
        0x9000 if d.first() == Some(&0x04) => {
            d.remove(0);
            Ok(d)
        }
        0x9000 => Err(Error::new(CKR_DEVICE_ERROR, "ECDH answer without 04")),
        0x6A80 | 0x6700 => Err(Error::new(
            CKR_MECHANISM_PARAM_INVALID,
            "the card refused the peer's point",
        )),
        _ => Err(sw_error(sw, "ECDH")),
    }
}

/// GET CHALLENGE of `n` bytes (at most 1024 per APDU).
pub fn challenge(link: &mut dyn Link, n: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = (n - out.len()).min(256);
        let d = ok(
            link,
            &[0x00, 0x84, 0x00, 0x00, (k & 0xFF) as u8],
            "GET CHALLENGE",
        )?;
        if d.is_empty() {
            return Err(Error::new(CKR_DEVICE_ERROR, "empty challenge"));
        }
        out.extend_from_slice(&d[..d.len().min(k)]);
    }
    Ok(out)
}
