//! Objects as OpenSC lays them out on a SmartCard-HSM (docs/protocol.md §3, §7.7): private
//! and public keys from `CCxx` + PrKD `C4xx` + request or certificate
//! `CExx`; certificates from `CExx` and from CD `C8xx` → `CAxx`; data
//! objects from DCOD `C9xx` → `CFxx` (public) / `CDxx` (private).

use std::collections::BTreeMap;

use cryptoki_sys::*;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{oid, AuthRequest};

use crate::card::Card;
use crate::card::{pkcs15, x509};
use crate::error::Result;
use crate::transport::Link;

/// The object classes this module shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// CKO_PRIVATE_KEY.
    PrivateKey,
    /// CKO_PUBLIC_KEY.
    PublicKey,
    /// CKO_CERTIFICATE.
    Certificate,
    /// CKO_DATA.
    Data,
    /// CKO_SECRET_KEY: only as a session object (an ECDH result).
    SecretKey,
}

/// What a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInfo {
    /// EC on a curve.
    Ec(Curve),
    /// RSA of this many bits.
    Rsa(usize),
}

/// One object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its class.
    pub class: Class,
    /// The file that identifies it (key CCxx, certificate CExx/CAxx, data CFxx/CDxx).
    pub fid: u16,
    /// Its descriptor file, if any (C4xx, C8xx, C9xx).
    pub desc_fid: Option<u16>,
    /// Visible only after login.
    pub private: bool,
    /// For keys: the card's key reference and the key's kind.
    pub key: Option<(u8, KeyInfo)>,
    /// Attribute values.
    pub attrs: BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>,
    /// For a key whose `CExx` holds its request: the request's CHR, the
    /// name PKA registers the key under (docs/protocol.md §6.2).
    pub chr: Option<Vec<u8>>,
    /// For a private key known from its PrKD only: the `CExx` (request or
    /// certificate) not read yet. Until it is, the key has no public key
    /// or certificate object, no content attributes ([`needs_content`]),
    /// and for EC only the field size is known of its curve (`key` holds
    /// a curve of that size).
    pub unresolved: Option<u16>,
}

/// CK_BBOOL bytes.
pub fn b(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

/// CK_ULONG bytes (native layout, as the C side reads them).
pub fn ul(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// DER OCTET STRING around `v` (CKA_EC_POINT).
pub fn octet_string(v: &[u8]) -> Vec<u8> {
    picohsm_wire::tlv::encode(0x04, v)
}

impl Object {
    /// An object with the attributes every object has.
    pub fn new(class: Class, fid: u16, desc_fid: Option<u16>, private: bool) -> Object {
        let mut attrs = BTreeMap::new();
        let cko = match class {
            Class::PrivateKey => CKO_PRIVATE_KEY,
            Class::PublicKey => CKO_PUBLIC_KEY,
            Class::Certificate => CKO_CERTIFICATE,
            Class::Data => CKO_DATA,
            Class::SecretKey => CKO_SECRET_KEY,
        };
        attrs.insert(CKA_CLASS, ul(cko));
        attrs.insert(CKA_TOKEN, b(true));
        attrs.insert(CKA_PRIVATE, b(private));
        attrs.insert(CKA_MODIFIABLE, b(true));
        attrs.insert(CKA_COPYABLE, b(false));
        attrs.insert(CKA_DESTROYABLE, b(true));
        Object {
            class,
            fid,
            desc_fid,
            private,
            key: None,
            attrs,
            chr: None,
            unresolved: None,
        }
    }

    /// Sets one attribute.
    pub fn set(&mut self, a: CK_ATTRIBUTE_TYPE, v: Vec<u8>) {
        self.attrs.insert(a, v);
    }

    /// Whether every attribute of `template` has the same value here.
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template.iter().all(|(t, v)| self.attrs.get(t) == Some(v))
    }
}

/// A public key, wherever it was read from.
struct Public {
    info: KeyInfo,
    ec_point: Option<Vec<u8>>,
    modulus: Option<Vec<u8>>,
    exponent: Option<Vec<u8>>,
    spki: Vec<u8>,
}

fn public_from_request(req: &[u8]) -> Option<Public> {
    let r = AuthRequest::parse(req).ok()?;
    let c = &r.cert;
    if oid::is_ec(c.algorithm) {
        let curve = Curve::from_prime(c.key_field(0x81)?)?;
        let q = c.key_field(0x86)?.to_vec();
        Some(Public {
            info: KeyInfo::Ec(curve),
            spki: x509::spki_ec(curve.oid_der(), &q),
            ec_point: Some(q),
            modulus: None,
            exponent: None,
        })
    } else if oid::is_rsa(c.algorithm) {
        let n = strip(c.key_field(0x81)?).to_vec();
        let e = strip(c.key_field(0x82)?).to_vec();
        Some(Public {
            info: KeyInfo::Rsa(bits(&n)),
            spki: x509::spki_rsa(&n, &e),
            ec_point: None,
            modulus: Some(n),
            exponent: Some(e),
        })
    } else {
        None
    }
}

fn public_from_cert(f: &x509::CertFields) -> Option<Public> {
    match &f.public_key {
        x509::PublicKey::Ec {
            curve_oid_der,
            point,
        } => {
            let curve = Curve::from_oid_der(curve_oid_der)?;
            Some(Public {
                info: KeyInfo::Ec(curve),
                spki: f.spki.clone(),
                ec_point: Some(point.clone()),
                modulus: None,
                exponent: None,
            })
        }
        x509::PublicKey::Rsa { modulus, exponent } => {
            let n = strip(modulus).to_vec();
            Some(Public {
                info: KeyInfo::Rsa(bits(&n)),
                spki: f.spki.clone(),
                ec_point: None,
                modulus: Some(n),
                exponent: Some(strip(exponent).to_vec()),
            })
        }
        x509::PublicKey::Other => None,
    }
}

fn strip(v: &[u8]) -> &[u8] {
    let z = v.iter().take_while(|x| **x == 0).count();
    &v[z..]
}

fn bits(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |f| n.len() * 8 - f.leading_zeros() as usize)
}

fn key_attrs(o: &mut Object, p: &Public, label: &str, id: &[u8]) {
    directory_key_attrs(o, matches!(p.info, KeyInfo::Rsa(_)), label, id);
    content_key_attrs(o, p);
}

/// The attributes of a key known from its PrKD alone.
fn directory_key_attrs(o: &mut Object, rsa: bool, label: &str, id: &[u8]) {
    o.set(CKA_LABEL, label.as_bytes().to_vec());
    o.set(CKA_ID, id.to_vec());
    o.set(CKA_LOCAL, b(true));
    o.set(CKA_START_DATE, Vec::new());
    o.set(CKA_END_DATE, Vec::new());
    if rsa {
        o.set(CKA_KEY_TYPE, ul(CKK_RSA));
        o.set(CKA_KEY_GEN_MECHANISM, ul(CKM_RSA_PKCS_KEY_PAIR_GEN));
        o.set(CKA_DERIVE, b(false));
    } else {
        o.set(CKA_KEY_TYPE, ul(CKK_EC));
        o.set(CKA_KEY_GEN_MECHANISM, ul(CKM_EC_KEY_PAIR_GEN));
        o.set(CKA_DERIVE, b(true));
    }
    if o.class == Class::PrivateKey {
        o.set(CKA_SENSITIVE, b(true));
        o.set(CKA_ALWAYS_SENSITIVE, b(true));
        o.set(CKA_EXTRACTABLE, b(false));
        o.set(CKA_NEVER_EXTRACTABLE, b(true));
        o.set(CKA_ALWAYS_AUTHENTICATE, b(false));
        o.set(CKA_SIGN, b(true));
        o.set(CKA_SIGN_RECOVER, b(false));
        o.set(CKA_DECRYPT, b(rsa));
        o.set(CKA_UNWRAP, b(false));
        o.set(CKA_WRAP_WITH_TRUSTED, b(false));
    } else {
        o.set(CKA_VERIFY, b(true));
        o.set(CKA_VERIFY_RECOVER, b(false));
        o.set(CKA_ENCRYPT, b(rsa));
        o.set(CKA_WRAP, b(false));
        o.set(CKA_TRUSTED, b(false));
    }
}

/// The attributes of a key that come from its request or certificate.
fn content_key_attrs(o: &mut Object, p: &Public) {
    o.set(CKA_PUBLIC_KEY_INFO, p.spki.clone());
    o.set(CKA_SUBJECT, Vec::new());
    match p.info {
        KeyInfo::Ec(curve) => {
            o.set(CKA_EC_PARAMS, curve.oid_der().to_vec());
            if o.class == Class::PublicKey {
                o.set(
                    CKA_EC_POINT,
                    octet_string(p.ec_point.as_deref().unwrap_or_default()),
                );
            }
        }
        KeyInfo::Rsa(bits) => {
            o.set(CKA_MODULUS, p.modulus.clone().unwrap_or_default());
            o.set(CKA_PUBLIC_EXPONENT, p.exponent.clone().unwrap_or_default());
            if o.class == Class::PublicKey {
                o.set(CKA_MODULUS_BITS, ul(bits as CK_ULONG));
            }
        }
    }
}

/// Whether attribute `a` of an unresolved private key can only be known
/// from its `CExx`: those it does not have yet.
pub fn needs_content(o: &Object, a: CK_ATTRIBUTE_TYPE) -> bool {
    o.unresolved.is_some() && !o.attrs.contains_key(&a)
}

/// The key's kind as its PrKD tells it: RSA bits are exact; for EC only
/// the field size is, and a curve of that size stands for it (what signing
/// needs). `None` when the PrKD gives no size (an EC PrKD without
/// fieldSize) or an unknown one: the `CExx` tells then.
fn prkd_info(desc: &pkcs15::PrivateKeyDesc) -> Option<KeyInfo> {
    match desc.kind {
        pkcs15::KeyKind::Rsa if desc.key_bits > 0 => Some(KeyInfo::Rsa(desc.key_bits)),
        pkcs15::KeyKind::Rsa => None,
        pkcs15::KeyKind::Ec => match desc.key_bits {
            256 => Some(KeyInfo::Ec(Curve::P256)),
            384 => Some(KeyInfo::Ec(Curve::P384)),
            521 => Some(KeyInfo::Ec(Curve::P521)),
            _ => None,
        },
    }
}

/// The private key of PrKD `desc` (key file `f`), unresolved: its `CExx`
/// is read when an attribute or object needs it ([`resolve_key`]).
fn directory_key(f: u16, desc_fid: u16, desc: &pkcs15::PrivateKeyDesc, info: KeyInfo) -> Object {
    let id8 = f as u8;
    let mut prv = Object::new(Class::PrivateKey, f, Some(desc_fid), true);
    directory_key_attrs(
        &mut prv,
        matches!(info, KeyInfo::Rsa(_)),
        &desc.label,
        &desc.id,
    );
    prv.key = Some((id8, info));
    prv.unresolved = Some(0xCE00 | id8 as u16);
    prv
}

/// Completes the private key `prv` with its `CExx` content `ce`: its
/// public key object and, when `CExx` holds a certificate, the certificate
/// object. `None` when `CExx` holds neither its request nor a complete
/// certificate (the key is then not listed).
pub fn resolve_key(prv: &mut Object, ce: Option<&[u8]>) -> Option<(Option<Object>, Object)> {
    let (f, desc_fid) = (prv.fid, prv.desc_fid);
    let id8 = f as u8;
    let label =
        String::from_utf8_lossy(prv.attrs.get(&CKA_LABEL).map_or(&[][..], |v| v)).into_owned();
    let id = prv.attrs.get(&CKA_ID).cloned().unwrap_or_default();
    let mut cert = None;
    let public = match ce {
        Some(c) if c.first() == Some(&0x67) => public_from_request(c),
        Some(c) if c.first() == Some(&0x30) => {
            let co = cert_object(0xCE00 | id8 as u16, None, c, &label, &id, false);
            let p = co.as_ref().and_then(|(_, fields)| public_from_cert(fields));
            cert = co.map(|(mut o, fields)| {
                o.set(CKA_SUBJECT, fields.subject);
                o
            });
            p
        }
        _ => None,
    };
    let Some(public) = public else {
        // A certificate cut short by a write interrupted between two
        // APDUs, or no file: the public key is not known.
        log::warn!(
            "key {f:04X}: {:04X} holds neither its request nor a complete certificate: not listed",
            0xCE00 | id8 as u16
        );
        return None;
    };
    prv.chr = ce
        .and_then(|c| AuthRequest::parse(c).ok())
        .map(|r| r.cert.chr.to_vec());
    key_attrs(prv, &public, &label, &id);
    prv.key = Some((id8, public.info));
    prv.unresolved = None;
    let mut publ = Object::new(Class::PublicKey, f, desc_fid, false);
    key_attrs(&mut publ, &public, &label, &id);
    publ.key = Some((id8, public.info));
    if let Some(c) = &cert {
        if let Some(s) = c.attrs.get(&CKA_SUBJECT) {
            prv.set(CKA_SUBJECT, s.clone());
            publ.set(CKA_SUBJECT, s.clone());
        }
    }
    Some((cert, publ))
}

fn cert_object(
    fid: u16,
    desc_fid: Option<u16>,
    der: &[u8],
    label: &str,
    id: &[u8],
    authority: bool,
) -> Option<(Object, x509::CertFields)> {
    let f = x509::parse(der).ok()?;
    let mut o = Object::new(Class::Certificate, fid, desc_fid, false);
    o.set(CKA_CERTIFICATE_TYPE, ul(CKC_X_509));
    o.set(CKA_VALUE, der.to_vec());
    o.set(CKA_SUBJECT, f.subject.clone());
    o.set(CKA_ISSUER, f.issuer.clone());
    o.set(CKA_SERIAL_NUMBER, f.serial.clone());
    o.set(CKA_LABEL, label.as_bytes().to_vec());
    o.set(CKA_ID, id.to_vec());
    o.set(CKA_TRUSTED, b(false));
    o.set(CKA_CERTIFICATE_CATEGORY, ul(if authority { 2 } else { 0 }));
    o.set(CKA_PUBLIC_KEY_INFO, f.spki.clone());
    o.set(CKA_CHECK_VALUE, Vec::new());
    o.set(CKA_START_DATE, Vec::new());
    o.set(CKA_END_DATE, Vec::new());
    Some((o, f))
}

/// Reads every object from the card, each key's `CExx` right after its
/// PrKD (one PC/SC transaction, caller's): what the fuzz targets and the
/// trace tests read; the module reads [`load_directory`].
#[cfg(any(test, feature = "fuzzing"))]
pub fn load(link: &mut dyn Link) -> Result<Vec<Object>> {
    load_objects(link, true)
}

/// Reads the directory: ENUMERATE, each key's PrKD, the certificate and
/// data descriptions and their files. A key's `CExx` is read only when its
/// PrKD does not tell its size; the other keys stay unresolved
/// ([`Object::unresolved`]).
pub fn load_directory(link: &mut dyn Link) -> Result<Vec<Object>> {
    load_objects(link, false)
}

fn load_objects(link: &mut dyn Link, eager: bool) -> Result<Vec<Object>> {
    let fids = Card::new(link).enumerate()?;
    let mut out = Vec::new();
    for &f in &fids {
        let (prefix, id8) = ((f >> 8) as u8, f as u8);
        match prefix {
            // Key 0 is the device key: it signs the requests of new keys
            // and stands for the device (docs/protocol.md §3.3), no key an
            // application may use, so the module lists no object for it.
            // OpenSC does list it, from its PrKD `C400`.
            0xCC if id8 != 0 => {
                let desc_fid = 0xC400 | id8 as u16;
                let Some(desc) = Card::new(link)
                    .read_ef(desc_fid)?
                    .and_then(|d| pkcs15::PrivateKeyDesc::parse(&d).ok())
                else {
                    log::info!(
                        "key {f:04X} has no readable description {desc_fid:04X}: not listed"
                    );
                    continue;
                };
                let info = prkd_info(&desc).unwrap_or(KeyInfo::Rsa(0));
                let mut prv = directory_key(f, desc_fid, &desc, info);
                if eager || prkd_info(&desc).is_none() {
                    let ce = Card::new(link).read_ef(0xCE00 | id8 as u16)?;
                    let Some((cert, publ)) = resolve_key(&mut prv, ce.as_deref()) else {
                        continue;
                    };
                    out.extend(cert);
                    out.push(prv);
                    out.push(publ);
                } else {
                    out.push(prv);
                }
            }
            0xC8 => {
                let Some(desc) = Card::new(link)
                    .read_ef(f)?
                    .and_then(|d| pkcs15::CertDesc::parse(&d).ok())
                else {
                    log::info!("certificate description {f:04X} does not parse: skipped");
                    continue;
                };
                let Some(der) = Card::new(link).read_ef(desc.fid)? else {
                    log::info!(
                        "certificate {:04X} of description {f:04X} is missing: skipped",
                        desc.fid
                    );
                    continue;
                };
                match cert_object(
                    desc.fid,
                    Some(f),
                    &der,
                    &desc.label,
                    &desc.id,
                    desc.authority,
                ) {
                    Some((o, _)) => out.push(o),
                    None => log::warn!(
                        "certificate {:04X} is not a complete X.509 certificate (a write cut short?): skipped",
                        desc.fid
                    ),
                }
            }
            0xC9 => {
                let Some(desc) = Card::new(link)
                    .read_ef(f)?
                    .and_then(|d| pkcs15::DataDesc::parse(&d).ok())
                else {
                    continue;
                };
                let value = if desc.private {
                    None
                } else {
                    let Some(v) = Card::new(link).read_ef(desc.fid)? else {
                        log::info!(
                            "data object {:04X} of description {f:04X} is missing: skipped",
                            desc.fid
                        );
                        continue;
                    };
                    Some(v)
                };
                let mut o = Object::new(Class::Data, desc.fid, Some(f), desc.private);
                o.set(CKA_LABEL, desc.label.as_bytes().to_vec());
                o.set(CKA_APPLICATION, desc.app_label.as_bytes().to_vec());
                o.set(
                    CKA_OBJECT_ID,
                    desc.app_oid
                        .clone()
                        .map(|v| picohsm_wire::tlv::encode(0x06, &v))
                        .unwrap_or_default(),
                );
                if let Some(v) = value {
                    o.set(CKA_VALUE, v);
                }
                out.push(o);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Reads the value of a private data object (after login).
pub fn load_private_value(link: &mut dyn Link, o: &mut Object) -> Result<()> {
    if o.class == Class::Data && o.private && !o.attrs.contains_key(&CKA_VALUE) {
        o.set(
            CKA_VALUE,
            Card::new(link).read_ef(o.fid)?.unwrap_or_default(),
        );
    }
    Ok(())
}
