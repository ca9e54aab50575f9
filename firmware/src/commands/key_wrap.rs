//! WRAP KEY (INS 72, P2 92, docs/protocol.md §7.5): export key P1 as a DKEK blob of its key
//! domain. The DKEK must be complete (6A88), the key must allow wrapping if
//! it restricts its algorithms (6985).

use picohsm_wire::apdu::Command;
use picohsm_wire::codes::algo;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_auth;
use crate::keys;
use crate::{dkek, Card};

/// Runs WRAP KEY.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p2 != algo::WRAP {
        return Err(StatusWord::WRONG_PARAMS);
    }
    require_auth(card)?;
    if cmd.p1 == 0 {
        // The device key never leaves the device.
        return Err(StatusWord::SECURITY_STATUS);
    }
    let meta = keys::meta(card, cmd.p1)?;
    let dk = dkek::dkek(card, meta.domain as usize)?;
    if !meta.allows(algo::WRAP) {
        return Err(StatusWord::CONDITIONS);
    }
    let (key, _) = keys::load(card, cmd.p1)?;
    let algs = meta.algorithms.clone().unwrap_or_default();
    dkek::wrap(&dk, &key, &algs, &mut *card.rng)
}
