//! Session management (PKCS#11 3.0 §5.6): open/close, session info,
//! operation state (not supported), login and logout, C_LoginUser and
//! C_SessionCancel (not supported).

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::core::api;

use super::args::{check_ptr, pin_in, slice_in};
use super::shapes::{not_supported, value_out};
use super::wrap::{run, Init};

/// C_OpenSession. Notification callbacks are accepted and never called
/// (PKCS#11 lets a module not call them).
#[no_mangle]
pub extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    let handles = [("slot", slotID), ("flags", flags)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out(
            "C_OpenSession",
            &handles,
            phSession,
            "NULL phSession",
            |_| api::open_session(slotID, flags),
        )
    }
}

/// C_CloseSession (its operations end with it).
#[no_mangle]
pub extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    run(
        "C_CloseSession",
        Init::Required,
        &[("session", hSession)],
        |_| api::close_session(hSession),
    )
}

/// C_CloseAllSessions.
#[no_mangle]
pub extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    run(
        "C_CloseAllSessions",
        Init::Required,
        &[("slot", slotID)],
        |_| api::close_all_sessions(slotID),
    )
}

/// C_GetSessionInfo.
#[no_mangle]
pub extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: *mut CK_SESSION_INFO,
) -> CK_RV {
    let handles = [("session", hSession)];
    // SAFETY: PKCS#11 caller: NULL or writable.
    unsafe {
        value_out("C_GetSessionInfo", &handles, pInfo, "NULL pInfo", |_| {
            api::get_session_info(hSession)
        })
    }
}

/// C_GetOperationState: not supported.
#[no_mangle]
pub extern "C" fn C_GetOperationState(
    hSession: CK_SESSION_HANDLE,
    _pOperationState: *mut CK_BYTE,
    pulOperationStateLen: *mut CK_ULONG,
) -> CK_RV {
    let handles = [("session", hSession)];
    not_supported("C_GetOperationState", &handles, "operation state", |_| {
        check_ptr(pulOperationStateLen, "NULL pulOperationStateLen")
    })
}

/// C_SetOperationState: not supported.
#[no_mangle]
pub extern "C" fn C_SetOperationState(
    hSession: CK_SESSION_HANDLE,
    pOperationState: *mut CK_BYTE,
    ulOperationStateLen: CK_ULONG,
    hEncryptionKey: CK_OBJECT_HANDLE,
    hAuthenticationKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    let h = [
        ("session", hSession),
        ("encryption_key", hEncryptionKey),
        ("authentication_key", hAuthenticationKey),
    ];
    not_supported("C_SetOperationState", &h, "operation state", |_| {
        // SAFETY: PKCS#11 caller: NULL or readable for the length.
        unsafe { slice_in(pOperationState, ulOperationStateLen) }.map(drop)
    })
}

/// C_Login. A NULL PIN reaches the core as `None` (protected
/// authentication path; the core decides, e.g. for a PKA-only login).
#[no_mangle]
pub extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    run(
        "C_Login",
        Init::Required,
        &[("session", hSession), ("user", userType)],
        |_| {
            // SAFETY: PKCS#11 caller: NULL or readable for ulPinLen bytes.
            let pin = unsafe { pin_in(pPin, ulPinLen) }?;
            api::login(hSession, userType, pin)
        },
    )
}

/// C_LoginUser (3.0): not supported.
#[no_mangle]
pub extern "C" fn C_LoginUser(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pUsername: *mut CK_UTF8CHAR,
    ulUsernameLen: CK_ULONG,
) -> CK_RV {
    let handles = [("session", hSession), ("user", userType)];
    not_supported("C_LoginUser", &handles, "C_LoginUser", |_| {
        // SAFETY: PKCS#11 caller: NULL or readable for the lengths.
        unsafe { pin_in(pPin, ulPinLen) }?;
        // SAFETY: as above.
        unsafe { slice_in(pUsername, ulUsernameLen) }.map(drop)
    })
}

/// C_Logout.
#[no_mangle]
pub extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    run("C_Logout", Init::Required, &[("session", hSession)], |_| {
        api::logout(hSession)
    })
}

/// C_SessionCancel (3.0): not supported.
#[no_mangle]
pub extern "C" fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    let handles = [("session", hSession), ("flags", flags)];
    not_supported("C_SessionCancel", &handles, "C_SessionCancel", |_| Ok(()))
}
