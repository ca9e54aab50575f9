//! Reliability of the virtual card `picohsm-vcard` behind pcscd: it stops
//! promptly on SIGTERM however busy its clients keep it, and a SIGKILL at
//! any moment of a write (key generation, certificate and data object
//! writes, PIN changes, PKA registration) loses nothing that was
//! acknowledged and shows nothing half-written.
//!
//! The clients are what a user runs: this project's PKCS#11 module through
//! the `cryptoki` crate, and `picohsm-tool pka register`. Each kill cycle
//! runs operations on two cards at once (one without PKA for the module's
//! writes, one with PKA for the registrations), kills each card with
//! SIGKILL after a random delay, starts both again on the same files and
//! checks the cards against what was acknowledged.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::pka::Conn;
use common::tools::initialize;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc;
use picohsm_wire::tlv::encode;

/// The second user PIN the kill cycles switch to and back.
const PIN2: &str = "135790";
/// PKA slots of the registration card (all needed only past the last one).
const PKA_SLOTS: u8 = 8;

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random bytes");
    u64::from_le_bytes(b)
}

/// A uniformly random duration in `[0, max]`.
fn random_delay(max: Duration) -> Duration {
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(random_u64() % (ms + 1))
}

/// A P-256 key from fresh random bytes.
fn random_p256() -> SigningKey {
    loop {
        let mut d = [0u8; 32];
        getrandom::fill(&mut d).expect("random bytes");
        if let Ok(k) = SigningKey::from_slice(&d) {
            return k;
        }
    }
}

fn point_of(k: &SigningKey) -> Vec<u8> {
    k.verifying_key().to_sec1_point(false).as_bytes().to_vec()
}

/// An X.509 certificate of about `size` bytes (padded with a comment
/// extension, so that it takes several 1024-byte writes) for the P-256
/// point `point`, signed by `ca`.
fn cert_der(ca: &SigningKey, serial: u64, cn: &str, point: &[u8], size: usize) -> Vec<u8> {
    const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    const ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    const NS_COMMENT: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xF8, 0x42, 0x01, 0x0D];
    let name = |cn: &str| {
        let atv = [encode(0x06, COMMON_NAME), encode(0x0C, cn.as_bytes())].concat();
        encode(0x30, &encode(0x31, &encode(0x30, &atv)))
    };
    let alg = encode(0x30, &encode(0x06, ECDSA_SHA256));
    let validity = [
        encode(0x17, b"250101000000Z"),
        encode(0x17, b"450101000000Z"),
    ]
    .concat();
    let key_alg = [encode(0x06, EC_PUBLIC_KEY), Curve::P256.oid_der().to_vec()].concat();
    let spki = [
        encode(0x30, &key_alg),
        encode(0x03, &[&[0u8][..], point].concat()),
    ]
    .concat();
    let mut serial_bytes = vec![0x01];
    serial_bytes.extend_from_slice(&serial.to_be_bytes());
    let base = [
        encode(0xA0, &encode(0x02, &[2])),
        encode(0x02, &serial_bytes),
        alg.clone(),
        name("picohsm reliability CA"),
        encode(0x30, &validity),
        name(cn),
        encode(0x30, &spki),
    ]
    .concat();
    let pad = size.saturating_sub(base.len() + 110);
    let comment = encode(0x16, &vec![b'x'; pad]);
    let ext = encode(
        0x30,
        &[encode(0x06, NS_COMMENT), encode(0x04, &comment)].concat(),
    );
    let tbs = encode(0x30, &[base, encode(0xA3, &encode(0x30, &ext))].concat());
    let sig: Signature = ca.sign(&tbs);
    let sig_bits = [&[0u8][..], sig.to_der().as_bytes()].concat();
    encode(0x30, &[tbs, alg, encode(0x03, &sig_bits)].concat())
}

/// A random size between 1100 and 3500 bytes: more than one 1024-byte
/// UPDATE BINARY, less than what an upstream Pico HSM file holds.
fn big_size() -> usize {
    1100 + (random_u64() % 2400) as usize
}

fn pin_incorrect(e: &cryptoki::error::Error) -> bool {
    matches!(e, cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _))
}

fn login(session: &Session, pin: &str) -> cryptoki::error::Result<()> {
    session.login(UserType::User, Some(&AuthPin::from(pin)))
}

// ---------------------------------------------------------------------------
// SIGTERM under load

/// Signs with `key` in a loop until the card goes away; tells `ready`
/// after its fifth signature. Returns how many signatures it made.
fn hammer(p11: &Pkcs11, slot: Slot, key: Vec<u8>, ready: mpsc::Sender<()>) -> usize {
    let Ok(session) = p11.open_ro_session(slot) else {
        return 0;
    };
    let Ok(found) = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(key),
    ]) else {
        return 0;
    };
    let Some(&h) = found.first() else { return 0 };
    let mut n = 0;
    while session.sign(&Mechanism::Ecdsa, h, &[0x5A; 32]).is_ok() {
        n += 1;
        if n == 5 {
            let _ = ready.send(());
        }
    }
    n
}

/// Reliability: SIGTERM while three clients keep the virtual card busy with signatures stops it within 1 s with exit status 0, and its image loads again with the key on it.
#[test]
fn survives_sigterm_under_load() {
    let tries = reliability::count(10, 40);
    let _serial = serial();
    let mut card = VCard::start();
    initialize(&card, &[]);
    let key_id = vec![0x51];
    {
        let p11 = our_module();
        let slot = slot_of(&p11, &card);
        let session = p11.open_rw_session(slot).unwrap();
        login(&session, PIN).unwrap();
        session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(Curve::P256.oid_der().to_vec()),
                    Attribute::Id(key_id.clone()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Sign(true),
                    Attribute::Id(key_id.clone()),
                ],
            )
            .unwrap();
        drop(session);
        p11.finalize().expect("C_Finalize");
    }
    let clients = 3;
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for i in 0..tries {
        let p11 = our_module();
        let slot = slot_of(&p11, &card);
        let session = p11.open_rw_session(slot).unwrap();
        login(&session, PIN).unwrap();
        let (tx, rx) = mpsc::channel();
        let (took, status, signed) = thread::scope(|s| {
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    let (p11, key, tx) = (&p11, key_id.clone(), tx.clone());
                    s.spawn(move || hammer(p11, slot, key, tx))
                })
                .collect();
            for _ in 0..clients {
                rx.recv_timeout(Duration::from_secs(60))
                    .expect("every client signs five times");
            }
            let (took, status) = card.sigterm_timed(Duration::from_secs(10));
            let signed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
            (took, status, signed)
        });
        // C_Finalize, not only a drop: cryptoki's drop unloads the module
        // without it, and the module's PC/SC context (a connection to pcscd,
        // which takes 200 at most) would stay open.
        drop(session);
        p11.finalize().expect("C_Finalize");
        eprintln!("try {i}: {signed} signatures; exit after SIGTERM in {took:?}: {status:?}");
        times.push(took);
        match status {
            Some(s) if s.success() && took < Duration::from_secs(1) => {}
            other => failures.push(format!(
                "try {i}: exit after {took:?} with {other:?} (None: still running, killed)"
            )),
        }
        // The image loads: the card starts again and still has its key.
        card.start_again();
        let p11 = our_module();
        let session = p11.open_ro_session(slot_of(&p11, &card)).unwrap();
        login(&session, PIN).unwrap();
        let keys = find_by_id(&session, ObjectClass::PRIVATE_KEY, 0x51);
        if keys.len() != 1 {
            failures.push(format!("try {i}: the key is gone after the restart"));
        }
        drop(session);
        p11.finalize().expect("C_Finalize");
    }
    times.sort();
    eprintln!(
        "SIGTERM under load, {tries} tries: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    reliability::record(
        "survives_sigterm_under_load",
        tries,
        tries - failures.len().min(tries),
        "SIGTERMs",
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------
// SIGKILL during writes: the module's card

/// What was asked of and acknowledged by the card without PKA.
#[derive(Default)]
struct Store {
    /// The user PIN as last acknowledged, and the one before it.
    pin: String,
    old_pin: String,
    /// A PIN change sent but not acknowledged (the card was killed).
    pin_pending: bool,
    /// Acknowledged key pairs still there, oldest first (CKA_ID).
    keys: Vec<Vec<u8>>,
    /// Acknowledged certificates still there: CKA_ID -> DER. A key's
    /// certificate has the key's CKA_ID.
    certs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// CA certificates (not a key's), oldest first.
    ca_certs: Vec<Vec<u8>>,
    /// Acknowledged data objects still there: label -> value, oldest first.
    data: Vec<(Vec<u8>, Vec<u8>)>,
    /// Acknowledged deletions: CKA_IDs of keys and certificates, labels of
    /// data objects.
    gone: BTreeSet<Vec<u8>>,
    /// Everything ever sent, acknowledged or not: key ids, certificate
    /// DERs, data values.
    tried_keys: BTreeSet<Vec<u8>>,
    tried_certs: BTreeSet<Vec<u8>>,
    tried_data: BTreeSet<Vec<u8>>,
    /// The operation in flight, if the card died during it.
    pending: Option<Op>,
    seq: u64,
    acked: usize,
    /// Keys left with the card's own description by a kill (see `check_store`).
    card_named_keys: usize,
    /// The public point of every key adopted with the card's own
    /// description, by CKA_ID: the card names a key after its reference,
    /// which a later key may reuse once the first is deleted.
    card_named_points: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Op {
    KeyGen(Vec<u8>),
    KeyCert(Vec<u8>),
    CaCert(Vec<u8>),
    Data(Vec<u8>),
    SetPin,
    DestroyKey(Vec<u8>),
    DestroyCert(Vec<u8>),
    DestroyData(Vec<u8>),
}

const KEEP_KEYS: usize = 3;
const KEEP_CA: usize = 2;
const KEEP_DATA: usize = 2;

/// One acknowledged operation or the card's error.
type Step = cryptoki::error::Result<()>;

fn begin(m: &Mutex<Store>, op: Op) -> u64 {
    let mut g = m.lock().unwrap();
    g.pending = Some(op);
    g.seq += 1;
    g.seq
}

fn ack(m: &Mutex<Store>, f: impl FnOnce(&mut Store)) {
    let mut g = m.lock().unwrap();
    f(&mut g);
    g.pending = None;
    g.acked += 1;
}

/// One round of writes through the module: a key pair, its certificate, a
/// CA certificate, a data object, a PIN change, and deletions of the
/// oldest objects past a few of each.
fn store_round(session: &Session, m: &Mutex<Store>, ca: &SigningKey) -> Step {
    // Key generation.
    let seq = m.lock().unwrap().seq + 1;
    let id = format!("k{seq}").into_bytes();
    m.lock().unwrap().tried_keys.insert(id.clone());
    begin(m, Op::KeyGen(id.clone()));
    let (public, _) = session.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::EcParams(Curve::P256.oid_der().to_vec()),
            Attribute::Id(id.clone()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Id(id.clone()),
            Attribute::Label(id.clone()),
        ],
    )?;
    ack(m, |g| g.keys.push(id.clone()));

    // Its certificate: replaces the key's request in CExx.
    let point = match session
        .get_attributes(public, &[AttributeType::EcPoint])?
        .first()
    {
        Some(Attribute::EcPoint(p)) => picohsm_wire::tlv::parse_one(p)
            .map(|(t, _)| t.value.to_vec())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let der = cert_der(ca, seq, &format!("key {seq}"), &point, big_size());
    m.lock().unwrap().tried_certs.insert(der.clone());
    begin(m, Op::KeyCert(id.clone()));
    session.create_object(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Id(id.clone()),
        Attribute::Value(der.clone()),
    ])?;
    ack(m, |g| {
        g.certs.insert(id.clone(), der.clone());
    });

    // A CA certificate: CAxx and its description C8xx.
    let seq = begin(m, Op::CaCert(Vec::new()));
    let ca_id = format!("c{seq}").into_bytes();
    let der = cert_der(
        ca,
        seq,
        &format!("ca {seq}"),
        &point_of(&random_p256()),
        big_size(),
    );
    {
        let mut g = m.lock().unwrap();
        g.tried_certs.insert(der.clone());
        g.pending = Some(Op::CaCert(ca_id.clone()));
    }
    session.create_object(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Id(ca_id.clone()),
        Attribute::Label(ca_id.clone()),
        Attribute::Value(der.clone()),
    ])?;
    ack(m, |g| {
        g.certs.insert(ca_id.clone(), der.clone());
        g.ca_certs.push(ca_id.clone());
    });

    // A public data object: CFxx and its description C9xx.
    let seq = begin(m, Op::Data(Vec::new()));
    let label = format!("d{seq}").into_bytes();
    let mut value = vec![0u8; big_size()];
    getrandom::fill(&mut value).unwrap();
    {
        let mut g = m.lock().unwrap();
        g.tried_data.insert(value.clone());
        g.pending = Some(Op::Data(label.clone()));
    }
    session.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(label.clone()),
        Attribute::Value(value.clone()),
    ])?;
    ack(m, |g| g.data.push((label.clone(), value.clone())));

    // A PIN change.
    let (pin, new) = {
        let g = m.lock().unwrap();
        let new = if g.pin == PIN { PIN2 } else { PIN };
        (g.pin.clone(), new.to_string())
    };
    begin(m, Op::SetPin);
    {
        m.lock().unwrap().pin_pending = true;
    }
    session.set_pin(&AuthPin::from(pin.as_str()), &AuthPin::from(new.as_str()))?;
    ack(m, |g| {
        g.old_pin = std::mem::replace(&mut g.pin, new.clone());
        g.pin_pending = false;
    });

    // Deletions of the oldest objects.
    loop {
        let oldest = {
            let g = m.lock().unwrap();
            (g.keys.len() > KEEP_KEYS).then(|| g.keys[0].clone())
        };
        let Some(id) = oldest else { break };
        begin(m, Op::DestroyKey(id.clone()));
        let h = session.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.clone()),
        ])?;
        if let Some(h) = h.first() {
            session.destroy_object(*h)?;
        }
        ack(m, |g| {
            g.keys.retain(|k| *k != id);
            g.certs.remove(&id);
            g.gone.insert(id.clone());
        });
    }
    loop {
        let oldest = {
            let g = m.lock().unwrap();
            (g.ca_certs.len() > KEEP_CA).then(|| g.ca_certs[0].clone())
        };
        let Some(id) = oldest else { break };
        begin(m, Op::DestroyCert(id.clone()));
        let h = session.find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.clone()),
        ])?;
        if let Some(h) = h.first() {
            session.destroy_object(*h)?;
        }
        ack(m, |g| {
            g.ca_certs.retain(|k| *k != id);
            g.certs.remove(&id);
            g.gone.insert(id.clone());
        });
    }
    loop {
        let oldest = {
            let g = m.lock().unwrap();
            (g.data.len() > KEEP_DATA).then(|| g.data[0].0.clone())
        };
        let Some(label) = oldest else { break };
        begin(m, Op::DestroyData(label.clone()));
        let h = session.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(label.clone()),
        ])?;
        if let Some(h) = h.first() {
            session.destroy_object(*h)?;
        }
        ack(m, |g| {
            g.data.retain(|(l, _)| *l != label);
            g.gone.insert(label.clone());
        });
    }
    Ok(())
}

/// Runs rounds on the card until it is gone (or `max_rounds`); tells
/// `started` once logged in, before the first write.
fn store_worker(
    p11: &Pkcs11,
    slot: Slot,
    m: &Mutex<Store>,
    ca: &SigningKey,
    max_rounds: usize,
    started: Option<mpsc::Sender<()>>,
) {
    let Ok(session) = p11.open_rw_session(slot) else {
        return;
    };
    let pin = m.lock().unwrap().pin.clone();
    if login(&session, &pin).is_err() {
        return;
    }
    // The module reads the card's objects at the first search: before the
    // first write, so that the kill's delay spreads over the writes.
    if session.find_objects(&[]).is_err() {
        return;
    }
    if let Some(tx) = started {
        let _ = tx.send(());
    }
    for _ in 0..max_rounds {
        if store_round(&session, m, ca).is_err() {
            return;
        }
    }
}

/// One object as the module lists it.
#[derive(Debug)]
struct Listed {
    class: ObjectClass,
    id: Vec<u8>,
    label: Vec<u8>,
    value: Option<Vec<u8>>,
}

fn list(session: &Session) -> cryptoki::error::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for class in [
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
        ObjectClass::CERTIFICATE,
        ObjectClass::DATA,
    ] {
        for h in session.find_objects(&[Attribute::Class(class)])? {
            out.push(listed(session, class, h)?);
        }
    }
    Ok(out)
}

fn listed(
    session: &Session,
    class: ObjectClass,
    h: ObjectHandle,
) -> cryptoki::error::Result<Listed> {
    let mut l = Listed {
        class,
        id: Vec::new(),
        label: Vec::new(),
        value: None,
    };
    let mut kinds = vec![AttributeType::Label];
    if class != ObjectClass::DATA {
        kinds.push(AttributeType::Id);
    }
    if class == ObjectClass::CERTIFICATE || class == ObjectClass::DATA {
        kinds.push(AttributeType::Value);
    }
    for a in session.get_attributes(h, &kinds)? {
        match a {
            Attribute::Id(v) => l.id = v,
            Attribute::Label(v) => l.label = v,
            Attribute::Value(v) => l.value = Some(v),
            _ => {}
        }
    }
    Ok(l)
}

/// The EC point of the public key with CKA_ID `id`.
fn ec_point(session: &Session, id: &[u8]) -> Result<Vec<u8>, String> {
    let h = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.to_vec()),
        ])
        .map_err(|e| format!("finding public key {id:?}: {e}"))?;
    let h = h
        .first()
        .ok_or_else(|| format!("key {id:?} has no public key"))?;
    match session.get_attributes(*h, &[AttributeType::EcPoint]) {
        Ok(a) => match a.first() {
            Some(Attribute::EcPoint(p)) => Ok(p.clone()),
            _ => Err(format!("key {id:?}: no CKA_EC_POINT")),
        },
        Err(e) => Err(format!("key {id:?}: CKA_EC_POINT: {e}")),
    }
}

/// Logs in after a restart: the acknowledged PIN must work and the one
/// before it must be refused. When the card died during a PIN change,
/// either PIN may be the card's; the model takes the one that works.
fn check_pin(session: &Session, m: &mut Store) -> Result<(), String> {
    let (pin, old) = (m.pin.clone(), m.old_pin.clone());
    let candidate = if m.pin == PIN { PIN2 } else { PIN };
    match login(session, &pin) {
        Ok(()) => {}
        Err(e) if m.pin_pending && pin_incorrect(&e) => {
            login(session, candidate)
                .map_err(|e| format!("neither the acknowledged PIN nor the pending one: {e}"))?;
            m.old_pin = std::mem::replace(&mut m.pin, candidate.to_string());
        }
        Err(e) => return Err(format!("the acknowledged PIN {pin} is refused: {e}")),
    }
    m.pin_pending = false;
    if !m.old_pin.is_empty() {
        session.logout().map_err(|e| format!("C_Logout: {e}"))?;
        match login(session, &m.old_pin.clone()) {
            Err(e) if pin_incorrect(&e) => {}
            other => return Err(format!("the replaced PIN {old} is not refused: {other:?}")),
        }
        login(session, &m.pin.clone()).map_err(|e| format!("PIN after the check: {e}"))?;
    }
    Ok(())
}

/// Checks the card against the model after a restart; adopts the outcome
/// of the operation the card died in.
fn check_store(p11: &Pkcs11, card: &VCard, m: &mut Store) -> Result<(), String> {
    let session = p11
        .open_rw_session(slot_of(p11, card))
        .map_err(|e| format!("C_OpenSession after the restart: {e}"))?;
    check_pin(&session, m)?;
    let objs = list(&session).map_err(|e| format!("listing the objects: {e}"))?;
    let ids = |c: ObjectClass| -> BTreeSet<Vec<u8>> {
        objs.iter()
            .filter(|o| o.class == c)
            .map(|o| o.id.clone())
            .collect()
    };
    let (private, public) = (ids(ObjectClass::PRIVATE_KEY), ids(ObjectClass::PUBLIC_KEY));
    // A kill between GENERATE and the module's PrKD leaves the whole key
    // with the description the card writes itself at GENERATE (label the
    // key reference in decimal, CKA_ID that byte; docs/protocol.md §3.9):
    // the same on a device. A complete key, only not named as asked: taken
    // for the operation in flight, and only for that one.
    // A reference freed by a deletion may name such a key again: taken
    // only when its public point differs from the deleted key's, so a
    // deleted key coming back is still caught below.
    if matches!(m.pending, Some(Op::KeyGen(_))) {
        let named_by_card = |o: &&Listed| {
            o.class == ObjectClass::PRIVATE_KEY
                && o.id.len() == 1
                && o.label == o.id[0].to_string().into_bytes()
        };
        for o in objs.iter().filter(named_by_card) {
            let point = ec_point(&session, &o.id)?;
            let new = !m.tried_keys.contains(&o.id)
                || (m.gone.contains(&o.id) && m.card_named_points.get(&o.id) != Some(&point));
            if new {
                m.tried_keys.insert(o.id.clone());
                m.gone.remove(&o.id);
                m.card_named_points.insert(o.id.clone(), point);
                m.keys.push(o.id.clone());
                m.card_named_keys += 1;
                break;
            }
        }
    }
    // Nothing that was never written, nothing half-written.
    for o in &objs {
        let ok = match o.class {
            c if c == ObjectClass::PRIVATE_KEY || c == ObjectClass::PUBLIC_KEY => {
                m.tried_keys.contains(&o.id)
            }
            c if c == ObjectClass::CERTIFICATE => {
                o.value.as_ref().is_some_and(|v| m.tried_certs.contains(v))
            }
            _ => o.value.as_ref().is_some_and(|v| m.tried_data.contains(v)),
        };
        if !ok {
            return Err(format!("an object that was never written whole: {o:?}"));
        }
    }
    // What the card died in counts whichever way it went.
    let pending = m.pending.take();
    let cert_of = |id: &[u8]| {
        objs.iter()
            .find(|o| o.class == ObjectClass::CERTIFICATE && o.id == id)
            .and_then(|o| o.value.clone())
    };
    match &pending {
        Some(Op::KeyGen(id)) if private.contains(id) => m.keys.push(id.clone()),
        Some(Op::KeyCert(id)) => {
            if let Some(v) = cert_of(id) {
                m.certs.insert(id.clone(), v);
            }
        }
        Some(Op::CaCert(id)) => {
            if let Some(v) = cert_of(id) {
                m.certs.insert(id.clone(), v);
                m.ca_certs.push(id.clone());
            }
        }
        Some(Op::Data(label)) => {
            if let Some(o) = objs
                .iter()
                .find(|o| o.class == ObjectClass::DATA && o.label == *label)
            {
                m.data
                    .push((label.clone(), o.value.clone().unwrap_or_default()));
            }
        }
        Some(Op::DestroyKey(id)) if !private.contains(id) => {
            m.keys.retain(|k| k != id);
            m.certs.remove(id);
        }
        Some(Op::DestroyCert(id)) if cert_of(id).is_none() => {
            m.ca_certs.retain(|k| k != id);
            m.certs.remove(id);
        }
        Some(Op::DestroyData(label))
            if !objs
                .iter()
                .any(|o| o.class == ObjectClass::DATA && o.label == *label) =>
        {
            m.data.retain(|(l, _)| l != label);
        }
        _ => {}
    }
    for id in &m.keys {
        if !private.contains(id) || !public.contains(id) {
            return Err(format!(
                "acknowledged key {} is gone (pending: {pending:?})",
                String::from_utf8_lossy(id)
            ));
        }
    }
    for (id, der) in &m.certs {
        if cert_of(id).as_ref() != Some(der) {
            return Err(format!(
                "acknowledged certificate {} is gone or different (pending: {pending:?})",
                String::from_utf8_lossy(id)
            ));
        }
    }
    for (label, value) in &m.data {
        let found = objs
            .iter()
            .find(|o| o.class == ObjectClass::DATA && o.label == *label);
        if found.and_then(|o| o.value.as_ref()) != Some(value) {
            return Err(format!(
                "acknowledged data object {} is gone or different",
                String::from_utf8_lossy(label)
            ));
        }
    }
    for g in &m.gone {
        let still = objs.iter().any(|o| match o.class {
            c if c == ObjectClass::DATA => o.label == *g,
            _ => o.id == *g,
        });
        if still {
            return Err(format!(
                "deleted object {} is back",
                String::from_utf8_lossy(g)
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// SIGKILL during writes: PKA registrations

/// What was registered on the PKA card.
#[derive(Default)]
struct Pka {
    /// CHRs acknowledged by `picohsm-tool pka register`.
    registered: BTreeSet<Vec<u8>>,
    /// Every CHR sent, acknowledged or not.
    tried: BTreeSet<Vec<u8>>,
    seq: u64,
    acked: usize,
}

/// A self-signed authenticated request (docs/protocol.md §6.2) for a fresh
/// P-256 key named `chr`: the `67` TLV, a PKA file `pka register` takes.
fn pka_request(chr: &[u8]) -> Vec<u8> {
    let key = random_p256();
    let pk = cvc::ec_public_key(cvc::oid::ECDSA_SHA256, Curve::P256, &point_of(&key));
    let body = cvc::build_body(Some(chr), &pk, chr, &[]);
    let sig: Signature = key.sign(&body);
    let cert = cvc::build_cvc(&body, &sig.to_bytes());
    let outer: Signature = key.sign(&cvc::outer_signed_data(&cert, chr));
    cvc::build_auth_request(&cert, chr, &outer.to_bytes())
}

/// Registers new keys with `picohsm-tool pka register` until the card is
/// gone or full.
fn pka_worker(card_reader: &str, dir: &Path, m: &Mutex<Pka>) {
    loop {
        let chr = {
            let mut g = m.lock().unwrap();
            if g.registered.len() >= PKA_SLOTS as usize {
                return;
            }
            g.seq += 1;
            let chr = format!("ZZRL{:07}00001", g.seq).into_bytes();
            g.tried.insert(chr.clone());
            chr
        };
        let file = dir.join(format!("pka-{}.bin", String::from_utf8_lossy(&chr)));
        fs::write(&file, pka_request(&chr)).unwrap();
        let out = run_cmd_allow_fail(
            Command::new(tool_binary())
                .arg("--reader")
                .arg(card_reader)
                .args(["pka", "register"])
                .arg(&file)
                .args(["--pin", PIN]),
        );
        if !out.status.success() {
            return;
        }
        let mut g = m.lock().unwrap();
        g.registered.insert(chr);
        g.acked += 1;
    }
}

/// The CHRs registered on `card` (MANAGE PKA enumerate, docs/protocol.md §6.3).
fn registered_chrs(card: &VCard) -> Result<BTreeSet<Vec<u8>>, String> {
    let mut c = Conn::open(card);
    c.select();
    let status = c.status();
    let mut chrs = BTreeSet::new();
    for slot in 0..status[0] {
        let (chr, sw) = c.tx(&[0x80, 0x54, 0x02, slot, 0x00]);
        match sw {
            0x9000 | 0x9001 => {
                chrs.insert(chr);
            }
            0x6A88 => {}
            _ => return Err(format!("enumerating slot {slot}: {sw:04X}")),
        }
    }
    if (status[0] - status[1]) as usize != chrs.len() {
        return Err(format!(
            "status {status:02X?} does not match {} registered keys",
            chrs.len()
        ));
    }
    Ok(chrs)
}

fn check_pka(card: &VCard, m: &mut Pka) -> Result<(), String> {
    let chrs = registered_chrs(card)?;
    for chr in &m.registered {
        if !chrs.contains(chr) {
            return Err(format!(
                "acknowledged PKA key {} is not registered",
                String::from_utf8_lossy(chr)
            ));
        }
    }
    for chr in &chrs {
        if !m.tried.contains(chr) {
            return Err(format!(
                "a PKA key never sent is registered: {}",
                String::from_utf8_lossy(chr)
            ));
        }
    }
    // A registration the card died in may have made it.
    m.registered = chrs;
    Ok(())
}

/// Reliability: SIGKILL of the virtual card at a random moment during key generation, certificate and data object writes, PIN changes and PKA registration loses no acknowledged operation and shows nothing half-written after the restart.
#[test]
fn survives_kill_during_writes() {
    let cycles = reliability::count(20, 200);
    let _serial = serial();
    let mut cards = VCard::start_many(2);
    let (store_card, pka_card) = {
        let (a, b) = cards.split_at_mut(1);
        (&mut a[0], &mut b[0])
    };
    initialize(store_card, &[]);
    common::pka::init_pka(pka_card, PKA_SLOTS, PKA_SLOTS);
    let ca = random_p256();
    // The certificates the test makes are X.509 as openssl reads it.
    let sample = store_card.dir().join("sample.der");
    fs::write(&sample, cert_der(&ca, 1, "sample", &point_of(&ca), 2000)).unwrap();
    openssl_ok(&["x509", "-inform", "DER", "-noout", "-in", &s(&sample)]);

    let store = Mutex::new(Store {
        pin: PIN.to_string(),
        ..Store::default()
    });
    let pka = Mutex::new(Pka::default());
    let pka_dir = pka_card.dir().to_path_buf();
    let pka_reader = pka_card.reader_name().to_string();

    // Rounds of each, unkilled, set the range of the random delays.
    let mut p11 = Some(our_module());
    {
        let p = p11.as_ref().unwrap();
        store_worker(p, slot_of(p, store_card), &store, &ca, 2, None);
    }
    let t0 = Instant::now();
    {
        let p = p11.as_ref().unwrap();
        store_worker(p, slot_of(p, store_card), &store, &ca, 2, None);
    }
    let store_round_time = t0.elapsed() / 2;
    tool_binary(); // built before it is timed
    let t0 = Instant::now();
    pka_worker(&pka_reader, &pka_dir, &pka);
    let pka_time = t0.elapsed() / PKA_SLOTS as u32;
    common::pka::init_pka(pka_card, PKA_SLOTS, PKA_SLOTS);
    pka.lock().unwrap().registered.clear();
    eprintln!("one store round: {store_round_time:?}; one PKA registration: {pka_time:?}");
    let store_max = store_round_time * 3 / 2;
    let pka_max = pka_time * 4;

    let mut survived = 0;
    let mut failure = None;
    let mut cycle_times = Vec::new();
    for cycle in 0..cycles {
        let t_cycle = Instant::now();
        if pka.lock().unwrap().registered.len() >= PKA_SLOTS as usize {
            // Full: start over (outside the kill window).
            common::pka::init_pka(pka_card, PKA_SLOTS, PKA_SLOTS);
            pka.lock().unwrap().registered.clear();
        }
        let (d_store, d_pka) = (random_delay(store_max), random_delay(pka_max));
        let ctx = p11.take().unwrap_or_else(our_module);
        let slot = slot_of(&ctx, store_card);
        let (started, writing) = mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| store_worker(&ctx, slot, &store, &ca, 20, Some(started)));
            let store_card = &mut *store_card;
            s.spawn(|| pka_worker(&pka_reader, &pka_dir, &pka));
            s.spawn(move || {
                // The delay counts from the first write (a failed login
                // drops the sender: kill at once).
                let _ = writing.recv_timeout(Duration::from_secs(30));
                thread::sleep(d_store);
                store_card.kill();
            });
            s.spawn(|| {
                thread::sleep(d_pka);
                pka_card.kill();
            });
        });
        ctx.finalize().expect("C_Finalize");
        thread::scope(|s| {
            s.spawn(|| store_card.start_again());
            s.spawn(|| pka_card.start_again());
        });
        let ctx = our_module();
        let r = {
            let mut g = store.lock().unwrap();
            check_store(&ctx, store_card, &mut g)
        }
        .and_then(|()| check_pka(pka_card, &mut pka.lock().unwrap()));
        p11 = Some(ctx);
        cycle_times.push(t_cycle.elapsed());
        match r {
            Ok(()) => survived += 1,
            Err(e) => {
                failure = Some(format!(
                    "cycle {cycle} (kills after {d_store:?} and {d_pka:?}): {e}"
                ));
                break;
            }
        }
    }
    if let Some(p) = p11.take() {
        p.finalize().expect("C_Finalize");
    }
    let runs = cycle_times.len();
    let (acked_store, card_named) = {
        let g = store.lock().unwrap();
        (g.acked, g.card_named_keys)
    };
    let acked_pka = pka.lock().unwrap().acked;
    cycle_times.sort();
    eprintln!(
        "{survived}/{runs} kill cycles survived; {acked_store} module operations and {acked_pka} \
         PKA registrations acknowledged; {card_named} key(s) left with the card's own name by a \
         kill before the module's PrKD; per cycle: median {:?}, max {:?}",
        cycle_times[runs / 2],
        cycle_times[runs - 1]
    );
    reliability::record("survives_kill_during_writes", runs, survived, "kill cycles");
    assert_eq!(failure, None);
    assert_eq!(survived, cycles);
}
