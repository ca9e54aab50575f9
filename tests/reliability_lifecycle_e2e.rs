//! libpicohsm_pkcs11.so's presence, fork and life-cycle reliability, through
//! pcscd + vpcd + picohsm-vcard: a token another process is using stays
//! present in C_GetSlotList, another process's login survives this module's
//! C_Finalize and a fork, a forked child starts afresh, C_Initialize and
//! C_Finalize cycle without leaking, C_Finalize ends a waiting
//! C_WaitForSlotEvent, and eight threads work on two tokens without error,
//! deadlock or growth.
//!
//! The other processes are this test binary run again as a worker
//! ([`lifecycle_worker`], chosen by `PICOHSM_LIFECYCLE_WORKER`), loading the
//! module with the `cryptoki` crate. A login is the card's, not the
//! connection's, and a SELECT of the applet ends it (docs/protocol.md §2.3):
//! so every process connects to a token before the login that has to
//! survive, and only then does this process finalise or fork.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::reliability::{count, record};
use common::tools::initialised_card;
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;

/// The environment variable that makes [`lifecycle_worker`] a worker: its
/// role (`sign-loop` or `holder`).
const WORKER: &str = "PICOHSM_LIFECYCLE_WORKER";
/// The worker's reader.
const WORKER_READER: &str = "PICOHSM_LIFECYCLE_READER";
/// The module the worker loads (so that it does not run cargo itself).
const WORKER_MODULE: &str = "PICOHSM_LIFECYCLE_MODULE";
/// What marks a worker's protocol lines (libtest writes to stdout too).
const TAG: &str = "WORKER ";

/// How long anything here may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(120);

/// An initialised card with an EC P-256 key, id 01.
fn card_with_key() -> VCard {
    let card = initialised_card();
    our_keypairgen(&card, PIN, "EC:prime256v1", "01");
    card
}

/// The module loaded from `path` and initialised (OS locking).
fn module_at(path: &std::path::Path) -> Pkcs11 {
    let p11 = Pkcs11::new(path).expect("load libpicohsm_pkcs11.so");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p11
}

/// The private key with CKA_ID 01 as `session` sees it.
fn key_01(session: &Session) -> ObjectHandle {
    find_by_id(session, ObjectClass::PRIVATE_KEY, 1)[0]
}

/// An ECDSA signature of `[byte; 32]`.
fn sign(session: &Session, key: ObjectHandle, byte: u8) -> cryptoki::error::Result<Vec<u8>> {
    session.sign(&Mechanism::Ecdsa, key, &[byte; 32])
}

// ---------------------------------------------------------------------------
// Worker processes

/// Not a test: the other process of the cases below, when
/// `PICOHSM_LIFECYCLE_WORKER` names a role (otherwise it returns at once).
/// It logs in on the token in `PICOHSM_LIFECYCLE_READER` and signs, then
/// prints `WORKER ready`. Role `sign-loop` signs without pause until its
/// stdin closes and prints `WORKER done <signed> <failed>`; role `holder`
/// signs once per line read from stdin (no new login) and answers
/// `WORKER ok` or `WORKER err <CK_RV>`.
#[test]
#[ignore = "a worker process the lifecycle cases start themselves"]
fn lifecycle_worker() {
    let Ok(role) = std::env::var(WORKER) else {
        return;
    };
    let reader = std::env::var(WORKER_READER).expect("worker reader");
    let module = std::env::var(WORKER_MODULE).expect("worker module");
    let p11 = module_at(std::path::Path::new(&module));
    let slot = slot_of_reader(&p11, &reader);
    let session = p11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    let key = key_01(&session);
    sign(&session, key, 1).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "{TAG}ready").unwrap();
    out.flush().unwrap();
    match role.as_str() {
        "sign-loop" => {
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                thread::spawn(move || {
                    // Stdin closing is the order to stop.
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    stop.store(true, Ordering::SeqCst);
                });
            }
            let (mut signed, mut failed) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                match sign(&session, key, signed as u8) {
                    Ok(_) => signed += 1,
                    Err(e) => {
                        failed += 1;
                        eprintln!("worker sign-loop: {e}");
                    }
                }
            }
            writeln!(out, "{TAG}done {signed} {failed}").unwrap();
        }
        "holder" => {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
                match sign(&session, key, 2) {
                    Ok(_) => writeln!(out, "{TAG}ok").unwrap(),
                    Err(e) => writeln!(out, "{TAG}err {e}").unwrap(),
                }
                out.flush().unwrap();
            }
        }
        other => panic!("unknown worker role {other:?}"),
    }
    out.flush().unwrap();
    drop(session);
    p11.finalize().unwrap();
}

/// A worker process ([`lifecycle_worker`]) on one card.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: tempfile::NamedTempFile,
}

impl Worker {
    /// Starts a worker in `role` on `card` and waits for its `ready`.
    fn start(role: &str, card: &VCard) -> Worker {
        let exe = std::env::current_exe().expect("current_exe");
        let stderr = tempfile::NamedTempFile::new().expect("worker stderr file");
        let mut child = Command::new(exe)
            .args(["lifecycle_worker", "--exact", "--ignored", "--nocapture"])
            .env(WORKER, role)
            .env(WORKER_READER, card.reader_name())
            .env(WORKER_MODULE, module_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("worker stderr file"))
            .spawn()
            .expect("start a worker");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                // libtest's "test lifecycle_worker ... " has no line end.
                if let Some(i) = line.find(TAG) {
                    if tx.send(line[i + TAG.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut w = Worker {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        };
        let first = w.next_line();
        assert_eq!(first, "ready", "worker {role} did not start");
        w
    }

    /// The worker's next protocol line; panics if it exits or hangs.
    fn next_line(&mut self) -> String {
        self.lines.recv_timeout(HANG).unwrap_or_else(|e| {
            let status = self.child.try_wait();
            let log = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
            panic!("no line from the worker ({e}; status {status:?}); its stderr:\n{log}")
        })
    }

    /// Asks a `holder` to sign once more, with the login it made at start.
    fn sign_again(&mut self) -> String {
        let stdin = self.stdin.as_mut().expect("worker stdin");
        writeln!(stdin, "sign").unwrap();
        stdin.flush().unwrap();
        self.next_line()
    }

    /// Closes its stdin (stop) and returns its last line; checks it exits 0.
    fn stop(mut self) -> Option<String> {
        drop(self.stdin.take());
        let last = self.lines.recv_timeout(HANG).ok();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
        last
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The C functions, for calls `cryptoki` does not make as such (the size
// query alone, a forked child)

type FnInitialize = unsafe extern "C" fn(*mut std::ffi::c_void) -> CK_RV;
type FnFinalize = unsafe extern "C" fn(*mut std::ffi::c_void) -> CK_RV;
type FnGetSlotList = unsafe extern "C" fn(CK_BBOOL, *mut CK_SLOT_ID, *mut CK_ULONG) -> CK_RV;
type FnOpenSession = unsafe extern "C" fn(
    CK_SLOT_ID,
    CK_FLAGS,
    *mut std::ffi::c_void,
    CK_NOTIFY,
    *mut CK_SESSION_HANDLE,
) -> CK_RV;
type FnCloseSession = unsafe extern "C" fn(CK_SESSION_HANDLE) -> CK_RV;
type FnLogin =
    unsafe extern "C" fn(CK_SESSION_HANDLE, CK_USER_TYPE, *mut CK_UTF8CHAR, CK_ULONG) -> CK_RV;
type FnFindInit = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG) -> CK_RV;
type FnFind = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut CK_OBJECT_HANDLE,
    CK_ULONG,
    *mut CK_ULONG,
) -> CK_RV;
type FnFindFinal = unsafe extern "C" fn(CK_SESSION_HANDLE) -> CK_RV;
type FnSignInit =
    unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE) -> CK_RV;
type FnSign = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut CK_BYTE,
    CK_ULONG,
    *mut CK_BYTE,
    *mut CK_ULONG,
) -> CK_RV;

/// The exported functions, looked up once in the parent (the child must
/// not take the loader's locks).
#[derive(Clone, Copy)]
struct Raw {
    initialize: FnInitialize,
    finalize: FnFinalize,
    get_slot_list: FnGetSlotList,
    open_session: FnOpenSession,
    close_session: FnCloseSession,
    login: FnLogin,
    find_init: FnFindInit,
    find: FnFind,
    find_final: FnFindFinal,
    sign_init: FnSignInit,
    sign: FnSign,
}

impl Raw {
    fn load() -> Raw {
        use common::ffi::sym;
        Raw {
            initialize: sym("C_Initialize"),
            finalize: sym("C_Finalize"),
            get_slot_list: sym("C_GetSlotList"),
            open_session: sym("C_OpenSession"),
            close_session: sym("C_CloseSession"),
            login: sym("C_Login"),
            find_init: sym("C_FindObjectsInit"),
            find: sym("C_FindObjects"),
            find_final: sym("C_FindObjectsFinal"),
            sign_init: sym("C_SignInit"),
            sign: sym("C_Sign"),
        }
    }

    /// C_GetSlotList(tokenPresent = TRUE) the way most applications call
    /// it: the size query, then the list into a buffer of that size.
    fn slot_list_pair(&self) -> Result<Vec<CK_SLOT_ID>, CK_RV> {
        let mut n: CK_ULONG = 0;
        // SAFETY: a NULL list with a live count cell.
        let rv = unsafe { (self.get_slot_list)(CK_TRUE, std::ptr::null_mut(), &mut n) };
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut list = vec![0 as CK_SLOT_ID; n as usize];
        // SAFETY: `list` has room for `n` ids.
        let rv = unsafe { (self.get_slot_list)(CK_TRUE, list.as_mut_ptr(), &mut n) };
        if rv != CKR_OK {
            return Err(rv);
        }
        list.truncate(n as usize);
        Ok(list)
    }

    /// What a forked child does with the module: calls are refused before
    /// its own C_Initialize, which then works; it logs in on `slot` (another
    /// token than the parent's), signs, and finalises. Returns the step
    /// that failed (1-based), 0 if none. No panics, no output: this runs
    /// between fork and _exit.
    fn child_work(&self, slot: CK_SLOT_ID) -> i32 {
        let mut n: CK_ULONG = 0;
        // SAFETY (every call below): live locals of the sizes given.
        unsafe {
            if (self.get_slot_list)(CK_TRUE, std::ptr::null_mut(), &mut n)
                != CKR_CRYPTOKI_NOT_INITIALIZED
            {
                return 1;
            }
            if (self.initialize)(std::ptr::null_mut()) != CKR_OK {
                return 2;
            }
            match self.slot_list_pair() {
                Ok(list) if list.contains(&slot) => {}
                _ => return 3,
            }
            let mut session: CK_SESSION_HANDLE = 0;
            if (self.open_session)(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut session,
            ) != CKR_OK
            {
                return 4;
            }
            let mut pin = PIN.as_bytes().to_vec();
            if (self.login)(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG) != CKR_OK {
                return 5;
            }
            let mut class = CKO_PRIVATE_KEY;
            let mut id = [1u8];
            let mut template = [
                CK_ATTRIBUTE {
                    type_: CKA_CLASS,
                    pValue: &mut class as *mut CK_OBJECT_CLASS as *mut std::ffi::c_void,
                    ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
                },
                CK_ATTRIBUTE {
                    type_: CKA_ID,
                    pValue: id.as_mut_ptr() as *mut std::ffi::c_void,
                    ulValueLen: 1,
                },
            ];
            let mut key: CK_OBJECT_HANDLE = 0;
            let mut found: CK_ULONG = 0;
            if (self.find_init)(session, template.as_mut_ptr(), 2) != CKR_OK
                || (self.find)(session, &mut key, 1, &mut found) != CKR_OK
                || (self.find_final)(session) != CKR_OK
                || found != 1
            {
                return 6;
            }
            let mut mech = CK_MECHANISM {
                mechanism: CKM_ECDSA,
                pParameter: std::ptr::null_mut(),
                ulParameterLen: 0,
            };
            let mut data = [7u8; 32];
            let mut sig = [0u8; 128];
            let mut sig_len = sig.len() as CK_ULONG;
            if (self.sign_init)(session, &mut mech, key) != CKR_OK
                || (self.sign)(
                    session,
                    data.as_mut_ptr(),
                    32,
                    sig.as_mut_ptr(),
                    &mut sig_len,
                ) != CKR_OK
                || sig_len != 64
            {
                return 7;
            }
            if (self.close_session)(session) != CKR_OK {
                return 8;
            }
            if (self.finalize)(std::ptr::null_mut()) != CKR_OK {
                return 9;
            }
        }
        0
    }
}

/// Forks; the child runs `body` and _exits with its result. Returns the
/// child's exit status (as `waitpid` gives it); panics if the child does
/// not end within [`HANG`] (it is killed).
fn fork_and_wait(body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `body` (no panics, no locks of the test
    // harness) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = body();
        // SAFETY: ends the child without running the parent's clean-ups.
        unsafe { libc::_exit(code) };
    }
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = tx.send((r, status));
    });
    match rx.recv_timeout(HANG) {
        Ok((r, status)) => {
            assert_eq!(r, pid, "waitpid");
            status
        }
        Err(_) => {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung (killed)");
        }
    }
}

/// `Some(code)` if a `waitpid` status is a normal exit.
fn exit_code(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The number of open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---------------------------------------------------------------------------
// The cases

/// Reliability: while two other processes sign without pause on two tokens, C_GetSlotList(tokenPresent = TRUE) in this process lists both tokens on every call, and the list given with a buffer is never larger than the count the size query before it gave (no CKR_BUFFER_TOO_SMALL).
#[test]
fn survives_slot_list_beside_busy_processes() {
    let _serial = serial();
    let cards = [card_with_key(), card_with_key()];
    let p11 = our_module();
    let slots: Vec<CK_SLOT_ID> = cards
        .iter()
        .map(|c| slot_of(&p11, c).id() as CK_SLOT_ID)
        .collect();
    let raw = Raw::load();
    let before = raw.slot_list_pair().expect("C_GetSlotList");
    assert!(slots.iter().all(|s| before.contains(s)), "{before:?}");

    let workers: Vec<Worker> = cards
        .iter()
        .map(|c| Worker::start("sign-loop", c))
        .collect();
    let calls = count(10_000, 100_000);
    let start = Instant::now();
    let (mut ok, mut missing, mut too_small, mut other) = (0usize, 0usize, 0usize, Vec::new());
    for _ in 0..calls / 2 {
        match raw.slot_list_pair() {
            Ok(list) if slots.iter().all(|s| list.contains(s)) => ok += 2,
            Ok(_) => missing += 1,
            Err(CKR_BUFFER_TOO_SMALL) => too_small += 1,
            Err(rv) => other.push(rv),
        }
    }
    let elapsed = start.elapsed();
    let mut signed = Vec::new();
    for w in workers {
        let last = w.stop().unwrap_or_default();
        let mut it = last.split_whitespace();
        assert_eq!(it.next(), Some("done"), "{last:?}");
        let n: usize = it.next().unwrap().parse().unwrap();
        let failed: usize = it.next().unwrap().parse().unwrap();
        assert_eq!(failed, 0, "a busy process's signature failed");
        signed.push(n);
    }
    eprintln!(
        "{calls} C_GetSlotList calls in {elapsed:?} beside {signed:?} signatures: \
         {missing} pairs with a token missing, {too_small} CKR_BUFFER_TOO_SMALL, other {other:x?}"
    );
    record(
        "survives_slot_list_beside_busy_processes",
        calls,
        ok,
        "calls",
    );
    p11.finalize().unwrap();
    assert!(signed.iter().all(|n| *n > 0), "the workers were not busy");
    assert_eq!(missing, 0, "a token in use looked absent");
    assert_eq!(too_small, 0, "the list outgrew its size query");
    assert!(other.is_empty(), "C_GetSlotList failed: {other:x?}");
}

/// A card plugged in between C_GetSlotList's size query and its call with
/// the buffer: the buffer call hands out the list the size query counted
/// (as OpenSC's module does), not a longer one that no longer fits
/// (CKR_BUFFER_TOO_SMALL), and the next pair lists the new token.
#[test]
fn slot_list_buffer_call_returns_the_counted_list_when_a_card_arrives_between() {
    let _serial = serial();
    let first = card_with_key();
    let p11 = our_module();
    let first_slot = slot_of(&p11, &first).id() as CK_SLOT_ID;
    let raw = Raw::load();
    let mut n: CK_ULONG = 0;
    // SAFETY: a NULL list with a live count cell.
    let rv = unsafe { (raw.get_slot_list)(CK_TRUE, std::ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_OK);
    let counted = n;

    let second = card_with_key();
    // Another thread watches for the new token: its queries are its own,
    // and leave this thread's counted list alone.
    let seen = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(raw.slot_list_pair(), Ok(l) if l.len() as CK_ULONG > counted) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    })
    .join()
    .unwrap();
    assert!(seen, "the module never listed the second token");

    let mut list = vec![0 as CK_SLOT_ID; counted as usize];
    let mut n = counted;
    // SAFETY: `list` has room for `counted` ids.
    let rv = unsafe { (raw.get_slot_list)(CK_TRUE, list.as_mut_ptr(), &mut n) };
    assert_eq!(
        rv, CKR_OK,
        "the buffer call disagreed with its size query (rv {rv:#x})"
    );
    assert_eq!(n, counted);
    assert!(list.contains(&first_slot), "{list:?}");
    let second_slot = slot_of(&p11, &second).id() as CK_SLOT_ID;
    assert!(!list.contains(&second_slot), "{list:?}");
    let now = raw.slot_list_pair().expect("C_GetSlotList");
    assert!(
        now.contains(&first_slot) && now.contains(&second_slot),
        "{now:?}"
    );
    p11.finalize().unwrap();
}

/// Reliability: another process that logged in on a token after this module connected to it keeps its login, without logging in again, across this module's C_Finalize, every cycle.
#[test]
fn survives_c_finalize_of_another_process() {
    let _serial = serial();
    let card = card_with_key();
    let cycles = count(5, 50);
    let mut ok = 0;
    let mut failures = Vec::new();
    for i in 0..cycles {
        // This module connects (SELECT, objects read) first: a SELECT is
        // a logout, so the other process's login has to come after it...
        let p11 = our_module();
        let slot = slot_of(&p11, &card);
        let session = p11.open_ro_session(slot).unwrap();
        assert_eq!(find_by_id(&session, ObjectClass::PUBLIC_KEY, 1).len(), 1);
        // ...then the other process logs in and signs...
        let mut holder = Worker::start("holder", &card);
        // ...and this module finalises with its connection open.
        drop(session);
        p11.finalize().unwrap();
        match holder.sign_again().as_str() {
            "ok" => ok += 1,
            answer => failures.push(format!("cycle {i}: {answer}")),
        }
        holder.stop();
    }
    record(
        "survives_c_finalize_of_another_process",
        cycles,
        ok,
        "cycles",
    );
    assert!(
        failures.is_empty(),
        "the other process lost its login: {failures:?}"
    );
}

/// Reliability: a process logged in on a token forks while another of its threads is in the module; each child is refused until its own C_Initialize, then works on a second token (login, sign) and finalises, or just exits; after every child the parent and another process both still sign with their logins on the first token.
#[test]
fn survives_fork() {
    let _serial = serial();
    let cards = [card_with_key(), card_with_key()];
    let p11 = our_module();
    let slot_a = slot_of(&p11, &cards[0]);
    let slot_b = slot_of(&p11, &cards[1]).id() as CK_SLOT_ID;
    let session = p11.open_rw_session(slot_a).unwrap();
    assert_eq!(find_by_id(&session, ObjectClass::PUBLIC_KEY, 1).len(), 1);
    let mut holder = Worker::start("holder", &cards[0]);
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    let key = key_01(&session);
    sign(&session, key, 3).unwrap();

    // Another thread keeps taking the module's lock while the forks happen.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let p11 = p11.clone();
        let stop = stop.clone();
        let probe = p11.open_ro_session(slot_a).unwrap();
        thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                probe.get_session_info().unwrap();
                n += 1;
            }
            n
        })
    };
    let raw = Raw::load();
    let forks = count(30, 300);
    let mut ok = 0;
    let mut failures = Vec::new();
    for i in 0..forks {
        let status = if i % 3 == 2 {
            // A child that only exits.
            fork_and_wait(|| 0)
        } else {
            fork_and_wait(|| raw.child_work(slot_b))
        };
        let child = exit_code(status);
        let parent = sign(&session, key, 4).map_err(|e| e.to_string());
        let other = holder.sign_again();
        if child == Some(0) && parent.is_ok() && other == "ok" {
            ok += 1;
        } else {
            failures.push(format!(
                "fork {i}: child {child:?} (status {status:#x}), parent {:?}, other process {other}",
                parent.err()
            ));
            if failures.len() >= 3 {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let probes = busy.join().unwrap();
    eprintln!("{forks} forks beside {probes} C_GetSessionInfo calls");
    record("survives_fork", forks, ok, "forks");
    holder.stop();
    drop(session);
    p11.finalize().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Reliability: cycles (200, 1,000 in the long run) of loading the module, C_Initialize, C_GetSlotList, C_GetTokenInfo, C_Finalize and unloading all succeed, leave no file descriptor and no memory behind (resident size within 4 MiB of the first cycles'), and a fork after them works.
#[test]
fn survives_init_finalize_cycles() {
    let _serial = serial();
    let card = card_with_key();
    let cycles = count(200, 1_000);
    let path = module_path();
    let slot = {
        let p11 = module_at(&path);
        let s = slot_of(&p11, &card);
        p11.finalize().unwrap();
        s
    };
    let mut ok = 0;
    let mut failures = Vec::new();
    let (mut fds, mut rss) = (0, 0);
    let start = Instant::now();
    for i in 0..cycles {
        let p11 = Pkcs11::new(&path).expect("load");
        let r = (|| -> cryptoki::error::Result<()> {
            p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
            let present = p11.get_slots_with_token()?;
            if !present.contains(&slot) {
                return Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::TokenNotPresent,
                    cryptoki::context::Function::GetSlotList,
                ));
            }
            p11.get_token_info(slot)?;
            p11.finalize()
        })();
        match r {
            Ok(()) => ok += 1,
            Err(e) => failures.push(format!("cycle {i}: {e}")),
        }
        if i == 10 {
            (fds, rss) = (open_fds(), rss_kib());
        }
    }
    let elapsed = start.elapsed();
    let (fds_end, rss_end) = (open_fds(), rss_kib());
    // Each cycle loaded and unloaded the module (dlopen, dlclose): a fork
    // now must not run fork handlers of an unloaded copy.
    let mapped = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("libpicohsm_pkcs11.so");
    let forked = exit_code(fork_and_wait(|| 0));
    eprintln!(
        "{cycles} cycles in {elapsed:?}; fds {fds} -> {fds_end}; VmRSS {rss} -> {rss_end} KiB; \
         module still mapped after the last dlclose: {mapped}"
    );
    record("survives_init_finalize_cycles", cycles, ok, "cycles");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(forked, Some(0), "a fork after the cycles");
    assert_eq!(fds_end, fds, "file descriptors leaked");
    assert!(
        rss_end < rss + 4 * 1024,
        "VmRSS grew from {rss} to {rss_end} KiB"
    );
}

/// Reliability: C_Finalize while two threads wait in a blocking C_WaitForSlotEvent ends both waits with CKR_CRYPTOKI_NOT_INITIALIZED within seconds, and C_Initialize works again after it, every cycle.
#[test]
fn survives_finalize_during_wait_for_slot_event() {
    let _serial = serial();
    let _card = VCard::start();
    let cycles = count(20, 200);
    let path = module_path();
    let mut ok = 0;
    let mut failures = Vec::new();
    for i in 0..cycles {
        let p11 = module_at(&path);
        // Events of other readers' cards coming and going are no concern
        // here: drain them, so that the waits block.
        while p11.get_slot_event().unwrap().is_some() {}
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..2 {
            let p11 = p11.clone();
            let tx = tx.clone();
            let started = started_tx.clone();
            thread::spawn(move || {
                let _ = started.send(());
                let _ = tx.send(p11.wait_for_slot_event());
            });
        }
        for _ in 0..2 {
            started_rx.recv().unwrap();
        }
        let (fin_tx, fin_rx) = mpsc::channel();
        {
            let p11 = p11.clone();
            thread::spawn(move || {
                let _ = fin_tx.send(p11.finalize());
            });
        }
        let finalized = fin_rx.recv_timeout(HANG);
        let ends: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)))
            .collect();
        let good = matches!(finalized, Ok(Ok(())))
            && ends.iter().all(|e| {
                matches!(
                    e,
                    Ok(Err(cryptoki::error::Error::Pkcs11(
                        cryptoki::error::RvError::CryptokiNotInitialized,
                        _
                    )))
                )
            });
        if good {
            ok += 1;
        } else {
            failures.push(format!(
                "cycle {i}: C_Finalize {finalized:?}, waits {ends:?}"
            ));
        }
    }
    // And the module still works.
    let p11 = module_at(&path);
    p11.get_slots_with_token().unwrap();
    p11.finalize().unwrap();
    record(
        "survives_finalize_during_wait_for_slot_event",
        cycles,
        ok,
        "cycles",
    );
    assert!(failures.is_empty(), "{failures:?}");
}

/// One worker thread's mix of operations on one token: find, sign, get
/// attribute, open and close a session, list the slots; `n` of them.
fn mixed_operations(
    p11: &Pkcs11,
    slot: Slot,
    seed: u64,
    n: usize,
    done: &AtomicUsize,
) -> Result<(), String> {
    let session = p11.open_ro_session(slot).map_err(|e| e.to_string())?;
    let key = key_01(&session);
    let public = find_by_id(&session, ObjectClass::PUBLIC_KEY, 1)[0];
    let mut x = seed | 1;
    for k in 0..n {
        // xorshift64: a fixed, varied order of operations per thread.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r: Result<(), String> = match x % 5 {
            0 => {
                let found = find_by_id(&session, ObjectClass::PRIVATE_KEY, 1);
                (found == [key])
                    .then_some(())
                    .ok_or(format!("find: {found:?}"))
            }
            1 => {
                let data = [k as u8; 32];
                sign(&session, key, k as u8)
                    .and_then(|sig| session.verify(&Mechanism::Ecdsa, public, &data, &sig))
                    .map_err(|e| format!("sign: {e}"))
            }
            2 => session
                .get_attributes(public, &[AttributeType::EcPoint, AttributeType::Label])
                .map_err(|e| format!("get attribute: {e}"))
                .and_then(|a| {
                    matches!(a.first(), Some(Attribute::EcPoint(p)) if p.len() == 67)
                        .then_some(())
                        .ok_or(format!("get attribute: {a:?}"))
                }),
            3 => p11
                .open_ro_session(slot)
                .and_then(|s| {
                    s.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])?;
                    s.close()
                })
                .map_err(|e| format!("open/close: {e}")),
            _ => p11
                .get_slots_with_token()
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    l.contains(&slot)
                        .then_some(())
                        .ok_or(format!("slot list: {l:?}"))
                }),
        };
        r?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reliability: eight threads run mixed operations (find, sign and verify, get attribute, open and close a session, slot list) across two tokens — 8 × 125 of them, 8 × 10,000 in the long run — with no error and no deadlock, and the resident size does not grow between the middle and the end of the run by more than 4 MiB.
#[test]
fn survives_load_across_two_tokens() {
    let _serial = serial();
    let cards = [card_with_key(), card_with_key()];
    let p11 = our_module();
    let slots: Vec<Slot> = cards.iter().map(|c| slot_of(&p11, c)).collect();
    // One login per token, held by a session that stays open.
    let holders: Vec<Session> = slots
        .iter()
        .map(|s| {
            let session = p11.open_ro_session(*s).unwrap();
            session
                .login(UserType::User, Some(&AuthPin::from(PIN)))
                .unwrap();
            session
        })
        .collect();
    let per_thread = count(125, 10_000);
    let total = 8 * per_thread;
    let done = Arc::new(AtomicUsize::new(0));
    let rss_start = rss_kib();
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let p11 = p11.clone();
            let slot = slots[i % 2];
            let done = done.clone();
            thread::spawn(move || {
                mixed_operations(&p11, slot, 0x9E37_79B9 * (i as u64 + 1), per_thread, &done)
            })
        })
        .collect();
    // The middle of the run: half the operations done.
    let mut rss_mid = None;
    let deadline = Instant::now() + HANG.max(Duration::from_secs(per_thread as u64 / 2));
    while threads.iter().any(|t| !t.is_finished()) {
        if rss_mid.is_none() && done.load(Ordering::Relaxed) >= total / 2 {
            rss_mid = Some(rss_kib());
        }
        assert!(
            Instant::now() < deadline,
            "deadlock? {} of {total} operations done",
            done.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let errors: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("a worker thread panicked").err())
        .collect();
    let rss_end = rss_kib();
    let rss_mid = rss_mid.unwrap_or(rss_end);
    let n = done.load(Ordering::Relaxed);
    eprintln!(
        "{n} of {total} operations in {elapsed:?}; VmRSS start {rss_start}, middle {rss_mid}, end {rss_end} KiB"
    );
    record("survives_load_across_two_tokens", total, n, "operations");
    drop(holders);
    p11.finalize().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(n, total);
    assert!(
        rss_end < rss_mid + 4 * 1024,
        "VmRSS grew from {rss_mid} to {rss_end} KiB in the second half"
    );
}
