//! The Public Key Authentication commands (docs/protocol.md §6.3, §6.4,
//! §6.7): MANAGE PKA (status, enumerate, register), MSE SET AT / SET DST,
//! PSO VERIFY CERTIFICATE and EXTERNAL AUTHENTICATE.

use alloc::vec::Vec;

use super::{Apdu, Cmd, CLA_ISO, CLA_PROPRIETARY};
use crate::codes::ins;
use crate::sw::StatusWord;
use crate::tlv;

/// P1 of MANAGE PKA (docs/protocol.md §6.3).
pub mod manage {
    /// Register into the first empty slot, or (without data) the status.
    pub const REGISTER: u8 = 0x00;
    /// Replace the key of slot P2 (option `0008`).
    pub const REPLACE: u8 = 0x01;
    /// Enumerate: the CHR registered in slot P2.
    pub const ENUMERATE: u8 = 0x02;
}

/// P1 P2 of MSE SET AT for EXTERNAL AUTHENTICATE (docs/protocol.md §6.7).
pub const MSE_SET_AT: [u8; 2] = [0x81, 0xA4];
/// P1 P2 of MSE SET DST for PSO VERIFY CERTIFICATE (docs/protocol.md §6.4).
pub const MSE_SET_DST: [u8; 2] = [0x81, 0xB6];
/// P1 P2 of PSO VERIFY CERTIFICATE (docs/protocol.md §6.4).
pub const PSO_VERIFY_CERTIFICATE: [u8; 2] = [0x00, 0xBE];
/// Tag of the key or certificate name in MSE (docs/protocol.md §6.4, §6.7).
pub const TAG_NAME: u16 = 0x83;

/// The four counters of MANAGE PKA status (docs/protocol.md §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// n: public keys in the scheme.
    pub total: u8,
    /// Keys still to register.
    pub missing: u8,
    /// m: keys needed per login.
    pub required: u8,
    /// Keys accepted since the last challenge.
    pub authenticated: u8,
}

impl Status {
    /// Whether the authenticated keys reach the quorum.
    pub fn granted(&self) -> bool {
        self.required > 0 && self.authenticated >= self.required
    }

    /// Parses the 4-byte answer.
    pub fn parse(d: &[u8]) -> Option<Status> {
        match d {
            [total, missing, required, authenticated, ..] => Some(Status {
                total: *total,
                missing: *missing,
                required: *required,
                authenticated: *authenticated,
            }),
            _ => None,
        }
    }

    /// The answer (the card's side).
    pub fn encode(&self) -> Vec<u8> {
        alloc::vec![self.total, self.missing, self.required, self.authenticated]
    }
}

/// Whether `sw` to MANAGE PKA status says the card has no PKA at all
/// (not configured, or a card that does not know the instruction).
pub fn no_pka(sw: StatusWord) -> bool {
    matches!(
        sw,
        StatusWord::WRONG_P1P2
            | StatusWord::FILE_NOT_FOUND
            | StatusWord::INS_NOT_SUPPORTED
            | StatusWord::CLA_NOT_SUPPORTED
    )
}

/// MANAGE PKA status.
pub fn status() -> Apdu {
    Apdu::new(
        Cmd::PkaStatus,
        [CLA_PROPRIETARY, ins::PUK_AUTH, manage::REGISTER, 0x00],
        &[],
        256,
    )
}

/// MANAGE PKA enumerate of `slot`: its CHR, `9001` if accepted since the
/// last challenge, `6A88` if empty, `6A86` past the last slot.
pub fn enumerate(slot: u8) -> Apdu {
    Apdu::new(
        Cmd::PkaEnumerate,
        [CLA_PROPRIETARY, ins::PUK_AUTH, manage::ENUMERATE, slot],
        &[],
        256,
    )
}

/// MANAGE PKA register of `request` (the content of tag 67) into the
/// first empty slot, or into `slot` (replace).
pub fn register(request: &[u8], slot: Option<u8>) -> Apdu {
    let (p1, p2) = slot.map_or((manage::REGISTER, 0x00), |s| (manage::REPLACE, s));
    Apdu::extended(
        Cmd::PkaRegister,
        [CLA_PROPRIETARY, ins::PUK_AUTH, p1, p2],
        request,
        4,
    )
}

fn mse(cmd: Cmd, [p1, p2]: [u8; 2], name: &[u8]) -> Apdu {
    Apdu::new(
        cmd,
        [CLA_ISO, ins::MSE, p1, p2],
        &tlv::encode(TAG_NAME, name),
        0,
    )
}

/// MSE SET AT: the registered key named `chr` is checked next.
pub fn mse_set_at(chr: &[u8]) -> Apdu {
    mse(Cmd::MseSetAt, MSE_SET_AT, chr)
}

/// MSE SET DST: the certificate named `name` verifies what follows.
pub fn mse_set_dst(name: &[u8]) -> Apdu {
    mse(Cmd::MseSetDst, MSE_SET_DST, name)
}

/// PSO VERIFY CERTIFICATE of a CV certificate's content (without `7F21`).
pub fn pso_verify_certificate(content: &[u8]) -> Apdu {
    let [p1, p2] = PSO_VERIFY_CERTIFICATE;
    Apdu::extended(
        Cmd::PsoVerifyCertificate,
        [CLA_ISO, ins::PSO, p1, p2],
        content,
        0,
    )
}

/// EXTERNAL AUTHENTICATE with the authenticator's raw signature.
pub fn external_authenticate(signature: &[u8]) -> Apdu {
    Apdu::new(
        Cmd::ExternalAuthenticate,
        [CLA_ISO, ins::EXTERNAL_AUTH, 0x00, 0x00],
        signature,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn bytes_as_the_login_trace_has_them() {
        assert_eq!(status().bytes(), hex("80 54 00 00 00"));
        assert_eq!(enumerate(3).bytes(), hex("80 54 02 03 00"));
        assert_eq!(mse_set_at(b"AB").bytes(), hex("00 22 81 A4 04 83 02 41 42"));
        assert_eq!(
            mse_set_dst(b"AB").bytes(),
            hex("00 22 81 B6 04 83 02 41 42")
        );
        assert_eq!(
            external_authenticate(&[1, 2]).bytes(),
            hex("00 82 00 00 02 01 02")
        );
        assert_eq!(
            register(&[7], Some(2)).bytes(),
            hex("80 54 01 02 00 00 01 07 00 04")
        );
        assert_eq!(
            pso_verify_certificate(&[7]).bytes(),
            hex("00 2A 00 BE 00 00 01 07")
        );
    }

    #[test]
    fn status_round_trip() {
        let s = Status {
            total: 3,
            missing: 1,
            required: 2,
            authenticated: 2,
        };
        assert_eq!(Status::parse(&s.encode()), Some(s));
        assert!(s.granted());
        assert_eq!(Status::parse(&[1, 2, 3]), None);
        assert!(no_pka(StatusWord(0x6A86)) && !no_pka(StatusWord::OK));
    }
}
