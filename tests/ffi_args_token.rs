//! The return codes PKCS#11 3.0 gives for argument errors, function by
//! function, through the raw 3.0 function list of libpicohsm_pkcs11.so (as
//! a C application sees it): NULL pointers, unknown slots, sessions,
//! objects and keys, short buffers and size queries, operations without an
//! Init or during one, and the functions the module does not support.
//!
//! The functions that need no module (C_GetFunctionList, C_GetInterfaceList,
//! C_GetInterface, C_Initialize's argument checks) are in `ffi_args.rs`.
//!
//! Tests that need a token run on their own copy of one card image made
//! once per process: an initialised picohsm-vcard with an EC P-256 key pair
//! (id 01) and an RSA-1024 key pair (id 02), behind pcscd. C_Initialize and
//! C_Finalize are process-wide, so the tests run one at a time ([`serial`]).

mod common;

use std::ffi::c_void;
use std::fs;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::*;
use cryptoki_sys::*;
use libloading::Library;
use sha2::{Digest, Sha256};

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";

/// Slot ids are 31-bit hashes of reader names: this one is none.
const BAD_SLOT: CK_SLOT_ID = 0xBAD5_107D;
/// Session handles count up from 1 per C_Initialize.
const BAD_SESSION: CK_SESSION_HANDLE = 0x0BAD_5E55;
/// Object handles count up from 1 per process.
const BAD_OBJECT: CK_OBJECT_HANDLE = 0x0BAD_0B1E;

// ---------------------------------------------------------------------------
// The module

/// The module's PKCS#11 3.0 function list (the default interface).
fn p11() -> &'static CK_FUNCTION_LIST_3_0 {
    type GetInterface = unsafe extern "C" fn(
        *mut CK_UTF8CHAR,
        *mut CK_VERSION,
        *mut *mut CK_INTERFACE,
        CK_FLAGS,
    ) -> CK_RV;
    static LIB: OnceLock<Library> = OnceLock::new();
    static LIST: OnceLock<&'static CK_FUNCTION_LIST_3_0> = OnceLock::new();
    LIST.get_or_init(|| {
        let lib = LIB.get_or_init(|| {
            let path = module_path();
            // SAFETY: loading our own module runs no initialisers with
            // preconditions.
            unsafe { Library::new(&path) }
                .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
        });
        // SAFETY: C_GetInterface has this type (PKCS#11 3.0).
        let get = unsafe { *lib.get::<GetInterface>(b"C_GetInterface").unwrap() };
        let mut iface: *mut CK_INTERFACE = null_mut();
        // SAFETY: a live out-pointer; NULL name and version: the default.
        assert_eq!(
            unsafe { get(null_mut(), null_mut(), &mut iface, 0) },
            CKR_OK
        );
        // SAFETY: the default interface holds the module's static 3.0 list,
        // alive as long as the library, which stays loaded (LIB).
        let list = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
        assert_eq!((list.version.major, list.version.minor), (3, 0));
        list
    })
}

/// Calls a function of the 3.0 list: `ck!(C_Sign(s, data, n, sig, &mut len))`.
macro_rules! ck {
    ($f:ident($($a:expr),* $(,)?)) => {{
        let func = p11().$f.expect(stringify!($f));
        // SAFETY: every test passes NULL or live locals of the lengths it
        // states, as PKCS#11 requires of a caller.
        unsafe { func($($a),*) }
    }};
}

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: C_Initialize and C_Finalize are process-wide, and a
/// card scan by one test could log out another test's card.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The module initialised for one test; C_Finalize when dropped.
struct Init {
    _serial: MutexGuard<'static, ()>,
}

impl Init {
    fn new(serial: MutexGuard<'static, ()>) -> Init {
        assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);
        Init { _serial: serial }
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        // CKR_CRYPTOKI_NOT_INITIALIZED if the test finalised already.
        ck!(C_Finalize(null_mut()));
    }
}

fn init() -> Init {
    Init::new(serial())
}

/// Every slot (one per reader).
fn slots() -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    assert_eq!(ck!(C_GetSlotList(CK_FALSE, null_mut(), &mut n)), CKR_OK);
    let mut v = vec![0; n as usize];
    assert_eq!(ck!(C_GetSlotList(CK_FALSE, v.as_mut_ptr(), &mut n)), CKR_OK);
    v.truncate(n as usize);
    v
}

fn any_slot() -> CK_SLOT_ID {
    *slots().first().expect("pcscd has readers")
}

fn mech(kind: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: kind,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

fn attr_ulong(kind: CK_ATTRIBUTE_TYPE, v: &mut CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: v as *mut CK_ULONG as *mut c_void,
        ulValueLen: size_of::<CK_ULONG>() as CK_ULONG,
    }
}

fn attr_bytes(kind: CK_ATTRIBUTE_TYPE, v: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: v.as_mut_ptr() as *mut c_void,
        ulValueLen: v.len() as CK_ULONG,
    }
}

fn attr_null(kind: CK_ATTRIBUTE_TYPE) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: null_mut(),
        ulValueLen: 0,
    }
}

fn pin(p: &str) -> (*mut CK_UTF8CHAR, CK_ULONG) {
    // The module only reads PINs.
    (p.as_ptr() as *mut CK_UTF8CHAR, p.len() as CK_ULONG)
}

// ---------------------------------------------------------------------------
// A token

/// The card image every token test starts from (made once per process, in
/// Cargo's temp dir for integration tests).
fn template_flash() -> &'static Path {
    static FLASH: OnceLock<PathBuf> = OnceLock::new();
    FLASH.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Images of earlier runs whose process is gone.
        if let Ok(entries) = fs::read_dir(base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("ffi_args_token-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("ffi_args_token-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("template dir");
        let flash = dir.join("card.flash");
        let mut card = VCard::start_with_flash(&flash);
        sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
        for (id, kt) in [("01", "EC:prime256v1"), ("02", "rsa:1024")] {
            let label = format!("k{id}");
            run_cmd(our_pkcs11_tool_command(&card).args([
                "--login",
                "--pin",
                PIN,
                "--keypairgen",
                "--key-type",
                kt,
                "--id",
                id,
                "--label",
                &label,
            ]));
        }
        card.stop();
        flash
    })
}

fn otp_of(flash: &Path) -> PathBuf {
    let mut s = flash.as_os_str().to_owned();
    s.push(".otp");
    PathBuf::from(s)
}

/// The module initialised with a card (a copy of [`template_flash`]) in a
/// reader, a read-write session with the user logged in, and the handles
/// of the two key pairs.
struct Token {
    // Dropped in this order: C_Finalize, then the card, then its files.
    _init: Init,
    _card: VCard,
    _files: tempfile::TempDir,
    slot: CK_SLOT_ID,
    s: CK_SESSION_HANDLE,
    ec_priv: CK_OBJECT_HANDLE,
    ec_pub: CK_OBJECT_HANDLE,
    rsa_priv: CK_OBJECT_HANDLE,
    rsa_pub: CK_OBJECT_HANDLE,
}

impl Drop for Token {
    fn drop(&mut self) {
        // Operations end with their sessions: none is left for the next
        // test (whatever C_Finalize does, see
        // c_finalize_ends_the_operations_of_its_sessions).
        ck!(C_CloseAllSessions(self.slot));
    }
}

fn token() -> Token {
    let guard = serial();
    let template = template_flash();
    let files = tempfile::tempdir().expect("temp dir");
    let flash = files.path().join("card.flash");
    fs::copy(template, &flash).expect("copy the card image");
    if otp_of(template).is_file() {
        fs::copy(otp_of(template), otp_of(&flash)).expect("copy the OTP image");
    }
    let card = VCard::start_with_flash(&flash);
    let init = Init::new(guard);
    let slot = slots()
        .into_iter()
        .find(|id| {
            let mut info = CK_SLOT_INFO::default();
            ck!(C_GetSlotInfo(*id, &mut info)) == CKR_OK
                && String::from_utf8_lossy(&info.slotDescription).trim_end() == card.reader_name()
        })
        .expect("the card's slot");
    let s = open(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    login(s);
    Token {
        _init: init,
        _card: card,
        _files: files,
        slot,
        s,
        ec_priv: find(s, CKO_PRIVATE_KEY, 1),
        ec_pub: find(s, CKO_PUBLIC_KEY, 1),
        rsa_priv: find(s, CKO_PRIVATE_KEY, 2),
        rsa_pub: find(s, CKO_PUBLIC_KEY, 2),
    }
}

fn open(slot: CK_SLOT_ID, flags: CK_FLAGS) -> CK_SESSION_HANDLE {
    let mut s = 0;
    assert_eq!(
        ck!(C_OpenSession(slot, flags, null_mut(), None, &mut s)),
        CKR_OK
    );
    s
}

fn login(s: CK_SESSION_HANDLE) {
    let (p, n) = pin(PIN);
    assert_eq!(ck!(C_Login(s, CKU_USER, p, n)), CKR_OK);
}

/// The one object of `class` with CKA_ID `id`.
fn find(s: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS, id: u8) -> CK_OBJECT_HANDLE {
    let mut class = class;
    let mut id = [id];
    let mut t = [
        attr_ulong(CKA_CLASS, &mut class),
        attr_bytes(CKA_ID, &mut id),
    ];
    assert_eq!(ck!(C_FindObjectsInit(s, t.as_mut_ptr(), 2)), CKR_OK);
    let mut h = [0; 4];
    let mut n = 0;
    assert_eq!(ck!(C_FindObjects(s, h.as_mut_ptr(), 4, &mut n)), CKR_OK);
    assert_eq!(ck!(C_FindObjectsFinal(s)), CKR_OK);
    assert_eq!(n, 1, "objects of class {class} with id {id:?}");
    h[0]
}

/// A NULL-mechanism Init (PKCS#11 3.0: terminate the active operation)
/// while an operation is active: either it ends (CKR_OK, and `ended` says
/// so) or it cannot be cancelled (CKR_OPERATION_CANCEL_FAILED, and the
/// operation is still there); nothing else.
fn check_terminate(rv: CK_RV, ended: impl FnOnce() -> bool) {
    match rv {
        CKR_OK => assert!(ended(), "CKR_OK but the operation is still active"),
        CKR_OPERATION_CANCEL_FAILED => {
            assert!(
                !ended(),
                "CKR_OPERATION_CANCEL_FAILED but the operation ended"
            )
        }
        other => panic!("NULL mechanism during an operation: {other:#x}"),
    }
}

// ---------------------------------------------------------------------------
// Before C_Initialize and after C_Finalize

/// Every function of the 3.0 list that needs C_Initialize, with arguments
/// that would be wrong anyway: the initialisation check comes first.
fn all_not_initialized() {
    macro_rules! each {
        ($($f:ident($($a:expr),*);)*) => {{
            let mut n = 0;
            $(
                assert_eq!(ck!($f($($a),*)), CKR_CRYPTOKI_NOT_INITIALIZED, stringify!($f));
                n += 1;
            )*
            n
        }};
    }
    let n = each! {
        C_Finalize(null_mut());
        C_GetInfo(null_mut());
        C_GetSlotList(CK_TRUE, null_mut(), null_mut());
        C_GetSlotInfo(1, null_mut());
        C_GetTokenInfo(1, null_mut());
        C_GetMechanismList(1, null_mut(), null_mut());
        C_GetMechanismInfo(1, CKM_ECDSA, null_mut());
        C_InitToken(1, null_mut(), 0, null_mut());
        C_InitPIN(1, null_mut(), 0);
        C_SetPIN(1, null_mut(), 0, null_mut(), 0);
        C_WaitForSlotEvent(CKF_DONT_BLOCK, null_mut(), null_mut());
        C_OpenSession(1, CKF_SERIAL_SESSION, null_mut(), None, null_mut());
        C_CloseSession(1);
        C_CloseAllSessions(1);
        C_GetSessionInfo(1, null_mut());
        C_SessionCancel(1, 0);
        C_GetOperationState(1, null_mut(), null_mut());
        C_SetOperationState(1, null_mut(), 0, 0, 0);
        C_Login(1, CKU_USER, null_mut(), 0);
        C_LoginUser(1, CKU_USER, null_mut(), 0, null_mut(), 0);
        C_Logout(1);
        C_CreateObject(1, null_mut(), 0, null_mut());
        C_CopyObject(1, 1, null_mut(), 0, null_mut());
        C_DestroyObject(1, 1);
        C_GetObjectSize(1, 1, null_mut());
        C_GetAttributeValue(1, 1, null_mut(), 0);
        C_SetAttributeValue(1, 1, null_mut(), 0);
        C_FindObjectsInit(1, null_mut(), 0);
        C_FindObjects(1, null_mut(), 0, null_mut());
        C_FindObjectsFinal(1);
        C_EncryptInit(1, null_mut(), 1);
        C_Encrypt(1, null_mut(), 0, null_mut(), null_mut());
        C_EncryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_EncryptFinal(1, null_mut(), null_mut());
        C_MessageEncryptInit(1, null_mut(), 1);
        C_EncryptMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_EncryptMessageBegin(1, null_mut(), 0, null_mut(), 0);
        C_EncryptMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut(), 0);
        C_MessageEncryptFinal(1);
        C_DecryptInit(1, null_mut(), 1);
        C_Decrypt(1, null_mut(), 0, null_mut(), null_mut());
        C_DecryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_DecryptFinal(1, null_mut(), null_mut());
        C_MessageDecryptInit(1, null_mut(), 1);
        C_DecryptMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_DecryptMessageBegin(1, null_mut(), 0, null_mut(), 0);
        C_DecryptMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut(), 0);
        C_MessageDecryptFinal(1);
        C_DigestInit(1, null_mut());
        C_Digest(1, null_mut(), 0, null_mut(), null_mut());
        C_DigestUpdate(1, null_mut(), 0);
        C_DigestKey(1, 1);
        C_DigestFinal(1, null_mut(), null_mut());
        C_SignInit(1, null_mut(), 1);
        C_Sign(1, null_mut(), 0, null_mut(), null_mut());
        C_SignUpdate(1, null_mut(), 0);
        C_SignFinal(1, null_mut(), null_mut());
        C_SignRecoverInit(1, null_mut(), 1);
        C_SignRecover(1, null_mut(), 0, null_mut(), null_mut());
        C_MessageSignInit(1, null_mut(), 1);
        C_SignMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_SignMessageBegin(1, null_mut(), 0);
        C_SignMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_MessageSignFinal(1);
        C_VerifyInit(1, null_mut(), 1);
        C_Verify(1, null_mut(), 0, null_mut(), 0);
        C_VerifyUpdate(1, null_mut(), 0);
        C_VerifyFinal(1, null_mut(), 0);
        C_VerifyRecoverInit(1, null_mut(), 1);
        C_VerifyRecover(1, null_mut(), 0, null_mut(), null_mut());
        C_MessageVerifyInit(1, null_mut(), 1);
        C_VerifyMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0);
        C_VerifyMessageBegin(1, null_mut(), 0);
        C_VerifyMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), 0);
        C_MessageVerifyFinal(1);
        C_DigestEncryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_DecryptDigestUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_SignEncryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_DecryptVerifyUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_GenerateKey(1, null_mut(), null_mut(), 0, null_mut());
        C_GenerateKeyPair(1, null_mut(), null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_WrapKey(1, null_mut(), 1, 1, null_mut(), null_mut());
        C_UnwrapKey(1, null_mut(), 1, null_mut(), 0, null_mut(), 0, null_mut());
        C_DeriveKey(1, null_mut(), 1, null_mut(), 0, null_mut());
        C_SeedRandom(1, null_mut(), 0);
        C_GenerateRandom(1, null_mut(), 0);
        C_GetFunctionStatus(1);
        C_CancelFunction(1);
    };
    // All 92 but C_Initialize, C_GetFunctionList, C_GetInterfaceList and
    // C_GetInterface.
    assert_eq!(n, 88);
}

#[test]
fn all_functions_refused_before_c_initialize_and_after_c_finalize() {
    let g = serial();
    all_not_initialized();
    let init = Init::new(g);
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
    all_not_initialized();
    drop(init);
}

// ---------------------------------------------------------------------------
// General purpose (§5.4)

#[test]
fn c_initialize_twice_is_already_initialized() {
    let _i = init();
    assert_eq!(
        ck!(C_Initialize(null_mut())),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: null_mut(),
    };
    assert_eq!(
        ck!(C_Initialize(&mut args as *mut _ as *mut c_void)),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    // Still initialised, once.
    let mut info = CK_INFO::default();
    assert_eq!(ck!(C_GetInfo(&mut info)), CKR_OK);
}

#[test]
fn c_finalize_with_reserved_is_arguments_bad() {
    let _i = init();
    let mut x = 0u8;
    assert_eq!(
        ck!(C_Finalize(&mut x as *mut u8 as *mut c_void)),
        CKR_ARGUMENTS_BAD
    );
    // Nothing was finalised.
    let mut info = CK_INFO::default();
    assert_eq!(ck!(C_GetInfo(&mut info)), CKR_OK);
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_CRYPTOKI_NOT_INITIALIZED);
}

#[test]
fn c_finalize_ends_the_operations_of_its_sessions() {
    let t = token();
    let mut m = mech(CKM_SHA256);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    let mut e = mech(CKM_ECDSA);
    assert_eq!(ck!(C_SignInit(t.s, &mut e, t.ec_priv)), CKR_OK);
    assert_eq!(ck!(C_FindObjectsInit(t.s, null_mut(), 0)), CKR_OK);
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
    assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);
    // Session handles may come again: the new session has no operation.
    let s = open(t.slot, CKF_SERIAL_SESSION);
    let mut n: CK_ULONG = 0;
    let digest = ck!(C_DigestFinal(s, null_mut(), &mut n));
    let find = ck!(C_FindObjectsFinal(s));
    let mut d = [0u8; 32];
    let sign = ck!(C_Sign(s, d.as_mut_ptr(), 32, null_mut(), &mut n));
    // Clean up before asserting, for the next test.
    ck!(C_CloseAllSessions(t.slot));
    assert_eq!(
        [digest, find, sign],
        [CKR_OPERATION_NOT_INITIALIZED; 3],
        "digest, find, sign of session {s}"
    );
}

#[test]
fn c_get_info_null_is_arguments_bad() {
    let _i = init();
    assert_eq!(ck!(C_GetInfo(null_mut())), CKR_ARGUMENTS_BAD);
    let mut info = CK_INFO::default();
    assert_eq!(ck!(C_GetInfo(&mut info)), CKR_OK);
    assert_eq!(
        (info.cryptokiVersion.major, info.cryptokiVersion.minor),
        (3, 0)
    );
}

// ---------------------------------------------------------------------------
// Slots and tokens (§5.5)

#[test]
fn c_get_slot_list_null_count_size_query_and_short_buffer() {
    let _i = init();
    assert_eq!(
        ck!(C_GetSlotList(CK_FALSE, null_mut(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    let mut n: CK_ULONG = 0;
    assert_eq!(ck!(C_GetSlotList(CK_FALSE, null_mut(), &mut n)), CKR_OK);
    assert!(n >= 2, "one slot per vpcd reader, got {n}");
    const FILL: CK_SLOT_ID = 0xAAAA_AAAA;
    let mut list = vec![FILL; n as usize];
    let mut short = n - 1;
    assert_eq!(
        ck!(C_GetSlotList(CK_FALSE, list.as_mut_ptr(), &mut short)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, n, "the needed count");
    assert!(list.iter().all(|s| *s == FILL), "nothing written");
    let mut zero = 0;
    assert_eq!(
        ck!(C_GetSlotList(CK_FALSE, list.as_mut_ptr(), &mut zero)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(zero, n);
    let mut full = n;
    assert_eq!(
        ck!(C_GetSlotList(CK_FALSE, list.as_mut_ptr(), &mut full)),
        CKR_OK
    );
    assert_eq!(full, n);
    assert!(list.iter().all(|s| *s != FILL));
}

#[test]
fn c_get_slot_info_bad_slot_and_null_info() {
    let _i = init();
    let mut info = CK_SLOT_INFO::default();
    assert_eq!(ck!(C_GetSlotInfo(BAD_SLOT, &mut info)), CKR_SLOT_ID_INVALID);
    let slot = any_slot();
    assert_eq!(ck!(C_GetSlotInfo(slot, null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_GetSlotInfo(slot, &mut info)), CKR_OK);
}

#[test]
fn c_get_token_info_bad_slot_and_null_info() {
    let t = token();
    let mut info = CK_TOKEN_INFO::default();
    assert_eq!(
        ck!(C_GetTokenInfo(BAD_SLOT, &mut info)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(ck!(C_GetTokenInfo(t.slot, null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_GetTokenInfo(t.slot, &mut info)), CKR_OK);
    assert_ne!(info.flags & CKF_TOKEN_INITIALIZED, 0);
}

#[test]
fn c_wait_for_slot_event_reserved_and_null_slot() {
    let _i = init();
    let mut slot: CK_SLOT_ID = 0;
    let mut x = 0u8;
    assert_eq!(
        ck!(C_WaitForSlotEvent(
            CKF_DONT_BLOCK,
            &mut slot,
            &mut x as *mut u8 as *mut c_void
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_WaitForSlotEvent(CKF_DONT_BLOCK, null_mut(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_get_mechanism_list_bad_slot_null_count_size_query_and_short_buffer() {
    let _i = init();
    let slot = any_slot();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(C_GetMechanismList(BAD_SLOT, null_mut(), &mut n)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        ck!(C_GetMechanismList(slot, null_mut(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_GetMechanismList(slot, null_mut(), &mut n)), CKR_OK);
    assert!(n > 2, "{n} mechanisms");
    const FILL: CK_MECHANISM_TYPE = 0xAAAA_AAAA;
    let mut list = vec![FILL; n as usize];
    let mut short = n - 1;
    assert_eq!(
        ck!(C_GetMechanismList(slot, list.as_mut_ptr(), &mut short)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, n);
    assert!(list.iter().all(|m| *m == FILL), "nothing written");
    let mut full = n;
    assert_eq!(
        ck!(C_GetMechanismList(slot, list.as_mut_ptr(), &mut full)),
        CKR_OK
    );
    assert_eq!(full, n);
    assert!(list.contains(&CKM_ECDSA) && !list.contains(&FILL));
}

#[test]
fn c_get_mechanism_info_bad_slot_null_info_and_unknown_mechanism() {
    let _i = init();
    let slot = any_slot();
    let mut info = CK_MECHANISM_INFO::default();
    assert_eq!(
        ck!(C_GetMechanismInfo(BAD_SLOT, CKM_ECDSA, &mut info)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_ECDSA, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_AES_GCM, &mut info)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(ck!(C_GetMechanismInfo(slot, CKM_ECDSA, &mut info)), CKR_OK);
    assert_ne!(info.flags & CKF_SIGN, 0);
}

#[test]
fn c_init_token_bad_slot_null_label_null_pin_and_open_session() {
    let t = token();
    let (p, n) = pin(SO_PIN);
    let mut label = [b' '; 32];
    assert_eq!(
        ck!(C_InitToken(BAD_SLOT, p, n, label.as_mut_ptr())),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        ck!(C_InitToken(t.slot, p, n, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    // NULL with a length (no protected authentication path either).
    assert_eq!(
        ck!(C_InitToken(t.slot, null_mut(), n, label.as_mut_ptr())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_InitToken(t.slot, p, n, label.as_mut_ptr())),
        CKR_SESSION_EXISTS
    );
}

#[test]
fn c_init_pin_bad_session_null_pin_read_only_and_not_so() {
    let t = token();
    let (p, n) = pin("123456");
    assert_eq!(
        ck!(C_InitPIN(BAD_SESSION, p, n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_InitPIN(t.s, null_mut(), n)), CKR_ARGUMENTS_BAD);
    // The user, not the SO, is logged in.
    assert_eq!(ck!(C_InitPIN(t.s, p, n)), CKR_USER_NOT_LOGGED_IN);
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    assert_eq!(ck!(C_InitPIN(ro, p, n)), CKR_SESSION_READ_ONLY);
}

#[test]
fn c_set_pin_bad_session_null_pins_and_read_only() {
    let t = token();
    let (old, on) = pin(PIN);
    let (new, nn) = pin("123456");
    assert_eq!(
        ck!(C_SetPIN(BAD_SESSION, old, on, new, nn)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SetPIN(t.s, null_mut(), on, new, nn)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_SetPIN(t.s, old, on, null_mut(), nn)),
        CKR_ARGUMENTS_BAD
    );
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    assert_eq!(ck!(C_SetPIN(ro, old, on, new, nn)), CKR_SESSION_READ_ONLY);
}

// ---------------------------------------------------------------------------
// Sessions (§5.6)

#[test]
fn c_open_session_bad_slot_null_handle_and_no_serial_flag() {
    let t = token();
    let mut s = 0;
    assert_eq!(
        ck!(C_OpenSession(
            BAD_SLOT,
            CKF_SERIAL_SESSION,
            null_mut(),
            None,
            &mut s
        )),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        ck!(C_OpenSession(
            t.slot,
            CKF_SERIAL_SESSION,
            null_mut(),
            None,
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_OpenSession(t.slot, 0, null_mut(), None, &mut s)),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    assert_eq!(s, 0, "nothing written");
    assert_eq!(
        ck!(C_OpenSession(
            t.slot,
            CKF_SERIAL_SESSION,
            null_mut(),
            None,
            &mut s
        )),
        CKR_OK
    );
    assert!(s != 0 && s != t.s);
}

#[test]
fn c_close_session_bad_handle_and_twice() {
    let t = token();
    assert_eq!(ck!(C_CloseSession(BAD_SESSION)), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(
        ck!(C_CloseSession(CK_INVALID_HANDLE)),
        CKR_SESSION_HANDLE_INVALID
    );
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    assert_eq!(ck!(C_CloseSession(ro)), CKR_OK);
    assert_eq!(ck!(C_CloseSession(ro)), CKR_SESSION_HANDLE_INVALID);
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(
        ck!(C_GetSessionInfo(ro, &mut info)),
        CKR_SESSION_HANDLE_INVALID
    );
}

#[test]
fn c_close_all_sessions_bad_slot_and_closed_handles() {
    let t = token();
    assert_eq!(ck!(C_CloseAllSessions(BAD_SLOT)), CKR_SLOT_ID_INVALID);
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    assert_eq!(ck!(C_CloseAllSessions(t.slot)), CKR_OK);
    let mut info = CK_SESSION_INFO::default();
    for s in [t.s, ro] {
        assert_eq!(
            ck!(C_GetSessionInfo(s, &mut info)),
            CKR_SESSION_HANDLE_INVALID
        );
    }
}

#[test]
fn c_get_session_info_bad_session_and_null_info() {
    let t = token();
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(
        ck!(C_GetSessionInfo(BAD_SESSION, &mut info)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_GetSessionInfo(t.s, null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_GetSessionInfo(t.s, &mut info)), CKR_OK);
    assert_eq!((info.slotID, info.state), (t.slot, CKS_RW_USER_FUNCTIONS));
}

#[test]
fn c_session_cancel_is_not_supported() {
    let t = token();
    assert_eq!(
        ck!(C_SessionCancel(t.s, CKF_SIGN)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
}

#[test]
fn c_get_and_set_operation_state_are_not_supported() {
    let t = token();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(C_GetOperationState(t.s, null_mut(), &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_GetOperationState(t.s, null_mut(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    let mut state = [0u8; 16];
    assert_eq!(
        ck!(C_SetOperationState(t.s, state.as_mut_ptr(), 16, 0, 0)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_SetOperationState(t.s, null_mut(), 16, 0, 0)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_login_bad_session_user_type_null_pin_logged_in_and_wrong_pin() {
    let t = token();
    let (p, n) = pin(PIN);
    assert_eq!(
        ck!(C_Login(BAD_SESSION, CKU_USER, p, n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_Login(t.s, 7, p, n)), CKR_USER_TYPE_INVALID);
    assert_eq!(
        ck!(C_Login(t.s, CKU_USER, p, n)),
        CKR_USER_ALREADY_LOGGED_IN
    );
    let (so, so_n) = pin(SO_PIN);
    assert_eq!(
        ck!(C_Login(t.s, CKU_SO, so, so_n)),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );
    // No operation asks for a context-specific login.
    assert_eq!(
        ck!(C_Login(t.s, CKU_CONTEXT_SPECIFIC, p, n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_Logout(t.s)), CKR_OK);
    // No protected authentication path.
    assert_eq!(
        ck!(C_Login(t.s, CKU_USER, null_mut(), 0)),
        CKR_ARGUMENTS_BAD
    );
    let (wrong, wn) = pin("000000");
    assert_eq!(ck!(C_Login(t.s, CKU_USER, wrong, wn)), CKR_PIN_INCORRECT);
    assert_eq!(ck!(C_Login(t.s, CKU_USER, p, n)), CKR_OK);
}

#[test]
fn c_login_user_is_not_supported() {
    let t = token();
    assert_eq!(ck!(C_Logout(t.s)), CKR_OK);
    let (p, n) = pin(PIN);
    let (u, un) = pin("user");
    assert_eq!(
        ck!(C_LoginUser(t.s, CKU_USER, p, n, u, un)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
}

#[test]
fn c_logout_bad_session_and_not_logged_in() {
    let t = token();
    assert_eq!(ck!(C_Logout(BAD_SESSION)), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(ck!(C_Logout(t.s)), CKR_OK);
    assert_eq!(ck!(C_Logout(t.s)), CKR_USER_NOT_LOGGED_IN);
}

// ---------------------------------------------------------------------------
// Objects (§5.7)

#[test]
fn c_create_object_bad_session_null_pointers_and_incomplete_template() {
    let t = token();
    let mut class = CKO_DATA;
    let mut value = *b"xyz";
    let mut tpl = [
        attr_ulong(CKA_CLASS, &mut class),
        attr_bytes(CKA_VALUE, &mut value),
    ];
    let mut h = 0;
    assert_eq!(
        ck!(C_CreateObject(BAD_SESSION, tpl.as_mut_ptr(), 2, &mut h)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_CreateObject(t.s, tpl.as_mut_ptr(), 2, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_CreateObject(t.s, null_mut(), 2, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    let mut bad = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: null_mut(),
        ulValueLen: size_of::<CK_ULONG>() as CK_ULONG,
    }];
    assert_eq!(
        ck!(C_CreateObject(t.s, bad.as_mut_ptr(), 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_CreateObject(t.s, null_mut(), 0, &mut h)),
        CKR_TEMPLATE_INCOMPLETE
    );
    assert_eq!(h, 0, "nothing written");
}

#[test]
fn c_copy_object_is_not_supported() {
    let t = token();
    let mut h = 0;
    assert_eq!(
        ck!(C_CopyObject(t.s, t.ec_pub, null_mut(), 0, &mut h)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_CopyObject(t.s, t.ec_pub, null_mut(), 0, null_mut())),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_destroy_object_bad_session_and_bad_object() {
    let t = token();
    assert_eq!(
        ck!(C_DestroyObject(BAD_SESSION, t.ec_pub)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DestroyObject(t.s, BAD_OBJECT)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DestroyObject(t.s, CK_INVALID_HANDLE)),
        CKR_OBJECT_HANDLE_INVALID
    );
}

#[test]
fn c_get_object_size_bad_session_bad_object_and_null_size() {
    let t = token();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(C_GetObjectSize(BAD_SESSION, t.ec_pub, &mut n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GetObjectSize(t.s, BAD_OBJECT, &mut n)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GetObjectSize(t.s, t.ec_pub, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_GetObjectSize(t.s, t.ec_pub, &mut n)), CKR_OK);
    assert!(n > 0);
}

#[test]
fn c_get_attribute_value_handles_size_query_short_buffer_unknown_and_sensitive() {
    let t = token();
    let mut one = [attr_null(CKA_ID)];
    assert_eq!(
        ck!(C_GetAttributeValue(
            BAD_SESSION,
            t.ec_pub,
            one.as_mut_ptr(),
            1
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, BAD_OBJECT, one.as_mut_ptr(), 1)),
        CKR_OBJECT_HANDLE_INVALID
    );
    // An empty template still names a session and an object.
    assert_eq!(
        ck!(C_GetAttributeValue(BAD_SESSION, t.ec_pub, null_mut(), 0)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, BAD_OBJECT, null_mut(), 0)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, null_mut(), 0)),
        CKR_OK
    );
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, null_mut(), 1)),
        CKR_ARGUMENTS_BAD
    );

    // Size query: NULL pValue → the length.
    let mut q = [attr_null(CKA_EC_POINT), attr_null(CKA_LABEL)];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, q.as_mut_ptr(), 2)),
        CKR_OK
    );
    assert_eq!(q[0].ulValueLen, 67, "DER OCTET STRING of a P-256 point");
    assert_eq!(q[1].ulValueLen, 3, "label k01");

    // One buffer too short: CKR_BUFFER_TOO_SMALL, that attribute
    // CK_UNAVAILABLE_INFORMATION, the others filled in.
    let mut point = [0u8; 66];
    let mut label = [0u8; 3];
    let mut tpl = [
        attr_bytes(CKA_EC_POINT, &mut point),
        attr_bytes(CKA_LABEL, &mut label),
    ];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, tpl.as_mut_ptr(), 2)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(tpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(tpl[1].ulValueLen, 3);
    assert_eq!(&label, b"k01");
    assert!(point.iter().all(|b| *b == 0), "nothing written");

    // An attribute the object does not have.
    let mut id = [0u8; 4];
    let mut tpl = [
        attr_null(CKA_VENDOR_DEFINED | 0x5A5A),
        attr_bytes(CKA_ID, &mut id),
    ];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, tpl.as_mut_ptr(), 2)),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    assert_eq!(tpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(tpl[1].ulValueLen, 1);
    assert_eq!(id[0], 1);

    // A sensitive one.
    let mut tpl = [attr_null(CKA_VALUE), attr_null(CKA_ID)];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_priv, tpl.as_mut_ptr(), 2)),
        CKR_ATTRIBUTE_SENSITIVE
    );
    assert_eq!(tpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(tpl[1].ulValueLen, 1);
}

#[test]
fn c_set_attribute_value_bad_session_bad_object_and_null_template() {
    let t = token();
    let mut label = *b"new";
    let mut tpl = [attr_bytes(CKA_LABEL, &mut label)];
    assert_eq!(
        ck!(C_SetAttributeValue(
            BAD_SESSION,
            t.ec_priv,
            tpl.as_mut_ptr(),
            1
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SetAttributeValue(t.s, BAD_OBJECT, tpl.as_mut_ptr(), 1)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SetAttributeValue(t.s, BAD_OBJECT, null_mut(), 0)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SetAttributeValue(t.s, t.ec_priv, null_mut(), 1)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_find_objects_init_bad_session_null_template_and_active() {
    let t = token();
    assert_eq!(
        ck!(C_FindObjectsInit(BAD_SESSION, null_mut(), 0)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_FindObjectsInit(t.s, null_mut(), 1)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_FindObjectsInit(t.s, null_mut(), 0)), CKR_OK);
    assert_eq!(
        ck!(C_FindObjectsInit(t.s, null_mut(), 0)),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(ck!(C_FindObjectsFinal(t.s)), CKR_OK);
}

#[test]
fn c_find_objects_bad_session_not_initialized_and_null_pointers() {
    let t = token();
    let mut h = [0; 8];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(C_FindObjects(BAD_SESSION, h.as_mut_ptr(), 8, &mut n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_FindObjects(t.s, h.as_mut_ptr(), 8, &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_FindObjectsInit(t.s, null_mut(), 0)), CKR_OK);
    assert_eq!(
        ck!(C_FindObjects(t.s, null_mut(), 8, &mut n)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_FindObjects(t.s, h.as_mut_ptr(), 8, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_FindObjects(t.s, h.as_mut_ptr(), 8, &mut n)), CKR_OK);
    assert_eq!(n, 4, "two key pairs");
    assert_eq!(ck!(C_FindObjectsFinal(t.s)), CKR_OK);
}

#[test]
fn c_find_objects_final_bad_session_and_not_initialized() {
    let t = token();
    assert_eq!(
        ck!(C_FindObjectsFinal(BAD_SESSION)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_FindObjectsFinal(t.s)), CKR_OPERATION_NOT_INITIALIZED);
    assert_eq!(ck!(C_FindObjectsInit(t.s, null_mut(), 0)), CKR_OK);
    assert_eq!(ck!(C_FindObjectsFinal(t.s)), CKR_OK);
    assert_eq!(ck!(C_FindObjectsFinal(t.s)), CKR_OPERATION_NOT_INITIALIZED);
}

// ---------------------------------------------------------------------------
// Encryption (§5.8): not supported.

#[test]
fn c_encrypt_init_encrypt_update_final_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_RSA_PKCS);
    let mut data = [1u8; 16];
    let mut out = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_EncryptInit(t.s, &mut m, t.rsa_pub)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_Encrypt(
            t.s,
            data.as_mut_ptr(),
            16,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_EncryptUpdate(
            t.s,
            data.as_mut_ptr(),
            16,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_EncryptFinal(t.s, out.as_mut_ptr(), &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(n, 128, "nothing written");
}

// ---------------------------------------------------------------------------
// Decryption (§5.10), with RSA-1024 and CKM_RSA_X_509.

#[test]
fn c_decrypt_init_bad_session_bad_key_wrong_mechanism_and_active() {
    let t = token();
    let mut m = mech(CKM_RSA_X_509);
    assert_eq!(
        ck!(C_DecryptInit(BAD_SESSION, &mut m, t.rsa_priv)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DecryptInit(t.s, &mut m, BAD_OBJECT)),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DecryptInit(t.s, &mut m, t.ec_priv)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let mut ecdsa = mech(CKM_ECDSA);
    assert_eq!(
        ck!(C_DecryptInit(t.s, &mut ecdsa, t.rsa_priv)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)), CKR_OK);
    assert_eq!(
        ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)),
        CKR_OPERATION_ACTIVE
    );
    let rv = ck!(C_DecryptInit(t.s, null_mut(), t.rsa_priv));
    check_terminate(rv, || {
        let mut n: CK_ULONG = 0;
        ck!(C_DecryptFinal(t.s, null_mut(), &mut n)) == CKR_OPERATION_NOT_INITIALIZED
    });
}

/// RSA-1024 ciphertext for CKM_RSA_X_509: the number 2.
fn two() -> [u8; 128] {
    let mut c = [0u8; 128];
    c[127] = 2;
    c
}

#[test]
fn c_decrypt_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut c = two();
    let mut out = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_Decrypt(
            BAD_SESSION,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_Decrypt(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_RSA_X_509);
    assert_eq!(ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        ck!(C_Decrypt(t.s, c.as_mut_ptr(), 128, null_mut(), &mut len)),
        CKR_OK
    );
    assert!((100..=128).contains(&len), "RSA-1024 output: {len}");
    let mut short = len - 1;
    assert_eq!(
        ck!(C_Decrypt(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut short
        )),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, len);
    assert!(out.iter().all(|b| *b == 0), "nothing written");
    let mut full: CK_ULONG = 128;
    assert_eq!(
        ck!(C_Decrypt(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut full
        )),
        CKR_OK
    );
    assert_eq!(full, len);
    // The operation ended.
    assert_eq!(
        ck!(C_Decrypt(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut full
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)), CKR_OK);
    assert_eq!(
        ck!(C_Decrypt(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_Decrypt(t.s, null_mut(), 128, out.as_mut_ptr(), &mut full)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_decrypt_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut c = two();
    let mut out = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_DecryptUpdate(
            BAD_SESSION,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DecryptFinal(BAD_SESSION, out.as_mut_ptr(), &mut n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DecryptUpdate(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_DecryptFinal(t.s, out.as_mut_ptr(), &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_RSA_X_509);
    assert_eq!(ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        ck!(C_DecryptUpdate(
            t.s,
            c.as_mut_ptr(),
            128,
            null_mut(),
            &mut len
        )),
        CKR_OK
    );
    let mut part_len: CK_ULONG = 128;
    assert_eq!(
        ck!(C_DecryptUpdate(
            t.s,
            c.as_mut_ptr(),
            128,
            out.as_mut_ptr(),
            &mut part_len
        )),
        CKR_OK
    );
    assert_eq!(part_len, len);
    let mut len: CK_ULONG = 0;
    assert_eq!(ck!(C_DecryptFinal(t.s, null_mut(), &mut len)), CKR_OK);
    assert!((100..=128).contains(&len), "RSA-1024 output: {len}");
    let mut short = len - 1;
    assert_eq!(
        ck!(C_DecryptFinal(t.s, out.as_mut_ptr(), &mut short)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, len);
    let mut full: CK_ULONG = 128;
    assert_eq!(
        ck!(C_DecryptFinal(t.s, out.as_mut_ptr(), &mut full)),
        CKR_OK
    );
    assert_eq!(full, len);
    assert_eq!(
        ck!(C_DecryptFinal(t.s, out.as_mut_ptr(), &mut full)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_DecryptInit(t.s, &mut m, t.rsa_priv)), CKR_OK);
    assert_eq!(
        ck!(C_DecryptFinal(t.s, out.as_mut_ptr(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_DecryptUpdate(
            t.s,
            null_mut(),
            4,
            out.as_mut_ptr(),
            &mut full
        )),
        CKR_ARGUMENTS_BAD
    );
}

// ---------------------------------------------------------------------------
// Digests (§5.12)

#[test]
fn c_digest_init_bad_session_wrong_mechanism_and_active() {
    let t = token();
    let mut m = mech(CKM_SHA256);
    assert_eq!(
        ck!(C_DigestInit(BAD_SESSION, &mut m)),
        CKR_SESSION_HANDLE_INVALID
    );
    let mut ecdsa = mech(CKM_ECDSA);
    assert_eq!(ck!(C_DigestInit(t.s, &mut ecdsa)), CKR_MECHANISM_INVALID);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OPERATION_ACTIVE);
    let rv = ck!(C_DigestInit(t.s, null_mut()));
    check_terminate(rv, || {
        let mut n: CK_ULONG = 0;
        ck!(C_DigestFinal(t.s, null_mut(), &mut n)) == CKR_OPERATION_NOT_INITIALIZED
    });
}

#[test]
fn c_digest_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut data = *b"abc";
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    assert_eq!(
        ck!(C_Digest(
            BAD_SESSION,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_Digest(
            t.s,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut n
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_SHA256);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        ck!(C_Digest(t.s, data.as_mut_ptr(), 3, null_mut(), &mut len)),
        CKR_OK
    );
    assert_eq!(len, 32);
    let mut short: CK_ULONG = 31;
    assert_eq!(
        ck!(C_Digest(
            t.s,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut short
        )),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 32);
    assert!(out.iter().all(|b| *b == 0), "nothing written");
    let mut full: CK_ULONG = 64;
    assert_eq!(
        ck!(C_Digest(
            t.s,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut full
        )),
        CKR_OK
    );
    assert_eq!(&out[..full as usize], Sha256::digest(b"abc").as_slice());
    assert_eq!(
        ck!(C_Digest(
            t.s,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut full
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    assert_eq!(
        ck!(C_Digest(
            t.s,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_Digest(t.s, null_mut(), 3, out.as_mut_ptr(), &mut full)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_digest_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut part = *b"ab";
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    assert_eq!(
        ck!(C_DigestUpdate(BAD_SESSION, part.as_mut_ptr(), 2)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DigestFinal(BAD_SESSION, out.as_mut_ptr(), &mut n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DigestUpdate(t.s, part.as_mut_ptr(), 2)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_DigestFinal(t.s, out.as_mut_ptr(), &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_SHA256);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    assert_eq!(ck!(C_DigestUpdate(t.s, part.as_mut_ptr(), 2)), CKR_OK);
    assert_eq!(ck!(C_DigestUpdate(t.s, part.as_mut_ptr(), 2)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(ck!(C_DigestFinal(t.s, null_mut(), &mut len)), CKR_OK);
    assert_eq!(len, 32);
    let mut short: CK_ULONG = 0;
    assert_eq!(
        ck!(C_DigestFinal(t.s, out.as_mut_ptr(), &mut short)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 32);
    let mut full: CK_ULONG = 64;
    assert_eq!(ck!(C_DigestFinal(t.s, out.as_mut_ptr(), &mut full)), CKR_OK);
    assert_eq!(&out[..full as usize], Sha256::digest(b"abab").as_slice());
    assert_eq!(
        ck!(C_DigestFinal(t.s, out.as_mut_ptr(), &mut full)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    assert_eq!(
        ck!(C_DigestFinal(t.s, out.as_mut_ptr(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_DigestUpdate(t.s, null_mut(), 2)), CKR_ARGUMENTS_BAD);
}

#[test]
fn c_digest_key_is_not_supported() {
    let t = token();
    let mut m = mech(CKM_SHA256);
    assert_eq!(ck!(C_DigestInit(t.s, &mut m)), CKR_OK);
    assert_eq!(ck!(C_DigestKey(t.s, t.ec_pub)), CKR_FUNCTION_NOT_SUPPORTED);
}

// ---------------------------------------------------------------------------
// Signatures (§5.13), with EC P-256.

#[test]
fn c_sign_init_bad_session_bad_key_wrong_key_or_mechanism_and_active() {
    let t = token();
    let mut m = mech(CKM_ECDSA);
    assert_eq!(
        ck!(C_SignInit(BAD_SESSION, &mut m, t.ec_priv)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SignInit(t.s, &mut m, BAD_OBJECT)),
        CKR_KEY_HANDLE_INVALID
    );
    let rv = ck!(C_SignInit(t.s, &mut m, t.ec_pub));
    assert!(
        rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT,
        "a public key for C_SignInit: {rv:#x}"
    );
    let mut rsa = mech(CKM_RSA_PKCS);
    assert_eq!(
        ck!(C_SignInit(t.s, &mut rsa, t.ec_priv)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let mut sha = mech(CKM_SHA256);
    assert_eq!(
        ck!(C_SignInit(t.s, &mut sha, t.ec_priv)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(ck!(C_SignInit(t.s, &mut m, t.ec_priv)), CKR_OK);
    assert_eq!(
        ck!(C_SignInit(t.s, &mut m, t.ec_priv)),
        CKR_OPERATION_ACTIVE
    );
    let rv = ck!(C_SignInit(t.s, null_mut(), t.ec_priv));
    check_terminate(rv, || {
        let mut n: CK_ULONG = 0;
        ck!(C_SignFinal(t.s, null_mut(), &mut n)) == CKR_OPERATION_NOT_INITIALIZED
    });
}

#[test]
fn c_sign_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut data = [0x11u8; 32];
    let mut sig = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_Sign(
            BAD_SESSION,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            &mut n
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_Sign(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_ECDSA);
    assert_eq!(ck!(C_SignInit(t.s, &mut m, t.ec_priv)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        ck!(C_Sign(t.s, data.as_mut_ptr(), 32, null_mut(), &mut len)),
        CKR_OK
    );
    assert_eq!(len, 64, "r‖s of P-256");
    let mut short: CK_ULONG = 63;
    assert_eq!(
        ck!(C_Sign(
            t.s,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            &mut short
        )),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 64);
    assert!(sig.iter().all(|b| *b == 0), "nothing written");
    let mut full: CK_ULONG = 128;
    assert_eq!(
        ck!(C_Sign(
            t.s,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            &mut full
        )),
        CKR_OK
    );
    assert_eq!(full, 64);
    assert_eq!(
        ck!(C_Sign(
            t.s,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            &mut full
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // The signature the size query announced is a good one.
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), 64)),
        CKR_OK
    );
    assert_eq!(ck!(C_SignInit(t.s, &mut m, t.ec_priv)), CKR_OK);
    assert_eq!(
        ck!(C_Sign(
            t.s,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_Sign(t.s, null_mut(), 32, sig.as_mut_ptr(), &mut full)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_sign_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut part = *b"part";
    let mut sig = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_SignUpdate(BAD_SESSION, part.as_mut_ptr(), 4)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SignFinal(BAD_SESSION, sig.as_mut_ptr(), &mut n)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_SignUpdate(t.s, part.as_mut_ptr(), 4)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_SignFinal(t.s, sig.as_mut_ptr(), &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_ECDSA_SHA256);
    assert_eq!(ck!(C_SignInit(t.s, &mut m, t.ec_priv)), CKR_OK);
    assert_eq!(ck!(C_SignUpdate(t.s, part.as_mut_ptr(), 4)), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(ck!(C_SignFinal(t.s, null_mut(), &mut len)), CKR_OK);
    assert_eq!(len, 64);
    let mut short: CK_ULONG = 10;
    assert_eq!(
        ck!(C_SignFinal(t.s, sig.as_mut_ptr(), &mut short)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 64);
    let mut full: CK_ULONG = 128;
    assert_eq!(ck!(C_SignFinal(t.s, sig.as_mut_ptr(), &mut full)), CKR_OK);
    assert_eq!(full, 64);
    assert_eq!(
        ck!(C_SignFinal(t.s, sig.as_mut_ptr(), &mut full)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(ck!(C_VerifyUpdate(t.s, part.as_mut_ptr(), 4)), CKR_OK);
    assert_eq!(ck!(C_VerifyFinal(t.s, sig.as_mut_ptr(), 64)), CKR_OK);
    assert_eq!(ck!(C_SignInit(t.s, &mut m, t.ec_priv)), CKR_OK);
    assert_eq!(
        ck!(C_SignFinal(t.s, sig.as_mut_ptr(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_SignUpdate(t.s, null_mut(), 4)), CKR_ARGUMENTS_BAD);
}

#[test]
fn c_sign_recover_init_and_sign_recover_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_RSA_PKCS);
    let mut data = [1u8; 16];
    let mut sig = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_SignRecoverInit(t.s, &mut m, t.rsa_priv)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_SignRecover(
            t.s,
            data.as_mut_ptr(),
            16,
            sig.as_mut_ptr(),
            &mut n
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
}

// ---------------------------------------------------------------------------
// Verification (§5.15)

#[test]
fn c_verify_init_bad_session_bad_key_private_key_and_active() {
    let t = token();
    let mut m = mech(CKM_ECDSA);
    assert_eq!(
        ck!(C_VerifyInit(BAD_SESSION, &mut m, t.ec_pub)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_VerifyInit(t.s, &mut m, BAD_OBJECT)),
        CKR_KEY_HANDLE_INVALID
    );
    let rv = ck!(C_VerifyInit(t.s, &mut m, t.ec_priv));
    assert!(
        rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT,
        "a private key for C_VerifyInit: {rv:#x}"
    );
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(
        ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)),
        CKR_OPERATION_ACTIVE
    );
    let rv = ck!(C_VerifyInit(t.s, null_mut(), t.ec_pub));
    check_terminate(rv, || {
        let mut sig = [0u8; 64];
        ck!(C_VerifyFinal(t.s, sig.as_mut_ptr(), 64)) == CKR_OPERATION_NOT_INITIALIZED
    });
}

#[test]
fn c_verify_not_initialized_signature_length_and_invalid_signature() {
    let t = token();
    let mut data = [0x22u8; 32];
    let mut sig = [0u8; 64];
    assert_eq!(
        ck!(C_Verify(
            BAD_SESSION,
            data.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            64
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_ECDSA);
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), 10)),
        CKR_SIGNATURE_LEN_RANGE
    );
    // Every result but a size query ends the verification.
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    sig[31] = 1;
    sig[63] = 1;
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, sig.as_mut_ptr(), 64)),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(
        ck!(C_Verify(t.s, data.as_mut_ptr(), 32, null_mut(), 64)),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_verify_update_and_final_not_initialized_and_invalid_signature() {
    let t = token();
    let mut part = *b"part";
    let mut sig = [0u8; 64];
    assert_eq!(
        ck!(C_VerifyUpdate(BAD_SESSION, part.as_mut_ptr(), 4)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_VerifyFinal(BAD_SESSION, sig.as_mut_ptr(), 64)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_VerifyUpdate(t.s, part.as_mut_ptr(), 4)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_VerifyFinal(t.s, sig.as_mut_ptr(), 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut m = mech(CKM_ECDSA_SHA256);
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(ck!(C_VerifyUpdate(t.s, part.as_mut_ptr(), 4)), CKR_OK);
    sig[31] = 1;
    sig[63] = 1;
    assert_eq!(
        ck!(C_VerifyFinal(t.s, sig.as_mut_ptr(), 64)),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        ck!(C_VerifyFinal(t.s, sig.as_mut_ptr(), 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(ck!(C_VerifyInit(t.s, &mut m, t.ec_pub)), CKR_OK);
    assert_eq!(ck!(C_VerifyUpdate(t.s, null_mut(), 4)), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_VerifyFinal(t.s, null_mut(), 64)), CKR_ARGUMENTS_BAD);
}

#[test]
fn c_verify_recover_init_and_verify_recover_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_RSA_PKCS);
    let mut sig = [1u8; 128];
    let mut data = [0u8; 128];
    let mut n: CK_ULONG = 128;
    assert_eq!(
        ck!(C_VerifyRecoverInit(t.s, &mut m, t.rsa_pub)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_VerifyRecover(
            t.s,
            sig.as_mut_ptr(),
            128,
            data.as_mut_ptr(),
            &mut n
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
}

// ---------------------------------------------------------------------------
// Dual-function operations (§5.17): not supported.

#[test]
fn c_digest_encrypt_decrypt_digest_sign_encrypt_decrypt_verify_update_are_not_supported() {
    let t = token();
    let mut part = [1u8; 16];
    let mut out = [0u8; 16];
    let mut n: CK_ULONG = 16;
    let p = part.as_mut_ptr();
    let o = out.as_mut_ptr();
    assert_eq!(
        ck!(C_DigestEncryptUpdate(t.s, p, 16, o, &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_DecryptDigestUpdate(t.s, p, 16, o, &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_SignEncryptUpdate(t.s, p, 16, o, &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_DecryptVerifyUpdate(t.s, p, 16, o, &mut n)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(n, 16, "nothing written");
}

// ---------------------------------------------------------------------------
// Message-based functions (§5.9, §5.11, §5.14, §5.16): not supported.

#[test]
fn c_message_encrypt_init_encrypt_message_begin_next_final_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_AES_GCM);
    let mut buf = [0u8; 16];
    let mut out = [0u8; 32];
    let mut n: CK_ULONG = 32;
    let (b, o) = (buf.as_mut_ptr(), out.as_mut_ptr());
    let ns = CKR_FUNCTION_NOT_SUPPORTED;
    assert_eq!(ck!(C_MessageEncryptInit(t.s, &mut m, t.ec_priv)), ns);
    assert_eq!(
        ck!(C_MessageEncryptInit(t.s, null_mut(), t.ec_priv)),
        CKR_ARGUMENTS_BAD
    );
    let pv = b as *mut c_void;
    assert_eq!(
        ck!(C_EncryptMessage(t.s, pv, 16, b, 16, b, 16, o, &mut n)),
        ns
    );
    assert_eq!(ck!(C_EncryptMessageBegin(t.s, pv, 16, b, 16)), ns);
    assert_eq!(
        ck!(C_EncryptMessageNext(
            t.s,
            pv,
            16,
            b,
            16,
            o,
            &mut n,
            CKF_END_OF_MESSAGE
        )),
        ns
    );
    assert_eq!(ck!(C_MessageEncryptFinal(t.s)), ns);
}

#[test]
fn c_message_decrypt_init_decrypt_message_begin_next_final_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_AES_GCM);
    let mut buf = [0u8; 16];
    let mut out = [0u8; 32];
    let mut n: CK_ULONG = 32;
    let (b, o) = (buf.as_mut_ptr(), out.as_mut_ptr());
    let ns = CKR_FUNCTION_NOT_SUPPORTED;
    assert_eq!(ck!(C_MessageDecryptInit(t.s, &mut m, t.ec_priv)), ns);
    assert_eq!(
        ck!(C_MessageDecryptInit(t.s, null_mut(), t.ec_priv)),
        CKR_ARGUMENTS_BAD
    );
    let pv = b as *mut c_void;
    assert_eq!(
        ck!(C_DecryptMessage(t.s, pv, 16, b, 16, b, 16, o, &mut n)),
        ns
    );
    assert_eq!(ck!(C_DecryptMessageBegin(t.s, pv, 16, b, 16)), ns);
    assert_eq!(
        ck!(C_DecryptMessageNext(
            t.s,
            pv,
            16,
            b,
            16,
            o,
            &mut n,
            CKF_END_OF_MESSAGE
        )),
        ns
    );
    assert_eq!(ck!(C_MessageDecryptFinal(t.s)), ns);
}

#[test]
fn c_message_sign_init_sign_message_begin_next_final_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_ECDSA);
    let mut buf = [0u8; 16];
    let mut sig = [0u8; 64];
    let mut n: CK_ULONG = 64;
    let (b, o) = (buf.as_mut_ptr(), sig.as_mut_ptr());
    let ns = CKR_FUNCTION_NOT_SUPPORTED;
    assert_eq!(ck!(C_MessageSignInit(t.s, &mut m, t.ec_priv)), ns);
    assert_eq!(
        ck!(C_MessageSignInit(t.s, null_mut(), t.ec_priv)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_SignMessage(t.s, null_mut(), 0, b, 16, o, &mut n)), ns);
    assert_eq!(ck!(C_SignMessageBegin(t.s, null_mut(), 0)), ns);
    assert_eq!(
        ck!(C_SignMessageNext(t.s, null_mut(), 0, b, 16, o, &mut n)),
        ns
    );
    assert_eq!(ck!(C_MessageSignFinal(t.s)), ns);
}

#[test]
fn c_message_verify_init_verify_message_begin_next_final_are_not_supported() {
    let t = token();
    let mut m = mech(CKM_ECDSA);
    let mut buf = [0u8; 16];
    let mut sig = [0u8; 64];
    let (b, s) = (buf.as_mut_ptr(), sig.as_mut_ptr());
    let ns = CKR_FUNCTION_NOT_SUPPORTED;
    assert_eq!(ck!(C_MessageVerifyInit(t.s, &mut m, t.ec_pub)), ns);
    assert_eq!(
        ck!(C_MessageVerifyInit(t.s, null_mut(), t.ec_pub)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_VerifyMessage(t.s, null_mut(), 0, b, 16, s, 64)), ns);
    assert_eq!(ck!(C_VerifyMessageBegin(t.s, null_mut(), 0)), ns);
    assert_eq!(
        ck!(C_VerifyMessageNext(t.s, null_mut(), 0, b, 16, s, 64)),
        ns
    );
    assert_eq!(ck!(C_MessageVerifyFinal(t.s)), ns);
}

// ---------------------------------------------------------------------------
// Key management (§5.18)

#[test]
fn c_generate_key_is_not_supported_and_checks_its_pointers() {
    let t = token();
    let mut m = mech(CKM_AES_KEY_GEN);
    let mut h = 0;
    assert_eq!(
        ck!(C_GenerateKey(t.s, &mut m, null_mut(), 0, &mut h)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_GenerateKey(t.s, null_mut(), null_mut(), 0, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GenerateKey(t.s, &mut m, null_mut(), 0, null_mut())),
        CKR_ARGUMENTS_BAD
    );
}

/// DER OID of prime256v1.
const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

#[test]
fn c_generate_key_pair_bad_session_null_pointers_and_wrong_mechanism() {
    let t = token();
    let mut params = P256;
    let mut public = [attr_bytes(CKA_EC_PARAMS, &mut params)];
    let mut m = mech(CKM_EC_KEY_PAIR_GEN);
    let (mut hp, mut hk) = (0, 0);
    let pt = public.as_mut_ptr();
    assert_eq!(
        ck!(C_GenerateKeyPair(
            BAD_SESSION,
            &mut m,
            pt,
            1,
            null_mut(),
            0,
            &mut hp,
            &mut hk
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GenerateKeyPair(
            t.s,
            null_mut(),
            pt,
            1,
            null_mut(),
            0,
            &mut hp,
            &mut hk
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GenerateKeyPair(
            t.s,
            &mut m,
            pt,
            1,
            null_mut(),
            0,
            null_mut(),
            &mut hk
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GenerateKeyPair(
            t.s,
            &mut m,
            pt,
            1,
            null_mut(),
            0,
            &mut hp,
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GenerateKeyPair(
            t.s,
            &mut m,
            null_mut(),
            1,
            null_mut(),
            0,
            &mut hp,
            &mut hk
        )),
        CKR_ARGUMENTS_BAD
    );
    let mut sha = mech(CKM_SHA256);
    assert_eq!(
        ck!(C_GenerateKeyPair(
            t.s,
            &mut sha,
            pt,
            1,
            null_mut(),
            0,
            &mut hp,
            &mut hk
        )),
        CKR_MECHANISM_INVALID
    );
    assert_eq!((hp, hk), (0, 0), "nothing written");
}

#[test]
fn c_wrap_key_and_unwrap_key_are_not_supported_and_check_their_pointers() {
    let t = token();
    let mut m = mech(CKM_RSA_PKCS);
    let mut wrapped = [0u8; 128];
    let mut n: CK_ULONG = 128;
    let mut h = 0;
    assert_eq!(
        ck!(C_WrapKey(
            t.s,
            &mut m,
            t.rsa_pub,
            t.ec_priv,
            wrapped.as_mut_ptr(),
            &mut n
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_WrapKey(
            t.s,
            &mut m,
            t.rsa_pub,
            t.ec_priv,
            wrapped.as_mut_ptr(),
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_WrapKey(
            t.s,
            null_mut(),
            t.rsa_pub,
            t.ec_priv,
            wrapped.as_mut_ptr(),
            &mut n
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_UnwrapKey(
            t.s,
            &mut m,
            t.rsa_priv,
            wrapped.as_mut_ptr(),
            128,
            null_mut(),
            0,
            &mut h
        )),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_UnwrapKey(
            t.s,
            &mut m,
            t.rsa_priv,
            wrapped.as_mut_ptr(),
            128,
            null_mut(),
            0,
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_UnwrapKey(
            t.s,
            null_mut(),
            t.rsa_priv,
            wrapped.as_mut_ptr(),
            128,
            null_mut(),
            0,
            &mut h
        )),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn c_derive_key_bad_session_bad_base_key_and_null_pointers() {
    let t = token();
    // The peer's point: the card's own EC public key will do.
    let mut point = [0u8; 67];
    let mut q = [attr_bytes(CKA_EC_POINT, &mut point)];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, t.ec_pub, q.as_mut_ptr(), 1)),
        CKR_OK
    );
    let mut params = CK_ECDH1_DERIVE_PARAMS {
        kdf: CKD_NULL,
        ulSharedDataLen: 0,
        pSharedData: null_mut(),
        ulPublicDataLen: 65,
        pPublicData: point[2..].as_mut_ptr(),
    };
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDH1_DERIVE,
        pParameter: &mut params as *mut _ as *mut c_void,
        ulParameterLen: size_of::<CK_ECDH1_DERIVE_PARAMS>() as CK_ULONG,
    };
    let mut class = CKO_SECRET_KEY;
    let mut kt = CKK_GENERIC_SECRET;
    let mut token_false = [CK_FALSE];
    let mut tpl = [
        attr_ulong(CKA_CLASS, &mut class),
        attr_ulong(CKA_KEY_TYPE, &mut kt),
        attr_bytes(CKA_TOKEN, &mut token_false),
    ];
    let tp = tpl.as_mut_ptr();
    let mut h = 0;
    assert_eq!(
        ck!(C_DeriveKey(BAD_SESSION, &mut m, t.ec_priv, tp, 3, &mut h)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DeriveKey(t.s, &mut m, BAD_OBJECT, tp, 3, &mut h)),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_DeriveKey(t.s, null_mut(), t.ec_priv, tp, 3, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_DeriveKey(t.s, &mut m, t.ec_priv, tp, 3, null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_DeriveKey(t.s, &mut m, t.ec_priv, null_mut(), 3, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(h, 0, "nothing written");
    assert_eq!(
        ck!(C_DeriveKey(t.s, &mut m, t.ec_priv, tp, 3, &mut h)),
        CKR_OK
    );
    assert_ne!(h, 0);
    // A sensitive secret: its value is not revealed.
    let mut v = [attr_null(CKA_VALUE)];
    assert_eq!(
        ck!(C_GetAttributeValue(t.s, h, v.as_mut_ptr(), 1)),
        CKR_ATTRIBUTE_SENSITIVE
    );
    assert_eq!(v[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
}

// ---------------------------------------------------------------------------
// Random numbers (§5.19)

#[test]
fn c_seed_random_bad_session_null_seed_and_not_supported_seed() {
    let t = token();
    let mut seed = [7u8; 16];
    assert_eq!(
        ck!(C_SeedRandom(BAD_SESSION, seed.as_mut_ptr(), 16)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_SeedRandom(t.s, null_mut(), 16)), CKR_ARGUMENTS_BAD);
    assert_eq!(
        ck!(C_SeedRandom(t.s, seed.as_mut_ptr(), 16)),
        CKR_RANDOM_SEED_NOT_SUPPORTED
    );
}

#[test]
fn c_generate_random_bad_session_and_null_buffer() {
    let t = token();
    let mut r = [0u8; 32];
    assert_eq!(
        ck!(C_GenerateRandom(BAD_SESSION, r.as_mut_ptr(), 32)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GenerateRandom(t.s, null_mut(), 32)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_GenerateRandom(t.s, r.as_mut_ptr(), 32)), CKR_OK);
    assert!(r.iter().any(|b| *b != 0));
}

// ---------------------------------------------------------------------------
// Parallel function management (§5.20): legacy.

#[test]
fn c_get_function_status_and_cancel_function_are_not_parallel() {
    let t = token();
    assert_eq!(ck!(C_GetFunctionStatus(t.s)), CKR_FUNCTION_NOT_PARALLEL);
    assert_eq!(ck!(C_CancelFunction(t.s)), CKR_FUNCTION_NOT_PARALLEL);
}
