//! Object search and attributes (PKCS#11 3.0 §5.7).

use std::collections::VecDeque;

use cryptoki_sys::*;

use crate::card::Card;
use crate::core::api::{Attr, AttrValue};
use crate::core::object::{self, b, load_private_value, ul, Class, Object};
use crate::core::operation;
use crate::core::state::{on_token, session_slot};
use crate::core::token::Login;
use crate::error::Result;
use crate::transport::Transport;
use crate::vendor;

/// A search under way: the handles not yet returned.
pub(crate) struct Search {
    found: VecDeque<CK_OBJECT_HANDLE>,
}

/// C_FindObjectsInit.
pub fn find_objects_init(session: CK_SESSION_HANDLE, template: &[Attr]) -> Result<()> {
    let slot = operation::idle::<Search>(session)?;
    let want: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> =
        template.iter().map(|a| (a.kind, a.value.clone())).collect();
    let found: VecDeque<CK_OBJECT_HANDLE> = on_token(slot, |t| {
        let logged = t.login == Login::User;
        t.resolve_where(|o| could_match(o, &want))?;
        let mut found: VecDeque<CK_OBJECT_HANDLE> = t
            .objects()?
            .iter()
            .filter(|(_, o)| (logged || !o.private) && o.matches(&want))
            .map(|(h, _)| *h)
            .collect();
        // The PKA status object is found by its class only: reading the
        // card's status for every search would cost an APDU each time.
        if want
            .iter()
            .any(|(k, v)| *k == CKA_CLASS && *v == ul(vendor::CKO_PICOHSM_PKA_STATUS))
        {
            let st = t.transport.transact(|l| Ok(Card::new(l).pka_status()?))?;
            if let Some(o) = st.filter(|s| s.total > 0).map(pka_status_object) {
                if o.matches(&want) {
                    found.push_back(t.pka_status_handle);
                }
            }
        }
        found.extend(
            t.session_objects
                .iter()
                .filter(|s| (logged || !s.object.private) && s.object.matches(&want))
                .map(|s| s.handle),
        );
        Ok(found)
    })?;
    operation::start(session, Search { found })
}

/// Whether the search `want` needs the `CExx` of the unresolved private
/// key `o`: when the key itself is searched by an attribute only the
/// `CExx` tells, or when its public key or certificate (which exist only
/// through the `CExx`) may be searched for and the key's CKA_ID and
/// CKA_LABEL (theirs too) do not rule them out. A private key found by
/// class and CKA_ID or label reads no `CExx`.
fn could_match(o: &Object, want: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
    let class = want
        .iter()
        .find(|(k, _)| *k == CKA_CLASS)
        .map(|(_, v)| v.as_slice());
    let shared = |k: CK_ATTRIBUTE_TYPE| {
        want.iter()
            .filter(|(t, _)| *t == k)
            .all(|(_, v)| o.attrs.get(&k) == Some(v))
    };
    let private_needs = want.iter().any(|(k, _)| object::needs_content(o, *k))
        && o.matches(
            &want
                .iter()
                .filter(|(k, _)| o.attrs.contains_key(k))
                .cloned()
                .collect::<Vec<_>>(),
        );
    let others = shared(CKA_ID) && shared(CKA_LABEL);
    match class {
        Some(c) if c == ul(CKO_PRIVATE_KEY).as_slice() => private_needs,
        Some(c) if c == ul(CKO_PUBLIC_KEY).as_slice() || c == ul(CKO_CERTIFICATE).as_slice() => {
            others
        }
        Some(_) => false,
        None => others || private_needs,
    }
}

/// C_FindObjects.
pub fn find_objects(session: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    operation::update(session, |s: &mut Search| {
        let n = max.min(s.found.len());
        Ok(s.found.drain(..n).collect())
    })
}

/// C_FindObjectsFinal.
pub fn find_objects_final(session: CK_SESSION_HANDLE) -> Result<()> {
    operation::take::<Search>(session).map(|_| ())
}

/// C_GetAttributeValue for one attribute.
pub fn get_attribute(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    kind: CK_ATTRIBUTE_TYPE,
) -> Result<AttrValue> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| {
        if object != t.pka_status_handle {
            t.resolve_for(object, Some(kind))?;
        }
        if object == t.pka_status_handle {
            let st = t
                .transport
                .transact(|l| Ok(Card::new(l).pka_status()?))?
                .unwrap_or_default();
            return Ok(match pka_status_object(st).attrs.get(&kind) {
                Some(v) => AttrValue::Value(v.clone()),
                None => AttrValue::Invalid,
            });
        }
        let private_data = {
            let o = t.object(object)?;
            o.class == Class::Data && o.private && !o.attrs.contains_key(&CKA_VALUE)
        };
        if private_data && kind == CKA_VALUE {
            let mut o = t.object(object)?.clone();
            t.transport.transact(|l| load_private_value(l, &mut o))?;
            *t.object(object)? = o;
        }
        let o = t.object(object)?;
        let secret_hidden = o.class == Class::SecretKey
            && (o.attrs.get(&CKA_SENSITIVE) != Some(&vec![CK_FALSE])
                || o.attrs.get(&CKA_EXTRACTABLE) != Some(&vec![CK_TRUE]));
        if secret_hidden && kind == CKA_VALUE {
            return Ok(AttrValue::Sensitive);
        }
        if o.class == Class::PrivateKey
            && matches!(
                kind,
                CKA_VALUE
                    | CKA_PRIVATE_EXPONENT
                    | CKA_PRIME_1
                    | CKA_PRIME_2
                    | CKA_EXPONENT_1
                    | CKA_EXPONENT_2
                    | CKA_COEFFICIENT
            )
        {
            return Ok(AttrValue::Sensitive);
        }
        Ok(match o.attrs.get(&kind) {
            Some(v) => AttrValue::Value(v.clone()),
            None => AttrValue::Invalid,
        })
    })
}

/// The PKA status object (include/picohsm_pkcs11.h), from the card's status.
fn pka_status_object(st: crate::card::PkaStatus) -> Object {
    let mut o = Object::new(Class::Data, 0, None, false);
    o.set(CKA_CLASS, ul(vendor::CKO_PICOHSM_PKA_STATUS));
    o.set(CKA_MODIFIABLE, b(false));
    o.set(CKA_DESTROYABLE, b(false));
    o.set(CKA_LABEL, b"PKA status".to_vec());
    o.set(vendor::CKA_PICOHSM_PKA_TOTAL, ul(st.total as CK_ULONG));
    o.set(vendor::CKA_PICOHSM_PKA_MISSING, ul(st.missing as CK_ULONG));
    o.set(
        vendor::CKA_PICOHSM_PKA_REQUIRED,
        ul(st.required as CK_ULONG),
    );
    o.set(
        vendor::CKA_PICOHSM_PKA_AUTHENTICATED,
        ul(st.authenticated as CK_ULONG),
    );
    o
}

/// C_GetObjectSize: the bytes of its value or, for keys, of its attributes.
pub fn get_object_size(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<usize> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| {
        t.resolve_for(object, None)?;
        let o = t.object(object)?;
        Ok(o.attrs.values().map(|v| v.len()).sum())
    })
}
