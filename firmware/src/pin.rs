//! PINs and the master key (MKEK), docs/protocol.md §5.
//!
//! Each PIN has a record (`1081` user, `1088` SO): its length, the maximum
//! and remaining tries, and a verifier. The MKEK, which encrypts every key
//! and DKEK, is stored twice: under a key derived from the user PIN (`100A`)
//! and under one derived from the SO-PIN (`100B`). Without a PIN verified in
//! the current session the MKEK, and so every key, is unavailable.
//!
//! Derivation: HKDF-SHA256 with the device secret (OTP) as salt and the PIN as
//! input, expanded separately for the verifier and the wrapping key, so the
//! stored verifier says nothing about the wrapping key. The tries counter is
//! decremented and written *before* the comparison, so cutting power during a
//! wrong guess cannot save the try.

use alloc::vec::Vec;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::sw::StatusWord;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::rng::CardRng;
use crate::seal::{self, Key32};
use crate::store::FileStore;

/// User PIN record.
pub const EF_USER_PIN: u16 = 0x1081;
/// SO-PIN record.
pub const EF_SO_PIN: u16 = 0x1088;
/// MKEK under the user PIN.
pub const EF_MKEK_USER: u16 = 0x100A;
/// MKEK under the SO-PIN.
pub const EF_MKEK_SO: u16 = 0x100B;

/// MKEK under the device seal: only on a PKA device without a user PIN,
/// where the PKA quorum must unlock the keys (see README, "Keys at rest").
pub const EF_MKEK_DEVICE: u16 = 0x100C;

/// SO-PIN tries; fixed, as on the Pico (docs/protocol.md §4.1).
pub const SO_PIN_TRIES: u8 = 15;

/// A PIN record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRecord {
    /// Length of the PIN (CHANGE REFERENCE DATA splits old‖new here).
    pub len: u8,
    /// Maximum tries.
    pub max: u8,
    /// Tries left; 0 = blocked.
    pub left: u8,
    /// HKDF output that a candidate PIN must reproduce.
    pub verifier: [u8; 32],
}

impl PinRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(35);
        v.extend_from_slice(&[self.len, self.max, self.left]);
        v.extend_from_slice(&self.verifier);
        v
    }
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 35 {
            return None;
        }
        Some(PinRecord {
            len: b[0],
            max: b[1],
            left: b[2],
            verifier: b[3..35].try_into().ok()?,
        })
    }
}

fn record_fid(reference: u8) -> u16 {
    if reference == pin_ref::SO {
        EF_SO_PIN
    } else {
        EF_USER_PIN
    }
}

fn mkek_fid(reference: u8) -> u16 {
    if reference == pin_ref::SO {
        EF_MKEK_SO
    } else {
        EF_MKEK_USER
    }
}

fn verifier(otp: &[u8; 32], reference: u8, pin: &[u8]) -> Key32 {
    seal::derive(otp, pin, &[b'V', reference])
}

fn wrap_key(otp: &[u8; 32], reference: u8, pin: &[u8]) -> Key32 {
    seal::derive(otp, pin, &[b'W', reference])
}

/// Reads the record of a PIN.
pub fn record(fs: &FileStore, reference: u8) -> Option<PinRecord> {
    fs.get(record_fid(reference)).and_then(PinRecord::decode)
}

/// Sets a PIN (new record, full tries) and stores `mkek` under it.
/// Not committed: the caller commits with the rest of its change.
pub fn set(
    fs: &mut FileStore,
    otp: &[u8; 32],
    reference: u8,
    pin: &[u8],
    max: u8,
    mkek: &[u8; 32],
    rng: &mut dyn CardRng,
) -> Result<(), StatusWord> {
    let rec = PinRecord {
        len: pin.len() as u8,
        max,
        left: max,
        verifier: *verifier(otp, reference, pin),
    };
    fs.put(record_fid(reference), rec.encode())?;
    let wk = wrap_key(otp, reference, pin);
    let fid = mkek_fid(reference);
    if reference == pin_ref::USER {
        // A user PIN now protects the keys: the device-sealed copy goes.
        fs.remove(EF_MKEK_DEVICE);
    }
    fs.put(fid, seal::seal(&wk, &fid.to_be_bytes(), mkek, rng))
}

fn device_key(otp: &[u8; 32]) -> Key32 {
    seal::derive(otp, b"mkek for PKA without a PIN", b"100C")
}

/// Seals the MKEK under the device secret (PKA device without a user PIN).
pub fn seal_for_device(
    fs: &mut FileStore,
    otp: &[u8; 32],
    mkek: &[u8; 32],
    rng: &mut dyn CardRng,
) -> Result<(), StatusWord> {
    let k = device_key(otp);
    fs.put(
        EF_MKEK_DEVICE,
        seal::seal(&k, &EF_MKEK_DEVICE.to_be_bytes(), mkek, rng),
    )
}

/// The device-sealed MKEK, if this device has one.
pub fn unseal_for_device(fs: &FileStore, otp: &[u8; 32]) -> Option<Key32> {
    let rec = fs.get(EF_MKEK_DEVICE)?;
    let m = seal::open(&device_key(otp), &EF_MKEK_DEVICE.to_be_bytes(), rec)?;
    let arr: [u8; 32] = m.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// Outcome of checking a PIN.
pub enum Check {
    /// Correct; the MKEK it unlocks.
    Ok(Key32),
    /// Wrong: 63Cx, or 6983 when no try is left.
    Wrong(StatusWord),
}

/// Checks `pin` against the stored record, counting the try.
/// `6983` if already blocked, `6A88` if no such PIN exists.
pub fn check(
    fs: &mut FileStore,
    otp: &[u8; 32],
    reference: u8,
    pin: &[u8],
) -> Result<Check, StatusWord> {
    let fid = record_fid(reference);
    let mut rec = record(fs, reference).ok_or(StatusWord::REF_NOT_FOUND)?;
    if rec.left == 0 {
        return Err(StatusWord::PIN_BLOCKED);
    }
    rec.left -= 1;
    fs.put(fid, rec.encode())?;
    fs.commit()?;
    let candidate = verifier(otp, reference, pin);
    let good: bool = candidate.ct_eq(&rec.verifier).into();
    if !good {
        return Ok(Check::Wrong(if rec.left == 0 {
            StatusWord::PIN_BLOCKED
        } else {
            StatusWord::tries_left(rec.left)
        }));
    }
    let wk = wrap_key(otp, reference, pin);
    let mfid = mkek_fid(reference);
    let mkek = fs
        .get(mfid)
        .and_then(|r| seal::open(&wk, &mfid.to_be_bytes(), r))
        .and_then(|m| <[u8; 32]>::try_from(m.as_slice()).ok())
        .ok_or(StatusWord::EXEC_ERROR)?;
    rec.left = rec.max;
    fs.put(fid, rec.encode())?;
    fs.commit()?;
    Ok(Check::Ok(Zeroizing::new(mkek)))
}

/// Resets the tries of a PIN to its maximum.
pub fn reset_tries(fs: &mut FileStore, reference: u8) -> Result<(), StatusWord> {
    let mut rec = record(fs, reference).ok_or(StatusWord::REF_NOT_FOUND)?;
    rec.left = rec.max;
    fs.put(record_fid(reference), rec.encode())
}

/// The status word a PIN status query gets when the PIN is not verified.
pub fn status(fs: &FileStore, reference: u8) -> StatusWord {
    match record(fs, reference) {
        None => StatusWord::REF_NOT_FOUND,
        Some(r) if r.left == 0 => StatusWord::PIN_BLOCKED,
        Some(r) => StatusWord::tries_left(r.left),
    }
}
