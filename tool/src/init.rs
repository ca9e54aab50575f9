//! `init`: INITIALIZE DEVICE with the SO-PIN, the user PIN, PKA n-of-m and
//! DKEK shares in one command (docs/protocol.md §4.1), then the label. PKA and a PIN in one
//! step is what SCS3 cannot do (docs/protocol.md §6.8): it needs PKA first, then a "Reset
//! User-PIN" with the SO-PIN.

use picohsm_pkcs11::card::{InitParams, PinState};
use picohsm_wire::codes::{opt, pin_ref};
use serde_json::{json, Value};

use crate::cli::{Cli, InitArgs};
use crate::device::Device;
use crate::fail::{Failure, Res};
use crate::out::{Out, Progress};

/// Runs `init`.
pub fn run(cli: &Cli, a: &InitArgs, out: &mut Out) -> Res<Value> {
    let pka = match (a.pka_keys, a.pka_required) {
        (None, _) => None,
        (Some(n), m) => {
            let m = m.unwrap_or(1);
            if m > n {
                return Err(Failure::usage(format!(
                    "--pka-required {m} is more than --pka-keys {n}"
                ))
                .hint("m keys of n are required per login: m must not exceed n"));
            }
            Some((n, m))
        }
    };
    let mut options = 0u16;
    if !a.no_pin_reset {
        options |= opt::RRC;
    }
    if a.replace_pka {
        options |= opt::REPLACE_PKA;
    }
    if a.reset_counter_only {
        options |= opt::RRC_RESET_ONLY;
    }
    let params = InitParams {
        options,
        user_pin: a.pin.as_ref().map(|p| p.0.to_vec()),
        so_pin: *a.so_pin.0,
        pin_retries: a.pin_retries,
        dkek_shares: a.dkek_shares,
        pka,
        key_domains: None,
    };
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    let so_state = dev.run_selected(|c, _| c.pin_state(pin_ref::SO))?;
    if so_state != PinState::Absent && !a.force {
        return Err(Failure::usage(format!(
            "the device in \"{}\" is already initialised; init erases every key, certificate and registered PKA key on it",
            dev.reader
        ))
        .hint("add --force to initialise it anyway (with its current SO-PIN)"));
    }
    let (label_written, free, ours) = {
        let _p = Progress::start(format!("initialising the device in \"{}\"", dev.reader));
        dev.run(|c| {
            c.initialize(&params)?;
            // INITIALIZE left this session authenticated (docs/protocol.md §4.1): the label
            // is written in it, then a SELECT ends it.
            let written = match &a.label {
                Some(label) if c.tokeninfo_writable()? => {
                    c.write_label(label)?;
                    Some(true)
                }
                Some(_) => Some(false),
                None => None,
            };
            c.select_applet()?;
            let free = c.version()?.map(|v| v.free);
            // This project's firmware names itself in EF.TokenInfo.
            let ours = c.tokeninfo_writable()?;
            Ok((written, free, ours))
        })?
    };
    if label_written == Some(false) {
        out.warn(
            "the label was not written: this device's firmware does not accept a write of EF.TokenInfo (2F03)",
        );
    }
    out.line(format!("Initialised the device in \"{}\":", dev.reader));
    out.line(match &a.pin {
        Some(_) => format!("  user PIN      set, {} tries", a.pin_retries),
        // What a PKA-only device does with its keys is the firmware's:
        // this project's seals them under the device secret, which the
        // quorum unlocks; the upstream Pico HSM firmware keeps asking for a
        // user PIN before any key is used.
        None if ours => {
            "  user PIN      none (PKA only: this firmware seals the keys under the device secret, and the PKA quorum unlocks them)".into()
        }
        None => "  user PIN      none (PKA only: this device's firmware still wants a user PIN before keys can be used; the upstream Pico HSM firmware does)".into(),
    });
    out.line("  SO-PIN        set, 15 tries");
    match pka {
        Some((n, m)) => out.line(format!(
            "  PKA           0 authenticated public key(s) in {m} of {n} scheme, {n} to register"
        )),
        None => out.line("  PKA           off"),
    }
    match a.dkek_shares {
        Some(0) => out.line("  DKEK          random, made by the device"),
        Some(s) => out.line(format!("  DKEK          {s} share(s) to import")),
        None => out.line("  DKEK          none"),
    }
    if let Some(l) = &a.label {
        if label_written == Some(true) {
            out.line(format!("  label         {l}"));
        }
    }
    if let Some((n, _)) = pka {
        out.line(format!(
            "Next: register {n} public key(s) with picohsm-tool pka register FILE {}",
            if a.pin.is_some() {
                "--pin <PIN>"
            } else {
                "--so-pin <SO-PIN>"
            }
        ));
    }
    if matches!(a.dkek_shares, Some(s) if s > 0) {
        out.line("Next: import the DKEK shares (sc-hsm-tool --import-dkek-share FILE)");
    }
    Ok(json!({
        "reader": dev.reader,
        "user_pin": a.pin.is_some(),
        "pin_retries": a.pin_retries,
        "pka": pka.map(|(n, m)| json!({ "total": n, "required": m })),
        "dkek_shares": a.dkek_shares,
        "label": if label_written == Some(true) { a.label.clone() } else { None },
        "options": format!("{options:04X}"),
        "free_memory": free,
    }))
}
