//! What goes wrong talking to a card, and the one table that turns a
//! status word into a CK_RV ([`CardError::rv`]).
//!
//! A refusal keeps the command and its status word all the way up: the
//! module maps it to a CK_RV here, `picohsm-tool` to a sentence, and the
//! log line carries both.

use std::fmt;

use cryptoki_sys::*;
use picohsm_wire::cmd::Cmd;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::sw::StatusWord;

use crate::error::Error;
use crate::vendor;

/// A card command that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardError {
    /// The card answered `sw` to `command`.
    Status {
        /// The command.
        command: Cmd,
        /// Its status word.
        sw: StatusWord,
    },
    /// The answer to `command` does not have its layout.
    Malformed {
        /// The command.
        command: Cmd,
        /// What was wrong, in a few words.
        what: &'static str,
    },
    /// A file on the card, or one given by the user, does not parse.
    Invalid(String),
    /// The link failed (PC/SC, card removed or reset): its module error.
    Link(Error),
}

/// Results of the card driver.
pub type CardResult<T> = std::result::Result<T, CardError>;

impl From<Error> for CardError {
    fn from(e: Error) -> Self {
        CardError::Link(e)
    }
}

impl CardError {
    /// The status word, when the card answered one.
    pub fn sw(&self) -> Option<StatusWord> {
        match self {
            CardError::Status { sw, .. } => Some(*sw),
            _ => None,
        }
    }

    /// For a PIN refused by a PIN command: the PIN's reference and the
    /// tries left (`0`: blocked). `None` for any other failure.
    pub fn pin_refused(&self) -> Option<(u8, u8)> {
        let CardError::Status { command, sw } = self else {
            return None;
        };
        let reference = match command {
            Cmd::Verify(r) | Cmd::ChangeReferenceData(r) => *r,
            Cmd::ResetRetryCounter | Cmd::Initialize => pin_ref::SO,
            _ => return None,
        };
        if *sw == StatusWord::PIN_BLOCKED {
            return Some((reference, 0));
        }
        sw.pin_tries().map(|n| (reference, n))
    }

    /// The CK_RV of this failure: the one table of the module.
    pub fn rv(&self) -> CK_RV {
        match self {
            CardError::Status { command, sw } => rv_of(*command, *sw),
            CardError::Malformed {
                command: Cmd::SelectApplet,
                ..
            } => CKR_TOKEN_NOT_RECOGNIZED,
            CardError::Malformed { .. } | CardError::Invalid(_) => CKR_DEVICE_ERROR,
            CardError::Link(e) => e.rv,
        }
    }
}

/// The CK_RV of `sw` answered to `command`: first what the status word
/// means for that command, then what it means for any command
/// ([`sw_to_rv`]).
pub fn rv_of(command: Cmd, sw: StatusWord) -> CK_RV {
    use Cmd::*;
    match (command, sw) {
        (SelectApplet, _) if !sw.is_ok() => CKR_TOKEN_NOT_RECOGNIZED,
        (Verify(_) | ChangeReferenceData(_) | ResetRetryCounter | SetUserPin | Initialize, sw) => {
            match sw {
                StatusWord::PIN_BLOCKED => CKR_PIN_LOCKED,
                StatusWord::WRONG_LENGTH if !matches!(command, Verify(_)) => CKR_PIN_LEN_RANGE,
                StatusWord::DATA_INVALID if matches!(command, Verify(_)) => CKR_PIN_EXPIRED,
                StatusWord::REF_NOT_FOUND if matches!(command, Verify(_)) => {
                    CKR_USER_PIN_NOT_INITIALIZED
                }
                _ if sw.pin_tries().is_some() => CKR_PIN_INCORRECT,
                _ => sw_to_rv(sw),
            }
        }
        (Ecdh, StatusWord::WRONG_DATA | StatusWord::WRONG_LENGTH) => CKR_MECHANISM_PARAM_INVALID,
        (Decipher, StatusWord::WRONG_DATA | StatusWord::WRONG_LENGTH) => CKR_ENCRYPTED_DATA_INVALID,
        (MseSetAt, StatusWord::CONDITIONS) => vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED,
        (MseSetAt, StatusWord::REF_NOT_FOUND) => vendor::CKR_PICOHSM_KEY_NOT_REGISTERED,
        (
            ExternalAuthenticate,
            StatusWord::CONDITIONS
            | StatusWord::AUTH_FAILED
            | StatusWord::SECURITY_STATUS
            | StatusWord::REF_NOT_FOUND,
        ) => vendor::CKR_PICOHSM_SIGNATURE_REFUSED,
        _ => sw_to_rv(sw),
    }
}

/// What a status word means for any command (docs/protocol.md §1.4).
pub fn sw_to_rv(sw: StatusWord) -> CK_RV {
    match sw {
        StatusWord::OK | StatusWord::OK_AUTHENTICATED => CKR_OK,
        StatusWord::SECURITY_STATUS | StatusWord::EXEC_ERROR => CKR_USER_NOT_LOGGED_IN,
        StatusWord::PIN_BLOCKED => CKR_PIN_LOCKED,
        StatusWord::DATA_INVALID | StatusWord::WRONG_DATA => CKR_DATA_INVALID,
        StatusWord::CONDITIONS | StatusWord::NOT_ALLOWED => CKR_FUNCTION_REJECTED,
        StatusWord::WRONG_LENGTH => CKR_DATA_LEN_RANGE,
        StatusWord::FUNC_NOT_SUPPORTED => CKR_MECHANISM_INVALID,
        StatusWord::FILE_NOT_FOUND | StatusWord::REF_NOT_FOUND => CKR_OBJECT_HANDLE_INVALID,
        StatusWord::FILE_FULL | StatusWord::MEMORY_FAILURE => CKR_DEVICE_MEMORY,
        _ if sw.pin_tries().is_some() => CKR_PIN_INCORRECT,
        _ => CKR_DEVICE_ERROR,
    }
}

/// What a status word means on a Pico HSM / SmartCard-HSM, in words
/// (docs/protocol.md §1.4).
pub fn sw_meaning(sw: StatusWord) -> &'static str {
    match sw {
        StatusWord::OK => "success",
        StatusWord::OK_AUTHENTICATED => "success, key already authenticated",
        StatusWord::END_OF_FILE => "end of file reached",
        _ if sw.pin_tries().is_some() => "wrong PIN",
        StatusWord::EXEC_ERROR => {
            "execution error: the keys are locked (no PIN verified) or the operation failed"
        }
        StatusWord::MEMORY_FAILURE => "memory failure",
        StatusWord::NO_BUTTON_PRESS => "no button press in time",
        StatusWord::WRONG_LENGTH => "wrong length",
        StatusWord::SECURITY_STATUS => "security status not satisfied",
        StatusWord::PIN_BLOCKED => "PIN blocked",
        StatusWord::DATA_INVALID => "data invalid",
        StatusWord::CONDITIONS => "conditions of use not satisfied",
        StatusWord::NOT_ALLOWED => "command not allowed",
        StatusWord::WRONG_DATA => "incorrect parameters in the data field",
        StatusWord::FUNC_NOT_SUPPORTED => "function not supported",
        StatusWord::FILE_NOT_FOUND => "file or application not found",
        StatusWord::FILE_FULL => "not enough memory / no free slot",
        StatusWord::WRONG_P1P2 => "incorrect P1/P2",
        StatusWord::REF_NOT_FOUND => "referenced data not found",
        StatusWord::FILE_EXISTS => "file already exists",
        StatusWord::WRONG_PARAMS => "wrong parameters",
        StatusWord::INS_NOT_SUPPORTED => "instruction not supported",
        StatusWord::CLA_NOT_SUPPORTED => "class not supported",
        _ => "unknown status",
    }
}

/// The name of a PIN reference, for messages.
pub fn pin_name(reference: u8) -> &'static str {
    if reference == pin_ref::SO {
        "SO-PIN"
    } else {
        "user PIN"
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Self {
        match &e {
            CardError::Status { command, sw } => {
                Error::card(rv_of(*command, *sw), command.name(), *sw)
            }
            CardError::Malformed { what, .. } => Error::new(e.rv(), what),
            CardError::Invalid(_) => Error::new(CKR_DEVICE_ERROR, "card data does not parse"),
            CardError::Link(e) => *e,
        }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardError::Status { command, sw } => match self.pin_refused() {
                Some((r, 0)) => write!(f, "the {} is blocked", pin_name(r)),
                Some((r, n)) => write!(f, "wrong {}: {n} tries left", pin_name(r)),
                None => write!(f, "{command}: the card answered {sw} ({})", sw_meaning(*sw)),
            },
            CardError::Malformed { command, what } => write!(f, "{command}: {what}"),
            CardError::Invalid(s) => f.write_str(s),
            CardError::Link(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CardError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_word_means_what_its_command_makes_of_it() {
        let sw = StatusWord::CONDITIONS;
        assert_eq!(rv_of(Cmd::Sign, sw), CKR_FUNCTION_REJECTED);
        assert_eq!(
            rv_of(Cmd::MseSetAt, sw),
            vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED
        );
        assert_eq!(
            rv_of(Cmd::ExternalAuthenticate, sw),
            vendor::CKR_PICOHSM_SIGNATURE_REFUSED
        );
        assert_eq!(
            rv_of(Cmd::ChangeReferenceData(0x81), StatusWord(0x6700)),
            CKR_PIN_LEN_RANGE
        );
        assert_eq!(
            rv_of(Cmd::Verify(0x81), StatusWord(0x6700)),
            CKR_DATA_LEN_RANGE
        );
        assert_eq!(rv_of(Cmd::Sign, StatusWord(0x6700)), CKR_DATA_LEN_RANGE);
        assert_eq!(
            rv_of(Cmd::Ecdh, StatusWord::WRONG_DATA),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            rv_of(Cmd::SelectApplet, StatusWord::FILE_NOT_FOUND),
            CKR_TOKEN_NOT_RECOGNIZED
        );
        let e = CardError::Status {
            command: Cmd::ResetRetryCounter,
            sw: StatusWord(0x63C2),
        };
        assert_eq!(e.pin_refused(), Some((pin_ref::SO, 2)));
        let e: Error = e.into();
        assert_eq!((e.rv, e.sw), (CKR_PIN_INCORRECT, Some(StatusWord(0x63C2))));
    }
}
