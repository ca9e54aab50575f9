//! PERFORM SECURITY OPERATION: VERIFY CERTIFICATE (INS 2A, P1 00, P2 BE,
//! 92 or AE; docs/protocol.md §6.4). The certificate (with or without its `7F21` header) must
//! be issued by the certificate MSE SET DST chose (6A88 if none) and carry
//! its signature (6985); it is then kept as `CAxx` and joins the issuers the
//! card knows. Unparsable: 6984.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::fid;
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
        let free = (0..=255u16)
            .map(|i| (fid::CA_CERT_PREFIX as u16) << 8 | i)
            .find(|f| !card.fs.exists(*f))
            .ok_or(StatusWord::FILE_FULL)?;
        card.fs.put(free, full.clone())?;
    }
    Ok(Vec::new())
}
