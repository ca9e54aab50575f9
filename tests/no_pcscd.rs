//! The module where pcscd is not running (not installed, not started yet,
//! a container): the Debian package registers it with p11-kit, so every
//! p11-kit-aware program loads it there too. Loading must succeed quietly
//! with no slots, as OpenSC's module does, and not make p11-kit print a
//! warning in every program.
//!
//! pcscd is made unreachable per process with PCSCLITE_CSOCK_NAME (the
//! socket pcsc-lite's client library connects to) naming a path with no
//! socket; the shared pcscd and its cards are never touched, so these
//! tests need no card and no lock.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A home with no settings anywhere (p11-kit's and the module's), and a
/// pcsc-lite socket path where nothing listens.
fn without_pcscd(cmd: &mut Command, home: &std::path::Path) {
    cmd.env_remove("PICOHSM_PKCS11_CONFIG")
        .env_remove("PICOHSM_PKCS11_LOG")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("PCSCLITE_CSOCK_NAME", home.join("no-pcscd.sock"));
}

/// An application loads the module on a machine without pcscd: C_Initialize
/// succeeds and C_GetSlotList reports no slot (`pkcs11-tool -L` says "No
/// slots", and exits 1 for it, as with OpenSC's module), where before
/// C_Initialize failed with CKR_DEVICE_ERROR.
#[test]
fn the_module_initialises_without_pcscd_and_lists_no_slots() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module").arg(common::module_path()).arg("-L");
    without_pcscd(&mut cmd, home.path());
    let out = cmd.output().expect("pkcs11-tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("C_Initialize"), "{text}");
    assert!(text.contains("No slots"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}

/// The package's p11-kit module file (packaging/picohsm-pkcs11.module, its
/// `module:` pointed at the module under test) in a user's p11-kit
/// directory: `p11-kit list-modules` without pcscd lists the module with
/// its description, and nothing about it appears on stderr.
#[test]
fn p11kit_lists_the_packaged_module_quietly_without_pcscd() {
    let home = tempfile::tempdir().unwrap();
    let modules = home.path().join(".config/pkcs11/modules");
    std::fs::create_dir_all(&modules).unwrap();
    let packaged = include_str!("../packaging/picohsm-pkcs11.module");
    assert!(packaged.contains("\nmodule: libpicohsm_pkcs11.so\n"));
    let module = common::module_path();
    let file = packaged.replace(
        "\nmodule: libpicohsm_pkcs11.so\n",
        &format!("\nmodule: {}\n", module.display()),
    );
    std::fs::write(modules.join("picohsm-pkcs11.module"), file).unwrap();

    // p11-kit reads no user configuration in a program running as root:
    // there, list as nobody (the home made readable for it).
    let mut cmd = if euid() == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "p11-kit",
        ]);
        let status = Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(home.path())
            .status()
            .unwrap();
        assert!(status.success());
        c
    } else {
        Command::new("p11-kit")
    };
    cmd.arg("list-modules");
    without_pcscd(&mut cmd, home.path());
    let out = cmd.output().expect("p11-kit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let heading = format!("picohsm-pkcs11: {}", module.display());
    let ours: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != heading)
        .take_while(|l| *l == heading || l.starts_with(' '))
        .collect();
    assert!(
        ours.iter()
            .any(|l| l.trim() == "library-description: Pico HSM / SmartCard-HSM + PKA"),
        "p11-kit list-modules does not list the module:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.to_lowercase().contains("picohsm"),
        "p11-kit complained about the module:\n{stderr}"
    );
}

/// pcscd starts after the application loaded the module (a desk where
/// pcscd is socket-activated late, or installed afterwards): the module
/// initialised without it, then its next C_GetSlotList finds pcscd and
/// lists its readers, with no C_Finalize/C_Initialize in between.
///
/// In this process pcsc-lite's socket path (PCSCLITE_CSOCK_NAME) first
/// names nothing, then a link to the running pcscd's socket appears there.
/// Only reader names are read (no card is connected to), so the cards of
/// other tests are not disturbed.
#[test]
fn slots_appear_once_pcscd_becomes_reachable() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

    let real = std::path::Path::new("/run/pcscd/pcscd.comm");
    assert!(
        real.exists(),
        "pcscd's socket {} is missing: run scripts/setup-env.sh",
        real.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pcscd.comm");
    // Before pcsc-lite is first used in this process (it reads the variable
    // once); the other tests of this file run child processes only.
    std::env::set_var("PCSCLITE_CSOCK_NAME", &sock);
    std::env::remove_var("PICOHSM_PKCS11_CONFIG");

    let p11 = Pkcs11::new(common::module_path()).expect("load the module");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize without pcscd");
    assert_eq!(p11.get_all_slots().expect("C_GetSlotList").len(), 0);

    std::os::unix::fs::symlink(real, &sock).unwrap();
    let slots = p11
        .get_all_slots()
        .expect("C_GetSlotList once pcscd is there");
    assert!(
        !slots.is_empty(),
        "no slot after pcscd became reachable (setup-env.sh prepares 8 readers)"
    );
}
