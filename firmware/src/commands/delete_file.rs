//! DELETE FILE (INS E4, docs/protocol.md §3.7): by FID in the data, or the current EF.
//! Needs the user state; the device key and generated files stay.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::fid;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::read_binary::internal;
use crate::commands::require_auth;
use crate::Card;

/// Runs DELETE FILE.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_auth(card)?;
    if !matches!(cmd.p1, 0x00 | 0x02) || cmd.p2 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let target = match cmd.data.len() {
        0 => card.session.selected_ef.ok_or(StatusWord::NOT_ALLOWED)?,
        2 => u16::from_be_bytes([cmd.data[0], cmd.data[1]]),
        _ => return Err(StatusWord::WRONG_LENGTH),
    };
    if internal(target) || target == fid::DEVICE_KEY {
        return Err(StatusWord::SECURITY_STATUS);
    }
    if matches!(target, fid::EF_DIR | fid::EF_ATR) {
        return Err(StatusWord::NOT_ALLOWED);
    }
    if !card.fs.remove(target) {
        return Err(StatusWord::FILE_NOT_FOUND);
    }
    if card.session.selected_ef == Some(target) {
        card.session.selected_ef = None;
    }
    Ok(Vec::new())
}
