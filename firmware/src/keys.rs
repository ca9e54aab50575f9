//! Private keys at rest (`CCxx`): metadata in clear, key material sealed.
//!
//! Record layout: `01 | seal | meta length (u16) | metadata TLVs | sealed key`.
//! `seal` = 1: under the MKEK (every user key; needs a PIN session);
//! `seal` = 2: under the device seal key from OTP (only the device key
//! `CC00`, which must work before any PIN exists). Metadata TLVs are those of
//! docs/protocol.md §7.1: `90` use counter, `91` allowed algorithms, `92` key domain.
//! The sealed plaintext is `0C curve scalar` for EC, `05 pkcs1-der` for RSA.

use alloc::boxed::Box;
use alloc::vec::Vec;
use picohsm_wire::curve::Curve;
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use zeroize::Zeroizing;

use crate::seal::{self, Key32};
use crate::Card;
use picohsm_crypto::rsa::RsaKey;

const SEAL_MKEK: u8 = 1;
const SEAL_DEVICE: u8 = 2;
const KIND_EC: u8 = 0x0C;
const KIND_RSA: u8 = 0x05;

/// A private key in RAM.
pub enum PrivateKey {
    /// EC private scalar, field-size big-endian.
    Ec {
        /// The curve.
        curve: Curve,
        /// The scalar.
        d: Zeroizing<Vec<u8>>,
    },
    /// RSA key (boxed: it is far larger than an EC scalar).
    Rsa(Box<RsaKey>),
}

impl PrivateKey {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::new());
        match self {
            PrivateKey::Ec { curve, d } => {
                v.push(KIND_EC);
                v.push(curve_code(*curve));
                v.extend_from_slice(d);
            }
            PrivateKey::Rsa(k) => {
                v.push(KIND_RSA);
                v.extend_from_slice(&k.to_bytes());
            }
        }
        v
    }

    fn decode(b: &[u8]) -> Option<Self> {
        match *b.first()? {
            KIND_EC => Some(PrivateKey::Ec {
                curve: curve_from_code(*b.get(1)?)?,
                d: Zeroizing::new(b.get(2..)?.to_vec()),
            }),
            KIND_RSA => RsaKey::from_bytes(&b[1..])
                .ok()
                .map(|k| PrivateKey::Rsa(Box::new(k))),
            _ => None,
        }
    }

    /// The key size in bits (curve size or modulus size).
    pub fn bits(&self) -> usize {
        match self {
            PrivateKey::Ec { curve, .. } => curve.bits(),
            PrivateKey::Rsa(k) => k.bits(),
        }
    }

    /// Whether this is an EC key.
    pub fn is_ec(&self) -> bool {
        matches!(self, PrivateKey::Ec { .. })
    }
}

fn curve_code(c: Curve) -> u8 {
    Curve::all().iter().position(|x| *x == c).unwrap_or(0) as u8 + 1
}

fn curve_from_code(code: u8) -> Option<Curve> {
    Curve::all().get((code as usize).checked_sub(1)?).copied()
}

/// Clear-text attributes of a key (docs/protocol.md §7.1 metadata tags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMeta {
    /// `90`: remaining uses, if the key counts them.
    pub use_counter: Option<u32>,
    /// `91`: the algorithm bytes the key may be used with, if restricted.
    pub algorithms: Option<Vec<u8>>,
    /// `92`: the key domain (DKEK) the key belongs to.
    pub domain: u8,
}

impl KeyMeta {
    /// Parses metadata TLVs; unknown tags are ignored.
    pub fn parse(b: &[u8]) -> Result<Self, StatusWord> {
        let mut m = KeyMeta::default();
        for t in tlv::iter(b) {
            let t = t.map_err(|_| StatusWord::WRONG_DATA)?;
            match t.tag {
                0x90 => {
                    let mut n = 0u32;
                    if t.value.is_empty() || t.value.len() > 4 {
                        return Err(StatusWord::WRONG_DATA);
                    }
                    for x in t.value {
                        n = (n << 8) | *x as u32;
                    }
                    m.use_counter = Some(n);
                }
                0x91 => m.algorithms = Some(t.value.to_vec()),
                0x92 if t.value.len() == 1 => m.domain = t.value[0],
                0x92 => return Err(StatusWord::WRONG_DATA),
                _ => {}
            }
        }
        Ok(m)
    }

    /// Encodes the metadata TLVs.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(n) = self.use_counter {
            tlv::push(&mut v, 0x90, &n.to_be_bytes());
        }
        if let Some(a) = &self.algorithms {
            tlv::push(&mut v, 0x91, a);
        }
        tlv::push(&mut v, 0x92, &[self.domain]);
        v
    }

    /// Whether the key may be used with `algo` (`6985` otherwise, docs/protocol.md §7.2).
    pub fn allows(&self, algo: u8) -> bool {
        self.algorithms.as_ref().is_none_or(|a| a.contains(&algo))
    }
}

/// FID of key `id`.
pub fn key_fid(id: u8) -> u16 {
    0xCC00 | id as u16
}

fn device_seal_key(card: &Card) -> Key32 {
    seal::derive(card.otp.as_ref(), b"device key seal", b"CC00")
}

/// The PrKD the card writes for key `id` it generated or unwrapped
/// (docs/protocol.md §7.1): labelled with the id in decimal, as upstream.
pub fn default_prkd(key: &PrivateKey, id: u8) -> Vec<u8> {
    use picohsm_wire::pkcs15::{card_default_prkd, KeyKind};
    let kind = if key.is_ec() {
        KeyKind::Ec
    } else {
        KeyKind::Rsa
    };
    card_default_prkd(kind, alloc::format!("{id}").as_bytes(), &[id], key.bits())
}

/// Stores a key under the MKEK (or the device seal for id 0 when `device`).
/// Not committed.
pub fn store(
    card: &mut Card,
    id: u8,
    key: &PrivateKey,
    meta: &KeyMeta,
    device: bool,
) -> Result<(), StatusWord> {
    let fid = key_fid(id);
    let (kind, k) = if device {
        (SEAL_DEVICE, device_seal_key(card))
    } else {
        let m = card.session.mkek.as_ref().ok_or(StatusWord::EXEC_ERROR)?;
        (SEAL_MKEK, Zeroizing::new(**m))
    };
    let meta_b = meta.encode();
    let mut rec = Vec::with_capacity(meta_b.len() + 600);
    rec.extend_from_slice(&[1, kind]);
    rec.extend_from_slice(&(meta_b.len() as u16).to_be_bytes());
    rec.extend_from_slice(&meta_b);
    let plain = key.encode();
    rec.extend_from_slice(&seal::seal(&k, &fid.to_be_bytes(), &plain, &mut *card.rng));
    card.fs.put(fid, rec)
}

fn split(rec: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    if rec.len() < 4 || rec[0] != 1 {
        return None;
    }
    let ml = u16::from_be_bytes([rec[2], rec[3]]) as usize;
    let meta = rec.get(4..4 + ml)?;
    Some((rec[1], meta, &rec[4 + ml..]))
}

/// Reads the metadata of key `id` (`6A82` if there is no such key).
pub fn meta(card: &Card, id: u8) -> Result<KeyMeta, StatusWord> {
    let rec = card.fs.get(key_fid(id)).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let (_, meta, _) = split(rec).ok_or(StatusWord::EXEC_ERROR)?;
    KeyMeta::parse(meta)
}

/// Rewrites the metadata of key `id`, keeping its sealed material. Not committed.
pub fn set_meta(card: &mut Card, id: u8, meta: &KeyMeta) -> Result<(), StatusWord> {
    let fid = key_fid(id);
    let rec = card.fs.get(fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let (kind, _, sealed) = split(rec).ok_or(StatusWord::EXEC_ERROR)?;
    let m = meta.encode();
    let mut v = Vec::with_capacity(rec.len() + 8);
    v.extend_from_slice(&[1, kind]);
    v.extend_from_slice(&(m.len() as u16).to_be_bytes());
    v.extend_from_slice(&m);
    v.extend_from_slice(sealed);
    card.fs.put(fid, v)
}

/// Loads key `id`: `6A82` if absent; `6400` if it is sealed under the MKEK
/// and no PIN session has unlocked it (docs/protocol.md §5.4), or if the record is damaged.
pub fn load(card: &Card, id: u8) -> Result<(PrivateKey, KeyMeta), StatusWord> {
    let fid = key_fid(id);
    let rec = card.fs.get(fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let (kind, meta, sealed) = split(rec).ok_or(StatusWord::EXEC_ERROR)?;
    let k: Key32 = match kind {
        SEAL_DEVICE if id == 0 => device_seal_key(card),
        SEAL_MKEK => {
            let m = card.session.mkek.as_ref().ok_or(StatusWord::EXEC_ERROR)?;
            Zeroizing::new(**m)
        }
        _ => return Err(StatusWord::EXEC_ERROR),
    };
    let plain = seal::open(&k, &fid.to_be_bytes(), sealed).ok_or(StatusWord::EXEC_ERROR)?;
    let key = PrivateKey::decode(&plain).ok_or(StatusWord::EXEC_ERROR)?;
    Ok((key, KeyMeta::parse(meta)?))
}
