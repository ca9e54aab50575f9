//! One file per instruction. Each `run` gets the complete command (chaining
//! already resolved by [`crate::apdu`]) and returns response data or the
//! status word of its failure; the APDU layer commits the file system after
//! a success and rolls it back after a failure.

use picohsm_wire::apdu::Command;
use picohsm_wire::codes::ins;
use picohsm_wire::sw::StatusWord;

use crate::apdu::Response;
use crate::Card;

pub mod challenge;
pub mod change_pin;
pub mod decrypt_asym;
pub mod delete_file;
pub mod external_auth;
pub mod initialize;
pub mod key_domain;
pub mod key_unwrap;
pub mod key_wrap;
pub mod keypair_gen;
pub mod list_keys;
pub mod mse;
pub mod pso;
pub mod puk_auth;
pub mod read_binary;
pub mod reset_retry;
pub mod select;
pub mod signature;
#[cfg(test)]
pub(crate) mod testcard;
pub mod update_binary;
pub mod verify;

/// Routes a command to its instruction.
pub fn dispatch(card: &mut Card, cmd: &Command<'_>) -> Response {
    if cmd.ins == ins::SELECT {
        return select::run(card, cmd);
    }
    if !card.applet_selected {
        // Nothing but SELECT reaches the applet before it is selected.
        return Err(StatusWord::CONDITIONS);
    }
    match cmd.ins {
        ins::INITIALIZE => initialize::run(card, cmd),
        ins::VERIFY => verify::run(card, cmd),
        ins::CHANGE_PIN => change_pin::run(card, cmd),
        ins::RESET_RETRY => reset_retry::run(card, cmd),
        ins::CHALLENGE => challenge::run(card, cmd),
        ins::READ_BINARY | ins::READ_BINARY_ODD => read_binary::run(card, cmd),
        ins::UPDATE_BINARY_ODD => update_binary::run(card, cmd),
        ins::DELETE_FILE => delete_file::run(card, cmd),
        ins::LIST_KEYS => list_keys::run(card, cmd),
        ins::KEYPAIR_GEN => keypair_gen::run(card, cmd),
        ins::SIGNATURE => signature::run(card, cmd),
        ins::DECRYPT_ASYM => decrypt_asym::run(card, cmd),
        ins::KEY_DOMAIN => key_domain::run(card, cmd),
        ins::WRAP_KEY => key_wrap::run(card, cmd),
        ins::UNWRAP_KEY => key_unwrap::run(card, cmd),
        ins::MSE => mse::run(card, cmd),
        ins::PSO => pso::run(card, cmd),
        ins::EXTERNAL_AUTH => external_auth::run(card, cmd),
        ins::PUK_AUTH => puk_auth::run(card, cmd),
        _ => Err(StatusWord::INS_NOT_SUPPORTED),
    }
}

/// `6982` unless the user state is granted (by PIN, PKA or INITIALIZE).
pub fn require_auth(card: &Card) -> Result<(), StatusWord> {
    if card.session.user_auth {
        Ok(())
    } else {
        Err(StatusWord::SECURITY_STATUS)
    }
}

/// `6A86` unless P1 and P2 are as given.
pub fn require_p1p2(cmd: &Command<'_>, p1: u8, p2: u8) -> Result<(), StatusWord> {
    if cmd.p1 == p1 && cmd.p2 == p2 {
        Ok(())
    } else {
        Err(StatusWord::WRONG_P1P2)
    }
}
