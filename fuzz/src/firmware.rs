//! `firmware_apdu`: stateful sessions against [`picohsm_firmware::Card`]
//! with in-memory storage and a deterministic random source.
//!
//! Input: one byte choosing the starting device (blank, PIN only, PKA 1-of-1
//! with PIN, PKA 2-of-2 without PIN: made once per process and copied), one
//! byte seeding the card's generator, then operations (see [`Op`]) until
//! the input ends. The harness knows the PINs and the private keys of the
//! authenticators it registered, so it can log in properly as well as
//! wrongly.
//!
//! Checked after every APDU: no panic; a response is at least a status word
//! with SW1 in 61..6F or 90; an APDU that does not parse gets a status word
//! alone; the data never exceeds what Le allowed. Checked at "reload" and
//! at the end: a card brought up from the storage holds exactly the files
//! of the running card (every change was committed whole, or rolled back).

use std::sync::{Arc, Mutex, OnceLock};

use picohsm_crypto::ec;
use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::apdu::{self, Command};
use picohsm_wire::codes::{ins, AID};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid};
use picohsm_wire::tlv;
use sha2::{Digest, Sha256};

use crate::Reader;

/// The user PIN of the prepared devices.
pub const PIN: &[u8] = b"648219";
/// Their SO-PIN.
pub const SO_PIN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
/// How many authenticator keys the harness holds.
pub const AUTHENTICATORS: usize = 3;
/// Most operations run on one input (keeps one execution short).
const MAX_OPS: usize = 48;
/// The most response data any command may return when no Le bounds it.
const MAX_RESPONSE: usize = 1 << 17;

#[derive(Default)]
struct Inner {
    image: Option<Vec<u8>>,
    fail_next: bool,
}

/// Storage in RAM, shared between clones (a reloaded card sees the same
/// image); can be told to fail its next write.
#[derive(Clone, Default)]
pub struct Mem(Arc<Mutex<Inner>>);

impl Mem {
    fn with(image: Option<Vec<u8>>) -> Mem {
        Mem(Arc::new(Mutex::new(Inner {
            image,
            fail_next: false,
        })))
    }
    fn image(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().image.clone()
    }
    fn fail_next_write(&self) {
        self.0.lock().unwrap().fail_next = true;
    }
}

impl Storage for Mem {
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.image())
    }
    fn store(&mut self, image: &[u8]) -> Result<(), StorageError> {
        let mut g = self.0.lock().unwrap();
        if std::mem::take(&mut g.fail_next) {
            return Err(StorageError);
        }
        g.image = Some(image.to_vec());
        Ok(())
    }
}

/// xorshift64: deterministic, so a crash replays.
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

/// An authenticator known to the harness: its private scalar, CHR and the
/// register payload (an authenticated request whose inner signature is
/// its own).
pub struct Authenticator {
    d: Vec<u8>,
    /// CHR the key is registered under.
    pub chr: Vec<u8>,
    /// MANAGE PKA register data.
    pub request: Vec<u8>,
}

fn scalar(label: &[u8]) -> Vec<u8> {
    let mut d = Sha256::digest(label).to_vec();
    while ec::public_key(Curve::P256, &d).is_err() {
        d = Sha256::digest(&d).to_vec();
    }
    d
}

impl Authenticator {
    fn new(i: usize) -> Authenticator {
        let d = scalar(format!("picohsm fuzz authenticator {i}").as_bytes());
        let q = ec::public_key(Curve::P256, &d).expect("point");
        let chr = format!("ZZFUZZAUTH{i:05}").into_bytes();
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, &q);
        let body = cvc::build_body(Some(b"UTCA00001"), &pk, &chr, &[]);
        let sig = ec::sign_prehash(Curve::P256, &d, &Sha256::digest(&body)).expect("sign");
        let inner = cvc::build_cvc(&body, &sig);
        let outer_car = b"ZZFUZZDEV0000001";
        let signed = cvc::outer_signed_data(&inner, outer_car);
        let outer = ec::sign_prehash(Curve::P256, &d, &Sha256::digest(&signed)).expect("sign");
        let request = cvc::build_auth_request(&inner, outer_car, &outer);
        Authenticator { d, chr, request }
    }

    /// The EXTERNAL AUTHENTICATE signature over SHA-256(name ‖ challenge).
    pub fn sign_login(&self, name: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut t = name.to_vec();
        t.extend_from_slice(challenge);
        ec::sign_prehash(Curve::P256, &self.d, &Sha256::digest(&t)).expect("sign")
    }
}

/// Flash and OTP images of a prepared device.
#[derive(Clone)]
struct Snapshot {
    flash: Option<Vec<u8>>,
    otp: Option<Vec<u8>>,
}

struct Fixtures {
    auth: Vec<Authenticator>,
    starts: Vec<Snapshot>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let auth: Vec<Authenticator> = (0..AUTHENTICATORS).map(Authenticator::new).collect();
        let mut starts = Vec::new();
        // 0: blank (identity made, never initialised).
        let (card, flash, otp) = boot(Mem::default(), Mem::default(), 1);
        drop(card);
        starts.push(Snapshot {
            flash: flash.image(),
            otp: otp.image(),
        });
        for (pka, pin) in [
            (None, true),
            (Some((1u8, 1u8)), true),
            (Some((2, 2)), false),
        ] {
            let (mut card, flash, otp) = boot(Mem::default(), Mem::default(), 1);
            expect(&mut card, &select(), 0x9000);
            expect(
                &mut card,
                &initialize(0x0001, pin.then_some(PIN), pka, 3, &SO_PIN),
                0x9000,
            );
            if let Some((n, _)) = pka {
                for a in auth.iter().take(n as usize) {
                    let r = apdu::build(0x80, ins::PUK_AUTH, 0, 0, &a.request, 256);
                    expect(&mut card, &r, 0x9000);
                }
            }
            drop(card);
            starts.push(Snapshot {
                flash: flash.image(),
                otp: otp.image(),
            });
        }
        Fixtures { auth, starts }
    })
}

fn boot(flash: Mem, otp: Mem, seed: u64) -> (Card, Mem, Mem) {
    let card = Card::new(
        Box::new(flash.clone()),
        Box::new(otp.clone()),
        Box::new(Xs(seed | 1)),
        CardConfig::default(),
    )
    .expect("a card comes up from an image it wrote");
    (card, flash, otp)
}

fn expect(card: &mut Card, apdu: &[u8], sw: u16) {
    let r = card.transmit(apdu);
    let got = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
    assert_eq!(got, sw, "set-up APDU {apdu:02X?}");
}

/// SELECT of the applet.
pub fn select() -> Vec<u8> {
    apdu::build(0, ins::SELECT, 4, 0, AID, 256)
}

/// INITIALIZE DEVICE with the given options, PINs and PKA parameters.
pub fn initialize(
    options: u16,
    pin: Option<&[u8]>,
    pka: Option<(u8, u8)>,
    retries: u8,
    so_pin: &[u8],
) -> Vec<u8> {
    let mut d = Vec::new();
    tlv::push(&mut d, 0x80, &options.to_be_bytes());
    if let Some(p) = pin {
        tlv::push(&mut d, 0x81, p);
        tlv::push(&mut d, 0x91, &[retries]);
    }
    tlv::push(&mut d, 0x82, so_pin);
    if let Some((n, m)) = pka {
        tlv::push(&mut d, 0x93, &[n, m]);
    }
    apdu::build(0x80, ins::INITIALIZE, 0, 0, &d, 0)
}

/// The EC P-256 key-generation template (docs/protocol.md §7.1).
fn p256_template() -> Vec<u8> {
    let mut t = Vec::new();
    tlv::push(&mut t, 0x5F29, &[0]);
    tlv::push(&mut t, 0x42, b"UTCA00001");
    tlv::push(
        &mut t,
        0x7F49,
        &cvc::ec_keygen_template(oid::ECDSA_SHA256, Curve::P256),
    );
    tlv::push(&mut t, 0x5F20, b"ZZFUZZKEY000001");
    t
}

/// Whether an APDU would make the card generate an RSA key: seconds per
/// key, so the fuzzer would spend its time there and learn nothing.
fn rsa_keygen(raw: &[u8]) -> bool {
    raw.get(1) == Some(&ins::KEYPAIR_GEN) && raw.windows(9).any(|w| w == &oid::RSA_V15_SHA256[..9])
}

/// Whether to print each APDU's status word (`FUZZ_TRACE=1`, for
/// reading what an input does with `cargo run --example replay`).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// The session under test: the card and its storages.
struct Session {
    card: Card,
    flash: Mem,
    otp: Mem,
    seed: u64,
}

impl Session {
    /// Sends an APDU and checks the response's shape; returns (data, SW).
    fn send(&mut self, raw: &[u8]) -> (Vec<u8>, u16) {
        if rsa_keygen(raw) {
            return (Vec::new(), 0);
        }
        let r = self.card.transmit(raw);
        assert!(r.len() >= 2, "response without status word to {raw:02X?}");
        let (data, sw) = r.split_at(r.len() - 2);
        let sw = u16::from_be_bytes([sw[0], sw[1]]);
        assert!(
            matches!(sw >> 8, 0x61..=0x6F | 0x90),
            "status word {sw:04X} to {raw:02X?}"
        );
        match Command::parse(raw) {
            Err(_) => assert!(data.is_empty(), "data in answer to an unparsable APDU"),
            Ok(c) if c.ne > 0 => assert!(
                data.len() <= c.ne,
                "{} bytes for Ne {} to {raw:02X?}",
                data.len(),
                c.ne
            ),
            Ok(_) => assert!(data.len() <= MAX_RESPONSE, "{} bytes", data.len()),
        }
        if trace() {
            eprintln!("> {raw:02X?}\n< {} bytes, {sw:04X}", data.len());
        }
        (data.to_vec(), sw)
    }

    /// Brings a second card up from the same storages; its files must be
    /// the running card's. It then replaces the running card (a restart).
    fn reload(&mut self) {
        self.flash.0.lock().unwrap().fail_next = false;
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let (fresh, _, _) = boot(self.flash.clone(), self.otp.clone(), self.seed);
        assert!(
            fresh.files_for_fuzzing() == self.card.files_for_fuzzing(),
            "the card reloaded from its storage differs from the running card"
        );
        self.card = fresh;
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let f = fixtures();
    let mut r = Reader::new(data);
    let start = &f.starts[r.u8() as usize % f.starts.len()];
    let seed = r.u8() as u64 + 2;
    let flash = Mem::with(start.flash.clone());
    let otp = Mem::with(start.otp.clone());
    let (card, flash, otp) = boot(flash, otp, seed);
    let mut s = Session {
        card,
        flash,
        otp,
        seed,
    };
    s.card.power_on();
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        step(&mut s, f, &mut r);
    }
    s.reload();
}

/// One operation, chosen by the next byte.
fn step(s: &mut Session, f: &Fixtures, r: &mut Reader<'_>) {
    match r.u8() % 16 {
        // Raw APDU bytes, short or long.
        0 => {
            let a = r.short().to_vec();
            s.send(&a);
        }
        1 => {
            let a = r.long().to_vec();
            s.send(&a);
        }
        // A well-framed command of the card's instruction set with fuzzed
        // parameters and data.
        2 => {
            const SET: [u8; 21] = [
                0x20, 0x22, 0x24, 0x2A, 0x2C, 0x46, 0x50, 0x52, 0x54, 0x58, 0x62, 0x68, 0x72, 0x74,
                0x82, 0x84, 0xA4, 0xB0, 0xB1, 0xD7, 0xE4,
            ];
            let cla = [0x00, 0x80, 0x10, 0x90][r.u8() as usize % 4];
            let i = SET[r.u8() as usize % SET.len()];
            let (p1, p2) = (r.u8(), r.u8());
            let ne = [0, 1, 8, 32, 256, 65536][r.u8() as usize % 6];
            let d = r.long().to_vec();
            s.send(&apdu::build(cla, i, p1, p2, &d, ne));
        }
        3 => {
            s.send(&select());
        }
        // VERIFY: right user PIN, wrong user PIN, right SO-PIN, status.
        4 => {
            s.send(&apdu::build(0, ins::VERIFY, 0, 0x81, PIN, 0));
        }
        5 => {
            let wrong = r.short().to_vec();
            let p2 = if r.u8() & 1 == 0 { 0x81 } else { 0x88 };
            s.send(&apdu::build(0, ins::VERIFY, 0, p2, &wrong, 0));
        }
        6 => {
            s.send(&apdu::build(0, ins::VERIFY, 0, 0x88, &SO_PIN, 0));
        }
        // INITIALIZE, with or without user PIN and PKA, right or wrong SO-PIN.
        7 => {
            let flags = r.u8();
            let options = r.u8() as u16 & 0x3B;
            let pka = (flags & 2 != 0).then(|| {
                let n = r.u8() % 4;
                (n, r.u8() % 4)
            });
            let so: &[u8] = if flags & 4 == 0 { &SO_PIN } else { &[0x11; 8] };
            let pin = (flags & 1 == 0).then_some(PIN);
            s.send(&initialize(options, pin, pka, 1 + r.u8() % 10, so));
        }
        // Register (or replace a slot with) a known authenticator.
        8 => {
            let a = &f.auth[r.u8() as usize % f.auth.len()];
            let (p1, p2) = if r.u8() & 1 == 0 {
                (0, 0)
            } else {
                (1, r.u8() % 4)
            };
            s.send(&apdu::build(0x80, ins::PUK_AUTH, p1, p2, &a.request, 256));
        }
        // One PKA login step: challenge, MSE SET AT, EXTERNAL AUTHENTICATE
        // with the right signature, a damaged one, or one over another
        // challenge.
        9 => {
            let a = &f.auth[r.u8() as usize % f.auth.len()];
            let how = r.u8();
            let le = [8usize, 16, 32, 1, 256][how as usize % 5];
            let (challenge, sw) = s.send(&apdu::build(0, ins::CHALLENGE, 0, 0, &[], le));
            let challenge = if sw == 0x9000 { challenge } else { vec![0; 8] };
            let name = s.card.device_name();
            let mut sig = a.sign_login(&name, &challenge);
            match (how >> 3) % 4 {
                1 => sig[5] ^= 1,
                2 => sig = a.sign_login(&name, &[0; 8]),
                _ => {}
            }
            s.send(&apdu::build(
                0,
                ins::MSE,
                0x81,
                0xA4,
                &tlv::encode(0x83, &a.chr),
                0,
            ));
            s.send(&apdu::build(0, ins::EXTERNAL_AUTH, 0, 0, &sig, 0));
        }
        10 => s.card.power_on(),
        11 => s.reload(),
        12 => s.flash.fail_next_write(),
        // GET RESPONSE with any Le.
        13 => {
            let le = r.u8() as usize;
            s.send(&apdu::build(0, ins::GET_RESPONSE, 0, 0, &[], le.max(1)));
        }
        // Generate an EC key, or sign with one.
        14 => {
            let id = r.u8() % 8;
            s.send(&apdu::build(
                0,
                ins::KEYPAIR_GEN,
                id,
                0,
                &p256_template(),
                65536,
            ));
        }
        _ => {
            let id = r.u8() % 8;
            let alg = [0x70, 0x73, 0x74, 0x21][r.u8() as usize % 4];
            let d = r.short().to_vec();
            s.send(&apdu::build(0x80, ins::SIGNATURE, id, alg, &d, 65536));
        }
    }
}
