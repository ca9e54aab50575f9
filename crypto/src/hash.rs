//! SHA-1 / SHA-2 digests and the PKCS#1 `DigestInfo` encoding.

use alloc::vec::Vec;
use sha2::Digest;

/// A hash algorithm the card can compute and recognise in a `DigestInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1 (20-byte output).
    Sha1,
    /// SHA-224 (28-byte output).
    Sha224,
    /// SHA-256 (32-byte output).
    Sha256,
    /// SHA-384 (48-byte output).
    Sha384,
    /// SHA-512 (64-byte output).
    Sha512,
}

/// `DigestInfo` prefixes from RFC 8017 §9.2, note 1.
const SHA1_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14,
];
const SHA224_PREFIX: [u8; 19] = sha2_prefix(0x04, 28);
const SHA256_PREFIX: [u8; 19] = sha2_prefix(0x01, 32);
const SHA384_PREFIX: [u8; 19] = sha2_prefix(0x02, 48);
const SHA512_PREFIX: [u8; 19] = sha2_prefix(0x03, 64);

/// The `DigestInfo` prefix of a SHA-2 function: `SEQUENCE { SEQUENCE { OID
/// 2.16.840.1.101.3.4.2.arc, NULL }, OCTET STRING (len bytes) }` without
/// the value. The functions differ only in the OID's last arc and `len`.
const fn sha2_prefix(arc: u8, len: u8) -> [u8; 19] {
    let mut prefix = [
        0x30, 0x00, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x00,
        0x05, 0x00, 0x04, 0x00,
    ];
    prefix[1] = 0x11 + len;
    prefix[14] = arc;
    prefix[18] = len;
    prefix
}

impl HashAlg {
    /// Every supported algorithm, shortest output first.
    pub const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// Hash `data` in one go; the result is [`output_len`](Self::output_len)
    /// bytes long. Cannot fail.
    pub fn digest(&self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Length of the hash value in bytes: 20, 28, 32, 48 or 64.
    pub fn output_len(&self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The DER `DigestInfo` bytes that precede the hash value in an
    /// EMSA-PKCS1-v1_5 encoding (RFC 8017 §9.2, note 1): the `SEQUENCE`
    /// header, the `AlgorithmIdentifier` with `NULL` parameters and the
    /// `OCTET STRING` header. `prefix || hash` is a complete `DigestInfo`.
    pub fn digest_info_prefix(&self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &SHA1_PREFIX,
            HashAlg::Sha224 => &SHA224_PREFIX,
            HashAlg::Sha256 => &SHA256_PREFIX,
            HashAlg::Sha384 => &SHA384_PREFIX,
            HashAlg::Sha512 => &SHA512_PREFIX,
        }
    }

    /// Recognise a complete DER `DigestInfo` in the exact form of RFC 8017
    /// §9.2 note 1 (`NULL` parameters present) and return the algorithm and
    /// the hash value it carries. Returns `None` for any other input,
    /// including trailing bytes, a wrong hash length or an unknown algorithm.
    pub fn from_digest_info(di: &[u8]) -> Option<(HashAlg, &[u8])> {
        HashAlg::ALL.iter().find_map(|&alg| {
            let hash = di.strip_prefix(alg.digest_info_prefix())?;
            (hash.len() == alg.output_len()).then_some((alg, hash))
        })
    }

    /// The algorithm whose output is `len` bytes long (20, 28, 32, 48 or
    /// 64), or `None` for any other length.
    pub fn from_len(len: usize) -> Option<HashAlg> {
        HashAlg::ALL
            .iter()
            .copied()
            .find(|alg| alg.output_len() == len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;
    use ::rsa::pkcs1v15::Pkcs1v15Sign;

    #[test]
    fn known_answers() {
        // FIPS 180 "abc" test vectors.
        let cases = [
            (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                HashAlg::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                HashAlg::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlg::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                HashAlg::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (alg, expected) in cases {
            let d = alg.digest(b"abc");
            assert_eq!(d, hex(expected), "{alg:?}");
            assert_eq!(d.len(), alg.output_len());
            assert_eq!(HashAlg::from_len(d.len()), Some(alg));
        }
        assert_eq!(HashAlg::from_len(0), None);
        assert_eq!(HashAlg::from_len(33), None);
    }

    #[test]
    fn prefixes_match_rsa_crate() {
        let theirs = [
            Pkcs1v15Sign::new::<sha1::Sha1>().prefix,
            Pkcs1v15Sign::new::<sha2::Sha224>().prefix,
            Pkcs1v15Sign::new::<sha2::Sha256>().prefix,
            Pkcs1v15Sign::new::<sha2::Sha384>().prefix,
            Pkcs1v15Sign::new::<sha2::Sha512>().prefix,
        ];
        for (alg, prefix) in HashAlg::ALL.iter().zip(theirs.iter()) {
            assert_eq!(alg.digest_info_prefix(), &prefix[..], "{alg:?}");
        }
    }

    #[test]
    fn digest_info_round_trip() {
        for alg in HashAlg::ALL {
            let hash = alg.digest(b"message");
            let mut di = alg.digest_info_prefix().to_vec();
            di.extend_from_slice(&hash);
            assert_eq!(HashAlg::from_digest_info(&di), Some((alg, &hash[..])));
            // Truncated, extended and bare inputs are rejected.
            assert_eq!(HashAlg::from_digest_info(&di[..di.len() - 1]), None);
            let mut longer = di.clone();
            longer.push(0);
            assert_eq!(HashAlg::from_digest_info(&longer), None);
            assert_eq!(HashAlg::from_digest_info(&hash), None);
        }
        assert_eq!(HashAlg::from_digest_info(&[]), None);
    }
}
