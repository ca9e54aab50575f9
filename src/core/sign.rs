//! Signing (PKCS#11 3.0 §5.13) on the card.
//!
//! Hashing and PKCS#1 v1.5 padding happen on the host, so the card gets one
//! short SIGN APDU whatever the message size: ECDSA is always the card's
//! `70` (hash in), RSA PKCS#1 v1.5, X.509 and PSS its raw `20`. PSS is
//! encoded here (the card's own PSS, `40`, takes only salt = hash length),
//! so any salt length the modulus leaves room for and any MGF1 hash work,
//! as with OpenSC.
//! The signature's length is known from the key, so a size query does not
//! sign (see [`crate::core::operation`]).

use cryptoki_sys::*;
use picohsm_crypto::{ec, rsa};
use picohsm_wire::codes::algo;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::keyop::private_key;
use crate::core::mech::{Mechanism, Pss};
use crate::core::object::KeyInfo;
use crate::core::operation::{self, Output};
use crate::core::state::on_token;
use crate::core::token::Login;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

/// A signature under way: its mechanism, its key, and the data of
/// C_SignUpdate so far.
pub(crate) struct SignOp {
    mech: Mechanism,
    key_ref: u8,
    key: KeyInfo,
    data: Zeroizing<Vec<u8>>,
}

/// C_SignInit.
pub fn sign_init(session: CK_SESSION_HANDLE, mech: Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let slot = operation::idle::<SignOp>(session)?;
    let (key_ref, info) = private_key(slot, key, false)?;
    match mech.signs_with(&info) {
        Some(true) => {}
        Some(false) => {
            return fail(CKR_KEY_TYPE_INCONSISTENT, "mechanism does not fit the key");
        }
        None => return fail(CKR_MECHANISM_INVALID, "not a signature mechanism"),
    }
    if let (Mechanism::Pss(p) | Mechanism::PssHash(_, p), KeyInfo::Rsa(bits)) = (&mech, info) {
        pss_fits(&mech, p, bits)?;
    }
    operation::start(
        session,
        SignOp {
            mech,
            key_ref,
            key: info,
            data: Zeroizing::new(Vec::new()),
        },
    )
}

/// C_Sign: with a buffer for the signature, signs and ends the operation;
/// a size query or a short buffer only learns the length.
pub fn sign(session: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Result<Output> {
    operation::finish(
        session,
        capacity,
        |op: &SignOp| {
            if !op.data.is_empty() {
                return fail(CKR_OPERATION_ACTIVE, "C_Sign after C_SignUpdate");
            }
            Ok((op.signature_len(), op.encode(data)?))
        },
        SignOp::run,
    )
}

/// C_SignUpdate.
pub fn sign_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    operation::update(session, |op: &mut SignOp| {
        if op.mech.hash().is_none() {
            return fail(CKR_FUNCTION_NOT_SUPPORTED, "single-part mechanism");
        }
        op.data.extend_from_slice(part);
        Ok(())
    })
}

/// C_SignFinal: as [`sign`], over the data of the updates.
pub fn sign_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Output> {
    operation::finish(
        session,
        capacity,
        |op: &SignOp| Ok((op.signature_len(), op.encode(&op.data)?)),
        SignOp::run,
    )
}

/// CKR_MECHANISM_PARAM_INVALID unless the PSS parameters name hashes this
/// module computes (hashAlg the mechanism's own for CKM_SHA*_RSA_PKCS_PSS)
/// and the salt fits a modulus of `bits` bits (EMSA-PSS, RFC 8017: at most
/// emLen - hLen - 2 bytes).
fn pss_fits(mech: &Mechanism, p: &Pss, bits: usize) -> Result<()> {
    let (Some(h), Some(_)) = (p.hash, p.mgf) else {
        return fail(CKR_MECHANISM_PARAM_INVALID, "PSS hash or MGF not offered");
    };
    if matches!(mech, Mechanism::PssHash(mh, _) if *mh != h) {
        return fail(
            CKR_MECHANISM_PARAM_INVALID,
            "hashAlg differs from the mechanism's",
        );
    }
    let em_len = bits.saturating_sub(1).div_ceil(8);
    if p.salt_len + h.output_len() + 2 > em_len {
        return fail(CKR_MECHANISM_PARAM_INVALID, "salt too long for the modulus");
    }
    Ok(())
}

/// EMSA-PKCS1-v1_5 block (type 1) of `t` for a modulus of `k` bytes.
pub fn pkcs1_type1(t: &[u8], k: usize) -> Result<Vec<u8>> {
    rsa::pkcs1v15_sign_block(t, k)
        .map_err(|_| Error::new(CKR_DATA_LEN_RANGE, "too long for the modulus"))
}

/// The CKM_RSA_X_509 block of `data` for a modulus of `k` bytes: `data`
/// with leading zeros.
pub fn x509_block(data: &[u8], k: usize) -> Result<Vec<u8>> {
    if data.len() > k {
        return fail(CKR_DATA_LEN_RANGE, "longer than the modulus");
    }
    let mut v = vec![0u8; k - data.len()];
    v.extend_from_slice(data);
    Ok(v)
}

impl SignOp {
    /// The signature's length: r‖s, or the modulus.
    fn signature_len(&self) -> usize {
        match self.key {
            KeyInfo::Ec(curve) => 2 * curve.field_size(),
            KeyInfo::Rsa(bits) => bits.div_ceil(8),
        }
    }

    /// The card's algorithm and its input for `data`: hashed and padded
    /// here as the mechanism says.
    fn encode(&self, data: &[u8]) -> Result<(u8, Vec<u8>)> {
        let hashed = || match self.mech.hash() {
            Some(h) => h.digest(data),
            None => data.to_vec(),
        };
        let k = self.signature_len();
        Ok(match (&self.mech, self.key) {
            (_, KeyInfo::Ec(_)) => {
                let h = hashed();
                if h.is_empty() {
                    return fail(CKR_DATA_LEN_RANGE, "nothing to sign");
                }
                (algo::ECDSA, h)
            }
            (Mechanism::RsaX509, _) => (algo::RSA_RAW, x509_block(data, k)?),
            (Mechanism::RsaPkcs, _) => (algo::RSA_RAW, pkcs1_type1(data, k)?),
            (Mechanism::Pss(p) | Mechanism::PssHash(_, p), KeyInfo::Rsa(bits)) => {
                let h = hashed();
                let (Some(hash), Some(mgf)) = (p.hash, p.mgf) else {
                    return fail(CKR_MECHANISM_PARAM_INVALID, "PSS hash or MGF");
                };
                if hash.output_len() != h.len() {
                    return fail(
                        CKR_DATA_LEN_RANGE,
                        "hash length does not fit the PSS parameters",
                    );
                }
                let mut salt = vec![0u8; p.salt_len];
                getrandom::fill(&mut salt)
                    .map_err(|_| Error::new(CKR_FUNCTION_FAILED, "no random salt"))?;
                let em = rsa::pss_encode(hash.alg(), mgf.alg(), &h, &salt, bits)
                    .map_err(|_| Error::new(CKR_MECHANISM_PARAM_INVALID, "salt too long"))?;
                (algo::RSA_RAW, em)
            }
            (Mechanism::RsaPkcsHash(h), _) => {
                let mut t = h.alg().digest_info_prefix().to_vec();
                t.extend_from_slice(&h.digest(data));
                (algo::RSA_RAW, pkcs1_type1(&t, k)?)
            }
            _ => return fail(CKR_MECHANISM_INVALID, "mechanism"),
        })
    }

    /// Signs `input` with the card's `algo`; the result in PKCS#11's form
    /// (r‖s for ECDSA, the modulus' length for RSA).
    fn run(slot: CK_SLOT_ID, op: SignOp, (algorithm, input): (u8, Vec<u8>)) -> Result<Vec<u8>> {
        let sig = on_token(slot, |t| {
            if t.login != Login::User {
                return fail(CKR_USER_NOT_LOGGED_IN, "key use needs a login");
            }
            t.transport
                .exchange_alone(|l| Ok(Card::new(l).sign(op.key_ref, algorithm, &input)?))
        })?;
        match op.key {
            KeyInfo::Ec(curve) => ec::der_to_raw(&sig, curve.field_size())
                .map_err(|_| Error::new(CKR_DEVICE_ERROR, "bad ECDSA signature from the card")),
            // Full length, as announced to a size query.
            KeyInfo::Rsa(_) => x509_block(&sig, op.signature_len())
                .map_err(|_| Error::new(CKR_DEVICE_ERROR, "RSA signature longer than the modulus")),
        }
    }
}
