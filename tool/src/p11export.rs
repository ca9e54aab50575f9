//! `pka export --pkcs11-module`: a key in any PKCS#11 token (SoftHSM2, a
//! YubiKey's PIV module, ...) as a PKA request. No device made the key, so
//! the request is self-signed: CAR = CHR = the name the module gives every
//! PKCS#11 key ([`chr_for_public_key`]), explicit domain parameters, the
//! inner signature over the `7F4E` TLV and the outer one over `7F21 ‖ 42`,
//! both by the key itself (docs/protocol.md §6.2). PKCS#11's CKM_ECDSA answers `r ‖ s`
//! already, the form CV certificates use. The file has the layout of the
//! SmartCard-HSM export without a chain: `30 { 67 request }`.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use picohsm_pkcs11::card::pka::PkaFile;
use picohsm_pkcs11::pka::chr_for_public_key;
use picohsm_pkcs11::pka::pkcs11::attr_bytes;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid};
use picohsm_wire::tlv;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cli::ExportArgs;
use crate::fail::{Failure, Res, PIN};
use crate::out::Out;
use crate::pka::write_file;

fn p11_fail(what: &str) -> impl Fn(P11Error) -> Failure + '_ {
    move |e| match e {
        P11Error::Pkcs11(RvError::PinIncorrect, _) => {
            Failure::new(PIN, "the PKCS#11 token refused the PIN (CKR_PIN_INCORRECT)")
                .hint("pass the token's user PIN with --pin")
        }
        P11Error::Pkcs11(RvError::PinLocked, _) => {
            Failure::new(PIN, "the PKCS#11 token's PIN is blocked (CKR_PIN_LOCKED)")
                .hint("unblock it with the token's own tools (its SO-PIN)")
        }
        e => Failure::card(format!("{what}: {e}")),
    }
}

/// The public key a request is made for.
enum Public {
    Ec { curve: Curve, point: Vec<u8> },
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
}

impl Public {
    /// The encoding the CHR is computed from: the uncompressed point, or
    /// modulus ‖ exponent (as the module computes it).
    fn encoding(&self) -> Vec<u8> {
        match self {
            Public::Ec { point, .. } => point.clone(),
            Public::Rsa { modulus, exponent } => [modulus.as_slice(), exponent].concat(),
        }
    }

    fn template(&self) -> Vec<u8> {
        match self {
            Public::Ec { curve, point } => cvc::ec_public_key(oid::ECDSA_SHA256, *curve, point),
            Public::Rsa { modulus, exponent } => {
                cvc::rsa_public_key(oid::RSA_V15_SHA256, modulus, exponent)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Public::Ec { curve, .. } => format!("EC {}", curve.name()),
            Public::Rsa { modulus, .. } => {
                let z = modulus.iter().take_while(|b| **b == 0).count();
                format!("RSA {}", (modulus.len() - z) * 8)
            }
        }
    }
}

/// A candidate key: a public key object.
struct Found {
    slot: Slot,
    token: String,
    label: String,
    id: Vec<u8>,
    public: Public,
}

fn read_public(session: &Session, h: ObjectHandle) -> Res<Option<(String, Vec<u8>, Public)>> {
    let kt = session
        .get_attributes(h, &[AttributeType::KeyType])
        .map_err(p11_fail("C_GetAttributeValue"))?;
    let (types, ec): (&[AttributeType], bool) = match kt.first() {
        Some(Attribute::KeyType(t)) if *t == KeyType::EC => (
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::EcPoint,
                AttributeType::EcParams,
            ],
            true,
        ),
        Some(Attribute::KeyType(t)) if *t == KeyType::RSA => (
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
            false,
        ),
        _ => return Ok(None),
    };
    let attrs = session
        .get_attributes(h, types)
        .map_err(p11_fail("C_GetAttributeValue"))?;
    let id = attr_bytes(&attrs, AttributeType::Id).unwrap_or_default();
    let label =
        String::from_utf8_lossy(&attr_bytes(&attrs, AttributeType::Label).unwrap_or_default())
            .into_owned();
    let public = if ec {
        let params = attr_bytes(&attrs, AttributeType::EcParams).unwrap_or_default();
        let Some(curve) = Curve::from_oid_der(&params) else {
            return Err(Failure::card(format!(
                "the key \"{label}\" is on a curve the Pico HSM cannot check (CKA_EC_PARAMS {})",
                hex::encode_upper(&params)
            ))
            .hint(
                "use a secp256r1 or brainpoolP256r1 key (the PKA documentation's 256-bit curves)",
            ));
        };
        let raw = attr_bytes(&attrs, AttributeType::EcPoint).unwrap_or_default();
        // CKA_EC_POINT is a DER OCTET STRING; some modules give it bare.
        let point = match tlv::parse_one(&raw) {
            Ok((t, rest)) if t.tag == 0x04 && rest.is_empty() && t.value.first() == Some(&4) => {
                t.value.to_vec()
            }
            _ => raw,
        };
        if point.len() != 1 + 2 * curve.field_size() || point[0] != 4 {
            return Err(Failure::card(format!(
                "the key \"{label}\" has no uncompressed EC point"
            )));
        }
        Public::Ec { curve, point }
    } else {
        Public::Rsa {
            modulus: attr_bytes(&attrs, AttributeType::Modulus).unwrap_or_default(),
            exponent: attr_bytes(&attrs, AttributeType::PublicExponent).unwrap_or_default(),
        }
    };
    Ok(Some((label, id, public)))
}

/// Signs `data` with the key as a CV certificate needs it: ECDSA with
/// SHA-256 as `r ‖ s`, or RSA PKCS#1 v1.5 with SHA-256.
fn sign(session: &Session, key: ObjectHandle, public: &Public, data: &[u8]) -> Res<Vec<u8>> {
    match public {
        Public::Ec { curve, .. } => {
            let sig = session
                .sign(&Mechanism::Ecdsa, key, &Sha256::digest(data))
                .map_err(p11_fail("C_Sign (CKM_ECDSA)"))?;
            let n = curve.field_size();
            if sig.len() == 2 * n {
                Ok(sig)
            } else {
                // A module that answers DER despite PKCS#11 3.0 Mechanisms §2.3.1.
                picohsm_crypto::ec::der_to_raw(&sig, n).map_err(|_| {
                    Failure::card(format!(
                        "the token's ECDSA signature has {} bytes, not {}",
                        sig.len(),
                        2 * n
                    ))
                })
            }
        }
        Public::Rsa { .. } => session
            .sign(&Mechanism::Sha256RsaPkcs, key, data)
            .map_err(p11_fail("C_Sign (CKM_SHA256_RSA_PKCS)")),
    }
}

/// Runs `pka export --pkcs11-module`.
pub fn run(a: &ExportArgs, out: &mut Out) -> Res<Value> {
    let module = a.pkcs11_module.as_ref().expect("checked by the caller");
    let pin = a.pin.as_ref().ok_or_else(|| {
        Failure::usage("--pin is needed with --pkcs11-module")
            .hint("the key signs its own request: pass the token's user PIN with --pin")
    })?;
    let p11 = Pkcs11::new(module).map_err(|e| {
        Failure::no_device(format!(
            "cannot load the PKCS#11 module {}: {e}",
            module.display()
        ))
        .hint("give the path of the module's .so file with --pkcs11-module")
    })?;
    match p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(p11_fail("C_Initialize")(e)),
    }
    let slots = p11
        .get_slots_with_token()
        .map_err(p11_fail("C_GetSlotList"))?;
    let mut tokens = Vec::new();
    let mut found = Vec::new();
    for slot in slots {
        let token = p11
            .get_token_info(slot)
            .map(|i| i.label().trim_end().to_string())
            .unwrap_or_default();
        tokens.push(token.clone());
        if a.token_label.as_deref().is_some_and(|t| t != token) {
            continue;
        }
        let Ok(session) = p11.open_ro_session(slot) else {
            continue;
        };
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        if let Some(l) = &a.key_label {
            template.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &a.key_id {
            template.push(Attribute::Id(id.0.clone()));
        }
        for h in session
            .find_objects(&template)
            .map_err(p11_fail("C_FindObjects"))?
        {
            if let Some((label, id, public)) = read_public(&session, h)? {
                found.push(Found {
                    slot,
                    token: token.clone(),
                    label,
                    id,
                    public,
                });
            }
        }
    }
    let key = match found.len() {
        1 => found.pop().expect("one"),
        0 if tokens.is_empty() => {
            return Err(Failure::no_device(format!(
                "the module {} shows no token",
                module.display()
            ))
            .hint("initialise a token (softhsm2-util --init-token ...) or plug it in"))
        }
        0 => {
            return Err(Failure::no_device(format!(
                "no public key matches in the tokens {}",
                tokens
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .hint("check --token-label, --key-label and --key-id (pkcs11-tool --module … -O lists the objects)"))
        }
        _ => {
            return Err(Failure::usage(format!(
                "several keys match: {}",
                found
                    .iter()
                    .map(|f| format!(
                        "\"{}\" id {} in \"{}\"",
                        f.label,
                        hex::encode_upper(&f.id),
                        f.token
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
            .hint("choose one with --token-label, --key-label or --key-id"))
        }
    };
    let session = p11
        .open_ro_session(key.slot)
        .map_err(p11_fail("C_OpenSession"))?;
    let auth = AuthPin::from(String::from_utf8_lossy(&pin.0).into_owned());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(p11_fail("C_Login")(e)),
    }
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(key.id.clone()),
    ];
    if !key.label.is_empty() && a.key_label.is_some() {
        template.push(Attribute::Label(key.label.as_bytes().to_vec()));
    }
    let private = session
        .find_objects(&template)
        .map_err(p11_fail("C_FindObjects"))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Failure::card(format!(
                "the token has no private key with the public key's CKA_ID {}",
                hex::encode_upper(&key.id)
            ))
        })?;
    let chr = chr_for_public_key(&key.public.encoding());
    let body = cvc::build_body(
        Some(chr.as_bytes()),
        &key.public.template(),
        chr.as_bytes(),
        &[],
    );
    let inner = sign(&session, private, &key.public, &body)?;
    let request_cvc = cvc::build_cvc(&body, &inner);
    let outer = sign(
        &session,
        private,
        &key.public,
        &cvc::outer_signed_data(&request_cvc, chr.as_bytes()),
    )?;
    let _ = session.logout();
    let request = cvc::build_auth_request(&request_cvc, chr.as_bytes(), &outer);
    let file = PkaFile {
        request: tlv::parse_one(&request)
            .map_err(|_| Failure::card("the request does not encode"))?
            .0
            .value
            .to_vec(),
        device: None,
        issuers: Vec::new(),
    };
    write_file(&a.output, &file.encode())?;
    out.line(format!(
        "Wrote {}: key \"{}\" ({}) of token \"{}\", CHR {chr}, self-signed (CAR = CHR)",
        a.output.display(),
        key.label,
        key.public.describe(),
        key.token
    ));
    out.line(format!(
        "Register it on the PKA device: picohsm-tool pka register {} --pin <PIN>",
        a.output.display()
    ));
    Ok(json!({
        "file": a.output,
        "token": key.token,
        "label": key.label,
        "id": hex::encode_upper(&key.id),
        "key_type": key.public.describe(),
        "chr": chr,
        "self_signed": true,
    }))
}
