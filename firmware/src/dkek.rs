//! Key domains, DKEK shares and the SmartCard-HSM key blob (docs/protocol.md §7.4, §7.5).
//!
//! Domain table `10A0`: per domain `total, imported, KCV(8)`; `FF` total =
//! not configured. The DKEK of domain `d` lives in `1090 + d`, sealed under
//! the MKEK once complete and a PIN session exists; before that (shares still
//! outstanding, or imported without a PIN, as sc-hsm-tool does) under the
//! device seal, so it is never in clear in flash and survives a restart.
//! The next PIN verification moves it under the MKEK.
//!
//! Blob: `KCV(8) ‖ type ‖ len‖algorithm OID ‖ len‖allowed algorithms ‖
//! len‖access conditions ‖ len‖key OID ‖ AES-256-CBC(KENC, IV 0) ‖
//! AES-CMAC(KMAC)`, lengths 2 bytes big-endian, KENC = SHA-256(DKEK ‖
//! 00000001), KMAC = SHA-256(DKEK ‖ 00000002), KCV = SHA-256(DKEK)[..8].
//! Plaintext: 8 random bytes, key size (bits), then length-prefixed values:
//! EC (type 0C): a, b, p, n, G, d, Q; RSA CRT (type 06): dp, dq, p, qinv,
//! q, n, e; RSA (type 05): d, n, e.

use aes::Aes256;
use alloc::vec::Vec;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use cmac::{Cmac, KeyInit, Mac};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::oid;
use picohsm_wire::sw::StatusWord;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::PrivateKey;
use crate::rng::CardRng;
use crate::seal::{self, Key32};
use crate::Card;
use picohsm_crypto::ec;
use picohsm_crypto::rsa::RsaKey;

/// Domain table.
pub const EF_DOMAINS: u16 = 0x10A0;
/// DKEK of domain 0 (`+ d` for domain d).
pub const EF_DKEK0: u16 = 0x1090;
/// Most key domains.
pub const MAX_DOMAINS: usize = 16;

const SEAL_MKEK: u8 = 1;
const SEAL_DEVICE: u8 = 2;

/// Blob key types.
pub const TYPE_RSA: u8 = 5;
/// RSA with CRT parameters.
pub const TYPE_RSA_CRT: u8 = 6;
/// EC key.
pub const TYPE_EC: u8 = 12;
/// AES key.
pub const TYPE_AES: u8 = 15;

/// State of one key domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Shares that make the DKEK (0xFF: not configured).
    pub total: u8,
    /// Shares imported so far.
    pub imported: u8,
    /// Key check value, zeros until complete.
    pub kcv: [u8; 8],
}

impl Domain {
    /// Whether the DKEK is complete and usable.
    pub fn complete(&self) -> bool {
        self.total != 0xFF && self.total > 0 && self.imported >= self.total
    }
    /// Status response: total, outstanding, KCV (docs/protocol.md §7.4).
    pub fn status(&self) -> Vec<u8> {
        picohsm_wire::cmd::dkek::DomainStatus {
            total: self.total,
            outstanding: self.total.saturating_sub(self.imported),
            kcv: self.kcv,
        }
        .encode()
    }
}

/// The domain table, or `6B00` if the device was never initialised.
pub fn domains(card: &Card) -> Result<Vec<Domain>, StatusWord> {
    let t = card.fs.get(EF_DOMAINS).ok_or(StatusWord::WRONG_PARAMS)?;
    Ok(t.chunks_exact(10)
        .map(|c| Domain {
            total: c[0],
            imported: c[1],
            kcv: c[2..10].try_into().unwrap_or([0; 8]),
        })
        .collect())
}

fn put_domains(card: &mut Card, d: &[Domain]) -> Result<(), StatusWord> {
    let mut v = Vec::with_capacity(d.len() * 10);
    for x in d {
        v.push(x.total);
        v.push(x.imported);
        v.extend_from_slice(&x.kcv);
    }
    card.fs.put(EF_DOMAINS, v)
}

/// Key check value of a DKEK.
pub fn kcv(dkek: &[u8; 32]) -> [u8; 8] {
    let h = Sha256::digest(dkek);
    let mut k = [0u8; 8];
    k.copy_from_slice(&h[..8]);
    k
}

fn device_seal(card: &Card) -> Key32 {
    seal::derive(card.otp.as_ref(), b"dkek pending seal", b"1090")
}

fn store_value(card: &mut Card, d: usize, value: &[u8; 32]) -> Result<(), StatusWord> {
    let fid = EF_DKEK0 + d as u16;
    let (kind, key) = match &card.session.mkek {
        Some(m) => (SEAL_MKEK, Zeroizing::new(**m)),
        None => (SEAL_DEVICE, device_seal(card)),
    };
    let mut rec = alloc::vec![kind];
    rec.extend(seal::seal(&key, &fid.to_be_bytes(), value, &mut *card.rng));
    card.fs.put(fid, rec)
}

fn load_value(card: &Card, d: usize) -> Result<Option<Key32>, StatusWord> {
    let fid = EF_DKEK0 + d as u16;
    let Some(rec) = card.fs.get(fid) else {
        return Ok(None);
    };
    let key = match rec.first() {
        Some(&SEAL_MKEK) => {
            Zeroizing::new(**card.session.mkek.as_ref().ok_or(StatusWord::EXEC_ERROR)?)
        }
        Some(&SEAL_DEVICE) => device_seal(card),
        _ => return Err(StatusWord::EXEC_ERROR),
    };
    let v = seal::open(&key, &fid.to_be_bytes(), &rec[1..]).ok_or(StatusWord::EXEC_ERROR)?;
    let arr: [u8; 32] = v
        .as_slice()
        .try_into()
        .map_err(|_| StatusWord::EXEC_ERROR)?;
    Ok(Some(Zeroizing::new(arr)))
}

/// Sets up the table at INITIALIZE: domain 0 with `shares` (none: no DKEK;
/// 0: a random DKEK made by the card), plus `extra` unconfigured domains.
pub fn initialize(card: &mut Card, shares: Option<u8>, extra: u8) -> Result<(), StatusWord> {
    let mut table = Vec::new();
    let d0 = match shares {
        None => Domain {
            total: 0,
            imported: 0,
            kcv: [0; 8],
        },
        Some(0) => {
            let mut k = Zeroizing::new([0u8; 32]);
            card.rng.fill(k.as_mut());
            store_value(card, 0, &k)?;
            Domain {
                total: 1,
                imported: 1,
                kcv: kcv(&k),
            }
        }
        Some(n) => Domain {
            total: n,
            imported: 0,
            kcv: [0; 8],
        },
    };
    table.push(d0);
    for _ in 0..(extra as usize).min(MAX_DOMAINS - 1) {
        table.push(Domain {
            total: 0xFF,
            imported: 0xFF,
            kcv: [0; 8],
        });
    }
    put_domains(card, &table)
}

/// Adds a share to domain `d` (XOR into the DKEK).
pub fn import_share(card: &mut Card, d: usize, share: &[u8; 32]) -> Result<Domain, StatusWord> {
    let mut table = domains(card)?;
    let dom = *table.get(d).ok_or(StatusWord::WRONG_P1P2)?;
    if dom.total == 0xFF || dom.imported >= dom.total {
        return Err(StatusWord::NOT_ALLOWED);
    }
    // The accumulator of an incomplete DKEK is always device-sealed.
    let mut acc = load_value(card, d)?.unwrap_or_else(|| Zeroizing::new([0u8; 32]));
    for (a, s) in acc.iter_mut().zip(share) {
        *a ^= s;
    }
    let mut dom = dom;
    dom.imported += 1;
    if dom.complete() {
        dom.kcv = kcv(&acc);
        store_value(card, d, &acc)?;
    } else {
        let mkek = card.session.mkek.take();
        let r = store_value(card, d, &acc);
        card.session.mkek = mkek;
        r?;
    }
    table[d] = dom;
    put_domains(card, &table)?;
    Ok(dom)
}

/// Moves complete DKEKs imported without a PIN session under the MKEK.
pub fn finish_pending(card: &mut Card) -> Result<(), StatusWord> {
    let Ok(table) = domains(card) else {
        return Ok(());
    };
    for (d, dom) in table.iter().enumerate() {
        let fid = EF_DKEK0 + d as u16;
        if dom.complete() && card.fs.get(fid).and_then(|r| r.first().copied()) == Some(SEAL_DEVICE)
        {
            if let Some(v) = load_value(card, d)? {
                store_value(card, d, &v)?;
            }
        }
    }
    Ok(())
}

/// The complete DKEK of domain `d`: `6A88` if it is not complete, `6400`
/// if no PIN session has unlocked it.
pub fn dkek(card: &Card, d: usize) -> Result<Key32, StatusWord> {
    let table = domains(card).map_err(|_| StatusWord::REF_NOT_FOUND)?;
    match table.get(d) {
        Some(dom) if dom.complete() => load_value(card, d)?.ok_or(StatusWord::REF_NOT_FOUND),
        _ => Err(StatusWord::REF_NOT_FOUND),
    }
}

/// Deletes the DKEK value of a domain.
pub fn clear_value(card: &mut Card, d: usize) {
    card.fs.remove(EF_DKEK0 + d as u16);
}

/// Writes a table entry.
pub fn set_domain(card: &mut Card, d: usize, dom: Domain) -> Result<(), StatusWord> {
    let mut table = domains(card)?;
    *table.get_mut(d).ok_or(StatusWord::WRONG_P1P2)? = dom;
    put_domains(card, &table)
}

fn derived(dkek: &[u8; 32], counter: u8) -> Key32 {
    let mut h = Sha256::new();
    h.update(dkek);
    h.update([0, 0, 0, counter]);
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&h.finalize());
    k
}

fn cmac(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
    let mut m = <Cmac<Aes256> as KeyInit>::new_from_slice(key).expect("32-byte key");
    m.update(data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&m.finalize().into_bytes());
    out
}

fn push_lv(v: &mut Vec<u8>, x: &[u8]) {
    v.extend_from_slice(&(x.len() as u16).to_be_bytes());
    v.extend_from_slice(x);
}

fn take_lv<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    if b.len() < 2 {
        return None;
    }
    let n = u16::from_be_bytes([b[0], b[1]]) as usize;
    let v = b.get(2..2 + n)?;
    *b = &b[2 + n..];
    Some(v)
}

/// Wraps `key` under `dkek` into a key blob carrying `algorithms`.
pub fn wrap(
    dkek: &[u8; 32],
    key: &PrivateKey,
    algorithms: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, StatusWord> {
    let mut plain = Zeroizing::new(Vec::with_capacity(1200));
    let mut rnd = [0u8; 8];
    rng.fill(&mut rnd);
    plain.extend_from_slice(&rnd);
    let (kind, alg_oid) = match key {
        PrivateKey::Ec { curve, d } => {
            let q = ec::public_key(*curve, d).map_err(|_| StatusWord::EXEC_ERROR)?;
            plain.extend_from_slice(&((curve.field_size() * 8) as u16).to_be_bytes());
            for x in [
                curve.a(),
                curve.b(),
                curve.prime(),
                curve.order(),
                curve.generator(),
                &d[..],
                &q[..],
            ] {
                push_lv(&mut plain, x);
            }
            (TYPE_EC, oid::ECDSA_SHA256)
        }
        PrivateKey::Rsa(k) => {
            let c = k.components();
            plain.extend_from_slice(&(k.bits() as u16).to_be_bytes());
            for x in [&c.dp, &c.dq, &c.p, &c.qinv, &c.q, &c.n, &c.e] {
                push_lv(&mut plain, x);
            }
            (TYPE_RSA_CRT, oid::RSA_V15_SHA256)
        }
    };
    if plain.len() % 16 != 0 {
        plain.push(0x80);
        while plain.len() % 16 != 0 {
            plain.push(0);
        }
    }
    let kenc = derived(dkek, 1);
    let enc = cbc::Encryptor::<Aes256>::new_from_slices(kenc.as_ref(), &[0u8; 16])
        .map_err(|_| StatusWord::EXEC_ERROR)?
        .encrypt_padded_vec::<cbc::cipher::block_padding::NoPadding>(&plain);
    let mut blob = Vec::with_capacity(enc.len() + 64);
    blob.extend_from_slice(&kcv(dkek));
    blob.push(kind);
    push_lv(&mut blob, alg_oid);
    push_lv(&mut blob, algorithms);
    push_lv(&mut blob, &[]);
    push_lv(&mut blob, &[]);
    blob.extend_from_slice(&enc);
    let mac = cmac(&derived(dkek, 2), &blob);
    blob.extend_from_slice(&mac);
    Ok(blob)
}

/// Why a blob was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapError {
    /// The KCV names another DKEK.
    WrongDkek,
    /// Malformed, altered (MAC) or inconsistent blob.
    Invalid,
    /// A key type this card does not store (AES).
    Unsupported,
}

/// The blob's key type byte, if the blob is long enough to have one.
pub fn blob_type(blob: &[u8]) -> Option<u8> {
    blob.get(8).copied()
}

/// Unwraps a blob with `dkek`: the key and its allowed-algorithm list.
pub fn unwrap(dkek: &[u8; 32], blob: &[u8]) -> Result<(PrivateKey, Vec<u8>), UnwrapError> {
    if blob.len() < 8 + 1 + 8 + 16 + 16 {
        return Err(UnwrapError::Invalid);
    }
    if blob[..8] != kcv(dkek) {
        return Err(UnwrapError::WrongDkek);
    }
    let (body, mac) = blob.split_at(blob.len() - 16);
    let want = cmac(&derived(dkek, 2), body);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], mac)) {
        return Err(UnwrapError::Invalid);
    }
    let kind = body[8];
    let mut rest = &body[9..];
    let alg = take_lv(&mut rest).ok_or(UnwrapError::Invalid)?;
    let algorithms = take_lv(&mut rest).ok_or(UnwrapError::Invalid)?.to_vec();
    take_lv(&mut rest).ok_or(UnwrapError::Invalid)?;
    take_lv(&mut rest).ok_or(UnwrapError::Invalid)?;
    if rest.is_empty() || rest.len() % 16 != 0 {
        return Err(UnwrapError::Invalid);
    }
    let kenc = derived(dkek, 1);
    let plain = Zeroizing::new(
        cbc::Decryptor::<Aes256>::new_from_slices(kenc.as_ref(), &[0u8; 16])
            .map_err(|_| UnwrapError::Invalid)?
            .decrypt_padded_vec::<cbc::cipher::block_padding::NoPadding>(rest)
            .map_err(|_| UnwrapError::Invalid)?,
    );
    let mut p: &[u8] = plain.get(10..).ok_or(UnwrapError::Invalid)?;
    let mut next = || take_lv(&mut p).ok_or(UnwrapError::Invalid);
    let key = match kind {
        TYPE_EC => {
            if !oid::is_ec(alg) {
                return Err(UnwrapError::Invalid);
            }
            let (_a, _b, prime, _n, _g, d) = (next()?, next()?, next()?, next()?, next()?, next()?);
            let curve = Curve::from_prime(prime).ok_or(UnwrapError::Unsupported)?;
            let mut scalar = Zeroizing::new(alloc::vec![0u8; curve.field_size()]);
            let d = strip(d);
            if d.len() > scalar.len() {
                return Err(UnwrapError::Invalid);
            }
            let off = scalar.len() - d.len();
            scalar[off..].copy_from_slice(d);
            ec::public_key(curve, &scalar).map_err(|_| UnwrapError::Invalid)?;
            PrivateKey::Ec { curve, d: scalar }
        }
        TYPE_RSA_CRT => {
            if !oid::is_rsa(alg) {
                return Err(UnwrapError::Invalid);
            }
            let (_dp, _dq, pp, _qinv, q, n, e) = (
                next()?,
                next()?,
                next()?,
                next()?,
                next()?,
                next()?,
                next()?,
            );
            PrivateKey::Rsa(alloc::boxed::Box::new(
                RsaKey::from_primes(pp, q, e, n).map_err(|_| UnwrapError::Invalid)?,
            ))
        }
        TYPE_RSA => {
            if !oid::is_rsa(alg) {
                return Err(UnwrapError::Invalid);
            }
            let (d, n, e) = (next()?, next()?, next()?);
            PrivateKey::Rsa(alloc::boxed::Box::new(
                RsaKey::from_components(n, e, d, &[], &[]).map_err(|_| UnwrapError::Invalid)?,
            ))
        }
        TYPE_AES => return Err(UnwrapError::Unsupported),
        _ => return Err(UnwrapError::Invalid),
    };
    Ok((key, algorithms))
}

fn strip(b: &[u8]) -> &[u8] {
    let z = b.iter().take_while(|x| **x == 0).count();
    &b[z..]
}
