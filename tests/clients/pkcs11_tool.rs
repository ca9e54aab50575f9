//! OpenSC's pkcs11-tool with libpicohsm_pkcs11.so as its users run it: a
//! certificate written for a key keeps the label it was written with, and
//! the token in the first reader is the one pkcs11-tool picks without
//! `--slot`.

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;

use common::tools::*;
use common::*;

/// The certificate labelled `label` in a pkcs11-tool listing.
fn cert_labelled<'a>(listing: &'a str, label: &str) -> Option<&'a str> {
    listing_block(listing, "Certificate Object", "label:", label)
}

/// A user writes a certificate for a key already on the token
/// (`pkcs11-tool --write-object cert.der --type cert --id <key id> --label
/// mycert`): `--list-objects` then shows the certificate labelled `mycert`
/// with the key's id. Same for a key made without a label. The card keeps
/// one label for a key and its certificate (the key's PrKD): the key is
/// renamed with its certificate, as when OpenSC writes the certificate, and
/// OpenSC's module on the same card lists the same labels.
#[test]
fn certificate_written_for_a_key_keeps_its_label() {
    let _serial = serial();
    let card = initialised_card();
    let dir = card.dir().to_path_buf();
    OURS.login()
        .run(&card, keypairgen("EC:prime256v1", "01", "mykey"));
    let unlabelled = ["--keypairgen", "--key-type", "EC:prime256v1", "--id", "02"];
    OURS.login().run(&card, unlabelled);
    for (id, label) in [("01", "mycert"), ("02", "other cert")] {
        let der = self_signed_cert(&dir, id, &format!("/CN=picohsm {id}"));
        OURS.login().run(
            &card,
            write_object(&der, "cert", &["--id", id, "--label", label]),
        );
    }

    let listing = OURS.run(&card, ["--list-objects"]);
    for (id, label) in [("01", "mycert"), ("02", "other cert")] {
        let b = cert_labelled(&listing, label).unwrap_or_else(|| panic!("{label}: {listing}"));
        assert_eq!(listing_field(b, "ID:"), id, "{b}");
    }
    let key = listing_block(&listing, "Public Key Object", "label:", "mycert");
    let key = key.unwrap_or_else(|| panic!("the key is renamed with it: {listing}"));
    assert_eq!(listing_field(key, "ID:"), "01");

    // OpenSC's module reads the same files.
    let theirs = THEIRS.run(&card, ["--list-objects", "--type", "cert"]);
    for (id, label) in [("01", "mycert"), ("02", "other cert")] {
        let b =
            cert_labelled(&theirs, label).unwrap_or_else(|| panic!("OpenSC: {label}: {theirs}"));
        assert_eq!(listing_field(b, "ID:"), id, "{b}");
    }
}

/// pkcs11-tool without `--slot` takes the first slot of C_GetSlotList
/// that holds a token: slot 0 is the first reader pcscd lists
/// (SCardListReaders), and with tokens in it and in another reader, the
/// first reader's token is the one pkcs11-tool uses, as with OpenSC's
/// module. (The slot ids are hashes of the reader names: sorted by id, the
/// first reader came last.)
#[test]
fn pkcs11_tool_without_slot_uses_the_first_readers_token() {
    let _serial = serial();
    let readers = pcsc::Context::establish(pcsc::Scope::User)
        .expect("pcscd")
        .list_readers_owned()
        .expect("SCardListReaders");
    let first = readers[0].to_string_lossy().into_owned();
    let ours = || {
        let mut c = Command::new("pkcs11-tool");
        c.env("PICOHSM_PKCS11_CONFIG", harness_settings())
            .arg("--module")
            .arg(module_path());
        c
    };
    let listing = text(&run_cmd(ours().arg("--list-slots")));
    let slot0 = listing
        .split("\nSlot ")
        .nth(1)
        .unwrap_or_else(|| panic!("no slot: {listing}"));
    assert!(
        slot0.starts_with("0 ") && slot0.lines().next().unwrap_or("").ends_with(&first),
        "slot 0 is the first reader {first:?}: {listing}"
    );

    // Cards take the free readers in pcscd's order: the first reader and
    // one more.
    let cards = VCard::start_many(2);
    let card = cards
        .iter()
        .find(|c| c.reader_name() == first)
        .unwrap_or_else(|| panic!("the first reader {first:?} is in use"));
    // Only the card in the first reader has the test PIN (the other is not
    // initialised): the login works only on its token.
    initialize(card, &[]);
    let out = run_cmd_allow_fail(ours().args(["--login", "--pin", PIN, "--list-objects"]));
    assert!(
        out.status.success() && text(&out).contains("Using slot 0 "),
        "pkcs11-tool without --slot logs in to the first reader's token: {}",
        text(&out)
    );
}
