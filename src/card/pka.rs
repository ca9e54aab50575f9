//! The PKA commands a login needs (protocol reference §6.3, §6.7): status,
//! the registered keys' names, MSE SET AT and EXTERNAL AUTHENTICATE. Each
//! answer is decoded here, so the login logic sees meanings, not SWs.

use cryptoki_sys::*;
use picohsm_wire::apdu::build;
use picohsm_wire::tlv;

use super::{exchange, sw_error};
use crate::error::{Error, Result};
use crate::transport::Link;
use crate::vendor;

/// MANAGE PKA status (§6.3, `80 54 00 00`): the four counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// n: public keys in the scheme.
    pub total: u8,
    /// Keys still to register.
    pub missing: u8,
    /// m: keys needed per login.
    pub required: u8,
    /// Keys accepted since the last challenge.
    pub authenticated: u8,
}

impl Status {
    /// Whether the authenticated keys reach the quorum.
    pub fn granted(&self) -> bool {
        self.required > 0 && self.authenticated >= self.required
    }
}

/// The PKA status, or `None` when the token has no PKA (6A86 / 6A82, or a
/// card that does not know the instruction).
pub fn status(link: &mut dyn Link) -> Result<Option<Status>> {
    let (d, sw) = exchange(link, &[0x80, 0x54, 0x00, 0x00, 0x00])?;
    match sw.0 {
        0x9000 if d.len() >= 4 => Ok(Some(Status {
            total: d[0],
            missing: d[1],
            required: d[2],
            authenticated: d[3],
        })),
        0x9000 => Err(Error::new(CKR_DEVICE_ERROR, "short PKA status")),
        0x6A86 | 0x6A82 | 0x6D00 | 0x6E00 => Ok(None),
        _ => Err(sw_error(sw, "PKA status")),
    }
}

/// One registered key (§6.3 enumerate, `80 54 02 slot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The slot.
    pub slot: u8,
    /// Its CHR.
    pub chr: Vec<u8>,
    /// Accepted since the last challenge (SW 9001).
    pub authenticated: bool,
}

/// The registered keys of a scheme of `total` slots (empty slots left out).
pub fn registered(link: &mut dyn Link, total: u8) -> Result<Vec<Registered>> {
    let mut out = Vec::new();
    for slot in 0..total {
        let (d, sw) = exchange(link, &[0x80, 0x54, 0x02, slot, 0x00])?;
        match sw.0 {
            0x9000 | 0x9001 => out.push(Registered {
                slot,
                chr: d,
                authenticated: sw.0 == 0x9001,
            }),
            0x6A88 => {}
            0x6A86 => break,
            _ => return Err(sw_error(sw, "PKA enumerate")),
        }
    }
    Ok(out)
}

/// MSE SET AT (§6.7 step 6, `00 22 81 A4 83 <CHR>`): selects the registered
/// key the next EXTERNAL AUTHENTICATE is checked against.
pub fn select_key(link: &mut dyn Link, chr: &[u8]) -> Result<()> {
    let (_, sw) = exchange(
        link,
        &build(0x00, 0x22, 0x81, 0xA4, &tlv::encode(0x83, chr), 0),
    )?;
    match sw.0 {
        0x9000 => Ok(()),
        0x6985 => Err(Error::new(
            vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED,
            "this key was already accepted in this round",
        )),
        0x6A88 => Err(Error::new(
            vendor::CKR_PICOHSM_KEY_NOT_REGISTERED,
            "the key is not registered on this token",
        )),
        _ => Err(sw_error(sw, "MSE SET AT")),
    }
}

/// EXTERNAL AUTHENTICATE (§6.7 step 7, `00 82 00 00 <r‖s>`).
pub fn external_authenticate(link: &mut dyn Link, signature: &[u8]) -> Result<()> {
    let (_, sw) = exchange(link, &build(0x00, 0x82, 0x00, 0x00, signature, 0))?;
    match sw.0 {
        0x9000 => Ok(()),
        0x6985 | 0x6300 | 0x6982 | 0x6A88 => Err(Error::new(
            vendor::CKR_PICOHSM_SIGNATURE_REFUSED,
            "the token refused the authenticator's signature",
        )),
        _ => Err(sw_error(sw, "EXTERNAL AUTHENTICATE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each command with the next canned response and records it.
    struct Script(Vec<(Vec<u8>, Vec<u8>)>);
    impl Link for Script {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
            let (want, answer) = self.0.remove(0);
            assert_eq!(apdu, want.as_slice());
            Ok(answer)
        }
    }

    #[test]
    fn status_and_enumerate_decode_the_lab_answers() {
        // §6.3 lab: status 01 00 01 00, slot 0 "PKAKEYB00001" not authenticated.
        let mut l = Script(vec![
            (vec![0x80, 0x54, 0, 0, 0], vec![1, 0, 1, 0, 0x90, 0]),
            (
                vec![0x80, 0x54, 2, 0, 0],
                [b"PKAKEYB00001".as_slice(), &[0x90, 0x00]].concat(),
            ),
        ]);
        let st = status(&mut l).unwrap().unwrap();
        assert_eq!(
            st,
            Status {
                total: 1,
                missing: 0,
                required: 1,
                authenticated: 0
            }
        );
        assert!(!st.granted());
        let r = registered(&mut l, 1).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].chr, b"PKAKEYB00001");
        assert!(!r[0].authenticated);
    }

    #[test]
    fn no_pka_and_refusals_have_their_own_codes() {
        let mut l = Script(vec![
            (vec![0x80, 0x54, 0, 0, 0], vec![0x6A, 0x86]),
            (
                [&[0x00, 0x22, 0x81, 0xA4, 0x04, 0x83, 0x02][..], b"AB"].concat(),
                vec![0x6A, 0x88],
            ),
            (
                [&[0x00, 0x22, 0x81, 0xA4, 0x04, 0x83, 0x02][..], b"AB"].concat(),
                vec![0x69, 0x85],
            ),
            (vec![0x00, 0x82, 0, 0, 2, 1, 2], vec![0x69, 0x85]),
        ]);
        assert_eq!(status(&mut l).unwrap(), None);
        assert_eq!(
            select_key(&mut l, b"AB").unwrap_err().rv,
            vendor::CKR_PICOHSM_KEY_NOT_REGISTERED
        );
        assert_eq!(
            select_key(&mut l, b"AB").unwrap_err().rv,
            vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED
        );
        assert_eq!(
            external_authenticate(&mut l, &[1, 2]).unwrap_err().rv,
            vendor::CKR_PICOHSM_SIGNATURE_REFUSED
        );
    }
}
