//! Token presence (C_GetSlotList with tokenPresent, C_GetSlotInfo) and the
//! slot list a size query counted.
//!
//! Presence comes from pcscd's reader states ([`Pcsc::card_atrs`]): a card
//! whose ATR names a SmartCard-HSM (docs/protocol.md §2.1), or any card in
//! a reader whose token this module holds (a token recognised by its
//! applet whatever its ATR). Nothing is sent to a card, and no connection
//! is opened, so another process's transaction cannot hide a token.
//!
//! PKCS#11 3.0 §5.5 has the set of slots checked when C_GetSlotList is
//! called with a NULL list: the call with the buffer that follows hands out
//! the list the size query counted, as OpenSC's module does, so the pair
//! never disagrees (no CKR_BUFFER_TOO_SMALL because a token appeared in
//! between, no slot cut off because one went away). The list is kept per
//! thread, for the next call with a buffer from the same thread and the
//! same tokenPresent; a call with a buffer and no size query before it
//! looks afresh. Threads are told apart by pthread_self, not by
//! `std::thread::current`: that one registers a thread-exit destructor
//! inside this module, which crashed the application's threads when they
//! ended after the module was unloaded (dlclose).

use std::collections::HashMap;

use cryptoki_sys::CK_SLOT_ID;

use crate::card::files::is_smartcard_hsm_atr;
use crate::core::state::TokenRef;
use crate::error::Result;
use crate::transport::pcsc::Pcsc;

/// What pcscd says of one reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderView {
    /// A card is in the reader.
    pub card: bool,
    /// Its ATR is a SmartCard-HSM's.
    pub hsm_atr: bool,
}

/// The view of each of `readers`, in their order.
pub fn reader_views(pcsc: &Pcsc, readers: &[String]) -> Result<Vec<ReaderView>> {
    Ok(pcsc
        .card_atrs(readers)?
        .into_iter()
        .map(|atr| ReaderView {
            card: atr.is_some(),
            hsm_atr: atr.is_some_and(|a| is_smartcard_hsm_atr(&a)),
        })
        .collect())
}

/// Whether the slot holds a token: a SmartCard-HSM's ATR, or a card in the
/// reader and a token this module connected to (one recognised by its
/// applet whatever its ATR). A token another thread is using right now
/// counts as connected: its lock is not waited for.
pub fn token_present(view: ReaderView, token: &TokenRef) -> bool {
    if view.hsm_atr {
        return true;
    }
    view.card && token.try_lock().is_none_or(|t| t.is_some())
}

/// The slot lists size queries counted, per thread, until the call with a
/// buffer that follows.
#[derive(Default)]
pub struct Counted {
    lists: HashMap<u64, (bool, Vec<CK_SLOT_ID>)>,
}

/// More threads than this with a size query and no call with a buffer
/// after it: the oldest ones are forgotten (their next call looks afresh).
const MAX_COUNTED: usize = 256;

/// The calling thread, while it runs (a later thread may get the same
/// value: it then gets a list a size query counted moments before, which
/// is no worse than looking afresh).
#[allow(unsafe_code)]
fn this_thread() -> u64 {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as u64 }
}

impl Counted {
    /// Remembers the list a size query of this thread counted.
    pub fn put(&mut self, token_present: bool, list: Vec<CK_SLOT_ID>) {
        if self.lists.len() >= MAX_COUNTED {
            self.lists.clear();
        }
        self.lists.insert(this_thread(), (token_present, list));
    }

    /// The list this thread's last size query counted, if it asked for the
    /// same tokenPresent; it is handed out once.
    pub fn take(&mut self, token_present: bool) -> Option<Vec<CK_SLOT_ID>> {
        match self.lists.remove(&this_thread()) {
            Some((tp, list)) if tp == token_present => Some(list),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    #[test]
    fn a_counted_list_goes_to_the_next_buffer_call_of_its_thread_once() {
        let mut c = Counted::default();
        c.put(true, vec![1, 2]);
        assert_eq!(c.take(false), None, "another tokenPresent looks afresh");
        c.put(true, vec![1, 2]);
        assert_eq!(c.take(true), Some(vec![1, 2]));
        assert_eq!(c.take(true), None, "handed out once");
        c.put(false, vec![3]);
        let other = std::thread::scope(|s| s.spawn(|| c.take(false)).join().unwrap());
        assert_eq!(other, None, "another thread's size query is not this one's");
        assert_eq!(c.take(false), Some(vec![3]));
    }

    #[test]
    fn presence_rules() {
        let none: TokenRef = Arc::new(Mutex::new(None));
        let hsm = ReaderView {
            card: true,
            hsm_atr: true,
        };
        let other_card = ReaderView {
            card: true,
            hsm_atr: false,
        };
        assert!(token_present(hsm, &none));
        assert!(!token_present(other_card, &none));
        assert!(!token_present(ReaderView::default(), &none));
        // A token in use by another thread (its lock held) is present.
        let _busy = none.lock();
        assert!(token_present(other_card, &none));
        assert!(!token_present(ReaderView::default(), &none));
    }
}
