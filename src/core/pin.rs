//! PIN management and token initialisation (PKCS#11 §5.6): C_InitPIN,
//! C_SetPIN, C_InitToken, on the card's VERIFY / CHANGE REFERENCE DATA /
//! RESET RETRY COUNTER / INITIALIZE (protocol reference §4, §5).

use cryptoki_sys::*;
use picohsm_wire::apdu::build;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use zeroize::Zeroizing;

use crate::card;
use crate::core::session::so_pin_bytes;
use crate::core::state::{on_token, session_slot, with_module};
use crate::core::token::Login;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

fn pin_rv(sw: StatusWord, origin: &'static str) -> Error {
    match sw.0 {
        0x6983 => Error::new(CKR_PIN_LOCKED, "PIN blocked"),
        0x6700 => Error::new(CKR_PIN_LEN_RANGE, "PIN length"),
        _ if sw.pin_tries().is_some() => Error::new(CKR_PIN_INCORRECT, "wrong PIN"),
        _ => card::sw_error(sw, origin),
    }
}

fn user_pin_ok(pin: &[u8]) -> Result<()> {
    if (6..=16).contains(&pin.len()) {
        Ok(())
    } else {
        fail(CKR_PIN_LEN_RANGE, "the user PIN has 6 to 16 characters")
    }
}

/// C_InitPIN: the SO sets a new user PIN (RESET RETRY COUNTER P1 02, which
/// needs the SO-PIN verified in this card session — the SO login did that).
pub fn init_pin(session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    let (slot, rw) = session_slot(session)?;
    if !rw {
        return fail(CKR_SESSION_READ_ONLY, "read-only session");
    }
    user_pin_ok(pin)?;
    on_token(slot, |t| {
        if t.login != Login::So {
            return fail(CKR_USER_NOT_LOGGED_IN, "C_InitPIN needs the SO");
        }
        let (_, sw) = t
            .transport
            .transact(|l| card::exchange(l, &build(0x00, 0x2C, 0x02, pin_ref::USER, pin, 0)))?;
        if sw.is_ok() {
            Ok(())
        } else {
            Err(pin_rv(sw, "RESET RETRY COUNTER"))
        }
    })
}

/// C_SetPIN: the SO's PIN when the SO is logged in, else the user's.
pub fn set_pin(session: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
    let (slot, rw) = session_slot(session)?;
    if !rw {
        return fail(CKR_SESSION_READ_ONLY, "read-only session");
    }
    on_token(slot, |t| {
        let (reference, data) = if t.login == Login::So {
            let mut d = so_pin_bytes(old)?;
            d.extend_from_slice(&so_pin_bytes(new)?);
            (pin_ref::SO, d)
        } else {
            user_pin_ok(new)?;
            let mut d = Zeroizing::new(old.to_vec());
            d.extend_from_slice(new);
            (pin_ref::USER, d)
        };
        let (_, sw) = t
            .transport
            .transact(|l| card::exchange(l, &build(0x00, 0x24, 0x00, reference, &data, 0)))?;
        if sw.is_ok() {
            Ok(())
        } else {
            Err(pin_rv(sw, "CHANGE REFERENCE DATA"))
        }
    })
}

/// C_InitToken: INITIALIZE with the SO-PIN (16 hex digits) and no user PIN
/// (C_InitPIN sets it, as PKCS#11 intends), option RESET RETRY COUNTER
/// allowed; then the label goes into EF.TokenInfo as sc-hsm-tool writes it.
/// A card that already has an SO-PIN only accepts the same one.
pub fn init_token(slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8; 32]) -> Result<()> {
    crate::core::general::check_slot(slot)?;
    let open = with_module(|m| Ok(m.sessions.values().any(|s| s.slot == slot)))?;
    if open {
        return fail(CKR_SESSION_EXISTS, "close the sessions first");
    }
    let so = so_pin_bytes(so_pin)?;
    let text = String::from_utf8_lossy(label).trim_end().to_string();
    on_token(slot, |t| {
        let mut data = Zeroizing::new(Vec::new());
        tlv::push(&mut data, 0x80, &[0x00, 0x01]);
        tlv::push(&mut data, 0x82, &so);
        let r = t.transport.transact(|l| {
            let (_, sw) = card::exchange(l, &build(0x80, 0x50, 0x00, 0x00, &data, 0))?;
            if !sw.is_ok() {
                return Err(pin_rv(sw, "INITIALIZE"));
            }
            let mut ti = Vec::new();
            tlv::push(&mut ti, 0x02, &[0]);
            tlv::push(&mut ti, 0x80, text.as_bytes());
            tlv::push(&mut ti, 0x03, &[0x02, 0x04]);
            card::write_ef(l, 0x2F03, &tlv::encode(0x30, &ti))?;
            card::select_applet(l).map(|_| ())
        });
        t.login = Login::None;
        t.objects = None;
        if r.is_ok() {
            t.label = Some(text.clone());
        }
        r
    })
}
