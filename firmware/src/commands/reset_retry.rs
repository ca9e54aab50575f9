//! RESET RETRY COUNTER (INS 2C, docs/protocol.md §5.3): the SO unblocks the user PIN,
//! setting a new one (P1 00, 02) or only resetting its counter (P1 01, 03).

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::{opt, pin_ref};
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::pin::{self, Check};
use crate::seal::Key32;
use crate::Card;

fn so_check(card: &mut Card, so: &[u8]) -> Result<Key32, StatusWord> {
    if so.len() != 8 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    match pin::check(&mut card.fs, &card.otp, pin_ref::SO, so)? {
        Check::Ok(m) => {
            card.session.so_pin = true;
            Ok(m)
        }
        Check::Wrong(sw) => {
            card.session.so_pin = false;
            Err(sw)
        }
    }
}

fn new_pin(card: &mut Card, pin_bytes: &[u8], mkek: &Key32) -> Result<(), StatusWord> {
    if pin_bytes.is_empty() || pin_bytes.len() > 16 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let max = pin::record(&card.fs, pin_ref::USER).map_or(3, |r| r.max);
    pin::set(
        &mut card.fs,
        &card.otp,
        pin_ref::USER,
        pin_bytes,
        max,
        mkek,
        &mut *card.rng,
    )
}

/// Runs RESET RETRY COUNTER.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p2 != pin_ref::USER {
        return Err(StatusWord::WRONG_P1P2);
    }
    let opts = card.options();
    if opts & opt::RRC == 0 {
        return Err(StatusWord::NOT_ALLOWED);
    }
    let reset_only_allowed = opts & opt::RRC_RESET_ONLY != 0;
    match cmd.p1 {
        0x00 => {
            if cmd.data.len() <= 8 {
                return Err(StatusWord::WRONG_LENGTH);
            }
            let (so, new) = cmd.data.split_at(8);
            let mkek = so_check(card, so)?;
            new_pin(card, new, &mkek)?;
            card.session.mkek = Some(mkek);
        }
        0x01 => {
            if !reset_only_allowed {
                return Err(StatusWord::NOT_ALLOWED);
            }
            let mkek = so_check(card, cmd.data)?;
            pin::reset_tries(&mut card.fs, pin_ref::USER)?;
            card.session.mkek = Some(mkek);
        }
        0x02 => {
            let mkek = match (&card.session.so_pin, &card.session.mkek) {
                (true, Some(m)) => Key32::new(**m),
                _ => return Err(StatusWord::SECURITY_STATUS),
            };
            new_pin(card, cmd.data, &mkek)?;
        }
        0x03 => {
            if !reset_only_allowed {
                return Err(StatusWord::NOT_ALLOWED);
            }
            if !cmd.data.is_empty() {
                return Err(StatusWord::WRONG_LENGTH);
            }
            if !card.session.so_pin {
                return Err(StatusWord::SECURITY_STATUS);
            }
            pin::reset_tries(&mut card.fs, pin_ref::USER)?;
        }
        _ => return Err(StatusWord::WRONG_P1P2),
    }
    Ok(Vec::new())
}
