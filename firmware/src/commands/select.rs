//! SELECT (INS A4): the applet by AID (docs/protocol.md §2.3) and EFs by FID or path (docs/protocol.md §3.4).

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::cmd::device::{AppletInfo, TAG_FCP, TAG_FCP_PROPRIETARY};
use picohsm_wire::codes::{fid, AID, VERSION};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use crate::apdu::Response;
use crate::commands::read_binary;
use crate::Card;

/// FCP of an EF: size, type, FID, life cycle "activated".
pub fn ef_fcp(fid: u16, size: usize, kind: u8) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, 0x81, &(size.min(0xFFFF) as u16).to_be_bytes());
    tlv::push(&mut v, 0x82, &[kind]);
    tlv::push(&mut v, 0x83, &fid.to_be_bytes());
    tlv::push(&mut v, 0x8A, &[0x05]);
    tlv::encode(0x62, &v)
}

fn applet_fcp(card: &Card) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, 0x81, &[0, 0]);
    tlv::push(&mut v, 0x82, &[0x01]);
    tlv::push(&mut v, 0x83, &[0, 0]);
    tlv::push(&mut v, 0x84, AID);
    tlv::push(&mut v, 0x8A, &[0x05]);
    let info = AppletInfo {
        options: card.options(),
        version: VERSION,
    };
    tlv::push(&mut v, TAG_FCP_PROPRIETARY, &info.encode_proprietary());
    tlv::encode(TAG_FCP, &v)
}

/// Runs SELECT.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let want_fcp = cmd.p2 & 0x0C == 0;
    if cmd.p2 & 0x0C == 0x0C || cmd.p2 & 0xF0 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if cmd.p1 == 0x04 {
        if cmd.data.is_empty() || cmd.data.len() > AID.len() || AID[..cmd.data.len()] != *cmd.data {
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        // Selecting the applet is a logout (docs/protocol.md §2.3).
        card.session.clear();
        card.applet_selected = true;
        return Ok(if want_fcp {
            applet_fcp(card)
        } else {
            Vec::new()
        });
    }
    if !card.applet_selected {
        return Err(StatusWord::FILE_NOT_FOUND);
    }
    let target = match (cmd.p1, cmd.data.len()) {
        (0x00, 0) => 0x3F00,
        (0x00..=0x02, 2) => u16::from_be_bytes([cmd.data[0], cmd.data[1]]),
        (0x08 | 0x09, n) if n >= 2 && n % 2 == 0 => {
            u16::from_be_bytes([cmd.data[n - 2], cmd.data[n - 1]])
        }
        (0x00..=0x02 | 0x08 | 0x09, _) => return Err(StatusWord::WRONG_LENGTH),
        _ => return Err(StatusWord::WRONG_P1P2),
    };
    if target == 0x3F00 {
        card.session.selected_ef = None;
        let mut v = Vec::new();
        tlv::push(&mut v, 0x82, &[0x38]);
        tlv::push(&mut v, 0x83, &[0x3F, 0x00]);
        tlv::push(&mut v, 0x8A, &[0x05]);
        return Ok(if want_fcp {
            tlv::encode(0x62, &v)
        } else {
            Vec::new()
        });
    }
    let size = if target >> 8 == fid::KEY_PREFIX as u16 {
        // Keys can be selected (they exist) but never read.
        if !card.fs.exists(target) {
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        0
    } else {
        read_binary::content(card, target)
            .ok_or(StatusWord::FILE_NOT_FOUND)?
            .len()
    };
    card.session.selected_ef = Some(target);
    Ok(if want_fcp {
        ef_fcp(target, size, 0x01)
    } else {
        Vec::new()
    })
}
