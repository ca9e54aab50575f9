//! Signature verification in software with the public key (PKCS#11
//! 3.0 §5.15), using the same RustCrypto glue as the card firmware.

use cryptoki_sys::*;
use picohsm_crypto::{ec, rsa};

use crate::core::keyop::public_key;
use crate::core::mech::{Hash, Mechanism};
use crate::core::object::KeyInfo;
use crate::core::operation;
use crate::core::sign::{pkcs1_type1, x509_block};
use crate::error::{fail, Error, Result};

/// A verification under way: the mechanism, the public key, and the data
/// of C_VerifyUpdate so far.
pub(crate) struct VerifyOp {
    mech: Mechanism,
    info: KeyInfo,
    point: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
    data: Vec<u8>,
}

/// C_VerifyInit.
pub fn verify_init(
    session: CK_SESSION_HANDLE,
    mech: Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let slot = operation::idle::<VerifyOp>(session)?;
    let o = public_key(slot, key)?;
    let (_, info) = o.key.ok_or(Error::new(CKR_KEY_HANDLE_INVALID, "key"))?;
    let attr = |a| o.attrs.get(&a).cloned().unwrap_or_default();
    let point = picohsm_wire::tlv::parse_one(&attr(CKA_EC_POINT))
        .map(|(t, _)| t.value.to_vec())
        .unwrap_or_default();
    if mech.signs_with(&info) != Some(true) {
        return fail(CKR_MECHANISM_INVALID, "mechanism does not fit the key");
    }
    // The rsa crate's verifier takes MGF1 with the message's hash, and any
    // salt length.
    if let Mechanism::Pss(p) | Mechanism::PssHash(_, p) = &mech {
        if p.hash.is_none() || p.mgf != p.hash {
            return fail(
                CKR_MECHANISM_PARAM_INVALID,
                "PSS verification: MGF1 with hashAlg",
            );
        }
    }
    let op = VerifyOp {
        mech,
        info,
        point,
        n: attr(CKA_MODULUS),
        e: attr(CKA_PUBLIC_EXPONENT),
        data: Vec::new(),
    };
    operation::start(session, op)
}

fn check(op: &VerifyOp, data: &[u8], sig: &[u8]) -> Result<()> {
    let good = match op.info {
        KeyInfo::Ec(curve) => {
            if sig.len() != 2 * curve.field_size() {
                return fail(CKR_SIGNATURE_LEN_RANGE, "r||s has twice the field size");
            }
            let h = match op.mech.hash() {
                Some(h) => h.digest(data),
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
            let pss = matches!(op.mech, Mechanism::Pss(_) | Mechanism::PssHash(..));
            let (h, digest) = match (op.mech.hash(), &op.mech) {
                (Some(hm), _) => (hm.alg(), hm.digest(data)),
                (None, Mechanism::Pss(p)) => (
                    p.hash
                        .map(Hash::alg)
                        .ok_or(Error::new(CKR_MECHANISM_PARAM_INVALID, "hash"))?,
                    data.to_vec(),
                ),
                (None, _) => return raw_verify(op, bits, data, sig),
            };
            if let (true, Mechanism::Pss(p) | Mechanism::PssHash(_, p)) = (pss, &op.mech) {
                rsa::verify_pss_salt(&op.n, &op.e, h, &digest, p.salt_len, sig)
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
fn raw_verify(op: &VerifyOp, bits: usize, data: &[u8], sig: &[u8]) -> Result<()> {
    let k = bits.div_ceil(8);
    let em = rsa::public_raw(&op.n, &op.e, sig)
        .map_err(|_| Error::new(CKR_SIGNATURE_INVALID, "signature not below the modulus"))?;
    let want = if op.mech == Mechanism::RsaX509 {
        x509_block(data, k)?
    } else {
        pkcs1_type1(data, k)?
    };
    if em == want {
        Ok(())
    } else {
        fail(CKR_SIGNATURE_INVALID, "signature does not verify")
    }
}

/// C_Verify.
pub fn verify(session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
    let (_, op) = operation::take::<VerifyOp>(session)?;
    check(&op, data, signature)
}

/// C_VerifyUpdate.
pub fn verify_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    operation::update(session, |op: &mut VerifyOp| {
        op.data.extend_from_slice(part);
        Ok(())
    })
}

/// C_VerifyFinal.
pub fn verify_final(session: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
    let (_, op) = operation::take::<VerifyOp>(session)?;
    check(&op, &op.data, signature)
}
