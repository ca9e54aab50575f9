//! General purpose, slot and token functions (PKCS#11 3.0 §5.4, §5.5).

use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki_sys::*;

use crate::core::api::{Info, InitArgs, SlotInfo, TokenInfo};
use crate::core::presence;
use crate::core::state::{self, on_token, with_module, Module, MODULE};
use crate::core::token::pad;
use crate::error::{fail, Error, Result};
use crate::transport::pcsc::Pcsc;

/// C_Initialize.
pub fn initialize(args: InitArgs) -> Result<()> {
    crate::logging::init();
    if args.mutex_callbacks && !args.os_locking_ok {
        return fail(CKR_CANT_LOCK, "only OS locking is offered");
    }
    crate::core::fork::install();
    let mut g = MODULE.lock();
    if let Some(m) = g.as_ref() {
        if m.pid == std::process::id() {
            return fail(CKR_CRYPTOKI_ALREADY_INITIALIZED, "already initialised");
        }
        // The parent's, in a forked child: never dropped here.
        crate::core::fork::forget_parents(&mut g);
    }
    let config = crate::settings::Config::load(args.reserved.as_deref())?;
    if let Some(src) = &config.source {
        log::info!("settings from {}", src.display());
    }
    // Without pcscd: no slots (yet), not a failure; see Pcsc::unreachable.
    let pcsc = Pcsc::establish().unwrap_or_else(|_| {
        log::info!("pcscd is not reachable: no slots until it is");
        Pcsc::unreachable()
    });
    let mut m = Module {
        config: Arc::new(config),
        pcsc: Arc::new(pcsc),
        pid: std::process::id(),
        slots: BTreeMap::new(),
        order: Vec::new(),
        sessions: BTreeMap::new(),
        seen: Default::default(),
        counted: Default::default(),
    };
    m.refresh_slots()?;
    let readers: Vec<String> = m.slots.values().map(|s| s.reader.clone()).collect();
    if m.pcsc.is_connected() {
        m.seen = crate::core::slot_event::snapshot(&m.pcsc, &readers)?;
    }
    *g = Some(m);
    log::info!("initialised");
    Ok(())
}

/// C_Finalize: closes every session and connection.
pub fn finalize() -> Result<()> {
    let mut g = MODULE.lock();
    match g.take() {
        Some(m) => {
            // The sessions, and with them their operations, go with `m`.
            // A thread blocked in C_WaitForSlotEvent returns now.
            crate::core::slot_event::GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(ctx) = m.pcsc.context() {
                let _ = ctx.cancel();
            }
            Ok(())
        }
        None => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "not initialised"),
    }
}

/// Whether C_Initialize was called (in this process).
pub fn is_initialized() -> Result<bool> {
    Ok(MODULE
        .lock()
        .as_ref()
        .is_some_and(|m| m.pid == std::process::id()))
}

/// C_GetInfo.
pub fn get_info() -> Result<Info> {
    with_module(|_| Ok(()))?;
    let mut info = CK_INFO {
        cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
        manufacturerID: [b' '; 32],
        flags: 0,
        libraryDescription: [b' '; 32],
        libraryVersion: CK_VERSION {
            major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
            minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
        },
    };
    pad(&mut info.manufacturerID, "picohsm-pkcs11");
    pad(
        &mut info.libraryDescription,
        "Pico HSM / SmartCard-HSM + PKA",
    );
    Ok(info)
}

/// C_GetSlotList: every reader, or those holding a token
/// ([`presence`]). `size_query` is a call with a NULL list: the list it
/// counts is the one the same thread's next call with a buffer gets.
pub fn get_slot_list(token_present: bool, size_query: bool) -> Result<Vec<CK_SLOT_ID>> {
    if !size_query {
        if let Some(list) = with_module(|m| Ok(m.counted.take(token_present)))? {
            return Ok(list);
        }
    }
    let list = slot_list(token_present)?;
    if size_query {
        with_module(|m| {
            m.counted.put(token_present, list.clone());
            Ok(())
        })?;
    }
    Ok(list)
}

/// The slots as of now: every reader, or those holding a token.
fn slot_list(token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    let (slots, pcsc) = with_module(|m| {
        m.refresh_slots()?;
        let slots: Vec<_> = m
            .ordered_slots()
            .map(|(id, s)| (id, s.reader.clone(), s.token.clone()))
            .collect();
        Ok((slots, m.pcsc.clone()))
    })?;
    if !token_present {
        return Ok(slots.into_iter().map(|(id, _, _)| id).collect());
    }
    let readers: Vec<String> = slots.iter().map(|(_, r, _)| r.clone()).collect();
    let views = presence::reader_views(&pcsc, &readers)?;
    Ok(slots
        .iter()
        .zip(views)
        .filter(|((_, _, token), view)| presence::token_present(*view, token))
        .map(|((id, _, _), _)| *id)
        .collect())
}

/// Whether a token sits in the slot ([`presence`]; nothing is sent to
/// the card).
fn token_present_in(slot: CK_SLOT_ID) -> Result<bool> {
    let (token, reader, pcsc) = state::slot_token(slot)?;
    let view = presence::reader_views(&pcsc, std::slice::from_ref(&reader))?;
    Ok(presence::token_present(
        view.into_iter().next().unwrap_or_default(),
        &token,
    ))
}

/// C_GetSlotInfo.
pub fn get_slot_info(slot: CK_SLOT_ID) -> Result<SlotInfo> {
    let (_, reader, _) = state::slot_token(slot)?;
    // pcscd unreachable: no token to show (C_GetSlotList says why).
    let present = token_present_in(slot).unwrap_or(false);
    let mut info = CK_SLOT_INFO {
        slotDescription: [b' '; 64],
        manufacturerID: [b' '; 32],
        flags: CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | if present { CKF_TOKEN_PRESENT } else { 0 },
        hardwareVersion: CK_VERSION { major: 0, minor: 0 },
        firmwareVersion: CK_VERSION { major: 0, minor: 0 },
    };
    pad(&mut info.slotDescription, &reader);
    pad(&mut info.manufacturerID, "PC/SC");
    Ok(info)
}

/// C_GetTokenInfo.
pub fn get_token_info(slot: CK_SLOT_ID) -> Result<TokenInfo> {
    let (sessions, rw, config) = with_module(|m| {
        let mine: Vec<_> = m.sessions.values().filter(|s| s.slot == slot).collect();
        Ok((
            mine.len(),
            mine.iter().filter(|s| s.rw).count(),
            m.config.clone(),
        ))
    })?;
    let mut info = on_token(slot, |t| t.info(&config))?;
    info.ulSessionCount = sessions as CK_ULONG;
    info.ulRwSessionCount = rw as CK_ULONG;
    Ok(info)
}

/// CKR_SLOT_ID_INVALID unless the slot exists.
pub fn check_slot(slot: CK_SLOT_ID) -> Result<()> {
    with_module(|m| {
        m.slots
            .get(&slot)
            .map(|_| ())
            .ok_or(Error::new(CKR_SLOT_ID_INVALID, "unknown slot"))
    })
}
