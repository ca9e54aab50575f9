//! PKCS#15 (ISO 7816-15) object descriptions as OpenSC's SmartCard-HSM
//! emulation keeps them on the card (docs/protocol.md §3.1, §7.1):
//!
//! * `C4xx` — private key description ([`PrivateKeyDesc`]) of key `CCxx`;
//! * `C8xx` — certificate description ([`CertDesc`]) of CA certificate `CAxx`;
//! * `C9xx` — data object description ([`DataDesc`]) of `CDxx` (private) or
//!   `CFxx` (public).
//!
//! Every description is one PKCS#15 object:
//!
//! ```text
//! <choice tag> {
//!     30 CommonObjectAttributes { 0C label?, 03 flags?, 04 authId?, ... }
//!     30 class attributes (CommonKeyAttributes / CommonCertificateAttributes /
//!                          CommonDataObjectAttributes)
//!     A0 subclass attributes?                      (skipped when read)
//!     A1 type attributes { ... Path ... }
//! }
//! ```
//!
//! The encoders write exactly the fields OpenSC's encoder writes for the
//! sc-hsm card (OpenSC `src/libopensc/asn1.c` `asn1_encode_p15_object`,
//! `pkcs15-prkey.c` `sc_pkcs15_encode_prkdf_entry`, `pkcs15-cert.c`
//! `sc_pkcs15_encode_cdf_entry`, `pkcs15-data.c` `sc_pkcs15_encode_dodf_entry`,
//! called from `src/pkcs15init/pkcs15-sc-hsm.c`): empty label / zero flags /
//! empty authId are left out, bit strings are as short as their highest set
//! bit, integers are minimal. The parsers accept everything OpenSC's decoder
//! accepts for these objects and skip optional fields the structs do not
//! carry; those are lost on re-encoding (listed on each `encode`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::tlv;

/// A PKCS#15 description that could not be parsed or is of a kind this
/// module does not handle (for example a secret-key description, `A8`).
pub type Pkcs15Error = tlv::DecodeError;

const fn err(what: &'static str) -> Pkcs15Error {
    tlv::DecodeError::new("PKCS#15 description", what)
}

type Result<T> = core::result::Result<T, Pkcs15Error>;

// ---------------------------------------------------------------------------
// KeyUsageFlags (ISO 7816-15 / PKCS#15 v1.1, bit 0 = first bit of the BIT
// STRING; same numbering as OpenSC's SC_PKCS15_PRKEY_USAGE_* in pkcs15.h).

/// KeyUsageFlags bit 0: `encrypt`.
pub const USAGE_ENCRYPT: u32 = 1 << 0;
/// KeyUsageFlags bit 1: `decrypt`.
pub const USAGE_DECRYPT: u32 = 1 << 1;
/// KeyUsageFlags bit 2: `sign`.
pub const USAGE_SIGN: u32 = 1 << 2;
/// KeyUsageFlags bit 3: `signRecover`.
pub const USAGE_SIGN_RECOVER: u32 = 1 << 3;
/// KeyUsageFlags bit 4: `wrap`.
pub const USAGE_WRAP: u32 = 1 << 4;
/// KeyUsageFlags bit 5: `unwrap`.
pub const USAGE_UNWRAP: u32 = 1 << 5;
/// KeyUsageFlags bit 6: `verify`.
pub const USAGE_VERIFY: u32 = 1 << 6;
/// KeyUsageFlags bit 7: `verifyRecover`.
pub const USAGE_VERIFY_RECOVER: u32 = 1 << 7;
/// KeyUsageFlags bit 8: `derive`.
pub const USAGE_DERIVE: u32 = 1 << 8;
/// KeyUsageFlags bit 9: `nonRepudiation`.
pub const USAGE_NON_REPUDIATION: u32 = 1 << 9;

/// CommonObjectFlags bit 0: `private`.
pub const FLAG_PRIVATE: u32 = 1 << 0;
/// CommonObjectFlags bit 1: `modifiable`.
pub const FLAG_MODIFIABLE: u32 = 1 << 1;

// Outer tags of the private key CHOICE (PrivateKeyType).
const TAG_PRKEY_RSA: u16 = 0x30;
const TAG_PRKEY_EC: u16 = 0xA0;
/// AES keys get an `A8` description on the SmartCard-HSM (not a private key).
const TAG_SECRET_KEY_AES: u16 = 0xA8;

/// The algorithm of a private key description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `privateRSAKey`: the description is a `30` SEQUENCE.
    Rsa,
    /// `privateECKey`: the description is `A0` (`[0] IMPLICIT`).
    Ec,
}

/// A private key description (`C4xx`), PKCS#15 `PrivateKeyObject`.
///
/// OpenSC's sc-hsm emulation (`libopensc/pkcs15-sc-hsm.c`,
/// `sc_pkcs15emu_sc_hsm_add_prkd`) overrides some of these when it reads
/// the card: it sets authId = `01` and the `private` flag on every key and
/// takes the key reference from the FID, not from the description. It
/// ignores `C400` (the device key) entirely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateKeyDesc {
    /// CommonObjectAttributes.label (empty if absent).
    pub label: String,
    /// CommonKeyAttributes.iD (CKA_ID).
    pub id: Vec<u8>,
    /// CommonKeyAttributes.usage: KeyUsageFlags, bit 0 = `encrypt`
    /// (see the `USAGE_*` constants).
    pub usage: u32,
    /// RSA (`30`) or EC (`A0`).
    pub kind: KeyKind,
    /// RSA modulusLength / EC fieldSize in bits (0 if an EC description
    /// does not carry fieldSize).
    pub key_bits: usize,
    /// CommonKeyAttributes.keyReference (the SmartCard-HSM key id).
    pub key_reference: Option<u8>,
    /// CommonObjectAttributes.authId (`None` if absent or empty).
    pub auth_id: Option<Vec<u8>>,
    /// CommonObjectAttributes.flags `private`.
    pub private: bool,
    /// CommonObjectAttributes.flags `modifiable`.
    pub modifiable: bool,
}

impl PrivateKeyDesc {
    /// Parses a PrKD as OpenSC, our firmware (`prkd()`) or the device
    /// (`C400`) wrote it. Bytes after the description are ignored (OpenSC
    /// decodes the first object of the file).
    pub fn parse(data: &[u8]) -> Result<Self> {
        let (outer, _) = tlv::parse_one(data).map_err(|_| err("bad TLV"))?;
        let kind = match outer.tag {
            TAG_PRKEY_RSA => KeyKind::Rsa,
            TAG_PRKEY_EC => KeyKind::Ec,
            TAG_SECRET_KEY_AES => {
                return Err(err("secret key description (A8), not a private key"))
            }
            _ => return Err(err("unsupported private key type")),
        };
        let obj = P15Object::parse(outer.value)?;
        let common = CommonAttrs::parse(obj.common)?;

        // CommonKeyAttributes: iD, usage, native?, accessFlags?,
        // keyReference?, algReference [1]? (in this order).
        let (id, items) = obj.class_id("key without iD")?;
        let mut it = items.iter();
        let usage = match it.next() {
            Some(t) if t.tag == 0x03 => decode_bit_field(t.value)?,
            _ => return Err(err("key without usage")),
        };
        let mut key_reference = None;
        for t in it {
            if t.tag == 0x02 {
                let v = decode_uint(t.value)?;
                key_reference = Some(u8::try_from(v).map_err(|_| err("keyReference > 255"))?);
                break;
            }
        }

        // typeAttributes [1] { Private{RSA,EC}KeyAttributes SEQUENCE {
        //     value Path, modulusLength / fieldSize INTEGER, ... } }
        let attrs = single(obj.type_attrs, 0x30, "type attributes")?;
        let items = elements(attrs)?;
        let mut it = items.iter();
        match it.next() {
            Some(t) if t.tag == 0x30 => {}
            _ => return Err(err("key without value path")),
        }
        let key_bits = match it.next() {
            Some(t) if t.tag == 0x02 => decode_uint(t.value)? as usize,
            _ if kind == KeyKind::Ec => 0,
            _ => return Err(err("RSA key without modulusLength")),
        };

        Ok(PrivateKeyDesc {
            label: common.label,
            id,
            usage,
            kind,
            key_bits,
            key_reference,
            auth_id: common.auth_id,
            private: common.flags & FLAG_PRIVATE != 0,
            modifiable: common.flags & FLAG_MODIFIABLE != 0,
        })
    }

    /// Encodes the PrKD the way OpenSC's sc-hsm pkcs15init writes it after
    /// key generation (`sc_hsm_emu_update_prkd` → `sc_pkcs15_encode_prkdf_entry`):
    ///
    /// ```text
    /// A0|30 { 30 { 0C label?, 03 flags?, 04 authId? }
    ///         30 { 04 iD, 03 usage, 02 keyReference? }
    ///         A1 { 30 { 30 { 04 00 }, 02 bits } } }
    /// ```
    ///
    /// Not reproduced (parsed and dropped): `native FALSE`, accessFlags,
    /// algReference, userConsent, accessControlRules, the CommonPrivateKey
    /// subclass (`A0`, subjectName), a non-empty key path, RSA keyInfo and
    /// EC keyInfo/ecDomain. An empty label is left out (OpenSC does the same),
    /// so our firmware's default PrKD with `0C 00` comes back two bytes shorter.
    pub fn encode(&self) -> Vec<u8> {
        let flags = flags_of(self.private, self.modifiable);
        let common = encode_common(&self.label, flags, self.auth_id.as_deref());

        let mut class = Vec::new();
        tlv::push(&mut class, 0x04, &self.id);
        tlv::push(&mut class, 0x03, &encode_bit_field(self.usage));
        if let Some(r) = self.key_reference {
            tlv::push(&mut class, 0x02, &encode_uint(r as u64));
        }

        // Path with an empty efidOrPath (OpenSC keeps no path for sc-hsm keys).
        let mut attrs = tlv::encode(0x30, &tlv::encode(0x04, &[]));
        tlv::push(&mut attrs, 0x02, &encode_uint(self.key_bits as u64));
        let type_attrs = tlv::encode(0x30, &attrs);

        let tag = match self.kind {
            KeyKind::Rsa => TAG_PRKEY_RSA,
            KeyKind::Ec => TAG_PRKEY_EC,
        };
        encode_object(tag, &common, &class, &type_attrs)
    }
}

/// The private key description the card writes itself for a key it
/// generates or unwraps (docs/protocol.md §7.1): label (written even when
/// empty, as the upstream firmware does), iD, the usage of its kind
/// (EC: sign and derive; RSA: decrypt, sign, signRecover, unwrap), the
/// key size; no flags, authId or key reference. OpenSC replaces it with
/// its own after key generation.
pub fn card_default_prkd(kind: KeyKind, label: &[u8], id: &[u8], bits: usize) -> Vec<u8> {
    let usage = match kind {
        KeyKind::Ec => USAGE_SIGN | USAGE_DERIVE,
        KeyKind::Rsa => USAGE_DECRYPT | USAGE_SIGN | USAGE_SIGN_RECOVER | USAGE_UNWRAP,
    };
    let common = tlv::encode(0x0C, label);
    let mut class = Vec::new();
    tlv::push(&mut class, 0x04, id);
    tlv::push(&mut class, 0x03, &encode_bit_field(usage));
    let mut attrs = tlv::encode(0x30, &tlv::encode(0x04, &[]));
    tlv::push(&mut attrs, 0x02, &encode_uint(bits as u64));
    let tag = match kind {
        KeyKind::Rsa => TAG_PRKEY_RSA,
        KeyKind::Ec => TAG_PRKEY_EC,
    };
    encode_object(tag, &common, &class, &tlv::encode(0x30, &attrs))
}

/// A certificate description (`C8xx`), PKCS#15 `CertificateObject`
/// (x509Certificate) for a certificate stored in `CAxx` (certificates of a
/// key, `CExx`, have no description: OpenSC derives them from the PrKD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDesc {
    /// CommonObjectAttributes.label (empty if absent).
    pub label: String,
    /// CommonCertificateAttributes.iD.
    pub id: Vec<u8>,
    /// CommonCertificateAttributes.authority (a CA certificate).
    pub authority: bool,
    /// The FID of the certificate: the last two bytes of the value Path.
    pub fid: u16,
}

impl CertDesc {
    /// Parses a CD. The certificate must be referenced by a Path (OpenSC's
    /// sc-hsm code never writes the `direct` `[0]` form).
    pub fn parse(data: &[u8]) -> Result<Self> {
        let (outer, _) = tlv::parse_one(data).map_err(|_| err("bad TLV"))?;
        if outer.tag != 0x30 {
            return Err(err("not an X.509 certificate description"));
        }
        let obj = P15Object::parse(outer.value)?;
        let common = CommonAttrs::parse(obj.common)?;

        // CommonCertificateAttributes: iD, authority BOOLEAN?, identifier?, ...
        let (id, items) = obj.class_id("certificate without iD")?;
        let mut it = items.iter();
        let authority = match it.next() {
            Some(t) if t.tag == 0x01 => decode_bool(t.value)?,
            _ => false,
        };

        // typeAttributes [1] { X509CertificateAttributes SEQUENCE { value Path, ... } }
        let attrs = single(obj.type_attrs, 0x30, "type attributes")?;
        let value = elements(attrs)?
            .first()
            .copied()
            .ok_or(err("certificate without value"))?;
        if value.tag != 0x30 {
            return Err(err("certificate value is not a path"));
        }
        let fid = decode_path_fid(value.value)?;
        Ok(CertDesc {
            label: common.label,
            id,
            authority,
            fid,
        })
    }

    /// Encodes the CD the way OpenSC writes `C8xx` (`sc_hsm_emu_update_cd` →
    /// `sc_pkcs15_encode_cdf_entry`), with the flags pkcs15init gives every
    /// certificate (`modifiable`):
    ///
    /// ```text
    /// 30 { 30 { 0C label?, 03 02 06 40 }
    ///      30 { 04 iD, 01 01 FF? }
    ///      A1 { 30 { 30 { 04 02 fid } } } }
    /// ```
    ///
    /// Not reproduced: other object flags, authId, the credential
    /// identifier and any longer path (only the FID is kept).
    pub fn encode(&self) -> Vec<u8> {
        let common = encode_common(&self.label, FLAG_MODIFIABLE, None);
        let mut class = Vec::new();
        tlv::push(&mut class, 0x04, &self.id);
        if self.authority {
            tlv::push(&mut class, 0x01, &[0xFF]);
        }
        let type_attrs = tlv::encode(0x30, &encode_path(self.fid));
        encode_object(0x30, &common, &class, &type_attrs)
    }
}

/// A data object description (`C9xx`), PKCS#15 `DataObject` (opaqueDO) for
/// a data object in `CDxx` (private) or `CFxx` (public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDesc {
    /// CommonObjectAttributes.label (CKA_LABEL; empty if absent).
    pub label: String,
    /// CommonDataObjectAttributes.applicationName (CKA_APPLICATION; empty
    /// if absent).
    pub app_label: String,
    /// CommonDataObjectAttributes.applicationOID: the content octets of the
    /// OBJECT IDENTIFIER (no `06 len`), i.e. CKA_OBJECT_ID without its header.
    pub app_oid: Option<Vec<u8>>,
    /// The FID of the data: the last two bytes of the Path.
    pub fid: u16,
    /// CommonObjectAttributes.flags `private`.
    pub private: bool,
    /// CommonObjectAttributes.authId (`None` if absent or empty).
    pub auth_id: Option<Vec<u8>>,
}

impl DataDesc {
    /// Parses a DCOD entry.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let (outer, _) = tlv::parse_one(data).map_err(|_| err("bad TLV"))?;
        if outer.tag != 0x30 {
            return Err(err("not an opaque data object description"));
        }
        let obj = P15Object::parse(outer.value)?;
        let common = CommonAttrs::parse(obj.common)?;

        // CommonDataObjectAttributes: applicationName UTF8String?,
        // applicationOID OBJECT IDENTIFIER?
        let mut app_label = String::new();
        let mut app_oid = None;
        for t in elements(obj.class)? {
            match t.tag {
                0x0C if app_label.is_empty() => app_label = utf8(t.value),
                0x06 if app_oid.is_none() => {
                    if !valid_oid(t.value) {
                        return Err(err("bad applicationOID"));
                    }
                    app_oid = Some(t.value.to_vec());
                }
                _ => {}
            }
        }

        // typeAttributes [1] { Path } (OpenSC puts the path directly in [1]).
        let path = single(obj.type_attrs, 0x30, "data object path")?;
        let fid = decode_path_fid(path)?;
        Ok(DataDesc {
            label: common.label,
            app_label,
            app_oid,
            fid,
            private: common.flags & FLAG_PRIVATE != 0,
            auth_id: common.auth_id,
        })
    }

    /// Encodes the DCOD the way OpenSC writes `C9xx`
    /// (`sc_hsm_emu_update_dcod` → `sc_pkcs15_encode_dodf_entry`), with the
    /// flags pkcs15init gives data objects (`modifiable`, plus `private`):
    ///
    /// ```text
    /// 30 { 30 { 0C label?, 03 02 06 40|C0, 04 authId? }
    ///      30 { 0C applicationName?, 06 applicationOID? }
    ///      A1 { 30 { 04 02 fid } } }
    /// ```
    ///
    /// Not reproduced: other object flags, userConsent, accessControlRules
    /// and any longer path (only the FID is kept).
    pub fn encode(&self) -> Vec<u8> {
        let flags = flags_of(self.private, true);
        let common = encode_common(&self.label, flags, self.auth_id.as_deref());
        let mut class = Vec::new();
        if !self.app_label.is_empty() {
            tlv::push(&mut class, 0x0C, self.app_label.as_bytes());
        }
        if let Some(oid) = &self.app_oid {
            tlv::push(&mut class, 0x06, oid);
        }
        encode_object(0x30, &common, &class, &encode_path(self.fid))
    }
}

// ---------------------------------------------------------------------------
// Shared structure.

/// The parts of a PKCS#15 object (OpenSC `c_asn1_p15_obj`): the contents of
/// commonObjectAttributes, classAttributes and typeAttributes.
struct P15Object<'a> {
    common: &'a [u8],
    class: &'a [u8],
    type_attrs: &'a [u8],
}

impl<'a> P15Object<'a> {
    /// The class attributes' leading iD (`what` when missing) and the
    /// items after it.
    fn class_id(&self, what: &'static str) -> Result<(Vec<u8>, Vec<tlv::Tlv<'a>>)> {
        let mut items = elements(self.class)?;
        match items.first() {
            Some(t) if t.tag == 0x04 => {
                let id = t.value.to_vec();
                items.remove(0);
                Ok((id, items))
            }
            _ => Err(err(what)),
        }
    }

    fn parse(body: &'a [u8]) -> Result<Self> {
        let items = elements(body)?;
        let mut it = items.iter();
        let common = match it.next() {
            Some(t) if t.tag == 0x30 => t.value,
            _ => return Err(err("missing commonObjectAttributes")),
        };
        let class = match it.next() {
            Some(t) if t.tag == 0x30 => t.value,
            _ => return Err(err("missing class attributes")),
        };
        let mut next = it.next();
        if matches!(next, Some(t) if t.tag == 0xA0) {
            // subClassAttributes: not used here.
            next = it.next();
        }
        let type_attrs = match next {
            Some(t) if t.tag == 0xA1 => t.value,
            _ => return Err(err("missing type attributes")),
        };
        Ok(P15Object {
            common,
            class,
            type_attrs,
        })
    }
}

/// CommonObjectAttributes: label, flags, authId (userConsent and
/// accessControlRules are skipped).
struct CommonAttrs {
    label: String,
    flags: u32,
    auth_id: Option<Vec<u8>>,
}

impl CommonAttrs {
    fn parse(body: &[u8]) -> Result<Self> {
        let mut out = CommonAttrs {
            label: String::new(),
            flags: 0,
            auth_id: None,
        };
        let (mut seen_label, mut seen_flags, mut seen_auth) = (false, false, false);
        for t in elements(body)? {
            match t.tag {
                0x0C if !seen_label => {
                    seen_label = true;
                    out.label = utf8(t.value);
                }
                0x03 if !seen_flags => {
                    seen_flags = true;
                    out.flags = decode_bit_field(t.value)?;
                }
                0x04 if !seen_auth => {
                    seen_auth = true;
                    if !t.value.is_empty() {
                        out.auth_id = Some(t.value.to_vec());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A description whose label (and iD, where it has one) can be rewritten:
/// what C_SetAttributeValue changes on the card.
pub trait Description: Sized {
    /// Parses the description file.
    fn decode(data: &[u8]) -> Result<Self>;
    /// The description file.
    fn to_bytes(&self) -> Vec<u8>;
    /// Sets the label and the iD (a data object has none: its `id` is
    /// ignored).
    fn relabel(&mut self, label: Option<&str>, id: Option<&[u8]>);
}

macro_rules! description {
    ($t:ty $(, $id:ident)?) => {
        impl Description for $t {
            fn decode(data: &[u8]) -> Result<Self> {
                <$t>::parse(data)
            }
            fn to_bytes(&self) -> Vec<u8> {
                self.encode()
            }
            fn relabel(&mut self, label: Option<&str>, _id: Option<&[u8]>) {
                if let Some(l) = label {
                    self.label = l.into();
                }
                $(if let Some(i) = _id {
                    self.$id = i.to_vec();
                })?
            }
        }
    };
}

description!(PrivateKeyDesc, id);
description!(CertDesc, id);
description!(DataDesc);

fn elements(body: &[u8]) -> Result<Vec<tlv::Tlv<'_>>> {
    tlv::parse_all(body).map_err(|_| err("bad TLV"))
}

/// The value of the first element of `body`, which must have `tag`.
fn single<'a>(body: &'a [u8], tag: u16, what: &'static str) -> Result<&'a [u8]> {
    match tlv::parse_one(body) {
        Ok((t, _)) if t.tag == tag => Ok(t.value),
        Ok(_) => Err(err(what)),
        Err(_) => Err(err("bad TLV")),
    }
}

fn encode_object(tag: u16, common: &[u8], class: &[u8], type_attrs: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(common.len() + class.len() + type_attrs.len() + 12);
    tlv::push(&mut body, 0x30, common);
    tlv::push(&mut body, 0x30, class);
    tlv::push(&mut body, 0xA1, type_attrs);
    tlv::encode(tag, &body)
}

fn encode_common(label: &str, flags: u32, auth_id: Option<&[u8]>) -> Vec<u8> {
    let mut c = Vec::new();
    if !label.is_empty() {
        tlv::push(&mut c, 0x0C, label.as_bytes());
    }
    if flags != 0 {
        tlv::push(&mut c, 0x03, &encode_bit_field(flags));
    }
    if let Some(a) = auth_id.filter(|a| !a.is_empty()) {
        tlv::push(&mut c, 0x04, a);
    }
    c
}

fn flags_of(private: bool, modifiable: bool) -> u32 {
    (if private { FLAG_PRIVATE } else { 0 }) | (if modifiable { FLAG_MODIFIABLE } else { 0 })
}

/// `30 { 04 02 fid }` (a file-id path; OpenSC writes no index/length when
/// the path has no count).
fn encode_path(fid: u16) -> Vec<u8> {
    tlv::encode(0x30, &tlv::encode(0x04, &fid.to_be_bytes()))
}

/// The FID in a Path { efidOrPath OCTET STRING, index?, length? }: its
/// last two bytes.
fn decode_path_fid(path: &[u8]) -> Result<u16> {
    let p = match tlv::parse_one(path) {
        Ok((t, _)) if t.tag == 0x04 => t.value,
        Ok(_) => return Err(err("path without efidOrPath")),
        Err(_) => return Err(err("bad TLV")),
    };
    match p {
        [.., hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(err("path shorter than a FID")),
    }
}

/// OpenSC stores labels as bytes; invalid UTF-8 is replaced rather than
/// losing the object.
fn utf8(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn valid_oid(v: &[u8]) -> bool {
    matches!(v.last(), Some(b) if b & 0x80 == 0)
}

fn decode_bool(v: &[u8]) -> Result<bool> {
    match v {
        [b] => Ok(*b != 0),
        _ => Err(err("bad BOOLEAN")),
    }
}

/// A non-negative INTEGER (leading zero bytes tolerated, as OpenSC does).
fn decode_uint(v: &[u8]) -> Result<u32> {
    if v.is_empty() || v[0] & 0x80 != 0 {
        return Err(err("bad or negative INTEGER"));
    }
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let mag = &v[first..];
    if mag.len() > 4 {
        return Err(err("INTEGER too large"));
    }
    Ok(mag.iter().fold(0u32, |a, &b| (a << 8) | b as u32))
}

/// Minimal DER content octets of a non-negative INTEGER.
fn encode_uint(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut out = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[first..]);
    out
}

/// A BIT STRING (content octets: unused-bit count, then the bits) as a
/// bit field: the string's first bit is bit 0 of the result. At most 32
/// bits, like OpenSC's `decode_bit_field`; padding bits are ignored.
fn decode_bit_field(v: &[u8]) -> Result<u32> {
    let (&unused, bits) = v.split_first().ok_or(err("empty BIT STRING"))?;
    if unused > 7 || (bits.is_empty() && unused != 0) {
        return Err(err("bad BIT STRING"));
    }
    if bits.len() > 4 {
        return Err(err("BIT STRING longer than 32 bits"));
    }
    let n = bits.len() * 8 - unused as usize;
    let mut out = 0u32;
    for i in 0..n {
        if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
            out |= 1 << i;
        }
    }
    Ok(out)
}

/// The BIT STRING content of a bit field, as short as its highest set bit
/// (OpenSC `encode_bit_field`): `07 30 80` for sign|signRecover|derive,
/// `00` for no bits.
fn encode_bit_field(v: u32) -> Vec<u8> {
    let nbits = (32 - v.leading_zeros()) as usize;
    let nbytes = nbits.div_ceil(8);
    let mut out = alloc::vec![(nbytes * 8 - nbits) as u8];
    for byte in 0..nbytes {
        let mut b = 0u8;
        for bit in 0..8 {
            let i = byte * 8 + bit;
            if i < nbits && v & (1 << i) != 0 {
                b |= 0x80 >> bit;
            }
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
#[path = "pkcs15_tests_data.rs"]
mod tests;
