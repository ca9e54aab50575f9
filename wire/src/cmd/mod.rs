//! Typed commands: one builder and one response parser per instruction,
//! so the host never writes an APDU header or a status word by hand and
//! the card reads the same layouts it answers with.
//!
//! A builder returns an [`Apdu`]: the bytes to send, tagged with the
//! [`Cmd`] they are, which names the command in errors and picks the
//! CK_RV of a status word on the host (one table, `card::error`). The
//! bytes are zeroized when the [`Apdu`] is dropped: PINs travel in them.
//!
//! Files: [`file`](mod@file) (SELECT, READ/UPDATE BINARY, DELETE, ENUMERATE),
//! [`device`] (INITIALIZE, the version query, the applet's FCP),
//! [`pin`] (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER),
//! [`key`] (GENERATE, SIGN, DECIPHER, ECDH, GET CHALLENGE), [`dkek`]
//! (KEY DOMAIN, WRAP, UNWRAP) and [`pka`] (MANAGE PKA, MSE, PSO,
//! EXTERNAL AUTHENTICATE).

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroize;

use crate::apdu::{build, build_extended};
use crate::codes::ins;

pub mod device;
pub mod dkek;
pub mod file;
pub mod key;
pub mod pin;
pub mod pka;

/// CLA of the ISO 7816-4 interindustry commands.
pub const CLA_ISO: u8 = 0x00;
/// CLA of the SmartCard-HSM proprietary commands.
pub const CLA_PROPRIETARY: u8 = 0x80;

/// Which command an APDU is: names it in messages and, with its status
/// word, decides the meaning of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// SELECT of the SmartCard-HSM applet (docs/protocol.md §2.3).
    SelectApplet,
    /// INITIALIZE without data: version and free memory (docs/protocol.md §2.4).
    VersionQuery,
    /// READ BINARY (docs/protocol.md §3.5).
    ReadBinary,
    /// UPDATE BINARY (docs/protocol.md §3.6).
    UpdateBinary,
    /// DELETE FILE (docs/protocol.md §3.7).
    DeleteFile,
    /// ENUMERATE OBJECTS (docs/protocol.md §3.8).
    Enumerate,
    /// INITIALIZE DEVICE (docs/protocol.md §4.1).
    Initialize,
    /// VERIFY without data: the state of the PIN with this reference (docs/protocol.md §5.1).
    PinStatus(u8),
    /// VERIFY of the PIN with this reference (docs/protocol.md §5.1).
    Verify(u8),
    /// CHANGE REFERENCE DATA of the PIN with this reference (docs/protocol.md §5.2).
    ChangeReferenceData(u8),
    /// RESET RETRY COUNTER of the user PIN, with the SO-PIN (docs/protocol.md §5.3).
    ResetRetryCounter,
    /// RESET RETRY COUNTER P1 02: a new user PIN in an SO session (docs/protocol.md §5.3).
    SetUserPin,
    /// GENERATE ASYMMETRIC KEY PAIR (docs/protocol.md §7.1).
    Generate,
    /// SIGN (docs/protocol.md §7.2).
    Sign,
    /// DECIPHER (docs/protocol.md §7.3).
    Decipher,
    /// ECDH: DECIPHER with algorithm 80 (docs/protocol.md §7.3).
    Ecdh,
    /// GET CHALLENGE (docs/protocol.md §6.7).
    GetChallenge,
    /// GET RESPONSE (docs/protocol.md §1.2).
    GetResponse,
    /// MANAGE PKA status (docs/protocol.md §6.3).
    PkaStatus,
    /// MANAGE PKA enumerate of one slot (docs/protocol.md §6.3).
    PkaEnumerate,
    /// MANAGE PKA register or replace (docs/protocol.md §6.3).
    PkaRegister,
    /// MSE SET AT: the registered key to check next (docs/protocol.md §6.7).
    MseSetAt,
    /// MSE SET DST: the certificate to verify against (docs/protocol.md §6.4).
    MseSetDst,
    /// PSO VERIFY CERTIFICATE (docs/protocol.md §6.4).
    PsoVerifyCertificate,
    /// EXTERNAL AUTHENTICATE (docs/protocol.md §6.7).
    ExternalAuthenticate,
    /// KEY DOMAIN: a domain's status, a DKEK share (docs/protocol.md §7.4).
    KeyDomain,
    /// WRAP KEY (docs/protocol.md §7.5).
    WrapKey,
    /// UNWRAP KEY (docs/protocol.md §7.5).
    UnwrapKey,
}

impl Cmd {
    /// The command's name, as docs/protocol.md names it.
    pub const fn name(self) -> &'static str {
        match self {
            Cmd::SelectApplet => "SELECT",
            Cmd::VersionQuery => "INITIALIZE (version query)",
            Cmd::ReadBinary => "READ BINARY",
            Cmd::UpdateBinary => "UPDATE BINARY",
            Cmd::DeleteFile => "DELETE FILE",
            Cmd::Enumerate => "ENUMERATE OBJECTS",
            Cmd::Initialize => "INITIALIZE DEVICE",
            Cmd::PinStatus(_) => "VERIFY (status)",
            Cmd::Verify(_) => "VERIFY",
            Cmd::ChangeReferenceData(_) => "CHANGE REFERENCE DATA",
            Cmd::ResetRetryCounter | Cmd::SetUserPin => "RESET RETRY COUNTER",
            Cmd::Generate => "GENERATE ASYMMETRIC KEY PAIR",
            Cmd::Sign => "SIGN",
            Cmd::Decipher => "DECIPHER",
            Cmd::Ecdh => "ECDH",
            Cmd::GetChallenge => "GET CHALLENGE",
            Cmd::GetResponse => "GET RESPONSE",
            Cmd::PkaStatus => "MANAGE PKA status",
            Cmd::PkaEnumerate => "MANAGE PKA enumerate",
            Cmd::PkaRegister => "MANAGE PKA register",
            Cmd::MseSetAt => "MSE SET AT",
            Cmd::MseSetDst => "MSE SET DST",
            Cmd::PsoVerifyCertificate => "PSO VERIFY CERTIFICATE",
            Cmd::ExternalAuthenticate => "EXTERNAL AUTHENTICATE",
            Cmd::KeyDomain => "KEY DOMAIN",
            Cmd::WrapKey => "WRAP KEY",
            Cmd::UnwrapKey => "UNWRAP KEY",
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A command APDU to send, with what it is. Zeroized on drop.
#[derive(PartialEq, Eq)]
pub struct Apdu {
    /// The command.
    pub cmd: Cmd,
    bytes: Vec<u8>,
}

impl Apdu {
    /// Short or extended lengths as needed ([`build`]).
    pub fn new(cmd: Cmd, header: [u8; 4], data: &[u8], ne: usize) -> Apdu {
        let [cla, ins, p1, p2] = header;
        Apdu {
            cmd,
            bytes: build(cla, ins, p1, p2, data, ne),
        }
    }

    /// Always extended lengths, as OpenSC sends them ([`build_extended`]).
    pub fn extended(cmd: Cmd, header: [u8; 4], data: &[u8], ne: usize) -> Apdu {
        let [cla, ins, p1, p2] = header;
        Apdu {
            cmd,
            bytes: build_extended(cla, ins, p1, p2, data, ne),
        }
    }

    /// The bytes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Apdu {
    // The data may hold a PIN: only the command and the header are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Apdu({}, {:02X?}…)", self.cmd, &self.bytes[..4])
    }
}

impl Drop for Apdu {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// GET RESPONSE for `n` more bytes (`0` = 256), after `61xx` (docs/protocol.md §1.2).
pub fn get_response(n: u8) -> Apdu {
    Apdu::new(
        Cmd::GetResponse,
        [CLA_ISO, ins::GET_RESPONSE, 0x00, 0x00],
        &[],
        if n == 0 { 256 } else { n as usize },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn get_response_asks_for_what_61xx_announced() {
        assert_eq!(get_response(0x10).bytes(), hex("00 C0 00 00 10"));
        assert_eq!(get_response(0).bytes(), hex("00 C0 00 00 00"));
    }

    #[test]
    fn debug_never_shows_the_data() {
        let a = Apdu::new(Cmd::Verify(0x81), [0, 0x20, 0, 0x81], b"648219", 0);
        let s = alloc::format!("{a:?}");
        assert!(!s.contains("36") && s.contains("VERIFY"), "{s}");
    }
}
