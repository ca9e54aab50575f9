//! The module's error: a CK_RV, where it came from, and the card's status
//! word when a card refusal is behind it (for the log line).

use cryptoki_sys::CK_RV;
use picohsm_wire::sw::StatusWord;

/// A PKCS#11 failure with its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The return value the caller gets.
    pub rv: CK_RV,
    /// A short, static description of where it arose (never secret data).
    pub origin: &'static str,
    /// The status word the card answered, when a card refusal is the cause.
    pub sw: Option<StatusWord>,
}

impl Error {
    /// An error with `rv` from `origin`.
    pub const fn new(rv: CK_RV, origin: &'static str) -> Self {
        Error {
            rv,
            origin,
            sw: None,
        }
    }

    /// A card's refusal: `command` answered `sw`, which means `rv`.
    pub const fn card(rv: CK_RV, command: &'static str, sw: StatusWord) -> Self {
        Error {
            rv,
            origin: command,
            sw: Some(sw),
        }
    }
}

/// Results of the module's core.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand: `Err(Error::new(rv, origin))`.
pub fn fail<T>(rv: CK_RV, origin: &'static str) -> Result<T> {
    Err(Error::new(rv, origin))
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sw {
            Some(sw) => write!(
                f,
                "{}: card answered {sw} (CK_RV {:#x})",
                self.origin, self.rv
            ),
            None => write!(f, "{} (CK_RV {:#x})", self.origin, self.rv),
        }
    }
}
