//! A key in any PKCS#11 token as the authenticator (SoftHSM2, a YubiKey's
//! PIV module, OpenSC's module, ...), loaded with the `cryptoki` crate.
//!
//! Keys are named by [`chr_for_public_key`]: the name `picohsm-tool pka
//! export --pkcs11-module` gave them when it registered them, computed from
//! the public key object, so no configuration has to repeat it. It signs
//! with CKM_ECDSA over SHA-256(T), which PKCS#11 returns as `r ‖ s` already
//! (or CKM_SHA256_RSA_PKCS for RSA keys).
//!
//! A loaded module stays loaded (and initialised) while this module is:
//! some modules — OpenSC's — SELECT every card they find when they start,
//! which would wipe a PKA round in progress on the primary if it happened
//! between two of its authenticators.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use parking_lot::Mutex;
use picohsm_wire::curve::Curve;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::pka::authenticator::{no_pin, pin_error, AuthKey, Authenticator, KeyKind, Locator};
use crate::pka::chr_for_public_key;

static LOADED: Mutex<Option<HashMap<PathBuf, Pkcs11>>> = Mutex::new(None);

fn rv_of(e: &P11Error) -> CK_RV {
    match e {
        P11Error::Pkcs11(RvError::PinIncorrect, _) => CKR_PIN_INCORRECT,
        P11Error::Pkcs11(RvError::PinLenRange, _) => CKR_PIN_LEN_RANGE,
        P11Error::Pkcs11(RvError::PinLocked, _) => CKR_PIN_LOCKED,
        P11Error::Pkcs11(RvError::UserNotLoggedIn, _) => CKR_USER_NOT_LOGGED_IN,
        // Anything else is the authenticator's own failure (logged with
        // its words); CKR_FUNCTION_FAILED keeps it apart from the primary's.
        _ => CKR_FUNCTION_FAILED,
    }
}

fn p11_err(origin: &'static str) -> impl Fn(P11Error) -> Error {
    move |e| {
        log::warn!("authenticator module: {origin}: {e}");
        Error::new(rv_of(&e), origin)
    }
}

/// The module at `path`, loaded and initialised once.
fn load(path: &Path) -> Result<Pkcs11> {
    let mut g = LOADED.lock();
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(path) {
        return Ok(p.clone());
    }
    let p = Pkcs11::new(path).map_err(|e| {
        log::error!("authenticator module {}: {e}", path.display());
        Error::new(
            crate::vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING,
            "the authenticator's PKCS#11 module does not load",
        )
    })?;
    match p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // The application uses that module too: share its initialisation.
        Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(p11_err("C_Initialize of the authenticator module")(e)),
    }
    map.insert(path.to_path_buf(), p.clone());
    Ok(p)
}

/// A PKCS#11 module as authenticator.
pub struct ModuleAuthenticator {
    path: PathBuf,
    p11: Pkcs11,
    token_label: Option<String>,
    key_label: Option<String>,
    key_id: Option<Vec<u8>>,
    /// The logged-in session between unlock and sign.
    session: Option<Session>,
}

impl ModuleAuthenticator {
    /// Loads the module at `path`; the other arguments narrow the tokens
    /// and keys it offers (key_id in hex).
    pub fn open(
        path: &Path,
        token_label: Option<String>,
        key_label: Option<String>,
        key_id: Option<String>,
    ) -> Result<ModuleAuthenticator> {
        let key_id = match key_id {
            Some(h) => Some(hex::decode(h.trim()).map_err(|_| {
                log::error!("authenticator key-id {h:?} is not hex");
                Error::new(CKR_ARGUMENTS_BAD, "key-id is not hex")
            })?),
            None => None,
        };
        Ok(ModuleAuthenticator {
            path: path.to_path_buf(),
            p11: load(path)?,
            token_label,
            key_label,
            key_id,
            session: None,
        })
    }

    /// Whether a token (of the configured label) is present.
    pub fn has_token(&self) -> bool {
        self.slots().is_ok_and(|s| !s.is_empty())
    }

    fn slots(&self) -> Result<Vec<Slot>> {
        let slots = self
            .p11
            .get_slots_with_token()
            .map_err(p11_err("C_GetSlotList"))?;
        Ok(slots
            .into_iter()
            .filter(|s| {
                self.token_label.as_deref().is_none_or(|want| {
                    self.p11
                        .get_token_info(*s)
                        .is_ok_and(|i| i.label().trim_end() == want)
                })
            })
            .collect())
    }
}

/// The value of the byte-string attribute `t` among `attrs` (EC point and
/// parameters, modulus, exponent, CKA_ID, label).
pub fn attr_bytes(attrs: &[Attribute], t: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::Id(v), AttributeType::Id) => Some(v.clone()),
        (Attribute::Label(v), AttributeType::Label) => Some(v.clone()),
        _ => None,
    })
}

/// The key of one public key object, if it is a usable EC or RSA key.
fn key_of(slot: Slot, attrs: &[Attribute]) -> Option<AuthKey> {
    let id = attr_bytes(attrs, AttributeType::Id).unwrap_or_default();
    let label = attr_bytes(attrs, AttributeType::Label)
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    let (encoding, kind) = if let Some(point) = attr_bytes(attrs, AttributeType::EcPoint) {
        let curve = Curve::from_oid_der(&attr_bytes(attrs, AttributeType::EcParams)?)?;
        // CKA_EC_POINT is a DER OCTET STRING (some modules give it bare).
        let raw = match picohsm_wire::tlv::parse_one(&point) {
            Ok((t, rest)) if t.tag == 0x04 && rest.is_empty() && t.value.first() == Some(&4) => {
                t.value.to_vec()
            }
            _ => point,
        };
        (raw, KeyKind::Ec(curve.field_size()))
    } else {
        let m = attr_bytes(attrs, AttributeType::Modulus)?;
        let e = attr_bytes(attrs, AttributeType::PublicExponent)?;
        let z = m.iter().take_while(|b| **b == 0).count();
        let k = m.len() - z;
        ([m, e].concat(), KeyKind::Rsa(k))
    };
    Some(AuthKey {
        chr: chr_for_public_key(&encoding).into_bytes(),
        label,
        kind,
        locator: Locator::Pkcs11(slot.id(), id),
    })
}

impl Authenticator for ModuleAuthenticator {
    fn name(&self) -> String {
        format!("PKCS#11 module {}", self.path.display())
    }

    fn keys(&mut self) -> Result<Vec<AuthKey>> {
        let mut out = Vec::new();
        for slot in self.slots()? {
            let Ok(session) = self.p11.open_ro_session(slot) else {
                continue;
            };
            let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
            if let Some(l) = &self.key_label {
                template.push(Attribute::Label(l.as_bytes().to_vec()));
            }
            if let Some(id) = &self.key_id {
                template.push(Attribute::Id(id.clone()));
            }
            for h in session.find_objects(&template).unwrap_or_default() {
                let Ok(kt) = session.get_attributes(h, &[AttributeType::KeyType]) else {
                    continue;
                };
                let types: &[AttributeType] = match kt.first() {
                    Some(Attribute::KeyType(t)) if *t == KeyType::EC => &[
                        AttributeType::Id,
                        AttributeType::Label,
                        AttributeType::EcPoint,
                        AttributeType::EcParams,
                    ],
                    Some(Attribute::KeyType(t)) if *t == KeyType::RSA => &[
                        AttributeType::Id,
                        AttributeType::Label,
                        AttributeType::Modulus,
                        AttributeType::PublicExponent,
                    ],
                    _ => continue,
                };
                if let Some(k) = session
                    .get_attributes(h, types)
                    .ok()
                    .and_then(|a| key_of(slot, &a))
                {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    fn unlock(&mut self, key: &AuthKey, pin: Option<&[u8]>) -> Result<()> {
        let Locator::Pkcs11(slot, _) = key.locator else {
            return Err(Error::new(CKR_GENERAL_ERROR, "not a PKCS#11 key"));
        };
        let slot = Slot::try_from(slot).map_err(|_| Error::new(CKR_GENERAL_ERROR, "slot"))?;
        let session = self
            .p11
            .open_ro_session(slot)
            .map_err(p11_err("C_OpenSession on the authenticator"))?;
        let Some(pin) = pin else {
            // No PIN to give: a token that needs no login, one the
            // application has logged in already (the login is the
            // token's, shared by its sessions), or one with its own PIN
            // pad or pinentry signs without one.
            let info = self
                .p11
                .get_token_info(slot)
                .map_err(p11_err("C_GetTokenInfo on the authenticator"))?;
            let logged_in = session.get_session_info().is_ok_and(|i| {
                matches!(
                    i.session_state(),
                    SessionState::RoUser | SessionState::RwUser
                )
            });
            if !info.login_required() || logged_in {
                log::info!(
                    "PKA login: {} signs without a PIN ({})",
                    self.name(),
                    if logged_in {
                        "already logged in"
                    } else {
                        "no login required"
                    }
                );
            } else if info.protected_authentication_path() {
                match session.login(UserType::User, None) {
                    Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(e) => return Err(pin_error(p11_err("C_Login on the authenticator")(e))),
                }
            } else {
                return Err(no_pin(&self.name()));
            }
            self.session = Some(session);
            return Ok(());
        };
        let pin = AuthPin::from(String::from_utf8_lossy(pin).into_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(pin_error(p11_err("C_Login on the authenticator")(e))),
        }
        self.session = Some(session);
        Ok(())
    }

    fn sign(&mut self, key: &AuthKey, message: &[u8]) -> Result<Vec<u8>> {
        let Locator::Pkcs11(_, id) = &key.locator else {
            return Err(Error::new(CKR_GENERAL_ERROR, "not a PKCS#11 key"));
        };
        let session = self.session.as_ref().ok_or(Error::new(
            CKR_USER_NOT_LOGGED_IN,
            "authenticator not unlocked",
        ))?;
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.clone()),
        ];
        if let Some(l) = &self.key_label {
            template.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        let prv = session
            .find_objects(&template)
            .map_err(p11_err("C_FindObjects on the authenticator"))?
            .into_iter()
            .next()
            .ok_or(Error::new(
                crate::vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING,
                "the authenticator has no private key with that CKA_ID",
            ))?;
        match key.kind {
            KeyKind::Ec(_) => session
                .sign(&Mechanism::Ecdsa, prv, &Sha256::digest(message))
                .map_err(p11_err("C_Sign on the authenticator")),
            KeyKind::Rsa(_) => session
                .sign(&Mechanism::Sha256RsaPkcs, prv, message)
                .map_err(p11_err("C_Sign on the authenticator")),
        }
    }

    fn lock(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.logout();
        }
    }
}
