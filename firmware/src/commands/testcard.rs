//! Unit-test support for the security checks of the commands: a card in
//! RAM driven by raw APDUs, and an authenticator key made in software whose
//! requests are self-signed (as `picohsm-tool pka export --pkcs11-module`
//! makes them, docs/protocol.md §6.2).

extern crate std;

use alloc::boxed::Box;
use alloc::vec::Vec;
use picohsm_crypto::ec;
use picohsm_crypto::hash::HashAlg;
use picohsm_wire::apdu;
use picohsm_wire::codes::AID;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use zeroize::Zeroizing;

use crate::testutil::{MemStorage, TestRng};
use crate::{Card, CardConfig};

/// The test user PIN.
pub const PIN: &[u8] = b"648219";
/// The test SO-PIN.
pub const SO_PIN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];

/// A card with its flash, for restarts and size checks.
pub struct T {
    /// The card.
    pub card: Card,
    /// Its flash image.
    pub flash: MemStorage,
    /// Its OTP.
    pub otp: MemStorage,
}

impl T {
    /// A blank card, applet selected.
    pub fn new() -> T {
        let (flash, otp) = (MemStorage::default(), MemStorage::default());
        let mut t = T::boot(flash, otp);
        t.select();
        t
    }
    fn boot(flash: MemStorage, otp: MemStorage) -> T {
        let card = Card::new(
            Box::new(flash.clone()),
            Box::new(otp.clone()),
            Box::new(TestRng::default()),
            CardConfig::default(),
        )
        .expect("card");
        T { card, flash, otp }
    }
    /// The same flash and OTP in a new card (a power cycle), selected.
    pub fn restart(self) -> T {
        let mut t = T::boot(self.flash, self.otp);
        t.select();
        t
    }
    /// Sends an APDU; returns data and status word.
    pub fn cmd(
        &mut self,
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        ne: usize,
    ) -> (Vec<u8>, u16) {
        let r = self.card.transmit(&apdu::build(cla, ins, p1, p2, data, ne));
        let n = r.len() - 2;
        (r[..n].to_vec(), u16::from_be_bytes([r[n], r[n + 1]]))
    }
    /// The status word of an APDU.
    pub fn sw(&mut self, cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], ne: usize) -> u16 {
        self.cmd(cla, ins, p1, p2, data, ne).1
    }
    /// SELECT of the applet (a logout).
    pub fn select(&mut self) {
        assert_eq!(self.sw(0, 0xA4, 4, 0, AID, 256), StatusWord::OK.0);
    }
    /// INITIALIZE with the SO-PIN, `options`, the user PIN if `pin`, PKA
    /// `n`-of-`m` if given, then `extra` TLVs; selects again (logout).
    pub fn init(&mut self, options: u8, pin: bool, pka: Option<(u8, u8)>, extra: &[u8]) {
        let mut d = alloc::vec![0x80, 2, 0, options];
        if pin {
            d.extend_from_slice(&[0x81, PIN.len() as u8]);
            d.extend_from_slice(PIN);
        }
        d.extend_from_slice(&[0x82, 8]);
        d.extend_from_slice(&SO_PIN);
        if let Some((n, m)) = pka {
            d.extend_from_slice(&[0x93, 2, n, m]);
        }
        d.extend_from_slice(extra);
        assert_eq!(self.sw(0x80, 0x50, 0, 0, &d, 0), StatusWord::OK.0);
        self.select();
    }
    /// VERIFY of the user PIN.
    pub fn verify_pin(&mut self) -> u16 {
        self.sw(0, 0x20, 0, 0x81, PIN, 0)
    }
    /// VERIFY of the SO-PIN.
    pub fn verify_so(&mut self) -> u16 {
        self.sw(0, 0x20, 0, 0x88, &SO_PIN, 0)
    }
    /// MANAGE PKA register.
    pub fn register(&mut self, request: &[u8]) -> u16 {
        self.sw(0x80, 0x54, 0, 0, request, 4)
    }
    /// GET CHALLENGE of `le` bytes.
    pub fn challenge(&mut self, le: usize) -> Vec<u8> {
        let (c, sw) = self.cmd(0, 0x84, 0, 0, &[], le);
        assert_eq!(sw, StatusWord::OK.0);
        c
    }
    /// MSE SET AT of `chr`, then EXTERNAL AUTHENTICATE with `sig`.
    pub fn ext_auth(&mut self, chr: &[u8], sig: &[u8]) -> u16 {
        let sw = self.sw(0, 0x22, 0x81, 0xA4, &tlv::encode(0x83, chr), 0);
        if sw != StatusWord::OK.0 {
            return sw;
        }
        self.sw(0, 0x82, 0, 0, sig, 0)
    }
    /// One login round of `a`: a challenge of 8 bytes, signed by `a`.
    pub fn login_with(&mut self, a: &Auth) -> u16 {
        let c = self.challenge(8);
        let sig = a.sign_login(&self.card.device_name(), &c);
        self.ext_auth(&a.chr, &sig)
    }
    /// The flash image's size.
    pub fn image_len(&self) -> usize {
        let mut f = self.flash.clone();
        crate::Storage::load(&mut f)
            .ok()
            .flatten()
            .map_or(0, |i| i.len())
    }
}

/// An authenticator key in software (P-256).
pub struct Auth {
    /// The private scalar.
    pub d: Zeroizing<Vec<u8>>,
    /// Its name.
    pub chr: Vec<u8>,
}

impl Auth {
    /// A key named `chr`, from a fixed `seed` byte.
    pub fn new(chr: &[u8], seed: u8) -> Auth {
        let mut s = [seed; 32];
        s[0] = 0x11;
        Auth {
            d: Zeroizing::new(s.to_vec()),
            chr: chr.to_vec(),
        }
    }
    /// The public point.
    pub fn q(&self) -> Vec<u8> {
        ec::public_key(Curve::P256, &self.d).unwrap()
    }
    /// A self-signed request for this key under `chr` (inner and outer
    /// signatures by the key), with the public point `q`.
    pub fn request_for(&self, chr: &[u8], q: &[u8]) -> Vec<u8> {
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, q);
        let body = cvc::build_body(Some(chr), &pk, chr, &[]);
        let sign =
            |m: &[u8]| ec::sign_prehash(Curve::P256, &self.d, &HashAlg::Sha256.digest(m)).unwrap();
        let cert = cvc::build_cvc(&body, &sign(&body));
        let outer = sign(&cvc::outer_signed_data(&cert, chr));
        cvc::build_auth_request(&cert, chr, &outer)
    }
    /// The request under this key's own name.
    pub fn request(&self) -> Vec<u8> {
        self.request_for(&self.chr, &self.q())
    }
    /// The login signature over `name ‖ challenge`, `r ‖ s`.
    pub fn sign_login(&self, name: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut t = name.to_vec();
        t.extend_from_slice(challenge);
        ec::sign_prehash(Curve::P256, &self.d, &HashAlg::Sha256.digest(&t)).unwrap()
    }
}

/// A key-generation template for P-256 with CAR = CHR (docs/protocol.md §7.1).
pub fn p256_template() -> Vec<u8> {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, oid::ECDSA_SHA256);
    let c = Curve::P256;
    for (t, v) in [
        (0x81, c.prime()),
        (0x82, c.a()),
        (0x83, c.b()),
        (0x84, c.generator()),
        (0x85, c.order()),
        (0x87, c.cofactor()),
    ] {
        tlv::push(&mut pk, t, v);
    }
    let mut t = Vec::new();
    tlv::push(&mut t, 0x5F29, &[0]);
    tlv::push(&mut t, 0x7F49, &pk);
    t
}
