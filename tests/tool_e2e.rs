//! `picohsm-tool` through the real stack: the built binary against
//! `picohsm-vcard` cards behind pcscd + vpcd, checked with OpenSC's own
//! tools where they can see the result (sc-hsm-tool, pkcs11-tool), and
//! with SoftHSM2 as a PKCS#11 authenticator token.
//!
//! The tool is a binary of another workspace member (`picohsm-tool`), so
//! Cargo does not hand this test its path (`CARGO_BIN_EXE_*` covers the
//! root package only): [`tool_binary`] runs `cargo build -p picohsm-tool`
//! once and takes `target/<profile>/picohsm-tool`, as the harness does for
//! `picohsm-vcard`. `PICOHSM_TOOL_BIN` overrides it.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::pka::{init_authenticator, opensc_key, pka_status, ONE_OF_ONE_UNREGISTERED};
use common::softhsm::*;
use common::*;
use picohsm_wire::cvc::AuthRequest;
use picohsm_wire::tlv;

const SO_PIN: &str = "3537363231383830";

/// The value after `"key": ` in pretty JSON (the first occurrence), as text.
fn json_value(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\": ");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    let v = if let Some(s) = rest.strip_prefix('"') {
        s[..s.find('"')?].to_string()
    } else {
        rest[..rest.find([',', '\n', '}']).unwrap_or(rest.len())]
            .trim()
            .to_string()
    };
    Some(v)
}

fn init_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["init", "--so-pin", SO_PIN, "--pin", PIN]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn list_then_init_with_pka_and_pin_in_one_step() {
    let card = VCard::start();
    let listed = tool_ok(&card, &["list"]);
    assert!(listed.contains("SmartCard-HSM"), "{listed}");
    assert!(listed.contains("not initialised"), "{listed}");
    assert!(listed.contains("version       6.6"), "{listed}");
    let json = tool_ok(&card, &["--json", "list"]);
    assert_eq!(json_value(&json, "initialized").as_deref(), Some("false"));
    assert_eq!(
        json_value(&json, "reader").as_deref(),
        Some(card.reader_name())
    );

    let out = tool_ok(
        &card,
        &init_args(&[
            "--pka-keys",
            "1",
            "--pka-required",
            "1",
            "--dkek-shares",
            "1",
            "--label",
            "ToolTest",
        ]),
    );
    assert!(
        out.contains("0 authenticated public key(s) in 1 of 1 scheme"),
        "{out}"
    );

    // OpenSC sees an initialised device with PKA, a PIN and a DKEK share.
    assert_contains(&pka_status(&card), &ONE_OF_ONE_UNREGISTERED);
    let info = text(&sc_hsm_tool(&card, Vec::<&str>::new()));
    assert!(info.contains("User PIN tries left  : 3"), "{info}");
    assert!(info.contains("DKEK shares          : 1"), "{info}");
    let slots = text(&pkcs11_tool(&card, ["--list-token-slots"]));
    assert!(slots.contains("ToolTest"), "{slots}");
    assert!(slots.contains("PIN initialized"), "{slots}");

    let status = tool_ok(&card, &["pka", "status"]);
    assert!(
        status.contains("0 authenticated public key(s) in 1 of 1 scheme"),
        "{status}"
    );
    assert!(
        status.contains("registered    0 of 1, 1 missing"),
        "{status}"
    );
    let listed = tool_ok(&card, &["list"]);
    assert!(listed.contains("label         ToolTest"), "{listed}");
    assert!(listed.contains("user PIN      3 tries left"), "{listed}");

    // Re-initialising wants --force, then the current SO-PIN.
    let e = tool_fails(&card, &init_args(&[]), 2);
    assert!(
        e.contains("already initialised") && e.contains("--force"),
        "{e}"
    );
    let e = tool_fails(
        &card,
        &[
            "init",
            "--so-pin",
            "0000000000000000",
            "--pin",
            PIN,
            "--force",
        ],
        4,
    );
    assert!(e.contains("wrong SO-PIN: 14 tries left"), "{e}");
    let e = tool_fails(&card, &["init", "--pin", PIN], 2);
    assert!(e.contains("--so-pin"), "{e}");
    let e = tool_fails(
        &card,
        &init_args(&["--pka-keys", "1", "--pka-required", "2"]),
        2,
    );
    assert!(e.contains("more than --pka-keys"), "{e}");
}

/// The card's keys as pkcs11-tool (OpenSC) lists them.
fn opensc_objects(card: &VCard) -> String {
    text(&pkcs11_tool(
        card,
        ["--login", "--pin", PIN, "--list-objects"],
    ))
}

#[test]
fn keygen_export_register_status_and_a_test_login() {
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    tool_ok(b, &init_args(&[]));
    let json = tool_ok(
        b,
        &[
            "--json",
            "keygen",
            "--pin",
            PIN,
            "--key-type",
            "ec:secp256r1",
            "--label",
            "Authentication",
        ],
    );
    let key_ref = json_value(&json, "key_ref").unwrap();
    let chr = json_value(&json, "chr").unwrap();
    assert!(json.contains("generating an EC prime256v1 key"), "{json}");
    assert!(opensc_objects(b).contains("Authentication"));

    // The export is byte for byte what sc-hsm-tool writes.
    let ours = b.dir().join("ours.pka");
    let out = tool_ok(
        b,
        &["pka", "export", "--key-ref", &key_ref, "-o", &s(&ours)],
    );
    assert!(out.contains(&chr), "{out}");
    let theirs = b.dir().join("theirs.pka");
    sc_hsm_tool(
        b,
        [
            "--export-for-pub-key-auth",
            &s(&theirs),
            "-i",
            key_ref.as_str(),
        ],
    );
    let file = fs::read(&ours).unwrap();
    assert_eq!(file, fs::read(&theirs).unwrap(), "same file as sc-hsm-tool");
    let (seq, _) = tlv::parse_one(&file).unwrap();
    let req = tlv::parse_all(seq.value).unwrap()[0].value.to_vec();
    let parsed = AuthRequest::parse(&req).unwrap();
    assert_eq!(parsed.cert.chr, chr.as_bytes());
    assert!(parsed.cert.is_self_described(), "CAR = CHR");
    // By label as well; a second key makes the choice explicit.
    tool_ok(
        b,
        &[
            "pka",
            "export",
            "--key-label",
            "Authentication",
            "-o",
            &s(&ours),
        ],
    );
    tool_ok(
        b,
        &[
            "keygen",
            "--pin",
            PIN,
            "--key-type",
            "ec:brainpoolP256r1",
            "--label",
            "Second",
        ],
    );
    let e = tool_fails(b, &["pka", "export", "-o", &s(&ours)], 2);
    assert!(e.contains("several keys match"), "{e}");

    // The primary: PKA 1-of-1 and a PIN, in one step.
    tool_ok(a, &init_args(&["--pka-keys", "1"]));
    let st = tool_ok(a, &["pka", "status"]);
    assert!(
        st.contains("0 authenticated public key(s) in 1 of 1 scheme"),
        "{st}"
    );
    // No PIN: a usage error; a wrong one: exit 4 with the tries left.
    tool_fails(a, &["pka", "register", &s(&theirs)], 2);
    let e = tool_fails(a, &["pka", "register", &s(&theirs), "--pin", "000000"], 4);
    assert!(e.contains("wrong user PIN: 2 tries left"), "{e}");
    let out = tool_ok(a, &["pka", "register", &s(&theirs), "--pin", PIN]);
    assert!(
        out.contains(&format!("Registered {chr} in slot 0")),
        "{out}"
    );
    assert!(out.contains("registered    1 of 1, 0 missing"), "{out}");
    assert!(pka_status(a).contains("Missing public keys:       0"));
    let json = tool_ok(a, &["--json", "pka", "status"]);
    assert_eq!(json_value(&json, "missing").as_deref(), Some("0"));
    assert_eq!(
        json_value(&json, "status").as_deref(),
        Some("0 authenticated public key(s) in 1 of 1 scheme")
    );
    assert_eq!(json_value(&json, "chr").as_deref(), Some(chr.as_str()));
    // The same name twice: refused by the tool (the device tells keys apart
    // by name), before any MANAGE PKA register reaches the card.
    a.clear_apdu_log();
    let e = tool_fails(a, &["pka", "register", &s(&theirs), "--pin", PIN], 1);
    assert!(
        e.contains(&format!("{chr} is already registered in slot 0")) && e.contains("--force"),
        "{e}"
    );
    // MANAGE PKA with data: a registration (the status query has none).
    let registers = |log: Vec<String>| {
        log.iter()
            .filter(|l| l.replace(' ', "").starts_with(">8054000000") && l.len() > 20)
            .count()
    };
    assert_eq!(registers(a.apdu_log()), 0, "nothing sent to register");
    assert!(pka_status(a).contains("Missing public keys:       0"));
    // With m = 1 key registered, a further registration needs a PKA login
    // first: without --auth-pin the tool says so and sends nothing.
    let e = tool_fails(
        a,
        &["pka", "register", &s(&theirs), "--pin", PIN, "--force"],
        2,
    );
    assert!(e.contains("PKA login") && e.contains("--auth-pin"), "{e}");
    assert_eq!(registers(a.apdu_log()), 0, "nothing sent to register");
    // With --force and the login the card has the last word: 6A84 (no free
    // slot), with what to do.
    let e = tool_fails(
        a,
        &[
            "pka",
            "register",
            &s(&theirs),
            "--pin",
            PIN,
            "--force",
            "--auth-pin",
            PIN,
            "--authenticator-reader",
            b.reader_name(),
            "--wait",
            "0",
        ],
        1,
    );
    assert!(e.contains("6A84") && e.contains("pka status"), "{e}");
    assert_eq!(registers(a.apdu_log()), 1, "--force sends it");

    // Keys on the primary need the PKA login: the card's 6982, explained.
    let e = tool_fails(a, &["keygen", "--pin", PIN], 1);
    assert!(e.contains("6982") && e.contains("PKA login"), "{e}");

    // The test login, step by step.
    let out = tool_ok(
        a,
        &[
            "pka",
            "login",
            "--pin",
            PIN,
            "--primary-pin",
            PIN,
            "--authenticator-reader",
            b.reader_name(),
            "--wait",
            "0",
        ],
    );
    for step in [
        "device: ",
        "challenge: ",
        &format!("registered as {chr}"),
        "MSE SET AT: key selected",
        "EXTERNAL AUTHENTICATE: accepted",
        "quorum: 1 of 1 required keys accepted",
        "user PIN: verified",
        "logged out again",
    ] {
        assert!(out.contains(step), "{step:?} missing in:\n{out}");
    }
    // It was a test: nothing stays authenticated.
    let st = tool_ok(a, &["pka", "status"]);
    assert!(
        st.contains("0 authenticated public key(s) in 1 of 1 scheme"),
        "{st}"
    );
    // The authenticator's own PIN, wrong: exit 4.
    let e = tool_fails(
        a,
        &[
            "pka",
            "login",
            "--pin",
            "111111",
            "--authenticator-reader",
            b.reader_name(),
            "--wait",
            "0",
        ],
        4,
    );
    assert!(e.contains("authenticator refused its PIN"), "{e}");
}

/// `picohsm-tool --reader <card's reader>` with SoftHSM2's configuration,
/// ready for more arguments.
fn hsm_tool(hsm: &SoftHsm, card: &VCard) -> Command {
    let mut c = Command::new(tool_binary());
    c.env("SOFTHSM2_CONF", &hsm.conf)
        .args(["--reader", card.reader_name()]);
    c
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn softhsm_keys_exported_registered_two_of_three_and_logged_in() {
    let hsm = SoftHsm::new("auth");
    hsm.keygen("EC:prime256v1", "p256", "01");
    hsm.keygen("EC:brainpoolP256r1", "brainpool", "02");
    let card = VCard::start();
    let module = path_str(&softhsm_module());
    // `pka export` from the SoftHSM token: `--pkcs11-module`, then `args`.
    let export = |args: &[&str]| {
        let from = ["pka", "export", "--pkcs11-module", module.as_str()];
        run_cmd_allow_fail(hsm_tool(&hsm, &card).args(from).args(args))
    };
    let mut files = Vec::new();
    for label in ["p256", "brainpool"] {
        let file = card.dir().join(format!("{label}.pka"));
        let out = run_cmd_allow_fail(
            hsm_tool(&hsm, &card)
                .args(["--json", "pka", "export"])
                .args(["--pkcs11-module", &module, "--token-label", "auth"])
                .args(["--key-label", label, "--pin", SOFTHSM_PIN, "-o"])
                .arg(&file),
        );
        assert!(out.status.success(), "{}", text(&out));
        let chr = json_value(&stdout(&out), "chr").unwrap();
        assert!(chr.starts_with("ZZ") && chr.ends_with("00001"), "{chr}");
        // Self-signed: CAR = CHR inside and outside.
        let data = fs::read(&file).unwrap();
        let (seq, _) = tlv::parse_one(&data).unwrap();
        let items = tlv::parse_all(seq.value).unwrap();
        assert_eq!(items.len(), 1, "no device chain");
        let r = AuthRequest::parse(items[0].value).unwrap();
        assert_eq!(r.cert.chr, chr.as_bytes());
        assert!(r.cert.is_self_described());
        assert_eq!(r.outer_car, chr.as_bytes());
        files.push((file, chr));
    }
    // A wrong token PIN is exit 4; an ambiguous choice a usage error.
    let out = export(&["--key-label", "p256", "--pin", "999999", "-o", "/dev/null"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let out = export(&["--pin", SOFTHSM_PIN, "-o", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("several keys match"), "{}", text(&out));

    // A 2-of-3 primary; both SoftHSM keys registered, one slot left.
    tool_ok(
        &card,
        &init_args(&["--pka-keys", "3", "--pka-required", "2"]),
    );
    for (file, chr) in &files {
        let out = tool_ok(&card, &["pka", "register", &path_str(file), "--pin", PIN]);
        assert!(out.contains(&format!("Registered {chr}")), "{out}");
        assert!(out.contains("self-signed request"), "{out}");
    }
    let st = tool_ok(&card, &["pka", "status"]);
    assert!(
        st.contains("0 authenticated public key(s) in 2 of 3 scheme"),
        "{st}"
    );
    assert!(st.contains("registered    2 of 3, 1 missing"), "{st}");
    for (_, chr) in &files {
        assert!(st.contains(chr.as_str()), "{st}");
    }

    // Log in with the SoftHSM token as authenticator: two rounds.
    let out = run_cmd_allow_fail(
        hsm_tool(&hsm, &card)
            .args(["pka", "login", "--pin", SOFTHSM_PIN, "--primary-pin", PIN])
            .args(["--authenticator-module", &module])
            .args(["--authenticator-token-label", "auth", "--wait", "0"]),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(
        t.matches("EXTERNAL AUTHENTICATE: accepted").count(),
        2,
        "{t}"
    );
    let outcome = [
        "quorum: 2 of 2 required keys accepted",
        "PKA login succeeded: 2 authenticated public key(s) in 2 of 3 scheme",
    ];
    assert_contains(&t, &outcome);
}

#[test]
fn pin_change_unblock_and_their_errors() {
    let card = VCard::start();
    tool_ok(&card, &init_args(&[]));
    tool_ok(&card, &["pin", "change", "--old", PIN, "--new", "123456"]);
    let e = tool_fails(
        &card,
        &["pin", "change", "--old", PIN, "--new", "654321"],
        4,
    );
    assert!(e.contains("wrong user PIN: 2 tries left"), "{e}");
    let json = tool_fails(
        &card,
        &["--json", "pin", "change", "--old", PIN, "--new", "654321"],
        4,
    );
    assert_eq!(json_value(&json, "exit_code").as_deref(), Some("4"));
    assert_eq!(json_value(&json, "tries_left").as_deref(), Some("1"));
    assert_eq!(json_value(&json, "sw").as_deref(), Some("63C1"));
    let e = tool_fails(
        &card,
        &["pin", "change", "--old", PIN, "--new", "654321"],
        4,
    );
    assert!(e.contains("blocked") && e.contains("pin unblock"), "{e}");
    let listed = tool_ok(&card, &["list"]);
    assert!(listed.contains("user PIN      blocked"), "{listed}");

    let e = tool_fails(
        &card,
        &[
            "pin",
            "unblock",
            "--so-pin",
            "0000000000000000",
            "--new-pin",
            PIN,
        ],
        4,
    );
    assert!(e.contains("wrong SO-PIN: 14 tries left"), "{e}");
    let out = tool_ok(
        &card,
        &["pin", "unblock", "--so-pin", SO_PIN, "--new-pin", PIN],
    );
    assert!(out.contains("3 tries left"), "{out}");
    // Counter-only reset needs the option set at init: 6986, explained.
    let e = tool_fails(&card, &["pin", "unblock", "--so-pin", SO_PIN], 1);
    assert!(
        e.contains("6986") && e.contains("--reset-counter-only"),
        "{e}"
    );
    tool_ok(&card, &["pin", "change", "--old", PIN, "--new", "222222"]);
    tool_ok(
        &card,
        &[
            "pin",
            "change",
            "--so",
            "--old",
            SO_PIN,
            "--new",
            "0102030405060708",
        ],
    );
    let e = tool_fails(
        &card,
        &["pin", "change", "--so", "--old", "12", "--new", "34"],
        2,
    );
    assert!(e.contains("16 hex"), "{e}");
    // OpenSC logs in with the new PIN.
    pkcs11_tool(&card, ["--login", "--pin", "222222", "--list-objects"]);
}

#[test]
fn no_reader_and_no_device_are_exit_3() {
    let out = run_cmd_allow_fail(Command::new(tool_binary()).args([
        "--reader",
        "No Such Reader 42",
        "pka",
        "status",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no reader matches \"No Such Reader 42\""), "{t}");
    assert!(t.contains("Virtual PCD"), "the readers are listed: {t}");
    let out = run_cmd_allow_fail(Command::new(tool_binary()).args([
        "--json",
        "--reader",
        "No Such Reader 42",
        "list",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json_value(&stdout(&out), "exit_code").as_deref(), Some("3"));
    // Usage errors are clap's exit 2; --help documents the exit codes.
    let out = run_cmd_allow_fail(Command::new(tool_binary()).args(["pka", "frobnicate"]));
    assert_eq!(out.status.code(), Some(2));
    let help = text(&run_cmd(Command::new(tool_binary()).arg("--help")));
    assert!(
        help.contains("Exit codes:") && help.contains("4  wrong PIN"),
        "{help}"
    );
}

#[test]
fn two_of_two_waits_for_the_next_token_on_a_pka_only_device() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut cards = VCard::start_many(3);
    let mut files = Vec::new();
    for card in &cards[1..] {
        tool_ok(card, &init_args(&[]));
        tool_ok(card, &["keygen", "--pin", PIN]);
        let file = card.dir().join("key.pka");
        tool_ok(card, &["pka", "export", "-o", &s(&file)]);
        files.push(file);
    }
    let a = &cards[0];
    // PKA only: no user PIN, so the SO-PIN registers.
    let init = tool_ok(
        a,
        &[
            "init",
            "--so-pin",
            SO_PIN,
            "--pka-keys",
            "2",
            "--pka-required",
            "2",
        ],
    );
    // What PKA-only means is the firmware's: this one seals the keys under
    // the device secret (the upstream one keeps asking for a PIN).
    assert!(
        init.contains("this firmware seals the keys under the device secret"),
        "{init}"
    );
    let e = tool_fails(a, &["pka", "register", &s(&files[0]), "--pin", PIN], 1);
    assert!(e.contains("no such PIN"), "{e}");
    for f in &files {
        let out = tool_ok(a, &["pka", "register", &s(f), "--so-pin", SO_PIN]);
        assert!(out.contains("SO-PIN verified"), "{out}");
    }
    let (b_reader, c_reader) = (
        cards[1].reader_name().to_string(),
        cards[2].reader_name().to_string(),
    );
    // The second authenticator is away when the login starts.
    cards[2].stop();
    let mut child = Command::new(tool_binary())
        .args(["--reader", cards[0].reader_name(), "pka", "login"])
        .args(["--pin", PIN, "--wait", "60"])
        .args(["--authenticator-reader", &b_reader])
        .args(["--authenticator-reader", &c_reader])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("waiting up to 60 s") {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("EXTERNAL AUTHENTICATE: accepted")),
        "{seen:?}"
    );
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("waiting up to 60 s")),
        "the login should wait for the second token: {seen:?}"
    );
    cards[2].start_again();
    seen.extend(lines.map(Result::unwrap));
    let out = child.wait_with_output().unwrap();
    let all = seen.join("\n");
    assert!(
        out.status.success(),
        "{all}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        all.matches("EXTERNAL AUTHENTICATE: accepted").count(),
        2,
        "{all}"
    );
    assert!(all.contains("challenge: the round's own, again"), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting for an authenticator token"),
        "progress on stderr"
    );
    assert!(
        all.contains("quorum: 2 of 2 required keys accepted"),
        "{all}"
    );
}

#[test]
fn export_warns_of_key_names_a_primary_cannot_use() {
    let _s = serial();
    let b = VCard::start();
    init_authenticator(&b, PIN);
    // OpenSC's key: CHR <serial>00001 and the placeholder CAR UTCA00001.
    let (_, key_ref) = opensc_key(&b, "EC:prime256v1", "41");
    let file = b.dir().join("opensc.pka");
    let out = tool_ok(
        &b,
        &[
            "pka",
            "export",
            "--key-ref",
            &key_ref.to_string(),
            "-o",
            &s(&file),
        ],
    );
    assert!(
        out.contains("is the device serial and a number") && out.contains("UTCA00001"),
        "{out}"
    );
    // picohsm-tool's own key: a name of its own, CAR = CHR, no warning.
    tool_keygen(&b, "Mine", &[]);
    let (_, out) = tool_export(&b, "Mine", "mine.pka");
    assert!(!out.contains("warning:"), "{out}");
}
