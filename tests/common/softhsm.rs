//! SoftHSM2 tokens for the tests: each in its own directory and
//! configuration file (SOFTHSM2_CONF), so tests never share one.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use super::*;

/// A SoftHSM2 token in its own directory.
pub struct SoftHsm {
    _dir: tempfile::TempDir,
    /// Its SOFTHSM2_CONF file.
    pub conf: PathBuf,
}

/// The user PIN of every test token.
pub const SOFTHSM_PIN: &str = "123456";

/// The SoftHSM2 module's path.
pub fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("libsofthsm2.so not found; run scripts/setup-env.sh (package softhsm2)")
}

impl SoftHsm {
    /// A fresh token labelled `label`.
    pub fn new(label: &str) -> SoftHsm {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        run_cmd(
            Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", SOFTHSM_PIN, "--so-pin", "12345678"]),
        );
        SoftHsm { _dir: dir, conf }
    }

    /// A key pair made with pkcs11-tool (`curve` as pkcs11-tool names it).
    pub fn keygen(&self, curve: &str, label: &str, id: &str) {
        run_cmd(
            Command::new("pkcs11-tool")
                .env("SOFTHSM2_CONF", &self.conf)
                .arg("--module")
                .arg(softhsm_module())
                .args(["--login", "--pin", SOFTHSM_PIN, "--keypairgen"])
                .args(["--key-type", curve, "--label", label, "--id", id]),
        );
    }
}
