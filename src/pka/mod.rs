//! Public Key Authentication (docs/protocol.md §6): the login in which an
//! authenticator token signs the primary's challenge.
//!
//! What C_Login(CKU_USER) does on a PKA token, and which authenticators
//! to use, are the module's settings ([`crate::settings`]).
//!
//! - [`authenticator`]: the authenticators (another SmartCard-HSM over
//!   PC/SC, or a key in any PKCS#11 module) and how they are found;
//! - [`round`]: one round on the primary's connection (GET CHALLENGE, the
//!   authenticator's signature, MSE SET AT, EXTERNAL AUTHENTICATE);
//! - [`trust`]: the primary's device certificate chain, verified before
//!   its name is signed.

pub mod authenticator;
pub mod pinentry;
pub mod pkcs11;
pub mod round;
pub mod schsm;
pub mod trust;

use sha2::{Digest, Sha256};

/// The CHR this project gives a key that has no card to name it (a key in a
/// PKCS#11 token, exported by `picohsm-tool pka export --pkcs11`): country
/// `ZZ` (user-assigned), the first 9 hex digits of SHA-256 of the public
/// key's encoding (the uncompressed point, or modulus ‖ exponent for RSA),
/// sequence `00001`. The module computes the same name for every key it
/// finds in a PKCS#11 token, so a registered key is recognised without
/// configuration.
pub fn chr_for_public_key(encoding: &[u8]) -> String {
    let h = Sha256::digest(encoding);
    let hex: String = h.iter().take(5).map(|b| format!("{b:02X}")).collect();
    format!("ZZ{}00001", &hex[..9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chr_is_16_characters_and_depends_on_the_key() {
        let a = chr_for_public_key(&[4, 1, 2, 3]);
        let b = chr_for_public_key(&[4, 1, 2, 4]);
        assert_eq!(a.len(), 16);
        assert!(a.starts_with("ZZ") && a.ends_with("00001"));
        assert_ne!(a, b);
        assert_eq!(a, chr_for_public_key(&[4, 1, 2, 3]));
    }
}
