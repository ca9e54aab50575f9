//! The PIN commands (docs/protocol.md §5.1-§5.3): VERIFY, CHANGE
//! REFERENCE DATA and RESET RETRY COUNTER, and what the status words of
//! a PIN mean.

use super::{Apdu, Cmd, CLA_ISO};
use crate::codes::{ins, pin_ref};
use crate::sw::StatusWord;

/// P1 of RESET RETRY COUNTER (docs/protocol.md §5.3).
pub mod reset {
    /// SO-PIN and new user PIN.
    pub const WITH_NEW_PIN: u8 = 0x00;
    /// SO-PIN only: the counter is reset, the PIN kept (option `0020`).
    pub const COUNTER_ONLY: u8 = 0x01;
    /// New user PIN only, in a session where the SO-PIN was verified.
    pub const NEW_PIN_IN_SO_SESSION: u8 = 0x02;
}

/// VERIFY without data: asks the state of PIN `reference`.
pub fn status(reference: u8) -> Apdu {
    Apdu::new(
        Cmd::PinStatus(reference),
        [CLA_ISO, ins::VERIFY, 0x00, reference],
        &[],
        0,
    )
}

/// VERIFY of `pin` against PIN `reference`.
pub fn verify(reference: u8, pin: &[u8]) -> Apdu {
    Apdu::new(
        Cmd::Verify(reference),
        [CLA_ISO, ins::VERIFY, 0x00, reference],
        pin,
        0,
    )
}

/// CHANGE REFERENCE DATA of PIN `reference`: `old_new` is the old PIN
/// followed by the new one (the card splits at the stored PIN's length).
pub fn change(reference: u8, old_new: &[u8]) -> Apdu {
    Apdu::new(
        Cmd::ChangeReferenceData(reference),
        [CLA_ISO, ins::CHANGE_PIN, 0x00, reference],
        old_new,
        0,
    )
}

/// RESET RETRY COUNTER of the user PIN with P1 `mode` ([`reset`]) and
/// `data` (SO-PIN, then the new PIN where the mode takes one).
pub fn reset_retry_counter(mode: u8, data: &[u8]) -> Apdu {
    let cmd = if mode == reset::NEW_PIN_IN_SO_SESSION {
        Cmd::SetUserPin
    } else {
        Cmd::ResetRetryCounter
    };
    Apdu::new(
        cmd,
        [CLA_ISO, ins::RESET_RETRY, mode, pin_ref::USER],
        data,
        0,
    )
}

/// The state of a PIN, from the status word of VERIFY without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// Verified in this session.
    Verified,
    /// Not verified; this many tries left.
    TriesLeft(u8),
    /// Blocked.
    Blocked,
    /// No such PIN (not initialised, or PKA-only).
    Absent,
    /// Transport PIN: must be changed before use.
    Transport,
}

impl PinState {
    /// The state `sw` reports; `None` for a status word that is not one.
    pub fn of(sw: StatusWord) -> Option<PinState> {
        Some(match sw {
            StatusWord::OK => PinState::Verified,
            StatusWord::PIN_BLOCKED => PinState::Blocked,
            StatusWord::REF_NOT_FOUND => PinState::Absent,
            StatusWord::DATA_INVALID => PinState::Transport,
            _ => PinState::TriesLeft(sw.pin_tries()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn bytes_and_states() {
        assert_eq!(status(0x81).bytes(), hex("00 20 00 81"));
        assert_eq!(
            verify(0x81, b"000000").bytes(),
            hex("00 20 00 81 06 303030303030")
        );
        assert_eq!(
            change(0x81, b"648219123456").bytes(),
            hex("00 24 00 81 0C 363438323139 313233343536")
        );
        assert_eq!(
            reset_retry_counter(reset::COUNTER_ONLY, b"57621880").bytes(),
            hex("00 2C 01 81 08 3537363231383830")
        );
        assert_eq!(
            reset_retry_counter(reset::NEW_PIN_IN_SO_SESSION, b"648219").cmd,
            Cmd::SetUserPin
        );
        assert_eq!(
            PinState::of(StatusWord(0x63C2)),
            Some(PinState::TriesLeft(2))
        );
        assert_eq!(PinState::of(StatusWord(0x6A88)), Some(PinState::Absent));
        assert_eq!(PinState::of(StatusWord(0x6A80)), None);
    }
}
