//! Named elliptic curves supported by the card and their domain parameters.
//!
//! SmartCard-HSM CV certificates and key-generation requests carry explicit
//! domain parameters in tags `81` (prime p), `82` (coefficient a), `83`
//! (coefficient b), `84` (generator G, uncompressed), `85` (order n) and `87`
//! (cofactor h); PKCS#11 describes the same curve by its named-curve OID in
//! `CKA_EC_PARAMS`. [`Curve`] maps between the two.
//!
//! All byte strings are big-endian and exactly [`Curve::field_size`] bytes
//! long (the generator is `04 || X || Y`). The values were taken from
//! `openssl ecparam -name <curve> -param_enc explicit -text -noout` (OpenSSL
//! 3.0) and the OIDs from `openssl ecparam -name <curve> -outform DER`.

/// A named elliptic curve over a prime field, all with cofactor 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (`prime256v1`, `secp256r1`), OID 1.2.840.10045.3.1.7.
    P256,
    /// NIST P-384 (`secp384r1`), OID 1.3.132.0.34.
    P384,
    /// NIST P-521 (`secp521r1`), OID 1.3.132.0.35.
    P521,
    /// SEC 2 `secp256k1` (Koblitz), OID 1.3.132.0.10.
    Secp256k1,
    /// RFC 5639 `brainpoolP256r1`, OID 1.3.36.3.3.2.8.1.1.7.
    BrainpoolP256r1,
}

/// Cofactor shared by every supported curve.
const COFACTOR_ONE: [u8; 1] = [0x01];

/// Every supported curve, in a stable order.
const ALL: [Curve; 5] = [
    Curve::P256,
    Curve::P384,
    Curve::P521,
    Curve::Secp256k1,
    Curve::BrainpoolP256r1,
];

/// Domain parameters of one curve.
struct Params {
    bits: usize,
    name: &'static str,
    p: &'static [u8],
    a: &'static [u8],
    b: &'static [u8],
    g: &'static [u8],
    n: &'static [u8],
    oid: &'static [u8],
}

/// Bytes from hex at compile time: the domain parameters below are written
/// as the standards print them, one value per line.
const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 2 * N, "hex length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

const P256_P: [u8; 32] = hex("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF");
const P256_A: [u8; 32] = hex("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC");
const P256_B: [u8; 32] = hex("5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B");
const P256_G: [u8; 65] = hex("046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5");
const P256_N: [u8; 32] = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
const P256_OID: [u8; 10] = hex("06082A8648CE3D030107");

const P384_P: [u8; 48] = hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF");
const P384_A: [u8; 48] = hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFC");
const P384_B: [u8; 48] = hex("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF");
const P384_G: [u8; 97] = hex("04AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB73617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F");
const P384_N: [u8; 48] = hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973");
const P384_OID: [u8; 7] = hex("06052B81040022");

const P521_P: [u8; 66] = hex("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
const P521_A: [u8; 66] = hex("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC");
const P521_B: [u8; 66] = hex("0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00");
const P521_G: [u8; 133] = hex("0400C6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66011839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650");
const P521_N: [u8; 66] = hex("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409");
const P521_OID: [u8; 7] = hex("06052B81040023");

const SECP256K1_P: [u8; 32] =
    hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F");
const SECP256K1_A: [u8; 32] =
    hex("0000000000000000000000000000000000000000000000000000000000000000");
const SECP256K1_B: [u8; 32] =
    hex("0000000000000000000000000000000000000000000000000000000000000007");
const SECP256K1_G: [u8; 65] = hex("0479BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8");
const SECP256K1_N: [u8; 32] =
    hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141");
const SECP256K1_OID: [u8; 7] = hex("06052B8104000A");

const BRAINPOOLP256R1_P: [u8; 32] =
    hex("A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377");
const BRAINPOOLP256R1_A: [u8; 32] =
    hex("7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9");
const BRAINPOOLP256R1_B: [u8; 32] =
    hex("26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6");
const BRAINPOOLP256R1_G: [u8; 65] = hex("048BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997");
const BRAINPOOLP256R1_N: [u8; 32] =
    hex("A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7");
const BRAINPOOLP256R1_OID: [u8; 11] = hex("06092B2403030208010107");

/// The domain parameters, in the order of [`Curve`]'s variants.
#[rustfmt::skip]
const PARAMS: [Params; 5] = [
    Params { bits: 256, name: "prime256v1", p: &P256_P, a: &P256_A, b: &P256_B, g: &P256_G, n: &P256_N, oid: &P256_OID },
    Params { bits: 384, name: "secp384r1", p: &P384_P, a: &P384_A, b: &P384_B, g: &P384_G, n: &P384_N, oid: &P384_OID },
    Params { bits: 521, name: "secp521r1", p: &P521_P, a: &P521_A, b: &P521_B, g: &P521_G, n: &P521_N, oid: &P521_OID },
    Params { bits: 256, name: "secp256k1", p: &SECP256K1_P, a: &SECP256K1_A, b: &SECP256K1_B, g: &SECP256K1_G, n: &SECP256K1_N, oid: &SECP256K1_OID },
    Params { bits: 256, name: "brainpoolP256r1", p: &BRAINPOOLP256R1_P, a: &BRAINPOOLP256R1_A, b: &BRAINPOOLP256R1_B, g: &BRAINPOOLP256R1_G, n: &BRAINPOOLP256R1_N, oid: &BRAINPOOLP256R1_OID },
];

impl Curve {
    fn params(self) -> &'static Params {
        &PARAMS[self as usize]
    }

    /// Every supported curve: P-256, P-384, P-521, secp256k1, brainpoolP256r1.
    pub fn all() -> &'static [Curve] {
        &ALL
    }

    /// Size in bytes of a field element, of a private scalar and of each
    /// half of a raw `r || s` signature: 32, 48, 66, 32 or 32.
    pub fn field_size(self) -> usize {
        self.params().bits.div_ceil(8)
    }

    /// Size of the field (and of the group order) in bits: 256, 384, 521,
    /// 256 or 256.
    pub fn bits(self) -> usize {
        self.params().bits
    }

    /// The field prime p (tag `81`), big-endian, [`field_size`](Self::field_size) bytes.
    pub fn prime(self) -> &'static [u8] {
        self.params().p
    }

    /// The curve coefficient a (tag `82`), big-endian, field-size bytes.
    pub fn a(self) -> &'static [u8] {
        self.params().a
    }

    /// The curve coefficient b (tag `83`), big-endian, field-size bytes.
    pub fn b(self) -> &'static [u8] {
        self.params().b
    }

    /// The base point G (tag `84`), uncompressed: `04 || X || Y`,
    /// `1 + 2 * field_size` bytes.
    pub fn generator(self) -> &'static [u8] {
        self.params().g
    }

    /// The order n of G (tag `85`), big-endian, field-size bytes (66 for P-521).
    pub fn order(self) -> &'static [u8] {
        self.params().n
    }

    /// The cofactor h (tag `87`): `[0x01]` for every supported curve.
    pub fn cofactor(self) -> &'static [u8] {
        &COFACTOR_ONE
    }

    /// The complete DER encoding of the named-curve OID (tag `06`, length,
    /// value), as stored in PKCS#11 `CKA_EC_PARAMS`; e.g.
    /// `06 08 2A 86 48 CE 3D 03 01 07` for P-256.
    pub fn oid_der(self) -> &'static [u8] {
        self.params().oid
    }

    /// The OpenSSL short name: `prime256v1`, `secp384r1`, `secp521r1`,
    /// `secp256k1` or `brainpoolP256r1`.
    pub fn name(self) -> &'static str {
        self.params().name
    }

    /// The curve whose field prime is `p` (big-endian, leading zero bytes
    /// ignored), or `None` if no supported curve has that prime.
    pub fn from_prime(p: &[u8]) -> Option<Curve> {
        let p = strip_leading_zeros(p);
        ALL.iter()
            .copied()
            .find(|c| strip_leading_zeros(c.prime()) == p)
    }

    /// The curve whose DER-encoded named-curve OID (including the `06` tag
    /// and length) is exactly `der`, or `None` if it is not supported or
    /// the encoding differs in any byte.
    pub fn from_oid_der(der: &[u8]) -> Option<Curve> {
        ALL.iter().copied().find(|c| c.oid_der() == der)
    }
}

/// `bytes` without its leading zero bytes.
fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_consistent() {
        let expected = [(32, 256), (48, 384), (66, 521), (32, 256), (32, 256)];
        assert_eq!(Curve::all().len(), expected.len());
        for (c, (fs, bits)) in Curve::all().iter().zip(expected) {
            assert_eq!(c.field_size(), fs, "{c:?}");
            assert_eq!(c.bits(), bits, "{c:?}");
            assert_eq!(c.prime().len(), fs, "{c:?}");
            assert_eq!(c.a().len(), fs, "{c:?}");
            assert_eq!(c.b().len(), fs, "{c:?}");
            assert_eq!(c.order().len(), fs, "{c:?}");
            assert_eq!(c.generator().len(), 1 + 2 * fs, "{c:?}");
            assert_eq!(c.generator()[0], 0x04, "{c:?}");
            assert_eq!(c.cofactor(), &[1], "{c:?}");
            let oid = c.oid_der();
            assert_eq!(oid[0], 0x06, "{c:?}");
            assert_eq!(usize::from(oid[1]), oid.len() - 2, "{c:?}");
            // The order is below the prime (Hasse bound, cofactor 1), and
            // the top bit of the field is used exactly as `bits` says.
            assert!(c.order() < c.prime(), "{c:?}");
            let top = c.prime()[0];
            assert_eq!(
                (fs - 1) * 8 + (8 - top.leading_zeros() as usize),
                bits,
                "{c:?}"
            );
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(
            Curve::P256.oid_der(),
            &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        );
        assert_eq!(
            Curve::P384.oid_der(),
            &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]
        );
        assert_eq!(
            Curve::P521.oid_der(),
            &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23]
        );
        assert_eq!(
            Curve::Secp256k1.oid_der(),
            &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A]
        );
        assert_eq!(
            Curve::BrainpoolP256r1.oid_der(),
            &[0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07]
        );
        // P-521: p = 2^521 - 1.
        assert_eq!(Curve::P521.prime()[0], 0x01);
        assert!(Curve::P521.prime()[1..].iter().all(|&b| b == 0xFF));
        // secp256k1: a = 0, b = 7.
        assert!(Curve::Secp256k1.a().iter().all(|&b| b == 0));
        assert_eq!(Curve::Secp256k1.b()[31], 7);
        // NIST curves: a = p - 3.
        for c in [Curve::P256, Curve::P384, Curve::P521] {
            let (p, a) = (c.prime(), c.a());
            let last = p.len() - 1;
            assert_eq!(p[..last], a[..last]);
            assert_eq!(p[last] - 3, a[last]);
        }
        assert_eq!(Curve::P256.name(), "prime256v1");
        assert_eq!(Curve::BrainpoolP256r1.name(), "brainpoolP256r1");
    }

    #[test]
    fn lookups_round_trip() {
        for &c in Curve::all() {
            assert_eq!(Curve::from_prime(c.prime()), Some(c));
            assert_eq!(Curve::from_oid_der(c.oid_der()), Some(c));
            // Leading zeros are ignored.
            let mut padded = [0u8; 70];
            padded[70 - c.prime().len()..].copy_from_slice(c.prime());
            assert_eq!(Curve::from_prime(&padded), Some(c));
            // And so is a stripped encoding.
            let stripped = strip_leading_zeros(c.prime());
            assert_eq!(Curve::from_prime(stripped), Some(c));
        }
        assert_eq!(Curve::from_prime(&[]), None);
        assert_eq!(Curve::from_prime(&[0, 0]), None);
        assert_eq!(Curve::from_prime(Curve::P256.order()), None);
        assert_eq!(Curve::from_oid_der(&[]), None);
        assert_eq!(Curve::from_oid_der(&Curve::P256.oid_der()[..9]), None);
        assert_eq!(Curve::from_oid_der(&Curve::P256.oid_der()[2..]), None);
        // brainpoolP256t1 (1.3.36.3.3.2.8.1.1.8) is not supported.
        assert_eq!(
            Curve::from_oid_der(&[
                0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x08
            ]),
            None
        );
    }
}
