//! OpenSSL with libp11's engine.

#[path = "../common/mod.rs"]
mod common;
