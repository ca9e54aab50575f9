//! The key commands (docs/protocol.md §7.1-§7.3, §6.7): GENERATE
//! ASYMMETRIC KEY PAIR, SIGN, DECIPHER, ECDH and GET CHALLENGE.

use super::{Apdu, Cmd, CLA_ISO, CLA_PROPRIETARY};
use crate::codes::{algo, ins};

/// Le of the key commands: whatever the card has.
const ANY: usize = 65536;

/// The first byte of an uncompressed EC point, which ECDH answers (docs/protocol.md §7.3).
pub const UNCOMPRESSED_POINT: u8 = 0x04;

/// GENERATE ASYMMETRIC KEY PAIR into key reference `key_ref` with the CV
/// template `template` (docs/protocol.md §7.1); the card answers the authenticated request.
pub fn generate(key_ref: u8, template: &[u8]) -> Apdu {
    Apdu::extended(
        Cmd::Generate,
        [CLA_ISO, ins::KEYPAIR_GEN, key_ref, 0x00],
        template,
        ANY,
    )
}

/// SIGN with key `key_ref` and algorithm byte `algorithm` (docs/protocol.md §7.2).
pub fn sign(key_ref: u8, algorithm: u8, data: &[u8]) -> Apdu {
    Apdu::extended(
        Cmd::Sign,
        [CLA_PROPRIETARY, ins::SIGNATURE, key_ref, algorithm],
        data,
        ANY,
    )
}

/// DECIPHER with key `key_ref` and algorithm byte `algorithm` (docs/protocol.md §7.3).
pub fn decipher(key_ref: u8, algorithm: u8, data: &[u8]) -> Apdu {
    Apdu::extended(
        Cmd::Decipher,
        [CLA_PROPRIETARY, ins::DECRYPT_ASYM, key_ref, algorithm],
        data,
        ANY,
    )
}

/// ECDH of key `key_ref` with the peer's uncompressed `point` (docs/protocol.md §7.3).
pub fn ecdh(key_ref: u8, point: &[u8]) -> Apdu {
    Apdu::extended(
        Cmd::Ecdh,
        [CLA_PROPRIETARY, ins::DECRYPT_ASYM, key_ref, algo::ECDH],
        point,
        ANY,
    )
}

/// GET CHALLENGE of `n` bytes (1..=256).
pub fn get_challenge(n: usize) -> Apdu {
    Apdu::new(
        Cmd::GetChallenge,
        [CLA_ISO, ins::CHALLENGE, 0x00, 0x00],
        &[],
        n.clamp(1, 256),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn bytes() {
        assert_eq!(
            sign(1, 0x70, &[0xAA]).bytes(),
            hex("80 68 01 70 00 00 01 AA 00 00")
        );
        assert_eq!(
            ecdh(2, &[4, 1]).bytes(),
            hex("80 62 02 80 00 00 02 04 01 00 00")
        );
        assert_eq!(get_challenge(8).bytes(), hex("00 84 00 00 08"));
        assert_eq!(get_challenge(256).bytes(), hex("00 84 00 00 00"));
        assert_eq!(
            generate(3, &[0x5F, 0x29, 0x01, 0x00]).bytes(),
            hex("00 46 03 00 00 00 04 5F 29 01 00 00 00")
        );
    }
}
