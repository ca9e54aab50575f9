//! Object management (PKCS#11 3.0 §5.7): create, copy (not supported),
//! destroy, size, attributes, search.

use cryptoki_sys::*;

use crate::core::api;
use crate::error::Error;

use super::args::{check_ptr, count, slice_in_out, to_ulong, Out};
use super::convert::{get_attribute_values, template};
use super::shapes::{not_supported, value_out};
use super::wrap::{run, Init, Note};

/// C_CreateObject.
#[no_mangle]
pub extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession)];
    let create = |note: &mut Note| {
        // SAFETY: PKCS#11 caller: a template of ulCount attributes.
        let t = unsafe { template(pTemplate, ulCount, note) }?;
        api::create_object(hSession, &t)
    };
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out(
            "C_CreateObject",
            &handles,
            phObject,
            "NULL phObject",
            create,
        )
    }
}

/// C_CopyObject: not supported.
#[no_mangle]
pub extern "C" fn C_CopyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phNewObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let handles = [("session", hSession), ("object", hObject)];
    not_supported("C_CopyObject", &handles, "C_CopyObject", |note| {
        check_ptr(phNewObject, "NULL phNewObject")?;
        // SAFETY: PKCS#11 caller: a template of ulCount attributes.
        unsafe { template(pTemplate, ulCount, note) }.map(drop)
    })
}

/// C_DestroyObject.
#[no_mangle]
pub extern "C" fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) -> CK_RV {
    run(
        "C_DestroyObject",
        Init::Required,
        &[("session", hSession), ("object", hObject)],
        |_| api::destroy_object(hSession, hObject),
    )
}

/// C_GetObjectSize.
#[no_mangle]
pub extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    let handles = [("session", hSession), ("object", hObject)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_GetObjectSize", &handles, pulSize, "NULL pulSize", |_| {
            to_ulong(api::get_object_size(hSession, hObject)?)
        })
    }
}

/// C_GetAttributeValue: one core call per attribute; the per-attribute
/// protocol and the precedence of the return values are described at
/// [`get_attribute_values`].
#[no_mangle]
pub extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    run(
        "C_GetAttributeValue",
        Init::Required,
        &[("session", hSession), ("object", hObject)],
        |note| {
            // SAFETY: PKCS#11 caller: NULL or ulCount attributes the module may
            // update during the call.
            let t = unsafe { slice_in_out(pTemplate, ulCount) }?;
            if t.is_empty() {
                // Nothing to fetch, but the session and the object must
                // exist (every object has a CKA_CLASS).
                api::get_attribute(hSession, hObject, CKA_CLASS)?;
                return Ok(());
            }
            note.attr_types(t.iter().map(|a| a.type_));
            // SAFETY: PKCS#11 caller: each pValue NULL or writable for ulValueLen.
            unsafe { get_attribute_values(t, |kind| api::get_attribute(hSession, hObject, kind)) }
        },
    )
}

/// C_SetAttributeValue.
#[no_mangle]
pub extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    run(
        "C_SetAttributeValue",
        Init::Required,
        &[("session", hSession), ("object", hObject)],
        |note| {
            // SAFETY: PKCS#11 caller: a template of ulCount attributes.
            let t = unsafe { template(pTemplate, ulCount, note) }?;
            api::set_attributes(hSession, hObject, &t)
        },
    )
}

/// C_FindObjectsInit (an empty template, NULL with count 0, finds all).
#[no_mangle]
pub extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    run(
        "C_FindObjectsInit",
        Init::Required,
        &[("session", hSession)],
        |note| {
            // SAFETY: PKCS#11 caller: a template of ulCount attributes.
            let t = unsafe { template(pTemplate, ulCount, note) }?;
            api::find_objects_init(hSession, &t)
        },
    )
}

/// C_FindObjects: up to `ulMaxObjectCount` handles.
#[no_mangle]
pub extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_FindObjects",
        Init::Required,
        &[("session", hSession), ("max", ulMaxObjectCount)],
        |_| {
            check_ptr(phObject, "NULL phObject")?;
            // SAFETY: PKCS#11 caller: NULL or writable.
            let n_out = unsafe { Out::new(pulObjectCount, "NULL pulObjectCount") }?;
            let max = count(ulMaxObjectCount)?;
            let found = api::find_objects(hSession, max)?;
            if found.len() > max {
                return Err(Error::new(
                    CKR_GENERAL_ERROR,
                    "the core found more than asked",
                ));
            }
            // SAFETY: phObject is non-NULL, aligned, and writable for
            // ulMaxObjectCount >= found.len() handles (PKCS#11 caller).
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), phObject, found.len()) };
            n_out.set(to_ulong(found.len())?);
            Ok(())
        },
    )
}

/// C_FindObjectsFinal.
#[no_mangle]
pub extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    run(
        "C_FindObjectsFinal",
        Init::Required,
        &[("session", hSession)],
        |_| api::find_objects_final(hSession),
    )
}
