//! libpicohsm_pkcs11.so loaded as a C application loads it (`libloading`),
//! for the tests of the exported C layer.
#![allow(dead_code)]

use std::sync::OnceLock;

use cryptoki_sys::*;
use libloading::Library;

use super::module_path;

/// `C_GetInterface` (PKCS#11 3.0).
pub type GetInterface = unsafe extern "C" fn(
    *mut CK_UTF8CHAR,
    *mut CK_VERSION,
    *mut *mut CK_INTERFACE,
    CK_FLAGS,
) -> CK_RV;

/// The module, built first ([`module_path`]) and loaded once per process;
/// it stays loaded, so the function lists it returns stay valid.
pub fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let path = module_path();
        // SAFETY: loading our own module runs no initialisers with
        // preconditions.
        unsafe { Library::new(&path) }.unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
    })
}

/// An exported function by name.
pub fn sym<T: Copy>(name: &str) -> T {
    // SAFETY: every caller names a PKCS#11 function with the matching
    // cryptoki-sys function-pointer type.
    unsafe {
        *library()
            .get::<T>(name.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}
