//! How APDUs reach a card. The card driver is written against [`Link`]
//! and [`Transport`], so it runs over PC/SC in the module and over a
//! recorded exchange in its unit tests.

pub mod pcsc;
pub mod reader_state;

use crate::error::Result;

/// One exchange: a command APDU in, the response (data ‖ SW1 SW2) out.
pub trait Link {
    /// Sends `apdu` and returns the response.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>>;
}

/// A connection to one card.
pub trait Transport: Send {
    /// Runs `f` with the card to itself: on PC/SC, inside one transaction,
    /// so no other process's APDU comes between those of one operation.
    fn transact<R>(&mut self, f: impl FnOnce(&mut dyn Link) -> Result<R>) -> Result<R>;

    /// Runs `f`, which sends one command needing nothing an earlier
    /// command set up on the card (a SIGN or DECIPHER naming its key), as
    /// a lone exchange: one command is atomic at pcscd, and a transaction
    /// around it costs two more round trips to pcscd per signature. Where
    /// the exchange cannot be alone (another application holds the card's
    /// transaction, or `f` needs a second command such as GET RESPONSE),
    /// `f` runs again inside [`Transport::transact`]; a second run of a
    /// SIGN or DECIPHER is harmless.
    fn exchange_alone<R>(&mut self, f: impl FnMut(&mut dyn Link) -> Result<R>) -> Result<R> {
        self.transact(f)
    }
}
