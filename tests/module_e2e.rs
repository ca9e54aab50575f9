//! libpicohsm_pkcs11.so against picohsm-vcard through pcscd: driven by
//! OpenSC's pkcs11-tool and by the `cryptoki` crate, beside opensc-pkcs11.so
//! on the same card.

mod common;

use std::fs;

use common::tools::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// A card with an EC P-256 key (id 01) and an RSA-2048 key (id 02), both
/// generated through OpenSC's module.
fn card_with_opensc_keys() -> VCard {
    let card = initialised_card();
    let keys = [("EC:prime256v1", "01", "k01"), ("rsa:2048", "02", "k02")];
    keypairgens(THEIRS.login(), &card, &keys);
    card
}

#[test]
fn pkcs11_tool_through_our_module_signs_with_opensc_made_keys() {
    let card = card_with_opensc_keys();
    let dir = card.dir().to_path_buf();
    let info = OURS.run(&card, ["--show-info"]);
    assert!(info.contains("picohsm-pkcs11"), "{info}");
    let slots = OURS.run(&card, ["--list-slots"]);
    assert!(
        slots.contains(card.reader_name()) && slots.contains("token initialized"),
        "{slots}"
    );
    let mechs = OURS.run(&card, ["--list-mechanisms"]);
    assert!(
        mechs.contains("ECDSA-SHA256") && mechs.contains("SHA256-RSA-PKCS"),
        "{mechs}"
    );
    let objects = OURS.run(&card, ["--list-objects"]);
    assert!(
        objects.contains("Public Key Object; EC")
            && objects.contains("Public Key Object; RSA 2048 bits"),
        "{objects}"
    );
    assert!(
        !objects.contains("Private Key Object"),
        "private objects need a login: {objects}"
    );
    let objects = OURS.login().run(&card, ["--list-objects"]);
    assert!(objects.contains("Private Key Object; EC"), "{objects}");

    let data = dir.join("data.txt");
    fs::write(&data, b"signed through libpicohsm_pkcs11").unwrap();
    let sig = dir.join("sig.bin");
    for (id, mech, extra) in [
        ("01", "ECDSA-SHA256", OPENSSL_FORMAT),
        ("02", "SHA256-RSA-PKCS", &[]),
    ] {
        let pem = OURS.public_pem(&card, id, &dir);
        OURS.login()
            .run(&card, op("--sign", mech, id, &data, &sig, extra));
        openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
    }
}

#[test]
fn login_errors_and_token_flags_are_exact() {
    let card = card_with_opensc_keys();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let session = p11.open_ro_session(slot).unwrap();
    let key = find_by_id(&session, ObjectClass::PUBLIC_KEY, 1);
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
    let prv = find_by_id(&session, ObjectClass::PRIVATE_KEY, 1);
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
    let pem = OURS.public_pem(&card, "02", &dir);
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"for the RSA key").unwrap();
    let (ct, pt) = (dir.join("ct.bin"), dir.join("pt.bin"));
    openssl_encrypt(&pem, &[], &msg, &ct);
    OURS.login()
        .run(&card, op("--decrypt", "RSA-PKCS", "02", &ct, &pt, &[]));
    assert_eq!(fs::read(&pt).unwrap(), b"for the RSA key");

    // Verify in software: a good signature, then a tampered one.
    let data = dir.join("d.txt");
    fs::write(&data, b"verify me").unwrap();
    let sig = dir.join("sig.bin");
    OURS.login()
        .run(&card, op("--sign", "ECDSA-SHA256", "01", &data, &sig, &[]));
    let check = verify("ECDSA-SHA256", "01", &data, &sig, &[]);
    let out = OURS.run(&card, &check);
    assert!(out.contains("Signature is valid"), "{out}");
    let mut bad = fs::read(&sig).unwrap();
    bad[10] ^= 1;
    fs::write(&sig, &bad).unwrap();
    let out = text(&OURS.run_allow_fail(&card, &check));
    assert!(
        out.contains("Invalid signature") || out.contains("CKR_SIGNATURE_INVALID"),
        "{out}"
    );

    // Digest on the host.
    let h = dir.join("h.bin");
    let (data_s, h_s) = (s(&data), s(&h));
    OURS.run(
        &card,
        ["--hash", "--mechanism", "SHA256", "-i", &data_s, "-o", &h_s],
    );
    let expect = run("openssl", ["dgst", "-sha256", "-binary", &data_s]);
    assert_eq!(fs::read(&h).unwrap(), expect.stdout);

    // PIN change by the user, then a new PIN set by the SO.
    OURS.login()
        .run(&card, ["--change-pin", "--new-pin", "135790"]);
    let bad = OURS.login().run_allow_fail(&card, ["--list-objects"]);
    assert!(text(&bad).contains("CKR_PIN_INCORRECT"), "{}", text(&bad));
    OURS.run(&card, so_init_pin("246802"));
    let out = OURS.login_with("246802").run(&card, ["--list-objects"]);
    assert!(out.contains("Private Key Object"), "{out}");
}

#[test]
fn pkcs11_tool_test_login_passes_through_our_module() {
    let out = text(&self_test(Module::Ours));
    assert!(out.contains("No errors"), "{out}");
    assert!(
        out.contains("RSA-X-509: OK") && out.contains("SHA256-RSA-PKCS: OK"),
        "{out}"
    );
}
