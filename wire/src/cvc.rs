//! Card-verifiable certificates and authenticated requests (BSI TR-03110
//! part 3, appendix C; docs/protocol.md §3.3, §6.2, §7.1).
//!
//! A certificate is `7F21 { 7F4E body, 5F37 signature }`; the body holds the
//! profile (`5F29`), the certification authority reference (`42`, CAR), the
//! public key (`7F49`), the holder reference (`5F20`, CHR) and optionally a
//! CHAT (`7F4C`) and dates (`5F25`, `5F24`). An authenticated request is
//! `67 { 7F21 request, 42 outer CAR, 5F37 outer signature }`. Signatures are
//! plain `r || s` for ECDSA; the inner one covers the `7F4E` TLV, the outer
//! one covers the `7F21` TLV followed by the outer `42` TLV.

use alloc::vec::Vec;

use crate::tlv::{self, TlvError};

/// Tag of a CV certificate.
pub const TAG_CVC: u16 = 0x7F21;
/// Tag of the certificate body.
pub const TAG_BODY: u16 = 0x7F4E;
/// Tag of the public key template.
pub const TAG_PUBKEY: u16 = 0x7F49;
/// Tag of an authenticated request.
pub const TAG_AUTH_REQUEST: u16 = 0x67;
/// Certificate profile identifier.
pub const TAG_PROFILE: u16 = 0x5F29;
/// Certification authority reference.
pub const TAG_CAR: u16 = 0x42;
/// Certificate holder reference.
pub const TAG_CHR: u16 = 0x5F20;
/// Certificate holder authorisation template.
pub const TAG_CHAT: u16 = 0x7F4C;
/// Effective date.
pub const TAG_EFFECTIVE: u16 = 0x5F25;
/// Expiry date.
pub const TAG_EXPIRY: u16 = 0x5F24;
/// Signature.
pub const TAG_SIGNATURE: u16 = 0x5F37;
/// Public key field `81`: the RSA modulus, or the EC prime.
pub const KEY_MODULUS_OR_PRIME: u16 = 0x81;
/// Public key field `86`: the EC public point.
pub const KEY_EC_POINT: u16 = 0x86;

/// Signature algorithm OIDs (value bytes, without `06 L`) of TR-03110 §A.6.4.
pub mod oid {
    /// id-TA-RSA-v1-5-SHA-1.
    pub const RSA_V15_SHA1: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x01];
    /// id-TA-RSA-v1-5-SHA-256.
    pub const RSA_V15_SHA256: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x02];
    /// id-TA-RSA-PSS-SHA-1.
    pub const RSA_PSS_SHA1: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x03];
    /// id-TA-RSA-PSS-SHA-256.
    pub const RSA_PSS_SHA256: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x04];
    /// id-TA-RSA-v1-5-SHA-512.
    pub const RSA_V15_SHA512: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x05];
    /// id-TA-RSA-PSS-SHA-512.
    pub const RSA_PSS_SHA512: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x06];
    /// id-TA-ECDSA-SHA-1.
    pub const ECDSA_SHA1: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x01];
    /// id-TA-ECDSA-SHA-224.
    pub const ECDSA_SHA224: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x02];
    /// id-TA-ECDSA-SHA-256.
    pub const ECDSA_SHA256: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x03];
    /// id-TA-ECDSA-SHA-384.
    pub const ECDSA_SHA384: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x04];
    /// id-TA-ECDSA-SHA-512.
    pub const ECDSA_SHA512: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x05];

    /// Whether the OID names an ECDSA algorithm (otherwise RSA).
    pub fn is_ec(oid: &[u8]) -> bool {
        oid.len() == 10 && oid[..9] == ECDSA_SHA256[..9]
    }
    /// Whether the OID names an RSA algorithm.
    pub fn is_rsa(oid: &[u8]) -> bool {
        oid.len() == 10 && oid[..9] == RSA_V15_SHA256[..9]
    }
}

/// A parsed CV certificate (or certificate request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cvc<'a> {
    /// The whole `7F21` TLV.
    pub raw: &'a [u8],
    /// The whole `7F4E` TLV: the data the signature covers.
    pub body: &'a [u8],
    /// CAR, if present (requests may omit it).
    pub car: Option<&'a [u8]>,
    /// CHR.
    pub chr: &'a [u8],
    /// Value of the `7F49` public key template.
    pub public_key: &'a [u8],
    /// Algorithm OID inside the public key template (value bytes).
    pub algorithm: &'a [u8],
    /// Value of `5F37`.
    pub signature: &'a [u8],
}

impl<'a> Cvc<'a> {
    /// Parses one `7F21` certificate from the front of `input`, returning the rest.
    pub fn parse(input: &'a [u8]) -> Result<(Self, &'a [u8]), TlvError> {
        let (outer, rest) = tlv::parse_one(input)?;
        if outer.tag != TAG_CVC {
            return Err(TlvError);
        }
        Ok((Self::parse_content(outer.value, outer.raw)?, rest))
    }

    /// Parses the content of a `7F21` (`7F4E ... 5F37 ...`); `raw` is the
    /// complete `7F21` TLV it came from.
    pub fn parse_content(content: &'a [u8], raw: &'a [u8]) -> Result<Self, TlvError> {
        let (body, rest) = tlv::parse_one(content)?;
        if body.tag != TAG_BODY {
            return Err(TlvError);
        }
        let (sig, rest) = tlv::parse_one(rest)?;
        if sig.tag != TAG_SIGNATURE || !rest.is_empty() {
            return Err(TlvError);
        }
        let mut car = None;
        let mut chr = None;
        let mut pk = None;
        for t in tlv::iter(body.value) {
            let t = t?;
            match t.tag {
                TAG_CAR => car = Some(t.value),
                TAG_CHR => chr = Some(t.value),
                TAG_PUBKEY => pk = Some(t.value),
                _ => {}
            }
        }
        let public_key = pk.ok_or(TlvError)?;
        let algorithm = tlv::find(public_key, 0x06)?.ok_or(TlvError)?.value;
        Ok(Cvc {
            raw,
            body: body.raw,
            car,
            chr: chr.ok_or(TlvError)?,
            public_key,
            algorithm,
            signature: sig.value,
        })
    }

    /// A field of the public key template (`81`..`87`, `86` = EC point,
    /// `81`/`82` = RSA modulus/exponent).
    pub fn key_field(&self, tag: u16) -> Option<&'a [u8]> {
        tlv::find(self.public_key, tag)
            .ok()
            .flatten()
            .map(|t| t.value)
    }

    /// Whether CAR equals CHR (self-signed, or a request that names itself).
    pub fn is_self_described(&self) -> bool {
        self.car == Some(self.chr)
    }
}

/// Parses a concatenation of certificates (the content of EF.C_DevAut 2F02).
pub fn parse_chain(input: &[u8]) -> Result<Vec<Cvc<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (c, r) = Cvc::parse(rest)?;
        out.push(c);
        rest = r;
    }
    Ok(out)
}

/// A parsed authenticated request (docs/protocol.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    /// The inner request.
    pub cert: Cvc<'a>,
    /// The outer CAR: the name of the device that made the key.
    pub outer_car: &'a [u8],
    /// The outer signature by that device's key, `r || s`.
    pub outer_signature: &'a [u8],
    /// The bytes the outer signature covers: `7F21` TLV ‖ outer `42` TLV.
    pub outer_signed: Vec<u8>,
}

impl<'a> AuthRequest<'a> {
    /// Parses either a complete `67` TLV or its content (starting with
    /// `7F21`), as the register command carries it.
    pub fn parse(input: &'a [u8]) -> Result<Self, TlvError> {
        let content = match tlv::parse_one(input) {
            Ok((t, rest)) if t.tag == TAG_AUTH_REQUEST && rest.is_empty() => t.value,
            _ => input,
        };
        let (cert, rest) = Cvc::parse(content)?;
        let (car, rest) = tlv::parse_one(rest)?;
        let (sig, rest) = tlv::parse_one(rest)?;
        if car.tag != TAG_CAR || sig.tag != TAG_SIGNATURE || !rest.is_empty() {
            return Err(TlvError);
        }
        let mut outer_signed = Vec::with_capacity(cert.raw.len() + car.raw.len());
        outer_signed.extend_from_slice(cert.raw);
        outer_signed.extend_from_slice(car.raw);
        Ok(AuthRequest {
            cert,
            outer_car: car.value,
            outer_signature: sig.value,
            outer_signed,
        })
    }
}

/// Builds the value of a `7F49` template for an EC key with explicit domain
/// parameters (`81` p, `82` a, `83` b, `84` G, `85` n, `86` point, `87` h).
pub fn ec_public_key(algorithm: &[u8], curve: crate::curve::Curve, point: &[u8]) -> Vec<u8> {
    ec_template(algorithm, curve, Some(point))
}

/// The `7F49` value of a GENERATE ASYMMETRIC KEY PAIR template for an EC
/// key (docs/protocol.md §7.1): the domain parameters, no point.
pub fn ec_keygen_template(algorithm: &[u8], curve: crate::curve::Curve) -> Vec<u8> {
    ec_template(algorithm, curve, None)
}

fn ec_template(algorithm: &[u8], curve: crate::curve::Curve, point: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, 0x06, algorithm);
    tlv::push(&mut v, 0x81, curve.prime());
    tlv::push(&mut v, 0x82, curve.a());
    tlv::push(&mut v, 0x83, curve.b());
    tlv::push(&mut v, 0x84, curve.generator());
    tlv::push(&mut v, 0x85, curve.order());
    if let Some(point) = point {
        tlv::push(&mut v, 0x86, point);
    }
    tlv::push(&mut v, 0x87, curve.cofactor());
    v
}

/// The `7F49` value of a GENERATE ASYMMETRIC KEY PAIR template for an RSA
/// key (docs/protocol.md §7.1): `82` public exponent, `02` modulus size in bits.
pub fn rsa_keygen_template(algorithm: &[u8], bits: u16, exponent: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, 0x06, algorithm);
    tlv::push(&mut v, 0x82, exponent);
    tlv::push(&mut v, 0x02, &bits.to_be_bytes());
    v
}

/// Builds the value of a `7F49` template for an RSA key (`81` n, `82` e).
pub fn rsa_public_key(algorithm: &[u8], modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, 0x06, algorithm);
    tlv::push(&mut v, 0x81, modulus);
    tlv::push(&mut v, 0x82, exponent);
    v
}

/// Builds a `7F4E` body TLV: profile 0, CAR (if any), public key, CHR, then
/// `extra` (already-encoded CHAT and date TLVs, or nothing for a request).
pub fn build_body(car: Option<&[u8]>, public_key: &[u8], chr: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::push(&mut v, TAG_PROFILE, &[0]);
    if let Some(car) = car {
        tlv::push(&mut v, TAG_CAR, car);
    }
    tlv::push(&mut v, TAG_PUBKEY, public_key);
    tlv::push(&mut v, TAG_CHR, chr);
    v.extend_from_slice(extra);
    tlv::encode(TAG_BODY, &v)
}

/// Wraps a body TLV and its signature into a `7F21` certificate TLV.
pub fn build_cvc(body: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + signature.len() + 4);
    v.extend_from_slice(body);
    tlv::push(&mut v, TAG_SIGNATURE, signature);
    tlv::encode(TAG_CVC, &v)
}

/// The bytes an outer signature covers: the `7F21` TLV followed by `42 outer CAR`.
pub fn outer_signed_data(cvc: &[u8], outer_car: &[u8]) -> Vec<u8> {
    let mut v = Vec::from(cvc);
    tlv::push(&mut v, TAG_CAR, outer_car);
    v
}

/// Wraps a request `7F21` TLV, the outer CAR and the outer signature into a
/// `67` authenticated request TLV.
pub fn build_auth_request(cvc: &[u8], outer_car: &[u8], outer_signature: &[u8]) -> Vec<u8> {
    let mut v = outer_signed_data(cvc, outer_car);
    tlv::push(&mut v, TAG_SIGNATURE, outer_signature);
    tlv::encode(TAG_AUTH_REQUEST, &v)
}

/// A TLV of the first certificate's CHR in a chain: the device name (docs/protocol.md §3.3).
pub fn first_chr(chain: &[u8]) -> Option<&[u8]> {
    Cvc::parse(chain).ok().map(|(c, _)| c.chr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse_request() {
        let pk = rsa_public_key(oid::RSA_V15_SHA256, &[0xC1; 128], &[1, 0, 1]);
        let body = build_body(Some(b"ZZCAR00001"), &pk, b"ZZKEY00001", &[]);
        let cert = build_cvc(&body, &[9; 64]);
        let req = build_auth_request(&cert, b"ZZDEV00001", &[7; 64]);
        let parsed = AuthRequest::parse(&req).unwrap();
        assert_eq!(parsed.cert.chr, b"ZZKEY00001");
        assert_eq!(parsed.cert.car, Some(&b"ZZCAR00001"[..]));
        assert_eq!(parsed.cert.algorithm, oid::RSA_V15_SHA256);
        assert_eq!(parsed.cert.key_field(0x82), Some(&[1u8, 0, 1][..]));
        assert_eq!(parsed.cert.body, &body[..]);
        assert_eq!(parsed.outer_car, b"ZZDEV00001");
        assert_eq!(parsed.outer_signed, outer_signed_data(&cert, b"ZZDEV00001"));
        // The register command carries the content of 67, starting at 7F21.
        let (t, _) = tlv::parse_one(&req).unwrap();
        assert_eq!(AuthRequest::parse(t.value).unwrap(), parsed);
    }

    #[test]
    fn chain_and_device_name() {
        let pk = rsa_public_key(oid::RSA_V15_SHA256, &[0xC1; 16], &[3]);
        let a = build_cvc(
            &build_body(Some(b"ZZDV00001"), &pk, b"ZZDEVICE00001", &[]),
            &[1; 8],
        );
        let b = build_cvc(
            &build_body(Some(b"ZZCA00001"), &pk, b"ZZDV00001", &[]),
            &[2; 8],
        );
        let mut chain = a.clone();
        chain.extend_from_slice(&b);
        let certs = parse_chain(&chain).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(first_chr(&chain), Some(&b"ZZDEVICE00001"[..]));
        assert!(parse_chain(&chain[..chain.len() - 1]).is_err());
    }
}
