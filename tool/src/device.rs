//! Finding the device: readers by name (part of it, or a glob), the
//! SmartCard-HSMs among them by their ATR (no APDU is sent to find out),
//! and a connection that runs the card driver's commands in one PC/SC
//! transaction.

use picohsm_pkcs11::card::files::is_smartcard_hsm_atr;
use picohsm_pkcs11::card::read_cache::Cached;
use picohsm_pkcs11::card::{Card, CardResult, PinState, Version};
use picohsm_pkcs11::transport::pcsc::{reader_matches, Pcsc, PcscTransport};
use picohsm_pkcs11::transport::Transport;

use crate::fail::{Failure, Res};

/// The PC/SC context; a missing pcscd is exit 3.
pub fn pcsc() -> Res<Pcsc> {
    Pcsc::establish().map_err(|_| {
        Failure::no_device("pcscd is not reachable")
            .hint("start the PC/SC daemon (systemctl start pcscd, or pcscd)")
    })
}

/// One reader and what is in it.
#[derive(Debug, Clone)]
pub struct ReaderInfo {
    /// The PC/SC name.
    pub name: String,
    /// The ATR of its card, if one is present.
    pub atr: Option<Vec<u8>>,
}

impl ReaderInfo {
    /// Whether it holds a SmartCard-HSM (by ATR).
    pub fn is_hsm(&self) -> bool {
        self.atr.as_deref().is_some_and(is_smartcard_hsm_atr)
    }
}

/// Every reader, with the ATR of its card.
pub fn readers(pcsc: &Pcsc) -> Res<Vec<ReaderInfo>> {
    Ok(pcsc
        .readers()?
        .into_iter()
        .map(|name| ReaderInfo {
            atr: pcsc.atr_of(&name),
            name,
        })
        .collect())
}

fn list_names(readers: &[ReaderInfo]) -> String {
    if readers.is_empty() {
        return "none".into();
    }
    readers
        .iter()
        .map(|r| {
            let what = match (&r.atr, r.is_hsm()) {
                (None, _) => "empty",
                (Some(_), true) => "SmartCard-HSM",
                (Some(_), false) => "other card",
            };
            format!("\"{}\" ({what})", r.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The readers `pattern` selects (all without one); exit 3 when it
/// matches none. An exact name wins over partial matches.
pub fn filter(readers: Vec<ReaderInfo>, pattern: Option<&str>) -> Res<Vec<ReaderInfo>> {
    let Some(p) = pattern else {
        return Ok(readers);
    };
    if let Some(r) = readers.iter().find(|r| r.name == p) {
        return Ok(vec![r.clone()]);
    }
    let all = list_names(&readers);
    let found: Vec<ReaderInfo> = readers
        .into_iter()
        .filter(|r| reader_matches(p, &r.name))
        .collect();
    if found.is_empty() {
        return Err(
            Failure::no_device(format!("no reader matches {p:?}; readers: {all}"))
                .hint("give a part of one of these names with --reader"),
        );
    }
    Ok(found)
}

/// The one reader to use: the one `pattern` names, or the only one
/// holding a SmartCard-HSM. Exit 3 otherwise, listing the readers.
pub fn choose(pcsc: &Pcsc, pattern: Option<&str>) -> Res<String> {
    let all = readers(pcsc)?;
    if all.is_empty() {
        return Err(Failure::no_device("no smart-card reader found")
            .hint("plug the device in; check that pcscd sees it (pcsc_scan, opensc-tool -l)"));
    }
    let names = list_names(&all);
    let found = filter(all, pattern)?;
    if found.len() == 1 {
        let r = &found[0];
        if r.atr.is_none() {
            return Err(
                Failure::no_device(format!("no card in reader \"{}\"", r.name))
                    .hint("insert or plug the device, or choose another reader with --reader"),
            );
        }
        return Ok(r.name.clone());
    }
    let hsms: Vec<&ReaderInfo> = found.iter().filter(|r| r.is_hsm()).collect();
    match (hsms.len(), pattern) {
        (1, _) => Ok(hsms[0].name.clone()),
        (0, Some(p)) => Err(Failure::no_device(format!(
            "no SmartCard-HSM in the readers matching {p:?}; readers: {names}"
        ))
        .hint("choose a reader holding the device with --reader")),
        (0, None) => Err(
            Failure::no_device(format!("no SmartCard-HSM found; readers: {names}"))
                .hint("plug the device in, or name its reader with --reader"),
        ),
        (_, _) => Err(Failure::no_device(format!(
            "several SmartCard-HSMs: {}",
            hsms.iter()
                .map(|r| format!("\"{}\"", r.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("choose one with --reader <part of its name>")),
    }
}

/// A connection to the device in one reader.
pub struct Device {
    /// The reader's name.
    pub reader: String,
    /// The connection, with the module's cache of public files (the PKA
    /// login round of the module takes it so).
    pub transport: Cached<PcscTransport>,
}

impl Device {
    /// Connects to the card in `reader` (nothing is sent yet).
    pub fn connect(pcsc: &Pcsc, reader: &str) -> Res<Device> {
        let transport = pcsc.connect(reader).map_err(|e| {
            let f: Failure = e.into();
            if f.code == crate::fail::NO_DEVICE {
                Failure::no_device(format!("no card in reader \"{reader}\""))
                    .hint("insert or plug the device, or choose another reader with --reader")
            } else {
                f
            }
        })?;
        Ok(Device {
            reader: reader.to_string(),
            transport: Cached::new(transport),
        })
    }

    /// Finds and connects to the device the command line names.
    pub fn open(pattern: Option<&str>) -> Res<(Pcsc, Device)> {
        let pcsc = pcsc()?;
        let reader = choose(&pcsc, pattern)?;
        let dev = Device::connect(&pcsc, &reader)?;
        Ok((pcsc, dev))
    }

    /// Runs `f` on the card in one PC/SC transaction.
    pub fn run<R>(&mut self, f: impl FnOnce(&mut Card<'_>) -> CardResult<R>) -> Res<R> {
        let mut out = None;
        self.transport
            .transact(|c| {
                out = Some(f(&mut Card::new(c)));
                Ok(())
            })
            .map_err(Failure::from)?;
        match out {
            Some(r) => r.map_err(Failure::from),
            None => Err(Failure::card("the card transaction did not run")),
        }
    }

    /// As [`Device::run`], with the applet selected first if (and only if)
    /// it is not ([`Card::ensure_selected`]).
    pub fn run_selected<R>(
        &mut self,
        f: impl FnOnce(&mut Card<'_>, Version) -> CardResult<R>,
    ) -> Res<R> {
        let reader = self.reader.clone();
        self.run(|c| {
            let (v, _) = c.ensure_selected()?;
            f(c, v)
        })
        .map_err(not_hsm(&reader))
    }
}

impl Device {
    /// As [`Device::run_selected`] for a command that verifies a PIN: the
    /// session is ended afterwards, success or not, unless someone was
    /// logged in before ([`session_in_use`], [`end_session`]).
    pub fn run_session<R>(
        &mut self,
        f: impl FnOnce(&mut Card<'_>, Version) -> CardResult<R>,
    ) -> Res<R> {
        self.run_selected(|c, v| {
            let in_use = session_in_use(c)?;
            let r = f(c, v);
            let ended = end_session(c, in_use);
            let r = r?;
            ended?;
            Ok(r)
        })
    }
}

/// Maps "the card refused SELECT" to a message naming the reader.
pub fn not_hsm(reader: &str) -> impl Fn(Failure) -> Failure + '_ {
    move |f| {
        if f.code == crate::fail::NO_DEVICE && f.message.contains("not a SmartCard-HSM") {
            Failure::no_device(format!("the card in \"{reader}\" is not a SmartCard-HSM"))
                .hint("choose another reader with --reader (picohsm-tool list shows them)")
        } else {
            f
        }
    }
}

/// Whether someone is logged in on the card's current session: a PIN
/// verified or a PKA key accepted. The tool leaves such a session alone; a
/// session the tool itself raised (by verifying a PIN in it) is ended with
/// a SELECT afterwards ([`end_session`]), so no PIN-verified state outlives
/// the command.
pub fn session_in_use(c: &mut Card<'_>) -> CardResult<bool> {
    use picohsm_wire::codes::pin_ref;
    if c.pin_state(pin_ref::USER)? == PinState::Verified
        || c.pin_state(pin_ref::SO)? == PinState::Verified
    {
        return Ok(true);
    }
    Ok(c.pka_status()?.is_some_and(|s| s.authenticated > 0))
}

/// Ends the session with a SELECT (a logout, docs/protocol.md §2.3) unless it was in use
/// before the command ([`session_in_use`]).
pub fn end_session(c: &mut Card<'_>, was_in_use: bool) -> CardResult<()> {
    if !was_in_use {
        c.select_applet()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, atr: Option<&[u8]>) -> ReaderInfo {
        ReaderInfo {
            name: name.into(),
            atr: atr.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn readers_by_part_glob_or_exact_name() {
        assert!(reader_matches("PCD 00 01", "Virtual PCD 00 01"));
        assert!(reader_matches("Virtual*01", "Virtual PCD 00 01"));
        assert!(!reader_matches("Nitrokey*", "Virtual PCD 00 01"));
        let all = vec![
            r("Virtual PCD 00 00", None),
            r("Virtual PCD 00 01", Some(b"THSM1")),
        ];
        let f = filter(all.clone(), Some("Virtual PCD 00 00")).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(filter(all.clone(), Some("Virtual")).unwrap().len(), 2);
        let e = filter(all, Some("Nitrokey")).unwrap_err();
        assert_eq!(e.code, crate::fail::NO_DEVICE);
        assert!(e.message.contains("Virtual PCD 00 01"), "{}", e.message);
    }
}
