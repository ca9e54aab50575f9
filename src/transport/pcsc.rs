//! PC/SC transport: the `pcsc` crate over pcsc-lite.
//!
//! Errors: a card that was reset (by another process, or a power cycle) or
//! removed is `CKR_DEVICE_REMOVED` — its login is gone; pcscd missing is
//! `CKR_DEVICE_ERROR`; anything else from PC/SC too.

use std::ffi::{CStr, CString};

use cryptoki_sys::{CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT};
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

use zeroize::Zeroizing;

use super::{Link, Transport};
use crate::error::{Error, Result};

/// Maps a PC/SC error to the module's error.
pub fn map_err(e: pcsc::Error) -> Error {
    match e {
        pcsc::Error::ResetCard | pcsc::Error::RemovedCard => {
            Error::new(CKR_DEVICE_REMOVED, "card reset or removed")
        }
        pcsc::Error::NoSmartcard | pcsc::Error::UnpoweredCard | pcsc::Error::UnresponsiveCard => {
            Error::new(CKR_TOKEN_NOT_PRESENT, "no card in the reader")
        }
        _ => Error::new(CKR_DEVICE_ERROR, "PC/SC failure"),
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
    ctx: Context,
}

impl Pcsc {
    /// Connects to pcscd.
    pub fn establish() -> Result<Pcsc> {
        Context::establish(Scope::User)
            .map(|ctx| Pcsc { ctx })
            .map_err(|_| Error::new(CKR_DEVICE_ERROR, "pcscd is not reachable"))
    }

    /// The names of the readers pcscd knows (empty if none).
    pub fn readers(&self) -> Result<Vec<String>> {
        match self.ctx.list_readers_owned() {
            Ok(r) => Ok(r
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Connects (shared) to the card in `reader`.
    pub fn connect(&self, reader: &str) -> Result<PcscTransport> {
        let name = CString::new(reader).map_err(|_| Error::new(CKR_DEVICE_ERROR, "reader name"))?;
        let card = self
            .ctx
            .connect(&name, ShareMode::Shared, Protocols::ANY)
            .map_err(map_err)?;
        Ok(PcscTransport { card: Some(card) })
    }

    /// The context, for status-change waits.
    pub fn context(&self) -> &Context {
        &self.ctx
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
}

impl Link for PcscLink<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        let r = self.card.transmit(apdu, &mut self.buf).map_err(map_err)?;
        Ok(r.to_vec())
    }
}

impl PcscTransport {
    fn card(&self) -> Result<&Card> {
        self.card
            .as_ref()
            .ok_or_else(|| Error::new(CKR_DEVICE_ERROR, "connection closed"))
    }

    /// The ATR of the card.
    pub fn atr(&self) -> Result<Vec<u8>> {
        let st = self.card()?.status2_owned().map_err(map_err)?;
        Ok(st.atr().to_vec())
    }

    /// The reader's name as PC/SC reports it.
    pub fn reader_names(&self) -> Result<Vec<String>> {
        let st = self.card()?.status2_owned().map_err(map_err)?;
        Ok(st
            .reader_names()
            .iter()
            .map(|c: &CString| CStr::to_string_lossy(c).into_owned())
            .collect())
    }
}

impl Transport for PcscTransport {
    fn transact<R>(&mut self, f: impl FnOnce(&mut dyn Link) -> Result<R>) -> Result<R> {
        let card = self
            .card
            .as_mut()
            .ok_or_else(|| Error::new(CKR_DEVICE_ERROR, "connection closed"))?;
        let tx = card.transaction().map_err(map_err)?;
        let mut link = PcscLink {
            card: &tx,
            buf: Zeroizing::new(vec![0u8; 65538]),
        };
        let r = f(&mut link);
        let _ = tx.end(Disposition::LeaveCard);
        r
    }
}
