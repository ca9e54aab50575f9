//! The module's Rust-side API: one function per PKCS#11 call, in Rust
//! types. The exported C layer (`crate::ffi`) checks arguments, converts
//! them to these types, calls here, and converts back; it holds no logic.
//!
//! Conventions:
//! - Every function returns [`Result`]; an `Err` carries the CK_RV.
//! - Variable-length outputs are returned whole (`Vec<u8>`); the C layer
//!   implements the size-query protocol (NULL buffer, CKR_BUFFER_TOO_SMALL)
//!   by keeping the result between the two calls, so a card operation never
//!   runs twice.
//! - Operations (sign, verify, decrypt, digest, find) keep their state in
//!   the session; a one-shot call (`sign`) ends it, as does any error other
//!   than the C layer's own CKR_BUFFER_TOO_SMALL.

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
pub use super::pin::{init_pin, init_token, set_pin};
pub use super::session::{
    cancel_operation, close_all_sessions, close_session, generate_random, get_session_info, login,
    logout, open_session, seed_random, OpKind,
};
pub use super::sign::{
    get_mechanism_info, get_mechanism_list, sign, sign_final, sign_init, sign_update,
};
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

/// A mechanism with its decoded parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// CKM_*.
    pub kind: CK_MECHANISM_TYPE,
    /// Its parameter.
    pub param: MechParam,
}

/// Mechanism parameters this module understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechParam {
    /// No parameter (or one this mechanism ignores).
    None,
    /// CK_RSA_PKCS_PSS_PARAMS.
    Pss {
        /// hashAlg (CKM_SHA256, ...).
        hash: CK_MECHANISM_TYPE,
        /// mgf (CKG_MGF1_SHA256, ...).
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// sLen.
        salt_len: usize,
    },
    /// CK_RSA_PKCS_OAEP_PARAMS.
    Oaep {
        /// hashAlg.
        hash: CK_MECHANISM_TYPE,
        /// mgf.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// The label (pSourceData when source is CKZ_DATA_SPECIFIED).
        label: Vec<u8>,
    },
    /// CK_ECDH1_DERIVE_PARAMS.
    Ecdh {
        /// kdf (CKD_NULL, ...).
        kdf: CK_EC_KDF_TYPE,
        /// pSharedData.
        shared_data: Vec<u8>,
        /// pPublicData: the peer's point (raw or DER OCTET STRING).
        public_data: Vec<u8>,
    },
    /// A parameter of another shape: the raw bytes.
    Raw(Vec<u8>),
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
