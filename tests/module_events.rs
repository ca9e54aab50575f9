//! libpicohsm_pkcs11.so when the card changes under it, and under load:
//! C_WaitForSlotEvent (blocking, non-blocking, ended by C_Finalize), a card
//! removed or reset by another process, a login lost to another
//! application's SELECT, and four threads signing on one and on two tokens.
//! All through pcscd + vpcd + picohsm-vcard, with the `cryptoki` crate.

mod common;

use std::ffi::CString;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::tools::initialised_card;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// An initialised card with an EC P-256 key, id 01.
fn card_with_key() -> VCard {
    let card = initialised_card();
    our_keypairgen(&card, PIN, "EC:prime256v1", "01");
    card
}

fn logged_in_key(p11: &Pkcs11, slot: Slot) -> (Session, ObjectHandle) {
    let session = p11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    let key = find_by_id(&session, ObjectClass::PRIVATE_KEY, 1)[0];
    (session, key)
}

/// The module, a session logged in on `card` and its key 01, which has
/// signed once.
fn signing_on(card: &VCard) -> (Pkcs11, Session, ObjectHandle) {
    let p11 = our_module();
    let (session, key) = logged_in_key(&p11, slot_of(&p11, card));
    session.sign(&Mechanism::Ecdsa, key, &[1; 32]).unwrap();
    (p11, session, key)
}

/// Drains events other readers may still report (cards of earlier tests
/// leaving), so the next wait sees only this test's.
fn drain_events(p11: &Pkcs11) {
    while p11.get_slot_event().unwrap().is_some() {}
}

#[test]
fn slot_events_removal_and_reinsertion() {
    let _serial = serial();
    let mut card = card_with_key();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    drain_events(&p11);
    assert_eq!(p11.get_slot_event().unwrap(), None, "nothing happened yet");

    let (session, key) = logged_in_key(&p11, slot);
    session.sign(&Mechanism::Ecdsa, key, &[1; 32]).unwrap();

    // Removal: a blocking wait names the slot; the sessions are gone.
    let waiter = {
        let p11 = p11.clone();
        thread::spawn(move || p11.wait_for_slot_event())
    };
    thread::sleep(Duration::from_millis(300));
    card.stop();
    assert_eq!(waiter.join().unwrap().unwrap(), slot);
    assert_eq!(
        rv(session.sign(&Mechanism::Ecdsa, key, &[1; 32]).unwrap_err()),
        RvError::SessionHandleInvalid
    );
    assert!(!p11.get_slot_info(slot).unwrap().token_present());
    assert_eq!(
        rv(p11.open_ro_session(slot).unwrap_err()),
        RvError::TokenNotPresent
    );
    assert_eq!(p11.get_slot_event().unwrap(), None, "one event per change");

    // Insertion: seen without blocking; the slot id has not changed.
    card.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        if let Some(s) = p11.get_slot_event().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no insertion event");
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(event, slot);
    assert_eq!(slot_of(&p11, &card), slot);
    let (session, key) = logged_in_key(&p11, slot);
    session.sign(&Mechanism::Ecdsa, key, &[2; 32]).unwrap();
}

#[test]
fn finalize_ends_a_blocking_wait() {
    let _serial = serial();
    let card = VCard::start();
    let p11 = our_module();
    let _ = slot_of(&p11, &card);
    drain_events(&p11);
    let (tx, rx) = mpsc::channel();
    {
        let p11 = p11.clone();
        thread::spawn(move || {
            let _ = tx.send(p11.wait_for_slot_event());
        });
    }
    thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "the wait blocks");
    let t = Instant::now();
    p11.finalize().unwrap();
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("C_Finalize ended the wait");
    assert_eq!(rv(r.unwrap_err()), RvError::CryptokiNotInitialized);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A shared connection to the card in `reader` through a PC/SC context
/// of its own, as another application has.
fn another_connection(reader: &str) -> pcsc::Card {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = CString::new(reader).unwrap();
    ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap()
}

/// Resets the card as another process would (SCardReconnect with
/// SCARD_RESET_CARD).
fn reset_from_another_connection(reader: &str) {
    let mut card = another_connection(reader);
    card.reconnect(
        pcsc::ShareMode::Shared,
        pcsc::Protocols::ANY,
        pcsc::Disposition::ResetCard,
    )
    .unwrap();
}

/// SELECTs the applet from another connection, as OpenSC does on every
/// card it opens: the card drops its login without a reset.
fn select_from_another_connection(reader: &str) {
    let card = another_connection(reader);
    let mut apdu = vec![0x00, 0xA4, 0x04, 0x00, 0x0B];
    apdu.extend_from_slice(picohsm_wire::codes::AID);
    apdu.push(0x00);
    let mut buf = [0u8; 300];
    let r = card.transmit(&apdu, &mut buf).unwrap();
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    assert!(card.disconnect(pcsc::Disposition::LeaveCard).is_ok());
}

/// The CK_RV of an ECDSA signature of `[byte; 32]` with `key` that fails.
fn sign_error(session: &Session, key: ObjectHandle, byte: u8) -> RvError {
    rv(session
        .sign(&Mechanism::Ecdsa, key, &[byte; 32])
        .unwrap_err())
}

#[test]
fn a_reset_by_another_process_ends_the_login_and_the_sessions() {
    let _serial = serial();
    let card = card_with_key();
    let (p11, session, key) = signing_on(&card);
    let slot = slot_of(&p11, &card);

    reset_from_another_connection(card.reader_name());
    assert_eq!(sign_error(&session, key, 3), RvError::DeviceRemoved);
    assert_eq!(
        rv(session.get_session_info().unwrap_err()),
        RvError::SessionHandleInvalid
    );
    // The token is still there: a new session and login work again.
    let (again, key) = logged_in_key(&p11, slot);
    again.sign(&Mechanism::Ecdsa, key, &[3; 32]).unwrap();

    // Another application's SELECT: the card forgot the login; the module
    // says so precisely and its session state follows.
    select_from_another_connection(card.reader_name());
    assert_eq!(sign_error(&again, key, 4), RvError::UserNotLoggedIn);
    assert_eq!(
        again.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    again
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    again.sign(&Mechanism::Ecdsa, key, &[4; 32]).unwrap();
}

/// Another application's login on the card survives this module's
/// C_Finalize: the module disconnects leaving the card as it is, where the
/// `pcsc` crate's default would reset it. (A session logged in through
/// the module is another matter: closing the last one logs out on the card,
/// which clears the card's user state for everyone.)
#[test]
fn another_connection_keeps_its_login_across_c_finalize() {
    let _serial = serial();
    let card = card_with_key();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    // The module connects to the token, SELECTs it and reads its objects.
    let session = p11.open_ro_session(slot).unwrap();
    assert_eq!(find_by_id(&session, ObjectClass::PUBLIC_KEY, 1).len(), 1);

    // Then another application logs in on the same card.
    let other = another_connection(card.reader_name());
    let mut buf = [0u8; 300];
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x0B];
    select.extend_from_slice(picohsm_wire::codes::AID);
    select.push(0x00);
    let r = other.transmit(&select, &mut buf).unwrap().to_vec();
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    let mut verify = vec![0x00, 0x20, 0x00, 0x81, PIN.len() as u8];
    verify.extend_from_slice(PIN.as_bytes());
    assert_eq!(other.transmit(&verify, &mut buf).unwrap(), &[0x90, 0x00]);

    drop(session);
    p11.finalize().unwrap();

    // Its PIN is still verified: no reset happened.
    let state = other.transmit(&[0x00, 0x20, 0x00, 0x81], &mut buf);
    assert_eq!(
        state.map(|r| r.to_vec()),
        Ok(vec![0x90, 0x00]),
        "the other application's login was lost"
    );
}

/// Four threads, each with its own session, sign `n` times on the tokens
/// given round-robin; every signature must verify through C_Verify.
fn four_threads(p11: &Pkcs11, slots: &[Slot], n: usize) -> Duration {
    // One login per token, held by a session that stays open.
    let holders: Vec<Session> = slots.iter().map(|s| logged_in_key(p11, *s).0).collect();
    let start = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p11 = p11.clone();
            let slot = slots[i % slots.len()];
            thread::spawn(move || {
                let session = p11.open_ro_session(slot).unwrap();
                let find = |class| {
                    session
                        .find_objects(&[Attribute::Class(class), Attribute::Id(vec![1])])
                        .unwrap()[0]
                };
                let (key, public) = (
                    find(ObjectClass::PRIVATE_KEY),
                    find(ObjectClass::PUBLIC_KEY),
                );
                for k in 0..n {
                    let data = [(i * n + k) as u8; 32];
                    let sig = session.sign(&Mechanism::Ecdsa, key, &data).unwrap();
                    session
                        .verify(&Mechanism::Ecdsa, public, &data, &sig)
                        .unwrap();
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for h in handles {
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "a signing thread is stuck");
            thread::sleep(Duration::from_millis(20));
        }
        h.join().expect("a signing thread failed");
    }
    drop(holders);
    start.elapsed()
}

#[test]
fn four_threads_sign_on_one_token_and_on_two_tokens() {
    let _serial = serial();
    let cards = [card_with_key(), card_with_key()];
    let p11 = our_module();
    let slots: Vec<Slot> = cards.iter().map(|c| slot_of(&p11, c)).collect();
    let one = four_threads(&p11, &slots[..1], 50);
    let two = four_threads(&p11, &slots, 50);
    eprintln!("4 threads x 50 signatures: one token {one:?}, two tokens {two:?}");
}

/// Another application holds the card's PC/SC transaction (a multi-command
/// operation of its own): the module's signature, sent as a lone exchange
/// without a transaction of its own, must neither come between that
/// application's commands nor fail; it waits for the transaction to end,
/// then signs.
#[test]
fn a_signature_waits_for_another_applications_transaction() {
    let _serial = serial();
    let card = card_with_key();
    let (_p11, session, key) = signing_on(&card);

    let mut other = another_connection(card.reader_name());
    let tx = other.transaction().unwrap();
    card.clear_apdu_log();
    let (done, signed) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(move || {
            let _ = done.send(session.sign(&Mechanism::Ecdsa, key, &[6; 32]));
        });
        let early = signed.recv_timeout(Duration::from_millis(400));
        assert!(
            early.is_err(),
            "C_Sign returned while another application held the transaction: {early:?}"
        );
        assert!(
            card.apdu_log().is_empty(),
            "a command reached the card inside another application's transaction"
        );
        assert!(tx.end(pcsc::Disposition::LeaveCard).is_ok());
        let sig = signed
            .recv_timeout(Duration::from_secs(10))
            .expect("C_Sign after the transaction ended")
            .expect("the signature");
        assert_eq!(sig.len(), 64);
    });
}

/// Unix sockets this process has open (pcsc-lite's client keeps one per
/// PC/SC context).
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Each connected token has a PC/SC context of its own: pcsc-lite serves
/// one context's calls one at a time, so with one context for the module
/// two tokens signing from two threads went no faster than one token (the
/// rates are in BENCHMARKS.md; here the structure is checked).
#[test]
fn each_token_has_its_own_pcsc_context() {
    let _serial = serial();
    let cards = [card_with_key(), card_with_key()];
    let before = open_sockets();
    let p11 = our_module();
    let slots: Vec<Slot> = cards.iter().map(|c| slot_of(&p11, c)).collect();
    let listed = open_sockets();
    assert_eq!(listed, before + 1, "the module's own context");
    let sessions: Vec<Session> = slots
        .iter()
        .map(|s| p11.open_ro_session(*s).unwrap())
        .collect();
    assert_eq!(
        open_sockets(),
        listed + 2,
        "one more context per connected token"
    );
    drop(sessions);
    p11.finalize().unwrap();
    assert_eq!(open_sockets(), before, "every context released");
}
