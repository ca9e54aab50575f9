//! libpicohsm_pkcs11.so against picohsm-vcard through pcscd: driven by
//! OpenSC's pkcs11-tool and by the `cryptoki` crate, beside opensc-pkcs11.so
//! on the same card.

mod common;

use std::fs;

use common::*;
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";

fn ours(card: &VCard, args: &[&str]) -> String {
    text(&run_cmd(our_pkcs11_tool_command(card).args(args)))
}

/// A card with an EC P-256 key (id 01) and an RSA-2048 key (id 02), both
/// generated through OpenSC's module.
fn card_with_opensc_keys() -> VCard {
    let card = VCard::start();
    sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    for (id, kt) in [("01", "EC:prime256v1"), ("02", "rsa:2048")] {
        pkcs11_tool(
            &card,
            [
                "--login",
                "--pin",
                PIN,
                "--keypairgen",
                "--key-type",
                kt,
                "--id",
                id,
                "--label",
                &format!("k{id}"),
            ],
        );
    }
    card
}

#[test]
fn pkcs11_tool_through_our_module_signs_with_opensc_made_keys() {
    let card = card_with_opensc_keys();
    let dir = card.dir().to_path_buf();
    let info = ours(&card, &["--show-info"]);
    assert!(info.contains("picohsm-pkcs11"), "{info}");
    let slots = ours(&card, &["--list-slots"]);
    assert!(
        slots.contains(card.reader_name()) && slots.contains("token initialized"),
        "{slots}"
    );
    let mechs = ours(&card, &["--list-mechanisms"]);
    assert!(
        mechs.contains("ECDSA-SHA256") && mechs.contains("SHA256-RSA-PKCS"),
        "{mechs}"
    );
    let objects = ours(&card, &["--list-objects"]);
    assert!(
        objects.contains("Public Key Object; EC")
            && objects.contains("Public Key Object; RSA 2048 bits"),
        "{objects}"
    );
    assert!(
        !objects.contains("Private Key Object"),
        "private objects need a login: {objects}"
    );
    let objects = ours(&card, &["--login", "--pin", PIN, "--list-objects"]);
    assert!(objects.contains("Private Key Object; EC"), "{objects}");

    let data = dir.join("data.txt");
    fs::write(&data, b"signed through libpicohsm_pkcs11").unwrap();
    let sig = dir.join("sig.bin");
    let (data_s, sig_s) = (s(&data), s(&sig));
    let der = dir.join("pub.der");
    let pem = dir.join("pub.pem");
    for (id, mech, fmt) in [
        ("01", "ECDSA-SHA256", true),
        ("02", "SHA256-RSA-PKCS", false),
    ] {
        ours(
            &card,
            &[
                "--read-object",
                "--type",
                "pubkey",
                "--id",
                id,
                "-o",
                &s(&der),
            ],
        );
        run(
            "openssl",
            [
                "pkey",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                &s(&der),
                "-out",
                &s(&pem),
            ],
        );
        let mut a = vec![
            "--login",
            "--pin",
            PIN,
            "--sign",
            "--mechanism",
            mech,
            "--id",
            id,
            "-i",
            &data_s,
            "-o",
            &sig_s,
        ];
        if fmt {
            a.extend_from_slice(&["--signature-format", "openssl"]);
        }
        ours(&card, &a);
        openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&pem),
            "-signature",
            &s(&sig),
            &s(&data),
        ]);
    }
}

fn rv(e: P11Error) -> RvError {
    match e {
        P11Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

#[test]
fn login_errors_and_token_flags_are_exact() {
    let card = card_with_opensc_keys();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let session = p11.open_ro_session(slot).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap();
    assert_eq!(key.len(), 1);
    assert!(session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .is_empty());

    let wrong = AuthPin::from("000000");
    assert_eq!(
        rv(session.login(UserType::User, Some(&wrong)).unwrap_err()),
        RvError::PinIncorrect
    );
    assert!(p11.get_token_info(slot).unwrap().user_pin_count_low());
    assert_eq!(
        rv(session.login(UserType::User, Some(&wrong)).unwrap_err()),
        RvError::PinIncorrect
    );
    assert!(p11.get_token_info(slot).unwrap().user_pin_final_try());
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    assert!(!p11.get_token_info(slot).unwrap().user_pin_count_low());
    let prv = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap();
    assert_eq!(prv.len(), 1);
    let sig = session
        .sign(&Mechanism::Ecdsa, prv[0], &[0x11; 32])
        .unwrap();
    assert_eq!(sig.len(), 64);
    session.logout().unwrap();
    assert_eq!(
        rv(session
            .sign(&Mechanism::Ecdsa, prv[0], &[0x11; 32])
            .unwrap_err()),
        RvError::UserNotLoggedIn
    );
    for _ in 0..3 {
        let _ = session.login(UserType::User, Some(&wrong));
    }
    assert_eq!(
        rv(session
            .login(UserType::User, Some(&AuthPin::from(PIN)))
            .unwrap_err()),
        RvError::PinLocked
    );
    assert!(p11.get_token_info(slot).unwrap().user_pin_locked());
}

#[test]
fn decrypt_verify_digest_and_pins_through_our_module() {
    let card = card_with_opensc_keys();
    let dir = card.dir().to_path_buf();
    let (der, pem) = (dir.join("rsa.der"), dir.join("rsa.pem"));
    ours(
        &card,
        &[
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            "02",
            "-o",
            &s(&der),
        ],
    );
    run(
        "openssl",
        [
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &s(&der),
            "-out",
            &s(&pem),
        ],
    );
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"for the RSA key").unwrap();
    let (ct, pt) = (dir.join("ct.bin"), dir.join("pt.bin"));
    run(
        "openssl",
        [
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &s(&pem),
            "-in",
            &s(&msg),
            "-out",
            &s(&ct),
        ],
    );
    ours(
        &card,
        &[
            "--login",
            "--pin",
            PIN,
            "--decrypt",
            "--mechanism",
            "RSA-PKCS",
            "--id",
            "02",
            "-i",
            &s(&ct),
            "-o",
            &s(&pt),
        ],
    );
    assert_eq!(fs::read(&pt).unwrap(), b"for the RSA key");

    // Verify in software: a good signature, then a tampered one.
    let data = dir.join("d.txt");
    fs::write(&data, b"verify me").unwrap();
    let sig = dir.join("sig.bin");
    ours(
        &card,
        &[
            "--login",
            "--pin",
            PIN,
            "--sign",
            "--mechanism",
            "ECDSA-SHA256",
            "--id",
            "01",
            "-i",
            &s(&data),
            "-o",
            &s(&sig),
        ],
    );
    let out = ours(
        &card,
        &[
            "--verify",
            "--mechanism",
            "ECDSA-SHA256",
            "--id",
            "01",
            "-i",
            &s(&data),
            "--signature-file",
            &s(&sig),
        ],
    );
    assert!(out.contains("Signature is valid"), "{out}");
    let mut bad = fs::read(&sig).unwrap();
    bad[10] ^= 1;
    fs::write(&sig, &bad).unwrap();
    let out = text(&run_cmd_allow_fail(our_pkcs11_tool_command(&card).args([
        "--verify",
        "--mechanism",
        "ECDSA-SHA256",
        "--id",
        "01",
        "-i",
        &s(&data),
        "--signature-file",
        &s(&sig),
    ])));
    assert!(
        out.contains("Invalid signature") || out.contains("CKR_SIGNATURE_INVALID"),
        "{out}"
    );

    // Digest on the host.
    let h = dir.join("h.bin");
    ours(
        &card,
        &[
            "--hash",
            "--mechanism",
            "SHA256",
            "-i",
            &s(&data),
            "-o",
            &s(&h),
        ],
    );
    let expect = run("openssl", ["dgst", "-sha256", "-binary", &s(&data)]);
    assert_eq!(fs::read(&h).unwrap(), expect.stdout);

    // PIN change by the user, then a new PIN set by the SO.
    ours(
        &card,
        &[
            "--login",
            "--pin",
            PIN,
            "--change-pin",
            "--new-pin",
            "135790",
        ],
    );
    let bad = run_cmd_allow_fail(our_pkcs11_tool_command(&card).args([
        "--login",
        "--pin",
        PIN,
        "--list-objects",
    ]));
    assert!(text(&bad).contains("CKR_PIN_INCORRECT"), "{}", text(&bad));
    ours(
        &card,
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--new-pin",
            "246802",
        ],
    );
    let out = ours(&card, &["--login", "--pin", "246802", "--list-objects"]);
    assert!(out.contains("Private Key Object"), "{out}");
}

#[test]
fn pkcs11_tool_test_login_passes_through_our_module() {
    let card = VCard::start();
    sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    ours(
        &card,
        &[
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "ec",
        ],
    );
    ours(
        &card,
        &[
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "rsa:1024",
            "--id",
            "02",
            "--label",
            "rsa",
        ],
    );
    let out = text(&run_cmd_allow_fail(
        our_pkcs11_tool_command(&card).args(["--test", "--login", "--pin", PIN]),
    ));
    assert!(out.contains("No errors"), "{out}");
    assert!(
        out.contains("RSA-X-509: OK") && out.contains("SHA256-RSA-PKCS: OK"),
        "{out}"
    );
}
