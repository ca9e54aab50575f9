//! MANAGE SECURITY ENVIRONMENT (INS 22, P1 81): SET DST (P2 B6) chooses the
//! issuer for PSO VERIFY CERTIFICATE (docs/protocol.md §6.4); SET AT (P2 A4) chooses the
//! registered key for EXTERNAL AUTHENTICATE (docs/protocol.md §6.7). Both name it in tag 83.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use crate::apdu::Response;
use crate::pka;
use crate::Card;

/// Runs MSE SET.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p1 != 0x81 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let items = tlv::parse_all(cmd.data).map_err(|_| StatusWord::WRONG_DATA)?;
    if cmd.p2 == 0xA4 && items.iter().any(|t| t.tag == 0x80) {
        // A protocol OID: secure messaging set-up, not offered (docs/protocol.md §9.3).
        return Err(StatusWord::FUNC_NOT_SUPPORTED);
    }
    let name = items
        .iter()
        .find(|t| t.tag == 0x83)
        .ok_or(StatusWord::WRONG_DATA)?
        .value;
    match cmd.p2 {
        0xB6 => {
            if name.len() == 1 {
                // A key reference, not a name: nothing to select (as upstream).
                return Ok(Vec::new());
            }
            let cert = pka::find_issuer(card, name).ok_or(StatusWord::REF_NOT_FOUND)?;
            card.session.issuer = Some(cert);
            Ok(Vec::new())
        }
        0xA4 => {
            let p = pka::params(card).ok_or(StatusWord::REF_NOT_FOUND)?;
            let slot = (0..p.n as usize)
                .find(|i| {
                    pka::slot(card, *i)
                        .and_then(|r| {
                            picohsm_wire::cvc::AuthRequest::parse(r)
                                .ok()
                                .map(|r| r.cert.chr == name)
                        })
                        .unwrap_or(false)
                })
                .ok_or(StatusWord::REF_NOT_FOUND)?;
            if card.session.pka_status[slot] {
                return Err(StatusWord::CONDITIONS);
            }
            card.session.pka_selected = Some(slot);
            Ok(Vec::new())
        }
        _ => Err(StatusWord::WRONG_P1P2),
    }
}
