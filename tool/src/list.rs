//! `list`: every reader, and for each SmartCard-HSM its device name,
//! serial, version, label, PIN states and PKA state. Only status queries
//! are sent (VERIFY without data, MANAGE PKA status/enumerate, READ
//! BINARY), and SELECT only to a card whose applet is not selected.

use picohsm_pkcs11::card::files::serial_of;
use picohsm_pkcs11::card::{Card, CardResult, PinState};
use picohsm_wire::codes::pin_ref;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::device::{self, Device};
use crate::fail::{Failure, Res};
use crate::out::Out;

/// A PIN's state, for both outputs.
#[derive(Debug, Clone, Serialize)]
pub struct PinInfo {
    /// verified, not-verified, blocked, absent, transport.
    pub state: &'static str,
    /// Tries left, when the card tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u8>,
}

impl PinInfo {
    /// From the card driver's state.
    pub fn of(s: PinState) -> PinInfo {
        let (state, tries_left) = match s {
            PinState::Verified => ("verified", None),
            PinState::TriesLeft(n) => ("not-verified", Some(n)),
            PinState::Blocked => ("blocked", Some(0)),
            PinState::Absent => ("absent", None),
            PinState::Transport => ("transport", None),
        };
        PinInfo { state, tries_left }
    }

    /// In words.
    pub fn words(&self) -> String {
        match (self.state, self.tries_left) {
            ("verified", _) => "verified in the current session".into(),
            ("not-verified", Some(n)) => format!("{n} tries left"),
            ("blocked", _) => "blocked".into(),
            ("absent", _) => "not set".into(),
            ("transport", _) => "transport PIN (must be changed before use)".into(),
            _ => self.state.into(),
        }
    }
}

/// The PKA state of a device, for both outputs.
#[derive(Debug, Clone, Serialize)]
pub struct PkaInfo {
    /// n.
    pub total: u8,
    /// m.
    pub required: u8,
    /// Keys registered.
    pub registered: u8,
    /// Keys still to register.
    pub missing: u8,
    /// Keys accepted since the last challenge.
    pub authenticated: u8,
    /// Whether the quorum is reached in the current session.
    pub granted: bool,
    /// The registered keys.
    pub keys: Vec<PkaKey>,
}

/// One registered key.
#[derive(Debug, Clone, Serialize)]
pub struct PkaKey {
    /// Its slot.
    pub slot: u8,
    /// Its CHR.
    pub chr: String,
    /// Accepted in the current round.
    pub authenticated: bool,
}

impl PkaInfo {
    /// The Pico HSM documentation's words: "0 authenticated public key(s)
    /// in 1 of 1 scheme".
    pub fn words(&self) -> String {
        format!(
            "{} authenticated public key(s) in {} of {} scheme",
            self.authenticated, self.required, self.total
        )
    }
}

/// Reads the PKA state: `None` when the device has no PKA.
pub fn pka_info(c: &mut Card<'_>) -> CardResult<Option<PkaInfo>> {
    let Some(st) = c.pka_status()?.filter(|s| s.total > 0) else {
        return Ok(None);
    };
    let keys = c.pka_registered(st.total)?;
    Ok(Some(PkaInfo {
        total: st.total,
        required: st.required,
        registered: st.total.saturating_sub(st.missing),
        missing: st.missing,
        authenticated: st.authenticated,
        granted: st.granted(),
        keys: keys
            .into_iter()
            .map(|k| PkaKey {
                slot: k.slot,
                chr: String::from_utf8_lossy(&k.chr).into_owned(),
                authenticated: k.authenticated,
            })
            .collect(),
    }))
}

/// What `list` shows of one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// CHR of the device certificate.
    pub device_name: Option<String>,
    /// The serial as OpenSC shows it (device name without its last 5 characters).
    pub serial: Option<String>,
    /// "6.6".
    pub version: String,
    /// Free memory the card reports.
    pub free_memory: u32,
    /// EF.TokenInfo label.
    pub label: Option<String>,
    /// The user PIN.
    pub user_pin: PinInfo,
    /// The SO-PIN.
    pub so_pin: PinInfo,
    /// Whether the device is initialised (an SO-PIN exists).
    pub initialized: bool,
    /// PKA, if configured.
    pub pka: Option<PkaInfo>,
}

/// Reads what `list` shows.
pub fn device_info(dev: &mut Device) -> Res<DeviceInfo> {
    dev.run_selected(|c, v| {
        let device_name = c.device_name()?;
        let serial = device_name.as_ref().map(|n| serial_of(n));
        let label = c
            .token_info()?
            .label
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let user = c.pin_state(pin_ref::USER)?;
        let so = c.pin_state(pin_ref::SO)?;
        let pka = pka_info(c)?;
        Ok(DeviceInfo {
            device_name,
            serial,
            version: format!("{}.{}", v.major, v.minor),
            free_memory: v.free,
            label,
            user_pin: PinInfo::of(user),
            so_pin: PinInfo::of(so),
            initialized: so != PinState::Absent,
            pka,
        })
    })
}

/// Prints a device's lines.
pub fn print_device(out: &mut Out, d: &DeviceInfo) {
    let or = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    out.line(format!("  device name   {}", or(&d.device_name)));
    out.line(format!("  serial        {}", or(&d.serial)));
    out.line(format!(
        "  version       {} ({} bytes free)",
        d.version, d.free_memory
    ));
    out.line(format!("  label         {}", or(&d.label)));
    if !d.initialized {
        out.line("  state         not initialised (picohsm-tool init)");
    }
    out.line(format!("  user PIN      {}", d.user_pin.words()));
    out.line(format!("  SO-PIN        {}", d.so_pin.words()));
    match &d.pka {
        None => out.line("  PKA           off"),
        Some(p) => {
            out.line(format!(
                "  PKA           {}, {} of {} registered, {} missing",
                p.words(),
                p.registered,
                p.total,
                p.missing
            ));
        }
    }
}

/// Runs `list`.
pub fn run(cli: &Cli, out: &mut Out) -> Res<Value> {
    let pcsc = device::pcsc()?;
    let all = device::readers(&pcsc)?;
    if all.is_empty() {
        return Err(Failure::no_device("no smart-card reader found")
            .hint("plug the device in; check that pcscd sees it (pcsc_scan, opensc-tool -l)"));
    }
    let explicit = cli.reader.is_some();
    let mut rows = Vec::new();
    for r in device::filter(all, cli.reader.as_deref())? {
        let mut row = json!({
            "reader": r.name,
            "card_present": r.atr.is_some(),
            "atr": r.atr.as_ref().map(hex::encode_upper),
            "smartcard_hsm": r.is_hsm(),
        });
        let what = match (&r.atr, r.is_hsm()) {
            (None, _) => "empty",
            (Some(_), true) => "SmartCard-HSM",
            (Some(_), false) => "card (not a SmartCard-HSM)",
        };
        out.line(format!("Reader \"{}\": {what}", r.name));
        // A card whose ATR is not a SmartCard-HSM's is left alone unless
        // its reader was named.
        if r.atr.is_some() && (r.is_hsm() || explicit) {
            let info = Device::connect(&pcsc, &r.name).and_then(|mut d| device_info(&mut d));
            match info {
                Ok(d) => {
                    print_device(out, &d);
                    row["device"] = serde_json::to_value(&d).unwrap_or(Value::Null);
                    row["smartcard_hsm"] = json!(true);
                }
                Err(f) => {
                    out.line(format!("  error         {}", f.message));
                    row["error"] = json!(f.message);
                }
            }
        }
        rows.push(row);
    }
    Ok(json!({ "readers": rows }))
}
