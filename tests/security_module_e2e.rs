//! The module's side of the security review (issue 11), through pcscd and
//! picohsm-vcard: where a PIN may go in a PKA login, the primary's device
//! chain checked before its name is signed, the raw device name signed,
//! settings and environment in privileged processes, and logs without
//! secrets. Each `attack_*` runs the attack and checks that it fails.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pka::*;
use common::tools::{keypairgen, op, OPENSSL_FORMAT, OURS};
use common::*;
use picohsm_crypto::ec;
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, oid};
use sha2::{Digest, Sha256};

/// The authenticators' PIN, unlike the primary's (`PIN`), so a log can
/// tell which one a card received.
const AUTH_PIN: &str = "271828";

/// pkcs11-tool through this module with settings `config` (default: the
/// harness's) and the log at `level`, whatever its exit status.
fn ours(card: &VCard, config: Option<&Path>, level: &str, args: &[&str]) -> Output {
    let mut c = OURS.command(card);
    if let Some(p) = config {
        c.env("PICOHSM_PKCS11_CONFIG", p);
    }
    c.env("PICOHSM_PKCS11_LOG", level);
    run_cmd_allow_fail(c.args(args))
}

/// `bytes` as the APDU log would show them, spaces removed.
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A card's APDU log as one string of hex digits per line, spaces removed.
fn log_lines(card: &VCard) -> Vec<String> {
    card.apdu_log()
        .iter()
        .map(|l| l.replace(' ', "").to_uppercase())
        .collect()
}

/// Whether `card` received a command carrying `pin`'s bytes.
fn received(card: &VCard, pin: &str) -> bool {
    let h = hex_of(pin.as_bytes());
    log_lines(card)
        .iter()
        .any(|l| l.starts_with('>') && l.contains(&h))
}

/// Whether `card` was asked to SIGN (INS 68) anything.
fn signed_anything(card: &VCard) -> bool {
    log_lines(card)
        .iter()
        .any(|l| l.starts_with(">8068") || l.starts_with(">0068"))
}

/// A primary `[0]` with PKA 1-of-1 and the test PIN, a decoy `[1]` and the
/// real authenticator `[2]` (both with [`AUTH_PIN`]): the real one's key is
/// registered, the decoy holds a key of its own under the same CHR (CHRs
/// are public). The decoy is in an earlier reader, so it is tried first.
fn primary_decoy_and_authenticator() -> Vec<VCard> {
    let cards = VCard::start_many(3);
    let (a, decoy, real) = (&cards[0], &cards[1], &cards[2]);
    init_authenticator(decoy, AUTH_PIN);
    init_authenticator(real, AUTH_PIN);
    init_pka(a, 1, 1);
    let keygen = |c: &VCard, label: &str, extra: &[&str]| {
        let mut args = vec!["keygen", "--pin", AUTH_PIN, "--label", label];
        args.extend_from_slice(extra);
        let report = tool_ok(c, &args);
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix("CHR"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no CHR in:\n{report}"))
    };
    let chr = keygen(real, "Authentication", &[]);
    let (file, _) = tool_export(real, "Authentication", "real.pka");
    register_all(a, &[fs::read(&file).unwrap()]);
    assert_eq!(keygen(decoy, "Decoy", &["--chr", &chr]), chr);
    for c in &cards {
        c.clear_apdu_log();
    }
    cards
}

/// Attack: a rogue card in another reader claims the registered CHR (a
/// public name) to collect the PIN typed into C_Login on a PKA + PIN token
/// with no settings. Expected: it is tried with the authenticator part of
/// the secret only; the primary's PIN never reaches it, and the login
/// succeeds with the real authenticator.
#[test]
fn attack_rogue_card_never_receives_the_primary_pin() {
    let _s = serial();
    let cards = primary_decoy_and_authenticator();
    let (a, decoy, real) = (&cards[0], &cards[1], &cards[2]);
    let secret = format!("{PIN}:{AUTH_PIN}");
    let out = ours(
        a,
        None,
        "info",
        &["--login", "--pin", &secret, "--list-objects"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        received(decoy, AUTH_PIN),
        "the decoy was tried (with the authenticator's PIN)"
    );
    assert!(
        !received(decoy, PIN),
        "the decoy received the primary's PIN: {:#?}",
        decoy.apdu_log()
    );
    assert!(
        !received(real, PIN),
        "the authenticator received the primary's PIN"
    );
    assert!(received(a, PIN), "the primary got its own PIN");
}

/// Attack: the user types one secret (the token's PIN) on a PKA + PIN
/// token whose authenticators are found on their own, hoping the module
/// hands it to whichever card claims a registered name. Expected:
/// CKR_PICOHSM_SECRETS_NOT_SPLIT and a log line saying what to type,
/// before any card receives the PIN.
#[test]
fn attack_one_secret_with_auto_discovered_authenticators_is_refused_before_any_verify() {
    let _s = serial();
    let cards = primary_decoy_and_authenticator();
    let out = ours(
        &cards[0],
        None,
        "info",
        &["--login", "--pin", PIN, "--list-objects"],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("0x80504b0a"),
        "CKR_PICOHSM_SECRETS_NOT_SPLIT: {t}"
    );
    assert!(t.contains("<token PIN>:<authenticator PIN>"), "{t}");
    for c in &cards {
        assert!(
            !received(c, PIN),
            "{} received the PIN: {:#?}",
            c.reader_name(),
            c.apdu_log()
        );
    }
}

/// A primary (PKA 1-of-1, test PIN) `[0]` and its authenticator `[1]`
/// (test PIN), the authenticator's key registered.
fn primary_and_authenticator() -> Vec<VCard> {
    let cards = VCard::start_many(2);
    init_authenticator(&cards[1], PIN);
    init_pka(&cards[0], 1, 1);
    let (file, _) = firmware_key(&cards[1], 1, Curve::P256);
    register_all(&cards[0], &[file]);
    cards
}

/// A settings file (mode 0600) with exactly `toml` (no test chains).
fn strict_settings(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, toml).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Attack: a card whose device chain leads to no trusted root (here the
/// virtual card's test PKI, not allowed by the settings) asks to be logged
/// into, so that an authenticator signs a challenge for the name it
/// states. Expected: CKR_PICOHSM_DEVICE_UNTRUSTED with a log line naming
/// the card; the authenticator neither signs nor hears a PIN.
#[test]
fn attack_primary_with_an_untrusted_chain_gets_nothing_signed() {
    let _s = serial();
    let cards = primary_and_authenticator();
    let (a, b) = (&cards[0], &cards[1]);
    let config = strict_settings(a.dir(), "strict.toml", "login = \"auto\"\n");
    b.clear_apdu_log();
    let secret = format!("{PIN}:{PIN}");
    let out = ours(
        a,
        Some(&config),
        "info",
        &["--login", "--pin", &secret, "--list-objects"],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("0x80504b0b"),
        "CKR_PICOHSM_DEVICE_UNTRUSTED: {t}"
    );
    assert!(
        t.contains("is not trusted") && t.contains(a.reader_name()),
        "the log names the card: {t}"
    );
    assert!(!signed_anything(b), "{:#?}", b.apdu_log());
    assert!(!received(b, PIN), "{:#?}", b.apdu_log());

    // The same card, the chain allowed by the settings: the login works.
    let ok = ours(
        a,
        None,
        "info",
        &["--login", "--pin", &secret, "--list-objects"],
    );
    assert!(ok.status.success(), "{}", text(&ok));
}

/// A P-256 key pair from a label: (private scalar, public point).
fn key(label: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let d = Sha256::digest(label).to_vec();
    let q = ec::public_key(Curve::P256, &d).unwrap();
    (d, q)
}

/// A CV certificate on P-256 with explicit parameters.
fn certificate(car: &[u8], chr: &[u8], point: &[u8], signer: &[u8]) -> Vec<u8> {
    let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, point);
    let body = cvc::build_body(Some(car), &pk, chr, &[]);
    let sig = ec::sign_prehash(Curve::P256, signer, &Sha256::digest(&body)).unwrap();
    cvc::build_cvc(&body, &sig)
}

/// The device's public point, from the first certificate of its chain.
fn device_point(card: &VCard) -> Vec<u8> {
    let mut c = Conn::open(card);
    c.select();
    let chain = c.read_ef(0x2F02);
    let (first, _) = cvc::Cvc::parse(&chain).unwrap();
    first.key_field(0x86).unwrap().to_vec()
}

/// Attack: the primary's chain is issued by a root nobody configured (an
/// attacker's PKI). Expected: CKR_PICOHSM_DEVICE_UNTRUSTED even with test
/// chains allowed, and no signature by the authenticator; with that root
/// in `device-roots` the same card logs in, its name (a byte the old
/// printable() rewrote) signed exactly as the card stores it.
#[test]
fn attack_unknown_root_refused_and_the_raw_device_name_is_signed() {
    let _s = serial();
    let mut cards = primary_and_authenticator();
    let point = device_point(&cards[0]);
    let (root_d, root_q) = key(b"an unknown root");
    // A name with a byte that is not printable ASCII.
    let name = b"ZZRAW\x7FNAME00001";
    let chain = [
        certificate(b"ZZROOTCA00001", name, &point, &root_d),
        certificate(b"ZZROOTCA00001", b"ZZROOTCA00001", &root_q, &root_d),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let chain_file = dir.path().join("chain.cvc");
    fs::write(&chain_file, &chain).unwrap();
    let root_file = dir.path().join("root.cvc");
    fs::write(
        &root_file,
        certificate(b"ZZROOTCA00001", b"ZZROOTCA00001", &root_q, &root_d),
    )
    .unwrap();
    cards[0].stop();
    cards[0].set_chain(Some(chain_file));
    cards[0].start_again();
    let (a, b) = (&cards[0], &cards[1]);
    let mut conn = Conn::open(a);
    conn.select();
    assert_eq!(conn.device_name(), name.to_vec());
    drop(conn);

    let secret = format!("{PIN}:{PIN}");
    b.clear_apdu_log();
    let out = ours(
        a,
        None,
        "info",
        &["--login", "--pin", &secret, "--list-objects"],
    );
    let t = text(&out);
    assert!(!out.status.success() && t.contains("0x80504b0b"), "{t}");
    assert!(!signed_anything(b), "{:#?}", b.apdu_log());

    let trusted = strict_settings(
        dir.path(),
        "roots.toml",
        &format!("device-roots = [\"{}\"]\n", root_file.display()),
    );
    let out = ours(
        a,
        Some(&trusted),
        "info",
        &["--login", "--pin", &secret, "--list-objects"],
    );
    let t = text(&out);
    assert!(
        out.status.success(),
        "the raw name signed and accepted: {t}"
    );
    assert!(t.contains("EXTERNAL AUTHENTICATE: accepted"), "{t}");
}

/// Attack: another user makes the settings file writable for all (or
/// owns it) to name their own library as an authenticator module.
/// Expected: C_Initialize fails with CKR_PICOHSM_SETTINGS_INSECURE and
/// says which file and why.
#[test]
fn attack_settings_writable_by_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    fs::write(
        &p,
        "[[authenticator]]\ntype = \"pkcs11\"\nmodule = \"/tmp/evil.so\"\n",
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_cmd_allow_fail(
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module_path())
            .arg("--list-slots")
            .env("PICOHSM_PKCS11_CONFIG", &p)
            .env("PICOHSM_PKCS11_LOG", "error"),
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("0x80504b0c"),
        "CKR_PICOHSM_SETTINGS_INSECURE: {t}"
    );
    assert!(
        t.contains(&p.display().to_string()) && t.contains("writable by others"),
        "{t}"
    );
    // The same file, private: accepted.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_cmd_allow_fail(
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module_path())
            .arg("--list-slots")
            .env("PICOHSM_PKCS11_CONFIG", &p),
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// A small C program that loads the module and calls C_Initialize(NULL),
/// printing the CK_RV in hex.
fn initialize_program(dir: &Path) -> PathBuf {
    let src = dir.join("init.c");
    fs::write(
        &src,
        "#include <dlfcn.h>\n#include <stdio.h>\n\
         typedef unsigned long (*init_fn)(void *);\n\
         int main(int argc, char **argv) {\n\
           void *h = dlopen(argv[1], RTLD_NOW);\n\
           if (!h) { fprintf(stderr, \"%s\\n\", dlerror()); return 2; }\n\
           init_fn f = (init_fn)dlsym(h, \"C_Initialize\");\n\
           if (!f) return 3;\n\
           printf(\"rv=%#lx\\n\", f(NULL));\n\
           return 0;\n\
         }\n",
    )
    .unwrap();
    let bin = dir.join("init");
    run_cmd(Command::new("cc").arg("-o").arg(&bin).arg(&src).arg("-ldl"));
    bin
}

/// Attack: a set-uid program loads the module (as a PAM stack in sudo
/// does); the caller sets PICOHSM_PKCS11_CONFIG to a settings file of
/// theirs and PICOHSM_PKCS11_LOG to a path the program would create with
/// its rights. Expected: under AT_SECURE both are ignored: the settings
/// file is not read, no log file appears.
#[test]
fn attack_environment_of_a_set_uid_process_is_ignored() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make a set-uid program");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = initialize_program(dir.path());
    // A module copy the set-uid user can read.
    let module = dir.path().join("libpicohsm_pkcs11.so");
    fs::copy(module_path(), &module).unwrap();
    fs::set_permissions(&module, fs::Permissions::from_mode(0o755)).unwrap();
    // The caller's files: settings that would fail C_Initialize if read
    // (writable by others), a log in a directory anyone can write.
    let settings = dir.path().join("evil.toml");
    fs::write(
        &settings,
        "[[authenticator]]\ntype = \"pkcs11\"\nmodule = \"/tmp/evil.so\"\n",
    )
    .unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o666)).unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o777)).unwrap();
    let run = |log: &Path| {
        let out = run_cmd_allow_fail(
            Command::new(&bin)
                .arg(&module)
                .env("PICOHSM_PKCS11_CONFIG", &settings)
                .env("PICOHSM_PKCS11_LOG", format!("trace,{}", log.display())),
        );
        text(&out)
    };
    // Control: not set-uid, the environment counts (settings refused,
    // the log written).
    let plain_log = logs.join("plain.log");
    let t = run(&plain_log);
    assert!(t.contains("rv=0x80504b0c"), "{t}");
    assert!(plain_log.exists());
    // Set-uid nobody, run by root: euid != ruid, so AT_SECURE.
    std::os::unix::fs::chown(&bin, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).unwrap();
    let secure_log = logs.join("secure.log");
    let t = run(&secure_log);
    assert!(t.contains("rv="), "{t}");
    assert!(!t.contains("rv=0x80504b0c"), "the settings were read: {t}");
    assert!(!secure_log.exists(), "the log file was created: {t}");
}

/// Attack: an administrator turns the log to trace to debug a login; the
/// log file must not become a place to read PINs from. Expected: over a
/// PKA + PIN login and a signature, neither PIN appears in the log, as
/// text or as hex.
#[test]
fn attack_no_pin_in_a_trace_log() {
    let _s = serial();
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    init_authenticator(b, AUTH_PIN);
    init_pka(a, 1, 1);
    let (file, _) = firmware_key_with_pin(b, 1, Curve::P256, AUTH_PIN);
    register_all(a, &[file]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trace.log");
    let level = format!("trace,{}", log.display());
    let secret = format!("{PIN}:{AUTH_PIN}");
    let mut args: Vec<String> = ["--login", "--pin", &secret]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(keypairgen("EC:prime256v1", "01", "signing"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ours(a, None, &level, &args);
    assert!(out.status.success(), "{}", text(&out));
    let data = dir.path().join("data");
    fs::write(&data, b"data").unwrap();
    let sig = dir.path().join("sig");
    let mut args: Vec<String> = ["--login", "--pin", &secret]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(op(
        "--sign",
        "ECDSA-SHA256",
        "01",
        &data,
        &sig,
        OPENSSL_FORMAT,
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ours(a, None, &level, &args);
    assert!(out.status.success(), "{}", text(&out));
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "a trace log: {text}"
    );
    let squeezed = text.replace([' ', ':'], "").to_uppercase();
    for pin in [PIN, AUTH_PIN] {
        assert!(!text.contains(pin), "{pin} in the log");
        assert!(
            !squeezed.contains(&hex_of(pin.as_bytes())),
            "{pin} as hex in the log"
        );
    }
}
