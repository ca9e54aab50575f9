//! VERIFY (INS 20, docs/protocol.md §5.1): user PIN (P2 81) and SO-PIN (P2 88), with data a
//! check, without data a status query.
//!
//! A correct user PIN opens the PIN session (the MKEK); it grants the user
//! state only when PKA is off (docs/protocol.md §5.4).

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::{opt, pin_ref};
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::pin::{self, Check};
use crate::{dkek, Card};

/// Runs VERIFY.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p1 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    match cmd.p2 {
        pin_ref::USER => user(card, cmd.data),
        pin_ref::SO => so(card, cmd.data),
        p2 if p2 & 0x60 != 0 => Err(StatusWord::WRONG_PARAMS),
        // 85/86 (biometric, PIN pad) and the rest: not present (docs/protocol.md §2.5).
        _ => Err(StatusWord::REF_NOT_FOUND),
    }
}

fn user(card: &mut Card, pin_bytes: &[u8]) -> Response {
    if card.options() & opt::TRANSPORT_PIN != 0 {
        return Err(StatusWord::DATA_INVALID);
    }
    if pin_bytes.is_empty() {
        return if card.session.user_pin {
            Ok(Vec::new())
        } else {
            Err(pin::status(&card.fs, pin_ref::USER))
        };
    }
    match pin::check(&mut card.fs, &card.otp, pin_ref::USER, pin_bytes)? {
        Check::Ok(mkek) => {
            card.session.user_pin = true;
            card.session.mkek = Some(mkek);
            if !card.pka_enabled()
                || (card.session.pka_quorum && card.options() & opt::COMBINED_AUTH != 0)
            {
                card.session.user_auth = true;
            }
            dkek::finish_pending(card)?;
            Ok(Vec::new())
        }
        Check::Wrong(sw) => {
            card.session.user_pin = false;
            if !card.session.so_pin {
                card.session.mkek = None;
            }
            if !card.pka_enabled() {
                card.session.user_auth = false;
            }
            Err(sw)
        }
    }
}

fn so(card: &mut Card, pin_bytes: &[u8]) -> Response {
    if pin_bytes.is_empty() {
        return if card.session.so_pin {
            Ok(Vec::new())
        } else {
            Err(pin::status(&card.fs, pin_ref::SO))
        };
    }
    if pin_bytes.len() != 8 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    match pin::check(&mut card.fs, &card.otp, pin_ref::SO, pin_bytes)? {
        Check::Ok(mkek) => {
            card.session.so_pin = true;
            card.session.mkek = Some(mkek);
            dkek::finish_pending(card)?;
            Ok(Vec::new())
        }
        Check::Wrong(sw) => {
            card.session.so_pin = false;
            if !card.session.user_pin {
                card.session.mkek = None;
            }
            Err(sw)
        }
    }
}

/// After the PKA quorum: the user state, unless the device also demands the
/// PIN (option COMBINED_AUTH) and it was not verified yet. A PKA device
/// without a user PIN gets its MKEK from the device seal here.
pub fn grant_after_pka(card: &mut Card) -> Result<(), StatusWord> {
    if card.options() & opt::COMBINED_AUTH == 0 || card.session.user_pin {
        card.session.user_auth = true;
    }
    if card.session.mkek.is_none() && pin::record(&card.fs, pin_ref::USER).is_none() {
        card.session.mkek = pin::unseal_for_device(&card.fs, &card.otp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::testcard::T;

    #[test]
    fn pin_tries_survive_a_restart() {
        let mut t = T::new();
        t.init(1, true, None, &[0x91, 1, 3]);
        assert_eq!(t.sw(0, 0x20, 0, 0x81, b"000000", 0), 0x63C2);
        let mut t = t.restart();
        assert_eq!(
            t.sw(0, 0x20, 0, 0x81, &[], 0),
            0x63C2,
            "counted before the restart"
        );
        assert_eq!(t.sw(0, 0x20, 0, 0x81, b"000000", 0), 0x63C1);
        assert_eq!(t.sw(0, 0x20, 0, 0x81, b"000000", 0), 0x6983);
        let mut t = t.restart();
        assert_eq!(t.verify_pin(), 0x6983, "blocked across a restart");
    }
}
