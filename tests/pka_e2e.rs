//! Public Key Authentication through the real stack: two `picohsm-vcard`
//! instances behind pcscd + vpcd, set up with OpenSC's sc-hsm-tool and
//! pkcs11-tool, and a small PC/SC driver (the `pcsc` crate) for what no
//! OpenSC tool can do: registering with a PIN session, and the login itself.

mod common;

use common::pka::*;
use common::tools::initialize;
use common::*;
use picohsm_crypto::{ec, hash::HashAlg};
use picohsm_wire::apdu;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::AuthRequest;

/// The exchange of the upstream trace t_pka_login.txt, command for command:
/// (instruction, status word) on the primary (A) and the authenticator (B).
const UPSTREAM_LOGIN: &[(char, u8, u16)] = &[
    ('A', 0xA4, 0x9000), // SELECT
    ('A', 0x54, 0x9000), // PKA status
    ('A', 0x20, 0x63C3), // VERIFY status query
    ('A', 0xB1, 0x9000), // READ BINARY 2F02
    ('A', 0xB1, 0x9000), // READ BINARY 2F02 at the end
    ('A', 0x84, 0x9000), // GET CHALLENGE
    ('B', 0xA4, 0x9000), // SELECT
    ('B', 0x20, 0x9000), // VERIFY
    ('B', 0x68, 0x9000), // SIGN ECDSA-SHA256
    ('A', 0x22, 0x9000), // MSE SET AT
    ('A', 0x82, 0x9000), // EXTERNAL AUTHENTICATE
    ('A', 0x54, 0x9000), // PKA status: 1 authenticated
    ('A', 0x22, 0x6985), // MSE SET AT again: already authenticated
    ('A', 0x20, 0x63C3), // VERIFY status: still not a PIN verification
    ('A', 0x58, 0x9000), // ENUMERATE OBJECTS
    ('A', 0x46, 0x6400), // GENERATE without the PIN: MKEK locked
    ('A', 0x20, 0x9000), // VERIFY PIN
    ('A', 0x46, 0x9000), // GENERATE
    ('A', 0x68, 0x9000), // SIGN with the new key
];

/// The whole flow of the issue for one curve: initialise, export an
/// OpenSC-made key, register, log in as in the upstream trace, sign.
fn register_and_log_in(a: &VCard, b: &VCard, curve: &str, id: &str) {
    init_pka(a, 1, 1);
    assert_contains(&pka_status(a), &ONE_OF_ONE_UNREGISTERED);
    let (pka_file, key_ref) = opensc_key(b, curve, id);
    let (request, _, _) = parse_pka_file(&pka_file);
    assert_eq!(
        AuthRequest::parse(&request).unwrap().cert.car,
        Some(&b"UTCA00001"[..]),
        "OpenSC's placeholder CAR"
    );
    let chr = chr_of(&request);

    // sc-hsm-tool itself cannot register: it sends no PIN (6982).
    let file = b.dir().join(format!("register-{id}.bin"));
    std::fs::write(&file, &pka_file).unwrap();
    let out = run_cmd_allow_fail(
        sc_hsm_tool_command(a).args(["--register-public-key", file.to_str().unwrap()]),
    );
    assert!(
        text(&out).contains("Security status not satisfied"),
        "{}",
        text(&out)
    );

    let mut ac = Conn::logged_in(a);
    assert_eq!(ac.register(&pka_file), (vec![1, 0, 1, 0], 0x9000));
    assert!(pka_status(a).contains("Missing public keys:       0"));

    // The login, as t_pka_login.txt records it.
    let mut ac = Conn::open(a);
    let mut bc = Conn::open(b);
    let mut seq: Vec<(char, u8, u16)> = Vec::new();
    let mut rec = |who: char, c: &mut Conn| {
        for (i, s) in c.log.drain(..) {
            seq.push((who, i, s));
        }
    };
    ac.select();
    assert_eq!(ac.status(), vec![1, 0, 1, 0]);
    assert_eq!(ac.tx(&[0, 0x20, 0, 0x81]).1, 0x63C3);
    let name = ac.device_name();
    let challenge = ac.challenge();
    rec('A', &mut ac);
    bc.select();
    assert_eq!(bc.verify_pin(), 0x9000);
    let sig = bc.sign_login(key_ref, &name, &challenge);
    rec('B', &mut bc);
    assert_eq!(ac.mse_at(&chr), 0x9000);
    assert_eq!(ac.external_authenticate(&sig), 0x9000);
    assert_eq!(ac.status(), vec![1, 0, 1, 1]);
    assert_eq!(ac.mse_at(&chr), 0x6985);
    assert_eq!(ac.tx(&[0, 0x20, 0, 0x81]).1, 0x63C3);
    ac.ok(&[0x80, 0x58, 0, 0, 0, 0, 0]);
    let tpl = keygen_template();
    assert_eq!(
        ac.tx(&apdu::build_extended(0, 0x46, 5, 0, &tpl, 65536)).1,
        0x6400
    );
    assert_eq!(ac.verify_pin(), 0x9000);
    let req = ac.ok(&apdu::build_extended(0, 0x46, 5, 0, &tpl, 65536));
    let digest = HashAlg::Sha256.digest(b"signed after a PKA login");
    let der = ac.ok(&apdu::build_extended(0x80, 0x68, 5, 0x70, &digest, 65536));
    rec('A', &mut ac);
    let request = AuthRequest::parse(&req).unwrap();
    let q = request.cert.key_field(0x86).unwrap();
    assert!(ec::verify_prehash(
        Curve::P256,
        q,
        &digest,
        &ec::der_to_raw(&der, 32).unwrap()
    ));
    assert_eq!(seq, UPSTREAM_LOGIN, "the exchange of t_pka_login.txt");
}

/// A primary with PKA `n`-of-`m` (`[0]`) and an authenticator (`[1]`),
/// both with the test PINs.
fn primary_and_authenticator(n: u8, m: u8) -> Vec<VCard> {
    let cards = VCard::start_many(2);
    initialize(&cards[1], &[]);
    init_pka(&cards[0], n, m);
    cards
}

#[test]
fn pka_login_with_opensc_keys_on_secp256r1_and_brainpool() {
    let cards = VCard::start_many(2);
    initialize(&cards[1], &[]);
    register_and_log_in(&cards[0], &cards[1], "EC:prime256v1", "21");
    register_and_log_in(&cards[0], &cards[1], "EC:brainpoolP256r1", "22");
}

#[test]
fn two_of_three_and_firmware_made_keys() {
    let cards = primary_and_authenticator(3, 2);
    let (a, b) = (&cards[0], &cards[1]);
    let keys: Vec<(Vec<u8>, u8)> = [
        (1, Curve::P256),
        (2, Curve::BrainpoolP256r1),
        (3, Curve::P256),
    ]
    .into_iter()
    .map(|(r, c)| firmware_key(b, r, c))
    .collect();
    let mut ac = Conn::logged_in(a);
    for (i, (file, _)) in keys.iter().enumerate() {
        if i == 2 {
            // Past m = 2 registered keys: the PIN alone no longer registers,
            // the quorum of the first two does (docs/protocol.md §6.3).
            assert_eq!(ac.register(file).1, 0x6982);
            ac.quorum(&[(b, 1, &keys[0].0), (b, 2, &keys[1].0)]);
        }
        let (st, sw) = ac.register(file);
        assert_eq!((st[1], sw), (2 - i as u8, 0x9000));
    }
    ac.select();
    assert!(pka_status(a).contains("Missing public keys:       0"));
    let chrs: Vec<Vec<u8>> = keys
        .iter()
        .map(|(f, _)| chr_of(&parse_pka_file(f).0))
        .collect();

    let mut ac = Conn::logged_in(a);
    let mut bc = Conn::open(b);
    let name = ac.device_name();
    let challenge = ac.challenge();
    bc.select();
    assert_eq!(bc.verify_pin(), 0x9000);
    let s1 = bc.sign_login(1, &name, &challenge);
    let s2 = bc.sign_login(2, &name, &challenge);
    assert_eq!(ac.mse_at(&chrs[0]), 0x9000);
    assert_eq!(ac.external_authenticate(&s1), 0x9000);
    // One of two: progress is readable, the user state is not granted.
    assert_eq!(ac.status(), vec![3, 0, 2, 1]);
    let tpl = keygen_template();
    assert_eq!(
        ac.tx(&apdu::build_extended(0, 0x46, 9, 0, &tpl, 65536)).1,
        0x6982
    );
    assert_eq!(ac.mse_at(&chrs[1]), 0x9000);
    assert_eq!(ac.external_authenticate(&s2), 0x9000);
    assert_eq!(ac.status(), vec![3, 0, 2, 2]);
    // The third authenticator was not needed.
    assert_eq!(
        ac.tx(&apdu::build_extended(0, 0x46, 9, 0, &tpl, 65536)).1,
        0x9000
    );
}

#[test]
fn refusals_through_the_stack() {
    let cards = primary_and_authenticator(8, 1);
    let (a, b) = (&cards[0], &cards[1]);
    let mut files = Vec::new();
    for r in 1..=9u8 {
        files.push(firmware_key(b, r, Curve::P256));
    }
    // Registration with no PIN session.
    let mut ac = Conn::open(a);
    ac.select();
    assert_eq!(ac.register(&files[0].0).1, 0x6982);
    assert_eq!(ac.verify_pin(), 0x9000);
    assert_eq!(ac.register(&files[0].0).1, 0x9000);
    // Past m = 1 registered key, the quorum is needed too (docs/protocol.md §6.3).
    assert_eq!(ac.register(&files[1].0).1, 0x6982);
    ac.quorum(&[(b, 1, &files[0].0)]);
    for (f, _) in &files[1..8] {
        assert_eq!(ac.register(f).1, 0x9000);
    }
    assert_eq!(ac.register(&files[8].0).1, 0x6A84, "a ninth key");
    let chr1 = chr_of(&parse_pka_file(&files[0].0).0);

    let mut ac = Conn::open(a);
    let mut bc = Conn::open(b);
    ac.select();
    bc.select();
    assert_eq!(bc.verify_pin(), 0x9000);
    let name = ac.device_name();
    // EXTERNAL AUTHENTICATE with no challenge.
    assert_eq!(ac.mse_at(&chr1), 0x9000);
    assert_eq!(ac.external_authenticate(&[0x11; 64]), 0x6985);
    // A signature replayed after a new challenge.
    let c1 = ac.challenge();
    let old = bc.sign_login(1, &name, &c1);
    ac.challenge();
    assert_eq!(ac.external_authenticate(&old), 0x6985);
    // A failure uses the challenge up, so each attempt below gets its own.
    // A signature by a key that is not registered (key 9).
    let c2 = ac.challenge();
    let unregistered = bc.sign_login(9, &name, &c2);
    assert_eq!(ac.external_authenticate(&unregistered), 0x6985);
    // A signature over another device's name (the authenticator's own).
    let c2 = ac.challenge();
    let b_name = bc.device_name();
    let other = bc.sign_login(1, &b_name, &c2);
    assert_eq!(ac.external_authenticate(&other), 0x6985);
    // PIN alone on a PKA device: no key use.
    assert_eq!(ac.verify_pin(), 0x9000);
    let digest = [7u8; 32];
    let tpl = keygen_template();
    assert_eq!(
        ac.tx(&apdu::build_extended(0, 0x46, 12, 0, &tpl, 65536)).1,
        0x6982
    );
    // The failures used the challenge up: the right signature over it is
    // refused; over a new challenge it works, and with the PIN keys are usable.
    let good = bc.sign_login(1, &name, &c2);
    assert_eq!(ac.external_authenticate(&good), 0x6985);
    let c3 = ac.challenge();
    let good = bc.sign_login(1, &name, &c3);
    assert_eq!(ac.mse_at(&chr1), 0x9000);
    assert_eq!(ac.external_authenticate(&good), 0x9000);
    assert_eq!(
        ac.tx(&apdu::build_extended(0, 0x46, 12, 0, &tpl, 65536)).1,
        0x9000
    );
    assert_eq!(
        ac.tx(&apdu::build_extended(0x80, 0x68, 12, 0x70, &digest, 65536))
            .1,
        0x9000
    );
    // Key use after PKA without the PIN, on a PKA+PIN device: 6400.
    ac.select();
    let c3 = ac.challenge();
    let s = bc.sign_login(1, &name, &c3);
    assert_eq!(ac.mse_at(&chr1), 0x9000);
    assert_eq!(ac.external_authenticate(&s), 0x9000);
    assert_eq!(
        ac.tx(&apdu::build_extended(0x80, 0x68, 12, 0x70, &digest, 65536))
            .1,
        0x6400
    );
}
