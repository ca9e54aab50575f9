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
//! No file is fine: the defaults (`login = "auto"`, authenticators found on
//! their own) need none. The other `key=value` items of the reserved string
//! (`login=pka+pin`, `separator=:`, `authenticator-module=/path/lib.so`,
//! `authenticator-reader=<glob>`; separated by `;`, or by blanks when there
//! is no `;`)
//! override the file. A file that exists but does not parse fails
//! C_Initialize, with a log line naming the file and the problem: a login
//! that silently ignores its settings would be worse.
//!
//! ```toml
//! login = "pka+pin"      # auto | pin | pka | pka+pin
//! separator = ":"        # pka+pin: "<token PIN>:<authenticator PIN>"
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
    /// PKA, then VERIFY: one secret for both, or `<token PIN><separator>
    /// <authenticator PIN>` when a separator is set and present.
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
    /// Splits a `pka+pin` secret into token PIN and authenticator PIN.
    #[serde(default)]
    pub separator: Option<String>,
    /// Declared authenticators; none = find them (other SmartCard-HSMs
    /// holding a registered key).
    #[serde(default, rename = "authenticator")]
    pub authenticators: Vec<AuthenticatorSpec>,
    /// Where the settings were read from (for log lines).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn bad(msg: String) -> Error {
    log::error!("{msg}");
    Error::new(CKR_ARGUMENTS_BAD, "bad module settings")
}

impl Config {
    /// Parses a TOML document.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads one file.
    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("config {}: {e}", path.display())))?;
        let mut c =
            Config::parse(&text).map_err(|e| bad(format!("config {}: {e}", path.display())))?;
        c.source = Some(path.to_path_buf());
        Ok(c)
    }

    /// The default file locations, in order (items 2-4 of the module doc).
    pub fn default_paths() -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(p) = std::env::var_os("PICOHSM_PKCS11_CONFIG").filter(|p| !p.is_empty()) {
            v.push(PathBuf::from(p));
        }
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(x) = xdg {
            v.push(x.join("picohsm-pkcs11").join("config.toml"));
        }
        v.push(PathBuf::from("/etc/picohsm-pkcs11/config.toml"));
        v
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
                for (i, p) in Config::default_paths().into_iter().enumerate() {
                    let from_env = i == 0 && std::env::var_os("PICOHSM_PKCS11_CONFIG").is_some();
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
                other => return Err(bad(format!("x-init-reserved: unknown setting {other:?}"))),
            }
        }
        if c.separator.as_deref() == Some("") {
            return Err(bad("the separator must not be empty".into()));
        }
        Ok(c)
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
}
