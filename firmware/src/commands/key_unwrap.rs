//! UNWRAP KEY (INS 74, P2 93, docs/protocol.md §7.5): import a DKEK blob as key P1. The blob
//! is the command data, or (as OpenSC sends it) the content of EF 2F10.
//! Every complete key domain is tried; the key joins the domain whose DKEK
//! opened it. Stores the key, a default PrKD and a fresh request.
//!
//! Errors: 6984 not a blob; 6A88 no domain's DKEK matches the blob's KCV;
//! 6985 the blob fails its MAC or does not parse; 6A81 key type not stored
//! by this card (AES); 6400 no PIN session to seal the key.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::codes::{algo, fid};
use picohsm_wire::cvc::oid;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::commands::require_auth;
use crate::dkek::{self, UnwrapError};
use crate::keys::{self, KeyMeta};
use crate::{request, Card};

/// Runs UNWRAP KEY.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.p2 != algo::UNWRAP {
        return Err(StatusWord::WRONG_PARAMS);
    }
    require_auth(card)?;
    let id = cmd.p1;
    if id == 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let blob: Vec<u8> = if cmd.data.is_empty() {
        card.fs
            .get(fid::EF_UNWRAP)
            .filter(|b| !b.is_empty())
            .ok_or(StatusWord::FILE_NOT_FOUND)?
            .to_vec()
    } else {
        cmd.data.to_vec()
    };
    if !matches!(
        dkek::blob_type(&blob),
        Some(dkek::TYPE_RSA | dkek::TYPE_RSA_CRT | dkek::TYPE_EC | dkek::TYPE_AES)
    ) {
        return Err(StatusWord::DATA_INVALID);
    }
    if card.session.mkek.is_none() {
        return Err(StatusWord::EXEC_ERROR);
    }
    let mut found = None;
    for (d, dom) in dkek::domains(card)?.iter().enumerate() {
        if !dom.complete() || blob[..8] != dom.kcv {
            continue;
        }
        let dk = dkek::dkek(card, d)?;
        match dkek::unwrap(&dk, &blob) {
            Ok(k) => {
                found = Some((d, k));
                break;
            }
            Err(UnwrapError::WrongDkek) => continue,
            Err(UnwrapError::Invalid) => return Err(StatusWord::CONDITIONS),
            Err(UnwrapError::Unsupported) => return Err(StatusWord::FUNC_NOT_SUPPORTED),
        }
    }
    let (domain, (key, algorithms)) = found.ok_or(StatusWord::REF_NOT_FOUND)?;
    let meta = KeyMeta {
        use_counter: None,
        algorithms: (!algorithms.is_empty()).then_some(algorithms),
        domain: domain as u8,
    };
    let algorithm = if key.is_ec() {
        oid::ECDSA_SHA256
    } else {
        oid::RSA_V15_SHA256
    };
    let chr = crate::commands::keypair_gen::fresh_chr(card)?;
    let req = request::build(card, &key, algorithm, &chr, &chr)?;
    keys::store(card, id, &key, &meta, false)?;
    card.fs
        .put(0xC400 | id as u16, keys::default_prkd(&key, id))?;
    card.fs.put(0xCE00 | id as u16, req)?;
    card.fs.remove(fid::EF_UNWRAP);
    Ok(Vec::new())
}
