//! Attacks on the virtual card's files, through pcscd + vpcd +
//! `picohsm-vcard`: whoever can write the flash image (but does not hold the
//! device secret in `FILE.otp`) alters it, splices it, downgrades it to the
//! old unauthenticated format, swaps in another card's image, deletes the
//! OTP file or plants a symbolic link at the temporary file's path. Each
//! attack must leave the card refusing to start, with the reason on stderr
//! and both files exactly as they were (or, for the link, not followed).
//!
//! The image format is in docs/design.md ("The flash image"). The tests hold
//! the device secret themselves only to build the edits an attacker would
//! want, and to show that the same edit sealed under the right secret would
//! indeed have changed the card.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::pka::{init_pka, Conn};
use common::tools::initialize;
use common::*;
use picohsm_crypto::{ec, hash::HashAlg};
use picohsm_firmware::dkek;
use picohsm_firmware::keys::PrivateKey;
use picohsm_firmware::store::{open_image, seal_image, MAGIC_V1};
use picohsm_wire::apdu;
use picohsm_wire::curve::Curve;
use sha2::{Digest, Sha256};

/// EF of the user PIN record: length, maximum tries, tries left, verifier.
const EF_USER_PIN: u16 = 0x1081;
/// EF of the PKA parameters: keys allowed, keys required.
const EF_PKA: u16 = 0x10C0;
/// EF of the first registered PKA key.
const EF_PKA_KEY0: u16 = 0x10D0;

type Files = BTreeMap<u16, Vec<u8>>;

/// The OS generator, for nonces and wrapped-key blobs.
struct Os;
impl picohsm_firmware::CardRng for Os {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).unwrap();
    }
}

fn device_secret(card: &VCard) -> [u8; 32] {
    fs::read(card.otp_path())
        .unwrap()
        .try_into()
        .expect("a 32-byte OTP file")
}

/// The card's file system, opened with its device secret.
fn files_of(card: &VCard) -> Files {
    let image = fs::read(card.flash_path()).unwrap();
    open_image(&device_secret(card), &image).expect("an authentic image")
}

/// The first, unauthenticated image format (`PHSMFS01`): what anyone can
/// compute for any file system.
fn v1_image(files: &Files) -> Vec<u8> {
    let mut v = MAGIC_V1.to_vec();
    v.extend_from_slice(&(files.len() as u32).to_be_bytes());
    for (fid, data) in files {
        v.extend_from_slice(&fid.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
    }
    let h = Sha256::digest(&v);
    v.extend_from_slice(&h);
    v
}

/// The images an attacker without the device secret can make of an edited
/// file system: the old format, and the new one sealed under secrets they
/// know (all zeros, their own card's secret).
fn forgeries(files: &Files) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut own = [0u8; 32];
    getrandom::fill(&mut own).unwrap();
    vec![
        (
            "old format",
            v1_image(files),
            "old unauthenticated format PHSMFS01",
        ),
        (
            "sealed under zeros",
            seal_image(&[0; 32], files, &mut Os),
            "does not authenticate",
        ),
        (
            "sealed under another secret",
            seal_image(&own, files, &mut Os),
            "does not authenticate",
        ),
    ]
}

/// Starts the stopped `card` expecting a refusal whose reason contains
/// `reason`: exit status 1, one line on stderr naming the flash file, no
/// panic, and the flash and OTP files byte for byte as they were.
fn expect_refusal(card: &mut VCard, reason: &str) {
    let flash = fs::read(card.flash_path()).ok();
    let otp = fs::read(card.otp_path()).ok();
    let (status, stderr) = card.start_again_expecting_failure();
    assert_eq!(status.code(), Some(1), "exit status; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot start the card"))
        .collect();
    assert_eq!(lines.len(), 1, "one line with the reason:\n{stderr}");
    assert!(lines[0].starts_with("picohsm-vcard: "), "{stderr}");
    assert!(lines[0].contains(reason), "reason {reason:?} in\n{stderr}");
    assert!(
        lines[0].contains(&card.flash_path().display().to_string()),
        "the flash file is named:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(card.flash_path()).ok(),
        flash,
        "the flash image is unchanged"
    );
    assert_eq!(fs::read(card.otp_path()).ok(), otp, "the OTP is unchanged");
    let mut tmp = card.flash_path().as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(!Path::new(&tmp).exists(), "nothing was written");
}

/// Writes `image` as the stopped card's flash and expects a refusal.
fn refused_with_image(card: &mut VCard, image: &[u8], reason: &str) {
    fs::write(card.flash_path(), image).unwrap();
    expect_refusal(card, reason);
}

/// The user PIN's tries left, from VERIFY without data (`63Cx`).
fn pin_tries_left(card: &VCard) -> u16 {
    let mut c = Conn::open(card);
    c.select();
    c.tx(&[0, 0x20, 0, 0x81]).1
}

/// Attack: flip one bit of a stopped card's flash image (in the header, the
/// length, the ciphertext, the tag). Expected: the card refuses to start and
/// says why, and the image is left byte for byte as it was; the genuine
/// image put back starts as before.
#[test]
fn attack_flipped_bit_in_flash_image_stops_the_card() {
    let mut card = VCard::start();
    initialize(&card, &[]);
    card.stop();
    let good = fs::read(card.flash_path()).unwrap();
    let positions = [
        (0, 0x01, "not a picohsm image"),
        (9, 0x01, "truncated"),
        (good.len() / 2, 0x10, "does not authenticate"),
        (good.len() - 1, 0x80, "does not authenticate"),
    ];
    for (at, bit, reason) in positions {
        let mut bad = good.clone();
        bad[at] ^= bit;
        refused_with_image(&mut card, &bad, reason);
    }
    fs::write(card.flash_path(), &good).unwrap();
    card.start_again();
    let mut c = Conn::open(&card);
    c.select();
    assert_eq!(c.verify_pin(), 0x9000, "the genuine image still works");
}

/// Attack: without the device secret, put one's own key into the first PKA
/// slot (EF 10D0) of a PKA card's image, as an old-format image or sealed
/// under a guessed secret. Expected: refused at start, file unchanged.
#[test]
fn attack_pka_key_slot_replaced_in_flash_image_is_refused() {
    let mut card = VCard::start();
    init_pka(&card, 1, 1);
    card.stop();
    let mut files = files_of(&card);
    assert!(files.get(&EF_PKA).is_some_and(|p| p[0] == 1), "PKA is on");
    files.insert(EF_PKA_KEY0, b"the attacker's authenticator".to_vec());
    let genuine = fs::read(card.flash_path()).unwrap();
    for (what, image, reason) in forgeries(&files) {
        refused_with_image(&mut card, &image, reason);
        fs::write(card.flash_path(), &genuine).unwrap();
        eprintln!("{what}: refused");
    }
}

/// Attack: without the device secret, turn PKA off (EF 10C0 = 0) in a PKA
/// card's image, so the PIN alone logs in. Expected: refused at start, file
/// unchanged.
#[test]
fn attack_pka_turned_off_in_flash_image_is_refused() {
    let mut card = VCard::start();
    init_pka(&card, 1, 1);
    card.stop();
    let mut files = files_of(&card);
    let pka = files.get_mut(&EF_PKA).expect("EF 10C0");
    assert_eq!(pka[0], 1);
    pka.iter_mut().for_each(|b| *b = 0);
    let genuine = fs::read(card.flash_path()).unwrap();
    for (what, image, reason) in forgeries(&files) {
        refused_with_image(&mut card, &image, reason);
        fs::write(card.flash_path(), &genuine).unwrap();
        eprintln!("{what}: refused");
    }
    card.start_again();
    assert!(card.is_running(), "the genuine image still starts");
}

/// Attack: after two wrong PINs, reset the user PIN's try counter in the
/// image (EF 1081) without the device secret, or splice the image from
/// before the wrong PINs into the one after. Expected: refused at start,
/// file unchanged; the same edit sealed under the true secret would have
/// worked, so it is the seal that stops it.
#[test]
fn attack_pin_try_counter_reset_in_flash_image_is_refused() {
    let mut card = VCard::start();
    initialize(&card, &[]);
    assert_eq!(pin_tries_left(&card), 0x63C3);
    card.stop();
    let before = fs::read(card.flash_path()).unwrap();
    card.start_again();
    {
        let mut c = Conn::open(&card);
        c.select();
        assert_eq!(c.verify_pin_with("000000"), 0x63C2);
        assert_eq!(c.verify_pin_with("000000"), 0x63C1);
    }
    card.stop();
    let after = fs::read(card.flash_path()).unwrap();
    let mut files = files_of(&card);
    let rec = files.get_mut(&EF_USER_PIN).expect("EF 1081");
    assert_eq!((rec[1], rec[2]), (3, 1), "max 3, 1 left");
    rec[2] = 3;

    for (what, image, reason) in forgeries(&files) {
        refused_with_image(&mut card, &image, reason);
        fs::write(card.flash_path(), &after).unwrap();
        eprintln!("{what}: refused");
    }
    // Two authentic images of this card, spliced.
    assert_eq!(before.len(), after.len());
    for cut in [after.len() / 3, after.len() / 2, after.len() - 16] {
        let mut spliced = after[..cut].to_vec();
        spliced.extend_from_slice(&before[cut..]);
        refused_with_image(&mut card, &spliced, "does not authenticate");
        fs::write(card.flash_path(), &after).unwrap();
    }

    // Control: sealed under the true secret, the edit takes effect.
    card.start_again();
    assert_eq!(pin_tries_left(&card), 0x63C1, "the genuine image");
    card.stop();
    let resealed = seal_image(&device_secret(&card), &files, &mut Os);
    fs::write(card.flash_path(), resealed).unwrap();
    card.start_again();
    assert_eq!(pin_tries_left(&card), 0x63C3, "only the secret's holder");
}

/// The known limit (docs/design.md, "The flash image"): an older authentic
/// image of the same card is accepted, since nothing outside the image
/// counts writes. Putting back the image from before two wrong PINs gives
/// the tries back. Pinned here so that SECURITY.md states it truthfully.
#[test]
fn limit_rollback_to_an_older_image_of_the_same_card_is_not_detected() {
    let mut card = VCard::start();
    initialize(&card, &[]);
    card.stop();
    let before = fs::read(card.flash_path()).unwrap();
    card.start_again();
    {
        let mut c = Conn::open(&card);
        c.select();
        assert_eq!(c.verify_pin_with("000000"), 0x63C2);
    }
    card.stop();
    fs::write(card.flash_path(), &before).unwrap();
    card.start_again();
    assert_eq!(pin_tries_left(&card), 0x63C3);
}

/// Attack: replace a card's flash image with another card's (authentic, but
/// sealed under the other card's device secret). Expected: refused at start,
/// file unchanged.
#[test]
fn attack_flash_image_of_another_card_is_refused() {
    let mut cards = VCard::start_many(2);
    for c in &cards {
        initialize(c, &[]);
    }
    for c in cards.iter_mut() {
        c.stop();
    }
    let other = fs::read(cards[1].flash_path()).unwrap();
    let own = fs::read(cards[0].flash_path()).unwrap();
    refused_with_image(&mut cards[0], &other, "another device secret");
    fs::write(cards[0].flash_path(), own).unwrap();
    cards[0].start_again();
    assert_eq!(pin_tries_left(&cards[0]), 0x63C3);
}

/// Attack: delete the OTP file (the device secret) of a card whose flash
/// image is present, hoping it starts as a new device over the old image.
/// Expected: refused at start; no new OTP file is made, the flash image is
/// unchanged.
#[test]
fn attack_deleted_otp_with_flash_present_is_refused_and_not_recreated() {
    let mut card = VCard::start();
    initialize(&card, &[]);
    card.stop();
    let otp = fs::read(card.otp_path()).unwrap();
    fs::remove_file(card.otp_path()).unwrap();
    expect_refusal(&mut card, "OTP image (the device secret) is missing");
    assert!(!card.otp_path().exists(), "no new device secret");
    fs::write(card.otp_path(), otp).unwrap();
    card.start_again();
    assert_eq!(pin_tries_left(&card), 0x63C3);
}

/// Attack: plant a symbolic link at the path of the card's temporary file
/// (`FILE.tmp`), pointing at a file of the victim's, then make the card
/// write. Expected: the link is not followed (the target is unchanged, a
/// dangling link's target is not created) and the flash file stays a
/// regular file.
#[test]
fn attack_symlink_at_the_temp_file_path_is_not_followed() {
    let mut card = VCard::start();
    let dir = card.dir().to_path_buf();
    let mut tmp = card.flash_path().as_os_str().to_owned();
    tmp.push(".tmp");
    let victim = dir.join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    initialize(&card, &[]);
    assert!(
        fs::read(&victim).unwrap() == b"precious",
        "the link's target was written"
    );
    let meta = fs::symlink_metadata(card.flash_path()).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the flash image is a regular file"
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077,
        0
    );

    let ghost = dir.join("ghost");
    std::os::unix::fs::symlink(&ghost, &tmp).unwrap();
    {
        let mut c = Conn::open(&card);
        c.select();
        assert_eq!(c.verify_pin_with("000000"), 0x63C2, "a write");
    }
    assert!(!ghost.exists(), "a dangling link's target is not created");
    card.restart();
    assert_eq!(pin_tries_left(&card), 0x63C2);
}

/// Attack: read the flash image (and even, holding the device secret, its
/// decrypted file system) looking for a private key whose value is known.
/// Expected: neither holds the key, the DKEK share or the device secret in
/// clear.
#[test]
fn attack_known_private_key_never_in_clear_in_flash_image() {
    let card = VCard::start();
    initialize(&card, &["-s", "1"]);
    let share = [0x6Bu8; 32];
    let d: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(41).wrapping_add(3))
        .collect();
    {
        let mut c = Conn::logged_in(&card);
        c.ok(&apdu::build(0x80, 0x52, 0, 0, &share, 256));
        let key = PrivateKey::Ec {
            curve: Curve::P256,
            d: zeroize::Zeroizing::new(d.clone()),
        };
        let blob = dkek::wrap(&share, &key, &[], &mut Os).unwrap();
        c.ok(&apdu::build(0x80, 0x74, 3, 0x93, &blob, 0));
        let digest = HashAlg::Sha256.digest(b"known key");
        let der = c.ok(&apdu::build(0x80, 0x68, 3, 0x70, &digest, 65536));
        let q = ec::public_key(Curve::P256, &d).unwrap();
        let raw = ec::der_to_raw(&der, 32).unwrap();
        assert!(
            ec::verify_prehash(Curve::P256, &q, &digest, &raw),
            "the card holds the known key"
        );
    }
    let image = fs::read(card.flash_path()).unwrap();
    let secret = device_secret(&card);
    let files = files_of(&card);
    let secrets: [(&str, &[u8]); 4] = [
        ("private key, first half", &d[..16]),
        ("private key, second half", &d[16..]),
        ("DKEK share", &share[..]),
        ("device secret", &secret[..]),
    ];
    for (what, s) in secrets {
        assert!(
            !image.windows(s.len()).any(|w| w == s),
            "{what} in the flash image"
        );
        for (fid, data) in &files {
            assert!(
                !data.windows(s.len()).any(|w| w == s),
                "{what} in clear in EF {fid:04X}"
            );
        }
    }
}
