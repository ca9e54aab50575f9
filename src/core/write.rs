//! Object management (PKCS#11 3.0 §5.7: C_CreateObject, C_DestroyObject,
//! C_SetAttributeValue) with the files OpenSC's sc-hsm pkcs15init driver
//! uses (`pkcs15init/pkcs15-sc-hsm.c`, docs/protocol.md §3, §7.7), so OpenSC reads what this
//! module writes and the other way round:
//!
//! - A certificate whose CKA_ID is that of a private key goes into the
//!   key's `CExx` (replacing the request), and its CKA_LABEL into the key's
//!   PrKD, which names both (OpenSC renames the key the same way); any other certificate into the
//!   first free `CAxx` with a CD in `C8xx` (same `xx`). Without a CKA_ID the
//!   id is OpenSC's intrinsic one (SHA-1 of the RSA modulus or of the EC X
//!   coordinate of the certificate's key), as `sc_pkcs15init_store_certificate`
//!   computes it.
//! - A data object goes into `CDxx` (CKA_PRIVATE true) or `CFxx` (public,
//!   the default, as with OpenSC when CKA_PRIVATE is absent), with a DCOD in
//!   `C9xx`: `xx` = the first id 0..=255 without a `C9xx` in ENUMERATE
//!   OBJECTS (`sc_hsm_emu_store_binary`).
//! - Keys are only made on the card (C_GenerateKeyPair); public keys cannot
//!   be stored on their own (OpenSC's sc-hsm driver has no file for them).
//!
//! Deleting removes every file of the object: a private key `CCxx`, its PrKD
//! `C4xx` and `CExx` (so the public key and a certificate there go too);
//! a key's certificate `CExx`; a CA certificate `C8xx` + `CAxx`; a data
//! object `C9xx` + `CDxx`/`CFxx`.
//!
//! The order of the writes is what a kill or a card reset between two
//! APDUs may leave visible (each APDU is atomic on the card): a file's
//! content before its description (the description is what lists it), a
//! description before the content when deleting, a key file first (the
//! listing starts from it). What is left then is an unlisted file, never a
//! listed object with missing or cut content.

use cryptoki_sys::*;

use crate::card::keys::{intrinsic_id_ec, intrinsic_id_rsa};
use crate::card::Card;
use crate::card::{pkcs15, x509};
use crate::core::api::Attr;
use crate::core::keygen::{attr, attr_bool, attr_string, attr_ulong, check_writable};
use crate::core::object::{Class, Object};
use crate::core::state::{on_token, session_slot};
use crate::core::token::Token;
use crate::error::{fail, Error, Result};
use crate::transport::{Link, Transport};

const KEY: u8 = 0xCC;
const PRKD: u8 = 0xC4;
const CD: u8 = 0xC8;
const DCOD: u8 = 0xC9;
const CA_CERT: u8 = 0xCA;
const EE_CERT: u8 = 0xCE;
const PRIVATE_DATA: u8 = 0xCD;
const PUBLIC_DATA: u8 = 0xCF;

fn fid(prefix: u8, id: u8) -> u16 {
    (prefix as u16) << 8 | id as u16
}

/// Replaces a file's content. OpenSC deletes the file first
/// (`sc_hsm_update_ef` with erase); a write at offset 0 replaces the content
/// on its own (docs/protocol.md §3.6), and without the DELETE a kill or a
/// card reset during the write leaves the old content (a key's request
/// stays, and with it the key) or the new one, never no file.
fn replace_ef(l: &mut dyn Link, f: u16, data: &[u8]) -> Result<()> {
    Ok(Card::new(l).write_ef(f, data)?)
}

/// The handle of the object (class, fid), after re-reading the card.
/// Sets the label of the PrKD `d` (the key's and its certificate's).
fn relabel_prkd(l: &mut dyn Link, d: u16, label: &str) -> Result<()> {
    use pkcs15::Description;
    let mut card = Card::new(l);
    let mut desc = card
        .read_ef(d)?
        .and_then(|v| pkcs15::PrivateKeyDesc::decode(&v).ok())
        .ok_or(Error::new(CKR_DEVICE_ERROR, "unreadable PrKD"))?;
    desc.relabel(Some(label), None);
    Ok(card.write_ef(d, &desc.to_bytes())?)
}

/// Reads description `d`, sets its label and iD, writes it back.
fn rewrite<D: pkcs15::Description>(
    t: &mut Token,
    d: u16,
    label: &Option<String>,
    id: &Option<Vec<u8>>,
    unreadable: &'static str,
) -> Result<()> {
    t.transport.transact(|l| {
        let mut card = Card::new(l);
        let mut desc = card
            .read_ef(d)?
            .and_then(|v| D::decode(&v).ok())
            .ok_or(Error::new(CKR_DEVICE_ERROR, unreadable))?;
        desc.relabel(label.as_deref(), id.as_deref());
        Ok(card.write_ef(d, &desc.to_bytes())?)
    })
}

fn handle_of(t: &mut Token, class: Class, f: u16) -> Result<CK_OBJECT_HANDLE> {
    t.card_changed();
    t.resolve_where(|o| o.unresolved == Some(f))?;
    t.objects()?
        .iter()
        .find(|(_, o)| o.class == class && o.fid == f)
        .map(|(h, _)| *h)
        .ok_or(Error::new(CKR_DEVICE_ERROR, "written object not found"))
}

/// C_CreateObject: certificates and data objects.
pub fn create_object(session: CK_SESSION_HANDLE, template: &[Attr]) -> Result<CK_OBJECT_HANDLE> {
    let (slot, rw) = session_slot(session)?;
    let class = attr_ulong(template, CKA_CLASS)?
        .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS missing"))?;
    if attr_bool(template, CKA_TOKEN)? == Some(false) {
        return fail(
            CKR_TEMPLATE_INCONSISTENT,
            "session objects are not supported",
        );
    }
    match class {
        CKO_CERTIFICATE => create_certificate(slot, rw, template),
        CKO_DATA => create_data(slot, rw, template),
        CKO_PUBLIC_KEY => fail(
            CKR_FUNCTION_NOT_SUPPORTED,
            "public keys cannot be stored on their own",
        ),
        CKO_PRIVATE_KEY | CKO_SECRET_KEY => fail(
            CKR_TEMPLATE_INCONSISTENT,
            "keys are generated on the card only",
        ),
        _ => fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_CLASS"),
    }
}

fn create_certificate(slot: CK_SLOT_ID, rw: bool, template: &[Attr]) -> Result<CK_OBJECT_HANDLE> {
    if attr_ulong(template, CKA_CERTIFICATE_TYPE)?.is_some_and(|c| c != CKC_X_509) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "only X.509 certificates");
    }
    if attr_bool(template, CKA_PRIVATE)? == Some(true) {
        return fail(CKR_TEMPLATE_INCONSISTENT, "certificates are public");
    }
    let der = attr(template, CKA_VALUE)
        .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE missing"))?
        .to_vec();
    let fields = x509::parse(&der)
        .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_VALUE is not X.509"))?;
    let label = attr_string(template, CKA_LABEL)?.unwrap_or_default();
    let id = match attr(template, CKA_ID) {
        Some(i) if i.len() > 255 => return fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_ID"),
        Some(i) => i.to_vec(),
        None => match &fields.public_key {
            x509::PublicKey::Rsa { modulus, .. } => {
                let z = modulus.iter().take_while(|b| **b == 0).count();
                intrinsic_id_rsa(&modulus[z..])
            }
            x509::PublicKey::Ec { point, .. } => intrinsic_id_ec(point),
            x509::PublicKey::Other => Vec::new(),
        },
    };
    let category = attr_ulong(template, CKA_CERTIFICATE_CATEGORY)?.unwrap_or(0);
    let authority = category == 2;
    on_token(slot, |t| {
        check_writable(rw, t)?;
        let key_ref = t
            .objects()?
            .iter()
            .find(|(_, o)| {
                o.class == Class::PrivateKey && o.attrs.get(&CKA_ID) == Some(&id) && !id.is_empty()
            })
            .and_then(|(_, o)| o.key.map(|(r, _)| r));
        let f = t.transport.transact(|l| {
            if let Some(r) = key_ref {
                let f = fid(EE_CERT, r);
                replace_ef(l, f, &der)?;
                // The certificate has no description of its own: it is
                // listed with the key's PrKD label, so its label goes there
                // (as OpenSC's pkcs15init does); the key is renamed with it.
                if !label.is_empty() {
                    relabel_prkd(l, fid(PRKD, r), &label)?;
                }
                return Ok(f);
            }
            let listed = Card::new(l).enumerate()?;
            let mut free = None;
            for j in 0..=255u8 {
                if listed.contains(&fid(CD, j)) {
                    continue;
                }
                // CAxx is not listed by the card: make sure it is unused
                // (PSO also stores CV certificates there).
                if Card::new(l).read_ef(fid(CA_CERT, j))?.is_none() {
                    free = Some(j);
                    break;
                }
            }
            let j = free.ok_or(Error::new(CKR_DEVICE_MEMORY, "no free certificate id"))?;
            let f = fid(CA_CERT, j);
            replace_ef(l, f, &der)?;
            let desc = pkcs15::CertDesc {
                label: label.clone(),
                id: id.clone(),
                authority,
                fid: f,
            };
            replace_ef(l, fid(CD, j), &desc.encode())?;
            Ok(f)
        })?;
        handle_of(t, Class::Certificate, f)
    })
}

/// The content octets of a DER OBJECT IDENTIFIER (CKA_OBJECT_ID).
fn oid_content(der: &[u8]) -> Result<Vec<u8>> {
    match picohsm_wire::tlv::parse_one(der) {
        Ok((t, rest))
            if t.tag == 0x06
                && rest.is_empty()
                && !t.value.is_empty()
                && t.value[t.value.len() - 1] & 0x80 == 0 =>
        {
            Ok(t.value.to_vec())
        }
        _ => fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_OBJECT_ID"),
    }
}

fn create_data(slot: CK_SLOT_ID, rw: bool, template: &[Attr]) -> Result<CK_OBJECT_HANDLE> {
    let value = attr(template, CKA_VALUE).unwrap_or_default().to_vec();
    if value.len() > 0xFFFF {
        return fail(CKR_ATTRIBUTE_VALUE_INVALID, "data object too large");
    }
    let private = attr_bool(template, CKA_PRIVATE)?.unwrap_or(false);
    let label = attr_string(template, CKA_LABEL)?.unwrap_or_default();
    let app_label = attr_string(template, CKA_APPLICATION)?.unwrap_or_default();
    let app_oid = match attr(template, CKA_OBJECT_ID) {
        Some(v) if !v.is_empty() => Some(oid_content(v)?),
        _ => None,
    };
    on_token(slot, |t| {
        check_writable(rw, t)?;
        let f = t.transport.transact(|l| {
            let listed = Card::new(l).enumerate()?;
            let j = (0..=255u8)
                .find(|j| !listed.contains(&fid(DCOD, *j)))
                .ok_or(Error::new(CKR_DEVICE_MEMORY, "no free data object id"))?;
            let f = fid(if private { PRIVATE_DATA } else { PUBLIC_DATA }, j);
            replace_ef(l, f, &value)?;
            let desc = pkcs15::DataDesc {
                label: label.clone(),
                app_label: app_label.clone(),
                app_oid: app_oid.clone(),
                fid: f,
                private,
                auth_id: private.then(|| vec![1]),
            };
            replace_ef(l, fid(DCOD, j), &desc.encode())?;
            Ok(f)
        })?;
        handle_of(t, Class::Data, f)
    })
}

/// C_DestroyObject.
pub fn destroy_object(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    let (slot, rw) = session_slot(session)?;
    on_token(slot, |t| {
        if t.session_objects.iter().any(|s| s.handle == object) {
            // Visible to this login? Then it goes, in any session.
            t.object(object)?;
            t.session_objects.retain(|s| s.handle != object);
            return Ok(());
        }
        check_writable(rw, t)?;
        let o = t.object(object)?.clone();
        let id = o.fid as u8;
        let mut gone: Vec<(Class, u16)> = vec![(o.class, o.fid)];
        let files: Vec<u16> = match o.class {
            Class::PrivateKey => {
                gone.push((Class::PublicKey, o.fid));
                gone.push((Class::Certificate, fid(EE_CERT, id)));
                vec![o.fid, fid(PRKD, id), fid(EE_CERT, id)]
            }
            Class::PublicKey => {
                return fail(
                    CKR_ACTION_PROHIBITED,
                    "a public key goes with its private key or certificate",
                )
            }
            // The description first: it is what lists the object.
            Class::Certificate => match o.desc_fid {
                Some(d) => vec![d, o.fid],
                None => vec![o.fid],
            },
            Class::Data => match o.desc_fid {
                Some(d) => vec![d, o.fid],
                None => vec![o.fid],
            },
            Class::SecretKey => return fail(CKR_OBJECT_HANDLE_INVALID, "unknown object"),
        };
        if o.class == Class::Certificate && (o.fid >> 8) as u8 == EE_CERT {
            // The public key of that key was read from this certificate.
            gone.push((Class::PublicKey, fid(KEY, id)));
        }
        t.transport.transact(|l| {
            for f in &files {
                Card::new(l).delete_ef(*f)?;
            }
            Ok(())
        })?;
        // A later object in the same files gets a new handle.
        for k in gone {
            t.handles.remove(&k);
        }
        t.card_changed();
        Ok(())
    })
}

/// C_SetAttributeValue: CKA_LABEL and CKA_ID of keys (their PrKD) and of
/// CA certificates (their CD), CKA_LABEL of data objects (their DCOD).
/// A certificate in a key's `CExx` takes its label and id from the key's
/// PrKD: its new label is the key's too, its id cannot change on its own.
/// Anything else is CKR_ATTRIBUTE_READ_ONLY.
pub fn set_attributes(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: &[Attr],
) -> Result<()> {
    let (slot, rw) = session_slot(session)?;
    let mut label = None;
    let mut id = None;
    for a in template {
        match a.kind {
            CKA_LABEL => {
                label = Some(
                    String::from_utf8(a.value.clone())
                        .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_LABEL"))?,
                )
            }
            CKA_ID if a.value.len() <= 255 => id = Some(a.value.clone()),
            CKA_ID => return fail(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_ID"),
            _ => return fail(CKR_ATTRIBUTE_READ_ONLY, "only CKA_LABEL and CKA_ID"),
        }
    }
    on_token(slot, |t| {
        if t.session_objects.iter().any(|s| s.handle == object) {
            let o = t.object(object)?;
            if o.attrs.get(&CKA_MODIFIABLE) == Some(&vec![CK_FALSE]) {
                return fail(CKR_ACTION_PROHIBITED, "CKA_MODIFIABLE is false");
            }
            if let Some(v) = label {
                o.attrs.insert(CKA_LABEL, v.into_bytes());
            }
            if let Some(v) = id {
                o.attrs.insert(CKA_ID, v);
            }
            return Ok(());
        }
        check_writable(rw, t)?;
        let o: Object = t.object(object)?.clone();
        match o.class {
            Class::PrivateKey | Class::PublicKey => {
                let d = o.desc_fid.unwrap_or(fid(PRKD, o.fid as u8));
                rewrite::<pkcs15::PrivateKeyDesc>(t, d, &label, &id, "unreadable PrKD")?;
            }
            Class::Certificate => match o.desc_fid {
                Some(d) => rewrite::<pkcs15::CertDesc>(t, d, &label, &id, "unreadable CD")?,
                // A key's certificate is listed with the key's PrKD label
                // and id: a new label goes there (the key's too); its id
                // is the key's.
                None if id.is_none() => {
                    let d = fid(PRKD, o.fid as u8);
                    rewrite::<pkcs15::PrivateKeyDesc>(t, d, &label, &None, "unreadable PrKD")?;
                }
                None => {
                    return fail(
                        CKR_ATTRIBUTE_READ_ONLY,
                        "a key's certificate takes its id from the key",
                    )
                }
            },
            Class::Data => {
                if id.is_some() {
                    return fail(CKR_ATTRIBUTE_TYPE_INVALID, "data objects have no CKA_ID");
                }
                let Some(d) = o.desc_fid else {
                    return fail(CKR_ATTRIBUTE_READ_ONLY, "data object without DCOD");
                };
                rewrite::<pkcs15::DataDesc>(t, d, &label, &None, "unreadable DCOD")?;
            }
            Class::SecretKey => return fail(CKR_OBJECT_HANDLE_INVALID, "unknown object"),
        }
        t.card_changed();
        Ok(())
    })
}
