//! The module instance: PC/SC context, slots, sessions.
//!
//! Lock order: [`MODULE`] first, then a token's own mutex; card I/O happens
//! with only the token's mutex held (the module lock is released first), so
//! two tokens work in parallel and a slow card never blocks the tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki_sys::*;
use parking_lot::Mutex;

use crate::core::operation::Ops;
use crate::core::token::{Login, Token};
use crate::error::{fail, Error, Result};
use crate::transport::pcsc::{Loss, Pcsc};

/// The module, between C_Initialize and C_Finalize.
pub static MODULE: ModuleLock = ModuleLock(std::sync::Mutex::new(None));

/// The module's lock: a std mutex, not parking_lot's, since the fork
/// handlers unlock it in a forked child (`core/fork.rs`), where an unlock
/// of parking_lot's could hand it over to a thread of the parent that the
/// child does not have.
pub struct ModuleLock(std::sync::Mutex<Option<Module>>);

impl ModuleLock {
    /// Locks the module, poisoned or not (as parking_lot's mutex did: a
    /// panic is caught at the C boundary and the tables stay usable).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Option<Module>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A shared token.
pub type TokenRef = Arc<Mutex<Option<Token>>>;

/// One PC/SC reader; never removed while the module is loaded.
pub struct Slot {
    /// PC/SC reader name.
    pub reader: String,
    /// The token, once a SmartCard-HSM answered in it.
    pub token: TokenRef,
}

/// One session.
pub struct Session {
    /// Its slot.
    pub slot: CK_SLOT_ID,
    /// CKF_RW_SESSION was asked for.
    pub rw: bool,
    /// Its operations: they end with it.
    pub ops: Ops,
}

/// Module state.
pub struct Module {
    /// PC/SC.
    pub pcsc: Arc<Pcsc>,
    /// The process that initialised (fork detection).
    pub pid: u32,
    /// Slots by id.
    pub slots: BTreeMap<CK_SLOT_ID, Slot>,
    /// Every slot id once, in the order C_GetSlotList hands them out: the
    /// readers in pcscd's order (SCardListReaders), then those gone since.
    pub order: Vec<CK_SLOT_ID>,
    /// Sessions by handle.
    pub sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    /// The settings (config file, x-init-reserved).
    pub config: Arc<crate::settings::Config>,
    /// What C_WaitForSlotEvent last saw of each reader.
    pub seen: crate::core::slot_event::Seen,
    /// The slot lists C_GetSlotList size queries counted.
    pub counted: crate::core::presence::Counted,
}

/// Session handles are unique for the life of the process, across
/// C_Finalize / C_Initialize: a stale handle is CKR_SESSION_HANDLE_INVALID,
/// never another application thread's new session.
static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh session handle.
pub fn new_session_handle() -> CK_SESSION_HANDLE {
    NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as CK_SESSION_HANDLE
}

/// A stable slot id for a reader name: FNV-1a, 31 bits.
pub fn slot_id(reader: &str) -> CK_SLOT_ID {
    let mut h: u32 = 0x811C_9DC5;
    for b in reader.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7FFF_FFFF) as CK_SLOT_ID
}

impl Module {
    /// Adds slots for readers that appeared.
    pub fn refresh_slots(&mut self) -> Result<()> {
        self.revive();
        let readers = match self.pcsc.readers() {
            Err(_) if self.pcsc.is_lost() && self.revive() => self.pcsc.readers()?,
            r => r?,
        };
        let mut order = Vec::with_capacity(self.slots.len().max(readers.len()));
        for reader in readers {
            let id = slot_id(&reader);
            if !order.contains(&id) {
                order.push(id);
            }
            self.slots.entry(id).or_insert_with(|| Slot {
                reader,
                token: Arc::new(Mutex::new(None)),
            });
        }
        // Tools that take the first slot by default (pkcs11-tool without
        // --slot) must get the first reader, as with OpenSC: the ids are
        // hashes, so their order says nothing.
        for id in &self.order {
            if !order.contains(id) {
                order.push(*id);
            }
        }
        self.order = order;
        Ok(())
    }

    /// The slots in [`Module::order`].
    pub fn ordered_slots(&self) -> impl Iterator<Item = (CK_SLOT_ID, &Slot)> {
        self.order
            .iter()
            .filter_map(|id| self.slots.get(id).map(|s| (*id, s)))
    }

    /// Establishes the PC/SC context again once pcscd went away under it
    /// (restarted, say): a context never recovers by itself. Every token
    /// and session goes with the old context, since every card connection
    /// died with pcscd and its cards were powered down. Slots stay: their
    /// ids come from the reader names. Returns whether a new context is in
    /// place; while pcscd is still down, the next call tries again.
    pub fn revive(&mut self) -> bool {
        if !self.pcsc.is_lost() {
            return false;
        }
        self.forget_tokens();
        let Ok(pcsc) = Pcsc::establish() else {
            return false;
        };
        log::warn!("pcscd went away: connected to it again; every session was closed");
        self.pcsc = Arc::new(pcsc);
        true
    }

    /// Forgets every token and every session (their operations with them).
    fn forget_tokens(&mut self) {
        self.sessions.clear();
        for s in self.slots.values() {
            *s.token.lock() = None;
        }
    }
}

/// Runs `f` on the module; CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize
/// and in a forked child that did not initialise.
pub fn with_module<R>(f: impl FnOnce(&mut Module) -> Result<R>) -> Result<R> {
    let mut g = MODULE.lock();
    match g.as_mut() {
        Some(m) if m.pid == std::process::id() => f(m),
        Some(_) => {
            // A forked child (the fork handlers did not run: a raw clone):
            // the parent's PC/SC handles are not ours to release.
            crate::core::fork::forget_parents(&mut g);
            fail(CKR_CRYPTOKI_NOT_INITIALIZED, "forked: call C_Initialize")
        }
        None => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "not initialised"),
    }
}

/// The token of a slot, connecting to the card if needed; CKR_SLOT_ID_INVALID
/// for an unknown slot, CKR_TOKEN_NOT_PRESENT / NOT_RECOGNIZED otherwise.
pub fn slot_token(slot: CK_SLOT_ID) -> Result<(TokenRef, String, Arc<Pcsc>)> {
    with_module(|m| {
        m.revive();
        let s = m
            .slots
            .get(&slot)
            .ok_or(Error::new(CKR_SLOT_ID_INVALID, "unknown slot"))?;
        Ok((s.token.clone(), s.reader.clone(), m.pcsc.clone()))
    })
}

/// Locks the token of `slot`, connecting first if there is none yet.
pub fn connected(slot: CK_SLOT_ID) -> Result<TokenRef> {
    match connect_once(slot) {
        // pcscd went away (restarted, say) and nothing had noticed: connect
        // again through a new context, once. (Not under the token's lock:
        // reviving forgets every token.)
        Err((_, true)) if with_module(|m| Ok(m.revive()))? => connect_once(slot).map_err(|e| e.0),
        r => r.map_err(|e| e.0),
    }
}

/// [`connected`] through the module's context as it is; a failure comes
/// with whether the context turned out to be dead.
fn connect_once(slot: CK_SLOT_ID) -> std::result::Result<TokenRef, (Error, bool)> {
    let (token, reader, pcsc) = slot_token(slot).map_err(|e| (e, false))?;
    {
        // Under the token's lock: two threads must not both SELECT (a
        // SELECT is a logout, docs/protocol.md §2.3).
        let mut t = token.lock();
        if t.is_none() {
            *t = Some(Token::connect(&pcsc, &reader).map_err(|e| (e, pcsc.is_lost()))?);
        }
    }
    Ok(token)
}

/// Forgets a token whose card went away or was reset, and every session
/// on its slot with its operations (they get CKR_SESSION_HANDLE_INVALID
/// from now on).
pub fn drop_token(slot: CK_SLOT_ID) {
    if let Ok((token, _, _)) = slot_token(slot) {
        *token.lock() = None;
    }
    forget_sessions(slot);
}

/// Closes every session of `slot`, their operations with them.
fn forget_sessions(slot: CK_SLOT_ID) {
    let _ = with_module(|m| {
        m.sessions.retain(|_, s| s.slot != slot);
        Ok(())
    });
}

/// What a failed call left of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// The token, as it was.
    Token,
    /// Nothing: the card went away, or was reset, or an exchange with it
    /// failed, after which the card's state (its login above all) is
    /// unknown, and the card in the reader may not even be the same one.
    Nothing,
    /// Nothing of any token: pcscd went away.
    NoService,
}

/// Runs `f` on the connected token of `slot`.
///
/// A card removed or reset, an exchange that failed on the way, or pcscd
/// gone ends the token: its sessions are closed, its login, objects, PKA
/// progress and session objects forgotten, and the call returns
/// CKR_DEVICE_REMOVED (CKR_TOKEN_NOT_PRESENT when PC/SC already says the
/// reader is empty) whatever `f` made of it. The next use connects afresh
/// (after pcscd came back, through a new context: [`Module::revive`]).
pub fn on_token<R>(slot: CK_SLOT_ID, f: impl FnOnce(&mut Token) -> Result<R>) -> Result<R> {
    let token = connected(slot)?;
    let (r, left) = {
        let mut g = token.lock();
        let t = g
            .as_mut()
            .ok_or(Error::new(CKR_TOKEN_NOT_PRESENT, "no card"))?;
        let _ = t.transport.inner.take_loss();
        let r = f(t);
        let left = match t.transport.inner.take_loss() {
            Some(Loss::Service) => Left::NoService,
            Some(Loss::Card | Loss::Link) => Left::Nothing,
            None => match &r {
                Err(e) if e.rv == CKR_DEVICE_REMOVED || e.rv == CKR_TOKEN_NOT_PRESENT => {
                    Left::Nothing
                }
                Err(e) if e.rv == CKR_USER_NOT_LOGGED_IN && t.login != Login::None => {
                    // The card forgot the login without a reset: another
                    // application selected the applet (a SELECT is a logout).
                    log::warn!("slot {slot}: the card no longer has our login (another application selected the applet)");
                    t.login = Login::None;
                    Left::Token
                }
                _ => Left::Token,
            },
        };
        if left != Left::Token {
            // Under the token's lock: no thread uses the dead connection
            // after this one.
            *g = None;
        }
        (r, left)
    };
    match left {
        Left::Token => r,
        Left::Nothing => {
            let why = r.as_ref().err().map_or("a failed exchange", |e| e.origin);
            log::warn!("slot {slot}: the card went away, was reset, or stopped answering ({why}): its sessions are closed");
            forget_sessions(slot);
            Err(match r {
                Err(e) if e.rv == CKR_TOKEN_NOT_PRESENT => e,
                _ => Error::new(CKR_DEVICE_REMOVED, "card removed, reset or not answering"),
            })
        }
        Left::NoService => {
            log::warn!("slot {slot}: pcscd went away: every session is closed");
            let _ = with_module(|m| {
                m.revive();
                Ok(())
            });
            Err(Error::new(CKR_DEVICE_REMOVED, "pcscd went away"))
        }
    }
}

/// The slot of a session (CKR_SESSION_HANDLE_INVALID if unknown).
pub fn session_slot(session: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, bool)> {
    with_module(|m| {
        m.sessions
            .get(&session)
            .map(|s| (s.slot, s.rw))
            .ok_or(Error::new(CKR_SESSION_HANDLE_INVALID, "unknown session"))
    })
}
