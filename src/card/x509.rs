//! The few X.509 fields PKCS#11 certificate and public key objects need
//! (RFC 5280 §4.1): subject, issuer, serial number and the
//! SubjectPublicKeyInfo, each kept as the DER the certificate holds, plus
//! the public key split into its PKCS#11 attributes. Also builds a
//! SubjectPublicKeyInfo (RFC 5480 / RFC 3279) for CKA_PUBLIC_KEY_INFO.
//!
//! DER is read with `picohsm_wire::tlv` (definite lengths up to four
//! length bytes), keeping one-byte tags (X.509's structure uses no
//! others). Nothing here panics on malformed input.

use picohsm_wire::tlv;

/// A certificate that could not be parsed.
pub type X509Error = tlv::DecodeError;

const fn err(what: &'static str) -> X509Error {
    tlv::DecodeError::new("X.509 certificate", what)
}

/// The public key of a certificate, in PKCS#11 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// id-ecPublicKey with a named curve.
    Ec {
        /// The curve's full DER OBJECT IDENTIFIER (`06 len ...`), the value
        /// of CKA_EC_PARAMS.
        curve_oid_der: Vec<u8>,
        /// The EC point as the certificate holds it (the BIT STRING's
        /// content; `04 || X || Y` for an uncompressed point). CKA_EC_POINT
        /// wants it wrapped in an OCTET STRING.
        point: Vec<u8>,
    },
    /// rsaEncryption (or RSASSA-PSS) key.
    Rsa {
        /// CKA_MODULUS: unsigned big-endian, no leading zero bytes.
        modulus: Vec<u8>,
        /// CKA_PUBLIC_EXPONENT: unsigned big-endian, no leading zero bytes.
        exponent: Vec<u8>,
    },
    /// Any other algorithm, or EC with explicit (unnamed) domain
    /// parameters. The raw SPKI is still in [`CertFields::spki`].
    Other,
}

/// The fields of an X.509 certificate a PKCS#11 module exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFields {
    /// DER of the subject Name (CKA_SUBJECT).
    pub subject: Vec<u8>,
    /// DER of the issuer Name (CKA_ISSUER).
    pub issuer: Vec<u8>,
    /// The serialNumber as a complete DER INTEGER, tag and length included
    /// (CKA_SERIAL_NUMBER).
    pub serial: Vec<u8>,
    /// DER of the SubjectPublicKeyInfo (CKA_PUBLIC_KEY_INFO).
    pub spki: Vec<u8>,
    /// The public key, decoded from `spki`.
    pub public_key: PublicKey,
}

/// id-ecPublicKey, 1.2.840.10045.2.1 (content octets).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// id-RSASSA-PSS, 1.2.840.113549.1.1.10.
const OID_RSASSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// Parses a DER X.509 certificate. Bytes after the certificate are ignored
/// (a card file may be longer than its content); a certificate cut short
/// (a write interrupted between two APDUs) is an error, as is one without
/// its signature algorithm and signature.
pub fn parse(der: &[u8]) -> Result<CertFields, X509Error> {
    let (cert, _) = read(der)?;
    expect(&cert, SEQUENCE, "certificate is not a SEQUENCE")?;
    let mut outer = cert.value;
    let tbs = take(&mut outer, "no tbsCertificate")?;
    expect(&tbs, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let sig_alg = take(&mut outer, "no signatureAlgorithm")?;
    expect(&sig_alg, SEQUENCE, "bad signatureAlgorithm")?;
    let sig = take(&mut outer, "no signatureValue")?;
    expect(&sig, BIT_STRING, "signatureValue is not a BIT STRING")?;
    if !outer.is_empty() {
        return Err(err("bytes after the signature inside the certificate"));
    }

    let mut rest = tbs.value;
    let mut next = |what: &'static str| take(&mut rest, what);
    let mut t = next("truncated tbsCertificate")?;
    if t.tag == 0xA0 {
        // [0] EXPLICIT version
        t = next("no serialNumber")?;
    }
    expect(&t, INTEGER, "serialNumber is not an INTEGER")?;
    if t.value.is_empty() {
        return Err(err("empty serialNumber"));
    }
    let serial = t.raw.to_vec();
    expect(
        &next("no signature algorithm")?,
        SEQUENCE,
        "bad signature algorithm",
    )?;
    let issuer = next("no issuer")?;
    expect(&issuer, SEQUENCE, "issuer is not a Name")?;
    expect(&next("no validity")?, SEQUENCE, "bad validity")?;
    let subject = next("no subject")?;
    expect(&subject, SEQUENCE, "subject is not a Name")?;
    let spki = next("no subjectPublicKeyInfo")?;
    expect(&spki, SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;

    Ok(CertFields {
        subject: subject.raw.to_vec(),
        issuer: issuer.raw.to_vec(),
        serial,
        spki: spki.raw.to_vec(),
        public_key: public_key(spki.value)?,
    })
}

/// Decodes the contents of a SubjectPublicKeyInfo SEQUENCE.
fn public_key(spki: &[u8]) -> Result<PublicKey, X509Error> {
    let (alg, rest) = read(spki)?;
    expect(&alg, SEQUENCE, "bad SPKI algorithm")?;
    let (bits, _) = read(rest)?;
    expect(&bits, BIT_STRING, "SPKI key is not a BIT STRING")?;
    let key = match bits.value.split_first() {
        Some((0, key)) => key,
        _ => return Err(err("SPKI key has unused bits")),
    };
    let (oid, params) = read(alg.value)?;
    expect(&oid, OID, "SPKI algorithm is not an OID")?;

    if oid.value == OID_EC_PUBLIC_KEY {
        let curve = match read(params) {
            Ok((p, _)) if p.tag == OID && !p.value.is_empty() => p.raw.to_vec(),
            // specifiedCurve / implicitCurve: not a named curve.
            Ok(_) => return Ok(PublicKey::Other),
            Err(_) => return Err(err("EC key without parameters")),
        };
        if key.is_empty() {
            return Err(err("empty EC point"));
        }
        Ok(PublicKey::Ec {
            curve_oid_der: curve,
            point: key.to_vec(),
        })
    } else if oid.value == OID_RSA_ENCRYPTION || oid.value == OID_RSASSA_PSS {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let bad = err("bad RSAPublicKey");
        let (seq, _) = read(key).map_err(|_| bad)?;
        expect(&seq, SEQUENCE, "bad RSAPublicKey")?;
        let (n, rest) = read(seq.value).map_err(|_| bad)?;
        let (e, _) = read(rest).map_err(|_| bad)?;
        expect(&n, INTEGER, "bad RSA modulus")?;
        expect(&e, INTEGER, "bad RSA exponent")?;
        let modulus = unsigned(n.value);
        let exponent = unsigned(e.value);
        if modulus.is_empty() || exponent.is_empty() {
            return Err(bad);
        }
        Ok(PublicKey::Rsa {
            modulus: modulus.to_vec(),
            exponent: exponent.to_vec(),
        })
    } else {
        Ok(PublicKey::Other)
    }
}

/// The DER SubjectPublicKeyInfo of an EC key:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, <curve_oid_der> }, BIT STRING point }`.
/// `curve_oid_der` is the full DER OID (`06 ..`, i.e. CKA_EC_PARAMS), `point`
/// the raw point (`04 || X || Y`).
pub fn spki_ec(curve_oid_der: &[u8], point: &[u8]) -> Vec<u8> {
    let mut alg = Vec::with_capacity(curve_oid_der.len() + 11);
    push(&mut alg, OID, OID_EC_PUBLIC_KEY);
    alg.extend_from_slice(curve_oid_der);
    spki(&alg, point)
}

/// The DER SubjectPublicKeyInfo of an RSA key:
/// `SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING RSAPublicKey }`.
/// `n` and `e` are unsigned big-endian (leading zeros are dropped, a zero
/// byte is prefixed where the sign bit would be set).
pub fn spki_rsa(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut ints = Vec::with_capacity(n.len() + e.len() + 12);
    push(&mut ints, INTEGER, &positive_integer(n));
    push(&mut ints, INTEGER, &positive_integer(e));
    let mut key = Vec::with_capacity(ints.len() + 4);
    push(&mut key, SEQUENCE, &ints);
    let mut alg = Vec::with_capacity(15);
    push(&mut alg, OID, OID_RSA_ENCRYPTION);
    push(&mut alg, NULL, &[]);
    spki(&alg, &key)
}

fn spki(alg_content: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(alg_content.len() + key.len() + 12);
    push(&mut body, SEQUENCE, alg_content);
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    push(&mut body, BIT_STRING, &bits);
    let mut out = Vec::with_capacity(body.len() + 5);
    push(&mut out, SEQUENCE, &body);
    out
}

/// Content octets of a DER INTEGER holding the unsigned big-endian `v`.
fn positive_integer(v: &[u8]) -> Vec<u8> {
    let v = unsigned(v);
    let mut out = Vec::with_capacity(v.len() + 1);
    if v.is_empty() || v[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(v);
    out
}

/// An INTEGER's content octets without leading zero bytes.
fn unsigned(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[first..]
}

// ---------------------------------------------------------------------------
// DER reading and writing.

/// One DER element: a TLV of `picohsm_wire::tlv` with a one-byte tag
/// (X.509 uses no others).
struct Der<'a> {
    tag: u8,
    value: &'a [u8],
    /// Tag, length and value.
    raw: &'a [u8],
}

fn expect(t: &Der<'_>, tag: u8, what: &'static str) -> Result<(), X509Error> {
    if t.tag == tag {
        Ok(())
    } else {
        Err(err(what))
    }
}

/// Reads the next element of `rest` and advances it; `what` is the error.
fn take<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<Der<'a>, X509Error> {
    let (t, r) = read(rest).map_err(|_| err(what))?;
    *rest = r;
    Ok(t)
}

/// Reads one element from the front of `input`; returns it and the rest.
fn read(input: &[u8]) -> Result<(Der<'_>, &[u8]), X509Error> {
    let (t, rest) = tlv::parse_one(input).map_err(|_| err("bad DER"))?;
    let tag = u8::try_from(t.tag).map_err(|_| err("multi-byte DER tag"))?;
    Ok((
        Der {
            tag,
            value: t.value,
            raw: t.raw,
        },
        rest,
    ))
}

/// Appends tag, DER length and value.
fn push(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    tlv::push(out, tag as u16, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::testing::hex as h;

    // Made at test-writing time with
    //   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    //     -subj "/C=ES/O=Pico Test/CN=picohsm ec test" -set_serial 0x00F1E2D3C4B5A69788 ...
    //   openssl x509 -outform DER
    // openssl x509 -noout -serial -subject -issuer -nameopt RFC2253:
    //   serial=F1E2D3C4B5A69788
    //   subject=CN=picohsm ec test,O=Pico Test,C=ES   (issuer the same)
    const EC_CERT: &str = "308201c030820166a003020102020900f1e2d3c4b5a69788300a06082a8648ce3d040302303b310b300906035504061302455331123010060355040a0c095069636f20546573743118301606035504030c0f7069636f68736d2065632074657374301e170d3236313132363232343230385a170d3336313132333232343230385a303b310b300906035504061302455331123010060355040a0c095069636f20546573743118301606035504030c0f7069636f68736d20656320746573743059301306072a8648ce3d020106082a8648ce3d030107034200043360c625bba1a095c6ee5b896b0f5cdfc0b1603ce2a462e8096b6ccd13e43e9f7d8616bdc57711728618cf32ea944a1f6a430f102568e0b227fd7e71752ddc71a3533051301d0603551d0e041604144cc08955826b2f6ddad1050be85b56dd496b8906301f0603551d230418301680144cc08955826b2f6ddad1050be85b56dd496b8906300f0603551d130101ff040530030101ff300a06082a8648ce3d04030203480030450221008151c31896c27b7e94f00da1aea769f83ad04bf075b11a62ffea6e66a92658b902201a52fc3b61ac8677381ca3c493bff293154e451d8878f8c1e859eb2183112559";
    // openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER
    const EC_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200043360c625bba1a095c6ee5b896b0f5cdfc0b1603ce2a462e8096b6ccd13e43e9f7d8616bdc57711728618cf32ea944a1f6a430f102568e0b227fd7e71752ddc71";
    // openssl asn1parse: subject at offset 129, 2+59 bytes.
    const EC_SUBJECT: &str = "303b310b300906035504061302455331123010060355040a0c095069636f20546573743118301606035504030c0f7069636f68736d2065632074657374";
    // openssl pkey -pubout -text: pub 04:33:60:...:dc:71, ASN1 OID prime256v1
    const EC_POINT: &str = "043360c625bba1a095c6ee5b896b0f5cdfc0b1603ce2a462e8096b6ccd13e43e9f7d8616bdc57711728618cf32ea944a1f6a430f102568e0b227fd7e71752ddc71";

    // openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=picohsm rsa test/O=Pico Test"
    //   -addext keyUsage=digitalSignature
    //   serial=2869AAF11B2DC4EE09B17571444F3CBB9B925E5C
    //   subject=O=Pico Test,CN=picohsm rsa test   (issuer the same)
    const RSA_CERT: &str = "3082034c30820234a00302010202142869aaf11b2dc4ee09b17571444f3cbb9b925e5c300d06092a864886f70d01010b0500302f3119301706035504030c107069636f68736d20727361207465737431123010060355040a0c095069636f2054657374301e170d3236313132363232343230385a170d3336313132333232343230385a302f3119301706035504030c107069636f68736d20727361207465737431123010060355040a0c095069636f205465737430820122300d06092a864886f70d01010105000382010f003082010a0282010100c855d766e0759ed771a1e6de00b311fa61eeeb499ed4a5d92c280447c3c8e4b2b31b94dda9653f1bbff01c421c45fbe931df7057467dac26477ad73345a31b3bdca8f3f22a3521297c077fc7c54b6659db240d78aeb6a639c8d86ac7440b64327ae2e0c0772c692557642f6796fac8e0c83ac466319560149ac368d01f25c046e793cea08fbf2b211b9dd1c756fb91a5725c1ceffb01527f07721760c3f4cc52e8d099894d32c8c0ac5851b8de1088c3e7ac4e1aa7685fb23595d2768a073e364097021bce77c8b25f6ddcea8afed45999023a4c01349833e528b86aa0f71dc622a6588dffb03956d176211b7813afba3fe83818762c1f4c339dca28373f75a50203010001a360305e301d0603551d0e041604140fb5db020f985f2c974ff561d61eb0202ec252e7301f0603551d230418301680140fb5db020f985f2c974ff561d61eb0202ec252e7300f0603551d130101ff040530030101ff300b0603551d0f040403020780300d06092a864886f70d01010b050003820101007da4ed2392b66d01962e46e98a13e02a906862be933f07f0048ffdda659365d87e53a68b3eadd75f6f26fbba97878f5ecb01cc4788245e76b51942132594b06a3bc83b8250f576d04665738a307c65098d9244dd5c2e2fc53b8800a20ca30894a98a0bb517293f4975524363417e7fbd73e63fc04aedb2883175d15e01f1c69b00323202430287c25bf620eaa85329908fb576a51d261ea5d02daae81ee3f470976281c922f310718fc6f7b45b9bb070d85d8ae391f3ea5ecea858813b7add951c3590688cb5b0f7d9a8176e7c9c717a8de051592695426772f1dd3c6fb17dcbe1d8e0953bb31aa65ca91afc50ccfe53d65bb2fe4eefcde2239f6a654c6d6fa1";
    const RSA_SPKI: &str = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100c855d766e0759ed771a1e6de00b311fa61eeeb499ed4a5d92c280447c3c8e4b2b31b94dda9653f1bbff01c421c45fbe931df7057467dac26477ad73345a31b3bdca8f3f22a3521297c077fc7c54b6659db240d78aeb6a639c8d86ac7440b64327ae2e0c0772c692557642f6796fac8e0c83ac466319560149ac368d01f25c046e793cea08fbf2b211b9dd1c756fb91a5725c1ceffb01527f07721760c3f4cc52e8d099894d32c8c0ac5851b8de1088c3e7ac4e1aa7685fb23595d2768a073e364097021bce77c8b25f6ddcea8afed45999023a4c01349833e528b86aa0f71dc622a6588dffb03956d176211b7813afba3fe83818762c1f4c339dca28373f75a50203010001";
    // openssl asn1parse: subject at offset 131 (issuer at 50), 2+47 bytes.
    const RSA_NAME: &str = "302f3119301706035504030c107069636f68736d20727361207465737431123010060355040a0c095069636f2054657374";
    // openssl x509 -noout -modulus
    const RSA_MODULUS: &str = "C855D766E0759ED771A1E6DE00B311FA61EEEB499ED4A5D92C280447C3C8E4B2B31B94DDA9653F1BBFF01C421C45FBE931DF7057467DAC26477AD73345A31B3BDCA8F3F22A3521297C077FC7C54B6659DB240D78AEB6A639C8D86AC7440B64327AE2E0C0772C692557642F6796FAC8E0C83AC466319560149AC368D01F25C046E793CEA08FBF2B211B9DD1C756FB91A5725C1CEFFB01527F07721760C3F4CC52E8D099894D32C8C0AC5851B8DE1088C3E7AC4E1AA7685FB23595D2768A073E364097021BCE77C8B25F6DDCEA8AFED45999023A4C01349833E528B86AA0F71DC622A6588DFFB03956D176211B7813AFBA3FE83818762C1F4C339DCA28373F75A5";

    /// DER OID of prime256v1 / secp256r1, 1.2.840.10045.3.1.7.
    const P256_OID: &str = "06082a8648ce3d030107";

    #[test]
    fn ec_p256_certificate() {
        let c = parse(&h(EC_CERT)).unwrap();
        // serial=F1E2D3C4B5A69788: the high bit is set, so DER adds 00.
        assert_eq!(c.serial, h("02 09 00 F1 E2 D3 C4 B5 A6 97 88"));
        assert_eq!(c.subject, h(EC_SUBJECT));
        assert_eq!(c.issuer, h(EC_SUBJECT)); // self-signed
        assert!(c.subject.windows(15).any(|w| w == b"picohsm ec test"));
        assert_eq!(c.spki, h(EC_SPKI));
        assert_eq!(
            c.public_key,
            PublicKey::Ec {
                curve_oid_der: h(P256_OID),
                point: h(EC_POINT),
            }
        );
        assert_eq!(spki_ec(&h(P256_OID), &h(EC_POINT)), h(EC_SPKI));
    }

    #[test]
    fn rsa_2048_certificate() {
        let c = parse(&h(RSA_CERT)).unwrap();
        assert_eq!(
            c.serial,
            h("02 14 28 69 AA F1 1B 2D C4 EE 09 B1 75 71 44 4F 3C BB 9B 92 5E 5C")
        );
        assert_eq!(c.subject, h(RSA_NAME));
        assert_eq!(c.issuer, h(RSA_NAME));
        assert_eq!(c.spki, h(RSA_SPKI));
        assert_eq!(
            c.public_key,
            PublicKey::Rsa {
                modulus: h(RSA_MODULUS),
                exponent: vec![0x01, 0x00, 0x01],
            }
        );
        assert_eq!(spki_rsa(&h(RSA_MODULUS), &[1, 0, 1]), h(RSA_SPKI));
        // Leading zeros in the inputs do not change the encoding.
        let mut n = vec![0, 0];
        n.extend_from_slice(&h(RSA_MODULUS));
        assert_eq!(spki_rsa(&n, &[0, 1, 0, 1]), h(RSA_SPKI));
    }

    #[test]
    fn a_certificate_without_its_signature_is_refused() {
        let v = h(EC_CERT);
        let (cert, _) = read(&v).unwrap();
        let (tbs, _) = read(cert.value).unwrap();
        let mut only_tbs = Vec::new();
        push(&mut only_tbs, SEQUENCE, tbs.raw);
        assert!(parse(&only_tbs).is_err());
        let mut extra = cert.value.to_vec();
        extra.extend_from_slice(&[0x05, 0x00]);
        let mut with_extra = Vec::new();
        push(&mut with_extra, SEQUENCE, &extra);
        assert!(parse(&with_extra).is_err());
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut v = h(EC_CERT);
        v.extend_from_slice(&[0xFF, 0xFF, 0x00]);
        assert_eq!(parse(&v).unwrap(), parse(&h(EC_CERT)).unwrap());
    }

    #[test]
    fn other_algorithms() {
        // A certificate whose SPKI is Ed25519 (1.3.101.112): structure only.
        let spki = h("302a300506032b6570032100 19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1");
        let mut tbs = Vec::new();
        push(&mut tbs, INTEGER, &[1]);
        push(&mut tbs, SEQUENCE, &h("06032b6570"));
        push(&mut tbs, SEQUENCE, &[]);
        push(&mut tbs, SEQUENCE, &[]);
        push(&mut tbs, SEQUENCE, &[]);
        tbs.extend_from_slice(&spki);
        let mut body = Vec::new();
        push(&mut body, SEQUENCE, &tbs); // v1 certificate: no [0] version
        push(&mut body, SEQUENCE, &h("06032b6570"));
        push(&mut body, BIT_STRING, &[0]);
        let mut cert = Vec::new();
        push(&mut cert, SEQUENCE, &body);
        let c = parse(&cert).unwrap();
        assert_eq!(c.public_key, PublicKey::Other);
        assert_eq!(c.spki, spki);
        assert_eq!(c.serial, vec![2, 1, 1]);
        assert_eq!(c.subject, vec![0x30, 0]);
    }

    #[test]
    fn long_lengths() {
        let v = vec![0xAB; 0x1_0000];
        let mut out = Vec::new();
        push(&mut out, 0x04, &v);
        assert_eq!(&out[..5], &[0x04, 0x83, 0x01, 0x00, 0x00]);
        let (t, rest) = read(&out).unwrap();
        assert_eq!(
            (t.tag, t.value.len(), t.raw.len(), rest.len()),
            (4, 0x1_0000, out.len(), 0)
        );
        assert!(read(&[0x30, 0x80, 0, 0]).is_err());
        assert!(read(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(read(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(read(&[0x1F, 0x81, 0x00]).is_err());
    }

    /// Every prefix and every single-byte corruption gives an error or a
    /// value, never a panic.
    #[test]
    fn no_panics_on_malformed_input() {
        for s in [EC_CERT, RSA_CERT] {
            let v = h(s);
            for n in 0..v.len() {
                assert!(parse(&v[..n]).is_err());
            }
            for i in 0..v.len() {
                for x in [0x00u8, 0x01, 0x1F, 0x7F, 0x80, 0x81, 0x84, 0xFF] {
                    let mut w = v.clone();
                    w[i] = x;
                    let _ = parse(&w);
                }
            }
        }
    }
}
