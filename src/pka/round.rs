//! One PKA round on the primary (docs/protocol.md §6.7), on the token's
//! own connection and never with a SELECT (which would clear the card's
//! challenge and PKA state):
//!
//! 1. PKA status and the registered keys (`80 54 00 00`, `80 54 02 i`),
//!    and the primary's device certificate chain (EF 2F02), verified up to
//!    a trusted root ([`crate::pka::trust`]) before anything is signed for
//!    its name;
//! 2. an authenticator holding a registered key not yet accepted in this
//!    round, unlocked with its own PIN — before the primary is touched
//!    again, so a wrong authenticator PIN changes nothing on the primary;
//! 3. the challenge: GET CHALLENGE (32 bytes) for the first key of a round,
//!    the same challenge for the next ones (a new GET CHALLENGE resets the
//!    keys already accepted);
//! 4. the authenticator's signature of T = device name ‖ challenge, the
//!    name exactly as the card stores it (the raw CHR bytes);
//! 5. MSE SET AT with the key's CHR, EXTERNAL AUTHENTICATE, status again.
//!
//! Steps 3-5 run in one PC/SC transaction, so no other application's APDU
//! comes between the challenge and its answer.

use crate::card::read_cache::Cached;
use crate::card::Card;
use crate::card::PkaStatus as Status;
use crate::error::{Error, Result};
use crate::pka::authenticator::{candidates, AuthKey, Authenticator};
use crate::pka::trust;
use crate::settings::Config;
use crate::transport::pcsc::{Pcsc, PcscTransport};
use crate::transport::{Link, Transport};
use crate::vendor;
use zeroize::Zeroizing;

/// The primary token as a round needs it: its connection, the login's
/// progress and what is known of the card's public data, kept by whoever
/// owns the token. The device name the authenticator signs comes from the
/// card's own chain (EF 2F02), verified up to a trusted root, never from
/// the caller.
pub struct Primary<'a> {
    /// The primary's own connection (never a SELECT: it would end the
    /// login).
    pub transport: &'a mut Cached<PcscTransport>,
    /// The login in progress.
    pub progress: &'a mut Progress,
    /// Public data of the card read before, for this connection.
    pub known: &'a mut Known,
    /// The PKA status the caller read just before the round (in the same
    /// login), so the round does not ask for it again.
    pub status: Option<Status>,
}

/// The registered CHRs of a primary and the status they were read under.
#[derive(Debug, Clone)]
pub struct RegisteredNames {
    /// (total, missing) of the PKA status.
    pub under: (u8, u8),
    /// The CHRs, one per registered slot.
    pub chrs: Vec<Vec<u8>>,
}

/// Public data of a primary that a PKA login reads, kept for the token's
/// connection (the token goes, and this with it, when the card changes):
/// nothing in it is secret or decides anything, since the card checks
/// every signature itself. Kept so that a later login sends only the
/// status, GET CHALLENGE, MSE SET AT and EXTERNAL AUTHENTICATE.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// EF 2F02 as read when the token was connected, until verified.
    pub chain: Option<Vec<u8>>,
    /// The device name of the card's chain, verified up to a trusted root
    /// (the settings are the module's, fixed while it is initialised).
    pub verified_name: Option<Vec<u8>>,
    /// The registered CHRs, with the (total, missing) of the status they
    /// were read under: a registration changes `missing`, a new scheme
    /// `total`. Dropped after any failed round.
    pub registered: Option<RegisteredNames>,
    /// Whether the token has a user PIN (changes only with C_InitToken,
    /// C_InitPIN, or INITIALIZE by another program).
    pub user_pin: Option<bool>,
}

/// The length of the challenge asked of the primary: 32 bytes, as many as
/// the firmware keeps (docs/protocol.md §6.7); a short challenge would let
/// recorded signatures be replayed.
pub const CHALLENGE_LEN: usize = 32;

/// What the module remembers of a PKA login in progress on a token.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The challenge of the round in progress.
    pub challenge: Option<Vec<u8>>,
    /// The card granted the PKA part (quorum reached).
    pub granted: bool,
    /// The user PIN was verified (it unlocks the MKEK on PKA + PIN tokens).
    pub pin_verified: bool,
}

/// The PKA status of the card behind `l` (CKR_PICOHSM_PKA_NOT_CONFIGURED
/// without PKA).
fn configured_status(l: &mut dyn Link) -> Result<Status> {
    Card::new(l)
        .pka_status()?
        .filter(|s| s.total > 0)
        .ok_or(Error::new(
            vendor::CKR_PICOHSM_PKA_NOT_CONFIGURED,
            "the token has no PKA",
        ))
}

/// The token's PKA status (CKR_PICOHSM_PKA_NOT_CONFIGURED without PKA).
pub fn status(p: &mut Primary<'_>) -> Result<Status> {
    p.transport.transact(configured_status)
}

/// How many times a PIN source that can ask again ([`PinSource::asks`])
/// is asked for an authenticator's PIN in one round: each refused PIN
/// costs a try on that authenticator, as gpg-agent's three prompts do.
pub const MAX_PROMPTS: usize = 3;

/// Where a round gets an authenticator's PIN.
pub trait PinSource {
    /// The PIN that unlocks `auth` (its name) for `key`; `None`: unlock it
    /// without one. `refused` is set when the previous PIN was refused.
    fn authenticator_pin(
        &mut self,
        auth: &str,
        key: &AuthKey,
        refused: bool,
    ) -> Result<Option<Zeroizing<Vec<u8>>>>;

    /// Whether it asks someone (a pinentry), so a refused PIN may be asked
    /// again; a PIN the application gave is not retried.
    fn asks(&self) -> bool {
        false
    }
}

/// The application's secret: the same PIN for every authenticator.
impl PinSource for &[u8] {
    fn authenticator_pin(
        &mut self,
        _auth: &str,
        _key: &AuthKey,
        _refused: bool,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(Some(Zeroizing::new(self.to_vec())))
    }
}

/// Unlocks `auth` for `key` with PINs from `pins`, asking again (at most
/// [`MAX_PROMPTS`] times) while the authenticator refuses a PIN that
/// someone typed.
fn unlock(auth: &mut dyn Authenticator, key: &AuthKey, pins: &mut dyn PinSource) -> Result<()> {
    let mut refused = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pin = pins.authenticator_pin(&auth.name(), key, refused)?;
        match auth.unlock(key, pin.as_deref().map(|p| &p[..])) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.rv == vendor::CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT
                    && pin.is_some()
                    && pins.asks()
                    && attempt < MAX_PROMPTS =>
            {
                log::warn!("PKA login: {} refused its PIN; asking again", auth.name());
                refused = true;
            }
            Err(e) => {
                // The reason (a refused PIN, a missing card) is what the
                // user acts on; the error carries no secret.
                log::warn!("PKA login: {} was not unlocked: {e}", auth.name());
                return Err(e);
            }
        }
    }
}

/// Runs one round: one more authenticator's key accepted. Returns the
/// status after it. `say` hears each step, in words (no secrets). After a
/// failed round the registered keys are read again next time (one may
/// have been replaced by another program).
pub fn one_round(
    p: &mut Primary<'_>,
    config: &Config,
    pcsc: &Pcsc,
    reader: &str,
    pins: &mut dyn PinSource,
    say: &mut dyn FnMut(String),
) -> Result<Status> {
    let r = round(p, config, pcsc, reader, pins, say);
    if r.is_err() {
        p.known.registered = None;
    }
    r
}

fn round(
    p: &mut Primary<'_>,
    config: &Config,
    pcsc: &Pcsc,
    reader: &str,
    pins: &mut dyn PinSource,
    say: &mut dyn FnMut(String),
) -> Result<Status> {
    let given = p.status.take();
    let known = &mut *p.known;
    let (st, registered, chain) = p.transport.transact(|l| {
        let st = match given {
            Some(st) if st.total > 0 => st,
            _ => configured_status(l)?,
        };
        // Which keys are accepted is the card's state of this challenge:
        // the cached names serve only while none is.
        let registered: Vec<(Vec<u8>, bool)> = match &known.registered {
            Some(names) if names.under == (st.total, st.missing) && st.authenticated == 0 => {
                names.chrs.iter().map(|c| (c.clone(), false)).collect()
            }
            _ => {
                let reg = Card::new(l).pka_registered(st.total)?;
                known.registered = Some(RegisteredNames {
                    under: (st.total, st.missing),
                    chrs: reg.iter().map(|r| r.chr.clone()).collect(),
                });
                reg.into_iter().map(|r| (r.chr, r.authenticated)).collect()
            }
        };
        let chain = match (&known.verified_name, known.chain.take()) {
            (Some(_), _) => None,
            (None, Some(chain)) => Some(chain),
            (None, None) => Some(Card::new(l).device_chain()?),
        };
        Ok((st, registered, chain))
    })?;
    let pending: Vec<Vec<u8>> = registered
        .iter()
        .filter(|(_, authenticated)| !authenticated)
        .map(|(chr, _)| chr.clone())
        .collect();
    if registered.is_empty() {
        log::warn!("PKA login: no public key is registered on this token yet");
        return Err(Error::new(
            vendor::CKR_PICOHSM_PKA_NOT_CONFIGURED,
            "no key registered",
        ));
    }
    // Before any authenticator is touched: nothing is signed, and no
    // authenticator PIN is sent, for a device whose chain does not verify.
    let device_name = match (chain, &p.known.verified_name) {
        (Some(chain), _) => {
            let name = trust::verified_device_name(&chain, config, &format!("{reader:?}"))?;
            p.known.verified_name = Some(name.clone());
            name
        }
        (None, name) => name.clone().ok_or(Error::new(
            vendor::CKR_PICOHSM_DEVICE_UNTRUSTED,
            "no verified device name",
        ))?,
    };
    let mut found = candidates(config, pcsc, reader)?;
    if found.is_empty() {
        log::warn!("PKA login: no authenticator token is connected");
        return Err(Error::new(
            vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING,
            "no authenticator",
        ));
    }
    let mut tried: Vec<String> = Vec::new();
    let mut challenge = p
        .progress
        .challenge
        .clone()
        .filter(|_| st.authenticated > 0);
    // Names are not unique across devices (OpenSC names every key
    // `<serial>00001`): a key of a pending name is tried, and when the
    // primary refuses its signature, the next key of a pending name.
    for mut auth in found.drain(..) {
        for key in pending_keys(&mut *auth, &pending) {
            let what = format!(
                "{} key {:?} ({})",
                auth.name(),
                key.label,
                String::from_utf8_lossy(&key.chr)
            );
            say(format!(
                "authenticator: {}, key {:?} registered as {}",
                auth.name(),
                key.label,
                String::from_utf8_lossy(&key.chr)
            ));
            unlock(&mut *auth, &key, pins)?;
            let r = authenticate(
                p,
                &device_name,
                &mut *auth,
                &key,
                challenge.clone(),
                st,
                say,
            );
            auth.lock();
            match r {
                Ok((c, after)) => {
                    if !tried.is_empty() {
                        log::warn!(
                            "PKA login: accepted {what} after the primary refused {}",
                            tried.join(", ")
                        );
                    }
                    p.progress.challenge = Some(c);
                    p.progress.granted = after.granted();
                    say(format!(
                        "status: {} authenticated public key(s) in {} of {} scheme{}",
                        after.authenticated,
                        after.required,
                        after.total,
                        if after.granted() { ": granted" } else { "" }
                    ));
                    return Ok(after);
                }
                Err(e) if e.rv == vendor::CKR_PICOHSM_SIGNATURE_REFUSED => {
                    log::warn!("PKA login: the primary refused the signature of {what}; trying the next key of a pending name");
                    say(format!("refused: {what}"));
                    tried.push(what);
                    // A refused signature may have used the challenge up;
                    // a new one costs nothing while no key of the round is
                    // accepted yet.
                    if st.authenticated == 0 {
                        challenge = None;
                    }
                }
                Err(e) => {
                    log::warn!(
                        "PKA login with {} failed: {} ({:#x})",
                        auth.name(),
                        e.origin,
                        e.rv
                    );
                    return Err(e);
                }
            }
        }
    }
    if tried.is_empty() {
        log::warn!(
            "PKA login: no connected authenticator holds a key registered on this token and not yet accepted"
        );
        return Err(Error::new(
            vendor::CKR_PICOHSM_KEY_NOT_REGISTERED,
            "no registered key on the authenticators",
        ));
    }
    log::warn!(
        "PKA login: the primary refused every key of a registered name: {}",
        tried.join(", ")
    );
    Err(Error::new(
        vendor::CKR_PICOHSM_SIGNATURE_REFUSED,
        "the token refused the authenticator's signature",
    ))
}

/// One key's turn, in one PC/SC transaction: the challenge (`challenge`,
/// or a new one from the primary), the key's signature of device name ‖
/// challenge, MSE SET AT and EXTERNAL AUTHENTICATE; the challenge used and
/// the status after.
fn authenticate(
    p: &mut Primary<'_>,
    device_name: &[u8],
    auth: &mut dyn Authenticator,
    key: &AuthKey,
    challenge: Option<Vec<u8>>,
    st: Status,
    say: &mut dyn FnMut(String),
) -> Result<(Vec<u8>, Status)> {
    let mut said = Vec::new();
    let r = p.transport.transact(|l| {
        // A new challenge resets the keys the card accepted.
        let before = if challenge.is_some() {
            st.authenticated
        } else {
            0
        };
        let challenge = match challenge {
            Some(c) => {
                said.push("challenge: the round's own, again".to_string());
                c
            }
            None => {
                let c = Card::new(l).pka_challenge(CHALLENGE_LEN)?;
                said.push(format!("challenge: {} bytes from the token", c.len()));
                c
            }
        };
        let tbs = to_be_signed(device_name, &challenge);
        let sig = auth.sign(key, &tbs)?;
        said.push(format!("signature: {} bytes", sig.len()));
        Card::new(l).select_pka_key(&key.chr)?;
        said.push("MSE SET AT: key selected".to_string());
        Card::new(l).external_authenticate(&sig)?;
        said.push("EXTERNAL AUTHENTICATE: accepted".to_string());
        // The card's 9000 is this key accepted: when it was the last one
        // the quorum needed, the card has granted the login, and asking
        // for the status again would only repeat that.
        let after = if st.required.saturating_sub(before) == 1 {
            Status {
                authenticated: before + 1,
                ..st
            }
        } else {
            Card::new(l).pka_status()?.unwrap_or(st)
        };
        Ok((challenge, after))
    });
    for s in said {
        say(s);
    }
    r
}

/// T = device name ‖ challenge (docs/protocol.md §6.7): the name's raw
/// bytes, as the card compares them, whatever they are.
pub fn to_be_signed(device_name: &[u8], challenge: &[u8]) -> Vec<u8> {
    [device_name, challenge].concat()
}

/// The keys of `auth` whose name is pending (none if they cannot be
/// listed). Authenticators are asked one at a time, so a later one is not
/// touched when an earlier key is accepted.
fn pending_keys(auth: &mut dyn Authenticator, pending: &[Vec<u8>]) -> Vec<AuthKey> {
    match auth.keys() {
        Ok(keys) => keys
            .into_iter()
            .filter(|k| pending.contains(&k.chr))
            .collect(),
        Err(e) => {
            log::warn!("{}: cannot list keys: {}", auth.name(), e.origin);
            Vec::new()
        }
    }
}

/// Rounds until the quorum (C_Login(CKU_USER) on a `pka` / `pka+pin`
/// token): `round` runs [`one_round`] with the next authenticator found.
/// Once a round has counted, running out of authenticators is
/// CKR_PICOHSM_PKA_MORE_NEEDED.
pub fn until_quorum(mut round: impl FnMut() -> Result<Status>) -> Result<Status> {
    let mut progressed = false;
    loop {
        match round() {
            Ok(st) if st.granted() => return Ok(st),
            Ok(_) => progressed = true,
            Err(e)
                if progressed
                    && matches!(
                        e.rv,
                        vendor::CKR_PICOHSM_KEY_NOT_REGISTERED
                            | vendor::CKR_PICOHSM_AUTHENTICATOR_MISSING
                    ) =>
            {
                log::warn!("PKA login: the quorum needs more authenticators than are connected");
                return Err(Error::new(
                    vendor::CKR_PICOHSM_PKA_MORE_NEEDED,
                    "more authenticators needed",
                ));
            }
            Err(e) => return Err(e),
        }
    }
}
