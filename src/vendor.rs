//! The module's vendor constants, as `include/picohsm_pkcs11.h` gives them
//! to C. Every value is `*_VENDOR_DEFINED | "PK"…`, so a trace shows whose it
//! is; the test below keeps this file and the header equal.

use cryptoki_sys::{CK_ATTRIBUTE_TYPE, CK_OBJECT_CLASS, CK_RV, CK_ULONG, CK_USER_TYPE};

/// C_Login user type for one Public Key Authentication round (docs/protocol.md §6.7).
pub const CKU_PICOHSM_PKA: CK_USER_TYPE = 0x8050_4B41;

/// This authenticator was accepted; the m-of-n quorum needs more.
pub const CKR_PICOHSM_PKA_MORE_NEEDED: CK_RV = 0x8050_4B01;
/// The quorum is reached; the user PIN is still needed (PKA + PIN token).
pub const CKR_PICOHSM_PIN_NEEDED: CK_RV = 0x8050_4B02;
/// No authenticator token was found.
pub const CKR_PICOHSM_AUTHENTICATOR_MISSING: CK_RV = 0x8050_4B03;
/// The authenticator refused its PIN.
pub const CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT: CK_RV = 0x8050_4B04;
/// The authenticator's PIN is blocked.
pub const CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED: CK_RV = 0x8050_4B05;
/// The authenticator's key is not registered on the primary (MSE SET AT).
pub const CKR_PICOHSM_KEY_NOT_REGISTERED: CK_RV = 0x8050_4B06;
/// The primary refused the signature (EXTERNAL AUTHENTICATE).
pub const CKR_PICOHSM_SIGNATURE_REFUSED: CK_RV = 0x8050_4B07;
/// The token has no PKA set up.
pub const CKR_PICOHSM_PKA_NOT_CONFIGURED: CK_RV = 0x8050_4B08;
/// This authenticator's key was already counted in this round.
pub const CKR_PICOHSM_ALREADY_AUTHENTICATED: CK_RV = 0x8050_4B09;
/// C_Login(CKU_USER) on a PKA + PIN token whose authenticators are found
/// on their own got one secret: it must be `<token PIN><separator>
/// <authenticator PIN>`, so that the token's PIN goes to no other card.
pub const CKR_PICOHSM_SECRETS_NOT_SPLIT: CK_RV = 0x8050_4B0A;
/// The primary's device certificate chain (EF 2F02) does not lead to a
/// trusted root: the module signs nothing for it.
pub const CKR_PICOHSM_DEVICE_UNTRUSTED: CK_RV = 0x8050_4B0B;
/// A settings file could be changed by another user (C_Initialize).
pub const CKR_PICOHSM_SETTINGS_INSECURE: CK_RV = 0x8050_4B0C;
/// C_Login without a PIN (protected authentication path) needs one the
/// module cannot get: no pinentry is configured, and the token or its
/// authenticator wants a PIN.
pub const CKR_PICOHSM_NO_PIN_SOURCE: CK_RV = 0x8050_4B0D;

/// Class of the per-token PKA status object.
pub const CKO_PICOHSM_PKA_STATUS: CK_OBJECT_CLASS = 0x8050_4B41;
/// n: public keys in the scheme.
pub const CKA_PICOHSM_PKA_TOTAL: CK_ATTRIBUTE_TYPE = 0x8050_4B11;
/// Public keys still to register.
pub const CKA_PICOHSM_PKA_MISSING: CK_ATTRIBUTE_TYPE = 0x8050_4B12;
/// m: keys needed per login.
pub const CKA_PICOHSM_PKA_REQUIRED: CK_ATTRIBUTE_TYPE = 0x8050_4B13;
/// Keys accepted in the current round.
pub const CKA_PICOHSM_PKA_AUTHENTICATED: CK_ATTRIBUTE_TYPE = 0x8050_4B14;

/// Every constant, by its C name (for the header check and for traces).
pub const ALL: &[(&str, CK_ULONG)] = &[
    ("CKU_PICOHSM_PKA", CKU_PICOHSM_PKA),
    ("CKR_PICOHSM_PKA_MORE_NEEDED", CKR_PICOHSM_PKA_MORE_NEEDED),
    ("CKR_PICOHSM_PIN_NEEDED", CKR_PICOHSM_PIN_NEEDED),
    (
        "CKR_PICOHSM_AUTHENTICATOR_MISSING",
        CKR_PICOHSM_AUTHENTICATOR_MISSING,
    ),
    (
        "CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT",
        CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT,
    ),
    (
        "CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED",
        CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED,
    ),
    (
        "CKR_PICOHSM_KEY_NOT_REGISTERED",
        CKR_PICOHSM_KEY_NOT_REGISTERED,
    ),
    (
        "CKR_PICOHSM_SIGNATURE_REFUSED",
        CKR_PICOHSM_SIGNATURE_REFUSED,
    ),
    (
        "CKR_PICOHSM_PKA_NOT_CONFIGURED",
        CKR_PICOHSM_PKA_NOT_CONFIGURED,
    ),
    (
        "CKR_PICOHSM_ALREADY_AUTHENTICATED",
        CKR_PICOHSM_ALREADY_AUTHENTICATED,
    ),
    (
        "CKR_PICOHSM_SECRETS_NOT_SPLIT",
        CKR_PICOHSM_SECRETS_NOT_SPLIT,
    ),
    ("CKR_PICOHSM_DEVICE_UNTRUSTED", CKR_PICOHSM_DEVICE_UNTRUSTED),
    (
        "CKR_PICOHSM_SETTINGS_INSECURE",
        CKR_PICOHSM_SETTINGS_INSECURE,
    ),
    ("CKR_PICOHSM_NO_PIN_SOURCE", CKR_PICOHSM_NO_PIN_SOURCE),
    ("CKO_PICOHSM_PKA_STATUS", CKO_PICOHSM_PKA_STATUS),
    ("CKA_PICOHSM_PKA_TOTAL", CKA_PICOHSM_PKA_TOTAL),
    ("CKA_PICOHSM_PKA_MISSING", CKA_PICOHSM_PKA_MISSING),
    ("CKA_PICOHSM_PKA_REQUIRED", CKA_PICOHSM_PKA_REQUIRED),
    (
        "CKA_PICOHSM_PKA_AUTHENTICATED",
        CKA_PICOHSM_PKA_AUTHENTICATED,
    ),
];

/// The C name of a vendor CK_RV, for log lines.
pub fn rv_name(rv: CK_RV) -> Option<&'static str> {
    ALL.iter()
        .find(|(n, v)| n.starts_with("CKR_") && *v == rv)
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn header() -> BTreeMap<String, CK_ULONG> {
        let text = include_str!("../include/picohsm_pkcs11.h");
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "#define").then_some(())?;
                let name = w.next()?;
                let value = w.next()?.trim_end_matches("UL");
                let v = CK_ULONG::from_str_radix(value.strip_prefix("0x")?, 16).ok()?;
                Some((name.to_string(), v))
            })
            .collect()
    }

    #[test]
    fn the_header_and_this_file_agree() {
        let h = header();
        let ours: BTreeMap<String, CK_ULONG> =
            ALL.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!(h, ours);
    }

    #[test]
    fn vendor_values_are_vendor_defined_and_distinct() {
        for (n, v) in ALL {
            assert_eq!(v & 0x8000_0000, 0x8000_0000, "{n}");
        }
        let rvs: Vec<CK_ULONG> = ALL
            .iter()
            .filter(|(n, _)| n.starts_with("CKR_"))
            .map(|(_, v)| *v)
            .collect();
        let mut dedup = rvs.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), rvs.len());
        assert_eq!(
            rv_name(CKR_PICOHSM_PIN_NEEDED),
            Some("CKR_PICOHSM_PIN_NEEDED")
        );
    }

    #[test]
    fn the_header_compiles_as_c() {
        // A C compiler is part of the test environment (gcc on Debian).
        let dir = std::env::temp_dir().join(format!("picohsm-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("t.c");
        let inc = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
        std::fs::write(
            &src,
            "#include <picohsm_pkcs11.h>\n\
             _Static_assert(CKU_PICOHSM_PKA == 0x80504B41UL, \"user type\");\n\
             int main(void) { unsigned long rv = CKR_PICOHSM_PKA_MORE_NEEDED; return rv == 0; }\n",
        )
        .unwrap();
        let out = std::process::Command::new("cc")
            .args(["-std=c11", "-Wall", "-Werror", "-I", inc, "-o"])
            .arg(dir.join("t"))
            .arg(&src)
            .output()
            .expect("run cc");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
