//! Finding the key of an operation: one rule for sign, decrypt, derive
//! (a private key, the user logged in) and verify (a public key).

use cryptoki_sys::*;

use crate::core::object::{Class, KeyInfo, Object};
use crate::core::state::on_token;
use crate::core::token::{Login, Token};
use crate::error::{fail, Error, Result};

/// The token object `key` (CKR_KEY_HANDLE_INVALID if there is none).
fn key_object(t: &mut Token, key: CK_OBJECT_HANDLE) -> Result<Object> {
    t.resolve_handle(key)?;
    let found = t
        .objects()?
        .iter()
        .find(|(h, _)| *h == key)
        .map(|(_, o)| o.clone());
    found.ok_or(Error::new(CKR_KEY_HANDLE_INVALID, "unknown key"))
}

/// The key behind `key` on `slot`: its card reference and kind for a
/// private key (CKR_USER_NOT_LOGGED_IN unless the user is), or the whole
/// object for a public key. Without `exact_curve` an EC key known from its
/// PrKD only gives a curve of its field size (what a signature needs, no
/// card read); with it, the key's request or certificate is read if it was
/// not (ECDH checks the peer's point on the key's own curve).
pub fn private_key(
    slot: CK_SLOT_ID,
    key: CK_OBJECT_HANDLE,
    exact_curve: bool,
) -> Result<(u8, KeyInfo)> {
    on_token(slot, |t| {
        let logged = t.login == Login::User;
        if exact_curve {
            t.resolve_for(key, None)?;
        }
        let o = key_object(t, key)?;
        if o.class != Class::PrivateKey {
            return fail(CKR_KEY_FUNCTION_NOT_PERMITTED, "not a private key");
        }
        if !logged {
            return fail(CKR_USER_NOT_LOGGED_IN, "key use needs a login");
        }
        o.key
            .ok_or(Error::new(CKR_KEY_HANDLE_INVALID, "key without reference"))
    })
}

/// A public key object (or the public half of a private key's attributes).
pub fn public_key(slot: CK_SLOT_ID, key: CK_OBJECT_HANDLE) -> Result<Object> {
    on_token(slot, |t| {
        let o = key_object(t, key)?;
        if o.class != Class::PublicKey {
            return fail(
                CKR_KEY_FUNCTION_NOT_PERMITTED,
                "verification takes a public key",
            );
        }
        Ok(o)
    })
}
