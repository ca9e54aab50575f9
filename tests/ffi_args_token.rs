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

use common::ffi::{sym, GetInterface};
use common::*;
use cryptoki_sys::*;
use sha2::{Digest, Sha256};

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
    static LIST: OnceLock<&'static CK_FUNCTION_LIST_3_0> = OnceLock::new();
    LIST.get_or_init(|| {
        let get: GetInterface = sym("C_GetInterface");
        let mut iface: *mut CK_INTERFACE = null_mut();
        // SAFETY: a live out-pointer; NULL name and version: the default.
        assert_eq!(
            unsafe { get(null_mut(), null_mut(), &mut iface, 0) },
            CKR_OK
        );
        // SAFETY: the default interface holds the module's static 3.0 list,
        // alive as long as the library, which stays loaded.
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
// Tables of calls
//
// Most checks below are a C function called with some arguments and the
// CK_RV PKCS#11 3.0 requires of it: they are written as rows, each naming
// the function it calls, and a failing row names that function. The rows
// take raw pointers (from [`ptr`] and `as_mut_ptr`) where the C function
// takes pointers, so that several rows can share a buffer.

/// One call of a C function and the CK_RV it must return.
struct Row<'a> {
    name: &'static str,
    call: Box<dyn FnMut() -> CK_RV + 'a>,
    rv: CK_RV,
}

impl Row<'_> {
    /// Makes the call; a CK_RV other than the row's fails with its name.
    fn check(&mut self) {
        assert_eq!((self.call)(), self.rv, "{}", self.name);
    }
}

/// `row!(C_Sign(s, data, 32, sig, len) => CKR_OK)`: a [`Row`] named after
/// the function it calls; `row!(group: C_Sign(...) => CKR_OK)`: the row in
/// a group of a table; `row!(move C_Sign(...) => CKR_OK)`: a row that
/// owns its arguments.
macro_rules! row {
    (move $f:ident($($a:expr),* $(,)?) => $rv:expr) => {
        Row {
            name: stringify!($f),
            call: Box::new(move || ck!($f($($a),*))),
            rv: $rv,
        }
    };
    ($group:ident: $($call:tt)*) => {
        ($group, row!($($call)*))
    };
    ($f:ident($($a:expr),* $(,)?) => $rv:expr) => {
        Row {
            name: stringify!($f),
            call: Box::new(|| ck!($f($($a),*))),
            rv: $rv,
        }
    };
}

/// Checks every row, in order.
fn check<'a>(rows: impl IntoIterator<Item = Row<'a>>) {
    for mut row in rows {
        row.check();
    }
}

/// A local as the raw pointer a C function takes.
fn ptr<T>(v: &mut T) -> *mut T {
    v
}

/// A mechanism as C functions take it: `let m: Mech = &mut mech(CKM_ECDSA);`
/// (the mechanism lives as long as `m`'s block).
type Mech = *mut CK_MECHANISM;

/// A buffer as the pointer and length a C function takes.
fn buf(b: &mut [u8]) -> (*mut u8, CK_ULONG) {
    (b.as_mut_ptr(), b.len() as CK_ULONG)
}

/// A C function by name and a closure that calls it with arguments `A`:
/// one entry of the tables of functions that share a test.
struct Named<'a, A> {
    name: &'static str,
    call: Box<dyn FnMut(A) -> CK_RV + 'a>,
}

impl<A> Named<'_, A> {
    /// Calls the function with `args`; a CK_RV other than `rv` fails with
    /// the function's name.
    fn expect(&mut self, args: A, rv: CK_RV) {
        assert_eq!((self.call)(args), rv, "{}", self.name);
    }
}

/// `(session, input, input length, output, &output length)`, the
/// arguments of C_Decrypt, C_Digest, C_Sign and C_DecryptUpdate.
type InOut = (CK_SESSION_HANDLE, *mut u8, CK_ULONG, *mut u8, *mut CK_ULONG);
/// `(session, output, &output length)`, the arguments of the C_*Final
/// functions that return data.
type Out = (CK_SESSION_HANDLE, *mut u8, *mut CK_ULONG);

/// `named!(C_GetTokenInfo(slot, info))`: a [`Named`] calling the function
/// with a tuple of its arguments.
macro_rules! named {
    ($f:ident($a:ident)) => {
        Named {
            name: stringify!($f),
            call: Box::new(|$a| ck!($f($a))),
        }
    };
    ($f:ident($($a:ident),*)) => {
        Named {
            name: stringify!($f),
            call: Box::new(|($($a),*)| ck!($f($($a),*))),
        }
    };
}

/// `in_out!(C_Sign)`: a function taking [`InOut`] arguments;
/// `in_out!(C_SignUpdate, input only)`: one taking the session and the
/// input only, called with [`InOut`] arguments.
macro_rules! in_out {
    ($f:ident) => {
        named!($f(s, i, n, o, l))
    };
    ($f:ident, input only) => {
        Named {
            name: stringify!($f),
            call: Box::new(|(s, i, n, _, _): InOut| ck!($f(s, i, n))),
        }
    };
}

/// `op_init!(C_SignInit, key)`, `op_init!(C_DigestInit)`: a C_*Init as a
/// [`Named`] of the session and the mechanism.
macro_rules! op_init {
    ($f:ident, $key:expr) => {
        Named {
            name: stringify!($f),
            call: Box::new(|(s, m)| ck!($f(s, m, $key))),
        }
    };
    ($f:ident) => {
        named!($f(s, m))
    };
}

/// What a test expects of an operation's output.
struct Output<'a> {
    /// The size of the output buffer, and the length offered for it.
    room: usize,
    /// Checks the length a size query announces.
    len_ok: &'a dyn Fn(CK_ULONG),
    /// Runs once the operation has ended, with the input and the output.
    after: Box<After<'a>>,
}

/// What a test checks once its operation has ended, given the input and
/// the output.
type After<'a> = dyn FnOnce(*mut u8, &[u8]) + 'a;

/// C_DigestInit with CKM_SHA256 on session `s`, which succeeds.
fn sha256_init(s: CK_SESSION_HANDLE) -> Row<'static> {
    row!(move C_DigestInit(s, &mut mech(CKM_SHA256)) => CKR_OK)
}

/// The output of SHA-256 over `data`.
fn sha256_of(data: &'static [u8]) -> Output<'static> {
    Output {
        room: 64,
        len_ok: &|len| assert_eq!(len, 32),
        after: Box::new(move |_, out| assert_eq!(out, Sha256::digest(data).as_slice())),
    }
}

/// A single-part function (C_Decrypt, C_Digest, C_Sign) and what its test
/// gives it.
struct SinglePart<'a> {
    f: Named<'a, InOut>,
    input: (*mut u8, CK_ULONG),
    out: Output<'a>,
}

/// The checks every single-part function gets, in this order: a bad
/// session, no operation, `init` (which succeeds), a size query, a buffer
/// one byte short (nothing written), the output (the operation ends),
/// `init` again, NULL output length, NULL input.
fn single_part(s: CK_SESSION_HANDLE, mut init: Row, mut op: SinglePart) {
    let ((i, i_n), room) = (op.input, op.out.room);
    let mut out = vec![0u8; room];
    let (o, mut n) = (out.as_mut_ptr(), room as CK_ULONG);
    op.f.expect((BAD_SESSION, i, i_n, o, &mut n), CKR_SESSION_HANDLE_INVALID);
    op.f.expect((s, i, i_n, o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
    init.check();
    let mut len: CK_ULONG = 0;
    op.f.expect((s, i, i_n, null_mut(), &mut len), CKR_OK);
    (op.out.len_ok)(len);
    let mut short = len - 1;
    op.f.expect((s, i, i_n, o, &mut short), CKR_BUFFER_TOO_SMALL);
    assert_eq!(short, len);
    assert!(out.iter().all(|b| *b == 0), "nothing written");
    let mut full = room as CK_ULONG;
    op.f.expect((s, i, i_n, o, &mut full), CKR_OK);
    assert_eq!(full, len);
    op.f.expect((s, i, i_n, o, &mut full), CKR_OPERATION_NOT_INITIALIZED);
    (op.out.after)(i, &out[..full as usize]);
    init.check();
    op.f.expect((s, i, i_n, o, null_mut()), CKR_ARGUMENTS_BAD);
    op.f.expect((s, null_mut(), i_n, o, &mut full), CKR_ARGUMENTS_BAD);
}

/// A multi-part operation (C_*Update, C_*Final) and what its test gives it.
struct MultiPart<'a> {
    update: Named<'a, InOut>,
    last: Named<'a, Out>,
    part: (*mut u8, CK_ULONG),
    /// The length given with a NULL part.
    null_len: CK_ULONG,
    /// The updates of a successful run, given the part and the output
    /// buffer.
    feed: Box<dyn FnMut(*mut u8, *mut u8) + 'a>,
    /// The length offered with a short buffer, from the announced one.
    short: fn(CK_ULONG) -> CK_ULONG,
    out: Output<'a>,
}

/// The checks every multi-part operation gets, in this order: a bad
/// session and no operation for both functions, `init` (which succeeds),
/// the updates, a size query and a short buffer of C_*Final, the output
/// (the operation ends), `init` again, NULL output length, NULL part.
fn update_and_final(s: CK_SESSION_HANDLE, mut init: Row, mut op: MultiPart) {
    let ((p, p_n), room) = (op.part, op.out.room);
    let mut out = vec![0u8; room];
    let (o, mut n) = (out.as_mut_ptr(), room as CK_ULONG);
    op.update
        .expect((BAD_SESSION, p, p_n, o, &mut n), CKR_SESSION_HANDLE_INVALID);
    op.last
        .expect((BAD_SESSION, o, &mut n), CKR_SESSION_HANDLE_INVALID);
    op.update
        .expect((s, p, p_n, o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
    op.last
        .expect((s, o, &mut n), CKR_OPERATION_NOT_INITIALIZED);
    init.check();
    (op.feed)(p, o);
    let mut len: CK_ULONG = 0;
    op.last.expect((s, null_mut(), &mut len), CKR_OK);
    (op.out.len_ok)(len);
    let mut short = (op.short)(len);
    op.last.expect((s, o, &mut short), CKR_BUFFER_TOO_SMALL);
    assert_eq!(short, len);
    let mut full = room as CK_ULONG;
    op.last.expect((s, o, &mut full), CKR_OK);
    assert_eq!(full, len);
    op.last
        .expect((s, o, &mut full), CKR_OPERATION_NOT_INITIALIZED);
    (op.out.after)(p, &out[..full as usize]);
    init.check();
    op.last.expect((s, o, null_mut()), CKR_ARGUMENTS_BAD);
    let null_part: InOut = (s, null_mut(), op.null_len, o, &mut full);
    op.update.expect(null_part, CKR_ARGUMENTS_BAD);
}

/// The end of every C_*Init test: `init` (with its key, if any) starts the
/// operation, finds it active, then a NULL mechanism ends it or says it
/// cannot (see [`check_terminate`]); `ended` is a call that fails with
/// CKR_OPERATION_NOT_INITIALIZED once the operation is gone.
fn starts_then_terminates(
    mut init: Named<(CK_SESSION_HANDLE, *mut CK_MECHANISM)>,
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    mut ended: Row,
) {
    init.expect((s, m), CKR_OK);
    init.expect((s, m), CKR_OPERATION_ACTIVE);
    let rv = (init.call)((s, null_mut()));
    check_terminate(rv, || (ended.call)() == CKR_OPERATION_NOT_INITIALIZED);
}

/// A function that fills a structure for a handle (a slot or a session):
/// refused for a bad handle and for NULL, then filled in.
fn fills<T: Default>(
    mut f: Named<(CK_ULONG, *mut T)>,
    (bad, bad_rv): (CK_ULONG, CK_RV),
    good: CK_ULONG,
) -> T {
    let mut v = T::default();
    f.expect((bad, &mut v), bad_rv);
    f.expect((good, null_mut()), CKR_ARGUMENTS_BAD);
    f.expect((good, &mut v), CKR_OK);
    v
}

/// A function of a session and a buffer (C_InitPIN, C_SeedRandom,
/// C_GenerateRandom): refused for a bad session and for a NULL buffer,
/// then `rv`.
fn session_and_buffer(
    mut f: Named<(CK_SESSION_HANDLE, *mut u8, CK_ULONG)>,
    s: CK_SESSION_HANDLE,
    (b, n): (*mut u8, CK_ULONG),
    rv: CK_RV,
) {
    f.expect((BAD_SESSION, b, n), CKR_SESSION_HANDLE_INVALID);
    f.expect((s, null_mut(), n), CKR_ARGUMENTS_BAD);
    f.expect((s, b, n), rv);
}

// ---------------------------------------------------------------------------
// Before C_Initialize and after C_Finalize

/// Every function of the 3.0 list that needs C_Initialize, with arguments
/// that would be wrong anyway: the initialisation check comes first. In the
/// order of the list, but for the operations: their families side by side.
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
        C_DecryptInit(1, null_mut(), 1);
        C_Encrypt(1, null_mut(), 0, null_mut(), null_mut());
        C_Decrypt(1, null_mut(), 0, null_mut(), null_mut());
        C_EncryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_DecryptUpdate(1, null_mut(), 0, null_mut(), null_mut());
        C_EncryptFinal(1, null_mut(), null_mut());
        C_DecryptFinal(1, null_mut(), null_mut());
        C_MessageEncryptInit(1, null_mut(), 1);
        C_MessageDecryptInit(1, null_mut(), 1);
        C_EncryptMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_DecryptMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_EncryptMessageBegin(1, null_mut(), 0, null_mut(), 0);
        C_DecryptMessageBegin(1, null_mut(), 0, null_mut(), 0);
        C_EncryptMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut(), 0);
        C_DecryptMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut(), 0);
        C_MessageEncryptFinal(1);
        C_MessageDecryptFinal(1);
        C_DigestInit(1, null_mut());
        C_Digest(1, null_mut(), 0, null_mut(), null_mut());
        C_DigestUpdate(1, null_mut(), 0);
        C_DigestKey(1, 1);
        C_DigestFinal(1, null_mut(), null_mut());
        C_SignInit(1, null_mut(), 1);
        C_VerifyInit(1, null_mut(), 1);
        C_Sign(1, null_mut(), 0, null_mut(), null_mut());
        C_Verify(1, null_mut(), 0, null_mut(), 0);
        C_SignUpdate(1, null_mut(), 0);
        C_VerifyUpdate(1, null_mut(), 0);
        C_SignFinal(1, null_mut(), null_mut());
        C_VerifyFinal(1, null_mut(), 0);
        C_SignRecoverInit(1, null_mut(), 1);
        C_VerifyRecoverInit(1, null_mut(), 1);
        C_SignRecover(1, null_mut(), 0, null_mut(), null_mut());
        C_VerifyRecover(1, null_mut(), 0, null_mut(), null_mut());
        C_MessageSignInit(1, null_mut(), 1);
        C_MessageVerifyInit(1, null_mut(), 1);
        C_SignMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_VerifyMessage(1, null_mut(), 0, null_mut(), 0, null_mut(), 0);
        C_SignMessageBegin(1, null_mut(), 0);
        C_VerifyMessageBegin(1, null_mut(), 0);
        C_SignMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), null_mut());
        C_VerifyMessageNext(1, null_mut(), 0, null_mut(), 0, null_mut(), 0);
        C_MessageSignFinal(1);
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
// General purpose (PKCS#11 3.0 §5.4)

#[test]
fn c_initialize_twice_is_already_initialized() {
    let _i = init();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: null_mut(),
    };
    let args = ptr(&mut args) as *mut c_void;
    let mut info = CK_INFO::default();
    let info = ptr(&mut info);
    check([
        row!(C_Initialize(null_mut()) => CKR_CRYPTOKI_ALREADY_INITIALIZED),
        row!(C_Initialize(args) => CKR_CRYPTOKI_ALREADY_INITIALIZED),
        // Still initialised, once.
        row!(C_GetInfo(info) => CKR_OK),
    ]);
}

#[test]
fn c_finalize_with_reserved_is_arguments_bad() {
    let _i = init();
    let mut x = 0u8;
    let reserved = ptr(&mut x) as *mut c_void;
    let mut info = CK_INFO::default();
    let info = ptr(&mut info);
    check([
        row!(C_Finalize(reserved) => CKR_ARGUMENTS_BAD),
        // Nothing was finalised.
        row!(C_GetInfo(info) => CKR_OK),
        row!(C_Finalize(null_mut()) => CKR_OK),
        row!(C_Finalize(null_mut()) => CKR_CRYPTOKI_NOT_INITIALIZED),
    ]);
}

#[test]
fn c_finalize_ends_the_operations_of_its_sessions() {
    let t = token();
    let (sha, ecdsa): (Mech, Mech) = (&mut mech(CKM_SHA256), &mut mech(CKM_ECDSA));
    check([
        row!(C_DigestInit(t.s, sha) => CKR_OK),
        row!(C_SignInit(t.s, ecdsa, t.ec_priv) => CKR_OK),
        row!(C_FindObjectsInit(t.s, null_mut(), 0) => CKR_OK),
        row!(C_Finalize(null_mut()) => CKR_OK),
        row!(C_Initialize(null_mut()) => CKR_OK),
    ]);
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
    let mut info = CK_INFO::default();
    let p = ptr(&mut info);
    check([
        row!(C_GetInfo(null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_GetInfo(p) => CKR_OK),
    ]);
    assert_eq!(
        (info.cryptokiVersion.major, info.cryptokiVersion.minor),
        (3, 0)
    );
}

// ---------------------------------------------------------------------------
// Slots and tokens (PKCS#11 3.0 §5.5)

/// A list function's checks: `list(buffer, &count)` with a NULL count, a
/// size query, short buffers (nothing written, the needed count returned)
/// and the full list. Returns the list.
fn list_checks<T: Copy + PartialEq + std::fmt::Debug>(
    mut list: Named<(*mut T, *mut CK_ULONG)>,
    fill: T,
    shorts: &[fn(CK_ULONG) -> CK_ULONG],
    count_ok: impl Fn(CK_ULONG),
) -> Vec<T> {
    list.expect((null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
    let mut n: CK_ULONG = 0;
    list.expect((null_mut(), &mut n), CKR_OK);
    count_ok(n);
    let mut v = vec![fill; n as usize];
    for short in shorts {
        let mut short = short(n);
        list.expect((v.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
        assert_eq!(short, n, "the needed count");
        assert!(v.iter().all(|x| *x == fill), "nothing written");
    }
    let mut full = n;
    list.expect((v.as_mut_ptr(), &mut full), CKR_OK);
    assert_eq!(full, n);
    assert!(!v.contains(&fill));
    v
}

#[test]
fn c_get_slot_list_null_count_size_query_and_short_buffer() {
    let _i = init();
    let list = Named {
        name: "C_GetSlotList",
        call: Box::new(|(l, n): (*mut CK_SLOT_ID, *mut CK_ULONG)| {
            ck!(C_GetSlotList(CK_FALSE, l, n))
        }),
    };
    let count_ok = |n| assert!(n >= 2, "one slot per vpcd reader, got {n}");
    list_checks(list, 0xAAAA_AAAA, &[|n| n - 1, |_| 0], count_ok);
}

#[test]
fn c_get_slot_info_bad_slot_and_null_info() {
    let _i = init();
    let bad = (BAD_SLOT, CKR_SLOT_ID_INVALID);
    fills(named!(C_GetSlotInfo(slot, info)), bad, any_slot());
}

#[test]
fn c_get_token_info_bad_slot_and_null_info() {
    let t = token();
    let bad = (BAD_SLOT, CKR_SLOT_ID_INVALID);
    let info: CK_TOKEN_INFO = fills(named!(C_GetTokenInfo(slot, info)), bad, t.slot);
    assert_ne!(info.flags & CKF_TOKEN_INITIALIZED, 0);
}

#[test]
fn c_wait_for_slot_event_reserved_and_null_slot() {
    let _i = init();
    let mut slot: CK_SLOT_ID = 0;
    let mut x = 0u8;
    let (slot, reserved) = (ptr(&mut slot), ptr(&mut x) as *mut c_void);
    check([
        row!(C_WaitForSlotEvent(CKF_DONT_BLOCK, slot, reserved) => CKR_ARGUMENTS_BAD),
        row!(C_WaitForSlotEvent(CKF_DONT_BLOCK, null_mut(), null_mut()) => CKR_ARGUMENTS_BAD),
    ]);
}

#[test]
fn c_get_mechanism_list_bad_slot_null_count_size_query_and_short_buffer() {
    let _i = init();
    let slot = any_slot();
    let n: *mut CK_ULONG = &mut 0;
    row!(C_GetMechanismList(BAD_SLOT, null_mut(), n) => CKR_SLOT_ID_INVALID).check();
    let list = Named {
        name: "C_GetMechanismList",
        call: Box::new(|(l, n): (*mut CK_MECHANISM_TYPE, *mut CK_ULONG)| {
            ck!(C_GetMechanismList(slot, l, n))
        }),
    };
    let count_ok = |n| assert!(n > 2, "{n} mechanisms");
    let mechanisms = list_checks(list, 0xAAAA_AAAA, &[|n| n - 1], count_ok);
    assert!(mechanisms.contains(&CKM_ECDSA));
}

#[test]
fn c_get_mechanism_info_bad_slot_null_info_and_unknown_mechanism() {
    let _i = init();
    let slot = any_slot();
    let mut info = CK_MECHANISM_INFO::default();
    let p = ptr(&mut info);
    check([
        row!(C_GetMechanismInfo(BAD_SLOT, CKM_ECDSA, p) => CKR_SLOT_ID_INVALID),
        row!(C_GetMechanismInfo(slot, CKM_ECDSA, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_GetMechanismInfo(slot, CKM_AES_GCM, p) => CKR_MECHANISM_INVALID),
        row!(C_GetMechanismInfo(slot, CKM_ECDSA, p) => CKR_OK),
    ]);
    assert_ne!(info.flags & CKF_SIGN, 0);
}

#[test]
fn c_init_token_bad_slot_null_label_null_pin_and_open_session() {
    let t = token();
    let (p, n) = pin(SO_PIN);
    let mut label = [b' '; 32];
    let l = label.as_mut_ptr();
    check([
        row!(C_InitToken(BAD_SLOT, p, n, l) => CKR_SLOT_ID_INVALID),
        row!(C_InitToken(t.slot, p, n, null_mut()) => CKR_ARGUMENTS_BAD),
        // NULL with a length (no protected authentication path either).
        row!(C_InitToken(t.slot, null_mut(), n, l) => CKR_ARGUMENTS_BAD),
        row!(C_InitToken(t.slot, p, n, l) => CKR_SESSION_EXISTS),
    ]);
}

#[test]
fn c_init_pin_bad_session_null_pin_read_only_and_not_so() {
    let t = token();
    let (p, n) = pin("123456");
    // The user, not the SO, is logged in.
    let rv = CKR_USER_NOT_LOGGED_IN;
    session_and_buffer(named!(C_InitPIN(s, p, n)), t.s, (p, n), rv);
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    row!(C_InitPIN(ro, p, n) => CKR_SESSION_READ_ONLY).check();
}

#[test]
fn c_set_pin_bad_session_null_pins_and_read_only() {
    let t = token();
    let (old, on) = pin(PIN);
    let (new, nn) = pin("123456");
    check([
        row!(C_SetPIN(BAD_SESSION, old, on, new, nn) => CKR_SESSION_HANDLE_INVALID),
        row!(C_SetPIN(t.s, null_mut(), on, new, nn) => CKR_ARGUMENTS_BAD),
        row!(C_SetPIN(t.s, old, on, null_mut(), nn) => CKR_ARGUMENTS_BAD),
    ]);
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    row!(C_SetPIN(ro, old, on, new, nn) => CKR_SESSION_READ_ONLY).check();
}

// ---------------------------------------------------------------------------
// Sessions (PKCS#11 3.0 §5.6)

#[test]
fn c_open_session_bad_slot_null_handle_and_no_serial_flag() {
    let t = token();
    let mut s = 0;
    let sp = ptr(&mut s);
    let serial = CKF_SERIAL_SESSION;
    check([
        row!(C_OpenSession(BAD_SLOT, serial, null_mut(), None, sp) => CKR_SLOT_ID_INVALID),
        row!(C_OpenSession(t.slot, serial, null_mut(), None, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_OpenSession(t.slot, 0, null_mut(), None, sp) => CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    ]);
    assert_eq!(s, 0, "nothing written");
    row!(C_OpenSession(t.slot, serial, null_mut(), None, sp) => CKR_OK).check();
    assert!(s != 0 && s != t.s);
}

#[test]
fn c_close_session_bad_handle_and_twice() {
    let t = token();
    let invalid = CKR_SESSION_HANDLE_INVALID;
    check([
        row!(C_CloseSession(BAD_SESSION) => invalid),
        row!(C_CloseSession(CK_INVALID_HANDLE) => invalid),
    ]);
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    let mut info = CK_SESSION_INFO::default();
    let info = ptr(&mut info);
    check([
        row!(C_CloseSession(ro) => CKR_OK),
        row!(C_CloseSession(ro) => invalid),
        row!(C_GetSessionInfo(ro, info) => invalid),
    ]);
}

#[test]
fn c_close_all_sessions_bad_slot_and_closed_handles() {
    let t = token();
    row!(C_CloseAllSessions(BAD_SLOT) => CKR_SLOT_ID_INVALID).check();
    let ro = open(t.slot, CKF_SERIAL_SESSION);
    let mut info = CK_SESSION_INFO::default();
    let info = ptr(&mut info);
    check([
        row!(C_CloseAllSessions(t.slot) => CKR_OK),
        row!(C_GetSessionInfo(t.s, info) => CKR_SESSION_HANDLE_INVALID),
        row!(C_GetSessionInfo(ro, info) => CKR_SESSION_HANDLE_INVALID),
    ]);
}

#[test]
fn c_get_session_info_bad_session_and_null_info() {
    let t = token();
    let bad = (BAD_SESSION, CKR_SESSION_HANDLE_INVALID);
    let info: CK_SESSION_INFO = fills(named!(C_GetSessionInfo(s, info)), bad, t.s);
    assert_eq!((info.slotID, info.state), (t.slot, CKS_RW_USER_FUNCTIONS));
}

#[test]
fn c_session_cancel_is_not_supported() {
    let t = token();
    row!(C_SessionCancel(t.s, CKF_SIGN) => CKR_FUNCTION_NOT_SUPPORTED).check();
}

#[test]
fn c_get_and_set_operation_state_are_not_supported() {
    let t = token();
    let n: *mut CK_ULONG = &mut 0;
    let mut state = [0u8; 16];
    let st = state.as_mut_ptr();
    check([
        row!(C_GetOperationState(t.s, null_mut(), n) => CKR_FUNCTION_NOT_SUPPORTED),
        row!(C_GetOperationState(t.s, null_mut(), null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_SetOperationState(t.s, st, 16, 0, 0) => CKR_FUNCTION_NOT_SUPPORTED),
        row!(C_SetOperationState(t.s, null_mut(), 16, 0, 0) => CKR_ARGUMENTS_BAD),
    ]);
}

#[test]
fn c_login_bad_session_user_type_null_pin_logged_in_and_wrong_pin() {
    let t = token();
    let (p, n) = pin(PIN);
    let (so, so_n) = pin(SO_PIN);
    let (wrong, wn) = pin("000000");
    check([
        row!(C_Login(BAD_SESSION, CKU_USER, p, n) => CKR_SESSION_HANDLE_INVALID),
        row!(C_Login(t.s, 7, p, n) => CKR_USER_TYPE_INVALID),
        row!(C_Login(t.s, CKU_USER, p, n) => CKR_USER_ALREADY_LOGGED_IN),
        row!(C_Login(t.s, CKU_SO, so, so_n) => CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
        // No operation asks for a context-specific login.
        row!(C_Login(t.s, CKU_CONTEXT_SPECIFIC, p, n) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_Logout(t.s) => CKR_OK),
        // No protected authentication path.
        row!(C_Login(t.s, CKU_USER, null_mut(), 0) => CKR_ARGUMENTS_BAD),
        row!(C_Login(t.s, CKU_USER, wrong, wn) => CKR_PIN_INCORRECT),
        row!(C_Login(t.s, CKU_USER, p, n) => CKR_OK),
    ]);
}

#[test]
fn c_login_user_is_not_supported() {
    let t = token();
    let ((p, n), (u, un)) = (pin(PIN), pin("user"));
    check([
        row!(C_Logout(t.s) => CKR_OK),
        row!(C_LoginUser(t.s, CKU_USER, p, n, u, un) => CKR_FUNCTION_NOT_SUPPORTED),
    ]);
}

#[test]
fn c_logout_bad_session_and_not_logged_in() {
    let t = token();
    let mut logout = named!(C_Logout(s));
    for (s, rv) in [
        (BAD_SESSION, CKR_SESSION_HANDLE_INVALID),
        (t.s, CKR_OK),
        (t.s, CKR_USER_NOT_LOGGED_IN),
    ] {
        logout.expect(s, rv);
    }
}

// ---------------------------------------------------------------------------
// Objects (PKCS#11 3.0 §5.7)

#[test]
fn c_create_object_bad_session_null_pointers_and_incomplete_template() {
    let t = token();
    let mut class = CKO_DATA;
    let mut value = *b"xyz";
    let mut tpl = [
        attr_ulong(CKA_CLASS, &mut class),
        attr_bytes(CKA_VALUE, &mut value),
    ];
    let mut bad = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: null_mut(),
        ulValueLen: size_of::<CK_ULONG>() as CK_ULONG,
    }];
    let (tpl, bad) = (tpl.as_mut_ptr(), bad.as_mut_ptr());
    let mut h = 0;
    let hp = ptr(&mut h);
    check([
        row!(C_CreateObject(BAD_SESSION, tpl, 2, hp) => CKR_SESSION_HANDLE_INVALID),
        row!(C_CreateObject(t.s, tpl, 2, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_CreateObject(t.s, null_mut(), 2, hp) => CKR_ARGUMENTS_BAD),
        row!(C_CreateObject(t.s, bad, 1, hp) => CKR_ARGUMENTS_BAD),
        row!(C_CreateObject(t.s, null_mut(), 0, hp) => CKR_TEMPLATE_INCOMPLETE),
    ]);
    assert_eq!(h, 0, "nothing written");
}

#[test]
fn c_copy_object_is_not_supported() {
    let t = token();
    let mut h = 0;
    let h = ptr(&mut h);
    check([
        row!(C_CopyObject(t.s, t.ec_pub, null_mut(), 0, h) => CKR_FUNCTION_NOT_SUPPORTED),
        row!(C_CopyObject(t.s, t.ec_pub, null_mut(), 0, null_mut()) => CKR_ARGUMENTS_BAD),
    ]);
}

#[test]
fn c_destroy_object_bad_session_and_bad_object() {
    let t = token();
    check([
        row!(C_DestroyObject(BAD_SESSION, t.ec_pub) => CKR_SESSION_HANDLE_INVALID),
        row!(C_DestroyObject(t.s, BAD_OBJECT) => CKR_OBJECT_HANDLE_INVALID),
        row!(C_DestroyObject(t.s, CK_INVALID_HANDLE) => CKR_OBJECT_HANDLE_INVALID),
    ]);
}

#[test]
fn c_get_object_size_bad_session_bad_object_and_null_size() {
    let t = token();
    let mut n: CK_ULONG = 0;
    let p = ptr(&mut n);
    check([
        row!(C_GetObjectSize(BAD_SESSION, t.ec_pub, p) => CKR_SESSION_HANDLE_INVALID),
        row!(C_GetObjectSize(t.s, BAD_OBJECT, p) => CKR_OBJECT_HANDLE_INVALID),
        row!(C_GetObjectSize(t.s, t.ec_pub, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_GetObjectSize(t.s, t.ec_pub, p) => CKR_OK),
    ]);
    assert!(n > 0);
}

#[test]
fn c_get_attribute_value_handles_size_query_short_buffer_unknown_and_sensitive() {
    let t = token();
    let mut one = [attr_null(CKA_ID)];
    let one = one.as_mut_ptr();
    check([
        row!(C_GetAttributeValue(BAD_SESSION, t.ec_pub, one, 1) => CKR_SESSION_HANDLE_INVALID),
        row!(C_GetAttributeValue(t.s, BAD_OBJECT, one, 1) => CKR_OBJECT_HANDLE_INVALID),
        // An empty template still names a session and an object.
        row!(C_GetAttributeValue(BAD_SESSION, t.ec_pub, null_mut(), 0) => CKR_SESSION_HANDLE_INVALID),
        row!(C_GetAttributeValue(t.s, BAD_OBJECT, null_mut(), 0) => CKR_OBJECT_HANDLE_INVALID),
        row!(C_GetAttributeValue(t.s, t.ec_pub, null_mut(), 0) => CKR_OK),
        row!(C_GetAttributeValue(t.s, t.ec_pub, null_mut(), 1) => CKR_ARGUMENTS_BAD),
    ]);

    // Size query: NULL pValue → the length.
    let mut q = [attr_null(CKA_EC_POINT), attr_null(CKA_LABEL)];
    row!(C_GetAttributeValue(t.s, t.ec_pub, q.as_mut_ptr(), 2) => CKR_OK).check();
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
    row!(C_GetAttributeValue(t.s, t.ec_pub, tpl.as_mut_ptr(), 2) => CKR_BUFFER_TOO_SMALL).check();
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
    let unknown = CKR_ATTRIBUTE_TYPE_INVALID;
    row!(C_GetAttributeValue(t.s, t.ec_pub, tpl.as_mut_ptr(), 2) => unknown).check();
    assert_eq!(tpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(tpl[1].ulValueLen, 1);
    assert_eq!(id[0], 1);

    // A sensitive one.
    let mut tpl = [attr_null(CKA_VALUE), attr_null(CKA_ID)];
    let sensitive = CKR_ATTRIBUTE_SENSITIVE;
    row!(C_GetAttributeValue(t.s, t.ec_priv, tpl.as_mut_ptr(), 2) => sensitive).check();
    assert_eq!(tpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(tpl[1].ulValueLen, 1);
}

#[test]
fn c_set_attribute_value_bad_session_bad_object_and_null_template() {
    let t = token();
    let mut label = *b"new";
    let mut tpl = [attr_bytes(CKA_LABEL, &mut label)];
    let tpl = tpl.as_mut_ptr();
    check([
        row!(C_SetAttributeValue(BAD_SESSION, t.ec_priv, tpl, 1) => CKR_SESSION_HANDLE_INVALID),
        row!(C_SetAttributeValue(t.s, BAD_OBJECT, tpl, 1) => CKR_OBJECT_HANDLE_INVALID),
        row!(C_SetAttributeValue(t.s, BAD_OBJECT, null_mut(), 0) => CKR_OBJECT_HANDLE_INVALID),
        row!(C_SetAttributeValue(t.s, t.ec_priv, null_mut(), 1) => CKR_ARGUMENTS_BAD),
    ]);
}

#[test]
fn c_find_objects_init_bad_session_null_template_and_active() {
    let t = token();
    check([
        row!(C_FindObjectsInit(BAD_SESSION, null_mut(), 0) => CKR_SESSION_HANDLE_INVALID),
        row!(C_FindObjectsInit(t.s, null_mut(), 1) => CKR_ARGUMENTS_BAD),
        row!(C_FindObjectsInit(t.s, null_mut(), 0) => CKR_OK),
        row!(C_FindObjectsInit(t.s, null_mut(), 0) => CKR_OPERATION_ACTIVE),
        row!(C_FindObjectsFinal(t.s) => CKR_OK),
    ]);
}

#[test]
fn c_find_objects_bad_session_not_initialized_and_null_pointers() {
    let t = token();
    let mut h = [0; 8];
    let h = h.as_mut_ptr();
    let mut n: CK_ULONG = 0;
    let np = ptr(&mut n);
    check([
        row!(C_FindObjects(BAD_SESSION, h, 8, np) => CKR_SESSION_HANDLE_INVALID),
        row!(C_FindObjects(t.s, h, 8, np) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_FindObjectsInit(t.s, null_mut(), 0) => CKR_OK),
        row!(C_FindObjects(t.s, null_mut(), 8, np) => CKR_ARGUMENTS_BAD),
        row!(C_FindObjects(t.s, h, 8, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_FindObjects(t.s, h, 8, np) => CKR_OK),
    ]);
    assert_eq!(n, 4, "two key pairs");
    row!(C_FindObjectsFinal(t.s) => CKR_OK).check();
}

#[test]
fn c_find_objects_final_bad_session_and_not_initialized() {
    let t = token();
    check([
        row!(C_FindObjectsFinal(BAD_SESSION) => CKR_SESSION_HANDLE_INVALID),
        row!(C_FindObjectsFinal(t.s) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_FindObjectsInit(t.s, null_mut(), 0) => CKR_OK),
        row!(C_FindObjectsFinal(t.s) => CKR_OK),
        row!(C_FindObjectsFinal(t.s) => CKR_OPERATION_NOT_INITIALIZED),
    ]);
}

// ---------------------------------------------------------------------------
// Decryption (PKCS#11 3.0 §5.10), with RSA-1024 and CKM_RSA_X_509.

#[test]
fn c_decrypt_init_bad_session_bad_key_wrong_mechanism_and_active() {
    let t = token();
    let (m, ecdsa): (Mech, Mech) = (&mut mech(CKM_RSA_X_509), &mut mech(CKM_ECDSA));
    check([
        row!(C_DecryptInit(BAD_SESSION, m, t.rsa_priv) => CKR_SESSION_HANDLE_INVALID),
        row!(C_DecryptInit(t.s, m, BAD_OBJECT) => CKR_KEY_HANDLE_INVALID),
        row!(C_DecryptInit(t.s, m, t.ec_priv) => CKR_KEY_TYPE_INCONSISTENT),
        row!(C_DecryptInit(t.s, ecdsa, t.rsa_priv) => CKR_MECHANISM_INVALID),
    ]);
    let ended = row!(C_DecryptFinal(t.s, null_mut(), &mut 0) => CKR_OPERATION_NOT_INITIALIZED);
    starts_then_terminates(op_init!(C_DecryptInit, t.rsa_priv), t.s, m, ended);
}

/// RSA-1024 ciphertext for CKM_RSA_X_509: the number 2.
fn two() -> [u8; 128] {
    let mut c = [0u8; 128];
    c[127] = 2;
    c
}

/// The output of an RSA-1024 decryption.
fn rsa_1024_output() -> Output<'static> {
    Output {
        room: 128,
        len_ok: &|len| assert!((100..=128).contains(&len), "RSA-1024 output: {len}"),
        after: Box::new(|_, _| {}),
    }
}

#[test]
fn c_decrypt_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut c = two();
    let init = row!(C_DecryptInit(t.s, &mut mech(CKM_RSA_X_509), t.rsa_priv) => CKR_OK);
    let decrypt = SinglePart {
        f: in_out!(C_Decrypt),
        input: buf(&mut c),
        out: rsa_1024_output(),
    };
    single_part(t.s, init, decrypt);
}

#[test]
fn c_decrypt_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let s = t.s;
    let mut c = two();
    let init = row!(C_DecryptInit(s, &mut mech(CKM_RSA_X_509), t.rsa_priv) => CKR_OK);
    // A size query, then the part.
    let feed = |c, o| {
        let mut len: CK_ULONG = 0;
        let mut part_len: CK_ULONG = 128;
        let (len_p, part_len_p) = (ptr(&mut len), ptr(&mut part_len));
        check([
            row!(C_DecryptUpdate(s, c, 128, null_mut(), len_p) => CKR_OK),
            row!(C_DecryptUpdate(s, c, 128, o, part_len_p) => CKR_OK),
        ]);
        assert_eq!(part_len, len);
    };
    let decrypt = MultiPart {
        update: in_out!(C_DecryptUpdate),
        last: named!(C_DecryptFinal(s, o, l)),
        part: buf(&mut c),
        null_len: 4,
        feed: Box::new(feed),
        short: |len| len - 1,
        out: rsa_1024_output(),
    };
    update_and_final(s, init, decrypt);
}

// ---------------------------------------------------------------------------
// Digests (PKCS#11 3.0 §5.12)

#[test]
fn c_digest_init_bad_session_wrong_mechanism_and_active() {
    let t = token();
    let (m, ecdsa): (Mech, Mech) = (&mut mech(CKM_SHA256), &mut mech(CKM_ECDSA));
    check([
        row!(C_DigestInit(BAD_SESSION, m) => CKR_SESSION_HANDLE_INVALID),
        row!(C_DigestInit(t.s, ecdsa) => CKR_MECHANISM_INVALID),
    ]);
    let ended = row!(C_DigestFinal(t.s, null_mut(), &mut 0) => CKR_OPERATION_NOT_INITIALIZED);
    starts_then_terminates(op_init!(C_DigestInit), t.s, m, ended);
}

#[test]
fn c_digest_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut data = *b"abc";
    let digest = SinglePart {
        f: in_out!(C_Digest),
        input: buf(&mut data),
        out: sha256_of(b"abc"),
    };
    single_part(t.s, sha256_init(t.s), digest);
}

#[test]
fn c_digest_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut part = *b"ab";
    let digest = MultiPart {
        update: in_out!(C_DigestUpdate, input only),
        last: named!(C_DigestFinal(s, o, l)),
        part: buf(&mut part),
        null_len: 2,
        feed: Box::new(|p, _| {
            check([
                row!(C_DigestUpdate(t.s, p, 2) => CKR_OK),
                row!(C_DigestUpdate(t.s, p, 2) => CKR_OK),
            ])
        }),
        short: |_| 0,
        out: sha256_of(b"abab"),
    };
    update_and_final(t.s, sha256_init(t.s), digest);
}

#[test]
fn c_digest_key_is_not_supported() {
    let t = token();
    let m: Mech = &mut mech(CKM_SHA256);
    check([
        row!(C_DigestInit(t.s, m) => CKR_OK),
        row!(C_DigestKey(t.s, t.ec_pub) => CKR_FUNCTION_NOT_SUPPORTED),
    ]);
}

// ---------------------------------------------------------------------------
// Signatures (PKCS#11 3.0 §5.13), with EC P-256.

/// The C_SignInit or C_VerifyInit of a key of the wrong kind (a public key
/// to sign with, a private one to verify with).
fn wrong_kind_of_key(name: &str, rv: CK_RV) {
    assert!(
        rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT,
        "a key of the wrong kind for {name}: {rv:#x}"
    );
}

#[test]
fn c_sign_init_bad_session_bad_key_wrong_key_or_mechanism_and_active() {
    let t = token();
    let (m, rsa, sha): (Mech, Mech, Mech) = (
        &mut mech(CKM_ECDSA),
        &mut mech(CKM_RSA_PKCS),
        &mut mech(CKM_SHA256),
    );
    check([
        row!(C_SignInit(BAD_SESSION, m, t.ec_priv) => CKR_SESSION_HANDLE_INVALID),
        row!(C_SignInit(t.s, m, BAD_OBJECT) => CKR_KEY_HANDLE_INVALID),
    ]);
    wrong_kind_of_key("C_SignInit", ck!(C_SignInit(t.s, m, t.ec_pub)));
    check([
        row!(C_SignInit(t.s, rsa, t.ec_priv) => CKR_KEY_TYPE_INCONSISTENT),
        row!(C_SignInit(t.s, sha, t.ec_priv) => CKR_MECHANISM_INVALID),
    ]);
    let ended = row!(C_SignFinal(t.s, null_mut(), &mut 0) => CKR_OPERATION_NOT_INITIALIZED);
    starts_then_terminates(op_init!(C_SignInit, t.ec_priv), t.s, m, ended);
}

#[test]
fn c_sign_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let mut data = [0x11u8; 32];
    let m: Mech = &mut mech(CKM_ECDSA);
    let sign = SinglePart {
        f: in_out!(C_Sign),
        input: buf(&mut data),
        out: Output {
            room: 128,
            len_ok: &|len| assert_eq!(len, 64, "r‖s of P-256"),
            // The signature the size query announced is a good one.
            after: Box::new(|d, sig| {
                let sig = sig.as_ptr() as *mut u8;
                check([
                    row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
                    row!(C_Verify(t.s, d, 32, sig, 64) => CKR_OK),
                ])
            }),
        },
    };
    single_part(t.s, row!(C_SignInit(t.s, m, t.ec_priv) => CKR_OK), sign);
}

#[test]
fn c_sign_update_and_final_not_initialized_size_query_and_short_buffer() {
    let t = token();
    let m: Mech = &mut mech(CKM_ECDSA_SHA256);
    let mut part = *b"part";
    let after = |p, sig: &[u8]| {
        let sig = sig.as_ptr() as *mut u8;
        check([
            row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
            row!(C_VerifyUpdate(t.s, p, 4) => CKR_OK),
            row!(C_VerifyFinal(t.s, sig, 64) => CKR_OK),
        ])
    };
    let sign = MultiPart {
        update: in_out!(C_SignUpdate, input only),
        last: named!(C_SignFinal(s, o, l)),
        part: buf(&mut part),
        null_len: 4,
        feed: Box::new(|p, _| row!(C_SignUpdate(t.s, p, 4) => CKR_OK).check()),
        short: |_| 10,
        out: Output {
            room: 128,
            len_ok: &|len| assert_eq!(len, 64),
            after: Box::new(after),
        },
    };
    update_and_final(t.s, row!(C_SignInit(t.s, m, t.ec_priv) => CKR_OK), sign);
}

// ---------------------------------------------------------------------------
// Verification (PKCS#11 3.0 §5.15)

#[test]
fn c_verify_init_bad_session_bad_key_private_key_and_active() {
    let t = token();
    let m: Mech = &mut mech(CKM_ECDSA);
    check([
        row!(C_VerifyInit(BAD_SESSION, m, t.ec_pub) => CKR_SESSION_HANDLE_INVALID),
        row!(C_VerifyInit(t.s, m, BAD_OBJECT) => CKR_KEY_HANDLE_INVALID),
    ]);
    wrong_kind_of_key("C_VerifyInit", ck!(C_VerifyInit(t.s, m, t.ec_priv)));
    let mut sig = [0u8; 64];
    let sig = sig.as_mut_ptr();
    let ended = row!(C_VerifyFinal(t.s, sig, 64) => CKR_OPERATION_NOT_INITIALIZED);
    starts_then_terminates(op_init!(C_VerifyInit, t.ec_pub), t.s, m, ended);
}

#[test]
fn c_verify_not_initialized_signature_length_and_invalid_signature() {
    let t = token();
    let mut data = [0x22u8; 32];
    let mut sig = [0u8; 64];
    let (d, s) = (data.as_mut_ptr(), sig.as_mut_ptr());
    let m: Mech = &mut mech(CKM_ECDSA);
    check([
        row!(C_Verify(BAD_SESSION, d, 32, s, 64) => CKR_SESSION_HANDLE_INVALID),
        row!(C_Verify(t.s, d, 32, s, 64) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
        row!(C_Verify(t.s, d, 32, s, 10) => CKR_SIGNATURE_LEN_RANGE),
        // Every result but a size query ends the verification.
        row!(C_Verify(t.s, d, 32, s, 64) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
    ]);
    sig[31] = 1;
    sig[63] = 1;
    let s = sig.as_mut_ptr();
    check([
        row!(C_Verify(t.s, d, 32, s, 64) => CKR_SIGNATURE_INVALID),
        row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
        row!(C_Verify(t.s, d, 32, null_mut(), 64) => CKR_ARGUMENTS_BAD),
    ]);
}

#[test]
fn c_verify_update_and_final_not_initialized_and_invalid_signature() {
    let t = token();
    let mut part = *b"part";
    let mut sig = [0u8; 64];
    let (p, s) = (part.as_mut_ptr(), sig.as_mut_ptr());
    let m: Mech = &mut mech(CKM_ECDSA_SHA256);
    check([
        row!(C_VerifyUpdate(BAD_SESSION, p, 4) => CKR_SESSION_HANDLE_INVALID),
        row!(C_VerifyFinal(BAD_SESSION, s, 64) => CKR_SESSION_HANDLE_INVALID),
        row!(C_VerifyUpdate(t.s, p, 4) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_VerifyFinal(t.s, s, 64) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
        row!(C_VerifyUpdate(t.s, p, 4) => CKR_OK),
    ]);
    sig[31] = 1;
    sig[63] = 1;
    let s = sig.as_mut_ptr();
    check([
        row!(C_VerifyFinal(t.s, s, 64) => CKR_SIGNATURE_INVALID),
        row!(C_VerifyFinal(t.s, s, 64) => CKR_OPERATION_NOT_INITIALIZED),
        row!(C_VerifyInit(t.s, m, t.ec_pub) => CKR_OK),
        row!(C_VerifyUpdate(t.s, null_mut(), 4) => CKR_ARGUMENTS_BAD),
        row!(C_VerifyFinal(t.s, null_mut(), 64) => CKR_ARGUMENTS_BAD),
    ]);
}

// ---------------------------------------------------------------------------
// What the module does not support: encryption (PKCS#11 3.0 §5.8), the message-based
// functions (PKCS#11 3.0 §5.9, §5.11, §5.14, §5.16), signatures with recovery (PKCS#11 3.0 §5.13,
// §5.15) and the dual-function updates (PKCS#11 3.0 §5.17).

/// The groups of functions the module does not support, a test each.
#[derive(Clone, Copy, PartialEq)]
enum Unsupported {
    Encrypt,
    SignRecover,
    VerifyRecover,
    Dual,
    MessageEncrypt,
    MessageDecrypt,
    MessageSign,
    MessageVerify,
}

/// One table for every group, step by step; a test checks the rows of its
/// group, in table order, and that no output length was written.
fn not_supported(group: Unsupported) {
    use Unsupported::*;
    let t = token();
    let (rsa, gcm, ecdsa): (Mech, Mech, Mech) = (
        &mut mech(CKM_RSA_PKCS),
        &mut mech(CKM_AES_GCM),
        &mut mech(CKM_ECDSA),
    );
    // Inputs: ones for data, signatures and parts; zeros for the
    // message-based data and parameters.
    let (mut ones, mut zeros) = ([1u8; 128], [0u8; 16]);
    let (one, b) = (ones.as_mut_ptr(), zeros.as_mut_ptr());
    let pv = b as *mut c_void;
    // Outputs, and their lengths: 128 bytes for the single-part functions,
    // 16 for the dual ones, 32 for messages and 64 for their signatures.
    let (mut out, mut sig) = ([0u8; 128], [0u8; 64]);
    let (o, sg) = (out.as_mut_ptr(), sig.as_mut_ptr());
    let mut lens: [CK_ULONG; 4] = [128, 16, 32, 64];
    let [n, n16, n32, n64] = lens.each_mut().map(|l| l as *mut CK_ULONG);
    let (s, end) = (t.s, CKF_END_OF_MESSAGE);
    let (ns, bad) = (CKR_FUNCTION_NOT_SUPPORTED, CKR_ARGUMENTS_BAD);
    let table = [
        row!(Encrypt: C_EncryptInit(s, rsa, t.rsa_pub) => ns),
        row!(SignRecover: C_SignRecoverInit(s, rsa, t.rsa_priv) => ns),
        row!(VerifyRecover: C_VerifyRecoverInit(s, rsa, t.rsa_pub) => ns),
        row!(MessageEncrypt: C_MessageEncryptInit(s, gcm, t.ec_priv) => ns),
        row!(MessageDecrypt: C_MessageDecryptInit(s, gcm, t.ec_priv) => ns),
        row!(MessageSign: C_MessageSignInit(s, ecdsa, t.ec_priv) => ns),
        row!(MessageVerify: C_MessageVerifyInit(s, ecdsa, t.ec_pub) => ns),
        row!(MessageEncrypt: C_MessageEncryptInit(s, null_mut(), t.ec_priv) => bad),
        row!(MessageDecrypt: C_MessageDecryptInit(s, null_mut(), t.ec_priv) => bad),
        row!(MessageSign: C_MessageSignInit(s, null_mut(), t.ec_priv) => bad),
        row!(MessageVerify: C_MessageVerifyInit(s, null_mut(), t.ec_pub) => bad),
        row!(Encrypt: C_Encrypt(s, one, 16, o, n) => ns),
        row!(SignRecover: C_SignRecover(s, one, 16, o, n) => ns),
        row!(VerifyRecover: C_VerifyRecover(s, one, 128, o, n) => ns),
        row!(Encrypt: C_EncryptUpdate(s, one, 16, o, n) => ns),
        row!(Dual: C_DigestEncryptUpdate(s, one, 16, o, n16) => ns),
        row!(Dual: C_DecryptDigestUpdate(s, one, 16, o, n16) => ns),
        row!(Dual: C_SignEncryptUpdate(s, one, 16, o, n16) => ns),
        row!(Dual: C_DecryptVerifyUpdate(s, one, 16, o, n16) => ns),
        row!(Encrypt: C_EncryptFinal(s, o, n) => ns),
        row!(MessageEncrypt: C_EncryptMessage(s, pv, 16, b, 16, b, 16, o, n32) => ns),
        row!(MessageDecrypt: C_DecryptMessage(s, pv, 16, b, 16, b, 16, o, n32) => ns),
        row!(MessageSign: C_SignMessage(s, null_mut(), 0, b, 16, sg, n64) => ns),
        row!(MessageVerify: C_VerifyMessage(s, null_mut(), 0, b, 16, sg, 64) => ns),
        row!(MessageEncrypt: C_EncryptMessageBegin(s, pv, 16, b, 16) => ns),
        row!(MessageDecrypt: C_DecryptMessageBegin(s, pv, 16, b, 16) => ns),
        row!(MessageSign: C_SignMessageBegin(s, null_mut(), 0) => ns),
        row!(MessageVerify: C_VerifyMessageBegin(s, null_mut(), 0) => ns),
        row!(MessageEncrypt: C_EncryptMessageNext(s, pv, 16, b, 16, o, n32, end) => ns),
        row!(MessageDecrypt: C_DecryptMessageNext(s, pv, 16, b, 16, o, n32, end) => ns),
        row!(MessageSign: C_SignMessageNext(s, null_mut(), 0, b, 16, sg, n64) => ns),
        row!(MessageVerify: C_VerifyMessageNext(s, null_mut(), 0, b, 16, sg, 64) => ns),
        row!(MessageEncrypt: C_MessageEncryptFinal(s) => ns),
        row!(MessageDecrypt: C_MessageDecryptFinal(s) => ns),
        row!(MessageSign: C_MessageSignFinal(s) => ns),
        row!(MessageVerify: C_MessageVerifyFinal(s) => ns),
    ];
    check(
        table
            .into_iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, row)| row),
    );
    assert_eq!(lens, [128, 16, 32, 64], "nothing written");
}

/// `name: group,`: a test of [`not_supported`] for each group.
macro_rules! not_supported_tests {
    ($($name:ident: $group:ident,)*) => {
        $(
            #[test]
            fn $name() {
                not_supported(Unsupported::$group);
            }
        )*
    };
}

not_supported_tests! {
    c_encrypt_init_encrypt_update_final_are_not_supported: Encrypt,
    c_sign_recover_init_and_sign_recover_are_not_supported: SignRecover,
    c_verify_recover_init_and_verify_recover_are_not_supported: VerifyRecover,
    c_digest_encrypt_decrypt_digest_sign_encrypt_decrypt_verify_update_are_not_supported: Dual,
    c_message_encrypt_init_encrypt_message_begin_next_final_are_not_supported: MessageEncrypt,
    c_message_decrypt_init_decrypt_message_begin_next_final_are_not_supported: MessageDecrypt,
    c_message_sign_init_sign_message_begin_next_final_are_not_supported: MessageSign,
    c_message_verify_init_verify_message_begin_next_final_are_not_supported: MessageVerify,
}

// ---------------------------------------------------------------------------
// Key management (PKCS#11 3.0 §5.18)

#[test]
fn c_generate_key_is_not_supported_and_checks_its_pointers() {
    let t = token();
    let (m, h): (Mech, *mut CK_OBJECT_HANDLE) = (&mut mech(CKM_AES_KEY_GEN), &mut 0);
    check([
        row!(C_GenerateKey(t.s, m, null_mut(), 0, h) => CKR_FUNCTION_NOT_SUPPORTED),
        row!(C_GenerateKey(t.s, null_mut(), null_mut(), 0, h) => CKR_ARGUMENTS_BAD),
        row!(C_GenerateKey(t.s, m, null_mut(), 0, null_mut()) => CKR_ARGUMENTS_BAD),
    ]);
}

/// DER OID of prime256v1.
const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

#[test]
fn c_generate_key_pair_bad_session_null_pointers_and_wrong_mechanism() {
    let t = token();
    let mut params = P256;
    let mut public = [attr_bytes(CKA_EC_PARAMS, &mut params)];
    let (m, sha): (Mech, Mech) = (&mut mech(CKM_EC_KEY_PAIR_GEN), &mut mech(CKM_SHA256));
    let (mut hp, mut hk) = (0, 0);
    let (h, k) = (ptr(&mut hp), ptr(&mut hk));
    let (pt, nul) = (public.as_mut_ptr(), null_mut());
    check([
        row!(C_GenerateKeyPair(BAD_SESSION, m, pt, 1, nul, 0, h, k) => CKR_SESSION_HANDLE_INVALID),
        row!(C_GenerateKeyPair(t.s, null_mut(), pt, 1, nul, 0, h, k) => CKR_ARGUMENTS_BAD),
        row!(C_GenerateKeyPair(t.s, m, pt, 1, nul, 0, null_mut(), k) => CKR_ARGUMENTS_BAD),
        row!(C_GenerateKeyPair(t.s, m, pt, 1, nul, 0, h, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_GenerateKeyPair(t.s, m, null_mut(), 1, nul, 0, h, k) => CKR_ARGUMENTS_BAD),
        row!(C_GenerateKeyPair(t.s, sha, pt, 1, nul, 0, h, k) => CKR_MECHANISM_INVALID),
    ]);
    assert_eq!((hp, hk), (0, 0), "nothing written");
}

#[test]
fn c_wrap_key_and_unwrap_key_are_not_supported_and_check_their_pointers() {
    let t = token();
    let mut wrapped = [0u8; 128];
    let w = wrapped.as_mut_ptr();
    let (m, np, h): (Mech, *mut CK_ULONG, *mut CK_OBJECT_HANDLE) =
        (&mut mech(CKM_RSA_PKCS), &mut 128, &mut 0);
    let (ns, bad) = (CKR_FUNCTION_NOT_SUPPORTED, CKR_ARGUMENTS_BAD);
    let (wrapping, key) = (t.rsa_pub, t.ec_priv);
    let (unwrapping, nul) = (t.rsa_priv, null_mut());
    check([
        row!(C_WrapKey(t.s, m, wrapping, key, w, np) => ns),
        row!(C_WrapKey(t.s, m, wrapping, key, w, null_mut()) => bad),
        row!(C_WrapKey(t.s, null_mut(), wrapping, key, w, np) => bad),
        row!(C_UnwrapKey(t.s, m, unwrapping, w, 128, nul, 0, h) => ns),
        row!(C_UnwrapKey(t.s, m, unwrapping, w, 128, nul, 0, null_mut()) => bad),
        row!(C_UnwrapKey(t.s, null_mut(), unwrapping, w, 128, nul, 0, h) => bad),
    ]);
}

#[test]
fn c_derive_key_bad_session_bad_base_key_and_null_pointers() {
    let t = token();
    // The peer's point: the card's own EC public key will do.
    let mut point = [0u8; 67];
    let mut q = [attr_bytes(CKA_EC_POINT, &mut point)];
    row!(C_GetAttributeValue(t.s, t.ec_pub, q.as_mut_ptr(), 1) => CKR_OK).check();
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
    let (m, tp) = (ptr(&mut m), tpl.as_mut_ptr());
    let mut h = 0;
    let hp = ptr(&mut h);
    check([
        row!(C_DeriveKey(BAD_SESSION, m, t.ec_priv, tp, 3, hp) => CKR_SESSION_HANDLE_INVALID),
        row!(C_DeriveKey(t.s, m, BAD_OBJECT, tp, 3, hp) => CKR_KEY_HANDLE_INVALID),
        row!(C_DeriveKey(t.s, null_mut(), t.ec_priv, tp, 3, hp) => CKR_ARGUMENTS_BAD),
        row!(C_DeriveKey(t.s, m, t.ec_priv, tp, 3, null_mut()) => CKR_ARGUMENTS_BAD),
        row!(C_DeriveKey(t.s, m, t.ec_priv, null_mut(), 3, hp) => CKR_ARGUMENTS_BAD),
    ]);
    assert_eq!(h, 0, "nothing written");
    row!(C_DeriveKey(t.s, m, t.ec_priv, tp, 3, hp) => CKR_OK).check();
    assert_ne!(h, 0);
    // A sensitive secret: its value is not revealed.
    let mut v = [attr_null(CKA_VALUE)];
    let sensitive = CKR_ATTRIBUTE_SENSITIVE;
    row!(C_GetAttributeValue(t.s, h, v.as_mut_ptr(), 1) => sensitive).check();
    assert_eq!(v[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
}

// ---------------------------------------------------------------------------
// Random numbers (PKCS#11 3.0 §5.19)

#[test]
fn c_seed_random_bad_session_null_seed_and_not_supported_seed() {
    let t = token();
    let mut seed = [7u8; 16];
    let rv = CKR_RANDOM_SEED_NOT_SUPPORTED;
    session_and_buffer(named!(C_SeedRandom(s, b, n)), t.s, buf(&mut seed), rv);
}

#[test]
fn c_generate_random_bad_session_and_null_buffer() {
    let t = token();
    let mut r = [0u8; 32];
    session_and_buffer(named!(C_GenerateRandom(s, b, n)), t.s, buf(&mut r), CKR_OK);
    assert!(r.iter().any(|b| *b != 0));
}

// ---------------------------------------------------------------------------
// Parallel function management (PKCS#11 3.0 §5.20): legacy.

#[test]
fn c_get_function_status_and_cancel_function_are_not_parallel() {
    let t = token();
    check([
        row!(C_GetFunctionStatus(t.s) => CKR_FUNCTION_NOT_PARALLEL),
        row!(C_CancelFunction(t.s) => CKR_FUNCTION_NOT_PARALLEL),
    ]);
}
