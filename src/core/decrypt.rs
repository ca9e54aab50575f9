//! Decryption with RSA keys on the card (PKCS#11 §5.9): CKM_RSA_PKCS
//! (card `22`, which unpads with implicit rejection), CKM_RSA_X_509 (`21`),
//! CKM_RSA_PKCS_OAEP with SHA-256/MGF1-SHA-256 and no label (`23`, the only
//! OAEP the card does).

use std::collections::HashMap;

use cryptoki_sys::*;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::api::{MechParam, Mechanism};
use crate::core::keyop::private_key;
use crate::core::object::KeyInfo;
use crate::core::state::{on_token, session_slot};
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

struct Op {
    algo: u8,
    key_ref: u8,
    data: Zeroizing<Vec<u8>>,
}

static OPS: Mutex<Option<HashMap<CK_SESSION_HANDLE, Op>>> = Mutex::new(None);

/// C_DecryptInit.
pub fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mech: Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    if OPS
        .lock()
        .as_ref()
        .is_some_and(|m| m.contains_key(&session))
    {
        return fail(CKR_OPERATION_ACTIVE, "a decryption is under way");
    }
    let algo = match (mech.kind, &mech.param) {
        (CKM_RSA_PKCS, _) => 0x22,
        (CKM_RSA_X_509, _) => 0x21,
        (
            CKM_RSA_PKCS_OAEP,
            MechParam::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                label,
            },
        ) if label.is_empty() => 0x23,
        (CKM_RSA_PKCS_OAEP, _) => {
            return fail(
                CKR_MECHANISM_PARAM_INVALID,
                "the card's OAEP is SHA-256, MGF1-SHA-256, no label",
            )
        }
        _ => return fail(CKR_MECHANISM_INVALID, "not a decryption mechanism"),
    };
    let (key_ref, info) = private_key(slot, key)?;
    if !matches!(info, KeyInfo::Rsa(_)) {
        return fail(CKR_KEY_TYPE_INCONSISTENT, "decryption takes an RSA key");
    }
    OPS.lock().get_or_insert_with(HashMap::new).insert(
        session,
        Op {
            algo,
            key_ref,
            data: Zeroizing::new(Vec::new()),
        },
    );
    Ok(())
}

fn take(session: CK_SESSION_HANDLE) -> Result<Op> {
    OPS.lock()
        .as_mut()
        .and_then(|m| m.remove(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no decryption under way",
        ))
}

fn run(slot: CK_SLOT_ID, op: &Op, data: &[u8]) -> Result<Vec<u8>> {
    on_token(slot, |t| {
        t.transport.transact(|l| {
            // A ciphertext the card refuses is CKR_ENCRYPTED_DATA_INVALID.
            Ok(Card::new(l).decipher(op.key_ref, op.algo, data)?)
        })
    })
}

/// C_Decrypt.
pub fn decrypt(session: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    let op = take(session)?;
    run(slot, &op, data)
}

/// C_DecryptUpdate: buffers (RSA decrypts one block at the end).
pub fn decrypt_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<Vec<u8>> {
    session_slot(session)?;
    let mut g = OPS.lock();
    let op = g
        .as_mut()
        .and_then(|m| m.get_mut(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no decryption under way",
        ))?;
    op.data.extend_from_slice(part);
    Ok(Vec::new())
}

/// C_DecryptFinal.
pub fn decrypt_final(session: CK_SESSION_HANDLE) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    let op = take(session)?;
    let data = op.data.clone();
    run(slot, &op, &data)
}

/// Forgets a closed session's decryption.
pub fn forget_session(session: CK_SESSION_HANDLE) {
    if let Some(m) = OPS.lock().as_mut() {
        m.remove(&session);
    }
}
