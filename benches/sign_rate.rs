//! ECDSA P-256 signatures per second, five ways in one run, and the APDUs a
//! PKCS#11 module sends before its first signature:
//!
//! 1. through this project's module, `libpicohsm_pkcs11.so` (loaded with the
//!    `cryptoki` crate) → pcscd → vpcd → `picohsm-vcard`;
//! 2. through OpenSC's `opensc-pkcs11.so` the same way;
//! 3. a raw PC/SC loop of SIGN APDUs (the `pcsc` crate, one transaction);
//! 4. the firmware in process: SIGN APDUs straight into `Card::transmit`
//!    (APDU layer, MKEK unsealing, DER encoding included);
//! 5. the raw `p256` crate, the floor for 4.
//!
//! 1–3 use one virtual card holding 32 EC P-256 key pairs and 32
//! certificates (made through OpenSC's module, so both modules see them),
//! and sign with the same key. On that card, for each module, a fresh
//! C_Initialize → C_GetSlotList → C_OpenSession → C_Login → C_FindObjects →
//! C_Sign → C_Finalize is run with the card's `--apdu-log` emptied first,
//! and the command APDUs in the log are counted (best of a few runs, since
//! other processes that load OpenSC's module also talk to every card).
//!
//! Needs pcscd with the vpcd readers (`scripts/setup-env.sh`). The module
//! and `picohsm-vcard` are (re)built by the test harness with `cargo build
//! --release` (the bench profile's directory), see `tests/common/mod.rs`.
//! Run: `cargo bench --bench sign_rate [-- ITERATIONS]` (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::apdu;
use picohsm_wire::codes::AID;

use common::VCard;

const SO_PIN: &str = "1234567890123456";
const PIN: &str = "648219";
/// Key pairs and certificates on the card (CKA_ID 1..=OBJECTS).
const OBJECTS: u8 = 32;
/// The key every signature is made with.
const KEY_ID: u8 = 1;
/// DER OID of prime256v1, the CKA_EC_PARAMS of the keys.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// Runs of the APDU count per module; the smallest count is shown.
const COUNT_RUNS: usize = 3;

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<Option<Vec<u8>>>>);
impl Storage for Mem {
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn store(&mut self, image: &[u8]) -> Result<(), StorageError> {
        *self.0.lock().unwrap() = Some(image.to_vec());
        Ok(())
    }
}

struct Os;
impl CardRng for Os {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("OS random source");
    }
}

const DIGEST: [u8; 32] = [0x5A; 32];

fn rate(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// A loaded and initialised PKCS#11 module with the card's slot.
struct Module {
    p11: Pkcs11,
    slot: Slot,
}

impl Module {
    /// Pkcs11::new + C_Initialize + the slot whose description is the
    /// card's reader.
    fn open(path: &Path, card: &VCard) -> Module {
        let p11 = Pkcs11::new(path).unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
        p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        let slot = p11
            .get_slots_with_token()
            .expect("C_GetSlotList")
            .into_iter()
            .find(|s| {
                p11.get_slot_info(*s)
                    .is_ok_and(|i| i.slot_description() == card.reader_name())
            })
            .unwrap_or_else(|| panic!("no slot for {} in {}", card.reader_name(), path.display()));
        Module { p11, slot }
    }

    /// A session logged in as the user.
    fn login(&self, rw: bool) -> cryptoki::error::Result<Session> {
        let session = if rw {
            self.p11.open_rw_session(self.slot)?
        } else {
            self.p11.open_ro_session(self.slot)?
        };
        session.login(UserType::User, Some(&AuthPin::from(PIN)))?;
        Ok(session)
    }

    /// C_Finalize, after the sessions are closed.
    fn close(self) {
        self.p11.finalize().expect("C_Finalize");
    }
}

/// The private key with CKA_ID `id`.
fn private_key(session: &Session, id: u8) -> cryptoki::error::Result<ObjectHandle> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(vec![id]),
    ])?;
    assert_eq!(found.len(), 1, "private keys with id {id:02X}");
    Ok(found[0])
}

/// Self-signed certificates (DER) made by openssl, one per object, all
/// with one throwaway EC key (what they certify does not matter here).
fn make_certificates(dir: &Path) -> Vec<PathBuf> {
    let key = dir.join("cert-key.pem");
    let k = common::s(&key);
    common::openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-out",
        &k,
    ]);
    (1..=OBJECTS)
        .map(|id| {
            let der = dir.join(format!("cert-{id:02x}.der"));
            common::openssl_ok(&[
                "req",
                "-x509",
                "-new",
                "-key",
                &k,
                "-subj",
                &format!("/CN=sign_rate key {id:02x}"),
                "-days",
                "30",
                "-outform",
                "DER",
                "-out",
                &common::s(&der),
            ]);
            der
        })
        .collect()
}

/// An initialised card with OBJECTS EC P-256 key pairs and as many
/// certificates (same CKA_IDs), all written through OpenSC's module.
fn populated_card() -> VCard {
    let card = VCard::start();
    common::sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    let certs = make_certificates(card.dir());
    let m = Module::open(&common::opensc_pkcs11_path(), &card);
    let session = m.login(true).expect("login through opensc-pkcs11");
    for id in 1..=OBJECTS {
        let label = format!("key {id:02x}");
        session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                    Attribute::Id(vec![id]),
                    Attribute::Label(label.clone().into()),
                    Attribute::Verify(true),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::Id(vec![id]),
                    Attribute::Label(label.into()),
                    Attribute::Sign(true),
                ],
            )
            .unwrap_or_else(|e| panic!("C_GenerateKeyPair {id:02x}: {e}"));
    }
    for (id, der) in (1..=OBJECTS).zip(&certs) {
        session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Id(vec![id]),
                Attribute::Label(format!("cert {id:02x}").into()),
                Attribute::Value(std::fs::read(der).expect("read certificate")),
            ])
            .unwrap_or_else(|e| panic!("C_CreateObject certificate {id:02x}: {e}"));
    }
    drop(session);
    m.close();
    card
}

/// The command APDUs (`> …` lines) of the card's log.
fn commands(card: &VCard) -> Vec<String> {
    card.apdu_log()
        .into_iter()
        .filter(|l| l.starts_with('>'))
        .collect()
}

/// Whether a logged command is a SIGN (80 68).
fn is_sign(cmd: &str) -> bool {
    cmd.starts_with("> 80 68 ")
}

/// One fresh run of the module from C_Initialize to its first signature
/// (and C_Finalize); the command APDUs the card saw meanwhile, up to and
/// including the SIGN, and how many came after it (up to C_Finalize).
fn first_signature(path: &Path, card: &VCard) -> cryptoki::error::Result<(Vec<String>, usize)> {
    card.clear_apdu_log();
    let m = Module::open(path, card);
    let signed = (|| {
        let session = m.login(false)?;
        let key = private_key(&session, KEY_ID)?;
        let sig = session.sign(&Mechanism::Ecdsa, key, &DIGEST)?;
        assert_eq!(sig.len(), 64);
        Ok(())
    })();
    m.close();
    signed.map(|()| {
        let mut cmds = commands(card);
        let end = cmds
            .iter()
            .position(|c| is_sign(c))
            .expect("a SIGN APDU in the log")
            + 1;
        let after = cmds.split_off(end).len();
        (cmds, after)
    })
}

/// The fewest command APDUs over COUNT_RUNS runs of [`first_signature`]
/// (failed runs, e.g. a login lost to another process, are retried).
fn count_first_signature(path: &Path, card: &VCard) -> (Vec<String>, usize) {
    let mut best: Option<(Vec<String>, usize)> = None;
    let (mut ok, mut failed) = (0, 0);
    while ok < COUNT_RUNS {
        match first_signature(path, card) {
            Ok(c) => {
                ok += 1;
                if best.as_ref().is_none_or(|b| c.0.len() < b.0.len()) {
                    best = Some(c);
                }
            }
            Err(e) => {
                failed += 1;
                assert!(failed < 5, "{}: {e}", path.display());
                eprintln!("{}: {e} (retrying)", path.display());
            }
        }
    }
    best.unwrap()
}

/// "CLA INS" of each command, with a name where known, and how many.
fn breakdown(cmds: &[String]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in cmds {
        let b: Vec<&str> = c.split_whitespace().skip(1).take(2).collect();
        let name = match b.get(1).copied().unwrap_or("") {
            "A4" => "SELECT",
            "20" => "VERIFY",
            "B0" | "B1" => "READ BINARY",
            "D6" | "D7" => "UPDATE BINARY",
            "58" => "ENUMERATE OBJECTS",
            "68" => "SIGN",
            "54" => "PKA STATUS",
            "C0" => "GET RESPONSE",
            "CA" => "GET DATA",
            "84" => "GET CHALLENGE",
            "22" => "MSE",
            "2A" => "PSO",
            "50" => "INITIALIZE",
            "64" => "EXTRAS",
            _ => "?",
        };
        *counts
            .entry(format!("{} ({name})", b.join(" ")))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The card's key reference (P1 of the SIGN APDU) in a command log.
fn key_reference(cmds: &[String]) -> u8 {
    cmds.iter()
        .filter(|c| is_sign(c))
        .find_map(|c| c.split_whitespace().nth(3))
        .map(|p1| u8::from_str_radix(p1, 16).expect("hex"))
        .expect("a SIGN APDU in the log")
}

/// Signatures per second through a PKCS#11 module on `card`.
fn module_rate(path: &Path, card: &VCard, n: usize) -> f64 {
    let m = Module::open(path, card);
    let session = m
        .login(false)
        .unwrap_or_else(|e| panic!("login through {}: {e}", path.display()));
    let key = private_key(&session, KEY_ID).expect("C_FindObjects");
    let r = rate(n, || {
        let sig = session
            .sign(&Mechanism::Ecdsa, key, &DIGEST)
            .expect("C_Sign");
        assert_eq!(sig.len(), 64);
    });
    drop(session);
    m.close();
    r
}

/// Signatures per second of SIGN APDUs sent with the `pcsc` crate, in one
/// PC/SC transaction (SELECT and VERIFY first), with key reference `kid`.
fn pcsc_rate(card: &VCard, kid: u8, n: usize) -> f64 {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
    let reader = CString::new(card.reader_name()).unwrap();
    let mut conn = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("SCardConnect");
    let tx = conn.transaction().expect("SCardBeginTransaction");
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    let mut ok = |a: &[u8]| {
        let r = tx.transmit(a, &mut buf).expect("SCardTransmit");
        assert!(
            r.len() > 2 && r[r.len() - 2..] == [0x90, 0x00] || r == [0x90, 0x00],
            "APDU {a:02X?} → {r:02X?}"
        );
    };
    ok(&apdu::build(0, 0xA4, 4, 0, AID, 256));
    ok(&apdu::build(0, 0x20, 0, 0x81, PIN.as_bytes(), 0));
    let sign = apdu::build_extended(0x80, 0x68, kid, 0x70, &DIGEST, 65536);
    let r = rate(n, || ok(&sign));
    tx.end(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("SCardEndTransaction");
    r
}

fn in_process(n: usize) -> f64 {
    let mut card = Card::new(
        Box::new(Mem::default()),
        Box::new(Mem::default()),
        Box::new(Os),
        CardConfig::default(),
    )
    .expect("card");
    card.power_on();
    let mut ok = |a: &[u8]| {
        let r = card.transmit(a);
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00], "APDU {a:02X?}");
    };
    ok(&apdu::build(0, 0xA4, 4, 0, AID, 256));
    let init = [
        0x81, 0x06, b'6', b'4', b'8', b'2', b'1', b'9', 0x82, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    ok(&apdu::build(0x80, 0x50, 0, 0, &init, 0));
    let c = picohsm_wire::curve::Curve::P256;
    let mut pk = Vec::new();
    picohsm_wire::tlv::push(&mut pk, 0x06, picohsm_wire::cvc::oid::ECDSA_SHA256);
    picohsm_wire::tlv::push(&mut pk, 0x81, c.prime());
    ok(&apdu::build_extended(
        0,
        0x46,
        1,
        0,
        &picohsm_wire::tlv::encode(0x7F49, &pk),
        65536,
    ));
    let sign = apdu::build_extended(0x80, 0x68, 1, 0x70, &DIGEST, 65536);
    rate(n, || ok(&sign))
}

fn raw_p256(n: usize) -> f64 {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42u8; 32]).expect("key");
    rate(n, || {
        let s: p256::ecdsa::Signature = key.sign_prehash(&DIGEST).expect("sign");
        std::hint::black_box(s);
    })
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let ours_path = common::module_path();
    let opensc_path = common::opensc_pkcs11_path();

    let t = Instant::now();
    let card = populated_card();
    let setup = t.elapsed();

    let (ours_cmds, ours_after) = count_first_signature(&ours_path, &card);
    let (opensc_cmds, opensc_after) = count_first_signature(&opensc_path, &card);
    let kid = key_reference(&ours_cmds);
    assert_eq!(
        kid,
        key_reference(&opensc_cmds),
        "both modules sign with one key"
    );

    let ours = module_rate(&ours_path, &card, n);
    let opensc = module_rate(&opensc_path, &card, n);
    let raw_pcsc = pcsc_rate(&card, kid, n);
    let fw = in_process(n);
    let raw = raw_p256(n);

    println!(
        "ECDSA P-256 (CKM_ECDSA over a SHA-256 digest), {n} signatures each; \
         card in {:?} with {OBJECTS} keys and {OBJECTS} certificates (set up in {:.1} s), \
         key reference {kid}:",
        card.reader_name(),
        setup.as_secs_f64()
    );
    println!("  libpicohsm_pkcs11 -> pcscd -> vpcd -> picohsm-vcard: {ours:10.0} signatures/s");
    println!("  opensc-pkcs11 -> pcscd -> vpcd -> picohsm-vcard:     {opensc:10.0} signatures/s");
    println!(
        "  raw PC/SC SIGN APDU loop -> pcscd -> vpcd -> card:    {raw_pcsc:10.0} signatures/s"
    );
    println!("  firmware SIGN APDU, in process:                      {fw:10.0} signatures/s");
    println!("  raw p256 crate sign_prehash:                         {raw:10.0} signatures/s");
    println!(
        "  firmware / raw p256:                                 {:10.2}",
        fw / raw
    );
    println!(
        "APDUs from C_Initialize to first signature ({OBJECTS} keys, {OBJECTS} certs, \
         fewest of {COUNT_RUNS} runs): ours {}, opensc-pkcs11 {}",
        ours_cmds.len(),
        opensc_cmds.len()
    );
    println!(
        "  ours:          {}; then {ours_after} more until C_Finalize",
        breakdown(&ours_cmds)
    );
    println!(
        "  opensc-pkcs11: {}; then {opensc_after} more until C_Finalize",
        breakdown(&opensc_cmds)
    );
}
