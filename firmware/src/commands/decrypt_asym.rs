//! DECIPHER / ECDH (INS 62, docs/protocol.md §7.3): P1 = key id, P2 = algorithm byte.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::algo;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::signature::key_for_use;
use crate::keys::PrivateKey;
use crate::rng::Adapter;
use crate::Card;
use picohsm_crypto::hash::HashAlg;
use picohsm_crypto::{ec, CryptoError};

fn sw(e: CryptoError) -> StatusWord {
    match e {
        CryptoError::InvalidInput | CryptoError::Failed => StatusWord::WRONG_DATA,
        CryptoError::InvalidKey => StatusWord::EXEC_ERROR,
    }
}

/// Runs DECIPHER.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    let alg = cmd.p2;
    if !matches!(
        alg,
        algo::RSA_DECRYPT_RAW | algo::RSA_DECRYPT_PKCS1 | algo::RSA_DECRYPT_OAEP | algo::ECDH
    ) {
        return Err(StatusWord::FUNC_NOT_SUPPORTED);
    }
    let key = key_for_use(card, cmd.p1, alg)?;
    if cmd.data.is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let mut rng = Adapter(&mut *card.rng);
    let out = match (&key, alg) {
        (PrivateKey::Rsa(k), algo::RSA_DECRYPT_RAW) => {
            k.decrypt_raw(cmd.data, &mut rng).map_err(sw)?
        }
        (PrivateKey::Rsa(k), algo::RSA_DECRYPT_PKCS1) => {
            k.decrypt_pkcs1v15(cmd.data, &mut rng).map_err(sw)?
        }
        (PrivateKey::Rsa(k), algo::RSA_DECRYPT_OAEP) => k
            .decrypt_oaep(HashAlg::Sha256, None, cmd.data, &mut rng)
            .map_err(sw)?,
        (PrivateKey::Ec { curve, d }, algo::ECDH) => {
            let x = ec::ecdh(*curve, d, cmd.data).map_err(sw)?;
            let mut v = Vec::with_capacity(x.len() + 1);
            v.push(0x04);
            v.extend_from_slice(&x);
            return Ok(v);
        }
        _ => return Err(StatusWord::FUNC_NOT_SUPPORTED),
    };
    Ok(out.to_vec())
}
