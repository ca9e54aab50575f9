//! The module across fork().
//!
//! A forked child shares the parent's PC/SC sockets: what it would send on
//! them acts on the parent's connections. Dropping the parent's module in
//! the child (SCardDisconnect of each card, SCardReleaseContext) made pcscd
//! release the parent's context and card handles, so the parent's next
//! call failed and its login was lost; pcscd resets a card whose
//! transaction was open when its context goes. So the child *forgets* the
//! parent's module: no PC/SC call and no destructor runs (its memory stays
//! allocated in the child, once per fork). The child's own C_Initialize
//! then starts afresh with a context of its own, as PKCS#11 expects of a
//! forked child; until then every call is CKR_CRYPTOKI_NOT_INITIALIZED.
//!
//! Another thread of the parent may hold [`MODULE`] (or the log file's
//! lock) at the moment of the fork; that thread does not exist in the
//! child, so the lock would stay taken for ever and the child's
//! C_Initialize would hang. Handlers installed with pthread_atfork at the
//! first C_Initialize take both locks before the fork (waiting for the
//! holder: the module lock is held only briefly, never across card I/O)
//! and release them on both sides after it; in the child, the parent's
//! module is forgotten while the lock is held. Both are std mutexes: the
//! unlock of a parking_lot mutex with waiters can hand it straight to one
//! of them, in the child a thread that is not there (a hang seen in
//! tests). A token's own lock is not taken: the child never uses the
//! parent's tokens.
//!
//! Limits: locks that are not the module's are not covered. A fork while
//! another thread is inside pcsc-lite (a card operation, a slot list) can
//! leave pcsc-lite's client lock held in the child, as for any PC/SC
//! application; a child of a multi-threaded process should not use PC/SC
//! (this module included) unless it forked while the module was idle, or
//! it should exec. The `std` lock of stderr (the log without a file) is
//! not covered either.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fs::File;
use std::sync::{MutexGuard, Once};

use crate::core::state::{Module, MODULE};

/// Forgets a module that belongs to the parent process: no destructor, so
/// nothing is sent on the parent's PC/SC sockets.
pub fn forget_parents(module: &mut Option<Module>) {
    if let Some(m) = module.take() {
        std::mem::forget(m);
    }
}

/// Installs the fork handlers (once per process and loaded copy of the
/// module; glibc removes them when the module is unloaded).
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: the handlers are functions of this module that take and
        // release its own locks; they do not unwind.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}): a fork while another thread is in the module may hang the child");
        }
    });
}

/// The locks [`prepare`] took, until [`parent`] or [`child`] releases them.
type Guards = (
    MutexGuard<'static, Option<Module>>,
    Option<MutexGuard<'static, File>>,
);

/// Where the guards wait across fork().
struct Held(UnsafeCell<Option<Guards>>);

// SAFETY: only the thread that holds the module lock touches the cell: it
// is filled by `prepare` once it has the lock and emptied by `parent` or
// `child`, on the same thread, before the lock goes.
unsafe impl Sync for Held {}

static HELD: Held = Held(UnsafeCell::new(None));

/// Before fork(): takes the module's locks, in the module's lock order
/// (the module first), and keeps them across the fork.
extern "C" fn prepare() {
    let module = MODULE.lock();
    let file = crate::logging::lock_file();
    // SAFETY: this thread holds the module lock (`Held`).
    unsafe { *HELD.0.get() = Some((module, file)) };
}

/// After fork(), in the parent: releases what [`prepare`] took.
extern "C" fn parent() {
    // SAFETY: this thread holds the module lock (`Held`).
    let held = unsafe { (*HELD.0.get()).take() };
    if let Some((module, file)) = held {
        drop(file);
        drop(module);
    }
}

/// After fork(), in the child: forgets the parent's module, then releases
/// what [`prepare`] took (a std mutex's unlock only wakes waiters, of which
/// the child has none).
extern "C" fn child() {
    // SAFETY: this thread holds the module lock (`Held`), and is the only
    // thread of the child.
    let held = unsafe { (*HELD.0.get()).take() };
    if let Some((mut module, file)) = held {
        forget_parents(&mut module);
        drop(file);
        drop(module);
    }
}
