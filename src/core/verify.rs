//! Signature verification in software with the public key (PKCS#11
//! §5.13), using the same RustCrypto glue as the card firmware
//! (`picohsm-crypto`).

use std::collections::HashMap;

use cryptoki_sys::*;
use parking_lot::Mutex;
use picohsm_crypto::{ec, hash::HashAlg, rsa};

use crate::core::api::{MechParam, Mechanism};
use crate::core::keyop::public_key;
use crate::core::object::KeyInfo;
use crate::core::sign::{hash, hash_alg, inner_hash, pkcs1_type1};
use crate::core::state::session_slot;
use crate::error::{fail, Error, Result};

struct Op {
    mech: Mechanism,
    info: KeyInfo,
    point: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
    data: Vec<u8>,
}

static OPS: Mutex<Option<HashMap<CK_SESSION_HANDLE, Op>>> = Mutex::new(None);

/// C_VerifyInit.
pub fn verify_init(
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
        return fail(CKR_OPERATION_ACTIVE, "a verification is under way");
    }
    let o = public_key(slot, key)?;
    let (_, info) = o.key.ok_or(Error::new(CKR_KEY_HANDLE_INVALID, "key"))?;
    let attr = |a| o.attrs.get(&a).cloned().unwrap_or_default();
    let point = picohsm_wire::tlv::parse_one(&attr(CKA_EC_POINT))
        .map(|(t, _)| t.value.to_vec())
        .unwrap_or_default();
    let ok = match info {
        KeyInfo::Ec(_) => {
            matches!(mech.kind, CKM_ECDSA)
                || (inner_hash(mech.kind).is_some() && mech.kind & 0xFFF0 == CKM_ECDSA & 0xFFF0)
        }
        KeyInfo::Rsa(_) => {
            matches!(mech.kind, CKM_RSA_PKCS | CKM_RSA_X_509 | CKM_RSA_PKCS_PSS)
                || (inner_hash(mech.kind).is_some() && mech.kind & 0xFFF0 != CKM_ECDSA & 0xFFF0)
        }
    };
    if !ok {
        return fail(CKR_MECHANISM_INVALID, "mechanism does not fit the key");
    }
    let op = Op {
        mech,
        info,
        point,
        n: attr(CKA_MODULUS),
        e: attr(CKA_PUBLIC_EXPONENT),
        data: Vec::new(),
    };
    OPS.lock()
        .get_or_insert_with(HashMap::new)
        .insert(session, op);
    Ok(())
}

fn take(session: CK_SESSION_HANDLE) -> Result<Op> {
    OPS.lock()
        .as_mut()
        .and_then(|m| m.remove(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no verification under way",
        ))
}

fn check(op: &Op, data: &[u8], sig: &[u8]) -> Result<()> {
    let good = match op.info {
        KeyInfo::Ec(curve) => {
            if sig.len() != 2 * curve.field_size() {
                return fail(CKR_SIGNATURE_LEN_RANGE, "r||s has twice the field size");
            }
            let h = match inner_hash(op.mech.kind) {
                Some(h) => hash(h, data).unwrap_or_default(),
                None => data.to_vec(),
            };
            ec::verify_prehash(curve, &op.point, &h, sig)
        }
        KeyInfo::Rsa(bits) => {
            if sig.len() != bits.div_ceil(8) {
                return fail(
                    CKR_SIGNATURE_LEN_RANGE,
                    "signature length differs from the modulus",
                );
            }
            let pss = matches!(op.mech.param, MechParam::Pss { .. });
            let (h, digest) = match inner_hash(op.mech.kind) {
                Some(hm) => (
                    hash_alg(hm).unwrap_or(HashAlg::Sha256),
                    hash(hm, data).unwrap_or_default(),
                ),
                None if pss => match &op.mech.param {
                    MechParam::Pss { hash: hm, .. } => (
                        hash_alg(*hm).ok_or(Error::new(CKR_MECHANISM_PARAM_INVALID, "hash"))?,
                        data.to_vec(),
                    ),
                    _ => unreachable_param()?,
                },
                None => return raw_verify(op, bits, data, sig),
            };
            if pss {
                rsa::verify_pss(&op.n, &op.e, h, &digest, sig)
            } else {
                rsa::verify_pkcs1v15(&op.n, &op.e, h, &digest, sig)
            }
        }
    };
    if good {
        Ok(())
    } else {
        fail(CKR_SIGNATURE_INVALID, "signature does not verify")
    }
}

/// CKM_RSA_X_509 and CKM_RSA_PKCS over any data: the public operation,
/// then a comparison with the (padded) data.
fn raw_verify(op: &Op, bits: usize, data: &[u8], sig: &[u8]) -> Result<()> {
    let k = bits.div_ceil(8);
    let em = rsa::public_raw(&op.n, &op.e, sig)
        .map_err(|_| Error::new(CKR_SIGNATURE_INVALID, "signature not below the modulus"))?;
    let want = if op.mech.kind == CKM_RSA_X_509 {
        if data.len() > k {
            return fail(CKR_DATA_LEN_RANGE, "longer than the modulus");
        }
        let mut v = vec![0u8; k - data.len()];
        v.extend_from_slice(data);
        v
    } else {
        pkcs1_type1(data, k)?
    };
    if em == want {
        Ok(())
    } else {
        fail(CKR_SIGNATURE_INVALID, "signature does not verify")
    }
}

fn unreachable_param() -> Result<(HashAlg, Vec<u8>)> {
    fail(CKR_MECHANISM_PARAM_INVALID, "PSS parameters")
}

/// C_Verify.
pub fn verify(session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
    session_slot(session)?;
    let op = take(session)?;
    check(&op, data, signature)
}

/// C_VerifyUpdate.
pub fn verify_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    session_slot(session)?;
    let mut g = OPS.lock();
    let op = g
        .as_mut()
        .and_then(|m| m.get_mut(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no verification under way",
        ))?;
    op.data.extend_from_slice(part);
    Ok(())
}

/// C_VerifyFinal.
pub fn verify_final(session: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
    session_slot(session)?;
    let op = take(session)?;
    let data = op.data.clone();
    check(&op, &data, signature)
}

/// Forgets a closed session's verification.
pub fn forget_session(session: CK_SESSION_HANDLE) {
    if let Some(m) = OPS.lock().as_mut() {
        m.remove(&session);
    }
}
