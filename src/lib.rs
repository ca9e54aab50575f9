//! `libpicohsm_pkcs11.so`: the PKCS#11 module for Pico HSM and
//! SmartCard-HSM tokens, with Public Key Authentication login.
//!
//! This crate is the module's home; its PKCS#11 entry points are the work of
//! the project's next issues. What exists today is the card it will talk to
//! (`picohsm-firmware`, run as `picohsm-vcard`) and the wire format both
//! share (`picohsm-wire`).
#![forbid(unsafe_code)]
