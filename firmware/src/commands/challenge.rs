//! GET CHALLENGE (INS 84, docs/protocol.md §6.7 step 3): Le random bytes,
//! for any Le (OpenSC's C_GenerateRandom reads random data this way, in
//! whatever sizes the application asks).
//!
//! Only a challenge of [`MIN_KEPT`] to [`MAX_KEPT`] bytes is kept for
//! EXTERNAL AUTHENTICATE; a shorter (or longer) one is answered but leaves
//! no challenge pending, so EXTERNAL AUTHENTICATE then answers `6985`. A
//! challenge of a few bytes would let a recorded set of signatures (one per
//! possible value) log in again without any authenticator: 8 bytes is what
//! the upstream protocol's hosts (pypicohsm, SCS3) ask for. Every GET
//! CHALLENGE resets every PKA key's status, so all authenticators of an
//! m-of-n login sign one value.

use alloc::vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_p1p2;
use crate::session::MAX_PKA_KEYS;
use crate::Card;

/// Shortest challenge kept for PKA (docs/protocol.md §6.7).
pub const MIN_KEPT: usize = 8;
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
    card.session.challenge = (MIN_KEPT..=MAX_KEPT)
        .contains(&out.len())
        .then(|| out.clone());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::MIN_KEPT;
    use crate::commands::testcard::T;

    #[test]
    fn a_short_challenge_is_answered_but_not_kept() {
        let mut t = T::new();
        for le in 1..MIN_KEPT {
            assert_eq!(t.challenge(le).len(), le);
            assert!(t.card.session.challenge.is_none(), "Le {le} kept");
        }
        let c = t.challenge(8);
        assert_eq!(t.card.session.challenge.as_deref(), Some(&c[..]));
        // A short one after a kept one leaves none pending.
        t.challenge(1);
        assert!(t.card.session.challenge.is_none());
        assert_eq!(t.challenge(256).len(), 256);
        assert_eq!(
            t.card.session.challenge.as_ref().map(|c| c.len()),
            Some(256)
        );
        t.challenge(1024);
        assert!(t.card.session.challenge.is_none(), "longer than 256");
    }
}
