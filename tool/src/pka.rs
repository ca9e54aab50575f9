//! `pka export`, `pka register`, `pka status` (docs/protocol.md §6.3-§6.6).
//!
//! `pka register` on a device with m keys registered already runs a PKA
//! login first (`--auth-pin`, the authenticators as for `pka login`), since
//! our firmware then wants the quorum as well as the PIN (docs/protocol.md §6.3).

use std::fs;

use picohsm_pkcs11::card::files::serial_of;
use picohsm_pkcs11::card::keys::{KeyEntry, OPENSC_CAR};
use picohsm_pkcs11::card::pka::PkaFile;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::cvc::Cvc;
use serde_json::{json, Value};

use crate::cli::{Cli, ExportArgs, RegisterArgs};
use crate::device::Device;
use crate::fail::{Failure, Res};
use crate::list::{pka_info, PkaInfo};
use crate::out::Out;
use crate::p11export;

/// Writes a PKA file, saying where.
pub fn write_file(path: &std::path::Path, data: &[u8]) -> Res<()> {
    fs::write(path, data).map_err(|e| {
        Failure::card(format!("cannot write {}: {e}", path.display()))
            .hint("choose a writable path with -o")
    })
}

/// The key `--key-ref` / `--key-label` / `--chr` names, or the only one.
fn choose_key(keys: &[KeyEntry], a: &ExportArgs) -> Res<KeyEntry> {
    let chosen: Vec<&KeyEntry> = keys
        .iter()
        .filter(|k| a.key_ref.is_none_or(|r| k.key_ref == r))
        .filter(|k| a.key_label.as_deref().is_none_or(|n| k.label == n))
        .filter(|k| {
            a.chr
                .as_deref()
                .is_none_or(|c| k.chr.as_deref() == Some(c.as_bytes()))
        })
        .collect();
    let names = || {
        keys.iter()
            .map(|k| {
                format!(
                    "{} \"{}\" {} {}",
                    k.key_ref,
                    k.label,
                    k.kind,
                    k.chr
                        .as_ref()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match chosen.as_slice() {
        [k] => Ok((*k).clone()),
        [] if keys.is_empty() => Err(Failure::card("the device has no key")
            .hint("generate one with picohsm-tool keygen --pin <PIN>")),
        [] => Err(
            Failure::usage(format!("no key matches; the keys: {}", names()))
                .hint("choose one with --key-ref, --key-label or --chr"),
        ),
        _ => Err(Failure::usage(format!("several keys match: {}", names()))
            .hint("choose one with --key-ref, --key-label or --chr")),
    }
}

/// Runs `pka export`.
pub fn export(cli: &Cli, a: &ExportArgs, out: &mut Out) -> Res<Value> {
    if a.pkcs11_module.is_some() {
        return p11export::run(a, out);
    }
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    let keys = dev.run_selected(|c, _| c.keys())?;
    let key = choose_key(&keys, a)?;
    let file = dev.run_selected(|c, _| c.export(key.key_ref))?;
    let encoded = file.encode();
    write_file(&a.output, &encoded)?;
    let chr = String::from_utf8_lossy(&file.chr().map_err(Failure::from)?).into_owned();
    let device = file
        .device
        .as_deref()
        .and_then(|d| Cvc::parse(d).ok())
        .map(|(c, _)| String::from_utf8_lossy(c.chr).into_owned());
    let chain = file.device.iter().count() + file.issuers.len();
    out.line(format!(
        "Wrote {}: key {} \"{}\" ({}), CHR {chr}, made by device {}, {chain} certificate(s)",
        a.output.display(),
        key.key_ref,
        key.label,
        key.kind,
        device.as_deref().unwrap_or("-")
    ));
    if chain < 2 {
        out.warn("the device's chain has fewer than 2 certificates: sc-hsm-tool cannot read this file, picohsm-tool can");
    }
    for w in name_warnings(&file, device.as_deref()) {
        out.warn(w);
    }
    out.line(format!(
        "Register it on the PKA device: picohsm-tool pka register {} --pin <PIN>",
        a.output.display()
    ));
    Ok(json!({
        "file": a.output,
        "key_ref": key.key_ref,
        "label": key.label,
        "chr": chr,
        "device": device,
        "certificates": chain,
        "self_signed": false,
    }))
}

/// What a primary will make of the key's names: a CHR that is the shared
/// device serial and a number (OpenSC's `<serial>00001`) is the name of
/// other devices' keys too, and OpenSC's placeholder CAR `UTCA00001` is
/// refused by the upstream firmware at PKA login (6985).
fn name_warnings(file: &PkaFile, device: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(req) = file.parsed() else {
        return out;
    };
    let chr = String::from_utf8_lossy(req.cert.chr).into_owned();
    let serial = device.map(serial_of);
    let bare = serial.is_some_and(|s| {
        !s.is_empty()
            && chr.len() == s.len() + 5
            && chr.starts_with(&s)
            && chr.as_bytes()[s.len()..].iter().all(u8::is_ascii_digit)
    });
    if bare {
        out.push(format!(
            "the key's name {chr} is the device serial and a number: every Pico HSM has the serial ESPICOHSMTR, so another device's key may have this very name, and a primary tells registered keys apart by name only (picohsm-tool keygen names keys after the whole device name)"
        ));
    }
    if req.cert.car == Some(OPENSC_CAR) {
        out.push(
            "the key's request has OpenSC's placeholder CAR UTCA00001: a primary on the upstream Pico HSM firmware refuses it at PKA login (6985); this project's firmware takes it. Keys made by picohsm-tool keygen or this project's module have CAR = CHR"
                .into(),
        );
    }
    out
}

/// Prints the PKA state in the documentation's words.
fn print_status(out: &mut Out, p: &PkaInfo) {
    out.line(format!(
        "{}{}",
        p.words(),
        if p.granted { " (granted)" } else { "" }
    ));
    out.line(format!(
        "  registered    {} of {}, {} missing",
        p.registered, p.total, p.missing
    ));
    for k in &p.keys {
        out.line(format!(
            "  slot {}        {}{}",
            k.slot,
            k.chr,
            if k.authenticated {
                " (authenticated)"
            } else {
                ""
            }
        ));
    }
}

/// Runs `pka register`.
pub fn register(cli: &Cli, a: &RegisterArgs, out: &mut Out) -> Res<Value> {
    let data = fs::read(&a.file).map_err(|e| {
        Failure::usage(format!("cannot read {}: {e}", a.file.display()))
            .hint("give the file written by picohsm-tool pka export or sc-hsm-tool --export-for-pub-key-auth")
    })?;
    let file = PkaFile::parse(&data).map_err(|e| {
        Failure::usage(format!("{}: {e}", a.file.display()))
            .hint("give the file written by picohsm-tool pka export or sc-hsm-tool --export-for-pub-key-auth")
    })?;
    let chr = String::from_utf8_lossy(&file.chr().map_err(Failure::from)?).into_owned();
    let (pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    out.step(format!(
        "registering {chr} on the device in \"{}\"",
        dev.reader
    ));
    let Some(before) = dev.run_selected(|c, _| pka_info(c))? else {
        return Err(
            Failure::card(format!("the device in \"{}\" has no PKA", dev.reader))
                .hint("initialise it with picohsm-tool init --pka-keys N [--pka-required M]"),
        );
    };
    // The device picks a registered key by its name (MSE SET AT): a second
    // key of the same name is one no login can use. The upstream firmware
    // takes it all the same, so the tool refuses first.
    let twin = before
        .keys
        .iter()
        .find(|k| k.chr == chr && Some(k.slot) != a.replace);
    if let (Some(k), false) = (twin, a.force) {
        return Err(Failure::card(format!(
            "a key named {chr} is already registered in slot {}: the device tells registered keys apart by name, so this one could never log in",
            k.slot
        ))
        .hint("export a key with another name (picohsm-tool keygen names keys after the device), replace that slot with --replace, or register anyway with --force"));
    }
    // Once m keys are registered, our firmware registers a further one only
    // in a session that also reached the PKA quorum (docs/protocol.md §6.3):
    // the PIN alone must not add an authenticator. The login runs first, on
    // this connection, with no SELECT before the registration.
    let quorum_needed = before.registered >= before.required;
    if quorum_needed {
        let Some(auth_pin) = &a.auth_pin else {
            return Err(Failure::usage(format!(
                "the device has {} key(s) registered and needs {} to log in: a further key is registered only after a PKA login (the quorum) in the same session, and no --auth-pin was given for it",
                before.registered, before.required
            ))
            .hint("pass --auth-pin <the authenticators' PIN>, and --authenticator-reader or --authenticator-module as for picohsm-tool pka login"));
        };
        let config = crate::pka_login::config(&a.authenticators)?;
        out.step(format!(
            "{} of {} keys registered: a PKA login first (quorum {})",
            before.registered, before.total, before.required
        ));
        let reader = dev.reader.clone();
        let r = crate::pka_login::quorum(
            &mut dev,
            &pcsc,
            &reader,
            &config,
            &auth_pin.0,
            a.authenticators.wait,
            out,
        );
        if let Err(e) = r {
            let _ = dev.run(|c| c.select_applet().map(|_| ()));
            return Err(e);
        }
        out.step("quorum reached");
    }
    let mut said = Vec::new();
    let r = dev.run_session(|c, _| {
        // HEAD firmware wants a PIN verified in the session (docs/protocol.md §6.3).
        match (&a.so_pin, &a.pin) {
            (Some(so), _) => c.verify(pin_ref::SO, &so.0[..])?,
            (None, Some(pin)) => c.verify(pin_ref::USER, &pin.0)?,
            (None, None) => {}
        }
        said.push(format!(
            "{} verified",
            if a.so_pin.is_some() {
                "SO-PIN"
            } else {
                "user PIN"
            }
        ));
        if file.self_signed() {
            said.push("self-signed request (PKCS#11 key): no device chain".into());
        }
        c.register(&file, a.replace, &mut |s| said.push(s))?;
        pka_info(c)
    });
    if quorum_needed {
        // The login was the tool's own: end it (a logout), success or not.
        let _ = dev.run(|c| c.select_applet().map(|_| ()));
    }
    for s in said {
        out.step(s);
    }
    let info = r?.ok_or_else(|| Failure::card("the device lost its PKA state"))?;
    let slot = info.keys.iter().find(|k| k.chr == chr).map(|k| k.slot);
    out.line(format!(
        "Registered {chr}{}",
        slot.map(|s| format!(" in slot {s}")).unwrap_or_default()
    ));
    print_status(out, &info);
    Ok(json!({
        "reader": dev.reader,
        "chr": chr,
        "slot": slot,
        "pka": info,
    }))
}

/// Runs `pka status`.
pub fn status(cli: &Cli, out: &mut Out) -> Res<Value> {
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    let info = dev.run_selected(|c, _| pka_info(c))?;
    let Some(p) = info else {
        return Err(
            Failure::card(format!("the device in \"{}\" has no PKA", dev.reader))
                .hint("initialise it with picohsm-tool init --pka-keys N [--pka-required M]"),
        );
    };
    print_status(out, &p);
    Ok(json!({
        "reader": dev.reader,
        "status": p.words(),
        "total": p.total,
        "required": p.required,
        "registered": p.registered,
        "missing": p.missing,
        "authenticated": p.authenticated,
        "granted": p.granted,
        "keys": p.keys,
    }))
}
