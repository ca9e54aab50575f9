//! The end-to-end benchmark of issue 14: this project's module beside
//! OpenSC's `opensc-pkcs11.so` on the same virtual cards (`picohsm-vcard`
//! behind pcscd + vpcd), in one run.
//!
//! Parts (each row of the results file names its part):
//! - `first`: APDUs and wall time from loading the module (dlopen +
//!   C_Initialize) to its first signature, on tokens with 1, 32, 64 and 128
//!   EC P-256 keys each with a certificate, at 0 ms and at the modelled
//!   per-APDU latency (when the card has `--latency-ms`); the module's
//!   resident memory before loading, after C_Initialize and after listing
//!   every object of the token.
//! - `rate`: ECDSA P-256 and RSA-2048 signatures per second through each
//!   module and through a raw PC/SC loop replaying the SIGN APDU our module
//!   sends (the floor); runs interleaved, medians.
//! - `threads`: one token signing from one thread against two tokens
//!   signing from two threads, in one process per module.
//!
//! Every measurement runs in a fresh child process (this binary again,
//! `--child …`), so loading and C_Initialize cost what they cost a user's
//! program. APDUs are counted from the card's `--apdu-log`; other programs
//! that load OpenSC's module talk to every card, so run this under the
//! e2e lock (`scripts/bench.sh` does) and the fewest APDUs of the runs are
//! kept.
//!
//! Results: one CSV row per figure in `target/bench/e2e.csv` (or `--out
//! FILE`); `scripts/bench_report.py` turns it into BENCHMARKS.md and
//! docs/benchmarks.svg. `--quick`: a smoke run (tokens of 1 and 4 keys, one
//! run each, few signatures) that checks the harness works.
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench e2e -- [--quick]
//! [--keys 1,32] [--parts first,rate,threads,pka]`).

#[path = "support/cli.rs"]
mod cli;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/stats.rs"]
mod stats;

use stats::median;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use common::{Options, VCard, PIN, SO_PIN};

/// SubjectPublicKeyInfo of a P-256 key up to the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A,
    0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The EC key every signature is made with (CKA_ID).
const EC_ID: u8 = 1;
/// The RSA-2048 key of the rate card (CKA_ID), beside the EC keys.
const RSA_ID: u8 = 0xF0;
/// What is signed: a SHA-256 digest (ECDSA) …
const DIGEST: [u8; 32] = [0x5A; 32];
/// … and its DigestInfo (RSA PKCS#1 v1.5).
fn digest_info() -> Vec<u8> {
    let mut d = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    d.extend_from_slice(&DIGEST);
    d
}

/// The two modules compared, by the name the results use.
fn modules() -> [(&'static str, PathBuf); 2] {
    [
        ("picohsm", common::module_path()),
        ("opensc", common::opensc_pkcs11_path()),
    ]
}

// ---------------------------------------------------------------------------
// Settings of one run

struct Plan {
    quick: bool,
    /// Token sizes of the `first` part.
    keys: Vec<u8>,
    /// Child runs per module and setting (medians; fewest APDUs).
    runs: usize,
    /// Signatures per `rate` child.
    signatures: usize,
    /// RSA-2048 signatures per `rate` child (slower on the card).
    rsa_signatures: usize,
    /// Per-APDU latencies to measure at: 0 and, when the card supports it,
    /// the modelled one.
    latencies: Vec<u32>,
    /// The parts to run (`--parts first,rate,threads,pka`; all by default).
    parts: Vec<String>,
    out: PathBuf,
}

impl Plan {
    /// Whether `part` is to run.
    fn runs_part(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// The modelled per-APDU latency of a Pico HSM on USB (ms): see
/// BENCHMARKS.md (from scripts/bench_report.py) for the sources. At this
/// latency the card also takes the modelled device's compute time for
/// SIGN ([`MODELLED_PROFILE`]).
const MODELLED_LATENCY_MS: u32 = 2;
/// The `picohsm-vcard --profile` of the modelled device.
const MODELLED_PROFILE: &str = "rp2040";

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let out = cli::out_path(&args, "e2e.csv");
        // `--keys 1,32,128`: other token sizes.
        let keys: Option<Vec<u8>> = args
            .iter()
            .position(|a| a == "--keys")
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.split(',')
                    .map(|k| k.parse().expect("--keys N,N,…"))
                    .collect()
            });
        let parts: Vec<String> = args
            .iter()
            .position(|a| a == "--parts")
            .and_then(|i| args.get(i + 1))
            .map_or("first,rate,threads,pka", String::as_str)
            .split(',')
            .map(str::to_owned)
            .collect();
        let mut latencies = vec![0];
        if vcard_has_latency() {
            latencies.push(MODELLED_LATENCY_MS);
        }
        if quick {
            Plan {
                quick,
                keys: keys.unwrap_or_else(|| vec![1, 4]),
                runs: 1,
                signatures: 20,
                rsa_signatures: 2,
                latencies,
                parts,
                out,
            }
        } else {
            Plan {
                quick,
                keys: keys.unwrap_or_else(|| vec![1, 32, 64, 128]),
                runs: 5,
                signatures: 2000,
                rsa_signatures: 20,
                latencies,
                parts,
                out,
            }
        }
    }
}

/// Whether this build of `picohsm-vcard` takes `--latency-ms`.
fn vcard_has_latency() -> bool {
    let out = common::run_allow_fail(&common::s(&common::vcard_binary()), ["--help"]);
    common::text(&out).contains("--latency-ms")
}

/// The card options for a latency: 0 is the bare virtual card, anything
/// else that latency with the modelled device's compute times.
fn timing(ms: u32) -> Options {
    Options {
        latency_ms: ms,
        profile: (ms != 0).then(|| MODELLED_PROFILE.to_string()),
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------
// Results

/// The results file: `part,module,keys,latency_ms,metric,value` rows.
struct Results {
    rows: Vec<[String; 6]>,
}

impl Results {
    fn add(
        &mut self,
        part: &str,
        module: &str,
        keys: u32,
        latency: u32,
        metric: &str,
        value: impl ToString,
    ) {
        let row = [
            part.to_string(),
            module.to_string(),
            keys.to_string(),
            latency.to_string(),
            metric.to_string(),
            value.to_string(),
        ];
        eprintln!("  {}", row.join(" "));
        self.rows.push(row);
    }

    fn write(&self, path: &Path) {
        let field = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut text = String::from("part,module,keys,latency_ms,metric,value\n");
        for r in &self.rows {
            let line: Vec<String> = r.iter().map(|f| field(f)).collect();
            let _ = writeln!(text, "{}", line.join(","));
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("results directory");
        }
        fs::write(path, text).expect("write the results");
    }
}

// ---------------------------------------------------------------------------
// Children: one measurement each, results on stdout as `key=value` words

/// `/proc/self/status` VmRSS in KiB.
fn rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn load(path: &str) -> Pkcs11 {
    let p11 = Pkcs11::new(path).unwrap_or_else(|e| panic!("load {path}: {e}"));
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p11
}

fn slot(p11: &Pkcs11, reader: &str) -> Slot {
    p11.get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description() == reader)
        })
        .unwrap_or_else(|| panic!("no slot for {reader}"))
}

fn key(session: &Session, id: u8) -> cryptoki::object::ObjectHandle {
    let found = common::find_by_id(session, ObjectClass::PRIVATE_KEY, id);
    assert_eq!(found.len(), 1, "private keys with CKA_ID {id:02X}");
    found[0]
}

/// The mechanism and data of a signature with the key `id`.
fn sign_once(session: &Session, handle: cryptoki::object::ObjectHandle, id: u8) {
    let sig = if id == RSA_ID {
        session.sign(&Mechanism::RsaPkcs, handle, &digest_info())
    } else {
        session.sign(&Mechanism::Ecdsa, handle, &DIGEST)
    }
    .expect("C_Sign");
    assert_eq!(sig.len(), if id == RSA_ID { 256 } else { 64 });
}

/// `first MODULE READER`: load → first signature with key EC_ID, timed;
/// then every object listed with its class, id and label (the memory
/// figure); C_Finalize.
fn child_first(module: &str, reader: &str) {
    let rss_before = rss_kib();
    let t = Instant::now();
    let p11 = load(module);
    let rss_loaded = rss_kib();
    let s = slot(&p11, reader);
    let session = common::user_session(&p11, s);
    let k = key(&session, EC_ID);
    sign_once(&session, k, EC_ID);
    let wall = t.elapsed();
    let all = session.find_objects(&[]).expect("C_FindObjects");
    for o in &all {
        session
            .get_attributes(
                *o,
                &[
                    AttributeType::Class,
                    AttributeType::Id,
                    AttributeType::Label,
                ],
            )
            .expect("C_GetAttributeValue");
    }
    let rss_listed = rss_kib();
    drop(session);
    p11.finalize().expect("C_Finalize");
    println!(
        "wall_us={} rss_before_kib={rss_before} rss_loaded_kib={rss_loaded} rss_listed_kib={rss_listed} objects={}",
        wall.as_micros(),
        all.len()
    );
}

/// `rate MODULE READER ID N`: N signatures after one warm-up, timed.
fn child_rate(module: &str, reader: &str, id: u8, n: usize) {
    let p11 = load(module);
    let session = common::user_session(&p11, slot(&p11, reader));
    let k = key(&session, id);
    sign_once(&session, k, id);
    let t = Instant::now();
    for _ in 0..n {
        sign_once(&session, k, id);
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(session);
    p11.finalize().expect("C_Finalize");
    println!("rate={rate}");
}

/// `raw READER HEX N`: SELECT, VERIFY, then the SIGN command `HEX` N times
/// in one PC/SC transaction.
fn child_raw(reader: &str, hex_apdu: &str, n: usize) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
    let name = CString::new(reader).unwrap();
    let mut conn = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("SCardConnect");
    let tx = conn.transaction().expect("SCardBeginTransaction");
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    let ok_sw = picohsm_wire::sw::StatusWord::OK.0.to_be_bytes();
    let mut ok = |a: &[u8]| {
        let r = tx.transmit(a, &mut buf).expect("SCardTransmit");
        assert!(r.ends_with(&ok_sw), "APDU {a:02X?} → {r:02X?}");
    };
    ok(&picohsm_wire::apdu::build(
        0,
        0xA4,
        4,
        0,
        picohsm_wire::codes::AID,
        256,
    ));
    ok(&picohsm_wire::apdu::build(
        0,
        0x20,
        0,
        0x81,
        PIN.as_bytes(),
        0,
    ));
    let sign = hex::decode(hex_apdu).expect("hex APDU");
    ok(&sign);
    let t = Instant::now();
    for _ in 0..n {
        ok(&sign);
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    tx.end(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("SCardEndTransaction");
    println!("rate={rate}");
}

/// `threads MODULE READER1 READER2 N`: N signatures on token 1 from one
/// thread, then N on each token from two threads at once.
fn child_threads(module: &str, r1: &str, r2: &str, n: usize) {
    let p11 = load(module);
    let sessions: Vec<Session> = [r1, r2]
        .iter()
        .map(|r| common::user_session(&p11, slot(&p11, r)))
        .collect();
    let keys: Vec<_> = sessions.iter().map(|s| key(s, EC_ID)).collect();
    for (s, k) in sessions.iter().zip(&keys) {
        sign_once(s, *k, EC_ID);
    }
    let t = Instant::now();
    for _ in 0..n {
        sign_once(&sessions[0], keys[0], EC_ID);
    }
    let one = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let handles: Vec<_> = sessions
        .into_iter()
        .zip(keys)
        .map(|(s, k)| {
            std::thread::spawn(move || {
                for _ in 0..n {
                    sign_once(&s, k, EC_ID);
                }
                s
            })
        })
        .collect();
    let sessions: Vec<Session> = handles
        .into_iter()
        .map(|h| h.join().expect("signing thread"))
        .collect();
    let two = (2 * n) as f64 / t.elapsed().as_secs_f64();
    drop(sessions);
    p11.finalize().expect("C_Finalize");
    println!("one_rate={one} two_rate={two}");
}

/// `pka MODULE READER SECRET LOG…`: a session on the primary, then two
/// C_Login(CKU_USER, SECRET) / C_Logout, each timed, with the APDUs each
/// card's LOG received during the login (the settings file comes from the
/// environment).
fn child_pka(module: &str, reader: &str, secret: &str, logs: &[String]) {
    let p11 = load(module);
    let session = p11
        .open_ro_session(slot(&p11, reader))
        .expect("C_OpenSession");
    let mut words = Vec::new();
    for round in 1..=2 {
        for l in logs {
            fs::write(l, "").expect("empty the APDU log");
        }
        let t = Instant::now();
        session
            .login(UserType::User, Some(&AuthPin::from(secret)))
            .expect("C_Login");
        words.push(format!("login{round}_us={}", t.elapsed().as_micros()));
        for (i, l) in logs.iter().enumerate() {
            let n = fs::read_to_string(l)
                .unwrap_or_default()
                .lines()
                .filter(|x| x.starts_with('>'))
                .count();
            words.push(format!("login{round}_card{i}={n}"));
        }
        session.logout().expect("C_Logout");
    }
    drop(session);
    p11.finalize().expect("C_Finalize");
    println!("{}", words.join(" "));
}

fn child(args: &[String]) {
    let a = |i: usize| args.get(i).map(String::as_str).expect("child argument");
    match a(0) {
        "first" => child_first(a(1), a(2)),
        "rate" => child_rate(a(1), a(2), a(3).parse().unwrap(), a(4).parse().unwrap()),
        "raw" => child_raw(a(1), a(2), a(3).parse().unwrap()),
        "threads" => child_threads(a(1), a(2), a(3), a(4).parse().unwrap()),
        "pka" => child_pka(a(1), a(2), a(3), &args[4..]),
        other => panic!("unknown child {other}"),
    }
}

/// Runs this binary as `--child ARGS…`; its `key=value` words.
fn run_child(args: &[&str]) -> BTreeMap<String, f64> {
    run_child_with(args, &[])
}

/// [`run_child`], a failing child being an error: the last line it
/// wrote to stderr that says what failed.
fn try_child(args: &[&str]) -> Result<BTreeMap<String, f64>, String> {
    let exe = std::env::current_exe().expect("current_exe");
    let out = common::run_cmd_allow_fail(Command::new(exe).arg("--child").args(args));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.contains("C_") || l.contains("error"))
            .unwrap_or("failed")
            .trim()
            .to_string();
        eprintln!("child {args:?} failed: {line}");
        return Err(line);
    }
    Ok(parse_words(&common::stdout(&out)))
}

fn parse_words(text: &str) -> BTreeMap<String, f64> {
    text.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// [`run_child`] with environment variables.
fn run_child_with(args: &[&str], env: &[(&str, &Path)]) -> BTreeMap<String, f64> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.arg("--child").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = common::run_cmd(&mut cmd);
    parse_words(&common::stdout(&out))
}

// ---------------------------------------------------------------------------
// Tokens

/// Base64 (standard alphabet, padded), for PEM.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A certificate for the P-256 public point `point` (uncompressed, 65
/// bytes), made by openssl (`x509 -req -force_pubkey`, signed by a
/// throwaway issuer key `ca`): DER.
fn certificate(dir: &Path, ca: &(PathBuf, PathBuf), id: u8, point: &[u8]) -> Vec<u8> {
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(point);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in base64(&spki).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    let pubkey = dir.join(format!("pub-{id:02x}.pem"));
    let der = dir.join(format!("cert-{id:02x}.der"));
    fs::write(&pubkey, pem).unwrap();
    common::openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &common::s(&ca.1),
        "-signkey",
        &common::s(&ca.0),
        "-force_pubkey",
        &common::s(&pubkey),
        "-subj",
        &format!("/CN=bench key {id:02x}"),
        "-set_serial",
        &id.to_string(),
        "-days",
        "30",
        "-outform",
        "DER",
        "-out",
        &common::s(&der),
    ]);
    fs::read(der).unwrap()
}

/// The issuer key and request openssl signs the certificates with.
fn issuer(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, csr) = (dir.join("issuer.pem"), dir.join("issuer.csr"));
    common::openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &common::s(&key),
    ]);
    common::openssl_ok(&[
        "req",
        "-new",
        "-key",
        &common::s(&key),
        "-subj",
        "/CN=bench issuer",
        "-out",
        &common::s(&csr),
    ]);
    (key, csr)
}

/// The uncompressed point of an EC public key object (CKA_EC_POINT, with
/// or without its DER OCTET STRING wrapping).
fn ec_point(session: &Session, public: cryptoki::object::ObjectHandle) -> Vec<u8> {
    let attrs = session
        .get_attributes(public, &[AttributeType::EcPoint])
        .expect("CKA_EC_POINT");
    let Some(Attribute::EcPoint(p)) = attrs.into_iter().next() else {
        panic!("no CKA_EC_POINT");
    };
    if p.len() == 67 && p[0] == 0x04 && p[1] == 0x41 {
        p[2..].to_vec()
    } else {
        p
    }
}

/// Adds EC P-256 key pairs `ids` with a certificate each (same CKA_ID)
/// to `card` through our module, which lays them out as OpenSC does (so
/// both modules see them). Not through OpenSC's module: its C_GenerateKeyPair
/// fails with CKR_GENERAL_ERROR once the token holds 42 keys with
/// certificates (no APDU refused; seen with OpenSC 0.23).
fn add_ec_keys(card: &VCard, ids: std::ops::RangeInclusive<u8>, ca: &(PathBuf, PathBuf)) {
    let p11 = load(&common::s(&common::module_path()));
    let session = common::user_session(&p11, slot(&p11, card.reader_name()));
    for id in ids {
        let (public, _) = common::p256_key_pair(&session, id, Some(&format!("key {id:02x}")))
            .unwrap_or_else(|e| panic!("C_GenerateKeyPair {id:02x}: {e}"));
        let cert = certificate(card.dir(), ca, id, &ec_point(&session, public));
        common::store_certificate(&session, id, &format!("cert {id:02x}"), &cert);
    }
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// Adds the RSA-2048 key pair RSA_ID to `card` through our module (as
/// [`add_ec_keys`], OpenSC's fails on a token of many keys).
fn add_rsa_key(card: &VCard) {
    let p11 = load(&common::s(&common::module_path()));
    let session = common::user_session(&p11, slot(&p11, card.reader_name()));
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Id(vec![RSA_ID]),
                Attribute::Label("rsa".into()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Id(vec![RSA_ID]),
                Attribute::Label("rsa".into()),
                Attribute::Sign(true),
            ],
        )
        .expect("C_GenerateKeyPair RSA-2048");
    drop(session);
    p11.finalize().expect("C_Finalize");
}

/// Flash images (with their `.otp`) of tokens with `plan.keys` keys, made
/// on one card growing from the smallest to the largest; how long each
/// step took is recorded.
fn token_images(plan: &Plan, dir: &Path, results: &mut Results) -> BTreeMap<u8, PathBuf> {
    let mut card = VCard::start();
    common::sc_hsm_tool(&card, ["--initialize", "--so-pin", SO_PIN, "--pin", PIN]);
    let ca = issuer(dir);
    let mut images = BTreeMap::new();
    let mut have = 0u8;
    for &n in &plan.keys {
        let t = Instant::now();
        add_ec_keys(&card, have + 1..=n, &ca);
        let secs = t.elapsed().as_secs_f64();
        results.add(
            "setup",
            "picohsm",
            u32::from(n),
            0,
            "seconds_to_add_keys",
            format!("{secs:.2}"),
        );
        results.add("setup", "picohsm", u32::from(n), 0, "keys_added", n - have);
        have = n;
        card.stop();
        let image = dir.join(format!("token-{n}.flash"));
        fs::copy(card.flash_path(), &image).expect("copy the flash image");
        fs::copy(card.otp_path(), otp_of(&image)).expect("copy the OTP image");
        images.insert(n, image);
        card.start_again();
    }
    images
}

fn otp_of(flash: &Path) -> PathBuf {
    let mut s = flash.as_os_str().to_owned();
    s.push(".otp");
    PathBuf::from(s)
}

/// A copy of the flash image `image` (and its OTP image) named `tag`.
fn copy_image(image: &Path, dir: &Path, tag: &str) -> PathBuf {
    let flash = dir.join(format!("{tag}.flash"));
    fs::copy(image, &flash).expect("copy the flash image");
    fs::copy(otp_of(image), otp_of(&flash)).expect("copy the OTP image");
    flash
}

/// A card started on a copy of `image`, at `latency` ms per APDU.
fn card_from(image: &Path, dir: &Path, tag: &str, latency: u32) -> VCard {
    VCard::start_with(Options {
        flash: Some(copy_image(image, dir, tag)),
        ..timing(latency)
    })
}

/// The command APDUs of the card's log up to and including the first
/// SIGN (80 68), and that SIGN.
fn commands_to_sign(card: &VCard) -> (usize, Option<String>) {
    let cmds: Vec<String> = card
        .apdu_log()
        .into_iter()
        .filter_map(|l| l.strip_prefix("> ").map(str::to_owned))
        .collect();
    match cmds.iter().position(|c| c.starts_with("80 68 ")) {
        Some(i) => (i + 1, Some(cmds[i].clone())),
        None => (cmds.len(), None),
    }
}

/// Command APDUs per signature in the card's log, from the first SIGN
/// to the last (what a signature costs once the key is found).
fn apdus_per_signature(card: &VCard) -> f64 {
    let cmds: Vec<String> = card
        .apdu_log()
        .into_iter()
        .filter_map(|l| l.strip_prefix("> ").map(str::to_owned))
        .collect();
    let signs: Vec<usize> = (0..cmds.len())
        .filter(|&i| cmds[i].starts_with("80 68 "))
        .collect();
    match (signs.first(), signs.last()) {
        (Some(a), Some(b)) if signs.len() > 1 => (b - a + 1) as f64 / signs.len() as f64,
        _ => 1.0,
    }
}

// ---------------------------------------------------------------------------
// Parts

fn part_first(plan: &Plan, images: &BTreeMap<u8, PathBuf>, dir: &Path, results: &mut Results) {
    // At the modelled latency, also without the device's SIGN compute: the
    // part of the wall time the module's round trips decide.
    let settings: Vec<(u32, bool)> = plan
        .latencies
        .iter()
        .flat_map(|&l| {
            if l == 0 {
                vec![(0, true)]
            } else {
                vec![(l, true), (l, false)]
            }
        })
        .collect();
    for (&n, image) in images {
        for &(lat, compute) in &settings {
            let card = VCard::start_with(Options {
                flash: Some(copy_image(
                    image,
                    dir,
                    &format!("first-{n}-{lat}-{compute}"),
                )),
                profile: timing(lat).profile.filter(|_| compute),
                ..timing(lat)
            });
            let mut apdus: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let mut walls: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let mut rss: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
            // A failed run: its error and the command APDUs sent before it.
            let mut failed: BTreeMap<&str, (String, usize)> = BTreeMap::new();
            // Interleaved: ours, OpenSC, ours, …
            for _ in 0..plan.runs {
                for (name, path) in modules() {
                    card.clear_apdu_log();
                    let r = match try_child(&["first", &common::s(&path), card.reader_name()]) {
                        Ok(r) => r,
                        Err(e) => {
                            let before = commands_to_sign(&card).0;
                            failed.insert(name, (e, before));
                            continue;
                        }
                    };
                    let (count, sign) = commands_to_sign(&card);
                    assert!(sign.is_some(), "{name}: no SIGN in the card's log");
                    apdus.entry(name).or_default().push(count as f64);
                    walls.entry(name).or_default().push(r["wall_us"] / 1000.0);
                    rss.insert(name, r);
                }
            }
            for (name, _) in modules() {
                let k = u32::from(n);
                if !compute {
                    if let Some(w) = walls.get(name) {
                        let w = format!("{:.1}", median(w.clone()));
                        results.add("first", name, k, lat, "wall_ms_transport_only", w);
                    }
                    continue;
                }
                if let Some((e, before)) = failed.get(name) {
                    results.add("first", name, k, lat, "failed", e);
                    results.add("first", name, k, lat, "apdus_before_failure", before);
                }
                if !apdus.contains_key(name) {
                    continue;
                }
                let fewest = apdus[name].iter().copied().fold(f64::INFINITY, f64::min);
                results.add("first", name, k, lat, "apdus", fewest);
                results.add(
                    "first",
                    name,
                    k,
                    lat,
                    "wall_ms",
                    format!("{:.1}", median(walls[name].clone())),
                );
                if lat == 0 {
                    let r = &rss[name];
                    for m in [
                        "rss_before_kib",
                        "rss_loaded_kib",
                        "rss_listed_kib",
                        "objects",
                    ] {
                        results.add("first", name, k, lat, m, r[m]);
                    }
                }
            }
        }
    }
}

fn part_rate(plan: &Plan, image: &Path, dir: &Path, results: &mut Results) {
    let card = card_from(image, dir, "rate", 0);
    let t = Instant::now();
    add_rsa_key(&card);
    results.add(
        "setup",
        "picohsm",
        0,
        0,
        "seconds_rsa2048_keygen",
        format!("{:.2}", t.elapsed().as_secs_f64()),
    );
    for (alg, id, n) in [
        ("ecdsa-p256", EC_ID, plan.signatures),
        ("rsa-2048", RSA_ID, plan.rsa_signatures),
    ] {
        // The floor replays the SIGN APDU our module sends for this key.
        card.clear_apdu_log();
        run_child(&[
            "rate",
            &common::s(&common::module_path()),
            card.reader_name(),
            &id.to_string(),
            "1",
        ]);
        let sign = commands_to_sign(&card).1.expect("our module's SIGN APDU");
        let sign_hex: String = sign.split_whitespace().collect();
        let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut per_sign: BTreeMap<&str, f64> = BTreeMap::new();
        let n_s = n.to_string();
        let ways: Vec<(&str, Option<PathBuf>)> = modules()
            .into_iter()
            .map(|(name, path)| (name, Some(path)))
            .chain([("raw-pcsc", None)])
            .collect();
        for run in 0..plan.runs {
            // Each run in another order, so that no way always follows
            // the same one.
            for k in 0..ways.len() {
                let (name, path) = &ways[(run + k) % ways.len()];
                let r = match path {
                    Some(path) => {
                        card.clear_apdu_log();
                        let r = run_child(&[
                            "rate",
                            &common::s(path),
                            card.reader_name(),
                            &id.to_string(),
                            &n_s,
                        ]);
                        per_sign.insert(name, apdus_per_signature(&card));
                        r
                    }
                    None => run_child(&["raw", card.reader_name(), &sign_hex, &n_s]),
                };
                rates.entry(name).or_default().push(r["rate"]);
            }
        }
        for (name, v) in &rates {
            let m = median(v.clone());
            // Paired: each run's rate over the floor's in the same run.
            let ratio = median(
                v.iter()
                    .zip(&rates["raw-pcsc"])
                    .map(|(a, b)| a / b)
                    .collect(),
            );
            results.add(
                "rate",
                name,
                0,
                0,
                &format!("{alg}_per_s"),
                format!("{m:.1}"),
            );
            results.add(
                "rate",
                name,
                0,
                0,
                &format!("{alg}_ratio_to_raw"),
                format!("{ratio:.3}"),
            );
            if let Some(p) = per_sign.get(name) {
                results.add(
                    "rate",
                    name,
                    0,
                    0,
                    &format!("{alg}_apdus_per_signature"),
                    format!("{p:.2}"),
                );
            }
        }
    }
}

/// The vpcd driver instance of a reader: its name without the slot number
/// ("Virtual PCD 8C7D 00 01" → "Virtual PCD 8C7D 00"); each instance
/// serves two readers.
fn vpcd_instance(reader: &str) -> &str {
    reader.rsplit_once(' ').map_or(reader, |(a, _)| a)
}

/// Two tokens from two threads against one from one thread, for two
/// tokens in the two readers of one vpcd instance and for two tokens in
/// readers of separate instances (when free readers allow either).
fn part_threads(plan: &Plan, image: &Path, dir: &Path, results: &mut Results) {
    for &lat in &plan.latencies {
        let cards = VCard::start_many_with(
            (0..3)
                .map(|i| Options {
                    flash: Some(copy_image(image, dir, &format!("threads-{i}-{lat}"))),
                    ..timing(lat)
                })
                .collect(),
        );
        let inst = |c: &VCard| vpcd_instance(c.reader_name()).to_string();
        let mut pairs = Vec::new();
        let same = (0..3).flat_map(|i| (i + 1..3).map(move |j| (i, j)));
        if let Some((i, j)) = same
            .clone()
            .find(|&(i, j)| inst(&cards[i]) == inst(&cards[j]))
        {
            pairs.push(("same_instance", i, j));
        }
        if let Some((i, j)) = same
            .clone()
            .find(|&(i, j)| inst(&cards[i]) != inst(&cards[j]))
        {
            pairs.push(("separate_instances", i, j));
        }
        // At the modelled latency each ECDSA signature takes about 250 ms.
        let n = match (lat, plan.quick) {
            (0, _) => plan.signatures,
            (_, false) => 8,
            (_, true) => 2,
        };
        for (pairing, i, j) in pairs {
            let (c1, c2) = (&cards[i], &cards[j]);
            for (name, path) in modules() {
                let mut one = Vec::new();
                let mut two = Vec::new();
                // Slow at the modelled latency: three runs are enough.
                let runs = if lat == 0 {
                    plan.runs
                } else {
                    plan.runs.min(3)
                };
                for _ in 0..runs {
                    let r = run_child(&[
                        "threads",
                        &common::s(&path),
                        c1.reader_name(),
                        c2.reader_name(),
                        &n.to_string(),
                    ]);
                    one.push(r["one_rate"]);
                    two.push(r["two_rate"]);
                }
                let (one, two) = (median(one), median(two));
                let m = |what: &str| format!("{pairing}_{what}");
                results.add(
                    "threads",
                    name,
                    0,
                    lat,
                    &m("one_token_one_thread_per_s"),
                    format!("{one:.1}"),
                );
                results.add(
                    "threads",
                    name,
                    0,
                    lat,
                    &m("two_tokens_two_threads_per_s"),
                    format!("{two:.1}"),
                );
                results.add(
                    "threads",
                    name,
                    0,
                    lat,
                    &m("speedup"),
                    format!("{:.2}", two / one),
                );
                results.add(
                    "threads",
                    name,
                    0,
                    lat,
                    &m("readers"),
                    format!("{} + {}", c1.reader_name(), c2.reader_name()),
                );
            }
        }
    }
}

/// PKA login through our module (OpenSC's module has none): 1-of-1 on a
/// PKA-only token (`login = "pka"`, the secret is the authenticator's PIN)
/// and 2-of-3 on a token with a PIN (`login = "pka+pin"`, secret
/// `PIN:authenticator PIN`), authenticators named in the settings; the
/// first login of the process and a second one after C_Logout.
fn part_pka(plan: &Plan, results: &mut Results) {
    use common::pka::{firmware_key, init_authenticator, init_pka, init_pka_only, register_all_by};
    use picohsm_wire::curve::Curve;
    for &lat in &plan.latencies {
        for quorum in [1u32, 2] {
            let cards: Vec<VCard> = (0..if quorum == 1 { 2 } else { 3 })
                .map(|_| VCard::start_with(timing(lat)))
                .collect();
            let a = &cards[0];
            for b in &cards[1..] {
                init_authenticator(b, PIN);
            }
            let (login, secret) = if quorum == 1 {
                let (file, _) = firmware_key(&cards[1], 1, Curve::P256);
                let mut c = init_pka_only(a, 1, 1);
                assert_eq!(
                    c.register(&file).1,
                    picohsm_wire::sw::StatusWord::OK.0,
                    "registering the authenticator"
                );
                ("pka", PIN.to_string())
            } else {
                init_pka(a, 3, 2);
                let (b, c) = (&cards[1], &cards[2]);
                let (k1, _) = firmware_key(b, 1, Curve::P256);
                let (k2, _) = firmware_key(c, 1, Curve::P256);
                let (k3, _) = firmware_key(c, 2, Curve::P256);
                register_all_by(a, &[(b, 1, k1), (c, 1, k2), (c, 2, k3)]);
                ("pka+pin", format!("{PIN}:{PIN}"))
            };
            let mut toml = format!("login = \"{login}\"\nseparator = \":\"\n");
            for b in &cards[1..] {
                let _ = write!(
                    toml,
                    "[[authenticator]]\ntype = \"smartcard-hsm\"\nreader = \"{}\"\n",
                    b.reader_name()
                );
            }
            let settings = a.dir().join("bench.toml");
            common::write_settings(&settings, &toml);
            let logs: Vec<String> = cards
                .iter()
                .map(|c| common::s(&c.apdu_log_path()))
                .collect();
            let module = common::s(&common::module_path());
            let mut runs: Vec<BTreeMap<String, f64>> = Vec::new();
            for _ in 0..plan.runs {
                let mut args = vec!["pka", &module, a.reader_name(), &secret];
                args.extend(logs.iter().map(String::as_str));
                runs.push(run_child_with(
                    &args,
                    &[("PICOHSM_PKCS11_CONFIG", &settings)],
                ));
            }
            for round in 1..=2 {
                let tag = if round == 1 { "first" } else { "again" };
                let ms = median(
                    runs.iter()
                        .map(|r| r[&format!("login{round}_us")] / 1000.0)
                        .collect(),
                );
                results.add(
                    "pka",
                    "picohsm",
                    quorum,
                    lat,
                    &format!("{tag}_login_ms"),
                    format!("{ms:.1}"),
                );
                for i in 0..cards.len() {
                    let fewest = runs
                        .iter()
                        .map(|r| r[&format!("login{round}_card{i}")])
                        .fold(f64::INFINITY, f64::min);
                    let who = if i == 0 {
                        "primary".to_string()
                    } else {
                        format!("authenticator{i}")
                    };
                    results.add(
                        "pka",
                        "picohsm",
                        quorum,
                        lat,
                        &format!("{tag}_apdus_{who}"),
                        fewest,
                    );
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]);
        return;
    }
    let plan = Plan::from_args();
    let mut results = Results { rows: Vec::new() };
    let work = tempfile::Builder::new()
        .prefix("picohsm-bench-")
        .tempdir()
        .expect("temp dir");
    let started = Instant::now();
    eprintln!(
        "e2e bench{}: keys {:?}, latencies {:?} ms, {} runs",
        if plan.quick { " (quick)" } else { "" },
        plan.keys,
        plan.latencies,
        plan.runs
    );
    // Built before anything is timed.
    for (_, p) in modules() {
        assert!(p.is_file(), "{} missing", p.display());
    }
    results.add("meta", "", 0, 0, "quick", plan.quick);
    results.add(
        "meta",
        "",
        0,
        0,
        "modelled_latency_ms",
        if plan.latencies.len() > 1 {
            MODELLED_LATENCY_MS
        } else {
            0
        },
    );
    results.add("meta", "", 0, 0, "runs", plan.runs);
    if plan.latencies.len() > 1 {
        results.add("meta", "", 0, 0, "modelled_profile", MODELLED_PROFILE);
    }
    let images = token_images(&plan, work.path(), &mut results);
    if plan.runs_part("first") {
        part_first(&plan, &images, work.path(), &mut results);
    }
    let smallest = images.values().next().expect("a token").clone();
    let (middle_keys, middle) = images
        .iter()
        .nth(images.len() / 2)
        .map(|(k, p)| (*k, p.clone()))
        .expect("a token");
    results.add("meta", "", 0, 0, "rate_token_keys", middle_keys);
    if plan.runs_part("rate") {
        part_rate(&plan, &middle, work.path(), &mut results);
    }
    if plan.runs_part("threads") {
        part_threads(&plan, &smallest, work.path(), &mut results);
    }
    if plan.runs_part("pka") {
        part_pka(&plan, &mut results);
    }
    results.add(
        "meta",
        "",
        0,
        0,
        "seconds_total",
        format!("{:.0}", started.elapsed().as_secs_f64()),
    );
    results.write(&plan.out);
    eprintln!("results: {}", plan.out.display());
}
