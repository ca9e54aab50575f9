//! The virtual card through the real stack: pcscd + vpcd + `picohsm-vcard`,
//! driven by OpenSC's own tools (opensc-tool, sc-hsm-tool, pkcs11-tool with
//! opensc-pkcs11.so), with every signature checked by `openssl`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::tools::*;
use common::*;
use picohsm_crypto::{ec, hash::HashAlg};
use picohsm_firmware::dkek;
use picohsm_firmware::keys::PrivateKey;
use picohsm_wire::curve::Curve;

/// The EC public key `id` as PEM, from its CKA_EC_PARAMS and CKA_EC_POINT
/// as pkcs11-tool lists them (see [`ec_pem`]: P-384 keys are exported this
/// way).
fn ec_public_pem_from_listing(card: &VCard, id: &str, dir: &Path) -> PathBuf {
    let listing = THEIRS.run(card, ["--list-objects", "--type", "pubkey"]);
    let block = listing_block(&listing, "Public Key Object", "ID:", id)
        .unwrap_or_else(|| panic!("public key {id} in {listing}"));
    listed_ec_pem(block, dir, &format!("pub{id}"))
}

#[test]
fn opensc_tool_names_the_card_smartcard_hsm() {
    let card = VCard::start();
    let out = text(&opensc_tool(&card, ["-n"]));
    assert!(out.contains("SmartCard-HSM"), "{out}");
    let atr = text(&opensc_tool(&card, ["-a"]));
    assert!(
        atr.contains("3b:fe:18:00:00:81:31:fe:45:80:31:81:54:48:53:4d:31:73:80:21:40:81:07:fa"),
        "{atr}"
    );
}

#[test]
fn pkcs11_tool_keys_signatures_decrypt_derive_objects() {
    let card = VCard::start();
    let dir = card.dir().to_path_buf();
    initialize(&card, &["-s", "1"]);
    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 3"), "{info}");

    let keys = [
        ("EC:prime256v1", "01", "key01"),
        ("EC:brainpoolP256r1", "02", "key02"),
        ("EC:secp384r1", "03", "key03"),
        ("rsa:2048", "04", "key04"),
    ];
    keypairgens(THEIRS.login(), &card, &keys);
    let objects = THEIRS.login().run(&card, ["--list-objects"]);
    for id in ["01", "02", "03", "04"] {
        assert!(objects.contains(&format!("ID:         {id}")), "{objects}");
    }

    let data = dir.join("data.txt");
    fs::write(&data, b"the quick brown fox").unwrap();
    let digest = HashAlg::Sha256.digest(b"the quick brown fox");
    let hash = dir.join("hash.bin");
    fs::write(&hash, &digest).unwrap();
    let sig = dir.join("sig.bin");
    let sign = |id, mech, input: &Path, extra| {
        THEIRS
            .login()
            .run(&card, op("--sign", mech, id, input, &sig, extra));
    };

    // ECDSA on every EC key, and ECDSA-SHA256.
    let other = dir.join("other.txt");
    fs::write(&other, b"other").unwrap();
    for id in ["01", "02", "03"] {
        let pem = if id == "03" {
            ec_public_pem_from_listing(&card, id, &dir)
        } else {
            THEIRS.public_pem(&card, id, &dir)
        };
        sign(id, "ECDSA", &hash, OPENSSL_FORMAT);
        openssl_ok(&pkeyutl_verify(&pem, &[], &hash, &sig));
        sign(id, "ECDSA-SHA256", &data, OPENSSL_FORMAT);
        openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
        // A signature over other data does not verify: the check can fail.
        openssl_fails(&dgst_verify("-sha256", &[], &pem, &sig, &other));
    }

    // RSA: PKCS#1 v1.5 over a DigestInfo, SHA256-RSA-PKCS, PSS.
    let pem = THEIRS.public_pem(&card, "04", &dir);
    let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
    di.extend_from_slice(&digest);
    let di_path = dir.join("di.bin");
    fs::write(&di_path, &di).unwrap();
    sign("04", "RSA-PKCS", &di_path, &[]);
    openssl_ok(&pkeyutl_verify(&pem, &[], &di_path, &sig));
    sign("04", "SHA256-RSA-PKCS", &data, &[]);
    openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
    sign("04", "SHA256-RSA-PKCS-PSS", &data, &[]);
    let pss = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
    ];
    openssl_ok(&dgst_verify("-sha256", &pss, &pem, &sig, &data));

    // RSA decryption of an openssl ciphertext.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"secret message").unwrap();
    let (ct, pt) = (dir.join("ct.bin"), dir.join("pt.bin"));
    openssl_encrypt(&pem, &[], &msg, &ct);
    THEIRS
        .login()
        .run(&card, op("--decrypt", "RSA-PKCS", "04", &ct, &pt, &[]));
    assert_eq!(fs::read(&pt).unwrap(), b"secret message");

    // ECDH with a peer key made by openssl.
    let (peer, peer_pub) = openssl_p256_peer(&dir);
    let z_card = dir.join("z_card.bin");
    let derive = op("--derive", "ECDH1-DERIVE", "01", &peer_pub, &z_card, &[]);
    THEIRS.login().run(&card, derive);
    let card_pem = THEIRS.public_pem(&card, "01", &dir);
    assert_eq!(
        fs::read(&z_card).unwrap(),
        openssl_derive(&peer, &card_pem),
        "ECDH secrets agree"
    );

    // A certificate and a data object: write, read back, delete.
    let cert = self_signed_cert(&dir, "cert", "/CN=picohsm test");
    let attributes = ["--id", "20", "--label", "testcert"];
    THEIRS
        .login()
        .run(&card, write_object(&cert, "cert", &attributes));
    let back = dir.join("cert_back.der");
    THEIRS.run(&card, read_object("cert", ["--id", "20"], &back));
    assert_eq!(fs::read(&back).unwrap(), fs::read(&cert).unwrap());
    THEIRS
        .login()
        .run(&card, delete_object("cert", ["--id", "20"]));
    let objects = THEIRS.run(&card, ["--list-objects", "--type", "cert"]);
    assert!(!objects.contains("testcert"), "{objects}");

    let blob = dir.join("blob.bin");
    fs::write(&blob, b"some application data").unwrap();
    THEIRS
        .login()
        .run(&card, write_object(&blob, "data", &["--label", "mydata"]));
    let back = dir.join("blob_back.bin");
    THEIRS
        .login()
        .run(&card, read_object("data", ["--label", "mydata"], &back));
    assert_eq!(fs::read(&back).unwrap(), b"some application data");
    THEIRS
        .login()
        .run(&card, delete_object("data", ["--label", "mydata"]));
    let objects = THEIRS
        .login()
        .run(&card, ["--list-objects", "--type", "data"]);
    assert!(!objects.contains("mydata"), "{objects}");
}

#[test]
fn pkcs11_tool_test_login_passes() {
    let out = self_test(Module::OpenSc);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No errors"), "{}", text(&out));
}

#[test]
fn state_survives_a_restart_of_the_card() {
    let mut card = VCard::start();
    let dir = card.dir().to_path_buf();
    // sc-hsm-tool writes the label into EF.TokenInfo (2F03) after INITIALIZE.
    initialize(&card, &["--label", "kept label"]);
    THEIRS
        .login()
        .run(&card, keypairgen("EC:prime256v1", "07", "kept"));
    let blob = dir.join("blob.bin");
    fs::write(&blob, b"kept data").unwrap();
    THEIRS
        .login()
        .run(&card, write_object(&blob, "data", &["--label", "keptdata"]));
    // One wrong PIN: the counter must survive too.
    let out = THEIRS
        .login_with("000000")
        .run_allow_fail(&card, ["--list-objects"]);
    assert!(text(&out).contains("CKR_PIN_INCORRECT"), "{}", text(&out));
    let pem_before = THEIRS.public_pem(&card, "07", &dir);

    card.restart();

    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 2"), "{info}");
    let slots = THEIRS.run(&card, ["--list-token-slots"]);
    assert!(slots.contains("token label        : kept label"), "{slots}");
    let back = dir.join("back.bin");
    THEIRS
        .login()
        .run(&card, read_object("data", ["--label", "keptdata"], &back));
    assert_eq!(fs::read(&back).unwrap(), b"kept data");
    let pem_after = THEIRS.public_pem(&card, "07", &dir);
    assert_eq!(
        fs::read(&pem_before).unwrap(),
        fs::read(&pem_after).unwrap()
    );
    signs_with_ecdsa_sha256(&card, "07", &pem_after, b"after restart");
    // The successful login reset the counter.
    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 3"), "{info}");
}

/// Key `id` of `card` signs `message` with ECDSA-SHA256 through OpenSC's
/// module, and openssl verifies the signature with `pem`.
fn signs_with_ecdsa_sha256(card: &VCard, id: &str, pem: &Path, message: &[u8]) {
    let dir = card.dir();
    let (data, sig) = (dir.join("d.txt"), dir.join("sig.bin"));
    fs::write(&data, message).unwrap();
    let sign = op("--sign", "ECDSA-SHA256", id, &data, &sig, OPENSSL_FORMAT);
    THEIRS.login().run(card, sign);
    openssl_ok(&dgst_verify("-sha256", &[], pem, &sig, &data));
}

#[test]
fn three_wrong_pins_lock_and_the_so_pin_unblocks() {
    let card = VCard::start();
    initialize(&card, &[]);
    card.clear_apdu_log();
    for expect in ["CKR_PIN_INCORRECT", "CKR_PIN_INCORRECT", "CKR_PIN_LOCKED"] {
        let out = THEIRS
            .login_with("111111")
            .run_allow_fail(&card, ["--list-objects"]);
        assert!(!out.status.success());
        // The last wrong try is reported as "locked" by OpenSC (6983).
        let t = text(&out);
        assert!(
            t.contains(expect) || (expect == "CKR_PIN_LOCKED" && t.contains("CKR_PIN_INCORRECT")),
            "{t}"
        );
    }
    let log = card.apdu_log().join("\n");
    for sw in ["< 63 C2", "< 63 C1", "< 69 83"] {
        assert!(log.contains(sw), "{sw} missing in\n{log}");
    }
    let out = THEIRS.login().run_allow_fail(&card, ["--list-objects"]);
    assert!(text(&out).contains("CKR_PIN_LOCKED"), "{}", text(&out));
    THEIRS.run(&card, so_init_pin("112233"));
    let out = THEIRS.login_with("112233").run(&card, ["--list-objects"]);
    assert!(!out.contains("CKR_"), "{out}");
    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 3"), "{info}");
}

/// Sends APDUs in one session with `opensc-tool -s`.
fn send_apdus(card: &VCard, apdus: &[String]) -> String {
    let mut args = Vec::new();
    for a in apdus {
        args.push("-s".to_string());
        args.push(a.clone());
    }
    text(&opensc_tool(card, args))
}

const SELECT: &str = "00A404000BE82B0601040181C31F020100";

/// The file sc-hsm-tool --wrap-key writes: `30 { 04 blob }` (no PrKD, no cert).
fn wrap_file(blob: &[u8]) -> Vec<u8> {
    let inner = picohsm_wire::tlv::encode(0x04, blob);
    let mut v = vec![0x30];
    picohsm_wire::tlv::push_len(&mut v, inner.len());
    v.extend_from_slice(&inner);
    v
}

/// sc-hsm-tool's arguments to move key `key_ref` through `file`
/// (`--wrap-key`, `--unwrap-key`) with the test PIN.
fn key_file<'a>(flag: &'a str, file: &'a str, key_ref: &'a str) -> [&'a str; 6] {
    [flag, file, "--key-reference", key_ref, "--pin", PIN]
}

#[test]
fn dkek_wrapped_key_moves_between_cards_and_never_sits_in_clear() {
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    let dir = a.dir().to_path_buf();
    let share_file = s(&dir.join("share.pbe"));
    let share = |flag| [flag, share_file.as_str(), "--password", "correct horse"];
    sc_hsm_tool(a, share("--create-dkek-share"));
    for c in [a, b] {
        initialize(c, &["-s", "1"]);
        let out = text(&sc_hsm_tool(c, share("--import-dkek-share")));
        assert!(
            out.contains("DKEK shares          : 1") || out.contains("DKEK key check value"),
            "{out}"
        );
    }
    THEIRS
        .login()
        .run(a, keypairgen("EC:prime256v1", "01", "travels"));
    let pem = THEIRS.public_pem(a, "01", &dir);
    let wrapped = s(&dir.join("wrapped.bin"));
    sc_hsm_tool(a, key_file("--wrap-key", &wrapped, "1"));
    sc_hsm_tool(b, key_file("--unwrap-key", &wrapped, "5"));
    let objects = THEIRS
        .login()
        .run(b, ["--list-objects", "--type", "privkey"]);
    assert!(objects.contains("travels"), "PrKD restored: {objects}");
    signs_with_ecdsa_sha256(b, "01", &pem, b"signed on the second card");

    // A key whose value the test knows, wrapped by the test under a DKEK it
    // knows, unwrapped through sc-hsm-tool on a third card: it must work,
    // and its scalar must not appear in the flash image.
    drop(cards);
    let c = VCard::start();
    let dir = c.dir().to_path_buf();
    initialize(&c, &["-s", "1"]);
    let share = [0x6Bu8; 32];
    let out = send_apdus(
        &c,
        &[SELECT.into(), format!("8052000020{}00", hex::encode(share))],
    );
    assert!(out.contains("90 00") || out.contains("SW1=0x90"), "{out}");
    let d: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let key = PrivateKey::Ec {
        curve: Curve::P256,
        d: zeroize::Zeroizing::new(d.clone()),
    };
    let blob = dkek::wrap(&share, &key, &[], &mut Os).unwrap();
    let wf = dir.join("known.bin");
    fs::write(&wf, wrap_file(&blob)).unwrap();
    sc_hsm_tool(&c, key_file("--unwrap-key", &s(&wf), "3"));
    let card_pem = THEIRS.public_pem(&c, "03", &dir);
    let q = ec::public_key(Curve::P256, &d).unwrap();
    let der = fs::read(dir.join("pub03.der")).unwrap();
    assert!(der.ends_with(&q), "the card holds the test's key");
    signs_with_ecdsa_sha256(&c, "03", &card_pem, b"known key");
    let image = fs::read(c.flash_path()).unwrap();
    assert!(image.len() > 1000);
    for window in [&d[..], &d[..16], &d[16..], &share[..]] {
        assert!(
            !image.windows(window.len()).any(|w| w == window),
            "secret bytes found in the flash image"
        );
    }
}

struct Os;
impl picohsm_firmware::CardRng for Os {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).unwrap();
    }
}
