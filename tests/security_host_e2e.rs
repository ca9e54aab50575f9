//! Attacks of a card against the host: a card of the test's own (served to
//! pcscd from this process through vpcd, with the SmartCard-HSM ATR) that
//! answers libpicohsm_pkcs11.so with endless response chains or with
//! garbage. The module must answer every call, in bounded time and memory,
//! with an error code; a panic crossing the C boundary would abort this
//! test process.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cryptoki::error::RvError;
use cryptoki::object::Attribute;
use picohsm_vcard::VirtualCard;

/// Answers every command with `data` bytes and `61 FF` ("255 more bytes"),
/// for ever, counting the commands it gets.
struct EndlessChain {
    data: usize,
    seen: Arc<AtomicUsize>,
}

impl VirtualCard for EndlessChain {
    fn atr(&self) -> Vec<u8> {
        picohsm_wire::codes::ATR.to_vec()
    }
    fn power_on(&mut self) {}
    fn power_off(&mut self) {}
    fn transmit(&mut self, _command: &[u8]) -> Vec<u8> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let mut r = vec![0xA5; self.data];
        r.extend_from_slice(&[0x61, 0xFF]);
        r
    }
}

/// What the module may answer for a token whose card misbehaves.
fn is_card_failure(r: RvError) -> bool {
    matches!(
        r,
        RvError::DeviceError | RvError::TokenNotRecognized | RvError::DeviceRemoved
    )
}

/// `NAME: CKR card failure=BOOL`.
fn failed(name: &str, e: cryptoki::error::Error) -> String {
    let r = rv(e);
    format!("{name}: {r:?} card failure={}", is_card_failure(r))
}

/// Asks the module for the token's info, a session and its objects; returns
/// how long that took and whether every step failed as a card failure.
fn use_token(reader: &str) -> (Duration, Vec<String>) {
    let p11 = our_module();
    let slot = slot_of_reader(&p11, reader);
    let t = Instant::now();
    let mut outcomes = Vec::new();
    match p11.get_token_info(slot) {
        Ok(_) => outcomes.push("C_GetTokenInfo: CKR_OK".to_string()),
        Err(e) => outcomes.push(failed("C_GetTokenInfo", e)),
    }
    match p11.open_ro_session(slot) {
        Ok(s) => match s.find_objects(&[Attribute::Token(true)]) {
            Ok(v) => outcomes.push(format!("C_FindObjects: {} objects", v.len())),
            Err(e) => outcomes.push(failed("C_FindObjects", e)),
        },
        Err(e) => outcomes.push(failed("C_OpenSession", e)),
    }
    (t.elapsed(), outcomes)
}

/// Attack: a card that answers every command, and every GET RESPONSE after
/// it, with `61 FF` and no data, so that a host following the chain spins
/// for ever. Expected: the module gives up after 4,096 GET RESPONSEs with
/// CKR_DEVICE_ERROR, within seconds.
#[test]
fn attack_endless_empty_response_chain() {
    let _serial = serial();
    let seen = Arc::new(AtomicUsize::new(0));
    let rogue = RogueCard::start(EndlessChain {
        data: 0,
        seen: seen.clone(),
    });
    let (took, outcomes) = use_token(rogue.reader_name());
    assert!(took < Duration::from_secs(60), "{took:?}: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.ends_with("card failure=true")),
        "{outcomes:?}"
    );
    // Each failed call stops at the cap: at most 4,097 commands per APDU
    // the module meant to send, and it sends few.
    let n = seen.load(Ordering::Relaxed);
    assert!(n <= 4 * 4097, "{n} commands reached the card");
}

/// Attack: a card that answers with 255 bytes and `61 FF` for ever, so that
/// a host appending the chain grows without limit. Expected: the module
/// stops at 65,792 bytes of one response with CKR_DEVICE_ERROR.
#[test]
fn attack_endless_response_chain_with_data() {
    let _serial = serial();
    let seen = Arc::new(AtomicUsize::new(0));
    let rogue = RogueCard::start(EndlessChain {
        data: 255,
        seen: seen.clone(),
    });
    let (took, outcomes) = use_token(rogue.reader_name());
    assert!(took < Duration::from_secs(60), "{took:?}: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.ends_with("card failure=true")),
        "{outcomes:?}"
    );
    // 65,792 bytes are 259 answers of 255 bytes; a few APDUs at most.
    let n = seen.load(Ordering::Relaxed);
    assert!(n <= 4 * 260, "{n} commands reached the card");
}

/// A card answering with random bytes: random lengths (none, one byte, up
/// to 300), random data and status words, some of them plausible (`9000`,
/// `61xx`, `6Cxx`, `6A82`).
struct Garbage {
    state: u64,
}

impl Garbage {
    fn next(&mut self) -> u64 {
        // xorshift64*: reproducible noise, not cryptography.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl VirtualCard for Garbage {
    fn atr(&self) -> Vec<u8> {
        picohsm_wire::codes::ATR.to_vec()
    }
    fn power_on(&mut self) {}
    fn power_off(&mut self) {}
    fn transmit(&mut self, _command: &[u8]) -> Vec<u8> {
        let len = match self.next() % 8 {
            0 => 0,
            1 => 1,
            _ => (self.next() % 300) as usize,
        };
        let mut r: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        let sw2 = self.next() as u8;
        match self.next() % 6 {
            0 | 1 => r.extend_from_slice(&[0x90, 0x00]),
            2 => r.extend_from_slice(&[0x61, sw2]),
            3 => r.extend_from_slice(&[0x6C, sw2]),
            4 => r.extend_from_slice(&[0x6A, 0x82]),
            _ => {}
        }
        r
    }
}

/// Attack: a card with the SmartCard-HSM ATR answers every command with
/// garbage (random lengths, data and status words), 25 times over with a
/// fresh C_Initialize. Expected: every call returns, each within seconds,
/// with an error code or well-formed results; nothing panics or hangs.
#[test]
fn attack_card_answering_garbage() {
    let _serial = serial();
    for seed in 1..=25u64 {
        let rogue = RogueCard::start(Garbage {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        });
        let (took, outcomes) = use_token(rogue.reader_name());
        assert!(
            took < Duration::from_secs(30),
            "seed {seed}: {took:?}: {outcomes:?}"
        );
        assert_eq!(outcomes.len(), 2, "seed {seed}: {outcomes:?}");
    }
}
