//! PC/SC transport: the `pcsc` crate over pcsc-lite.
//!
//! Errors: a card that was reset (by another process, or a power cycle) or
//! removed, or whose reader went away, is `CKR_DEVICE_REMOVED` — its login
//! is gone; an empty reader is `CKR_TOKEN_NOT_PRESENT`; pcscd missing is
//! `CKR_DEVICE_ERROR`; anything else from PC/SC too.
//!
//! A connection also remembers the worst [`Loss`] it met, for the core to
//! decide what is left of the token: pcsc-lite reports a pulled card as
//! `SCARD_E_NOT_TRANSACTED` until its next poll of the reader, and a card
//! pulled and plugged back between two polls is never reported at all (the
//! old handle then reaches the new card, which has no login and no applet
//! selected), so an exchange that failed is all the module may ever learn.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cryptoki_sys::{CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT};
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

use zeroize::Zeroizing;

use super::{Link, Transport};
use crate::error::{Error, Result};

/// Maps a PC/SC error to the module's error.
pub fn map_err(e: pcsc::Error) -> Error {
    use pcsc::Error::*;
    match e {
        ResetCard | RemovedCard => Error::new(CKR_DEVICE_REMOVED, "card reset or removed"),
        UnknownReader | ReaderUnavailable => Error::new(CKR_DEVICE_REMOVED, "reader gone"),
        NoSmartcard | UnpoweredCard | UnresponsiveCard => {
            Error::new(CKR_TOKEN_NOT_PRESENT, "no card in the reader")
        }
        NoService | ServiceStopped | Shutdown | InvalidHandle | CommError | SecurityViolation => {
            Error::new(CKR_DEVICE_ERROR, "pcscd went away")
        }
        _ => {
            log::debug!("PC/SC: {e} ({e:?})");
            Error::new(CKR_DEVICE_ERROR, "PC/SC failure")
        }
    }
}

/// What a failed PC/SC call on a connection says about the card, worst
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Loss {
    /// An exchange failed (no answer, or an answer without a status
    /// word): whether the card ran the command, and whether it is the same
    /// card with the same state afterwards, is unknown.
    Link,
    /// The card was removed or reset, or its reader went away.
    Card,
    /// pcscd went away: the context and every connection are dead.
    Service,
}

/// The [`Loss`] a PC/SC error on a connection means; `None` for errors
/// that say nothing about the card (a bad argument, a short buffer…).
pub fn loss_of(e: pcsc::Error) -> Option<Loss> {
    use pcsc::Error::*;
    match e {
        // What pcsc-lite's client answers once pcscd is gone (its socket
        // closed: CommError, NoService) or going (the handles it no longer
        // knows: SecurityViolation, InvalidHandle).
        NoService | ServiceStopped | Shutdown | InvalidHandle | CommError | SecurityViolation => {
            Some(Loss::Service)
        }
        ResetCard | RemovedCard | NoSmartcard | UnpoweredCard | UnresponsiveCard
        | UnknownReader | ReaderUnavailable | NoReadersAvailable => Some(Loss::Card),
        NotTransacted | CommDataLost | UnknownError | InternalError | Timeout | WaitedTooLong
        | ProtoMismatch | NotReady | SystemCancelled => Some(Loss::Link),
        _ => None,
    }
}

/// Whether `pattern` names the reader `name`: a glob if it has `*`, `?`
/// or `[`, else any part of the name. The module's settings and
/// `picohsm-tool --reader` choose readers by this one rule.
pub fn reader_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?', '[']) {
        glob::Pattern::new(pattern).is_ok_and(|p| p.matches(name))
    } else {
        name.contains(pattern)
    }
}

/// A PC/SC context (one per module instance).
pub struct Pcsc {
    /// None when pcscd could not be reached at C_Initialize (not running,
    /// not installed): the module then has no readers until it can
    /// ([`Pcsc::unreachable`]).
    ctx: Option<Context>,
    /// Set once pcscd was found gone, by this context or a connection made
    /// through it: the context stays dead even when pcscd is back, and
    /// must be established again.
    lost: Arc<AtomicBool>,
}

impl Pcsc {
    /// Connects to pcscd.
    pub fn establish() -> Result<Pcsc> {
        Context::establish(Scope::User)
            .map(|ctx| Pcsc {
                ctx: Some(ctx),
                lost: Arc::new(AtomicBool::new(false)),
            })
            .map_err(|_| Error::new(CKR_DEVICE_ERROR, "pcscd is not reachable"))
    }

    /// No context: pcscd was not reachable. It lists no readers, as a
    /// machine without pcscd has none, and counts as lost, so the module
    /// tries to connect again at every slot listing and picks pcscd up
    /// once it runs (`Module::revive`). A module that every p11-kit-aware
    /// program loads must not fail C_Initialize for want of pcscd.
    pub fn unreachable() -> Pcsc {
        Pcsc {
            ctx: None,
            lost: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether pcscd was reached (a context exists, possibly lost since).
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    /// Whether pcscd went away under this context (see [`Pcsc::establish`]).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Notes what `e` says about pcscd, and maps it.
    pub(super) fn fail(&self, e: pcsc::Error) -> Error {
        if loss_of(e) == Some(Loss::Service) {
            self.lost.store(true, Ordering::SeqCst);
        }
        map_err(e)
    }

    /// The names of the readers pcscd knows (empty if none).
    pub fn readers(&self) -> Result<Vec<String>> {
        let Some(ctx) = &self.ctx else {
            return Ok(Vec::new());
        };
        match ctx.list_readers_owned() {
            Ok(r) => Ok(r
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Connects (shared) to the card in `reader`.
    pub fn connect(&self, reader: &str) -> Result<PcscTransport> {
        let name = CString::new(reader).map_err(|_| Error::new(CKR_DEVICE_ERROR, "reader name"))?;
        let card = self
            .context()
            .and_then(|ctx| ctx.connect(&name, ShareMode::Shared, Protocols::ANY))
            .map_err(|e| self.fail(e))?;
        Ok(PcscTransport {
            card: Some(card),
            loss: None,
            lost: self.lost.clone(),
        })
    }

    /// The context, for status-change waits; NoService without one.
    pub fn context(&self) -> std::result::Result<&Context, pcsc::Error> {
        self.ctx.as_ref().ok_or(pcsc::Error::NoService)
    }
}

/// A connection to one card.
///
/// Dropped (C_Finalize, a token forgotten), it disconnects with
/// SCARD_LEAVE_CARD: the `pcsc` crate's own drop resets the card, which
/// would end every other application's session on it.
pub struct PcscTransport {
    /// Always `Some` until [`Drop`] takes it to disconnect.
    card: Option<Card>,
    /// The worst loss met since [`PcscTransport::take_loss`].
    loss: Option<Loss>,
    /// The context's flag: set on a [`Loss::Service`].
    lost: Arc<AtomicBool>,
}

/// Records what `e` says about the card in `loss` (and pcscd in `lost`).
fn note(loss: &mut Option<Loss>, lost: &AtomicBool, e: pcsc::Error) -> Error {
    if let Some(l) = loss_of(e) {
        if l == Loss::Service {
            lost.store(true, Ordering::SeqCst);
        }
        *loss = (*loss).max(Some(l));
    }
    map_err(e)
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            if let Err((card, _)) = card.disconnect(Disposition::LeaveCard) {
                // The handle is already dead (card removed, pcscd gone); do
                // not let the crate's drop send a reset after all.
                std::mem::forget(card);
            }
        }
    }
}

struct PcscLink<'a> {
    card: &'a Card,
    /// Responses carry derived secrets (ECDH) and decrypted data.
    buf: Zeroizing<Vec<u8>>,
    loss: &'a mut Option<Loss>,
    lost: &'a AtomicBool,
}

impl Link for PcscLink<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        let r = match self.card.transmit(apdu, &mut self.buf) {
            Ok(r) => r,
            Err(e) => return Err(note(self.loss, self.lost, e)),
        };
        if r.len() < 2 {
            // Every answer ends with a status word; vpcd passes on what
            // a card that died mid-answer sent, and pcscd calls it success.
            *self.loss = (*self.loss).max(Some(Loss::Link));
            return Err(Error::new(CKR_DEVICE_ERROR, "answer without a status word"));
        }
        Ok(r.to_vec())
    }
}

impl PcscTransport {
    fn status(&mut self) -> Result<pcsc::CardStatusOwned> {
        let card = self
            .card
            .as_ref()
            .ok_or_else(|| Error::new(CKR_DEVICE_ERROR, "connection closed"))?;
        card.status2_owned()
            .map_err(|e| note(&mut self.loss, &self.lost, e))
    }

    /// The worst [`Loss`] met since the last call, and forgets it.
    pub fn take_loss(&mut self) -> Option<Loss> {
        self.loss.take()
    }

    /// The ATR of the card.
    pub fn atr(&mut self) -> Result<Vec<u8>> {
        let st = self.status()?;
        Ok(st.atr().to_vec())
    }

    /// The reader's name as PC/SC reports it.
    pub fn reader_names(&mut self) -> Result<Vec<String>> {
        let st = self.status()?;
        Ok(st
            .reader_names()
            .iter()
            .map(|c: &CString| CStr::to_string_lossy(c).into_owned())
            .collect())
    }
}

impl Transport for PcscTransport {
    fn transact<R>(&mut self, f: impl FnOnce(&mut dyn Link) -> Result<R>) -> Result<R> {
        let PcscTransport { card, loss, lost } = self;
        let card = card
            .as_mut()
            .ok_or_else(|| Error::new(CKR_DEVICE_ERROR, "connection closed"))?;
        let tx = card.transaction().map_err(|e| note(loss, lost, e))?;
        let mut link = PcscLink {
            card: &tx,
            buf: Zeroizing::new(vec![0u8; 65538]),
            loss,
            lost,
        };
        let r = f(&mut link);
        let _ = tx.end(Disposition::LeaveCard);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_exchange_is_a_loss_and_a_bad_argument_is_not() {
        assert_eq!(loss_of(pcsc::Error::NotTransacted), Some(Loss::Link));
        assert_eq!(loss_of(pcsc::Error::CommDataLost), Some(Loss::Link));
        assert_eq!(loss_of(pcsc::Error::CommError), Some(Loss::Service));
        assert_eq!(loss_of(pcsc::Error::RemovedCard), Some(Loss::Card));
        assert_eq!(loss_of(pcsc::Error::ResetCard), Some(Loss::Card));
        assert_eq!(loss_of(pcsc::Error::NoSmartcard), Some(Loss::Card));
        assert_eq!(loss_of(pcsc::Error::ReaderUnavailable), Some(Loss::Card));
        assert_eq!(loss_of(pcsc::Error::NoService), Some(Loss::Service));
        assert_eq!(loss_of(pcsc::Error::InvalidHandle), Some(Loss::Service));
        assert_eq!(loss_of(pcsc::Error::InsufficientBuffer), None);
        assert_eq!(loss_of(pcsc::Error::InvalidParameter), None);
        assert!(Loss::Link < Loss::Card && Loss::Card < Loss::Service);
        assert_eq!(map_err(pcsc::Error::ResetCard).rv, CKR_DEVICE_REMOVED);
        assert_eq!(map_err(pcsc::Error::NoSmartcard).rv, CKR_TOKEN_NOT_PRESENT);
        assert_eq!(map_err(pcsc::Error::NoService).rv, CKR_DEVICE_ERROR);
    }
}
