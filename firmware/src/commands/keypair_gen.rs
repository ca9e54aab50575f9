//! GENERATE ASYMMETRIC KEY PAIR (INS 46, docs/protocol.md §7.1): P1 = key id, data = the CVC
//! body template (and optional metadata `90`/`91`/`92`); answers the
//! authenticated request, and stores the key (`CCid`, MKEK-sealed), a
//! default PrKD (`C4id`) and the request (`CEid`).
//!
//! Every key gets its own CHR: the template's CHR if no other key on the
//! card has it, else the device serial with a sequence number that never
//! repeats on this device (OpenSC names every key `<serial>00001`, which
//! would make PKA keys indistinguishable). The CAR is the template's, or the
//! CHR when the template has none, so a request without one is
//! self-describing.

use alloc::format;
use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::fid;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, AuthRequest};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use crate::apdu::Response;
use crate::commands::require_auth;
use crate::keys::{self, KeyMeta, PrivateKey};
use crate::rng::Adapter;
use crate::{request, Card};
use picohsm_crypto::{ec, rsa::RsaKey};

/// Sequence counter for generated CHRs; survives re-initialisation.
pub const EF_CHR_SEQUENCE: u16 = 0x10F0;

struct Template<'a> {
    car: Option<&'a [u8]>,
    chr: Option<&'a [u8]>,
    public_key: &'a [u8],
    meta: Vec<u8>,
}

fn parse(data: &[u8]) -> Result<Template<'_>, StatusWord> {
    let bad = |_| StatusWord::WRONG_DATA;
    let mut items = tlv::parse_all(data).map_err(bad)?;
    // Accept the body wrapped as 7F4E too.
    if let Some(pos) = items.iter().position(|t| t.tag == cvc::TAG_BODY) {
        let body = items.remove(pos);
        let inner = tlv::parse_all(body.value).map_err(bad)?;
        items.splice(pos..pos, inner);
    }
    let mut t = Template {
        car: None,
        chr: None,
        public_key: &[],
        meta: Vec::new(),
    };
    let mut pk = None;
    for i in items {
        match i.tag {
            cvc::TAG_CAR => t.car = Some(i.value),
            cvc::TAG_CHR => t.chr = Some(i.value),
            cvc::TAG_PUBKEY => pk = Some(i.value),
            0x90..=0x93 => t.meta.extend_from_slice(i.raw),
            _ => {}
        }
    }
    t.public_key = pk.ok_or(StatusWord::WRONG_DATA)?;
    for name in [t.car, t.chr].into_iter().flatten() {
        if name.is_empty() || name.len() > 16 {
            return Err(StatusWord::WRONG_DATA);
        }
    }
    Ok(t)
}

fn chr_in_use(card: &Card, chr: &[u8]) -> bool {
    card.fs
        .fids()
        .filter(|f| (f >> 8) as u8 == fid::EE_CERT_PREFIX)
        .any(|f| {
            card.fs
                .get(f)
                .and_then(|c| AuthRequest::parse(c).ok().map(|r| r.cert.chr == chr))
                .unwrap_or(false)
        })
}

/// A CHR no key on this card has: device serial + sequence number.
pub fn fresh_chr(card: &mut Card) -> Result<Vec<u8>, StatusWord> {
    let name = card.device_name();
    let serial = &name[..name.len().saturating_sub(5)];
    let mut seq = card
        .fs
        .get(EF_CHR_SEQUENCE)
        .filter(|s| s.len() == 4)
        .map_or(1, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    loop {
        let mut chr = Vec::from(serial);
        chr.extend_from_slice(format!("{:05}", seq % 100_000).as_bytes());
        seq += 1;
        if !chr_in_use(card, &chr) {
            card.fs.put(EF_CHR_SEQUENCE, seq.to_be_bytes().to_vec())?;
            return Ok(chr);
        }
    }
}

/// Makes a key from the `7F49` template.
fn generate(
    card: &mut Card,
    public_key: &[u8],
    algorithm: &[u8],
) -> Result<PrivateKey, StatusWord> {
    let field = |tag| {
        tlv::find(public_key, tag)
            .map_err(|_| StatusWord::WRONG_DATA)
            .map(|t| t.map(|t| t.value))
    };
    if oid::is_ec(algorithm) {
        let prime = field(0x81)?.ok_or(StatusWord::WRONG_DATA)?;
        let curve = Curve::from_prime(prime).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
        let (d, _) = ec::generate(curve, &mut Adapter(&mut *card.rng));
        Ok(PrivateKey::Ec { curve, d })
    } else if oid::is_rsa(algorithm) {
        let bits = match field(0x02)? {
            None => 2048,
            Some(b) if !b.is_empty() && b.len() <= 2 => {
                b.iter().fold(0usize, |a, x| (a << 8) | *x as usize)
            }
            Some(_) => return Err(StatusWord::WRONG_DATA),
        };
        if !(1024..=4096).contains(&bits) || bits % 8 != 0 {
            return Err(StatusWord::FUNC_NOT_SUPPORTED);
        }
        let e = field(0x82)?.unwrap_or(&[0x01, 0x00, 0x01]);
        RsaKey::generate(bits, e, &mut Adapter(&mut *card.rng))
            .map(|k| PrivateKey::Rsa(alloc::boxed::Box::new(k)))
            .map_err(|_| StatusWord::WRONG_DATA)
    } else {
        Err(StatusWord::FUNC_NOT_SUPPORTED)
    }
}

/// Runs GENERATE ASYMMETRIC KEY PAIR.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_auth(card)?;
    let id = cmd.p1;
    if id == 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if card.session.mkek.is_none() {
        return Err(StatusWord::EXEC_ERROR);
    }
    let t = parse(cmd.data)?;
    let meta = KeyMeta::parse(&t.meta)?;
    let algorithm = tlv::find(t.public_key, 0x06)
        .map_err(|_| StatusWord::WRONG_DATA)?
        .ok_or(StatusWord::WRONG_DATA)?
        .value;
    let key = generate(card, t.public_key, algorithm)?;
    let chr = match t.chr {
        Some(c) if !chr_in_use(card, c) => c.to_vec(),
        _ => fresh_chr(card)?,
    };
    let car = t.car.map_or_else(|| chr.clone(), |c| c.to_vec());
    let req = request::build(card, &key, algorithm, &car, &chr)?;
    keys::store(card, id, &key, &meta, false)?;
    card.fs
        .put(0xC400 | id as u16, keys::default_prkd(&key, id))?;
    card.fs.put(0xCE00 | id as u16, req.clone())?;
    Ok(req)
}
