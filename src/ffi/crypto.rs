//! Cryptographic operations (PKCS#11 3.0 §5.8–§5.17): encryption (not
//! supported), decryption, digests, signatures, verification, sign/verify
//! with recovery (not supported) and the dual-function updates (not
//! supported).
//!
//! A function with variable-length output gives the core the capacity of
//! the caller's buffer; the core answers a size query without running the
//! card twice (see `crate::core::operation`). A `C_XxxInit` with a NULL
//! mechanism (PKCS#11 3.0 §5.2: terminate the active operation) ends the
//! session's operation; with no operation active it is CKR_OK too.

use cryptoki_sys::*;

use crate::core::api::{self, OpKind};

use super::args::{check_ptr, slice_in};
use super::convert::mechanism;
use super::shapes::{
    check_in_out, init, init_with_key, input_fns, input_output_fns, not_supported, output_fns,
    unsupported,
};
use super::wrap::{run, Init};

// ---------------------------------------------------------------------------
// Encryption: not supported.

/// C_EncryptInit: not supported (a mechanism given is still decoded, so a
/// malformed parameter is reported as such).
#[no_mangle]
pub extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession), ("key", hKey)];
    not_supported("C_EncryptInit", &handles, "encryption", |note| {
        if !pMechanism.is_null() {
            // SAFETY: PKCS#11 caller: a valid CK_MECHANISM.
            unsafe { mechanism(pMechanism, note) }?;
        }
        Ok(())
    })
}

unsupported! {
    /// C_EncryptFinal: not supported.
    C_EncryptFinal: "encryption";
    (hSession: CK_SESSION_HANDLE, _pOut: *mut CK_BYTE, pulOutLen: *mut CK_ULONG),
    [("session", hSession)] => check_ptr(pulOutLen, "NULL pulLastEncryptedPartLen")
}

// ---------------------------------------------------------------------------
// Decryption, digests and signatures: the Inits, then the functions by
// shape.

init_with_key! {
    /// C_DecryptInit (NULL mechanism: see the module documentation).
    C_DecryptInit => OpKind::Decrypt, api::decrypt_init;
    /// C_SignInit (NULL mechanism: see the module documentation).
    C_SignInit => OpKind::Sign, api::sign_init;
    /// C_VerifyInit (NULL mechanism: see the module documentation).
    C_VerifyInit => OpKind::Verify, api::verify_init;
}

/// C_DigestInit (NULL mechanism: see the module documentation).
#[no_mangle]
pub extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
) -> CK_RV {
    let handles = [("session", hSession)];
    // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
    unsafe {
        init(
            "C_DigestInit",
            &handles,
            hSession,
            OpKind::Digest,
            pMechanism,
            |m| api::digest_init(hSession, m),
        )
    }
}

input_output_fns! {
    /// C_Decrypt, with the PKCS#11 3.0 §5.2 size query (the card decrypts once; the
    /// plaintext waits in the session for the call that takes it).
    C_Decrypt(pEncryptedData, ulEncryptedDataLen, pData, pulDataLen) => api::decrypt;
    /// C_DecryptUpdate, with the PKCS#11 3.0 §5.2 size query (its output is empty).
    C_DecryptUpdate(pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen) => api::decrypt_update;
    /// C_Digest, with the PKCS#11 3.0 §5.2 size query (the hash's length).
    C_Digest(pData, ulDataLen, pDigest, pulDigestLen) => api::digest;
    /// C_Sign, with the PKCS#11 3.0 §5.2 size query (answered from the key: the card
    /// signs once, for the call that takes the signature).
    C_Sign(pData, ulDataLen, pSignature, pulSignatureLen) => api::sign;
}

output_fns! {
    /// C_DecryptFinal, with the PKCS#11 3.0 §5.2 size query (as C_Decrypt).
    C_DecryptFinal(pLastPart, pulLastPartLen) => api::decrypt_final;
    /// C_DigestFinal, with the PKCS#11 3.0 §5.2 size query.
    C_DigestFinal(pDigest, pulDigestLen) => api::digest_final;
    /// C_SignFinal, with the PKCS#11 3.0 §5.2 size query (as C_Sign).
    C_SignFinal(pSignature, pulSignatureLen) => api::sign_final;
}

input_fns! {
    /// C_DigestUpdate.
    C_DigestUpdate(pPart, ulPartLen) => api::digest_update;
    /// C_SignUpdate.
    C_SignUpdate(pPart, ulPartLen) => api::sign_update;
    /// C_VerifyUpdate.
    C_VerifyUpdate(pPart, ulPartLen) => api::verify_update;
    /// C_VerifyFinal.
    C_VerifyFinal(pSignature, ulSignatureLen) => api::verify_final;
}

/// C_DigestKey: not supported.
#[no_mangle]
pub extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    let handles = [("session", hSession), ("key", hKey)];
    not_supported("C_DigestKey", &handles, "C_DigestKey", |_| Ok(()))
}

// ---------------------------------------------------------------------------
// Verification.

/// C_Verify.
#[no_mangle]
pub extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    run("C_Verify", Init::Required, &[("session", hSession)], |_| {
        // SAFETY: PKCS#11 caller: both inputs readable for their lengths.
        let (data, sig) = unsafe {
            (
                slice_in(pData, ulDataLen)?,
                slice_in(pSignature, ulSignatureLen)?,
            )
        };
        api::verify(hSession, data, sig)
    })
}

// ---------------------------------------------------------------------------
// Encryption, recovery and dual-function operations with input and output:
// not supported.

unsupported! {
    /// C_SignRecoverInit: not supported.
    C_SignRecoverInit: "sign with recovery",
    /// C_VerifyRecoverInit: not supported.
    C_VerifyRecoverInit: "verify with recovery";
    (hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE),
    [("session", hSession), ("key", hKey)] => check_ptr(pMechanism, "NULL pMechanism")
}

unsupported! {
    /// C_Encrypt: not supported.
    C_Encrypt: "encryption",
    /// C_EncryptUpdate: not supported.
    C_EncryptUpdate: "encryption",
    /// C_SignRecover: not supported.
    C_SignRecover: "sign with recovery",
    /// C_VerifyRecover: not supported.
    C_VerifyRecover: "verify with recovery",
    /// C_DigestEncryptUpdate: not supported.
    C_DigestEncryptUpdate: "dual-function operation",
    /// C_DecryptDigestUpdate: not supported.
    C_DecryptDigestUpdate: "dual-function operation",
    /// C_SignEncryptUpdate: not supported.
    C_SignEncryptUpdate: "dual-function operation",
    /// C_DecryptVerifyUpdate: not supported.
    C_DecryptVerifyUpdate: "dual-function operation";
    (hSession: CK_SESSION_HANDLE, pIn: *mut CK_BYTE, ulInLen: CK_ULONG, _pOut: *mut CK_BYTE, pulOutLen: *mut CK_ULONG),
    [("session", hSession)] => {
        // SAFETY: PKCS#11 caller: pIn readable for ulInLen bytes.
        unsafe { check_in_out(pIn, ulInLen, pulOutLen) }
    }
}
