//! Every signing, decryption and derivation mechanism of libpicohsm_pkcs11.so
//! through OpenSC's pkcs11-tool, on keys the module generated on
//! picohsm-vcard (behind pcscd): each signature verified by this module's
//! C_Verify (`pkcs11-tool --verify`) and by openssl; ECDH secrets compared
//! with openssl's; the ANSI X9.63 KDFs through the `cryptoki` crate.

mod common;

use std::fs;
use std::path::Path;

use common::tools::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use picohsm_crypto::hash::HashAlg;
use sha2::{Digest, Sha256, Sha384};

/// A card with an EC P-256 key (id 01) and an RSA-2048 key (id 02), both
/// generated through this module.
fn card_with_our_keys() -> VCard {
    let card = initialised_card();
    let keys = [("EC:prime256v1", "01", "01"), ("rsa:2048", "02", "02")];
    keypairgens(OURS.login(), &card, &keys);
    card
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
    OURS.login()
        .run(card, op("--sign", mech, id, input, sig, extra));
    for (file, valid) in [(input, true), (wrong, false)] {
        let out = OURS.run_allow_fail(card, verify(mech, id, file, sig, extra));
        let t = text(&out);
        let expect = if valid {
            "Signature is valid"
        } else {
            "Invalid signature"
        };
        assert!(t.contains(expect), "{mech} on {file:?}: {t}");
    }
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
    let ec_pem = OURS.public_pem(&card, "01", &dir);
    let rsa_pem = OURS.public_pem(&card, "02", &dir);

    // CKM_ECDSA over a hash, and CKM_ECDSA_SHA*.
    let hash = dir.join("hash.bin");
    fs::write(&hash, HashAlg::Sha256.digest(&fs::read(&data).unwrap())).unwrap();
    let wrong_hash = dir.join("wrong_hash.bin");
    fs::write(&wrong_hash, HashAlg::Sha256.digest(b"other")).unwrap();
    let fmt = OPENSSL_FORMAT;
    sign_and_verify_here(&card, "01", "ECDSA", fmt, &hash, &wrong_hash, &sig);
    openssl_ok(&pkeyutl_verify(&ec_pem, &[], &hash, &sig));
    for (name, flag, _) in HASHES {
        let mech = format!("ECDSA-{name}");
        sign_and_verify_here(&card, "01", &mech, fmt, &data, &wrong, &sig);
        openssl_ok(&dgst_verify(flag, &[], &ec_pem, &sig, &data));
        openssl_fails(&dgst_verify(flag, &[], &ec_pem, &sig, &wrong));
    }

    // CKM_RSA_PKCS over a DigestInfo; CKM_SHA*_RSA_PKCS.
    let digest_info = |hash: &Path, name: &str| {
        let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
        di.extend_from_slice(&fs::read(hash).unwrap());
        let path = dir.join(name);
        fs::write(&path, &di).unwrap();
        path
    };
    let di_path = digest_info(&hash, "di.bin");
    let wrong_di_path = digest_info(&wrong_hash, "wrong_di.bin");
    sign_and_verify_here(&card, "02", "RSA-PKCS", &[], &di_path, &wrong_di_path, &sig);
    openssl_ok(&pkeyutl_verify(&rsa_pem, &[], &di_path, &sig));
    for (name, flag, _) in HASHES {
        let mech = format!("{name}-RSA-PKCS");
        sign_and_verify_here(&card, "02", &mech, &[], &data, &wrong, &sig);
        openssl_ok(&dgst_verify(flag, &[], &rsa_pem, &sig, &data));
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
    let blocks = (&block_path, &wrong_block_path);
    sign_and_verify_here(&card, "02", "RSA-X-509", &[], blocks.0, blocks.1, &sig);
    let recovered = dir.join("recovered.bin");
    let recover = [
        "pkeyutl",
        "-verifyrecover",
        "-pubin",
        "-inkey",
        &s(&rsa_pem),
    ];
    let raw = ["-pkeyopt", "rsa_padding_mode:none"];
    let files = ["-in", &s(&sig), "-out", &s(&recovered)];
    run("openssl", [&recover[..], &raw, &files].concat());
    assert_eq!(fs::read(&recovered).unwrap(), block);

    // CKM_RSA_PKCS_PSS over a hash, and CKM_SHA*_RSA_PKCS_PSS (salt = hash
    // length, MGF1 with the same hash: pkcs11-tool's defaults).
    let sha256_mgf1 = ["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"];
    let pss = "RSA-PKCS-PSS";
    sign_and_verify_here(&card, "02", pss, &sha256_mgf1, &hash, &wrong_hash, &sig);
    let options = [
        "-pkeyopt",
        "rsa_padding_mode:pss",
        "-pkeyopt",
        "digest:sha256",
        "-pkeyopt",
        "rsa_pss_saltlen:32",
    ];
    openssl_ok(&pkeyutl_verify(&rsa_pem, &options, &hash, &sig));
    for (name, flag, alg) in HASHES {
        let mech = format!("{name}-RSA-PKCS-PSS");
        sign_and_verify_here(&card, "02", &mech, &[], &data, &wrong, &sig);
        let salt = format!("rsa_pss_saltlen:{}", alg.digest(b"").len());
        let options = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", &salt];
        openssl_ok(&dgst_verify(flag, &options, &rsa_pem, &sig, &data));
    }

    // Decryption: PKCS#1 v1.5 and OAEP (SHA-256) of openssl ciphertexts.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"for the card's eyes").unwrap();
    let (ct, pt) = (dir.join("ct.bin"), dir.join("pt.bin"));
    let oaep = [
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha256",
        "rsa_mgf1_md:sha256",
    ];
    for (mech, opts, extra) in [
        ("RSA-PKCS", &[][..], &[][..]),
        ("RSA-PKCS-OAEP", &oaep[..], &sha256_mgf1[..]),
    ] {
        openssl_encrypt(&rsa_pem, opts, &msg, &ct);
        OURS.login()
            .run(&card, op("--decrypt", mech, "02", &ct, &pt, extra));
        assert_eq!(fs::read(&pt).unwrap(), b"for the card's eyes", "{mech}");
    }

    // ECDH with a peer key made by openssl: both sides get the same secret.
    let (peer, peer_pub) = openssl_p256_peer(&dir);
    let z_card = dir.join("z_card.bin");
    let z_ossl = openssl_derive(&peer, &ec_pem);
    for mech in ["ECDH1-DERIVE", "ECDH1-COFACTOR-DERIVE"] {
        OURS.login()
            .run(&card, op("--derive", mech, "01", &peer_pub, &z_card, &[]));
        let z = fs::read(&z_card).unwrap();
        assert_eq!(z.len(), 32);
        assert_eq!(z, z_ossl, "{mech}: secrets agree");
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
    let card = initialised_card();
    our_keypairgen(&card, PIN, "EC:prime256v1", "07");
    let dir = card.dir().to_path_buf();
    let ec_pem = OURS.public_pem(&card, "07", &dir);

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
        find_by_id(&session, ObjectClass::PRIVATE_KEY, 7)[0]
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

/// An application signs with RSA-PSS at any salt length the modulus leaves
/// room for (0 to emLen - hLen - 2 bytes) and MGF1 with any hash, and
/// decrypts RSA-OAEP ciphertexts made with SHA-1 … SHA-512 and a label, as
/// with OpenSC: openssl verifies every signature (`pkeyutl -pkeyopt
/// rsa_pss_saltlen:N`) and made every ciphertext. A salt too long for the
/// modulus is CKR_MECHANISM_PARAM_INVALID; a wrong label fails the
/// decryption.
#[test]
fn rsa_pss_at_every_salt_length_and_oaep_with_every_hash_and_a_label() {
    use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
    use cryptoki::mechanism::MechanismType;

    let card = initialised_card();
    our_keypairgen(&card, PIN, "rsa:2048", "02");
    let dir = card.dir().to_path_buf();
    let pem = OURS.public_pem(&card, "02", &dir);
    let p11 = our_module();
    let session = p11.open_ro_session(slot_of(&p11, &card)).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    let key = find_by_id(&session, ObjectClass::PRIVATE_KEY, 2)[0];
    let public = find_by_id(&session, ObjectClass::PUBLIC_KEY, 2)[0];

    let hashes = [
        (
            "sha1",
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            HashAlg::Sha1,
        ),
        (
            "sha224",
            MechanismType::SHA224,
            PkcsMgfType::MGF1_SHA224,
            HashAlg::Sha224,
        ),
        (
            "sha256",
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            HashAlg::Sha256,
        ),
        (
            "sha384",
            MechanismType::SHA384,
            PkcsMgfType::MGF1_SHA384,
            HashAlg::Sha384,
        ),
        (
            "sha512",
            MechanismType::SHA512,
            PkcsMgfType::MGF1_SHA512,
            HashAlg::Sha512,
        ),
    ];
    let (input, sig_path) = (dir.join("hash.bin"), dir.join("pss.sig"));
    for (name, hash_alg, mgf, alg) in hashes {
        let hash = alg.digest(b"salted");
        fs::write(&input, &hash).unwrap();
        // RSA-2048: emLen 256.
        let max = 256 - hash.len() - 2;
        for (salt, mgf, mgf_name) in [
            (0, mgf, name),
            (hash.len(), mgf, name),
            (hash.len() + 1, PkcsMgfType::MGF1_SHA1, "sha1"),
            (max, mgf, name),
        ] {
            let params = PkcsPssParams {
                hash_alg,
                mgf,
                s_len: (salt as u64).into(),
            };
            let sig = session
                .sign(&Mechanism::RsaPkcsPss(params), key, &hash)
                .unwrap_or_else(|e| panic!("{name} salt {salt}: {e}"));
            fs::write(&sig_path, &sig).unwrap();
            let (digest, salt_len, mgf1) = (
                format!("digest:{name}"),
                format!("rsa_pss_saltlen:{salt}"),
                format!("rsa_mgf1_md:{mgf_name}"),
            );
            let options = ["rsa_padding_mode:pss", &digest, &salt_len, &mgf1];
            let options: Vec<&str> = options.iter().flat_map(|o| ["-pkeyopt", o]).collect();
            openssl_ok(&pkeyutl_verify(&pem, &options, &input, &sig_path));
            if mgf_name == name {
                session
                    .verify(&Mechanism::RsaPkcsPss(params), public, &hash, &sig)
                    .unwrap_or_else(|e| panic!("C_Verify {name} salt {salt}: {e}"));
            }
        }
        let too_long = PkcsPssParams {
            hash_alg,
            mgf,
            s_len: ((max + 1) as u64).into(),
        };
        let e = session.sign(&Mechanism::RsaPkcsPss(too_long), key, &hash);
        assert_eq!(rv(e.unwrap_err()), RvError::MechanismParamInvalid, "{name}");
    }
    // With the module's hash: SHA-512, salt 0.
    let data = dir.join("data.txt");
    fs::write(&data, b"hashed by the module").unwrap();
    let params = PkcsPssParams {
        hash_alg: MechanismType::SHA512,
        mgf: PkcsMgfType::MGF1_SHA512,
        s_len: 0u64.into(),
    };
    let sig = session
        .sign(
            &Mechanism::Sha512RsaPkcsPss(params),
            key,
            &fs::read(&data).unwrap(),
        )
        .unwrap();
    fs::write(&sig_path, &sig).unwrap();
    let options = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:0",
    ];
    openssl_ok(&dgst_verify("-sha512", &options, &pem, &sig_path, &data));

    // OAEP: openssl encrypts with each hash (MGF1 with the same one, or
    // SHA-1) and a label.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"for the card's eyes").unwrap();
    let ct = dir.join("ct.bin");
    for (i, (name, hash_alg, mgf, _)) in hashes.into_iter().enumerate() {
        let (mgf, mgf_name) = if i % 2 == 0 {
            (mgf, name)
        } else {
            (PkcsMgfType::MGF1_SHA1, "sha1")
        };
        let label = format!("label {name}");
        let options = [
            "rsa_padding_mode:oaep".to_string(),
            format!("rsa_oaep_md:{name}"),
            format!("rsa_mgf1_md:{mgf_name}"),
            format!("rsa_oaep_label:{}", hex::encode(&label)),
        ];
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        openssl_encrypt(&pem, &options, &msg, &ct);
        let ciphertext = fs::read(&ct).unwrap();
        let oaep = |l: &'static [u8]| {
            let source = if l.is_empty() {
                PkcsOaepSource::empty()
            } else {
                PkcsOaepSource::data_specified(l)
            };
            Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash_alg, mgf, source))
        };
        let label: &'static [u8] = label.into_bytes().leak();
        let pt = session
            .decrypt(&oaep(label), key, &ciphertext)
            .unwrap_or_else(|e| panic!("OAEP {name}/{mgf_name}: {e}"));
        assert_eq!(pt, b"for the card's eyes", "{name}");
        let e = session.decrypt(&oaep(b"another label"), key, &ciphertext);
        assert_eq!(rv(e.unwrap_err()), RvError::EncryptedDataInvalid, "{name}");
    }
}
