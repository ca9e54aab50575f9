//! READ BINARY (INS B1 with an offset DO, and B0), docs/protocol.md §3.5; also the public
//! view of files that SELECT and READ share: generated EF.DIR and
//! EF.TokenInfo, and the access rule that keys are never readable and
//! private data objects (`CDxx`) need the user state.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::{fid, ins, AID};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use sha2::{Digest, Sha256};

use crate::apdu::Response;
use crate::Card;

/// Label in EF.DIR and EF.TokenInfo.
pub const LABEL: &[u8] = b"Pico-HSM";
/// Manufacturer in EF.TokenInfo.
pub const MANUFACTURER: &[u8] = b"picohsm-pkcs11";

/// Whether a FID is internal (PINs, MKEK, DKEK, PKA state): never visible.
pub fn internal(f: u16) -> bool {
    f >> 8 == 0x10
}

fn token_info(card: &Card) -> Vec<u8> {
    let serial = Sha256::digest(card.otp.as_ref());
    let mut v = Vec::new();
    tlv::push(&mut v, 0x02, &[picohsm_wire::codes::VERSION.0]);
    tlv::push(&mut v, 0x04, &serial[..8]);
    tlv::push(&mut v, 0x0C, MANUFACTURER);
    tlv::push(&mut v, 0x80, LABEL);
    tlv::push(&mut v, 0x03, &[0x04, 0x30]);
    tlv::encode(0x30, &v)
}

/// The content of a visible EF, generated ones included; `None` if the
/// file does not exist or is not visible (keys, internal files).
pub fn content(card: &Card, f: u16) -> Option<Vec<u8>> {
    if internal(f) || f >> 8 == fid::KEY_PREFIX as u16 {
        return None;
    }
    match f {
        fid::EF_DIR => {
            let mut app = Vec::new();
            tlv::push(&mut app, 0x4F, AID);
            tlv::push(&mut app, 0x50, LABEL);
            Some(tlv::encode(0x61, &app))
        }
        fid::EF_ATR => Some(Vec::new()),
        fid::EF_TOKENINFO => Some(
            card.fs
                .get(f)
                .map_or_else(|| token_info(card), |c| c.to_vec()),
        ),
        _ => card.fs.get(f).map(|c| c.to_vec()),
    }
}

/// `6982` for keys, and for private data objects without the user state.
pub fn check_read(card: &Card, f: u16) -> Result<(), StatusWord> {
    let prefix = (f >> 8) as u8;
    if prefix == fid::KEY_PREFIX || (prefix == fid::PROT_DATA_PREFIX && !card.session.user_auth) {
        return Err(StatusWord::SECURITY_STATUS);
    }
    Ok(())
}

/// Parses the offset DO `54 L offset` (1 to 4 bytes).
pub fn offset_do(data: &[u8]) -> Result<usize, StatusWord> {
    picohsm_wire::cmd::file::parse_offset(data).ok_or(StatusWord::WRONG_DATA)
}

/// Runs READ BINARY.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let (target, offset) = if cmd.ins == ins::READ_BINARY {
        if cmd.p1 & 0x80 != 0 {
            // Short EF identifiers are not used on this card.
            return Err(StatusWord::FUNC_NOT_SUPPORTED);
        }
        let cur = card.session.selected_ef.ok_or(StatusWord::NOT_ALLOWED)?;
        (cur, u16::from_be_bytes([cmd.p1, cmd.p2]) as usize)
    } else {
        let f = u16::from_be_bytes([cmd.p1, cmd.p2]);
        let target = if f == 0 {
            card.session.selected_ef.ok_or(StatusWord::NOT_ALLOWED)?
        } else {
            f
        };
        (target, offset_do(cmd.data)?)
    };
    check_read(card, target)?;
    let data = content(card, target).ok_or(StatusWord::FILE_NOT_FOUND)?;
    card.session.selected_ef = Some(target);
    if offset > data.len() {
        return Err(StatusWord::END_OF_FILE);
    }
    let n = if cmd.ne == 0 {
        data.len() - offset
    } else {
        cmd.ne.min(data.len() - offset)
    };
    Ok(data[offset..offset + n].to_vec())
}
