//! The function lists and interfaces (PKCS#11 3.0 §5.4): C_GetFunctionList
//! (the 2.40 list), C_GetInterfaceList and C_GetInterface (interface
//! "PKCS 11" in versions 3.0, the default, and 2.40).

use std::cell::UnsafeCell;
use std::ffi::{c_void, CStr};

use cryptoki_sys::*;

use crate::error::fail;

use super::args::{ref_in, Out, OutBuf};
use super::crypto::*;
use super::general::*;
use super::keys::*;
use super::message::*;
use super::object::*;
use super::session::*;
use super::slot::*;
use super::wrap::{run, Init};

/// Fills a function list type with every function of the same name.
macro_rules! function_list {
    ($ty:ident, $major:expr, $minor:expr, [$($f:ident,)*]) => {
        $ty { version: CK_VERSION { major: $major, minor: $minor }, $($f: Some($f),)* }
    };
}

/// Calls `$m!($args [<the 2.40 functions>, $extra])`: the 3.0 list is the
/// 2.40 list (in its order, PKCS#11 3.0 §5.4) followed by the 3.0 additions.
macro_rules! with_2_40_functions {
    ($m:ident!($($args:tt)*) [$($extra:ident,)*]) => {
        $m!($($args)* [
            C_Initialize,
            C_Finalize,
            C_GetInfo,
            C_GetFunctionList,
            C_GetSlotList,
            C_GetSlotInfo,
            C_GetTokenInfo,
            C_GetMechanismList,
            C_GetMechanismInfo,
            C_InitToken,
            C_InitPIN,
            C_SetPIN,
            C_OpenSession,
            C_CloseSession,
            C_CloseAllSessions,
            C_GetSessionInfo,
            C_GetOperationState,
            C_SetOperationState,
            C_Login,
            C_Logout,
            C_CreateObject,
            C_CopyObject,
            C_DestroyObject,
            C_GetObjectSize,
            C_GetAttributeValue,
            C_SetAttributeValue,
            C_FindObjectsInit,
            C_FindObjects,
            C_FindObjectsFinal,
            C_EncryptInit,
            C_Encrypt,
            C_EncryptUpdate,
            C_EncryptFinal,
            C_DecryptInit,
            C_Decrypt,
            C_DecryptUpdate,
            C_DecryptFinal,
            C_DigestInit,
            C_Digest,
            C_DigestUpdate,
            C_DigestKey,
            C_DigestFinal,
            C_SignInit,
            C_Sign,
            C_SignUpdate,
            C_SignFinal,
            C_SignRecoverInit,
            C_SignRecover,
            C_VerifyInit,
            C_Verify,
            C_VerifyUpdate,
            C_VerifyFinal,
            C_VerifyRecoverInit,
            C_VerifyRecover,
            C_DigestEncryptUpdate,
            C_DecryptDigestUpdate,
            C_SignEncryptUpdate,
            C_DecryptVerifyUpdate,
            C_GenerateKey,
            C_GenerateKeyPair,
            C_WrapKey,
            C_UnwrapKey,
            C_DeriveKey,
            C_SeedRandom,
            C_GenerateRandom,
            C_GetFunctionStatus,
            C_CancelFunction,
            C_WaitForSlotEvent,
            $($extra,)*
        ])
    };
}

/// The PKCS#11 3.0 function list: the 2.40 list, then the 3.0 additions.
macro_rules! with_3_0_functions {
    () => {
        with_2_40_functions!(
    function_list!(CK_FUNCTION_LIST_3_0, 3, 0,) [
        C_GetInterfaceList,
        C_GetInterface,
        C_LoginUser,
        C_SessionCancel,
        C_MessageEncryptInit,
        C_EncryptMessage,
        C_EncryptMessageBegin,
        C_EncryptMessageNext,
        C_MessageEncryptFinal,
        C_MessageDecryptInit,
        C_DecryptMessage,
        C_DecryptMessageBegin,
        C_DecryptMessageNext,
        C_MessageDecryptFinal,
        C_MessageSignInit,
        C_SignMessage,
        C_SignMessageBegin,
        C_SignMessageNext,
        C_MessageSignFinal,
        C_MessageVerifyInit,
        C_VerifyMessage,
        C_VerifyMessageBegin,
        C_VerifyMessageNext,
        C_MessageVerifyFinal,
    ]
)
    };
}

/// The PKCS#11 2.40 function list (interface 2.40): the module's own copy,
/// read by its searches; callers get [`HANDED_2_40`].
pub(crate) static FUNCTION_LIST: CK_FUNCTION_LIST =
    with_2_40_functions!(function_list!(CK_FUNCTION_LIST, 2, 40,) []);

/// The PKCS#11 3.0 function list (interface 3.0): the module's own copy;
/// callers get [`HANDED_3_0`].
pub(crate) static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = with_3_0_functions!();

/// A table handed to callers, in writable memory. PKCS#11 makes the
/// function lists and interfaces the module's, but some callers write into
/// them: OpenSC's pkcs11-spy before 0.27 stores its own function list in
/// the CK_INTERFACE it got from C_GetInterface, and a table in read-only
/// memory makes that a SIGSEGV. The module never reads these copies back.
#[repr(transparent)]
struct Handed<T>(UnsafeCell<T>);

// SAFETY: the module only hands out raw pointers to the contents and never
// reads or writes them itself; what callers do through the pointers is
// theirs, as with any PKCS#11 module whose tables are writable.
unsafe impl<T> Sync for Handed<T> {}

impl<T> Handed<T> {
    fn ptr(&self) -> *mut T {
        self.0.get()
    }
}

/// The 2.40 function list C_GetFunctionList and interface 2.40 hand out.
static HANDED_2_40: Handed<CK_FUNCTION_LIST> = Handed(UnsafeCell::new(with_2_40_functions!(
    function_list!(CK_FUNCTION_LIST, 2, 40,) []
)));

/// The 3.0 function list interface 3.0 hands out.
static HANDED_3_0: Handed<CK_FUNCTION_LIST_3_0> = Handed(UnsafeCell::new(with_3_0_functions!()));

/// The interface name, NUL-terminated.
const INTERFACE_NAME: &CStr = c"PKCS 11";

/// The interface name callers get (see [`Handed`]).
static HANDED_NAME: Handed<[u8; 8]> = Handed(UnsafeCell::new(*b"PKCS 11\0"));

/// An interface table, the default (3.0) first.
struct Interfaces([CK_INTERFACE; 2]);

// SAFETY: the pointers in the table point at statics that live for the
// whole program and that the module never writes; sharing them between
// threads is sound.
unsafe impl Sync for Interfaces {}

/// The module's own interface table, searched by C_GetInterface.
static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]);

/// The same table as callers get it: the writable copies, in the same order.
static HANDED_INTERFACES: Handed<[CK_INTERFACE; 2]> = Handed(UnsafeCell::new([
    CK_INTERFACE {
        pInterfaceName: HANDED_NAME.0.get() as *mut CK_UTF8CHAR,
        pFunctionList: HANDED_3_0.0.get() as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: HANDED_NAME.0.get() as *mut CK_UTF8CHAR,
        pFunctionList: HANDED_2_40.0.get() as *mut c_void,
        flags: 0,
    },
]));

/// The handed-out interfaces as C_GetInterfaceList copies them: built from
/// the pointers, never read from the writable table.
fn handed_interfaces() -> [CK_INTERFACE; 2] {
    [
        CK_INTERFACE {
            pInterfaceName: HANDED_NAME.ptr() as *mut CK_UTF8CHAR,
            pFunctionList: HANDED_3_0.ptr() as *mut c_void,
            flags: 0,
        },
        CK_INTERFACE {
            pInterfaceName: HANDED_NAME.ptr() as *mut CK_UTF8CHAR,
            pFunctionList: HANDED_2_40.ptr() as *mut c_void,
            flags: 0,
        },
    ]
}

/// The version an interface's function list starts with.
fn version_of(i: &CK_INTERFACE) -> CK_VERSION {
    // SAFETY: every pFunctionList in INTERFACES points at a static function
    // list, and both list types start with their CK_VERSION (repr(C)).
    unsafe { (i.pFunctionList as *const CK_VERSION).read() }
}

/// C_GetFunctionList: the 2.40 list (the list is static; callers must not
/// write to it).
#[no_mangle]
pub extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    run("C_GetFunctionList", Init::NotRequired, &[], |_| {
        // SAFETY: PKCS#11 caller: NULL or writable.
        let out = unsafe { Out::new(ppFunctionList, "NULL ppFunctionList") }?;
        out.set(HANDED_2_40.ptr());
        Ok(())
    })
}

/// C_GetInterfaceList: both interfaces, 3.0 first, with the PKCS#11 3.0 §5.2 size query.
#[no_mangle]
pub extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    run("C_GetInterfaceList", Init::NotRequired, &[], |_| {
        // SAFETY: PKCS#11 caller: pulCount readable/writable, the list NULL
        // or writable for *pulCount interfaces.
        let out = unsafe { OutBuf::new(pInterfacesList, pulCount) }?;
        out.put(&handed_interfaces())
    })
}

/// C_GetInterface: by name (NULL: any; only "PKCS 11" exists), version
/// (NULL: the default, 3.0; else 3.0 or 2.40 exactly, and 2.20, which the
/// 2.40 interface serves: OpenSC's p11test 0.23 asks for it) and flags (the
/// interfaces have none, so any requested flag finds nothing). No match is
/// CKR_ARGUMENTS_BAD.
#[no_mangle]
pub extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    run(
        "C_GetInterface",
        Init::NotRequired,
        &[("flags", flags)],
        |_| {
            // SAFETY: PKCS#11 caller: NULL or writable.
            let out = unsafe { Out::new(ppInterface, "NULL ppInterface") }?;
            let name_ok = if pInterfaceName.is_null() {
                true
            } else {
                // SAFETY: PKCS#11 caller: a NUL-terminated string.
                let name = unsafe { CStr::from_ptr(pInterfaceName as *const std::ffi::c_char) };
                name == INTERFACE_NAME
            };
            let version = if pVersion.is_null() {
                None
            } else {
                // SAFETY: PKCS#11 caller: a readable CK_VERSION.
                Some(*unsafe { ref_in(pVersion as *const CK_VERSION, "misaligned pVersion") }?)
            };
            let found = INTERFACES.0.iter().position(|i| {
                name_ok
                    && i.flags & flags == flags
                    && version.is_none_or(|v| {
                        let w = version_of(i);
                        (w.major, w.minor) == (v.major, v.minor)
                            || ((v.major, v.minor) == (2, 20) && (w.major, w.minor) == (2, 40))
                    })
            });
            match found {
                Some(at) => {
                    // SAFETY: `at` indexes the two-entry table.
                    out.set(unsafe { (HANDED_INTERFACES.ptr() as *mut CK_INTERFACE).add(at) });
                    Ok(())
                }
                None => fail(CKR_ARGUMENTS_BAD, "no such interface"),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::null_mut;

    #[test]
    fn lists_have_their_versions() {
        assert_eq!(
            (FUNCTION_LIST.version.major, FUNCTION_LIST.version.minor),
            (2, 40)
        );
        assert_eq!(
            (
                FUNCTION_LIST_3_0.version.major,
                FUNCTION_LIST_3_0.version.minor
            ),
            (3, 0)
        );
        let v: Vec<(u8, u8)> = INTERFACES
            .0
            .iter()
            .map(|i| (version_of(i).major, version_of(i).minor))
            .collect();
        assert_eq!(v, [(3, 0), (2, 40)]);
    }

    #[test]
    fn get_interface() {
        let mut p: *mut CK_INTERFACE = null_mut();
        let mut v = CK_VERSION {
            major: 2,
            minor: 40,
        };
        let name = c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR;
        assert_eq!(C_GetInterface(name, &mut v, &mut p, 0), CKR_OK);
        // SAFETY: the module returned a pointer into INTERFACES.
        assert_eq!(version_of(unsafe { &*p }).minor, 40);
        assert_eq!(C_GetInterface(null_mut(), null_mut(), &mut p, 0), CKR_OK);
        // SAFETY: as above.
        assert_eq!(version_of(unsafe { &*p }).major, 3);
        // Callers may write to what they get (pkcs11-spy 0.23 does): in
        // read-only memory this would be a SIGSEGV. The same values go back,
        // so other tests see no change.
        // SAFETY: the module returned a pointer into its writable table.
        unsafe {
            let list = (*p).pFunctionList;
            std::ptr::write_volatile(&mut (*p).pFunctionList, list);
            std::ptr::write_volatile(&mut (*p).flags, 0);
        }
        v.minor = 20;
        assert_eq!(C_GetInterface(name, &mut v, &mut p, 0), CKR_OK);
        // SAFETY: as above.
        assert_eq!(version_of(unsafe { &*p }).minor, 40);
        v.minor = 11;
        assert_eq!(C_GetInterface(name, &mut v, &mut p, 0), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetInterface(c"other".as_ptr() as *mut CK_UTF8CHAR, null_mut(), &mut p, 0),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut p, CKF_INTERFACE_FORK_SAFE),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), null_mut(), 0),
            CKR_ARGUMENTS_BAD
        );
    }
}
