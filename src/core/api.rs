//! The module's Rust-side API: one function per PKCS#11 call, in Rust
//! types. The exported C layer (`crate::ffi`) checks arguments, converts
//! them to these types, calls here, and converts back; it holds no logic.
//!
//! Conventions:
//! - Every function returns [`Result`]; an `Err` carries the CK_RV.
//! - Mechanisms arrive decoded ([`Mechanism`]).
//! - A function with variable-length output takes the capacity of the
//!   caller's buffer (`None`: NULL) and returns an [`Output`]: the length
//!   when the buffer cannot take the output (the operation stays active),
//!   else the bytes. A card operation never runs twice for one output (see
//!   [`crate::core::operation`]).
//! - Operations (sign, verify, decrypt, digest, find) keep their state in
//!   the session; a call that delivers the output ends it, as does any
//!   error.

use cryptoki_sys::*;

pub use super::decrypt::{decrypt, decrypt_final, decrypt_init, decrypt_update};
pub use super::derive::derive_key;
pub use super::digest::{digest, digest_final, digest_init, digest_update};
pub use super::find::{
    find_objects, find_objects_final, find_objects_init, get_attribute, get_object_size,
};
pub use super::general::{
    finalize, get_info, get_slot_info, get_slot_list, get_token_info, initialize, is_initialized,
};
pub use super::keygen::generate_key_pair;
pub use super::login::{login, logout};
pub use super::mech::{get_mechanism_info, get_mechanism_list, Mechanism};
pub use super::operation::{cancel_operation, OpKind, Output};
pub use super::pin::{init_pin, init_token, set_pin};
pub use super::session::{
    close_all_sessions, close_session, generate_random, get_session_info, open_session, seed_random,
};
pub use super::sign::{sign, sign_final, sign_init, sign_update};
pub use super::slot_event::wait_for_slot_event;
pub use super::verify::{verify, verify_final, verify_init, verify_update};
pub use super::write::{create_object, destroy_object, set_attributes};

/// Arguments of C_Initialize, decoded.
#[derive(Debug, Clone, Default)]
pub struct InitArgs {
    /// CKF_OS_LOCKING_OK was set.
    pub os_locking_ok: bool,
    /// The application gave mutex callbacks (all four).
    pub mutex_callbacks: bool,
    /// `pReserved` as a string, if it was non-NULL (p11-kit's
    /// `x-init-reserved`): module settings.
    pub reserved: Option<String>,
}

/// One attribute of a template: type and value bytes (CK_ULONG and
/// CK_BBOOL values in native layout, as the C caller gave them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// CKA_*.
    pub kind: CK_ATTRIBUTE_TYPE,
    /// Raw value.
    pub value: Vec<u8>,
}

/// What C_GetAttributeValue finds for one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// The value.
    Value(Vec<u8>),
    /// The attribute exists but may not be revealed (CKR_ATTRIBUTE_SENSITIVE).
    Sensitive,
    /// The object has no such attribute (CKR_ATTRIBUTE_TYPE_INVALID).
    Invalid,
}

/// CK_INFO, CK_SLOT_INFO, CK_TOKEN_INFO and CK_SESSION_INFO are returned
/// as the cryptoki-sys structs themselves (padded strings filled in).
pub type Info = CK_INFO;
/// See [`Info`].
pub type SlotInfo = CK_SLOT_INFO;
/// See [`Info`].
pub type TokenInfo = CK_TOKEN_INFO;
/// See [`Info`].
pub type SessionInfo = CK_SESSION_INFO;
