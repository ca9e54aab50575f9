//! MANAGE PUBLIC KEY AUTHENTICATION (INS 54, docs/protocol.md §6.3): status, register into
//! the first empty slot, replace a slot, enumerate a slot.
//!
//! Registering or replacing needs the user PIN or the SO-PIN verified in
//! this card session (6982), and a request whose inner self-signature
//! verifies (6984) with a key this card can check (6A81). A CHR already
//! registered in another slot is refused (6A89): MSE SET AT selects by CHR.
//!
//! Our firmware's differences (docs/protocol.md §6.3), so the PIN alone never
//! stands in for the authenticators:
//! * a public key already registered in another slot, under any CHR, is
//!   refused (6A89): one key counted twice would meet a 2-of-2 quorum alone;
//! * once m keys are registered (m = the quorum), registering or replacing
//!   also needs the PKA quorum reached in this card session (6982). Until
//!   then the PIN or SO-PIN suffices: that is how the first m keys get in.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::opt;
use picohsm_wire::cvc::AuthRequest;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::pka::{self, Params};
use crate::Card;

fn registered_chr(card: &Card, i: usize) -> Option<Vec<u8>> {
    pka::slot(card, i).and_then(|r| AuthRequest::parse(r).ok().map(|r| r.cert.chr.to_vec()))
}

fn register(card: &mut Card, p: Params, slot: Option<usize>, data: &[u8]) -> Response {
    if !(card.session.user_pin || card.session.so_pin) {
        return Err(StatusWord::SECURITY_STATUS);
    }
    if pka::registered(card, p) >= p.m as usize && !card.session.pka_quorum {
        return Err(StatusWord::SECURITY_STATUS);
    }
    let chr = pka::check_request(data)?;
    let target = match slot {
        Some(i) => i,
        None => (0..p.n as usize)
            .find(|i| pka::slot(card, *i).is_none())
            .ok_or(StatusWord::FILE_FULL)?,
    };
    if (0..p.n as usize)
        .any(|i| i != target && registered_chr(card, i).as_deref() == Some(&chr[..]))
    {
        return Err(StatusWord::FILE_EXISTS);
    }
    let identity = pka::key_identity(data).ok_or(StatusWord::WRONG_DATA)?;
    if (0..p.n as usize).any(|i| {
        i != target && pka::slot(card, i).and_then(pka::key_identity).as_ref() == Some(&identity)
    }) {
        return Err(StatusWord::FILE_EXISTS);
    }
    verify_outer(card, data)?;
    pka::store_slot(card, p, target, data)?;
    card.session.pka_status[target] = false;
    Ok(pka::status(card, p))
}

/// When MSE SET DST selected the request's outer CAR (as sc-hsm-tool does),
/// the outer signature must verify with that device certificate (6985).
fn verify_outer(card: &Card, data: &[u8]) -> Result<(), StatusWord> {
    let req = AuthRequest::parse(data).map_err(|_| StatusWord::WRONG_DATA)?;
    let Some(issuer) = card.session.issuer.as_ref() else {
        return Ok(());
    };
    let (dev, _) = picohsm_wire::cvc::Cvc::parse(issuer).map_err(|_| StatusWord::WRONG_DATA)?;
    if dev.chr != req.outer_car {
        return Ok(());
    }
    let curve = pka::resolve_curve(card, &dev);
    if pka::verify(&dev, curve, &req.outer_signed, req.outer_signature) {
        Ok(())
    } else {
        Err(StatusWord::CONDITIONS)
    }
}

/// Runs MANAGE PUBLIC KEY AUTHENTICATION.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let Some(p) = pka::params(card) else {
        return Err(if cmd.data.is_empty() {
            StatusWord::WRONG_P1P2
        } else {
            StatusWord::FILE_NOT_FOUND
        });
    };
    match (cmd.p1, cmd.data.is_empty()) {
        (0x00, true) if cmd.p2 == 0 => Ok(pka::status(card, p)),
        (0x00, false) if cmd.p2 == 0 => register(card, p, None, cmd.data),
        (0x01, false) => {
            if card.options() & opt::REPLACE_PKA == 0 {
                return Err(StatusWord::CONDITIONS);
            }
            let i = cmd.p2 as usize;
            if i >= p.n as usize {
                return Err(StatusWord::WRONG_P1P2);
            }
            register(card, p, Some(i), cmd.data)
        }
        (0x02, true) => {
            let i = cmd.p2 as usize;
            if i >= p.n as usize {
                return Err(StatusWord::WRONG_P1P2);
            }
            let chr = registered_chr(card, i).ok_or(StatusWord::REF_NOT_FOUND)?;
            if card.session.pka_status[i] {
                card.ok_sw = Some(StatusWord::OK_AUTHENTICATED);
            }
            Ok(chr)
        }
        _ => Err(StatusWord::WRONG_P1P2),
    }
}

#[cfg(test)]
mod tests {
    use crate::commands::testcard::{Auth, T};

    /// A PKA `n`-of-`m` + PIN primary, PIN verified.
    fn primary(n: u8, m: u8, options: u8) -> T {
        let mut t = T::new();
        t.init(options, true, Some((n, m)), &[]);
        assert_eq!(t.verify_pin(), 0x9000);
        t
    }

    #[test]
    fn one_key_under_two_names_is_refused() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let mut t = primary(2, 2, 1);
        assert_eq!(t.register(&a.request()), 0x9000);
        let q = a.q();
        assert_eq!(t.register(&a.request_for(b"AUTHKEYA00002", &q)), 0x6A89);
        // The same point compressed.
        let mut c = alloc::vec![2 + (q[64] & 1)];
        c.extend_from_slice(&q[1..33]);
        assert_eq!(t.register(&a.request_for(b"AUTHKEYA00003", &c)), 0x6A89);
        assert_eq!(
            crate::pka::registered(&t.card, crate::pka::params(&t.card).unwrap()),
            1
        );
    }

    #[test]
    fn past_m_registration_needs_the_quorum() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let b = Auth::new(b"AUTHKEYB00001", 2);
        let c = Auth::new(b"AUTHKEYC00001", 3);
        let mut t = primary(3, 1, 1);
        assert_eq!(
            t.register(&a.request()),
            0x9000,
            "bootstrap: the PIN suffices"
        );
        assert_eq!(t.register(&b.request()), 0x6982, "PIN alone past m");
        t.select();
        assert_eq!(t.verify_so(), 0x9000);
        assert_eq!(t.register(&b.request()), 0x6982, "SO-PIN alone past m");
        t.select();
        assert_eq!(t.login_with(&a), 0x9000);
        assert_eq!(t.register(&b.request()), 0x6982, "quorum without a PIN");
        assert_eq!(t.verify_pin(), 0x9000);
        assert_eq!(t.register(&b.request()), 0x9000, "quorum and PIN");
        t.select();
        assert_eq!(t.verify_so(), 0x9000);
        assert_eq!(t.login_with(&b), 0x9000);
        assert_eq!(t.register(&c.request()), 0x9000, "quorum and SO-PIN");
    }

    #[test]
    fn without_any_pin_nothing_is_registered() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let mut t = T::new();
        t.init(1, true, Some((2, 1)), &[]);
        assert_eq!(t.register(&a.request()), 0x6982);
    }

    #[test]
    fn replacing_past_m_needs_the_quorum() {
        let a = Auth::new(b"AUTHKEYA00001", 1);
        let b = Auth::new(b"AUTHKEYB00001", 2);
        // Options 0001 | 0008 (replace).
        let mut t = primary(1, 1, 9);
        assert_eq!(t.register(&a.request()), 0x9000);
        assert_eq!(t.sw(0x80, 0x54, 1, 0, &b.request(), 4), 0x6982);
        t.select();
        assert_eq!(t.login_with(&a), 0x9000);
        assert_eq!(t.verify_pin(), 0x9000);
        assert_eq!(t.sw(0x80, 0x54, 1, 0, &b.request(), 4), 0x9000);
        t.select();
        assert_eq!(t.login_with(&a), 0x6A88, "A is gone");
        assert_eq!(t.login_with(&b), 0x9000);
    }
}
