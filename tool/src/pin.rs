//! `pin change` (CHANGE REFERENCE DATA, docs/protocol.md §5.2) and `pin unblock` (RESET
//! RETRY COUNTER with the SO-PIN, docs/protocol.md §5.3).

use picohsm_pkcs11::card::error::pin_name;
use picohsm_pkcs11::card::PinState;
use picohsm_wire::codes::pin_ref;
use serde_json::{json, Value};

use crate::cli::{change_values, ChangeArgs, Cli, UnblockArgs};
use crate::device::Device;
use crate::fail::{Failure, Res};
use crate::list::PinInfo;
use crate::out::Out;

/// Runs `pin change`.
pub fn change(cli: &Cli, a: &ChangeArgs, out: &mut Out) -> Res<Value> {
    let (old, new) = change_values(a).map_err(|e| {
        Failure::usage(e).hint(if a.so {
            "SO-PINs are 16 hex digits"
        } else {
            "the current PIN has 1 to 16 characters, the new one 6 to 16"
        })
    })?;
    let reference = if a.so { pin_ref::SO } else { pin_ref::USER };
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    dev.run_session(|c, _| c.change_pin(reference, &old, &new))?;
    let name = pin_name(reference);
    out.line(format!(
        "Changed the {name} of the device in \"{}\"",
        dev.reader
    ));
    Ok(json!({ "reader": dev.reader, "changed": if a.so { "so-pin" } else { "user-pin" } }))
}

/// Runs `pin unblock`.
pub fn unblock(cli: &Cli, a: &UnblockArgs, out: &mut Out) -> Res<Value> {
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    let after = dev.run_session(|c, _| {
        c.reset_retry_counter(&a.so_pin.0, a.new_pin.as_ref().map(|p| p.0.as_slice()))?;
        c.pin_state(pin_ref::USER)
    })?;
    let info = PinInfo::of(after);
    out.line(format!(
        "Unblocked the user PIN of the device in \"{}\"{}: {}",
        dev.reader,
        if a.new_pin.is_some() {
            " and set the new PIN"
        } else {
            ""
        },
        info.words()
    ));
    if after == PinState::Blocked {
        out.warn("the card still reports the PIN blocked");
    }
    Ok(json!({ "reader": dev.reader, "new_pin": a.new_pin.is_some(), "user_pin": info }))
}
