//! The virtual card's modelled device timing end to end, through pcscd:
//! `picohsm-vcard --latency-ms N` holds every response N ms after its
//! command arrived, `--profile rp2040` adds the device's compute time for
//! SIGN, and SIGTERM still stops the card while a response is held.
//! Only lower bounds are asserted (the delay is applied); how fast anything
//! is belongs to the benchmarks, never to a test.

mod common;

use std::ffi::CString;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::pka::{Conn, SELECT};
use common::tools::initialize;
use common::*;
use picohsm_wire::apdu;
use picohsm_wire::codes::fid;

/// A user who starts the card with `--latency-ms 50` waits at least 50 ms
/// for each response: every SELECT through pcscd takes no less.
#[test]
fn latency_ms_holds_every_response_at_least_that_long() {
    let card = VCard::start_with(Options {
        latency_ms: 50,
        ..Options::default()
    });
    let mut conn = Conn::open(&card);
    for _ in 0..3 {
        let t0 = Instant::now();
        conn.select();
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(50), "a SELECT took {took:?}");
    }
}

/// A user who starts the card with `--profile rp2040` waits at least the
/// device's 250 ms for an ECDSA signature, on top of no latency at all.
#[test]
fn profile_rp2040_holds_an_ecdsa_signature_at_least_250_ms() {
    let card = VCard::start_with(Options {
        profile: Some("rp2040".into()),
        ..Options::default()
    });
    initialize(&card, &[]);
    our_keypairgen(&card, PIN, "EC:prime256v1", "01");
    let mut conn = Conn::logged_in(&card);
    // The key's reference: its file CCxx in the listing (CC00 is the
    // device key, which SIGN refuses).
    let listing = conn.ok(&apdu::build(0x80, 0x58, 0, 0, &[], 256));
    let key_ref = listing
        .chunks(2)
        .find(|f| f[0] == fid::KEY_PREFIX && f[1] != 0)
        .expect("a key in the listing")[1];
    let t0 = Instant::now();
    let der = conn.ok(&apdu::build_extended(
        0x80,
        0x68,
        key_ref,
        0x70,
        &[0x5A; 32],
        65536,
    ));
    let took = t0.elapsed();
    assert_eq!(der[0], 0x30, "not a DER signature: {der:02X?}");
    assert!(took >= Duration::from_millis(250), "a SIGN took {took:?}");
}

/// A user stops a card started with a ten-minute latency with SIGTERM
/// while it holds a response: it exits with status 0 within seconds, and
/// the held response still reaches the client first.
#[test]
fn sigterm_while_a_response_is_held_stops_the_card_promptly() {
    let mut card = VCard::start_with(Options {
        latency_ms: 600_000,
        ..Options::default()
    });
    let reader = CString::new(card.reader_name()).unwrap();
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
        let conn = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("connect");
        let mut buf = [0u8; 300];
        let r = conn.transmit(SELECT, &mut buf).map(<[u8]>::to_vec);
        let _ = tx.send(r);
    });
    // The card has answered (the response is logged before it is held).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !card.apdu_log().iter().any(|l| l.starts_with("< ")) {
        assert!(
            Instant::now() < deadline,
            "no response logged: {:?}",
            card.apdu_log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(rx.try_recv().is_err(), "the response was not held");
    let (took, status) = card.sigterm_timed(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?} after {took:?}\n{}",
        card.stderr_log()
    );
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    let response = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the client's transmit returned")
        .expect("the held response reached the client");
    assert_eq!(
        response[response.len() - 2..],
        picohsm_wire::sw::StatusWord::OK.to_bytes()
    );
    client.join().unwrap();
}
