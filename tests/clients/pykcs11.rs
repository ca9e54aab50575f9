//! PyKCS11 (Debian's python3-pykcs11) with the module's vendor user type:
//! a Python script (tests/clients/pykcs11_pka_login.py) logs in with
//! C_Login(CKU_PICOHSM_PKA, authenticator PIN), reads the progress from
//! the token's CKO_PICOHSM_PKA_STATUS object after each round, finishes
//! with C_Login(CKU_USER) when the module asks for the token's PIN, then
//! makes a key and signs; openssl checks the signature.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pka::*;
use common::tools::dgst_verify;
use common::*;
use picohsm_wire::curve::Curve;

/// The Python of Debian's python3-pykcs11 package (not a pyenv shim).
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pykcs11_pka_login.py")
}

/// Settings naming the authenticators' readers, in `primary`'s directory.
fn settings(primary: &VCard, authenticators: &[&VCard]) -> PathBuf {
    let mut toml = String::new();
    for b in authenticators {
        toml.push_str(&format!(
            "[[authenticator]]\ntype = \"smartcard-hsm\"\nreader = \"{}\"\n",
            b.reader_name()
        ));
    }
    let path = primary.dir().join("pykcs11.toml");
    write_settings(&path, &toml);
    path
}

/// Runs the script on `primary` and returns its step lines; checks the
/// signature it made with openssl.
fn login_and_sign(primary: &VCard, config: &Path, auth_pin: &str, token_pin: &str) -> Vec<String> {
    let out = run_cmd_allow_fail(
        Command::new(PYTHON)
            .arg(script())
            .arg(module_path())
            .arg(primary.reader_name())
            .args([auth_pin, token_pin, "21"])
            .env("PICOHSM_PKCS11_CONFIG", config),
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let field = |name: &str| {
        let l = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"));
        hex::decode(l).unwrap()
    };
    let dir = primary.dir();
    let pem = common::tools::ec_pem(&field("ec_params"), &field("ec_point"), dir, "pykcs11");
    let data = dir.join("pykcs11.data");
    fs::write(&data, field("data")).unwrap();
    let sig = dir.join("pykcs11.sig");
    fs::write(&sig, picohsm_crypto::ec::raw_to_der(&field("signature"))).unwrap();
    openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
    lines
        .into_iter()
        .filter(|l| l.starts_with("before") || l.starts_with("pka") || l.starts_with("user"))
        .collect()
}

/// A user's PyKCS11 script on a PKA-only token (1-of-1, no user PIN):
/// one C_Login(CKU_PICOHSM_PKA) with the authenticator's PIN returns
/// CKR_OK, the status object shows 1 of 1 authenticated, and the key made
/// signs.
#[test]
fn pykcs11_vendor_login_one_of_one() {
    let _s = serial();
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    init_authenticator(b, PIN);
    let (file, _) = firmware_key(b, 1, Curve::P256);
    let mut c = init_pka_only(a, 1, 1);
    assert_eq!(c.register(&file).1, 0x9000);
    drop(c);
    let steps = login_and_sign(a, &settings(a, &[b]), PIN, "-");
    assert_eq!(steps, ["before 1 1 0", "pka CKR_OK 1 1 1"]);
}

/// A user's PyKCS11 script on a 2-of-3 token with a user PIN: the first
/// C_Login(CKU_PICOHSM_PKA) returns CKR_PICOHSM_PKA_MORE_NEEDED with 1 of
/// 2 authenticated, the second CKR_PICOHSM_PIN_NEEDED with 2 of 2, then
/// C_Login(CKU_USER, token PIN) logs in and the key made signs.
#[test]
fn pykcs11_vendor_login_two_of_three_reports_progress() {
    let _s = serial();
    let cards = VCard::start_many(3);
    let (a, b, c) = (&cards[0], &cards[1], &cards[2]);
    init_authenticator(b, PIN);
    init_authenticator(c, PIN);
    init_pka(a, 3, 2);
    let (k1, _) = firmware_key(b, 1, Curve::P256);
    let (k2, _) = firmware_key(c, 1, Curve::BrainpoolP256r1);
    let (k3, _) = firmware_key(c, 2, Curve::P256);
    register_all_by(a, &[(b, 1, k1), (c, 1, k2), (c, 2, k3)]);
    let steps = login_and_sign(a, &settings(a, &[b, c]), PIN, PIN);
    assert_eq!(
        steps,
        [
            "before 3 2 0",
            "pka CKR_PICOHSM_PKA_MORE_NEEDED 3 2 1",
            "pka CKR_PICOHSM_PIN_NEEDED 3 2 2",
            "user CKR_OK",
        ]
    );
}
