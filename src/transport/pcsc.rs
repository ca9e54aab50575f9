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

use zeroize::{Zeroize, Zeroizing};

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

/// The module's PC/SC context (reader list, status changes); each card
/// connection has its own ([`Pcsc::connect`]).
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

    /// Connects (shared) to the card in `reader`, through a PC/SC context
    /// of the connection's own.
    ///
    /// pcsc-lite's client serialises the calls made through one context
    /// (one socket to pcscd, served by one pcscd thread): with one context
    /// for the module, a signature on one token waited for an exchange
    /// with another token to end, and two tokens signing from two threads
    /// went no faster than one. pcscd allows 200 contexts by default
    /// (`pcscd --max-thread`); the module uses one per connected token
    /// and one for the reader list.
    pub fn connect(&self, reader: &str) -> Result<PcscTransport> {
        let name = CString::new(reader).map_err(|_| Error::new(CKR_DEVICE_ERROR, "reader name"))?;
        self.context().map_err(|e| self.fail(e))?;
        let card = Context::establish(Scope::User)
            .and_then(|ctx| ctx.connect(&name, ShareMode::Shared, Protocols::ANY))
            .map_err(|e| self.fail(e))?;
        Ok(PcscTransport {
            card: Some(card),
            buf: Zeroizing::new(vec![0u8; RESPONSE_MAX]),
            loss: None,
            lost: self.lost.clone(),
        })
    }

    /// The context, for status-change waits; NoService without one.
    pub fn context(&self) -> std::result::Result<&Context, pcsc::Error> {
        self.ctx.as_ref().ok_or(pcsc::Error::NoService)
    }
}

/// The longest response: 65536 data bytes and the status word (an
/// extended Le of zero).
const RESPONSE_MAX: usize = 65538;

/// A connection to one card.
///
/// Dropped (C_Finalize, a token forgotten), it disconnects with
/// SCARD_LEAVE_CARD: the `pcsc` crate's own drop resets the card, which
/// would end every other application's session on it.
pub struct PcscTransport {
    /// Always `Some` until [`Drop`] takes it to disconnect.
    card: Option<Card>,
    /// Where responses land: kept for the connection's life, since a
    /// signature per exchange should not allocate and clear 64 KiB; each
    /// response is cleared from it once copied (responses carry derived
    /// secrets and decrypted data).
    buf: Zeroizing<Vec<u8>>,
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
    buf: &'a mut [u8],
    loss: &'a mut Option<Loss>,
    lost: &'a AtomicBool,
}

/// One exchange on `card`, the response copied out of `buf` and cleared
/// from it.
fn exchange(
    card: &Card,
    buf: &mut [u8],
    loss: &mut Option<Loss>,
    lost: &AtomicBool,
    apdu: &[u8],
) -> std::result::Result<Vec<u8>, (pcsc::Error, Error)> {
    let r = match card.transmit(apdu, buf) {
        Ok(r) => {
            let (out, n) = (r.to_vec(), r.len());
            buf[..n].zeroize();
            out
        }
        Err(e) => return Err((e, note(loss, lost, e))),
    };
    if r.len() < 2 {
        // Every answer ends with a status word; vpcd passes on what a card
        // that died mid-answer sent, and pcscd calls it success.
        *loss = (*loss).max(Some(Loss::Link));
        let e = Error::new(CKR_DEVICE_ERROR, "answer without a status word");
        return Err((pcsc::Error::CommDataLost, e));
    }
    Ok(r)
}

impl Link for PcscLink<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        exchange(self.card, self.buf, self.loss, self.lost, apdu).map_err(|(_, e)| e)
    }
}

/// One exchange as [`exchange`] answers it: the response, or the PC/SC
/// error with the module's error.
type Exchanged = std::result::Result<Vec<u8>, (pcsc::Error, Error)>;

/// The link of [`Transport::exchange_alone`] outside a transaction: one
/// exchange through `exchange`, then it asks for a transaction
/// (`handover`) instead of sending a second command that another
/// application's could precede.
struct AloneLink<X> {
    exchange: X,
    sent: bool,
    handover: bool,
}

impl<X: FnMut(&[u8]) -> Exchanged> AloneLink<X> {
    fn new(exchange: X) -> Self {
        AloneLink {
            exchange,
            sent: false,
            handover: false,
        }
    }
}

impl<X: FnMut(&[u8]) -> Exchanged> Link for AloneLink<X> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        if self.sent {
            self.handover = true;
            return Err(Error::new(
                CKR_DEVICE_ERROR,
                "a second command needs a transaction",
            ));
        }
        match (self.exchange)(apdu) {
            Ok(r) => {
                self.sent = true;
                Ok(r)
            }
            // Another application holds the card's transaction.
            // pcsc-lite 1.9.9 holds the command until that transaction
            // ends (tests/module_events.rs); a PC/SC stack that refuses
            // it instead has sent nothing to the card, and the command
            // then waits for a transaction of its own.
            Err((pcsc::Error::SharingViolation, e)) => {
                self.handover = true;
                Err(e)
            }
            Err((_, e)) => Err(e),
        }
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

impl PcscTransport {
    /// The connection's card, response buffer and loss records, each
    /// borrowed on its own; CKR_DEVICE_ERROR once closed.
    fn parts(&mut self) -> Result<(&mut Card, &mut [u8], &mut Option<Loss>, &AtomicBool)> {
        let card = self
            .card
            .as_mut()
            .ok_or_else(|| Error::new(CKR_DEVICE_ERROR, "connection closed"))?;
        Ok((card, &mut self.buf, &mut self.loss, &self.lost))
    }
}

impl Transport for PcscTransport {
    fn transact<R>(&mut self, f: impl FnOnce(&mut dyn Link) -> Result<R>) -> Result<R> {
        let (card, buf, loss, lost) = self.parts()?;
        let tx = card.transaction().map_err(|e| note(loss, lost, e))?;
        let r = f(&mut PcscLink {
            card: &tx,
            buf,
            loss,
            lost,
        });
        let _ = tx.end(Disposition::LeaveCard);
        r
    }

    fn exchange_alone<R>(&mut self, mut f: impl FnMut(&mut dyn Link) -> Result<R>) -> Result<R> {
        let (card, buf, loss, lost) = self.parts()?;
        let mut alone = AloneLink::new(|apdu: &[u8]| exchange(card, buf, loss, lost, apdu));
        let r = f(&mut alone);
        if alone.handover {
            return self.transact(f);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many commands reached the "card".
    type Sent = std::rc::Rc<std::cell::Cell<usize>>;

    /// An [`AloneLink`] over scripted answers, and its command count.
    fn alone(answers: Vec<Exchanged>) -> (AloneLink<impl FnMut(&[u8]) -> Exchanged>, Sent) {
        let sent = Sent::default();
        let count = sent.clone();
        let mut answers = answers.into_iter();
        let link = AloneLink::new(move |_: &[u8]| {
            count.set(count.get() + 1);
            answers.next().expect("a scripted answer")
        });
        (link, sent)
    }

    fn failure(e: pcsc::Error) -> Exchanged {
        Err((e, map_err(e)))
    }

    #[test]
    fn a_lone_command_goes_through_without_a_transaction() {
        let (mut l, sent) = alone(vec![Ok(vec![0x90, 0x00])]);
        assert_eq!(l.transmit(&[0x80, 0x68]).unwrap(), [0x90, 0x00]);
        assert!(!l.handover);
        assert_eq!(sent.get(), 1);
    }

    #[test]
    fn a_second_command_is_not_sent_and_asks_for_a_transaction() {
        let (mut l, sent) = alone(vec![Ok(vec![0x61, 0x10]), Ok(vec![0x90, 0x00])]);
        l.transmit(&[0x80, 0x68]).unwrap();
        assert!(l.transmit(&[0x00, 0xC0]).is_err());
        assert!(l.handover);
        assert_eq!(
            sent.get(),
            1,
            "the GET RESPONSE must wait for a transaction"
        );
    }

    #[test]
    fn a_sharing_violation_asks_for_a_transaction_and_other_errors_do_not() {
        let (mut l, _) = alone(vec![failure(pcsc::Error::SharingViolation)]);
        assert!(l.transmit(&[0x80, 0x68]).is_err());
        assert!(l.handover);
        let (mut l, _) = alone(vec![failure(pcsc::Error::RemovedCard)]);
        assert_eq!(
            l.transmit(&[0x80, 0x68]).unwrap_err().rv,
            CKR_DEVICE_REMOVED
        );
        assert!(!l.handover, "a removed card is not retried");
    }

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
