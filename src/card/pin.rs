//! The PIN commands (docs/protocol.md §5.1-§5.3).

use picohsm_wire::cmd::device::InitParams;
use picohsm_wire::cmd::pin::{self, reset, PinState};
use picohsm_wire::cmd::Cmd;
use zeroize::Zeroizing;

use super::{Card, CardError, CardResult};

impl Card<'_> {
    /// The state of PIN `reference` (VERIFY without data).
    pub fn pin_state(&mut self, reference: u8) -> CardResult<PinState> {
        let apdu = pin::status(reference);
        let (_, sw) = self.exchange(&apdu)?;
        PinState::of(sw).ok_or(CardError::Status {
            command: Cmd::PinStatus(reference),
            sw,
        })
    }

    /// VERIFY of PIN `reference` (`81` user, `88` SO-PIN, 8 bytes). A
    /// wrong or blocked PIN is a [`CardError::Status`] whose
    /// [`CardError::pin_refused`] tells the tries left.
    pub fn verify(&mut self, reference: u8, pin: &[u8]) -> CardResult<()> {
        self.ok(&pin::verify(reference, pin)).map(drop)
    }

    /// CHANGE REFERENCE DATA of PIN `reference` from `old` to `new`.
    pub fn change_pin(&mut self, reference: u8, old: &[u8], new: &[u8]) -> CardResult<()> {
        let mut data = Zeroizing::new(old.to_vec());
        data.extend_from_slice(new);
        self.ok(&pin::change(reference, &data)).map(drop)
    }

    /// RESET RETRY COUNTER of the user PIN with the SO-PIN: with a new PIN,
    /// or (without one) the counter only, which needs option `0020`.
    pub fn reset_retry_counter(
        &mut self,
        so_pin: &[u8; 8],
        new_pin: Option<&[u8]>,
    ) -> CardResult<()> {
        let mut data = Zeroizing::new(so_pin.to_vec());
        let mode = match new_pin {
            Some(p) => {
                data.extend_from_slice(p);
                reset::WITH_NEW_PIN
            }
            None => reset::COUNTER_ONLY,
        };
        self.ok(&pin::reset_retry_counter(mode, &data)).map(drop)
    }

    /// A new user PIN in a card session where the SO-PIN was verified
    /// (RESET RETRY COUNTER P1 02).
    pub fn set_user_pin(&mut self, new_pin: &[u8]) -> CardResult<()> {
        self.ok(&pin::reset_retry_counter(
            reset::NEW_PIN_IN_SO_SESSION,
            new_pin,
        ))
        .map(drop)
    }

    /// INITIALIZE DEVICE (docs/protocol.md §4.1). Erases every key and
    /// object; the card session is authenticated afterwards (until the
    /// next SELECT). A device that already has an SO-PIN checks tag 82
    /// against it: a refusal is a PIN error of the SO-PIN.
    pub fn initialize(&mut self, params: &InitParams) -> CardResult<()> {
        self.ok(&params.command()).map(drop)
    }

    /// INITIALIZE with options `0001` and `so_pin` only, sent in short
    /// form (C_InitToken; C_InitPIN sets the user PIN later).
    pub fn initialize_so_only(&mut self, so_pin: &[u8; 8]) -> CardResult<()> {
        let params = InitParams::with_so_pin(*so_pin);
        self.ok(&picohsm_wire::cmd::device::initialize_short(
            &params.encode(),
        ))
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use picohsm_wire::cmd::device::InitParams;
    use picohsm_wire::sw::StatusWord;

    #[test]
    fn initialize_refused_is_the_so_pins_error() {
        // A wrong SO-PIN comes back as the SO-PIN's tries.
        let p = InitParams::with_so_pin([0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
        let mut l = Script(vec![(
            [hex("80 50 00 00 00 00 0E"), p.encode().to_vec()].concat(),
            vec![0x63, 0xC7],
        )]);
        assert_eq!(
            Card::new(&mut l).initialize(&p).unwrap_err().pin_refused(),
            Some((0x88, 7))
        );
    }

    #[test]
    fn pin_commands_and_their_errors() {
        let mut l = Script(vec![
            (
                hex("00 24 00 81 0C 363438323139 313233343536"),
                hex("90 00"),
            ),
            (hex("00 20 00 81 06 303030303030"), hex("63 C2")),
            (hex("00 20 00 81 06 303030303030"), hex("69 83")),
            (
                hex("00 2C 00 81 0E 3537363231383830 363438323139"),
                hex("90 00"),
            ),
            (hex("00 2C 01 81 08 3537363231383830"), hex("69 86")),
        ]);
        let mut c = Card::new(&mut l);
        c.change_pin(0x81, b"648219", b"123456").unwrap();
        assert_eq!(
            c.verify(0x81, b"000000").unwrap_err().pin_refused(),
            Some((0x81, 2))
        );
        assert_eq!(
            c.verify(0x81, b"000000").unwrap_err().pin_refused(),
            Some((0x81, 0))
        );
        c.reset_retry_counter(b"57621880", Some(b"648219")).unwrap();
        let e = c.reset_retry_counter(b"57621880", None).unwrap_err();
        assert_eq!(
            e,
            CardError::Status {
                command: Cmd::ResetRetryCounter,
                sw: StatusWord(0x6986)
            }
        );
        assert!(e.to_string().contains("6986 (command not allowed)"), "{e}");
    }
}
