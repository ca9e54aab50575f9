//! A token: the connection to one SmartCard-HSM and what the module knows
//! of it. The card keeps the login; the module keeps one connection per
//! token and never re-selects the applet while logged in (a SELECT is a
//! logout, docs/protocol.md §2.3).

use cryptoki_sys::*;
use picohsm_wire::codes::pin_ref;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::card::read_cache::Cached;
use crate::card::Card;
use crate::card::{AppletInfo, PinState};
use crate::core::object::{self, Class, Object};
use crate::error::{Error, Result};
use crate::transport::pcsc::{Loss, Pcsc, PcscTransport};
use crate::transport::Transport;
use zeroize::Zeroize;

/// Who is logged in on the card, as far as the module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Nobody.
    None,
    /// CKU_USER.
    User,
    /// CKU_SO.
    So,
}

/// One SmartCard-HSM in a reader.
pub struct Token {
    /// The connection, its public files kept (`card::read_cache`).
    pub transport: Cached<PcscTransport>,
    /// From SELECT.
    pub applet: AppletInfo,
    /// Device name (CHR of the first certificate in EF 2F02).
    pub device_name: String,
    /// Label from EF.TokenInfo, if any.
    pub label: Option<String>,
    /// Manufacturer from EF.TokenInfo, if any.
    pub manufacturer: Option<String>,
    /// The login state.
    pub login: Login,
    /// Objects read from the card (once), with their handles.
    pub objects: Option<Vec<(CK_OBJECT_HANDLE, Object)>>,
    /// Handles given out, by (class, file): stable while the module is loaded.
    pub handles: HashMap<(Class, u16), CK_OBJECT_HANDLE>,
    /// Session objects (CKA_TOKEN false): they live in the module only and
    /// go when the session that made them closes.
    pub session_objects: Vec<SessionObject>,
    /// A PKA login in progress or done (docs/protocol.md §6.7).
    pub pka: crate::pka::round::Progress,
    /// The handle of the PKA status object (CKO_PICOHSM_PKA_STATUS).
    pub pka_status_handle: CK_OBJECT_HANDLE,
    /// Public data a PKA login reads (device chain, registered names, user
    /// PIN or not), kept for this connection; a logout keeps it.
    pub known: crate::pka::round::Known,
    /// What C_GetTokenInfo reads besides the user PIN's state, kept until
    /// this module changes the card ([`Token::card_changed`]) or tries
    /// the SO-PIN.
    pub info_kept: Option<InfoKept>,
}

/// The slow-changing part of CK_TOKEN_INFO. NSS and Firefox call
/// C_GetTokenInfo over and over: reading all of it each time cost 3
/// APDUs a call, the user PIN's state alone costs 1. Kept: the SO-PIN's
/// state (changed by an SO login, which another application rarely
/// tries: its counter shows here once this module reconnects or tries the
/// SO-PIN itself), the free memory (changed by writes), and whether a PKA
/// scheme is set up (changed by INITIALIZE).
#[derive(Debug, Clone, Copy)]
pub struct InfoKept {
    so: PinState,
    free: Option<u32>,
    /// Read only for a token without a user PIN.
    pka_configured: Option<bool>,
}

/// An object of one session, held by the module.
pub struct SessionObject {
    /// Its handle (from the same counter as the card's objects).
    pub handle: CK_OBJECT_HANDLE,
    /// The session that made it.
    pub session: CK_SESSION_HANDLE,
    /// The object.
    pub object: Object,
}

impl Drop for SessionObject {
    fn drop(&mut self) {
        // A derived secret is key material.
        if let Some(v) = self.object.attrs.get_mut(&CKA_VALUE) {
            v.zeroize();
        }
    }
}

/// The label the Pico HSM firmware puts in EF.TokenInfo by default
/// (docs/protocol.md §2.5), the same on every device.
const DEFAULT_LABEL: &str = "Pico-HSM";

/// A fresh object handle.
pub fn new_handle() -> CK_OBJECT_HANDLE {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) as CK_OBJECT_HANDLE
}

/// Object handles are unique across tokens: a handle of one token used on
/// another is CKR_OBJECT_HANDLE_INVALID, never another object.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|c| {
            if c.is_ascii_graphic() || *c == b' ' {
                *c as char
            } else {
                '?'
            }
        })
        .collect()
}

impl Token {
    /// Connects to the card in `reader` and checks it is a SmartCard-HSM
    /// (CKR_TOKEN_NOT_RECOGNIZED otherwise). A card that is not there or
    /// does not answer (pulled, or plugged back and not up yet) is
    /// CKR_TOKEN_NOT_PRESENT.
    pub fn connect(pcsc: &Pcsc, reader: &str) -> Result<Token> {
        let absent = |e: Error| {
            if e.rv == CKR_DEVICE_REMOVED {
                Error::new(CKR_TOKEN_NOT_PRESENT, "no card")
            } else {
                e
            }
        };
        let mut transport = pcsc.connect(reader).map_err(absent)?;
        let (applet, chain, info) = transport
            .transact(|l| {
                let mut card = Card::new(l);
                let applet = card.select_applet()?;
                Ok((applet, card.device_chain()?, card.token_info()?))
            })
            .map_err(|e| match transport.take_loss() {
                Some(Loss::Card | Loss::Link) => {
                    Error::new(CKR_TOKEN_NOT_PRESENT, "the card does not answer")
                }
                _ => absent(e),
            })?;
        let device_name = picohsm_wire::cvc::first_chr(&chain)
            .map(printable)
            .unwrap_or_default();
        let label = info.label.as_deref().map(printable);
        let manufacturer = info.manufacturer.as_deref().map(printable);
        Ok(Token {
            transport: Cached::new(transport),
            applet,
            device_name,
            label,
            manufacturer,
            login: Login::None,
            objects: None,
            handles: HashMap::new(),
            session_objects: Vec::new(),
            pka: Default::default(),
            pka_status_handle: new_handle(),
            known: crate::pka::round::Known {
                chain: Some(chain),
                ..Default::default()
            },
            info_kept: None,
        })
    }

    /// The token as a PKA round sees it; `status`: the PKA status read
    /// just before, in the same login.
    pub fn primary(
        &mut self,
        status: Option<crate::card::PkaStatus>,
    ) -> crate::pka::round::Primary<'_> {
        crate::pka::round::Primary {
            transport: &mut self.transport,
            progress: &mut self.pka,
            known: &mut self.known,
            status,
        }
    }

    /// The token serial: the whole device name (at most 16 characters, as
    /// CK_TOKEN_INFO has room for). OpenSC shows only its first 11, which
    /// every upstream Pico HSM shares (`ESPICOHSMTR`): two devices would
    /// look the same in PKCS#11 URIs, NSS and p11-kit.
    pub fn serial(&self) -> String {
        self.device_name.chars().take(16).collect()
    }

    /// The token label: the one in EF.TokenInfo when the user set one;
    /// the firmware's default (`Pico-HSM`, the same on every device) or none
    /// gets the device name after it, so that devices can be told apart.
    pub fn display_label(&self) -> String {
        match self.label.as_deref() {
            Some(l) if l != DEFAULT_LABEL => l.to_string(),
            Some(l) => format!("{l} {}", self.device_name),
            None => format!("SmartCard-HSM {}", self.device_name),
        }
    }

    /// This module changed what the card holds (a write, a key, a PIN,
    /// INITIALIZE): the objects are read again at their next use, and so
    /// is the kept part of CK_TOKEN_INFO.
    pub fn card_changed(&mut self) {
        self.objects = None;
        self.info_kept = None;
    }

    /// CK_TOKEN_INFO from the card's current state; `config` says whether
    /// it announces a protected authentication path.
    pub fn info(&mut self, config: &crate::settings::Config) -> Result<CK_TOKEN_INFO> {
        let kept = self.info_kept;
        let (user, kept) = self.transport.transact(|l| {
            let user = Card::new(l).pin_state(pin_ref::USER)?;
            let mut k = match kept {
                Some(k) => k,
                None => InfoKept {
                    so: Card::new(l).pin_state(pin_ref::SO)?,
                    free: Card::new(l).version().ok().flatten().map(|v| v.free),
                    pka_configured: None,
                },
            };
            // A token without user PIN may still have a login: PKA. Its
            // "PIN" is then the authenticator's (applications such as NSS
            // only offer a login for an initialised user PIN).
            if user == PinState::Absent && k.so != PinState::Absent && k.pka_configured.is_none() {
                k.pka_configured = Some(Card::new(l).pka_status()?.is_some_and(|s| s.total > 0));
            }
            Ok((user, k))
        })?;
        self.info_kept = Some(kept);
        let (so, free) = (kept.so, kept.free);
        let pka_only =
            user == PinState::Absent && so != PinState::Absent && kept.pka_configured == Some(true);
        self.known.user_pin = Some(user != PinState::Absent);
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED;
        if config.announces_protected_path(user != PinState::Absent) {
            flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
        }
        if so != PinState::Absent {
            flags |= CKF_TOKEN_INITIALIZED;
        }
        match user {
            PinState::Absent if pka_only => flags |= CKF_USER_PIN_INITIALIZED,
            PinState::Absent => {}
            PinState::Blocked => flags |= CKF_USER_PIN_INITIALIZED | CKF_USER_PIN_LOCKED,
            PinState::TriesLeft(1) => {
                flags |= CKF_USER_PIN_INITIALIZED | CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
            }
            PinState::TriesLeft(n) if n < 3 => {
                flags |= CKF_USER_PIN_INITIALIZED | CKF_USER_PIN_COUNT_LOW
            }
            PinState::Transport => flags |= CKF_USER_PIN_INITIALIZED | CKF_USER_PIN_TO_BE_CHANGED,
            _ => flags |= CKF_USER_PIN_INITIALIZED,
        }
        match so {
            PinState::Blocked => flags |= CKF_SO_PIN_LOCKED,
            PinState::TriesLeft(1) => flags |= CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY,
            PinState::TriesLeft(n) if n < 3 => flags |= CKF_SO_PIN_COUNT_LOW,
            _ => {}
        }
        let free_mem = free.map_or(CK_UNAVAILABLE_INFORMATION, |f| f as CK_ULONG);
        let mut info = CK_TOKEN_INFO {
            label: [b' '; 32],
            manufacturerID: [b' '; 32],
            model: [b' '; 16],
            serialNumber: [b' '; 16],
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxPinLen: 16,
            ulMinPinLen: 6,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: free_mem,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: free_mem,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION {
                major: self.applet.version.0,
                minor: self.applet.version.1,
            },
            utcTime: [b' '; 16],
        };
        pad(&mut info.label, &self.display_label());
        pad(
            &mut info.manufacturerID,
            self.manufacturer.as_deref().unwrap_or("www.CardContact.de"),
        );
        pad(&mut info.model, "SmartCard-HSM");
        pad(&mut info.serialNumber, &self.serial());
        Ok(info)
    }

    /// Logs out on the card: a SELECT of the applet clears its user state.
    pub fn logout(&mut self) -> Result<()> {
        self.login = Login::None;
        self.pka = Default::default();
        self.transport.transact(|l| {
            Card::new(l).select_applet()?;
            Ok(())
        })
    }
}

/// Copies `s` into a blank-padded PKCS#11 string field (truncating at a
/// character boundary).
pub fn pad(field: &mut [u8], s: &str) {
    field.fill(b' ');
    let mut n = 0;
    for ch in s.chars() {
        let mut b = [0u8; 4];
        let enc = ch.encode_utf8(&mut b).as_bytes();
        if n + enc.len() > field.len() {
            break;
        }
        field[n..n + enc.len()].copy_from_slice(enc);
        n += enc.len();
    }
}

impl Token {
    /// The objects as the directory lists them (read from the card the
    /// first time): private keys may be unresolved
    /// ([`Object::unresolved`]), their public key and certificate objects
    /// then missing; [`Token::resolve_where`] completes them.
    pub fn objects(&mut self) -> Result<&mut Vec<(CK_OBJECT_HANDLE, Object)>> {
        if self.objects.is_none() {
            let loaded = self.transport.transact(object::load_directory)?;
            let mut list = Vec::with_capacity(loaded.len());
            for o in loaded {
                let h = *self
                    .handles
                    .entry((o.class, o.fid))
                    .or_insert_with(new_handle);
                list.push((h, o));
            }
            self.objects = Some(list);
        }
        Ok(self.objects.get_or_insert_with(Vec::new))
    }

    /// Every object, each key's `CExx` read (once) if it was not yet.
    pub fn all_objects(&mut self) -> Result<&mut Vec<(CK_OBJECT_HANDLE, Object)>> {
        self.resolve_where(|_| true)?;
        self.objects()
    }

    /// Reads the `CExx` of every unresolved private key for which `pred`
    /// holds (in one transaction) and adds its public key and certificate
    /// objects; a key whose `CExx` holds neither its request nor a
    /// certificate goes from the list.
    pub fn resolve_where(&mut self, pred: impl Fn(&Object) -> bool) -> Result<()> {
        let wanted: Vec<u16> = self
            .objects()?
            .iter()
            .filter(|(_, o)| pred(o))
            .filter_map(|(_, o)| o.unresolved)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let contents = self.transport.transact(|l| {
            let mut card = Card::new(l);
            wanted
                .iter()
                .map(|&f| Ok((f, card.read_ef(f)?)))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut list = self.objects.take().unwrap_or_default();
        for (ce, content) in contents {
            let Some(i) = list.iter().position(|(_, o)| o.unresolved == Some(ce)) else {
                continue;
            };
            let (h, mut prv) = list.remove(i);
            let Some((cert, publ)) = object::resolve_key(&mut prv, content.as_deref()) else {
                continue;
            };
            let mut handle = |o: &Object| {
                *self
                    .handles
                    .entry((o.class, o.fid))
                    .or_insert_with(new_handle)
            };
            let mut at = i;
            if let Some(c) = cert {
                list.insert(at, (handle(&c), c));
                at += 1;
            }
            let ph = handle(&publ);
            list.insert(at, (h, prv));
            list.insert(at + 1, (ph, publ));
        }
        self.objects = Some(list);
        Ok(())
    }

    /// Makes the object of handle `h` present again when it was given out
    /// before and is a key's public key or certificate that the list read
    /// since (after an own write) has not resolved yet.
    pub fn resolve_handle(&mut self, h: CK_OBJECT_HANDLE) -> Result<()> {
        if self.objects()?.iter().any(|(oh, _)| *oh == h) {
            return Ok(());
        }
        let known = self.handles.iter().find(|(_, v)| **v == h).map(|(k, _)| *k);
        match known {
            Some((Class::PublicKey, f)) => {
                self.resolve_where(|o| o.class == Class::PrivateKey && o.fid == f)
            }
            Some((Class::Certificate, f)) => self.resolve_where(|o| o.unresolved == Some(f)),
            _ => Ok(()),
        }
    }

    /// Resolves the key of the object with handle `h` when attribute `a`
    /// (any, with `None`) can only come from its `CExx`.
    pub fn resolve_for(&mut self, h: CK_OBJECT_HANDLE, a: Option<CK_ATTRIBUTE_TYPE>) -> Result<()> {
        self.resolve_handle(h)?;
        let ce = self
            .objects()?
            .iter()
            .find(|(oh, _)| *oh == h)
            .and_then(|(_, o)| match a {
                Some(a) if !object::needs_content(o, a) => None,
                _ => o.unresolved,
            });
        match ce {
            Some(ce) => self.resolve_where(|o| o.unresolved == Some(ce)),
            None => Ok(()),
        }
    }

    /// The object with handle `h`, if it is visible in the current login state.
    pub fn object(&mut self, h: CK_OBJECT_HANDLE) -> Result<&mut Object> {
        let logged = self.login == Login::User;
        if let Some(i) = self
            .session_objects
            .iter()
            .position(|s| s.handle == h && (logged || !s.object.private))
        {
            return Ok(&mut self.session_objects[i].object);
        }
        self.resolve_handle(h)?;
        self.objects()?
            .iter_mut()
            .find(|(oh, o)| *oh == h && (logged || !o.private))
            .map(|(_, o)| o)
            .ok_or(crate::error::Error::new(
                CKR_OBJECT_HANDLE_INVALID,
                "unknown object",
            ))
    }
}
