//! `pka login`: a test login through the module's own PKA round
//! (`picohsm_pkcs11::pka::round`), reporting each step: the device name,
//! the challenge, which authenticator signed, MSE SET AT, EXTERNAL
//! AUTHENTICATE and the quorum (docs/protocol.md §6.7). With m-of-n it waits for the next
//! authenticator token. The device is logged out at the end (SELECT): a
//! test must not leave a granted session behind.

use std::time::{Duration, Instant};

use picohsm_pkcs11::card::PinState;
use picohsm_pkcs11::pka::round::{self, Primary};
use picohsm_pkcs11::settings::{AuthenticatorSpec, Config};
use picohsm_pkcs11::vendor;
use picohsm_wire::codes::pin_ref;
use serde_json::{json, Value};

use crate::cli::{AuthenticatorArgs, Cli, LoginArgs};
use crate::device::{self, Device};
use crate::fail::{from_module, Failure, Res};
use crate::out::{Out, Progress};

/// The authenticators: the command line's, else the module's configuration.
pub fn config(a: &AuthenticatorArgs) -> Res<Config> {
    let mut c = Config::load(None).map_err(|_| {
        Failure::usage("the module's configuration file does not parse, or others can write it")
            .hint("fix the file named by PICOHSM_PKCS11_CONFIG or ~/.config/picohsm-pkcs11/config.toml (see the module's documentation)")
    })?;
    let mut specs = Vec::new();
    for r in &a.authenticator_reader {
        specs.push(AuthenticatorSpec::SmartcardHsm {
            reader: Some(r.clone()),
            key_label: a.authenticator_key_label.clone(),
            chr: None,
        });
    }
    if let Some(m) = &a.authenticator_module {
        specs.push(AuthenticatorSpec::Pkcs11 {
            module: m.clone(),
            token_label: a.authenticator_token_label.clone(),
            key_label: a.authenticator_key_label.clone(),
            key_id: None,
        });
    }
    if specs.is_empty() && a.authenticator_key_label.is_some() {
        specs.push(AuthenticatorSpec::SmartcardHsm {
            reader: None,
            key_label: a.authenticator_key_label.clone(),
            chr: None,
        });
    }
    if !specs.is_empty() {
        c.authenticators = specs;
    }
    c.allow_test_chains |= a.allow_test_chain;
    c.device_roots.extend(a.device_root.iter().cloned());
    Ok(c)
}

/// Runs `pka login`.
pub fn run(cli: &Cli, a: &LoginArgs, out: &mut Out) -> Res<Value> {
    let config = config(&a.authenticators)?;
    let pcsc = device::pcsc()?;
    let reader = device::choose(&pcsc, cli.reader.as_deref())?;
    let mut dev = Device::connect(&pcsc, &reader)?;
    // SELECT first: a test login starts from a session of its own.
    let (device_name, user_pin) = dev
        .run(|c| {
            c.select_applet()?;
            Ok((
                c.device_name()?.unwrap_or_default(),
                c.pin_state(pin_ref::USER)?,
            ))
        })
        .map_err(device::not_hsm(&reader))?;
    out.step(format!(
        "device: {device_name} in \"{reader}\" (SELECT: a new session)"
    ));
    let (status, rounds) = quorum(
        &mut dev,
        &pcsc,
        &reader,
        &config,
        &a.pin.0,
        a.authenticators.wait,
        out,
    )?;
    out.step(format!(
        "quorum: {} of {} required keys accepted, the device granted the user state",
        status.authenticated, status.required
    ));
    let pin_verified = match &a.primary_pin {
        Some(p) => {
            if let Err(e) = dev.run(|c| c.verify(pin_ref::USER, &p.0)) {
                let _ = dev.run(|c| c.select_applet());
                return Err(e);
            }
            out.step("user PIN: verified (the keys are unlocked)");
            true
        }
        None => {
            if !matches!(user_pin, PinState::Absent) {
                out.step("user PIN: not verified: keys stay locked until it is (--primary-pin)");
            }
            false
        }
    };
    dev.run(|c| c.select_applet())?;
    out.step("logged out again (SELECT): this was a test login");
    out.line(format!(
        "PKA login succeeded: {} authenticated public key(s) in {} of {} scheme",
        status.authenticated, status.required, status.total
    ));
    Ok(json!({
        "reader": reader,
        "device_name": device_name,
        "granted": true,
        "authenticated": status.authenticated,
        "required": status.required,
        "total": status.total,
        "pin_verified": pin_verified,
        "rounds": rounds,
    }))
}

/// Runs PKA rounds on the primary `dev` (applet selected, no SELECT in
/// between) until the quorum: one round per authenticator, each step said
/// on `out`, waiting up to `wait` seconds for the next authenticator token.
/// The authenticators are unlocked with `auth_pin`. The granted session
/// stays open for the caller (`pka register` registers in it). Returns the
/// final status and the number of rounds run.
#[allow(clippy::too_many_arguments)]
pub fn quorum(
    dev: &mut Device,
    pcsc: &picohsm_pkcs11::transport::pcsc::Pcsc,
    reader: &str,
    config: &Config,
    auth_pin: &[u8],
    wait: u64,
    out: &mut Out,
) -> Res<(picohsm_pkcs11::card::PkaStatus, u32)> {
    let mut progress = round::Progress::default();
    let mut known = round::Known::default();
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut waiting: Option<Progress> = None;
    let mut rounds = 0u32;
    let mut challenge_shown: Option<Vec<u8>> = None;
    loop {
        let mut said = Vec::new();
        let mut primary = Primary {
            transport: &mut dev.transport,
            progress: &mut progress,
            known: &mut known,
            status: None,
        };
        let r = round::one_round(
            &mut primary,
            config,
            pcsc,
            reader,
            &mut &auth_pin[..],
            &mut |s| said.push(s),
        );
        let waitable = matches!(
            &r,
            Err(e) if e.rv == vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING
                || e.rv == vendor::CKR_PICOHSM_KEY_NOT_REGISTERED
        );
        if waitable && Instant::now() < deadline {
            if waiting.is_none() {
                for s in said {
                    out.step(s);
                }
                let e = r.as_ref().expect_err("a waitable error");
                out.step(format!(
                    "waiting up to {} s for the next authenticator token: {}",
                    wait,
                    from_module(*e).message
                ));
                waiting = Some(Progress::start("waiting for an authenticator token"));
            }
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        if let Some(p) = waiting.take() {
            drop(p);
        }
        for s in said {
            out.step(s);
        }
        match r {
            Ok(st) => {
                rounds += 1;
                if let Some(c) = &progress.challenge {
                    if challenge_shown.as_ref() != Some(c) {
                        out.step(format!("challenge: {}", hex::encode_upper(c)));
                        challenge_shown = Some(c.clone());
                    }
                }
                if st.granted() {
                    return Ok((st, rounds));
                }
            }
            Err(e) if waitable && rounds > 0 => {
                return Err(from_module(picohsm_pkcs11::error::Error::new(
                    vendor::CKR_PICOHSM_PKA_MORE_NEEDED,
                    "more authenticators needed",
                ))
                .hint(format!(
                    "{} (connect the next authenticator within --wait seconds)",
                    from_module(e).message
                )));
            }
            Err(e) => return Err(from_module(e)),
        }
    }
}
