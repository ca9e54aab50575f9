//! `libpicohsm_pkcs11.so`: the PKCS#11 module for Pico HSM and
//! SmartCard-HSM tokens, with Public Key Authentication login.
//!
//! Layers, top to bottom: `ffi` exports every `C_*` function and does
//! nothing but check arguments and convert types; `core` holds the slots,
//! tokens, sessions and objects (both crate-private); [`card`] speaks the
//! SmartCard-HSM command set; [`transport`] carries APDUs (PC/SC); [`pka`]
//! runs the PKA login with the [`settings`]. The wire format comes from
//! `picohsm-wire`, shared with the card (`picohsm-firmware`); the layout
//! and its rules are in `docs/design.md`.
#![deny(unsafe_code)]

pub mod card;
mod core;
pub mod error;
mod ffi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod logging;
pub mod pka;
pub mod settings;
#[cfg(test)]
mod trace_tests;
pub mod transport;
pub mod vendor;
