//! Key management (PKCS#11 3.0 §5.18), random numbers (PKCS#11 3.0 §5.19) and the
//! legacy parallel functions (PKCS#11 3.0 §5.20).

use cryptoki_sys::*;

use crate::core::api;
use crate::error::fail;

use super::args::{check_ptr, count, fill_exact, slice_in, Out};
use super::convert::{mechanism, template};
use super::shapes::{input_fns, not_supported, value_out};
use super::wrap::{run, Init, Note};

/// C_GenerateKey: not supported (the token holds key pairs only).
#[no_mangle]
pub extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession)];
    not_supported("C_GenerateKey", &handles, "C_GenerateKey", |note| {
        check_ptr(phKey, "NULL phKey")?;
        // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
        unsafe { mechanism(pMechanism, note) }?;
        // SAFETY: PKCS#11 caller: a template of ulCount attributes.
        unsafe { template(pTemplate, ulCount, note) }.map(drop)
    })
}

/// C_GenerateKeyPair.
#[no_mangle]
pub extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    run(
        "C_GenerateKeyPair",
        Init::Required,
        &[("session", hSession)],
        |note| {
            // SAFETY: PKCS#11 caller: NULL or writable.
            let out_pub = unsafe { Out::new(phPublicKey, "NULL phPublicKey") }?;
            // SAFETY: as above.
            let out_priv = unsafe { Out::new(phPrivateKey, "NULL phPrivateKey") }?;
            // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
            let m = unsafe { mechanism(pMechanism, note) }?;
            // SAFETY: PKCS#11 caller: templates of the given counts.
            let public = unsafe { template(pPublicKeyTemplate, ulPublicKeyAttributeCount, note) }?;
            // SAFETY: as above.
            let private =
                unsafe { template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount, note) }?;
            let (pub_h, priv_h) = api::generate_key_pair(hSession, m, &public, &private)?;
            out_pub.set(pub_h);
            out_priv.set(priv_h);
            Ok(())
        },
    )
}

/// C_WrapKey: not supported.
#[no_mangle]
pub extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    _pWrappedKey: *mut CK_BYTE,
    pulWrappedKeyLen: *mut CK_ULONG,
) -> CK_RV {
    let handles = [
        ("session", hSession),
        ("wrapping_key", hWrappingKey),
        ("key", hKey),
    ];
    not_supported("C_WrapKey", &handles, "C_WrapKey", |note| {
        check_ptr(pulWrappedKeyLen, "NULL pulWrappedKeyLen")?;
        // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
        unsafe { mechanism(pMechanism, note) }.map(drop)
    })
}

/// C_UnwrapKey: not supported.
#[no_mangle]
pub extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession), ("unwrapping_key", hUnwrappingKey)];
    not_supported("C_UnwrapKey", &handles, "C_UnwrapKey", |note| {
        check_ptr(phKey, "NULL phKey")?;
        // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
        unsafe { mechanism(pMechanism, note) }?;
        // SAFETY: PKCS#11 caller: readable for the length.
        unsafe { slice_in(pWrappedKey, ulWrappedKeyLen) }?;
        // SAFETY: PKCS#11 caller: a template of ulAttributeCount attributes.
        unsafe { template(pTemplate, ulAttributeCount, note) }.map(drop)
    })
}

/// C_DeriveKey (ECDH1 parameters decoded, see [`mechanism`]).
#[no_mangle]
pub extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession), ("base_key", hBaseKey)];
    let derive = |note: &mut Note| {
        // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
        let m = unsafe { mechanism(pMechanism, note) }?;
        // SAFETY: PKCS#11 caller: a template of ulAttributeCount attributes.
        let t = unsafe { template(pTemplate, ulAttributeCount, note) }?;
        api::derive_key(hSession, m, hBaseKey, &t)
    };
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe { value_out("C_DeriveKey", &handles, phKey, "NULL phKey", derive) }
}

input_fns! {
    /// C_SeedRandom.
    C_SeedRandom(pSeed, ulSeedLen) => api::seed_random;
}

/// C_GenerateRandom: exactly `ulRandomLen` bytes from the card.
#[no_mangle]
pub extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    pRandomData: *mut CK_BYTE,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_GenerateRandom",
        Init::Required,
        &[("session", hSession), ("len", ulRandomLen)],
        |_| {
            let n = count(ulRandomLen)?;
            if n > 0 {
                check_ptr(pRandomData, "NULL pRandomData")?;
            }
            let bytes = zeroize::Zeroizing::new(api::generate_random(hSession, n)?);
            // SAFETY: PKCS#11 caller: pRandomData writable for ulRandomLen bytes.
            unsafe { fill_exact(pRandomData, n, &bytes) }
        },
    )
}

/// C_GetFunctionStatus: legacy, CKR_FUNCTION_NOT_PARALLEL.
#[no_mangle]
pub extern "C" fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) -> CK_RV {
    run(
        "C_GetFunctionStatus",
        Init::Required,
        &[("session", hSession)],
        |_| fail(CKR_FUNCTION_NOT_PARALLEL, "legacy function"),
    )
}

/// C_CancelFunction: legacy, CKR_FUNCTION_NOT_PARALLEL.
#[no_mangle]
pub extern "C" fn C_CancelFunction(hSession: CK_SESSION_HANDLE) -> CK_RV {
    run(
        "C_CancelFunction",
        Init::Required,
        &[("session", hSession)],
        |_| fail(CKR_FUNCTION_NOT_PARALLEL, "legacy function"),
    )
}
