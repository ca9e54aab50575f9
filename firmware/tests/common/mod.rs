//! Shared helpers for the firmware's command tests: an in-memory card.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use picohsm_crypto::ec;
use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::codes::AID;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, AuthRequest};
use picohsm_wire::{apdu, tlv};

/// Storage in RAM, shared between clones so a card can be "restarted".
#[derive(Clone, Default)]
pub struct Mem(pub Arc<Mutex<Option<Vec<u8>>>>);

impl Storage for Mem {
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn store(&mut self, image: &[u8]) -> Result<(), StorageError> {
        *self.0.lock().unwrap() = Some(image.to_vec());
        Ok(())
    }
}

/// Deterministic randomness (xorshift) for repeatable tests.
pub struct Xs(pub u64);
impl CardRng for Xs {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

pub const PIN: &[u8] = b"648219";
pub const SO_PIN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];

/// INITIALIZE's data (docs/protocol.md §4.1): the options, the user PIN if any, the test
/// SO-PIN, then `extra` TLVs.
pub fn init_data(options: u8, pin: Option<&[u8]>, extra: &[u8]) -> Vec<u8> {
    let mut d = vec![0x80, 2, 0, options];
    if let Some(pin) = pin {
        d.extend_from_slice(&[0x81, pin.len() as u8]);
        d.extend_from_slice(pin);
    }
    d.extend_from_slice(&[0x82, 8]);
    d.extend_from_slice(&SO_PIN);
    d.extend_from_slice(extra);
    d
}

/// A card with its storages.
pub struct T {
    pub card: Card,
    pub flash: Mem,
    pub otp: Mem,
}

impl T {
    pub fn new() -> T {
        Self::with(Mem::default(), Mem::default(), 7)
    }
    pub fn with(flash: Mem, otp: Mem, seed: u64) -> T {
        let card = Card::new(
            Box::new(flash.clone()),
            Box::new(otp.clone()),
            Box::new(Xs(seed | 1)),
            CardConfig::default(),
        )
        .expect("card");
        let mut t = T { card, flash, otp };
        t.card.power_on();
        t
    }
    /// Restart: same flash and OTP, new process.
    pub fn restart(self) -> T {
        Self::with(self.flash, self.otp, 99)
    }
    /// Sends raw bytes, returns (data, sw).
    pub fn raw(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let r = self.card.transmit(apdu);
        assert!(r.len() >= 2, "response without SW");
        let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        (r[..r.len() - 2].to_vec(), sw)
    }
    /// Sends a command with extended lengths when needed.
    pub fn cmd(
        &mut self,
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        ne: usize,
    ) -> (Vec<u8>, u16) {
        self.raw(&apdu::build(cla, ins, p1, p2, data, ne))
    }
    pub fn select(&mut self) -> Vec<u8> {
        let (d, sw) = self.cmd(0, 0xA4, 4, 0, AID, 256);
        assert_eq!(sw, 0x9000);
        d
    }
    /// Selects and initialises with PIN, SO-PIN and `extra` TLVs.
    pub fn init(&mut self, extra: &[u8]) {
        self.select();
        let d = init_data(1, Some(PIN), &[&[0x91, 1, 3], extra].concat());
        let (_, sw) = self.cmd(0x80, 0x50, 0, 0, &d, 0);
        assert_eq!(sw, 0x9000);
        self.select();
    }
    /// A new card, initialised, with the user PIN verified.
    pub fn logged_in() -> T {
        let mut t = T::new();
        t.init(&[]);
        t.login();
        t
    }
    /// SIGN with key `id` and algorithm `alg` over `data`: (signature, SW).
    pub fn sign(&mut self, id: u8, alg: u8, data: &[u8]) -> (Vec<u8>, u16) {
        self.cmd(0x80, 0x68, id, alg, data, 65536)
    }
    pub fn login(&mut self) {
        let (_, sw) = self.cmd(0, 0x20, 0, 0x81, PIN, 0);
        assert_eq!(sw, 0x9000);
    }
    /// Generates an EC P-256 key with OpenSC's template; returns the request.
    pub fn keygen_p256(&mut self, id: u8) -> Vec<u8> {
        let (d, sw) = self.cmd(0, 0x46, id, 0, &p256_template(), 65536);
        assert_eq!(sw, 0x9000, "keygen");
        d
    }
}

/// The public key template (the content of 7F49) OpenSC sends for an EC
/// key on `curve` (docs/protocol.md §7.1): the algorithm and the domain parameters.
pub fn ec_public_key(curve: Curve) -> Vec<u8> {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, cvc::oid::ECDSA_SHA256);
    for (t, v) in [
        (0x81, curve.prime()),
        (0x82, curve.a()),
        (0x83, curve.b()),
        (0x84, curve.generator()),
        (0x85, curve.order()),
        (0x87, curve.cofactor()),
    ] {
        tlv::push(&mut pk, t, v);
    }
    pk
}

/// The public key template of an RSA key of `bits` with e = 65537.
pub fn rsa_public_key(bits: u16) -> Vec<u8> {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, cvc::oid::RSA_V15_SHA256);
    tlv::push(&mut pk, 0x82, &[1, 0, 1]);
    tlv::push(&mut pk, 0x02, &bits.to_be_bytes());
    pk
}

/// A key-generation template: profile 0, the CAR if any, the public key
/// template `pk`, the CHR if any.
pub fn keygen_template(pk: &[u8], car: Option<&[u8]>, chr: Option<&[u8]>) -> Vec<u8> {
    let mut t = Vec::new();
    tlv::push(&mut t, 0x5F29, &[0]);
    if let Some(car) = car {
        tlv::push(&mut t, 0x42, car);
    }
    tlv::push(&mut t, 0x7F49, pk);
    if let Some(chr) = chr {
        tlv::push(&mut t, 0x5F20, chr);
    }
    t
}

/// [`keygen_template`] for an EC key on `curve`.
pub fn ec_template(curve: Curve, car: Option<&[u8]>, chr: Option<&[u8]>) -> Vec<u8> {
    keygen_template(&ec_public_key(curve), car, chr)
}

/// The key-generation template OpenSC sends for secp256r1 (docs/protocol.md §7.1): its
/// placeholder CAR and a CHR of its own.
pub fn p256_template() -> Vec<u8> {
    ec_template(Curve::P256, Some(b"UTCA00001"), Some(b"ZZPHSMXXXXX00001"))
}

/// The EC point (86) of a key's authenticated request, as GENERATE
/// returns it.
pub fn ec_point(request: &[u8]) -> Vec<u8> {
    let r = AuthRequest::parse(request).unwrap();
    r.cert.key_field(0x86).unwrap().to_vec()
}

/// Whether `der`, an ECDSA signature as the card returns it, signs
/// `digest` with the P-256 key `q`.
pub fn p256_verifies(q: &[u8], digest: &[u8], der: &[u8]) -> bool {
    let raw = ec::der_to_raw(der, 32).unwrap();
    ec::verify_prehash(Curve::P256, q, digest, &raw)
}
