//! PIN management and token initialisation (PKCS#11 3.0 §5.5): C_InitPIN,
//! C_SetPIN, C_InitToken, on the card's VERIFY / CHANGE REFERENCE DATA /
//! RESET RETRY COUNTER / INITIALIZE (docs/protocol.md §4, §5).

use cryptoki_sys::*;
use picohsm_wire::codes::pin_ref;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::login::so_pin_bytes;
use crate::core::state::{on_token, session_slot, with_module};
use crate::core::token::Login;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

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
        t.known.user_pin = None;
        t.card_changed();
        t.transport
            .transact(|l| Ok(Card::new(l).set_user_pin(pin)?))
    })
}

/// C_SetPIN: the SO's PIN when the SO is logged in, else the user's.
pub fn set_pin(session: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
    let (slot, rw) = session_slot(session)?;
    if !rw {
        return fail(CKR_SESSION_READ_ONLY, "read-only session");
    }
    on_token(slot, |t| {
        let (reference, old, new) = if t.login == Login::So {
            (pin_ref::SO, so_pin_bytes(old)?, so_pin_bytes(new)?)
        } else {
            user_pin_ok(new)?;
            let z = |p: &[u8]| Zeroizing::new(p.to_vec());
            (pin_ref::USER, z(old), z(new))
        };
        if reference == pin_ref::SO {
            t.info_kept = None;
        }
        t.transport
            .transact(|l| Ok(Card::new(l).change_pin(reference, &old, &new)?))
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
    let so: Zeroizing<[u8; 8]> = Zeroizing::new(
        so.as_slice()
            .try_into()
            .map_err(|_| Error::new(CKR_PIN_LEN_RANGE, "the SO-PIN is 8 bytes"))?,
    );
    let text = String::from_utf8_lossy(label).trim_end().to_string();
    on_token(slot, |t| {
        let r = t.transport.transact(|l| {
            let mut card = Card::new(l);
            card.initialize_so_only(&so)?;
            card.write_new_token_info(&text)?;
            card.select_applet()?;
            Ok(())
        });
        t.login = Login::None;
        t.card_changed();
        // A new PKA scheme, no user PIN: read again at the next login.
        t.known = Default::default();
        if r.is_ok() {
            t.label = Some(text.clone());
        }
        r
    })
}
