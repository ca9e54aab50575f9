//! A fleet of Pico HSMs that share one serial: every upstream device is
//! named `ESPICOHSMTR` + 5 characters (docs/protocol.md §3.3). Through
//! pcscd + vpcd + `picohsm-vcard --device-name ESPICOHSMTR…`, the devices
//! must still be told apart: their keys get different names (CHRs), and
//! their tokens different serial numbers, labels and PKCS#11 URIs.

mod common;

use std::process::Command;

use common::*;

/// Two cards of the shared serial.
const NAMES: [&str; 2] = ["ESPICOHSMTRAAAA1", "ESPICOHSMTRBBBB2"];

fn fleet() -> Vec<VCard> {
    VCard::start_many_with(
        NAMES
            .iter()
            .map(|n| Options {
                device_name: Some(n.to_string()),
                ..Default::default()
            })
            .collect(),
    )
}

#[test]
fn keys_of_two_devices_of_one_serial_get_different_names() {
    let _serial = serial();
    let cards = fleet();
    let mut chrs = Vec::new();
    for card in &cards {
        tool_ok(card, &["init", "--so-pin", SO_PIN, "--pin", PIN]);
        chrs.push(tool_keygen(card, "Authentication", &[]));
    }
    assert_ne!(chrs[0], chrs[1], "the first key of each device");
    for chr in &chrs {
        assert_eq!(chr.len(), 16, "{chr}");
        assert!(
            !chr.starts_with("ESPICOHSMTR"),
            "{chr}: a name from the shared serial alone"
        );
    }
    // The second key of a device gets the next free name of that device.
    let second = tool_keygen(&cards[0], "Second", &[]);
    assert_ne!(second, chrs[0]);
    assert_eq!(second[..11], chrs[0][..11], "{second} / {}", chrs[0]);
}

#[test]
fn tokens_of_two_devices_of_one_serial_are_told_apart() {
    let _serial = serial();
    let cards = fleet();
    let p11 = our_module();
    let infos: Vec<_> = cards
        .iter()
        .map(|c| p11.get_token_info(slot_of(&p11, c)).unwrap())
        .collect();
    for (info, name) in infos.iter().zip(NAMES) {
        assert_eq!(info.serial_number(), name);
        assert!(info.label().contains(name), "{:?}", info.label());
    }
    drop(p11);

    // GnuTLS's p11tool through this module: two tokens, two URIs.
    let out = run_cmd(
        Command::new("p11tool")
            .arg("--provider")
            .arg(module_path())
            .arg("--list-tokens"),
    );
    let listing = text(&out);
    let uris: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URL: "))
        .filter(|u| u.contains("model=SmartCard-HSM"))
        .collect();
    for name in NAMES {
        let with = uris
            .iter()
            .filter(|u| u.contains(&format!("serial={name}")))
            .count();
        assert_eq!(with, 1, "one token URI with serial {name}:\n{listing}");
    }
}
