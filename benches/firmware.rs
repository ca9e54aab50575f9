//! The firmware's signing rates in process beside the raw RustCrypto
//! crates it is built on (issue 14, part 5): SIGN APDUs straight into
//! `Card::transmit` (APDU parsing, key unsealing with the MKEK, DER
//! encoding included) against `p256` `sign_prehash` and `rsa`
//! `sign_with_rng` (PKCS#1 v1.5, blinded, as the firmware's raw RSA is).
//!
//! Rows as benches/e2e.rs writes them (`part,module,keys,latency_ms,
//! metric,value`) into `target/bench/firmware.csv` (or `--out FILE`), for
//! scripts/bench_report.py. Run: `cargo bench --bench firmware [-- --quick]`.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/stats.rs"]
mod stats;

use stats::median;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p256::ecdsa::signature::hazmat::PrehashSigner;
use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::apdu;
use picohsm_wire::codes::{algo, AID};
use picohsm_wire::curve::Curve;
use picohsm_wire::{cvc, tlv};

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
const PIN: &[u8] = b"648219";

/// SHA-256 DigestInfo of DIGEST.
fn digest_info() -> Vec<u8> {
    let mut d = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    d.extend_from_slice(&DIGEST);
    d
}

/// Calls per second of `f`, run for at least `min` (and `n` calls).
fn rate(n: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut done = 0;
    while done < n || t.elapsed() < min {
        f();
        done += 1;
    }
    done as f64 / t.elapsed().as_secs_f64()
}

/// An initialised in-memory card, logged in, with an EC P-256 key (ref 1)
/// and an RSA-2048 key (ref 2).
fn card() -> Card {
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
    let mut init = Vec::new();
    tlv::push(&mut init, 0x81, PIN);
    tlv::push(&mut init, 0x82, &[1, 2, 3, 4, 5, 6, 7, 8]);
    ok(&apdu::build(0x80, 0x50, 0, 0, &init, 0));
    ok(&apdu::build(0, 0x20, 0, 0x81, PIN, 0));
    let ec = cvc::ec_keygen_template(cvc::oid::ECDSA_SHA256, Curve::P256);
    ok(&apdu::build_extended(
        0,
        0x46,
        1,
        0,
        &tlv::encode(0x7F49, &ec),
        65536,
    ));
    let mut rsa = Vec::new();
    tlv::push(&mut rsa, 0x06, cvc::oid::RSA_V15_SHA256);
    tlv::push(&mut rsa, 0x82, &[0x01, 0x00, 0x01]);
    tlv::push(&mut rsa, 0x02, &2048u16.to_be_bytes());
    ok(&apdu::build_extended(
        0,
        0x46,
        2,
        0,
        &tlv::encode(0x7F49, &rsa),
        65536,
    ));
    card
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = cli::out_path(&args, "firmware.csv");
    let (runs, min) = if quick {
        (1, Duration::from_millis(50))
    } else {
        (5, Duration::from_millis(1000))
    };

    let mut card = card();
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let ec_key = p256::ecdsa::SigningKey::from_slice(&[0x42u8; 32]).expect("key");
    let rsa_key = rsa::PrivateKey::new(&mut rng, 2048).expect("RSA-2048 key");
    let ec_sign = apdu::build_extended(0x80, 0x68, 1, algo::ECDSA, &DIGEST, 65536);
    let mut block = vec![0x00, 0x01];
    block.resize(256 - digest_info().len() - 1, 0xFF);
    block.push(0);
    block.extend_from_slice(&digest_info());
    let rsa_sign = apdu::build_extended(0x80, 0x68, 2, algo::RSA_RAW, &block, 65536);

    let mut rows: Vec<(&str, &str, f64)> = Vec::new();
    let mut fw_ec = Vec::new();
    let mut raw_ec = Vec::new();
    let mut fw_rsa = Vec::new();
    let mut raw_rsa = Vec::new();
    // Interleaved runs: firmware, crate, firmware, …
    for _ in 0..runs {
        fw_ec.push(rate(10, min, || {
            let r = card.transmit(&ec_sign);
            assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        }));
        raw_ec.push(rate(10, min, || {
            let s: p256::ecdsa::Signature = ec_key.sign_prehash(&DIGEST).expect("sign");
            std::hint::black_box(s);
        }));
        fw_rsa.push(rate(3, min, || {
            let r = card.transmit(&rsa_sign);
            assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        }));
        raw_rsa.push(rate(3, min, || {
            let s = rsa_key
                .sign_with_rng(
                    &mut rng,
                    rsa::Pkcs1v15Sign::new_unprefixed(),
                    &digest_info(),
                )
                .expect("sign");
            std::hint::black_box(s);
        }));
    }
    let (fe, re, fr, rr) = (
        median(fw_ec),
        median(raw_ec),
        median(fw_rsa),
        median(raw_rsa),
    );
    rows.push(("firmware", "ecdsa-p256_per_s", fe));
    rows.push(("p256-crate", "ecdsa-p256_per_s", re));
    rows.push(("firmware", "ecdsa-p256_ratio_to_crate", fe / re));
    rows.push(("firmware", "rsa-2048_per_s", fr));
    rows.push(("rsa-crate", "rsa-2048_per_s", rr));
    rows.push(("firmware", "rsa-2048_ratio_to_crate", fr / rr));

    let mut text = String::from("part,module,keys,latency_ms,metric,value\n");
    for (module, metric, v) in rows {
        eprintln!("  firmware {module} {metric} {v:.3}");
        let _ = writeln!(text, "firmware,{module},0,0,{metric},{v:.3}");
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("results directory");
    }
    std::fs::write(&out, text).expect("write the results");
    eprintln!("results: {}", out.display());
}
