//! Slot and token management (PKCS#11 3.0 §5.5): slot and mechanism lists,
//! slot/token/mechanism information, C_WaitForSlotEvent, C_InitToken,
//! C_InitPIN, C_SetPIN.

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::core::api;
use crate::error::{fail, Error};

use super::args::{pin_in, ref_in, OutBuf};
use super::shapes::value_out;
use super::wrap::{run, Init};

/// C_GetSlotList, with the PKCS#11 3.0 §5.2 size query (NULL list → count);
/// the call with a buffer after it gets the list it counted.
#[no_mangle]
pub extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_GetSlotList",
        Init::Required,
        &[("token_present", tokenPresent.into())],
        |_| {
            // SAFETY: PKCS#11 caller: pulCount readable/writable, pSlotList NULL
            // or writable for *pulCount slot ids.
            let out = unsafe { OutBuf::new(pSlotList, pulCount) }?;
            let size_query = out.capacity().is_none();
            out.put(&api::get_slot_list(tokenPresent != CK_FALSE, size_query)?)
        },
    )
}

/// C_GetSlotInfo.
#[no_mangle]
pub extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    let handles = [("slot", slotID)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_GetSlotInfo", &handles, pInfo, "NULL pInfo", |_| {
            api::get_slot_info(slotID)
        })
    }
}

/// C_GetTokenInfo.
#[no_mangle]
pub extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    let handles = [("slot", slotID)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_GetTokenInfo", &handles, pInfo, "NULL pInfo", |_| {
            api::get_token_info(slotID)
        })
    }
}

/// C_WaitForSlotEvent: `pReserved` must be NULL; CKF_DONT_BLOCK makes it
/// non-blocking (CKR_NO_EVENT when nothing happened).
#[no_mangle]
pub extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    pSlot: *mut CK_SLOT_ID,
    pReserved: *mut c_void,
) -> CK_RV {
    let handles = [("flags", flags)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_WaitForSlotEvent", &handles, pSlot, "NULL pSlot", |_| {
            if !pReserved.is_null() {
                return fail(CKR_ARGUMENTS_BAD, "pReserved must be NULL");
            }
            api::wait_for_slot_event(flags & CKF_DONT_BLOCK == 0)
        })
    }
}

/// C_GetMechanismList, with the PKCS#11 3.0 §5.2 size query.
#[no_mangle]
pub extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    run(
        "C_GetMechanismList",
        Init::Required,
        &[("slot", slotID)],
        |_| {
            // SAFETY: PKCS#11 caller: pulCount readable/writable, the list NULL
            // or writable for *pulCount entries.
            let out = unsafe { OutBuf::new(pMechanismList, pulCount) }?;
            out.put(&api::get_mechanism_list(slotID)?)
        },
    )
}

/// C_GetMechanismInfo.
#[no_mangle]
pub extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    let handles = [("slot", slotID), ("mechanism", type_)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_GetMechanismInfo", &handles, pInfo, "NULL pInfo", |_| {
            api::get_mechanism_info(slotID, type_)
        })
    }
}

/// C_InitToken: the SO-PIN and the 32-byte blank-padded label. A NULL PIN
/// (protected authentication path) is CKR_ARGUMENTS_BAD: the token has none.
#[no_mangle]
pub extern "C" fn C_InitToken(
    slotID: CK_SLOT_ID,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pLabel: *mut CK_UTF8CHAR,
) -> CK_RV {
    run("C_InitToken", Init::Required, &[("slot", slotID)], |_| {
        // SAFETY: PKCS#11 caller: pLabel NULL or 32 readable bytes.
        let label = unsafe { ref_in(pLabel as *const [u8; 32], "NULL pLabel") }?;
        // SAFETY: PKCS#11 caller: pPin NULL or ulPinLen readable bytes.
        let pin = unsafe { pin_in(pPin, ulPinLen) }?
            .ok_or(Error::new(CKR_ARGUMENTS_BAD, "NULL SO-PIN"))?;
        api::init_token(slotID, pin, label)
    })
}

/// C_InitPIN (NULL PIN: CKR_ARGUMENTS_BAD, no protected path).
#[no_mangle]
pub extern "C" fn C_InitPIN(
    hSession: CK_SESSION_HANDLE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_InitPIN",
        Init::Required,
        &[("session", hSession)],
        |_| {
            // SAFETY: PKCS#11 caller: pPin NULL or ulPinLen readable bytes.
            let pin = unsafe { pin_in(pPin, ulPinLen) }?
                .ok_or(Error::new(CKR_ARGUMENTS_BAD, "NULL PIN"))?;
            api::init_pin(hSession, pin)
        },
    )
}

/// C_SetPIN (NULL PINs: CKR_ARGUMENTS_BAD, no protected path).
#[no_mangle]
pub extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: *mut CK_UTF8CHAR,
    ulOldLen: CK_ULONG,
    pNewPin: *mut CK_UTF8CHAR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    run("C_SetPIN", Init::Required, &[("session", hSession)], |_| {
        // SAFETY: PKCS#11 caller: each PIN NULL or readable for its length.
        let old = unsafe { pin_in(pOldPin, ulOldLen) }?
            .ok_or(Error::new(CKR_ARGUMENTS_BAD, "NULL old PIN"))?;
        // SAFETY: as above.
        let new = unsafe { pin_in(pNewPin, ulNewLen) }?
            .ok_or(Error::new(CKR_ARGUMENTS_BAD, "NULL new PIN"))?;
        api::set_pin(hSession, old, new)
    })
}
