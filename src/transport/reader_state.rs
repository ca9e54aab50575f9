//! What pcscd knows of the cards in its readers, read from the reader
//! states (SCardGetStatusChange, without waiting): no card handle is
//! opened and nothing is sent to a card. A SELECT would log out whoever
//! uses the card, and a connection can fail for a moment while another
//! process holds a transaction on it (pcscd refuses SCardStatus on a
//! reader locked by another handle), which made a card in use look absent.

use std::ffi::CString;
use std::time::Duration;

use pcsc::{ReaderState, State};

use super::pcsc::Pcsc;
use crate::error::Result;

impl Pcsc {
    /// The ATR of the card in each of `readers`, in their order: `None`
    /// for an empty reader, one with a mute card, or one pcscd no longer
    /// knows; empty for a card pcscd has not powered.
    pub fn card_atrs(&self, readers: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        match self.query_atrs(readers) {
            Err(pcsc::Error::UnknownReader) => {
                // A reader went away since it was listed: ask one by one.
                readers
                    .iter()
                    .map(|r| match self.query_atrs(std::slice::from_ref(r)) {
                        Ok(mut v) => Ok(v.pop().flatten()),
                        Err(pcsc::Error::UnknownReader) => Ok(None),
                        Err(e) => Err(self.fail(e)),
                    })
                    .collect()
            }
            r => r.map_err(|e| self.fail(e)),
        }
    }

    /// The ATR of the card in `reader` ([`Pcsc::card_atrs`]); `None` if
    /// there is none or pcscd cannot say.
    pub fn atr_of(&self, reader: &str) -> Option<Vec<u8>> {
        self.card_atrs(&[reader.to_string()]).ok()?.pop().flatten()
    }

    fn query_atrs(
        &self,
        readers: &[String],
    ) -> std::result::Result<Vec<Option<Vec<u8>>>, pcsc::Error> {
        let mut states: Vec<ReaderState> = Vec::with_capacity(readers.len());
        let mut named = Vec::with_capacity(readers.len());
        for r in readers {
            // A name with a NUL is no reader's: its slot is empty.
            let name = CString::new(r.as_str()).ok();
            named.push(name.is_some());
            if let Some(name) = name {
                states.push(ReaderState::new(name, State::UNAWARE));
            }
        }
        if !states.is_empty() {
            // UNAWARE: pcscd answers at once with the current states.
            match self
                .context()
                .and_then(|ctx| ctx.get_status_change(Duration::ZERO, &mut states))
            {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(e),
            }
        }
        let mut states = states.iter();
        Ok(named
            .into_iter()
            .map(|n| {
                let s = if n { states.next() } else { None }?;
                let ev = s.event_state();
                (ev.contains(State::PRESENT) && !ev.contains(State::MUTE)).then(|| s.atr().to_vec())
            })
            .collect())
    }
}
