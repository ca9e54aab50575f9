//! Workstation pieces (`std` feature): the flash image in a file and the
//! vsmartcard `vpcd` client that `picohsm-vcard` is built from.

pub mod file_storage;
pub mod vpcd;

pub use file_storage::FileStorage;
pub use vpcd::{ApduLog, Client, VirtualCard};
