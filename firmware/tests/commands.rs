//! Command-level tests of the card through its APDU interface: the
//! behaviour of docs/protocol.md §2-§7, error paths included.

mod common;

use common::*;
use picohsm_crypto::{ec, hash::HashAlg, rsa as crsa};
use picohsm_firmware::dkek;
use picohsm_firmware::keys::PrivateKey;
use picohsm_wire::codes::ATR;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, AuthRequest};
use picohsm_wire::tlv;

#[test]
fn atr_and_select_fcp() {
    let mut t = T::new();
    assert_eq!(t.card.atr(), ATR);
    // Other applets are refused, as OpenSC's probes expect.
    assert_eq!(
        t.raw(&[0, 0xA4, 4, 0, 7, 0x62, 0x76, 1, 0xFF, 0, 0, 0]).1,
        0x6A82
    );
    assert_eq!(t.raw(&[0, 0xA4, 4, 0, 6, 0xA0, 0, 0, 0, 1, 1]).1, 0x6A82);
    let fcp = t.select();
    let (outer, _) = tlv::parse_one(&fcp).unwrap();
    assert_eq!(outer.tag, 0x62);
    let p85 = tlv::find(outer.value, 0x85).unwrap().unwrap().value;
    assert_eq!(p85, &[0, 0, 0xFF, 6, 6]);
    // P2 0C (no FCP) for the applet: 6A86 as on the Pico.
    let mut sel = vec![0, 0xA4, 4, 0x0C, 11];
    sel.extend_from_slice(picohsm_wire::codes::AID);
    assert_eq!(t.raw(&sel).1, 0x6A86);
}

#[test]
fn commands_need_the_applet_selected() {
    let mut t = T::new();
    assert_eq!(t.raw(&[0x80, 0x58, 0, 0, 0, 0, 0]).1, 0x6985);
    t.select();
    assert_eq!(t.raw(&[0x80, 0x58, 0, 0, 0, 0, 0]).1, 0x9000);
}

#[test]
fn version_query_and_uninitialised_state() {
    let mut t = T::new();
    t.select();
    let (d, sw) = t.raw(&[0x80, 0x50, 0, 0]);
    assert_eq!(sw, 0x9000);
    assert_eq!(d.len(), 7);
    assert_eq!(&d[4..], &[0, 6, 6]);
    assert_eq!(t.raw(&[0, 0x20, 0, 0x88]).1, 0x6A88);
    assert_eq!(t.raw(&[0x80, 0x52, 0, 0, 0]).1, 0x6B00);
}

#[test]
fn initialize_as_sc_hsm_tool_sends_it() {
    let mut t = T::new();
    t.select();
    // Bytes of docs/protocol.md §4.3 (with -K 1 -n 1 -s 1).
    let init = [
        0x80, 0x50, 0, 0, 0x20, 0x80, 2, 0, 1, 0x81, 6, 0x36, 0x34, 0x38, 0x32, 0x31, 0x39, 0x82,
        8, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x91, 1, 3, 0x92, 1, 1, 0x93, 2, 1, 1,
    ];
    assert_eq!(t.raw(&init).1, 0x9000);
    let fcp = t.select();
    assert!(fcp.windows(7).any(|w| w == [0x85, 5, 0, 1, 0xFF, 6, 6]));
    assert_eq!(t.raw(&[0, 0x20, 0, 0x88]).1, 0x63CF);
    assert_eq!(t.raw(&[0, 0x20, 0, 0x81]).1, 0x63C3);
    let (d, sw) = t.raw(&[0x80, 0x52, 0, 0, 0]);
    assert_eq!((d, sw), (vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0], 0x9000));
    // Bad TLVs get 6A80.
    assert_eq!(
        t.cmd(
            0x80,
            0x50,
            0,
            0,
            &[0x93, 2, 9, 1, 0x82, 8, 1, 2, 3, 4, 5, 6, 7, 8],
            0
        )
        .1,
        0x6A80
    );
    assert_eq!(t.cmd(0x80, 0x50, 0, 0, &[0x81, 2, 1], 0).1, 0x6A80);
}

#[test]
fn reinitialisation_needs_the_so_pin_and_wipes_keys() {
    let mut t = T::logged_in();
    t.keygen_p256(1);
    let name = t.card.device_name();
    // Wrong SO-PIN: refused and counted.
    let mut d = vec![0x81, 6];
    d.extend_from_slice(PIN);
    d.extend_from_slice(&[0x82, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(t.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x63CE);
    t.init(&[]);
    assert!(!t
        .raw(&[0x80, 0x58, 0, 0, 0, 0, 0])
        .0
        .windows(2)
        .any(|w| w == [0xCC, 1]));
    assert_eq!(t.card.device_name(), name, "device identity survives");
}

#[test]
fn pin_tries_lock_and_so_unblock_and_persist() {
    let mut t = T::new();
    t.init(&[]);
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"000000", 0).1, 0x63C2);
    let mut t = t.restart();
    t.select();
    assert_eq!(t.raw(&[0, 0x20, 0, 0x81]).1, 0x63C2, "counter persists");
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"000000", 0).1, 0x63C1);
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"000000", 0).1, 0x6983);
    assert_eq!(
        t.cmd(0, 0x20, 0, 0x81, PIN, 0).1,
        0x6983,
        "blocked even with the right PIN"
    );
    // SO-PIN unblock with a new PIN (pkcs11-tool --init-pin).
    let mut d = SO_PIN.to_vec();
    d.extend_from_slice(b"123456");
    assert_eq!(t.cmd(0, 0x2C, 0, 0x81, &d, 0).1, 0x9000);
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"123456", 0).1, 0x9000);
    assert_eq!(t.raw(&[0, 0x20, 0, 0x81]).1, 0x9000);
    // Reset-only needs option 0020.
    assert_eq!(t.cmd(0, 0x2C, 1, 0x81, &SO_PIN, 0).1, 0x6986);
    assert_eq!(t.cmd(0, 0x2C, 0, 0x82, &d, 0).1, 0x6A86);
}

#[test]
fn change_pin_reseals_the_mkek() {
    let mut t = T::logged_in();
    t.keygen_p256(1);
    let mut d = PIN.to_vec();
    d.extend_from_slice(b"11223344");
    assert_eq!(t.cmd(0, 0x24, 0, 0x81, &d, 0).1, 0x9000);
    let mut t = t.restart();
    t.select();
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, PIN, 0).1, 0x63C2);
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"11223344", 0).1, 0x9000);
    let (sig, sw) = t.sign(1, 0x70, &[7u8; 32]);
    assert_eq!(sw, 0x9000, "key still usable under the new PIN");
    assert_eq!(sig[0], 0x30);
    // Wrong old PIN.
    let mut d = b"000000xx".to_vec();
    d.extend_from_slice(b"999999");
    assert_eq!(t.cmd(0, 0x24, 0, 0x81, &d, 0).1, 0x63C2);
}

#[test]
fn key_use_needs_login_and_pin_session() {
    let mut t = T::logged_in();
    t.keygen_p256(2);
    t.select();
    assert_eq!(t.sign(2, 0x70, &[1u8; 32]).1, 0x6982);
    assert_eq!(t.cmd(0, 0x46, 3, 0, &p256_template(), 65536).1, 0x6982);
    t.login();
    assert_eq!(t.sign(9, 0x70, &[1u8; 32]).1, 0x6A82, "no key 9");
    assert_eq!(t.sign(2, 0x20, &[1u8; 32]).1, 0x6A81, "RSA algo on EC key");
}

#[test]
fn keygen_request_and_ecdsa_signatures_verify() {
    let mut t = T::logged_in();
    let req = t.keygen_p256(1);
    let r = AuthRequest::parse(&req).unwrap();
    assert_eq!(r.cert.car, Some(&b"UTCA00001"[..]), "template CAR kept");
    assert_eq!(r.cert.chr, b"ZZPHSMXXXXX00001");
    assert_eq!(r.outer_car, &t.card.device_name()[..]);
    let q = r.cert.key_field(0x86).unwrap().to_vec();
    // Inner self-signature verifies with the new key.
    assert!(ec::verify_prehash(
        Curve::P256,
        &q,
        &HashAlg::Sha256.digest(r.cert.body),
        r.cert.signature
    ));
    // A second key with the same template gets its own CHR.
    let req2 = t.keygen_p256(2);
    let r2 = AuthRequest::parse(&req2).unwrap();
    assert_ne!(r2.cert.chr, r.cert.chr);
    // CE01 holds the request, C401 a PrKD; ENUMERATE lists them.
    let (list, _) = t.raw(&[0x80, 0x58, 0, 0, 0, 0, 0]);
    for f in [[0xCC, 1], [0xC4, 1], [0xCC, 2], [0xC4, 2]] {
        assert!(list.chunks(2).any(|c| c == f), "{f:02X?} in {list:02X?}");
    }
    for (alg, h) in [
        (0x71, HashAlg::Sha1),
        (0x72, HashAlg::Sha224),
        (0x73, HashAlg::Sha256),
        (0x74, HashAlg::Sha384),
        (0x75, HashAlg::Sha512),
    ] {
        let (der, sw) = t.sign(1, alg, b"hello world");
        assert_eq!(sw, 0x9000);
        let raw = ec::der_to_raw(&der, 32).unwrap();
        assert!(
            ec::verify_prehash(Curve::P256, &q, &h.digest(b"hello world"), &raw),
            "alg {alg:02X}"
        );
    }
    let digest = HashAlg::Sha256.digest(b"msg");
    let (der, _) = t.sign(1, 0x70, &digest);
    assert!(p256_verifies(&q, &digest, &der));
}

#[test]
fn every_curve_generates_signs_and_derives() {
    let mut t = T::logged_in();
    for (i, curve) in Curve::all().iter().enumerate() {
        let id = i as u8 + 1;
        let (req, sw) = t.cmd(0, 0x46, id, 0, &ec_template(*curve, None, None), 65536);
        assert_eq!(sw, 0x9000, "{curve:?}");
        let r = AuthRequest::parse(&req).unwrap();
        assert!(r.cert.is_self_described(), "no CAR in template: CAR = CHR");
        let q = r.cert.key_field(0x86).unwrap().to_vec();
        let digest = HashAlg::Sha256.digest(b"x");
        let (der, sw) = t.sign(id, 0x70, &digest);
        assert_eq!(sw, 0x9000);
        let raw = ec::der_to_raw(&der, curve.field_size()).unwrap();
        assert!(ec::verify_prehash(*curve, &q, &digest, &raw), "{curve:?}");
        // ECDH against a host key.
        let (hd, hq) = ec::generate(*curve, &mut rand_core::UnwrapErr(getrandom::SysRng));
        let (z, sw) = t.cmd(0x80, 0x62, id, 0x80, &hq, 65536);
        assert_eq!(sw, 0x9000);
        assert_eq!(z[0], 4);
        assert_eq!(
            &z[1..],
            &ec::ecdh(*curve, &hd, &q).unwrap()[..],
            "{curve:?}"
        );
        assert_eq!(
            t.cmd(0x80, 0x62, id, 0x80, &[4, 1, 2, 3], 65536).1,
            0x6A80,
            "bad point"
        );
    }
}

/// OpenSC's template for an RSA key of `bits`: its placeholder CAR, no CHR.
fn rsa_template(bits: u16) -> Vec<u8> {
    keygen_template(&rsa_public_key(bits), Some(b"UTCA00001"), None)
}

#[test]
fn rsa_sign_and_decrypt() {
    let mut t = T::logged_in();
    let (req, sw) = t.cmd(0, 0x46, 4, 0, &rsa_template(1024), 65536);
    assert_eq!(sw, 0x9000);
    let r = AuthRequest::parse(&req).unwrap();
    let n = r.cert.key_field(0x81).unwrap().to_vec();
    let e = r.cert.key_field(0x82).unwrap().to_vec();
    assert_eq!(n.len(), 128);
    let digest = HashAlg::Sha256.digest(b"data");
    let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
    di.extend_from_slice(&digest);
    let (s, sw) = t.sign(4, 0x30, &di);
    assert_eq!(sw, 0x9000);
    assert!(crsa::verify_pkcs1v15(&n, &e, HashAlg::Sha256, &digest, &s));
    let (s, _) = t.sign(4, 0x33, b"data");
    assert!(crsa::verify_pkcs1v15(&n, &e, HashAlg::Sha256, &digest, &s));
    // Host-padded raw, as OpenSC sends it.
    let mut block = vec![0u8, 1];
    block.resize(128 - di.len() - 1, 0xFF);
    block.push(0);
    block.extend_from_slice(&di);
    let (s, _) = t.sign(4, 0x20, &block);
    assert!(crsa::verify_pkcs1v15(&n, &e, HashAlg::Sha256, &digest, &s));
    for data in [&di[..], &digest[..]] {
        let (s, sw) = t.sign(4, 0x40, data);
        assert_eq!(sw, 0x9000);
        assert!(crsa::verify_pss(&n, &e, HashAlg::Sha256, &digest, &s));
    }
    let (s, _) = t.sign(4, 0x43, b"data");
    assert!(crsa::verify_pss(&n, &e, HashAlg::Sha256, &digest, &s));
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let c = crsa::encrypt_pkcs1v15(&n, &e, b"hello world", &mut rng).unwrap();
    let (m, sw) = t.cmd(0x80, 0x62, 4, 0x22, &c, 65536);
    assert_eq!((m.as_slice(), sw), (&b"hello world"[..], 0x9000));
    let (m, _) = t.cmd(0x80, 0x62, 4, 0x21, &c, 65536);
    assert_eq!(m.len(), 128);
    assert!(m.ends_with(b"\0hello world"));
    let c = crsa::encrypt_oaep(&n, &e, HashAlg::Sha256, b"oaep", &mut rng).unwrap();
    assert_eq!(t.cmd(0x80, 0x62, 4, 0x23, &c, 65536).0, b"oaep");
    // Bad padding is answered with implicit rejection (a pseudo-random
    // message, no padding oracle); a value not below n is refused.
    assert_ne!(
        t.cmd(0x80, 0x62, 4, 0x22, &[1u8; 128], 65536).0,
        b"hello world"
    );
    assert_eq!(
        t.cmd(0x80, 0x62, 4, 0x22, &[0xFFu8; 128], 65536).1,
        0x6A80,
        "c >= n"
    );
    assert_eq!(t.cmd(0, 0x46, 5, 0, &rsa_template(512), 65536).1, 0x6A81);
}

#[test]
fn files_update_read_delete_and_access_rules() {
    let mut t = T::logged_in();
    // Create empty, then write in two chunks with offsets (OpenSC's pattern).
    assert_eq!(
        t.cmd(0, 0xD7, 0xCF, 1, &[0x54, 2, 0, 0, 0x53, 0], 0).1,
        0x9000
    );
    let mut w = vec![0x54, 2, 0, 0, 0x53, 0x81, 200];
    w.extend_from_slice(&[0xAB; 200]);
    assert_eq!(t.cmd(0, 0xD7, 0, 0, &w, 0).1, 0x9000);
    let mut w = vec![0x54, 2, 0, 200, 0x53, 0x81, 100];
    w.extend_from_slice(&[0xCD; 100]);
    assert_eq!(t.cmd(0, 0xD7, 0, 0, &w, 0).1, 0x9000);
    let (fcp, sw) = t.cmd(0, 0xA4, 0, 0, &[0xCF, 1], 256);
    assert_eq!(sw, 0x9000);
    assert!(fcp.windows(4).any(|w| w == [0x81, 2, 1, 44]), "size 300");
    let (d, _) = t.cmd(0, 0xB1, 0, 0, &[0x54, 2, 0, 0], 256);
    assert_eq!(d.len(), 256);
    let (d, _) = t.cmd(0, 0xB1, 0, 0, &[0x54, 2, 1, 0], 256);
    assert_eq!(d, vec![0xCD; 44]);
    let (d, sw) = t.cmd(0, 0xB1, 0, 0, &[0x54, 2, 1, 44], 256);
    assert_eq!((d.len(), sw), (0, 0x9000), "read at size: empty");
    assert_eq!(t.cmd(0, 0xB1, 0, 0, &[0x54, 2, 1, 45], 256).1, 0x6282);
    // B0 with offset in P1P2, pypicohsm's FID form of B1.
    assert_eq!(t.cmd(0, 0xB0, 1, 0, &[], 4).0, vec![0xCD; 4]);
    assert_eq!(t.cmd(0, 0xB1, 0xCF, 1, &[0x54, 1, 0], 2).0, vec![0xAB; 2]);
    // Private data needs login; keys are never readable; internal files invisible.
    t.login();
    assert_eq!(
        t.cmd(0, 0xD7, 0xCD, 1, &[0x54, 2, 0, 0, 0x53, 1, 9], 0).1,
        0x9000
    );
    t.select();
    assert_eq!(t.cmd(0, 0xB1, 0xCD, 1, &[0x54, 2, 0, 0], 256).1, 0x6982);
    assert_eq!(t.cmd(0, 0xB1, 0xCC, 0, &[0x54, 2, 0, 0], 256).1, 0x6982);
    assert_eq!(t.cmd(0, 0xA4, 0, 0, &[0x10, 0x81], 256).1, 0x6A82);
    assert_eq!(t.cmd(0, 0xA4, 0, 0, &[0x77, 0x77], 256).1, 0x6A82);
    // Writes and deletes need the user state.
    assert_eq!(
        t.cmd(0, 0xD7, 0xCF, 2, &[0x54, 2, 0, 0, 0x53, 0], 0).1,
        0x6982
    );
    assert_eq!(t.cmd(0, 0xE4, 2, 0, &[0xCF, 1], 0).1, 0x6982);
    t.login();
    assert_eq!(t.cmd(0, 0xE4, 2, 0, &[0xCF, 1], 0).1, 0x9000);
    assert_eq!(t.cmd(0, 0xE4, 2, 0, &[0xCF, 1], 0).1, 0x6A82);
    assert_eq!(
        t.cmd(0, 0xE4, 2, 0, &[0xCC, 0], 0).1,
        0x6982,
        "device key stays"
    );
    assert_eq!(
        t.cmd(0, 0xD7, 0xCC, 5, &[0x54, 2, 0, 0, 0x53, 0], 0).1,
        0x6982
    );
    assert_eq!(
        t.cmd(0, 0xD7, 0x2F, 0, &[0x54, 2, 0, 0, 0x53, 0], 0).1,
        0x6986
    );
    assert_eq!(t.cmd(0, 0xD7, 0xCF, 3, &[0x99, 0], 0).1, 0x6A80);
}

#[test]
fn ef_dir_token_info_and_device_chain() {
    let mut t = T::new();
    t.select();
    let (dir, _) = t.cmd(0, 0xB1, 0x2F, 0, &[0x54, 2, 0, 0], 256);
    assert_eq!(&dir[..2], &[0x61, 0x17]);
    let (chain, sw) = t.cmd(0, 0xB1, 0x2F, 2, &[0x54, 2, 0, 0], 65536);
    assert_eq!(sw, 0x9000);
    let certs = cvc::parse_chain(&chain).unwrap();
    assert_eq!(certs.len(), 3, "device, DICA, root");
    assert_eq!(certs[0].chr, &t.card.device_name()[..]);
    assert_eq!(certs[0].car, Some(certs[1].chr));
    assert_eq!(certs[1].car, Some(certs[2].chr));
    assert!(certs[2].is_self_described());
    // Each certificate verifies with its issuer's key.
    for (c, issuer) in [
        (&certs[0], &certs[1]),
        (&certs[1], &certs[2]),
        (&certs[2], &certs[2]),
    ] {
        let q = issuer.key_field(0x86).unwrap();
        assert!(ec::verify_prehash(
            Curve::P256,
            q,
            &HashAlg::Sha256.digest(c.body),
            c.signature
        ));
    }
    // The device key's request CE00 is signed by the device key.
    let (req, _) = t.cmd(0, 0xB1, 0xCE, 0, &[0x54, 2, 0, 0], 65536);
    let r = AuthRequest::parse(&req).unwrap();
    assert_eq!(r.cert.key_field(0x86), certs[0].key_field(0x86));
    // Two cards share the test PKI but not their names.
    let u = T::with(Mem::default(), Mem::default(), 12345);
    assert_ne!(u.card.device_name(), t.card.device_name());
}

#[test]
fn chained_commands_and_get_response() {
    let mut t = T::logged_in();
    // GENERATE in two chained parts.
    let tpl = p256_template();
    let (a, b) = tpl.split_at(100);
    let mut first = vec![0x10, 0x46, 7, 0, a.len() as u8];
    first.extend_from_slice(a);
    assert_eq!(t.raw(&first).1, 0x9000);
    let mut last = vec![0x00, 0x46, 7, 0, b.len() as u8];
    last.extend_from_slice(b);
    last.push(0);
    let (d, sw) = t.raw(&last);
    assert_eq!(d.len(), 256);
    assert_eq!(sw & 0xFF00, 0x6100);
    let mut all = d;
    loop {
        let (d, sw) = t.raw(&[0, 0xC0, 0, 0, 0]);
        all.extend_from_slice(&d);
        if sw == 0x9000 {
            break;
        }
        assert_eq!(sw & 0xFF00, 0x6100);
    }
    assert!(AuthRequest::parse(&all).is_ok());
    assert_eq!(t.raw(&[0, 0xC0, 0, 0, 0]).1, 0x6985, "nothing pending");
    // A chain broken by another instruction is refused.
    assert_eq!(t.raw(&first).1, 0x9000);
    assert_eq!(t.raw(&[0, 0x84, 0, 0, 8]).1, 0x6883);
}

#[test]
fn get_challenge() {
    let mut t = T::new();
    t.select();
    let (a, sw) = t.raw(&[0, 0x84, 0, 0, 8]);
    assert_eq!((a.len(), sw), (8, 0x9000));
    let (b, _) = t.raw(&[0, 0x84, 0, 0, 8]);
    assert_ne!(a, b);
    assert_eq!(t.raw(&[0, 0x84, 0, 0]).0.len(), 256);
    assert_eq!(t.raw(&[0, 0x84, 0, 0, 1, 0]).1, 0x6700, "data and no Le");
    assert_eq!(t.cmd(0, 0x84, 0, 0, &[], 1024).0.len(), 1024);
}

fn init_with_dkek(t: &mut T, share: &[u8; 32]) {
    t.init(&[0x92, 1, 1]);
    let (st, sw) = t.cmd(0x80, 0x52, 0, 0, share, 256);
    assert_eq!(sw, 0x9000);
    assert_eq!(&st[..2], &[1, 0]);
    assert_eq!(&st[2..], &dkek::kcv(share), "KCV known at once");
    assert_eq!(t.cmd(0x80, 0x52, 0, 0, share, 256).1, 0x6986, "domain full");
    assert_eq!(t.cmd(0x80, 0x52, 0, 1, &[], 256).1, 0x6A86);
}

/// A card (random seed `seed`) initialised with one DKEK share, `share`,
/// and its user PIN verified.
fn dkek_card(share: &[u8; 32], seed: u64) -> T {
    let mut t = T::with(Mem::default(), Mem::default(), seed);
    init_with_dkek(&mut t, share);
    t.login();
    t
}

#[test]
fn dkek_wrap_moves_a_key_between_cards() {
    let share = [0x5Au8; 32];
    let mut a = dkek_card(&share, 7);
    let req = a.keygen_p256(1);
    let q = ec_point(&req);
    let (blob, sw) = a.cmd(0x80, 0x72, 1, 0x92, &[], 65536);
    assert_eq!(sw, 0x9000);
    assert_eq!(&blob[..8], &dkek::kcv(&share));
    assert_eq!(blob[8], 12);
    let mut b = dkek_card(&share, 4242);
    // OpenSC's way: blob into 2F10, then case-1 UNWRAP.
    let mut w = vec![0x54, 2, 0, 0, 0x53, 0x82];
    w.extend_from_slice(&(blob.len() as u16).to_be_bytes());
    w.extend_from_slice(&blob);
    assert_eq!(b.cmd(0, 0xD7, 0x2F, 0x10, &w, 0).1, 0x9000);
    assert_eq!(b.raw(&[0x80, 0x74, 3, 0x93]).1, 0x9000);
    let digest = HashAlg::Sha256.digest(b"moved");
    let (der, sw) = b.sign(3, 0x70, &digest);
    assert_eq!(sw, 0x9000);
    assert!(p256_verifies(&q, &digest, &der));
    // Tampered blob: MAC fails; other DKEK: not found; not a blob: 6984.
    let mut bad = blob.clone();
    let n = bad.len() - 20;
    bad[n] ^= 1;
    assert_eq!(b.cmd(0x80, 0x74, 4, 0x93, &bad, 0).1, 0x6985);
    let mut other = blob.clone();
    other[0] ^= 1;
    assert_eq!(b.cmd(0x80, 0x74, 4, 0x93, &other, 0).1, 0x6A88);
    assert_eq!(b.cmd(0x80, 0x74, 4, 0x93, &[1, 2, 3], 0).1, 0x6984);
    // No DKEK configured: wrap refused.
    let mut c = T::with(Mem::default(), Mem::default(), 77);
    c.init(&[]);
    c.login();
    c.keygen_p256(1);
    assert_eq!(c.cmd(0x80, 0x72, 1, 0x92, &[], 65536).1, 0x6A88);
    assert_eq!(
        c.cmd(0x80, 0x72, 0, 0x92, &[], 65536).1,
        0x6982,
        "device key never wrapped"
    );
}

#[test]
fn rsa_wrap_round_trip() {
    let share = [0x11u8; 32];
    let mut a = dkek_card(&share, 7);
    let (req, _) = a.cmd(0, 0x46, 2, 0, &rsa_template(1024), 65536);
    let r = AuthRequest::parse(&req).unwrap();
    let (n, e) = (
        r.cert.key_field(0x81).unwrap().to_vec(),
        r.cert.key_field(0x82).unwrap().to_vec(),
    );
    let (blob, sw) = a.cmd(0x80, 0x72, 2, 0x92, &[], 65536);
    assert_eq!(sw, 0x9000);
    assert_eq!(a.cmd(0x80, 0x74, 9, 0x93, &blob, 0).1, 0x9000);
    let digest = HashAlg::Sha256.digest(b"r");
    let (s, _) = a.sign(9, 0x33, b"r");
    assert!(crsa::verify_pkcs1v15(&n, &e, HashAlg::Sha256, &digest, &s));
}

#[test]
fn dkek_share_imported_without_pin_is_kept_sealed_across_restart() {
    let share = [0x33u8; 32];
    let mut t = T::new();
    t.init(&[0x92, 1, 1]);
    t.select();
    let (st, sw) = t.cmd(0x80, 0x52, 0, 0, &share, 256);
    assert_eq!(sw, 0x9000);
    assert_eq!(&st[2..], &dkek::kcv(&share));
    let img = t.flash.0.lock().unwrap().clone().unwrap();
    assert!(!img.windows(32).any(|w| w == share), "share not in clear");
    let mut t = t.restart();
    t.select();
    t.login();
    t.keygen_p256(1);
    let (blob, sw) = t.cmd(0x80, 0x72, 1, 0x92, &[], 65536);
    assert_eq!(sw, 0x9000);
    assert_eq!(&blob[..8], &dkek::kcv(&share));
}

#[test]
fn flash_image_never_holds_a_known_key_in_clear() {
    let share = [0x42u8; 32];
    let mut t = dkek_card(&share, 7);
    // A key the test knows, wrapped by the test itself.
    let d: Vec<u8> = (1..=32).map(|i| i as u8 * 7).collect();
    let key = PrivateKey::Ec {
        curve: Curve::P256,
        d: zeroize::Zeroizing::new(d.clone()),
    };
    let blob = dkek::wrap(&share, &key, &[], &mut Xs(5)).unwrap();
    assert_eq!(t.cmd(0x80, 0x74, 6, 0x93, &blob, 0).1, 0x9000);
    let q = ec::public_key(Curve::P256, &d).unwrap();
    let digest = HashAlg::Sha256.digest(b"k");
    let (der, _) = t.sign(6, 0x70, &digest);
    assert!(p256_verifies(&q, &digest, &der));
    let img = t.flash.0.lock().unwrap().clone().unwrap();
    assert!(
        !img.windows(16).any(|w| w == &d[..16] || w == &d[16..]),
        "private scalar in clear"
    );
    assert!(!img.windows(32).any(|w| w == share), "DKEK in clear");
    let otp = t.otp.0.lock().unwrap().clone().unwrap();
    assert!(
        !img.windows(32).any(|w| w == otp),
        "OTP secret kept apart from flash"
    );
}

#[test]
fn state_survives_restart() {
    let mut t = T::logged_in();
    let req = t.keygen_p256(1);
    assert_eq!(
        t.cmd(0, 0xD7, 0xCF, 1, &[0x54, 2, 0, 0, 0x53, 3, 1, 2, 3], 0)
            .1,
        0x9000
    );
    let name = t.card.device_name();
    let mut t = t.restart();
    assert_eq!(t.card.device_name(), name);
    t.select();
    assert_eq!(t.cmd(0, 0xB1, 0xCE, 1, &[0x54, 2, 0, 0], 65536).0, req);
    assert_eq!(
        t.cmd(0, 0xB1, 0xCF, 1, &[0x54, 2, 0, 0], 256).0,
        vec![1, 2, 3]
    );
    t.login();
    assert_eq!(t.sign(1, 0x70, &[3u8; 32]).1, 0x9000);
}

#[test]
fn select_logs_out() {
    let mut t = T::logged_in();
    t.keygen_p256(1);
    assert_eq!(t.sign(1, 0x70, &[3u8; 32]).1, 0x9000);
    t.select();
    assert_eq!(t.sign(1, 0x70, &[3u8; 32]).1, 0x6982);
    assert_eq!(t.raw(&[0, 0x20, 0, 0x81]).1, 0x63C3);
    t.login();
    t.card.power_on();
    t.select();
    assert_eq!(t.sign(1, 0x70, &[3u8; 32]).1, 0x6982, "reset logs out");
}

#[test]
fn malformed_apdus_never_panic() {
    let mut t = T::new();
    t.init(&[0x92, 1, 1]);
    t.login();
    t.keygen_p256(1);
    let mut rng = Xs(0xDEADBEEF);
    let ins_set = [
        0x20, 0x22, 0x24, 0x2A, 0x2C, 0x46, 0x50, 0x52, 0x54, 0x58, 0x62, 0x68, 0x72, 0x74, 0x82,
        0x84, 0xA4, 0xB0, 0xB1, 0xC0, 0xD7, 0xE4, 0x00, 0xFF,
    ];
    use picohsm_firmware::CardRng;
    for i in 0..20000u32 {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let len = (b[0] as usize) % 40;
        let mut apdu = vec![0u8; len];
        rng.fill(&mut apdu);
        if apdu.len() >= 2 {
            apdu[0] = [0x00, 0x80, 0x10, 0x90, 0x0C, 0x01][b[1] as usize % 6];
            apdu[1] = ins_set[b[2] as usize % ins_set.len()];
        }
        if apdu.len() >= 3 && b[3] & 1 == 0 {
            apdu[2] = 1;
        }
        if i % 500 == 0 {
            t.select();
            t.login();
        }
        let r = t.card.transmit(&apdu);
        assert!(r.len() >= 2, "every APDU gets a status word");
    }
    // Still healthy afterwards.
    t.select();
    t.login();
    assert_eq!(t.sign(1, 0x70, &[3u8; 32]).1, 0x9000);
}

#[test]
fn enumerate_lists_descriptors_with_id_zero() {
    let mut t = T::logged_in();
    // OpenSC stores its first data object as CF00 with descriptor C900.
    assert_eq!(
        t.cmd(0, 0xD7, 0xC9, 0, &[0x54, 2, 0, 0, 0x53, 1, 0x30], 0)
            .1,
        0x9000
    );
    assert_eq!(
        t.cmd(0, 0xD7, 0xC8, 0, &[0x54, 2, 0, 0, 0x53, 1, 0x30], 0)
            .1,
        0x9000
    );
    let (list, _) = t.raw(&[0x80, 0x58, 0, 0, 0, 0, 0]);
    let fids: Vec<&[u8]> = list.chunks(2).collect();
    assert_eq!(
        &fids[..2],
        &[&[0xC4u8, 0][..], &[0xCC, 0][..]],
        "device key first"
    );
    assert!(
        fids.contains(&&[0xC9u8, 0][..]) && fids.contains(&&[0xC8u8, 0][..]),
        "{list:02X?}"
    );
    assert_eq!(fids.iter().filter(|f| **f == [0xCC, 0]).count(), 1);
}

/// `[APDU bytes] => SW, "what";` rows, as `(APDU, SW, what)`.
macro_rules! sw_table {
    ($([$($b:expr),* $(,)?] => $sw:expr, $what:expr;)*) => {
        &[$((&[$($b),*][..], $sw, $what)),*]
    };
}

/// Status words of the error paths, one command at a time (docs/protocol.md §1.4).
#[test]
fn error_paths_of_every_command() {
    let mut t = T::new();
    t.select();
    // Before initialisation: no PIN, no key domains.
    assert_eq!(t.raw(&[0, 0x20, 0, 0x81]).1, 0x6A88, "VERIFY: no PIN");
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, b"123456", 0).1, 0x6A88);
    t.init(&[0x92, 1, 2, 0x97, 1, 1]);
    let cases: &[(&[u8], u16, &str)] = sw_table![
        [0, 0x20, 1, 0x81] => 0x6A86, "VERIFY P1 not 00";
        [0, 0x20, 0, 0x85] => 0x6A88, "VERIFY bio template";
        [0, 0x20, 0, 0xE1] => 0x6B00, "VERIFY bad P2";
        [0, 0x20, 0, 0x88, 3, 1, 2, 3] => 0x6700, "VERIFY SO-PIN length";
        [0, 0x24, 0, 0x82, 2, 1, 2] => 0x6A86, "CHANGE: bad reference";
        [0, 0x24, 0, 0x81, 3, 0x31, 0x32, 0x33] => 0x6700, "CHANGE: shorter than the old PIN";
        [0, 0x2C, 2, 0x81, 6, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31] => 0x6982, "RRC P1 02 without SO session";
        [0, 0x2C, 0, 0x81, 4, 1, 2, 3, 4] => 0x6700, "RRC: SO-PIN too short";
        [0, 0x2C, 7, 0x81] => 0x6A86, "RRC bad P1";
        [0, 0x84, 1, 0, 8] => 0x6A86, "GET CHALLENGE P1";
        [0, 0xB1, 0, 0, 4, 0x54, 2, 0, 0, 0] => 0x6986, "READ: no current EF";
        [0, 0xB1, 0x2F, 0x02, 3, 0x54, 5, 0] => 0x6A80, "READ: bad offset DO";
        [0, 0xB0, 0x81, 0, 0] => 0x6A81, "READ: SFI";
        [0, 0xB1, 0x77, 0x77, 4, 0x54, 2, 0, 0, 0] => 0x6A82, "READ: no such file";
        [0, 0xD7, 0xCF, 1, 2, 0x53, 0] => 0x6982, "UPDATE without login";
        [0, 0xE4, 2, 0, 1, 0xCF] => 0x6982, "DELETE without login";
        [0, 0xA4, 0x05, 0, 2, 0x2F, 0x02] => 0x6A86, "SELECT bad P1";
        [0, 0xA4, 0x08, 0, 3, 0x2F, 0x02, 1] => 0x6700, "SELECT odd path";
        [0x80, 0x58, 1, 0, 0] => 0x6A86, "ENUMERATE P1";
        [0x80, 0x46, 1, 0, 2, 0x42, 0] => 0x6982, "GENERATE without login";
        [0x80, 0x68, 1, 0x70, 1, 0] => 0x6982, "SIGN without login";
        [0x80, 0x62, 1, 0x99, 1, 0] => 0x6A81, "DECIPHER unknown algorithm";
        [0x80, 0x52, 5, 0, 0] => 0x6A86, "KEY DOMAIN bad P1";
        [0x80, 0x52, 0, 9, 0] => 0x6A86, "KEY DOMAIN no such domain";
        [0x80, 0x52, 0, 1, 0] => 0x6A88, "KEY DOMAIN unconfigured";
        [0x80, 0x52, 0, 0, 3, 1, 2, 3] => 0x6700, "KEY DOMAIN short share";
        [0x80, 0x52, 1, 1, 1, 2] => 0x6985, "KEY DOMAIN setup without PIN session";
        [0x80, 0x72, 1, 0x93] => 0x6B00, "WRAP wrong P2";
        [0x80, 0x72, 1, 0x92] => 0x6982, "WRAP without login";
        [0x80, 0x74, 1, 0x92] => 0x6B00, "UNWRAP wrong P2";
        [0x80, 0x74, 1, 0x93] => 0x6982, "UNWRAP without login";
        [0x80, 0x99, 0, 0] => 0x6D00, "unknown instruction";
        [0x40, 0x84, 0, 0, 8] => 0x6E00, "unknown class";
        [0x01, 0x84, 0, 0, 8] => 0x6881, "logical channel";
        [0x0C, 0x84, 0, 0, 8] => 0x6882, "secure messaging";
    ];
    for (apdu, sw, what) in cases {
        assert_eq!(t.raw(apdu).1, *sw, "{what}: {apdu:02X?}");
    }
    t.login();
    let logged: &[(&[u8], u16, &str)] = sw_table![
        [0x80, 0x46, 0, 0, 2, 0x42, 0] => 0x6A86, "GENERATE key 0";
        [0x80, 0x46, 1, 0, 3, 0x42, 1, 0x41] => 0x6A80, "GENERATE without public key template";
        [0x80, 0x46, 1, 0, 6, 0x7F, 0x49, 3, 0x06, 1, 0] => 0x6A81, "GENERATE unknown algorithm";
        [0x80, 0x46, 1, 0, 2, 0x42] => 0x6700, "GENERATE bad Lc";
        [0x80, 0x68, 0x33, 0x70, 1, 0] => 0x6A82, "SIGN no such key";
        [0x80, 0x72, 0x33, 0x92] => 0x6A82, "WRAP no such key";
        [0x80, 0x74, 0, 0x93] => 0x6A86, "UNWRAP key 0";
        [0x80, 0x74, 1, 0x93] => 0x6A82, "UNWRAP with nothing in 2F10";
        [0, 0xD7, 0x10, 0x81, 2, 0x53, 0] => 0x6982, "UPDATE an internal file";
        [0, 0xD7, 0x77, 0x01, 2, 0x53, 0] => 0x6A82, "UPDATE an unknown FID";
        [0, 0xE4, 2, 0, 2, 0x10, 0x81] => 0x6982, "DELETE an internal file";
        [0, 0xE4, 2, 0, 3, 1, 2, 3] => 0x6700, "DELETE bad length";
        [0x80, 0x52, 1, 1, 1, 0] => 0x6700, "KEY DOMAIN setup with 0 shares";
        [0x80, 0x52, 1, 0, 1, 2] => 0x6A89, "KEY DOMAIN setup of a configured domain";
    ];
    for (apdu, sw, what) in logged {
        assert_eq!(t.raw(apdu).1, *sw, "{what}: {apdu:02X?}");
    }
    // A configured extra domain works: set up, import, status.
    let (st, sw) = t.cmd(0x80, 0x52, 1, 1, &[1], 256);
    assert_eq!((st[..2].to_vec(), sw), (vec![1, 1], 0x9000));
    let (st, _) = t.cmd(0x80, 0x52, 0, 1, &[9u8; 32], 256);
    assert_eq!(&st[..2], &[1, 0]);
}

#[test]
fn key_metadata_restricts_algorithms_and_counts_uses() {
    let mut t = T::new();
    t.init(&[0x92, 1, 1]);
    t.cmd(0x80, 0x52, 0, 0, &[1u8; 32], 256);
    t.login();
    // Only ECDSA with SHA-256 (0x73), two uses.
    let mut tpl = p256_template();
    tpl.extend_from_slice(&[0x90, 2, 0, 2, 0x91, 1, 0x73]);
    assert_eq!(t.cmd(0, 0x46, 1, 0, &tpl, 65536).1, 0x9000);
    assert_eq!(
        t.sign(1, 0x70, &[1u8; 32]).1,
        0x6985,
        "algorithm not allowed"
    );
    assert_eq!(
        t.cmd(0x80, 0x72, 1, 0x92, &[], 65536).1,
        0x6985,
        "wrap not allowed"
    );
    assert_eq!(t.sign(1, 0x73, b"a").1, 0x9000);
    assert_eq!(t.sign(1, 0x73, b"b").1, 0x9000);
    assert_eq!(t.sign(1, 0x73, b"c").1, 0x6A84, "use counter exhausted");
}

#[test]
fn transport_pin_and_options_in_the_fcp() {
    let mut t = T::new();
    t.select();
    let mut d = vec![0x80, 2, 0, 3, 0x81, 6];
    d.extend_from_slice(PIN);
    d.extend_from_slice(&[0x82, 8]);
    d.extend_from_slice(&SO_PIN);
    assert_eq!(t.cmd(0x80, 0x50, 0, 0, &d, 0).1, 0x9000);
    let fcp = t.select();
    assert!(fcp.windows(4).any(|w| w == [0x85, 5, 0, 3]));
    assert_eq!(t.cmd(0, 0x20, 0, 0x81, PIN, 0).1, 0x6984);
}

#[test]
fn device_chain_written_after_login_or_given_at_start() {
    let mut t = T::logged_in();
    let (chain, _) = t.cmd(0, 0xB1, 0x2F, 2, &[0x54, 2, 0, 0], 65536);
    let certs = cvc::parse_chain(&chain).unwrap();
    let device_point = certs[0].key_field(0x86).unwrap().to_vec();
    // Another chain for the same device key, under another name.
    let other = picohsm_firmware::device::test_chain(b"ZZPHSMOTHER00001", &device_point).unwrap();
    let mut w = vec![0x54, 2, 0, 0, 0x53, 0x82];
    w.extend_from_slice(&(other.len() as u16).to_be_bytes());
    w.extend_from_slice(&other);
    assert_eq!(t.cmd(0, 0xD7, 0x2F, 0x02, &w, 0).1, 0x9000);
    assert_eq!(t.card.device_name(), b"ZZPHSMOTHER00001");
    // New keys' requests carry the new name as outer CAR.
    let req = t.keygen_p256(1);
    assert_eq!(
        AuthRequest::parse(&req).unwrap().outer_car,
        b"ZZPHSMOTHER00001"
    );
    // Given at start: accepted for this key, refused for another.
    let (flash, otp) = (t.flash.clone(), t.otp.clone());
    drop(t);
    let third = picohsm_firmware::device::test_chain(b"ZZPHSMTHIRD00001", &device_point).unwrap();
    let card = picohsm_firmware::Card::new(
        Box::new(flash.clone()),
        Box::new(otp.clone()),
        Box::new(Xs(3)),
        picohsm_firmware::CardConfig {
            device_chain: Some(third),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(card.device_name(), b"ZZPHSMTHIRD00001");
    drop(card);
    let (_, q) = ec::generate(Curve::P256, &mut rand_core::UnwrapErr(getrandom::SysRng));
    let foreign = picohsm_firmware::device::test_chain(b"ZZPHSMFOREIGN001", &q).unwrap();
    let err = picohsm_firmware::Card::new(
        Box::new(flash),
        Box::new(otp),
        Box::new(Xs(3)),
        picohsm_firmware::CardConfig {
            device_chain: Some(foreign),
            ..Default::default()
        },
    );
    assert!(err.is_err(), "a chain for another key is refused");
}

#[test]
fn device_name_given_at_start_names_the_device_certificate() {
    use picohsm_firmware::{Card, CardConfig};
    let start = |flash: &Mem, otp: &Mem, name: &[u8]| {
        Card::new(
            Box::new(flash.clone()),
            Box::new(otp.clone()),
            Box::new(Xs(5)),
            CardConfig {
                device_name: Some(name.to_vec()),
                ..Default::default()
            },
        )
    };
    let (flash, otp) = (Mem::default(), Mem::default());
    // A fleet of upstream devices: one serial, ESPICOHSMTR, and 5 more characters.
    let card = start(&flash, &otp, b"ESPICOHSMTRAAAA1").unwrap();
    assert_eq!(card.device_name(), b"ESPICOHSMTRAAAA1");
    drop(card);
    // Restarted under another name: the same key, a chain for the new name.
    let card = start(&flash, &otp, b"ESPICOHSMTRBBBB2").unwrap();
    assert_eq!(card.device_name(), b"ESPICOHSMTRBBBB2");
    drop(card);
    assert!(start(&flash, &otp, b"not a name").is_err());
    assert!(
        start(&flash, &otp, b"ESPICOHSMTRAAAA12").is_err(),
        "17 characters"
    );
}

/// The module writes content over 1024 bytes as one UPDATE BINARY in chained
/// parts (docs/protocol.md §1.2, §3.6): nothing is stored before the last
/// part, so a kill between parts leaves the old content whole.
#[test]
fn chained_update_binary_is_stored_once_at_the_last_part() {
    let mut t = T::logged_in();
    assert_eq!(
        t.cmd(0, 0xD7, 0xCE, 9, &[0x54, 2, 0, 0, 0x53, 3, 1, 2, 3], 0)
            .1,
        0x9000
    );
    let before = t.flash.0.lock().unwrap().clone();
    let new: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
    let mut body = vec![0x54, 2, 0, 0, 0x53, 0x82, 0x09, 0xC4];
    body.extend_from_slice(&new);
    let parts: Vec<&[u8]> = body.chunks(1024).collect();
    for p in &parts[..parts.len() - 1] {
        assert_eq!(t.cmd(0x10, 0xD7, 0xCE, 9, p, 0).1, 0x9000);
        assert_eq!(*t.flash.0.lock().unwrap(), before, "stored before the end");
    }
    // A kill here: the restarted card has the old content.
    let image = Mem(std::sync::Arc::new(std::sync::Mutex::new(before.clone())));
    let mut killed = T::with(image, t.otp.clone(), 3);
    killed.select();
    killed.login();
    assert_eq!(
        killed.cmd(0, 0xB1, 0xCE, 9, &[0x54, 2, 0, 0], 65536),
        (vec![1, 2, 3], 0x9000)
    );
    assert_eq!(t.cmd(0, 0xD7, 0xCE, 9, parts[parts.len() - 1], 0).1, 0x9000);
    assert_ne!(*t.flash.0.lock().unwrap(), before);
    let mut t = t.restart();
    t.select();
    t.login();
    assert_eq!(
        t.cmd(0, 0xB1, 0xCE, 9, &[0x54, 2, 0, 0], 65536),
        (new, 0x9000)
    );
}
