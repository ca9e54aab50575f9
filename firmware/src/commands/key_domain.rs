//! KEY DOMAIN (INS 52, docs/protocol.md §7.4): P2 = domain. P1 00: status, or import a
//! 32-byte DKEK share; 01: set a domain up with n shares; 03: delete an
//! empty domain; 04: clear its DKEK. 02 (XKEK domains) is not offered.
//!
//! A DKEK share is imported without a PIN session (sc-hsm-tool does it so,
//! docs/protocol.md §7.4) only while the domain holds no key: a share injected
//! by whoever reaches the card first then protects nothing yet, and the
//! owner sees the outstanding count and KCV before any key joins. Once a key
//! is in the domain, a share import needs the user PIN or the SO-PIN
//! verified in the session (6982), since the DKEK it completes would wrap
//! that key. Our firmware's deliberate difference from the upstream firmware.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::dkek::{self, Domain};
use crate::keys;
use crate::Card;

/// Whether any key but the device key belongs to domain `d`.
fn domain_has_keys(card: &Card, d: usize) -> bool {
    card.fs
        .fids()
        .filter(|f| (f >> 8) as u8 == picohsm_wire::codes::fid::KEY_PREFIX && f & 0xFF != 0)
        .collect::<Vec<_>>()
        .into_iter()
        .any(|f| keys::meta(card, f as u8).is_ok_and(|m| m.domain as usize == d))
}

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
            if card.session.mkek.is_none() && domain_has_keys(card, d) {
                return Err(StatusWord::SECURITY_STATUS);
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
            if cmd.p1 == 0x03 && domain_has_keys(card, d) {
                return Err(StatusWord::FILE_EXISTS);
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

#[cfg(test)]
mod tests {
    use crate::commands::testcard::{p256_template, T};

    #[test]
    fn a_share_without_a_pin_only_while_the_domain_is_empty() {
        let mut t = T::new();
        // Two shares; one imported without a PIN (as sc-hsm-tool does).
        t.init(1, true, None, &[0x92, 1, 2]);
        assert_eq!(t.sw(0x80, 0x52, 0, 0, &[1; 32], 256), 0x9000);
        // A key joins domain 0 while a share is outstanding.
        assert_eq!(t.verify_pin(), 0x9000);
        assert_eq!(t.sw(0, 0x46, 1, 0, &p256_template(), 65536), 0x9000);
        t.select();
        assert_eq!(
            t.sw(0x80, 0x52, 0, 0, &[2; 32], 256),
            0x6982,
            "no PIN, a key in the domain"
        );
        assert_eq!(
            t.sw(0x80, 0x52, 0, 0, &[], 256),
            0x9000,
            "status needs nothing"
        );
        assert_eq!(t.verify_so(), 0x9000);
        assert_eq!(
            t.sw(0x80, 0x52, 0, 0, &[2; 32], 256),
            0x9000,
            "with the SO-PIN"
        );
    }
}
