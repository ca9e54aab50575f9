//! EXTERNAL AUTHENTICATE (INS 82, docs/protocol.md §6.7): the signature of the key chosen by
//! MSE SET AT over SHA-256(device name ‖ challenge). A valid one marks the
//! key authenticated; when m keys are, the user state is granted and the
//! challenge is used up. A bad one clears that key's status (6985).
//!
//! 6A88 no key selected; 6985 no challenge pending, key already
//! authenticated, or bad signature; 6700 no signature.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_p1p2;
use crate::{pka, Card};

/// Runs EXTERNAL AUTHENTICATE.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_p1p2(cmd, 0, 0)?;
    if cmd.data.is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let p = pka::params(card).ok_or(StatusWord::CONDITIONS)?;
    let slot = card.session.pka_selected.ok_or(StatusWord::REF_NOT_FOUND)?;
    let challenge = card
        .session
        .challenge
        .clone()
        .ok_or(StatusWord::CONDITIONS)?;
    if card.session.pka_status[slot] {
        return Err(StatusWord::CONDITIONS);
    }
    let request = pka::slot(card, slot).ok_or(StatusWord::REF_NOT_FOUND)?;
    let name = card.device_name();
    if !pka::verify_login(request, &name, &challenge, cmd.data) {
        card.session.pka_status[slot] = false;
        return Err(StatusWord::CONDITIONS);
    }
    card.session.pka_status[slot] = true;
    let done = card.session.pka_status.iter().filter(|s| **s).count();
    if done >= p.m as usize {
        card.session.challenge = None;
        card.session.pka_quorum = true;
        crate::commands::verify::grant_after_pka(card)?;
    }
    Ok(Vec::new())
}
