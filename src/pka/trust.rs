//! Whether a primary is a device the module may sign a PKA login for: its
//! device certificate chain (EF 2F02, docs/protocol.md §3.3) must verify,
//! certificate by certificate, up to a root the settings trust.
//!
//! Without this check an authenticator signs `T = name ‖ challenge` for
//! whatever name and challenge a card states: a fake primary relays another
//! device's name and challenge and gets a valid login for it. A chain that
//! verifies binds the name to a key of a known PKI; it is not a proof that
//! the card holds that key (the upstream firmware has no command that would
//! prove it), so a card that copies a genuine device's chain still passes:
//! the check stops made-up names and names under unknown roots.
//!
//! Trusted roots: the CV certificates named in `device-roots`; with
//! `allow-test-chains = true` also picohsm-vcard's test root
//! (`ZZPHVCCA00001`, whose private key is derived from a public constant,
//! so it proves nothing) and a chain of one self-signed certificate (a
//! fresh upstream emulator's).

use cryptoki_sys::CKR_ARGUMENTS_BAD;
use picohsm_crypto::{ec, hash::HashAlg, rsa};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, Cvc};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::settings::Config;
use crate::vendor;

/// CHR of picohsm-vcard's test root (docs/protocol.md §3.3).
pub const TEST_ROOT_CHR: &[u8] = b"ZZPHVCCA00001";

/// The public point of the test root: the private scalar is SHA-256 of a
/// public label (rehashed until it is a valid P-256 scalar), as the virtual
/// card makes it (docs/protocol.md §3.3).
pub fn test_root_point() -> Vec<u8> {
    let mut seed =
        Sha256::digest(b"picohsm-vcard test PKI: root CVCA (public, for tests only)").to_vec();
    loop {
        if let Ok(q) = ec::public_key(Curve::P256, &seed) {
            return q;
        }
        seed = Sha256::digest(&seed).to_vec();
    }
}

/// A trusted root: its name and its public key, as a certificate.
struct Root {
    raw: Vec<u8>,
}

fn hash_of(algorithm: &[u8]) -> Option<HashAlg> {
    Some(match algorithm {
        a if a == oid::ECDSA_SHA1 || a == oid::RSA_V15_SHA1 || a == oid::RSA_PSS_SHA1 => {
            HashAlg::Sha1
        }
        a if a == oid::ECDSA_SHA224 => HashAlg::Sha224,
        a if a == oid::ECDSA_SHA256 || a == oid::RSA_V15_SHA256 || a == oid::RSA_PSS_SHA256 => {
            HashAlg::Sha256
        }
        a if a == oid::ECDSA_SHA384 => HashAlg::Sha384,
        a if a == oid::ECDSA_SHA512 || a == oid::RSA_V15_SHA512 || a == oid::RSA_PSS_SHA512 => {
            HashAlg::Sha512
        }
        _ => return None,
    })
}

/// Whether `signed` carries a valid signature by the key of `signer`
/// (whose EC curve is `curve`).
fn signed_by(signed: &Cvc<'_>, signer: &Cvc<'_>, curve: Option<Curve>) -> bool {
    let Some(h) = hash_of(signer.algorithm) else {
        return false;
    };
    let digest = h.digest(signed.body);
    if oid::is_ec(signer.algorithm) {
        match (curve, signer.key_field(cvc::KEY_EC_POINT)) {
            (Some(c), Some(q)) => ec::verify_prehash(c, q, &digest, signed.signature),
            _ => false,
        }
    } else if oid::is_rsa(signer.algorithm) {
        let (Some(n), Some(e)) = (signer.key_field(0x81), signer.key_field(0x82)) else {
            return false;
        };
        let pss = [oid::RSA_PSS_SHA1, oid::RSA_PSS_SHA256, oid::RSA_PSS_SHA512];
        if pss.contains(&signer.algorithm) {
            rsa::verify_pss(n, e, h, &digest, signed.signature)
        } else {
            rsa::verify_pkcs1v15(n, e, h, &digest, signed.signature)
        }
    } else {
        false
    }
}

/// The curve a certificate's EC key is on: its own domain parameters, else
/// its issuer's (device certificates often carry the point only).
fn curve_of(c: &Cvc<'_>, inherited: Option<Curve>) -> Option<Curve> {
    match c.key_field(0x81) {
        Some(p) if oid::is_ec(c.algorithm) => Curve::from_prime(p),
        _ => inherited,
    }
}

fn roots(config: &Config) -> Result<Vec<Root>> {
    let mut out = Vec::new();
    for p in &config.device_roots {
        let raw = std::fs::read(p).map_err(|e| {
            log::error!("device-roots: {}: {e}", p.display());
            Error::new(CKR_ARGUMENTS_BAD, "a device root cannot be read")
        })?;
        if Cvc::parse(&raw).is_err() {
            log::error!("device-roots: {} is not a CV certificate", p.display());
            return Err(Error::new(
                CKR_ARGUMENTS_BAD,
                "a device root does not parse",
            ));
        }
        out.push(Root { raw });
    }
    Ok(out)
}

/// Verifies `chain` (the content of EF 2F02) and returns the device name
/// exactly as the card stores it (the CHR of the first certificate).
/// `card` names the card in the log line of a refusal
/// (CKR_PICOHSM_DEVICE_UNTRUSTED).
pub fn verified_device_name(chain: &[u8], config: &Config, card: &str) -> Result<Vec<u8>> {
    let roots = roots(config)?;
    match check(chain, &roots, config.allow_test_chains) {
        Ok(name) => Ok(name),
        Err(why) => {
            let name = cvc::first_chr(chain)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_else(|| "(no device certificate)".into());
            log::warn!(
                "PKA login refused: the device {name:?} in {card} is not trusted: {why}{}",
                if config.allow_test_chains {
                    ""
                } else {
                    " (settings: device-roots; allow-test-chains = true for picohsm-vcard's test PKI)"
                }
            );
            Err(Error::new(
                vendor::CKR_PICOHSM_DEVICE_UNTRUSTED,
                "the device certificate chain does not verify",
            ))
        }
    }
}

/// The check itself: Ok(device name) or why not, in words.
fn check(chain: &[u8], roots: &[Root], allow_test: bool) -> std::result::Result<Vec<u8>, String> {
    let certs =
        cvc::parse_chain(chain).map_err(|_| "EF 2F02 is not a CV certificate chain".to_string())?;
    let first = certs.first().ok_or("EF 2F02 holds no certificate")?;
    let name = first.chr.to_vec();
    if certs.len() > 8 {
        return Err("the chain is longer than 8 certificates".into());
    }
    let test_point = allow_test.then(test_root_point);
    // Walk from the top: the last certificate must be a trusted root, or
    // be signed by one; then each certificate signs the one before it.
    let last = certs.last().expect("at least one");
    let parsed_roots: Vec<Cvc<'_>> = roots
        .iter()
        .filter_map(|r| Cvc::parse(&r.raw).ok().map(|(c, _)| c))
        .collect();
    let mut curve: Option<Curve> = None;
    let anchored = if let Some(root) = parsed_roots
        .iter()
        .find(|r| r.chr == last.chr && r.public_key == last.public_key)
    {
        // The chain ends with a trusted root itself: its self-signature
        // needs no check (the root is trusted as configured).
        curve = curve_of(root, None);
        true
    } else if let Some(root) = parsed_roots.iter().find(|r| Some(r.chr) == last.car) {
        curve = curve_of(root, None);
        if !signed_by(last, root, curve) {
            return Err(format!(
                "{:?} does not carry a valid signature of the root {:?}",
                String::from_utf8_lossy(last.chr),
                String::from_utf8_lossy(root.chr)
            ));
        }
        true
    } else if let Some(q) = test_point
        .as_deref()
        .filter(|_| last.car == Some(TEST_ROOT_CHR))
    {
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, q);
        let body = cvc::build_body(Some(TEST_ROOT_CHR), &pk, TEST_ROOT_CHR, &[]);
        let root_raw = cvc::build_cvc(&body, &[]);
        let (root, _) = Cvc::parse(&root_raw).map_err(|_| "test root".to_string())?;
        curve = Some(Curve::P256);
        if !signed_by(last, &root, curve) {
            return Err(format!(
                "{:?} claims the test root but is not signed by it",
                String::from_utf8_lossy(last.chr)
            ));
        }
        true
    } else if allow_test && certs.len() == 1 && first.is_self_described() {
        curve = curve_of(first, None);
        if !signed_by(first, first, curve) {
            return Err("the self-signed device certificate's signature is wrong".into());
        }
        return Ok(name);
    } else {
        false
    };
    if !anchored {
        return Err(format!(
            "the chain ends at {:?}, issued by {:?}, which is not a trusted root",
            String::from_utf8_lossy(last.chr),
            last.car.map(String::from_utf8_lossy).unwrap_or_default()
        ));
    }
    for i in (0..certs.len() - 1).rev() {
        let (subject, issuer) = (&certs[i], &certs[i + 1]);
        curve = curve_of(issuer, curve);
        // A root repeated at the end signs itself: skip to what it signs.
        if subject.car != Some(issuer.chr) {
            return Err(format!(
                "{:?} names {:?} as its issuer, but the next certificate is {:?}",
                String::from_utf8_lossy(subject.chr),
                subject.car.map(String::from_utf8_lossy).unwrap_or_default(),
                String::from_utf8_lossy(issuer.chr)
            ));
        }
        if !signed_by(subject, issuer, curve) {
            return Err(format!(
                "{:?} does not carry a valid signature of {:?}",
                String::from_utf8_lossy(subject.chr),
                String::from_utf8_lossy(issuer.chr)
            ));
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(label: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let d = Sha256::digest(label).to_vec();
        let q = ec::public_key(Curve::P256, &d).unwrap();
        (d, q)
    }

    fn cert(car: &[u8], chr: &[u8], point: &[u8], signer: &[u8]) -> Vec<u8> {
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, point);
        let body = cvc::build_body(Some(car), &pk, chr, &[]);
        let sig = ec::sign_prehash(Curve::P256, signer, &Sha256::digest(&body)).unwrap();
        cvc::build_cvc(&body, &sig)
    }

    fn test_chain(name: &[u8]) -> Vec<u8> {
        // The virtual card's own test chain (firmware/src/device.rs).
        picohsm_firmware::device::test_chain(name, &key(b"device").1).unwrap()
    }

    #[test]
    fn the_test_root_is_the_virtual_cards() {
        let chain = test_chain(b"ZZPHSMABCDE00001");
        let certs = cvc::parse_chain(&chain).unwrap();
        assert_eq!(certs[2].key_field(0x86), Some(&test_root_point()[..]));
    }

    #[test]
    fn a_test_chain_verifies_only_when_allowed() {
        let chain = test_chain(b"ZZPHSMABCDE00001");
        assert_eq!(check(&chain, &[], true).unwrap(), b"ZZPHSMABCDE00001");
        assert!(check(&chain, &[], false)
            .unwrap_err()
            .contains("not a trusted root"));
        // Without its root certificate too.
        let short: Vec<u8> = cvc::parse_chain(&chain).unwrap()[..2]
            .iter()
            .flat_map(|c| c.raw.to_vec())
            .collect();
        assert!(check(&short, &[], true).is_ok());
    }

    #[test]
    fn a_configured_root_anchors_and_an_unknown_one_does_not() {
        let (root_d, root_q) = key(b"root");
        let (_, dev_q) = key(b"device");
        let root = cert(b"ZZROOT00001", b"ZZROOT00001", &root_q, &root_d);
        let dev = cert(b"ZZROOT00001", b"ZZDEV\x01NAME00001", &dev_q, &root_d);
        let ok = Root { raw: root.clone() };
        assert_eq!(
            check(&dev, std::slice::from_ref(&ok), false).unwrap(),
            b"ZZDEV\x01NAME00001"
        );
        let chain = [dev.clone(), root.clone()].concat();
        assert!(check(&chain, std::slice::from_ref(&ok), false).is_ok());
        // A root of the same name with another key.
        let (other_d, other_q) = key(b"other root");
        let fake_root = cert(b"ZZROOT00001", b"ZZROOT00001", &other_q, &other_d);
        let fake_dev = cert(b"ZZROOT00001", b"ZZDEV00001", &dev_q, &other_d);
        assert!(check(
            &[fake_dev.clone(), fake_root].concat(),
            std::slice::from_ref(&ok),
            true
        )
        .is_err());
        assert!(check(&fake_dev, std::slice::from_ref(&ok), true).is_err());
        // A chain that claims the test root without its key.
        let claim = cert(TEST_ROOT_CHR, b"ZZDEV00001", &dev_q, &other_d);
        assert!(check(&claim, &[], true).is_err());
    }

    #[test]
    fn a_self_signed_device_only_with_test_chains() {
        let (d, q) = key(b"emulator");
        let one = cert(b"ESPICOHSMTR00001", b"ESPICOHSMTR00001", &q, &d);
        assert!(check(&one, &[], true).is_ok());
        assert!(check(&one, &[], false).is_err());
        let (other, _) = key(b"x");
        let bad = cert(b"ESPICOHSMTR00001", b"ESPICOHSMTR00001", &q, &other);
        assert!(check(&bad, &[], true).is_err());
        assert!(check(b"", &[], true).is_err());
        assert!(check(&[0x7F, 0x21, 0x01], &[], true).is_err());
    }
}
