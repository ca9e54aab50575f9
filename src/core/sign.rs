//! Signing (PKCS#11 §5.12) on the card, and the mechanisms offered.
//!
//! Hashing and PKCS#1 v1.5 padding happen on the host, so the card gets one
//! short SIGN APDU whatever the message size: ECDSA is always the card's
//! `70` (hash in), RSA PKCS#1 v1.5 and X.509 its raw `20`, PSS its `40`
//! (the card applies PSS with salt = hash length, the only salt it takes).

use std::collections::HashMap;

use cryptoki_sys::*;
use parking_lot::Mutex;
use picohsm_crypto::{ec, hash::HashAlg, rsa};
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::api::{MechParam, Mechanism};
use crate::core::object::KeyInfo;
use crate::core::state::{on_token, session_slot};
use crate::core::token::Login;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

struct SignOp {
    mech: Mechanism,
    key_ref: u8,
    key: KeyInfo,
    data: Zeroizing<Vec<u8>>,
}

static OPS: Mutex<Option<HashMap<CK_SESSION_HANDLE, SignOp>>> = Mutex::new(None);

/// The algorithm of a hash mechanism (CKM_SHA256 → SHA-256, ...).
pub fn hash_alg(mech: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match mech {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA224 => HashAlg::Sha224,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// A hash mechanism's digest of `data`.
pub fn hash(mech: CK_MECHANISM_TYPE, data: &[u8]) -> Option<Vec<u8>> {
    hash_alg(mech).map(|h| h.digest(data))
}

/// The hash mechanism inside a combined mechanism (CKM_ECDSA_SHA256 →
/// CKM_SHA256, ...).
pub fn inner_hash(mech: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_TYPE> {
    Some(match mech {
        CKM_ECDSA_SHA1 | CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS => CKM_SHA_1,
        CKM_ECDSA_SHA224 | CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS => CKM_SHA224,
        CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS => CKM_SHA256,
        CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS => CKM_SHA384,
        CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS => CKM_SHA512,
        _ => return None,
    })
}

const EC_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
];
const RSA_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];

/// C_GetMechanismList: what the card can do, with host-side hashing.
pub fn get_mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    crate::core::general::check_slot(slot)?;
    let mut v = vec![CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN];
    v.extend_from_slice(EC_MECHS);
    v.extend_from_slice(RSA_MECHS);
    v.extend_from_slice(&[
        CKM_RSA_PKCS_OAEP,
        CKM_ECDH1_DERIVE,
        CKM_ECDH1_COFACTOR_DERIVE,
    ]);
    v.extend_from_slice(&[CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512]);
    Ok(v)
}

/// C_GetMechanismInfo: true key sizes (EC 256-521 bits, RSA 1024-4096).
pub fn get_mechanism_info(slot: CK_SLOT_ID, mech: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    if !get_mechanism_list(slot)?.contains(&mech) {
        return fail(CKR_MECHANISM_INVALID, "mechanism not offered");
    }
    let ec_flags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    let (min, max, flags) = match mech {
        CKM_EC_KEY_PAIR_GEN => (256, 521, CKF_HW | CKF_GENERATE_KEY_PAIR | ec_flags),
        CKM_RSA_PKCS_KEY_PAIR_GEN => (1024, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR),
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => (256, 521, CKF_HW | CKF_DERIVE | ec_flags),
        m if EC_MECHS.contains(&m) => (256, 521, CKF_HW | CKF_SIGN | CKF_VERIFY | ec_flags),
        CKM_RSA_PKCS | CKM_RSA_X_509 => (1024, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_DECRYPT),
        CKM_RSA_PKCS_OAEP => (1024, 4096, CKF_HW | CKF_DECRYPT),
        m if RSA_MECHS.contains(&m) => (1024, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY),
        _ => (0, 0, CKF_DIGEST),
    };
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: min,
        ulMaxKeySize: max,
        flags,
    })
}

/// C_SignInit.
pub fn sign_init(session: CK_SESSION_HANDLE, mech: Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    if OPS
        .lock()
        .as_ref()
        .is_some_and(|m| m.contains_key(&session))
    {
        return fail(CKR_OPERATION_ACTIVE, "a signature is under way");
    }
    let (key_ref, info) = crate::core::keyop::private_key(slot, key)?;
    let ok = match info {
        KeyInfo::Ec(_) => EC_MECHS.contains(&mech.kind),
        KeyInfo::Rsa(_) => RSA_MECHS.contains(&mech.kind),
    };
    if !ok {
        return fail(
            if EC_MECHS.contains(&mech.kind) || RSA_MECHS.contains(&mech.kind) {
                CKR_KEY_TYPE_INCONSISTENT
            } else {
                CKR_MECHANISM_INVALID
            },
            "mechanism does not fit the key",
        );
    }
    if let MechParam::Pss { hash, salt_len, .. } = &mech.param {
        let h = inner_hash(mech.kind).unwrap_or(*hash);
        let len = hash_len(h);
        if *hash != h || *salt_len != len {
            return fail(
                CKR_MECHANISM_PARAM_INVALID,
                "the card's PSS uses salt = hash length",
            );
        }
    } else if matches!(mech.kind, CKM_RSA_PKCS_PSS)
        || inner_hash(mech.kind).is_some() && RSA_MECHS.contains(&mech.kind) && is_pss(mech.kind)
    {
        return fail(CKR_MECHANISM_PARAM_INVALID, "PSS needs its parameters");
    }
    OPS.lock().get_or_insert_with(HashMap::new).insert(
        session,
        SignOp {
            mech,
            key_ref,
            key: info,
            data: Zeroizing::new(Vec::new()),
        },
    );
    Ok(())
}

fn is_pss(m: CK_MECHANISM_TYPE) -> bool {
    matches!(
        m,
        CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
    )
}

/// Output length of a hash mechanism; SHA-512's for anything else.
fn hash_len(h: CK_MECHANISM_TYPE) -> usize {
    hash_alg(h).unwrap_or(HashAlg::Sha512).output_len()
}

fn take(session: CK_SESSION_HANDLE) -> Result<SignOp> {
    OPS.lock()
        .as_mut()
        .and_then(|m| m.remove(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no signature under way",
        ))
}

/// C_Sign.
pub fn sign(session: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    let op = take(session)?;
    if !op.data.is_empty() {
        return fail(CKR_OPERATION_ACTIVE, "C_Sign after C_SignUpdate");
    }
    finish(slot, &op, data)
}

/// C_SignUpdate.
pub fn sign_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    session_slot(session)?;
    let mut g = OPS.lock();
    let op = g
        .as_mut()
        .and_then(|m| m.get_mut(&session))
        .ok_or(Error::new(
            CKR_OPERATION_NOT_INITIALIZED,
            "no signature under way",
        ))?;
    if inner_hash(op.mech.kind).is_none() {
        drop(g);
        let _ = take(session);
        return fail(CKR_FUNCTION_NOT_SUPPORTED, "single-part mechanism");
    }
    op.data.extend_from_slice(part);
    Ok(())
}

/// C_SignFinal.
pub fn sign_final(session: CK_SESSION_HANDLE) -> Result<Vec<u8>> {
    let (slot, _) = session_slot(session)?;
    let op = take(session)?;
    let data = op.data.clone();
    finish(slot, &op, &data)
}

/// Forgets a closed session's operation.
pub fn forget_session(session: CK_SESSION_HANDLE) {
    if let Some(m) = OPS.lock().as_mut() {
        m.remove(&session);
    }
}

/// EMSA-PKCS1-v1_5 block (type 1) of `t` for a modulus of `k` bytes.
pub(crate) fn pkcs1_type1(t: &[u8], k: usize) -> Result<Vec<u8>> {
    rsa::pkcs1v15_sign_block(t, k)
        .map_err(|_| Error::new(CKR_DATA_LEN_RANGE, "too long for the modulus"))
}

fn finish(slot: CK_SLOT_ID, op: &SignOp, data: &[u8]) -> Result<Vec<u8>> {
    let (algo, input) = match op.key {
        KeyInfo::Ec(_) => {
            let h = match inner_hash(op.mech.kind) {
                Some(h) => hash(h, data).unwrap_or_default(),
                None => data.to_vec(),
            };
            if h.is_empty() {
                return fail(CKR_DATA_LEN_RANGE, "nothing to sign");
            }
            (0x70, h)
        }
        KeyInfo::Rsa(bits) => {
            let k = bits.div_ceil(8);
            match op.mech.kind {
                CKM_RSA_X_509 => {
                    if data.len() > k {
                        return fail(CKR_DATA_LEN_RANGE, "longer than the modulus");
                    }
                    let mut v = vec![0u8; k - data.len()];
                    v.extend_from_slice(data);
                    (0x20, v)
                }
                CKM_RSA_PKCS => (0x20, pkcs1_type1(data, k)?),
                m if is_pss(m) => {
                    let h = match inner_hash(m) {
                        Some(h) => hash(h, data).unwrap_or_default(),
                        None => data.to_vec(),
                    };
                    if let MechParam::Pss { hash: hh, .. } = &op.mech.param {
                        if h.len() != hash_len(*hh) {
                            return fail(
                                CKR_DATA_LEN_RANGE,
                                "hash length does not fit the PSS parameters",
                            );
                        }
                    }
                    (0x40, h)
                }
                m => {
                    let h = inner_hash(m)
                        .and_then(hash_alg)
                        .ok_or(Error::new(CKR_MECHANISM_INVALID, "mechanism"))?;
                    let mut t = h.digest_info_prefix().to_vec();
                    t.extend_from_slice(&h.digest(data));
                    (0x20, pkcs1_type1(&t, k)?)
                }
            }
        }
    };
    let sig = on_token(slot, |t| {
        if t.login != Login::User {
            return fail(CKR_USER_NOT_LOGGED_IN, "key use needs a login");
        }
        t.transport
            .transact(|l| Ok(Card::new(l).sign(op.key_ref, algo, &input)?))
    })?;
    match op.key {
        KeyInfo::Ec(curve) => ec::der_to_raw(&sig, curve.field_size())
            .map_err(|_| Error::new(CKR_DEVICE_ERROR, "bad ECDSA signature from the card")),
        KeyInfo::Rsa(_) => Ok(sig),
    }
}
