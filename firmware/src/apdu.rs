//! The APDU layer, done once for every instruction (docs/protocol.md §1):
//! length parsing, command chaining (CLA bit 0x10), response chaining with
//! 61xx and GET RESPONSE, and the mapping of a command's result to bytes.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::ins;
use picohsm_wire::sw::StatusWord;

use crate::{commands, Card};

/// Largest command data accepted after chaining.
pub const MAX_COMMAND_DATA: usize = 65535 + 4096;

/// State of the APDU layer between commands.
#[derive(Default)]
pub struct Io {
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    pending: Vec<u8>,
}

/// What a command returns: response data, or the status word of its failure.
pub type Response = Result<Vec<u8>, StatusWord>;

fn with_sw(mut data: Vec<u8>, sw: StatusWord) -> Vec<u8> {
    data.extend_from_slice(&sw.to_bytes());
    data
}

fn sw_only(sw: StatusWord) -> Vec<u8> {
    sw.to_bytes().to_vec()
}

/// Hands out up to `ne` bytes of `data`, keeping the rest for GET RESPONSE.
fn deliver(io: &mut Io, mut data: Vec<u8>, ne: usize, ok: StatusWord) -> Vec<u8> {
    if ne == 0 || data.len() <= ne {
        return with_sw(data, ok);
    }
    let rest = data.split_off(ne);
    let sw = StatusWord::more_data(rest.len());
    io.pending = rest;
    with_sw(data, sw)
}

/// Processes one command APDU.
pub fn transmit(card: &mut Card, raw: &[u8]) -> Vec<u8> {
    let cmd = match Command::parse(raw) {
        Ok(c) => c,
        Err(sw) => {
            card.io = Io::default();
            return sw_only(sw);
        }
    };
    if cmd.cla & 0x03 != 0 {
        return sw_only(StatusWord::CHANNEL_NOT_SUPPORTED);
    }
    if cmd.cla & 0x0C != 0 {
        // Secure messaging (docs/protocol.md §9.3) is not offered: no SM key was agreed.
        return sw_only(StatusWord::SM_NOT_SUPPORTED);
    }
    if cmd.cla & 0xE0 != 0 && cmd.cla & 0xE0 != 0x80 {
        return sw_only(StatusWord::CLA_NOT_SUPPORTED);
    }
    if cmd.ins == ins::GET_RESPONSE {
        if card.io.pending.is_empty() {
            return sw_only(StatusWord::CONDITIONS);
        }
        let data = core::mem::take(&mut card.io.pending);
        return deliver(&mut card.io, data, cmd.ne, StatusWord::OK);
    }
    card.io.pending.clear();

    // Command chaining: collect the parts, run the command on the last one.
    let chained_data;
    let mut data = cmd.data;
    if let Some((i, p1, p2, _)) = &card.io.chain {
        if (*i, *p1, *p2) != (cmd.ins, cmd.p1, cmd.p2) {
            card.io.chain = None;
            return sw_only(StatusWord::LAST_COMMAND_EXPECTED);
        }
    }
    if cmd.is_chained() {
        let entry = card
            .io
            .chain
            .get_or_insert((cmd.ins, cmd.p1, cmd.p2, Vec::new()));
        if entry.3.len() + cmd.data.len() > MAX_COMMAND_DATA {
            card.io.chain = None;
            return sw_only(StatusWord::WRONG_LENGTH);
        }
        entry.3.extend_from_slice(cmd.data);
        return sw_only(StatusWord::OK);
    }
    if let Some((_, _, _, mut buf)) = card.io.chain.take() {
        buf.extend_from_slice(cmd.data);
        chained_data = buf;
        data = &chained_data;
    }
    let full = Command {
        data,
        ..cmd.clone()
    };
    card.ok_sw = None;
    let result = commands::dispatch(card, &full);
    // A command that failed must not leave half its changes behind.
    match result {
        Ok(resp) => match card.fs.commit() {
            Ok(()) => {
                let ok = card.ok_sw.take().unwrap_or(StatusWord::OK);
                deliver(&mut card.io, resp, cmd.ne, ok)
            }
            Err(sw) => sw_only(sw),
        },
        Err(sw) => {
            // Counters (PIN tries) are committed by the command itself before
            // it fails; anything else uncommitted is dropped.
            card.fs.rollback();
            sw_only(sw)
        }
    }
}
