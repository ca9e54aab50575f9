//! General-purpose functions (PKCS#11 3.0 §5.4): C_Initialize, C_Finalize,
//! C_GetInfo. C_GetFunctionList and the interfaces are in
//! [`super::interface`].

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::core::api;
use crate::error::fail;

use super::convert::init_args;
use super::shapes::value_out;
use super::wrap::{run, Init};

/// C_Initialize: decodes the CK_C_INITIALIZE_ARGS (see
/// [`init_args`]) and initialises the core.
#[no_mangle]
pub extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    run("C_Initialize", Init::NotRequired, &[], |_| {
        // SAFETY: PKCS#11 caller: NULL or a CK_C_INITIALIZE_ARGS whose
        // pReserved is NULL or a NUL-terminated string.
        let args = unsafe { init_args(pInitArgs as *const CK_C_INITIALIZE_ARGS) }?;
        api::initialize(args)
    })
}

/// C_Finalize: `pReserved` must be NULL.
#[no_mangle]
pub extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    run("C_Finalize", Init::Required, &[], |_| {
        if !pReserved.is_null() {
            return fail(CKR_ARGUMENTS_BAD, "pReserved must be NULL");
        }
        api::finalize()
    })
}

/// C_GetInfo.
#[no_mangle]
pub extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    // SAFETY: PKCS#11 caller: NULL or writable CK_INFO.
    unsafe { value_out("C_GetInfo", &[], pInfo, "NULL pInfo", |_| api::get_info()) }
}
