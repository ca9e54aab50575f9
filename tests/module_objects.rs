//! Key generation and object management through libpicohsm_pkcs11.so
//! (pkcs11-tool and the `cryptoki` crate), on picohsm-vcard through pcscd,
//! cross-checked with OpenSC's own module on the same card.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use common::*;
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sha1::{Digest, Sha1};

/// The tests of this file run one at a time: a module that looks for tokens
/// (pkcs11-tool with either module, C_GetSlotInfo) SELECTs the applet on
/// every card it sees, which is a logout on the card, so one test's slot
/// scan would log out another test's card between its VERIFY and its use.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";

/// pkcs11-tool with this module; panics on failure.
fn ours(card: &VCard, args: &[&str]) -> String {
    text(&run_cmd(our_pkcs11_tool_command(card).args(args)))
}

/// pkcs11-tool with this module, logged in; panics on failure.
fn ours_login(card: &VCard, args: &[&str]) -> String {
    let mut a = vec!["--login", "--pin", PIN];
    a.extend_from_slice(args);
    ours(card, &a)
}

/// pkcs11-tool with OpenSC's module; panics on failure.
fn theirs(card: &VCard, args: &[&str]) -> String {
    let out = run_cmd_allow_fail(pkcs11_tool_command(card).args(args));
    if !out.status.success() {
        let log = card.apdu_log();
        let tail = &log[log.len().saturating_sub(40)..];
        panic!(
            "pkcs11-tool {args:?}: {}\nAPDUs:\n{}",
            text(&out),
            tail.join("\n")
        );
    }
    text(&out)
}

fn theirs_login(card: &VCard, args: &[&str]) -> String {
    let mut a = vec!["--login", "--pin", PIN];
    a.extend_from_slice(args);
    theirs(card, &a)
}

fn initialised_card() -> VCard {
    let card = VCard::start();
    sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    card
}

/// The block of a pkcs11-tool listing for the object of kind `kind`
/// ("Public Key Object", "Certificate Object", ...) labelled `label`.
fn block<'a>(listing: &'a str, kind: &str, label: &str) -> Option<&'a str> {
    let mut starts: Vec<usize> = listing
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .filter(|i| {
            listing[*i..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace())
        })
        .collect();
    starts.insert(0, 0);
    starts.push(listing.len());
    starts.windows(2).map(|w| &listing[w[0]..w[1]]).find(|b| {
        b.starts_with(kind)
            && b.lines().any(|l| {
                l.trim()
                    .strip_prefix("label:")
                    .map(|v| v.trim().trim_matches('\''))
                    == Some(label)
            })
    })
}

/// A `name:` field of a listing block, as text.
fn field<'a>(block: &'a str, name: &str) -> &'a str {
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} in {block}"))
        .trim()
}

/// The EC public key of a listing block as a PEM SPKI (pkcs11-tool 0.23
/// cannot export every curve with --read-object).
fn ec_pem_from_block(block: &str, dir: &Path, name: &str) -> PathBuf {
    let point_os = hex::decode(field(block, "EC_POINT:")).unwrap();
    let params = hex::decode(field(block, "EC_PARAMS:")).unwrap();
    let (point, rest) = picohsm_wire::tlv::parse_one(&point_os).unwrap();
    assert!(rest.is_empty() && point.tag == 0x04);
    let mut alg = picohsm_wire::tlv::encode(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]);
    alg.extend_from_slice(&params);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point.value);
    let mut spki = picohsm_wire::tlv::encode(0x30, &alg);
    spki.extend_from_slice(&picohsm_wire::tlv::encode(0x03, &bits));
    let der = dir.join(format!("{name}.der"));
    fs::write(&der, picohsm_wire::tlv::encode(0x30, &spki)).unwrap();
    der_to_pem(&der, dir, name)
}

fn der_to_pem(der: &Path, dir: &Path, name: &str) -> PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    run(
        "openssl",
        [
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &s(der),
            "-out",
            &s(&pem),
        ],
    );
    pem
}

/// The public key in a PEM SPKI, as pkcs11 would give it: (EC point) or
/// (RSA modulus), for the intrinsic-id check.
fn key_material(pem: &Path, ec: bool) -> Vec<u8> {
    let out = run(
        "openssl",
        ["pkey", "-pubin", "-in", &s(pem), "-noout", "-text"],
    );
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = if ec { "pub:" } else { "Modulus:" };
    let mut hexs = String::new();
    let mut on = false;
    for l in t.lines() {
        if l.trim_start().starts_with(start) {
            on = true;
            continue;
        }
        if on {
            if l.starts_with("    ") && l.trim().chars().all(|c| c.is_ascii_hexdigit() || c == ':')
            {
                hexs.push_str(&l.trim().replace(':', ""));
            } else {
                break;
            }
        }
    }
    let mut v = hex::decode(hexs).unwrap();
    if !ec {
        while v.first() == Some(&0) {
            v.remove(0);
        }
    }
    v
}

fn sign_and_verify(card: &VCard, opensc: bool, id: &str, rsa: bool, pem: &Path, dir: &Path) {
    let data = dir.join("data.txt");
    fs::write(&data, format!("message for {id}")).unwrap();
    let sig = dir.join("sig.bin");
    let (data_s, sig_s) = (s(&data), s(&sig));
    let mut a = vec![
        "--sign",
        "--mechanism",
        if rsa {
            "SHA256-RSA-PKCS"
        } else {
            "ECDSA-SHA256"
        },
        "--id",
        id,
        "-i",
        &data_s,
        "-o",
        &sig_s,
    ];
    if !rsa {
        a.extend_from_slice(&["--signature-format", "openssl"]);
    }
    if opensc {
        theirs_login(card, &a);
    } else {
        ours_login(card, &a);
    }
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(pem),
        "-signature",
        &sig_s,
        &data_s,
    ]);
}

#[test]
fn keypairgen_through_our_module_signs_and_opensc_sees_the_keys() {
    let _serial = serial();
    let card = initialised_card();
    let dir = card.dir().to_path_buf();
    let kinds = [
        ("EC:prime256v1", "p256"),
        ("EC:secp384r1", "p384"),
        ("EC:secp521r1", "p521"),
        ("EC:secp256k1", "k256"),
        ("EC:brainpoolP256r1", "bp256"),
        ("rsa:2048", "rsa2048"),
    ];
    for (kt, label) in kinds {
        ours_login(&card, &["--keypairgen", "--key-type", kt, "--label", label]);
    }
    let listing = ours(&card, &["--list-objects", "--type", "pubkey"]);
    let opensc = theirs_login(&card, &["--list-objects"]);
    for (kt, label) in kinds {
        let rsa = kt.starts_with("rsa");
        let b = block(&listing, "Public Key Object", label)
            .unwrap_or_else(|| panic!("{label} in {listing}"));
        let id = field(b, "ID:").to_string();
        let pem = if label == "p384" {
            ec_pem_from_block(b, &dir, label)
        } else {
            let der = dir.join(format!("{label}.der"));
            ours(
                &card,
                &[
                    "--read-object",
                    "--type",
                    "pubkey",
                    "--id",
                    &id,
                    "-o",
                    &s(&der),
                ],
            );
            der_to_pem(&der, &dir, label)
        };
        // OpenSC's default (mozilla-style) id: SHA-1 of the modulus or of X.
        let m = key_material(&pem, !rsa);
        let expect = if rsa {
            Sha1::digest(&m).to_vec()
        } else {
            Sha1::digest(&m[1..1 + (m.len() - 1) / 2]).to_vec()
        };
        assert_eq!(id, hex::encode(expect), "intrinsic id of {label}");

        sign_and_verify(&card, false, &id, rsa, &pem, &dir);

        // OpenSC's module sees the key as its own: same label and id, and signs.
        let pb = block(&opensc, "Private Key Object", label)
            .unwrap_or_else(|| panic!("{label} through OpenSC: {opensc}"));
        assert_eq!(field(pb, "ID:"), id, "{pb}");
        if rsa {
            assert!(pb.contains("RSA"), "{pb}");
            assert!(pb.contains("decrypt") && pb.contains("sign"), "{pb}");
        } else {
            assert!(pb.contains("EC"), "{pb}");
        }
        sign_and_verify(&card, true, &id, rsa, &pem, &dir);
    }
}

#[test]
fn certificates_and_data_objects_round_trip_through_both_modules() {
    let _serial = serial();
    let card = initialised_card();
    let dir = card.dir().to_path_buf();
    let (key, pem, der) = (dir.join("ca.key"), dir.join("ca.pem"), dir.join("ca.der"));
    run(
        "openssl",
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=picohsm test CA",
            "-days",
            "30",
            "-keyout",
            &s(&key),
            "-out",
            &s(&pem),
        ],
    );
    run(
        "openssl",
        ["x509", "-in", &s(&pem), "-outform", "DER", "-out", &s(&der)],
    );
    let cert = fs::read(&der).unwrap();

    // A certificate without a key on the card: CAxx + CD.
    ours_login(
        &card,
        &[
            "--write-object",
            &s(&der),
            "--type",
            "cert",
            "--label",
            "test CA",
            "--id",
            "c0ffee",
        ],
    );
    let back = dir.join("back.der");
    ours(
        &card,
        &[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "c0ffee",
            "-o",
            &s(&back),
        ],
    );
    assert_eq!(fs::read(&back).unwrap(), cert);
    let l = theirs(&card, &["--list-objects", "--type", "cert"]);
    let b = block(&l, "Certificate Object", "test CA").unwrap_or_else(|| panic!("{l}"));
    assert_eq!(field(b, "ID:"), "c0ffee");
    let back2 = dir.join("back2.der");
    theirs(
        &card,
        &[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "c0ffee",
            "-o",
            &s(&back2),
        ],
    );
    assert_eq!(fs::read(&back2).unwrap(), cert);

    // Data objects, public and private.
    let payload = dir.join("payload.bin");
    fs::write(&payload, b"some data written through libpicohsm_pkcs11").unwrap();
    for (label, private) in [("pubdata", false), ("privdata", true)] {
        let mut a = vec![
            "--write-object",
            payload.to_str().unwrap(),
            "--type",
            "data",
            "--label",
            label,
            "--application-label",
            "picohsm-tests",
        ];
        if private {
            a.push("--private");
        }
        ours_login(&card, &a);
    }
    let pub_listing = theirs(&card, &["--list-objects", "--type", "data"]);
    assert!(
        block(&pub_listing, "Data object", "pubdata").is_some(),
        "{pub_listing}"
    );
    assert!(
        !pub_listing.contains("privdata"),
        "a private data object is hidden before login: {pub_listing}"
    );
    let all = theirs_login(&card, &["--list-objects", "--type", "data"]);
    assert!(block(&all, "Data object", "privdata").is_some(), "{all}");
    for (label, login) in [("pubdata", false), ("privdata", true)] {
        let out = dir.join(format!("{label}.out"));
        let a = [
            "--read-object",
            "--type",
            "data",
            "--label",
            label,
            "-o",
            out.to_str().unwrap(),
        ];
        if login {
            theirs_login(&card, &a);
        } else {
            theirs(&card, &a);
        }
        assert_eq!(
            fs::read(&out).unwrap(),
            fs::read(&payload).unwrap(),
            "{label}"
        );
        let out2 = dir.join(format!("{label}.out2"));
        let a = [
            "--read-object",
            "--type",
            "data",
            "--label",
            label,
            "-o",
            out2.to_str().unwrap(),
        ];
        ours_login(&card, &a);
        assert_eq!(
            fs::read(&out2).unwrap(),
            fs::read(&payload).unwrap(),
            "{label}"
        );
    }

    // Delete everything through our module; OpenSC no longer sees it.
    ours_login(
        &card,
        &["--delete-object", "--type", "cert", "--id", "c0ffee"],
    );
    for label in ["pubdata", "privdata"] {
        ours_login(
            &card,
            &["--delete-object", "--type", "data", "--label", label],
        );
    }
    let l = theirs_login(&card, &["--list-objects"]);
    assert!(
        !l.contains("test CA") && !l.contains("pubdata") && !l.contains("privdata"),
        "{l}"
    );
    let l = ours_login(&card, &["--list-objects"]);
    assert!(
        !l.contains("test CA") && !l.contains("pubdata") && !l.contains("privdata"),
        "{l}"
    );

    // The freed files are reused.
    ours_login(
        &card,
        &[
            "--write-object",
            &s(&der),
            "--type",
            "cert",
            "--label",
            "again",
            "--id",
            "01",
        ],
    );
    let l = theirs(&card, &["--list-objects", "--type", "cert"]);
    assert!(block(&l, "Certificate Object", "again").is_some(), "{l}");
}

fn rv(e: P11Error) -> RvError {
    match e {
        P11Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

/// Logs the session in again after another process re-selected the applet
/// (a SELECT is a logout on the card).
fn relogin(session: &cryptoki::session::Session) {
    let _ = session.logout();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
}

#[test]
fn set_attributes_and_destroy_through_cryptoki() {
    let _serial = serial();
    let card = initialised_card();
    ours_login(
        &card,
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "before",
            "--id",
            "42",
        ],
    );
    let p11 = our_module();
    let slot = slot_of(&p11, &card);

    // Read-only session and no login are refused.
    let ro = p11.open_ro_session(slot).unwrap();
    let pubk = ro
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(vec![0x42]),
        ])
        .unwrap();
    assert_eq!(pubk.len(), 1);
    assert_eq!(
        rv(ro
            .update_attributes(pubk[0], &[Attribute::Label(b"x".to_vec())])
            .unwrap_err()),
        RvError::SessionReadOnly
    );
    drop(ro);
    let rw = p11.open_rw_session(slot).unwrap();
    assert_eq!(
        rv(rw
            .update_attributes(pubk[0], &[Attribute::Label(b"x".to_vec())])
            .unwrap_err()),
        RvError::UserNotLoggedIn
    );
    rw.login(UserType::User, Some(&AuthPin::from(PIN))).unwrap();
    let prv = rw
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![0x42]),
        ])
        .unwrap();
    assert_eq!(prv.len(), 1);
    assert_eq!(
        rv(rw
            .update_attributes(prv[0], &[Attribute::Sign(false)])
            .unwrap_err()),
        RvError::AttributeReadOnly
    );
    rw.update_attributes(
        prv[0],
        &[
            Attribute::Label(b"after".to_vec()),
            Attribute::Id(vec![0x43]),
        ],
    )
    .unwrap();
    let attrs = rw
        .get_attributes(prv[0], &[AttributeType::Label, AttributeType::Id])
        .unwrap();
    assert_eq!(
        attrs,
        vec![
            Attribute::Label(b"after".to_vec()),
            Attribute::Id(vec![0x43])
        ]
    );
    let l = theirs_login(&card, &["--list-objects", "--type", "privkey"]);
    let b = block(&l, "Private Key Object", "after").unwrap_or_else(|| panic!("{l}"));
    assert_eq!(field(b, "ID:"), "43");
    // OpenSC's SELECT of the applet logged the card out: log in again.
    relogin(&rw);

    // Keys cannot be imported; public keys cannot be deleted on their own.
    assert_eq!(
        rv(rw
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Value(vec![0; 16]),
            ])
            .unwrap_err()),
        RvError::TemplateInconsistent
    );
    let pubk = rw
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(vec![0x43]),
        ])
        .unwrap();
    assert_eq!(pubk.len(), 1);
    assert_eq!(
        rv(rw.destroy_object(pubk[0]).unwrap_err()),
        RvError::ActionProhibited
    );

    // A data object made and relabelled through cryptoki.
    let data = rw
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"d".to_vec()),
            Attribute::Value(b"xyz".to_vec()),
        ])
        .unwrap();
    rw.update_attributes(data, &[Attribute::Label(b"d2".to_vec())])
        .unwrap();
    let l = theirs(&card, &["--list-objects", "--type", "data"]);
    assert!(block(&l, "Data object", "d2").is_some(), "{l}");
    relogin(&rw);
    rw.destroy_object(data).unwrap();

    // Deleting the private key takes the public key along.
    rw.destroy_object(prv[0]).unwrap();
    assert!(rw
        .find_objects(&[Attribute::Id(vec![0x43])])
        .unwrap()
        .is_empty());
    let l = theirs_login(&card, &["--list-objects"]);
    assert!(!l.contains("after") && !l.contains("Data object"), "{l}");
}
