//! Sealing secrets at rest: AES-256-GCM records bound to the file they live
//! in (the FID is the associated data), and HKDF key derivation.
//!
//! Record layout: `nonce (12) || ciphertext || tag (16)`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use alloc::vec::Vec;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::rng::CardRng;

/// A 256-bit secret key, wiped on drop.
pub type Key32 = Zeroizing<[u8; 32]>;

/// HKDF-SHA256 (RFC 5869) of `ikm` with `salt`, expanded for `info`.
pub fn derive(salt: &[u8], ikm: &[u8], info: &[u8]) -> Key32 {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(info, out.as_mut());
    out
}

/// Encrypts `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8], rng: &mut dyn CardRng) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce);
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(12 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts a record made by [`seal`]; `None` if the key or the binding is
/// wrong or the record was altered.
pub fn open(key: &[u8; 32], aad: &[u8], record: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if record.len() < 12 + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new(key.into());
    let nonce: [u8; 12] = record[..12].try_into().ok()?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &record[12..],
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRng;

    #[test]
    fn seal_open_and_binding() {
        let mut rng = TestRng::default();
        let k = derive(b"salt", b"ikm", b"info");
        let r = seal(&k, b"\xCC\x01", b"secret", &mut rng);
        assert_eq!(open(&k, b"\xCC\x01", &r).unwrap().as_slice(), b"secret");
        assert!(open(&k, b"\xCC\x02", &r).is_none());
        let k2 = derive(b"salt", b"ikm", b"other");
        assert!(open(&k2, b"\xCC\x01", &r).is_none());
        assert!(!r.windows(6).any(|w| w == b"secret"));
    }
}
