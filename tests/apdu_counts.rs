//! APDU counts of the module's start-up and login paths (issue 14), read
//! from the virtual card's APDU log: deterministic, unlike times.
//!
//! - From C_Initialize to the first signature on a token with N EC P-256
//!   keys, each with a certificate in its `CExx`: at most 40 APDUs at
//!   N = 32, and each added key costs at most one more up to 128 keys.
//! - A PKA 1-of-1 login after the first login of the process: at most 4
//!   APDUs on the primary.
//! - Writes (a key pair, its certificate, then a listing of the
//!   certificates, as NSS's certutil does): as many APDUs at 40 keys as at
//!   8; only what the module wrote is read again.
//! - C_GetTokenInfo, called over and over by NSS and Firefox: one APDU
//!   (the user PIN's state) after the first call, until the module
//!   changes the card or tries the SO-PIN.
//!
//! The keys are made through the module (C_GenerateKeyPair) and the
//! certificates stored with the key's CKA_ID (C_CreateObject), as an
//! application does; one card grows from 1 to 128 keys and is counted on
//! the way.

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use common::pka_token::PkaToken;
use common::{find_by_id, serial, slot_of, tools, VCard, PIN};

/// The digest every signature is made on.
const DIGEST: [u8; 32] = [0x5A; 32];
/// At most this many APDUs to the first signature with 32 keys.
const FIRST_SIGNATURE_AT_32: usize = 40;
/// At most this many APDUs per key added.
const PER_KEY: usize = 1;
/// At most this many APDUs on the primary for a PKA 1-of-1 login after
/// the first login of the process.
const LATER_PKA_LOGIN: usize = 4;

/// The command APDUs (`> …` lines) the card logged.
fn commands(card: &VCard) -> Vec<String> {
    card.apdu_log()
        .into_iter()
        .filter(|l| l.starts_with('>'))
        .collect()
}

/// A self-signed X.509 certificate (DER) made by openssl: what the key
/// certificates hold (< 1 KiB, as a P-256 certificate is).
fn certificate(dir: &std::path::Path) -> Vec<u8> {
    let der = tools::self_signed_cert(dir, "apdu-counts", "/CN=apdu counts");
    std::fs::read(der).expect("certificate")
}

/// The module loaded and initialised.
fn module() -> Pkcs11 {
    let p11 = Pkcs11::new(common::module_path()).expect("load the module");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p11
}

/// Adds keys `from..=to` (CKA_ID `[id]`), each with `cert` as its
/// certificate, through the module.
fn add_keys(card: &VCard, cert: &[u8], from: u8, to: u8) {
    let p11 = module();
    let session = common::user_session(&p11, slot_of(&p11, card));
    for id in from..=to {
        new_key(&session, id);
        common::store_certificate(&session, id, &format!("key {id:02x}"), cert);
    }
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// C_GenerateKeyPair of an EC P-256 key pair with CKA_ID `[id]` and
/// label `key <id>`.
fn new_key(session: &Session, id: u8) {
    common::p256_key_pair(session, id, Some(&format!("key {id:02x}")))
        .unwrap_or_else(|e| panic!("C_GenerateKeyPair {id:02x}: {e}"));
}

/// The command APDUs from C_Initialize to the first signature with the
/// key of CKA_ID `[id]`: C_Initialize, C_GetSlotList, C_OpenSession,
/// C_Login(USER), C_FindObjectsInit(CLASS = PRIVATE_KEY, ID), C_FindObjects,
/// C_SignInit, C_Sign.
fn first_signature(card: &VCard, id: u8) -> Vec<String> {
    card.clear_apdu_log();
    let p11 = module();
    let slot = p11
        .get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description() == card.reader_name())
        })
        .expect("the card's slot");
    let session = p11.open_ro_session(slot).expect("C_OpenSession");
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .expect("C_Login");
    let found = find_by_id(&session, ObjectClass::PRIVATE_KEY, id);
    assert_eq!(found.len(), 1, "the private key {id:02x}");
    let sig = session
        .sign(&Mechanism::Ecdsa, found[0], &DIGEST)
        .expect("C_Sign");
    assert_eq!(sig.len(), 64);
    let cmds = commands(card);
    drop(session);
    p11.finalize().expect("C_Finalize");
    let sign = cmds
        .iter()
        .position(|c| c.starts_with("> 80 68 "))
        .expect("a SIGN APDU in the log");
    cmds[..=sign].to_vec()
}

/// A user with a token of 1, then 32, 33 and 128 keys, each with a
/// certificate, starts an application that finds one key by CKA_ID and
/// signs: the APDUs to that first signature stay at most 40 with 32 keys
/// and grow by at most one per key.
#[test]
fn first_signature_apdus_grow_by_at_most_one_per_key() {
    let _s = serial();
    let card = tools::initialised_card();
    let cert = certificate(card.dir());
    let mut counts = Vec::new();
    let mut have = 0u8;
    for n in [1u8, 32, 33, 128] {
        add_keys(&card, &cert, have + 1, n);
        have = n;
        let cmds = first_signature(&card, 1);
        eprintln!("{n} keys: {} APDUs", cmds.len());
        counts.push((n, cmds));
    }
    for (n, cmds) in &counts {
        assert!(
            !cmds.iter().any(|c| c.starts_with("> 00 B1 CE")),
            "{n} keys: a certificate (CExx) read to find a key by CKA_ID and sign:\n{}",
            cmds.join("\n")
        );
    }
    let count = |n: u8| counts.iter().find(|(k, _)| *k == n).unwrap().1.len();
    let at32 = &counts.iter().find(|(k, _)| *k == 32).unwrap().1;
    assert!(
        at32.len() <= FIRST_SIGNATURE_AT_32,
        "{} APDUs to the first signature with 32 keys (at most {FIRST_SIGNATURE_AT_32}):\n{}",
        at32.len(),
        at32.join("\n")
    );
    assert!(
        count(33) <= count(32) + PER_KEY,
        "one more key: {} → {} APDUs",
        count(32),
        count(33)
    );
    assert!(
        count(128) <= count(32) + 96 * PER_KEY,
        "96 more keys: {} → {} APDUs",
        count(32),
        count(128)
    );
    assert!(count(1) <= count(32), "fewer keys, fewer APDUs");
}

/// C_Login(CKU_USER) with the authenticator's PIN (the token's settings
/// say `login = "pka"`).
fn logged_in_pka(session: &Session) {
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .expect("C_Login with the authenticator's PIN");
}

/// A user of a PKA 1-of-1 token logs in, out, and in again in one
/// process: the second login sends at most 4 APDUs to the primary (status,
/// challenge, key selection, the authenticator's signature), since the
/// device name and the registered keys are known from the first.
#[test]
fn a_later_pka_one_of_one_login_sends_at_most_four_apdus_to_the_primary() {
    let _s = serial();
    let token = PkaToken::start();
    let primary = token.primary();
    std::env::set_var("PICOHSM_PKCS11_CONFIG", &token.settings);
    let p11 = module();
    let slot = slot_of(&p11, primary);
    let session = p11.open_ro_session(slot).expect("C_OpenSession");
    logged_in_pka(&session);
    session.logout().expect("C_Logout");
    primary.clear_apdu_log();
    logged_in_pka(&session);
    let cmds = commands(primary);
    drop(session);
    p11.finalize().expect("C_Finalize");
    std::env::set_var("PICOHSM_PKCS11_CONFIG", common::harness_settings());
    eprintln!(
        "later PKA 1-of-1 login: {} APDUs on the primary",
        cmds.len()
    );
    assert!(
        cmds.len() <= LATER_PKA_LOGIN,
        "{} APDUs on the primary for a later PKA login (at most {LATER_PKA_LOGIN}):\n{}",
        cmds.len(),
        cmds.join("\n")
    );
    assert!(
        cmds.iter().any(|c| c.starts_with("> 00 82 ")),
        "the card checked a signature (EXTERNAL AUTHENTICATE):\n{}",
        cmds.join("\n")
    );
}

/// The `CExx` files (key certificates or requests) the card was asked for.
fn cexx_reads(card: &VCard) -> Vec<String> {
    commands(card)
        .into_iter()
        .filter(|c| c.starts_with("> 00 B1 CE"))
        .collect()
}

/// An application finds keys by CKA_ID and by label (no certificate read),
/// then asks for one key's certificate: that certificate alone is read,
/// once; its value is the stored one, and asking again reads nothing.
#[test]
fn a_key_certificate_is_read_when_asked_for_and_kept() {
    let _s = serial();
    let card = tools::initialised_card();
    let cert = certificate(card.dir());
    add_keys(&card, &cert, 1, 3);
    let p11 = module();
    let session = common::user_session(&p11, slot_of(&p11, &card));
    card.clear_apdu_log();
    let by_id = common::find_by_id(&session, ObjectClass::PRIVATE_KEY, 2);
    let by_label = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"key 03".to_vec()),
        ])
        .expect("C_FindObjects");
    assert_eq!((by_id.len(), by_label.len()), (1, 1));
    assert_eq!(cexx_reads(&card), Vec::<String>::new(), "finding keys");

    let certs = common::find_by_id(&session, ObjectClass::CERTIFICATE, 2);
    assert_eq!(certs.len(), 1, "the certificate of key 02");
    let value = session
        .get_attributes(certs[0], &[cryptoki::object::AttributeType::Value])
        .expect("C_GetAttributeValue");
    assert!(matches!(&value[0], Attribute::Value(v) if *v == cert));
    let reads = cexx_reads(&card);
    assert_eq!(reads.len(), 1, "one CExx read: {reads:?}");
    assert!(reads[0].starts_with("> 00 B1 CE 02"), "{reads:?}");

    card.clear_apdu_log();
    assert_eq!(
        common::find_by_id(&session, ObjectClass::CERTIFICATE, 2),
        certs
    );
    let publics = common::find_by_id(&session, ObjectClass::PUBLIC_KEY, 2);
    assert_eq!(publics.len(), 1, "the public key of key 02");
    session
        .get_attributes(publics[0], &[cryptoki::object::AttributeType::EcPoint])
        .expect("CKA_EC_POINT");
    assert_eq!(commands(&card), Vec::<String>::new(), "kept: no APDU");
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// Keys made through OpenSC's module (pkcs11-tool), P-256 and RSA-2048,
/// are described well enough by OpenSC's PrKDs: this module finds them by
/// CKA_ID and signs without reading a request.
#[test]
fn keys_made_through_opensc_sign_without_a_request_read() {
    let _s = serial();
    let card = tools::initialised_card();
    tools::keypairgens(
        tools::THEIRS.login(),
        &card,
        &[("EC:prime256v1", "01", "ec"), ("rsa:2048", "02", "rsa")],
    );
    let cmds = first_signature(&card, 1);
    assert!(
        !cmds.iter().any(|c| c.starts_with("> 00 B1 CE")),
        "a request read before the first signature:\n{}",
        cmds.join("\n")
    );
    let p11 = module();
    let session = common::user_session(&p11, slot_of(&p11, &card));
    card.clear_apdu_log();
    let rsa = common::find_by_id(&session, ObjectClass::PRIVATE_KEY, 2);
    let sig = session
        .sign(&Mechanism::RsaPkcs, rsa[0], &[0x5A; 32])
        .expect("C_Sign RSA");
    assert_eq!(sig.len(), 256);
    assert_eq!(cexx_reads(&card), Vec::<String>::new(), "RSA key");
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// A browser polls C_GetTokenInfo: after the first call only the user
/// PIN's state is read (its counter and lock are what the flags must
/// show at once); the SO-PIN's state is read again after an SO login
/// attempt, the free memory after a write.
#[test]
fn c_get_token_info_reads_only_the_user_pin_state_until_the_card_changes() {
    const USER_PIN_STATE: &str = "> 00 20 00 81";
    const SO_PIN_STATE: &str = "> 00 20 00 88";
    const VERSION: &str = "> 80 50 00 00";
    let _serial = serial();
    let card = tools::initialised_card();
    let p11 = module();
    let slot = slot_of(&p11, &card);
    p11.get_token_info(slot).expect("C_GetTokenInfo");
    for _ in 0..3 {
        card.clear_apdu_log();
        let info = p11.get_token_info(slot).expect("C_GetTokenInfo");
        assert!(info.user_pin_initialized());
        assert_eq!(commands(&card), [USER_PIN_STATE], "a later C_GetTokenInfo");
    }

    // A wrong SO-PIN: its counter went down, the next call reads it.
    let session = p11.open_rw_session(slot).expect("C_OpenSession");
    let wrong = session.login(UserType::So, Some(&AuthPin::from("0000000000000000")));
    assert!(wrong.is_err(), "a wrong SO-PIN is refused");
    card.clear_apdu_log();
    p11.get_token_info(slot).expect("C_GetTokenInfo");
    let cmds = commands(&card);
    assert!(cmds.iter().any(|c| c.starts_with(SO_PIN_STATE)), "{cmds:?}");

    // A write: the free memory changed, the next call reads it.
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .expect("C_Login");
    p11.get_token_info(slot).expect("C_GetTokenInfo");
    session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"written".to_vec()),
            Attribute::Value(vec![7; 100]),
        ])
        .expect("C_CreateObject");
    card.clear_apdu_log();
    p11.get_token_info(slot).expect("C_GetTokenInfo");
    let cmds = commands(&card);
    assert!(cmds.iter().any(|c| c.starts_with(VERSION)), "{cmds:?}");
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// The command APDUs of `f`.
fn counted(card: &VCard, f: impl FnOnce()) -> usize {
    card.clear_apdu_log();
    f();
    commands(card).len()
}

/// An enrolment tool adds keys one after the other on a token that
/// grows (a key pair, its certificate, then it lists the certificates):
/// each round costs as many APDUs at 40 keys as at 8, since only the
/// files the module wrote are read again (before: about 3 APDUs per key
/// already on the token, each round).
#[test]
fn writes_cost_the_same_on_a_larger_token() {
    let _serial = serial();
    let card = tools::initialised_card();
    let der = certificate(card.dir());
    let p11 = module();
    let session = common::user_session(&p11, slot_of(&p11, &card));
    let mut rounds = Vec::new();
    for id in 1..=40u8 {
        let keygen = counted(&card, || new_key(&session, id));
        let cert = counted(&card, || {
            common::store_certificate(&session, id, &format!("key {id:02x}"), &der)
        });
        let list = counted(&card, || {
            let certs = session
                .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
                .expect("C_FindObjects");
            assert_eq!(certs.len(), usize::from(id));
        });
        rounds.push((keygen, cert, list));
    }
    eprintln!(
        "APDUs (key pair, certificate, listing) at 8 keys {:?}, at 40 {:?}",
        rounds[7], rounds[39]
    );
    assert_eq!(rounds[39], rounds[7], "a round at 40 keys against one at 8");
    drop(session);
    p11.finalize().expect("C_Finalize");
}
