//! The operations of a session. Each session owns its active signature,
//! verification, decryption, digest and search ([`Ops`], inside its
//! [`Session`]): closing the session, C_CloseAllSessions, a token that goes
//! away and C_Finalize end them by dropping the session, and a NULL
//! mechanism to an Init ([`cancel_operation`]) by dropping the one
//! operation. As PKCS#11 3.0 lets a module do, the families are
//! independent: a session may sign, verify, decrypt, digest and search at
//! the same time.
//!
//! Variable-length outputs follow PKCS#11 3.0 §5.2 (a NULL buffer asks for
//! the length, a buffer too small gets CKR_BUFFER_TOO_SMALL, and in both
//! cases the operation stays active; any other outcome ends it):
//! - where the length is known before the card runs (a signature: twice
//!   the field size for ECDSA, the modulus for RSA; a digest: the hash's),
//!   [`finish`] answers from it and the card runs once, for the real call;
//! - where it is not (RSA decryption: the card unpads), the first call runs
//!   the card and [`deliver_kept`] keeps the output in the session until
//!   the same function is called again with the same input.

use cryptoki_sys::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::core::decrypt::DecryptOp;
use crate::core::digest::DigestOp;
use crate::core::find::Search;
use crate::core::sign::SignOp;
use crate::core::state::{with_module, Session};
use crate::core::verify::VerifyOp;
use crate::error::{Error, Result};

/// What a function with variable-length output gives its caller.
#[derive(Debug)]
pub enum Output {
    /// The length of the output, for a NULL buffer (CKR_OK) or one too
    /// small (CKR_BUFFER_TOO_SMALL); the operation is still active.
    Length(usize),
    /// The output, which fits the caller's buffer (zeroized when dropped).
    Data(Zeroizing<Vec<u8>>),
}

/// The operations of one session.
#[derive(Default)]
pub struct Ops {
    pub(crate) sign: Option<SignOp>,
    pub(crate) verify: Option<VerifyOp>,
    pub(crate) decrypt: Option<DecryptOp>,
    /// The output of C_Decrypt or C_DecryptFinal the caller has not
    /// fetched yet.
    pub(crate) decrypted: Option<Kept>,
    pub(crate) digest: Option<DigestOp>,
    pub(crate) find: Option<Search>,
}

/// An operation a session holds, at most one of each kind.
pub(crate) trait Operation: Sized {
    /// The origin of CKR_OPERATION_ACTIVE.
    const ACTIVE: &'static str;
    /// The origin of CKR_OPERATION_NOT_INITIALIZED.
    const NONE: &'static str;
    /// Its place among the session's operations.
    fn place(ops: &mut Ops) -> &mut Option<Self>;
}

macro_rules! operations {
    ($($op:ty => $field:ident, $active:literal, $none:literal;)*) => {$(
        impl Operation for $op {
            const ACTIVE: &'static str = $active;
            const NONE: &'static str = $none;
            fn place(ops: &mut Ops) -> &mut Option<Self> {
                &mut ops.$field
            }
        }
    )*};
}

operations! {
    SignOp => sign, "a signature is under way", "no signature under way";
    VerifyOp => verify, "a verification is under way", "no verification under way";
    DecryptOp => decrypt, "a decryption is under way", "no decryption under way";
    DigestOp => digest, "a digest is under way", "no digest under way";
    Search => find, "a search is active", "no search";
}

/// Runs `f` on the session under the module lock (no card I/O in `f`);
/// CKR_SESSION_HANDLE_INVALID for an unknown handle.
pub(crate) fn on_session<R>(
    session: CK_SESSION_HANDLE,
    f: impl FnOnce(&mut Session) -> Result<R>,
) -> Result<R> {
    with_module(|m| {
        let s = m
            .sessions
            .get_mut(&session)
            .ok_or(Error::new(CKR_SESSION_HANDLE_INVALID, "unknown session"))?;
        f(s)
    })
}

/// The session's slot, once sure that no `O` is under way
/// (CKR_OPERATION_ACTIVE).
pub(crate) fn idle<O: Operation>(session: CK_SESSION_HANDLE) -> Result<CK_SLOT_ID> {
    on_session(session, |s| match O::place(&mut s.ops) {
        Some(_) => Err(Error::new(CKR_OPERATION_ACTIVE, O::ACTIVE)),
        None => Ok(s.slot),
    })
}

/// Makes `op` the session's `O` (CKR_OPERATION_ACTIVE if one is under way:
/// checked again, since an Init looks at the card without the lock).
pub(crate) fn start<O: Operation>(session: CK_SESSION_HANDLE, op: O) -> Result<()> {
    on_session(session, |s| {
        let place = O::place(&mut s.ops);
        if place.is_some() {
            return Err(Error::new(CKR_OPERATION_ACTIVE, O::ACTIVE));
        }
        *place = Some(op);
        Ok(())
    })
}

/// Ends the session's `O` and hands it over, with the session's slot.
pub(crate) fn take<O: Operation>(session: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, O)> {
    on_session(session, |s| {
        let op = O::place(&mut s.ops)
            .take()
            .ok_or(Error::new(CKR_OPERATION_NOT_INITIALIZED, O::NONE))?;
        Ok((s.slot, op))
    })
}

/// Runs `f` on the session's `O`, which an error from `f` ends.
pub(crate) fn update<O: Operation, R>(
    session: CK_SESSION_HANDLE,
    f: impl FnOnce(&mut O) -> Result<R>,
) -> Result<R> {
    on_session(session, |s| {
        let place = O::place(&mut s.ops);
        let op = place
            .as_mut()
            .ok_or(Error::new(CKR_OPERATION_NOT_INITIALIZED, O::NONE))?;
        let r = f(op);
        if r.is_err() {
            *place = None;
        }
        r
    })
}

/// Ends the session's `O`, if one is under way.
pub(crate) fn cancel<O: Operation>(session: CK_SESSION_HANDLE) -> Result<()> {
    on_session(session, |s| {
        *O::place(&mut s.ops) = None;
        Ok(())
    })
}

/// The PKCS#11 3.0 §5.2 step of a function that ends `O` with an output whose length
/// is known before the card runs. `prepare` (under the module lock, so no
/// card I/O) checks the input and returns the output's length with what
/// `run` needs; its error ends the operation. A buffer of `capacity` bytes
/// (`None`: NULL) too small for the length gets [`Output::Length`] and the
/// operation stays; otherwise the operation ends and `run` (without the
/// module lock) makes the output.
pub(crate) fn finish<O: Operation, P>(
    session: CK_SESSION_HANDLE,
    capacity: Option<usize>,
    prepare: impl FnOnce(&O) -> Result<(usize, P)>,
    run: impl FnOnce(CK_SLOT_ID, O, P) -> Result<Vec<u8>>,
) -> Result<Output> {
    let ready = on_session(session, |s| {
        let slot = s.slot;
        let place = O::place(&mut s.ops);
        let op = place
            .as_ref()
            .ok_or(Error::new(CKR_OPERATION_NOT_INITIALIZED, O::NONE))?;
        let (len, p) = prepare(op).inspect_err(|_| *place = None)?;
        Ok(match capacity {
            Some(c) if c >= len => place.take().map(|op| (slot, op, p)).ok_or(len),
            _ => Err(len),
        })
    })?;
    match ready {
        Ok((slot, op, p)) => Ok(Output::Data(Zeroizing::new(run(slot, op, p)?))),
        Err(len) => Ok(Output::Length(len)),
    }
}

/// A function whose output waits in the session between a size query and
/// the call that fetches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeptFn {
    /// C_Decrypt.
    Decrypt,
    /// C_DecryptFinal.
    DecryptFinal,
}

/// An output the caller could not take yet, with the call that made it
/// (its input compared by SHA-256). Zeroized when dropped.
pub(crate) struct Kept {
    func: KeptFn,
    input: [u8; 32],
    data: Zeroizing<Vec<u8>>,
}

/// Where a [`Kept`] output waits: a session's [`Ops::decrypted`].
pub(crate) trait KeptStore {
    /// Runs `f` on the place (CKR_SESSION_HANDLE_INVALID when it is gone).
    fn with<R>(&self, f: impl FnOnce(&mut Option<Kept>) -> R) -> Result<R>;
}

/// The decryption output kept in a session.
pub(crate) struct Decrypted(pub(crate) CK_SESSION_HANDLE);

impl KeptStore for Decrypted {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Kept>) -> R) -> Result<R> {
        on_session(self.0, |s| Ok(f(&mut s.ops.decrypted)))
    }
}

/// The PKCS#11 3.0 §5.2 step of `func` for `input`, with a caller buffer of `capacity`
/// bytes (`None`: NULL), where the output's length is known only once the
/// card has run. Takes what waits in `store` if the same function made it
/// for the same input; else drops whatever waits and calls `produce` (which
/// ends the operation) once. Keeps the output when the caller cannot take
/// it yet. An error from `produce` is returned as is: nothing waits.
pub(crate) fn deliver_kept(
    store: &impl KeptStore,
    func: KeptFn,
    input: &[u8],
    capacity: Option<usize>,
    produce: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Output> {
    let input: [u8; 32] = Sha256::digest(input).into();
    let waiting = store.with(|k| match k.take() {
        Some(p) if p.func == func && p.input == input => Some(p.data),
        Some(p) => {
            log::debug!("dropping the unfetched output of {:?}", p.func);
            None
        }
        None => None,
    })?;
    // The card runs without the module lock.
    let data = match waiting {
        Some(data) => data,
        None => Zeroizing::new(produce()?),
    };
    if capacity.is_some_and(|c| c >= data.len()) {
        return Ok(Output::Data(data));
    }
    let len = data.len();
    // A session closed meanwhile took its place with it: nothing to keep.
    let _ = store.with(|k| *k = Some(Kept { func, input, data }));
    Ok(Output::Length(len))
}

/// An operation a NULL mechanism can end (PKCS#11 3.0 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// C_SignInit.
    Sign,
    /// C_VerifyInit.
    Verify,
    /// C_DecryptInit (with the output it may keep).
    Decrypt,
    /// C_DigestInit.
    Digest,
}

/// Ends the session's `kind` operation, if one is active.
pub fn cancel_operation(session: CK_SESSION_HANDLE, kind: OpKind) -> Result<()> {
    match kind {
        OpKind::Sign => cancel::<SignOp>(session),
        OpKind::Verify => cancel::<VerifyOp>(session),
        OpKind::Decrypt => on_session(session, |s| {
            s.ops.decrypt = None;
            s.ops.decrypted = None;
            Ok(())
        }),
        OpKind::Digest => cancel::<DigestOp>(session),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::fail;
    use std::cell::{Cell, RefCell};

    /// A session's place for a kept output, without a module.
    #[derive(Default)]
    struct Place(RefCell<Option<Kept>>);

    impl KeptStore for Place {
        fn with<R>(&self, f: impl FnOnce(&mut Option<Kept>) -> R) -> Result<R> {
            Ok(f(&mut self.0.borrow_mut()))
        }
    }

    impl Place {
        fn waiting(&self) -> bool {
            self.0.borrow().is_some()
        }
    }

    fn run(
        p: &Place,
        f: KeptFn,
        input: &[u8],
        cap: Option<usize>,
        calls: &Cell<u32>,
        out: &[u8],
    ) -> Result<Output> {
        deliver_kept(p, f, input, cap, || {
            calls.set(calls.get() + 1);
            Ok(out.to_vec())
        })
    }

    fn data(d: Output) -> Vec<u8> {
        match d {
            Output::Data(b) => b.to_vec(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn size_query_then_fetch_runs_the_core_once() {
        let p = Place::default();
        let calls = Cell::new(0);
        let out = [5u8; 64];
        let d = run(&p, KeptFn::Decrypt, b"msg", None, &calls, &out).unwrap();
        assert!(matches!(d, Output::Length(64)));
        // A repeated size query is answered from what waits.
        let d = run(&p, KeptFn::Decrypt, b"msg", None, &calls, &out).unwrap();
        assert!(matches!(d, Output::Length(64)));
        let d = run(&p, KeptFn::Decrypt, b"msg", Some(10), &calls, &out).unwrap();
        assert!(matches!(d, Output::Length(64)));
        assert_eq!(
            data(run(&p, KeptFn::Decrypt, b"msg", Some(64), &calls, &out).unwrap()),
            out
        );
        assert_eq!(calls.get(), 1);
        assert!(!p.waiting(), "handed out: nothing waits");
        // The next call is a new one.
        run(&p, KeptFn::Decrypt, b"msg", Some(64), &calls, &out).unwrap();
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn enough_room_at_once_keeps_nothing() {
        let p = Place::default();
        let calls = Cell::new(0);
        assert_eq!(
            data(run(&p, KeptFn::DecryptFinal, b"", Some(100), &calls, &[1, 2]).unwrap()),
            [1, 2]
        );
        assert!(!p.waiting());
    }

    #[test]
    fn other_calls_drop_the_output() {
        let p = Place::default();
        let calls = Cell::new(0);
        run(&p, KeptFn::Decrypt, b"m", None, &calls, &[1]).unwrap();
        // The other function runs the core again.
        run(&p, KeptFn::DecryptFinal, b"", None, &calls, &[2]).unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(
            data(run(&p, KeptFn::DecryptFinal, b"", Some(1), &calls, &[3]).unwrap()),
            [2]
        );
        // Same function, different input: a new call.
        run(&p, KeptFn::Decrypt, b"c1", None, &calls, &[4]).unwrap();
        assert_eq!(
            data(run(&p, KeptFn::Decrypt, b"c2", Some(9), &calls, &[5]).unwrap()),
            [5]
        );
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn sessions_keep_their_own_outputs() {
        let (one, two) = (Place::default(), Place::default());
        let calls = Cell::new(0);
        run(&one, KeptFn::Decrypt, b"m", None, &calls, &[1]).unwrap();
        run(&two, KeptFn::Decrypt, b"m", None, &calls, &[2]).unwrap();
        for (p, kept) in [(&two, 2), (&one, 1)] {
            let d = run(p, KeptFn::Decrypt, b"m", Some(1), &calls, &[0]).unwrap();
            assert_eq!(data(d), [kept]);
        }
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn an_error_keeps_nothing() {
        let p = Place::default();
        let e = deliver_kept(&p, KeptFn::Decrypt, b"m", None, || {
            fail(CKR_KEY_HANDLE_INVALID, "t")
        })
        .unwrap_err();
        assert_eq!(e.rv, CKR_KEY_HANDLE_INVALID);
        assert!(!p.waiting());
    }
}
