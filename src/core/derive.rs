//! ECDH key derivation (PKCS#11 3.0 §6.3.16, CKM_ECDH1_DERIVE and
//! CKM_ECDH1_COFACTOR_DERIVE): the card computes the shared secret with
//! DECIPHER algorithm `80` (docs/protocol.md §7.3, answer
//! `04` ‖ X); the module applies the KDF and keeps the result as a secret
//! key session object. Every curve the card offers has cofactor 1, so the
//! two mechanisms give the same secret.

use cryptoki_sys::*;
use picohsm_wire::curve::Curve;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::core::api::Attr;
use crate::core::keygen::{attr_bool, attr_string, attr_ulong};
use crate::core::keyop::private_key;
use crate::core::mech::{Ecdh, Hash, Kdf, Mechanism};
use crate::core::object::{b, ul, Class, KeyInfo, Object};
use crate::core::state::{on_token, session_slot};
use crate::core::token::{new_handle, SessionObject};
use crate::error::{fail, Result};
use crate::transport::Transport;

/// The attributes a derived key's template may carry, besides [`USAGE`].
const ALLOWED: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_LABEL,
    CKA_ID,
    CKA_VALUE_LEN,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
];

/// The usage flags of a derived key (CK_FALSE unless the template says).
const USAGE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
];

/// ANSI X9.63 KDF: Hash(Z ‖ counter ‖ SharedInfo) for counter = 1, 2, ...
/// until `len` bytes.
fn x963(hash: Hash, z: &[u8], info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut input = Zeroizing::new(Vec::with_capacity(z.len() + 4 + info.len()));
        input.extend_from_slice(z);
        input.extend_from_slice(&counter.to_be_bytes());
        input.extend_from_slice(info);
        let block = Zeroizing::new(hash.digest(&input));
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(len);
    out
}

/// The peer's point as the card takes it (uncompressed `04` ‖ X ‖ Y): raw,
/// or inside a DER OCTET STRING (both forms are in use, PKCS#11 3.0 §6.3.16).
fn peer_point(curve: Curve, public: &[u8]) -> Result<Vec<u8>> {
    let n = 2 * curve.field_size() + 1;
    if public.len() == n && public[0] == 0x04 {
        return Ok(public.to_vec());
    }
    if let Ok((t, rest)) = picohsm_wire::tlv::parse_one(public) {
        if t.tag == 0x04 && rest.is_empty() && t.value.len() == n && t.value[0] == 0x04 {
            return Ok(t.value.to_vec());
        }
    }
    fail(
        CKR_MECHANISM_PARAM_INVALID,
        "the peer's public data is not an uncompressed point on the key's curve",
    )
}

/// The secret key's type and length from the template (CKK_GENERIC_SECRET
/// by default, at most the KDF's output, all of Z when not given).
fn key_type_and_len(template: &[Attr], z_len: usize, kdf: bool) -> Result<(CK_KEY_TYPE, usize)> {
    let kind = attr_ulong(template, CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
    let len = attr_ulong(template, CKA_VALUE_LEN)?.map(|v| v as usize);
    let len = match kind {
        CKK_GENERIC_SECRET => len.unwrap_or(z_len),
        CKK_AES => match len {
            Some(l @ (16 | 24 | 32)) => l,
            Some(_) => {
                return fail(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "AES keys are 16, 24 or 32 bytes",
                )
            }
            None => return fail(CKR_TEMPLATE_INCOMPLETE, "an AES key needs CKA_VALUE_LEN"),
        },
        _ => {
            return fail(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "ECDH makes generic secret or AES keys",
            )
        }
    };
    if len == 0 || (!kdf && len > z_len) {
        return fail(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "CKA_VALUE_LEN is longer than the shared secret",
        );
    }
    Ok((kind, len))
}

/// C_DeriveKey.
pub fn derive_key(
    session: CK_SESSION_HANDLE,
    mech: Mechanism,
    base: CK_OBJECT_HANDLE,
    template: &[Attr],
) -> Result<CK_OBJECT_HANDLE> {
    let (slot, _) = session_slot(session)?;
    // Both mechanisms give the same secret: every curve has cofactor 1.
    let Mechanism::Ecdh(Ecdh {
        kdf,
        shared_data,
        public_data,
        ..
    }) = &mech
    else {
        return fail(CKR_MECHANISM_INVALID, "not a derivation mechanism");
    };
    // The hash of the ANSI X9.63 KDF, `None` for CKD_NULL.
    let kdf = match kdf {
        Some(Kdf::Null) => None,
        Some(Kdf::X963(h)) => Some(*h),
        None => return fail(CKR_MECHANISM_PARAM_INVALID, "KDF not supported"),
    };
    if kdf.is_none() && !shared_data.is_empty() {
        return fail(CKR_MECHANISM_PARAM_INVALID, "CKD_NULL takes no shared data");
    }
    if let Some(a) = template
        .iter()
        .find(|a| !ALLOWED.contains(&a.kind) && !USAGE.contains(&a.kind))
    {
        log::debug!("derive: attribute {:#x} not allowed", a.kind);
        return fail(
            CKR_ATTRIBUTE_TYPE_INVALID,
            "attribute not allowed on a derived key",
        );
    }
    if attr_ulong(template, CKA_CLASS)?.is_some_and(|c| c != CKO_SECRET_KEY) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "ECDH makes a secret key");
    }
    if attr_bool(template, CKA_TOKEN)? == Some(true) {
        return fail(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "the card cannot store secret keys: derive a session key (CKA_TOKEN false)",
        );
    }
    let (key_ref, info) = private_key(slot, base, true)?;
    let KeyInfo::Ec(curve) = info else {
        return fail(CKR_KEY_TYPE_INCONSISTENT, "ECDH takes an EC key");
    };
    let point = peer_point(curve, public_data)?;
    let z = Zeroizing::new(on_token(slot, |t| {
        t.transport
            .exchange_alone(|l| Ok(Card::new(l).ecdh(key_ref, &point)?))
    })?);
    let (kind, len) = key_type_and_len(template, z.len(), kdf.is_some())?;
    let value = match kdf {
        Some(h) => x963(h, &z, shared_data, len),
        None => Zeroizing::new(z[..len].to_vec()),
    };

    let flag = |a, default| attr_bool(template, a).map(|v| v.unwrap_or(default));
    let sensitive = flag(CKA_SENSITIVE, true)?;
    let extractable = flag(CKA_EXTRACTABLE, true)?;
    let private = flag(CKA_PRIVATE, true)?;
    let mut o = Object::new(Class::SecretKey, 0, None, private);
    o.set(CKA_TOKEN, b(false));
    o.set(CKA_KEY_TYPE, ul(kind));
    o.set(CKA_VALUE_LEN, ul(len as CK_ULONG));
    o.set(CKA_VALUE, value.to_vec());
    o.set(CKA_SENSITIVE, b(sensitive));
    o.set(CKA_ALWAYS_SENSITIVE, b(false));
    o.set(CKA_EXTRACTABLE, b(extractable));
    o.set(CKA_NEVER_EXTRACTABLE, b(false));
    o.set(CKA_LOCAL, b(false));
    o.set(CKA_KEY_GEN_MECHANISM, ul(CK_UNAVAILABLE_INFORMATION));
    o.set(CKA_MODIFIABLE, b(flag(CKA_MODIFIABLE, true)?));
    o.set(
        CKA_LABEL,
        attr_string(template, CKA_LABEL)?
            .unwrap_or_default()
            .into_bytes(),
    );
    o.set(
        CKA_ID,
        crate::core::keygen::attr(template, CKA_ID)
            .unwrap_or_default()
            .to_vec(),
    );
    for &a in USAGE {
        o.set(a, b(flag(a, false)?));
    }
    let handle = new_handle();
    on_token(slot, |t| {
        t.session_objects.push(SessionObject {
            handle,
            session,
            object: o,
        });
        Ok(())
    })?;
    Ok(handle)
}

/// The session objects a closing session leaves behind go with it.
pub fn forget_session(slot: CK_SLOT_ID, session: CK_SESSION_HANDLE) {
    if let Ok((token, _, _)) = crate::core::state::slot_token(slot) {
        if let Some(t) = token.lock().as_mut() {
            t.session_objects.retain(|s| s.session != session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x963_matches_a_known_answer() {
        // The NIST CAVS ANSI X9.63-2001 KDF vectors, SHA-256, 192-bit Z,
        // no SharedInfo, 128-bit output, COUNT = 0.
        let z = [
            0x96, 0xc0, 0x56, 0x19, 0xd5, 0x6c, 0x32, 0x8a, 0xb9, 0x5f, 0xe8, 0x4b, 0x18, 0x26,
            0x4b, 0x08, 0x72, 0x5b, 0x85, 0xe3, 0x3f, 0xd3, 0x4f, 0x08,
        ];
        let k = x963(Hash::Sha256, &z, &[], 16);
        assert_eq!(
            k.as_slice(),
            &[
                0x44, 0x30, 0x24, 0xc3, 0xda, 0xe6, 0x6b, 0x95, 0xe6, 0xf5, 0x67, 0x06, 0x01, 0x55,
                0x8f, 0x71
            ]
        );
    }

    #[test]
    fn x963_runs_the_counter_past_one_block() {
        let z = [7u8; 32];
        let k = x963(Hash::Sha256, &z, b"info", 40);
        let mut first = z.to_vec();
        first.extend_from_slice(&[0, 0, 0, 1]);
        first.extend_from_slice(b"info");
        let mut second = z.to_vec();
        second.extend_from_slice(&[0, 0, 0, 2]);
        second.extend_from_slice(b"info");
        assert_eq!(&k[..32], Hash::Sha256.digest(&first).as_slice());
        assert_eq!(&k[32..], &Hash::Sha256.digest(&second)[..8]);
    }

    #[test]
    fn peer_point_takes_raw_and_octet_string_forms() {
        let mut raw = vec![0x04];
        raw.extend_from_slice(&[1u8; 64]);
        assert_eq!(peer_point(Curve::P256, &raw).unwrap(), raw);
        let wrapped = picohsm_wire::tlv::encode(0x04, &raw);
        assert_eq!(peer_point(Curve::P256, &wrapped).unwrap(), raw);
        assert_eq!(
            peer_point(Curve::P384, &raw).unwrap_err().rv,
            CKR_MECHANISM_PARAM_INVALID
        );
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&[1u8; 32]);
        assert_eq!(
            peer_point(Curve::P256, &compressed).unwrap_err().rv,
            CKR_MECHANISM_PARAM_INVALID
        );
    }
}
