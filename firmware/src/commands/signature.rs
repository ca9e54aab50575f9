//! SIGN (INS 68, docs/protocol.md §7.2): P1 = key id, P2 = algorithm byte. ECDSA answers a
//! DER signature, RSA the raw signature of modulus length.
//!
//! The device key (`CC00`, id 0) is refused here and in DECIPHER / ECDH
//! (`6985`, whatever the session): it signs only what the firmware itself
//! signs (the outer signature of a key's request, docs/protocol.md §6.2), so
//! its signature keeps meaning "this key was generated on this device". A
//! host digest signed by it would forge that for any software key.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::algo;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_auth;
use crate::keys::{self, PrivateKey};
use crate::rng::Adapter;
use crate::Card;
use picohsm_crypto::hash::HashAlg;
use picohsm_crypto::{ec, CryptoError};

/// The hash numbered `n` in the SmartCard-HSM's lists: 1 SHA-1, 2 SHA-224,
/// 3 SHA-256, 4 SHA-384, 5 SHA-512 (the low nibble of the "card hashes"
/// algorithm bytes `x1`..`x5`, and the last arc of the ECDSA OIDs).
pub fn hash_numbered(n: u8) -> Option<HashAlg> {
    match n {
        1 => Some(HashAlg::Sha1),
        2 => Some(HashAlg::Sha224),
        3 => Some(HashAlg::Sha256),
        4 => Some(HashAlg::Sha384),
        5 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// The hash of the "card hashes" algorithm bytes (`x1`..`x5`).
pub fn hash_of(code: u8) -> Option<HashAlg> {
    hash_numbered(code & 0x0F)
}

/// Loads key P1 for use with algorithm `alg`, checking that it is not the
/// device key (6985), authentication, the allowed-algorithm list (6985) and
/// the use counter (6A84), and counting the use.
pub fn key_for_use(card: &mut Card, id: u8, alg: u8) -> Result<PrivateKey, StatusWord> {
    if id == 0 {
        return Err(StatusWord::CONDITIONS);
    }
    require_auth(card)?;
    let mut meta = keys::meta(card, id)?;
    if !meta.allows(alg) {
        return Err(StatusWord::CONDITIONS);
    }
    if meta.use_counter == Some(0) {
        return Err(StatusWord::FILE_FULL);
    }
    let (key, _) = keys::load(card, id)?;
    if let Some(n) = meta.use_counter {
        meta.use_counter = Some(n - 1);
        keys::set_meta(card, id, &meta)?;
    }
    Ok(key)
}

fn crypto_sw(e: CryptoError) -> StatusWord {
    match e {
        CryptoError::InvalidInput => StatusWord::WRONG_DATA,
        _ => StatusWord::EXEC_ERROR,
    }
}

/// Runs SIGN.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let alg = cmd.p2;
    let key = key_for_use(card, cmd.p1, alg)?;
    let data = cmd.data;
    match (&key, alg) {
        (PrivateKey::Ec { curve, d }, algo::ECDSA) => {
            if data.is_empty() {
                return Err(StatusWord::WRONG_LENGTH);
            }
            ec::sign_prehash_der(*curve, d, data).map_err(crypto_sw)
        }
        (PrivateKey::Ec { curve, d }, algo::ECDSA_SHA1..=algo::ECDSA_SHA512) => {
            let h = hash_of(alg).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
            ec::sign_prehash_der(*curve, d, &h.digest(data)).map_err(crypto_sw)
        }
        (PrivateKey::Rsa(k), algo::RSA_RAW) => Ok(k
            .raw_private(data, &mut Adapter(&mut *card.rng))
            .map_err(crypto_sw)?
            .to_vec()),
        (PrivateKey::Rsa(k), algo::RSA_PKCS1) => k.sign_pkcs1v15_raw(data).map_err(crypto_sw),
        (PrivateKey::Rsa(k), algo::RSA_PKCS1_SHA1..=algo::RSA_PKCS1_SHA512) => {
            let h = hash_of(alg).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
            k.sign_pkcs1v15(h, &h.digest(data)).map_err(crypto_sw)
        }
        (PrivateKey::Rsa(k), algo::RSA_PSS) => {
            let (h, digest): (HashAlg, Vec<u8>) = match HashAlg::from_digest_info(data) {
                Some((h, d)) => (h, d.to_vec()),
                None => (
                    HashAlg::from_len(data.len()).ok_or(StatusWord::WRONG_DATA)?,
                    data.to_vec(),
                ),
            };
            k.sign_pss(h, &digest, &mut Adapter(&mut *card.rng))
                .map_err(crypto_sw)
        }
        (PrivateKey::Rsa(k), algo::RSA_PSS_SHA1..=algo::RSA_PSS_SHA512) => {
            let h = hash_of(alg).ok_or(StatusWord::FUNC_NOT_SUPPORTED)?;
            k.sign_pss(h, &h.digest(data), &mut Adapter(&mut *card.rng))
                .map_err(crypto_sw)
        }
        _ => Err(StatusWord::FUNC_NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use crate::commands::testcard::T;

    #[test]
    fn the_device_key_signs_no_host_data() {
        let mut t = T::new();
        t.init(1, true, None, &[]);
        assert_eq!(t.verify_pin(), 0x9000);
        assert!(t.card.session.user_auth);
        for alg in [0x70u8, 0x73, 0x74, 0x20, 0x21] {
            assert_eq!(
                t.sw(0x80, 0x68, 0, alg, &[1; 32], 256),
                0x6985,
                "SIGN {alg:02X}"
            );
        }
        let q = crate::keys::load(&t.card, 0)
            .map(|(k, _)| match k {
                crate::keys::PrivateKey::Ec { curve, d } => {
                    picohsm_crypto::ec::public_key(curve, &d).unwrap()
                }
                _ => unreachable!(),
            })
            .unwrap();
        assert_eq!(t.sw(0x80, 0x62, 0, 0x80, &q, 256), 0x6985, "ECDH");
        assert_eq!(t.sw(0x80, 0x62, 0, 0x21, &[1; 32], 256), 0x6985, "DECIPHER");
        assert_eq!(t.sw(0x80, 0x72, 0, 0x92, &[], 0), 0x6982, "WRAP");
        // The firmware still signs requests with it.
        let tpl = crate::commands::testcard::p256_template();
        assert_eq!(t.sw(0, 0x46, 1, 0, &tpl, 65536), 0x9000);
    }
}
