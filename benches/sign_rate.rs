//! ECDSA P-256 signatures per second, three ways in one run:
//!
//! 1. through the whole stack: OpenSC's `opensc-pkcs11.so` (loaded with the
//!    `cryptoki` crate) → pcscd → vpcd → `picohsm-vcard`;
//! 2. the firmware in process: SIGN APDUs straight into `Card::transmit`
//!    (APDU layer, MKEK unsealing, DER encoding included);
//! 3. the raw `p256` crate, the floor for 2.
//!
//! Needs pcscd with the vpcd readers (`scripts/setup-env.sh`).
//! Run: `cargo bench --bench sign_rate [-- ITERATIONS]` (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
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

const DIGEST: [u8; 32] = [0x5A; 32];

fn rate(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn through_pcscd(n: usize) -> f64 {
    let card = common::VCard::start();
    common::sc_hsm_tool(
        &card,
        [
            "--initialize",
            "--so-pin",
            "1234567890123456",
            "--pin",
            "648219",
        ],
    );
    common::pkcs11_tool(
        &card,
        [
            "--login",
            "--pin",
            "648219",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
        ],
    );
    let p11 = Pkcs11::new(common::opensc_pkcs11_path()).expect("load opensc-pkcs11.so");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = p11
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description() == card.reader_name())
        })
        .expect("the card's slot");
    let session = p11.open_ro_session(slot).expect("session");
    session
        .login(UserType::User, Some(&AuthPin::from("648219")))
        .expect("login");
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .expect("find")[0];
    rate(n, || {
        let sig = session
            .sign(&Mechanism::Ecdsa, key, &DIGEST)
            .expect("C_Sign");
        assert_eq!(sig.len(), 64);
    })
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
    let stack = through_pcscd(n);
    let fw = in_process(n);
    let raw = raw_p256(n);
    println!("ECDSA P-256 (CKM_ECDSA over a SHA-256 digest), {n} signatures each:");
    println!("  opensc-pkcs11 -> pcscd -> vpcd -> picohsm-vcard: {stack:10.0} signatures/s");
    println!("  firmware SIGN APDU, in process:                   {fw:10.0} signatures/s");
    println!("  raw p256 crate sign_prehash:                      {raw:10.0} signatures/s");
    println!(
        "  firmware / raw p256:                              {:10.2}",
        fw / raw
    );
}
