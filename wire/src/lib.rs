//! The SmartCard-HSM wire format, shared by the card (`picohsm-firmware`)
//! and the host (`picohsm-pkcs11`): one definition, used on both sides.
//!
//! Section numbers in the docs refer to the project's protocol reference
//! (`shared/reference/protocol.md`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod apdu;
pub mod cmd;
pub mod codes;
pub mod curve;
pub mod cvc;
pub mod sw;
pub mod tlv;
