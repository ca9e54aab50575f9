//! Key pair generation (PKCS#11 3.0 §5.18, C_GenerateKeyPair) on the card, laid
//! out as OpenSC's sc-hsm pkcs15init driver does it (docs/protocol.md §7.1, §7.7), so that
//! OpenSC sees a key made here as one of its own:
//!
//! 1. ENUMERATE OBJECTS; the key id is the first id 1..=255 with no `CCxx`.
//! 2. GENERATE ASYMMETRIC KEY PAIR `00 46 id 00` with a CVC body laid out
//!    as OpenSC's (`5F29 00`, `42 CAR`, `7F49 {…}`, `5F20 CHR`), but with a
//!    name of the key's own as CHR and CAR (`card::pka::fresh_chr`: unique
//!    across devices that share the serial `ESPICOHSMTR`) where OpenSC sends
//!    CAR `UTCA00001` and CHR `<serial>00001`. The card stores the key in
//!    `CCid` and its authenticated request in `CEid`; the request carries
//!    the public key.
//! 3. UPDATE BINARY of `C4id` with OpenSC's PrKD (label, CKA_ID, usage, key
//!    reference, authId `01`, private + modifiable).
//!
//! All three in one PC/SC transaction. Without a CKA_ID the id is OpenSC's
//! default "intrinsic" id (`pkcs15.profile`: `pkcs15-id-style = mozilla`,
//! `sc_pkcs15init_select_intrinsic_id`): SHA-1 of the RSA modulus, or of the
//! X coordinate of the EC point (the bytes after `04`, first half).

use cryptoki_sys::*;
use picohsm_wire::codes::fid;
use picohsm_wire::curve::Curve;

use crate::card::keys::{key_fid, KeySpec};
use crate::card::pka::fresh_chr;
use crate::card::Card;
use crate::core::api::{Attr, Mechanism};
use crate::core::object::Class;
use crate::core::state::{on_token, session_slot};
use crate::core::token::{Login, Token};
use crate::error::{fail, Error, Result};
use crate::transport::Transport;

/// The value of attribute `kind` in `template`, if present.
pub fn attr(template: &[Attr], kind: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    template
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| a.value.as_slice())
}

/// A CK_ULONG attribute (native layout); CKR_ATTRIBUTE_VALUE_INVALID if
/// its length is not that of a CK_ULONG.
pub fn attr_ulong(template: &[Attr], kind: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
    match attr(template, kind) {
        None => Ok(None),
        Some(v) => {
            let b: [u8; std::mem::size_of::<CK_ULONG>()] = v
                .try_into()
                .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CK_ULONG attribute"))?;
            Ok(Some(CK_ULONG::from_ne_bytes(b)))
        }
    }
}

/// A CK_BBOOL attribute; CKR_ATTRIBUTE_VALUE_INVALID if it is not one byte.
pub fn attr_bool(template: &[Attr], kind: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
    match attr(template, kind) {
        None => Ok(None),
        Some([v]) => Ok(Some(*v != CK_FALSE)),
        Some(_) => fail(CKR_ATTRIBUTE_VALUE_INVALID, "CK_BBOOL attribute"),
    }
}

/// A UTF-8 attribute (CKA_LABEL, CKA_APPLICATION).
pub fn attr_string(template: &[Attr], kind: CK_ATTRIBUTE_TYPE) -> Result<Option<String>> {
    match attr(template, kind) {
        None => Ok(None),
        Some(v) => String::from_utf8(v.to_vec())
            .map(Some)
            .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "not UTF-8")),
    }
}

/// Checks that a template's CKA_CLASS, if given, is `class`.
pub fn expect_class(template: &[Attr], class: CK_OBJECT_CLASS) -> Result<()> {
    match attr_ulong(template, CKA_CLASS)? {
        Some(c) if c != class => fail(CKR_TEMPLATE_INCONSISTENT, "CKA_CLASS"),
        _ => Ok(()),
    }
}

/// Fails unless the session is R/W and the user is logged in.
pub fn check_writable(rw: bool, t: &Token) -> Result<()> {
    if !rw {
        return fail(CKR_SESSION_READ_ONLY, "read-only session");
    }
    if t.login != Login::User {
        return fail(CKR_USER_NOT_LOGGED_IN, "user not logged in");
    }
    Ok(())
}

fn spec(mech: &Mechanism, public: &[Attr], private: &[Attr]) -> Result<KeySpec> {
    let key_type = match mech {
        Mechanism::EcKeyPairGen => CKK_EC,
        Mechanism::RsaKeyPairGen => CKK_RSA,
        _ => return fail(CKR_MECHANISM_INVALID, "not a key-pair mechanism"),
    };
    expect_class(public, CKO_PUBLIC_KEY)?;
    expect_class(private, CKO_PRIVATE_KEY)?;
    for t in [public, private] {
        if attr_ulong(t, CKA_KEY_TYPE)?.is_some_and(|k| k != key_type) {
            return fail(CKR_TEMPLATE_INCONSISTENT, "CKA_KEY_TYPE");
        }
        if attr_bool(t, CKA_TOKEN)? == Some(false) {
            return fail(CKR_TEMPLATE_INCONSISTENT, "session keys are not supported");
        }
    }
    if attr_bool(private, CKA_EXTRACTABLE)? == Some(true) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "card keys are never extractable");
    }
    if attr_bool(private, CKA_SENSITIVE)? == Some(false) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "card keys are always sensitive");
    }
    if attr_bool(private, CKA_PRIVATE)? == Some(false) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "card private keys are private");
    }
    if key_type == CKK_EC {
        let params = attr(public, CKA_EC_PARAMS)
            .or_else(|| attr(private, CKA_EC_PARAMS))
            .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS missing"))?;
        let curve = Curve::from_oid_der(params)
            .ok_or(Error::new(CKR_CURVE_NOT_SUPPORTED, "unsupported curve"))?;
        Ok(KeySpec::Ec(curve))
    } else {
        let bits = attr_ulong(public, CKA_MODULUS_BITS)?.ok_or(Error::new(
            CKR_TEMPLATE_INCOMPLETE,
            "CKA_MODULUS_BITS missing",
        ))? as usize;
        if !(1024..=4096).contains(&bits) || !bits.is_multiple_of(8) {
            return fail(CKR_KEY_SIZE_RANGE, "RSA 1024..4096, multiple of 8");
        }
        let exponent = match attr(public, CKA_PUBLIC_EXPONENT) {
            None => vec![0x01, 0x00, 0x01],
            Some(e) => {
                let z = e.iter().take_while(|b| **b == 0).count();
                let e = &e[z..];
                // Odd, at least 3, at most 8 bytes: what the card can take.
                if e.is_empty() || e.len() > 8 || e[e.len() - 1] & 1 == 0 || e == [1] {
                    return fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_PUBLIC_EXPONENT");
                }
                e.to_vec()
            }
        };
        Ok(KeySpec::Rsa { bits, exponent })
    }
}

/// C_GenerateKeyPair: (public, private) handles of the new key.
pub fn generate_key_pair(
    session: CK_SESSION_HANDLE,
    mech: Mechanism,
    public: &[Attr],
    private: &[Attr],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let (slot, rw) = session_slot(session)?;
    let spec = spec(&mech, public, private)?;
    let label = match attr_string(private, CKA_LABEL)? {
        Some(l) => l,
        None => attr_string(public, CKA_LABEL)?.unwrap_or_default(),
    };
    let given_id = attr(private, CKA_ID)
        .or_else(|| attr(public, CKA_ID))
        .map(<[u8]>::to_vec);
    if given_id
        .as_ref()
        .is_some_and(|i| i.is_empty() || i.len() > 255)
    {
        return fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_ID");
    }
    on_token(slot, |t| {
        check_writable(rw, t)?;
        // A name of its own, unique across devices that share a serial,
        // with CAR = CHR: a request that names itself is one the upstream
        // firmware accepts as a PKA authenticator (OpenSC's `UTCA00001` it
        // refuses, 6985).
        let taken: Vec<Vec<u8>> = t
            .all_objects()?
            .iter()
            .filter_map(|(_, o)| o.chr.clone())
            .collect();
        let chr = fresh_chr(&t.device_name, &taken, 1);
        let key_ref = t.transport.transact(|l| {
            let key = Card::new(l).generate_key(&spec, &chr, &chr, &label, given_id.as_deref())?;
            Ok(key.key_ref)
        })?;
        t.card_changed();
        let fid = key_fid(fid::KEY_PREFIX, key_ref);
        t.resolve_where(|o| o.fid == fid)?;
        let objs = t.objects()?;
        let find = |c: Class| {
            objs.iter()
                .find(|(_, o)| o.class == c && o.fid == fid)
                .map(|(h, _)| *h)
                .ok_or(Error::new(CKR_DEVICE_ERROR, "new key not found"))
        };
        Ok((find(Class::PublicKey)?, find(Class::PrivateKey)?))
    })
}
