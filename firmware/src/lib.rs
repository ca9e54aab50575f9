//! The Pico HSM card side: the SmartCard-HSM command set in Rust.
//!
//! The crate is `no_std` + `alloc`: it sees the world only through
//! [`Storage`] (the flash image and the OTP area) and a random source
//! ([`CardRng`]). The `picohsm-vcard` crate runs it as a vsmartcard `vpcd`
//! client behind pcscd (docs/protocol.md §10); the cryptography is
//! `picohsm-crypto`'s.
//!
//! Layout: [`apdu`] turns bytes into commands (lengths, chaining, GET
//! RESPONSE) once for all instructions; `commands/` has one file per
//! instruction; [`store`] is the file system; [`pin`], [`keys`], [`dkek`]
//! hold the secrets at rest; [`session`] is what a SELECT clears.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod apdu;
pub mod commands;
pub mod device;
pub mod dkek;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod pin;
pub mod pka;
pub mod request;
pub mod rng;
pub mod seal;
pub mod session;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;

use alloc::boxed::Box;
use alloc::vec::Vec;

use picohsm_wire::codes::{self, fid};
use zeroize::Zeroizing;

pub use rng::CardRng;

/// Persistent memory of the card: the flash image, or the OTP area.
///
/// The card keeps its whole file system in RAM and hands the complete,
/// serialised image to [`Storage::store`] after every change, before the
/// command's response leaves the card; an implementation must make that
/// replacement atomic and durable when it returns `Ok` (the previous image
/// stays loadable if the write is interrupted, the new one once it has
/// returned).
pub trait Storage: Send {
    /// The last image stored, or `None` for a blank device. An image that
    /// is there but cannot be read is an error, never a blank device (which
    /// would give the card a new identity over the old one).
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replace the image atomically.
    fn store(&mut self, image: &[u8]) -> Result<(), StorageError>;
}

/// Why a [`Storage`] read or write failed. A failed write is answered
/// `6581` (memory failure); a failed read stops [`Card::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError;

/// Why a card could not be brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardError(pub &'static str);

impl core::fmt::Display for CardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// Options of a card instance.
#[derive(Debug, Clone, Default)]
pub struct CardConfig {
    /// A CV certificate chain to install in EF 2F02 (device certificate
    /// first); its first certificate must be for this device's key.
    pub device_chain: Option<Vec<u8>>,
    /// The device name (CHR of the device certificate, 8 to 16 capital
    /// letters and digits): the test chain is issued for it.
    pub device_name: Option<Vec<u8>>,
}

/// One Pico HSM: file system, secrets, session, and the APDU layer.
pub struct Card {
    pub(crate) fs: store::FileStore,
    pub(crate) otp: Zeroizing<[u8; 32]>,
    pub(crate) rng: Box<dyn CardRng>,
    pub(crate) session: session::Session,
    pub(crate) applet_selected: bool,
    /// Success status other than 9000 set by the command just run (9001).
    pub(crate) ok_sw: Option<picohsm_wire::sw::StatusWord>,
    io: apdu::Io,
}

impl Card {
    /// Brings up a card from its flash and OTP images, creating the device
    /// secret, the device key and the default chain on first start.
    ///
    /// A flash image that is present but refused (not a picohsm image, the
    /// old unauthenticated format, truncated, altered or sealed under another
    /// device secret: see [`store::ImageError`]) is an error naming the
    /// reason, as is a flash image without its OTP image; in these cases
    /// nothing is written, to either storage.
    pub fn new(
        mut flash: Box<dyn Storage>,
        mut otp: Box<dyn Storage>,
        rng: Box<dyn CardRng>,
        config: CardConfig,
    ) -> Result<Card, CardError> {
        let mut rng = rng;
        let image = flash
            .load()
            .map_err(|_| CardError("the flash image cannot be read"))?;
        let secret = match otp
            .load()
            .map_err(|_| CardError("the OTP image cannot be read"))?
            .map(Zeroizing::new)
        {
            Some(v) if v.len() == 32 => {
                let mut s = Zeroizing::new([0u8; 32]);
                s.copy_from_slice(&v);
                s
            }
            Some(_) => return Err(CardError("the OTP image is damaged")),
            // A new device secret would orphan the image (it could never be
            // opened again) and silently make a new device of an old one.
            None if image.is_some() => {
                return Err(CardError(
                    "the flash image exists but its OTP image (the device secret) is missing; \
                     refusing to create a new device secret",
                ))
            }
            None => {
                let mut s = Zeroizing::new([0u8; 32]);
                rng.fill(s.as_mut());
                otp.store(s.as_ref())
                    .map_err(|_| CardError("cannot write the OTP image"))?;
                s
            }
        };
        let fs = store::FileStore::open_loaded(flash, image, &secret, &mut *rng)
            .map_err(|e| CardError(e.reason()))?;
        let mut card = Card {
            fs,
            otp: secret,
            rng,
            session: session::Session::default(),
            applet_selected: false,
            ok_sw: None,
            io: apdu::Io::default(),
        };
        device::ensure_identity(
            &mut card,
            config.device_chain.as_deref(),
            config.device_name.as_deref(),
        )?;
        Ok(card)
    }

    /// The ATR (docs/protocol.md §2.1).
    pub fn atr(&self) -> &'static [u8] {
        codes::ATR
    }

    /// Power-on or reset: all volatile state is lost, the applet is deselected.
    pub fn power_on(&mut self) {
        self.session.clear();
        self.applet_selected = false;
        self.io = apdu::Io::default();
    }

    /// Power-off: as a reset.
    pub fn power_off(&mut self) {
        self.power_on();
    }

    /// Processes one command APDU and returns the response (data ‖ SW1 SW2).
    pub fn transmit(&mut self, command: &[u8]) -> Vec<u8> {
        apdu::transmit(self, command)
    }

    /// The device name: CHR of the first certificate in EF 2F02 (docs/protocol.md §3.3).
    pub fn device_name(&self) -> Vec<u8> {
        self.fs
            .get(fid::EF_DEVAUT)
            .and_then(picohsm_wire::cvc::first_chr)
            .unwrap_or(device::DEFAULT_NAME)
            .to_vec()
    }

    /// Whether PKA is configured (EF 10C0 byte 0 > 0, docs/protocol.md §6.1).
    pub fn pka_enabled(&self) -> bool {
        self.fs
            .get(commands::initialize::EF_PKA)
            .is_some_and(|p| p.first().is_some_and(|n| *n > 0))
    }

    /// Device options (EF 100E, docs/protocol.md §4.2).
    pub fn options(&self) -> u16 {
        self.fs
            .get(commands::initialize::EF_OPTIONS)
            .filter(|o| o.len() == 2)
            .map_or(0, |o| u16::from_be_bytes([o[0], o[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{MemStorage, TestRng};

    fn card(flash: &MemStorage, otp: &MemStorage) -> Result<Card, CardError> {
        card_seeded(flash, otp, 7)
    }

    fn card_seeded(flash: &MemStorage, otp: &MemStorage, seed: u64) -> Result<Card, CardError> {
        Card::new(
            Box::new(flash.clone()),
            Box::new(otp.clone()),
            Box::new(TestRng::seeded(seed)),
            CardConfig::default(),
        )
    }

    /// A card started once: its flash and OTP storages.
    fn started() -> (MemStorage, MemStorage) {
        started_seeded(7)
    }

    fn started_seeded(seed: u64) -> (MemStorage, MemStorage) {
        let (flash, otp) = (MemStorage::default(), MemStorage::default());
        card_seeded(&flash, &otp, seed).unwrap();
        assert!(flash.image().is_some() && otp.image().is_some());
        (flash, otp)
    }

    #[test]
    fn restart_opens_the_sealed_image() {
        let (flash, otp) = started();
        let name = card(&flash, &otp).unwrap().device_name();
        assert_eq!(card(&flash, &otp).unwrap().device_name(), name);
    }

    #[test]
    fn a_damaged_image_stops_the_card_and_nothing_is_written() {
        let (flash, otp) = started();
        flash.corrupt();
        let (img, secret) = (flash.image(), otp.image());
        let (fw, ow) = (flash.writes(), otp.writes());
        let err = card(&flash, &otp).err().expect("refused");
        assert_eq!(
            err,
            CardError(store::ImageError::AuthenticationFailed.reason())
        );
        assert_eq!(flash.image(), img);
        assert_eq!(otp.image(), secret);
        assert_eq!((flash.writes(), otp.writes()), (fw, ow));
    }

    #[test]
    fn an_image_of_another_device_is_refused() {
        let (a, _) = started();
        let (b, b_otp) = started_seeded(12345);
        let a_img = a.image().unwrap();
        let b_with_a = MemStorage::with_image(&a_img);
        let otp = MemStorage::with_image(&b_otp.image().unwrap());
        assert!(b.image().unwrap() != a_img);
        let err = card(&b_with_a, &otp).err().expect("refused");
        assert!(err.0.contains("another device secret"), "{err}");
        assert_eq!(b_with_a.writes(), 0);
    }

    #[test]
    fn a_flash_image_without_its_otp_is_refused_before_a_secret_is_made() {
        let (flash, _) = started();
        let otp = MemStorage::default();
        let err = card(&flash, &otp).err().expect("refused");
        assert!(err.0.contains("OTP image"), "{err}");
        assert_eq!(otp.image(), None, "no new device secret");
        assert_eq!(otp.writes(), 0);
        // Even an empty flash file counts as present.
        let empty = MemStorage::with_image(&[]);
        assert!(card(&empty, &otp).is_err());
        assert_eq!(otp.writes(), 0);
    }

    #[test]
    fn a_damaged_otp_is_refused() {
        let (flash, otp) = started();
        let short = MemStorage::with_image(&otp.image().unwrap()[..31]);
        assert_eq!(
            card(&flash, &short).err(),
            Some(CardError("the OTP image is damaged"))
        );
    }

    #[test]
    fn an_empty_flash_file_is_truncated_not_blank() {
        let (_, otp) = started();
        let empty = MemStorage::with_image(&[]);
        let err = card(&empty, &otp).err().expect("refused");
        assert_eq!(err, CardError(store::ImageError::Truncated.reason()));
        assert_eq!(empty.image().as_deref(), Some(&[][..]));
    }
}
