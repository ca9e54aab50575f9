//! A PKA token as the client tests use it: a primary with PKA 1-of-1 and
//! no user PIN, its authenticator (a second card with the test PIN) whose
//! key is registered on it, and a settings file `login = "pka"`, so that
//! the secret an application passes to C_Login(CKU_USER) is the
//! authenticator's PIN. Also keys made on the primary through the module
//! and their public keys read through OpenSC's module.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::pka::{firmware_key, init_authenticator, init_pka_only};
use super::tools::{keypairgen, P11};
use super::*;
use picohsm_wire::curve::Curve;

/// The primary (`cards[0]`), its authenticator (`cards[1]`) and the
/// settings file every client is pointed at.
pub struct PkaToken {
    pub cards: Vec<VCard>,
    /// `login = "pka"` after [`TEST_CHAINS`], mode 0600 in a 0700 directory.
    pub settings: PathBuf,
    dir: tempfile::TempDir,
}

/// What a user writes in the settings file for a PKA-only token
/// (after [`TEST_CHAINS`], which only the tests need).
pub const PKA_SETTINGS: &str = "login = \"pka\"\n";

impl PkaToken {
    /// Two fresh cards set up as above.
    pub fn start() -> PkaToken {
        let cards = VCard::start_many(2);
        let (a, b) = (&cards[0], &cards[1]);
        init_authenticator(b, PIN);
        let (file, _) = firmware_key(b, 1, Curve::P256);
        let mut c = init_pka_only(a, 1, 1);
        let (_, sw) = c.register(&file);
        assert_eq!(sw, 0x9000, "registering the authenticator's key");
        drop(c);
        let dir = tempfile::Builder::new()
            .prefix("picohsm-pka-token-")
            .tempdir()
            .expect("temp dir");
        let settings = dir.path().join("config.toml");
        write_settings(&settings, PKA_SETTINGS);
        PkaToken {
            cards,
            settings,
            dir,
        }
    }

    /// The primary: the token the clients use.
    pub fn primary(&self) -> &VCard {
        &self.cards[0]
    }

    /// The authenticator card.
    pub fn authenticator(&mut self) -> &mut VCard {
        &mut self.cards[1]
    }

    /// pkcs11-tool through this module on the primary with the settings
    /// file, logged in with the authenticator's PIN.
    pub fn pkcs11_tool(&self) -> Command {
        let mut c = P11::with(tools::Module::Ours)
            .login()
            .command(self.primary());
        c.env("PICOHSM_PKCS11_CONFIG", &self.settings);
        c
    }

    /// Generates a key pair on the primary through this module
    /// (`key_type` as pkcs11-tool names it), after a PKA login.
    pub fn keypairgen(&self, key_type: &str, id: &str, label: &str) {
        let out = run_cmd(self.pkcs11_tool().args(keypairgen(key_type, id, label)));
        assert!(text(&out).contains("Key pair generated"), "{}", text(&out));
    }

    /// The public key with CKA_ID `id` (hex) as PEM in `dir`, read through
    /// OpenSC's module: a reading independent of this module's.
    pub fn opensc_public_pem(&self, id: &str, dir: &Path) -> PathBuf {
        public_pem_with(pkcs11_tool_command(self.primary()), id, dir)
    }
}

/// An executable script in `dir` that prints `secret` and a newline, as
/// `SSH_ASKPASS` (and other askpass-style hooks) run it; each run also
/// adds a line to `<script>.asked` (see [`asked`]).
pub fn askpass_script(dir: &Path, name: &str, secret: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!("#!/bin/sh\necho \"$1\" >> \"$0.asked\"\nprintf '%s\\n' '{secret}'\n");
    fs::write(&path, script).expect("askpass script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod askpass");
    path
}

/// The prompts the script of [`askpass_script`] was run with, one per run.
pub fn prompts(script: &Path) -> Vec<String> {
    let mut marks = script.as_os_str().to_owned();
    marks.push(".asked");
    fs::read_to_string(marks).map_or(Vec::new(), |t| t.lines().map(str::to_owned).collect())
}
