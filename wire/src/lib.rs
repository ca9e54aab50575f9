//! The SmartCard-HSM wire format, shared by the card (`picohsm-firmware`)
//! and the host (`picohsm-pkcs11`): one definition, used on both sides.
//!
//! Section numbers in the docs (`docs/protocol.md §2.3`) are the
//! headings of `docs/protocol.md` in this repository.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod apdu;
pub mod cmd;
pub mod codes;
pub mod curve;
pub mod cvc;
pub mod pkcs15;
pub mod sw;
pub mod tlv;

/// Bytes from hex with blanks: the one hex helper of the unit tests.
#[cfg(test)]
pub(crate) fn test_hex(s: &str) -> alloc::vec::Vec<u8> {
    let s: alloc::vec::Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}
