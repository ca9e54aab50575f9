//! The message-based functions of PKCS#11 3.0 (§5.x "Message-based
//! encryption/decryption/signing/verification"): none is supported. Each
//! checks that the module is initialised and its pointer arguments, then
//! returns CKR_FUNCTION_NOT_SUPPORTED.

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::error::{fail, Result};

use super::args::{check_ptr, slice_in};
use super::wrap::{run, Init};

const NS: &str = "message-based functions";

/// Checks `(p, n)` input pairs (NULL with a length: CKR_ARGUMENTS_BAD).
///
/// # Safety
/// Each non-NULL pointer must be readable for its length.
unsafe fn inputs(pairs: &[(*const u8, CK_ULONG)]) -> Result<()> {
    for (p, n) in pairs {
        // SAFETY: forwarded to our caller's promise.
        unsafe { slice_in(*p, *n) }?;
    }
    Ok(())
}

macro_rules! message_init {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession), ("key", hKey)], |_| {
                check_ptr(pMechanism, "NULL pMechanism")?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

macro_rules! message_final {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(hSession: CK_SESSION_HANDLE) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| fail(CKR_FUNCTION_NOT_SUPPORTED, NS))
        }
    )*};
}

message_init! {
    /// C_MessageEncryptInit: not supported.
    C_MessageEncryptInit;
    /// C_MessageDecryptInit: not supported.
    C_MessageDecryptInit;
    /// C_MessageSignInit: not supported.
    C_MessageSignInit;
    /// C_MessageVerifyInit: not supported.
    C_MessageVerifyInit;
}

message_final! {
    /// C_MessageEncryptFinal: not supported.
    C_MessageEncryptFinal;
    /// C_MessageDecryptFinal: not supported.
    C_MessageDecryptFinal;
    /// C_MessageSignFinal: not supported.
    C_MessageSignFinal;
    /// C_MessageVerifyFinal: not supported.
    C_MessageVerifyFinal;
}

macro_rules! crypt_message {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pParameter: *mut c_void,
            ulParameterLen: CK_ULONG,
            pAssociatedData: *mut CK_BYTE,
            ulAssociatedDataLen: CK_ULONG,
            pIn: *mut CK_BYTE,
            ulInLen: CK_ULONG,
            _pOut: *mut CK_BYTE,
            pulOutLen: *mut CK_ULONG,
        ) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| {
                // SAFETY: PKCS#11 caller: inputs readable for their lengths.
                unsafe { inputs(&[(pParameter as *const u8, ulParameterLen), (pAssociatedData, ulAssociatedDataLen), (pIn, ulInLen)]) }?;
                check_ptr(pulOutLen, "NULL output length pointer")?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

crypt_message! {
    /// C_EncryptMessage: not supported.
    C_EncryptMessage;
    /// C_DecryptMessage: not supported.
    C_DecryptMessage;
}

macro_rules! crypt_message_begin {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pParameter: *mut c_void,
            ulParameterLen: CK_ULONG,
            pAssociatedData: *mut CK_BYTE,
            ulAssociatedDataLen: CK_ULONG,
        ) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| {
                // SAFETY: PKCS#11 caller: inputs readable for their lengths.
                unsafe { inputs(&[(pParameter as *const u8, ulParameterLen), (pAssociatedData, ulAssociatedDataLen)]) }?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

crypt_message_begin! {
    /// C_EncryptMessageBegin: not supported.
    C_EncryptMessageBegin;
    /// C_DecryptMessageBegin: not supported.
    C_DecryptMessageBegin;
}

macro_rules! crypt_message_next {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pParameter: *mut c_void,
            ulParameterLen: CK_ULONG,
            pIn: *mut CK_BYTE,
            ulInLen: CK_ULONG,
            _pOut: *mut CK_BYTE,
            pulOutLen: *mut CK_ULONG,
            flags: CK_FLAGS,
        ) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession), ("flags", flags)], |_| {
                // SAFETY: PKCS#11 caller: inputs readable for their lengths.
                unsafe { inputs(&[(pParameter as *const u8, ulParameterLen), (pIn, ulInLen)]) }?;
                check_ptr(pulOutLen, "NULL output length pointer")?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

crypt_message_next! {
    /// C_EncryptMessageNext: not supported.
    C_EncryptMessageNext;
    /// C_DecryptMessageNext: not supported.
    C_DecryptMessageNext;
}

macro_rules! message_begin {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| {
                // SAFETY: PKCS#11 caller: readable for the length.
                unsafe { inputs(&[(pParameter as *const u8, ulParameterLen)]) }?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

message_begin! {
    /// C_SignMessageBegin: not supported.
    C_SignMessageBegin;
    /// C_VerifyMessageBegin: not supported.
    C_VerifyMessageBegin;
}

/// C_SignMessage: not supported.
#[no_mangle]
pub extern "C" fn C_SignMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    _pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_SignMessage",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: inputs readable for their lengths.
            unsafe {
                inputs(&[
                    (pParameter as *const u8, ulParameterLen),
                    (pData, ulDataLen),
                ])
            }?;
            check_ptr(pulSignatureLen, "NULL pulSignatureLen")?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
        },
    )
}

/// C_SignMessageNext: not supported (`pulSignatureLen` may be NULL when
/// this is not the last part).
#[no_mangle]
pub extern "C" fn C_SignMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: *mut c_void,
    ulParameterLen: CK_ULONG,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    _pSignature: *mut CK_BYTE,
    _pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_SignMessageNext",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: inputs readable for their lengths.
            unsafe {
                inputs(&[
                    (pParameter as *const u8, ulParameterLen),
                    (pData, ulDataLen),
                ])
            }?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
        },
    )
}

macro_rules! verify_message {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pParameter: *mut c_void,
            ulParameterLen: CK_ULONG,
            pData: *mut CK_BYTE,
            ulDataLen: CK_ULONG,
            pSignature: *mut CK_BYTE,
            ulSignatureLen: CK_ULONG,
        ) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| {
                // SAFETY: PKCS#11 caller: inputs readable for their lengths.
                unsafe {
                    inputs(&[(pParameter as *const u8, ulParameterLen), (pData, ulDataLen), (pSignature, ulSignatureLen)])
                }?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, NS)
            })
        }
    )*};
}

verify_message! {
    /// C_VerifyMessage: not supported.
    C_VerifyMessage;
    /// C_VerifyMessageNext: not supported.
    C_VerifyMessageNext;
}
