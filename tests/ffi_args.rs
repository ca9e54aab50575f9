//! The exported C layer of `libpicohsm_pkcs11.so`, loaded as a C client
//! would load it: function lists, interfaces, and the argument errors that
//! do not depend on the core (the module is never initialised here).

mod common;

use std::ffi::{c_void, CStr};
use std::ptr::null_mut;

use common::ffi::{sym, GetInterface};
use common::module_path;
use cryptoki_sys::*;

type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
type GetInterfaceList = unsafe extern "C" fn(*mut CK_INTERFACE, *mut CK_ULONG) -> CK_RV;
type Initialize = unsafe extern "C" fn(*mut c_void) -> CK_RV;
type GetInfo = unsafe extern "C" fn(*mut CK_INFO) -> CK_RV;

fn version_of(list: *const c_void) -> (u8, u8) {
    assert!(!list.is_null());
    // SAFETY: every function list starts with its CK_VERSION.
    let v = unsafe { *(list as *const CK_VERSION) };
    (v.major, v.minor)
}

#[test]
fn get_function_list_checks_its_pointer_and_returns_the_2_40_list() {
    let f: GetFunctionList = sym("C_GetFunctionList");
    // SAFETY: a valid call with a NULL argument.
    assert_eq!(unsafe { f(null_mut()) }, CKR_ARGUMENTS_BAD);
    let mut list: *mut CK_FUNCTION_LIST = null_mut();
    // SAFETY: `list` is a live local.
    assert_eq!(unsafe { f(&mut list) }, CKR_OK);
    assert_eq!(version_of(list as *const c_void), (2, 40));
    // SAFETY: the module returned a valid list.
    let l = unsafe { &*list };
    assert!(l.C_Initialize.is_some() && l.C_Sign.is_some() && l.C_WaitForSlotEvent.is_some());
}

#[test]
fn interface_list_size_query_and_contents() {
    let f: GetInterfaceList = sym("C_GetInterfaceList");
    let mut n: CK_ULONG = 0;
    // SAFETY: NULL list (size query) and a live count.
    assert_eq!(unsafe { f(null_mut(), &mut n) }, CKR_OK);
    assert_eq!(n, 2);
    // SAFETY: NULL count.
    assert_eq!(unsafe { f(null_mut(), null_mut()) }, CKR_ARGUMENTS_BAD);
    let empty = CK_INTERFACE {
        pInterfaceName: null_mut(),
        pFunctionList: null_mut(),
        flags: 0,
    };
    let mut list = [empty; 2];
    n = 1;
    // SAFETY: room for `n` = 1 entries.
    let rv = unsafe { f(list.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_BUFFER_TOO_SMALL);
    assert_eq!(n, 2);
    assert!(
        list[0].pFunctionList.is_null(),
        "nothing written when too small"
    );
    // SAFETY: room for 2.
    assert_eq!(unsafe { f(list.as_mut_ptr(), &mut n) }, CKR_OK);
    assert_eq!(n, 2);
    for i in &list {
        // SAFETY: the module's interface names are C strings.
        let name = unsafe { CStr::from_ptr(i.pInterfaceName as *const _) };
        assert_eq!(name, c"PKCS 11");
        assert_eq!(i.flags, 0);
    }
    assert_eq!(version_of(list[0].pFunctionList), (3, 0));
    assert_eq!(version_of(list[1].pFunctionList), (2, 40));
}

#[test]
fn get_interface_by_name_and_version() {
    let f: GetInterface = sym("C_GetInterface");
    let name = c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR;
    let get = |name: *mut CK_UTF8CHAR, v: Option<(u8, u8)>, flags| {
        let mut v = v.map(|(major, minor)| CK_VERSION { major, minor });
        let vp = v.as_mut().map_or(null_mut(), |v| v as *mut CK_VERSION);
        let mut iface: *mut CK_INTERFACE = null_mut();
        // SAFETY: live locals or NULL; `name` is NULL or a C string.
        let rv = unsafe { f(name, vp, &mut iface, flags) };
        if rv != CKR_OK {
            return (rv, None);
        }
        // SAFETY: on success the module returned a valid interface.
        let list = unsafe { (*iface).pFunctionList };
        (rv, Some(version_of(list)))
    };
    assert_eq!(get(name, Some((3, 0)), 0), (CKR_OK, Some((3, 0))));
    assert_eq!(get(name, Some((2, 40)), 0), (CKR_OK, Some((2, 40))));
    assert_eq!(
        get(name, None, 0),
        (CKR_OK, Some((3, 0))),
        "3.0 is the default"
    );
    assert_eq!(get(null_mut(), None, 0), (CKR_OK, Some((3, 0))));
    assert_eq!(get(null_mut(), Some((2, 40)), 0), (CKR_OK, Some((2, 40))));
    // OpenSC's p11test 0.23 asks for 2.20: the 2.40 list serves it.
    assert_eq!(get(name, Some((2, 20)), 0), (CKR_OK, Some((2, 40))));
    assert_eq!(get(name, Some((2, 11)), 0).0, CKR_ARGUMENTS_BAD);
    assert_eq!(
        get(c"Vendor".as_ptr() as *mut CK_UTF8CHAR, None, 0).0,
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        get(name, None, CKF_INTERFACE_FORK_SAFE).0,
        CKR_ARGUMENTS_BAD
    );
    // SAFETY: NULL output pointer.
    let rv = unsafe { f(name, null_mut(), null_mut(), 0) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

#[test]
fn calls_before_initialize_are_refused() {
    let get_info: GetInfo = sym("C_GetInfo");
    let mut info = CK_INFO::default();
    // SAFETY: a live local.
    assert_eq!(unsafe { get_info(&mut info) }, CKR_CRYPTOKI_NOT_INITIALIZED);
    // The initialisation check comes before the argument checks.
    // SAFETY: NULL is never dereferenced by a conforming module.
    let rv = unsafe { get_info(null_mut()) };
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    let finalize: Initialize = sym("C_Finalize");
    // SAFETY: NULL pReserved.
    let rv = unsafe { finalize(null_mut()) };
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);

    let mut iface: *mut CK_INTERFACE = null_mut();
    let f: GetInterface = sym("C_GetInterface");
    // SAFETY: live local; NULL name and version.
    assert_eq!(unsafe { f(null_mut(), null_mut(), &mut iface, 0) }, CKR_OK);
    // SAFETY: the default interface is the 3.0 list.
    let l = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
    let mut n: CK_ULONG = 0;
    let mut session: CK_SESSION_HANDLE = 0;
    let mut sig = [0u8; 8];
    let mut sig_len: CK_ULONG = 8;
    // SAFETY: every pointer is a live local or NULL where PKCS#11 allows it.
    unsafe {
        assert_eq!(
            l.C_GetSlotList.unwrap()(CK_TRUE, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            l.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, null_mut(), None, &mut session),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            l.C_Sign.unwrap()(1, sig.as_mut_ptr(), 8, sig.as_mut_ptr(), &mut sig_len),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            l.C_GetFunctionStatus.unwrap()(1),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            l.C_MessageSignInit.unwrap()(1, null_mut(), 0),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
    }
    assert_eq!(sig_len, 8, "nothing written");
}

unsafe extern "C" fn create_mutex(m: *mut *mut c_void) -> CK_RV {
    // SAFETY: never called by the module (it only uses its own locks).
    unsafe { *m = null_mut() };
    CKR_OK
}
unsafe extern "C" fn mutex_op(_: *mut c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn initialize_checks_its_arguments_before_the_core() {
    let init: Initialize = sym("C_Initialize");
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create_mutex),
        DestroyMutex: Some(mutex_op),
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: null_mut(),
    };
    // SAFETY: a live CK_C_INITIALIZE_ARGS.
    let rv = unsafe { init(&mut args as *mut _ as *mut c_void) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    args.LockMutex = Some(mutex_op);
    args.UnlockMutex = Some(mutex_op);
    args.flags = 0;
    // SAFETY: as above.
    let rv = unsafe { init(&mut args as *mut _ as *mut c_void) };
    assert_eq!(rv, CKR_CANT_LOCK);
    let mut bad_utf8 = *b"\xc3(\0";
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = bad_utf8.as_mut_ptr() as *mut c_void;
    // SAFETY: as above; pReserved is a C string.
    let rv = unsafe { init(&mut args as *mut _ as *mut c_void) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    // Still not initialised.
    let get_info: GetInfo = sym("C_GetInfo");
    let mut info = CK_INFO::default();
    // SAFETY: a live local.
    assert_eq!(unsafe { get_info(&mut info) }, CKR_CRYPTOKI_NOT_INITIALIZED);
}

#[test]
fn the_cryptoki_crate_loads_the_module_through_its_3_0_interface() {
    use cryptoki::context::{Function, Pkcs11};
    use cryptoki::error::{Error, RvError};
    let p11 = Pkcs11::new(module_path()).expect("load through cryptoki");
    // Only present in a 3.0 function list.
    assert!(p11.is_fn_supported(Function::MessageSignInit));
    assert!(p11.is_fn_supported(Function::LoginUser));
    match p11.get_library_info() {
        Err(Error::Pkcs11(RvError::CryptokiNotInitialized, Function::GetInfo)) => {}
        other => panic!("expected CKR_CRYPTOKI_NOT_INITIALIZED, got {other:?}"),
    }
}
