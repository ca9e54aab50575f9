//! Message digests on the host (PKCS#11 §5.10): SHA-1 and SHA-2.

use std::collections::HashMap;

use cryptoki_sys::*;
use parking_lot::Mutex;

use crate::core::api::Mechanism;
use crate::core::sign::hash;
use crate::core::state::session_slot;
use crate::error::{fail, Error, Result};

/// A digest under way: its mechanism and the data so far.
type DigestOp = (CK_MECHANISM_TYPE, Vec<u8>);

static OPS: Mutex<Option<HashMap<CK_SESSION_HANDLE, DigestOp>>> = Mutex::new(None);

/// C_DigestInit.
pub fn digest_init(session: CK_SESSION_HANDLE, mech: Mechanism) -> Result<()> {
    session_slot(session)?;
    if hash(mech.kind, b"").is_none() {
        return fail(CKR_MECHANISM_INVALID, "not a digest mechanism");
    }
    let mut g = OPS.lock();
    let m = g.get_or_insert_with(HashMap::new);
    if m.contains_key(&session) {
        return fail(CKR_OPERATION_ACTIVE, "a digest is under way");
    }
    m.insert(session, (mech.kind, Vec::new()));
    Ok(())
}

fn take(session: CK_SESSION_HANDLE) -> Result<DigestOp> {
    OPS.lock()
        .as_mut()
        .and_then(|m| m.remove(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no digest under way",
        ))
}

/// C_Digest.
pub fn digest(session: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>> {
    session_slot(session)?;
    let (m, _) = take(session)?;
    hash(m, data).ok_or(Error::new(CKR_MECHANISM_INVALID, "digest"))
}

/// C_DigestUpdate.
pub fn digest_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    session_slot(session)?;
    let mut g = OPS.lock();
    let op = g
        .as_mut()
        .and_then(|m| m.get_mut(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no digest under way",
        ))?;
    op.1.extend_from_slice(part);
    Ok(())
}

/// C_DigestFinal.
pub fn digest_final(session: CK_SESSION_HANDLE) -> Result<Vec<u8>> {
    session_slot(session)?;
    let (m, data) = take(session)?;
    hash(m, &data).ok_or(Error::new(CKR_MECHANISM_INVALID, "digest"))
}

/// Forgets a closed session's digest.
pub fn forget_session(session: CK_SESSION_HANDLE) {
    if let Some(m) = OPS.lock().as_mut() {
        m.remove(&session);
    }
}
