//! C_WaitForSlotEvent (PKCS#11 3.0 §5.5) over PC/SC reader status changes.
//!
//! The module remembers, per reader, whether a card was in it and
//! pcsc-lite's card event counter (the upper 16 bits of the reader's event
//! state), as of C_Initialize or the last event reported. An event is a
//! reader whose pair differs: a card inserted, removed, or removed and
//! inserted again between two calls. One call reports one slot; the next
//! call reports the next one. A new reader with a card in it is an event; a
//! new empty reader is not.
//!
//! A blocking wait holds no module lock. C_Finalize bumps [`GENERATION`]
//! and cancels the PC/SC context (SCardCancel), so the waiting thread
//! returns CKR_CRYPTOKI_NOT_INITIALIZED at once, as PKCS#11 3.0 §5.4 asks.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cryptoki_sys::*;
use pcsc::{ReaderState, State, PNP_NOTIFICATION};

use crate::core::state::{self, slot_id, with_module};
use crate::error::{fail, Result};
use crate::transport::pcsc::Pcsc;

/// Bumped by C_Finalize: a wait that began under another generation ends.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);

/// What the module last saw of each reader: (card present, event count).
pub type Seen = HashMap<String, (bool, u32)>;

/// How long one PC/SC wait lasts before the loop looks at [`GENERATION`]
/// again (a C_Finalize that races the start of a wait is caught by this).
const POLL: Duration = Duration::from_millis(500);

/// The readers' states as of now (asked with UNAWARE, so PC/SC answers
/// at once), the PnP pseudo-reader last; and the (present, count) pairs.
fn poll_states(pcsc: &Pcsc, readers: &[String]) -> Result<(Seen, Vec<ReaderState>)> {
    let mut names = Vec::with_capacity(readers.len());
    let mut states = Vec::with_capacity(readers.len() + 1);
    for r in readers {
        if let Ok(name) = CString::new(r.as_str()) {
            names.push(r.clone());
            states.push(ReaderState::new(name, State::UNAWARE));
        }
    }
    states.push(ReaderState::new(PNP_NOTIFICATION(), State::UNAWARE));
    match pcsc
        .context()
        .and_then(|ctx| ctx.get_status_change(Duration::ZERO, &mut states))
    {
        Ok(()) | Err(pcsc::Error::Timeout) => {}
        Err(e) => return Err(crate::transport::pcsc::map_err(e)),
    }
    let seen = names
        .into_iter()
        .zip(states.iter())
        .map(|(r, s)| {
            (
                r,
                (s.event_state().contains(State::PRESENT), s.event_count()),
            )
        })
        .collect();
    Ok((seen, states))
}

/// The current (present, event count) of each reader, without waiting.
pub fn snapshot(pcsc: &Pcsc, readers: &[String]) -> Result<Seen> {
    poll_states(pcsc, readers).map(|(seen, _)| seen)
}

/// Compares `now` with what the module saw; records and returns the first
/// reader that changed. A card gone or replaced ends its token's login and
/// sessions.
fn take_event(now: &Seen) -> Result<Option<CK_SLOT_ID>> {
    let changed = with_module(|m| {
        let mut names: Vec<&String> = now.keys().collect();
        names.sort();
        for r in names {
            let cur = now[r];
            let prev = m.seen.get(r).copied();
            if prev == Some(cur) {
                continue;
            }
            m.seen.insert(r.clone(), cur);
            if prev.is_none() && !cur.0 {
                continue;
            }
            return Ok(Some((slot_id(r), prev.is_some_and(|p| p.0))));
        }
        Ok(None)
    })?;
    Ok(changed.map(|(slot, was_present)| {
        if was_present {
            log::info!("slot {slot}: card removed or replaced");
            state::drop_token(slot);
        } else {
            log::info!("slot {slot}: card inserted");
        }
        slot
    }))
}

/// C_WaitForSlotEvent: the slot of the next event; CKR_NO_EVENT when not
/// blocking and nothing happened.
pub fn wait_for_slot_event(blocking: bool) -> Result<CK_SLOT_ID> {
    let generation = GENERATION.load(Ordering::SeqCst);
    let pcsc = with_module(|m| Ok(m.pcsc.clone()))?;
    loop {
        let readers = with_module(|m| {
            m.refresh_slots()?;
            Ok(m.slots
                .values()
                .map(|s| s.reader.clone())
                .collect::<Vec<_>>())
        })?;
        let (now, mut states) = poll_states(&pcsc, &readers)?;
        if let Some(slot) = take_event(&now)? {
            return Ok(slot);
        }
        if !blocking {
            return fail(CKR_NO_EVENT, "no slot event");
        }
        // Wait for anything to differ from what was just seen (the event
        // counts included, so a quick remove-and-insert is not missed).
        for st in states.iter_mut() {
            st.sync_current_state();
        }
        let r = pcsc
            .context()
            .and_then(|ctx| ctx.get_status_change(POLL, &mut states));
        if GENERATION.load(Ordering::SeqCst) != generation {
            return fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Finalize ended the wait");
        }
        match r {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::Cancelled) => {
                return fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Finalize ended the wait")
            }
            Err(pcsc::Error::UnknownReader) | Err(pcsc::Error::NoReadersAvailable) => {
                // A reader went away under the wait: look again.
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(crate::transport::pcsc::map_err(e)),
        }
    }
}
