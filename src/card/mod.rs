//! The SmartCard-HSM card driver: [`Card`], one method per command of
//! docs/protocol.md, for the module and `picohsm-tool` alike.
//!
//! Requests are built and answers parsed with `picohsm_wire::cmd`, the
//! definitions the card itself uses. A refusal is a [`CardError`] that
//! keeps the command and its status word; [`CardError::rv`] is the one
//! table that turns it into a CK_RV.
//!
//! Files: [`files`] (applet, EFs, token info), [`pin`], [`keys`]
//! (generation, signing, deciphering, the key listing), [`pka`]
//! (Public Key Authentication), [`pkcs15`] and [`x509`] (what the files
//! hold).

pub mod error;
pub mod files;
pub mod keys;
pub mod pin;
pub mod pka;
pub use picohsm_wire::pkcs15;
pub mod read_cache;
pub mod x509;

use cryptoki_sys::CKR_DEVICE_ERROR;
use picohsm_wire::cmd::{self, Apdu};
use picohsm_wire::sw::StatusWord;

pub use error::{rv_of, sw_to_rv, CardError, CardResult};
pub use picohsm_wire::cmd::device::{AppletInfo, InitParams, Version};
pub use picohsm_wire::cmd::pin::PinState;
pub use picohsm_wire::cmd::pka::Status as PkaStatus;

use crate::error::{Error, Result};
use crate::transport::Link;

/// The user PIN reference, for callers that do not import picohsm-wire.
pub const USER_PIN: u8 = picohsm_wire::codes::pin_ref::USER;

/// The most response bytes one command may gather through GET RESPONSE, and
/// the most GET RESPONSEs: a card that keeps answering `61xx` (with data or
/// without) is broken, not a long answer.
const MAX_RESPONSE: usize = 65536 + 256;
const MAX_GET_RESPONSES: usize = 4096;

/// Sends one APDU, following `61xx` with GET RESPONSE (docs/protocol.md
/// §1.2); returns the data and the final status word.
pub fn exchange(link: &mut dyn Link, apdu: &[u8]) -> Result<(Vec<u8>, StatusWord)> {
    let short = Error::new(CKR_DEVICE_ERROR, "short response");
    let mut r = link.transmit(apdu)?;
    let mut sw = StatusWord::from_response(&r).ok_or(short)?;
    r.truncate(r.len() - 2);
    let mut rounds = 0;
    while sw.sw1() == StatusWord::more_data(0).sw1() {
        rounds += 1;
        if r.len() > MAX_RESPONSE || rounds > MAX_GET_RESPONSES {
            return Err(Error::new(
                CKR_DEVICE_ERROR,
                "response longer than any command's",
            ));
        }
        let mut more = link.transmit(cmd::get_response(sw.sw2()).bytes())?;
        sw = StatusWord::from_response(&more).ok_or(short)?;
        more.truncate(more.len() - 2);
        r.extend_from_slice(&more);
    }
    Ok((r, sw))
}

/// A card reached through a [`Link`]: a method per command.
pub struct Card<'a> {
    link: &'a mut dyn Link,
}

impl<'a> Card<'a> {
    /// The card behind `link` (within one transaction, usually).
    pub fn new(link: &'a mut dyn Link) -> Card<'a> {
        Card { link }
    }

    /// Sends `apdu`; returns the data and the status word, whatever it is.
    pub fn exchange(&mut self, apdu: &Apdu) -> CardResult<(Vec<u8>, StatusWord)> {
        Ok(exchange(self.link, apdu.bytes())?)
    }

    /// Sends `apdu`; anything but `9000`/`9001` is [`CardError::Status`].
    pub fn ok(&mut self, apdu: &Apdu) -> CardResult<Vec<u8>> {
        let (d, sw) = self.exchange(apdu)?;
        if sw.is_ok() {
            Ok(d)
        } else {
            Err(CardError::Status {
                command: apdu.cmd,
                sw,
            })
        }
    }
}

/// Test doubles shared by the driver's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A link that answers each command with the next scripted response,
    /// checking that the command is the one expected.
    pub struct Script(pub Vec<(Vec<u8>, Vec<u8>)>);

    impl Link for Script {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
            assert!(!self.0.is_empty(), "unexpected APDU {apdu:02X?}");
            let (want, answer) = self.0.remove(0);
            assert_eq!(apdu, want.as_slice());
            Ok(answer)
        }
    }

    /// Bytes from hex with blanks and line breaks: the one hex helper of
    /// the module's unit tests.
    pub fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).expect("test hex")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_card_answering_61xx_forever_is_cut_off() {
        struct Endless;
        impl Link for Endless {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>> {
                let mut v = vec![0u8; 256];
                v.extend_from_slice(&[0x61, 0x00]);
                Ok(v)
            }
        }
        let e = exchange(&mut Endless, &[0x00, 0x84, 0, 0, 8]).unwrap_err();
        assert_eq!(e.rv, CKR_DEVICE_ERROR);
        // Nor one that announces more for ever and sends nothing.
        struct Empty(usize);
        impl Link for Empty {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>> {
                self.0 += 1;
                Ok(vec![0x61, 0x00])
            }
        }
        let mut card = Empty(0);
        let e = exchange(&mut card, &[0x00, 0x84, 0, 0, 8]).unwrap_err();
        assert_eq!(e.rv, CKR_DEVICE_ERROR);
        assert!(card.0 <= MAX_GET_RESPONSES + 1, "{} exchanges", card.0);
    }

    #[test]
    fn get_response_gathers_the_rest() {
        let mut l = Script(vec![
            (hex("00 84 00 00 08"), hex("01 02 61 02")),
            (hex("00 C0 00 00 02"), hex("03 04 90 00")),
        ]);
        let (d, sw) = exchange(&mut l, &hex("00 84 00 00 08")).unwrap();
        assert_eq!((d, sw), (vec![1, 2, 3, 4], StatusWord::OK));
    }
}
