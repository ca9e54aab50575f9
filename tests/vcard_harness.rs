//! The test harness itself: virtual cards start, show up in pcscd, answer
//! OpenSC's tools, restart on the same flash image and stop cleanly.
//! Needs `scripts/setup-env.sh` (pcscd + 8 vpcd readers).

mod common;

use common::*;

#[test]
fn start_list_stop() {
    let mut card = VCard::start();
    assert!(READERS
        .iter()
        .any(|(p, r)| *p == card.port() && *r == card.reader_name()));

    let states = reader_states();
    assert!(
        states
            .iter()
            .any(|(r, present)| r == card.reader_name() && *present),
        "{} not listed with a card: {states:?}",
        card.reader_name()
    );
    let listed = stdout(&run("opensc-tool", ["-l"]));
    assert!(listed.contains(card.reader_name()), "{listed}");

    // opensc-tool -n talks to the card: SELECT of the applet and more.
    let name = stdout(&opensc_tool(&card, ["-n"]));
    assert!(
        name.contains("SmartCard-HSM"),
        "opensc-tool -n said {name:?}"
    );

    let log = card.apdu_log();
    assert!(!log.is_empty(), "empty APDU log");
    assert!(log[0].starts_with("> "), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("< ")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("> 00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01")),
        "no SELECT of the SmartCard-HSM applet in {log:?}"
    );
    // Uppercase hex pairs separated by single spaces, as in the reference traces.
    for l in &log {
        let (dir, hex) = l.split_at(1);
        assert!(dir == ">" || dir == "<", "{l:?}");
        for pair in hex.strip_prefix(' ').unwrap_or("").split(' ') {
            assert!(
                pair.len() == 2
                    && pair
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
                "bad log line {l:?}"
            );
        }
    }

    assert!(card.flash_path().is_file(), "flash image not written");
    assert!(card.otp_path().is_file(), "OTP image not written");

    card.stop(); // asserts exit status 0 and an empty reader
    assert!(!card.is_running());
    assert!(reader_states()
        .iter()
        .any(|(r, present)| r == card.reader_name() && !*present));
    assert!(
        card.stderr_log().contains("connected to vpcd"),
        "{}",
        card.stderr_log()
    );
}

#[test]
fn two_cards_restart_and_pkcs11_slots() {
    let mut cards = VCard::start_many(2);
    assert_ne!(cards[0].port(), cards[1].port());
    assert_ne!(cards[0].reader_name(), cards[1].reader_name());

    // opensc-pkcs11 (with the harness's OPENSC_CONF) lists both as tokens.
    let slots = stdout(&pkcs11_tool(&cards[0], ["-L"]));
    for c in &cards {
        assert!(
            slots.contains(c.reader_name()),
            "{} not in\n{slots}",
            c.reader_name()
        );
    }
    // --slot-description selects the card's own slot.
    for c in &cards {
        let out = run_cmd_allow_fail(pkcs11_tool_command(c).args(["-O", "-v"]));
        assert!(
            out.status.success(),
            "pkcs11-tool -O on {}:\n{:?}",
            c.reader_name(),
            out
        );
    }
    // sc-hsm-tool by reader name.
    let info = stdout(&sc_hsm_tool(&cards[1], std::iter::empty::<&str>()));
    assert!(info.contains("Version"), "{info}");

    // Restart keeps the flash image and the device identity.
    let flash_before = std::fs::read(cards[0].flash_path()).unwrap();
    let otp_before = std::fs::read(cards[0].otp_path()).unwrap();
    let serial_before = token_serial(&cards[0]);
    cards[0].restart();
    assert!(cards[0].is_running());
    assert_eq!(std::fs::read(cards[0].otp_path()).unwrap(), otp_before);
    assert_eq!(token_serial(&cards[0]), serial_before);
    assert!(!flash_before.is_empty());
    let name = stdout(&opensc_tool(&cards[0], ["-n"]));
    assert!(name.contains("SmartCard-HSM"), "{name}");

    // The other card is unaffected.
    let name = stdout(&opensc_tool(&cards[1], ["-n"]));
    assert!(name.contains("SmartCard-HSM"), "{name}");
}

/// The token serial number pkcs11-tool shows for the card's slot.
fn token_serial(card: &VCard) -> String {
    let out = stdout(&pkcs11_tool(card, ["-L"]));
    let mut in_slot = false;
    for line in out.lines() {
        if line.starts_with("Slot ") {
            in_slot = line.ends_with(card.reader_name());
        } else if in_slot {
            if let Some(s) = line.trim().strip_prefix("serial num") {
                return s.trim_start_matches([' ', ':']).trim().to_string();
            }
        }
    }
    panic!("no serial for {} in\n{out}", card.reader_name());
}

#[test]
fn start_with_existing_flash_file() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("sub").join("my.flash");
    let serial;
    {
        let card = VCard::start_with_flash(&flash);
        assert_eq!(card.flash_path(), flash.as_path());
        assert!(flash.is_file());
        serial = token_serial(&card);
    } // dropped: killed, reader freed
    let card = VCard::start_with_flash(&flash);
    assert_eq!(
        token_serial(&card),
        serial,
        "same flash + OTP = same device"
    );
}
