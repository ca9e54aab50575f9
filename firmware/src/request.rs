//! Authenticated CV requests for keys the card holds (docs/protocol.md §6.2, §7.1): the
//! public key with its own signature inside, and the device key's signature
//! outside, so a request says which key, and which device made it.

use alloc::vec::Vec;
use picohsm_wire::cvc::{self, oid};
use picohsm_wire::sw::StatusWord;

use crate::keys::{self, PrivateKey};
use crate::rng::Adapter;
use crate::Card;
use picohsm_crypto::hash::HashAlg;
use picohsm_crypto::{ec, CryptoError};

/// The hash a TR-03110 signature OID names (last arc).
pub fn oid_hash(algorithm: &[u8]) -> Option<HashAlg> {
    let last = *algorithm.last()?;
    if oid::is_ec(algorithm) {
        return crate::commands::signature::hash_numbered(last);
    }
    if oid::is_rsa(algorithm) {
        return match last {
            1 | 3 => Some(HashAlg::Sha1),
            2 | 4 => Some(HashAlg::Sha256),
            5 | 6 => Some(HashAlg::Sha512),
            _ => None,
        };
    }
    None
}

fn is_pss(algorithm: &[u8]) -> bool {
    oid::is_rsa(algorithm) && matches!(algorithm.last(), Some(3 | 4 | 6))
}

/// The public key of `key` as a `7F49` value with `algorithm` as its OID
/// (EC keys carry their explicit domain parameters).
pub fn public_template(key: &PrivateKey, algorithm: &[u8]) -> Result<Vec<u8>, StatusWord> {
    Ok(match key {
        PrivateKey::Ec { curve, d } => {
            let q = ec::public_key(*curve, d).map_err(|_| StatusWord::EXEC_ERROR)?;
            cvc::ec_public_key(algorithm, *curve, &q)
        }
        PrivateKey::Rsa(k) => cvc::rsa_public_key(algorithm, &k.modulus(), &k.public_exponent()),
    })
}

/// Signs `data` with `key` as a CVC signature for `algorithm`: ECDSA as
/// `r || s`, RSA with PKCS#1 v1.5 or PSS.
pub fn cvc_sign(
    card: &mut Card,
    key: &PrivateKey,
    algorithm: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, StatusWord> {
    let h = oid_hash(algorithm).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
    let digest = h.digest(data);
    let r: Result<Vec<u8>, CryptoError> = match key {
        PrivateKey::Ec { curve, d } => ec::sign_prehash(*curve, d, &digest),
        PrivateKey::Rsa(k) if is_pss(algorithm) => {
            k.sign_pss(h, &digest, &mut Adapter(&mut *card.rng))
        }
        PrivateKey::Rsa(k) => k.sign_pkcs1v15(h, &digest),
    };
    r.map_err(|_| StatusWord::EXEC_ERROR)
}

/// Builds the authenticated request (`67` TLV) for `key`: inner body with
/// `car` and `chr`, signed by the key itself, then signed by the device key
/// with the device name as outer CAR.
pub fn build(
    card: &mut Card,
    key: &PrivateKey,
    algorithm: &[u8],
    car: &[u8],
    chr: &[u8],
) -> Result<Vec<u8>, StatusWord> {
    let pk = public_template(key, algorithm)?;
    let body = cvc::build_body(Some(car), &pk, chr, &[]);
    let inner = cvc_sign(card, key, algorithm, &body)?;
    let cert = cvc::build_cvc(&body, &inner);
    let dev_name = card.device_name();
    let (dev_key, _) = keys::load(card, 0)?;
    let outer = cvc_sign(
        card,
        &dev_key,
        oid::ECDSA_SHA256,
        &cvc::outer_signed_data(&cert, &dev_name),
    )?;
    Ok(cvc::build_auth_request(&cert, &dev_name, &outer))
}
