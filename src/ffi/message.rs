//! The message-based functions (PKCS#11 3.0 §5.9, §5.11, §5.14, §5.16 "Message-based
//! encryption/decryption/signing/verification"): none is supported. Each
//! checks that the module is initialised and its pointer arguments, then
//! returns CKR_FUNCTION_NOT_SUPPORTED.

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::error::Result;

use super::args::{check_ptr, slice_in};
use super::shapes::unsupported;

const NS: &str = "message-based functions";

/// Checks `(p, n)` input pairs (NULL with a length: CKR_ARGUMENTS_BAD) and,
/// if given, an output length pointer.
///
/// # Safety
/// Each non-NULL pointer must be readable for its length.
unsafe fn inputs(pairs: &[(*const u8, CK_ULONG)], out_len: Option<*const CK_ULONG>) -> Result<()> {
    for (p, n) in pairs {
        // SAFETY: forwarded to our caller's promise.
        unsafe { slice_in(*p, *n) }?;
    }
    match out_len {
        Some(p) => check_ptr(p, "NULL output length pointer"),
        None => Ok(()),
    }
}

unsupported! {
    /// C_MessageEncryptInit: not supported.
    C_MessageEncryptInit: NS,
    /// C_MessageDecryptInit: not supported.
    C_MessageDecryptInit: NS,
    /// C_MessageSignInit: not supported.
    C_MessageSignInit: NS,
    /// C_MessageVerifyInit: not supported.
    C_MessageVerifyInit: NS;
    (hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE),
    [("session", hSession), ("key", hKey)] => check_ptr(pMechanism, "NULL pMechanism")
}

unsupported! {
    /// C_MessageEncryptFinal: not supported.
    C_MessageEncryptFinal: NS,
    /// C_MessageDecryptFinal: not supported.
    C_MessageDecryptFinal: NS,
    /// C_MessageSignFinal: not supported.
    C_MessageSignFinal: NS,
    /// C_MessageVerifyFinal: not supported.
    C_MessageVerifyFinal: NS;
    (hSession: CK_SESSION_HANDLE), [("session", hSession)] => Ok(())
}

unsupported! {
    /// C_EncryptMessage: not supported.
    C_EncryptMessage: NS,
    /// C_DecryptMessage: not supported.
    C_DecryptMessage: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG,
        pIn: *mut CK_BYTE, ulInLen: CK_ULONG, _pOut: *mut CK_BYTE, pulOutLen: *mut CK_ULONG
    ),
    [("session", hSession)] => {
        let pairs = [
            (pParameter as *const u8, ulParameterLen),
            (pAssociatedData, ulAssociatedDataLen),
            (pIn, ulInLen),
        ];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, Some(pulOutLen)) }
    }
}

unsupported! {
    /// C_EncryptMessageBegin: not supported.
    C_EncryptMessageBegin: NS,
    /// C_DecryptMessageBegin: not supported.
    C_DecryptMessageBegin: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG
    ),
    [("session", hSession)] => {
        let pairs = [(pParameter as *const u8, ulParameterLen), (pAssociatedData, ulAssociatedDataLen)];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, None) }
    }
}

unsupported! {
    /// C_EncryptMessageNext: not supported.
    C_EncryptMessageNext: NS,
    /// C_DecryptMessageNext: not supported.
    C_DecryptMessageNext: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pIn: *mut CK_BYTE, ulInLen: CK_ULONG, _pOut: *mut CK_BYTE, pulOutLen: *mut CK_ULONG,
        flags: CK_FLAGS
    ),
    [("session", hSession), ("flags", flags)] => {
        let pairs = [(pParameter as *const u8, ulParameterLen), (pIn, ulInLen)];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, Some(pulOutLen)) }
    }
}

unsupported! {
    /// C_SignMessageBegin: not supported.
    C_SignMessageBegin: NS,
    /// C_VerifyMessageBegin: not supported.
    C_VerifyMessageBegin: NS;
    (hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG),
    [("session", hSession)] => {
        // SAFETY: PKCS#11 caller: readable for the length.
        unsafe { inputs(&[(pParameter as *const u8, ulParameterLen)], None) }
    }
}

unsupported! {
    /// C_SignMessage: not supported.
    C_SignMessage: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pData: *mut CK_BYTE, ulDataLen: CK_ULONG, _pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG
    ),
    [("session", hSession)] => {
        let pairs = [(pParameter as *const u8, ulParameterLen), (pData, ulDataLen)];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, Some(pulSignatureLen)) }
    }
}

unsupported! {
    /// C_SignMessageNext: not supported (`pulSignatureLen` may be NULL when
    /// this is not the last part).
    C_SignMessageNext: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pData: *mut CK_BYTE, ulDataLen: CK_ULONG, _pSignature: *mut CK_BYTE,
        _pulSignatureLen: *mut CK_ULONG
    ),
    [("session", hSession)] => {
        let pairs = [(pParameter as *const u8, ulParameterLen), (pData, ulDataLen)];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, None) }
    }
}

unsupported! {
    /// C_VerifyMessage: not supported.
    C_VerifyMessage: NS,
    /// C_VerifyMessageNext: not supported.
    C_VerifyMessageNext: NS;
    (
        hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG
    ),
    [("session", hSession)] => {
        let pairs = [
            (pParameter as *const u8, ulParameterLen),
            (pData, ulDataLen),
            (pSignature, ulSignatureLen),
        ];
        // SAFETY: PKCS#11 caller: inputs readable for their lengths.
        unsafe { inputs(&pairs, None) }
    }
}
