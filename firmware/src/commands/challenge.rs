//! GET CHALLENGE (INS 84, docs/protocol.md §6.7 step 3): random bytes; a challenge of at most
//! 256 bytes is kept for EXTERNAL AUTHENTICATE, and a new one resets every
//! PKA key's status, so all authenticators of an m-of-n login sign one value.

use alloc::vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_p1p2;
use crate::session::MAX_PKA_KEYS;
use crate::Card;

/// Largest challenge kept for PKA.
pub const MAX_KEPT: usize = 256;

/// Runs GET CHALLENGE.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_p1p2(cmd, 0, 0)?;
    if cmd.ne == 0 || !cmd.data.is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let mut out = vec![0u8; cmd.ne];
    card.rng.fill(&mut out);
    card.session.pka_status = [false; MAX_PKA_KEYS];
    card.session.challenge = (out.len() <= MAX_KEPT).then(|| out.clone());
    Ok(out)
}
