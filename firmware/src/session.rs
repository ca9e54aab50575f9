//! Volatile card state: what a SELECT of the applet, a reset or a power
//! cycle clears (docs/protocol.md §2.3, §8). Nothing here is persisted.

use alloc::vec::Vec;

use crate::seal::Key32;

/// Registered PKA keys a device can hold (docs/protocol.md §6.1).
pub const MAX_PKA_KEYS: usize = 8;

/// Certificates PSO VERIFY CERTIFICATE can add to a card session.
pub const MAX_SESSION_CERTS: usize = 16;

/// The session state of the applet.
#[derive(Default)]
pub struct Session {
    /// The EF chosen by the last SELECT.
    pub selected_ef: Option<u16>,
    /// "isUserAuthenticated": key use, writes and deletes are allowed.
    pub user_auth: bool,
    /// The user PIN was verified in this session (VERIFY status → 9000).
    pub user_pin: bool,
    /// The SO-PIN was verified in this session.
    pub so_pin: bool,
    /// The master key, present only while a PIN or SO-PIN session exists.
    pub mkek: Option<Key32>,
    /// The last GET CHALLENGE, pending for EXTERNAL AUTHENTICATE.
    pub challenge: Option<Vec<u8>>,
    /// Per registered PKA key: authenticated in this session.
    pub pka_status: [bool; MAX_PKA_KEYS],
    /// The PKA quorum (m of n keys) was reached in this session.
    pub pka_quorum: bool,
    /// The PKA slot chosen by MSE SET AT.
    pub pka_selected: Option<usize>,
    /// The issuer certificate chosen by MSE SET DST (a `7F21` TLV).
    pub issuer: Option<Vec<u8>>,
    /// Certificates verified by PSO VERIFY CERTIFICATE in this session
    /// (`7F21` TLVs, at most [`MAX_SESSION_CERTS`]): kept in RAM, not in
    /// flash, since anyone may send that command (docs/protocol.md §6.4).
    pub verified_certs: Vec<Vec<u8>>,
}

impl Session {
    /// Forgets everything: a logout.
    pub fn clear(&mut self) {
        *self = Session::default();
    }
}
