//! Signing (PKCS#11 §5.12) on the card.
//!
//! Hashing and PKCS#1 v1.5 padding happen on the host, so the card gets one
//! short SIGN APDU whatever the message size: ECDSA is always the card's
//! `70` (hash in), RSA PKCS#1 v1.5 and X.509 its raw `20`, PSS its `40`
//! (the card applies PSS with salt = hash length, the only salt it takes).
//! The signature's length is known from the key, so a size query does not
//! sign (see [`crate::core::operation`]).

use cryptoki_sys::*;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::card;
use crate::core::keyop::private_key;
use crate::core::mech::{HashUse, Mechanism};
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

/// A hash mechanism's digest of `data`.
pub fn hash(mech: CK_MECHANISM_TYPE, data: &[u8]) -> Option<Vec<u8>> {
    Some(match mech {
        CKM_SHA_1 => Sha1::digest(data).to_vec(),
        CKM_SHA224 => Sha224::digest(data).to_vec(),
        CKM_SHA256 => Sha256::digest(data).to_vec(),
        CKM_SHA384 => Sha384::digest(data).to_vec(),
        CKM_SHA512 => Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// DER DigestInfo prefix for a hash mechanism (RFC 8017 §9.2 note 1).
pub fn digest_info_prefix(h: CK_MECHANISM_TYPE) -> &'static [u8] {
    match h {
        CKM_SHA_1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04,
            0x14,
        ],
        CKM_SHA224 => &[
            0x30, 0x2D, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1C,
        ],
        CKM_SHA256 => &[
            0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        CKM_SHA384 => &[
            0x30, 0x41, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        _ => &[
            0x30, 0x51, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// C_SignInit.
pub fn sign_init(session: CK_SESSION_HANDLE, mech: Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let slot = operation::idle::<SignOp>(session)?;
    let (key_ref, info) = private_key(slot, key)?;
    match mech.signs_with(&info) {
        Some(true) => {}
        Some(false) => {
            return fail(CKR_KEY_TYPE_INCONSISTENT, "mechanism does not fit the key");
        }
        None => return fail(CKR_MECHANISM_INVALID, "not a signature mechanism"),
    }
    let card_pss = match &mech {
        Mechanism::PssHash(h, p) => p.hash == Some(*h) && p.salt_len == h.output_len(),
        Mechanism::Pss(p) => p.hash.is_some_and(|h| p.salt_len == h.output_len()),
        _ => true,
    };
    if !card_pss {
        return fail(
            CKR_MECHANISM_PARAM_INVALID,
            "the card's PSS uses salt = hash length",
        );
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

/// EMSA-PKCS1-v1_5 block (type 1) of `t` for a modulus of `k` bytes.
pub fn pkcs1_type1(t: &[u8], k: usize) -> Result<Vec<u8>> {
    if t.len() + 11 > k {
        return fail(CKR_DATA_LEN_RANGE, "too long for the modulus");
    }
    let mut v = vec![0x00, 0x01];
    v.resize(k - t.len() - 1, 0xFF);
    v.push(0x00);
    v.extend_from_slice(t);
    Ok(v)
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

/// DER ECDSA-Sig-Value → r‖s, each `n` bytes.
pub fn der_to_raw(der: &[u8], n: usize) -> Result<Vec<u8>> {
    let bad = || Error::new(CKR_DEVICE_ERROR, "bad ECDSA signature from the card");
    let (seq, _) = picohsm_wire::tlv::parse_one(der).map_err(|_| bad())?;
    let ints = picohsm_wire::tlv::parse_all(seq.value).map_err(|_| bad())?;
    if seq.tag != 0x30 || ints.len() != 2 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(2 * n);
    for i in ints {
        let v = i.value;
        let z = v.iter().take_while(|x| **x == 0).count();
        let v = &v[z..];
        if v.len() > n {
            return Err(bad());
        }
        out.extend(std::iter::repeat_n(0u8, n - v.len()));
        out.extend_from_slice(v);
    }
    Ok(out)
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
                (0x70, h)
            }
            (Mechanism::RsaX509, _) => (0x20, x509_block(data, k)?),
            (Mechanism::RsaPkcs, _) => (0x20, pkcs1_type1(data, k)?),
            (Mechanism::Pss(p) | Mechanism::PssHash(_, p), _) => {
                let h = hashed();
                if p.hash.map(|hh| hh.output_len()) != Some(h.len()) {
                    return fail(
                        CKR_DATA_LEN_RANGE,
                        "hash length does not fit the PSS parameters",
                    );
                }
                (0x40, h)
            }
            (Mechanism::RsaPkcsHash(h), _) => {
                let mut t = digest_info_prefix(h.number(HashUse::Digest)).to_vec();
                t.extend_from_slice(&h.digest(data));
                (0x20, pkcs1_type1(&t, k)?)
            }
            _ => return fail(CKR_MECHANISM_INVALID, "mechanism"),
        })
    }

    /// Signs `input` with the card's `algo`; the result in PKCS#11's form
    /// (r‖s for ECDSA, the modulus' length for RSA).
    fn run(slot: CK_SLOT_ID, op: SignOp, (algo, input): (u8, Vec<u8>)) -> Result<Vec<u8>> {
        let sig = on_token(slot, |t| {
            if t.login != Login::User {
                return fail(CKR_USER_NOT_LOGGED_IN, "key use needs a login");
            }
            t.transport
                .transact(|l| card::sign(l, op.key_ref, algo, &input))
        })?;
        match op.key {
            KeyInfo::Ec(curve) => der_to_raw(&sig, curve.field_size()),
            // Full length, as announced to a size query.
            KeyInfo::Rsa(_) => x509_block(&sig, op.signature_len())
                .map_err(|_| Error::new(CKR_DEVICE_ERROR, "RSA signature longer than the modulus")),
        }
    }
}
