//! p11-kit as its users run it: the module registered in a user module
//! file, listed by `p11-kit list-modules`, its objects listed by GnuTLS's
//! `p11tool` through the p11-kit proxy, a PKCS#11 URI `p11tool` prints
//! selecting the same key in OpenSSL (libp11) and pkcs11-tool; and the HSM
//! on another machine: a token served by `p11-kit server` and used through
//! `p11-kit-client.so` by pkcs11-tool and OpenSSL in another process, PKA
//! login included, and an authenticator reached the same way.

#[path = "../common/mod.rs"]
mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::p11kit::*;
use common::pki::TestCa;
use common::*;

/// The authenticator's user PIN in the PKA tests.
const AUTH_PIN: &str = "271828";

/// `cmd`'s output; panics with it unless the command succeeded.
fn ok(cmd: &mut Command) -> String {
    text(&run_cmd(cmd))
}

/// SHA-256 of `data`, written to `dir/name` (what `pkeyutl -sign` and
/// CKM_ECDSA sign).
fn digest_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    use sha2::Digest;
    let path = dir.join(name);
    fs::write(&path, sha2::Sha256::digest(data)).unwrap();
    path
}

/// pkcs11-tool's arguments that log in with `pin` and sign `input` with
/// `mechanism` and the key with CKA_ID `id` (hex), writing the signature to
/// `sig` in openssl's format.
fn sign_args(pin: &str, mechanism: &str, id: &str, input: &Path, sig: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--login", "--pin", pin, "--sign", "--mechanism", mechanism]
        .into_iter()
        .chain(["--id", id, "--signature-format", "openssl", "-i"])
        .map(OsString::from)
        .collect();
    args.extend([input.into(), "-o".into(), sig.into()]);
    args
}

/// openssl's check of the ECDSA signature `sig` (DER) over the digest
/// `input` with the public key `pem`.
fn verifies(pem: &Path, input: &Path, sig: &Path) -> bool {
    run_allow_fail(
        "openssl",
        [
            OsStr::new("pkeyutl"),
            OsStr::new("-verify"),
            OsStr::new("-pubin"),
            OsStr::new("-inkey"),
            pem.as_os_str(),
            OsStr::new("-in"),
            input.as_os_str(),
            OsStr::new("-sigfile"),
            sig.as_os_str(),
        ],
    )
    .status
    .success()
}

/// A user writes `~/.config/pkcs11/modules/picohsm.module` with one line,
/// `module: <path>`: `p11-kit list-modules` then shows the module and the
/// token by its label, and GnuTLS's `p11tool --list-all --login` (through
/// the p11-kit proxy, the PIN in GNUTLS_PIN) lists the key pair and its
/// certificate, with the private key only after the login.
#[test]
fn p11_kit_lists_the_token_of_a_user_module_file_and_p11tool_lists_its_objects() {
    let _s = serial();
    let card = VCard::start();
    let ca = TestCa::new(card.dir(), "p11-kit test CA");
    token_with_certified_key(
        &card,
        "p11kit-alice",
        "EC:prime256v1",
        "01",
        &ca,
        "clientAuth",
    );
    let home = UserHome::new("");

    let listed = ok(home.command("p11-kit").arg("list-modules"));
    assert_contains(
        &listed,
        &[
            &format!("picohsm: {}", module_path().display()),
            "library-manufacturer: picohsm-pkcs11",
            "token: p11kit-alice",
        ],
    );
    assert!(
        !listed.contains("opensc-pkcs11"),
        "only our module: {listed}"
    );

    let token = "pkcs11:token=p11kit-alice";
    let anonymous = ok(home.command("p11tool").args(["--list-all", token]));
    assert!(
        !anonymous.contains("type=private"),
        "no private key before the login:\n{anonymous}"
    );
    let all =
        ok(home
            .command("p11tool")
            .env("GNUTLS_PIN", PIN)
            .args(["--list-all", "--login", token]));
    assert_contains(
        &all,
        &[
            "Type: X.509 Certificate (EC/ECDSA-SECP256R1)",
            "Type: Private key (EC/ECDSA-SECP256R1)",
            "Type: Public key (EC/ECDSA-SECP256R1)",
        ],
    );
    let urls = p11tool_urls(&all);
    for kind in ["cert", "private", "public"] {
        let url = urls
            .iter()
            .find(|u| u.ends_with(&format!("type={kind}")))
            .unwrap_or_else(|| panic!("no {kind} URL in:\n{all}"));
        let a = uri_attributes(url);
        assert_eq!(a["token"], b"p11kit-alice", "{url}");
        assert_eq!(a["id"], [0x01], "{url}");
        assert_eq!(a["manufacturer"], b"picohsm-pkcs11", "{url}");
    }
}

/// `p11tool --list-all --login` prints a URI for each key; the user pastes
/// the one of the second key into OpenSSL (libp11's engine, configured in
/// openssl.cnf as libp11's README shows, loading the p11-kit proxy) and into
/// pkcs11-tool. pkcs11-tool 0.23 takes no URI: the URI's `token` and `id`
/// become `--token-label` and `--id`. Both sign with that key: each
/// signature verifies with its certificate's public key and not with the
/// first key's.
#[test]
fn a_key_uri_printed_by_p11tool_selects_the_same_key_in_openssl_and_pkcs11_tool() {
    let _s = serial();
    let card = VCard::start();
    let dir = card.dir().to_path_buf();
    let ca = TestCa::new(&dir, "p11-kit test CA");
    let first = token_with_certified_key(
        &card,
        "p11kit-bob",
        "EC:prime256v1",
        "01",
        &ca,
        "clientAuth",
    );
    let second = add_certified_key(&card, "EC:prime256v1", "02", &ca, "second", "clientAuth");
    let (first_pub, second_pub) = (
        cert_public_key(&first, &dir.join("first.pub.pem")),
        cert_public_key(&second, &dir.join("second.pub.pem")),
    );
    let home = UserHome::new("");

    let all = ok(home.command("p11tool").env("GNUTLS_PIN", PIN).args([
        "--list-all",
        "--login",
        "pkcs11:token=p11kit-bob",
    ]));
    let uri = p11tool_urls(&all)
        .into_iter()
        .find(|u| u.contains("id=%02") && u.ends_with("type=private"))
        .unwrap_or_else(|| panic!("no URI of private key 02 in:\n{all}"));

    let digest = digest_file(&dir, "data.sha256", b"selected by its URI");
    let conf = engine_conf(&dir, None);
    let sig = dir.join("openssl.sig");
    ok(&mut engine_sign(
        home.command("openssl"),
        &conf,
        &uri,
        PIN,
        &digest,
        &sig,
    ));
    assert!(
        verifies(&second_pub, &digest, &sig),
        "OpenSSL signed with key 02"
    );
    assert!(!verifies(&first_pub, &digest, &sig), "not with key 01");

    let a = uri_attributes(&uri);
    let token = String::from_utf8(a["token"].clone()).unwrap();
    let id = hex::encode(&a["id"]);
    let sig = dir.join("pkcs11-tool.sig");
    ok(home
        .command("pkcs11-tool")
        .args(["--module", P11_KIT_PROXY, "--token-label", &token])
        .args(sign_args(PIN, "ECDSA", &id, &digest, &sig)));
    assert!(
        verifies(&second_pub, &digest, &sig),
        "pkcs11-tool signed with key 02"
    );
    assert!(!verifies(&first_pub, &digest, &sig), "not with key 01");
}

/// Cards `[0]` (the primary) and `[1]` (the authenticator, user PIN
/// [`AUTH_PIN`], token label `desk`, a key `Authentication` made by
/// picohsm-tool); nothing registered yet.
fn primary_and_desk_authenticator() -> Vec<VCard> {
    let cards = VCard::start_many(2);
    let b = &cards[1];
    tool_ok(
        b,
        &[
            "init", "--so-pin", SO_PIN, "--pin", AUTH_PIN, "--label", "desk",
        ],
    );
    tool_ok(
        b,
        &["keygen", "--pin", AUTH_PIN, "--label", "Authentication"],
    );
    cards
}

/// `picohsm-tool init` of the primary `a`: PKA 1-of-1, the test PIN, token
/// label `label`; then `pka register` of `pka_file`.
fn init_primary(a: &VCard, label: &str, pka_file: &Path) {
    tool_ok(
        a,
        &[
            "init",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--pka-keys",
            "1",
            "--pka-required",
            "1",
            "--label",
            label,
        ],
    );
    tool_ok(a, &["pka", "register", &s(pka_file), "--pin", PIN]);
}

/// Settings `toml` (after [`TEST_CHAINS`]) in `dir/name`.
fn settings_file(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(name);
    write_settings(&path, toml);
    path
}

/// pkcs11-tool through `p11-kit-client.so` with the server `address`.
fn client_tool(address: &str) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("P11_KIT_SERVER_ADDRESS", address)
        .args(["--module", P11_KIT_CLIENT]);
    c
}

/// The HSM on another machine: `p11-kit server --provider
/// libpicohsm_pkcs11.so 'pkcs11:token=server-hsm'` serves a PKA 1-of-1 +
/// PIN token whose authenticator sits beside it. In another process,
/// pkcs11-tool through `p11-kit-client.so` sees that token only, logs in
/// with `<token PIN>:<authenticator PIN>` (the PKA rounds run in the
/// server's module: its log says so), generates a key and signs; OpenSSL's
/// engine with `MODULE_PATH = p11-kit-client.so` signs by URI; a wrong
/// authenticator PIN comes back as the module's own code; and the vendor
/// user type passes through: C_Login(CKU_PICOHSM_PKA, authenticator PIN)
/// answers CKR_PICOHSM_PIN_NEEDED, then C_Login(CKU_USER, PIN) completes.
#[test]
fn p11_kit_server_serves_a_pka_token_to_pkcs11_tool_and_openssl_in_another_process() {
    let _s = serial();
    let cards = primary_and_desk_authenticator();
    let (a, b) = (&cards[0], &cards[1]);
    let dir = a.dir().to_path_buf();
    let (file, _) = tool_export(b, "Authentication", "desk.pka");
    init_primary(a, "server-hsm", &file);

    let settings = settings_file(&dir, "server.toml", "");
    let log = dir.join("server.log");
    let log_spec = OsString::from(format!("info,{}", log.display()));
    let server = P11KitServer::start(
        &module_path(),
        "pkcs11:token=server-hsm",
        &[
            ("PICOHSM_PKCS11_CONFIG", settings.as_os_str()),
            ("PICOHSM_PKCS11_LOG", &log_spec),
        ],
    );

    let slots = ok(client_tool(server.address()).arg("--list-token-slots"));
    assert_contains(&slots, &["token label        : server-hsm"]);
    assert!(!slots.contains(": desk"), "only the served token:\n{slots}");

    let secret = format!("{PIN}:{AUTH_PIN}");
    let made = ok(client_tool(server.address())
        .args(["--login", "--pin", &secret, "--keypairgen"])
        .args(["--key-type", "EC:prime256v1", "--id", "01"]));
    assert_contains(&made, &["Key pair generated"]);
    let public = public_pem_with(client_tool(server.address()), "01", &dir);

    // p11-kit 0.24's RPC forwards only mechanisms it knows how to carry:
    // CKM_ECDSA_SHA256 is not among them, CKM_ECDSA over a digest is.
    let digest = digest_file(&dir, "data.sha256", b"signed in the server room");
    let sig = dir.join("tool.sig");
    ok(client_tool(server.address()).args(sign_args(&secret, "ECDSA", "01", &digest, &sig)));
    assert!(verifies(&public, &digest, &sig), "pkcs11-tool's signature");

    let conf = engine_conf(&dir, Some(Path::new(P11_KIT_CLIENT)));
    let mut openssl = Command::new("openssl");
    openssl.env("P11_KIT_SERVER_ADDRESS", server.address());
    let sig = dir.join("openssl.sig");
    let uri = "pkcs11:token=server-hsm;id=%01;type=private";
    ok(&mut engine_sign(
        openssl, &conf, uri, &secret, &digest, &sig,
    ));
    assert!(verifies(&public, &digest, &sig), "OpenSSL's signature");

    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.matches("scheme: granted").count() >= 3,
        "the server's module ran the PKA logins:\n{logged}"
    );

    let wrong = format!("{PIN}:000000");
    let out = run_cmd_allow_fail(client_tool(server.address()).args([
        "--login",
        "--pin",
        &wrong,
        "--list-objects",
    ]));
    assert!(
        !out.status.success() && text(&out).contains("0x80504b04"),
        "CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT through p11-kit:\n{}",
        text(&out)
    );

    vendor_user_type_through_the_client(server.address());
}

/// C_Login(CKU_PICOHSM_PKA) then C_Login(CKU_USER) through
/// `p11-kit-client.so`, loaded in this process; then an ECDSA signature
/// with key 01.
fn vendor_user_type_through_the_client(address: &str) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as P11Error, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    use picohsm_pkcs11::vendor::{CKR_PICOHSM_PIN_NEEDED, CKU_PICOHSM_PKA};

    // p11-kit-client.so reads the address from the environment.
    std::env::set_var("P11_KIT_SERVER_ADDRESS", address);
    let p11 = Pkcs11::new(P11_KIT_CLIENT).expect("load p11-kit-client.so");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = p11.get_slots_with_token().expect("C_GetSlotList")[0];
    let session = p11.open_rw_session(slot).expect("C_OpenSession");
    let pka = UserType::VendorExtension(CKU_PICOHSM_PKA as u32);
    match session.login(pka, Some(&AuthPin::from(AUTH_PIN))) {
        Err(P11Error::Pkcs11(RvError::VendorDefined(v), _)) => {
            assert_eq!(
                v, CKR_PICOHSM_PIN_NEEDED,
                "the quorum is in, the PIN is next"
            )
        }
        other => panic!("C_Login(CKU_PICOHSM_PKA): {other:?}"),
    }
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .expect("C_Login(CKU_USER) after the quorum");
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .expect("C_FindObjects")[0];
    let sig = session
        .sign(&Mechanism::Ecdsa, key, &[0x5A; 32])
        .expect("C_Sign through p11-kit");
    assert_eq!(sig.len(), 64);
    drop(session);
    p11.finalize().expect("C_Finalize");
    std::env::remove_var("P11_KIT_SERVER_ADDRESS");
}

/// The other way round: the admin's token at the desk unlocks the HSM in
/// the server room. `p11-kit server` serves the authenticator (token
/// `desk`, through this module); `picohsm-tool pka export --pkcs11-module
/// p11-kit-client.so` exports its key and `pka register` registers it on
/// the primary; the primary's settings name `p11-kit-client.so` as a
/// `pkcs11` authenticator, and pkcs11-tool logs in to the primary with
/// `<token PIN>:<authenticator PIN>`, generates a key and signs (openssl
/// verifies). With the server gone (the tunnel down), the login fails
/// with CKR_PICOHSM_AUTHENTICATOR_MISSING, not with advice to register
/// the key.
#[test]
fn an_authenticator_served_by_p11_kit_server_unlocks_the_primary_through_p11_kit_client() {
    let _s = serial();
    let cards = primary_and_desk_authenticator();
    let a = &cards[0];
    let dir = a.dir().to_path_buf();
    let server_settings = settings_file(&dir, "desk.toml", "");
    let server = P11KitServer::start(
        &module_path(),
        "pkcs11:token=desk",
        &[("PICOHSM_PKCS11_CONFIG", server_settings.as_os_str())],
    );

    let file = dir.join("remote.pka");
    let exported = ok(Command::new(tool_binary())
        .env("P11_KIT_SERVER_ADDRESS", server.address())
        .args(["pka", "export", "--pkcs11-module", P11_KIT_CLIENT])
        .args(["--token-label", "desk", "--key-label", "Authentication"])
        .args(["--pin", AUTH_PIN, "-o"])
        .arg(&file));
    assert_contains(&exported, &["token \"desk\"", "self-signed"]);
    init_primary(a, "server-room", &file);

    let settings = settings_file(
        &dir,
        "primary.toml",
        &format!(
            "login = \"pka+pin\"\nseparator = \":\"\n\n[[authenticator]]\ntype = \"pkcs11\"\n\
             module = \"{P11_KIT_CLIENT}\"\ntoken-label = \"desk\"\n"
        ),
    );
    let primary_tool = |address: &str| {
        let mut c = our_pkcs11_tool_command(a);
        c.env("PICOHSM_PKCS11_CONFIG", &settings)
            .env("PICOHSM_PKCS11_LOG", "info")
            .env("P11_KIT_SERVER_ADDRESS", address);
        c
    };
    let secret = format!("{PIN}:{AUTH_PIN}");
    let made = ok(primary_tool(server.address())
        .args(["--login", "--pin", &secret, "--keypairgen"])
        .args(["--key-type", "EC:prime256v1", "--id", "03"]));
    assert_contains(
        &made,
        &[
            "Key pair generated",
            &format!("authenticator: PKCS#11 module {P11_KIT_CLIENT}"),
            "scheme: granted",
        ],
    );
    let data = dir.join("data.txt");
    fs::write(&data, b"unlocked from the desk").unwrap();
    let sig = dir.join("primary.sig");
    ok(primary_tool(server.address()).args(sign_args(&secret, "ECDSA-SHA256", "03", &data, &sig)));
    let public = public_pem_with(primary_tool(server.address()), "03", &dir);
    openssl_ok(&common::tools::dgst_verify(
        "-sha256",
        &[],
        &public,
        &sig,
        &data,
    ));

    let address = server.address().to_string();
    drop(server);
    let out = run_cmd_allow_fail(primary_tool(&address).args([
        "--login",
        "--pin",
        &secret,
        "--list-objects",
    ]));
    assert!(
        !out.status.success() && text(&out).contains("0x80504b03"),
        "CKR_PICOHSM_AUTHENTICATOR_MISSING with the authenticator's server gone:\n{}",
        text(&out)
    );
}

/// The README's set-up with real ssh socket forwarding (an sshd on
/// loopback stands for the HSM's host). At the desk, `p11-kit server`
/// serves the authenticator and `ssh -R` forwards its socket to the HSM's
/// host; there, `picohsm-tool pka export --pkcs11-module p11-kit-client.so`
/// exports its key through the tunnel and `pka register` registers it, and
/// `p11-kit server` serves the primary with settings naming
/// `p11-kit-client.so` as the authenticator; `ssh -L` forwards that socket
/// back to the desk, where pkcs11-tool through `p11-kit-client.so` logs in
/// (the challenge crosses both tunnels to be signed at the desk), makes a
/// key and signs; openssl verifies.
#[test]
fn both_ways_through_ssh_socket_forwarding() {
    let _s = serial();
    let cards = primary_and_desk_authenticator();
    let a = &cards[0];
    let dir = a.dir().to_path_buf();
    let sshd = Sshd::start();
    let (desk, hsm_host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // At the desk: the authenticator served, its socket forwarded (-R).
    let desk_settings = settings_file(&dir, "desk.toml", "");
    let desk_server = P11KitServer::start(
        &module_path(),
        "pkcs11:token=desk",
        &[("PICOHSM_PKCS11_CONFIG", desk_settings.as_os_str())],
    );
    let remote_desk = hsm_host.path().join("desk");
    let spec = format!(
        "{}:{}",
        remote_desk.display(),
        desk_server.socket().display()
    );
    let _r = sshd.forward("-R", &spec, &remote_desk);
    let desk_address = format!("unix:path={}", remote_desk.display());

    // On the HSM's host: export and register through the tunnel, then serve.
    let file = dir.join("desk.pka");
    ok(Command::new(tool_binary())
        .env("P11_KIT_SERVER_ADDRESS", &desk_address)
        .args(["pka", "export", "--pkcs11-module", P11_KIT_CLIENT])
        .args(["--token-label", "desk", "--key-label", "Authentication"])
        .args(["--pin", AUTH_PIN, "-o"])
        .arg(&file));
    init_primary(a, "server-room", &file);
    let settings = settings_file(
        &dir,
        "hsm.toml",
        &format!(
            "login = \"pka+pin\"\nseparator = \":\"\n\n[[authenticator]]\ntype = \"pkcs11\"\n\
             module = \"{P11_KIT_CLIENT}\"\ntoken-label = \"desk\"\n"
        ),
    );
    let log = dir.join("hsm.log");
    let log_spec = OsString::from(format!("info,{}", log.display()));
    let hsm_server = P11KitServer::start(
        &module_path(),
        "pkcs11:token=server-room",
        &[
            ("PICOHSM_PKCS11_CONFIG", settings.as_os_str()),
            ("PICOHSM_PKCS11_LOG", &log_spec),
            ("P11_KIT_SERVER_ADDRESS", OsStr::new(&desk_address)),
        ],
    );

    // Back at the desk: the HSM's socket forwarded (-L) and used.
    let local_hsm = desk.path().join("pkcs11");
    let spec = format!("{}:{}", local_hsm.display(), hsm_server.socket().display());
    let _l = sshd.forward("-L", &spec, &local_hsm);
    let address = format!("unix:path={}", local_hsm.display());
    let secret = format!("{PIN}:{AUTH_PIN}");
    let made = ok(client_tool(&address)
        .args(["--login", "--pin", &secret, "--keypairgen"])
        .args(["--key-type", "EC:prime256v1", "--id", "04"]));
    assert_contains(&made, &["Key pair generated"]);
    let public = public_pem_with(client_tool(&address), "04", &dir);
    let digest = digest_file(&dir, "data.sha256", b"through two tunnels");
    let sig = dir.join("ssh.sig");
    ok(client_tool(&address).args(sign_args(&secret, "ECDSA", "04", &digest, &sig)));
    assert!(
        verifies(&public, &digest, &sig),
        "signed in the server room"
    );
    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert_contains(
        &logged,
        &[
            &format!("authenticator: PKCS#11 module {P11_KIT_CLIENT}"),
            "scheme: granted",
        ],
    );
}
