//! OpenSC's pkcs11-spy in front of this module. The spy in Debian 12
//! (OpenSC 0.23) writes its own function list into the CK_INTERFACE that
//! C_GetInterface returns, so the module's tables must be writable memory.
//! Needs no card.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// `pkcs11-spy.so` from the same OpenSC as `opensc-pkcs11.so`.
fn spy_path() -> PathBuf {
    let opensc = opensc_pkcs11_path();
    let dir = opensc.parent().expect("a directory");
    [dir.join("pkcs11-spy.so"), dir.join("pkcs11/pkcs11-spy.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no pkcs11-spy.so beside {}", opensc.display()))
}

#[test]
fn pkcs11_tool_through_the_spy_shows_the_module() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(spy_path())
        .arg("--show-info")
        .env("PKCS11SPY", module_path())
        .env("PKCS11SPY_OUTPUT", log.path())
        .output()
        .expect("run pkcs11-tool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        None,
        "pkcs11-tool died through the spy: {stdout}"
    );
    assert!(
        stdout.contains("Manufacturer     picohsm-pkcs11"),
        "{stdout}"
    );
    // The spy really sat in between: it logged the module's C_GetInterface.
    let spied = std::fs::read_to_string(log.path()).unwrap();
    assert!(spied.contains("C_GetInterface"), "{spied}");
    assert!(spied.contains("picohsm-pkcs11"), "{spied}");
}
