//! Key generation and object management through libpicohsm_pkcs11.so
//! (pkcs11-tool and the `cryptoki` crate), on picohsm-vcard through pcscd,
//! cross-checked with OpenSC's own module on the same card.

mod common;

use std::fs;
use std::path::Path;

use common::tools::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sha1::{Digest, Sha1};

// The tests of this file run one at a time ([`serial`]): a module that
// looks for tokens (pkcs11-tool with either module, C_GetSlotInfo) SELECTs
// the applet on every card it sees, which is a logout on the card, so one
// test's slot scan would log out another test's card between its VERIFY
// and its use.

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

/// Signs with key `id` through `module` and checks the signature with
/// openssl and `pem`.
fn sign_and_verify(card: &VCard, module: Module, id: &str, rsa: bool, pem: &Path) {
    let dir = card.dir();
    let data = dir.join("data.txt");
    fs::write(&data, format!("message for {id}")).unwrap();
    let sig = dir.join("sig.bin");
    let sign = if rsa {
        op("--sign", "SHA256-RSA-PKCS", id, &data, &sig, &[])
    } else {
        op("--sign", "ECDSA-SHA256", id, &data, &sig, OPENSSL_FORMAT)
    };
    P11::with(module).login().run(card, sign);
    openssl_ok(&dgst_verify("-sha256", &[], pem, &sig, &data));
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
        OURS.login()
            .run(&card, ["--keypairgen", "--key-type", kt, "--label", label]);
    }
    let listing = OURS.run(&card, ["--list-objects", "--type", "pubkey"]);
    let opensc = THEIRS.login().run(&card, ["--list-objects"]);
    for (kt, label) in kinds {
        let rsa = kt.starts_with("rsa");
        let b = listing_block(&listing, "Public Key Object", "label:", label)
            .unwrap_or_else(|| panic!("{label} in {listing}"));
        let id = listing_field(b, "ID:").to_string();
        let pem = if label == "p384" {
            listed_ec_pem(b, &dir, label)
        } else {
            let der = dir.join(format!("{label}.der"));
            OURS.run(&card, read_object("pubkey", ["--id", &id], &der));
            let pem = dir.join(format!("{label}.pem"));
            der_to_pem(&der, &pem);
            pem
        };
        // OpenSC's default (mozilla-style) id: SHA-1 of the modulus or of X.
        let m = key_material(&pem, !rsa);
        let expect = if rsa {
            Sha1::digest(&m).to_vec()
        } else {
            Sha1::digest(&m[1..1 + (m.len() - 1) / 2]).to_vec()
        };
        assert_eq!(id, hex::encode(expect), "intrinsic id of {label}");

        sign_and_verify(&card, Module::Ours, &id, rsa, &pem);

        // OpenSC's module sees the key as its own: same label and id, and signs.
        let pb = listing_block(&opensc, "Private Key Object", "label:", label)
            .unwrap_or_else(|| panic!("{label} through OpenSC: {opensc}"));
        assert_eq!(listing_field(pb, "ID:"), id, "{pb}");
        if rsa {
            assert!(pb.contains("RSA"), "{pb}");
            assert!(pb.contains("decrypt") && pb.contains("sign"), "{pb}");
        } else {
            assert!(pb.contains("EC"), "{pb}");
        }
        sign_and_verify(&card, Module::OpenSc, &id, rsa, &pem);
    }
}

/// The object of `kind` labelled `label` in a pkcs11-tool listing.
fn labelled<'a>(listing: &'a str, kind: &str, label: &str) -> Option<&'a str> {
    listing_block(listing, kind, "label:", label)
}

#[test]
fn certificates_and_data_objects_round_trip_through_both_modules() {
    let _serial = serial();
    let card = initialised_card();
    let dir = card.dir().to_path_buf();
    let der = self_signed_cert(&dir, "ca", "/CN=picohsm test CA");
    let cert = fs::read(&der).unwrap();

    // A certificate without a key on the card: CAxx + CD.
    let attributes = ["--label", "test CA", "--id", "c0ffee"];
    OURS.login()
        .run(&card, write_object(&der, "cert", &attributes));
    let back = dir.join("back.der");
    OURS.run(&card, read_object("cert", ["--id", "c0ffee"], &back));
    assert_eq!(fs::read(&back).unwrap(), cert);
    let l = THEIRS.run(&card, ["--list-objects", "--type", "cert"]);
    let b = labelled(&l, "Certificate Object", "test CA").unwrap_or_else(|| panic!("{l}"));
    assert_eq!(listing_field(b, "ID:"), "c0ffee");
    let back2 = dir.join("back2.der");
    THEIRS.run(&card, read_object("cert", ["--id", "c0ffee"], &back2));
    assert_eq!(fs::read(&back2).unwrap(), cert);

    // Data objects, public and private.
    let payload = dir.join("payload.bin");
    fs::write(&payload, b"some data written through libpicohsm_pkcs11").unwrap();
    for (label, private) in [("pubdata", false), ("privdata", true)] {
        let mut attributes = vec!["--label", label, "--application-label", "picohsm-tests"];
        if private {
            attributes.push("--private");
        }
        OURS.login()
            .run(&card, write_object(&payload, "data", &attributes));
    }
    let pub_listing = THEIRS.run(&card, ["--list-objects", "--type", "data"]);
    assert!(
        labelled(&pub_listing, "Data object", "pubdata").is_some(),
        "{pub_listing}"
    );
    assert!(
        !pub_listing.contains("privdata"),
        "a private data object is hidden before login: {pub_listing}"
    );
    let all = THEIRS
        .login()
        .run(&card, ["--list-objects", "--type", "data"]);
    assert!(labelled(&all, "Data object", "privdata").is_some(), "{all}");
    for (label, login) in [("pubdata", false), ("privdata", true)] {
        let theirs = if login { THEIRS.login() } else { THEIRS };
        for (p11, name) in [(theirs, "out"), (OURS.login(), "out2")] {
            let out = dir.join(format!("{label}.{name}"));
            p11.run(&card, read_object("data", ["--label", label], &out));
            assert_eq!(
                fs::read(&out).unwrap(),
                fs::read(&payload).unwrap(),
                "{label}"
            );
        }
    }

    // Delete everything through our module; OpenSC no longer sees it.
    OURS.login()
        .run(&card, delete_object("cert", ["--id", "c0ffee"]));
    for label in ["pubdata", "privdata"] {
        OURS.login()
            .run(&card, delete_object("data", ["--label", label]));
    }
    for p11 in [THEIRS, OURS] {
        let l = p11.login().run(&card, ["--list-objects"]);
        assert!(
            !l.contains("test CA") && !l.contains("pubdata") && !l.contains("privdata"),
            "{l}"
        );
    }

    // The freed files are reused.
    let attributes = ["--label", "again", "--id", "01"];
    OURS.login()
        .run(&card, write_object(&der, "cert", &attributes));
    let l = THEIRS.run(&card, ["--list-objects", "--type", "cert"]);
    assert!(labelled(&l, "Certificate Object", "again").is_some(), "{l}");
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
    OURS.login()
        .run(&card, keypairgen("EC:prime256v1", "42", "before"));
    let p11 = our_module();
    let slot = slot_of(&p11, &card);

    // Read-only session and no login are refused.
    let ro = p11.open_ro_session(slot).unwrap();
    let pubk = find_by_id(&ro, ObjectClass::PUBLIC_KEY, 0x42);
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
    let prv = find_by_id(&rw, ObjectClass::PRIVATE_KEY, 0x42);
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
    let l = THEIRS
        .login()
        .run(&card, ["--list-objects", "--type", "privkey"]);
    let b = labelled(&l, "Private Key Object", "after").unwrap_or_else(|| panic!("{l}"));
    assert_eq!(listing_field(b, "ID:"), "43");
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
    let pubk = find_by_id(&rw, ObjectClass::PUBLIC_KEY, 0x43);
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
    let l = THEIRS.run(&card, ["--list-objects", "--type", "data"]);
    assert!(labelled(&l, "Data object", "d2").is_some(), "{l}");
    relogin(&rw);
    rw.destroy_object(data).unwrap();

    // Deleting the private key takes the public key along.
    rw.destroy_object(prv[0]).unwrap();
    assert!(rw
        .find_objects(&[Attribute::Id(vec![0x43])])
        .unwrap()
        .is_empty());
    let l = THEIRS.login().run(&card, ["--list-objects"]);
    assert!(!l.contains("after") && !l.contains("Data object"), "{l}");
}
