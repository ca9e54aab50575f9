//! PKA login through libpicohsm_pkcs11.so: pkcs11-tool (an unmodified
//! application: C_Login(CKU_USER) with one secret) and the vendor user type
//! from Rust, against picohsm-vcard primaries and authenticators behind
//! pcscd. Every signature made after a PKA login is checked by openssl.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pka::*;
use common::tools::{dgst_verify, keypairgen, op, OPENSSL_FORMAT, OURS};
use common::*;
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use picohsm_pkcs11::vendor::{
    CKA_PICOHSM_PKA_AUTHENTICATED, CKA_PICOHSM_PKA_REQUIRED, CKA_PICOHSM_PKA_TOTAL,
    CKO_PICOHSM_PKA_STATUS, CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT,
    CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED, CKR_PICOHSM_KEY_NOT_REGISTERED, CKR_PICOHSM_PIN_NEEDED,
    CKR_PICOHSM_PKA_MORE_NEEDED, CKR_PICOHSM_PKA_NOT_CONFIGURED, CKR_PICOHSM_SIGNATURE_REFUSED,
    CKU_PICOHSM_PKA,
};
use picohsm_wire::curve::Curve;

/// pkcs11-tool through this module with settings file `config` (none:
/// no settings) and its log on, whatever its exit status.
fn ours<I, S>(card: &VCard, config: Option<&Path>, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = OURS.command(card);
    if let Some(p) = config {
        c.env("PICOHSM_PKCS11_CONFIG", p);
    }
    c.env("PICOHSM_PKCS11_LOG", "info");
    run_cmd_allow_fail(c.args(args))
}

/// Writes the settings file `name` (TOML, after [`TEST_CHAINS`]) in
/// `card`'s directory.
fn settings(card: &VCard, name: &str, toml: &str) -> PathBuf {
    let path = card.dir().join(name);
    write_settings(&path, toml);
    path
}

/// `--login --pin secret` and then `args`.
fn login_and<S: Into<String>>(secret: &str, args: impl IntoIterator<Item = S>) -> Vec<String> {
    let login = ["--login", "--pin", secret].map(String::from);
    login
        .into_iter()
        .chain(args.into_iter().map(Into::into))
        .collect()
}

/// Generates an EC P-256 key (id `id`) on the primary through our module,
/// then signs with it and checks the signature with openssl; `secret` is
/// what the user types, `config` the settings file.
fn keygen_sign_verify(a: &VCard, config: Option<&Path>, secret: &str, id: &str) {
    let keygen = keypairgen("EC:prime256v1", id, "signing");
    let out = ours(a, config, login_and(secret, keygen));
    assert!(
        out.status.success() && text(&out).contains("Key pair generated"),
        "{}",
        text(&out)
    );
    let dir = a.dir();
    let data = dir.join("data.txt");
    fs::write(&data, b"signed after a PKA login").unwrap();
    let sig = dir.join("sig.bin");
    let sign = op("--sign", "ECDSA-SHA256", id, &data, &sig, OPENSSL_FORMAT);
    let out = ours(a, config, login_and(secret, sign));
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("EXTERNAL AUTHENTICATE: accepted") || log.contains("granted"),
        "the module logs the PKA steps: {log}"
    );
    let mut read = OURS.command(a);
    if let Some(p) = config {
        read.env("PICOHSM_PKCS11_CONFIG", p);
    }
    let pem = public_pem_with(read, id, dir);
    openssl_ok(&dgst_verify("-sha256", &[], &pem, &sig, &data));
}

/// The block of `pkcs11-tool --list-token-slots` output for `card`'s slot.
fn slot_block<'a>(listing: &'a str, card: &VCard) -> &'a str {
    listing
        .split("Slot ")
        .find(|b| {
            b.lines()
                .next()
                .is_some_and(|l| l.ends_with(card.reader_name()))
        })
        .unwrap_or_else(|| panic!("{listing}"))
}

/// A primary with PKA `n`-of-`m` and the test PIN (`[0]`), and
/// `authenticators` cards with the test PIN.
fn primary_and_authenticators(authenticators: usize, n: u8, m: u8) -> Vec<VCard> {
    let cards = VCard::start_many(1 + authenticators);
    for b in &cards[1..] {
        init_authenticator(b, PIN);
    }
    init_pka(&cards[0], n, m);
    cards
}

/// Two cards: a primary with PKA 1-of-1 and the test PIN (`[0]`), and an
/// authenticator with user PIN `b_pin` (`[1]`) whose key 1 on `curve` is
/// registered on the primary.
fn one_of_one(b_pin: &str, curve: Curve) -> Vec<VCard> {
    let cards = VCard::start_many(2);
    init_authenticator(&cards[1], b_pin);
    init_pka(&cards[0], 1, 1);
    let (file, _) = firmware_key_with_pin(&cards[1], 1, curve, b_pin);
    register_all(&cards[0], &[file]);
    cards
}

#[test]
fn pkcs11_tool_logs_in_with_pka_and_pin_without_any_config() {
    let _s = serial();
    let cards = primary_and_authenticators(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    // An OpenSC-made key (placeholder CAR), exported by sc-hsm-tool.
    let (file, _) = opensc_key(b, "EC:prime256v1", "21");
    register_all(a, &[file]);
    // One secret would reach a card found on its own: refused before any
    // card hears it (CKR_PICOHSM_SECRETS_NOT_SPLIT).
    let out = ours(a, None, login_and(PIN, ["--list-objects"]));
    assert!(
        !out.status.success() && text(&out).contains("0x80504b0a"),
        "{}",
        text(&out)
    );
    // The token's PIN, then the authenticator's (here the same digits).
    let secret = format!("{PIN}:{PIN}");
    keygen_sign_verify(a, None, &secret, "01");

    // Without the authenticator, the same command fails precisely.
    let mut cards = cards;
    cards[1].stop();
    let out = ours(&cards[0], None, login_and(&secret, ["--list-objects"]));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("0x80504b03") || text(&out).contains("80504B03"),
        "CKR_PICOHSM_AUTHENTICATOR_MISSING: {}",
        text(&out)
    );
}

#[test]
fn pkcs11_tool_with_config_pka_pin_one_secret_and_a_separator() {
    let _s = serial();
    let b_pin = "271828";
    let cards = one_of_one(b_pin, Curve::BrainpoolP256r1);
    let a = &cards[0];
    let config = settings(
        a,
        "config.toml",
        &format!(
            "login = \"pka+pin\"\nseparator = \":\"\n[[authenticator]]\ntype = \"smartcard-hsm\"\nreader = \"{}\"\n",
            cards[1].reader_name()
        ),
    );
    let secret = format!("{PIN}:{b_pin}");
    keygen_sign_verify(a, Some(&config), &secret, "02");

    // The wrong authenticator PIN: its own code, and the primary's PIN
    // counter is untouched.
    let wrong = format!("{PIN}:000000");
    let out = ours(a, Some(&config), login_and(&wrong, ["--list-objects"]));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("0x80504b04"),
        "CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT: {}",
        text(&out)
    );
    let info = text(&ours(a, Some(&config), ["--list-token-slots"]));
    let primary = slot_block(&info, a);
    assert!(
        primary.contains("PIN initialized") && !primary.contains("count low"),
        "{primary}"
    );

    // One secret for both, when both PINs are the same and the
    // authenticator is named in the settings.
    let cards2 = one_of_one(PIN, Curve::P256);
    let same = settings(
        a,
        "same.toml",
        &format!(
            "login = \"pka+pin\"\nseparator = \":\"\n[[authenticator]]\ntype = \"smartcard-hsm\"\nreader = \"{}\"\n",
            cards2[1].reader_name()
        ),
    );
    keygen_sign_verify(&cards2[0], Some(&same), PIN, "03");
}

fn rv(e: P11Error) -> u64 {
    match e {
        P11Error::Pkcs11(RvError::VendorDefined(v), _) => v,
        P11Error::Pkcs11(rv, f) => panic!("not a vendor code: {rv:?} from {f:?}"),
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

fn pka_login(session: &Session, pin: &str) -> Result<(), P11Error> {
    let pka = UserType::VendorExtension(CKU_PICOHSM_PKA as u32);
    session.login(pka, Some(&AuthPin::from(pin)))
}

/// The PKA status object's (total, required, authenticated).
fn progress(session: &Session) -> (u64, u64, u64) {
    // cryptoki has no vendor object class: CKA_CLASS given as raw bytes.
    let class = Attribute::VendorDefined((
        AttributeType::Class,
        CKO_PICOHSM_PKA_STATUS.to_ne_bytes().to_vec(),
    ));
    let found = session.find_objects(&[class]).unwrap();
    assert_eq!(found.len(), 1, "one PKA status object");
    let get = |t: u64| {
        let a = session
            .get_attributes(found[0], &[AttributeType::VendorDefined(t)])
            .unwrap();
        match &a[0] {
            Attribute::VendorDefined((_, v)) => u64::from_ne_bytes(v[..8].try_into().unwrap()),
            other => panic!("{other:?}"),
        }
    };
    (
        get(CKA_PICOHSM_PKA_TOTAL),
        get(CKA_PICOHSM_PKA_REQUIRED),
        get(CKA_PICOHSM_PKA_AUTHENTICATED),
    )
}

#[test]
fn vendor_user_type_two_of_three_with_progress_then_the_pin() {
    let _s = serial();
    let cards = primary_and_authenticators(2, 3, 2);
    let (a, b, c) = (&cards[0], &cards[1], &cards[2]);
    let (k1, _) = firmware_key(b, 1, Curve::P256);
    let (k2, _) = firmware_key(c, 1, Curve::BrainpoolP256r1);
    let (k3, _) = firmware_key(c, 2, Curve::P256);
    // Past m = 2 keys, registering needs the quorum (docs/protocol.md §6.3).
    register_all_by(a, &[(b, 1, k1), (c, 1, k2), (c, 2, k3)]);

    let p11 = our_module();
    let slot = slot_of(&p11, a);
    let session = p11.open_rw_session(slot).unwrap();
    assert_eq!(progress(&session), (3, 2, 0));
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_PKA_MORE_NEEDED
    );
    assert_eq!(progress(&session), (3, 2, 1), "one accepted");
    // Not logged in yet: private objects stay hidden.
    assert!(session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .is_empty());
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_PIN_NEEDED,
        "quorum reached; this token also has a PIN"
    );
    assert_eq!(progress(&session).2, 2);
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    // Logged in: a key can be made and used.
    let (_, prv) = p256_key_pair(&session, 9, None).unwrap();
    let sig = session.sign(&Mechanism::Ecdsa, prv, &[5u8; 32]).unwrap();
    assert_eq!(sig.len(), 64);
    assert!(matches!(
        session.login(UserType::User, Some(&AuthPin::from(PIN))),
        Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _))
    ));
}

#[test]
fn vendor_path_failures_have_their_own_codes() {
    let _s = serial();
    let cards = primary_and_authenticators(2, 1, 1);
    let (a, b, plain) = (&cards[0], &cards[1], &cards[2]);
    let p11 = our_module();

    // A token without PKA.
    let s_plain = p11.open_ro_session(slot_of(&p11, plain)).unwrap();
    assert_eq!(
        rv(pka_login(&s_plain, PIN).unwrap_err()),
        CKR_PICOHSM_PKA_NOT_CONFIGURED
    );
    drop(s_plain);

    // PKA set up, but no key registered yet.
    let session = p11.open_ro_session(slot_of(&p11, a)).unwrap();
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_PKA_NOT_CONFIGURED
    );

    // A key registered, but the authenticators hold other keys only.
    let (registered, _) = firmware_key(b, 1, Curve::P256);
    register_all(a, &[registered]);
    let mut bc = Conn::logged_in(b);
    // Replace B's key 1 by another one: the registered CHR is gone from B.
    for file in [[0xCC, 0x01], [0xCE, 0x01]] {
        bc.ok(&picohsm_wire::apdu::build(0, 0xE4, 0x02, 0x00, &file, 0));
    }
    drop(bc);
    let _ = firmware_key(b, 2, Curve::P256);
    // Registering reset the primary (the pcsc crate's Card resets on drop):
    // another process's reset is CKR_DEVICE_REMOVED, and the session is gone.
    assert!(matches!(
        pka_login(&session, PIN),
        Err(P11Error::Pkcs11(RvError::DeviceRemoved, _))
    ));
    assert!(matches!(
        session.get_session_info(),
        Err(P11Error::Pkcs11(RvError::SessionHandleInvalid, _))
    ));
    let session = p11.open_ro_session(slot_of(&p11, a)).unwrap();
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_KEY_NOT_REGISTERED
    );
    assert_eq!(progress(&session).2, 0, "nothing changed on the primary");
}

#[test]
fn a_wrong_signature_is_refused_and_the_wrong_pin_costs_the_authenticator() {
    let _s = serial();
    let cards = one_of_one(PIN, Curve::P256);
    let (a, b) = (&cards[0], &cards[1]);
    let p11 = our_module();
    let session = p11.open_ro_session(slot_of(&p11, a)).unwrap();
    assert_eq!(
        rv(pka_login(&session, "000000").unwrap_err()),
        CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT
    );
    let mut bc = Conn::open(b);
    bc.select();
    assert_eq!(
        bc.tx(&picohsm_wire::apdu::build(0, 0x20, 0, 0x81, &[], 0))
            .1,
        0x63C2,
        "the authenticator counted the try"
    );
    drop(bc);
    // The primary's PIN tries are untouched.
    assert!(!p11
        .get_token_info(slot_of(&p11, a))
        .unwrap()
        .user_pin_count_low());

    // A key registered under the name of B's key but with another public
    // key (registered by hand, as a careless admin could): B's signature
    // is refused by the primary.
    drop(session);
    let cards2 = VCard::start_many(1);
    let a2 = &cards2[0];
    init_pka(a2, 1, 1);
    let chr = chr_of(&parse_pka_file(&firmware_key(b, 3, Curve::P256).0).0);
    let impostor = impostor_request(&chr);
    let mut ac = Conn::logged_in(a2);
    assert_eq!(ac.register_request(&impostor).1, 0x9000);
    drop(ac);
    let session = p11.open_ro_session(slot_of(&p11, a2)).unwrap();
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_SIGNATURE_REFUSED
    );
    assert_eq!(progress(&session), (1, 1, 0));

    // Wrong authenticator PINs block B's PIN (3 tries), and a blocked
    // authenticator PIN has its own code, the right PIN included.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(rv(pka_login(&session, "000000").unwrap_err()));
    }
    assert_eq!(
        codes,
        [
            // 63C2, 63C1, then 6983: the third wrong try blocks.
            CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT,
            CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT,
            CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED,
            CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED
        ],
        "{codes:x?}"
    );
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED
    );
}

/// An authenticated request (docs/protocol.md §6.2) named `chr`, for a key only this test
/// knows, with valid inner and outer signatures by that key.
fn impostor_request(chr: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use picohsm_wire::cvc;
    let key = SigningKey::from_slice(&[0x42u8; 32]).unwrap();
    let point = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
    let pk = cvc::ec_public_key(cvc::oid::ECDSA_SHA256, Curve::P256, &point);
    let body = cvc::build_body(Some(chr), &pk, chr, &[]);
    let sig: Signature = key.sign(&body);
    let cert = cvc::build_cvc(&body, &sig.to_bytes());
    let outer: Signature = key.sign(&cvc::outer_signed_data(&cert, chr));
    let req = cvc::build_auth_request(&cert, chr, &outer.to_bytes());
    // What the register command carries: the content of tag 67.
    picohsm_wire::tlv::parse_one(&req).unwrap().0.value.to_vec()
}

/// p11-kit hands a module file's `x-init-reserved` to C_Initialize: the
/// settings (pka+pin with a separator, the authenticator's reader) come
/// from there alone, through p11-kit's proxy module.
#[test]
fn p11_kit_proxy_passes_the_settings_in_x_init_reserved() {
    let _s = serial();
    let b_pin = "314159";
    let cards = one_of_one(b_pin, Curve::P256);
    let (a, b) = (&cards[0], &cards[1]);

    let home = a.dir().join("home");
    let modules = home.join(".config/pkcs11/modules");
    fs::create_dir_all(&modules).unwrap();
    fs::write(
        modules.join("picohsm.module"),
        format!(
            "module: {}\nx-init-reserved: login=pka+pin; separator=:; allow-test-chains=true; authenticator-reader={}\n",
            module_path().display(),
            b.reader_name()
        ),
    )
    .unwrap();
    // Only our module behind the proxy (OpenSC's would SELECT every card).
    for other in ["opensc-pkcs11", "softhsm2", "p11-kit-trust"] {
        fs::write(
            modules.join(format!("{other}.module")),
            "disable-in: pkcs11-tool p11-kit\n",
        )
        .unwrap();
    }
    // p11-kit ignores user configuration in a process running as root
    // (as CI does): there, run the client as uid 1000 in a user namespace
    // (pcscd still sees root through the socket's credentials).
    let as_user = |program: &str| {
        let mut c = if running_as_root() {
            let mut c = Command::new("unshare");
            c.args(["--user", "--map-user=1000", "--map-group=1000", program]);
            c
        } else {
            Command::new(program)
        };
        c.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"));
        c
    };
    let listed = text(&run_cmd(as_user("p11-kit").arg("list-modules")));
    assert!(
        listed.contains("picohsm") && !listed.contains("opensc-pkcs11"),
        "{listed}"
    );

    let proxy = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";
    let tool = |args: &[&str]| {
        let out = run_cmd_allow_fail(
            as_user("pkcs11-tool")
                .env_remove("PICOHSM_PKCS11_CONFIG")
                .env("PICOHSM_PKCS11_LOG", "debug")
                .args(["--module", proxy, "--slot-description", a.reader_name()])
                .args(args),
        );
        (out.status.success(), text(&out))
    };
    let secret = format!("{PIN}:{b_pin}");
    let (ok, t) = tool(&[
        "--login",
        "--pin",
        &secret,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "05",
    ]);
    assert!(ok && t.contains("Key pair generated"), "{t}");
    // Without the settings the same secret would be one PIN for both and
    // fail: the authenticator refuses "648219:314159".
    let (ok, t) = tool(&["--login", "--pin", b_pin, "--list-objects"]);
    assert!(!ok, "the token PIN part is missing: {t}");
}

/// Whether this process runs as root (uid 0), from /proc.
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn pkcs11_tool_on_a_pka_only_token_with_config_pka() {
    let _s = serial();
    let cards = VCard::start_many(2);
    let (a, b) = (&cards[0], &cards[1]);
    init_authenticator(b, PIN);
    let (file, _) = firmware_key(b, 1, Curve::P256);
    let mut c = init_pka_only(a, 1, 1);
    assert_eq!(c.register(&file).1, 0x9000);
    drop(c);
    let config = settings(a, "pka.toml", "login = \"pka\"\n");
    // The token has no PIN, but a login: its token info says so.
    let slots = text(&ours(a, Some(&config), ["--list-token-slots"]));
    let block = slot_block(&slots, a);
    assert!(block.contains("PIN initialized"), "{block}");
    // The secret is the authenticator's PIN; the token has no PIN at all.
    keygen_sign_verify(a, Some(&config), PIN, "04");
    // With `pin` the same secret is a VERIFY the token cannot answer.
    let pin_only = settings(a, "pin.toml", "login = \"pin\"\n");
    let out = ours(a, Some(&pin_only), login_and(PIN, ["--list-objects"]));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("CKR_USER_PIN_NOT_INITIALIZED"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_rsa_authenticator_key_logs_in_through_the_vendor_path() {
    let _s = serial();
    let cards = primary_and_authenticators(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    let (file, _) = firmware_rsa_key(b, 1, 2048);
    register_all(a, &[file]);
    let p11 = our_module();
    let session = p11.open_rw_session(slot_of(&p11, a)).unwrap();
    assert_eq!(
        rv(pka_login(&session, PIN).unwrap_err()),
        CKR_PICOHSM_PIN_NEEDED
    );
    assert_eq!(progress(&session), (1, 1, 1));
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    assert!(p256_key_pair(&session, 3, None).is_ok());
}

/// SoftHSM2 as the authenticator through the module's PKCS#11 backend,
/// for an unmodified application: keys on secp256r1 and brainpoolP256r1
/// exported by `picohsm-tool pka export --pkcs11-module`, registered on a
/// 2-of-2 primary, and one `pkcs11-tool --login` that signs both
/// challenges with SoftHSM (config: a `pkcs11` authenticator).
#[test]
fn softhsm2_authenticates_through_the_pkcs11_backend() {
    use common::softhsm::*;
    let _s = serial();
    let cards = VCard::start_many(1);
    let a = &cards[0];
    init_pka(a, 2, 2);
    let hsm = SoftHsm::new("auth");
    hsm.keygen("EC:prime256v1", "p256", "01");
    hsm.keygen("EC:brainpoolP256r1", "bp256", "02");
    let mut files = Vec::new();
    for id in ["01", "02"] {
        let f = a.dir().join(format!("softhsm-{id}.pka"));
        run_cmd(
            Command::new(tool_binary())
                .env("SOFTHSM2_CONF", &hsm.conf)
                .args(["pka", "export", "--pkcs11-module"])
                .arg(softhsm_module())
                .args([
                    "--token-label",
                    "auth",
                    "--key-id",
                    id,
                    "--pin",
                    SOFTHSM_PIN,
                    "-o",
                ])
                .arg(&f),
        );
        files.push(fs::read(&f).unwrap());
    }
    // The exported requests name their keys by the module's CHR rule.
    for f in &files {
        let (req, _, _) = parse_pka_file_any(f);
        let chr = chr_of(&req);
        assert!(chr.starts_with(b"ZZ") && chr.len() == 16, "{chr:?}");
    }
    let mut c = Conn::logged_in(a);
    for f in &files {
        let (req, _, _) = parse_pka_file_any(f);
        assert_eq!(c.register_request(&req).1, 0x9000);
    }
    drop(c);
    let config = settings(
        a,
        "softhsm.toml",
        &format!(
            "login = \"pka+pin\"\nseparator = \":\"\n[[authenticator]]\ntype = \"pkcs11\"\nmodule = \"{}\"\ntoken-label = \"auth\"\n",
            softhsm_module().display()
        ),
    );
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    let secret = format!("{PIN}:{SOFTHSM_PIN}");
    keygen_sign_verify(a, Some(&config), &secret, "06");

    // A wrong SoftHSM PIN is the authenticator's, not the primary's.
    let wrong = format!("{PIN}:000000");
    let out = ours(a, Some(&config), login_and(&wrong, ["-O"]));
    assert!(text(&out).contains("0x80504b04"), "{}", text(&out));
}

/// The register payload (content of tag 67) of a PKA file, whichever of the
/// two layouts (`30 { 67 …, 7F21 …, 7F21 … }`, or a bare `67 …`).
fn parse_pka_file_any(file: &[u8]) -> (Vec<u8>, (), ()) {
    let (outer, _) = picohsm_wire::tlv::parse_one(file).unwrap();
    let req = if outer.tag == 0x67 {
        outer.value.to_vec()
    } else {
        let items = picohsm_wire::tlv::parse_all(outer.value).unwrap();
        assert_eq!(items[0].tag, 0x67);
        items[0].value.to_vec()
    };
    (req, (), ())
}

#[test]
fn a_decoy_of_the_registered_name_is_tried_refused_and_passed_over() {
    let _s = serial();
    // The primary, then two authenticators in reader order: the decoy is
    // found first.
    let cards = primary_and_authenticators(2, 1, 1);
    let (a, decoy, real) = (&cards[0], &cards[1], &cards[2]);
    let chr = tool_keygen(real, "Authentication", &[]);
    let (file, _) = tool_export(real, "Authentication", "real.pka");
    register_all(a, &[fs::read(&file).unwrap()]);
    // Another device's key under the same name, as OpenSC names every key.
    assert_eq!(tool_keygen(decoy, "Decoy", &["--chr", &chr]), chr);

    // No settings: every other SmartCard-HSM is a candidate (and gets the
    // authenticator part of the secret only).
    let out = ours(
        a,
        None,
        login_and(&format!("{PIN}:{PIN}"), ["--list-objects"]),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("refused the signature of") && t.contains("\"Decoy\""),
        "the decoy is named as tried and refused:\n{t}"
    );
    assert!(
        t.contains("accepted") && t.contains("\"Authentication\""),
        "{t}"
    );
}

#[test]
fn two_devices_of_one_serial_register_as_two_of_two_and_log_in() {
    let _s = serial();
    // The primary, and two authenticators named as upstream Pico HSMs are:
    // the shared serial ESPICOHSMTR and 5 characters of their own.
    let mut opts = vec![Options::default()];
    for name in ["ESPICOHSMTRAAAA1", "ESPICOHSMTRBBBB2"] {
        opts.push(Options {
            device_name: Some(name.into()),
            ..Default::default()
        });
    }
    let cards = VCard::start_many_with(opts);
    for b in &cards[1..] {
        init_authenticator(b, PIN);
    }
    init_pka(&cards[0], 2, 2);
    let mut files = Vec::new();
    let mut chrs = Vec::new();
    for b in &cards[1..] {
        chrs.push(tool_keygen(b, "Authentication", &[]));
        let (file, _) = tool_export(b, "Authentication", "auth.pka");
        files.push(fs::read(&file).unwrap());
    }
    assert_ne!(chrs[0], chrs[1]);
    register_all(&cards[0], &files);
    // PKA (both devices, one round each) and the PIN, the token's PIN
    // and the authenticators' split.
    keygen_sign_verify(&cards[0], None, &format!("{PIN}:{PIN}"), "05");
}

#[test]
fn a_key_made_through_the_module_is_an_authenticator() {
    let _s = serial();
    let cards = primary_and_authenticators(1, 1, 1);
    let (a, b) = (&cards[0], &cards[1]);
    let made = ours(
        b,
        None,
        login_and(PIN, keypairgen("EC:prime256v1", "31", "Authentication")),
    );
    assert!(
        made.status.success() && text(&made).contains("Key pair generated"),
        "{}",
        text(&made)
    );
    let (file, _) = tool_export(b, "Authentication", "module-key.pka");
    let data = fs::read(&file).unwrap();
    let (request, _, _) = parse_pka_file(&data);
    let r = picohsm_wire::cvc::AuthRequest::parse(&request).unwrap();
    assert_eq!(
        r.cert.car,
        Some(r.cert.chr),
        "CAR = CHR, as the upstream firmware wants of an authenticator"
    );
    register_all(a, &[data]);
    keygen_sign_verify(a, None, &format!("{PIN}:{PIN}"), "06");
}
