//! Authenticators: the tokens that sign a primary's PKA challenge.
//!
//! An authenticator lists its keys with the CHR each was registered under
//! (without its PIN, so a token holding no registered key costs no PIN
//! try), is unlocked with its own PIN, and signs `T = device name ‖
//! challenge` (docs/protocol.md §6.7 step 4-5) in the form EXTERNAL AUTHENTICATE takes: raw
//! `r ‖ s`, each half the field size, for EC; PKCS#1 v1.5 over SHA-256 for
//! RSA.

use crate::card::files::is_smartcard_hsm_atr;
use crate::transport::pcsc::reader_matches;
use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::pka::{pkcs11, schsm};
use crate::settings::{AuthenticatorSpec, Config};
use crate::transport::pcsc::Pcsc;
use crate::vendor;

/// The kind of an authenticator key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// EC with this field size in bytes.
    Ec(usize),
    /// RSA with this modulus length in bytes.
    Rsa(usize),
}

/// One key an authenticator can sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// The name it is registered under on the primary.
    pub chr: Vec<u8>,
    /// Its label, for messages.
    pub label: String,
    /// EC or RSA.
    pub kind: KeyKind,
    /// Where the backend finds it again (SmartCard-HSM key reference, or
    /// PKCS#11 slot and CKA_ID).
    pub locator: Locator,
}

/// Where a key lives in its authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// SmartCard-HSM key reference.
    Card(u8),
    /// PKCS#11 slot id and CKA_ID.
    Pkcs11(u64, Vec<u8>),
}

/// A token that can answer a PKA challenge.
pub trait Authenticator: Send {
    /// What it is, for log lines and the CLI ("SmartCard-HSM in 'reader'").
    fn name(&self) -> String;
    /// Its keys, each with the CHR it would be registered under.
    fn keys(&mut self) -> Result<Vec<AuthKey>>;
    /// Unlocks the token for `key` with its own PIN:
    /// CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT / _LOCKED when it refuses.
    /// `None` (a login without PIN): it signs if it can without one (no
    /// login required, already logged in, its own PIN pad), else
    /// CKR_PICOHSM_NO_PIN_SOURCE.
    fn unlock(&mut self, key: &AuthKey, pin: Option<&[u8]>) -> Result<()>;
    /// Signs `message` (T) for EXTERNAL AUTHENTICATE.
    fn sign(&mut self, key: &AuthKey, message: &[u8]) -> Result<Vec<u8>>;
    /// Ends the unlocked state, where the backend can (best effort).
    fn lock(&mut self) {}
}

/// Maps an authenticator's own PIN errors to the vendor codes, so the
/// application can tell them from the primary's.
pub fn pin_error(e: Error) -> Error {
    match e.rv {
        CKR_PIN_INCORRECT | CKR_PIN_LEN_RANGE => Error::new(
            vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT,
            "the authenticator refused its PIN",
        ),
        CKR_PIN_LOCKED => Error::new(
            vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED,
            "the authenticator's PIN is blocked",
        ),
        _ => e,
    }
}

/// The error of an authenticator that wants a PIN when none can be had.
pub fn no_pin(name: &str) -> Error {
    log::warn!(
        "PKA login: {name} needs its PIN, and none can be had: the application gave none (protected authentication path) and no pinentry is configured (settings: pinentry = \"/usr/bin/pinentry-tty\")"
    );
    Error::new(
        vendor::CKR_PICOHSM_NO_PIN_SOURCE,
        "the authenticator needs a PIN and no pinentry is configured",
    )
}

/// The authenticators to try for a primary in `primary_reader`: the
/// configured ones, or every other reader holding a SmartCard-HSM.
pub fn candidates(
    config: &Config,
    pcsc: &Pcsc,
    primary_reader: &str,
) -> Result<Vec<Box<dyn Authenticator>>> {
    let readers: Vec<String> = pcsc
        .readers()?
        .into_iter()
        .filter(|r| r != primary_reader)
        .collect();
    let hsm_in = |r: &String| pcsc.atr_of(r).is_some_and(|atr| is_smartcard_hsm_atr(&atr));
    let mut out: Vec<Box<dyn Authenticator>> = Vec::new();
    if config.authenticators.is_empty() {
        for r in readers.iter().filter(|r| hsm_in(r)) {
            if let Ok(a) = schsm::CardAuthenticator::open(pcsc, r, None, None) {
                out.push(Box::new(a));
            }
        }
        return Ok(out);
    }
    for spec in &config.authenticators {
        match spec {
            AuthenticatorSpec::SmartcardHsm {
                reader,
                key_label,
                chr,
            } => {
                for r in readers
                    .iter()
                    .filter(|r| reader.as_deref().is_none_or(|p| reader_matches(p, r)) && hsm_in(r))
                {
                    match schsm::CardAuthenticator::open(pcsc, r, key_label.clone(), chr.clone()) {
                        Ok(a) => out.push(Box::new(a)),
                        Err(e) => log::warn!("authenticator in {r:?}: {e}"),
                    }
                }
            }
            AuthenticatorSpec::Pkcs11 {
                module,
                token_label,
                key_label,
                key_id,
            } => match pkcs11::ModuleAuthenticator::open(
                module,
                token_label.clone(),
                key_label.clone(),
                key_id.clone(),
            ) {
                // A module with no token (none plugged in, or the
                // p11-kit server behind p11-kit-client.so unreachable) is
                // a missing authenticator, as an empty reader is.
                Ok(a) if !a.has_token() => log::warn!(
                    "authenticator module {}: no token{} present",
                    module.display(),
                    token_label
                        .as_deref()
                        .map(|l| format!(" labelled {l:?}"))
                        .unwrap_or_default()
                ),
                Ok(a) => out.push(Box::new(a)),
                Err(e) => log::warn!("authenticator module {}: {e}", module.display()),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_globs() {
        assert!(reader_matches("Virtual PCD*", "Virtual PCD 00 01"));
        assert!(reader_matches("Virtual PCD 00 01", "Virtual PCD 00 01"));
        assert!(!reader_matches("Nitrokey*", "Virtual PCD 00 01"));
        // The settings' `reader = "..."` picks what `--reader` picks: a
        // part of the name is enough without wildcards.
        assert!(reader_matches("PCD 00 01", "Virtual PCD 00 01"));
    }

    #[test]
    fn authenticator_pin_errors_have_their_own_codes() {
        assert_eq!(
            pin_error(Error::new(CKR_PIN_INCORRECT, "x")).rv,
            vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT
        );
        assert_eq!(
            pin_error(Error::new(CKR_PIN_LOCKED, "x")).rv,
            vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED
        );
        assert_eq!(
            pin_error(Error::new(CKR_DEVICE_ERROR, "x")).rv,
            CKR_DEVICE_ERROR
        );
    }
}
