//! Cryptographic operations (PKCS#11 3.0 §5.8–§5.12): encryption (not
//! supported), decryption, digests, signatures, verification, sign/verify
//! with recovery (not supported) and the dual-function updates (not
//! supported).
//!
//! Outputs that end or advance an operation go through
//! [`super::pending`], so a size query never runs the card twice. A
//! `C_XxxInit` with a NULL mechanism (PKCS#11 3.0 §5.2: terminate the
//! active operation) drops the waiting output and ends the core's
//! operation; with no operation active it is CKR_OK too.

use cryptoki_sys::*;

use crate::core::api::{self, Mechanism};
use crate::error::{fail, Result};

use super::args::{check_ptr, slice_in, OutBuf};
use super::convert::mechanism;
use super::pending::{Family, OutFn, PENDING};
use super::wrap::{run, Init, Note};

/// The common part of C_SignInit, C_DecryptInit, C_DigestInit: decodes the
/// mechanism, drops the family's waiting output and calls `init`.
///
/// # Safety
/// `p` must be NULL or a valid CK_MECHANISM (see [`mechanism`]).
unsafe fn init_op(
    session: CK_SESSION_HANDLE,
    family: Family,
    p: *const CK_MECHANISM,
    note: &mut Note,
    init: impl FnOnce(Mechanism) -> Result<()>,
) -> Result<()> {
    if p.is_null() {
        PENDING.forget(session, family);
        let kind = match family {
            Family::Sign => api::OpKind::Sign,
            Family::Decrypt => api::OpKind::Decrypt,
            Family::Digest => api::OpKind::Digest,
        };
        return api::cancel_operation(session, kind);
    }
    // SAFETY: forwarded to our caller's promise.
    let m = unsafe { mechanism(p, note) }?;
    PENDING.forget(session, family);
    init(m)
}

/// The §5.2 output step for `func` (see [`PendingOutputs::deliver`](super::pending::PendingOutputs::deliver)).
fn output(
    session: CK_SESSION_HANDLE,
    func: OutFn,
    input: &[u8],
    out: OutBuf<'_, u8>,
    produce: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<()> {
    let d = PENDING.deliver(session, func, input, out.capacity(), produce)?;
    out.deliver(d)
}

/// Argument checks of a not-supported `(in, in_len, out, out_len)` call.
///
/// # Safety
/// As [`slice_in`] for `(p_in, n_in)`.
unsafe fn check_in_out(p_in: *const u8, n_in: CK_ULONG, out_len: *const CK_ULONG) -> Result<()> {
    // SAFETY: forwarded to our caller's promise.
    unsafe { slice_in(p_in, n_in) }?;
    check_ptr(out_len, "NULL output length pointer")
}

// ---------------------------------------------------------------------------
// Encryption: not supported.

/// C_EncryptInit: not supported.
#[no_mangle]
pub extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_EncryptInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |note| {
            if !pMechanism.is_null() {
                // SAFETY: PKCS#11 caller: a valid CK_MECHANISM.
                unsafe { mechanism(pMechanism, note) }?;
            }
            fail(CKR_FUNCTION_NOT_SUPPORTED, "encryption")
        },
    )
}

/// C_Encrypt: not supported.
#[no_mangle]
pub extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    _pEncryptedData: *mut CK_BYTE,
    pulEncryptedDataLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_Encrypt",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pData readable for ulDataLen bytes.
            unsafe { check_in_out(pData, ulDataLen, pulEncryptedDataLen) }?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "encryption")
        },
    )
}

/// C_EncryptUpdate: not supported.
#[no_mangle]
pub extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
    _pEncryptedPart: *mut CK_BYTE,
    pulEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_EncryptUpdate",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pPart readable for ulPartLen bytes.
            unsafe { check_in_out(pPart, ulPartLen, pulEncryptedPartLen) }?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "encryption")
        },
    )
}

/// C_EncryptFinal: not supported.
#[no_mangle]
pub extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    _pLastEncryptedPart: *mut CK_BYTE,
    pulLastEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_EncryptFinal",
        Init::Required,
        &[("session", hSession)],
        |_| {
            check_ptr(pulLastEncryptedPartLen, "NULL pulLastEncryptedPartLen")?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "encryption")
        },
    )
}

// ---------------------------------------------------------------------------
// Decryption.

/// C_DecryptInit (NULL mechanism: see the module documentation).
#[no_mangle]
pub extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_DecryptInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |note| {
            // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
            unsafe {
                init_op(hSession, Family::Decrypt, pMechanism, note, |m| {
                    api::decrypt_init(hSession, m, hKey)
                })
            }
        },
    )
}

/// C_Decrypt, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_Decrypt",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: the input readable, pulDataLen
            // readable/writable, pData NULL or writable for *pulDataLen bytes.
            let (input, out) = unsafe {
                (
                    slice_in(pEncryptedData, ulEncryptedDataLen)?,
                    OutBuf::new(pData, pulDataLen)?,
                )
            };
            output(hSession, OutFn::Decrypt, input, out, || {
                api::decrypt(hSession, input)
            })
        },
    )
}

/// C_DecryptUpdate, with the §5.2 size query (the output may be empty).
#[no_mangle]
pub extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: *mut CK_BYTE,
    ulEncryptedPartLen: CK_ULONG,
    pPart: *mut CK_BYTE,
    pulPartLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_DecryptUpdate",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: as in C_Decrypt.
            let (input, out) = unsafe {
                (
                    slice_in(pEncryptedPart, ulEncryptedPartLen)?,
                    OutBuf::new(pPart, pulPartLen)?,
                )
            };
            output(hSession, OutFn::DecryptUpdate, input, out, || {
                api::decrypt_update(hSession, input)
            })
        },
    )
}

/// C_DecryptFinal, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: *mut CK_BYTE,
    pulLastPartLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_DecryptFinal",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: length readable/writable, buffer NULL or
            // writable for *pulLastPartLen bytes.
            let out = unsafe { OutBuf::new(pLastPart, pulLastPartLen) }?;
            output(hSession, OutFn::DecryptFinal, &[], out, || {
                api::decrypt_final(hSession)
            })
        },
    )
}

// ---------------------------------------------------------------------------
// Digests.

/// C_DigestInit (NULL mechanism: see the module documentation).
#[no_mangle]
pub extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
) -> CK_RV {
    run(
        "C_DigestInit",
        Init::Required,
        &[("session", hSession)],
        |note| {
            // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
            unsafe {
                init_op(hSession, Family::Digest, pMechanism, note, |m| {
                    api::digest_init(hSession, m)
                })
            }
        },
    )
}

/// C_Digest, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    run("C_Digest", Init::Required, &[("session", hSession)], |_| {
        // SAFETY: as in C_Decrypt.
        let (input, out) = unsafe {
            (
                slice_in(pData, ulDataLen)?,
                OutBuf::new(pDigest, pulDigestLen)?,
            )
        };
        output(hSession, OutFn::Digest, input, out, || {
            api::digest(hSession, input)
        })
    })
}

/// C_DigestUpdate.
#[no_mangle]
pub extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_DigestUpdate",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pPart readable for ulPartLen bytes.
            let part = unsafe { slice_in(pPart, ulPartLen) }?;
            PENDING.forget(hSession, Family::Digest);
            api::digest_update(hSession, part)
        },
    )
}

/// C_DigestKey: not supported.
#[no_mangle]
pub extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    run(
        "C_DigestKey",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |_| fail(CKR_FUNCTION_NOT_SUPPORTED, "C_DigestKey"),
    )
}

/// C_DigestFinal, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_DigestFinal",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: as in C_DecryptFinal.
            let out = unsafe { OutBuf::new(pDigest, pulDigestLen) }?;
            output(hSession, OutFn::DigestFinal, &[], out, || {
                api::digest_final(hSession)
            })
        },
    )
}

// ---------------------------------------------------------------------------
// Signatures.

/// C_SignInit (NULL mechanism: see the module documentation).
#[no_mangle]
pub extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_SignInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |note| {
            // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
            unsafe {
                init_op(hSession, Family::Sign, pMechanism, note, |m| {
                    api::sign_init(hSession, m, hKey)
                })
            }
        },
    )
}

/// C_Sign, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    run("C_Sign", Init::Required, &[("session", hSession)], |_| {
        // SAFETY: as in C_Decrypt.
        let (input, out) = unsafe {
            (
                slice_in(pData, ulDataLen)?,
                OutBuf::new(pSignature, pulSignatureLen)?,
            )
        };
        output(hSession, OutFn::Sign, input, out, || {
            api::sign(hSession, input)
        })
    })
}

/// C_SignUpdate.
#[no_mangle]
pub extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_SignUpdate",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pPart readable for ulPartLen bytes.
            let part = unsafe { slice_in(pPart, ulPartLen) }?;
            PENDING.forget(hSession, Family::Sign);
            api::sign_update(hSession, part)
        },
    )
}

/// C_SignFinal, with the §5.2 size query.
#[no_mangle]
pub extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_SignFinal",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: as in C_DecryptFinal.
            let out = unsafe { OutBuf::new(pSignature, pulSignatureLen) }?;
            output(hSession, OutFn::SignFinal, &[], out, || {
                api::sign_final(hSession)
            })
        },
    )
}

/// C_SignRecoverInit: not supported.
#[no_mangle]
pub extern "C" fn C_SignRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_SignRecoverInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |_| {
            check_ptr(pMechanism, "NULL pMechanism")?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "sign with recovery")
        },
    )
}

/// C_SignRecover: not supported.
#[no_mangle]
pub extern "C" fn C_SignRecover(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    _pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_SignRecover",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pData readable for ulDataLen bytes.
            unsafe { check_in_out(pData, ulDataLen, pulSignatureLen) }?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "sign with recovery")
        },
    )
}

// ---------------------------------------------------------------------------
// Verification.

/// C_VerifyInit (NULL mechanism: see the module documentation; nothing
/// of a verification waits in the output cache).
#[no_mangle]
pub extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_VerifyInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |note| {
            if pMechanism.is_null() {
                return api::cancel_operation(hSession, api::OpKind::Verify);
            }
            // SAFETY: PKCS#11 caller: a valid CK_MECHANISM.
            let m = unsafe { mechanism(pMechanism, note) }?;
            api::verify_init(hSession, m, hKey)
        },
    )
}

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

/// C_VerifyUpdate.
#[no_mangle]
pub extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_VerifyUpdate",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pPart readable for ulPartLen bytes.
            let part = unsafe { slice_in(pPart, ulPartLen) }?;
            api::verify_update(hSession, part)
        },
    )
}

/// C_VerifyFinal.
#[no_mangle]
pub extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_VerifyFinal",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pSignature readable for ulSignatureLen bytes.
            let sig = unsafe { slice_in(pSignature, ulSignatureLen) }?;
            api::verify_final(hSession, sig)
        },
    )
}

/// C_VerifyRecoverInit: not supported.
#[no_mangle]
pub extern "C" fn C_VerifyRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_VerifyRecoverInit",
        Init::Required,
        &[("session", hSession), ("key", hKey)],
        |_| {
            check_ptr(pMechanism, "NULL pMechanism")?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "verify with recovery")
        },
    )
}

/// C_VerifyRecover: not supported.
#[no_mangle]
pub extern "C" fn C_VerifyRecover(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
    _pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_VerifyRecover",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pSignature readable for ulSignatureLen bytes.
            unsafe { check_in_out(pSignature, ulSignatureLen, pulDataLen) }?;
            fail(CKR_FUNCTION_NOT_SUPPORTED, "verify with recovery")
        },
    )
}

// ---------------------------------------------------------------------------
// Dual-function operations: not supported.

macro_rules! dual_not_supported {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pPart: *mut CK_BYTE,
            ulPartLen: CK_ULONG,
            _pOut: *mut CK_BYTE,
            pulOutLen: *mut CK_ULONG,
        ) -> CK_RV {
            run(stringify!($name), Init::Required, &[("session", hSession)], |_| {
                // SAFETY: PKCS#11 caller: pPart readable for ulPartLen bytes.
                unsafe { check_in_out(pPart, ulPartLen, pulOutLen) }?;
                fail(CKR_FUNCTION_NOT_SUPPORTED, "dual-function operation")
            })
        }
    )*};
}

dual_not_supported! {
    /// C_DigestEncryptUpdate: not supported.
    C_DigestEncryptUpdate;
    /// C_DecryptDigestUpdate: not supported.
    C_DecryptDigestUpdate;
    /// C_SignEncryptUpdate: not supported.
    C_SignEncryptUpdate;
    /// C_DecryptVerifyUpdate: not supported.
    C_DecryptVerifyUpdate;
}
