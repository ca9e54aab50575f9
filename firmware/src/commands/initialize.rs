//! INITIALIZE DEVICE (INS 50, docs/protocol.md §4): set PINs, options, DKEK shares, PKA and
//! key domains, wiping every key and object; without data, the version and
//! free-memory query (docs/protocol.md §2.4).
//!
//! Unlike the upstream firmware, a device that already has an SO-PIN is only
//! re-initialised when tag 82 matches it (as on a genuine SmartCard-HSM);
//! a wrong value counts against the SO-PIN's tries.

use alloc::vec::Vec;
use picohsm_wire::apdu::Command;
use picohsm_wire::cmd::device::Version;
use picohsm_wire::codes::{fid, pin_ref, VERSION};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use zeroize::Zeroizing;

use crate::apdu::Response;
use crate::commands::require_p1p2;
use crate::pin::{self, Check, SO_PIN_TRIES};
use crate::session::MAX_PKA_KEYS;
use crate::store::CAPACITY;
use crate::{dkek, Card};

/// Device options (2 bytes).
pub const EF_OPTIONS: u16 = 0x100E;
/// PKA parameters: n, empty slots, m, 0 (docs/protocol.md §6.1).
pub const EF_PKA: u16 = 0x10C0;
/// First registered PKA key (`10D0 + i`).
pub const EF_PKA_KEY0: u16 = 0x10D0;

/// Files that survive re-initialisation: the device identity.
fn persistent(f: u16) -> bool {
    matches!(
        f,
        fid::DEVICE_KEY
            | 0xC400
            | 0xCE00
            | fid::EF_DEVAUT
            | crate::commands::keypair_gen::EF_CHR_SEQUENCE
    )
}

struct Params<'a> {
    options: u16,
    user_pin: Option<&'a [u8]>,
    so_pin: &'a [u8],
    retries: u8,
    dkek_shares: Option<u8>,
    pka: Option<(u8, u8)>,
    domains: u8,
}

fn parse(data: &[u8]) -> Result<Params<'_>, StatusWord> {
    let mut p = Params {
        options: 0,
        user_pin: None,
        so_pin: &[],
        retries: 3,
        dkek_shares: None,
        pka: None,
        domains: 0,
    };
    let mut so = None;
    for t in tlv::iter(data) {
        let t = t.map_err(|_| StatusWord::WRONG_DATA)?;
        let v = t.value;
        match t.tag {
            0x80 if v.len() == 2 => p.options = u16::from_be_bytes([v[0], v[1]]),
            0x81 if (1..=16).contains(&v.len()) => p.user_pin = Some(v),
            0x82 if v.len() == 8 => so = Some(v),
            0x91 if v.len() == 1 && (1..=10).contains(&v[0]) => p.retries = v[0],
            0x92 if v.len() == 1 => p.dkek_shares = Some(v[0]),
            0x93 if v.len() == 2 => {
                let (n, m) = (v[0], v[1]);
                if n == 0 || n as usize > MAX_PKA_KEYS || m == 0 || m > n {
                    return Err(StatusWord::WRONG_DATA);
                }
                p.pka = Some((n, m));
            }
            0x97 if v.len() == 1 => p.domains = v[0],
            // Biometric server AIDs: SmartCard-HSM only, ignored as on the Pico.
            0x95 | 0x96 => {}
            _ => return Err(StatusWord::WRONG_DATA),
        }
    }
    p.so_pin = so.ok_or(StatusWord::WRONG_DATA)?;
    Ok(p)
}

/// Runs INITIALIZE DEVICE.
pub fn run(card: &mut Card, cmd: &Command<'_>) -> Response {
    require_p1p2(cmd, 0, 0)?;
    if cmd.data.is_empty() {
        let free = CAPACITY.saturating_sub(card.fs.used()) as u32;
        let (major, minor) = VERSION;
        return Ok(Version { free, major, minor }.encode());
    }
    let p = parse(cmd.data)?;
    if pin::record(&card.fs, pin_ref::SO).is_some() {
        match pin::check(&mut card.fs, &card.otp, pin_ref::SO, p.so_pin)? {
            Check::Ok(_) => {}
            Check::Wrong(sw) => return Err(sw),
        }
    }
    card.fs.retain(persistent);
    let mut mkek = Zeroizing::new([0u8; 32]);
    card.rng.fill(mkek.as_mut());
    card.fs.put(EF_OPTIONS, p.options.to_be_bytes().to_vec())?;
    pin::set(
        &mut card.fs,
        &card.otp,
        pin_ref::SO,
        p.so_pin,
        SO_PIN_TRIES,
        &mkek,
        &mut *card.rng,
    )?;
    if let Some(up) = p.user_pin {
        pin::set(
            &mut card.fs,
            &card.otp,
            pin_ref::USER,
            up,
            p.retries,
            &mkek,
            &mut *card.rng,
        )?;
    }
    if let Some((n, m)) = p.pka {
        card.fs.put(EF_PKA, alloc::vec![n, n, m, 0])?;
        if p.user_pin.is_none() {
            pin::seal_for_device(&mut card.fs, &card.otp, &mkek, &mut *card.rng)?;
        }
    }
    card.session.clear();
    card.session.selected_ef = None;
    card.session.user_auth = true;
    card.session.user_pin = p.user_pin.is_some();
    card.session.so_pin = true;
    card.session.mkek = Some(mkek);
    dkek::initialize(card, p.dkek_shares, p.domains)?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::commands::testcard::{SO_PIN, T};
    use crate::pin::SO_PIN_TRIES;

    #[test]
    fn a_blocked_so_pin_blocks_re_initialisation() {
        let mut t = T::new();
        t.init(1, true, Some((1, 1)), &[]);
        let mut wrong = alloc::vec![0x82, 8];
        wrong.extend_from_slice(&[0x99; 8]);
        for i in 0..SO_PIN_TRIES {
            let sw = t.sw(0x80, 0x50, 0, 0, &wrong, 0);
            let left = SO_PIN_TRIES - 1 - i;
            let want = if left == 0 {
                0x6983
            } else {
                0x63C0 | left as u16
            };
            assert_eq!(sw, want, "try {i}");
            if i == 7 {
                t = t.restart();
            }
        }
        let mut right = alloc::vec![0x82, 8];
        right.extend_from_slice(&SO_PIN);
        assert_eq!(t.sw(0x80, 0x50, 0, 0, &right, 0), 0x6983);
        assert!(t.card.pka_enabled(), "still the PKA device it was");
    }
}
