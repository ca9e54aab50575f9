//! The device commands: what SELECT of the applet answers (its FCP,
//! docs/protocol.md §2.3), the version and free-memory query (docs/protocol.md §2.4) and
//! INITIALIZE DEVICE (docs/protocol.md §4.1).

use alloc::vec::Vec;
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

use super::{Apdu, Cmd, CLA_PROPRIETARY};
use crate::codes::ins;
use crate::tlv;

/// Tag of the FCP template (docs/protocol.md §2.3).
pub const TAG_FCP: u16 = 0x62;
/// Tag of the proprietary FCP item: options, 0xFF, version (docs/protocol.md §2.3).
pub const TAG_FCP_PROPRIETARY: u16 = 0x85;

/// What SELECT of the applet tells (docs/protocol.md §2.3, FCP tag 85).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppletInfo {
    /// Device options (EF 100E, docs/protocol.md §4.2).
    pub options: u16,
    /// Firmware version.
    pub version: (u8, u8),
}

impl AppletInfo {
    /// Reads tag 85 of the applet's FCP; `None` if it is not there.
    pub fn parse(fcp: &[u8]) -> Option<AppletInfo> {
        let (t, _) = tlv::parse_one(fcp).ok()?;
        let p = tlv::find(t.value, TAG_FCP_PROPRIETARY)
            .ok()
            .flatten()?
            .value;
        let n = p.len();
        (n >= 5).then(|| AppletInfo {
            options: u16::from_be_bytes([p[0], p[1]]),
            version: (p[n - 2], p[n - 1]),
        })
    }

    /// The value of FCP tag 85 (the card's side).
    pub fn encode_proprietary(&self) -> [u8; 5] {
        let [a, b] = self.options.to_be_bytes();
        [a, b, 0xFF, self.version.0, self.version.1]
    }
}

/// INITIALIZE without data: the version and free-memory query (docs/protocol.md §2.4).
pub fn version_query() -> Apdu {
    Apdu::new(
        Cmd::VersionQuery,
        [CLA_PROPRIETARY, ins::INITIALIZE, 0x00, 0x00],
        &[],
        0,
    )
}

/// The answer to the version query (docs/protocol.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Free memory in bytes, as the card reports it.
    pub free: u32,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl Version {
    /// Parses the 7-byte answer.
    pub fn parse(d: &[u8]) -> Option<Version> {
        (d.len() >= 7).then(|| Version {
            free: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
            major: d[5],
            minor: d[6],
        })
    }

    /// The answer (the card's side): free memory, a zero, the version.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.free.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, self.major, self.minor]);
        v
    }
}

/// Tags of INITIALIZE DEVICE (docs/protocol.md §4.1).
pub mod tag {
    /// Device options (2 bytes).
    pub const OPTIONS: u16 = 0x80;
    /// User PIN.
    pub const USER_PIN: u16 = 0x81;
    /// SO-PIN (8 bytes).
    pub const SO_PIN: u16 = 0x82;
    /// User PIN retry counter.
    pub const PIN_RETRIES: u16 = 0x91;
    /// Number of DKEK shares.
    pub const DKEK_SHARES: u16 = 0x92;
    /// PKA: n keys, m required.
    pub const PKA: u16 = 0x93;
    /// Further key domains.
    pub const KEY_DOMAINS: u16 = 0x97;
}

/// The parameters of INITIALIZE DEVICE (docs/protocol.md §4.1).
#[derive(Clone, PartialEq, Eq)]
pub struct InitParams {
    /// Tag 80: device options (docs/protocol.md §4.2).
    pub options: u16,
    /// Tag 81: the user PIN; none on a PKA-only device or for C_InitToken.
    pub user_pin: Option<Vec<u8>>,
    /// Tag 82: the SO-PIN, 8 bytes.
    pub so_pin: [u8; 8],
    /// Tag 91: the user PIN's tries (sent only with a user PIN).
    pub pin_retries: u8,
    /// Tag 92: DKEK shares.
    pub dkek_shares: Option<u8>,
    /// Tag 93: PKA with `n` keys of which `m` are required per login.
    pub pka: Option<(u8, u8)>,
    /// Tag 97: further key domains.
    pub key_domains: Option<u8>,
}

impl fmt::Debug for InitParams {
    // PINs never reach a log or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitParams")
            .field("options", &self.options)
            .field("user_pin", &self.user_pin.as_ref().map(|_| "…"))
            .field("pin_retries", &self.pin_retries)
            .field("dkek_shares", &self.dkek_shares)
            .field("pka", &self.pka)
            .field("key_domains", &self.key_domains)
            .finish_non_exhaustive()
    }
}

impl Drop for InitParams {
    fn drop(&mut self) {
        self.so_pin.zeroize();
        if let Some(p) = self.user_pin.as_mut() {
            p.zeroize();
        }
    }
}

impl InitParams {
    /// Options `0001` (RESET RETRY COUNTER allowed, as OpenSC sets it), the
    /// SO-PIN, and nothing else: no user PIN, PKA, DKEK or key domains.
    pub fn with_so_pin(so_pin: [u8; 8]) -> InitParams {
        InitParams {
            options: crate::codes::opt::RRC,
            user_pin: None,
            so_pin,
            pin_retries: 3,
            dkek_shares: None,
            pka: None,
            key_domains: None,
        }
    }

    /// The command data: tags in the order sc-hsm-tool sends them (docs/protocol.md §4.3).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::new());
        tlv::push(&mut v, tag::OPTIONS, &self.options.to_be_bytes());
        if let Some(p) = &self.user_pin {
            tlv::push(&mut v, tag::USER_PIN, p);
        }
        tlv::push(&mut v, tag::SO_PIN, &self.so_pin);
        if self.user_pin.is_some() {
            tlv::push(&mut v, tag::PIN_RETRIES, &[self.pin_retries]);
        }
        if let Some(n) = self.dkek_shares {
            tlv::push(&mut v, tag::DKEK_SHARES, &[n]);
        }
        if let Some((n, m)) = self.pka {
            tlv::push(&mut v, tag::PKA, &[n, m]);
        }
        if let Some(k) = self.key_domains {
            tlv::push(&mut v, tag::KEY_DOMAINS, &[k]);
        }
        v
    }

    /// INITIALIZE DEVICE with these parameters.
    pub fn command(&self) -> Apdu {
        Apdu::extended(
            Cmd::Initialize,
            [CLA_PROPRIETARY, ins::INITIALIZE, 0x00, 0x00],
            &self.encode(),
            0,
        )
    }
}

/// INITIALIZE DEVICE with `data` sent in short form, as C_InitToken has
/// always sent it (options and SO-PIN only).
pub fn initialize_short(data: &[u8]) -> Apdu {
    Apdu::new(
        Cmd::Initialize,
        [CLA_PROPRIETARY, ins::INITIALIZE, 0x00, 0x00],
        data,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn fcp_and_version() {
        let fcp = hex("62 0A 85 05 00 01 FF 06 06 8A 01 05");
        let a = AppletInfo::parse(&fcp).unwrap();
        assert_eq!((a.options, a.version), (1, (6, 6)));
        assert_eq!(a.encode_proprietary(), [0, 1, 0xFF, 6, 6]);
        assert_eq!(AppletInfo::parse(&hex("62 03 85 01 00")), None);
        let v = Version::parse(&hex("00 10 00 00 00 06 06")).unwrap();
        assert_eq!((v.free, v.major, v.minor), (0x0010_0000, 6, 6));
        assert_eq!(Version::parse(&v.encode()), Some(v));
        assert_eq!(version_query().bytes(), hex("80 50 00 00"));
    }

    #[test]
    fn initialize_as_sc_hsm_tool_sends_it() {
        let p = InitParams {
            options: 0x0001,
            user_pin: Some(b"648219".to_vec()),
            so_pin: [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56],
            pin_retries: 3,
            dkek_shares: Some(1),
            pka: Some((1, 1)),
            key_domains: None,
        };
        let data = hex("80 02 00 01 81 06 36 34 38 32 31 39 82 08 12 34 56 78 90 12 34 56 91 01 03 92 01 01 93 02 01 01");
        assert_eq!(p.encode().as_slice(), data);
        assert_eq!(
            p.command().bytes(),
            [hex("80 50 00 00 00 00 20"), data].concat()
        );
        assert!(!alloc::format!("{p:?}").contains("648219"));
    }
}
