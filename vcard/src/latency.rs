//! Modelled device timing: how long a Pico HSM on USB takes to answer.
//!
//! The virtual card answers in tens of microseconds; a device on USB takes
//! milliseconds per APDU and seconds for an RSA signature. [`Latency`] says
//! how long after its command arrived a response may leave: a transport
//! delay for every APDU (`--latency-ms`) plus, with a [`Profile`]
//! (`--profile`), the device's compute time for SIGN. The card's own
//! compute time counts toward the total, so a slow real computation is not
//! paid twice. Figures and their sources: docs/performance.md.

use std::time::Duration;

use picohsm_wire::codes::{algo, ins};
use picohsm_wire::sw::StatusWord;

/// A device whose compute times are modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A Pico HSM on a Raspberry Pi RP2040 (133 MHz Cortex-M0+).
    Rp2040,
}

/// RSA signature times on the RP2040 by modulus size (bits, ms), from the
/// upstream README (docs/performance.md).
const RP2040_RSA_SIGN_MS: [(usize, u64); 4] =
    [(1024, 1_000), (2048, 3_000), (3072, 7_000), (4096, 15_000)];

/// ECDSA P-256 signature time on the RP2040: an estimate (150 to 400 ms),
/// no published figure (docs/performance.md). Used for every curve.
const RP2040_EC_SIGN_MS: u64 = 250;

impl Profile {
    /// The name `--profile` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Rp2040 => "rp2040",
        }
    }

    /// The device's compute time for `command`, answered with `response`
    /// (data ‖ SW1 SW2). Only a SIGN that produced a signature costs
    /// anything: a refused one, a chained part and any other instruction
    /// cost nothing. Key generation is not modelled on purpose: RSA-2048
    /// takes about 124 s on an RP2040, which no test or benchmark can wait
    /// for.
    pub fn compute(self, command: &[u8], response: &[u8]) -> Duration {
        let &[cla, ins, _, p2, ..] = command else {
            return Duration::ZERO;
        };
        if ins != ins::SIGNATURE || cla & picohsm_wire::apdu::CLA_CHAINING != 0 {
            return Duration::ZERO;
        }
        let Some(sw) = StatusWord::from_response(response) else {
            return Duration::ZERO;
        };
        // The signature's length: what came back, plus what a short Le left
        // for GET RESPONSE (61xx, 00 = 256 or more).
        let data = response.len() - 2;
        let length = if sw.is_ok() {
            data
        } else if sw.sw1() == 0x61 {
            data + if sw.sw2() == 0 {
                256
            } else {
                usize::from(sw.sw2())
            }
        } else {
            return Duration::ZERO;
        };
        if length == 0 {
            return Duration::ZERO;
        }
        match (self, p2) {
            (Profile::Rp2040, algo::ECDSA..=algo::ECDSA_SHA512) => {
                Duration::from_millis(RP2040_EC_SIGN_MS)
            }
            (Profile::Rp2040, algo::RSA_RAW | algo::RSA_PKCS1..=algo::RSA_PKCS1_SHA512)
            | (Profile::Rp2040, algo::RSA_PSS..=algo::RSA_PSS_SHA512) => {
                // An RSA signature is as long as the modulus. A size between
                // the published ones takes the next one up's time.
                let bits = length * 8;
                let ms = RP2040_RSA_SIGN_MS
                    .iter()
                    .find(|(size, _)| bits <= *size)
                    .map_or(RP2040_RSA_SIGN_MS[3].1, |(_, ms)| *ms);
                Duration::from_millis(ms)
            }
            _ => Duration::ZERO,
        }
    }
}

/// How long a response is held after its command arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// The transport's delay, for every APDU.
    pub per_apdu: Duration,
    /// The device whose compute time is added, if any.
    pub profile: Option<Profile>,
}

impl Latency {
    /// `--latency-ms` and `--profile`.
    pub fn new(latency_ms: u32, profile: Option<Profile>) -> Latency {
        Latency {
            per_apdu: Duration::from_millis(u64::from(latency_ms)),
            profile,
        }
    }

    /// The earliest moment after its command's arrival that `response`
    /// leaves: the transport delay plus the modelled compute time.
    pub fn hold(&self, command: &[u8], response: &[u8]) -> Duration {
        self.per_apdu
            + self
                .profile
                .map_or(Duration::ZERO, |p| p.compute(command, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: [u8; 2] = [0x90, 0x00];

    fn resp(data_len: usize, sw: [u8; 2]) -> Vec<u8> {
        let mut r = vec![0x5A; data_len];
        r.extend_from_slice(&sw);
        r
    }

    fn rp2040(command: &[u8], response: &[u8]) -> u128 {
        Profile::Rp2040.compute(command, response).as_millis()
    }

    #[test]
    fn rp2040_sign_times_by_algorithm_and_size() {
        let ec = [0x80, 0x68, 0x01, 0x70, 0x00, 0x00, 0x20];
        assert_eq!(rp2040(&ec, &resp(71, OK)), 250);
        let ec_sha = [0x80, 0x68, 0x01, 0x73, 0x00, 0x00, 0x01];
        assert_eq!(rp2040(&ec_sha, &resp(70, OK)), 250);
        for (p2, bytes, ms) in [
            (0x20, 128, 1_000),
            (0x20, 256, 3_000),
            (0x30, 384, 7_000),
            (0x33, 512, 15_000),
            (0x40, 256, 3_000),
            (0x45, 256, 3_000),
            // Between published sizes: the next one up.
            (0x20, 192, 3_000),
            (0x20, 64, 1_000),
        ] {
            let cmd = [0x80, 0x68, 0x02, p2, 0x00, 0x01, 0x00];
            assert_eq!(
                rp2040(&cmd, &resp(bytes, OK)),
                ms,
                "P2 {p2:02X}, {bytes} bytes"
            );
        }
        // A 2048-bit signature fetched with GET RESPONSE: 256 bytes in all.
        let cmd = [0x80, 0x68, 0x02, 0x20, 0x00, 0x01, 0x00];
        assert_eq!(rp2040(&cmd, &resp(0, [0x61, 0x00])), 3_000);
        assert_eq!(rp2040(&cmd, &resp(200, [0x61, 0x38])), 3_000);
    }

    #[test]
    fn rp2040_costs_nothing_but_a_signature() {
        let sign = [0x80, 0x68, 0x01, 0x70, 0x00, 0x00, 0x20];
        // Refused: security status, wrong data.
        assert_eq!(rp2040(&sign, &[0x69, 0x82]), 0);
        assert_eq!(rp2040(&sign, &[0x6A, 0x80]), 0);
        // A chained part (CLA 90) answers 9000 without computing.
        assert_eq!(rp2040(&[0x90, 0x68, 0x01, 0x70, 0x00], &OK), 0);
        // Other instructions, DECIPHER included; too short to parse.
        assert_eq!(rp2040(&[0x00, 0xB1, 0x00, 0x00, 0x00], &resp(200, OK)), 0);
        assert_eq!(rp2040(&[0x80, 0x46, 0x01, 0x00], &resp(300, OK)), 0);
        assert_eq!(rp2040(&[0x80, 0x62, 0x01, 0x21, 0x00], &resp(256, OK)), 0);
        assert_eq!(rp2040(&[0x80, 0x68], &resp(71, OK)), 0);
        assert_eq!(rp2040(&sign, &[]), 0);
    }

    #[test]
    fn hold_is_latency_plus_compute() {
        let sign = [0x80, 0x68, 0x01, 0x70, 0x00, 0x00, 0x20];
        let read = [0x00, 0xB1, 0x01, 0x02, 0x00];
        assert_eq!(
            Latency::default().hold(&sign, &resp(71, OK)),
            Duration::ZERO
        );
        let l = Latency::new(2, None);
        assert_eq!(l.hold(&sign, &resp(71, OK)), Duration::from_millis(2));
        let l = Latency::new(2, Some(Profile::Rp2040));
        assert_eq!(l.hold(&sign, &resp(71, OK)), Duration::from_millis(252));
        assert_eq!(l.hold(&read, &resp(100, OK)), Duration::from_millis(2));
    }
}
