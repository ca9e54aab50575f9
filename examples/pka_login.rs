//! PKA login from Rust with the `cryptoki` crate: the vendor user type of
//! libpicohsm_pkcs11.so, one C_Login per authenticator, the progress read
//! between rounds, then the token's PIN if it has one, and a signature.
//!
//! ```text
//! cargo run --example pka_login -- [--module PATH] [--reader NAME]
//!     --pin AUTHENTICATOR_PIN [--user-pin TOKEN_PIN] [--id HEX]
//! ```
//!
//! The constants are those of include/picohsm_pkcs11.h.

use std::process::ExitCode;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const CKU_PICOHSM_PKA: u32 = 0x8050_4B41;
const CKR_PICOHSM_PKA_MORE_NEEDED: u64 = 0x8050_4B01;
const CKR_PICOHSM_PIN_NEEDED: u64 = 0x8050_4B02;
const CKO_PICOHSM_PKA_STATUS: u64 = 0x8050_4B41;
const CKA_PICOHSM_PKA_TOTAL: u64 = 0x8050_4B11;
const CKA_PICOHSM_PKA_REQUIRED: u64 = 0x8050_4B13;
const CKA_PICOHSM_PKA_AUTHENTICATED: u64 = 0x8050_4B14;

struct Args {
    module: String,
    reader: Option<String>,
    pin: String,
    user_pin: Option<String>,
    id: Option<Vec<u8>>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        module: "target/debug/libpicohsm_pkcs11.so".into(),
        reader: None,
        pin: String::new(),
        user_pin: None,
        id: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--module" => a.module = v()?,
            "--reader" => a.reader = Some(v()?),
            "--pin" => a.pin = v()?,
            "--user-pin" => a.user_pin = Some(v()?),
            "--id" => a.id = Some(hex::decode(v()?).map_err(|_| "--id takes hex")?),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.pin.is_empty() {
        return Err("--pin (the authenticator's PIN) is required".into());
    }
    Ok(a)
}

/// (total, required, authenticated) from the token's PKA status object.
fn progress(session: &Session) -> cryptoki::error::Result<(u64, u64, u64)> {
    // cryptoki has no name for a vendor object class: CKA_CLASS as bytes.
    let class = Attribute::VendorDefined((
        AttributeType::Class,
        CKO_PICOHSM_PKA_STATUS.to_ne_bytes().to_vec(),
    ));
    let Some(h) = session.find_objects(&[class])?.first().copied() else {
        return Ok((0, 0, 0));
    };
    let get = |t: u64| -> cryptoki::error::Result<u64> {
        let a = session.get_attributes(h, &[AttributeType::VendorDefined(t)])?;
        Ok(match a.first() {
            Some(Attribute::VendorDefined((_, v))) if v.len() == 8 => {
                u64::from_ne_bytes(v[..].try_into().unwrap_or([0; 8]))
            }
            _ => 0,
        })
    };
    Ok((
        get(CKA_PICOHSM_PKA_TOTAL)?,
        get(CKA_PICOHSM_PKA_REQUIRED)?,
        get(CKA_PICOHSM_PKA_AUTHENTICATED)?,
    ))
}

fn vendor_code(e: &Error) -> Option<u64> {
    match e {
        Error::Pkcs11(RvError::VendorDefined(v), _) => Some(*v),
        _ => None,
    }
}

fn run(a: Args) -> Result<(), String> {
    let p11 = Pkcs11::new(&a.module).map_err(|e| format!("loading {}: {e}", a.module))?;
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| e.to_string())?;
    let slot = p11
        .get_slots_with_token()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|s| {
            a.reader.as_deref().is_none_or(|r| {
                p11.get_slot_info(*s)
                    .is_ok_and(|i| i.slot_description().contains(r))
            })
        })
        .ok_or("no token found (use --reader)")?;
    let session = p11.open_rw_session(slot).map_err(|e| e.to_string())?;
    let (n, m, done) = progress(&session).map_err(|e| e.to_string())?;
    println!("PKA: {done} authenticated public key(s) in {m} of {n} scheme");
    let pka = UserType::VendorExtension(CKU_PICOHSM_PKA);
    loop {
        match session.login(pka, Some(&AuthPin::from(a.pin.as_str()))) {
            Ok(()) => {
                println!("PKA: logged in");
                break;
            }
            Err(e) if vendor_code(&e) == Some(CKR_PICOHSM_PKA_MORE_NEEDED) => {
                let (n, m, done) = progress(&session).map_err(|e| e.to_string())?;
                println!(
                    "PKA: {done} authenticated public key(s) in {m} of {n} scheme: next authenticator"
                );
            }
            Err(e) if vendor_code(&e) == Some(CKR_PICOHSM_PIN_NEEDED) => {
                println!("PKA: quorum reached; the token's PIN unlocks its keys");
                let pin = a
                    .user_pin
                    .as_deref()
                    .ok_or("the token also has a PIN: give --user-pin")?;
                session
                    .login(UserType::User, Some(&AuthPin::from(pin)))
                    .map_err(|e| format!("PIN: {e}"))?;
                println!("PIN: verified");
                break;
            }
            Err(e) => return Err(format!("PKA login: {e}")),
        }
    }
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(id) = &a.id {
        template.push(Attribute::Id(id.clone()));
    }
    let keys: Vec<ObjectHandle> = session.find_objects(&template).map_err(|e| e.to_string())?;
    let key = *keys
        .first()
        .ok_or("logged in, but no private key to sign with")?;
    let digest = [0x5Au8; 32];
    let sig = session
        .sign(&Mechanism::Ecdsa, key, &digest)
        .map_err(|e| format!("sign: {e}"))?;
    println!("signature: {}", hex::encode(sig));
    Ok(())
}

fn main() -> ExitCode {
    match args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pka_login: {e}");
            ExitCode::FAILURE
        }
    }
}
