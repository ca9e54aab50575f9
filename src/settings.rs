//! The module's settings: what C_Login(CKU_USER, secret) does on a PKA
//! token, and which authenticators sign the challenges.
//!
//! Where they come from, first found wins for the file:
//! 1. `config=/path` in the C_Initialize reserved string (p11-kit passes a
//!    module file's `x-init-reserved` there);
//! 2. the file named by `PICOHSM_PKCS11_CONFIG`;
//! 3. `$XDG_CONFIG_HOME/picohsm-pkcs11/config.toml` (`~/.config/...` when
//!    XDG_CONFIG_HOME is unset);
//! 4. `/etc/picohsm-pkcs11/config.toml`.
//!
//! In a privileged process (the kernel's AT_SECURE flag: set-uid, set-gid
//! or file capabilities, as when a PAM stack loads the module into sudo)
//! items 2 and 3 are skipped: the environment belongs to the unprivileged
//! caller, and a settings file names libraries to load as authenticator
//! modules. Only the reserved string and `/etc/...` count there.
//!
//! A settings file is refused, and C_Initialize fails with
//! CKR_PICOHSM_SETTINGS_INSECURE and a log line naming the file and the
//! reason, when anyone but its reader could change it: the file or its
//! directory writable by group or others (a directory with the sticky bit,
//! such as `/tmp`, is accepted: there only a file's owner may remove or
//! rename it), or either owned by a user other than the effective user or
//! root. OpenSSH's `StrictModes` applies the same rule to its files.
//!
//! No file is fine: the defaults (`login = "auto"`, authenticators found on
//! their own) need none. The other `key=value` items of the reserved string
//! (`login=pka+pin`, `separator=:`, `authenticator-module=/path/lib.so`,
//! `authenticator-reader=<glob>`, `device-roots=/a.cvc,/b.cvc`,
//! `allow-test-chains=true`, `pinentry=/usr/bin/pinentry-tty`,
//! `protected-authentication-path=true`, `pinentry-timeout=60`; separated
//! by `;`, or by blanks when there is no `;`)
//! override the file. A file that exists but does not parse fails
//! C_Initialize, with a log line naming the file and the problem: a login
//! that silently ignores its settings would be worse.
//!
//! ```toml
//! login = "pka+pin"      # auto | pin | pka | pka+pin
//! separator = ":"        # pka+pin: "<token PIN>:<authenticator PIN>"
//! device-roots = ["/etc/picohsm-pkcs11/ESPICOHSMCA00001.cvc"]
//! allow-test-chains = false  # true: picohsm-vcard's test PKI, self-signed
//! pinentry = "/usr/bin/pinentry-tty"  # PINs for C_Login(CKU_USER, NULL)
//! protected-authentication-path = true  # default: on with a pinentry
//! pinentry-timeout = 60  # seconds before the prompt is cancelled
//!
//! [[authenticator]]      # another SmartCard-HSM / Pico HSM over PC/SC
//! type = "smartcard-hsm"
//! reader = "Nitrokey*"   # glob, or a part of the PC/SC reader name
//! key-label = "Authentication"
//!
//! [[authenticator]]      # a key in any PKCS#11 token
//! type = "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token-label = "auth"
//! key-label = "Authentication"
//! ```

use std::path::{Path, PathBuf};

use cryptoki_sys::*;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What C_Login(CKU_USER, secret) does on a token with PKA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LoginMode {
    /// What the token requires: `pin` without PKA, `pka` with PKA and no
    /// user PIN, `pka+pin` with both (and `pin` once the PKA quorum is in).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// VERIFY of the token's PIN only.
    #[serde(rename = "pin")]
    Pin,
    /// The secret is the authenticator's PIN; PKA rounds until the quorum.
    #[serde(rename = "pka")]
    Pka,
    /// PKA, then VERIFY: `<token PIN><separator><authenticator PIN>`, or
    /// one secret for both when the authenticators are named in the
    /// settings (an auto-discovered card never receives the token's PIN).
    #[serde(rename = "pka+pin")]
    PkaPin,
}

impl LoginMode {
    fn parse(s: &str) -> Option<LoginMode> {
        Some(match s {
            "auto" => LoginMode::Auto,
            "pin" => LoginMode::Pin,
            "pka" => LoginMode::Pka,
            "pka+pin" => LoginMode::PkaPin,
            _ => return None,
        })
    }
}

/// One authenticator, as the config declares it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthenticatorSpec {
    /// A SmartCard-HSM / Pico HSM in a PC/SC reader, signing with its SIGN
    /// command after a VERIFY of its own PIN.
    SmartcardHsm {
        /// Glob on the reader name (any reader but the primary's if unset).
        #[serde(default)]
        reader: Option<String>,
        /// Only the key with this label (its PrKD label).
        #[serde(default, rename = "key-label")]
        key_label: Option<String>,
        /// Only the key with this CHR.
        #[serde(default)]
        chr: Option<String>,
    },
    /// A key in a PKCS#11 token, signing with CKM_ECDSA (or
    /// CKM_SHA256_RSA_PKCS) after C_Login(CKU_USER).
    Pkcs11 {
        /// The module's path.
        module: PathBuf,
        /// Only the token with this label.
        #[serde(default, rename = "token-label")]
        token_label: Option<String>,
        /// Only the key with this CKA_LABEL.
        #[serde(default, rename = "key-label")]
        key_label: Option<String>,
        /// Only the key with this CKA_ID (hex).
        #[serde(default, rename = "key-id")]
        key_id: Option<String>,
    },
}

/// The settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What C_Login(CKU_USER) does on a PKA token.
    #[serde(default)]
    pub login: LoginMode,
    /// Splits a `pka+pin` secret into token PIN and authenticator PIN
    /// ([`DEFAULT_SEPARATOR`] when unset).
    #[serde(default)]
    pub separator: Option<String>,
    /// CV certificates (files) of the roots a primary's device chain
    /// (EF 2F02) must lead to before the module signs its name in a PKA
    /// login (docs/protocol.md §3.3).
    #[serde(default, rename = "device-roots")]
    pub device_roots: Vec<PathBuf>,
    /// Also trust picohsm-vcard's test PKI (whose private keys are public)
    /// and a single self-signed device certificate (a fresh upstream
    /// emulator's): for tests and demonstrations only.
    #[serde(default, rename = "allow-test-chains")]
    pub allow_test_chains: bool,
    /// A pinentry program (`/usr/bin/pinentry-tty`, `pinentry-gnome3`, ...)
    /// that asks for the PINs of a C_Login without one (a protected
    /// authentication path, [`Config::announces_protected_path`]).
    #[serde(default)]
    pub pinentry: Option<PathBuf>,
    /// Whether tokens announce CKF_PROTECTED_AUTHENTICATION_PATH, so that
    /// applications call C_Login(CKU_USER, NULL) and ask for no PIN. Unset:
    /// on when `pinentry` is set.
    #[serde(default, rename = "protected-authentication-path")]
    pub protected_authentication_path: Option<bool>,
    /// Seconds a pinentry may take before the login is cancelled
    /// ([`crate::pka::pinentry::DEFAULT_TIMEOUT`] when unset).
    #[serde(default, rename = "pinentry-timeout")]
    pub pinentry_timeout: Option<u64>,
    /// Declared authenticators; none = find them (other SmartCard-HSMs
    /// holding a registered key).
    #[serde(default, rename = "authenticator")]
    pub authenticators: Vec<AuthenticatorSpec>,
    /// Where the settings were read from (for log lines).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The separator of `<token PIN><separator><authenticator PIN>` when the
/// settings name none. A colon: no PIN pad or keyboard layout lacks it,
/// and the card's PIN format (docs/protocol.md §4) never needs it.
pub const DEFAULT_SEPARATOR: &str = ":";

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(bad(format!(
            "x-init-reserved: {key}={v} is not true or false"
        ))),
    }
}

fn bad(msg: String) -> Error {
    log::error!("{msg}");
    Error::new(CKR_ARGUMENTS_BAD, "bad module settings")
}

/// Whether this process runs with the kernel's AT_SECURE flag (set-uid,
/// set-gid, file capabilities): then its environment comes from a less
/// privileged caller and must not choose files.
pub fn secure_execution() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: getauxval reads the process's auxiliary vector; it has no
    // preconditions and returns 0 for an absent entry.
    let v = unsafe { libc::getauxval(libc::AT_SECURE) };
    v != 0
}

fn effective_uid() -> u32 {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe {
        libc::geteuid()
    }
}

/// Why a settings file (or its directory) could be changed by someone
/// other than the effective user or root, if it could: `meta` is the
/// file's or the directory's metadata, `euid` the effective user.
fn unsafe_because(meta: &std::fs::Metadata, euid: u32, dir: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let what = if dir { "its directory" } else { "the file" };
    if meta.uid() != euid && meta.uid() != 0 {
        return Some(format!(
            "{what} is owned by uid {}, neither this user ({euid}) nor root",
            meta.uid()
        ));
    }
    let writable = meta.mode() & 0o022;
    // In a sticky directory only a file's owner removes or renames it.
    let sticky = dir && meta.mode() & 0o1000 != 0;
    if writable != 0 && !sticky {
        let who = if writable & 0o002 != 0 {
            "others"
        } else {
            "its group"
        };
        return Some(format!("{what} is writable by {who}"));
    }
    None
}

/// Refuses a settings file anyone but the effective user or root could
/// change (the module doc says which): CKR_PICOHSM_SETTINGS_INSECURE, with
/// the file and the reason in the log and on stderr.
pub fn check_file_safety(path: &Path) -> Result<()> {
    check_file_safety_as(path, effective_uid())
}

fn check_file_safety_as(path: &Path, euid: u32) -> Result<()> {
    let refuse = |why: String| {
        let line = format!(
            "settings {} refused: {why} (make it writable by its owner only)",
            path.display()
        );
        log::error!("{line}");
        eprintln!("picohsm-pkcs11: {line}");
        Error::new(
            crate::vendor::CKR_PICOHSM_SETTINGS_INSECURE,
            "settings file writable by others",
        )
    };
    // The file as it really is: a link elsewhere is judged by its target
    // and the target's directory.
    let real =
        std::fs::canonicalize(path).map_err(|e| bad(format!("config {}: {e}", path.display())))?;
    let meta =
        std::fs::metadata(&real).map_err(|e| bad(format!("config {}: {e}", path.display())))?;
    if let Some(why) = unsafe_because(&meta, euid, false) {
        return Err(refuse(why));
    }
    if let Some(dir) = real.parent() {
        let dmeta =
            std::fs::metadata(dir).map_err(|e| bad(format!("config {}: {e}", dir.display())))?;
        if let Some(why) = unsafe_because(&dmeta, euid, true) {
            return Err(refuse(why));
        }
    }
    Ok(())
}

impl Config {
    /// Parses a TOML document.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads one file (refused when others can write it,
    /// [`check_file_safety`]).
    pub fn read(path: &Path) -> Result<Config> {
        check_file_safety(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("config {}: {e}", path.display())))?;
        let mut c =
            Config::parse(&text).map_err(|e| bad(format!("config {}: {e}", path.display())))?;
        c.source = Some(path.to_path_buf());
        Ok(c)
    }

    /// The default file locations, in order (items 2-4 of the module doc),
    /// and whether the first is PICOHSM_PKCS11_CONFIG's.
    pub fn default_paths() -> Vec<PathBuf> {
        Config::paths_from_env(secure_execution(), &|k| std::env::var_os(k)).0
    }

    /// [`Config::default_paths`] with the AT_SECURE flag and the
    /// environment given: under AT_SECURE only the system file.
    fn paths_from_env(
        secure: bool,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> (Vec<PathBuf>, bool) {
        let system = PathBuf::from("/etc/picohsm-pkcs11/config.toml");
        if secure {
            if env("PICOHSM_PKCS11_CONFIG").is_some() {
                log::warn!("privileged process (AT_SECURE): PICOHSM_PKCS11_CONFIG, XDG_CONFIG_HOME and HOME are ignored");
            }
            return (vec![system], false);
        }
        let mut v = Vec::new();
        let mut from_env = false;
        if let Some(p) = env("PICOHSM_PKCS11_CONFIG").filter(|p| !p.is_empty()) {
            v.push(PathBuf::from(p));
            from_env = true;
        }
        let xdg = env("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(x) = xdg {
            v.push(x.join("picohsm-pkcs11").join("config.toml"));
        }
        v.push(system);
        (v, from_env)
    }

    /// The settings for C_Initialize: `reserved` is its pReserved string,
    /// if any. A PICOHSM_PKCS11_CONFIG that names a missing file is an
    /// error (the user asked for it); a missing default file is not.
    pub fn load(reserved: Option<&str>) -> Result<Config> {
        let items = parse_reserved(reserved.unwrap_or(""))?;
        let explicit = items
            .iter()
            .find(|(k, _)| k == "config")
            .map(|(_, v)| PathBuf::from(v));
        let mut c = match explicit {
            Some(p) => Config::read(&p)?,
            None => {
                let mut found = Config::default();
                let (paths, env_named) =
                    Config::paths_from_env(secure_execution(), &|k| std::env::var_os(k));
                for (i, p) in paths.into_iter().enumerate() {
                    let from_env = i == 0 && env_named;
                    if p.exists() || from_env {
                        found = Config::read(&p)?;
                        break;
                    }
                }
                found
            }
        };
        for (k, v) in items {
            match k.as_str() {
                "config" => {}
                "login" => {
                    c.login = LoginMode::parse(&v).ok_or_else(|| {
                        bad(format!(
                            "x-init-reserved: login={v} is not auto, pin, pka or pka+pin"
                        ))
                    })?
                }
                "separator" => c.separator = Some(v),
                "authenticator-module" => c.authenticators.push(AuthenticatorSpec::Pkcs11 {
                    module: PathBuf::from(v),
                    token_label: None,
                    key_label: None,
                    key_id: None,
                }),
                "authenticator-reader" => c.authenticators.push(AuthenticatorSpec::SmartcardHsm {
                    reader: Some(v),
                    key_label: None,
                    chr: None,
                }),
                "device-roots" => c
                    .device_roots
                    .extend(v.split(',').filter(|p| !p.is_empty()).map(PathBuf::from)),
                "allow-test-chains" => c.allow_test_chains = parse_bool(&k, &v)?,
                "pinentry" => c.pinentry = Some(PathBuf::from(v)),
                "protected-authentication-path" => {
                    c.protected_authentication_path = Some(parse_bool(&k, &v)?)
                }
                "pinentry-timeout" => {
                    c.pinentry_timeout = Some(v.parse().map_err(|_| {
                        bad(format!(
                            "x-init-reserved: pinentry-timeout={v} is not a number of seconds"
                        ))
                    })?)
                }
                other => return Err(bad(format!("x-init-reserved: unknown setting {other:?}"))),
            }
        }
        if c.separator.as_deref() == Some("") {
            return Err(bad("the separator must not be empty".into()));
        }
        if c.pinentry_timeout == Some(0) {
            return Err(bad("pinentry-timeout must be at least 1 second".into()));
        }
        if let Some(p) = &c.pinentry {
            if !p.is_absolute() {
                return Err(bad(format!(
                    "pinentry = {:?}: give the program's absolute path",
                    p.display()
                )));
            }
        }
        Ok(c)
    }

    /// Whether C_Login(CKU_USER, NULL) is accepted: a pinentry asks for
    /// the PINs, or the settings ask for a protected path (then only
    /// logins that need no PIN succeed).
    pub fn accepts_login_without_pin(&self) -> bool {
        self.pinentry.is_some() || self.protected_authentication_path == Some(true)
    }

    /// Whether a token announces CKF_PROTECTED_AUTHENTICATION_PATH:
    /// `needs_own_pin` says whether it has a user PIN (not PKA-only).
    /// With a pinentry, every token does (unless the settings turn it
    /// off): the pinentry asks for whatever PIN the login needs. Without
    /// one, only a token the module can log in with no PIN at all (PKA
    /// only, its authenticator needing none): a PIN-only token keeps the
    /// applications' own PIN prompt, which is the only way its PIN can
    /// come.
    pub fn announces_protected_path(&self, needs_own_pin: bool) -> bool {
        match self.protected_authentication_path {
            Some(false) => false,
            _ if self.pinentry.is_some() => true,
            Some(true) => !needs_own_pin,
            None => false,
        }
    }

    /// How long a pinentry may take.
    pub fn pinentry_timeout(&self) -> std::time::Duration {
        self.pinentry_timeout.map_or(
            crate::pka::pinentry::DEFAULT_TIMEOUT,
            std::time::Duration::from_secs,
        )
    }
}

/// `key=value` items separated by `;` (then a value may hold blanks, as
/// reader names do) or, without any `;`, by blanks; a lone path is
/// `config=`.
fn parse_reserved(s: &str) -> Result<Vec<(String, String)>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.starts_with('/') && !s.contains('=') {
        return Ok(vec![("config".into(), s.into())]);
    }
    let semicolons = s.contains(';');
    s.split(|c: char| {
        if semicolons {
            c == ';'
        } else {
            c.is_whitespace()
        }
    })
    .filter(|i| !i.is_empty())
    .map(|i| {
        i.split_once('=')
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .ok_or_else(|| bad(format!("x-init-reserved: {i:?} is not key=value")))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = Config::parse(
            r#"
login = "pka+pin"
separator = ":"
[[authenticator]]
type = "smartcard-hsm"
reader = "Virtual PCD*"
key-label = "Authentication"
[[authenticator]]
type = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "auth"
key-id = "01"
"#,
        )
        .unwrap();
        assert_eq!(c.login, LoginMode::PkaPin);
        assert_eq!(c.separator.as_deref(), Some(":"));
        assert_eq!(c.authenticators.len(), 2);
        assert!(matches!(
            &c.authenticators[1],
            AuthenticatorSpec::Pkcs11 { key_id: Some(id), .. } if id == "01"
        ));
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::parse("login = \"pkapin\"").unwrap_err();
        assert!(e.contains("pkapin"), "{e}");
        let e = Config::parse("[[authenticator]]\ntype = \"pkcs11\"\nmodul = \"/x\"").unwrap_err();
        assert!(e.contains("modul"), "{e}");
        assert!(Config::parse("").unwrap() == Config::default());
    }

    #[test]
    fn reserved_string_items_override() {
        let items = parse_reserved("login=pka separator=: authenticator-module=/x.so").unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(parse_reserved("/etc/p.toml").unwrap()[0].0, "config");
        let r = parse_reserved("login=pka; authenticator-reader=Virtual PCD 00 01").unwrap();
        assert_eq!(
            r[1],
            ("authenticator-reader".into(), "Virtual PCD 00 01".into())
        );
        assert_eq!(
            parse_reserved("nonsense").unwrap_err().rv,
            CKR_ARGUMENTS_BAD
        );
        let dir = std::env::temp_dir().join(format!("picohsm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "login = \"pin\"\nseparator = \"+\"").unwrap();
        let c = Config::load(Some(&format!("config={} login=pka", f.display()))).unwrap();
        assert_eq!(c.login, LoginMode::Pka);
        assert_eq!(c.separator.as_deref(), Some("+"));
        assert_eq!(c.source.as_deref(), Some(f.as_path()));
        assert_eq!(
            Config::load(Some("login=sometimes")).unwrap_err().rv,
            CKR_ARGUMENTS_BAD
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pinentry_announces_the_protected_path() {
        let none = Config::default();
        assert!(!none.accepts_login_without_pin());
        assert!(!none.announces_protected_path(true));
        assert!(!none.announces_protected_path(false));
        let tty = Config::parse("pinentry = \"/usr/bin/pinentry-tty\"").unwrap();
        assert!(tty.accepts_login_without_pin());
        assert!(tty.announces_protected_path(true));
        assert!(tty.announces_protected_path(false));
        assert_eq!(
            tty.pinentry_timeout(),
            crate::pka::pinentry::DEFAULT_TIMEOUT
        );
        // Without a pinentry only a token with no PIN of its own: a
        // PIN-only token keeps the application's own prompt.
        let bare = Config::parse("protected-authentication-path = true").unwrap();
        assert!(bare.accepts_login_without_pin());
        assert!(!bare.announces_protected_path(true));
        assert!(bare.announces_protected_path(false));
        let off = Config::parse(
            "pinentry = \"/usr/bin/pinentry-tty\"\nprotected-authentication-path = false\npinentry-timeout = 5",
        )
        .unwrap();
        assert!(!off.announces_protected_path(false));
        assert_eq!(off.pinentry_timeout(), std::time::Duration::from_secs(5));
        let r = Config::load(Some(
            "pinentry=/usr/bin/pinentry-tty protected-authentication-path=false pinentry-timeout=9",
        ))
        .unwrap();
        assert_eq!(
            r.pinentry.as_deref(),
            Some(Path::new("/usr/bin/pinentry-tty"))
        );
        assert_eq!(r.protected_authentication_path, Some(false));
        assert_eq!(r.pinentry_timeout, Some(9));
        for bad in [
            "pinentry=pinentry-tty",
            "pinentry-timeout=0",
            "pinentry-timeout=soon",
            "protected-authentication-path=maybe",
        ] {
            assert_eq!(
                Config::load(Some(bad)).unwrap_err().rv,
                CKR_ARGUMENTS_BAD,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_environment_is_ignored_under_at_secure() {
        let env = |k: &str| match k {
            "PICOHSM_PKCS11_CONFIG" => Some("/tmp/evil.toml".into()),
            "XDG_CONFIG_HOME" => Some("/tmp/xdg".into()),
            "HOME" => Some("/tmp/home".into()),
            _ => None,
        };
        let (paths, from_env) = Config::paths_from_env(false, &env);
        assert_eq!(paths[0], PathBuf::from("/tmp/evil.toml"));
        assert!(from_env);
        assert_eq!(paths.len(), 3);
        let (paths, from_env) = Config::paths_from_env(true, &env);
        assert_eq!(
            paths,
            vec![PathBuf::from("/etc/picohsm-pkcs11/config.toml")]
        );
        assert!(!from_env);
    }

    #[test]
    fn files_others_can_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "login = \"pin\"").unwrap();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(dir.path(), 0o700);
        mode(&f, 0o600);
        let me = effective_uid();
        assert!(check_file_safety_as(&f, me).is_ok());
        mode(&f, 0o666);
        assert_eq!(
            check_file_safety_as(&f, me).unwrap_err().rv,
            crate::vendor::CKR_PICOHSM_SETTINGS_INSECURE
        );
        assert_eq!(
            Config::read(&f).unwrap_err().rv,
            crate::vendor::CKR_PICOHSM_SETTINGS_INSECURE
        );
        mode(&f, 0o620);
        assert!(check_file_safety_as(&f, me).is_err());
        mode(&f, 0o644);
        mode(dir.path(), 0o777);
        assert!(check_file_safety_as(&f, me).is_err());
        // A sticky directory (as /tmp) is fine: others cannot replace the file.
        mode(dir.path(), 0o1777);
        assert!(check_file_safety_as(&f, me).is_ok());
        mode(dir.path(), 0o700);
        // Owned by someone who is neither this user nor root.
        if me != 0 {
            assert!(check_file_safety_as(&f, me + 1).is_err());
        } else {
            std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
            let e = check_file_safety_as(&f, me).unwrap_err();
            assert_eq!(e.rv, crate::vendor::CKR_PICOHSM_SETTINGS_INSECURE);
        }
    }
}
