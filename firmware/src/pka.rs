//! Public Key Authentication state and checks (docs/protocol.md §6).
//!
//! Persistent: EF `10C0` = `n, missing, m, 0`; EF `10D0 + i` = the
//! registered key of slot i (content of its authenticated request, starting
//! at `7F21`). Volatile (in [`Session`](crate::session::Session)): the
//! challenge, per-slot status, the selected slot and issuer.
//!
//! Two deliberate improvements over the upstream firmware: the curve of a
//! registered EC key is taken from the explicit domain parameters in its own
//! request (so OpenSC's placeholder CAR "UTCA00001" does not break the login),
//! and a request is only registered if its inner self-signature verifies.
//!
//! Our firmware's further differences (docs/protocol.md §6.3): a public key is
//! registered once whatever its CHR ([`key_identity`]), and once m keys are
//! registered a further registration needs the quorum ([`registered`]).

use alloc::vec::Vec;
use picohsm_wire::codes::fid;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, AuthRequest, Cvc};
use picohsm_wire::sw::StatusWord;

use crate::commands::initialize::{EF_PKA, EF_PKA_KEY0};
use crate::request::oid_hash;
use crate::session::MAX_PKA_KEYS;
use crate::Card;
use picohsm_crypto::{ec, hash::HashAlg, rsa};

/// PKA parameters of EF 10C0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Slots (registered keys in total).
    pub n: u8,
    /// Keys required to authenticate.
    pub m: u8,
}

/// The parameters, or `None` when PKA is off.
pub fn params(card: &Card) -> Option<Params> {
    let p = card.fs.get(EF_PKA)?;
    (p.len() >= 3 && p[0] > 0).then(|| Params {
        n: p[0].min(MAX_PKA_KEYS as u8),
        m: p[2],
    })
}

/// The registered request of a slot.
pub fn slot(card: &Card, i: usize) -> Option<&[u8]> {
    card.fs
        .get(EF_PKA_KEY0 + i as u16)
        .filter(|v| !v.is_empty())
}

/// Status bytes: n, missing, m, authenticated (docs/protocol.md §6.3).
pub fn status(card: &Card, p: Params) -> Vec<u8> {
    let registered = (0..p.n as usize)
        .filter(|i| slot(card, *i).is_some())
        .count() as u8;
    let authenticated = card.session.pka_status.iter().filter(|s| **s).count() as u8;
    picohsm_wire::cmd::pka::Status {
        total: p.n,
        missing: p.n - registered,
        required: p.m,
        authenticated,
    }
    .encode()
}

/// How many slots hold a registered key.
pub fn registered(card: &Card, p: Params) -> usize {
    (0..p.n as usize)
        .filter(|i| slot(card, *i).is_some())
        .count()
}

/// What makes two registered requests the same key, whatever their CHRs
/// and encodings: for an EC key its curve (prime) and the x-coordinate of
/// its point (so a compressed and an uncompressed encoding of one point
/// match, and so do Q and -Q, whose private keys are d and n - d: one holder
/// either way); for an RSA key its modulus without leading zeros (the same
/// modulus with another exponent is the same holder). `None` if the
/// request does not parse or has no key.
pub fn key_identity(request: &[u8]) -> Option<Vec<u8>> {
    let req = AuthRequest::parse(request).ok()?;
    let cert = &req.cert;
    let mut id = Vec::new();
    if oid::is_ec(cert.algorithm) {
        let prime = strip_zeros(cert.key_field(0x81)?);
        let q = cert.key_field(0x86)?;
        let x = match q.first()? {
            0x04 if q.len() % 2 == 1 => &q[1..1 + (q.len() - 1) / 2],
            0x02 | 0x03 => &q[1..],
            _ => q,
        };
        id.push(b'E');
        id.extend_from_slice(&(prime.len() as u16).to_be_bytes());
        id.extend_from_slice(prime);
        id.extend_from_slice(strip_zeros(x));
    } else if oid::is_rsa(cert.algorithm) {
        id.push(b'R');
        id.extend_from_slice(strip_zeros(cert.key_field(0x81)?));
    } else {
        return None;
    }
    Some(id)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let z = b.iter().take_while(|x| **x == 0).count();
    &b[z..]
}

/// Stores `request` in slot `i` and updates the missing count. Not committed.
pub fn store_slot(card: &mut Card, p: Params, i: usize, request: &[u8]) -> Result<(), StatusWord> {
    card.fs.put(EF_PKA_KEY0 + i as u16, request.to_vec())?;
    let registered = (0..p.n as usize)
        .filter(|i| slot(card, *i).is_some())
        .count() as u8;
    card.fs
        .put(EF_PKA, alloc::vec![p.n, p.n - registered, p.m, 0])
}

/// Every CV certificate the card knows as an issuer: EF 2F02, `CAxx`, and
/// those PSO VERIFY CERTIFICATE verified in this card session.
pub fn puk_store(card: &Card) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(chain) = card.fs.get(fid::EF_DEVAUT) {
        if let Ok(certs) = cvc::parse_chain(chain) {
            out.extend(certs.iter().map(|c| c.raw.to_vec()));
        }
    }
    for f in card.fs.fids() {
        if (f >> 8) as u8 == fid::CA_CERT_PREFIX {
            if let Some(c) = card.fs.get(f).filter(|c| Cvc::parse(c).is_ok()) {
                out.push(c.to_vec());
            }
        }
    }
    out.extend(card.session.verified_certs.iter().cloned());
    out
}

/// The certificate in the PUK store whose CHR is `chr`.
pub fn find_issuer(card: &Card, chr: &[u8]) -> Option<Vec<u8>> {
    puk_store(card)
        .into_iter()
        .find(|c| Cvc::parse(c).is_ok_and(|(c, _)| c.chr == chr))
}

/// The curve of an EC key in a certificate: from its own prime if present,
/// else from its issuers, walking CAR → CHR through the PUK store (docs/protocol.md §6.4).
pub fn resolve_curve(card: &Card, cert: &Cvc<'_>) -> Option<Curve> {
    if let Some(p) = cert.key_field(0x81) {
        return Curve::from_prime(p);
    }
    let mut car = cert.car?.to_vec();
    for _ in 0..8 {
        let issuer = find_issuer(card, &car)?;
        let (c, _) = Cvc::parse(&issuer).ok()?;
        if let Some(p) = c.key_field(0x81) {
            return Curve::from_prime(p);
        }
        if c.car == Some(c.chr) {
            return None;
        }
        car = c.car?.to_vec();
    }
    None
}

/// Verifies a CVC-style signature (`r‖s` for EC, PKCS#1 v1.5 or PSS for
/// RSA per the OID) over `data` with the public key of `key_cert`; `curve`
/// is the curve of an EC key.
pub fn verify(key_cert: &Cvc<'_>, curve: Option<Curve>, data: &[u8], signature: &[u8]) -> bool {
    let Some(h) = oid_hash(key_cert.algorithm) else {
        return false;
    };
    let digest = h.digest(data);
    verify_digest(key_cert, curve, h, &digest, signature)
}

/// As [`verify`], over a digest made with `h`.
pub fn verify_digest(
    key_cert: &Cvc<'_>,
    curve: Option<Curve>,
    h: HashAlg,
    digest: &[u8],
    signature: &[u8],
) -> bool {
    if oid::is_ec(key_cert.algorithm) {
        match (curve, key_cert.key_field(0x86)) {
            (Some(c), Some(q)) => ec::verify_prehash(c, q, digest, signature),
            _ => false,
        }
    } else if oid::is_rsa(key_cert.algorithm) {
        let (Some(n), Some(e)) = (key_cert.key_field(0x81), key_cert.key_field(0x82)) else {
            return false;
        };
        let pss = matches!(key_cert.algorithm.last(), Some(3 | 4 | 6));
        if pss {
            rsa::verify_pss(n, e, h, digest, signature)
        } else {
            rsa::verify_pkcs1v15(n, e, h, digest, signature)
        }
    } else {
        false
    }
}

/// Checks a request offered for registration: it parses (`6A80`), its key
/// is of a supported kind (`6A81`) and its inner self-signature verifies
/// (`6984`). Returns the inner CHR.
pub fn check_request(content: &[u8]) -> Result<Vec<u8>, StatusWord> {
    let req = AuthRequest::parse(content).map_err(|_| StatusWord::WRONG_DATA)?;
    let cert = &req.cert;
    let curve = if oid::is_ec(cert.algorithm) {
        let p = cert.key_field(0x81).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
        Some(Curve::from_prime(p).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?)
    } else if oid::is_rsa(cert.algorithm) {
        None
    } else {
        return Err(StatusWord::FUNC_NOT_SUPPORTED);
    };
    if oid_hash(cert.algorithm).is_none() {
        return Err(StatusWord::FUNC_NOT_SUPPORTED);
    }
    if !verify(cert, curve, cert.body, cert.signature) {
        return Err(StatusWord::DATA_INVALID);
    }
    Ok(cert.chr.to_vec())
}

/// Verifies an EXTERNAL AUTHENTICATE signature by the key of `slot`:
/// over SHA-256(device name ‖ challenge), `r‖s` for EC keys (curve from the
/// request's own domain parameters), PKCS#1 v1.5 for RSA keys.
pub fn verify_login(
    request: &[u8],
    device_name: &[u8],
    challenge: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(req) = AuthRequest::parse(request) else {
        return false;
    };
    let cert = &req.cert;
    let mut t = Vec::with_capacity(device_name.len() + challenge.len());
    t.extend_from_slice(device_name);
    t.extend_from_slice(challenge);
    let digest = HashAlg::Sha256.digest(&t);
    if oid::is_ec(cert.algorithm) {
        let Some(curve) = cert.key_field(0x81).and_then(Curve::from_prime) else {
            return false;
        };
        let Some(q) = cert.key_field(0x86) else {
            return false;
        };
        signature.len() == 2 * curve.field_size()
            && ec::verify_prehash(curve, q, &digest, signature)
    } else if oid::is_rsa(cert.algorithm) {
        let (Some(n), Some(e)) = (cert.key_field(0x81), cert.key_field(0x82)) else {
            return false;
        };
        rsa::verify_pkcs1v15(n, e, HashAlg::Sha256, &digest, signature)
    } else {
        false
    }
}
