//! The virtual card through the real stack: pcscd + vpcd + `picohsm-vcard`,
//! driven by OpenSC's own tools (opensc-tool, sc-hsm-tool, pkcs11-tool with
//! opensc-pkcs11.so), with every signature checked by `openssl`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use picohsm_crypto::{ec, hash::HashAlg};
use picohsm_firmware::dkek;
use picohsm_firmware::keys::PrivateKey;
use picohsm_wire::curve::Curve;

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";

/// `sc-hsm-tool --initialize` as the issue (and the Pico documentation) gives it.
fn initialize(card: &VCard, extra: &[&str]) {
    let mut args = vec!["--initialize", "--so-pin", SO_PIN, "--pin", PIN];
    args.extend_from_slice(extra);
    sc_hsm_tool(card, args);
}

fn p11(card: &VCard, args: &[&str]) -> String {
    text(&pkcs11_tool(card, args))
}

fn p11_login(card: &VCard, args: &[&str]) -> String {
    let mut a = vec!["--login", "--pin", PIN];
    a.extend_from_slice(args);
    p11(card, &a)
}

/// Converts a DER SubjectPublicKeyInfo into PEM with openssl.
fn der_to_pem(der: &Path, pem: &Path) {
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
            &s(pem),
        ],
    );
}

/// Exports the public key of `id` as PEM (via DER from pkcs11-tool).
fn public_pem(card: &VCard, id: &str, dir: &Path) -> PathBuf {
    public_pem_with(pkcs11_tool_command(card), id, dir)
}

/// Exports an EC public key from its CKA_EC_PARAMS and CKA_EC_POINT as
/// pkcs11-tool lists them. pkcs11-tool 0.23's `--read-object --type pubkey`
/// fails on every secp384r1 key ("cannot create EVP_PKEY", SoftHSM's too),
/// so P-384 keys are exported this way.
fn ec_public_pem_from_listing(card: &VCard, id: &str, dir: &Path) -> PathBuf {
    let listing = p11(card, &["--list-objects", "--type", "pubkey"]);
    let block = listing
        .split("Public Key Object")
        .find(|b| b.lines().any(|l| l.trim() == format!("ID:         {id}")))
        .unwrap_or_else(|| panic!("public key {id} in {listing}"));
    let field = |name: &str| -> Vec<u8> {
        let line = block
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {block}"));
        hex::decode(line.split(':').nth(1).unwrap().trim()).unwrap()
    };
    let (point_os, params) = (field("EC_POINT:"), field("EC_PARAMS:"));
    let (point, rest) = picohsm_wire::tlv::parse_one(&point_os).unwrap();
    assert!(rest.is_empty() && point.tag == 0x04);
    let mut alg = picohsm_wire::tlv::encode(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]);
    alg.extend_from_slice(&params);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point.value);
    let mut spki = picohsm_wire::tlv::encode(0x30, &alg);
    spki.extend_from_slice(&picohsm_wire::tlv::encode(0x03, &bits));
    let der = dir.join(format!("pub{id}.der"));
    let pem = dir.join(format!("pub{id}.pem"));
    fs::write(&der, picohsm_wire::tlv::encode(0x30, &spki)).unwrap();
    der_to_pem(&der, &pem);
    pem
}

fn sign(card: &VCard, id: &str, mech: &str, input: &Path, out: &Path, openssl_format: bool) {
    let mut a = vec![
        "--sign",
        "--mechanism",
        mech,
        "--id",
        id,
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    if openssl_format {
        a.extend_from_slice(&["--signature-format", "openssl"]);
    }
    p11_login(card, &a);
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

    for (id, kt) in [
        ("01", "EC:prime256v1"),
        ("02", "EC:brainpoolP256r1"),
        ("03", "EC:secp384r1"),
        ("04", "rsa:2048"),
    ] {
        let out = p11_login(
            &card,
            &[
                "--keypairgen",
                "--key-type",
                kt,
                "--id",
                id,
                "--label",
                &format!("key{id}"),
            ],
        );
        assert!(out.contains("Key pair generated"), "{kt}: {out}");
    }
    let objects = p11_login(&card, &["--list-objects"]);
    for id in ["01", "02", "03", "04"] {
        assert!(objects.contains(&format!("ID:         {id}")), "{objects}");
    }

    let data = dir.join("data.txt");
    fs::write(&data, b"the quick brown fox").unwrap();
    let digest = HashAlg::Sha256.digest(b"the quick brown fox");
    let hash = dir.join("hash.bin");
    fs::write(&hash, &digest).unwrap();
    let sig = dir.join("sig.bin");

    // ECDSA on every EC key, and ECDSA-SHA256.
    for id in ["01", "02", "03"] {
        let pem = if id == "03" {
            ec_public_pem_from_listing(&card, id, &dir)
        } else {
            public_pem(&card, id, &dir)
        };
        sign(&card, id, "ECDSA", &hash, &sig, true);
        openssl_ok(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            &s(&pem),
            "-in",
            &s(&hash),
            "-sigfile",
            &s(&sig),
        ]);
        sign(&card, id, "ECDSA-SHA256", &data, &sig, true);
        openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&pem),
            "-signature",
            &s(&sig),
            &s(&data),
        ]);
        // A signature over other data does not verify: the check can fail.
        fs::write(dir.join("other.txt"), b"other").unwrap();
        openssl_fails(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&pem),
            "-signature",
            &s(&sig),
            &s(&dir.join("other.txt")),
        ]);
    }

    // RSA: PKCS#1 v1.5 over a DigestInfo, SHA256-RSA-PKCS, PSS.
    let pem = public_pem(&card, "04", &dir);
    let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
    di.extend_from_slice(&digest);
    let di_path = dir.join("di.bin");
    fs::write(&di_path, &di).unwrap();
    sign(&card, "04", "RSA-PKCS", &di_path, &sig, false);
    openssl_ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &s(&pem),
        "-in",
        &s(&di_path),
        "-sigfile",
        &s(&sig),
    ]);
    sign(&card, "04", "SHA256-RSA-PKCS", &data, &sig, false);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&pem),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);
    p11_login(
        &card,
        &[
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS-PSS",
            "--id",
            "04",
            "-i",
            &s(&data),
            "-o",
            &s(&sig),
        ],
    );
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
        "-verify",
        &s(&pem),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);

    // RSA decryption of an openssl ciphertext.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"secret message").unwrap();
    let ct = dir.join("ct.bin");
    let pt = dir.join("pt.bin");
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
    p11_login(
        &card,
        &[
            "--decrypt",
            "--mechanism",
            "RSA-PKCS",
            "--id",
            "04",
            "-i",
            &s(&ct),
            "-o",
            &s(&pt),
        ],
    );
    assert_eq!(fs::read(&pt).unwrap(), b"secret message");

    // ECDH with a peer key made by openssl.
    let (peer, peer_pub) = openssl_p256_peer(&dir);
    let z_card = dir.join("z_card.bin");
    p11_login(
        &card,
        &[
            "--derive",
            "--mechanism",
            "ECDH1-DERIVE",
            "--id",
            "01",
            "-i",
            &s(&peer_pub),
            "-o",
            &s(&z_card),
        ],
    );
    let card_pem = public_pem(&card, "01", &dir);
    assert_eq!(
        fs::read(&z_card).unwrap(),
        openssl_derive(&peer, &card_pem),
        "ECDH secrets agree"
    );

    // A certificate and a data object: write, read back, delete.
    let cert = dir.join("cert.der");
    let cert_key = dir.join("cert_key.pem");
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
            "/CN=picohsm test",
            "-days",
            "30",
            "-keyout",
            &s(&cert_key),
            "-outform",
            "DER",
            "-out",
            &s(&cert),
        ],
    );
    p11_login(
        &card,
        &[
            "--write-object",
            &s(&cert),
            "--type",
            "cert",
            "--id",
            "20",
            "--label",
            "testcert",
        ],
    );
    let back = dir.join("cert_back.der");
    p11(
        &card,
        &[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "20",
            "-o",
            &s(&back),
        ],
    );
    assert_eq!(fs::read(&back).unwrap(), fs::read(&cert).unwrap());
    p11_login(&card, &["--delete-object", "--type", "cert", "--id", "20"]);
    let objects = p11(&card, &["--list-objects", "--type", "cert"]);
    assert!(!objects.contains("testcert"), "{objects}");

    let blob = dir.join("blob.bin");
    fs::write(&blob, b"some application data").unwrap();
    p11_login(
        &card,
        &[
            "--write-object",
            &s(&blob),
            "--type",
            "data",
            "--label",
            "mydata",
        ],
    );
    let back = dir.join("blob_back.bin");
    p11_login(
        &card,
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            "mydata",
            "-o",
            &s(&back),
        ],
    );
    assert_eq!(fs::read(&back).unwrap(), b"some application data");
    p11_login(
        &card,
        &["--delete-object", "--type", "data", "--label", "mydata"],
    );
    let objects = p11_login(&card, &["--list-objects", "--type", "data"]);
    assert!(!objects.contains("mydata"), "{objects}");
}

#[test]
fn pkcs11_tool_test_login_passes() {
    let card = VCard::start();
    initialize(&card, &[]);
    p11_login(
        &card,
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "ec",
        ],
    );
    p11_login(
        &card,
        &[
            "--keypairgen",
            "--key-type",
            "rsa:1024",
            "--id",
            "02",
            "--label",
            "rsa",
        ],
    );
    let out = text(&pkcs11_tool(&card, ["--test", "--login", "--pin", PIN]));
    assert!(out.contains("No errors"), "{out}");
}

#[test]
fn state_survives_a_restart_of_the_card() {
    let mut card = VCard::start();
    let dir = card.dir().to_path_buf();
    // sc-hsm-tool writes the label into EF.TokenInfo (2F03) after INITIALIZE.
    initialize(&card, &["--label", "kept label"]);
    p11_login(
        &card,
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "07",
            "--label",
            "kept",
        ],
    );
    let blob = dir.join("blob.bin");
    fs::write(&blob, b"kept data").unwrap();
    p11_login(
        &card,
        &[
            "--write-object",
            &s(&blob),
            "--type",
            "data",
            "--label",
            "keptdata",
        ],
    );
    // One wrong PIN: the counter must survive too.
    let out = run_cmd_allow_fail(pkcs11_tool_command(&card).args([
        "--login",
        "--pin",
        "000000",
        "--list-objects",
    ]));
    assert!(text(&out).contains("CKR_PIN_INCORRECT"), "{}", text(&out));
    let pem_before = public_pem(&card, "07", &dir);

    card.restart();

    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 2"), "{info}");
    let slots = p11(&card, &["--list-token-slots"]);
    assert!(slots.contains("token label        : kept label"), "{slots}");
    let back = dir.join("back.bin");
    p11_login(
        &card,
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            "keptdata",
            "-o",
            &s(&back),
        ],
    );
    assert_eq!(fs::read(&back).unwrap(), b"kept data");
    let pem_after = public_pem(&card, "07", &dir);
    assert_eq!(
        fs::read(&pem_before).unwrap(),
        fs::read(&pem_after).unwrap()
    );
    let data = dir.join("d.txt");
    fs::write(&data, b"after restart").unwrap();
    let sig = dir.join("sig.bin");
    sign(&card, "07", "ECDSA-SHA256", &data, &sig, true);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&pem_after),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);
    // The successful login reset the counter.
    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 3"), "{info}");
}

#[test]
fn three_wrong_pins_lock_and_the_so_pin_unblocks() {
    let card = VCard::start();
    initialize(&card, &[]);
    card.clear_apdu_log();
    for expect in ["CKR_PIN_INCORRECT", "CKR_PIN_INCORRECT", "CKR_PIN_LOCKED"] {
        let out = run_cmd_allow_fail(pkcs11_tool_command(&card).args([
            "--login",
            "--pin",
            "111111",
            "--list-objects",
        ]));
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
    let out = run_cmd_allow_fail(pkcs11_tool_command(&card).args([
        "--login",
        "--pin",
        PIN,
        "--list-objects",
    ]));
    assert!(text(&out).contains("CKR_PIN_LOCKED"), "{}", text(&out));
    p11(
        &card,
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--new-pin",
            "112233",
        ],
    );
    let out = p11(&card, &["--login", "--pin", "112233", "--list-objects"]);
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

#[test]
fn dkek_wrapped_key_moves_between_cards_and_never_sits_in_clear() {
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    let dir = a.dir().to_path_buf();
    let share_file = dir.join("share.pbe");
    sc_hsm_tool(
        a,
        [
            "--create-dkek-share",
            &s(&share_file),
            "--password",
            "correct horse",
        ],
    );
    for c in [a, b] {
        initialize(c, &["-s", "1"]);
        let out = text(&sc_hsm_tool(
            c,
            [
                "--import-dkek-share",
                &s(&share_file),
                "--password",
                "correct horse",
            ],
        ));
        assert!(
            out.contains("DKEK shares          : 1") || out.contains("DKEK key check value"),
            "{out}"
        );
    }
    p11_login(
        a,
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "travels",
        ],
    );
    let pem = public_pem(a, "01", &dir);
    let wrapped = dir.join("wrapped.bin");
    sc_hsm_tool(
        a,
        [
            "--wrap-key",
            &s(&wrapped),
            "--key-reference",
            "1",
            "--pin",
            PIN,
        ],
    );
    sc_hsm_tool(
        b,
        [
            "--unwrap-key",
            &s(&wrapped),
            "--key-reference",
            "5",
            "--pin",
            PIN,
        ],
    );
    let objects = p11_login(b, &["--list-objects", "--type", "privkey"]);
    assert!(objects.contains("travels"), "PrKD restored: {objects}");
    let data = dir.join("d.txt");
    fs::write(&data, b"signed on the second card").unwrap();
    let sig = dir.join("sig.bin");
    sign(b, "01", "ECDSA-SHA256", &data, &sig, true);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&pem),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);

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
    sc_hsm_tool(
        &c,
        [
            "--unwrap-key",
            &s(&wf),
            "--key-reference",
            "3",
            "--pin",
            PIN,
        ],
    );
    let card_pem = public_pem(&c, "03", &dir);
    let q = ec::public_key(Curve::P256, &d).unwrap();
    let der = fs::read(dir.join("pub03.der")).unwrap();
    assert!(der.ends_with(&q), "the card holds the test's key");
    let data = dir.join("k.txt");
    fs::write(&data, b"known key").unwrap();
    let sig = dir.join("sig.bin");
    sign(&c, "03", "ECDSA-SHA256", &data, &sig, true);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &s(&card_pem),
        "-signature",
        &s(&sig),
        &s(&data),
    ]);
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
