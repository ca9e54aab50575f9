//! Sessions (PKCS#11 3.0 §5.6): open, close, info, random numbers. The login
//! flow is in [`crate::core::login`].

use cryptoki_sys::*;

use crate::card::Card;
use crate::core::api::SessionInfo;
use crate::core::state::{self, on_token, session_slot, with_module, Session};
use crate::core::token::Login;
use crate::error::{fail, Result};
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
        let h = state::new_session_handle();
        m.sessions.insert(
            h,
            Session {
                slot,
                rw,
                ops: Default::default(),
            },
        );
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

/// C_CloseSession: its operations end with it.
pub fn close_session(session: CK_SESSION_HANDLE) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    with_module(|m| {
        m.sessions.remove(&session);
        Ok(())
    })?;
    crate::core::derive::forget_session(slot, session);
    logout_if_last(slot)
}

/// C_CloseAllSessions: their operations end with them.
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

/// C_GenerateRandom: from the card.
pub fn generate_random(session: CK_SESSION_HANDLE, len: usize) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| {
        t.transport.transact(|l| Ok(Card::new(l).challenge(len)?))
    })
}

/// C_SeedRandom: the card's generator takes no seed.
pub fn seed_random(session: CK_SESSION_HANDLE, _seed: &[u8]) -> Result<()> {
    session_slot(session)?;
    fail(
        CKR_RANDOM_SEED_NOT_SUPPORTED,
        "the card's generator takes no seed",
    )
}
