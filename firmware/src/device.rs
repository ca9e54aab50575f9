//! Device identity (docs/protocol.md §3.3): the device key `CC00`, its
//! request `CE00` and PrKD `C400`, and EF.C_DevAut `2F02` holding the device
//! CV certificate followed by its issuers.
//!
//! A real Pico HSM gets its chain from the vendor PKI. The virtual card makes
//! its own by default, under a fixed *test* PKI: a root and a DICA whose
//! private keys are derived from public constants, so every virtual card
//! shares them and one card can verify another's device certificate (as PKA
//! registration needs). Those keys are public knowledge: the test chain
//! proves nothing outside tests. Another chain can be installed instead.

use alloc::vec::Vec;
use picohsm_wire::codes::fid;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, Cvc};
use picohsm_wire::tlv;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{self, KeyMeta, PrivateKey};
use crate::{request, Card, CardError};
use picohsm_crypto::ec;
use picohsm_wire::pkcs15::{card_default_prkd, KeyKind};

/// CHR of the test root CVCA.
pub const TEST_ROOT: &[u8] = b"ZZPHVCCA00001";
/// CHR of the test DICA (document verifier).
pub const TEST_DICA: &[u8] = b"ZZPHVCDV00001";
/// The name used while EF 2F02 holds no certificate.
pub const DEFAULT_NAME: &[u8] = b"ZZPHSM0000000001";

fn test_key(label: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut seed = Sha256::digest(label).to_vec();
    // A hash is a valid P-256 scalar with overwhelming probability; rehash otherwise.
    while ec::public_key(Curve::P256, &seed).is_err() {
        seed = Sha256::digest(&seed).to_vec();
    }
    Zeroizing::new(seed)
}

fn chat(role: u8) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(
        &mut v,
        0x06,
        &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x03, 0x01, 0x02, 0x02],
    );
    tlv::push(&mut v, 0x53, &[role]);
    let mut out = tlv::encode(cvc::TAG_CHAT, &v);
    // Valid from 2026-01-01 to 2046-01-01, digits as bytes.
    tlv::push(&mut out, cvc::TAG_EFFECTIVE, &[2, 6, 0, 1, 0, 1]);
    tlv::push(&mut out, cvc::TAG_EXPIRY, &[4, 6, 0, 1, 0, 1]);
    out
}

fn certificate(
    car: &[u8],
    chr: &[u8],
    subject_point: &[u8],
    role: u8,
    signer: &[u8],
) -> Result<Vec<u8>, CardError> {
    let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, subject_point);
    let body = cvc::build_body(Some(car), &pk, chr, &chat(role));
    let sig = ec::sign_prehash(Curve::P256, signer, &Sha256::digest(&body))
        .map_err(|_| CardError("cannot sign the test chain"))?;
    Ok(cvc::build_cvc(&body, &sig))
}

/// The test chain for a device key: device ‖ DICA ‖ root.
pub fn test_chain(device_name: &[u8], device_point: &[u8]) -> Result<Vec<u8>, CardError> {
    let root = test_key(b"picohsm-vcard test PKI: root CVCA (public, for tests only)");
    let dica = test_key(b"picohsm-vcard test PKI: DICA (public, for tests only)");
    let root_q = ec::public_key(Curve::P256, &root).map_err(|_| CardError("test root"))?;
    let dica_q = ec::public_key(Curve::P256, &dica).map_err(|_| CardError("test DICA"))?;
    let mut chain = certificate(TEST_DICA, device_name, device_point, 0x00, &dica)?;
    chain.extend(certificate(TEST_ROOT, TEST_DICA, &dica_q, 0x80, &root)?);
    chain.extend(certificate(TEST_ROOT, TEST_ROOT, &root_q, 0xC0, &root)?);
    Ok(chain)
}

/// Whether `name` can be a device name: 8 to 16 capital letters and
/// digits, as a CHR (docs/protocol.md §3.3).
pub fn valid_device_name(name: &[u8]) -> bool {
    (8..=16).contains(&name.len())
        && name
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The device's test chain, request (`CE00`) and PrKD (`C400`) for the
/// device key `key` named `name`.
fn write_identity(card: &mut Card, key: &PrivateKey, name: &[u8]) -> Result<(), CardError> {
    let q = match key {
        PrivateKey::Ec { curve, d } => {
            ec::public_key(*curve, d).map_err(|_| CardError("device key"))?
        }
        PrivateKey::Rsa(_) => return Err(CardError("device key is not EC")),
    };
    let chain = test_chain(name, &q)?;
    card.fs
        .put(fid::EF_DEVAUT, chain)
        .map_err(|_| CardError("flash"))?;
    let req = request::build(card, key, oid::ECDSA_SHA256, name, name)
        .map_err(|_| CardError("cannot build the device request"))?;
    card.fs.put(0xCE00, req).map_err(|_| CardError("flash"))?;
    let serial = &name[..name.len() - 5];
    card.fs
        .put(
            0xC400,
            card_default_prkd(KeyKind::Ec, serial, &[0u8; 20], 256),
        )
        .map_err(|_| CardError("flash"))
}

/// Creates the device key, its request, PrKD and the default chain on first
/// start, under `name` when given (else a random `ZZPHSM…00001`); gives an
/// existing device the test chain of `name` when it is named otherwise
/// (as a fleet of upstream devices sharing one serial looks); installs
/// `chain` when given (its first certificate must carry the device's
/// public key).
pub fn ensure_identity(
    card: &mut Card,
    chain: Option<&[u8]>,
    name: Option<&[u8]>,
) -> Result<(), CardError> {
    if name.is_some_and(|n| !valid_device_name(n)) {
        return Err(CardError(
            "a device name is 8 to 16 capital letters and digits",
        ));
    }
    if !card.fs.exists(fid::DEVICE_KEY) {
        let (d, _) = ec::generate(Curve::P256, &mut crate::rng::Adapter(&mut *card.rng));
        let key = PrivateKey::Ec {
            curve: Curve::P256,
            d,
        };
        keys::store(card, 0, &key, &KeyMeta::default(), true).map_err(|_| CardError("flash"))?;
        let name = match name {
            Some(n) => n.to_vec(),
            None => {
                let mut rnd = [0u8; 5];
                card.rng.fill(&mut rnd);
                let mut n = Vec::from(&b"ZZPHSM"[..]);
                n.extend(
                    rnd.iter()
                        .map(|b| b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[(*b & 31) as usize]),
                );
                n.extend_from_slice(b"00001");
                n
            }
        };
        write_identity(card, &key, &name)?;
    } else if let Some(n) = name.filter(|n| *n != card.device_name().as_slice()) {
        let (key, _) = keys::load(card, 0).map_err(|_| CardError("device key unreadable"))?;
        write_identity(card, &key, n)?;
    }
    if let Some(chain) = chain {
        let certs = cvc::parse_chain(chain)
            .map_err(|_| CardError("the chain file is not a CV certificate chain"))?;
        let first: &Cvc = certs.first().ok_or(CardError("the chain file is empty"))?;
        let (dev, _) = keys::load(card, 0).map_err(|_| CardError("device key unreadable"))?;
        let q = match &dev {
            PrivateKey::Ec { curve, d } => {
                ec::public_key(*curve, d).map_err(|_| CardError("device key"))?
            }
            PrivateKey::Rsa(_) => return Err(CardError("device key is not EC")),
        };
        if first.key_field(0x86) != Some(&q[..]) {
            return Err(CardError(
                "the chain's first certificate is not for this device's key",
            ));
        }
        card.fs
            .put(fid::EF_DEVAUT, chain.to_vec())
            .map_err(|_| CardError("flash"))?;
    }
    card.fs
        .commit()
        .map_err(|_| CardError("cannot write the flash image"))?;
    Ok(())
}
