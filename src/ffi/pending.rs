//! Outputs kept between a size query and the call that fetches them.
//!
//! `api::sign`, `api::decrypt`, `api::digest`, their `_final`s and
//! `api::decrypt_update` end (or advance) an operation on the card and must
//! not run twice. PKCS#11 3.0 §5.2 lets the caller first ask for the length
//! (NULL buffer) or pass a buffer that turns out too small, and then repeat
//! the call; the operation must survive that. So the first call runs the
//! core once and the bytes wait here, keyed by session and operation family
//! (sign, decrypt, digest), until the same function is called again on the
//! same session with the same input (compared by SHA-256): then they are
//! handed out and zeroized. Any other core call of that family on the
//! session (init, update, another output function, or the same function
//! with different input), `C_CloseSession`, `C_CloseAllSessions` and
//! `C_Finalize` drop them.

use std::collections::BTreeMap;

use cryptoki_sys::CK_SESSION_HANDLE;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::Result;

/// An operation family: the core functions that share one operation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Family {
    /// C_SignInit, C_Sign, C_SignUpdate, C_SignFinal.
    Sign,
    /// C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal.
    Decrypt,
    /// C_DigestInit, C_Digest, C_DigestUpdate, C_DigestFinal.
    Digest,
}

/// A function with variable-length output that ends or advances an
/// operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutFn {
    /// C_Sign.
    Sign,
    /// C_SignFinal.
    SignFinal,
    /// C_Decrypt.
    Decrypt,
    /// C_DecryptUpdate.
    DecryptUpdate,
    /// C_DecryptFinal.
    DecryptFinal,
    /// C_Digest.
    Digest,
    /// C_DigestFinal.
    DigestFinal,
}

impl OutFn {
    /// The family whose state the function uses.
    pub(crate) fn family(self) -> Family {
        match self {
            OutFn::Sign | OutFn::SignFinal => Family::Sign,
            OutFn::Decrypt | OutFn::DecryptUpdate | OutFn::DecryptFinal => Family::Decrypt,
            OutFn::Digest | OutFn::DigestFinal => Family::Digest,
        }
    }
}

/// What the C function hands to its caller.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Size query: the length goes to `*pulLen`, CKR_OK; the bytes wait.
    Length(usize),
    /// Buffer too small: the length goes to `*pulLen`,
    /// CKR_BUFFER_TOO_SMALL; the bytes wait.
    TooSmall(usize),
    /// The bytes, to copy out (zeroized when dropped).
    Data(Zeroizing<Vec<u8>>),
}

/// One waiting output.
struct Pending {
    func: OutFn,
    input: [u8; 32],
    data: Zeroizing<Vec<u8>>,
}

/// The waiting outputs of all sessions.
pub(crate) struct PendingOutputs {
    map: Mutex<BTreeMap<(CK_SESSION_HANDLE, Family), Pending>>,
}

/// The module's waiting outputs.
pub(crate) static PENDING: PendingOutputs = PendingOutputs::new();

fn fingerprint(input: &[u8]) -> [u8; 32] {
    Sha256::digest(input).into()
}

impl PendingOutputs {
    /// No outputs waiting.
    pub(crate) const fn new() -> Self {
        PendingOutputs {
            map: Mutex::new(BTreeMap::new()),
        }
    }

    /// Drops (and zeroizes) the output of `family` on `session`, if any.
    /// Returns whether there was one.
    pub(crate) fn forget(&self, session: CK_SESSION_HANDLE, family: Family) -> bool {
        self.map.lock().remove(&(session, family)).is_some()
    }

    /// Drops every output of `session`.
    pub(crate) fn forget_session(&self, session: CK_SESSION_HANDLE) {
        self.map.lock().retain(|(s, _), _| *s != session);
    }

    /// Keeps only the outputs of sessions for which `keep` says yes.
    pub(crate) fn retain_sessions(&self, mut keep: impl FnMut(CK_SESSION_HANDLE) -> bool) {
        let sessions: Vec<CK_SESSION_HANDLE> = self.map.lock().keys().map(|(s, _)| *s).collect();
        // `keep` may call the core: not under our lock.
        let gone: Vec<CK_SESSION_HANDLE> = sessions.into_iter().filter(|s| !keep(*s)).collect();
        self.map.lock().retain(|(s, _), _| !gone.contains(s));
    }

    /// Drops everything (C_Finalize, C_Initialize).
    pub(crate) fn clear(&self) {
        self.map.lock().clear();
    }

    /// The §5.2 step of `func` on `session` for `input`, with a caller
    /// buffer of `capacity` bytes (`None`: NULL buffer). Takes the waiting
    /// output of the same call if there is one, else drops whatever waits
    /// for the family and calls `produce` (the core) once. Keeps the bytes
    /// when the caller cannot take them yet. An error from `produce` is
    /// returned as is (the core has ended the operation; nothing waits).
    pub(crate) fn deliver(
        &self,
        session: CK_SESSION_HANDLE,
        func: OutFn,
        input: &[u8],
        capacity: Option<usize>,
        produce: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Delivery> {
        let key = (session, func.family());
        let input = fingerprint(input);
        let waiting = self.map.lock().remove(&key);
        let data = match waiting {
            Some(p) if p.func == func && p.input == input => p.data,
            other => {
                if let Some(p) = other {
                    log::debug!(
                        "session {session}: dropping the unfetched output of {:?}",
                        p.func
                    );
                }
                // The core runs without our lock held.
                Zeroizing::new(produce()?)
            }
        };
        let n = data.len();
        let keep = |data| {
            self.map.lock().insert(key, Pending { func, input, data });
        };
        match capacity {
            None => {
                keep(data);
                Ok(Delivery::Length(n))
            }
            Some(c) if c < n => {
                keep(data);
                Ok(Delivery::TooSmall(n))
            }
            Some(_) => Ok(Delivery::Data(data)),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::fail;
    use cryptoki_sys::*;
    use std::cell::Cell;

    fn run(
        p: &PendingOutputs,
        s: CK_SESSION_HANDLE,
        f: OutFn,
        input: &[u8],
        cap: Option<usize>,
        calls: &Cell<u32>,
        out: &[u8],
    ) -> Result<Delivery> {
        p.deliver(s, f, input, cap, || {
            calls.set(calls.get() + 1);
            Ok(out.to_vec())
        })
    }

    fn data(d: Delivery) -> Vec<u8> {
        match d {
            Delivery::Data(b) => b.to_vec(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn size_query_then_fetch_runs_the_core_once() {
        let p = PendingOutputs::new();
        let calls = Cell::new(0);
        let sig = [5u8; 64];
        let d = run(&p, 1, OutFn::Sign, b"msg", None, &calls, &sig).unwrap();
        assert!(matches!(d, Delivery::Length(64)));
        // A repeated size query is answered from the cache.
        let d = run(&p, 1, OutFn::Sign, b"msg", None, &calls, &sig).unwrap();
        assert!(matches!(d, Delivery::Length(64)));
        let d = run(&p, 1, OutFn::Sign, b"msg", Some(10), &calls, &sig).unwrap();
        assert!(matches!(d, Delivery::TooSmall(64)));
        assert_eq!(
            data(run(&p, 1, OutFn::Sign, b"msg", Some(64), &calls, &sig).unwrap()),
            sig
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(p.len(), 0, "handed out: nothing waits");
        // The next call is a new one.
        run(&p, 1, OutFn::Sign, b"msg", Some(64), &calls, &sig).unwrap();
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn enough_room_at_once_keeps_nothing() {
        let p = PendingOutputs::new();
        let calls = Cell::new(0);
        assert_eq!(
            data(run(&p, 1, OutFn::Digest, b"x", Some(100), &calls, &[1, 2]).unwrap()),
            [1, 2]
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn other_calls_of_the_family_drop_the_output() {
        let p = PendingOutputs::new();
        let calls = Cell::new(0);
        run(&p, 1, OutFn::Sign, b"m", None, &calls, &[1]).unwrap();
        // Another function of the family runs the core again.
        run(&p, 1, OutFn::SignFinal, b"", None, &calls, &[2]).unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(
            data(run(&p, 1, OutFn::SignFinal, b"", Some(1), &calls, &[3]).unwrap()),
            [2]
        );
        // Same function, different input: a new call.
        run(&p, 1, OutFn::Decrypt, b"c1", None, &calls, &[4]).unwrap();
        assert_eq!(
            data(run(&p, 1, OutFn::Decrypt, b"c2", Some(9), &calls, &[5]).unwrap()),
            [5]
        );
        assert_eq!(calls.get(), 4);
        // Init/update of the family.
        run(&p, 1, OutFn::Digest, b"d", None, &calls, &[6]).unwrap();
        assert!(p.forget(1, Family::Digest));
        assert!(!p.forget(1, Family::Digest));
    }

    #[test]
    fn sessions_and_families_are_separate() {
        let p = PendingOutputs::new();
        let calls = Cell::new(0);
        run(&p, 1, OutFn::Sign, b"m", None, &calls, &[1]).unwrap();
        run(&p, 2, OutFn::Sign, b"m", None, &calls, &[2]).unwrap();
        run(&p, 1, OutFn::Digest, b"m", None, &calls, &[3]).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            data(run(&p, 2, OutFn::Sign, b"m", Some(1), &calls, &[0]).unwrap()),
            [2]
        );
        assert_eq!(
            data(run(&p, 1, OutFn::Sign, b"m", Some(1), &calls, &[0]).unwrap()),
            [1]
        );
        assert_eq!(calls.get(), 3);
        p.forget_session(1);
        assert_eq!(p.len(), 0);
        run(&p, 3, OutFn::Sign, b"m", None, &calls, &[1]).unwrap();
        run(&p, 4, OutFn::Sign, b"m", None, &calls, &[1]).unwrap();
        p.retain_sessions(|s| s == 4);
        assert_eq!(p.len(), 1);
        p.clear();
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn an_error_keeps_nothing() {
        let p = PendingOutputs::new();
        let e = p
            .deliver(1, OutFn::Sign, b"m", None, || {
                fail(CKR_KEY_HANDLE_INVALID, "t")
            })
            .unwrap_err();
        assert_eq!(e.rv, CKR_KEY_HANDLE_INVALID);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn empty_update_output_is_kept_for_its_own_input_only() {
        let p = PendingOutputs::new();
        let calls = Cell::new(0);
        // RSA decrypt_update buffers and outputs nothing.
        assert!(matches!(
            run(&p, 1, OutFn::DecryptUpdate, b"p1", None, &calls, &[]).unwrap(),
            Delivery::Length(0)
        ));
        assert!(
            data(run(&p, 1, OutFn::DecryptUpdate, b"p1", Some(0), &calls, &[]).unwrap()).is_empty()
        );
        assert_eq!(calls.get(), 1, "the part was fed once");
        run(&p, 1, OutFn::DecryptUpdate, b"p2", None, &calls, &[]).unwrap();
        run(&p, 1, OutFn::DecryptUpdate, b"p3", Some(0), &calls, &[]).unwrap();
        assert_eq!(calls.get(), 3, "a different part is a new call");
    }
}
