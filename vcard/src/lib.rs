//! The workstation side of `picohsm-vcard`: the card's flash and OTP images
//! in files, and the vsmartcard `vpcd` client that connects a
//! [`picohsm_firmware::Card`] to pcscd. The card itself stays `no_std` in
//! `picohsm-firmware`; everything that needs an operating system is here.

#![forbid(unsafe_code)]

pub mod cli;
pub mod file_storage;
pub mod latency;
pub mod vpcd;

pub use file_storage::FileStorage;
pub use latency::{Latency, Profile};
pub use vpcd::{ApduLog, Client, VirtualCard};
