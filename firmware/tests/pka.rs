//! The card side of Public Key Authentication (docs/protocol.md §6): registration, the
//! challenge/response login, m-of-n, PIN+PKA and PKA alone, and every
//! refusal, between two in-memory cards (the end-to-end versions through
//! pcscd are in the workspace's tests/pka_e2e.rs).

mod common;

use common::*;
use picohsm_crypto::{ec, hash::HashAlg};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, AuthRequest};
use picohsm_wire::tlv;

/// A primary initialised with PKA `n`-of-`m` (tag 93) and a PIN.
fn primary(n: u8, m: u8, extra: &[u8]) -> T {
    let mut a = T::with(Mem::default(), Mem::default(), 11);
    let mut e = vec![0x93, 2, n, m];
    e.extend_from_slice(extra);
    a.init(&e);
    a
}

/// A primary with PKA `n`-of-`m` and its user PIN verified, and an
/// authenticator.
fn logged_in_pair(n: u8, m: u8) -> (T, T) {
    let mut a = primary(n, m, &[]);
    let b = authenticator();
    a.login();
    (a, b)
}

fn authenticator() -> T {
    let mut b = T::with(Mem::default(), Mem::default(), 22);
    b.init(&[]);
    b.login();
    b
}

/// Generates a key on `b`; returns the register payload (content of 67) and its CHR.
fn make_key(b: &mut T, id: u8, tpl: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (req, sw) = b.cmd(0, 0x46, id, 0, tpl, 65536);
    assert_eq!(sw, 0x9000);
    let (t, _) = tlv::parse_one(&req).unwrap();
    let chr = AuthRequest::parse(t.value).unwrap().cert.chr.to_vec();
    (t.value.to_vec(), chr)
}

fn register(a: &mut T, payload: &[u8]) -> (Vec<u8>, u16) {
    a.cmd(0x80, 0x54, 0, 0, payload, 4)
}

fn status(a: &mut T) -> Vec<u8> {
    let (d, sw) = a.raw(&[0x80, 0x54, 0, 0, 0]);
    assert_eq!(sw, 0x9000);
    d
}

fn challenge(a: &mut T) -> Vec<u8> {
    let (c, sw) = a.raw(&[0, 0x84, 0, 0, 8]);
    assert_eq!(sw, 0x9000);
    c
}

/// The authenticator signs name ‖ challenge with SIGN 0x73; returns r‖s.
fn sign_login(b: &mut T, id: u8, name: &[u8], chal: &[u8], field: usize) -> Vec<u8> {
    let mut t = name.to_vec();
    t.extend_from_slice(chal);
    let (der, sw) = b.cmd(0x80, 0x68, id, 0x73, &t, 65536);
    assert_eq!(sw, 0x9000);
    ec::der_to_raw(&der, field).unwrap()
}

fn mse_at(a: &mut T, chr: &[u8]) -> u16 {
    a.cmd(0, 0x22, 0x81, 0xA4, &tlv::encode(0x83, chr), 0).1
}

fn ext_auth(a: &mut T, sig: &[u8]) -> u16 {
    a.cmd(0, 0x82, 0, 0, sig, 0).1
}

/// One full round: challenge, signature by `id` on b, MSE SET AT, EXTERNAL AUTHENTICATE.
fn login_with(a: &mut T, b: &mut T, id: u8, chr: &[u8], field: usize) -> u16 {
    let c = challenge(a);
    let name = a.card.device_name();
    let sig = sign_login(b, id, &name, &c, field);
    assert_eq!(mse_at(a, chr), 0x9000);
    ext_auth(a, &sig)
}

#[test]
fn initialise_register_login_then_pin_unlocks_keys() {
    let mut a = primary(1, 1, &[]);
    assert_eq!(status(&mut a), vec![1, 1, 1, 0]);
    let mut b = authenticator();
    let (payload, chr) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    assert_eq!(register(&mut a, &payload).1, 0x6982, "no PIN session");
    a.login();
    assert_eq!(register(&mut a, &payload), (vec![1, 0, 1, 0], 0x9000));
    assert_eq!(a.raw(&[0x80, 0x54, 2, 0, 0]), (chr.clone(), 0x9000));
    assert_eq!(a.raw(&[0x80, 0x54, 2, 1, 0]).1, 0x6A86, "slot beyond n");
    // The login of t_pka_login.txt.
    a.select();
    assert_eq!(status(&mut a), vec![1, 0, 1, 0]);
    assert_eq!(a.raw(&[0, 0x20, 0, 0x81]).1, 0x63C3);
    assert_eq!(login_with(&mut a, &mut b, 1, &chr, 32), 0x9000);
    assert_eq!(status(&mut a), vec![1, 0, 1, 1]);
    assert_eq!(
        a.raw(&[0x80, 0x54, 2, 0, 0]).1,
        0x9001,
        "enumerate: authenticated"
    );
    assert_eq!(mse_at(&mut a, &chr), 0x6985, "already authenticated");
    assert_eq!(
        a.raw(&[0, 0x20, 0, 0x81]).1,
        0x63C3,
        "PKA is not a PIN verification"
    );
    assert_eq!(
        a.cmd(0, 0x46, 5, 0, &p256_template(), 65536).1,
        0x6400,
        "MKEK locked without the PIN"
    );
    a.login();
    let (req, sw) = a.cmd(0, 0x46, 5, 0, &p256_template(), 65536);
    assert_eq!(sw, 0x9000);
    let q = ec_point(&req);
    let digest = HashAlg::Sha256.digest(b"after PKA and PIN");
    let (der, sw) = a.sign(5, 0x70, &digest);
    assert_eq!(sw, 0x9000);
    assert!(p256_verifies(&q, &digest, &der));
    // SELECT and reset are logouts; nothing of it survives.
    a.select();
    assert_eq!(status(&mut a), vec![1, 0, 1, 0]);
    assert_eq!(a.cmd(0x80, 0x68, 5, 0x70, &digest, 65536).1, 0x6982);
    let mut a = a.restart();
    a.select();
    a.login();
    assert_eq!(
        a.cmd(0x80, 0x68, 5, 0x70, &digest, 65536).1,
        0x6982,
        "PIN alone on a PKA device"
    );
}

#[test]
fn two_of_three() {
    let (mut a, mut b) = logged_in_pair(3, 2);
    let mut chrs: Vec<Vec<u8>> = Vec::new();
    for id in 1..=3u8 {
        let (p, chr) = make_key(&mut b, id, &ec_template(Curve::P256, None, None));
        if id == 3 {
            // Past m = 2 registered keys, registering needs the quorum too.
            assert_eq!(register(&mut a, &p).1, 0x6982);
            let c = challenge(&mut a);
            let name = a.card.device_name();
            for (i, chr) in chrs.iter().enumerate() {
                let s = sign_login(&mut b, i as u8 + 1, &name, &c, 32);
                assert_eq!(mse_at(&mut a, chr), 0x9000);
                assert_eq!(ext_auth(&mut a, &s), 0x9000);
            }
        }
        assert_eq!(register(&mut a, &p).1, 0x9000);
        chrs.push(chr);
    }
    assert_eq!(
        status(&mut a),
        vec![3, 0, 2, 2],
        "the quorum of the registration"
    );
    a.select();
    a.login();
    let c = challenge(&mut a);
    let name = a.card.device_name();
    let s1 = sign_login(&mut b, 1, &name, &c, 32);
    let s3 = sign_login(&mut b, 3, &name, &c, 32);
    assert_eq!(mse_at(&mut a, &chrs[0]), 0x9000);
    assert_eq!(ext_auth(&mut a, &s1), 0x9000);
    assert_eq!(status(&mut a), vec![3, 0, 2, 1]);
    assert_eq!(
        a.cmd(0x80, 0x68, 9, 0x70, &[1; 32], 65536).1,
        0x6982,
        "one of two: no user state"
    );
    assert_eq!(mse_at(&mut a, &chrs[2]), 0x9000);
    assert_eq!(ext_auth(&mut a, &s3), 0x9000);
    assert_eq!(status(&mut a), vec![3, 0, 2, 2]);
    assert_eq!(
        a.cmd(0, 0x46, 9, 0, &p256_template(), 65536).1,
        0x9000,
        "quorum and PIN"
    );
    // The challenge was used up by the quorum.
    assert_eq!(mse_at(&mut a, &chrs[1]), 0x9000);
    let s2 = sign_login(&mut b, 2, &name, &c, 32);
    assert_eq!(ext_auth(&mut a, &s2), 0x6985);
}

#[test]
fn refusals() {
    let (mut a, mut b) = logged_in_pair(2, 2);
    let (p1, chr1) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    let (_, _) = make_key(&mut b, 2, &ec_template(Curve::P256, None, None));
    assert_eq!(register(&mut a, &p1).1, 0x9000);
    assert_eq!(register(&mut a, &p1).1, 0x6A89, "same CHR twice");
    a.select();
    let name = a.card.device_name();
    // EXTERNAL AUTHENTICATE without a challenge, and without a key selected.
    assert_eq!(ext_auth(&mut a, &[1; 64]), 0x6A88);
    assert_eq!(mse_at(&mut a, &chr1), 0x9000);
    assert_eq!(ext_auth(&mut a, &[1; 64]), 0x6985);
    assert_eq!(mse_at(&mut a, b"NOSUCHKEY00001"), 0x6A88);
    // A signature replayed after a new challenge.
    let c = challenge(&mut a);
    let old = sign_login(&mut b, 1, &name, &c, 32);
    challenge(&mut a);
    assert_eq!(mse_at(&mut a, &chr1), 0x9000);
    assert_eq!(ext_auth(&mut a, &old), 0x6985);
    // A signature by an unregistered key.
    let c = challenge(&mut a);
    let other = sign_login(&mut b, 2, &name, &c, 32);
    assert_eq!(ext_auth(&mut a, &other), 0x6985);
    // A signature over another device's name.
    let wrong = sign_login(&mut b, 1, b"ZZPHSMOTHER00001", &c, 32);
    assert_eq!(ext_auth(&mut a, &wrong), 0x6985);
    assert_eq!(status(&mut a)[3], 0, "nothing authenticated");
    // A bad signature uses the challenge up: the good one over it is refused,
    // over a new challenge it works.
    let good = sign_login(&mut b, 1, &name, &c, 32);
    assert_eq!(ext_auth(&mut a, &good), 0x6985);
    let c = challenge(&mut a);
    let good = sign_login(&mut b, 1, &name, &c, 32);
    assert_eq!(ext_auth(&mut a, &good), 0x9000);
    assert_eq!(a.raw(&[0, 0x82, 0, 0]).1, 0x6700, "no signature");
    assert_eq!(a.raw(&[0, 0x82, 1, 0, 1, 0]).1, 0x6A86);
}

#[test]
fn registration_checks_the_request() {
    // 8 of 8: every registration below is within the bootstrap (before m keys).
    let (mut a, mut b) = logged_in_pair(8, 8);
    let (p, _) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    // Unsigned: the inner signature altered.
    let mut bad = p.clone();
    let body_len = AuthRequest::parse(&p).unwrap().cert.body.len();
    let sig_pos = 4 + body_len + 3;
    bad[sig_pos + 5] ^= 0x55;
    assert_eq!(register(&mut a, &bad).1, 0x6984);
    assert_eq!(register(&mut a, &p[..p.len() - 3]).1, 0x6A80, "truncated");
    assert_eq!(register(&mut a, &[0x7F, 0x21, 0x01, 0x00]).1, 0x6A80);
    // Eight keys fit, a ninth does not.
    assert_eq!(register(&mut a, &p).1, 0x9000);
    for id in 2..=8u8 {
        let (p, _) = make_key(&mut b, id, &ec_template(Curve::P256, None, None));
        assert_eq!(register(&mut a, &p).1, 0x9000, "key {id}");
    }
    assert_eq!(status(&mut a), vec![8, 0, 8, 0]);
    let (p9, _) = make_key(&mut b, 9, &ec_template(Curve::P256, None, None));
    assert_eq!(
        register(&mut a, &p9).1,
        0x6982,
        "past m: the quorum is needed"
    );
    let c = challenge(&mut a);
    let name = a.card.device_name();
    for slot in 0..8u8 {
        let (chr, _) = a.raw(&[0x80, 0x54, 2, slot, 0]);
        let id = if slot == 0 { 1 } else { slot + 1 };
        let s = sign_login(&mut b, id, &name, &c, 32);
        assert_eq!(mse_at(&mut a, &chr), 0x9000);
        assert_eq!(ext_auth(&mut a, &s), 0x9000, "slot {slot}");
    }
    assert_eq!(register(&mut a, &p9).1, 0x6A84, "a ninth key");
    // More than eight slots cannot be asked for.
    let mut c = T::with(Mem::default(), Mem::default(), 5);
    c.select();
    let mut d = vec![0x82, 8];
    d.extend_from_slice(&SO_PIN);
    d.extend_from_slice(&[0x93, 2, 9, 1]);
    assert_eq!(c.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x6A80);
    // Replace needs option 0008.
    assert_eq!(a.cmd(0x80, 0x54, 1, 0, &p9, 4).1, 0x6985);
    // Without PKA: 6A86 / 6A82.
    assert_eq!(b.raw(&[0x80, 0x54, 0, 0, 0]).1, 0x6A86);
    assert_eq!(b.cmd(0x80, 0x54, 0, 0, &p9, 4).1, 0x6A82);
}

#[test]
fn replace_with_the_option() {
    let mut a = primary(1, 1, &[]);
    // Option bits 0001 (RRC) | 0008 (replace).
    a.select();
    let d = init_data(9, Some(PIN), &[0x93, 2, 1, 1]);
    assert_eq!(a.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x9000);
    let mut b = authenticator();
    let (p1, _) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    let (p2, chr2) = make_key(&mut b, 2, &ec_template(Curve::P256, None, None));
    let chr1 = AuthRequest::parse(&p1).unwrap().cert.chr.to_vec();
    assert_eq!(register(&mut a, &p1).1, 0x9000);
    // Replacing past m registered keys needs the quorum as well as the PIN.
    assert_eq!(a.cmd(0x80, 0x54, 1, 0, &p2, 4).1, 0x6982);
    assert_eq!(login_with(&mut a, &mut b, 1, &chr1, 32), 0x9000);
    assert_eq!(a.cmd(0x80, 0x54, 1, 0, &p2, 4), (vec![1, 0, 1, 0], 0x9000));
    assert_eq!(a.raw(&[0x80, 0x54, 2, 0, 0]).0, chr2);
    assert_eq!(a.cmd(0x80, 0x54, 1, 1, &p2, 4).1, 0x6A86);
}

#[test]
fn opensc_placeholder_car_brainpool_and_rsa_keys_log_in() {
    let (mut a, mut b) = logged_in_pair(3, 3);
    // As OpenSC generates it: CAR "UTCA00001", CHR <serial>00001 (upstream: 6985).
    let (p1, chr1) = make_key(
        &mut b,
        1,
        &ec_template(Curve::P256, Some(b"UTCA00001"), Some(b"ZZPHSMXXXXX00001")),
    );
    assert_eq!(
        AuthRequest::parse(&p1).unwrap().cert.car,
        Some(&b"UTCA00001"[..])
    );
    let (p2, chr2) = make_key(&mut b, 2, &ec_template(Curve::BrainpoolP256r1, None, None));
    let rsa = tlv::encode(0x7F49, &rsa_public_key(1024));
    let (p3, chr3) = make_key(&mut b, 3, &rsa);
    for p in [&p1, &p2, &p3] {
        assert_eq!(register(&mut a, p).1, 0x9000);
    }
    a.select();
    let c = challenge(&mut a);
    let name = a.card.device_name();
    let s1 = sign_login(&mut b, 1, &name, &c, 32);
    let s2 = sign_login(&mut b, 2, &name, &c, 32);
    let mut t = name.clone();
    t.extend_from_slice(&c);
    let (s3, sw) = b.cmd(0x80, 0x68, 3, 0x33, &t, 65536);
    assert_eq!(sw, 0x9000);
    for (chr, sig) in [(&chr1, &s1), (&chr2, &s2), (&chr3, &s3)] {
        assert_eq!(mse_at(&mut a, chr), 0x9000);
        assert_eq!(ext_auth(&mut a, sig), 0x9000);
    }
    assert_eq!(status(&mut a), vec![3, 0, 3, 3]);
}

#[test]
fn pka_without_a_pin_unlocks_keys_by_the_quorum() {
    let mut a = T::with(Mem::default(), Mem::default(), 11);
    a.select();
    let d = init_data(1, None, &[0x93, 2, 1, 1]);
    assert_eq!(a.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x9000);
    a.select();
    let mut b = authenticator();
    let (p, chr) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    assert_eq!(register(&mut a, &p).1, 0x6982);
    assert_eq!(a.cmd(0, 0x20, 0, 0x88, &SO_PIN, 0).1, 0x9000);
    assert_eq!(register(&mut a, &p).1, 0x9000);
    let mut a = a.restart();
    a.select();
    assert_eq!(a.raw(&[0, 0x20, 0, 0x81]).1, 0x6A88, "no user PIN");
    assert_eq!(login_with(&mut a, &mut b, 1, &chr, 32), 0x9000);
    assert_eq!(
        a.cmd(0, 0x46, 4, 0, &p256_template(), 65536).1,
        0x9000,
        "keys usable after PKA alone"
    );
    assert_eq!(a.cmd(0x80, 0x68, 4, 0x70, &[7; 32], 65536).1, 0x9000);
    // Setting a user PIN later (SO) moves the MKEK under it.
    let mut d = SO_PIN.to_vec();
    d.extend_from_slice(b"246810");
    assert_eq!(a.cmd(0, 0x2C, 0, 0x81, &d, 0).1, 0x9000);
    let mut a = a.restart();
    a.select();
    assert_eq!(login_with(&mut a, &mut b, 1, &chr, 32), 0x9000);
    assert_eq!(
        a.cmd(0x80, 0x68, 4, 0x70, &[7; 32], 65536).1,
        0x6400,
        "now the PIN is needed"
    );
    assert_eq!(a.cmd(0, 0x20, 0, 0x81, b"246810", 0).1, 0x9000);
    assert_eq!(a.cmd(0x80, 0x68, 4, 0x70, &[7; 32], 65536).1, 0x9000);
}

#[test]
fn combined_authentication_needs_pin_and_quorum() {
    let mut a = T::with(Mem::default(), Mem::default(), 11);
    a.select();
    let d = init_data(0x11, Some(PIN), &[0x93, 2, 1, 1]);
    assert_eq!(a.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x9000);
    let mut b = authenticator();
    let (p, chr) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    assert_eq!(register(&mut a, &p).1, 0x9000);
    a.select();
    assert_eq!(login_with(&mut a, &mut b, 1, &chr, 32), 0x9000);
    let w = [0x54, 2, 0, 0, 0x53, 1, 1];
    assert_eq!(
        a.cmd(0, 0xD7, 0xCF, 1, &w, 0).1,
        0x6982,
        "quorum alone is not enough"
    );
    a.login();
    assert_eq!(a.cmd(0, 0xD7, 0xCF, 1, &w, 0).1, 0x9000);
    // And the other order: PIN first, then the quorum.
    a.select();
    a.login();
    assert_eq!(a.cmd(0, 0xD7, 0xCF, 1, &w, 0).1, 0x6982);
    assert_eq!(login_with(&mut a, &mut b, 1, &chr, 32), 0x9000);
    assert_eq!(a.cmd(0, 0xD7, 0xCF, 1, &w, 0).1, 0x9000);
}

#[test]
fn issuer_certificates_and_the_outer_signature() {
    let (mut a, mut b) = logged_in_pair(1, 1);
    let (chain, _) = b.cmd(0, 0xB1, 0x2F, 2, &[0x54, 2, 0, 0], 65536);
    let certs = cvc::parse_chain(&chain).unwrap();
    let (dev, dica) = (&certs[0], &certs[1]);
    let dst = |a: &mut T, name: &[u8]| a.cmd(0, 0x22, 0x81, 0xB6, &tlv::encode(0x83, name), 0).1;
    // sc-hsm-tool's sequence (docs/protocol.md §6.5): DICA known, device not, verify it.
    assert_eq!(
        dst(&mut a, dica.chr),
        0x9000,
        "the shared test DICA is in A's 2F02"
    );
    assert_eq!(dst(&mut a, dev.chr), 0x6A88);
    assert_eq!(dst(&mut a, &[1]), 0x9000, "a one-byte reference is ignored");
    assert_eq!(dst(&mut a, dica.chr), 0x9000);
    let content = tlv::parse_one(dev.raw).unwrap().0.value;
    let mut forged = content.to_vec();
    let n = forged.len() - 3;
    forged[n] ^= 1;
    assert_eq!(
        a.cmd(0, 0x2A, 0, 0xBE, &forged, 0).1,
        0x6985,
        "bad signature"
    );
    assert_eq!(
        a.cmd(0, 0x2A, 0, 0xBE, &[0x7F, 0x4E, 0], 0).1,
        0x6984,
        "unparsable"
    );
    assert_eq!(a.cmd(0, 0x2A, 0, 0xBE, content, 0).1, 0x9000);
    assert_eq!(dst(&mut a, dev.chr), 0x9000, "now known");
    // With B's device certificate selected, the outer signature is checked.
    let (p, _) = make_key(&mut b, 1, &ec_template(Curve::P256, None, None));
    let mut bad_outer = p.clone();
    let n = bad_outer.len() - 2;
    bad_outer[n] ^= 1;
    assert_eq!(register(&mut a, &bad_outer).1, 0x6985);
    assert_eq!(register(&mut a, &p).1, 0x9000);
    // Without an issuer selected: PSO has nothing to verify with.
    a.select();
    a.login();
    assert_eq!(a.cmd(0, 0x2A, 0, 0xBE, content, 0).1, 0x6A88);
    assert_eq!(
        a.cmd(0, 0x22, 0x81, 0xA4, &[0x80, 1, 0], 0).1,
        0x6A81,
        "no secure messaging"
    );
}
