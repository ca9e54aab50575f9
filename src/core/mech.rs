//! Mechanisms as the core knows them. A CK_MECHANISM is decoded once, at
//! the C boundary (`ffi::convert::mechanism`), into a [`Mechanism`]: the
//! operations match on what a mechanism means, never on CKM_* numbers.
//! Also here: what C_GetMechanismList and C_GetMechanismInfo offer.

use cryptoki_sys::*;
use picohsm_crypto::hash::HashAlg;

use crate::core::object::KeyInfo;
use crate::error::{fail, Result};

/// A hash the module computes on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// What a PKCS#11 number that names a hash stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashUse {
    /// The digest mechanism (CKM_SHA256).
    Digest,
    /// ECDSA over the hash (CKM_ECDSA_SHA256).
    Ecdsa,
    /// RSA PKCS#1 v1.5 over the hash (CKM_SHA256_RSA_PKCS).
    RsaPkcs,
    /// RSA-PSS over the hash (CKM_SHA256_RSA_PKCS_PSS).
    RsaPss,
    /// MGF1 with the hash (CKG_MGF1_SHA256).
    Mgf1,
    /// The ANSI X9.63 KDF with the hash (CKD_SHA256_KDF).
    Kdf,
}

/// Per hash, its numbers in the order of [`HashUse`].
#[rustfmt::skip]
const NUMBERS: [(Hash, [CK_ULONG; 6]); 5] = [
    (Hash::Sha1, [CKM_SHA_1, CKM_ECDSA_SHA1, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKG_MGF1_SHA1, CKD_SHA1_KDF]),
    (Hash::Sha224, [CKM_SHA224, CKM_ECDSA_SHA224, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKG_MGF1_SHA224, CKD_SHA224_KDF]),
    (Hash::Sha256, [CKM_SHA256, CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKG_MGF1_SHA256, CKD_SHA256_KDF]),
    (Hash::Sha384, [CKM_SHA384, CKM_ECDSA_SHA384, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKG_MGF1_SHA384, CKD_SHA384_KDF]),
    (Hash::Sha512, [CKM_SHA512, CKM_ECDSA_SHA512, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS, CKG_MGF1_SHA512, CKD_SHA512_KDF]),
];

impl Hash {
    /// Every hash, shortest first.
    pub const ALL: [Hash; 5] = [
        Hash::Sha1,
        Hash::Sha224,
        Hash::Sha256,
        Hash::Sha384,
        Hash::Sha512,
    ];

    /// The PKCS#11 number for `how` this hash is used.
    pub fn number(self, how: HashUse) -> CK_ULONG {
        NUMBERS
            .iter()
            .find(|(h, _)| *h == self)
            .map_or(0, |(_, n)| n[how as usize])
    }

    /// The hash a PKCS#11 number names for `how` it is used.
    pub fn from_number(how: HashUse, n: CK_ULONG) -> Option<Hash> {
        NUMBERS
            .iter()
            .find(|(_, ns)| ns[how as usize] == n)
            .map(|(h, _)| *h)
    }

    /// The length of its output in bytes.
    pub fn output_len(self) -> usize {
        self.alg().output_len()
    }

    /// The hash of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        self.alg().digest(data)
    }

    /// The same hash in the crypto crate.
    pub fn alg(self) -> HashAlg {
        match self {
            Hash::Sha1 => HashAlg::Sha1,
            Hash::Sha224 => HashAlg::Sha224,
            Hash::Sha256 => HashAlg::Sha256,
            Hash::Sha384 => HashAlg::Sha384,
            Hash::Sha512 => HashAlg::Sha512,
        }
    }
}

/// CK_RSA_PKCS_PSS_PARAMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pss {
    /// hashAlg (`None`: a hash this module does not compute).
    pub hash: Option<Hash>,
    /// mgf: MGF1 with this hash (`None`: another function).
    pub mgf: Option<Hash>,
    /// sLen.
    pub salt_len: usize,
}

/// CK_RSA_PKCS_OAEP_PARAMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oaep {
    /// hashAlg (`None`: a hash this module does not compute).
    pub hash: Option<Hash>,
    /// mgf: MGF1 with this hash (`None`: another function).
    pub mgf: Option<Hash>,
    /// The label (pSourceData when source is CKZ_DATA_SPECIFIED).
    pub label: Vec<u8>,
}

/// The key derivation function of an ECDH derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// CKD_NULL: the shared secret itself.
    Null,
    /// CKD_SHA*_KDF: ANSI X9.63 with this hash.
    X963(Hash),
}

/// CK_ECDH1_DERIVE_PARAMS, and which of the two ECDH mechanisms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ecdh {
    /// CKM_ECDH1_COFACTOR_DERIVE rather than CKM_ECDH1_DERIVE.
    pub cofactor: bool,
    /// kdf (`None`: one this module does not offer).
    pub kdf: Option<Kdf>,
    /// pSharedData.
    pub shared_data: Vec<u8>,
    /// pPublicData: the peer's point (raw or DER OCTET STRING).
    pub public_data: Vec<u8>,
}

/// A mechanism with its parameter, as far as the module understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// CKM_SHA_1, CKM_SHA224, ...: a digest.
    Digest(Hash),
    /// CKM_ECDSA: ECDSA over a hash the caller made.
    EcdsaRaw,
    /// CKM_ECDSA_SHA1, ...: ECDSA over the module's hash of the data.
    Ecdsa(Hash),
    /// CKM_RSA_PKCS: PKCS#1 v1.5 over data the caller encoded (a
    /// DigestInfo for a signature), or v1.5 decryption.
    RsaPkcs,
    /// CKM_SHA1_RSA_PKCS, ...: PKCS#1 v1.5 over the module's hash.
    RsaPkcsHash(Hash),
    /// CKM_RSA_X_509: raw RSA.
    RsaX509,
    /// CKM_RSA_PKCS_PSS: PSS over a hash the caller made.
    Pss(Pss),
    /// CKM_SHA1_RSA_PKCS_PSS, ...: PSS over the module's hash.
    PssHash(Hash, Pss),
    /// CKM_RSA_PKCS_OAEP.
    Oaep(Oaep),
    /// CKM_ECDH1_DERIVE and CKM_ECDH1_COFACTOR_DERIVE.
    Ecdh(Ecdh),
    /// CKM_EC_KEY_PAIR_GEN.
    EcKeyPairGen,
    /// CKM_RSA_PKCS_KEY_PAIR_GEN.
    RsaKeyPairGen,
    /// Any other mechanism, with its parameter's bytes: no operation of
    /// the module takes it.
    Other {
        /// CKM_*.
        kind: CK_MECHANISM_TYPE,
        /// The parameter.
        param: Vec<u8>,
    },
}

impl Mechanism {
    /// A mechanism without a parameter of its own (any `param` bytes given
    /// are ignored, except by [`Mechanism::Other`], which keeps them).
    pub fn plain(kind: CK_MECHANISM_TYPE, param: Vec<u8>) -> Mechanism {
        let hashed = |how| Hash::from_number(how, kind);
        match kind {
            CKM_ECDSA => Mechanism::EcdsaRaw,
            CKM_RSA_PKCS => Mechanism::RsaPkcs,
            CKM_RSA_X_509 => Mechanism::RsaX509,
            CKM_EC_KEY_PAIR_GEN => Mechanism::EcKeyPairGen,
            CKM_RSA_PKCS_KEY_PAIR_GEN => Mechanism::RsaKeyPairGen,
            _ => match (
                hashed(HashUse::Digest),
                hashed(HashUse::Ecdsa),
                hashed(HashUse::RsaPkcs),
            ) {
                (Some(h), _, _) => Mechanism::Digest(h),
                (_, Some(h), _) => Mechanism::Ecdsa(h),
                (_, _, Some(h)) => Mechanism::RsaPkcsHash(h),
                _ => Mechanism::Other { kind, param },
            },
        }
    }

    /// The hash the module computes over the data: a digest's, or a
    /// signature mechanism's that hashes on the host.
    pub fn hash(&self) -> Option<Hash> {
        match self {
            Mechanism::Digest(h)
            | Mechanism::Ecdsa(h)
            | Mechanism::RsaPkcsHash(h)
            | Mechanism::PssHash(h, _) => Some(*h),
            _ => None,
        }
    }

    /// For a signature mechanism, whether it takes `key`; `None` for any
    /// other mechanism.
    pub fn signs_with(&self, key: &KeyInfo) -> Option<bool> {
        match self {
            Mechanism::EcdsaRaw | Mechanism::Ecdsa(_) => Some(matches!(key, KeyInfo::Ec(_))),
            Mechanism::RsaPkcs
            | Mechanism::RsaPkcsHash(_)
            | Mechanism::RsaX509
            | Mechanism::Pss(_)
            | Mechanism::PssHash(..) => Some(matches!(key, KeyInfo::Rsa(_))),
            _ => None,
        }
    }
}

/// C_GetMechanismList: what the card can do, with host-side hashing.
pub fn get_mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    crate::core::general::check_slot(slot)?;
    let with = |how| Hash::ALL.map(|h| h.number(how));
    let mut v = vec![CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_ECDSA];
    v.extend(with(HashUse::Ecdsa));
    v.extend([CKM_RSA_PKCS, CKM_RSA_X_509]);
    v.extend(with(HashUse::RsaPkcs));
    v.push(CKM_RSA_PKCS_PSS);
    v.extend(with(HashUse::RsaPss));
    v.extend([
        CKM_RSA_PKCS_OAEP,
        CKM_ECDH1_DERIVE,
        CKM_ECDH1_COFACTOR_DERIVE,
    ]);
    v.extend(with(HashUse::Digest));
    Ok(v)
}

/// C_GetMechanismInfo: true key sizes (EC 256-521 bits, RSA 1024-4096).
pub fn get_mechanism_info(slot: CK_SLOT_ID, mech: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    if !get_mechanism_list(slot)?.contains(&mech) {
        return fail(CKR_MECHANISM_INVALID, "mechanism not offered");
    }
    let ec_flags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    let rsa_sign = (1024, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY);
    let (min, max, flags) = match Mechanism::plain(mech, Vec::new()) {
        Mechanism::EcKeyPairGen => (256, 521, CKF_HW | CKF_GENERATE_KEY_PAIR | ec_flags),
        Mechanism::RsaKeyPairGen => (1024, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR),
        Mechanism::EcdsaRaw | Mechanism::Ecdsa(_) => {
            (256, 521, CKF_HW | CKF_SIGN | CKF_VERIFY | ec_flags)
        }
        Mechanism::RsaPkcs | Mechanism::RsaX509 => (1024, 4096, rsa_sign.2 | CKF_DECRYPT),
        Mechanism::RsaPkcsHash(_) => rsa_sign,
        Mechanism::Digest(_) => (0, 0, CKF_DIGEST),
        // What takes a parameter: PSS, OAEP, ECDH.
        _ => match mech {
            CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
                (256, 521, CKF_HW | CKF_DERIVE | ec_flags)
            }
            CKM_RSA_PKCS_OAEP => (1024, 4096, CKF_HW | CKF_DECRYPT),
            _ => rsa_sign,
        },
    };
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: min,
        ulMaxKeySize: max,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_numbers_go_both_ways() {
        for h in Hash::ALL {
            for how in [
                HashUse::Digest,
                HashUse::Ecdsa,
                HashUse::RsaPkcs,
                HashUse::RsaPss,
                HashUse::Mgf1,
                HashUse::Kdf,
            ] {
                assert_eq!(Hash::from_number(how, h.number(how)), Some(h));
            }
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
        assert_eq!(
            Hash::Sha256.number(HashUse::RsaPss),
            CKM_SHA256_RSA_PKCS_PSS
        );
        assert_eq!(Hash::from_number(HashUse::Digest, CKM_SHA3_256), None);
    }

    #[test]
    fn plain_mechanisms() {
        assert_eq!(
            Mechanism::plain(CKM_SHA384, vec![]),
            Mechanism::Digest(Hash::Sha384)
        );
        assert_eq!(
            Mechanism::plain(CKM_ECDSA_SHA1, vec![]),
            Mechanism::Ecdsa(Hash::Sha1)
        );
        assert_eq!(
            Mechanism::plain(CKM_SHA512_RSA_PKCS, vec![1]),
            Mechanism::RsaPkcsHash(Hash::Sha512)
        );
        assert_eq!(Mechanism::plain(CKM_ECDSA, vec![1]), Mechanism::EcdsaRaw);
        assert_eq!(
            Mechanism::plain(CKM_AES_CBC, vec![1]),
            Mechanism::Other {
                kind: CKM_AES_CBC,
                param: vec![1]
            }
        );
    }
}
