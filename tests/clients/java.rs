//! Java with libpicohsm_pkcs11.so through SunPKCS11, as its users run it:
//! a provider configuration file (`name`, `library`, `slot`), `keytool
//! -list -storetype PKCS11` and `jarsigner` with `-keystore NONE`. The
//! token is a PKA token (1-of-1, no user PIN, settings `login = "pka"`):
//! the keystore password Java passes to C_Login(CKU_USER) is the
//! authenticator's PIN, and the module runs the PKA rounds on the
//! authenticator card.
//!
//! The JDK is `$JAVA_HOME`, else Debian's OpenJDK 17.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pka_token::PkaToken;
use common::pki::TestCa;
use common::tools::write_object;
use common::*;

/// The key's CKA_ID and label, and its certificate's subject CN.
const ID: &str = "10";
const LABEL: &str = "jarsigner";
const SUBJECT_CN: &str = "picohsm-pkcs11 jar signer";

/// A program of the JDK.
fn jdk(program: &str) -> PathBuf {
    let home = std::env::var_os("JAVA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/jvm/java-17-openjdk-amd64".into());
    let path = home.join("bin").join(program);
    assert!(path.is_file(), "{} missing (openjdk-17)", path.display());
    path
}

/// The token's slot id as C_GetSlotList gives it for `card`'s reader
/// (`Slot N (0x…): <reader>` in `pkcs11-tool --list-slots`).
fn slot_id(card: &VCard) -> u64 {
    let out = text(&run_cmd(
        Command::new("pkcs11-tool")
            .env("PICOHSM_PKCS11_CONFIG", harness_settings())
            .arg("--module")
            .arg(module_path())
            .arg("--list-slots"),
    ));
    out.lines()
        .filter(|l| l.starts_with("Slot ") && l.ends_with(card.reader_name()))
        .find_map(|l| {
            let hex = l.split("(0x").nth(1)?.split(')').next()?;
            u64::from_str_radix(hex, 16).ok()
        })
        .unwrap_or_else(|| panic!("no slot for {:?} in:\n{out}", card.reader_name()))
}

/// The PKA token with an EC P-256 key made on it through the module and
/// a certificate for that key (issued by a CA of the test's own) written
/// beside it with the same CKA_ID: returns the token and the
/// certificate's DER file.
fn token_with_key_and_certificate(dir: &Path) -> (PkaToken, PathBuf) {
    let token = PkaToken::start();
    token.keypairgen("EC:prime256v1", ID, LABEL);
    let public = token.opensc_public_pem(ID, dir);
    let cert = TestCa::new(dir, "picohsm-pkcs11 test CA").issue(&public, SUBJECT_CN, "codeSigning");
    run_cmd(
        token
            .pkcs11_tool()
            .args(write_object(&cert, "cert", &["--id", ID, "--label", LABEL])),
    );
    (token, cert)
}

/// The SunPKCS11 configuration a user writes for the token in `card`'s
/// reader, in `dir`.
fn provider_config(card: &VCard, dir: &Path) -> PathBuf {
    let path = dir.join("picohsm.cfg");
    fs::write(
        &path,
        format!(
            "name = picohsm\nlibrary = {}\nslot = {}\n",
            s(&module_path()),
            slot_id(card)
        ),
    )
    .unwrap();
    path
}

/// `program` (keytool, jarsigner) with the PKCS#11 keystore of `config`:
/// `-J-Duser.home=<dir> -keystore NONE -storetype PKCS11 -providerName
/// SunPKCS11-picohsm -addprovider SunPKCS11 -providerArg <config>`, HOME
/// in `dir` and the module's settings, ready for more arguments.
/// `-providerName` makes keytool generate keys with the token's provider:
/// without it `-genkeypair -keyalg RSA` makes the key in software
/// (SunRsaSign comes first) and storing it fails, as the module imports
/// no private key (CKR_TEMPLATE_INCONSISTENT).
fn with_token(program: &str, token: &PkaToken, config: &Path, dir: &Path) -> Command {
    let mut c = Command::new(jdk(program));
    c.env("HOME", dir)
        .env("PICOHSM_PKCS11_CONFIG", &token.settings)
        .env(
            "PICOHSM_PKCS11_LOG",
            format!("info,{}", s(&dir.join("module.log"))),
        )
        .arg(format!("-J-Duser.home={}", s(dir)))
        .args(["-keystore", "NONE", "-storetype", "PKCS11"])
        .args(["-providerName", "SunPKCS11-picohsm"])
        .args(["-addprovider", "SunPKCS11", "-providerArg"])
        .arg(config);
    c
}

/// The module's log of the Java runs in `dir`.
fn module_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("module.log")).unwrap_or_default()
}

/// Panics with the output and the module's log unless `out` succeeded.
fn assert_ok(what: &str, out: &Output, dir: &Path) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nmodule:\n{}",
        text(out),
        module_log(dir)
    );
    text(out)
}

/// The SHA-256 fingerprint of the DER certificate `cert` as keytool
/// prints it (`AB:CD:…`).
fn sha256_fingerprint(cert: &Path) -> String {
    let out = run(
        "openssl",
        [
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &s(cert),
        ],
    );
    stdout(&out)
        .trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .to_string()
}

/// `hello.jar` in `dir`, made by `jar cf` from one text file.
fn make_jar(dir: &Path) -> PathBuf {
    fs::write(dir.join("hello.txt"), "signed by a Pico HSM\n").unwrap();
    let jar = dir.join("hello.jar");
    run_cmd(
        Command::new(jdk("jar"))
            .current_dir(dir)
            .args(["cf", &s(&jar), "hello.txt"]),
    );
    jar
}

/// jarsigner's arguments to sign `jar` into `signed` with the key `alias`,
/// keystore password `pin`.
fn sign_args(pin: &str, jar: &Path, signed: &Path, alias: &str) -> Vec<String> {
    ["-storepass", pin, "-signedjar", &s(signed), &s(jar), alias]
        .map(String::from)
        .to_vec()
}

/// `jarsigner -verify -certs -verbose signed` (no token needed): its
/// report, which must say the jar verified.
fn verify_jar(signed: &Path, dir: &Path) -> String {
    let out = run_cmd_allow_fail(Command::new(jdk("jarsigner")).args([
        "-verify",
        "-certs",
        "-verbose",
        &s(signed),
    ]));
    let report = assert_ok("jarsigner -verify", &out, dir);
    assert_contains(&report, &["jar verified."]);
    report
}

/// A user points SunPKCS11 at the module with a configuration file and
/// runs `keytool -list -storetype PKCS11` with the authenticator's PIN as
/// the keystore password: after the PKA login, the token's key is listed
/// as a PrivateKeyEntry under its label, with the certificate stored with
/// its CKA_ID (keytool's fingerprint is the certificate's); a key with no
/// certificate is not an entry.
#[test]
fn keytool_lists_the_token_key_and_its_certificate_after_a_pka_login() {
    let dir = tempfile::tempdir().unwrap();
    let (token, cert) = token_with_key_and_certificate(dir.path());
    // A key without a certificate: SunPKCS11 leaves it out.
    token.keypairgen("EC:prime256v1", "11", "no-certificate");
    let config = provider_config(token.primary(), dir.path());
    let out = run_cmd_allow_fail(with_token("keytool", &token, &config, dir.path()).args([
        "-list",
        "-storepass",
        PIN,
    ]));
    let listing = assert_ok("keytool -list", &out, dir.path());
    eprintln!("{listing}");
    let entry = listing
        .lines()
        .find(|l| l.contains("PrivateKeyEntry"))
        .unwrap_or_else(|| panic!("no key entry:\n{listing}"));
    assert!(entry.starts_with(LABEL), "{entry}");
    assert_contains(&listing, &["1 entry", &sha256_fingerprint(&cert)]);
    assert!(
        module_log(dir.path()).contains("granted"),
        "the module logged a PKA login:\n{}",
        module_log(dir.path())
    );
}

/// A user signs a jar with the token key (`jarsigner -keystore NONE
/// -storetype PKCS11 … jar alias`) and anyone verifies it with `jarsigner
/// -verify -certs`: "jar verified.", signed by the token key's
/// certificate. A wrong keystore password (authenticator PIN) signs
/// nothing.
#[test]
fn jarsigner_signs_a_jar_with_the_token_key_that_jarsigner_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (token, _) = token_with_key_and_certificate(d);
    let config = provider_config(token.primary(), d);
    let (jar, signed) = (make_jar(d), d.join("hello-signed.jar"));

    let wrong = run_cmd_allow_fail(
        with_token("jarsigner", &token, &config, d).args(sign_args("000000", &jar, &signed, LABEL)),
    );
    assert!(
        !wrong.status.success() && !signed.exists(),
        "signed with a wrong PIN: {}",
        text(&wrong)
    );

    let out = run_cmd_allow_fail(
        with_token("jarsigner", &token, &config, d).args(sign_args(PIN, &jar, &signed, LABEL)),
    );
    assert_contains(&assert_ok("jarsigner", &out, d), &["jar signed."]);
    let report = verify_jar(&signed, d);
    assert_contains(&report, &["jar verified.", "CN=picohsm-pkcs11 jar signer"]);
    // The unsigned jar is not accepted as signed: the check can fail.
    let out = run_cmd_allow_fail(Command::new(jdk("jarsigner")).args(["-verify", &s(&jar)]));
    assert!(
        text(&out).contains("jar is unsigned"),
        "unsigned jar: {}",
        text(&out)
    );
}

/// A user makes keys and their self-signed certificates with keytool
/// itself (`keytool -genkeypair` on the PKCS11 keystore, EC secp256r1 and
/// RSA 2048): the keys are made on the token, each certificate is stored
/// beside its key, `keytool -list` shows both PrivateKeyEntry aliases, and
/// jarsigner signs with the RSA one (SHA256withRSA on the token) a jar
/// that `jarsigner -verify` accepts.
#[test]
fn keytool_genkeypair_makes_keys_on_the_token_that_jarsigner_uses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = PkaToken::start();
    let config = provider_config(token.primary(), d);
    let keytool = |args: &[&str]| {
        let out = run_cmd_allow_fail(
            with_token("keytool", &token, &config, d)
                .args(args)
                .args(["-storepass", PIN]),
        );
        assert_ok(&format!("keytool {args:?}"), &out, d)
    };
    for (alias, algorithm) in [
        (
            "ec-by-keytool",
            ["-keyalg", "EC", "-groupname", "secp256r1"],
        ),
        ("rsa-by-keytool", ["-keyalg", "RSA", "-keysize", "2048"]),
    ] {
        keytool(
            &[
                &["-genkeypair", "-alias", alias, "-dname"],
                &[&*format!("CN={alias}")][..],
                &algorithm[..],
            ]
            .concat(),
        );
    }
    let listing = keytool(&["-list"]);
    eprintln!("{listing}");
    for alias in ["ec-by-keytool", "rsa-by-keytool"] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(alias) && l.contains("PrivateKeyEntry")),
            "{alias}: {listing}"
        );
    }
    let objects = text(&run_cmd(token.pkcs11_tool().arg("--list-objects")));
    assert_contains(
        &objects,
        &[
            "Private Key Object; EC",
            "Private Key Object; RSA",
            "Public Key Object; RSA 2048 bits",
        ],
    );

    let (jar, signed) = (make_jar(d), d.join("hello-signed.jar"));
    let alias = "rsa-by-keytool";
    let out = run_cmd_allow_fail(
        with_token("jarsigner", &token, &config, d).args(sign_args(PIN, &jar, &signed, alias)),
    );
    assert_contains(&assert_ok("jarsigner", &out, d), &["jar signed."]);
    let report = verify_jar(&signed, d);
    assert_contains(
        &report,
        &["jar verified.", "CN=rsa-by-keytool", "SHA256withRSA"],
    );
}
