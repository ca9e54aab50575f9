//! Failures and exit codes: every failure says what happened (with the
//! status word and its meaning when the card answered one) and what to do.

use cryptoki_sys::*;
use picohsm_pkcs11::card::error::{pin_name, sw_meaning};
use picohsm_pkcs11::card::CardError;
use picohsm_pkcs11::error::Error;
use picohsm_pkcs11::vendor;
use picohsm_wire::cmd::Cmd;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::sw::StatusWord;

/// Success.
pub const OK: i32 = 0;
/// The card refused or failed the operation.
pub const CARD: i32 = 1;
/// Usage error (clap exits with 2 itself; the tool uses it for arguments
/// only a card or a file can show wrong).
pub const USAGE: i32 = 2;
/// No device: pcscd, reader, card or SmartCard-HSM missing.
pub const NO_DEVICE: i32 = 3;
/// Wrong PIN or PIN blocked.
pub const PIN: i32 = 4;

/// A failure: the exit code, a message, what to do, the status word.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The card's status word, when it answered one.
    pub sw: Option<u16>,
    /// Tries left of a wrong PIN.
    pub tries_left: Option<u8>,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
            sw: None,
            tries_left: None,
        }
    }

    /// Adds (or replaces) what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// The card refused the operation (exit 1).
    pub fn card(message: impl Into<String>) -> Failure {
        Failure::new(CARD, message)
    }

    /// No device (exit 3).
    pub fn no_device(message: impl Into<String>) -> Failure {
        Failure::new(NO_DEVICE, message)
    }

    /// A usage error found after parsing (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(USAGE, message)
    }
}

/// The tool's results.
pub type Res<T> = std::result::Result<T, Failure>;

/// What to do about a status word answered to `command`, in general;
/// callers add what they know.
fn sw_hint(command: Cmd, sw: StatusWord) -> Option<String> {
    use Cmd::*;
    let pka = matches!(command, PkaRegister | PkaStatus | PkaEnumerate);
    let s = match sw {
        StatusWord::SECURITY_STATUS if pka => {
            "verify a PIN in the same session: pass --pin (or --so-pin on a device without user PIN); once m keys are registered, a PKA login in the same session as well: pass --auth-pin"
        }
        StatusWord::SECURITY_STATUS => {
            "the device wants a login first: the user PIN; on a PKA device, a PKA login as well, which the PKCS#11 module (libpicohsm_pkcs11.so) does before using keys"
        }
        StatusWord::EXEC_ERROR => "the device's keys are locked: verify the user PIN (--pin) in the same session",
        StatusWord::FILE_NOT_FOUND | StatusWord::WRONG_P1P2 if pka => {
            "this device was initialised without PKA: initialise it with --pka-keys N [--pka-required M]"
        }
        StatusWord::FILE_FULL if pka => {
            "every PKA slot is taken (see picohsm-tool pka status); re-initialise with more --pka-keys, or replace a key with --replace SLOT"
        }
        StatusWord::FILE_FULL => "the device is full: delete keys or objects first",
        StatusWord::FILE_EXISTS if pka => {
            "a key with this name (CHR), or this very public key under another name, is already registered"
        }
        StatusWord::DATA_INVALID if pka => {
            "the request's self-signature does not verify: export the key again"
        }
        StatusWord::CONDITIONS if pka => {
            "replacing a key needs the device option 0008 (init --replace-pka), and the request's device signature must verify"
        }
        StatusWord::FUNC_NOT_SUPPORTED => "the device does not support this curve or key type",
        StatusWord::NOT_ALLOWED if command == ResetRetryCounter => {
            "the device does not allow this reset: it was initialised with --no-pin-reset, or (without --new-pin) without --reset-counter-only"
        }
        StatusWord::WRONG_DATA if command == Initialize => {
            "the device refused the parameters: a Pico HSM takes at most 8 PKA keys, and m must not exceed n"
        }
        StatusWord::REF_NOT_FOUND if matches!(command, Verify(_)) => {
            "this device has no user PIN (PKA only): pass --so-pin instead"
        }
        StatusWord::NO_BUTTON_PRESS => "press the device's button when it blinks, then run the command again",
        _ => return None,
    };
    Some(s.to_string())
}

/// The command as a message names it: a VERIFY refusal says why.
fn command_name(command: Cmd, sw: StatusWord) -> &'static str {
    match (command, sw) {
        (Cmd::Verify(_), StatusWord::DATA_INVALID) => "VERIFY (transport PIN: change it first)",
        (Cmd::Verify(_), StatusWord::REF_NOT_FOUND) => "VERIFY (no such PIN on the device)",
        _ => command.name(),
    }
}

impl From<CardError> for Failure {
    fn from(e: CardError) -> Failure {
        match e.pin_refused() {
            Some((reference, 0)) => {
                return Failure {
                    code: PIN,
                    message: format!("the {} is blocked", pin_name(reference)),
                    hint: Some(if reference == pin_ref::SO {
                        "nothing can unblock the SO-PIN".into()
                    } else {
                        "unblock it with picohsm-tool pin unblock --so-pin <SO-PIN> --new-pin <PIN>"
                            .into()
                    }),
                    sw: e.sw().map(|sw| sw.0),
                    tries_left: Some(0),
                }
            }
            Some((reference, tries_left)) => {
                return Failure {
                    code: PIN,
                    message: format!(
                        "wrong {}: {tries_left} {} left",
                        pin_name(reference),
                        if tries_left == 1 { "try" } else { "tries" }
                    ),
                    hint: Some(if reference == pin_ref::SO {
                        "the SO-PIN is the 16 hex digits set at initialisation; when no tries are left it is blocked for good".into()
                    } else {
                        "check the PIN; when no tries are left it is blocked, and only the SO can unblock it (picohsm-tool pin unblock --so-pin …)".into()
                    }),
                    sw: e.sw().map(|sw| sw.0),
                    tries_left: Some(tries_left),
                }
            }
            None => {}
        }
        match e {
            // A card that refuses the applet is no SmartCard-HSM: a device
            // problem, said as the module says it.
            CardError::Status {
                command: Cmd::SelectApplet,
                ..
            }
            | CardError::Malformed {
                command: Cmd::SelectApplet,
                ..
            } => from_module(e.into()),
            CardError::Status { command, sw } => Failure {
                code: CARD,
                message: format!(
                    "{} failed: the card answered {:04X} ({})",
                    command_name(command, sw),
                    sw.0,
                    sw_meaning(sw)
                ),
                hint: sw_hint(command, sw),
                sw: Some(sw.0),
                tries_left: None,
            },
            CardError::Malformed { command, what } => Failure::card(format!("{command}: {what}")),
            CardError::Invalid(s) => Failure::card(s),
            CardError::Link(e) => from_module(e),
        }
    }
}

/// The module's return values a person may meet, with the exit code,
/// what happened and what to do.
const MODULE_FAILURES: &[(CK_RV, i32, &str, &str)] = &[
    (CKR_TOKEN_NOT_PRESENT, NO_DEVICE, "the card left its reader or was reset", "check that the device is plugged in, then run the command again"),
    (CKR_DEVICE_REMOVED, NO_DEVICE, "the card left its reader or was reset", "check that the device is plugged in, then run the command again"),
    (CKR_TOKEN_NOT_RECOGNIZED, NO_DEVICE, "the card is not a SmartCard-HSM (no SmartCard-HSM applet)", "choose another reader with --reader (picohsm-tool list shows them)"),
    (CKR_PIN_INCORRECT, PIN, "wrong PIN", "check the PIN"),
    (CKR_PIN_LOCKED, PIN, "the PIN is blocked", "unblock it with picohsm-tool pin unblock --so-pin <SO-PIN> --new-pin <PIN>"),
    (vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT, PIN, "the authenticator refused its PIN", "pass the authenticator token's own PIN with --pin"),
    (vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED, PIN, "the authenticator's PIN is blocked", "unblock it on the authenticator token (its SO-PIN) before logging in"),
    (vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING, NO_DEVICE, "no authenticator token is connected", "connect the token that holds a registered key (or name it with --authenticator-reader / --authenticator-module)"),
    (vendor::CKR_PICOHSM_KEY_NOT_REGISTERED, CARD, "none of the connected authenticators holds a key registered on this device and not yet accepted", "see picohsm-tool pka status for the registered names (CHR); connect the token that holds one of them"),
    (vendor::CKR_PICOHSM_SIGNATURE_REFUSED, CARD, "the device refused the authenticator's signature (EXTERNAL AUTHENTICATE)", "the key may have been registered from another file, or another application started a new challenge: run the login again"),
    (vendor::CKR_PICOHSM_PKA_NOT_CONFIGURED, CARD, "this device has no PKA, or no key is registered yet", "initialise with --pka-keys and register keys with picohsm-tool pka register"),
    (vendor::CKR_PICOHSM_PKA_MORE_NEEDED, CARD, "the quorum needs more authenticators than are connected", "connect the next authenticator token (or raise --wait)"),
    (vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED, CARD, "this key was already accepted in this round", "the next round needs another registered key"),
    (CKR_USER_NOT_LOGGED_IN, CARD, "the device wants a login first", "verify the user PIN, or log in with PKA"),
    (vendor::CKR_PICOHSM_DEVICE_UNTRUSTED, CARD, "the device's certificate chain (EF 2F02) does not lead to a trusted root: nothing was signed for it", "name its root with --device-root (the module's device-roots); --allow-test-chain trusts picohsm-vcard's test PKI"),
];

/// A failure of the module's layers (PC/SC, the PKA login).
pub fn from_module(e: Error) -> Failure {
    if e.rv == CKR_DEVICE_ERROR && e.origin.contains("pcscd") {
        return Failure::new(NO_DEVICE, "pcscd is not reachable")
            .hint("start the PC/SC daemon (systemctl start pcscd, or pcscd)");
    }
    match MODULE_FAILURES.iter().find(|(rv, ..)| *rv == e.rv) {
        Some((_, code, message, hint)) => Failure::new(*code, *message).hint(*hint),
        None => Failure::card(format!("{} (CK_RV {:#x})", e.origin, e.rv)),
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        from_module(e)
    }
}
