//! Every signing, decryption and derivation mechanism of libpicohsm_pkcs11.so
//! through OpenSC's pkcs11-tool, on keys the module generated on
//! picohsm-vcard (behind pcscd): each signature verified by this module's
//! C_Verify (`pkcs11-tool --verify`) and by openssl; ECDH secrets compared
//! with openssl's; the ANSI X9.63 KDFs through the `cryptoki` crate.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use picohsm_crypto::hash::HashAlg;
use sha2::{Digest, Sha256, Sha384};

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";

fn ours(card: &VCard, args: &[&str]) -> String {
    text(&run_cmd(our_pkcs11_tool_command(card).args(args)))
}

fn ours_login(card: &VCard, args: &[&str]) -> String {
    let mut a = vec!["--login", "--pin", PIN];
    a.extend_from_slice(args);
    ours(card, &a)
}

/// A card with an EC P-256 key (id 01) and an RSA-2048 key (id 02), both
/// generated through this module.
fn card_with_our_keys() -> VCard {
    let card = VCard::start();
    sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    for (id, kt) in [("01", "EC:prime256v1"), ("02", "rsa:2048")] {
        let out = ours_login(
            &card,
            &["--keypairgen", "--key-type", kt, "--id", id, "--label", id],
        );
        assert!(out.contains("Key pair generated"), "{out}");
    }
    card
}

fn public_pem(card: &VCard, id: &str, dir: &Path) -> PathBuf {
    public_pem_with(our_pkcs11_tool_command(card), id, dir)
}

/// Signs `input` with `mech` through this module, then checks the signature
/// with this module's C_Verify, on the right input and on a wrong one.
fn sign_and_verify_here(
    card: &VCard,
    id: &str,
    mech: &str,
    extra: &[&str],
    input: &Path,
    wrong: &Path,
    sig: &Path,
) {
    let mut a = vec![
        "--sign",
        "--mechanism",
        mech,
        "--id",
        id,
        "-i",
        input.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    ours_login(card, &a);
    for (file, valid) in [(input, true), (wrong, false)] {
        let mut v = vec![
            "--verify",
            "--mechanism",
            mech,
            "--id",
            id,
            "-i",
            file.to_str().unwrap(),
            "--signature-file",
            sig.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        let out = run_cmd_allow_fail(our_pkcs11_tool_command(card).args(&v));
        let t = text_any(&out);
        if valid {
            assert!(t.contains("Signature is valid"), "{mech} on {file:?}: {t}");
        } else {
            assert!(t.contains("Invalid signature"), "{mech} on {file:?}: {t}");
        }
    }
}

fn text_any(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const HASHES: [(&str, &str, HashAlg); 5] = [
    ("SHA1", "-sha1", HashAlg::Sha1),
    ("SHA224", "-sha224", HashAlg::Sha224),
    ("SHA256", "-sha256", HashAlg::Sha256),
    ("SHA384", "-sha384", HashAlg::Sha384),
    ("SHA512", "-sha512", HashAlg::Sha512),
];

#[test]
fn pkcs11_tool_signs_verifies_decrypts_and_derives_with_every_mechanism() {
    let card = card_with_our_keys();
    let dir = card.dir().to_path_buf();
    let data = dir.join("data.txt");
    fs::write(&data, b"every mechanism of libpicohsm_pkcs11").unwrap();
    let wrong = dir.join("wrong.txt");
    fs::write(&wrong, b"not what was signed").unwrap();
    let sig = dir.join("sig.bin");
    let ec_pem = public_pem(&card, "01", &dir);
    let rsa_pem = public_pem(&card, "02", &dir);

    // CKM_ECDSA over a hash, and CKM_ECDSA_SHA*.
    let hash = dir.join("hash.bin");
    fs::write(&hash, HashAlg::Sha256.digest(&fs::read(&data).unwrap())).unwrap();
    let wrong_hash = dir.join("wrong_hash.bin");
    fs::write(&wrong_hash, HashAlg::Sha256.digest(b"other")).unwrap();
    let fmt = ["--signature-format", "openssl"];
    sign_and_verify_here(&card, "01", "ECDSA", &fmt, &hash, &wrong_hash, &sig);
    openssl_ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &s(&ec_pem),
        "-in",
        &s(&hash),
        "-sigfile",
        &s(&sig),
    ]);
    for (name, flag, _) in HASHES {
        let mech = format!("ECDSA-{name}");
        sign_and_verify_here(&card, "01", &mech, &fmt, &data, &wrong, &sig);
        openssl_ok(&[
            "dgst",
            flag,
            "-verify",
            &s(&ec_pem),
            "-signature",
            &s(&sig),
            &s(&data),
        ]);
        openssl_fails(&[
            "dgst",
            flag,
            "-verify",
            &s(&ec_pem),
            "-signature",
            &s(&sig),
            &s(&wrong),
        ]);
    }

    // CKM_RSA_PKCS over a DigestInfo; CKM_SHA*_RSA_PKCS.
    let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
    di.extend_from_slice(&fs::read(&hash).unwrap());
    let di_path = dir.join("di.bin");
    fs::write(&di_path, &di).unwrap();
    let mut wrong_di = HashAlg::Sha256.digest_info_prefix().to_vec();
    wrong_di.extend_from_slice(&fs::read(&wrong_hash).unwrap());
    let wrong_di_path = dir.join("wrong_di.bin");
    fs::write(&wrong_di_path, &wrong_di).unwrap();
    sign_and_verify_here(&card, "02", "RSA-PKCS", &[], &di_path, &wrong_di_path, &sig);
    openssl_ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &s(&rsa_pem),
        "-in",
        &s(&di_path),
        "-sigfile",
        &s(&sig),
    ]);
    for (name, flag, _) in HASHES {
        let mech = format!("{name}-RSA-PKCS");
        sign_and_verify_here(&card, "02", &mech, &[], &data, &wrong, &sig);
        openssl_ok(&[
            "dgst",
            flag,
            "-verify",
            &s(&rsa_pem),
            "-signature",
            &s(&sig),
            &s(&data),
        ]);
    }

    // CKM_RSA_X_509: the raw RSA operation; openssl recovers the block.
    let mut block = vec![0x00, 0x01];
    block.resize(256 - 32, 0xFF);
    block.extend_from_slice(&fs::read(&hash).unwrap());
    let block_path = dir.join("block.bin");
    fs::write(&block_path, &block).unwrap();
    let mut wrong_block = block.clone();
    wrong_block[255] ^= 1;
    let wrong_block_path = dir.join("wrong_block.bin");
    fs::write(&wrong_block_path, &wrong_block).unwrap();
    sign_and_verify_here(
        &card,
        "02",
        "RSA-X-509",
        &[],
        &block_path,
        &wrong_block_path,
        &sig,
    );
    let recovered = dir.join("recovered.bin");
    run(
        "openssl",
        [
            "pkeyutl",
            "-verifyrecover",
            "-pubin",
            "-inkey",
            &s(&rsa_pem),
            "-pkeyopt",
            "rsa_padding_mode:none",
            "-in",
            &s(&sig),
            "-out",
            &s(&recovered),
        ],
    );
    assert_eq!(fs::read(&recovered).unwrap(), block);

    // CKM_RSA_PKCS_PSS over a hash, and CKM_SHA*_RSA_PKCS_PSS (salt = hash
    // length, MGF1 with the same hash: pkcs11-tool's defaults).
    sign_and_verify_here(
        &card,
        "02",
        "RSA-PKCS-PSS",
        &["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"],
        &hash,
        &wrong_hash,
        &sig,
    );
    openssl_ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &s(&rsa_pem),
        "-pkeyopt",
        "rsa_padding_mode:pss",
        "-pkeyopt",
        "digest:sha256",
        "-pkeyopt",
        "rsa_pss_saltlen:32",
        "-in",
        &s(&hash),
        "-sigfile",
        &s(&sig),
    ]);
    for (name, flag, alg) in HASHES {
        let mech = format!("{name}-RSA-PKCS-PSS");
        sign_and_verify_here(&card, "02", &mech, &[], &data, &wrong, &sig);
        let salt = format!("rsa_pss_saltlen:{}", alg.digest(b"").len());
        openssl_ok(&[
            "dgst",
            flag,
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            &salt,
            "-verify",
            &s(&rsa_pem),
            "-signature",
            &s(&sig),
            &s(&data),
        ]);
    }

    // Decryption: PKCS#1 v1.5 and OAEP (SHA-256) of openssl ciphertexts.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"for the card's eyes").unwrap();
    let (ct, pt) = (dir.join("ct.bin"), dir.join("pt.bin"));
    for (mech, opts, extra) in [
        ("RSA-PKCS", vec![], vec![]),
        (
            "RSA-PKCS-OAEP",
            vec![
                "rsa_padding_mode:oaep",
                "rsa_oaep_md:sha256",
                "rsa_mgf1_md:sha256",
            ],
            vec!["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"],
        ),
    ] {
        let mut enc = vec![
            "pkeyutl".to_string(),
            "-encrypt".into(),
            "-pubin".into(),
            "-inkey".into(),
            s(&rsa_pem),
            "-in".into(),
            s(&msg),
            "-out".into(),
            s(&ct),
        ];
        for o in opts {
            enc.push("-pkeyopt".into());
            enc.push(o.into());
        }
        run("openssl", &enc);
        let mut a = vec![
            "--decrypt",
            "--mechanism",
            mech,
            "--id",
            "02",
            "-i",
            ct.to_str().unwrap(),
            "-o",
            pt.to_str().unwrap(),
        ];
        a.extend_from_slice(&extra);
        ours_login(&card, &a);
        assert_eq!(fs::read(&pt).unwrap(), b"for the card's eyes", "{mech}");
    }

    // ECDH with a peer key made by openssl: both sides get the same secret.
    let (peer, peer_pub) = openssl_p256_peer(&dir);
    let z_card = dir.join("z_card.bin");
    let z_ossl = openssl_derive(&peer, &ec_pem);
    for mech in ["ECDH1-DERIVE", "ECDH1-COFACTOR-DERIVE"] {
        ours_login(
            &card,
            &[
                "--derive",
                "--mechanism",
                mech,
                "--id",
                "01",
                "-i",
                &s(&peer_pub),
                "-o",
                &s(&z_card),
            ],
        );
        let z = fs::read(&z_card).unwrap();
        assert_eq!(z.len(), 32);
        assert_eq!(z, z_ossl, "{mech}: secrets agree");
    }
}

fn rv(e: P11Error) -> RvError {
    match e {
        P11Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

/// X9.63 KDF with SHA-256 or SHA-384 for `len` bytes, computed here.
fn x963(z: &[u8], info: &[u8], len: usize, sha384: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut counter = 1u32;
    while out.len() < len {
        let mut input = z.to_vec();
        input.extend_from_slice(&counter.to_be_bytes());
        input.extend_from_slice(info);
        if sha384 {
            out.extend_from_slice(&Sha384::digest(&input));
        } else {
            out.extend_from_slice(&Sha256::digest(&input));
        }
        counter += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn ecdh_session_keys_kdfs_and_their_errors_through_cryptoki() {
    let card = VCard::start();
    sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    let out = ours_login(
        &card,
        &["--keypairgen", "--key-type", "EC:prime256v1", "--id", "07"],
    );
    assert!(out.contains("Key pair generated"), "{out}");
    let dir = card.dir().to_path_buf();
    let ec_pem = public_pem(&card, "07", &dir);

    // The peer: a key openssl makes, its point raw, and openssl's Z.
    let (peer, peer_der) = openssl_p256_peer(&dir);
    let spki = fs::read(&peer_der).unwrap();
    let point = spki[spki.len() - 65..].to_vec();
    assert_eq!(point[0], 0x04);
    let z = openssl_derive(&peer, &ec_pem);

    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let session = p11.open_rw_session(slot).unwrap();
    let template = |len: usize| {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen((len as u64).into()),
        ]
    };
    // Before login the private key is not even visible.
    let key = {
        assert!(session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()
            .is_empty());
        session
            .login(UserType::User, Some(&AuthPin::from(PIN)))
            .unwrap();
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(vec![7]),
            ])
            .unwrap()[0]
    };
    let derive = |kdf: EcKdf, len: usize| {
        let params = Ecdh1DeriveParams::new(kdf, &point);
        session.derive_key(&Mechanism::Ecdh1Derive(params), key, &template(len))
    };
    let value = |h| match session
        .get_attributes(h, &[AttributeType::Value])
        .unwrap()
        .remove(0)
    {
        Attribute::Value(v) => v,
        other => panic!("{other:?}"),
    };

    let plain = derive(EcKdf::null(), 32).unwrap();
    assert_eq!(value(plain), z, "CKD_NULL is Z itself");
    let k256 = derive(EcKdf::sha256(&[]), 48).unwrap();
    assert_eq!(value(k256), x963(&z, &[], 48, false));
    let info = b"picohsm shared info";
    let k384 = session
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::sha384(info), &point)),
            key,
            &template(20),
        )
        .unwrap();
    assert_eq!(value(k384), x963(&z, info, 20, true));

    // The derived keys are session objects: found, then gone with the session.
    let found = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap();
    assert_eq!(found.len(), 3);
    session.destroy_object(k384).unwrap();
    assert_eq!(
        session
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .unwrap()
            .len(),
        2
    );

    // A sensitive key keeps its value.
    let sensitive = session
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point)),
            key,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(false),
            ],
        )
        .unwrap();
    assert!(matches!(
        session
            .get_attribute_info(sensitive, &[AttributeType::Value])
            .unwrap()[..],
        [AttributeInfo::Sensitive]
    ));

    // Errors.
    assert_eq!(
        rv(derive(EcKdf::null(), 33).unwrap_err()),
        RvError::AttributeValueInvalid
    );
    let mut bad_point = point.clone();
    bad_point[64] ^= 1;
    assert_eq!(
        rv(session
            .derive_key(
                &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &bad_point)),
                key,
                &template(32),
            )
            .unwrap_err()),
        RvError::MechanismParamInvalid
    );
    assert_eq!(
        rv(session
            .derive_key(
                &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point[..33])),
                key,
                &template(32),
            )
            .unwrap_err()),
        RvError::MechanismParamInvalid
    );
    let mut on_token = template(32);
    on_token[2] = Attribute::Token(true);
    assert_eq!(
        rv(session
            .derive_key(
                &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point)),
                key,
                &on_token,
            )
            .unwrap_err()),
        RvError::AttributeValueInvalid
    );

    // Closing the session takes its session objects along.
    session.close().unwrap();
    let again = p11.open_ro_session(slot).unwrap();
    again
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    assert!(again
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap()
        .is_empty());
}
