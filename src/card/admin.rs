//! Administrative commands: what `picohsm-tool` sends besides the login
//! commands of [`super::pka`]. INITIALIZE DEVICE with PINs, PKA and DKEK
//! shares (§4), the PIN commands (§5), the registration of a PKA key with
//! the device certificate chain before it (§6.3-§6.6), key generation laid
//! out as OpenSC lays it out (§7.1), and the PKA file layouts that
//! `sc-hsm-tool --export-for-pub-key-auth` writes and
//! `sc-hsm-tool --register-public-key` reads (§6.5).
//!
//! Unlike the module's driver functions, which answer a CK_RV, these keep
//! the status word ([`AdminError::Card`]): a person at a command line is
//! told what the card said and what to do about it.

use std::fmt;

use cryptoki_sys::*;
use picohsm_wire::apdu::{build, build_extended};
use picohsm_wire::codes::{fid, pin_ref};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, AuthRequest, Cvc};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use super::pka::Status;
use super::{exchange, pkcs15};
use crate::core::keygen::{intrinsic_id_ec, intrinsic_id_rsa};
use crate::error::Error;
use crate::transport::Link;

/// Why an administrative command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// The card answered `sw` to `command`.
    Card {
        /// The command, as the protocol reference names it.
        command: &'static str,
        /// Its status word.
        sw: StatusWord,
    },
    /// A PIN was wrong (63Cx, §5.1): `tries_left` remain.
    WrongPin {
        /// `81` user PIN, `88` SO-PIN.
        reference: u8,
        /// Tries left before it blocks.
        tries_left: u8,
    },
    /// A PIN is blocked (6983, §5.1).
    PinBlocked {
        /// `81` user PIN, `88` SO-PIN.
        reference: u8,
    },
    /// The transport or the module failed (PC/SC, card removed, ...).
    Module(Error),
    /// An answer or a file that does not have the expected layout.
    Invalid(String),
}

/// Results of the administrative commands.
pub type AdminResult<T> = std::result::Result<T, AdminError>;

impl From<Error> for AdminError {
    fn from(e: Error) -> Self {
        AdminError::Module(e)
    }
}

/// The name of a PIN reference, for messages.
pub fn pin_name(reference: u8) -> &'static str {
    if reference == pin_ref::SO {
        "SO-PIN"
    } else {
        "user PIN"
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Card { command, sw } => write!(
                f,
                "{command}: the card answered {:04X} ({})",
                sw.0,
                sw_meaning(*sw)
            ),
            AdminError::WrongPin {
                reference,
                tries_left,
            } => write!(f, "wrong {}: {tries_left} tries left", pin_name(*reference)),
            AdminError::PinBlocked { reference } => {
                write!(f, "the {} is blocked", pin_name(*reference))
            }
            AdminError::Module(e) => write!(f, "{e}"),
            AdminError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for AdminError {}

/// What a status word means on a Pico HSM / SmartCard-HSM (§1.4).
pub fn sw_meaning(sw: StatusWord) -> &'static str {
    match sw.0 {
        0x9000 => "success",
        0x9001 => "success, key already authenticated",
        0x6282 => "end of file reached",
        x if x & 0xFFF0 == 0x63C0 => "wrong PIN",
        0x6400 => "execution error: the keys are locked (no PIN verified) or the operation failed",
        0x6581 => "memory failure",
        0x6600 => "no button press in time",
        0x6700 => "wrong length",
        0x6982 => "security status not satisfied",
        0x6983 => "PIN blocked",
        0x6984 => "data invalid",
        0x6985 => "conditions of use not satisfied",
        0x6986 => "command not allowed",
        0x6A80 => "incorrect parameters in the data field",
        0x6A81 => "function not supported",
        0x6A82 => "file or application not found",
        0x6A84 => "not enough memory / no free slot",
        0x6A86 => "incorrect P1/P2",
        0x6A88 => "referenced data not found",
        0x6A89 => "file already exists",
        0x6B00 => "wrong parameters",
        0x6D00 => "instruction not supported",
        0x6E00 => "class not supported",
        _ => "unknown status",
    }
}

fn card_err(command: &'static str, sw: StatusWord) -> AdminError {
    AdminError::Card { command, sw }
}

/// Sends `apdu`; anything but 9000/9001 is [`AdminError::Card`].
fn ok(link: &mut dyn Link, apdu: &[u8], command: &'static str) -> AdminResult<Vec<u8>> {
    let (d, sw) = exchange(link, apdu)?;
    if sw.is_ok() {
        Ok(d)
    } else {
        Err(card_err(command, sw))
    }
}

/// The PIN errors of VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
/// and INITIALIZE (§5.1): 63Cx and 6983; everything else as it came.
fn pin_result(sw: StatusWord, reference: u8, command: &'static str) -> AdminResult<()> {
    if sw.is_ok() {
        return Ok(());
    }
    if sw == StatusWord::PIN_BLOCKED {
        return Err(AdminError::PinBlocked { reference });
    }
    match sw.pin_tries() {
        Some(0) => Err(AdminError::PinBlocked { reference }),
        Some(n) => Err(AdminError::WrongPin {
            reference,
            tries_left: n,
        }),
        None => Err(card_err(command, sw)),
    }
}

// ---------------------------------------------------------------------------
// Applet

/// Version and free memory (§2.4, INITIALIZE without data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Free memory in bytes, as the card reports it.
    pub free: u32,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

/// `80 50 00 00` without data (§2.4): `None` when the card does not answer
/// it, which is also how a card whose applet is not selected answers.
pub fn version(link: &mut dyn Link) -> AdminResult<Option<Version>> {
    let (d, sw) = exchange(link, &[0x80, 0x50, 0x00, 0x00])?;
    if sw.0 != 0x9000 || d.len() < 7 {
        return Ok(None);
    }
    Ok(Some(Version {
        free: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
        major: d[5],
        minor: d[6],
    }))
}

/// Makes sure the SmartCard-HSM applet is selected, sending SELECT only
/// when it is not: a SELECT logs out whoever uses the card (§2.3), and a
/// card that already answers the version query has its applet selected.
/// Returns the version and whether a SELECT was sent; a card that refuses
/// the SELECT is CKR_TOKEN_NOT_RECOGNIZED.
pub fn ensure_selected(link: &mut dyn Link) -> AdminResult<(Version, bool)> {
    if let Some(v) = version(link)? {
        return Ok((v, false));
    }
    let info = super::select_applet(link)?;
    let v = version(link)?.unwrap_or(Version {
        free: 0,
        major: info.version.0,
        minor: info.version.1,
    });
    Ok((v, true))
}

/// SELECT of the applet (§2.3) with its FCP: the device options (tag 85).
/// This is a logout; [`ensure_selected`] avoids it where it can.
pub fn select(link: &mut dyn Link) -> AdminResult<super::AppletInfo> {
    Ok(super::select_applet(link)?)
}

/// Whether an ATR is a SmartCard-HSM's: the historical bytes carry
/// `THSM1` (§2.1, the ATRs OpenSC matches).
pub fn is_smartcard_hsm_atr(atr: &[u8]) -> bool {
    atr.windows(5).any(|w| w == b"THSM1")
}

// ---------------------------------------------------------------------------
// INITIALIZE DEVICE (§4)

/// The parameters of INITIALIZE DEVICE (§4.1).
#[derive(Clone, PartialEq, Eq)]
pub struct InitParams {
    /// Tag 80: device options (§4.2). OpenSC always sets [`opt::RRC`].
    pub options: u16,
    /// Tag 81: the user PIN (6..16 characters); none on a PKA-only device.
    pub user_pin: Option<Vec<u8>>,
    /// Tag 82: the SO-PIN, 8 bytes (16 hex digits on the command line).
    pub so_pin: [u8; 8],
    /// Tag 91: the user PIN's tries (1..10).
    pub pin_retries: u8,
    /// Tag 92: DKEK shares (`0`: the device makes a random DKEK itself).
    pub dkek_shares: Option<u8>,
    /// Tag 93: PKA with `n` keys of which `m` are required per login.
    pub pka: Option<(u8, u8)>,
    /// Tag 97: further key domains.
    pub key_domains: Option<u8>,
}

impl fmt::Debug for InitParams {
    // PINs never reach a log or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitParams")
            .field("options", &self.options)
            .field("user_pin", &self.user_pin.as_ref().map(|_| "…"))
            .field("pin_retries", &self.pin_retries)
            .field("dkek_shares", &self.dkek_shares)
            .field("pka", &self.pka)
            .field("key_domains", &self.key_domains)
            .finish_non_exhaustive()
    }
}

impl Drop for InitParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.so_pin.zeroize();
        if let Some(p) = self.user_pin.as_mut() {
            p.zeroize();
        }
    }
}

impl InitParams {
    /// The command data: tags in the order sc-hsm-tool sends them (§4.3).
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::new());
        tlv::push(&mut v, 0x80, &self.options.to_be_bytes());
        if let Some(p) = &self.user_pin {
            tlv::push(&mut v, 0x81, p);
        }
        tlv::push(&mut v, 0x82, &self.so_pin);
        if self.user_pin.is_some() {
            tlv::push(&mut v, 0x91, &[self.pin_retries]);
        }
        if let Some(n) = self.dkek_shares {
            tlv::push(&mut v, 0x92, &[n]);
        }
        if let Some((n, m)) = self.pka {
            tlv::push(&mut v, 0x93, &[n, m]);
        }
        if let Some(k) = self.key_domains {
            tlv::push(&mut v, 0x97, &[k]);
        }
        v
    }
}

/// INITIALIZE DEVICE (`80 50 00 00`, §4.1). Erases every key and object;
/// the card session is authenticated afterwards (until the next SELECT).
/// A device that already has an SO-PIN checks tag 82 against it: 63Cx /
/// 6983 come back as [`AdminError::WrongPin`] / [`AdminError::PinBlocked`].
pub fn initialize(link: &mut dyn Link, p: &InitParams) -> AdminResult<()> {
    let data = p.encode();
    let apdu = zeroize::Zeroizing::new(build_extended(0x80, 0x50, 0x00, 0x00, &data, 0));
    let (_, sw) = exchange(link, &apdu)?;
    pin_result(sw, pin_ref::SO, "INITIALIZE DEVICE")
}

/// Writes the token label into EF.TokenInfo `2F03` (tag `80` of the
/// PKCS#15 TokenInfo, where OpenSC and this module read it), keeping the
/// other fields the card generated. Needs the user state (right after
/// INITIALIZE it is there). The upstream Pico firmware (6.6) crashes on a
/// write of 2F03 (§2.5); see [`tokeninfo_writable`].
pub fn write_label(link: &mut dyn Link, label: &str) -> AdminResult<()> {
    let current = super::read_ef(link, fid::EF_TOKENINFO)?.unwrap_or_default();
    let items: Vec<(u16, Vec<u8>)> = tlv::parse_one(&current)
        .ok()
        .filter(|(t, _)| t.tag == 0x30)
        .map(|(t, _)| {
            tlv::iter(t.value)
                .flatten()
                .map(|i| (i.tag, i.value.to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let mut v = Vec::new();
    let mut labelled = false;
    for (tag, value) in &items {
        if *tag == 0x80 {
            tlv::push(&mut v, 0x80, label.as_bytes());
            labelled = true;
        } else if *tag == 0x03 && !labelled {
            // TokenInfo order: label [0] comes before tokenflags.
            tlv::push(&mut v, 0x80, label.as_bytes());
            labelled = true;
            tlv::push(&mut v, *tag, value);
        } else {
            tlv::push(&mut v, *tag, value);
        }
    }
    if !labelled {
        tlv::push(&mut v, 0x80, label.as_bytes());
    }
    let ti = tlv::encode(0x30, &v);
    super::write_ef(link, fid::EF_TOKENINFO, &ti).map_err(|e| match e.rv {
        CKR_USER_NOT_LOGGED_IN => card_err("UPDATE BINARY 2F03", StatusWord::SECURITY_STATUS),
        _ => AdminError::Module(e),
    })
}

/// Whether EF.TokenInfo may be written: this project's firmware says so by
/// its manufacturer string; the upstream Pico firmware serves 2F03 from a
/// function and crashed when OpenSC wrote it (§2.5).
pub fn tokeninfo_writable(link: &mut dyn Link) -> AdminResult<bool> {
    let ti = super::read_ef(link, fid::EF_TOKENINFO)?.unwrap_or_default();
    Ok(tlv::parse_one(&ti)
        .ok()
        .and_then(|(t, _)| tlv::find(t.value, 0x0C).ok().flatten())
        .is_some_and(|m| m.value == b"picohsm-pkcs11"))
}

/// The token label in EF.TokenInfo (tag 80), if any.
pub fn label(link: &mut dyn Link) -> AdminResult<Option<String>> {
    let ti = super::read_ef(link, fid::EF_TOKENINFO)?.unwrap_or_default();
    Ok(tlv::parse_one(&ti)
        .ok()
        .and_then(|(t, _)| tlv::find(t.value, 0x80).ok().flatten())
        .map(|l| String::from_utf8_lossy(l.value).into_owned()))
}

// ---------------------------------------------------------------------------
// PINs (§5)

/// VERIFY (§5.1) of the user PIN (`81`) or the SO-PIN (`88`, 8 bytes).
pub fn verify(link: &mut dyn Link, reference: u8, pin: &[u8]) -> AdminResult<()> {
    let apdu = zeroize::Zeroizing::new(build(0x00, 0x20, 0x00, reference, pin, 0));
    let (_, sw) = exchange(link, &apdu)?;
    if sw == StatusWord::DATA_INVALID {
        return Err(card_err("VERIFY (transport PIN: change it first)", sw));
    }
    if sw == StatusWord::REF_NOT_FOUND {
        return Err(card_err("VERIFY (no such PIN on the device)", sw));
    }
    pin_result(sw, reference, "VERIFY")
}

/// CHANGE REFERENCE DATA (§5.2): `00 24 00 ref <old><new>`; the card
/// splits at the stored PIN's length.
pub fn change_pin(link: &mut dyn Link, reference: u8, old: &[u8], new: &[u8]) -> AdminResult<()> {
    let mut data = zeroize::Zeroizing::new(old.to_vec());
    data.extend_from_slice(new);
    let apdu = zeroize::Zeroizing::new(build(0x00, 0x24, 0x00, reference, &data, 0));
    let (_, sw) = exchange(link, &apdu)?;
    pin_result(sw, reference, "CHANGE REFERENCE DATA")
}

/// RESET RETRY COUNTER (§5.3) of the user PIN with the SO-PIN: P1 `00`
/// with a new PIN, P1 `01` (counter only, needs option `0020`) without.
/// 6986: the device was initialised without option `0001` (or `0020`).
pub fn reset_retry_counter(
    link: &mut dyn Link,
    so_pin: &[u8; 8],
    new_pin: Option<&[u8]>,
) -> AdminResult<()> {
    let mut data = zeroize::Zeroizing::new(so_pin.to_vec());
    let p1 = match new_pin {
        Some(p) => {
            data.extend_from_slice(p);
            0x00
        }
        None => 0x01,
    };
    let apdu = zeroize::Zeroizing::new(build(0x00, 0x2C, p1, pin_ref::USER, &data, 0));
    let (_, sw) = exchange(link, &apdu)?;
    pin_result(sw, pin_ref::SO, "RESET RETRY COUNTER")
}

// ---------------------------------------------------------------------------
// PKA registration (§6.3-§6.6)

/// MSE SET DST (`00 22 81 B6 83 <name>`, §6.4): makes the certificate
/// named `name` the issuer for the next PSO VERIFY CERTIFICATE (and, on
/// this firmware, for the outer signature of a registered request).
/// `Ok(false)`: the card does not know it (6A88).
pub fn mse_set_dst(link: &mut dyn Link, name: &[u8]) -> AdminResult<bool> {
    let (_, sw) = exchange(
        link,
        &build(0x00, 0x22, 0x81, 0xB6, &tlv::encode(0x83, name), 0),
    )?;
    match sw.0 {
        0x9000 => Ok(true),
        0x6A88 => Ok(false),
        _ => Err(card_err("MSE SET DST", sw)),
    }
}

/// PSO VERIFY CERTIFICATE (`00 2A 00 BE`, §6.4) of a `7F21` certificate
/// (sent without its `7F21` header) against the issuer MSE SET DST chose;
/// the card keeps it (6985 bad signature, 6984 unparsable).
pub fn pso_verify_certificate(link: &mut dyn Link, certificate: &[u8]) -> AdminResult<()> {
    let content = match tlv::parse_one(certificate) {
        Ok((t, _)) if t.tag == cvc::TAG_CVC => t.value,
        _ => certificate,
    };
    ok(
        link,
        &build_extended(0x00, 0x2A, 0x00, 0xBE, content, 0),
        "PSO VERIFY CERTIFICATE",
    )
    .map(|_| ())
}

fn decode_status(d: &[u8]) -> AdminResult<Status> {
    if d.len() < 4 {
        return Err(AdminError::Invalid("short PKA status".into()));
    }
    Ok(Status {
        total: d[0],
        missing: d[1],
        required: d[2],
        authenticated: d[3],
    })
}

/// MANAGE PKA register (`80 54 00 00 <request>`, §6.3): into the first
/// empty slot, or into `slot` (P1 `01`, needs option `0008`). `request` is
/// the content of tag 67 (starting with `7F21`). Needs the user PIN or
/// SO-PIN verified in this card session (6982); 6A84: all slots taken;
/// 6A89: a key of that CHR is already registered; 6A82: no PKA.
pub fn pka_register(link: &mut dyn Link, request: &[u8], slot: Option<u8>) -> AdminResult<Status> {
    let (p1, p2) = slot.map_or((0x00, 0x00), |s| (0x01, s));
    let d = ok(
        link,
        &build_extended(0x80, 0x54, p1, p2, request, 4),
        "MANAGE PKA register",
    )?;
    decode_status(&d)
}

/// A PKA file: the authenticated request of the key, with the chain of the
/// device that made it (none for a self-signed request, §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkaFile {
    /// The content of tag 67 (what the register command carries).
    pub request: Vec<u8>,
    /// The device certificate (`7F21` TLV), if any.
    pub device: Option<Vec<u8>>,
    /// Its issuers (DICA first, then the root if present), `7F21` TLVs.
    pub issuers: Vec<Vec<u8>>,
}

/// OID 1.3.6.1.4.1.24991.4.3.1 of CardContact's PKA file layout (§6.5).
pub const PKA_FILE_OID: &[u8] = &[
    0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x04, 0x03, 0x01,
];

impl PkaFile {
    /// Parses either layout of §6.5: `30 { 67 request, 7F21 device,
    /// 7F21 DICA, … }` (sc-hsm-tool's) or `30 { 06 OID, 61 { DICA },
    /// 62 { device }, 63 { 67 request } }` (CardContact's). A bare `67`
    /// TLV is accepted too.
    pub fn parse(file: &[u8]) -> AdminResult<PkaFile> {
        let bad = |what: &str| AdminError::Invalid(format!("not a PKA file: {what}"));
        let (outer, _) = tlv::parse_one(file).map_err(|_| bad("not TLV"))?;
        if outer.tag == cvc::TAG_AUTH_REQUEST {
            AuthRequest::parse(outer.value).map_err(|_| bad("bad request"))?;
            return Ok(PkaFile {
                request: outer.value.to_vec(),
                device: None,
                issuers: Vec::new(),
            });
        }
        if outer.tag != 0x30 {
            return Err(bad("neither a SEQUENCE nor a request"));
        }
        let items = tlv::parse_all(outer.value).map_err(|_| bad("bad SEQUENCE"))?;
        let (request, device, issuers) = match items.first().map(|t| t.tag) {
            Some(0x67) => {
                let certs: Vec<Vec<u8>> = items[1..]
                    .iter()
                    .filter(|t| t.tag == cvc::TAG_CVC)
                    .map(|t| t.raw.to_vec())
                    .collect();
                let mut it = certs.into_iter();
                (items[0].value.to_vec(), it.next(), it.collect::<Vec<_>>())
            }
            Some(0x06) => {
                if items[0].value != PKA_FILE_OID {
                    return Err(bad("unknown OID"));
                }
                let inner = |tag: u16| -> Option<Vec<u8>> {
                    items
                        .iter()
                        .find(|t| t.tag == tag)
                        .and_then(|t| tlv::parse_one(t.value).ok())
                        .map(|(i, _)| match i.tag {
                            0x67 => i.value.to_vec(),
                            _ => i.raw.to_vec(),
                        })
                };
                let request = inner(0x63).ok_or_else(|| bad("no request (63)"))?;
                (request, inner(0x62), inner(0x61).into_iter().collect())
            }
            _ => return Err(bad("unknown layout")),
        };
        AuthRequest::parse(&request).map_err(|_| bad("bad request"))?;
        for c in device.iter().chain(issuers.iter()) {
            Cvc::parse(c).map_err(|_| bad("bad certificate"))?;
        }
        Ok(PkaFile {
            request,
            device,
            issuers,
        })
    }

    /// The file sc-hsm-tool writes (§6.6): `30 { 67 request, device
    /// certificate, issuers… }`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = tlv::encode(cvc::TAG_AUTH_REQUEST, &self.request);
        if let Some(d) = &self.device {
            v.extend_from_slice(d);
        }
        for c in &self.issuers {
            v.extend_from_slice(c);
        }
        tlv::encode(0x30, &v)
    }

    /// The parsed request.
    pub fn parsed(&self) -> AdminResult<AuthRequest<'_>> {
        AuthRequest::parse(&self.request)
            .map_err(|_| AdminError::Invalid("not a PKA file: bad request".into()))
    }

    /// The key's name (inner CHR), as it is registered.
    pub fn chr(&self) -> AdminResult<Vec<u8>> {
        Ok(self.parsed()?.cert.chr.to_vec())
    }

    /// Whether the request is self-signed (outer CAR = CHR): a key with no
    /// device behind it, exported from a PKCS#11 token.
    pub fn self_signed(&self) -> bool {
        self.parsed()
            .is_ok_and(|r| r.outer_car == r.cert.chr && self.device.is_none())
    }
}

/// What [`register`] did, step by step (for the CLI's report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The PKA status after the registration.
    pub status: Status,
    /// The registered key's CHR.
    pub chr: Vec<u8>,
}

/// The registration as sc-hsm-tool does it (§6.5), with the PIN verified
/// beforehand by the caller: make the device certificate known (MSE SET DST
/// on its issuer, PSO VERIFY CERTIFICATE) unless the card knows it, select
/// it (MSE SET DST on the outer CAR), then MANAGE PKA register. The chain
/// steps matter for a genuine SmartCard-HSM, which checks the request
/// against it; the Pico does not (§6.3), so a chain the card cannot verify
/// is reported through `say` and the registration goes on — the card has
/// the last word. A self-signed request has no chain.
pub fn register(
    link: &mut dyn Link,
    file: &PkaFile,
    slot: Option<u8>,
    say: &mut dyn FnMut(String),
) -> AdminResult<Registered> {
    let req = file.parsed()?;
    let chr = req.cert.chr.to_vec();
    if let Some(device) = &file.device {
        let (dev, _) =
            Cvc::parse(device).map_err(|_| AdminError::Invalid("bad device certificate".into()))?;
        let dev_name = String::from_utf8_lossy(dev.chr).into_owned();
        // The issuers first, root side last in the file: verify from the
        // root down, skipping those the card knows.
        for issuer in file.issuers.iter().rev() {
            let (c, _) = Cvc::parse(issuer)
                .map_err(|_| AdminError::Invalid("bad issuer certificate".into()))?;
            if c.is_self_described() || mse_set_dst(link, c.chr)? {
                continue;
            }
            let name = String::from_utf8_lossy(c.chr).into_owned();
            match c.car {
                Some(car) if mse_set_dst(link, car)? => {
                    match pso_verify_certificate(link, issuer) {
                        Ok(()) => say(format!("issuer {name}: verified and stored")),
                        Err(e) => say(format!("issuer {name}: not accepted ({e})")),
                    }
                }
                _ => say(format!(
                    "issuer {name}: its issuer is unknown to this device"
                )),
            }
        }
        if mse_set_dst(link, dev.chr)? {
            say(format!("device certificate {dev_name}: already known"));
        } else {
            match dev.car {
                Some(car) if mse_set_dst(link, car)? => {
                    match pso_verify_certificate(link, device) {
                        Ok(()) => say(format!("device certificate {dev_name}: verified")),
                        Err(e) => say(format!("device certificate {dev_name}: not accepted ({e})")),
                    }
                }
                _ => say(format!(
                    "device certificate {dev_name}: its issuer is unknown to this device"
                )),
            }
        }
        if req.outer_car == dev.chr && !mse_set_dst(link, req.outer_car)? {
            say("the request's device is not known: registering without the chain".into());
        }
    }
    let status = pka_register(link, &file.request, slot)?;
    Ok(Registered { status, chr })
}

// ---------------------------------------------------------------------------
// Keys (§7.1) and their export (§6.6)

/// One key of the card, as OpenSC would list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key reference (`CCxx`).
    pub key_ref: u8,
    /// The PrKD label (`C4xx`), empty if none.
    pub label: String,
    /// The PrKD CKA_ID.
    pub id: Vec<u8>,
    /// The CHR of the request in `CExx`, if it holds one.
    pub chr: Option<Vec<u8>>,
    /// "EC secp256r1", "RSA 2048", or what the PrKD tells.
    pub kind: String,
}

fn describe_key(cert: &Cvc<'_>) -> String {
    if oid::is_ec(cert.algorithm) {
        match cert.key_field(0x81).and_then(Curve::from_prime) {
            Some(c) => format!("EC {}", c.name()),
            None => "EC".into(),
        }
    } else if oid::is_rsa(cert.algorithm) {
        let bits = cert.key_field(0x81).map_or(0, |m| {
            let z = m.iter().take_while(|b| **b == 0).count();
            (m.len() - z) * 8
        });
        format!("RSA {bits}")
    } else {
        "unknown".into()
    }
}

/// The keys of the card (not the device key `CC00`), with their PrKD
/// labels and the CHR of their request: what `pka export` chooses from.
pub fn keys(link: &mut dyn Link) -> AdminResult<Vec<KeyEntry>> {
    let mut out = Vec::new();
    for f in super::enumerate(link)? {
        let (prefix, id) = ((f >> 8) as u8, f as u8);
        if prefix != fid::KEY_PREFIX || id == 0 {
            continue;
        }
        let prkd = super::read_ef(link, 0xC400 | id as u16)?
            .and_then(|d| pkcs15::PrivateKeyDesc::parse(&d).ok());
        let ce = super::read_ef(link, 0xCE00 | id as u16)?;
        let (chr, kind) = match ce.as_deref() {
            Some(c) if c.first() == Some(&0x67) => match AuthRequest::parse(c) {
                Ok(r) => (Some(r.cert.chr.to_vec()), describe_key(&r.cert)),
                Err(_) => (None, String::new()),
            },
            _ => (None, String::new()),
        };
        let kind = if kind.is_empty() {
            match &prkd {
                Some(p) if p.kind == pkcs15::KeyKind::Rsa => format!("RSA {}", p.key_bits),
                Some(_) => "EC".into(),
                None => "unknown".into(),
            }
        } else {
            kind
        };
        out.push(KeyEntry {
            key_ref: id,
            label: prkd.as_ref().map(|p| p.label.clone()).unwrap_or_default(),
            id: prkd.map(|p| p.id).unwrap_or_default(),
            chr,
            kind,
        });
    }
    Ok(out)
}

/// The PKA file of key `key_ref` as `sc-hsm-tool --export-for-pub-key-auth`
/// makes it (§6.6): the request in `CExx` and the chain in EF.C_DevAut.
/// No PIN, no change to the card.
pub fn export(link: &mut dyn Link, key_ref: u8) -> AdminResult<PkaFile> {
    let ce = super::read_ef(link, 0xCE00 | key_ref as u16)?.ok_or_else(|| {
        AdminError::Invalid(format!("key {key_ref} has no request in CE{key_ref:02X}"))
    })?;
    let (first, _) = tlv::parse_one(&ce)
        .map_err(|_| AdminError::Invalid(format!("CE{key_ref:02X} is not TLV")))?;
    if first.tag != cvc::TAG_AUTH_REQUEST {
        return Err(AdminError::Invalid(format!(
            "CE{key_ref:02X} holds a certificate, not the key's request: it cannot be exported for PKA"
        )));
    }
    AuthRequest::parse(first.value)
        .map_err(|_| AdminError::Invalid(format!("CE{key_ref:02X}: bad request")))?;
    let chain = super::read_ef(link, fid::EF_DEVAUT)?.unwrap_or_default();
    let certs = cvc::parse_chain(&chain)
        .map_err(|_| AdminError::Invalid("EF.C_DevAut (2F02) does not parse".into()))?;
    let mut it = certs.into_iter().map(|c| c.raw.to_vec());
    Ok(PkaFile {
        request: first.value.to_vec(),
        device: it.next(),
        issuers: it.collect(),
    })
}

/// The device name: the CHR of the first certificate in EF.C_DevAut (§3.3).
pub fn device_name(link: &mut dyn Link) -> AdminResult<Option<String>> {
    let chain = super::read_ef(link, fid::EF_DEVAUT)?.unwrap_or_default();
    Ok(cvc::first_chr(&chain).map(|c| String::from_utf8_lossy(c).into_owned()))
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// An EC key on this curve.
    Ec(Curve),
    /// An RSA key of this many bits (1024..4096), exponent 65537.
    Rsa(usize),
}

/// A key made by [`generate_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// Its reference on the card.
    pub key_ref: u8,
    /// Its CKA_ID (the PrKD's).
    pub id: Vec<u8>,
    /// The CHR of its request (what PKA registers it under).
    pub chr: Vec<u8>,
    /// The authenticated request the card answered (§6.2).
    pub request: Vec<u8>,
}

/// A CHR for a new key: the device serial (the device name without its
/// 5-character sequence) and a sequence number no other key of the card
/// uses, never the device name itself. The upstream firmware names keys
/// after the template, and OpenSC gives them all `<serial>00001` (§6.7),
/// which a PKA login cannot tell apart.
pub fn fresh_chr(device_name: &str, taken: &[Vec<u8>], start: u32) -> Vec<u8> {
    let serial = &device_name[..device_name.len().saturating_sub(5)];
    let serial = if serial.is_empty() { "ZZKEY" } else { serial };
    (start..)
        .map(|n| format!("{serial}{:05}", n % 100_000).into_bytes())
        .find(|c| c != device_name.as_bytes() && !taken.contains(c))
        .expect("an unused sequence number")
}

/// GENERATE ASYMMETRIC KEY PAIR (§7.1) into the first free key reference,
/// then OpenSC's PrKD in `C4xx` (label, CKA_ID, usage), as the module's
/// C_GenerateKeyPair does, so OpenSC and this module list the key. The
/// template names the key `chr` with CAR = CHR: a request that names
/// itself is one the upstream firmware can check at PKA login (§6.7).
/// `id` defaults to OpenSC's intrinsic id. Needs the user state and the
/// PIN verified (6982 / 6400).
pub fn generate_key(
    link: &mut dyn Link,
    spec: &KeySpec,
    label: &str,
    id: Option<&[u8]>,
    chr: &[u8],
) -> AdminResult<GeneratedKey> {
    let used = super::enumerate(link)?;
    let key_ref = (1..=255u8)
        .find(|i| !used.contains(&(0xCC00 | *i as u16)))
        .ok_or(card_err(
            "GENERATE ASYMMETRIC KEY PAIR",
            StatusWord::FILE_FULL,
        ))?;
    let key = match spec {
        KeySpec::Ec(c) => picohsm_wire::cvc::ec_keygen_template(oid::ECDSA_SHA256, *c),
        KeySpec::Rsa(bits) => picohsm_wire::cvc::rsa_keygen_template(
            oid::RSA_V15_SHA256,
            *bits as u16,
            &[0x01, 0x00, 0x01],
        ),
    };
    let mut template = Vec::new();
    tlv::push(&mut template, cvc::TAG_PROFILE, &[0x00]);
    tlv::push(&mut template, cvc::TAG_CAR, chr);
    tlv::push(&mut template, cvc::TAG_PUBKEY, &key);
    tlv::push(&mut template, cvc::TAG_CHR, chr);
    let resp = ok(
        link,
        &build_extended(0x00, 0x46, key_ref, 0x00, &template, 65536),
        "GENERATE ASYMMETRIC KEY PAIR",
    )?;
    let req = AuthRequest::parse(&resp).map_err(|_| {
        AdminError::Invalid("the card's key-generation answer does not parse".into())
    })?;
    let (kind, bits, usage, intrinsic) = match spec {
        KeySpec::Ec(c) => {
            let point = req
                .cert
                .key_field(0x86)
                .ok_or_else(|| AdminError::Invalid("no EC point in the answer".into()))?;
            (
                pkcs15::KeyKind::Ec,
                c.bits(),
                pkcs15::USAGE_SIGN | pkcs15::USAGE_DERIVE,
                intrinsic_id_ec(point),
            )
        }
        KeySpec::Rsa(bits) => {
            let n = req
                .cert
                .key_field(0x81)
                .ok_or_else(|| AdminError::Invalid("no modulus in the answer".into()))?;
            (
                pkcs15::KeyKind::Rsa,
                *bits,
                pkcs15::USAGE_SIGN | pkcs15::USAGE_DECRYPT,
                intrinsic_id_rsa(n),
            )
        }
    };
    let id = id.map_or(intrinsic, <[u8]>::to_vec);
    let prkd = pkcs15::PrivateKeyDesc {
        label: label.to_string(),
        id: id.clone(),
        usage,
        kind,
        key_bits: bits,
        key_reference: Some(key_ref),
        auth_id: Some(vec![1]),
        private: true,
        modifiable: true,
    };
    super::write_ef(link, 0xC400 | key_ref as u16, &prkd.encode())?;
    Ok(GeneratedKey {
        key_ref,
        id,
        chr: req.cert.chr.to_vec(),
        request: resp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each command with the next canned response and checks it.
    struct Script(Vec<(Vec<u8>, Vec<u8>)>);
    impl Link for Script {
        fn transmit(&mut self, apdu: &[u8]) -> crate::error::Result<Vec<u8>> {
            let (want, answer) = self.0.remove(0);
            assert_eq!(apdu, want.as_slice());
            Ok(answer)
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn initialize_sends_the_bytes_of_sc_hsm_tool() {
        // §4.3: sc-hsm-tool --initialize --so-pin 1234567890123456
        // --pin 648219 -K 1 -n 1 -s 1.
        let p = InitParams {
            options: 0x0001,
            user_pin: Some(b"648219".to_vec()),
            so_pin: [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56],
            pin_retries: 3,
            dkek_shares: Some(1),
            pka: Some((1, 1)),
            key_domains: None,
        };
        assert_eq!(
            p.encode().as_slice(),
            hex("80 02 00 01 81 06 36 34 38 32 31 39 82 08 12 34 56 78 90 12 34 56 91 01 03 92 01 01 93 02 01 01")
        );
        let mut l = Script(vec![(
            [hex("80 50 00 00 00 00 20"), p.encode().to_vec()].concat(),
            vec![0x63, 0xC7],
        )]);
        assert_eq!(
            initialize(&mut l, &p),
            Err(AdminError::WrongPin {
                reference: 0x88,
                tries_left: 7
            })
        );
        assert!(!format!("{p:?}").contains("648219"));
    }

    #[test]
    fn pin_commands_and_their_errors() {
        let mut l = Script(vec![
            (
                hex("00 24 00 81 0C 363438323139 313233343536"),
                hex("90 00"),
            ),
            (hex("00 20 00 81 06 303030303030"), hex("63 C2")),
            (hex("00 20 00 81 06 303030303030"), hex("69 83")),
            (
                hex("00 2C 00 81 0E 3537363231383830 363438323139"),
                hex("90 00"),
            ),
            (hex("00 2C 01 81 08 3537363231383830"), hex("69 86")),
        ]);
        change_pin(&mut l, 0x81, b"648219", b"123456").unwrap();
        assert_eq!(
            verify(&mut l, 0x81, b"000000"),
            Err(AdminError::WrongPin {
                reference: 0x81,
                tries_left: 2
            })
        );
        assert_eq!(
            verify(&mut l, 0x81, b"000000"),
            Err(AdminError::PinBlocked { reference: 0x81 })
        );
        reset_retry_counter(&mut l, b"57621880", Some(b"648219")).unwrap();
        let e = reset_retry_counter(&mut l, b"57621880", None).unwrap_err();
        assert_eq!(
            e,
            AdminError::Card {
                command: "RESET RETRY COUNTER",
                sw: StatusWord(0x6986)
            }
        );
        assert!(e.to_string().contains("6986 (command not allowed)"), "{e}");
    }

    fn request(car: &[u8], chr: &[u8], outer: &[u8]) -> Vec<u8> {
        let mut point = vec![4u8];
        point.extend_from_slice(&[7u8; 64]);
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, &point);
        let body = cvc::build_body(Some(car), &pk, chr, &[]);
        let c = cvc::build_cvc(&body, &[1u8; 64]);
        cvc::build_auth_request(&c, outer, &[2u8; 64])
    }

    fn cert(car: &[u8], chr: &[u8]) -> Vec<u8> {
        let pk = cvc::rsa_public_key(oid::RSA_V15_SHA256, &[0xC1; 16], &[3]);
        cvc::build_cvc(&cvc::build_body(Some(car), &pk, chr, &[]), &[9; 8])
    }

    #[test]
    fn pka_files_in_both_layouts() {
        let req = request(b"KEY00001", b"KEY00001", b"DEV00001");
        let dev = cert(b"DICA0001", b"DEV00001");
        let dica = cert(b"ROOT0001", b"DICA0001");
        let old = tlv::encode(0x30, &[req.clone(), dev.clone(), dica.clone()].concat());
        let f = PkaFile::parse(&old).unwrap();
        assert_eq!(f.request, tlv::parse_one(&req).unwrap().0.value);
        assert_eq!(f.device.as_deref(), Some(dev.as_slice()));
        assert_eq!(f.issuers, vec![dica.clone()]);
        assert_eq!(f.encode(), old);
        assert_eq!(f.chr().unwrap(), b"KEY00001");
        assert!(!f.self_signed());

        let mut new = tlv::encode(0x06, PKA_FILE_OID);
        new.extend(tlv::encode(0x61, &dica));
        new.extend(tlv::encode(0x62, &dev));
        new.extend(tlv::encode(0x63, &req));
        assert_eq!(PkaFile::parse(&tlv::encode(0x30, &new)).unwrap(), f);

        let own = request(b"ZZSELF00001", b"ZZSELF00001", b"ZZSELF00001");
        let g = PkaFile::parse(&tlv::encode(0x30, &own)).unwrap();
        assert!(g.self_signed());
        assert_eq!(PkaFile::parse(&own).unwrap(), g);
        assert!(PkaFile::parse(&[0x30, 0x02, 0x05, 0x00]).is_err());
    }

    #[test]
    fn registration_makes_the_device_known_first() {
        // §6.5: the DICA is known, the device certificate is not.
        let req = request(b"KEY00001", b"KEY00001", b"DEV00001");
        let dev = cert(b"DICA0001", b"DEV00001");
        let dica = cert(b"ROOT0001", b"DICA0001");
        let f = PkaFile {
            request: tlv::parse_one(&req).unwrap().0.value.to_vec(),
            device: Some(dev.clone()),
            issuers: vec![dica],
        };
        let dst = |n: &[u8]| {
            [
                hex("00 22 81 B6"),
                vec![n.len() as u8 + 2, 0x83, n.len() as u8],
                n.to_vec(),
            ]
            .concat()
        };
        let dev_content = tlv::parse_one(&dev).unwrap().0.value.to_vec();
        let mut l = Script(vec![
            (dst(b"DICA0001"), hex("90 00")),
            (dst(b"DEV00001"), hex("6A 88")),
            (dst(b"DICA0001"), hex("90 00")),
            (
                build_extended(0, 0x2A, 0, 0xBE, &dev_content, 0),
                hex("90 00"),
            ),
            (dst(b"DEV00001"), hex("90 00")),
            (
                build_extended(0x80, 0x54, 0, 0, &f.request, 4),
                hex("01 00 01 00 90 00"),
            ),
        ]);
        let mut said = Vec::new();
        let r = register(&mut l, &f, None, &mut |s| said.push(s)).unwrap();
        assert_eq!(r.status.missing, 0);
        assert_eq!(r.chr, b"KEY00001");
        assert_eq!(
            said,
            vec!["device certificate DEV00001: verified".to_string()]
        );
        assert!(l.0.is_empty());
    }

    #[test]
    fn fresh_chrs_avoid_the_device_name_and_taken_names() {
        let taken = vec![b"ESPICOHSMTR00002".to_vec()];
        assert_eq!(
            fresh_chr("ESPICOHSMTR00001", &taken, 1),
            b"ESPICOHSMTR00003"
        );
        assert_eq!(fresh_chr("ESPICOHSMTR00001", &[], 7), b"ESPICOHSMTR00007");
    }

    #[test]
    fn version_query_tells_whether_the_applet_is_selected() {
        let mut l = Script(vec![
            (hex("80 50 00 00"), hex("69 85")),
            (
                [
                    hex("00 A4 04 00 0B"),
                    picohsm_wire::codes::AID.to_vec(),
                    vec![0x00],
                ]
                .concat(),
                hex("62 0A 85 05 00 01 FF 06 06 8A 01 05 90 00"),
            ),
            (hex("80 50 00 00"), hex("00 10 00 00 00 06 06 90 00")),
        ]);
        let (v, selected) = ensure_selected(&mut l).unwrap();
        assert!(selected);
        assert_eq!((v.major, v.minor, v.free), (6, 6, 0x0010_0000));
    }
}
