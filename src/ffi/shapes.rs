//! What exported functions of one C signature share: their argument checks
//! and conversions, then the one core call each names. The macros define
//! functions from a list in which every entry still says which C function
//! it is, what its parameters are called and which core function it calls;
//! the work between the C arguments and that call is written once, in the
//! functions of this module.

use cryptoki_sys::*;

use crate::core::api::{self, Mechanism, OpKind, Output};
use crate::error::{fail, Result};

use super::args::{check_ptr, slice_in, Out, OutBuf};
use super::convert::mechanism;
use super::wrap::{run, Init, Note};

/// The body of an exported function the module does not offer: `checks`
/// (its argument checks, so that a wrong pointer is still
/// CKR_ARGUMENTS_BAD), then CKR_FUNCTION_NOT_SUPPORTED.
pub(crate) fn not_supported(
    name: &'static str,
    handles: &[(&'static str, CK_ULONG)],
    what: &'static str,
    checks: impl FnOnce(&mut Note) -> Result<()>,
) -> CK_RV {
    run(name, Init::Required, handles, |note| {
        checks(note)?;
        fail(CKR_FUNCTION_NOT_SUPPORTED, what)
    })
}

/// The body of a function with one output value: checks `p`
/// (CKR_ARGUMENTS_BAD when NULL, with `what`) before any work, then writes
/// there what `core` returns.
///
/// # Safety
/// A non-NULL `p` must be valid for writing a `T`.
pub(crate) unsafe fn value_out<T>(
    name: &'static str,
    handles: &[(&'static str, CK_ULONG)],
    p: *mut T,
    what: &'static str,
    core: impl FnOnce(&mut Note) -> Result<T>,
) -> CK_RV {
    run(name, Init::Required, handles, |note| {
        // SAFETY: forwarded to our caller's promise.
        let out = unsafe { Out::new(p, what) }?;
        out.set(core(note)?);
        Ok(())
    })
}

/// The argument checks of an `(in, in_len, out, out_len)` call that
/// produces nothing.
///
/// # Safety
/// As [`slice_in`] for `(p_in, n_in)`.
pub(crate) unsafe fn check_in_out(
    p_in: *const u8,
    n_in: CK_ULONG,
    out_len: *const CK_ULONG,
) -> Result<()> {
    // SAFETY: forwarded to our caller's promise.
    unsafe { slice_in(p_in, n_in) }?;
    check_ptr(out_len, "NULL output length pointer")
}

/// `C_XxxInit(hSession, pMechanism, …)` of an operation: a mechanism is
/// decoded and given to `init`; a NULL mechanism ends the session's `kind`
/// operation (PKCS#11 3.0 §5.2: CKR_OK also when none is active).
///
/// # Safety
/// `p_mech` must be NULL or a valid CK_MECHANISM (see [`mechanism`]).
pub(crate) unsafe fn init(
    name: &'static str,
    handles: &[(&'static str, CK_ULONG)],
    session: CK_SESSION_HANDLE,
    kind: OpKind,
    p_mech: *const CK_MECHANISM,
    init: impl FnOnce(Mechanism) -> Result<()>,
) -> CK_RV {
    run(name, Init::Required, handles, |note| {
        if p_mech.is_null() {
            return api::cancel_operation(session, kind);
        }
        // SAFETY: forwarded to our caller's promise.
        init(unsafe { mechanism(p_mech, note) }?)
    })
}

/// `C_Xxx(hSession, pPart, ulPartLen)`: one input, no output.
///
/// # Safety
/// As [`slice_in`] for `(p, n)`.
pub(crate) unsafe fn input(
    name: &'static str,
    session: CK_SESSION_HANDLE,
    p: *const u8,
    n: CK_ULONG,
    core: impl FnOnce(CK_SESSION_HANDLE, &[u8]) -> Result<()>,
) -> CK_RV {
    run(name, Init::Required, &[("session", session)], |_| {
        // SAFETY: forwarded to our caller's promise.
        core(session, unsafe { slice_in(p, n) }?)
    })
}

/// `C_Xxx(hSession, pIn, ulInLen, pOut, pulOutLen)`: one input and a
/// variable-length output (PKCS#11 3.0 §5.2); `core` gets the input and
/// the capacity of the caller's buffer (`None`: NULL).
///
/// # Safety
/// As [`slice_in`] for `(p_in, n_in)`, as [`OutBuf::new`] for
/// `(p_out, pul_out)`.
pub(crate) unsafe fn input_output(
    name: &'static str,
    session: CK_SESSION_HANDLE,
    (p_in, n_in): (*const u8, CK_ULONG),
    (p_out, pul_out): (*mut u8, *mut CK_ULONG),
    core: impl FnOnce(CK_SESSION_HANDLE, &[u8], Option<usize>) -> Result<Output>,
) -> CK_RV {
    run(name, Init::Required, &[("session", session)], |_| {
        // SAFETY: forwarded to our caller's promise.
        let (input, out) = unsafe { (slice_in(p_in, n_in)?, OutBuf::new(p_out, pul_out)?) };
        let capacity = out.capacity();
        out.deliver(core(session, input, capacity)?)
    })
}

/// `C_XxxFinal(hSession, pOut, pulOutLen)`: a variable-length output
/// (PKCS#11 3.0 §5.2); `core` gets the capacity of the caller's buffer.
///
/// # Safety
/// As [`OutBuf::new`] for `(p_out, pul_out)`.
pub(crate) unsafe fn output(
    name: &'static str,
    session: CK_SESSION_HANDLE,
    p_out: *mut u8,
    pul_out: *mut CK_ULONG,
    core: impl FnOnce(CK_SESSION_HANDLE, Option<usize>) -> Result<Output>,
) -> CK_RV {
    run(name, Init::Required, &[("session", session)], |_| {
        // SAFETY: forwarded to our caller's promise.
        let out = unsafe { OutBuf::new(p_out, pul_out) }?;
        let capacity = out.capacity();
        out.deliver(core(session, capacity)?)
    })
}

/// Defines exported functions the module does not offer that share one C
/// signature: each runs the check expression (its argument checks), then
/// returns CKR_FUNCTION_NOT_SUPPORTED with its `what` in the log.
///
/// `unsupported!(C_A: "what", C_B: "what"; (params…), [handles…] => checks);`
macro_rules! unsupported {
    ($($(#[$m:meta])* $name:ident: $what:expr),+; $params:tt, $handles:tt => $check:expr) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name $params -> CK_RV {
            $crate::ffi::shapes::not_supported(stringify!($name), &$handles, $what, |_| $check)
        }
    )+};
}

/// Defines `C_XxxInit(hSession, pMechanism, hKey)` functions of an
/// operation (see [`init`]): `C_Name => OpKind, core;` calls
/// `core(hSession, mechanism, hKey)`.
macro_rules! init_with_key {
    ($($(#[$m:meta])* $name:ident => $kind:expr, $core:path;)+) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pMechanism: *mut CK_MECHANISM,
            hKey: CK_OBJECT_HANDLE,
        ) -> CK_RV {
            let handles = [("session", hSession), ("key", hKey)];
            // SAFETY: PKCS#11 caller: NULL or a valid CK_MECHANISM.
            unsafe {
                $crate::ffi::shapes::init(stringify!($name), &handles, hSession, $kind, pMechanism, |m| {
                    $core(hSession, m, hKey)
                })
            }
        }
    )+};
}

/// Defines `C_Xxx(hSession, pPart, ulPartLen)` functions (see [`input`]):
/// `C_Name(pPart, ulPartLen) => core;`.
macro_rules! input_fns {
    ($($(#[$m:meta])* $name:ident($p:ident, $n:ident) => $core:path;)+) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(hSession: CK_SESSION_HANDLE, $p: *mut CK_BYTE, $n: CK_ULONG) -> CK_RV {
            // SAFETY: PKCS#11 caller: readable for the length.
            unsafe { $crate::ffi::shapes::input(stringify!($name), hSession, $p, $n, $core) }
        }
    )+};
}

/// Defines `C_Xxx(hSession, pIn, ulInLen, pOut, pulOutLen)` functions (see
/// [`input_output`]): `C_Name(pIn, ulInLen, pOut, pulOutLen) => core;`.
macro_rules! input_output_fns {
    ($($(#[$m:meta])* $name:ident($p_in:ident, $n_in:ident, $p_out:ident, $pul_out:ident) => $core:path;)+) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            $p_in: *mut CK_BYTE,
            $n_in: CK_ULONG,
            $p_out: *mut CK_BYTE,
            $pul_out: *mut CK_ULONG,
        ) -> CK_RV {
            // SAFETY: PKCS#11 caller: the input readable for its length; the
            // length cell readable and writable; the buffer NULL or writable
            // for as many bytes as the cell says.
            unsafe {
                $crate::ffi::shapes::input_output(stringify!($name), hSession, ($p_in, $n_in), ($p_out, $pul_out), $core)
            }
        }
    )+};
}

/// Defines `C_XxxFinal(hSession, pOut, pulOutLen)` functions (see
/// [`output`]): `C_Name(pOut, pulOutLen) => core;`.
macro_rules! output_fns {
    ($($(#[$m:meta])* $name:ident($p_out:ident, $pul_out:ident) => $core:path;)+) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name(hSession: CK_SESSION_HANDLE, $p_out: *mut CK_BYTE, $pul_out: *mut CK_ULONG) -> CK_RV {
            // SAFETY: PKCS#11 caller: the length cell readable and writable;
            // the buffer NULL or writable for as many bytes as it says.
            unsafe { $crate::ffi::shapes::output(stringify!($name), hSession, $p_out, $pul_out, $core) }
        }
    )+};
}

pub(crate) use {init_with_key, input_fns, input_output_fns, output_fns, unsupported};
