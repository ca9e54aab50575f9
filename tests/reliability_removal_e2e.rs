//! Reliability of libpicohsm_pkcs11.so when the card or pcscd goes away
//! while it works (issue 12): a card pulled mid-signing and plugged back, a
//! card reset by another process mid-signing, pcscd restarted mid-signing.
//! Each cycle: a thread signs in a loop (every signature verified), the
//! card or pcscd is disrupted at a random moment, then the first failing
//! call must say the token went (never CKR_DEVICE_ERROR or a status word of
//! a card that lost our login), the old session must be closed, and a new
//! session must log in (not CKR_USER_ALREADY_LOGGED_IN) and sign in the
//! same process, without C_Finalize.
//!
//! All through pcscd + vpcd + picohsm-vcard with the `cryptoki` crate.
//! `survives_pcscd_restart` restarts the shared pcscd: run this file alone
//! (as `scripts/test.sh` runs every test binary, one after the other).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::removal::*;
use common::tools::initialised_card;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

/// How long a disrupted signer may go on signing before the disruption
/// counts as unnoticed, and how long a card may take to be usable again.
const DEADLINE: Duration = Duration::from_secs(20);

/// An initialised card with an EC P-256 key (id 01), and its public key.
fn card_with_key() -> (VCard, VerifyingKey) {
    let card = initialised_card();
    our_keypairgen(&card, PIN, "EC:prime256v1", "01");
    let p11 = our_module();
    let session = p11.open_ro_session(slot_of(&p11, &card)).unwrap();
    let public = find_by_id(&session, ObjectClass::PUBLIC_KEY, 1)[0];
    let point = match session
        .get_attributes(public, &[AttributeType::EcPoint])
        .unwrap()
        .pop()
    {
        Some(Attribute::EcPoint(p)) => p,
        other => panic!("CKA_EC_POINT: {other:?}"),
    };
    // DER OCTET STRING around the uncompressed point.
    assert_eq!(&point[..2], &[0x04, 0x41], "{point:02x?}");
    let key = VerifyingKey::from_sec1_bytes(&point[2..]).expect("a P-256 point");
    drop(session);
    p11.finalize().unwrap();
    (card, key)
}

/// A random delay of 0..`max_ms` milliseconds, so that the disruption
/// lands anywhere in the signer's loop (inside a transaction or between).
fn random_delay(max_ms: u64) -> Duration {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    Duration::from_millis(u64::from_le_bytes(b) % max_ms)
}

/// What a signer saw.
struct Signed {
    /// The session it signed in.
    session: Session,
    /// Signatures returned, all verified.
    ok: usize,
    /// Signatures returned that do not verify: wrong results.
    bad: usize,
    /// The first failure, which ended the loop.
    first_err: Option<RvError>,
}

/// Signs ECDSA over a fresh 32-byte value with `key` in a loop, verifying
/// each signature, until the first failure or `stop`.
fn signer(
    session: Session,
    key: ObjectHandle,
    public: VerifyingKey,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Signed> {
    thread::spawn(move || {
        let mut s = Signed {
            session,
            ok: 0,
            bad: 0,
            first_err: None,
        };
        let mut n: u64 = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let mut msg = [0x5Au8; 32];
            msg[..8].copy_from_slice(&n.to_be_bytes());
            match s.session.sign(&Mechanism::Ecdsa, key, &msg) {
                Ok(sig) => {
                    let good = Signature::from_slice(&sig)
                        .is_ok_and(|sig| public.verify_prehash(&msg, &sig).is_ok());
                    if good {
                        s.ok += 1;
                    } else {
                        s.bad += 1;
                    }
                }
                Err(e) => {
                    s.first_err = Some(rv(e));
                    break;
                }
            }
        }
        s
    })
}

/// A new session on `slot`, logged in, with the key: waits while the slot
/// has no usable token yet (a card plugged back, pcscd restarting).
fn logged_in(p11: &Pkcs11, slot: Slot) -> Result<(Session, ObjectHandle), String> {
    let deadline = Instant::now() + DEADLINE;
    let session = loop {
        match p11.open_rw_session(slot) {
            Ok(s) => break s,
            Err(e) if rv_is(&e, RvError::TokenNotPresent) && Instant::now() < deadline => {
                pause(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("C_OpenSession: {e}")),
        }
    };
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .map_err(|e| format!("C_Login on a new session: {e}"))?;
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .map_err(|e| format!("C_FindObjects: {e}"))?
        .first()
        .copied()
        .ok_or("the key is gone")?;
    Ok((session, key))
}

/// Whether `e` is the PKCS#11 error `expected`.
fn rv_is(e: &cryptoki::error::Error, expected: RvError) -> bool {
    matches!(e, cryptoki::error::Error::Pkcs11(r, _) if *r == expected)
}

/// One signature with `key` in `session`, verified.
fn signs(session: &Session, key: ObjectHandle, public: &VerifyingKey) -> Result<(), String> {
    let msg = [0xA5u8; 32];
    let sig = session
        .sign(&Mechanism::Ecdsa, key, &msg)
        .map_err(|e| format!("C_Sign: {e}"))?;
    let sig = Signature::from_slice(&sig).map_err(|e| format!("signature: {e}"))?;
    public
        .verify_prehash(&msg, &sig)
        .map_err(|_| "a signature that does not verify".to_string())
}

/// One cycle: a logged-in session signs in a thread, `disrupt` runs after
/// a random delay, then the signer's first failure must be one of
/// `expected`, its session must be closed, and a new session must log in
/// and sign. Returns the signatures made.
fn cycle(
    p11: &Pkcs11,
    slot: Slot,
    public: &VerifyingKey,
    disrupt: impl FnOnce(),
    expected: &[RvError],
) -> Result<usize, String> {
    let (session, key) = logged_in(p11, slot)?;
    signs(&session, key, public)?;
    let stop = Arc::new(AtomicBool::new(false));
    let handle = signer(session, key, *public, stop.clone());
    pause(random_delay(20));
    disrupt();
    let deadline = Instant::now() + DEADLINE;
    while !handle.is_finished() && Instant::now() < deadline {
        pause(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let s = handle.join().expect("the signer thread");
    if s.bad > 0 {
        return Err(format!("{} signatures that do not verify", s.bad));
    }
    match s.first_err {
        None => return Err(format!("still signing {DEADLINE:?} after the disruption")),
        Some(e) if !expected.contains(&e) => {
            return Err(format!("first failure {e:?}, expected one of {expected:?}"))
        }
        Some(_) => {}
    }
    match s.session.get_session_info() {
        Err(e) if rv_is(&e, RvError::SessionHandleInvalid) => {}
        other => {
            return Err(format!(
                "the old session is still open: C_GetSessionInfo {:?}",
                other.map(|i| i.session_state())
            ))
        }
    }
    let (again, key) = logged_in(p11, slot)?;
    signs(&again, key, public)?;
    Ok(s.ok)
}

/// Runs `cycles` cycles, records them under `name`, then asserts that
/// every one held.
fn run_cycles(name: &str, cycles: usize, mut one: impl FnMut(usize) -> Result<usize, String>) {
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut signatures = 0;
    for i in 0..cycles {
        match one(i) {
            Ok(n) => signatures += n,
            // The cycle's sessions are closed (dropped) by now, which is
            // all the cleaning up a module that works needs.
            Err(e) => failures.push(format!("cycle {i}: {e}")),
        }
    }
    eprintln!(
        "{name}: {} of {cycles} cycles held, {signatures} signatures verified, {:.1} s",
        cycles - failures.len(),
        start.elapsed().as_secs_f64()
    );
    common::reliability::record(name, cycles, cycles - failures.len(), "cycles");
    assert!(
        failures.is_empty(),
        "{} of {cycles} cycles failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Reliability: a card pulled (picohsm-vcard SIGKILLed) at a random moment while a thread signs and plugged back, with or without pcscd seeing the reader empty in between, gives CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT as the first failure, closes the old session, and a new session logs in and signs in the same process.
#[test]
fn survives_removal_mid_signing() {
    let _serial = serial();
    let (mut card, public) = card_with_key();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let cycles = common::reliability::count(10, 100);
    let expected = [RvError::DeviceRemoved, RvError::TokenNotPresent];
    run_cycles("survives_removal_mid_signing", cycles, |i| {
        let card = &mut card;
        cycle(
            &p11,
            slot,
            &public,
            || {
                pull(card);
                if i % 2 == 0 {
                    // pcscd sees the reader empty, then the card back.
                    wait_presence(card, false);
                }
                // Odd cycles: plugged back at once; pcscd may never
                // see the reader empty (vpcd), so only the module can
                // tell that the card changed.
                card.start_again();
            },
            &expected,
        )
    });
}

/// The environment variable that makes [`reset_helper`] reset a reader.
const RESET_READER: &str = "PICOHSM_TEST_RESET_READER";

/// Another process resets the card in `reader`, as another application
/// would: its own connection, SCardReconnect with SCARD_RESET_CARD.
fn reset_from_another_process(reader: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reset_helper", "--ignored", "--nocapture"])
        .env(RESET_READER, reader)
        .output()
        .expect("run the reset helper");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("reset done"),
        "the reset helper failed:\n{}",
        text(&out)
    );
}

/// Not a test: the other process of [`survives_reset_by_another_process`]
/// (this test binary run again with `PICOHSM_TEST_RESET_READER`).
#[test]
#[ignore = "helper process of survives_reset_by_another_process"]
fn reset_helper() {
    let Ok(reader) = std::env::var(RESET_READER) else {
        return;
    };
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader).unwrap();
    let mut card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    card.reconnect(
        pcsc::ShareMode::Shared,
        pcsc::Protocols::ANY,
        pcsc::Disposition::ResetCard,
    )
    .unwrap();
    card.disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .unwrap();
    println!("reset done");
}

/// Reliability: a card reset by another process (SCardReconnect with SCARD_RESET_CARD) at a random moment while a thread signs gives no signature that fails to verify, CKR_DEVICE_REMOVED as the first failure, closes the old session, and a new session logs in and signs in the same process.
#[test]
fn survives_reset_by_another_process() {
    let _serial = serial();
    let (card, public) = card_with_key();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let cycles = common::reliability::count(10, 100);
    run_cycles("survives_reset_by_another_process", cycles, |_| {
        cycle(
            &p11,
            slot,
            &public,
            || reset_from_another_process(card.reader_name()),
            &[RvError::DeviceRemoved],
        )
    });
}

/// Reliability: pcscd restarted while a thread signs gives CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT as the first failure, closes the old session, and once the card is back in its reader (same slot id) a new session logs in and signs in the same process, without C_Finalize.
#[test]
fn survives_pcscd_restart() {
    let _serial = serial();
    let (mut card, public) = card_with_key();
    let p11 = our_module();
    let slot = slot_of(&p11, &card);
    let cycles = common::reliability::count(3, 20);
    let expected = [RvError::DeviceRemoved, RvError::TokenNotPresent];
    run_cycles("survives_pcscd_restart", cycles, |_| {
        let card = &mut card;
        let n = cycle(
            &p11,
            slot,
            &public,
            || {
                restart_pcscd();
                // picohsm-vcard connects to the new vpcd on its own.
                wait_presence(card, true);
            },
            &expected,
        )?;
        if slot_of(&p11, card) != slot {
            return Err("the slot id changed".into());
        }
        Ok(n)
    });
}
