//! C_Login and C_Logout (PKCS#11 3.0 §5.6): the user PIN, the PKA rounds and
//! both, as the settings and the token ask. The login lives on the card:
//! the module only mirrors it, so that a reset by another process shows up
//! as CKR_DEVICE_REMOVED on the next card exchange.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::card::{self, Card, PinState};
use crate::core::state::{on_token, session_slot, with_module};
use crate::core::token::{Login, Token};
use crate::error::{fail, Error, Result};
use crate::pka::authenticator::AuthKey;
use crate::pka::{pinentry, round};
use crate::settings::{Config, LoginMode};
use crate::transport::pcsc::Pcsc;
use crate::transport::Transport;
use crate::vendor;

/// The SO-PIN as the card takes it: 16 hexadecimal digits → 8 bytes (docs/protocol.md §5.1).
pub fn so_pin_bytes(pin: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if pin.len() != 16 {
        return fail(CKR_PIN_LEN_RANGE, "the SO-PIN is 16 hex digits");
    }
    let mut out = Zeroizing::new(Vec::with_capacity(8));
    for pair in pin.chunks(2) {
        let s =
            std::str::from_utf8(pair).map_err(|_| Error::new(CKR_PIN_INVALID, "SO-PIN not hex"))?;
        out.push(
            u8::from_str_radix(s, 16).map_err(|_| Error::new(CKR_PIN_INVALID, "SO-PIN not hex"))?,
        );
    }
    Ok(out)
}

/// Where the PINs of one C_Login come from.
#[derive(Clone, Copy)]
enum Secret<'a> {
    /// The application's: a PIN, or `<token PIN><separator><authenticator
    /// PIN>` (settings::LoginMode).
    Given(&'a [u8]),
    /// None given (a protected authentication path): each PIN the login
    /// needs is asked of the pinentry, or the login goes without one where
    /// the authenticator needs none.
    Asked,
}

/// The PINs of a login without one from the application: from the
/// settings' pinentry, each with its own prompt.
struct Prompter<'a> {
    config: &'a Config,
    /// The token's label, for the prompts.
    token: String,
}

impl Prompter<'_> {
    fn ask(&self, prompt: pinentry::Prompt) -> Result<Zeroizing<Vec<u8>>> {
        let Some(program) = &self.config.pinentry else {
            return fail(vendor::CKR_PICOHSM_NO_PIN_SOURCE, "no pinentry");
        };
        pinentry::ask(program, &prompt, self.config.pinentry_timeout())
    }

    /// The token's own user PIN; `both`: an authenticator's was asked
    /// before (a `pka+pin` login), so the prompt says which this one is.
    fn token_pin(&self, both: bool, error: Option<String>) -> Result<Zeroizing<Vec<u8>>> {
        if self.config.pinentry.is_none() {
            log::warn!(
                "C_Login without a PIN: the token {:?} needs its own user PIN, and no pinentry is configured (settings: pinentry = \"/usr/bin/pinentry-tty\")",
                self.token
            );
            return fail(vendor::CKR_PICOHSM_NO_PIN_SOURCE, "no pinentry");
        }
        let description = if both {
            format!(
                "The authenticators have signed. Now enter the user PIN of the token \"{}\" itself (its own PIN, not an authenticator's).",
                self.token
            )
        } else {
            format!("Enter the user PIN of the token \"{}\".", self.token)
        };
        self.ask(pinentry::Prompt {
            title: "Pico HSM: token PIN".into(),
            description,
            prompt: "Token PIN:".into(),
            error,
        })
    }
}

impl round::PinSource for Prompter<'_> {
    fn authenticator_pin(
        &mut self,
        auth: &str,
        key: &AuthKey,
        refused: bool,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if self.config.pinentry.is_none() {
            // The authenticator decides whether it can sign without one.
            return Ok(None);
        }
        self.ask(pinentry::Prompt {
            title: "Pico HSM: authenticator PIN".into(),
            description: format!(
                "Logging in to the token \"{}\" with Public Key Authentication. Enter the PIN of the authenticator: {auth}, key \"{}\" ({}).",
                self.token,
                key.label,
                String::from_utf8_lossy(&key.chr)
            ),
            prompt: "Authenticator PIN:".into(),
            error: refused.then(|| "Wrong PIN: the authenticator refused it.".to_string()),
        })
        .map(Some)
    }

    fn asks(&self) -> bool {
        self.config.pinentry.is_some()
    }
}

/// C_Login. `pin` is `None` for C_Login(.., NULL_PTR, 0): accepted for the
/// user on a protected authentication path (settings `pinentry`,
/// `protected-authentication-path`).
pub fn login(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: Option<&[u8]>,
) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    match user_type {
        CKU_USER | CKU_SO | vendor::CKU_PICOHSM_PKA => {}
        CKU_CONTEXT_SPECIFIC => {
            return fail(
                CKR_OPERATION_NOT_INITIALIZED,
                "no key needs context-specific login",
            )
        }
        _ => return fail(CKR_USER_TYPE_INVALID, "unknown user type"),
    }
    if user_type == CKU_SO {
        let ro = with_module(|m| Ok(m.sessions.values().any(|s| s.slot == slot && !s.rw)))?;
        if ro {
            return fail(
                CKR_SESSION_READ_ONLY_EXISTS,
                "SO login with a read-only session open",
            );
        }
    }
    let (config, pcsc, reader) = with_module(|m| {
        let reader = m
            .slots
            .get(&slot)
            .map(|s| s.reader.clone())
            .unwrap_or_default();
        Ok((m.config.clone(), m.pcsc.clone(), reader))
    })?;
    let secret = match pin {
        Some(p) => Secret::Given(p),
        None if user_type != CKU_SO && config.accepts_login_without_pin() => Secret::Asked,
        None => {
            return fail(
                CKR_ARGUMENTS_BAD,
                "no PIN, and no protected authentication path",
            )
        }
    };
    on_token(slot, |t| {
        match (t.login, user_type) {
            (Login::User, CKU_USER)
            | (Login::User, vendor::CKU_PICOHSM_PKA)
            | (Login::So, CKU_SO) => return fail(CKR_USER_ALREADY_LOGGED_IN, "already logged in"),
            (Login::User, _) | (Login::So, _) => {
                return fail(
                    CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                    "the other user is logged in",
                )
            }
            _ => {}
        }
        let mut prompter = Prompter {
            config: &config,
            token: t.display_label(),
        };
        let mut say = |line: String| log::info!("slot {slot}: PKA: {line}");
        match (user_type, secret) {
            (CKU_SO, Secret::Given(pin)) => {
                let so = so_pin_bytes(pin)?;
                // Right or wrong, the SO-PIN's counter changes.
                t.info_kept = None;
                t.transport.transact(|l| {
                    Ok(Card::new(l).verify(picohsm_wire::codes::pin_ref::SO, &so)?)
                })?;
                t.login = Login::So;
            }
            (CKU_SO, Secret::Asked) => {
                return fail(CKR_ARGUMENTS_BAD, "the SO-PIN is never asked for")
            }
            (vendor::CKU_PICOHSM_PKA, secret) => {
                let mut given;
                let pins: &mut dyn round::PinSource = match secret {
                    Secret::Given(p) => {
                        given = p;
                        &mut given
                    }
                    Secret::Asked => &mut prompter,
                };
                let st = round::one_round(
                    &mut t.primary(None),
                    &config,
                    &pcsc,
                    &reader,
                    pins,
                    &mut say,
                )?;
                if !st.granted() {
                    log::info!(
                        "slot {slot}: PKA: {} of {} keys accepted, more authenticators needed",
                        st.authenticated,
                        st.required
                    );
                    return fail(vendor::CKR_PICOHSM_PKA_MORE_NEEDED, "quorum not reached");
                }
                finish_pka(t, slot)?;
            }
            (_, secret) => user_login(
                t,
                slot,
                &config,
                &pcsc,
                &reader,
                secret,
                &mut prompter,
                &mut say,
            )?,
        }
        log::info!("slot {slot}: logged in");
        Ok(())
    })
}

/// After the PKA quorum: logged in, unless the token also has a user PIN
/// not verified yet (CKR_PICOHSM_PIN_NEEDED: it unlocks the MKEK).
fn finish_pka(t: &mut Token, slot: CK_SLOT_ID) -> Result<()> {
    let needs_pin = user_pin_exists(t)?;
    if needs_pin && !t.pka.pin_verified {
        log::info!("slot {slot}: PKA granted; the token's PIN is still needed");
        return fail(vendor::CKR_PICOHSM_PIN_NEEDED, "PIN still needed");
    }
    t.login = Login::User;
    Ok(())
}

/// VERIFY of the user PIN (length checked first).
fn verify_user_pin(t: &mut Token, pin: &[u8]) -> Result<()> {
    if pin.is_empty() || pin.len() > 16 {
        return fail(CKR_PIN_LEN_RANGE, "PIN length");
    }
    t.transport
        .transact(|l| Ok(Card::new(l).verify(card::USER_PIN, pin)?))?;
    t.pka.pin_verified = true;
    Ok(())
}

/// VERIFY of the user PIN asked of the pinentry; a wrong one is asked
/// again (at most [`round::MAX_PROMPTS`] times) with the tries the card
/// has left.
fn verify_asked_pin(t: &mut Token, prompter: &Prompter<'_>, both: bool) -> Result<()> {
    let mut error = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pin = prompter.token_pin(both, error.take())?;
        match verify_user_pin(t, &pin) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(e.rv, CKR_PIN_INCORRECT | CKR_PIN_LEN_RANGE)
                    && attempt < round::MAX_PROMPTS =>
            {
                error = Some(match t_pin_state(t)? {
                    PinState::TriesLeft(n) => format!("Wrong PIN ({n} tries left)."),
                    PinState::Blocked => return fail(CKR_PIN_LOCKED, "PIN blocked"),
                    _ if e.rv == CKR_PIN_LEN_RANGE => "The PIN has 6 to 16 characters.".into(),
                    _ => "Wrong PIN.".into(),
                });
                log::warn!("C_Login: the token refused the PIN typed; asking again");
            }
            Err(e) => return Err(e),
        }
    }
}

/// C_Login(CKU_USER, secret) as the settings say (settings::LoginMode).
#[allow(clippy::too_many_arguments)]
fn user_login(
    t: &mut Token,
    slot: CK_SLOT_ID,
    config: &Config,
    pcsc: &Pcsc,
    reader: &str,
    secret: Secret<'_>,
    prompter: &mut Prompter<'_>,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    // Whether the token has PKA at all: one status APDU, only when the
    // settings do not already say plain PIN.
    let pka = match config.login {
        LoginMode::Pin => None,
        _ => t
            .transport
            .transact(|l| Ok(Card::new(l).pka_status()?))?
            .filter(|s| s.total > 0),
    };
    let mode = match (config.login, pka) {
        (LoginMode::Pin, _) | (_, None) => LoginMode::Pin,
        (LoginMode::Auto, Some(st)) => {
            let pin_exists = user_pin_exists(t)?;
            match (pin_exists, st.granted() || t.pka.granted) {
                (false, _) => LoginMode::Pka,
                (true, true) => LoginMode::Pin,
                (true, false) => LoginMode::PkaPin,
            }
        }
        (m, Some(_)) => m,
    };
    log::debug!(
        "slot {slot}: C_Login(CKU_USER) as {mode:?}{}",
        if matches!(secret, Secret::Asked) {
            ", PINs from the pinentry"
        } else {
            ""
        }
    );
    match (mode, secret) {
        (LoginMode::Pin, secret) => {
            match secret {
                Secret::Given(pin) => verify_user_pin(t, pin)?,
                Secret::Asked => verify_asked_pin(t, prompter, false)?,
            }
            if pka.is_some_and(|st| !st.granted()) && !t.pka.granted {
                log::info!("slot {slot}: PIN verified; the token also needs PKA");
                return fail(vendor::CKR_PICOHSM_PKA_MORE_NEEDED, "PKA still needed");
            }
            t.login = Login::User;
        }
        (LoginMode::Pka, secret) => {
            let mut given;
            let pins: &mut dyn round::PinSource = match secret {
                Secret::Given(p) => {
                    given = p;
                    &mut given
                }
                Secret::Asked => prompter,
            };
            let mut read = pka;
            round::until_quorum(|| {
                round::one_round(
                    &mut t.primary(read.take()),
                    config,
                    pcsc,
                    reader,
                    &mut *pins,
                    say,
                )
            })?;
            finish_pka(t, slot)?;
        }
        (LoginMode::PkaPin | LoginMode::Auto, Secret::Asked) => {
            if !t.pka.granted {
                let mut read = pka;
                round::until_quorum(|| {
                    round::one_round(
                        &mut t.primary(read.take()),
                        config,
                        pcsc,
                        reader,
                        &mut *prompter,
                        say,
                    )
                })?;
            }
            // Its own prompt: the token's PIN goes to the primary alone.
            verify_asked_pin(t, prompter, true)?;
            t.login = Login::User;
        }
        (LoginMode::PkaPin | LoginMode::Auto, Secret::Given(secret)) => {
            if t.pka.granted {
                // The quorum is in (vendor rounds): only the token's PIN
                // is left, and it goes to the primary alone.
                let pin = split_secret(secret, separator(config)).map_or(secret, |(pin, _)| pin);
                verify_user_pin(t, pin)?;
                t.login = Login::User;
                return Ok(());
            }
            let (pin, auth_pin) = pin_and_authenticator_pin(secret, config, slot)?;
            let mut read = pka;
            round::until_quorum(|| {
                round::one_round(
                    &mut t.primary(read.take()),
                    config,
                    pcsc,
                    reader,
                    &mut &auth_pin[..],
                    say,
                )
            })?;
            verify_user_pin(t, pin)?;
            t.login = Login::User;
        }
    }
    Ok(())
}

/// The separator of a `pka+pin` secret: the settings', or
/// [`crate::settings::DEFAULT_SEPARATOR`].
fn separator(config: &Config) -> &str {
    config
        .separator
        .as_deref()
        .unwrap_or(crate::settings::DEFAULT_SEPARATOR)
}

/// The token PIN and the authenticator PIN of a `pka+pin` login.
///
/// Where the token's PIN may go decides it. An authenticator named in the
/// settings (`[[authenticator]]`, a reader pattern or a PKCS#11 module) is
/// trusted by the administrator's choice: one secret may serve both. A card
/// found on its own is only a card whose ATR says SmartCard-HSM and that
/// claims a registered CHR — all public data a rogue card can copy — so it
/// never receives the token's PIN: the secret must then be split,
/// `<token PIN><separator><authenticator PIN>`, and a single secret is
/// CKR_PICOHSM_SECRETS_NOT_SPLIT before anything is sent to any card.
///
/// What a rogue card can still collect: the authenticator PIN typed for
/// it (which unlocks only that authenticator, and is useless without the
/// authenticator's key). A scheme that records authenticators (trust on
/// first use) was not chosen: everything a card shows (ATR, CHRs, device
/// chain, keys' public parts) is public and replayable, and the upstream
/// firmware has no command proving possession of a key before the PIN is
/// sent, so a record would be no better than the CHR check.
fn pin_and_authenticator_pin<'a>(
    secret: &'a [u8],
    config: &Config,
    slot: CK_SLOT_ID,
) -> Result<(&'a [u8], &'a [u8])> {
    let named = !config.authenticators.is_empty();
    match split_secret(secret, separator(config)) {
        Some(both) => Ok(both),
        None if named => Ok((secret, secret)),
        None => {
            log::warn!(
                "slot {slot}: C_Login refused: this token needs its own PIN and an authenticator's, and the authenticators are found on their own (none named in the settings), so the token's PIN may not go to them; type <token PIN>{}<authenticator PIN>, or name the authenticators in the settings",
                separator(config)
            );
            fail(
                vendor::CKR_PICOHSM_SECRETS_NOT_SPLIT,
                "one secret for a PKA + PIN login with auto-discovered authenticators",
            )
        }
    }
}

fn t_pin_state(t: &mut Token) -> Result<PinState> {
    let st = t
        .transport
        .transact(|l| Ok(Card::new(l).pin_state(card::USER_PIN)?))?;
    t.known.user_pin = Some(st != PinState::Absent);
    Ok(st)
}

/// Whether the token has a user PIN: asked of the card once per
/// connection (C_GetTokenInfo asks too), since only C_InitToken and
/// C_InitPIN change it. Public data: a wrong answer costs a refused login
/// or operation, never access, since the card checks its PIN itself.
fn user_pin_exists(t: &mut Token) -> Result<bool> {
    match t.known.user_pin {
        Some(exists) => Ok(exists),
        None => Ok(t_pin_state(t)? != PinState::Absent),
    }
}

/// `<token PIN><separator><authenticator PIN>` split at the first
/// separator (so the token PIN cannot hold it; the authenticator PIN can);
/// `None` when the secret does not contain it. Both halves borrow the
/// caller's buffer: no copy of a PIN is made.
pub fn split_secret<'a>(secret: &'a [u8], separator: &str) -> Option<(&'a [u8], &'a [u8])> {
    let sep = separator.as_bytes();
    if sep.is_empty() {
        return None;
    }
    secret
        .windows(sep.len())
        .position(|w| w == sep)
        .map(|i| (&secret[..i], &secret[i + sep.len()..]))
}

/// C_Logout.
pub fn logout(session: CK_SESSION_HANDLE) -> Result<()> {
    let (slot, _) = session_slot(session)?;
    on_token(slot, |t| {
        if t.login == Login::None {
            return fail(CKR_USER_NOT_LOGGED_IN, "not logged in");
        }
        t.logout()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_at_the_first_separator() {
        assert_eq!(
            split_secret(b"123456:654321", ":"),
            Some((&b"123456"[..], &b"654321"[..]))
        );
        assert_eq!(
            split_secret(b"12:34:56", ":"),
            Some((&b"12"[..], &b"34:56"[..]))
        );
        assert_eq!(split_secret(b"123456", ":"), None);
        assert_eq!(split_secret(b"123456", ""), None);
        assert_eq!(
            split_secret(b"ab--cd", "--"),
            Some((&b"ab"[..], &b"cd"[..]))
        );
    }

    #[test]
    fn one_secret_goes_to_named_authenticators_only() {
        let auto = Config::default();
        assert_eq!(
            pin_and_authenticator_pin(b"123456", &auto, 0)
                .unwrap_err()
                .rv,
            vendor::CKR_PICOHSM_SECRETS_NOT_SPLIT
        );
        assert_eq!(
            pin_and_authenticator_pin(b"123456:654321", &auto, 0).unwrap(),
            (&b"123456"[..], &b"654321"[..])
        );
        let named = Config {
            authenticators: vec![crate::settings::AuthenticatorSpec::SmartcardHsm {
                reader: Some("Nitrokey*".into()),
                key_label: None,
                chr: None,
            }],
            ..Config::default()
        };
        assert_eq!(
            pin_and_authenticator_pin(b"123456", &named, 0).unwrap(),
            (&b"123456"[..], &b"123456"[..])
        );
        let plus = Config {
            separator: Some("+".into()),
            ..Config::default()
        };
        assert_eq!(
            pin_and_authenticator_pin(b"1:2+3", &plus, 0).unwrap(),
            (&b"1:2"[..], &b"3"[..])
        );
    }
}
