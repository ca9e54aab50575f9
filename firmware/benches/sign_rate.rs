//! ECDSA P-256 signing rate of the firmware, beside the raw `p256` crate in
//! the same run: the firmware's figure includes the APDU layer, the key
//! record's MKEK unsealing and the DER encoding; the crate's is the floor.
//!
//! Run: `cargo bench -p picohsm-firmware --bench sign_rate [-- ITERATIONS]`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use p256::ecdsa::signature::hazmat::PrehashSigner;
use picohsm_firmware::{Card, CardConfig, CardRng, Storage, StorageError};
use picohsm_wire::apdu;
use picohsm_wire::codes::AID;

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<Option<Vec<u8>>>>);
impl Storage for Mem {
    fn load(&mut self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().clone()
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

fn ok(card: &mut Card, a: &[u8]) -> Vec<u8> {
    let r = card.transmit(a);
    let n = r.len();
    assert_eq!(&r[n - 2..], &[0x90, 0x00], "APDU {a:02X?}");
    r[..n - 2].to_vec()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let mut card = Card::new(
        Box::new(Mem::default()),
        Box::new(Mem::default()),
        Box::new(Os),
        CardConfig::default(),
    )
    .expect("card");
    card.power_on();
    ok(&mut card, &apdu::build(0, 0xA4, 4, 0, AID, 256));
    let init = [
        0x80, 0x02, 0x00, 0x01, 0x81, 0x06, b'6', b'4', b'8', b'2', b'1', b'9', 0x82, 0x08, 1, 2,
        3, 4, 5, 6, 7, 8,
    ];
    ok(&mut card, &apdu::build(0x80, 0x50, 0, 0, &init, 0));
    let c = picohsm_wire::curve::Curve::P256;
    let mut pk = Vec::new();
    for (tag, v) in [
        (0x06u16, picohsm_wire::cvc::oid::ECDSA_SHA256),
        (0x81, c.prime()),
    ] {
        picohsm_wire::tlv::push(&mut pk, tag, v);
    }
    let mut tpl = Vec::new();
    picohsm_wire::tlv::push(&mut tpl, 0x7F49, &pk);
    ok(&mut card, &apdu::build_extended(0, 0x46, 1, 0, &tpl, 65536));
    let digest = [0x5Au8; 32];
    let sign = apdu::build_extended(0x80, 0x68, 1, 0x70, &digest, 65536);

    let t = Instant::now();
    for _ in 0..n {
        ok(&mut card, &sign);
    }
    let fw = n as f64 / t.elapsed().as_secs_f64();

    let key = p256::ecdsa::SigningKey::from_slice(&[0x42u8; 32]).expect("key");
    let t = Instant::now();
    for _ in 0..n {
        let s: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("sign");
        std::hint::black_box(s);
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();

    println!("ECDSA P-256, {n} signatures each:");
    println!("  firmware SIGN APDU (in process): {fw:10.0} signatures/s");
    println!("  raw p256 crate sign_prehash:     {raw:10.0} signatures/s");
    println!("  firmware / raw:                  {:10.2}", fw / raw);
}
