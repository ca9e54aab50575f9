//! Decryption with RSA keys on the card (PKCS#11 3.0 §5.10): CKM_RSA_PKCS
//! (card `22`, which unpads with implicit rejection), CKM_RSA_X_509 (`21`),
//! CKM_RSA_PKCS_OAEP with SHA-1 … SHA-512, MGF1 with any of them and any
//! label: the card's raw `21`, decoded here (the card's own OAEP, `23`,
//! is SHA-256 without a label only), as OpenSC does. The output's length is
//! known only once the card has run: a size query runs it and the output
//! waits in the session ([`operation::deliver_kept`]).

use cryptoki_sys::*;
use picohsm_crypto::rsa;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::keyop::private_key;
use crate::core::mech::{Hash, Mechanism, Oaep};
use crate::core::object::KeyInfo;
use crate::core::operation::{self, Decrypted, KeptFn, Output};
use crate::core::state::on_token;
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

/// A decryption under way: the card's algorithm, the key, and the
/// ciphertext of C_DecryptUpdate so far.
pub(crate) struct DecryptOp {
    algo: u8,
    /// OAEP decoded on the host: (hash, MGF1 hash, label, modulus bytes).
    oaep: Option<(Hash, Hash, Vec<u8>, usize)>,
    key_ref: u8,
    data: Zeroizing<Vec<u8>>,
}

/// C_DecryptInit (drops an output that waits for C_Decrypt or
/// C_DecryptFinal).
pub fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mech: Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    operation::on_session(session, |s| {
        s.ops.decrypted = None;
        Ok(())
    })?;
    let slot = operation::idle::<DecryptOp>(session)?;
    let (algo, oaep) = match mech {
        Mechanism::RsaPkcs => (0x22, None),
        Mechanism::RsaX509 => (0x21, None),
        Mechanism::Oaep(Oaep {
            hash: Some(h),
            mgf: Some(m),
            label,
        }) => (0x21, Some((h, m, label))),
        Mechanism::Oaep(_) => {
            return fail(CKR_MECHANISM_PARAM_INVALID, "OAEP hash or MGF not offered")
        }
        _ => return fail(CKR_MECHANISM_INVALID, "not a decryption mechanism"),
    };
    let (key_ref, info) = private_key(slot, key, false)?;
    let KeyInfo::Rsa(bits) = info else {
        return fail(CKR_KEY_TYPE_INCONSISTENT, "decryption takes an RSA key");
    };
    // OAEP (RFC 8017) needs room for two hashes and two bytes.
    let k = bits.div_ceil(8);
    if let Some((h, _, _)) = &oaep {
        if k < 2 * h.output_len() + 2 {
            return fail(
                CKR_MECHANISM_PARAM_INVALID,
                "OAEP hash too long for the key",
            );
        }
    }
    let oaep = oaep.map(|(h, m, label)| (h, m, label, k));
    operation::start(
        session,
        DecryptOp {
            algo,
            oaep,
            key_ref,
            data: Zeroizing::new(Vec::new()),
        },
    )
}

fn run(slot: CK_SLOT_ID, op: &DecryptOp, data: &[u8]) -> Result<Vec<u8>> {
    let out = on_token(slot, |t| {
        t.transport.exchange_alone(|l| {
            // A ciphertext the card refuses is CKR_ENCRYPTED_DATA_INVALID.
            Ok(Card::new(l).decipher(op.key_ref, op.algo, data)?)
        })
    })?;
    let Some((hash, mgf, label, k)) = &op.oaep else {
        return Ok(out);
    };
    let out = Zeroizing::new(out);
    if out.len() > *k {
        return fail(CKR_DEVICE_ERROR, "raw RSA result longer than the modulus");
    }
    // EM is the modulus' length; a card may drop its leading zero bytes.
    let mut em = Zeroizing::new(vec![0u8; *k - out.len()]);
    em.extend_from_slice(&out);
    // One error for every decoding failure (rsa::oaep_decode).
    let pt = rsa::oaep_decode(hash.alg(), mgf.alg(), label, &em)
        .map_err(|_| Error::new(CKR_ENCRYPTED_DATA_INVALID, "OAEP decoding failed"))?;
    Ok(pt.to_vec())
}

/// C_Decrypt: the card decrypts once; a size query or a short buffer
/// leaves the plaintext waiting for the same call.
pub fn decrypt(session: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Result<Output> {
    operation::deliver_kept(&Decrypted(session), KeptFn::Decrypt, data, capacity, || {
        let (slot, op) = operation::take::<DecryptOp>(session)?;
        run(slot, &op, data)
    })
}

/// C_DecryptUpdate: buffers (RSA decrypts one block at the end), so its
/// output is always empty; a size query (`capacity` `None`) only learns
/// that and feeds nothing.
pub fn decrypt_update(
    session: CK_SESSION_HANDLE,
    part: &[u8],
    capacity: Option<usize>,
) -> Result<Output> {
    operation::on_session(session, |s| {
        s.ops.decrypted = None;
        Ok(())
    })?;
    operation::update(session, |op: &mut DecryptOp| {
        if capacity.is_some() {
            op.data.extend_from_slice(part);
        }
        Ok(())
    })?;
    Ok(match capacity {
        None => Output::Length(0),
        Some(_) => Output::Data(Zeroizing::new(Vec::new())),
    })
}

/// C_DecryptFinal: as [`decrypt`], over the ciphertext of the updates.
pub fn decrypt_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Output> {
    operation::deliver_kept(
        &Decrypted(session),
        KeptFn::DecryptFinal,
        &[],
        capacity,
        || {
            let (slot, op) = operation::take::<DecryptOp>(session)?;
            run(slot, &op, &op.data)
        },
    )
}
