//! CHANGE REFERENCE DATA (INS 24, docs/protocol.md §5.2): `old ‖ new`, split at the length
//! of the stored PIN; the MKEK is re-sealed under the new PIN.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::pin::{self, Check};
use crate::Card;

/// Runs CHANGE REFERENCE DATA.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p1 != 0 || !matches!(cmd.p2, pin_ref::USER | pin_ref::SO) {
        return Err(StatusWord::WRONG_P1P2);
    }
    let reference = cmd.p2;
    let rec = pin::record(&card.fs, reference).ok_or(StatusWord::REF_NOT_FOUND)?;
    let split = rec.len as usize;
    if cmd.data.len() <= split {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let (old, new) = cmd.data.split_at(split);
    let new_ok = if reference == pin_ref::SO {
        new.len() == 8
    } else {
        new.len() <= 16
    };
    if !new_ok {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let mkek = match pin::check(&mut card.fs, &card.otp, reference, old)? {
        Check::Ok(m) => m,
        Check::Wrong(sw) => {
            if reference == pin_ref::USER {
                card.session.user_pin = false;
            } else {
                card.session.so_pin = false;
            }
            return Err(sw);
        }
    };
    pin::set(
        &mut card.fs,
        &card.otp,
        reference,
        new,
        rec.max,
        &mkek,
        &mut *card.rng,
    )?;
    if reference == pin_ref::USER {
        card.session.user_pin = true;
        if !card.pka_enabled() {
            card.session.user_auth = true;
        }
    } else {
        card.session.so_pin = true;
    }
    card.session.mkek = Some(mkek);
    Ok(Vec::new())
}
