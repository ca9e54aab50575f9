//! PERFORM SECURITY OPERATION: VERIFY CERTIFICATE (INS 2A, P1 00, P2 BE,
//! 92 or AE; docs/protocol.md §6.4). The certificate (with or without its `7F21` header) must
//! be issued by the certificate MSE SET DST chose (6A88 if none) and carry
//! its signature (6985); it then joins the issuers the card knows. Unparsable: 6984.
//!
//! Our firmware keeps such a certificate in the card session only (RAM,
//! forgotten at SELECT or reset), at most
//! [`MAX_SESSION_CERTS`](crate::session::MAX_SESSION_CERTS) of them (6A84
//! beyond), where the upstream firmware writes it to flash: the command needs
//! no authentication, so stored certificates would let anyone fill the flash.
//! Nothing needs them past the session: the registration that relies on them
//! (MSE SET DST of the request's outer CAR, then MANAGE PKA register) runs
//! in the same session (docs/protocol.md §6.5), and a registered key's curve
//! comes from its own request. Certificates meant to stay are written to
//! `CAxx` with UPDATE BINARY, which needs the user state.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::cvc::{self, Cvc};
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::pka;
use crate::Card;

/// Runs PSO VERIFY CERTIFICATE.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p1 != 0 || !matches!(cmd.p2, 0xBE | 0x92 | 0xAE) {
        return Err(StatusWord::WRONG_P1P2);
    }
    let full = if cmd.data.starts_with(&[0x7F, 0x21]) {
        cmd.data.to_vec()
    } else {
        picohsm_wire::tlv::encode(cvc::TAG_CVC, cmd.data)
    };
    let (cert, rest) = Cvc::parse(&full).map_err(|_| StatusWord::DATA_INVALID)?;
    if !rest.is_empty() {
        return Err(StatusWord::DATA_INVALID);
    }
    let issuer_raw = card
        .session
        .issuer
        .clone()
        .ok_or(StatusWord::REF_NOT_FOUND)?;
    let (issuer, _) = Cvc::parse(&issuer_raw).map_err(|_| StatusWord::REF_NOT_FOUND)?;
    if cert.car != Some(issuer.chr) {
        return Err(StatusWord::CONDITIONS);
    }
    let curve = pka::resolve_curve(card, &issuer);
    if !pka::verify(&issuer, curve, cert.body, cert.signature) {
        return Err(StatusWord::CONDITIONS);
    }
    if pka::find_issuer(card, cert.chr).is_none() {
        if card.session.verified_certs.len() >= crate::session::MAX_SESSION_CERTS {
            return Err(StatusWord::FILE_FULL);
        }
        card.session.verified_certs.push(full);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::commands::testcard::T;
    use crate::device::{test_chain, TEST_DICA};
    use picohsm_wire::cvc;
    use picohsm_wire::tlv;

    #[test]
    fn verified_certificates_stay_in_the_session() {
        let mut t = T::new();
        t.init(1, true, None, &[]);
        let before = t.image_len();
        let q = t.card.device_name();
        let point = crate::pka::find_issuer(&t.card, &q)
            .and_then(|c| {
                cvc::Cvc::parse(&c)
                    .ok()
                    .and_then(|(c, _)| c.key_field(0x86).map(<[u8]>::to_vec))
            })
            .unwrap();
        let dst = |t: &mut T, name: &[u8]| t.sw(0, 0x22, 0x81, 0xB6, &tlv::encode(0x83, name), 0);
        for i in 0..=crate::session::MAX_SESSION_CERTS {
            let name = alloc::format!("ZZPHSMTEST{i:06}");
            let chain = test_chain(name.as_bytes(), &point).unwrap();
            let (dev, _) = cvc::Cvc::parse(&chain).unwrap();
            assert_eq!(dst(&mut t, TEST_DICA), 0x9000);
            let sw = t.sw(0, 0x2A, 0, 0xBE, dev.raw, 0);
            if i < crate::session::MAX_SESSION_CERTS {
                assert_eq!(sw, 0x9000, "certificate {i}");
                assert_eq!(dst(&mut t, name.as_bytes()), 0x9000, "known in the session");
            } else {
                assert_eq!(sw, 0x6A84, "bounded");
            }
        }
        assert_eq!(t.image_len(), before, "the flash image did not grow");
        t.select();
        assert_eq!(
            dst(&mut t, b"ZZPHSMTEST000000"),
            0x6A88,
            "forgotten at SELECT"
        );
    }
}
