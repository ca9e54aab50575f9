//! The files the Debian package ships beside the programs (packaging/):
//! the example settings file must stay in step with the settings the
//! module reads (src/settings.rs), or users copy an example the module
//! refuses.

use picohsm_pkcs11::settings::{AuthenticatorSpec, Config, LoginMode};

const EXAMPLE: &str = include_str!("../packaging/config.toml.example");
const SETTINGS_RS: &str = include_str!("../src/settings.rs");

/// The example as a user who uncomments everything gets it: "# " removed
/// from setting lines; "## " explanations and the header stay comments.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if !rest.starts_with('#') && looks_like_setting(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` or a `[[table]]` header.
fn looks_like_setting(s: &str) -> bool {
    s.starts_with("[[")
        || s.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
}

/// The keys of the ```toml example in src/settings.rs's module doc.
fn documented_keys() -> Vec<String> {
    let mut in_block = false;
    let mut keys = Vec::new();
    for line in SETTINGS_RS.lines() {
        let Some(doc) = line.strip_prefix("//! ").or(line.strip_prefix("//!")) else {
            continue;
        };
        if doc.starts_with("```") {
            in_block = doc == "```toml";
            continue;
        }
        if in_block {
            if let Some((k, _)) = doc.split_once(" = ") {
                keys.push(k.trim().to_string());
            }
        }
    }
    keys
}

/// A user uncomments every setting of /etc/picohsm-pkcs11/config.toml.example:
/// the module accepts the result (no unknown key, every value of the
/// right type) and reads what the comments say.
#[test]
fn the_example_settings_parse_when_uncommented() {
    let text = uncommented();
    let c = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(c.login, LoginMode::Auto);
    assert_eq!(c.separator.as_deref(), Some(":"));
    assert!(!c.allow_test_chains);
    assert_eq!(c.device_roots.len(), 1);
    assert!(matches!(
        c.authenticators.as_slice(),
        [
            AuthenticatorSpec::SmartcardHsm { .. },
            AuthenticatorSpec::Pkcs11 { .. }
        ]
    ));
}

/// Every key the module documents (src/settings.rs) appears in the example
/// as a commented setting, so a new setting cannot be forgotten there.
#[test]
fn the_example_settings_show_every_documented_key() {
    let keys = documented_keys();
    assert!(keys.len() >= 8, "found only {keys:?} in src/settings.rs");
    let text = uncommented();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !text.lines().any(|l| l.starts_with(&format!("{k} = "))))
        .collect();
    assert!(
        missing.is_empty(),
        "packaging/config.toml.example lacks {missing:?}"
    );
}
