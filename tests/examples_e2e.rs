//! The two PKA examples a user copies from, run against virtual cards
//! behind pcscd: examples/pka_login.rs (cryptoki, vendor user type) and
//! examples/pka_login.c (C, include/picohsm_pkcs11.h), 1-of-1 and 2-of-3.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::pka::*;
use common::tools::initialize;
use common::*;
use picohsm_wire::curve::Curve;

/// target/<profile>/examples/pka_login, built if `cargo test` did not.
fn rust_example() -> PathBuf {
    let bin = target_profile_dir().join("examples").join("pka_login");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", "pka_login"]);
    if target_profile_dir().file_name() == Some("release".as_ref()) {
        cmd.arg("--release");
    }
    run_cmd(&mut cmd);
    assert!(bin.exists(), "{bin:?}");
    bin
}

/// The C example, compiled with the system's cc against our header.
fn c_example(dir: &std::path::Path) -> PathBuf {
    let out = dir.join("pka_login_c");
    let root = env!("CARGO_MANIFEST_DIR");
    run_cmd(
        Command::new("cc")
            .args(["-std=c99", "-Wall", "-Werror", "-I"])
            .arg(format!("{root}/include"))
            .args(["-I", "/usr/include/p11-kit-1"])
            .arg(format!("{root}/examples/pka_login.c"))
            .arg("-ldl")
            .arg("-o")
            .arg(&out),
    );
    out
}

/// A PKA primary `a` (n of m, with the test PIN) with the given keys
/// registered, and a signing key (id 01) made after a PKA login by hand.
fn primary_with_keys(a: &VCard, n: u8, m: u8, files: &[Vec<u8>]) {
    init_pka(a, n, m);
    register_all(a, files);
    // A key on the primary to sign with, made through the module after a
    // PKA + PIN login: the authenticators are found on their own, so the
    // secret is split, `<token PIN>:<authenticator PIN>` (both the test PIN).
    our_keypairgen(a, &format!("{PIN}:{PIN}"), "EC:prime256v1", "01");
}

#[test]
fn rust_example_one_of_one_with_pin() {
    let _s = serial();
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    initialize(b, &[]);
    let (k, _) = firmware_key(b, 1, Curve::P256);
    primary_with_keys(a, 1, 1, &[k]);
    let out = run_cmd(
        Command::new(rust_example())
            .args(["--module"])
            .arg(module_path())
            .args(["--reader", a.reader_name(), "--pin", PIN, "--user-pin", PIN]),
    );
    let t = text(&out);
    let steps = [
        "PKA: 0 authenticated public key(s) in 1 of 1 scheme",
        "PKA: quorum reached",
        "PIN: verified",
        "signature: ",
    ];
    assert_contains(&t, &steps);
    let sig = t
        .lines()
        .find_map(|l| l.strip_prefix("signature: "))
        .unwrap();
    assert_eq!(sig.len(), 128, "64-byte r||s");
}

#[test]
fn c_example_two_of_three_reports_progress() {
    let _s = serial();
    let cards = VCard::start_many(3);
    let (a, b, c) = (&cards[0], &cards[1], &cards[2]);
    for x in [b, c] {
        initialize(x, &[]);
    }
    let (k1, _) = firmware_key(b, 1, Curve::P256);
    let (k2, _) = firmware_key(c, 1, Curve::BrainpoolP256r1);
    let (k3, _) = firmware_key(c, 2, Curve::P256);
    // Past m = 2 keys, registering needs the quorum (docs/protocol.md §6.3).
    init_pka(a, 3, 2);
    register_all_by(a, &[(b, 1, k1), (c, 1, k2), (c, 2, k3)]);
    our_keypairgen(a, &format!("{PIN}:{PIN}"), "EC:prime256v1", "01");
    let bin = c_example(a.dir());
    let out = run_cmd(
        Command::new(bin)
            .arg(module_path())
            .arg(a.reader_name())
            .arg(PIN)
            .arg(PIN),
    );
    let t = text(&out);
    let progress: Vec<&str> = t.lines().filter(|l| l.starts_with("PKA: ")).collect();
    assert_eq!(
        progress,
        [
            "PKA: 0 authenticated public key(s) in 2 of 3 scheme",
            "PKA: 1 authenticated public key(s) in 2 of 3 scheme",
            "PKA: 2 authenticated public key(s) in 2 of 3 scheme",
        ],
        "{t}"
    );
    assert!(
        t.contains("PIN: verified") && t.contains("signature: "),
        "{t}"
    );
}
