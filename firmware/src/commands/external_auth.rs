//! EXTERNAL AUTHENTICATE (INS 82, docs/protocol.md §6.7): the signature of the key chosen by
//! MSE SET AT over SHA-256(device name ‖ challenge). A valid one marks the
//! key authenticated; when m keys are, the user state is granted and the
//! challenge is used up. A bad one uses the challenge up too and clears every
//! key's status of that round (6985): a signature is tried against a
//! challenge once, so a failed try cannot be followed by another guess, and
//! the round starts again from a new GET CHALLENGE (docs/protocol.md §6.7).
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
        card.session.challenge = None;
        card.session.pka_status = [false; crate::session::MAX_PKA_KEYS];
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

#[cfg(test)]
mod tests {
    use crate::commands::testcard::{Auth, T};

    fn primary(n: u8, m: u8, keys: &[&Auth]) -> T {
        let mut t = T::new();
        t.init(1, true, Some((n, m)), &[]);
        t.verify_pin();
        for k in keys {
            assert_eq!(t.register(&k.request()), 0x9000);
        }
        t.select();
        t
    }

    #[test]
    fn a_failed_try_uses_the_challenge_up() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let mut t = primary(1, 1, &[&a]);
        let name = t.card.device_name();
        let c = t.challenge(8);
        assert_eq!(t.ext_auth(&a.chr, &[7; 64]), 0x6985);
        assert!(t.card.session.challenge.is_none());
        let good = a.sign_login(&name, &c);
        assert_eq!(
            t.ext_auth(&a.chr, &good),
            0x6985,
            "same challenge after a failure"
        );
        assert!(!t.card.session.user_auth);
        assert_eq!(t.login_with(&a), 0x9000, "a new challenge works");
    }

    #[test]
    fn a_failed_try_resets_the_round() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let b = Auth::new(b"AUTHKEYB00001", 2);
        let mut t = primary(2, 2, &[&a, &b]);
        let name = t.card.device_name();
        let c = t.challenge(8);
        assert_eq!(t.ext_auth(&a.chr, &a.sign_login(&name, &c)), 0x9000);
        assert_eq!(t.ext_auth(&b.chr, &[1; 64]), 0x6985);
        assert!(!t.card.session.pka_status[0], "A's acceptance reset");
        assert_eq!(t.ext_auth(&b.chr, &b.sign_login(&name, &c)), 0x6985);
        assert!(!t.card.session.pka_quorum);
    }

    #[test]
    fn a_one_byte_challenge_cannot_be_answered() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let mut t = primary(1, 1, &[&a]);
        let name = t.card.device_name();
        let c = t.challenge(1);
        assert_eq!(t.ext_auth(&a.chr, &a.sign_login(&name, &c)), 0x6985);
        assert!(!t.card.session.user_auth);
    }

    #[test]
    fn another_name_or_an_old_challenge_is_refused() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let mut t = primary(1, 1, &[&a]);
        let name = t.card.device_name();
        let old = t.challenge(8);
        let c = t.challenge(8);
        assert_eq!(t.ext_auth(&a.chr, &a.sign_login(&name, &old)), 0x6985);
        let c2 = t.challenge(8);
        assert_ne!(c, c2);
        assert_eq!(
            t.ext_auth(&a.chr, &a.sign_login(b"ZZPHSMOTHER00001", &c2)),
            0x6985
        );
        assert!(!t.card.session.user_auth);
    }
}
