//! The module's error: a CK_RV and where it came from (for the log line).

use cryptoki_sys::CK_RV;

/// A PKCS#11 failure with its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The return value the caller gets.
    pub rv: CK_RV,
    /// A short, static description of where it arose (never secret data).
    pub origin: &'static str,
}

impl Error {
    /// An error with `rv` from `origin`.
    pub const fn new(rv: CK_RV, origin: &'static str) -> Self {
        Error { rv, origin }
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
        write!(f, "{} (CK_RV {:#x})", self.origin, self.rv)
    }
}
