//! Key domains and key transport (docs/protocol.md §7.4, §7.5): KEY DOMAIN
//! (a domain's status, a DKEK share), WRAP KEY and UNWRAP KEY.

use alloc::vec::Vec;

use super::{Apdu, Cmd, CLA_PROPRIETARY};
use crate::codes::{algo, ins};

/// P1 of KEY DOMAIN (docs/protocol.md §7.4).
pub mod domain {
    /// Status of the domain, or (with 32 bytes) import a DKEK share.
    pub const STATUS_OR_SHARE: u8 = 0x00;
    /// Set an unconfigured domain up with n shares.
    pub const CONFIGURE: u8 = 0x01;
    /// Delete an empty domain.
    pub const DELETE: u8 = 0x03;
    /// Clear the domain's DKEK.
    pub const CLEAR: u8 = 0x04;
}

/// Bytes of one DKEK share.
pub const SHARE_LEN: usize = 32;

/// What KEY DOMAIN answers: shares in total, outstanding, and the key
/// check value (the first 8 bytes of SHA-256 of the DKEK; zeros while
/// incomplete). A domain not configured shows `FF` as its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStatus {
    /// Shares in total.
    pub total: u8,
    /// Shares still to import.
    pub outstanding: u8,
    /// Key check value.
    pub kcv: [u8; 8],
}

impl DomainStatus {
    /// Parses the answer.
    pub fn parse(d: &[u8]) -> Option<DomainStatus> {
        Some(DomainStatus {
            total: *d.first()?,
            outstanding: *d.get(1)?,
            kcv: d.get(2..10)?.try_into().ok()?,
        })
    }

    /// The answer (the card's side).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = alloc::vec![self.total, self.outstanding];
        v.extend_from_slice(&self.kcv);
        v
    }
}

/// KEY DOMAIN with P1 `p1` ([`domain`]) on domain `d`, with `data`.
pub fn key_domain(p1: u8, d: u8, data: &[u8]) -> Apdu {
    Apdu::new(
        Cmd::KeyDomain,
        [CLA_PROPRIETARY, ins::KEY_DOMAIN, p1, d],
        data,
        256,
    )
}

/// WRAP KEY: key `key_ref` as a DKEK blob of its domain.
pub fn wrap(key_ref: u8) -> Apdu {
    Apdu::extended(
        Cmd::WrapKey,
        [CLA_PROPRIETARY, ins::WRAP_KEY, key_ref, algo::WRAP],
        &[],
        65536,
    )
}

/// UNWRAP KEY of `blob` as key `key_ref` (an empty `blob`: the card reads
/// it from EF 2F10, as OpenSC sends it).
pub fn unwrap(key_ref: u8, blob: &[u8]) -> Apdu {
    Apdu::extended(
        Cmd::UnwrapKey,
        [CLA_PROPRIETARY, ins::UNWRAP_KEY, key_ref, algo::UNWRAP],
        blob,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn bytes_and_status() {
        assert_eq!(
            key_domain(domain::STATUS_OR_SHARE, 0, &[]).bytes(),
            hex("80 52 00 00 00")
        );
        let share = [7u8; SHARE_LEN];
        let b = key_domain(domain::STATUS_OR_SHARE, 0, &share);
        assert_eq!(&b.bytes()[..5], &hex("80 52 00 00 20")[..]);
        assert_eq!(wrap(3).bytes(), hex("80 72 03 92 00 00 00"));
        assert_eq!(unwrap(3, &[]).bytes(), hex("80 74 03 93"));
        let s = DomainStatus {
            total: 1,
            outstanding: 0,
            kcv: [9; 8],
        };
        assert_eq!(DomainStatus::parse(&s.encode()), Some(s));
        assert_eq!(DomainStatus::parse(&[1, 0]), None);
    }
}
