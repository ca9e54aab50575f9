//! UPDATE BINARY (INS D7 with offset and data DOs, docs/protocol.md §3.6): create, replace or
//! patch a file. Needs the user state. Keys are written only by the card.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::fid;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::read_binary::internal;
use crate::commands::require_auth;
use crate::Card;

/// Whether the host may write this file.
pub fn writable(f: u16) -> Result<(), StatusWord> {
    let prefix = (f >> 8) as u8;
    if internal(f) || prefix == fid::KEY_PREFIX {
        return Err(StatusWord::SECURITY_STATUS);
    }
    match f {
        fid::EF_DIR | fid::EF_ATR => return Err(StatusWord::NOT_ALLOWED),
        fid::EF_DEVAUT | fid::EF_TOKENINFO | fid::EF_UNWRAP => return Ok(()),
        _ => {}
    }
    match prefix {
        fid::PRKD_PREFIX
        | fid::CD_PREFIX
        | fid::DCOD_PREFIX
        | fid::CA_CERT_PREFIX
        | fid::PROT_DATA_PREFIX
        | fid::EE_CERT_PREFIX
        | fid::DATA_PREFIX => Ok(()),
        _ => Err(StatusWord::FILE_NOT_FOUND),
    }
}

/// Runs UPDATE BINARY.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_auth(card)?;
    let f = u16::from_be_bytes([cmd.p1, cmd.p2]);
    let target = if f == 0 {
        card.session.selected_ef.ok_or(StatusWord::NOT_ALLOWED)?
    } else {
        f
    };
    writable(target)?;
    let (offset, data) =
        picohsm_wire::cmd::file::parse_update_body(cmd.data).ok_or(StatusWord::WRONG_DATA)?;
    let mut content = if offset == 0 {
        Vec::new()
    } else {
        card.fs
            .get(target)
            .map(|c| c.to_vec())
            .ok_or(StatusWord::FILE_NOT_FOUND)?
    };
    if offset > content.len() {
        return Err(StatusWord::WRONG_DATA);
    }
    let end = offset + data.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[offset..end].copy_from_slice(data);
    card.fs.put(target, content)?;
    card.session.selected_ef = Some(target);
    Ok(Vec::new())
}
