//! Status words (ISO 7816-4 §5.1.3) with the meanings the Pico HSM firmware
//! gives them (docs/protocol.md §1.4). Card and host use these constants;
//! the host maps them to CK_RV in one place.

/// A two-byte status word, `SW1 << 8 | SW2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// 9000: success.
    pub const OK: Self = Self(0x9000);
    /// 9001: MANAGE PKA enumerate, slot already authenticated (docs/protocol.md §6.3).
    pub const OK_AUTHENTICATED: Self = Self(0x9001);
    /// 6282: READ BINARY offset beyond the end of the file.
    pub const END_OF_FILE: Self = Self(0x6282);
    /// 6300: authentication failed (EXTERNAL AUTHENTICATE on some cards).
    pub const AUTH_FAILED: Self = Self(0x6300);
    /// 6400: execution error (crypto failure, MKEK locked).
    pub const EXEC_ERROR: Self = Self(0x6400);
    /// 6581: memory failure (flash write failed).
    pub const MEMORY_FAILURE: Self = Self(0x6581);
    /// 6600: the Pico HSM's button was not pressed in time.
    pub const NO_BUTTON_PRESS: Self = Self(0x6600);
    /// 6700: wrong length.
    pub const WRONG_LENGTH: Self = Self(0x6700);
    /// 6881: logical channel not supported.
    pub const CHANNEL_NOT_SUPPORTED: Self = Self(0x6881);
    /// 6882: secure messaging not supported.
    pub const SM_NOT_SUPPORTED: Self = Self(0x6882);
    /// 6883: last command of a chain expected.
    pub const LAST_COMMAND_EXPECTED: Self = Self(0x6883);
    /// 6884: command chaining not supported for this command.
    pub const CHAINING_NOT_SUPPORTED: Self = Self(0x6884);
    /// 6982: security status not satisfied (not authenticated).
    pub const SECURITY_STATUS: Self = Self(0x6982);
    /// 6983: authentication method (PIN) blocked.
    pub const PIN_BLOCKED: Self = Self(0x6983);
    /// 6984: reference data not usable (transport PIN) / data invalid.
    pub const DATA_INVALID: Self = Self(0x6984);
    /// 6985: conditions of use not satisfied.
    pub const CONDITIONS: Self = Self(0x6985);
    /// 6986: command not allowed.
    pub const NOT_ALLOWED: Self = Self(0x6986);
    /// 6A80: incorrect parameters in the data field.
    pub const WRONG_DATA: Self = Self(0x6A80);
    /// 6A81: function not supported.
    pub const FUNC_NOT_SUPPORTED: Self = Self(0x6A81);
    /// 6A82: file or application not found.
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    /// 6A84: not enough memory / key use counter exhausted / no free slot.
    pub const FILE_FULL: Self = Self(0x6A84);
    /// 6A86: incorrect P1-P2.
    pub const WRONG_P1P2: Self = Self(0x6A86);
    /// 6A88: referenced data not found.
    pub const REF_NOT_FOUND: Self = Self(0x6A88);
    /// 6A89: file already exists.
    pub const FILE_EXISTS: Self = Self(0x6A89);
    /// 6B00: wrong parameters P1-P2.
    pub const WRONG_PARAMS: Self = Self(0x6B00);
    /// 6D00: instruction not supported.
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    /// 6E00: class not supported.
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);

    /// 63Cx: wrong PIN, `tries` (0..=15) left.
    pub const fn tries_left(tries: u8) -> Self {
        Self(0x63C0 | (tries as u16 & 0x0F))
    }

    /// 61xx: `remaining` more bytes wait for GET RESPONSE (`00` = 256 or more).
    pub const fn more_data(remaining: usize) -> Self {
        Self(0x6100 | if remaining > 255 { 0 } else { remaining as u16 })
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }
    /// The two bytes as they go on the wire.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
    /// 9000 or 9001.
    pub const fn is_ok(self) -> bool {
        self.0 == 0x9000 || self.0 == 0x9001
    }
    /// `Some(x)` for 63Cx.
    pub const fn pin_tries(self) -> Option<u8> {
        if self.0 & 0xFFF0 == 0x63C0 {
            Some(self.0 as u8 & 0x0F)
        } else {
            None
        }
    }
    /// Reads the status word from the end of a response APDU.
    pub fn from_response(resp: &[u8]) -> Option<Self> {
        let n = resp.len();
        if n < 2 {
            return None;
        }
        Some(Self(u16::from_be_bytes([resp[n - 2], resp[n - 1]])))
    }
}

impl core::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}
