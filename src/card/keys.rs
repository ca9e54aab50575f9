//! Key commands (docs/protocol.md §7.1-§7.3): key generation laid out as
//! OpenSC lays it out, SIGN, DECIPHER, ECDH, GET CHALLENGE, and the key
//! listing `picohsm-tool` shows.

use picohsm_wire::cmd::key;
use picohsm_wire::cmd::Cmd;
use picohsm_wire::codes::fid;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, AuthRequest, Cvc};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use sha1::{Digest, Sha1};

use super::pkcs15::{self, PrivateKeyDesc};
use super::{Card, CardError, CardResult};

/// The CAR OpenSC puts in its key-generation template (docs/protocol.md
/// §7.1); the module's C_GenerateKeyPair sends it too, so OpenSC and this
/// module make the same requests.
pub const OPENSC_CAR: &[u8] = b"UTCA00001";

/// The FID of key `key_ref`'s file of type `prefix` (`CC`, `C4`, `CE`...).
pub fn key_fid(prefix: u8, key_ref: u8) -> u16 {
    u16::from_be_bytes([prefix, key_ref])
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// An EC key on this curve.
    Ec(Curve),
    /// An RSA key of `bits` (1024..4096) with public exponent `exponent`.
    Rsa {
        /// Modulus size.
        bits: usize,
        /// Public exponent, big-endian.
        exponent: Vec<u8>,
    },
}

impl KeySpec {
    /// RSA with the exponent 65537.
    pub fn rsa(bits: usize) -> KeySpec {
        KeySpec::Rsa {
            bits,
            exponent: vec![0x01, 0x00, 0x01],
        }
    }
}

/// The GENERATE ASYMMETRIC KEY PAIR data: profile `00`, `car`, the public
/// key template of `spec`, `chr` (docs/protocol.md §7.1), in the order
/// OpenSC sends them.
pub fn keygen_template(spec: &KeySpec, car: &[u8], chr: &[u8]) -> Vec<u8> {
    let key = match spec {
        KeySpec::Ec(c) => cvc::ec_keygen_template(oid::ECDSA_SHA256, *c),
        KeySpec::Rsa { bits, exponent } => {
            cvc::rsa_keygen_template(oid::RSA_V15_SHA256, *bits as u16, exponent)
        }
    };
    let mut v = Vec::new();
    tlv::push(&mut v, cvc::TAG_PROFILE, &[0x00]);
    tlv::push(&mut v, cvc::TAG_CAR, car);
    tlv::push(&mut v, cvc::TAG_PUBKEY, &key);
    tlv::push(&mut v, cvc::TAG_CHR, chr);
    v
}

/// OpenSC's default ("mozilla") intrinsic id of a public key: SHA-1 of the
/// RSA modulus as the card gave it.
pub fn intrinsic_id_rsa(modulus: &[u8]) -> Vec<u8> {
    Sha1::digest(modulus).to_vec()
}

/// See [`intrinsic_id_rsa`]: for EC, SHA-1 of the X coordinate of an
/// uncompressed point (`point[1 .. 1 + (len-1)/2]`).
pub fn intrinsic_id_ec(point: &[u8]) -> Vec<u8> {
    let half = point.len().saturating_sub(1) / 2;
    Sha1::digest(point.get(1..1 + half).unwrap_or_default()).to_vec()
}

/// A key made by [`Card::generate_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// Its reference on the card.
    pub key_ref: u8,
    /// Its CKA_ID (the PrKD's).
    pub id: Vec<u8>,
    /// The CHR of its request (what PKA registers it under).
    pub chr: Vec<u8>,
    /// The authenticated request the card answered (docs/protocol.md §6.2).
    pub request: Vec<u8>,
}

/// One key of the card, as OpenSC would list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key reference (`CCxx`).
    pub key_ref: u8,
    /// The PrKD label (`C4xx`), empty if none.
    pub label: String,
    /// The PrKD CKA_ID.
    pub id: Vec<u8>,
    /// The CHR of the request in `CExx`, if it holds one.
    pub chr: Option<Vec<u8>>,
    /// "EC secp256r1", "RSA 2048", or what the PrKD tells.
    pub kind: String,
}

fn describe_key(cert: &Cvc<'_>) -> String {
    if oid::is_ec(cert.algorithm) {
        match cert
            .key_field(cvc::KEY_MODULUS_OR_PRIME)
            .and_then(Curve::from_prime)
        {
            Some(c) => format!("EC {}", c.name()),
            None => "EC".into(),
        }
    } else if oid::is_rsa(cert.algorithm) {
        let bits = cert.key_field(cvc::KEY_MODULUS_OR_PRIME).map_or(0, |m| {
            let z = m.iter().take_while(|b| **b == 0).count();
            (m.len() - z) * 8
        });
        format!("RSA {bits}")
    } else {
        "unknown".into()
    }
}

impl Card<'_> {
    /// SIGN with key `key_ref` and algorithm byte `algorithm`.
    pub fn sign(&mut self, key_ref: u8, algorithm: u8, data: &[u8]) -> CardResult<Vec<u8>> {
        self.ok(&key::sign(key_ref, algorithm, data))
    }

    /// DECIPHER with key `key_ref` and algorithm byte `algorithm`. A
    /// ciphertext the card refuses is CKR_ENCRYPTED_DATA_INVALID.
    pub fn decipher(&mut self, key_ref: u8, algorithm: u8, data: &[u8]) -> CardResult<Vec<u8>> {
        self.ok(&key::decipher(key_ref, algorithm, data))
    }

    /// ECDH of key `key_ref` with the peer's uncompressed point: the shared
    /// X coordinate (the card's leading `04` removed). A point the card
    /// refuses is CKR_MECHANISM_PARAM_INVALID.
    pub fn ecdh(&mut self, key_ref: u8, point: &[u8]) -> CardResult<Vec<u8>> {
        let mut d = self.ok(&key::ecdh(key_ref, point))?;
        if d.first() != Some(&key::UNCOMPRESSED_POINT) {
            return Err(CardError::Malformed {
                command: Cmd::Ecdh,
                what: "ECDH answer without 04",
            });
        }
        d.remove(0);
        Ok(d)
    }

    /// GET CHALLENGE of `n` bytes, in as many commands as it takes.
    pub fn challenge(&mut self, n: usize) -> CardResult<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = (n - out.len()).min(256);
            let d = self.ok(&key::get_challenge(k))?;
            if d.is_empty() {
                return Err(CardError::Malformed {
                    command: Cmd::GetChallenge,
                    what: "empty challenge",
                });
            }
            out.extend_from_slice(&d[..d.len().min(k)]);
        }
        Ok(out)
    }

    /// The first key reference (1..=255) with no key file.
    pub fn free_key_ref(&mut self) -> CardResult<u8> {
        let used = self.enumerate()?;
        (1..=255u8)
            .find(|i| !used.contains(&key_fid(fid::KEY_PREFIX, *i)))
            .ok_or(CardError::Status {
                command: Cmd::Generate,
                sw: StatusWord::FILE_FULL,
            })
    }

    /// Key generation as OpenSC's sc-hsm driver does it (docs/protocol.md
    /// §7.1): GENERATE ASYMMETRIC KEY PAIR into the first free key
    /// reference with the template `car` / `chr`, then OpenSC's PrKD in
    /// `C4xx` (label, CKA_ID, usage), so OpenSC and this module list the
    /// key. `id` defaults to OpenSC's intrinsic id. Needs the user state
    /// and the PIN verified (6982 / 6400).
    pub fn generate_key(
        &mut self,
        spec: &KeySpec,
        car: &[u8],
        chr: &[u8],
        label: &str,
        id: Option<&[u8]>,
    ) -> CardResult<GeneratedKey> {
        let key_ref = self.free_key_ref()?;
        let template = keygen_template(spec, car, chr);
        let resp = self.ok(&key::generate(key_ref, &template))?;
        let bad = |what| CardError::Malformed {
            command: Cmd::Generate,
            what,
        };
        let req = AuthRequest::parse(&resp).map_err(|_| bad("bad key-generation response"))?;
        let (kind, key_bits, usage, intrinsic) = match spec {
            KeySpec::Ec(c) => {
                let point = req
                    .cert
                    .key_field(cvc::KEY_EC_POINT)
                    .ok_or(bad("no EC point in response"))?;
                (
                    pkcs15::KeyKind::Ec,
                    c.bits(),
                    pkcs15::USAGE_SIGN | pkcs15::USAGE_DERIVE,
                    intrinsic_id_ec(point),
                )
            }
            KeySpec::Rsa { bits, .. } => {
                let n = req
                    .cert
                    .key_field(cvc::KEY_MODULUS_OR_PRIME)
                    .ok_or(bad("no modulus in response"))?;
                (
                    pkcs15::KeyKind::Rsa,
                    *bits,
                    pkcs15::USAGE_SIGN | pkcs15::USAGE_DECRYPT,
                    intrinsic_id_rsa(n),
                )
            }
        };
        let id = id.map_or(intrinsic, <[u8]>::to_vec);
        let prkd = PrivateKeyDesc {
            label: label.to_string(),
            id: id.clone(),
            usage,
            kind,
            key_bits,
            key_reference: Some(key_ref),
            auth_id: Some(vec![1]),
            private: true,
            modifiable: true,
        };
        // The card already wrote the request to CExx; the PrKD replaces
        // its default one.
        self.write_ef(key_fid(fid::PRKD_PREFIX, key_ref), &prkd.encode())?;
        Ok(GeneratedKey {
            key_ref,
            id,
            chr: req.cert.chr.to_vec(),
            request: resp,
        })
    }

    /// The keys of the card (not the device key `CC00`), with their PrKD
    /// labels and the CHR of their request.
    pub fn keys(&mut self) -> CardResult<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for f in self.enumerate()? {
            let [prefix, id] = f.to_be_bytes();
            if prefix != fid::KEY_PREFIX || id == 0 {
                continue;
            }
            let prkd = self
                .read_ef(key_fid(fid::PRKD_PREFIX, id))?
                .and_then(|d| PrivateKeyDesc::parse(&d).ok());
            let ce = self.read_ef(key_fid(fid::EE_CERT_PREFIX, id))?;
            let (chr, kind) = match ce.as_deref() {
                Some(c) if c.first() == Some(&(cvc::TAG_AUTH_REQUEST as u8)) => {
                    match AuthRequest::parse(c) {
                        Ok(r) => (Some(r.cert.chr.to_vec()), describe_key(&r.cert)),
                        Err(_) => (None, String::new()),
                    }
                }
                _ => (None, String::new()),
            };
            let kind = if kind.is_empty() {
                match &prkd {
                    Some(p) if p.kind == pkcs15::KeyKind::Rsa => format!("RSA {}", p.key_bits),
                    Some(_) => "EC".into(),
                    None => "unknown".into(),
                }
            } else {
                kind
            };
            out.push(KeyEntry {
                key_ref: id,
                label: prkd.as_ref().map(|p| p.label.clone()).unwrap_or_default(),
                id: prkd.map(|p| p.id).unwrap_or_default(),
                chr,
                kind,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matches_the_opensc_trace() {
        // docs/protocol.md §7.1, RSA 2048: 5F29 01 00 42 09 "UTCA00001" 7F49 15 {06 0A …
        // 82 03 010001 02 02 0800} 5F20 10 "ESPICOHSMTR00001".
        let t = keygen_template(
            &KeySpec::Rsa {
                bits: 2048,
                exponent: vec![1, 0, 1],
            },
            OPENSC_CAR,
            b"ESPICOHSMTR00001",
        );
        assert_eq!(t.len(), 0x3A);
        assert_eq!(&t[..3], &[0x5F, 0x29, 0x01]);
        let k = tlv::find(&t, 0x7F49).unwrap().unwrap();
        assert_eq!(k.value.len(), 0x15);
        assert!(k
            .value
            .ends_with(&[0x82, 0x03, 1, 0, 1, 0x02, 0x02, 0x08, 0x00]));
        assert!(t.ends_with(b"ESPICOHSMTR00001"));
        // EC P-256: 7F49 81 DA.
        let t = keygen_template(&KeySpec::Ec(Curve::P256), OPENSC_CAR, b"ESPICOHSMTR00001");
        assert_eq!(tlv::find(&t, 0x7F49).unwrap().unwrap().value.len(), 0xDA);
    }

    #[test]
    fn intrinsic_ec_id_hashes_x() {
        let mut p = vec![0x04];
        p.extend_from_slice(&[0xAA; 32]);
        p.extend_from_slice(&[0xBB; 32]);
        assert_eq!(intrinsic_id_ec(&p), Sha1::digest([0xAA; 32]).to_vec());
    }
}
