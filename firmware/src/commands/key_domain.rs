//! KEY DOMAIN (INS 52, docs/protocol.md §7.4): P2 = domain. P1 00: status, or import a
//! 32-byte DKEK share; 01: set a domain up with n shares; 03: delete an
//! empty domain; 04: clear its DKEK. 02 (XKEK domains) is not offered.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::dkek::{self, Domain};
use crate::keys;
use crate::Card;

fn need_pin_session(card: &Card) -> Result<(), StatusWord> {
    if card.session.mkek.is_some() {
        Ok(())
    } else {
        Err(StatusWord::CONDITIONS)
    }
}

/// Runs KEY DOMAIN.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let table = dkek::domains(card)?;
    let d = cmd.p2 as usize;
    if cmd.p1 > 4 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let dom = *table.get(d).ok_or(StatusWord::WRONG_P1P2)?;
    match cmd.p1 {
        0x00 if cmd.data.is_empty() => {
            if dom.total == 0xFF {
                return Err(StatusWord::REF_NOT_FOUND);
            }
            Ok(dom.status())
        }
        0x00 => {
            if cmd.data.len() < 32 {
                return Err(StatusWord::WRONG_LENGTH);
            }
            let mut share = zeroize::Zeroizing::new([0u8; 32]);
            share.copy_from_slice(&cmd.data[..32]);
            Ok(dkek::import_share(card, d, &share)?.status())
        }
        0x01 => {
            need_pin_session(card)?;
            if cmd.data.len() != 1 || cmd.data[0] == 0 || cmd.data[0] == 0xFF {
                return Err(StatusWord::WRONG_LENGTH);
            }
            if dom.total != 0xFF {
                return Err(StatusWord::FILE_EXISTS);
            }
            let new = Domain {
                total: cmd.data[0],
                imported: 0,
                kcv: [0; 8],
            };
            dkek::clear_value(card, d);
            dkek::set_domain(card, d, new)?;
            Ok(new.status())
        }
        0x03 | 0x04 => {
            need_pin_session(card)?;
            if dom.total == 0xFF {
                return Err(StatusWord::REF_NOT_FOUND);
            }
            if cmd.p1 == 0x03 {
                let used = card
                    .fs
                    .fids()
                    .filter(|f| {
                        (f >> 8) as u8 == picohsm_wire::codes::fid::KEY_PREFIX && f & 0xFF != 0
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .any(|f| keys::meta(card, f as u8).is_ok_and(|m| m.domain as usize == d));
                if used {
                    return Err(StatusWord::FILE_EXISTS);
                }
            }
            let new = if cmd.p1 == 0x03 {
                Domain {
                    total: 0xFF,
                    imported: 0xFF,
                    kcv: [0; 8],
                }
            } else {
                Domain {
                    total: dom.total,
                    imported: 0,
                    kcv: [0; 8],
                }
            };
            dkek::clear_value(card, d);
            dkek::set_domain(card, d, new)?;
            Ok(new.status())
        }
        _ => Err(StatusWord::FUNC_NOT_SUPPORTED),
    }
}
