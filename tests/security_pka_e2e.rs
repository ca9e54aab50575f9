//! Attacks on Public Key Authentication and on the keys of a PKA device, run
//! over the wire: `picohsm-vcard` cards behind pcscd + vpcd, raw APDUs
//! through the `pcsc` crate (`tests/common/pka.rs`). Each `attack_*` must
//! fail the way its `/// Attack:` line says (issue 11; docs/protocol.md §6.3,
//! §6.4, §6.7, §7.2, §7.4 describe the refusals).

mod common;

use common::pka::*;
use common::tools::initialize;
use common::*;
use picohsm_crypto::ec;
use picohsm_crypto::hash::HashAlg;
use picohsm_wire::apdu;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid, Cvc};
use picohsm_wire::tlv;

/// A PKA `n`-of-`m` + PIN primary (`[0]`) and an authenticator (`[1]`)
/// holding keys 1..=`keys` (P-256, exported as PKA files).
fn setup(n: u8, m: u8, keys: u8) -> (Vec<VCard>, Vec<Vec<u8>>) {
    let cards = VCard::start_many(2);
    initialize(&cards[1], &[]);
    init_pka(&cards[0], n, m);
    let files = (1..=keys)
        .map(|r| firmware_key(&cards[1], r, Curve::P256).0)
        .collect();
    (cards, files)
}

/// The CHR of the key in a PKA file.
fn chr(file: &[u8]) -> Vec<u8> {
    chr_of(&parse_pka_file(file).0)
}

/// The authenticator `b`, applet selected, PIN verified.
fn signer(b: &VCard) -> Conn {
    let mut c = Conn::open(b);
    c.select();
    assert_eq!(c.verify_pin(), 0x9000);
    c
}

/// GENERATE of a P-256 key `id` (template without CAR): the SW.
fn keygen(c: &mut Conn, id: u8) -> u16 {
    let mut pk = Vec::new();
    tlv::push(&mut pk, 0x06, oid::ECDSA_SHA256);
    tlv::push(&mut pk, 0x81, Curve::P256.prime());
    let t = tlv::encode(0x7F49, &pk);
    c.tx(&apdu::build_extended(0, 0x46, id, 0, &t, 65536)).1
}

/// SIGN with key `id`, ECDSA over a 32-byte digest: the SW.
fn sign(c: &mut Conn, id: u8) -> u16 {
    c.tx(&apdu::build_extended(0x80, 0x68, id, 0x70, &[7; 32], 65536))
        .1
}

/// A P-256 key in software, whose requests are self-signed (as `picohsm-tool
/// pka export --pkcs11-module` makes them, docs/protocol.md §6.2).
struct SoftKey(Vec<u8>);

impl SoftKey {
    fn new(seed: u8) -> SoftKey {
        let mut d = [seed; 32];
        d[0] = 0x21;
        SoftKey(d.to_vec())
    }
    fn sign(&self, data: &[u8]) -> Vec<u8> {
        ec::sign_prehash(Curve::P256, &self.0, &HashAlg::Sha256.digest(data)).unwrap()
    }
    /// The register payload for this key under the name `chr`.
    fn request(&self, chr: &[u8]) -> Vec<u8> {
        let q = ec::public_key(Curve::P256, &self.0).unwrap();
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, &q);
        let body = cvc::build_body(Some(chr), &pk, chr, &[]);
        let cert = cvc::build_cvc(&body, &self.sign(&body));
        let outer = self.sign(&cvc::outer_signed_data(&cert, chr));
        cvc::build_auth_request(&cert, chr, &outer)
    }
    fn sign_login(&self, name: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut t = name.to_vec();
        t.extend_from_slice(challenge);
        self.sign(&t)
    }
}

/// Attack: record the authenticator's signature over a 1-byte challenge
/// (256 such recordings would be a reusable login); the card keeps no
/// challenge shorter than 8 bytes, so EXTERNAL AUTHENTICATE answers 6985.
#[test]
fn attack_replay_of_a_signature_over_a_one_byte_challenge() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::open(a);
    ac.select();
    let name = ac.device_name();
    // The card still answers random bytes of any length (C_GenerateRandom).
    let c = ac.ok(&[0, 0x84, 0, 0, 1]);
    assert_eq!(c.len(), 1);
    let sig = signer(b).sign_login(1, &name, &c);
    assert_eq!(ac.mse_at(&chr(&files[0])), 0x9000);
    assert_eq!(ac.external_authenticate(&sig), 0x6985);
    assert_eq!(ac.status(), vec![1, 0, 1, 0], "nothing authenticated");
    assert_eq!(keygen(&mut ac, 5), 0x6982);
}

/// Attack: after a refused EXTERNAL AUTHENTICATE, try again with the right
/// signature over the same challenge; the failure used the challenge up, so
/// it is refused (6985).
#[test]
fn attack_retry_after_a_failed_external_authenticate() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::open(a);
    ac.select();
    let name = ac.device_name();
    let c = ac.challenge();
    assert_eq!(ac.mse_at(&chr(&files[0])), 0x9000);
    assert_eq!(ac.external_authenticate(&[0x11; 64]), 0x6985);
    let good = signer(b).sign_login(1, &name, &c);
    assert_eq!(ac.external_authenticate(&good), 0x6985);
    assert_eq!(ac.status()[3], 0);
    // A new challenge, signed, works: the key itself was never the problem.
    let c = ac.challenge();
    let good = signer(b).sign_login(1, &name, &c);
    assert_eq!(ac.external_authenticate(&good), 0x9000);
}

/// Attack: replay a valid login signature after the card issued a new
/// challenge; refused (6985).
#[test]
fn attack_replay_after_a_new_challenge() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::open(a);
    ac.select();
    let name = ac.device_name();
    let c1 = ac.challenge();
    let old = signer(b).sign_login(1, &name, &c1);
    ac.challenge();
    assert_eq!(ac.mse_at(&chr(&files[0])), 0x9000);
    assert_eq!(ac.external_authenticate(&old), 0x6985);
    assert_eq!(keygen(&mut ac, 5), 0x6982);
}

/// Attack: relay the primary's challenge to the authenticator as if another
/// device (here the authenticator itself) asked, and present that signature;
/// refused (6985), since the signed data names the device.
#[test]
fn attack_signature_over_another_devices_name() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::open(a);
    ac.select();
    let mut bc = signer(b);
    let other = bc.device_name();
    assert_ne!(other, ac.device_name());
    let c = ac.challenge();
    let sig = bc.sign_login(1, &other, &c);
    assert_eq!(ac.mse_at(&chr(&files[0])), 0x9000);
    assert_eq!(ac.external_authenticate(&sig), 0x6985);
    assert_eq!(ac.status()[3], 0);
}

/// Attack: sign the challenge with a key that is not registered, presented
/// as the registered one; refused (6985).
#[test]
fn attack_signature_by_an_unregistered_key() {
    let (cards, files) = setup(1, 1, 2);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files[..1]);
    let mut ac = Conn::open(a);
    ac.select();
    let name = ac.device_name();
    let c = ac.challenge();
    let sig = signer(b).sign_login(2, &name, &c);
    assert_eq!(ac.mse_at(&chr(&files[0])), 0x9000);
    assert_eq!(ac.external_authenticate(&sig), 0x6985);
    assert_eq!(ac.mse_at(&chr(&files[1])), 0x6A88, "not registered");
}

/// Attack: register one public key under two names on a 2-of-2 device, so
/// one holder meets the quorum alone; the second registration is refused
/// (6A89) and one key's signatures never grant the user state.
#[test]
fn attack_one_key_registered_under_two_names() {
    let cards = VCard::start_many(1);
    let a = &cards[0];
    init_pka(a, 2, 2);
    let k = SoftKey::new(1);
    let mut ac = Conn::logged_in(a);
    assert_eq!(
        ac.register_request(&k.request(b"ATTACKER0000001")).1,
        0x9000
    );
    assert_eq!(
        ac.register_request(&k.request(b"ATTACKER0000002")).1,
        0x6A89,
        "the same public key under another CHR"
    );
    assert_eq!(ac.status(), vec![2, 1, 2, 0]);
    ac.select();
    let name = ac.device_name();
    let c = ac.challenge();
    let sig = k.sign_login(&name, &c);
    assert_eq!(ac.mse_at(b"ATTACKER0000001"), 0x9000);
    assert_eq!(ac.external_authenticate(&sig), 0x9000);
    assert_eq!(ac.mse_at(b"ATTACKER0000002"), 0x6A88);
    assert_eq!(ac.status()[3], 1, "one of two");
    assert_eq!(ac.verify_pin(), 0x9000);
    assert_eq!(keygen(&mut ac, 5), 0x6982, "no user state");
}

/// Attack: with only the user PIN, register one's own key on a device that
/// has its m authenticators already, then log in with it; refused (6982)
/// until the registration runs in a session that reached the quorum.
#[test]
fn attack_registration_with_the_pin_alone_past_m() {
    let (cards, files) = setup(2, 1, 2);
    let (a, b) = (&cards[0], &cards[1]);
    let mut ac = Conn::logged_in(a);
    assert_eq!(ac.register(&files[0]).1, 0x9000, "bootstrap: the PIN");
    assert_eq!(ac.register(&files[1]).1, 0x6982, "past m: PIN alone");
    ac.select();
    assert_eq!(ac.status(), vec![2, 1, 1, 0]);
    // With the quorum of the registered key, in the same session: accepted.
    assert_eq!(ac.verify_pin(), 0x9000);
    ac.quorum(&[(b, 1, &files[0])]);
    assert_eq!(ac.register(&files[1]).1, 0x9000);
    assert_eq!(ac.status()[1], 0);
}

/// Attack: register a key with no PIN verified at all; refused (6982), even
/// while no key is registered yet.
#[test]
fn attack_registration_without_any_pin() {
    let (cards, files) = setup(2, 1, 1);
    let a = &cards[0];
    let mut ac = Conn::open(a);
    ac.select();
    assert_eq!(ac.register(&files[0]).1, 0x6982);
    assert_eq!(ac.status(), vec![2, 2, 1, 0]);
}

/// Attack: with the SO-PIN alone, reach the user state of a PKA device by
/// registering one's own authenticator next to the legitimate one; refused
/// (6982), and the SO-PIN grants no key use.
#[test]
fn attack_so_pin_alone_cannot_reach_the_user_state() {
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    initialize(b, &[]);
    let own = firmware_key(b, 1, Curve::P256).0;
    let mut ac = init_pka_only(a, 2, 1);
    // The legitimate authenticator, registered at set-up (bootstrap).
    assert_eq!(
        ac.register_request(&SoftKey::new(9).request(b"LEGITIMATE00001"))
            .1,
        0x9000
    );
    ac.select();
    let so: Vec<u8> = hex::decode(SO_PIN).unwrap();
    assert_eq!(ac.tx(&apdu::build(0, 0x20, 0, 0x88, &so, 0)).1, 0x9000);
    assert_eq!(ac.register(&own).1, 0x6982, "SO-PIN alone past m");
    assert_eq!(keygen(&mut ac, 5), 0x6982, "SO-PIN grants no user state");
    // The attacker's key is not registered: its login fails.
    let name = ac.device_name();
    let c = ac.challenge();
    let sig = signer(b).sign_login(1, &name, &c);
    assert_eq!(ac.mse_at(&chr(&own)), 0x6A88);
    assert_eq!(ac.external_authenticate(&sig), 0x6A88);
}

/// Attack: after a full login (quorum and PIN), make the device key (CC00)
/// sign a host digest or run ECDH, to forge its "generated on this device"
/// signature; refused (6985).
#[test]
fn attack_device_key_used_by_the_host() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::logged_in(a);
    ac.quorum(&[(b, 1, &files[0])]);
    assert_eq!(keygen(&mut ac, 5), 0x9000, "the user state is granted");
    for alg in [0x70u8, 0x73] {
        let d = ac
            .tx(&apdu::build_extended(0x80, 0x68, 0, alg, &[3; 32], 65536))
            .1;
        assert_eq!(d, 0x6985, "SIGN {alg:02X} with key 0");
    }
    let chain = ac.read_ef(0x2F02);
    let (dev, _) = Cvc::parse(&chain).unwrap();
    let q = dev.key_field(0x86).unwrap().to_vec();
    assert_eq!(
        ac.tx(&apdu::build_extended(0x80, 0x62, 0, 0x80, &q, 65536))
            .1,
        0x6985,
        "ECDH with key 0"
    );
    assert_eq!(
        ac.tx(&apdu::build(0x80, 0x72, 0, 0x92, &[], 65536)).1,
        0x6982,
        "WRAP of key 0"
    );
    assert_eq!(sign(&mut ac, 5), 0x9000, "other keys sign");
}

/// Attack: send PSO VERIFY CERTIFICATE with ever new valid certificates,
/// without any PIN, to fill the flash; the card keeps them in the session
/// only (at most 16, then 6A84) and the flash image does not change.
#[test]
fn attack_pso_verify_certificate_fills_no_flash() {
    use picohsm_firmware::device::{test_chain, TEST_DICA};
    let cards = VCard::start_many(1);
    let a = &cards[0];
    init_pka(a, 1, 1);
    let before = std::fs::read(a.flash_path()).unwrap();
    let mut ac = Conn::open(a);
    ac.select();
    let q = {
        let chain = ac.read_ef(0x2F02);
        Cvc::parse(&chain)
            .unwrap()
            .0
            .key_field(0x86)
            .unwrap()
            .to_vec()
    };
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
    let mut refused = 0;
    for round in 0..2 {
        for i in 0..24 {
            let name = format!("ZZATTACK{round}{i:05}");
            let chain = test_chain(name.as_bytes(), &q).unwrap();
            let (dev, _) = Cvc::parse(&chain).unwrap();
            assert_eq!(dst(&mut ac, TEST_DICA), 0x9000);
            match ac.tx(&apdu::build_extended(0, 0x2A, 0, 0xBE, dev.raw, 0)).1 {
                0x9000 => assert!(i < 16, "more than 16 in a session"),
                0x6A84 => refused += 1,
                sw => panic!("PSO answered {sw:04X}"),
            }
        }
        ac.select();
    }
    assert_eq!(refused, 16);
    assert_eq!(
        dst(&mut ac, b"ZZATTACK000000"),
        0x6A88,
        "forgotten at SELECT"
    );
    drop(ac);
    assert_eq!(
        std::fs::read(a.flash_path()).unwrap(),
        before,
        "flash unchanged"
    );
}

/// Attack: import a DKEK share without any PIN into a key domain that
/// already holds a key, so that the completed DKEK (known to the attacker)
/// would wrap it; refused (6982).
#[test]
fn attack_dkek_share_import_without_pin_into_a_domain_with_keys() {
    let cards = VCard::start_many(1);
    let a = &cards[0];
    initialize(a, &["--dkek-shares", "2"]);
    let mut ac = Conn::open(a);
    ac.select();
    let share = |c: &mut Conn, v: u8| c.tx(&apdu::build(0x80, 0x52, 0, 0, &[v; 32], 256)).1;
    assert_eq!(share(&mut ac, 1), 0x9000, "no key yet: as sc-hsm-tool does");
    assert_eq!(ac.verify_pin(), 0x9000);
    assert_eq!(keygen(&mut ac, 1), 0x9000);
    ac.select();
    assert_eq!(share(&mut ac, 2), 0x6982, "a key in the domain, no PIN");
    assert_eq!(ac.verify_pin(), 0x9000);
    assert_eq!(share(&mut ac, 2), 0x9000, "with the PIN");
}

/// Attack: on a PKA + PIN token, use a key after the PKA quorum alone,
/// without the PIN; refused (6400, the keys stay locked) until the PIN.
#[test]
fn attack_key_use_after_pka_alone_on_a_pka_and_pin_token() {
    let (cards, files) = setup(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files);
    let mut ac = Conn::logged_in(a);
    ac.quorum(&[(b, 1, &files[0])]);
    assert_eq!(keygen(&mut ac, 5), 0x9000);
    ac.select();
    ac.quorum(&[(b, 1, &files[0])]);
    assert_eq!(sign(&mut ac, 5), 0x6400, "quorum alone");
    assert_eq!(keygen(&mut ac, 6), 0x6400);
    assert_eq!(ac.verify_pin(), 0x9000);
    assert_eq!(sign(&mut ac, 5), 0x9000);
}

/// Attack: guess the user PIN, restarting the card between guesses to save
/// the tries; the counter is kept in flash and the PIN blocks after 3.
#[test]
fn attack_pin_guessing_across_restarts() {
    let mut cards = VCard::start_many(1);
    let a = &mut cards[0];
    initialize(a, &[]);
    for left in [2u16, 1] {
        let mut c = Conn::open(a);
        c.select();
        assert_eq!(c.verify_pin_with("000000"), 0x63C0 | left);
        drop(c);
        a.restart();
    }
    let mut c = Conn::open(a);
    c.select();
    assert_eq!(
        c.tx(&[0, 0x20, 0, 0x81]).1,
        0x63C1,
        "counted across restarts"
    );
    assert_eq!(c.verify_pin_with("000000"), 0x6983);
    drop(c);
    a.restart();
    let mut c = Conn::open(a);
    c.select();
    assert_eq!(c.verify_pin(), 0x6983, "the right PIN, blocked");
}

/// Attack: guess the SO-PIN through INITIALIZE (which would wipe the PKA
/// set-up), restarting between guesses; after 15 wrong tries the SO-PIN is
/// blocked, the right one is refused too (6983) and the device stays as it was.
#[test]
fn attack_so_pin_guessing_through_reinitialisation() {
    let mut cards = VCard::start_many(1);
    let a = &mut cards[0];
    init_pka(a, 1, 1);
    let init = |so: &[u8]| {
        let mut d = Vec::new();
        tlv::push(&mut d, 0x80, &[0, 1]);
        tlv::push(&mut d, 0x82, so);
        d
    };
    let wrong = init(&[0x99; 8]);
    for i in 0..15u16 {
        let mut c = Conn::open(a);
        c.select();
        let sw = c.tx(&apdu::build(0x80, 0x50, 0, 0, &wrong, 0)).1;
        let want = if i == 14 { 0x6983 } else { 0x63C0 | (14 - i) };
        assert_eq!(sw, want, "try {i}");
        drop(c);
        if i == 7 {
            a.restart();
        }
    }
    a.restart();
    let mut c = Conn::open(a);
    c.select();
    let right = init(&hex::decode(SO_PIN).unwrap());
    assert_eq!(c.tx(&apdu::build(0x80, 0x50, 0, 0, &right, 0)).1, 0x6983);
    assert_eq!(c.status(), vec![1, 1, 1, 0], "still the PKA device");
}

/// `picohsm-tool pka register` past m: without `--auth-pin` it says a PKA
/// login is needed and sends no registration; with it, it logs in first and
/// registers in the same session, then logs out.
#[test]
fn tool_registers_past_m_after_a_pka_login() {
    let (cards, files) = setup(2, 1, 2);
    let (a, b) = (&cards[0], &cards[1]);
    register_all(a, &files[..1]);
    let file = a.dir().join("second.pka");
    std::fs::write(&file, &files[1]).unwrap();
    let e = tool_fails(a, &["pka", "register", &s(&file), "--pin", PIN], 2);
    assert!(e.contains("PKA login") && e.contains("--auth-pin"), "{e}");
    let out = tool_ok(
        a,
        &[
            "pka",
            "register",
            &s(&file),
            "--pin",
            PIN,
            "--auth-pin",
            PIN,
            "--authenticator-reader",
            b.reader_name(),
            "--wait",
            "0",
        ],
    );
    assert!(out.contains("quorum reached"), "{out}");
    assert!(out.contains("registered    2 of 2, 0 missing"), "{out}");
    let mut ac = Conn::open(a);
    ac.select();
    assert_eq!(ac.status(), vec![2, 0, 1, 0], "logged out again");
}
