//! ENUMERATE OBJECTS (INS 58, docs/protocol.md §3.8): the FIDs of keys and descriptors, in
//! the firmware's order (`C400`, `CC00`, then `CCxx`, `C4xx`, `C8xx`, `C9xx`).
//! No authentication needed.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::fid;

use crate::apdu::Response;
use crate::commands::require_p1p2;
use crate::Card;

/// Runs ENUMERATE OBJECTS.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_p1p2(cmd, 0, 0)?;
    let mut out = Vec::new();
    for first in [0xC400u16, fid::DEVICE_KEY] {
        if card.fs.exists(first) {
            out.extend_from_slice(&first.to_be_bytes());
        }
    }
    for prefix in [
        fid::KEY_PREFIX,
        fid::PRKD_PREFIX,
        fid::CD_PREFIX,
        fid::DCOD_PREFIX,
    ] {
        for f in card.fs.fids() {
            if (f >> 8) as u8 == prefix && f != 0xC400 && f != fid::DEVICE_KEY {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
    }
    Ok(out)
}
