//! Shared helpers for the firmware's command tests: an in-memory card.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::apdu;
use picohsm_wire::codes::AID;

/// Storage in RAM, shared between clones so a card can be "restarted".
#[derive(Clone, Default)]
pub struct Mem(pub Arc<Mutex<Option<Vec<u8>>>>);

impl Storage for Mem {
    fn load(&mut self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().clone()
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
        let mut d = vec![0x80, 2, 0, 1, 0x81, PIN.len() as u8];
        d.extend_from_slice(PIN);
        d.extend_from_slice(&[0x82, 8]);
        d.extend_from_slice(&SO_PIN);
        d.extend_from_slice(&[0x91, 1, 3]);
        d.extend_from_slice(extra);
        let (_, sw) = self.cmd(0x80, 0x50, 0, 0, &d, 0);
        assert_eq!(sw, 0x9000);
        self.select();
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

/// The key-generation template OpenSC sends for secp256r1 (§7.1).
pub fn p256_template() -> Vec<u8> {
    let c = picohsm_wire::curve::Curve::P256;
    let pk = {
        let mut v = Vec::new();
        picohsm_wire::tlv::push(&mut v, 0x06, picohsm_wire::cvc::oid::ECDSA_SHA256);
        picohsm_wire::tlv::push(&mut v, 0x81, c.prime());
        picohsm_wire::tlv::push(&mut v, 0x82, c.a());
        picohsm_wire::tlv::push(&mut v, 0x83, c.b());
        picohsm_wire::tlv::push(&mut v, 0x84, c.generator());
        picohsm_wire::tlv::push(&mut v, 0x85, c.order());
        picohsm_wire::tlv::push(&mut v, 0x87, c.cofactor());
        v
    };
    let mut t = Vec::new();
    picohsm_wire::tlv::push(&mut t, 0x5F29, &[0]);
    picohsm_wire::tlv::push(&mut t, 0x42, b"UTCA00001");
    picohsm_wire::tlv::push(&mut t, 0x7F49, &pk);
    picohsm_wire::tlv::push(&mut t, 0x5F20, b"ZZPHSMXXXXX00001");
    t
}
