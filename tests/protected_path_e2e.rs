//! The login without a PIN from the application (issue 13): the token
//! announces CKF_PROTECTED_AUTHENTICATION_PATH, pkcs11-tool then calls
//! C_Login(CKU_USER, NULL) without asking for a PIN, and the module asks
//! for each PIN through the real pinentry-tty on the user's terminal (a
//! pseudo-terminal the test types into), or logs in with none where the
//! authenticator needs none. Every signature is checked by openssl.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pinentry::{spawn_on_terminal, PINENTRY_TTY};
use common::pka::*;
use common::tools::{dgst_verify, keypairgen, op, OPENSSL_FORMAT, OURS};
use common::*;
use picohsm_wire::curve::Curve;

/// Settings with the real pinentry-tty (after [`TEST_CHAINS`]) and the
/// authenticator in `authenticator`'s reader (named, so no other card on
/// the shared pcscd is touched), in `card`'s directory.
fn pinentry_settings(card: &VCard, authenticator: &VCard) -> PathBuf {
    let path = card.dir().join("pinentry.toml");
    write_settings(
        &path,
        &format!(
            "pinentry = \"{PINENTRY_TTY}\"\n[[authenticator]]\ntype = \"smartcard-hsm\"\nreader = \"{}\"\n",
            authenticator.reader_name()
        ),
    );
    path
}

/// pkcs11-tool through this module with settings `config`, its log on.
fn ours(card: &VCard, config: &Path) -> Command {
    let mut c = OURS.command(card);
    c.env("PICOHSM_PKCS11_CONFIG", config)
        .env("PICOHSM_PKCS11_LOG", "info")
        .env("TERM", "dumb");
    c
}

/// Runs pkcs11-tool `args` on a terminal of its own and answers the
/// prompts: for each (text, keys), waits for `text` on the terminal and
/// types `keys`. Returns the output and the whole terminal transcript.
fn on_terminal(
    card: &VCard,
    config: &Path,
    args: &[String],
    answers: &[(&str, &str)],
) -> (Output, String) {
    let mut cmd = ours(card, config);
    cmd.args(args);
    let (child, mut tty) = spawn_on_terminal(&mut cmd);
    for (prompt, keys) in answers {
        tty.expect(prompt);
        tty.type_keys(keys);
    }
    let out = child.wait_with_output().expect("pkcs11-tool");
    let transcript = tty.drain().to_string();
    // pkcs11-tool never asked for a PIN itself: the flag told it not to.
    assert!(
        !transcript.contains("Please enter"),
        "pkcs11-tool prompted by itself:\n{transcript}"
    );
    (out, transcript)
}

/// `--login` then `args`, as strings.
fn login_and(args: impl IntoIterator<Item = String>) -> Vec<String> {
    std::iter::once("--login".to_string()).chain(args).collect()
}

/// Signs `data` with key `id` after answering `answers`, then checks the
/// signature with openssl against the key's public part.
fn sign_and_verify(card: &VCard, config: &Path, id: &str, answers: &[(&str, &str)]) {
    let dir = card.dir();
    let data = dir.join(format!("data{id}.txt"));
    fs::write(
        &data,
        b"signed after a login without a PIN from the application",
    )
    .unwrap();
    let sig = dir.join(format!("sig{id}.bin"));
    let sign = op("--sign", "ECDSA-SHA256", id, &data, &sig, OPENSSL_FORMAT);
    let (out, tty) = on_terminal(card, config, &login_and(sign), answers);
    assert!(out.status.success(), "{}\n{tty}", text(&out));
    let pem = public_pem_with(ours(card, config), id, dir);
    openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
}

/// A PKA-only primary (`[0]`, 1-of-1, no user PIN) and an authenticator
/// (`[1]`, user PIN [`PIN`]) whose key is registered on it.
fn pka_only_pair() -> Vec<VCard> {
    let cards = VCard::start_many(2);
    init_authenticator(&cards[1], PIN);
    let (file, _) = firmware_key(&cards[1], 1, Curve::P256);
    let mut c = init_pka_only(&cards[0], 1, 1);
    assert_eq!(c.register(&file).1, 0x9000);
    drop(c);
    cards
}

/// The token flags line of `pkcs11-tool --list-token-slots` for `card`.
fn token_flags(card: &VCard, config: &Path) -> String {
    let out = run_cmd(ours(card, config).arg("--list-token-slots"));
    let listing = stdout(&out);
    listing
        .split("Slot ")
        .find(|b| {
            b.lines()
                .next()
                .is_some_and(|l| l.ends_with(card.reader_name()))
        })
        .and_then(|b| b.lines().find(|l| l.contains("token flags")))
        .unwrap_or_else(|| panic!("{listing}"))
        .to_string()
}

/// A user with a PKA-only token and a browser-like application that never
/// asks for a PIN: with `pinentry = "/usr/bin/pinentry-tty"` the token
/// announces a protected authentication path, `pkcs11-tool --login` without
/// `--pin` logs in, pinentry-tty asks for the authenticator's PIN on the
/// user's terminal, a wrong PIN is refused and asked again with the error
/// shown, and the key made and the signature check out. A PIN given by the
/// application (`--pin`) still works.
#[test]
fn pkcs11_tool_without_a_pin_logs_in_through_pinentry_tty() {
    let _s = serial();
    let cards = pka_only_pair();
    let a = &cards[0];
    let config = pinentry_settings(a, &cards[1]);
    let flags = token_flags(a, &config);
    assert!(flags.contains("PIN pad present"), "{flags}");

    let keygen = keypairgen("EC:prime256v1", "01", "signing");
    let (out, tty) = on_terminal(
        a,
        &config,
        &login_and(keygen),
        &[
            ("Authenticator PIN:", "000000\r"),
            ("Wrong PIN", ""),
            ("Authenticator PIN:", &format!("{PIN}\r")),
        ],
    );
    assert!(
        out.status.success() && stdout(&out).contains("Key pair generated"),
        "{}\n{tty}",
        text(&out)
    );
    // The prompt names what the PIN is for.
    assert!(tty.contains("Public Key Authentication"), "{tty}");
    assert!(tty.contains("SmartCard-HSM in"), "{tty}");
    // The module's log never shows the PINs typed.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("refused its PIN; asking again"), "{log}");
    assert!(!log.contains(PIN) && !log.contains("000000"), "{log}");

    sign_and_verify(
        a,
        &config,
        "01",
        &[("Authenticator PIN:", &format!("{PIN}\r"))],
    );

    // The application's own PIN on the same token: as before.
    let dir = a.dir();
    let data = dir.join("given.txt");
    fs::write(&data, b"PIN given by the application").unwrap();
    let sig = dir.join("given.sig");
    let mut args = vec!["--login".to_string(), "--pin".into(), PIN.into()];
    args.extend(op(
        "--sign",
        "ECDSA-SHA256",
        "01",
        &data,
        &sig,
        OPENSSL_FORMAT,
    ));
    let out = run_cmd_allow_fail(
        ours(a, &config)
            .args(&args)
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let pem = public_pem_with(ours(a, &config), "01", dir);
    openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
}

/// A token with both PKA and its own user PIN (`login = "auto"` makes it
/// `pka+pin`): pinentry-tty asks twice, first for the authenticator's PIN,
/// then, with its own description, for the token's PIN; the token's PIN
/// goes to the token alone and the signature checks out.
#[test]
fn pka_and_pin_token_asks_the_two_pins_separately() {
    let _s = serial();
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    init_authenticator(b, "111111");
    init_pka(a, 1, 1);
    let (file, _) = firmware_key_with_pin(b, 1, Curve::P256, "111111");
    register_all(a, &[file]);
    let config = pinentry_settings(a, b);
    assert!(token_flags(a, &config).contains("PIN pad present"));
    let both = [
        ("Authenticator PIN:", "111111\r"),
        ("Token PIN:", &format!("{PIN}\r") as &str),
    ];
    let keygen = keypairgen("EC:prime256v1", "02", "signing");
    let (out, tty) = on_terminal(a, &config, &login_and(keygen), &both);
    assert!(out.status.success(), "{}\n{tty}", text(&out));
    let token_prompt = &tty[tty.find("Authenticator PIN:").unwrap()..];
    assert!(
        token_prompt.contains("user PIN of the token")
            && token_prompt.contains("not an authenticator's"),
        "{tty}"
    );
    sign_and_verify(a, &config, "02", &both);
}

/// The user cancels pinentry-tty (Ctrl-D at the prompt): C_Login returns
/// CKR_FUNCTION_CANCELED and nothing is logged in.
#[test]
fn cancel_at_pinentry_tty_is_ckr_function_canceled() {
    let _s = serial();
    let cards = pka_only_pair();
    let a = &cards[0];
    let config = pinentry_settings(a, &cards[1]);
    let (out, tty) = on_terminal(
        a,
        &config,
        &login_and(["--list-objects".to_string()]),
        &[("Authenticator PIN:", "\u{4}")],
    );
    assert!(!out.status.success(), "{}\n{tty}", text(&out));
    assert!(
        text(&out).contains("CKR_FUNCTION_CANCELED"),
        "{}\n{tty}",
        text(&out)
    );
}

/// No pinentry and an authenticator that needs no PIN from this module:
/// the application has logged in to the authenticator's token (SoftHSM2,
/// a `pkcs11` authenticator) itself, so C_Login(CKU_USER, NULL) on the
/// PKA-only primary completes with no PIN at all
/// (`protected-authentication-path = true`). Before the authenticator is
/// logged in, the same call fails with CKR_PICOHSM_NO_PIN_SOURCE.
#[test]
fn no_pin_at_all_when_the_authenticator_is_already_logged_in() {
    use common::softhsm::*;
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as P11Error, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let _s = serial();
    let cards = VCard::start_many(1);
    let a = &cards[0];
    let hsm = SoftHsm::new("auth");
    hsm.keygen("EC:prime256v1", "p256", "01");
    let pka = a.dir().join("softhsm.pka");
    run_cmd(
        Command::new(tool_binary())
            .env("SOFTHSM2_CONF", &hsm.conf)
            .args(["pka", "export", "--pkcs11-module"])
            .arg(softhsm_module())
            .args(["--token-label", "auth", "--key-id", "01"])
            .args(["--pin", SOFTHSM_PIN, "-o"])
            .arg(&pka),
    );
    let file = fs::read(&pka).unwrap();
    let (outer, _) = picohsm_wire::tlv::parse_one(&file).unwrap();
    let request = if outer.tag == 0x67 {
        outer.value.to_vec()
    } else {
        let items = picohsm_wire::tlv::parse_all(outer.value).unwrap();
        assert_eq!(items[0].tag, 0x67);
        items[0].value.to_vec()
    };
    let mut c = init_pka_only(a, 1, 1);
    assert_eq!(c.register_request(&request).1, 0x9000);
    drop(c);
    let config = a.dir().join("nopin.toml");
    write_settings(
        &config,
        &format!(
            "protected-authentication-path = true\nlogin = \"pka\"\n[[authenticator]]\ntype = \"pkcs11\"\nmodule = \"{}\"\ntoken-label = \"auth\"\n",
            softhsm_module().display()
        ),
    );
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    std::env::set_var("PICOHSM_PKCS11_CONFIG", &config);

    let p11 = our_module();
    let slot = slot_of(&p11, a);
    assert!(p11
        .get_token_info(slot)
        .unwrap()
        .protected_authentication_path());
    let session = p11.open_rw_session(slot).unwrap();
    match session.login(UserType::User, None) {
        Err(P11Error::Pkcs11(RvError::VendorDefined(v), _)) => assert_eq!(
            v,
            picohsm_pkcs11::vendor::CKR_PICOHSM_NO_PIN_SOURCE,
            "the authenticator wants its PIN"
        ),
        other => panic!("{other:?}"),
    }

    // The application logs in to its authenticator token itself.
    let soft = Pkcs11::new(softhsm_module()).unwrap();
    match soft.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let auth_slot = soft
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| soft.get_token_info(*s).unwrap().label().trim_end() == "auth")
        .unwrap();
    let auth_session = soft.open_ro_session(auth_slot).unwrap();
    auth_session
        .login(UserType::User, Some(&AuthPin::from(SOFTHSM_PIN)))
        .unwrap();

    session.login(UserType::User, None).unwrap();
    let (public, private) = common::p256_key_pair(&session, 7, None).unwrap();
    let digest = [9u8; 32];
    let sig = session.sign(&Mechanism::Ecdsa, private, &digest).unwrap();
    session
        .verify(&Mechanism::Ecdsa, public, &digest, &sig)
        .unwrap();
    drop(auth_session);
    std::env::remove_var("PICOHSM_PKCS11_CONFIG");
}

/// A token with only a PIN (no PKA) and a pinentry: it announces the
/// protected path too, and pinentry-tty asks for the token's PIN, with
/// the tries left after a wrong one; the signature checks out.
#[test]
fn pin_only_token_asks_its_pin_through_pinentry_tty() {
    let _s = serial();
    let a = common::tools::initialised_card();
    let config = a.dir().join("pin.toml");
    write_settings(&config, &format!("pinentry = \"{PINENTRY_TTY}\"\n"));
    assert!(token_flags(&a, &config).contains("PIN pad present"));
    let pin = format!("{PIN}\r");
    let keygen = keypairgen("EC:prime256v1", "03", "signing");
    let (out, tty) = on_terminal(
        &a,
        &config,
        &login_and(keygen),
        &[
            ("Token PIN:", "999999\r"),
            ("tries left", ""),
            ("Token PIN:", &pin),
        ],
    );
    assert!(out.status.success(), "{}\n{tty}", text(&out));
    assert!(!tty.contains("Authenticator PIN"), "{tty}");
    sign_and_verify(&a, &config, "03", &[("Token PIN:", &pin)]);
}
