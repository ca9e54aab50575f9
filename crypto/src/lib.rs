//! The cryptography shared by the Pico HSM card (`picohsm-firmware`), the
//! PKCS#11 module and `picohsm-tool`, all taken from the RustCrypto crates.
//! `no_std` + `alloc`, so the card can use it on a microcontroller and the
//! module can verify signatures without linking the card.
//!
//! - [`hash`]: SHA-1 and SHA-2 digests and PKCS#1 `DigestInfo` handling.
//! - [`ec`]: ECDSA and ECDH on the curves of [`picohsm_wire::curve::Curve`].
//! - [`rsa`]: RSA key generation, PKCS#1 v1.5 / PSS signatures and
//!   raw / PKCS#1 v1.5 / OAEP decryption.
//!
//! Secret byte strings leave this crate as [`zeroize::Zeroizing`] buffers;
//! random numbers come from a caller-supplied [`rand_core::CryptoRng`]
//! (passed as `&mut dyn CryptoRng`). No function panics on malformed input:
//! everything that depends on outside data returns [`CryptoError`].

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod ec;
pub mod hash;
pub mod rsa;

pub use picohsm_wire::curve::Curve;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The key material is malformed or inconsistent (wrong length, scalar
    /// out of range, RSA components that do not fit together, ...).
    InvalidKey,
    /// The data to process is malformed (bad length, integer not below the
    /// modulus, point not on the curve, bad encoding, message too long,
    /// padding check failed, ...).
    InvalidInput,
    /// The operation itself failed (e.g. key generation did not converge or
    /// an internal consistency check tripped).
    Failed,
}

impl core::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CryptoError::InvalidKey => "invalid key",
            CryptoError::InvalidInput => "invalid input",
            CryptoError::Failed => "cryptographic operation failed",
        })
    }
}

impl core::error::Error for CryptoError {}

#[cfg(test)]
pub(crate) mod testutil {
    //! What every unit test of this crate uses.

    use alloc::vec::Vec;

    /// A `CryptoRng` backed by `getrandom` (panics if the OS RNG fails).
    pub(crate) fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    /// The bytes of a hex string (test vectors).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
