//! Firefox ESR, a real browser, against a token on a Pico HSM: the module
//! loaded by an enterprise policy (`SecurityDevices`), a TLS client
//! certificate on a PKA-only token, and the login a browser can do —
//! C_Login(CKU_USER, NULL) on a token that announces a protected
//! authentication path, the authenticator's PIN asked by pinentry-tty.
//!
//! Each test has its own Firefox installation, profile and HOME (see
//! tests/common/firefox.rs): no system-wide policies.json is written.
//! Firefox logs in to every token it sees when a server asks for a client
//! certificate, so the tests answer only the prompts for their own
//! authenticator and cancel any other (a card another test left in a
//! reader keeps its PIN tries).

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use common::firefox::*;
use common::softhsm::*;
use common::*;

/// The page only a client with the token's certificate gets.
const SECRET: &str = "picohsm-firefox-authenticated-7f3a";

/// The label of the SoftHSM2 token that holds the authenticator key.
const AUTH_TOKEN: &str = "firefox-auth";

/// The authenticator key's label (the pinentry prompt names it).
const AUTH_KEY: &str = "Firefox authenticator";

/// The page `s_server -WWW` serves.
fn page() -> String {
    format!("<html><body><p id=\"secret\">{SECRET}</p></body></html>\n")
}

/// A PKA-only Pico HSM (1-of-1, no user PIN) whose authenticator is a key
/// in a SoftHSM2 token, set up with the project's tools as a user does
/// (README "PKA login"), holding an EC key and, for it, a client
/// certificate from `pki`. Returns the card, the SoftHSM2 token and the
/// authenticator part of the settings.
fn pka_token_with_client_cert(pki: &Pki) -> (VCard, SoftHsm, String) {
    let card = VCard::start();
    let hsm = SoftHsm::new(AUTH_TOKEN);
    hsm.keygen("EC:prime256v1", AUTH_KEY, "01");
    let pka = card.dir().join("auth.pka");
    run_cmd(
        Command::new(tool_binary())
            .env("SOFTHSM2_CONF", &hsm.conf)
            .args(["pka", "export", "--pkcs11-module"])
            .arg(softhsm_module())
            .args(["--token-label", AUTH_TOKEN, "--key-id", "01"])
            .args(["--pin", SOFTHSM_PIN, "-o"])
            .arg(&pka),
    );
    tool_ok(
        &card,
        &[
            "init",
            "--so-pin",
            SO_PIN,
            "--pka-keys",
            "1",
            "--pka-required",
            "1",
        ],
    );
    tool_ok(&card, &["pka", "register", &s(&pka), "--so-pin", SO_PIN]);

    let authenticator = format!(
        "login = \"pka\"\n[[authenticator]]\ntype = \"pkcs11\"\nmodule = {}\ntoken-label = \"{AUTH_TOKEN}\"\n",
        json_str(&s(&softhsm_module()))
    );
    // The key and its certificate, made through the module with the
    // authenticator's PIN given on the command line.
    let setup = card.dir().join("setup.toml");
    write_settings(&setup, &authenticator);
    let p11 = |args: &[&str]| {
        run_cmd(
            our_pkcs11_tool_command(&card)
                .env("PICOHSM_PKCS11_CONFIG", &setup)
                .env("SOFTHSM2_CONF", &hsm.conf)
                .args(args),
        )
    };
    let login = ["--login", "--pin", SOFTHSM_PIN];
    p11(&[&login[..], &["--keypairgen", "--key-type", "EC:prime256v1"]].concat());
    let listing = text(&p11(&["--list-objects", "--type", "pubkey"]));
    let id = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("ID:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no key ID in:\n{listing}"));
    let mut reader = our_pkcs11_tool_command(&card);
    reader.env("PICOHSM_PKCS11_CONFIG", &setup);
    let public = public_pem_with(reader, &id, card.dir());
    let cert = pki.client_cert(&public, "picohsm firefox client");
    p11(&[
        &login[..],
        &["--write-object", &s(&cert), "--type", "cert", "--id", &id],
        &["--label", "Firefox client"],
    ]
    .concat());
    (card, hsm, authenticator)
}

/// What a page load ended with.
struct Loaded {
    /// Marionette's last answer for the document: `[uri, text]`.
    document: String,
    /// The pinentry prompts answered with the authenticator's PIN, and
    /// the ones cancelled (other tokens').
    answered: usize,
    cancelled: usize,
}

/// Opens `url` and polls the document until it shows [`SECRET`] or an
/// error page, or [`PAGE_WAIT`] passes; meanwhile a thread answers the
/// pinentry prompts on `tty` (Marionette does not answer while Firefox
/// shows its modal dialog): the authenticator PIN for [`AUTH_KEY`],
/// Ctrl-D (cancel) for any other.
fn load(ff: &mut Firefox, url: &str, tty: Option<&Terminal>) -> Loaded {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let deadline = Instant::now() + PAGE_WAIT;
    let dialogs = ff.dialogs();
    let (answered, cancelled, done) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicBool::new(false),
    );
    let document = std::thread::scope(|scope| {
        if let Some(tty) = tty {
            scope.spawn(|| {
                let mut handled = 0;
                while !done.load(SeqCst) && Instant::now() < deadline {
                    let out = tty.output();
                    let prompts: Vec<(usize, &str)> = ["Authenticator PIN:", "Token PIN:"]
                        .iter()
                        .flat_map(|p| out.match_indices(p).map(|(i, _)| (i, *p)))
                        .collect::<std::collections::BTreeMap<_, _>>()
                        .into_iter()
                        .collect();
                    if let Some(&(at, prompt)) = prompts.get(handled) {
                        if dialogs.ready() > handled {
                            let before = prompts.get(handled.wrapping_sub(1)).map_or(0, |p| p.0);
                            let ours = prompt == "Authenticator PIN:"
                                && out[before..at].contains(AUTH_KEY);
                            if ours {
                                tty.type_keys(&format!("{SOFTHSM_PIN}\r"));
                                answered.fetch_add(1, SeqCst);
                            } else {
                                tty.type_keys("\u{4}");
                                cancelled.fetch_add(1, SeqCst);
                            }
                            handled += 1;
                            continue;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            });
        }
        // The answer to Navigate itself may wait for the login: Firefox
        // can open its modal dialog before Marionette replies.
        ff.navigate(url);
        let mut document = String::new();
        while Instant::now() < deadline {
            document = ff.document();
            if document.contains(SECRET)
                || document.contains("about:neterror")
                || document.contains("about:certerror")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        done.store(true, SeqCst);
        document
    });
    Loaded {
        document,
        answered: answered.into_inner(),
        cancelled: cancelled.into_inner(),
    }
}

/// A user whose client certificate is on a PKA-only Pico HSM writes a
/// policies.json with `SecurityDevices` (the module), `Certificates`
/// (their CA) and `security.default_personal_cert = "Select
/// Automatically"`, and module settings with `pinentry =
/// "/usr/bin/pinentry-tty"`. Headless Firefox, sent to a server that
/// demands a client certificate, logs in to the token with no PIN of its
/// own (the token announces a protected authentication path), pinentry-tty
/// asks for the authenticator's PIN on the user's terminal, and the page
/// only an authenticated client gets arrives. The policy, not a test
/// shortcut, put the module into the profile's pkcs11.txt.
#[test]
fn firefox_gets_the_page_with_the_token_certificate_after_a_pka_login_through_pinentry() {
    let _s = serial();
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let (card, hsm, authenticator) = pka_token_with_client_cert(&pki);
    let server = TlsServer::start(&pki, &page());

    let settings = card.dir().join("firefox.toml");
    write_settings(
        &settings,
        &format!("pinentry = \"/usr/bin/pinentry-tty\"\n{authenticator}"),
    );
    let install = FirefoxInstall::with_policies(&policies(Some(&module_path()), &pki.ca));
    let tty = Terminal::open();
    let mut ff = Firefox::start(
        &install,
        &[
            ("PICOHSM_PKCS11_CONFIG", settings.as_os_str()),
            ("SOFTHSM2_CONF", hsm.conf.as_os_str()),
            ("GPG_TTY", tty.name.as_os_str()),
        ],
    );
    let loaded = load(&mut ff, &server.url(), Some(&tty));
    let terminal = tty.output();
    let why = format!(
        "document: {}\n{} prompt(s) cancelled\nterminal:\n{terminal}\ns_server:\n{}\nFirefox:\n{}",
        loaded.document,
        loaded.cancelled,
        server.log(),
        ff.log()
    );
    assert!(ff.pkcs11_txt().contains(&s(&module_path())), "{why}");
    assert!(
        loaded.document.contains(SECRET) && loaded.document.contains(&server.url()),
        "{why}"
    );
    assert_eq!(loaded.answered, 1, "one authenticator PIN asked:\n{why}");
    assert!(
        terminal.contains("Public Key Authentication") && terminal.contains(AUTH_KEY),
        "{why}"
    );
    drop(card);
}

/// The same server and policy without `SecurityDevices`: Firefox has no
/// certificate to offer, the server ends the handshake ("peer did not
/// return a certificate") and Firefox shows its error page, not the page.
/// What the first test receives is the server's answer to the token's
/// certificate alone.
#[test]
fn firefox_without_the_module_gets_an_error_page_from_the_server() {
    let _s = serial();
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let server = TlsServer::start(&pki, &page());
    let install = FirefoxInstall::with_policies(&policies(None, &pki.ca));
    let mut ff = Firefox::start(&install, &[]);
    let loaded = load(&mut ff, &server.url(), None);
    let why = format!("document: {}\ns_server:\n{}", loaded.document, server.log());
    assert!(!loaded.document.contains(SECRET), "{why}");
    assert!(loaded.document.contains("about:neterror"), "{why}");
    assert!(
        server.log().contains("peer did not return a certificate"),
        "{why}"
    );
}
