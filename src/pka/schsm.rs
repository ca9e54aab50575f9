//! A SmartCard-HSM / Pico HSM as the authenticator, over PC/SC.
//!
//! Its keys are named by the CHR of the request the card made when it
//! generated them (`CExx`, docs/protocol.md §6.2): exactly what `sc-hsm-tool
//! --export-for-pub-key-auth` and `picohsm-tool pka export` register.
//! Listing them needs no PIN. It signs with its own SIGN command after a
//! VERIFY of its own PIN: ECDSA on the SHA-256 of T (algorithm `70`, DER
//! answer converted to `r ‖ s`), or RSA PKCS#1 v1.5 over SHA-256 (`20` with
//! the block built here).

use cryptoki_sys::*;
use picohsm_crypto::{ec, hash::HashAlg, rsa};
use picohsm_wire::codes::algo;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{oid, AuthRequest, Cvc};

use crate::card::Card;
use crate::card::{self, pkcs15};
use crate::error::{Error, Result};
use crate::pka::authenticator::{no_pin, pin_error, AuthKey, Authenticator, KeyKind, Locator};
use crate::transport::pcsc::{Pcsc, PcscTransport};
use crate::transport::{Link, Transport};

/// A SmartCard-HSM in one reader.
pub struct CardAuthenticator {
    reader: String,
    transport: PcscTransport,
    key_label: Option<String>,
    chr: Option<String>,
}

impl CardAuthenticator {
    /// Connects to the card in `reader`; `key_label` / `chr` narrow the keys
    /// it offers.
    pub fn open(
        pcsc: &Pcsc,
        reader: &str,
        key_label: Option<String>,
        chr: Option<String>,
    ) -> Result<CardAuthenticator> {
        Ok(CardAuthenticator {
            reader: reader.to_string(),
            transport: pcsc.connect(reader)?,
            key_label,
            chr,
        })
    }
}

/// The CHR and kind of the key whose `CExx` holds `ce` (an authenticated
/// request, or a bare CV certificate).
fn key_of_request(ce: &[u8]) -> Option<(Vec<u8>, KeyKind)> {
    let cert = if ce.first() == Some(&0x67) {
        AuthRequest::parse(ce).ok()?.cert
    } else {
        Cvc::parse(ce).ok()?.0
    };
    let kind = if oid::is_ec(cert.algorithm) {
        KeyKind::Ec(Curve::from_prime(cert.key_field(0x81)?)?.field_size())
    } else if oid::is_rsa(cert.algorithm) {
        let m = cert.key_field(0x81)?;
        let z = m.iter().take_while(|b| **b == 0).count();
        KeyKind::Rsa(m.len() - z)
    } else {
        return None;
    };
    Some((cert.chr.to_vec(), kind))
}

fn list_keys(l: &mut dyn Link) -> Result<Vec<AuthKey>> {
    Card::new(l).select_applet()?;
    let mut out = Vec::new();
    for f in Card::new(l).enumerate()? {
        let (prefix, id) = ((f >> 8) as u8, f as u8);
        // Key 0 is the device key: it signs requests, never challenges.
        if prefix != 0xCC || id == 0 {
            continue;
        }
        let Some(ce) = Card::new(l).read_ef(0xCE00 | id as u16)? else {
            continue;
        };
        let Some((chr, kind)) = key_of_request(&ce) else {
            continue;
        };
        let label = Card::new(l)
            .read_ef(0xC400 | id as u16)?
            .and_then(|d| pkcs15::PrivateKeyDesc::parse(&d).ok())
            .map(|d| d.label)
            .unwrap_or_default();
        out.push(AuthKey {
            chr,
            label,
            kind,
            locator: Locator::Card(id),
        });
    }
    Ok(out)
}

impl Authenticator for CardAuthenticator {
    fn name(&self) -> String {
        format!("SmartCard-HSM in {:?}", self.reader)
    }

    fn keys(&mut self) -> Result<Vec<AuthKey>> {
        let keys = self.transport.transact(list_keys)?;
        Ok(keys
            .into_iter()
            .filter(|k| self.key_label.as_deref().is_none_or(|l| k.label == l))
            .filter(|k| self.chr.as_deref().is_none_or(|c| k.chr == c.as_bytes()))
            .collect())
    }

    fn unlock(&mut self, _key: &AuthKey, pin: Option<&[u8]>) -> Result<()> {
        let Some(pin) = pin else {
            // No PIN to give: only a card whose PIN is verified already
            // in its current session, or that has no user PIN, may sign.
            let state = self
                .transport
                .transact(|l| Ok(Card::new(l).pin_state(card::USER_PIN)?))?;
            return match state {
                card::PinState::Verified | card::PinState::Absent => Ok(()),
                _ => Err(no_pin(&self.name())),
            };
        };
        if pin.is_empty() || pin.len() > 16 {
            return Err(pin_error(Error::new(CKR_PIN_LEN_RANGE, "PIN length")));
        }
        self.transport
            .transact(|l| Ok(Card::new(l).verify(card::USER_PIN, pin)?))
            .map_err(pin_error)
    }

    fn sign(&mut self, key: &AuthKey, message: &[u8]) -> Result<Vec<u8>> {
        let Locator::Card(id) = key.locator else {
            return Err(Error::new(CKR_GENERAL_ERROR, "not a card key"));
        };
        let digest = HashAlg::Sha256.digest(message);
        match key.kind {
            KeyKind::Ec(n) => {
                let der = self
                    .transport
                    .transact(|l| Ok(Card::new(l).sign(id, algo::ECDSA, &digest)?))?;
                ec::der_to_raw(&der, n)
                    .map_err(|_| Error::new(CKR_DEVICE_ERROR, "bad ECDSA signature from the card"))
            }
            KeyKind::Rsa(k) => {
                let mut t = HashAlg::Sha256.digest_info_prefix().to_vec();
                t.extend_from_slice(&digest);
                let block = rsa::pkcs1v15_sign_block(&t, k)
                    .map_err(|_| Error::new(CKR_DATA_LEN_RANGE, "too long for the modulus"))?;
                self.transport
                    .transact(|l| Ok(Card::new(l).sign(id, algo::RSA_RAW, &block)?))
            }
        }
    }

    fn lock(&mut self) {
        // A SELECT clears the card's PIN state (docs/protocol.md §2.3).
        let _ = self.transport.transact(|l| {
            Card::new(l).select_applet()?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_key() {
        let c = Curve::P256;
        let mut point = vec![4u8];
        point.extend_from_slice(&[7u8; 64]);
        let pk = picohsm_wire::cvc::ec_public_key(oid::ECDSA_SHA256, c, &point);
        let body = picohsm_wire::cvc::build_body(Some(b"CAR"), &pk, b"ZZKEY00001", &[]);
        let cvc = picohsm_wire::cvc::build_cvc(&body, &[1u8; 64]);
        let req = picohsm_wire::cvc::build_auth_request(&cvc, b"ZZDEV", &[2u8; 64]);
        assert_eq!(
            key_of_request(&req),
            Some((b"ZZKEY00001".to_vec(), KeyKind::Ec(32)))
        );
        assert_eq!(
            key_of_request(&cvc),
            Some((b"ZZKEY00001".to_vec(), KeyKind::Ec(32)))
        );
        assert_eq!(key_of_request(&[0x30, 0x00]), None);
    }
}
