//! PKA set-up helpers shared by the end-to-end tests: a small PC/SC driver
//! (the `pcsc` crate) for what no OpenSC tool does — registering with a PIN
//! session, a login by hand — and the key/export recipes of the issue.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;

use super::*;
use picohsm_crypto::ec;
use picohsm_wire::apdu;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, AuthRequest, Cvc};
use picohsm_wire::tlv;

pub const SELECT: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x0B, 0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
    0x00,
];

/// One PC/SC connection to a card, shared (OpenSC's tools can use the
/// reader between our exchanges, but we never re-select while logged in).
pub struct Conn {
    pub card: pcsc::Card,
    /// (INS, SW) of every exchange, to compare with the upstream trace.
    pub log: Vec<(u8, u16)>,
}

impl Conn {
    pub fn open(vcard: &VCard) -> Conn {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
        let reader = CString::new(vcard.reader_name()).unwrap();
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("connect");
        Conn {
            card,
            log: Vec::new(),
        }
    }

    /// Sends an APDU; follows 61xx with GET RESPONSE; returns (data, SW).
    pub fn tx(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let mut buf = vec![0u8; 70000];
        let r = self
            .card
            .transmit(apdu, &mut buf)
            .expect("transmit")
            .to_vec();
        let mut sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        let mut data = r[..r.len() - 2].to_vec();
        while sw >> 8 == 0x61 {
            let r = self
                .card
                .transmit(&[0, 0xC0, 0, 0, 0], &mut buf)
                .expect("get response")
                .to_vec();
            sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
            data.extend_from_slice(&r[..r.len() - 2]);
        }
        self.log.push((apdu[1], sw));
        (data, sw)
    }

    pub fn ok(&mut self, apdu: &[u8]) -> Vec<u8> {
        let (d, sw) = self.tx(apdu);
        assert_eq!(sw, 0x9000, "APDU {apdu:02X?}");
        d
    }

    pub fn select(&mut self) {
        self.ok(SELECT);
    }

    /// A connection to `vcard` with the applet selected and the test PIN
    /// verified.
    pub fn logged_in(vcard: &VCard) -> Conn {
        let mut c = Conn::open(vcard);
        c.select();
        assert_eq!(c.verify_pin(), 0x9000);
        c
    }

    pub fn verify_pin(&mut self) -> u16 {
        self.verify_pin_with(PIN)
    }

    pub fn verify_pin_with(&mut self, pin: &str) -> u16 {
        self.tx(&apdu::build(0, 0x20, 0, 0x81, pin.as_bytes(), 0)).1
    }

    pub fn status(&mut self) -> Vec<u8> {
        self.ok(&[0x80, 0x54, 0, 0, 0])
    }

    /// READ BINARY of a whole EF by FID, as pypicohsm does (B1 with P1P2 = FID).
    pub fn read_ef(&mut self, fid: u16) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut off = vec![0x54, 2];
            off.extend_from_slice(&(out.len() as u16).to_be_bytes());
            let (d, sw) = self.tx(&apdu::build_extended(
                0,
                0xB1,
                (fid >> 8) as u8,
                fid as u8,
                &off,
                65536,
            ));
            assert_eq!(sw, 0x9000);
            if d.is_empty() {
                return out;
            }
            out.extend_from_slice(&d);
        }
    }

    pub fn device_name(&mut self) -> Vec<u8> {
        let chain = self.read_ef(0x2F02);
        cvc::first_chr(&chain).unwrap().to_vec()
    }

    pub fn challenge(&mut self) -> Vec<u8> {
        self.ok(&[0, 0x84, 0, 0, 8])
    }

    /// The authenticator's SIGN (ECDSA with SHA-256 on the card) of name ‖ challenge, as r‖s.
    pub fn sign_login(&mut self, key_ref: u8, name: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut t = name.to_vec();
        t.extend_from_slice(challenge);
        let der = self.ok(&apdu::build_extended(0x80, 0x68, key_ref, 0x73, &t, 65536));
        ec::der_to_raw(&der, 32).unwrap()
    }

    pub fn mse_at(&mut self, chr: &[u8]) -> u16 {
        self.tx(&apdu::build(
            0,
            0x22,
            0x81,
            0xA4,
            &tlv::encode(0x83, chr),
            0,
        ))
        .1
    }

    pub fn external_authenticate(&mut self, sig: &[u8]) -> u16 {
        self.tx(&apdu::build(0, 0x82, 0, 0, sig, 0)).1
    }

    /// sc-hsm-tool's registration sequence (docs/protocol.md §6.5), after a VERIFY of the PIN
    /// in the same session (which sc-hsm-tool 0.23 does not send).
    pub fn register(&mut self, pka_file: &[u8]) -> (Vec<u8>, u16) {
        let (request, device, dica) = parse_pka_file(pka_file);
        let dst = |c: &mut Conn, name: &[u8]| {
            c.tx(&apdu::build(
                0,
                0x22,
                0x81,
                0xB6,
                &tlv::encode(0x83, name),
                0,
            ))
            .1
        };
        let (dev, _) = Cvc::parse(&device).unwrap();
        let (ica, _) = Cvc::parse(&dica).unwrap();
        assert_eq!(
            dst(self, ica.chr),
            0x9000,
            "the DICA is known from the primary's own chain"
        );
        if dst(self, dev.chr) == 0x6A88 {
            assert_eq!(dst(self, ica.chr), 0x9000);
            let content = tlv::parse_one(&device).unwrap().0.value;
            assert_eq!(
                self.tx(&apdu::build_extended(0, 0x2A, 0, 0xBE, content, 0))
                    .1,
                0x9000
            );
            assert_eq!(dst(self, dev.chr), 0x9000);
        }
        self.register_request(&request)
    }

    /// Reaches the PKA quorum in this session: one challenge, signed by
    /// each of `signers` (authenticator card, key reference, PKA file of
    /// the registered key); every EXTERNAL AUTHENTICATE must pass.
    pub fn quorum(&mut self, signers: &[(&VCard, u8, &[u8])]) {
        let name = self.device_name();
        let challenge = self.challenge();
        for (card, key_ref, file) in signers {
            let mut b = Conn::open(card);
            b.select();
            assert_eq!(b.verify_pin(), 0x9000);
            let sig = b.sign_login(*key_ref, &name, &challenge);
            drop(b);
            let chr = chr_of(&parse_pka_file(file).0);
            assert_eq!(self.mse_at(&chr), 0x9000);
            assert_eq!(self.external_authenticate(&sig), 0x9000);
        }
    }

    /// The register command alone, with `request` (the content of tag 67).
    pub fn register_request(&mut self, request: &[u8]) -> (Vec<u8>, u16) {
        self.tx(&apdu::build_extended(0x80, 0x54, 0, 0, request, 4))
    }
}

/// Registers the keys of `files` on primary `a`, in a session with the
/// user PIN verified, then selects the applet again (a logout).
pub fn register_all(a: &VCard, files: &[Vec<u8>]) {
    let mut c = Conn::logged_in(a);
    for f in files {
        assert_eq!(c.register(f).1, 0x9000);
    }
    c.select();
}

/// Registers keys (authenticator card, key reference, PKA file) on primary
/// `a`, which has none registered yet, in one session with the user PIN
/// verified: the first m within the bootstrap, the rest after a PKA quorum
/// of the first m (our firmware wants it past m registered keys,
/// docs/protocol.md §6.3); then selects the applet again (a logout).
pub fn register_all_by(a: &VCard, keys: &[(&VCard, u8, Vec<u8>)]) {
    let mut c = Conn::logged_in(a);
    let m = c.status()[2] as usize;
    for (i, (_, _, f)) in keys.iter().enumerate() {
        if i == m {
            let signers: Vec<(&VCard, u8, &[u8])> =
                keys[..m].iter().map(|(v, r, f)| (*v, *r, &f[..])).collect();
            c.quorum(&signers);
        }
        assert_eq!(c.register(f).1, 0x9000);
    }
    c.select();
}

/// `sc-hsm-tool --public-key-auth-status`.
pub fn pka_status(card: &VCard) -> String {
    text(&sc_hsm_tool(card, ["--public-key-auth-status"]))
}

/// What `sc-hsm-tool --public-key-auth-status` says of a 1-of-1 primary
/// with no key registered.
pub const ONE_OF_ONE_UNREGISTERED: [&str; 4] = [
    "Number of public keys:     1",
    "Missing public keys:       1",
    "Required pubkeys for auth: 1",
    "Authenticated public keys: 0",
];

/// Splits a PKA file as sc-hsm-tool --export-for-pub-key-auth writes it:
/// `30 { 67 request, 7F21 device certificate, 7F21 DICA, ... }`; returns the
/// content of 67 (what the register command carries) and the two certificates.
pub fn parse_pka_file(file: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (outer, _) = tlv::parse_one(file).unwrap();
    assert_eq!(outer.tag, 0x30);
    let items = tlv::parse_all(outer.value).unwrap();
    assert_eq!(items[0].tag, 0x67);
    (
        items[0].value.to_vec(),
        items[1].raw.to_vec(),
        items[2].raw.to_vec(),
    )
}

pub fn chr_of(request: &[u8]) -> Vec<u8> {
    AuthRequest::parse(request).unwrap().cert.chr.to_vec()
}

/// sc-hsm-tool's --initialize with PKA `n` keys, `m` required, as the Pico
/// HSM documentation gives it.
pub fn init_pka(card: &VCard, n: u8, m: u8) {
    sc_hsm_tool(
        card,
        [
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "-K",
            &n.to_string(),
            "-n",
            &m.to_string(),
            "-s",
            "1",
        ],
    );
}

/// An EC key made by pkcs11-tool on the authenticator, exported for PKA by
/// sc-hsm-tool; returns the PKA file and the key's reference on the card.
pub fn opensc_key(b: &VCard, curve: &str, id: &str) -> (Vec<u8>, u8) {
    pkcs11_tool(
        b,
        [
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            curve,
            "--id",
            id,
            "--label",
            "Authentication",
        ],
    );
    let key_ref = {
        let mut c = Conn::open(b);
        c.select();
        last_key_ref(&mut c)
    };
    (export_for_pka(b, key_ref), key_ref)
}

/// The card's key reference of the key pkcs11-tool just made: the highest CCxx.
pub fn last_key_ref(conn: &mut Conn) -> u8 {
    let list = conn.ok(&[0x80, 0x58, 0, 0, 0, 0, 0]);
    list.chunks(2)
        .filter(|c| c[0] == 0xCC)
        .map(|c| c[1])
        .max()
        .unwrap()
}

/// OpenSC's key-generation template for secp256r1 (docs/protocol.md §7.1).
pub fn keygen_template() -> Vec<u8> {
    let pk = cvc::ec_keygen_template(cvc::oid::ECDSA_SHA256, Curve::P256);
    let mut t = Vec::new();
    tlv::push(&mut t, 0x5F29, &[0]);
    tlv::push(&mut t, 0x42, b"UTCA00001");
    tlv::push(&mut t, 0x7F49, &pk);
    t
}

/// A key made by our firmware from a template without CAR (so CAR = CHR),
/// exported by sc-hsm-tool; returns the PKA file and the key reference.
pub fn firmware_key(b: &VCard, key_ref: u8, curve: Curve) -> (Vec<u8>, u8) {
    firmware_key_with_pin(b, key_ref, curve, PIN)
}

/// [`firmware_key`] on an authenticator whose user PIN is `pin`.
pub fn firmware_key_with_pin(b: &VCard, key_ref: u8, curve: Curve, pin: &str) -> (Vec<u8>, u8) {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, cvc::oid::ECDSA_SHA256);
    tlv::push(&mut pk, 0x81, curve.prime());
    let (file, req) = generate_for_pka(b, pin, key_ref, &pk);
    let r = AuthRequest::parse(&req).unwrap();
    assert!(r.cert.is_self_described(), "CAR = CHR");
    (file, key_ref)
}

/// GENERATE of key `key_ref` on `b` (user PIN `pin`) from the public key
/// template `pk` (the content of 7F49; no CAR, so CAR = CHR), then
/// `sc-hsm-tool --export-for-pub-key-auth`: the PKA file and the request.
fn generate_for_pka(b: &VCard, pin: &str, key_ref: u8, pk: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut c = Conn::open(b);
    c.select();
    assert_eq!(c.verify_pin_with(pin), 0x9000);
    let template = tlv::encode(0x7F49, pk);
    let req = c.ok(&apdu::build_extended(0, 0x46, key_ref, 0, &template, 65536));
    drop(c);
    (export_for_pka(b, key_ref), req)
}

/// INITIALIZE (docs/protocol.md §4.1) with PKA `n` of `m` and no user PIN: a PKA-only
/// token (sc-hsm-tool always sends a PIN). The registrations that follow
/// need the SO-PIN verified in the same session.
pub fn init_pka_only(card: &VCard, n: u8, m: u8) -> Conn {
    let so: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&SO_PIN[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut data = Vec::new();
    tlv::push(&mut data, 0x80, &[0x00, 0x01]);
    tlv::push(&mut data, 0x82, &so);
    tlv::push(&mut data, 0x93, &[n, m]);
    let mut c = Conn::open(card);
    c.select();
    // A card initialised before asks for its SO-PIN first.
    let _ = c.tx(&apdu::build(0, 0x20, 0, 0x88, &so, 0));
    c.ok(&apdu::build(0x80, 0x50, 0, 0, &data, 0));
    c.select();
    assert_eq!(c.tx(&apdu::build(0, 0x20, 0, 0x88, &so, 0)).1, 0x9000);
    c
}

/// An RSA key of `bits` made by our firmware (template without CAR, so CAR
/// = CHR), exported by sc-hsm-tool; returns the PKA file and the reference.
pub fn firmware_rsa_key(b: &VCard, key_ref: u8, bits: u16) -> (Vec<u8>, u8) {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, cvc::oid::RSA_V15_SHA256);
    tlv::push(&mut pk, 0x82, &[0x01, 0x00, 0x01]);
    tlv::push(&mut pk, 0x02, &bits.to_be_bytes());
    let (file, req) = generate_for_pka(b, PIN, key_ref, &pk);
    assert!(AuthRequest::parse(&req).is_ok());
    (file, key_ref)
}

/// `sc-hsm-tool --export-for-pub-key-auth` of key `key_ref`: the PKA file.
pub fn export_for_pka(b: &VCard, key_ref: u8) -> Vec<u8> {
    let file = b.dir().join(format!("pka-key-{key_ref}.bin"));
    sc_hsm_tool(
        b,
        [
            "--export-for-pub-key-auth",
            file.to_str().unwrap(),
            "-i",
            &key_ref.to_string(),
        ],
    );
    fs::read(file).unwrap()
}

/// A card initialised with only a user PIN (the authenticator).
pub fn init_authenticator(b: &VCard, pin: &str) {
    sc_hsm_tool(b, ["--initialize", "--so-pin", SO_PIN, "--pin", pin]);
}
