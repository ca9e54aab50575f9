//! Sessions and login (PKCS#11 §5.6). The login lives on the card: the
//! module only mirrors it, so that a reset by another process shows up as
//! CKR_DEVICE_REMOVED on the next card exchange.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::card;
use crate::core::api::SessionInfo;
use crate::core::state::{self, on_token, session_slot, with_module, Session};
use crate::core::token::Login;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

/// C_OpenSession.
pub fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    if flags & CKF_SERIAL_SESSION == 0 {
        return fail(
            CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            "CKF_SERIAL_SESSION missing",
        );
    }
    crate::core::general::check_slot(slot)?;
    let login = on_token(slot, |t| Ok(t.login))?;
    let rw = flags & CKF_RW_SESSION != 0;
    with_module(|m| {
        if login == Login::So && !rw {
            return fail(CKR_SESSION_READ_WRITE_SO_EXISTS, "SO logged in");
        }
        let h = m.next_session;
        m.next_session += 1;
        m.sessions.insert(h, Session { slot, rw });
        Ok(h)
    })
}

fn logout_if_last(slot: CK_SLOT_ID) -> Result<()> {
    let others = with_module(|m| Ok(m.sessions.values().any(|s| s.slot == slot)))?;
    if !others {
        // Closing the last session logs out, on the card too.
        let _ = on_token(slot, |t| {
            if t.login != Login::None {
                t.logout()
            } else {
                Ok(())
            }
        });
    }
    Ok(())
}

/// C_CloseSession.
pub fn close_session(session: CK_SESSION_HANDLE) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    with_module(|m| {
        m.sessions.remove(&session);
        Ok(())
    })?;
    forget_ops(session);
    crate::core::derive::forget_session(slot, session);
    logout_if_last(slot)
}

/// C_CloseAllSessions.
pub fn close_all_sessions(slot: CK_SLOT_ID) -> Result<()> {
    crate::core::general::check_slot(slot)?;
    let closed = with_module(|m| {
        let mine: Vec<CK_SESSION_HANDLE> = m
            .sessions
            .iter()
            .filter(|(_, s)| s.slot == slot)
            .map(|(h, _)| *h)
            .collect();
        m.sessions.retain(|_, s| s.slot != slot);
        Ok(mine)
    })?;
    for h in closed {
        forget_ops(h);
        crate::core::derive::forget_session(slot, h);
    }
    logout_if_last(slot)
}

/// C_GetSessionInfo.
pub fn get_session_info(session: CK_SESSION_HANDLE) -> Result<SessionInfo> {
    let (slot, rw) = session_slot(session)?;
    let login = on_token(slot, |t| Ok(t.login))?;
    let state = match (login, rw) {
        (Login::So, _) => CKS_RW_SO_FUNCTIONS,
        (Login::User, true) => CKS_RW_USER_FUNCTIONS,
        (Login::User, false) => CKS_RO_USER_FUNCTIONS,
        (Login::None, true) => CKS_RW_PUBLIC_SESSION,
        (Login::None, false) => CKS_RO_PUBLIC_SESSION,
    };
    Ok(CK_SESSION_INFO {
        slotID: slot,
        state,
        flags: CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 },
        ulDeviceError: 0,
    })
}

/// The SO-PIN as the card takes it: 16 hexadecimal digits → 8 bytes (§5.1).
pub fn so_pin_bytes(pin: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if pin.len() != 16 {
        return fail(CKR_PIN_LEN_RANGE, "the SO-PIN is 16 hex digits");
    }
    let mut out = Zeroizing::new(Vec::with_capacity(8));
    for pair in pin.chunks(2) {
        let s =
            std::str::from_utf8(pair).map_err(|_| Error::new(CKR_PIN_INVALID, "SO-PIN not hex"))?;
        out.push(
            u8::from_str_radix(s, 16).map_err(|_| Error::new(CKR_PIN_INVALID, "SO-PIN not hex"))?,
        );
    }
    Ok(out)
}

/// C_Login.
pub fn login(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: Option<&[u8]>,
) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    let pin = pin.ok_or(Error::new(
        CKR_ARGUMENTS_BAD,
        "no protected authentication path",
    ))?;
    match user_type {
        CKU_USER | CKU_SO => {}
        CKU_CONTEXT_SPECIFIC => {
            return fail(
                CKR_OPERATION_NOT_INITIALIZED,
                "no key needs context-specific login",
            )
        }
        _ => return fail(CKR_USER_TYPE_INVALID, "unknown user type"),
    }
    if user_type == CKU_SO {
        let ro = with_module(|m| Ok(m.sessions.values().any(|s| s.slot == slot && !s.rw)))?;
        if ro {
            return fail(
                CKR_SESSION_READ_ONLY_EXISTS,
                "SO login with a read-only session open",
            );
        }
    }
    on_token(slot, |t| {
        match (t.login, user_type) {
            (Login::User, CKU_USER) | (Login::So, CKU_SO) => {
                return fail(CKR_USER_ALREADY_LOGGED_IN, "already logged in")
            }
            (Login::User, _) | (Login::So, _) => {
                return fail(
                    CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                    "the other user is logged in",
                )
            }
            _ => {}
        }
        if user_type == CKU_SO {
            let so = so_pin_bytes(pin)?;
            t.transport
                .transact(|l| card::verify(l, picohsm_wire::codes::pin_ref::SO, &so))?;
            t.login = Login::So;
        } else {
            if pin.is_empty() || pin.len() > 16 {
                return fail(CKR_PIN_LEN_RANGE, "PIN length");
            }
            t.transport
                .transact(|l| card::verify(l, card::USER_PIN, pin))?;
            t.login = Login::User;
        }
        log::info!("slot {slot}: logged in");
        Ok(())
    })
}

/// C_Logout.
pub fn logout(session: CK_SESSION_HANDLE) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| {
        if t.login == Login::None {
            return fail(CKR_USER_NOT_LOGGED_IN, "not logged in");
        }
        t.logout()
    })
}

/// C_GenerateRandom: from the card.
pub fn generate_random(session: CK_SESSION_HANDLE, len: usize) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| t.transport.transact(|l| card::challenge(l, len)))
}

/// C_SeedRandom: the card's generator takes no seed.
pub fn seed_random(session: CK_SESSION_HANDLE, _seed: &[u8]) -> Result<()> {
    session_slot(session)?;
    fail(
        CKR_RANDOM_SEED_NOT_SUPPORTED,
        "the card's generator takes no seed",
    )
}

/// Forgets sessions of a slot whose token went away.
pub fn forget(slot: CK_SLOT_ID) {
    state::drop_token(slot);
}

/// Drops every operation state a closed session had.
fn forget_ops(session: CK_SESSION_HANDLE) {
    crate::core::find::forget_session(session);
    crate::core::sign::forget_session(session);
    crate::core::decrypt::forget_session(session);
    crate::core::digest::forget_session(session);
    crate::core::verify::forget_session(session);
}
