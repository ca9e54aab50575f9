//! RSA: key generation, PKCS#1 v1.5 and PSS signatures, raw / PKCS#1 v1.5 /
//! OAEP decryption, the matching public-key helpers, and the EMSA-PKCS1-v1_5
//! block for a host that pads for the card.
//!
//! All arithmetic is done by the `rsa` crate. Integers cross this API as
//! big-endian byte strings. Private-key operations that take an RNG use it
//! for RSA blinding; every private-key operation also checks its result
//! against the public key (fault protection).

use alloc::{boxed::Box, vec::Vec};

use ::rsa::{
    hazmat::rsa_decrypt_and_check,
    pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey},
    traits::{PrivateKeyParts, PublicKeyParts},
    BoxedUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, PrivateKey, Pss, PublicKey,
};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::{hash::HashAlg, CryptoError};

/// Run `$body` with the type alias `$d` bound to the digest type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        with_digest!(@arms $hash, $d => $body;
            Sha1 = sha1::Sha1,
            Sha224 = sha2::Sha224,
            Sha256 = sha2::Sha256,
            Sha384 = sha2::Sha384,
            Sha512 = sha2::Sha512)
    };
    (@arms $hash:expr, $d:ident => $body:expr; $($alg:ident = $ty:ty),*) => {
        match $hash {
            $(HashAlg::$alg => {
                type $d = $ty;
                $body
            })*
        }
    };
}

/// The public exponent used when the caller gives none: 65537.
const DEFAULT_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// `bytes` without its leading zero bytes (public values only).
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A big-endian public integer as a `BoxedUint`.
fn public_uint(bytes: &[u8]) -> BoxedUint {
    BoxedUint::from_be_slice_vartime(trim(bytes))
}

/// A big-endian modulus of 1024 to 8192 bits as a `BoxedUint`.
fn modulus_uint(n: &[u8]) -> Result<BoxedUint, CryptoError> {
    let n = public_uint(n);
    if (1024..=8192).contains(&n.bit_width_vartime()) {
        Ok(n)
    } else {
        Err(CryptoError::InvalidKey)
    }
}

/// A big-endian secret integer as a `BoxedUint` of at least `min_bits`
/// precision (the precision depends only on the input length).
fn secret_uint(bytes: &[u8], min_bits: u32) -> Result<BoxedUint, CryptoError> {
    let bits = u32::try_from(bytes.len())
        .ok()
        .and_then(|l| l.checked_mul(8))
        .ok_or(CryptoError::InvalidKey)?
        .max(min_bits)
        .max(64);
    BoxedUint::from_be_slice(bytes, bits).map_err(|_| CryptoError::InvalidKey)
}

/// Move a crate-allocated secret byte string into a zeroizing buffer.
fn secret_bytes(bytes: Box<[u8]>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(bytes.into_vec())
}

/// A public key built from big-endian `n` and `e` (1024 to 8192 bits).
fn public_key(n: &[u8], e: &[u8]) -> Result<PublicKey, CryptoError> {
    PublicKey::new(public_uint(n), public_uint(e)).map_err(|_| CryptoError::InvalidKey)
}

/// Every CRT-form component of an RSA private key, big-endian, minimal
/// (no leading zero byte).
pub struct RsaComponents {
    /// Modulus n = p * q.
    pub n: Zeroizing<Vec<u8>>,
    /// Public exponent e.
    pub e: Zeroizing<Vec<u8>>,
    /// Private exponent d.
    pub d: Zeroizing<Vec<u8>>,
    /// First prime factor p.
    pub p: Zeroizing<Vec<u8>>,
    /// Second prime factor q.
    pub q: Zeroizing<Vec<u8>>,
    /// d mod (p - 1).
    pub dp: Zeroizing<Vec<u8>>,
    /// d mod (q - 1).
    pub dq: Zeroizing<Vec<u8>>,
    /// q^-1 mod p.
    pub qinv: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for RsaComponents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaComponents")
            .field("n", &self.n)
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

/// An RSA private key (two primes, CRT values precomputed).
#[derive(Clone)]
pub struct RsaKey {
    key: PrivateKey,
}

impl core::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Generate a two-prime key with a modulus of exactly `bits` bits.
    ///
    /// `bits` must be a multiple of 8 in `1024..=4096`. `public_exponent`
    /// is big-endian; empty means 65537. It must be odd and in
    /// `3..=2^33-1`.
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] for a bad size or exponent,
    /// [`CryptoError::Failed`] if generation fails.
    pub fn generate(
        bits: usize,
        public_exponent: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Self, CryptoError> {
        if !(1024..=4096).contains(&bits) || bits & 7 != 0 {
            return Err(CryptoError::InvalidInput);
        }
        let e = trim(public_exponent);
        let e = if e.is_empty() {
            &DEFAULT_EXPONENT[..]
        } else {
            e
        };
        let max = PublicKey::MAX_PUB_EXPONENT.to_be_bytes();
        let max = trim(&max);
        let too_big = e.len() > max.len() || (e.len() == max.len() && e > max);
        let last = e.last().copied().unwrap_or(0);
        if too_big || last & 1 == 0 || (e.len() == 1 && last < 3) {
            return Err(CryptoError::InvalidInput);
        }
        let key =
            PrivateKey::new_with_exp(rng, bits, public_uint(e)).map_err(|_| CryptoError::Failed)?;
        if key.n().bit_width_vartime() as usize != bits {
            return Err(CryptoError::Failed);
        }
        Ok(RsaKey { key })
    }

    /// Build a key from its big-endian components (leading zeros allowed).
    /// The CRT values are recomputed. If `p` and `q` are both empty they
    /// are recovered from `n`, `e` and `d` (NIST SP 800-56B Appendix C.2;
    /// needs `2^16 < e < 2^256`).
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] if the components are inconsistent
    /// (`n != p * q`, `d * e != 1 mod (p - 1)` or `(q - 1)`, `e` out of
    /// range, modulus below 1024 or above 8192 bits, primes wider than half
    /// the modulus, primes not recoverable, ...).
    pub fn from_components(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        p: &[u8],
        q: &[u8],
    ) -> Result<Self, CryptoError> {
        let n = modulus_uint(n)?;
        let prec = n.bits_precision();
        let d = secret_uint(d, prec)?;
        let primes = if p.is_empty() && q.is_empty() {
            Vec::new()
        } else {
            alloc::vec![secret_uint(p, prec)?, secret_uint(q, prec)?]
        };
        let key = PrivateKey::from_components(n, public_uint(e), d, primes)
            .map_err(|_| CryptoError::InvalidKey)?;
        Self::two_prime(key)
    }

    /// Build a key from its two primes and public exponent; d and the CRT
    /// values are recomputed (d = e^-1 mod lcm(p - 1, q - 1)). `n` is
    /// checked against `p * q`; pass an empty `n` to skip the check.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] if `p` or `q` is not a usable odd
    /// factor, `e` is out of range or not invertible, the modulus is below
    /// 1024 or above 8192 bits, or `n` is given and differs from `p * q`.
    pub fn from_primes(p: &[u8], q: &[u8], e: &[u8], n: &[u8]) -> Result<Self, CryptoError> {
        let bits = u32::try_from(p.len().max(q.len()))
            .ok()
            .and_then(|l| l.checked_mul(8))
            .ok_or(CryptoError::InvalidKey)?;
        let p = secret_uint(p, bits)?;
        let q = secret_uint(q, bits)?;
        let key =
            PrivateKey::from_p_q(p, q, public_uint(e)).map_err(|_| CryptoError::InvalidKey)?;
        let key = Self::two_prime(key)?;
        if !trim(n).is_empty() && trim(n) != &key.modulus()[..] {
            return Err(CryptoError::InvalidKey);
        }
        Ok(key)
    }

    /// Accept a crate key only if it has exactly two primes and a modulus
    /// of 1024 to 8192 bits.
    fn two_prime(key: PrivateKey) -> Result<Self, CryptoError> {
        let bits = key.n().bit_width_vartime();
        if key.primes().len() != 2 || !(1024..=8192).contains(&bits) {
            return Err(CryptoError::InvalidKey);
        }
        Ok(RsaKey { key })
    }

    /// All components, big-endian and minimal.
    pub fn components(&self) -> RsaComponents {
        let k = &self.key;
        let primes = k.primes();
        let uint = |v: &BoxedUint| secret_bytes(v.to_be_bytes_trimmed_vartime());
        let opt = |v: Option<&BoxedUint>| v.map(uint).unwrap_or_default();
        RsaComponents {
            n: secret_bytes(k.n_bytes()),
            e: secret_bytes(k.e_bytes()),
            d: uint(k.d()),
            p: uint(primes[0].as_ref()),
            q: uint(primes[1].as_ref()),
            dp: opt(k.dp()),
            dq: opt(k.dq()),
            qinv: k
                .crt_coefficient()
                .map(|c| uint(&Zeroizing::new(c)))
                .unwrap_or_default(),
        }
    }

    /// Serialise the key as a PKCS#1 `RSAPrivateKey` (DER), readable by
    /// [`from_bytes`](Self::from_bytes) and by OpenSSL.
    ///
    /// The DER encoder cannot fail for a key of at most 8192 bits; should
    /// it ever fail, the result is empty (which `from_bytes` rejects)
    /// rather than a panic.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self.key.to_pkcs1_der() {
            Ok(doc) => Zeroizing::new(doc.as_bytes().to_vec()),
            Err(_) => Zeroizing::new(Vec::new()),
        }
    }

    /// Load a key written by [`to_bytes`](Self::to_bytes) (any two-prime
    /// PKCS#1 `RSAPrivateKey` in DER).
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] if the encoding or the key is invalid.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = PrivateKey::from_pkcs1_der(bytes).map_err(|_| CryptoError::InvalidKey)?;
        if key.validate().is_err() {
            return Err(CryptoError::InvalidKey);
        }
        Self::two_prime(key)
    }

    /// The modulus n, big-endian, minimal.
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n_bytes().into_vec()
    }

    /// The public exponent e, big-endian, minimal.
    pub fn public_exponent(&self) -> Vec<u8> {
        self.key.e_bytes().into_vec()
    }

    /// Length of the modulus in bytes (`ceil(bits / 8)`): the length of
    /// every signature, ciphertext and raw result.
    pub fn size_bytes(&self) -> usize {
        self.key.size()
    }

    /// Length of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bit_width_vartime() as usize
    }

    /// The raw private-key operation `input^d mod n` (RSADP / RSASP1),
    /// blinded with `rng`.
    ///
    /// `input` is a big-endian integer of any length; the result is
    /// left-padded to [`size_bytes`](Self::size_bytes).
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `input >= n`,
    /// [`CryptoError::Failed`] if the operation or its check fails.
    pub fn raw_private(
        &self,
        input: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let input = trim(input);
        let prec = self.key.n_bits_precision();
        if input.len() > self.size_bytes() {
            return Err(CryptoError::InvalidInput);
        }
        let c = BoxedUint::from_be_slice(input, prec).map_err(|_| CryptoError::InvalidInput)?;
        if c >= *self.key.n().as_ref() {
            return Err(CryptoError::InvalidInput);
        }
        let m = Zeroizing::new(
            rsa_decrypt_and_check(&self.key, Some(rng), &c).map_err(|_| CryptoError::Failed)?,
        );
        let bytes = Zeroizing::new(m.to_be_bytes());
        let k = self.size_bytes();
        let mut out = Zeroizing::new(alloc::vec![0u8; k]);
        if bytes.len() >= k {
            out.copy_from_slice(&bytes[bytes.len() - k..]);
        } else {
            out[k - bytes.len()..].copy_from_slice(&bytes);
        }
        Ok(out)
    }

    /// RSASSA-PKCS1-v1_5 signature over `digest_info` as given: EMSA-PKCS1-v1_5
    /// padding (`00 01 FF.. 00 || digest_info`) without hashing or
    /// prefixing. The result is [`size_bytes`](Self::size_bytes) long.
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `digest_info` is longer than
    /// `size_bytes - 11`, [`CryptoError::Failed`] if the operation fails.
    pub fn sign_pkcs1v15_raw(&self, digest_info: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if digest_info.len() + 11 > self.size_bytes() {
            return Err(CryptoError::InvalidInput);
        }
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), digest_info)
            .map_err(|_| CryptoError::Failed)
    }

    /// RSASSA-PKCS1-v1_5 signature over a hash value: the `DigestInfo`
    /// prefix of `hash` is added, then as
    /// [`sign_pkcs1v15_raw`](Self::sign_pkcs1v15_raw).
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `digest` is not
    /// `hash.output_len()` bytes or the key is too small.
    pub fn sign_pkcs1v15(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if digest.len() != hash.output_len() {
            return Err(CryptoError::InvalidInput);
        }
        let mut di = hash.digest_info_prefix().to_vec();
        di.extend_from_slice(digest);
        self.sign_pkcs1v15_raw(&di)
    }

    /// RSASSA-PSS signature over a hash value, with MGF1 using the same
    /// hash and a salt as long as the hash, drawn from `rng` (which also
    /// blinds the private operation).
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `digest` is not
    /// `hash.output_len()` bytes or the key is too small for the hash and
    /// salt, [`CryptoError::Failed`] if the operation fails.
    pub fn sign_pss(
        &self,
        hash: HashAlg,
        digest: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Vec<u8>, CryptoError> {
        let h = hash.output_len();
        if digest.len() != h {
            return Err(CryptoError::InvalidInput);
        }
        // EMSA-PSS needs emLen >= hLen + sLen + 2, emLen = ceil((bits - 1) / 8).
        if (self.bits() - 1).div_ceil(8) < 2 * h + 2 {
            return Err(CryptoError::InvalidInput);
        }
        with_digest!(hash, D => self.key.sign_with_rng(rng, Pss::<D>::new(), digest))
            .map_err(|_| CryptoError::Failed)
    }

    /// Raw RSA decryption (RSADP) of a big-endian ciphertext, blinded;
    /// same as [`raw_private`](Self::raw_private).
    ///
    /// # Errors
    /// As [`raw_private`](Self::raw_private).
    pub fn decrypt_raw(
        &self,
        c: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.raw_private(c, rng)
    }

    /// RSAES-PKCS1-v1_5 decryption, blinded.
    ///
    /// The `rsa` crate uses *implicit rejection* (draft-irtf-cfrg-rsa-guidance
    /// §7.2): a ciphertext whose padding is invalid does **not** produce an
    /// error but a deterministic pseudo-random message, so that padding
    /// validity does not leak (Bleichenbacher / Marvin attacks).
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `c` is not
    /// [`size_bytes`](Self::size_bytes) long or not below n;
    /// [`CryptoError::Failed`] if the private operation fails.
    pub fn decrypt_pkcs1v15(
        &self,
        c: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.check_ciphertext(c)?;
        self.key
            .decrypt_blinded(rng, Pkcs1v15Encrypt, c)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Failed)
    }

    /// RSAES-OAEP decryption, blinded, with `hash` for the label hash and
    /// for MGF1; `label` `None` is the empty label.
    ///
    /// # Errors
    /// [`CryptoError::InvalidInput`] if `c` is not
    /// [`size_bytes`](Self::size_bytes) long, not below n, or fails the
    /// OAEP decoding (wrong label, wrong hash, corrupted).
    pub fn decrypt_oaep(
        &self,
        hash: HashAlg,
        label: Option<&[u8]>,
        c: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.check_ciphertext(c)?;
        let label: Box<[u8]> = label.unwrap_or_default().into();
        with_digest!(hash, D => self.key.decrypt_blinded(rng, Oaep::<D>::new_with_label(label), c))
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::InvalidInput)
    }

    /// A ciphertext must be exactly the modulus length and below n.
    fn check_ciphertext(&self, c: &[u8]) -> Result<(), CryptoError> {
        if c.len() != self.size_bytes() || public_uint(c) >= *self.key.n().as_ref() {
            return Err(CryptoError::InvalidInput);
        }
        Ok(())
    }
}

/// The EMSA-PKCS1-v1_5 encoded message (RFC 8017 §9.2 step 5) of `t`, for
/// a modulus of `k` bytes: `00 01 FF .. FF 00 || t`, with at least eight
/// `FF` bytes. `t` is usually a `DigestInfo`; it is taken as it is.
///
/// For a host that hands the block to a card's raw RSA operation, or checks
/// the result of the raw public operation against it (the `rsa` crate keeps
/// its own encoder private).
///
/// # Errors
/// [`CryptoError::InvalidInput`] if `t` is longer than `k - 11` bytes.
pub fn pkcs1v15_sign_block(t: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    if t.len() + 11 > k {
        return Err(CryptoError::InvalidInput);
    }
    let mut block = alloc::vec![0x00, 0x01];
    block.resize(k - t.len() - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(t);
    Ok(block)
}

/// MGF1 (RFC 8017, PKCS #1 v2.2) with `hash`: `mask.len()` bytes of mask XORed
/// into `mask`.
fn mgf1_xor(hash: HashAlg, seed: &[u8], mask: &mut [u8]) {
    let mut input = Zeroizing::new(Vec::with_capacity(seed.len() + 4));
    for (counter, chunk) in mask.chunks_mut(hash.output_len()).enumerate() {
        input.clear();
        input.extend_from_slice(seed);
        input.extend_from_slice(&(counter as u32).to_be_bytes());
        let block = Zeroizing::new(hash.digest(&input));
        for (m, b) in chunk.iter_mut().zip(block.iter()) {
            *m ^= b;
        }
    }
}

/// The EMSA-PSS encoded message (EMSA-PSS-ENCODE, RFC 8017) of the hash value
/// `digest` (of `hash`) with `salt` and MGF1 over `mgf`, for a modulus of
/// `bits` bits, left-padded to the modulus length: the input of the raw
/// private operation, for a host whose card signs raw RSA only. Any salt
/// length the modulus leaves room for (`emLen - hLen - 2` bytes at most).
///
/// The `rsa` crate keeps its PSS encoder private (it only encodes for its
/// own keys), so this follows the RFC; the tests check every result with
/// the crate's verifier.
///
/// # Errors
/// [`CryptoError::InvalidInput`] if `digest` is not `hash.output_len()`
/// bytes or the salt does not fit.
pub fn pss_encode(
    hash: HashAlg,
    mgf: HashAlg,
    digest: &[u8],
    salt: &[u8],
    bits: usize,
) -> Result<Vec<u8>, CryptoError> {
    let h_len = hash.output_len();
    let em_bits = bits.checked_sub(1).ok_or(CryptoError::InvalidInput)?;
    let em_len = em_bits.div_ceil(8);
    if digest.len() != h_len || em_len < h_len + salt.len() + 2 {
        return Err(CryptoError::InvalidInput);
    }
    let mut m_prime = Vec::with_capacity(8 + h_len + salt.len());
    m_prime.extend_from_slice(&[0u8; 8]);
    m_prime.extend_from_slice(digest);
    m_prime.extend_from_slice(salt);
    let h = hash.digest(&m_prime);
    // DB = PS || 0x01 || salt, masked with MGF1(H).
    let db_len = em_len - h_len - 1;
    let mut db = alloc::vec![0u8; db_len];
    db[db_len - salt.len() - 1] = 0x01;
    db[db_len - salt.len()..].copy_from_slice(salt);
    mgf1_xor(mgf, &h, &mut db);
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    let k = bits.div_ceil(8);
    let mut em = alloc::vec![0u8; k - em_len];
    em.extend_from_slice(&db);
    em.extend_from_slice(&h);
    em.push(0xBC);
    Ok(em)
}

/// EME-OAEP decoding (RSAES-OAEP-DECRYPT, RFC 8017) of `em`, the result of the
/// raw private operation (as long as the modulus), with `hash` for the
/// label, MGF1 over `mgf` and `label`: the message. The checks run in
/// constant time and every failure is the same error, so a caller that
/// reports only success or failure tells an attacker nothing more
/// (Manger's attack).
///
/// The `rsa` crate keeps its OAEP decoder private (it only decodes for its
/// own keys), so this follows the RFC; the tests decode the crate's
/// ciphertexts.
///
/// # Errors
/// [`CryptoError::InvalidInput`] for any decoding failure (or `em` too
/// short for `hash`).
pub fn oaep_decode(
    hash: HashAlg,
    mgf: HashAlg,
    label: &[u8],
    em: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let h_len = hash.output_len();
    let k = em.len();
    if k < 2 * h_len + 2 {
        return Err(CryptoError::InvalidInput);
    }
    let mut em = Zeroizing::new(em.to_vec());
    let (y, rest) = em.split_at_mut(1);
    let (seed, db) = rest.split_at_mut(h_len);
    mgf1_xor(mgf, db, seed);
    mgf1_xor(mgf, seed, db);
    let l_hash = hash.digest(label);
    let mut good = y[0].ct_eq(&0) & db[..h_len].ct_eq(&l_hash);
    // The first 0x01 after lHash, with only zeros before it.
    let mut looking = subtle::Choice::from(1);
    let mut index = 0u32;
    for (i, b) in db[h_len..].iter().enumerate() {
        let one = b.ct_eq(&1);
        let zero = b.ct_eq(&0);
        index.conditional_assign(&(i as u32), looking & one);
        good &= !looking | one | zero;
        looking &= !one;
    }
    good &= !looking;
    if !bool::from(good) {
        return Err(CryptoError::InvalidInput);
    }
    Ok(Zeroizing::new(db[h_len + index as usize + 1..].to_vec()))
}

/// The public key (`n`, `e`) for a verification over `digest`, or `None`
/// when the key is unusable or `digest` is not a `hash` value.
fn verifying_key(n: &[u8], e: &[u8], hash: HashAlg, digest: &[u8]) -> Option<PublicKey> {
    if digest.len() != hash.output_len() {
        return None;
    }
    public_key(n, e).ok()
}

/// Verify an RSASSA-PKCS1-v1_5 signature over a hash value with the public
/// key (`n`, `e`, big-endian). Returns `false` for a bad signature and for
/// any malformed input (wrong digest length, key outside 1024..=8192 bits,
/// signature not exactly the modulus length).
pub fn verify_pkcs1v15(n: &[u8], e: &[u8], hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
    let Some(key) = verifying_key(n, e, hash, digest) else {
        return false;
    };
    let scheme = Pkcs1v15Sign {
        hash_len: Some(hash.output_len()),
        prefix: hash.digest_info_prefix().into(),
    };
    key.verify(scheme, digest, sig).is_ok()
}

/// The raw public operation `s^e mod n`, left-padded to the modulus length
/// (what CKM_RSA_X_509 verification compares). `InvalidInput` when `s` is
/// not below the modulus, `InvalidKey` for a bad modulus or exponent.
pub fn public_raw(n: &[u8], e: &[u8], s: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key = public_key(n, e)?;
    let k = trim(n).len();
    let s = trim(s);
    if s.len() > k {
        return Err(CryptoError::InvalidInput);
    }
    let m = BoxedUint::from_be_slice(s, key.n_bits_precision())
        .map_err(|_| CryptoError::InvalidInput)?;
    let c = ::rsa::hazmat::rsa_encrypt(&key, &m).map_err(|_| CryptoError::InvalidInput)?;
    let bytes = c.to_be_bytes_trimmed_vartime();
    if bytes.len() > k {
        return Err(CryptoError::InvalidInput);
    }
    let mut out = alloc::vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    Ok(out)
}

/// Verify an RSASSA-PSS signature over a hash value (MGF1 with the same
/// hash, salt length equal to the hash length). Returns `false` for a bad
/// signature and for any malformed input.
pub fn verify_pss(n: &[u8], e: &[u8], hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
    verify_pss_salt(n, e, hash, digest, hash.output_len(), sig)
}

/// As [`verify_pss`] with a salt of `salt_len` bytes.
pub fn verify_pss_salt(
    n: &[u8],
    e: &[u8],
    hash: HashAlg,
    digest: &[u8],
    salt_len: usize,
    sig: &[u8],
) -> bool {
    let Some(key) = verifying_key(n, e, hash, digest) else {
        return false;
    };
    with_digest!(hash, D => key.verify(Pss::<D>::new_with_salt(salt_len), digest, sig)).is_ok()
}

/// RSAES-PKCS1-v1_5 encryption of `msg` to the public key (`n`, `e`).
///
/// # Errors
/// [`CryptoError::InvalidKey`] for a bad public key,
/// [`CryptoError::InvalidInput`] if `msg` is longer than `size - 11`.
pub fn encrypt_pkcs1v15(
    n: &[u8],
    e: &[u8],
    msg: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    let key = public_key(n, e)?;
    key.encrypt(rng, Pkcs1v15Encrypt, msg)
        .map_err(|_| CryptoError::InvalidInput)
}

/// RSAES-OAEP encryption of `msg` to the public key (`n`, `e`) with `hash`
/// for the label hash and MGF1, and the empty label.
///
/// # Errors
/// [`CryptoError::InvalidKey`] for a bad public key,
/// [`CryptoError::InvalidInput`] if `msg` is longer than
/// `size - 2 * hash_len - 2`.
pub fn encrypt_oaep(
    n: &[u8],
    e: &[u8],
    hash: HashAlg,
    msg: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    encrypt_oaep_with_label(n, e, hash, None, msg, rng)
}

/// As [`encrypt_oaep`], with an optional OAEP label (`None` = empty).
///
/// # Errors
/// As [`encrypt_oaep`].
pub fn encrypt_oaep_with_label(
    n: &[u8],
    e: &[u8],
    hash: HashAlg,
    label: Option<&[u8]>,
    msg: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    let key = public_key(n, e)?;
    let label: Box<[u8]> = label.unwrap_or_default().into();
    with_digest!(hash, D => key.encrypt(rng, Oaep::<D>::new_with_label(label), msg))
        .map_err(|_| CryptoError::InvalidInput)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{hex, rng};

    // A 1024-bit key, signatures and ciphertexts made by OpenSSL 3.0:
    //   openssl genrsa -traditional 1024; printf abc > msg; printf 'secret message' > pt
    //   openssl dgst -sha256 -sign key msg
    //   openssl dgst -sha256 -sign key -sigopt rsa_padding_mode:pss \
    //       -sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256 msg
    //   openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:oaep \
    //       -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in pt
    //   openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:pkcs1 -in pt
    const KAT_KEY_PKCS1: &str = concat!(
        "3082025b02010002818100b12ad9abf4b3f22d85d7bd42f680148820b299b2a7298e665d28e332f7dd0bd1adeef38e95",
        "77510f5471008ed55fbb39175e5da5a83d14919ddc78f85507c663acff6e5aa39d6064f3a9c02915a1e7fe2495f542aa",
        "6d31d96104fd130050d3bc571fdb10fd2277ad5aa4e3dc96be21211ff2f41f0e9414c6a75654ee4e0c67910203010001",
        "0281805249fce089c02af449fe72c1ef8c7dfcdc7318408ab41a98211d24aa3fc643ff1832ac9dc57eadffd8d0c3d993",
        "f1eb1c11669b489e640071c248ed472af779857c985c7edb1045bc85d1ec33bf8e7007e6c8a177e43c689a4e092f76ad",
        "a9aec936e97b8deea65890d1f1c9c6e6607c3dfb2d37579b65379fa98f00cf1037ea01024100dc7ce847a234169386fc",
        "f90b29d650e96d889d92b6e82e4c71809bde8131ba6e92a191514e4507b5d79a2056a49c090b60e115afd87c7f7e9d4f",
        "dfcb9faf04e9024100cdb3c370a9af8596eda9de256cc0a0839a2f3fdda752949de6cf039eb03b968df8d07bbe1df9b3",
        "9714249164d7c3bee27be5c784c8fda7acd0831b77b6d9c46902407e3c7d78d5e360b1a26d9fe0c6595005f5926c351d",
        "c79d0a6349b0f4199ff10f71a05364eb9d16270483d7d40376daaecb0ed3add412a3a44848fce6c64c1c510240157197",
        "fe36b2458ae65bbefcc7c98cf22b30a1c7c999a24493bb20f57a09bc3830a80b3e5681a1672e826165d1d8661dd62cae",
        "0ff9a3f7c6dc35ceb73c2897810240787b17c046f6b1e50a3ac79a14e2c4c2b1e95e8736e65db07a012ce8f7ea2c0419",
        "2b9d0ede529398c0fb70c8c8989f58cee70f63b2fa56312293f31844d9a178",
    );
    const KAT_SIG_V15_SHA256_ABC: &str = concat!(
        "6092478125e3f0814b4040013a4c4c426d9cf3a9bd99f8b1691ddf9bf578141f1d1794aaad4b615ac9aecb227135f05a",
        "fb253a714861abdddbb9403353488f6cf0da5621d6cc28744dfa46c01e7d4ba3bd2d1674a58affa60fa665429152c934",
        "4f808c09f465545d992bb748aa693cbd2f3c55e3c9901d7c5819b9cc08e8bf5e",
    );
    const KAT_SIG_PSS_SHA256_ABC: &str = concat!(
        "a8bacecb697b3d1dd39afba4be7622e6d48c9ee2782a7648b678fc527961772ac2bbe2eb5baeab0abda7548e61236cfb",
        "5d2541f4857078fdd7468a642811be9dc24bed76db4264186db2ace7125e2bdd1ea6505ff37a291a61b19bf8541778e1",
        "8b426e3596478f7d6613e5c823fa84aa1949f5d88ea6357850520333ecc1c901",
    );
    const KAT_OAEP_SHA256: &str = concat!(
        "9537eb80515ac4ef5f4202d746dfbd8739cb9208e287d990167d864ddcdcba3770540a52567490d5adc4715da3a855b6",
        "8de7d1538edc2bec2ef04627d3167017b39473a83654a5006fbd94f0b77d2898a62bb3ec3bdae2ff1d68b90baa5660f3",
        "01274e9b3717e133fa48c376c61a2c67cf6f7e9792b63262b1e5008b8686080a",
    );
    const KAT_V15_CT: &str = concat!(
        "6de901f0e4731a90ad663b851d85addd6a199b6f8f269ff8367c57e07253323e54ca5e83ddbbb8e194b06a637ffce092",
        "d3217fba58b0f6ed86d2813619731d53ff53e2c3b3f7c6d74385b9465dc699c081614e6066b06d79030b528b7fc5fd26",
        "a99203e42ba619dbc7d7898ce4ff4777e9125c0c2c08e8312fbcd0cd1d6ee233",
    );

    fn kat_key() -> RsaKey {
        RsaKey::from_bytes(&hex(KAT_KEY_PKCS1)).unwrap()
    }

    fn test_key() -> RsaKey {
        RsaKey::generate(1024, &[], &mut rng()).unwrap()
    }

    #[test]
    fn pss_encoding_verifies_with_the_rsa_crate_at_every_salt_length() {
        let key = kat_key();
        let (n, e) = (key.modulus(), key.public_exponent());
        for hash in HashAlg::ALL {
            let digest = hash.digest(b"abc");
            let max = (key.bits() - 1).div_ceil(8) - hash.output_len() - 2;
            for salt_len in [0, 1, hash.output_len(), max]
                .into_iter()
                .filter(|l| *l <= max)
            {
                let salt = alloc::vec![0x5A; salt_len];
                let em = pss_encode(hash, hash, &digest, &salt, key.bits()).unwrap();
                let sig = key.raw_private(&em, &mut rng()).unwrap();
                assert!(
                    verify_pss_salt(&n, &e, hash, &digest, salt_len, &sig),
                    "{hash:?} salt {salt_len}"
                );
                assert!(!verify_pss_salt(&n, &e, hash, &digest, salt_len + 1, &sig));
            }
            let too_long = alloc::vec![0; max + 1];
            assert_eq!(
                pss_encode(hash, hash, &digest, &too_long, key.bits()),
                Err(CryptoError::InvalidInput)
            );
        }
        // The openssl known answer: SHA-256, salt 32.
        let digest = HashAlg::Sha256.digest(b"abc");
        assert!(verify_pss_salt(
            &n,
            &e,
            HashAlg::Sha256,
            &digest,
            32,
            &hex(KAT_SIG_PSS_SHA256_ABC)
        ));
    }

    #[test]
    fn oaep_decoding_reads_the_rsa_crates_ciphertexts_with_any_hash_and_label() {
        let key = kat_key();
        let public = key.key.to_public_key();
        let msg = b"secret message";
        macro_rules! encrypt {
            ($d:ty, $m:ty, $label:expr) => {
                public
                    .encrypt(
                        &mut rng(),
                        Oaep::<$d, $m>::new_with_mgf_hash_and_label($label.to_vec()),
                        msg,
                    )
                    .unwrap()
            };
        }
        let cases = [
            (
                HashAlg::Sha1,
                HashAlg::Sha1,
                encrypt!(sha1::Sha1, sha1::Sha1, b""),
            ),
            (
                HashAlg::Sha224,
                HashAlg::Sha224,
                encrypt!(sha2::Sha224, sha2::Sha224, b"l"),
            ),
            (
                HashAlg::Sha256,
                HashAlg::Sha1,
                encrypt!(sha2::Sha256, sha1::Sha1, b"label"),
            ),
            (
                HashAlg::Sha384,
                HashAlg::Sha384,
                encrypt!(sha2::Sha384, sha2::Sha384, b"label"),
            ),
            (
                HashAlg::Sha1,
                HashAlg::Sha512,
                encrypt!(sha1::Sha1, sha2::Sha512, b""),
            ),
        ];
        for (i, (hash, mgf, ct)) in cases.iter().enumerate() {
            let label: &[u8] = [&b""[..], b"l", b"label", b"label", b""][i];
            let em = key.decrypt_raw(ct, &mut rng()).unwrap();
            let pt = oaep_decode(*hash, *mgf, label, &em).unwrap();
            assert_eq!(&pt[..], msg, "{hash:?}/{mgf:?}");
            assert_eq!(
                oaep_decode(*hash, *mgf, b"other", &em).err(),
                Some(CryptoError::InvalidInput),
                "wrong label"
            );
            let other = if *mgf == HashAlg::Sha1 {
                HashAlg::Sha256
            } else {
                HashAlg::Sha1
            };
            assert!(oaep_decode(*hash, other, label, &em).is_err(), "wrong MGF");
        }
        // openssl's known answer: SHA-256, no label.
        let em = key.decrypt_raw(&hex(KAT_OAEP_SHA256), &mut rng()).unwrap();
        let pt = oaep_decode(HashAlg::Sha256, HashAlg::Sha256, b"", &em).unwrap();
        assert_eq!(&pt[..], b"secret message");
    }

    #[test]
    fn openssl_known_answers() {
        let key = kat_key();
        assert_eq!(key.bits(), 1024);
        assert_eq!(key.size_bytes(), 128);
        assert_eq!(key.public_exponent(), alloc::vec![1, 0, 1]);
        let (n, e) = (key.modulus(), key.public_exponent());
        let h = HashAlg::Sha256.digest(b"abc");
        // PKCS#1 v1.5 is deterministic: same bytes as OpenSSL.
        let sig = key.sign_pkcs1v15(HashAlg::Sha256, &h).unwrap();
        assert_eq!(sig, hex(KAT_SIG_V15_SHA256_ABC));
        assert!(verify_pkcs1v15(&n, &e, HashAlg::Sha256, &h, &sig));
        // OpenSSL's PSS signature verifies.
        assert!(verify_pss(
            &n,
            &e,
            HashAlg::Sha256,
            &h,
            &hex(KAT_SIG_PSS_SHA256_ABC)
        ));
        assert!(!verify_pss(&n, &e, HashAlg::Sha256, &h, &sig));
        // OpenSSL's ciphertexts decrypt.
        let pt = key
            .decrypt_oaep(HashAlg::Sha256, None, &hex(KAT_OAEP_SHA256), &mut rng())
            .unwrap();
        assert_eq!(&pt[..], b"secret message");
        let pt = key.decrypt_pkcs1v15(&hex(KAT_V15_CT), &mut rng()).unwrap();
        assert_eq!(&pt[..], b"secret message");
        // Serialisation is PKCS#1 DER, byte for byte.
        assert_eq!(&key.to_bytes()[..], &hex(KAT_KEY_PKCS1)[..]);
    }

    #[test]
    fn crate_verifier_accepts_our_signature() {
        // Independent path: the rsa crate's own PKCS#1 v1.5 verifier with
        // its own DigestInfo prefix.
        let key = test_key();
        let h = HashAlg::Sha384.digest(b"picohsm");
        let sig = key.sign_pkcs1v15(HashAlg::Sha384, &h).unwrap();
        let public = key.key.to_public_key();
        public
            .pkcs1v15_verify_prehash::<sha2::Sha384>(&h, &sig)
            .unwrap();
        let pss = key.sign_pss(HashAlg::Sha256, &h[..32], &mut rng()).unwrap();
        public
            .pss_verify_prehash::<sha2::Sha256>(&h[..32], &pss)
            .unwrap();
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = test_key();
        let (n, e) = (key.modulus(), key.public_exponent());
        for hash in HashAlg::ALL {
            let h = hash.digest(b"message");
            let sig = key.sign_pkcs1v15(hash, &h).unwrap();
            assert_eq!(sig.len(), 128);
            assert!(verify_pkcs1v15(&n, &e, hash, &h, &sig), "{hash:?}");
            let mut bad = h.clone();
            bad[0] ^= 1;
            assert!(!verify_pkcs1v15(&n, &e, hash, &bad, &sig));
            assert!(!verify_pkcs1v15(&n, &e, hash, &h, &sig[1..]));
            // Raw form with an explicit DigestInfo gives the same signature.
            let mut di = hash.digest_info_prefix().to_vec();
            di.extend_from_slice(&h);
            assert_eq!(key.sign_pkcs1v15_raw(&di).unwrap(), sig);

            // PSS: SHA-512 with a 64-byte salt does not fit a 1024-bit key.
            if hash == HashAlg::Sha512 {
                assert_eq!(
                    key.sign_pss(hash, &h, &mut rng()),
                    Err(CryptoError::InvalidInput)
                );
                continue;
            }
            let pss = key.sign_pss(hash, &h, &mut rng()).unwrap();
            assert_eq!(pss.len(), 128);
            assert!(verify_pss(&n, &e, hash, &h, &pss), "{hash:?}");
            assert!(!verify_pss(&n, &e, hash, &bad, &pss));
            // Randomised salt.
            assert_ne!(key.sign_pss(hash, &h, &mut rng()).unwrap(), pss);
        }
        // Wrong digest length and oversized DigestInfo.
        assert_eq!(
            key.sign_pkcs1v15(HashAlg::Sha256, &[0; 20]),
            Err(CryptoError::InvalidInput)
        );
        assert_eq!(
            key.sign_pkcs1v15_raw(&[1; 118]),
            Err(CryptoError::InvalidInput)
        );
        assert!(key.sign_pkcs1v15_raw(&[1; 117]).is_ok());
        assert!(key.sign_pkcs1v15_raw(&[]).is_ok());
        assert!(!verify_pkcs1v15(
            &[],
            &e,
            HashAlg::Sha1,
            &[0; 20],
            &[0; 128]
        ));
        assert!(!verify_pss(&n, &[], HashAlg::Sha1, &[0; 20], &[0; 128]));
    }

    #[test]
    fn sign_block_is_what_the_crate_signs() {
        // The raw public operation on the crate's PKCS#1 v1.5 signature
        // recovers its encoded message: ours must be the same bytes.
        let key = kat_key();
        let (n, e) = (key.modulus(), key.public_exponent());
        for t in [&b""[..], b"hello world", &[0xA5; 117]] {
            let sig = key.sign_pkcs1v15_raw(t).unwrap();
            let em = public_raw(&n, &e, &sig).unwrap();
            assert_eq!(pkcs1v15_sign_block(t, 128).unwrap(), em);
        }
        let block = pkcs1v15_sign_block(&[7; 3], 16).unwrap();
        assert_eq!(block, [&[0, 1][..], &[0xFF; 10], &[0, 7, 7, 7]].concat());
        assert_eq!(
            pkcs1v15_sign_block(&[0; 118], 128),
            Err(CryptoError::InvalidInput)
        );
        assert_eq!(pkcs1v15_sign_block(&[], 10), Err(CryptoError::InvalidInput));
    }

    #[test]
    fn decrypt_round_trip() {
        let key = test_key();
        let (n, e) = (key.modulus(), key.public_exponent());
        let mut r = rng();
        let msg = b"attack at dawn";

        // PKCS#1 v1.5.
        let c = encrypt_pkcs1v15(&n, &e, msg, &mut r).unwrap();
        assert_eq!(&key.decrypt_pkcs1v15(&c, &mut r).unwrap()[..], msg);
        assert_eq!(
            encrypt_pkcs1v15(&n, &e, &[0; 118], &mut r),
            Err(CryptoError::InvalidInput)
        );

        // Raw: decrypting the v1.5 ciphertext shows the padding.
        let em = key.decrypt_raw(&c, &mut r).unwrap();
        assert_eq!(em.len(), 128);
        assert_eq!(&em[..2], &[0x00, 0x02]);
        assert!(em.ends_with(msg));
        // Raw private then raw public (c = m^e) round trip via the crate.
        let m = [0x42u8; 5];
        let s = key.raw_private(&m, &mut r).unwrap();
        let back = ::rsa::hazmat::rsa_encrypt(
            &key.key.to_public_key(),
            &BoxedUint::from_be_slice(&s, key.key.n_bits_precision()).unwrap(),
        )
        .unwrap();
        assert_eq!(&back.to_be_bytes_trimmed_vartime()[..], &m[..]);
        // Input must be below n.
        assert_eq!(key.raw_private(&n, &mut r), Err(CryptoError::InvalidInput));
        assert_eq!(
            key.raw_private(&[0xFF; 129], &mut r),
            Err(CryptoError::InvalidInput)
        );
        let mut long_zero = alloc::vec![0u8; 10];
        long_zero.extend_from_slice(&m);
        assert_eq!(key.raw_private(&long_zero, &mut r).unwrap(), s);

        // OAEP with every hash that fits, with and without label.
        for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
            let c = encrypt_oaep(&n, &e, hash, msg, &mut r).unwrap();
            let pt = key.decrypt_oaep(hash, None, &c, &mut r).unwrap();
            assert_eq!(&pt[..], msg, "{hash:?}");
            let c = encrypt_oaep_with_label(&n, &e, hash, Some(b"label"), msg, &mut r).unwrap();
            assert_eq!(
                &key.decrypt_oaep(hash, Some(b"label"), &c, &mut r).unwrap()[..],
                msg
            );
            assert_eq!(
                key.decrypt_oaep(hash, None, &c, &mut r),
                Err(CryptoError::InvalidInput)
            );
        }
        let c = encrypt_oaep(&n, &e, HashAlg::Sha256, msg, &mut r).unwrap();
        assert_eq!(
            key.decrypt_oaep(HashAlg::Sha1, None, &c, &mut r),
            Err(CryptoError::InvalidInput)
        );
        let mut bad = c.clone();
        bad[127] ^= 1;
        assert_eq!(
            key.decrypt_oaep(HashAlg::Sha256, None, &bad, &mut r),
            Err(CryptoError::InvalidInput)
        );
        assert_eq!(
            key.decrypt_oaep(HashAlg::Sha256, None, &c[1..], &mut r),
            Err(CryptoError::InvalidInput)
        );
        assert_eq!(
            key.decrypt_pkcs1v15(&n, &mut r),
            Err(CryptoError::InvalidInput)
        );
        assert_eq!(
            encrypt_oaep(&n, &e, HashAlg::Sha512, msg, &mut r),
            Err(CryptoError::InvalidInput)
        );
    }

    #[test]
    fn components_round_trip() {
        let key = kat_key();
        let c = key.components();
        for v in [&c.n, &c.e, &c.d, &c.p, &c.q, &c.dp, &c.dq, &c.qinv] {
            assert!(!v.is_empty());
            assert_ne!(v[0], 0);
        }
        assert_eq!(&c.n[..], &key.modulus()[..]);
        // Compare with the CRT values OpenSSL stored in the DER.
        let der = hex(KAT_KEY_PKCS1);
        for v in [&c.n, &c.d, &c.p, &c.q, &c.dp, &c.dq, &c.qinv] {
            assert!(der.windows(v.len()).any(|w| w == &v[..]));
        }
        let again = RsaKey::from_components(&c.n, &c.e, &c.d, &c.p, &c.q).unwrap();
        assert_eq!(&again.to_bytes()[..], &der[..]);
        // Leading zeros are accepted.
        let z = |v: &[u8]| [&[0u8, 0][..], v].concat();
        let again =
            RsaKey::from_components(&z(&c.n), &z(&c.e), &z(&c.d), &z(&c.p), &z(&c.q)).unwrap();
        assert_eq!(again.modulus(), key.modulus());
        // Inconsistent components are refused.
        assert_eq!(
            RsaKey::from_components(&c.n, &c.e, &c.d, &c.q, &c.q).err(),
            Some(CryptoError::InvalidKey)
        );
        assert_eq!(
            RsaKey::from_components(&c.n, &[3], &c.d, &c.p, &c.q).err(),
            Some(CryptoError::InvalidKey)
        );
        assert_eq!(
            RsaKey::from_components(&[], &c.e, &c.d, &c.p, &c.q).err(),
            Some(CryptoError::InvalidKey)
        );
        // From the primes alone, and with p/q recovered from (n, e, d).
        // (d may differ: mod lcm(p-1, q-1) instead of OpenSSL's choice,
        // but dp, dq and qinv are unique.)
        let again = RsaKey::from_primes(&c.p, &c.q, &c.e, &c.n).unwrap();
        let c2 = again.components();
        for (a, b) in [
            (&c.n, &c2.n),
            (&c.dp, &c2.dp),
            (&c.dq, &c2.dq),
            (&c.qinv, &c2.qinv),
        ] {
            assert_eq!(a, b);
        }
        let again = RsaKey::from_primes(&c.p, &c.q, &c.e, &[]).unwrap();
        assert_eq!(again.modulus(), key.modulus());
        let mut other_n = c.n.to_vec();
        other_n[100] ^= 2;
        assert!(RsaKey::from_primes(&c.p, &c.q, &c.e, &other_n).is_err());
        assert!(RsaKey::from_primes(&c.p, &c.p, &c.e, &[]).is_err());
        assert!(RsaKey::from_primes(&[], &c.q, &c.e, &[]).is_err());
        let again = RsaKey::from_components(&c.n, &c.e, &c.d, &[], &[]).unwrap();
        assert_eq!(again.modulus(), key.modulus());
        assert!(!again.components().qinv.is_empty());
        assert!(RsaKey::from_bytes(&der[..der.len() - 1]).is_err());
        assert!(RsaKey::from_bytes(&[]).is_err());

        // A fresh key with a non-default exponent round-trips too.
        let key = RsaKey::generate(1032, &[0x00, 0x03], &mut rng()).unwrap();
        assert_eq!(key.bits(), 1032);
        assert_eq!(key.size_bytes(), 129);
        assert_eq!(key.public_exponent(), alloc::vec![3]);
        let c = key.components();
        let again = RsaKey::from_components(&c.n, &c.e, &c.d, &c.p, &c.q).unwrap();
        assert_eq!(*again.to_bytes(), *key.to_bytes());
        let again = RsaKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(again.components().qinv, c.qinv);
        assert_eq!(again.key.n(), key.key.n());
    }

    #[test]
    fn generate_rejects_bad_parameters() {
        let mut r = rng();
        for bits in [0, 512, 1016, 1028, 4104, 8192] {
            assert_eq!(
                RsaKey::generate(bits, &[], &mut r).err(),
                Some(CryptoError::InvalidInput),
                "{bits}"
            );
        }
        for e in [
            &[1u8][..],
            &[2],
            &[0x01, 0x00, 0x00],
            &[0x02, 0x00, 0x00, 0x00, 0x01],
        ] {
            assert_eq!(
                RsaKey::generate(1024, e, &mut r).err(),
                Some(CryptoError::InvalidInput),
                "{e:?}"
            );
        }
    }
}
