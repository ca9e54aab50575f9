//! The card's file system: every EF, public or internal, as FID -> bytes,
//! kept in RAM and written out as one image after each command that changed
//! it. One image per commit is what makes a multi-file change (a key, its
//! PrKD and its request) atomic: the [`Storage`] replaces the image whole.
//!
//! The image is sealed (AES-256-GCM) under a key derived from the device
//! secret, so every file in it is authenticated: PKA slots, PKA parameters,
//! options, PIN try counters, key metadata and sealed keys alike. An image
//! that does not authenticate is refused with the reason, never replaced by
//! a blank file system. The layout is in docs/design.md ("The flash image").
//!
//! Limit: an older image of the same device still authenticates. Without a
//! monotonic counter outside the image (which the virtual card does not
//! have), putting back an earlier copy of the flash file (rollback: e.g. PIN
//! tries before they were used up, a PKA key since replaced) cannot be
//! detected.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use picohsm_wire::sw::StatusWord;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::rng::CardRng;
use crate::seal::{self, Key32};
use crate::Storage;

/// Magic and format version of the image (`PHSMFS` ‖ version `02`).
pub const MAGIC: &[u8; 8] = b"PHSMFS02";
/// Magic of the first format: files in clear with an unkeyed SHA-256, which
/// anyone can recompute. Refused: accepting it would let whoever can write
/// the file downgrade a card to an image of their making.
pub const MAGIC_V1: &[u8; 8] = b"PHSMFS01";
/// What every image starts with, whatever its version.
const FAMILY: &[u8; 6] = b"PHSMFS";
/// Header: magic (8) ‖ length of the sealed part (u32, big-endian).
const HEADER: usize = 12;
const NONCE: usize = 12;
const TAG: usize = 16;
/// HKDF-SHA256 salt and info of the image key (docs/design.md, "The flash image").
const KDF_SALT: &[u8] = b"picohsm flash image";
const KDF_INFO: &[u8] = b"FLASH/IMAGE";

/// Total flash the virtual card pretends to have; reported by the free-memory
/// query (docs/protocol.md §2.4) and enforced on writes (6A84).
pub const CAPACITY: usize = 1024 * 1024;

/// Why a stored flash image was refused. Nothing is written when an image
/// is refused: the card does not start, and the image stays as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// The image does not start with a picohsm magic.
    NotAnImage,
    /// The first, unauthenticated format (`PHSMFS01`).
    OldFormat,
    /// A picohsm image of a version this firmware does not know.
    UnknownVersion,
    /// Shorter than its header says.
    Truncated,
    /// Longer than its header says.
    TrailingBytes,
    /// The AEAD tag does not verify: altered, or sealed under another
    /// device secret.
    AuthenticationFailed,
    /// Authentic, but the file table inside does not decode.
    Malformed,
    /// The storage could not be read.
    Unreadable,
}

impl ImageError {
    /// The reason, as one short sentence for an operator.
    pub fn reason(self) -> &'static str {
        match self {
            ImageError::NotAnImage => "the flash image is not a picohsm image",
            ImageError::OldFormat => {
                "the flash image has the old unauthenticated format PHSMFS01, which is \
                 refused (accepting it would let anyone downgrade the card); to start \
                 afresh, move the flash image and its OTP file away"
            }
            ImageError::UnknownVersion => {
                "the flash image has a format version this firmware does not know"
            }
            ImageError::Truncated => "the flash image is truncated",
            ImageError::TrailingBytes => "the flash image has bytes past its end",
            ImageError::AuthenticationFailed => {
                "the flash image does not authenticate: it was altered, or written \
                 under another device secret (OTP)"
            }
            ImageError::Malformed => {
                "the flash image authenticates but its file table is malformed"
            }
            ImageError::Unreadable => "the flash image cannot be read",
        }
    }
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

/// The image key: HKDF-SHA256 of the device secret.
fn image_key(secret: &[u8; 32]) -> Key32 {
    seal::derive(KDF_SALT, secret, KDF_INFO)
}

/// Files by FID, with the storage they persist to.
pub struct FileStore {
    files: BTreeMap<u16, Vec<u8>>,
    /// The previous content of every file changed since the last commit
    /// (`None`: it did not exist): what [`rollback`](Self::rollback) puts back.
    undo: BTreeMap<u16, Option<Vec<u8>>>,
    storage: alloc::boxed::Box<dyn Storage>,
    key: Key32,
    nonces: NonceSource,
}

impl FileStore {
    /// Opens the file system of `storage`, sealed under `secret` (the
    /// device secret). No image at all is a blank device; an image that is
    /// there but does not authenticate and decode is an error, and nothing
    /// is written.
    pub fn open(
        mut storage: alloc::boxed::Box<dyn Storage>,
        secret: &[u8; 32],
        rng: &mut dyn CardRng,
    ) -> Result<Self, ImageError> {
        let image = storage.load().map_err(|_| ImageError::Unreadable)?;
        Self::open_loaded(storage, image, secret, rng)
    }

    /// [`open`](Self::open) with the image already loaded from `storage`.
    pub fn open_loaded(
        storage: alloc::boxed::Box<dyn Storage>,
        image: Option<Vec<u8>>,
        secret: &[u8; 32],
        rng: &mut dyn CardRng,
    ) -> Result<Self, ImageError> {
        let files = match image {
            None => BTreeMap::new(),
            Some(img) => open_image(secret, &img)?,
        };
        Ok(FileStore {
            files,
            undo: BTreeMap::new(),
            storage,
            key: image_key(secret),
            nonces: NonceSource::new(rng),
        })
    }

    /// The content of a file.
    pub fn get(&self, fid: u16) -> Option<&[u8]> {
        self.files.get(&fid).map(|v| v.as_slice())
    }

    /// Whether a file exists.
    pub fn exists(&self, fid: u16) -> bool {
        self.files.contains_key(&fid)
    }

    /// Creates or replaces a file (persisted at the next [`commit`](Self::commit)).
    pub fn put(&mut self, fid: u16, data: Vec<u8>) -> Result<(), StatusWord> {
        let old = self.files.get(&fid).map_or(0, |v| v.len() + 8);
        if self.used() - old + data.len() + 8 > CAPACITY {
            return Err(StatusWord::FILE_FULL);
        }
        let previous = self.files.insert(fid, data);
        self.undo.entry(fid).or_insert(previous);
        Ok(())
    }

    /// Deletes a file; `false` if it did not exist.
    pub fn remove(&mut self, fid: u16) -> bool {
        match self.files.remove(&fid) {
            Some(previous) => {
                self.undo.entry(fid).or_insert(Some(previous));
                true
            }
            None => false,
        }
    }

    /// All FIDs, in ascending order.
    pub fn fids(&self) -> impl Iterator<Item = u16> + '_ {
        self.files.keys().copied()
    }

    /// Removes every file for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(u16) -> bool) {
        let gone: Vec<u16> = self.fids().filter(|fid| !keep(*fid)).collect();
        for fid in gone {
            self.remove(fid);
        }
    }

    /// Bytes in use, counting a small per-file overhead.
    pub fn used(&self) -> usize {
        self.files.values().map(|v| v.len() + 8).sum()
    }

    /// Writes the image if anything changed since the last commit.
    /// A failed write is `6581` and the RAM state is rolled back to the last
    /// image that was stored, so what the card answers matches what it holds.
    pub fn commit(&mut self) -> Result<(), StatusWord> {
        if self.undo.is_empty() {
            return Ok(());
        }
        let nonce = self.nonces.next();
        let img = seal_files(&self.key, &nonce, &self.files);
        match self.storage.store(&img) {
            Ok(()) => {
                self.undo.clear();
                Ok(())
            }
            Err(_) => {
                self.rollback();
                Err(StatusWord::MEMORY_FAILURE)
            }
        }
    }

    /// Drops uncommitted changes: every file changed since the last commit
    /// gets its committed content back (the storage is not read again, so a
    /// file altered behind the card's back cannot slip in here).
    pub fn rollback(&mut self) {
        for (fid, previous) in core::mem::take(&mut self.undo) {
            match previous {
                Some(data) => {
                    self.files.insert(fid, data);
                }
                None => {
                    self.files.remove(&fid);
                }
            }
        }
    }
}

/// Nonces for the image AEAD: SHA-256(seed ‖ counter), truncated to 12
/// bytes, with a 32-byte seed drawn from the card RNG when the store is
/// opened. Fresh per write (the counter) and per start (the seed), as good as
/// a random nonce drawn at each write, without the store owning the card's
/// RNG (which the commands use).
struct NonceSource {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
}

impl NonceSource {
    fn new(rng: &mut dyn CardRng) -> NonceSource {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill(seed.as_mut());
        NonceSource { seed, counter: 0 }
    }

    fn next(&mut self) -> [u8; NONCE] {
        self.counter += 1;
        let h = Sha256::new()
            .chain_update(b"picohsm image nonce")
            .chain_update(self.seed.as_ref())
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        let mut n = [0u8; NONCE];
        n.copy_from_slice(&h[..NONCE]);
        n
    }
}

/// The image of `files` sealed under the device secret `secret`, with a
/// nonce from `rng` (docs/design.md, "The flash image"). The card writes
/// images through [`FileStore::commit`]; this is for tools and tests.
pub fn seal_image(
    secret: &[u8; 32],
    files: &BTreeMap<u16, Vec<u8>>,
    rng: &mut dyn CardRng,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    rng.fill(&mut nonce);
    seal_files(&image_key(secret), &nonce, files)
}

/// The files of an image sealed under the device secret `secret`, or why it
/// is refused.
pub fn open_image(secret: &[u8; 32], image: &[u8]) -> Result<BTreeMap<u16, Vec<u8>>, ImageError> {
    let family = &image[..image.len().min(FAMILY.len())];
    if !FAMILY.starts_with(family) {
        return Err(ImageError::NotAnImage);
    }
    if image.starts_with(MAGIC_V1) {
        return Err(ImageError::OldFormat);
    }
    if image.len() < HEADER {
        // A prefix of a picohsm header, an empty file included.
        return Err(ImageError::Truncated);
    }
    if &image[..MAGIC.len()] != MAGIC {
        return Err(ImageError::UnknownVersion);
    }
    let sealed_len = u32::from_be_bytes([image[8], image[9], image[10], image[11]]) as usize;
    let sealed = &image[HEADER..];
    if sealed_len < NONCE + TAG {
        return Err(ImageError::Malformed);
    }
    if sealed.len() < sealed_len {
        return Err(ImageError::Truncated);
    }
    if sealed.len() > sealed_len {
        return Err(ImageError::TrailingBytes);
    }
    let key = image_key(secret);
    let cipher = Aes256Gcm::new((&*key).into());
    let nonce: [u8; NONCE] = sealed[..NONCE]
        .try_into()
        .map_err(|_| ImageError::Malformed)?;
    let body = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed[NONCE..],
                aad: &image[..HEADER],
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ImageError::AuthenticationFailed)?;
    decode(&body).ok_or(ImageError::Malformed)
}

/// Header ‖ nonce ‖ AES-256-GCM(key, nonce, aad = header, encoded files) ‖ tag.
fn seal_files(key: &[u8; 32], nonce: &[u8; NONCE], files: &BTreeMap<u16, Vec<u8>>) -> Vec<u8> {
    let body = encode(files);
    let sealed_len = NONCE + body.len() + TAG;
    let mut img = Vec::with_capacity(HEADER + sealed_len);
    img.extend_from_slice(MAGIC);
    // The capacity (1 MiB) keeps an image far below 4 GiB.
    img.extend_from_slice(&(sealed_len as u32).to_be_bytes());
    let cipher = Aes256Gcm::new(key.into());
    let ct = cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: &body,
                aad: &img[..HEADER],
            },
        )
        // AES-GCM fails only on messages over 64 GiB.
        .unwrap_or_default();
    img.extend_from_slice(nonce);
    img.extend_from_slice(&ct);
    img
}

/// The plaintext of an image: count (u32), then entries (fid u16, len u32,
/// bytes), in FID order. Wiped on drop: it holds the PIN verifiers.
fn encode(files: &BTreeMap<u16, Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let mut v = Vec::with_capacity(files.values().map(|f| f.len() + 6).sum::<usize>() + 4);
    v.extend_from_slice(&(files.len() as u32).to_be_bytes());
    for (fid, data) in files {
        v.extend_from_slice(&fid.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
    }
    Zeroizing::new(v)
}

fn decode(body: &[u8]) -> Option<BTreeMap<u16, Vec<u8>>> {
    let count = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let mut pos = 4;
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let fid = u16::from_be_bytes(body.get(pos..pos + 2)?.try_into().ok()?);
        let len = u32::from_be_bytes(body.get(pos + 2..pos + 6)?.try_into().ok()?) as usize;
        pos += 6;
        let data = body.get(pos..pos.checked_add(len)?)?.to_vec();
        if files.insert(fid, data).is_some() {
            return None;
        }
        pos += len;
    }
    (pos == body.len()).then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{MemStorage, TestRng};
    use alloc::boxed::Box;
    use alloc::vec;

    const SECRET: [u8; 32] = [0x5A; 32];

    fn open_mem(mem: &MemStorage) -> Result<FileStore, ImageError> {
        FileStore::open(Box::new(mem.clone()), &SECRET, &mut TestRng::default())
    }

    /// An image holding `files`, written through a [`FileStore`].
    fn image_of(files: &[(u16, &[u8])]) -> Vec<u8> {
        let mem = MemStorage::default();
        let mut fs = open_mem(&mem).unwrap();
        for (fid, data) in files {
            fs.put(*fid, data.to_vec()).unwrap();
        }
        fs.commit().unwrap();
        mem.image().unwrap()
    }

    /// The first format: magic, count, entries, SHA-256 of all that.
    fn v1_image(files: &BTreeMap<u16, Vec<u8>>) -> Vec<u8> {
        let mut v = MAGIC_V1.to_vec();
        v.extend_from_slice(&encode(files));
        let h = Sha256::digest(&v);
        v.extend_from_slice(&h);
        v
    }

    /// A PKA card's security state: PKA 1 of 1 with a registered key, user
    /// PIN record with one try left, options.
    fn state(slot: &[u8], pin_left: u8, pka_n: u8) -> Vec<(u16, Vec<u8>)> {
        let mut pin = vec![6, 3, pin_left];
        pin.extend_from_slice(&[0xAB; 32]);
        vec![
            (0x100E, vec![0x00, 0x01]),
            (0x1081, pin),
            (0x10C0, vec![pka_n, 1]),
            (0x10D0, slot.to_vec()),
            (0xCC01, vec![0xC1; 40]),
        ]
    }

    /// `st` with file `fid` replaced by `data`.
    fn with_file(mut st: Vec<(u16, Vec<u8>)>, fid: u16, data: &[u8]) -> Vec<(u16, Vec<u8>)> {
        for (f, d) in st.iter_mut() {
            if *f == fid {
                *d = data.to_vec();
            }
        }
        st
    }

    fn image_of_state(st: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let files: Vec<(u16, &[u8])> = st.iter().map(|(f, d)| (*f, d.as_slice())).collect();
        image_of(&files)
    }

    #[test]
    fn commit_and_reload() {
        let mem = MemStorage::default();
        let mut fs = open_mem(&mem).unwrap();
        fs.put(0xCE01, vec![1, 2, 3]).unwrap();
        fs.put(0x2F02, vec![]).unwrap();
        fs.commit().unwrap();
        let img = mem.image().unwrap();
        assert!(img.starts_with(MAGIC));
        assert!(
            !img.windows(3).any(|w| w == [1, 2, 3]),
            "file contents are encrypted"
        );
        let fs2 = open_mem(&mem).unwrap();
        assert_eq!(fs2.get(0xCE01), Some(&[1u8, 2, 3][..]));
        assert_eq!(fs2.get(0x2F02), Some(&[][..]));
        assert_eq!(fs2.fids().count(), 2);
    }

    #[test]
    fn no_image_is_a_blank_device_and_writes_nothing() {
        let mem = MemStorage::default();
        let fs = open_mem(&mem).unwrap();
        assert_eq!(fs.fids().count(), 0);
        assert_eq!(mem.image(), None);
        assert_eq!(mem.writes(), 0);
    }

    #[test]
    fn every_write_has_a_fresh_nonce() {
        let mem = MemStorage::default();
        let mut fs = open_mem(&mem).unwrap();
        fs.put(1, vec![7]).unwrap();
        fs.commit().unwrap();
        let a = mem.image().unwrap();
        fs.put(1, vec![7]).unwrap();
        fs.commit().unwrap();
        let b = mem.image().unwrap();
        assert_eq!(a.len(), b.len());
        assert_ne!(a[HEADER..HEADER + NONCE], b[HEADER..HEADER + NONCE]);
        assert_ne!(a, b);
    }

    #[test]
    fn one_flipped_bit_anywhere_is_refused_and_nothing_is_written() {
        let img = image_of(&[(0x10C0, &[1, 1]), (0x10D0, &[9; 20]), (0x1081, &[3; 35])]);
        for bit in 0..img.len() * 8 {
            let mut bad = img.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let mem = MemStorage::with_image(&bad);
            let err = open_mem(&mem)
                .err()
                .unwrap_or_else(|| panic!("bit {bit} accepted"));
            let expected = match bit / 8 {
                0..=5 => ImageError::NotAnImage,
                6..=7 => ImageError::UnknownVersion,
                _ => err,
            };
            assert_eq!(err, expected, "bit {bit}");
            if bit / 8 >= HEADER {
                assert_eq!(err, ImageError::AuthenticationFailed, "bit {bit}");
            }
            assert_eq!(mem.image().as_deref(), Some(&bad[..]), "bit {bit}");
            assert_eq!(mem.writes(), 0);
        }
    }

    #[test]
    fn old_unauthenticated_format_is_refused() {
        let files: BTreeMap<u16, Vec<u8>> = state(&[1; 10], 3, 1).into_iter().collect();
        let mem = MemStorage::with_image(&v1_image(&files));
        assert_eq!(open_mem(&mem).err(), Some(ImageError::OldFormat));
        assert!(ImageError::OldFormat.reason().contains("PHSMFS01"));
        assert!(ImageError::OldFormat.reason().contains("start afresh"));
        assert_eq!(mem.writes(), 0);
    }

    #[test]
    fn truncated_images_are_refused() {
        let img = image_of(&[(1, &[1, 2, 3, 4])]);
        for n in 0..img.len() {
            let mem = MemStorage::with_image(&img[..n]);
            assert_eq!(
                open_mem(&mem).err(),
                Some(ImageError::Truncated),
                "{n} bytes"
            );
            assert_eq!(mem.writes(), 0);
        }
        let mut long = img.clone();
        long.push(0);
        assert_eq!(
            open_mem(&MemStorage::with_image(&long)).err(),
            Some(ImageError::TrailingBytes)
        );
    }

    #[test]
    fn other_data_is_not_an_image() {
        for junk in [
            &b"hello world, not an image"[..],
            b"\x00",
            b"PHSMFX02\0\0\0\0",
        ] {
            let mem = MemStorage::with_image(junk);
            assert_eq!(open_mem(&mem).err(), Some(ImageError::NotAnImage));
        }
        let mem = MemStorage::with_image(b"PHSMFS03\0\0\0\x1C");
        assert_eq!(open_mem(&mem).err(), Some(ImageError::UnknownVersion));
    }

    #[test]
    fn image_of_another_device_secret_is_refused() {
        let img = image_of(&[(1, &[1])]);
        let other = [0xA5u8; 32];
        let mem = MemStorage::with_image(&img);
        let r = FileStore::open(Box::new(mem.clone()), &other, &mut TestRng::default());
        assert_eq!(r.err(), Some(ImageError::AuthenticationFailed));
        assert_eq!(mem.image().as_deref(), Some(&img[..]));
    }

    #[test]
    fn seal_image_and_open_image_agree_with_the_store() {
        let st: BTreeMap<u16, Vec<u8>> = state(&[4; 12], 2, 1).into_iter().collect();
        let img = seal_image(&SECRET, &st, &mut TestRng::default());
        assert_eq!(open_image(&SECRET, &img).unwrap(), st);
        let fs = open_mem(&MemStorage::with_image(&img)).unwrap();
        assert_eq!(fs.get(0x10D0), Some(&[4u8; 12][..]));
        assert_eq!(
            open_image(&SECRET, &image_of_state(&state(&[4; 12], 2, 1))).unwrap(),
            st
        );
    }

    /// Two authentic images of one device, differing in one security file:
    /// any splice of the two is refused.
    #[test]
    fn splicing_two_images_of_the_same_device_is_refused() {
        let base = state(&[1; 20], 1, 1);
        let variants = [
            ("PKA slot", state(&[2; 20], 1, 1)),
            ("PIN tries", state(&[1; 20], 3, 1)),
            ("PKA off", state(&[1; 20], 1, 0)),
            ("options", with_file(state(&[1; 20], 1, 1), 0x100E, &[0, 0])),
            (
                "key metadata",
                with_file(state(&[1; 20], 1, 1), 0xCC01, &[0xC2; 40]),
            ),
        ];
        let a = image_of_state(&base);
        for (what, st) in variants {
            let b = image_of_state(&st);
            assert_eq!(a.len(), b.len(), "{what}");
            // The differing file's bytes from b, the rest from a; and every
            // cut point (prefix of one, suffix of the other).
            let diff: Vec<usize> = (HEADER + NONCE..a.len() - TAG)
                .filter(|i| a[*i] != b[*i])
                .collect();
            assert!(!diff.is_empty());
            let mut spliced = a.clone();
            let body = HEADER + NONCE..a.len() - TAG;
            spliced[body.clone()].copy_from_slice(&b[body]);
            assert_eq!(
                open_image(&SECRET, &spliced).err(),
                Some(ImageError::AuthenticationFailed),
                "{what}: b's ciphertext under a's nonce and tag"
            );
            for cut in HEADER..a.len() {
                let mut s = a[..cut].to_vec();
                s.extend_from_slice(&b[cut..]);
                if s == a || s == b {
                    continue;
                }
                assert_eq!(
                    open_image(&SECRET, &s).err(),
                    Some(ImageError::AuthenticationFailed),
                    "{what}: cut at {cut}"
                );
            }
        }
    }

    /// Without the device secret, an edited file system can only be sealed
    /// under a wrong key, or written in the old format: both are refused.
    #[test]
    fn edited_plaintext_resealed_without_the_secret_is_refused() {
        let edits = [
            ("PKA slot", state(&[0xEE; 20], 0, 1)),
            ("PIN tries", state(&[1; 20], 3, 1)),
            ("PKA off", state(&[1; 20], 0, 0)),
            ("options", with_file(state(&[1; 20], 0, 1), 0x100E, &[0, 0])),
        ];
        for (what, st) in edits {
            let files: BTreeMap<u16, Vec<u8>> = st.into_iter().collect();
            for guess in [[0u8; 32], [0xFF; 32], [0x5B; 32]] {
                let forged = seal_image(&guess, &files, &mut TestRng::default());
                let mem = MemStorage::with_image(&forged);
                assert_eq!(
                    open_mem(&mem).err(),
                    Some(ImageError::AuthenticationFailed),
                    "{what}"
                );
            }
            let mem = MemStorage::with_image(&v1_image(&files));
            assert_eq!(open_mem(&mem).err(), Some(ImageError::OldFormat), "{what}");
            // The same edit sealed under the right secret is taken: the
            // refusals above are the secret's doing, not the edit's.
            let genuine = seal_image(&SECRET, &files, &mut TestRng::default());
            assert_eq!(open_image(&SECRET, &genuine).unwrap(), files);
        }
    }

    #[test]
    fn authentic_but_malformed_table_is_refused() {
        let key = image_key(&SECRET);
        let mut files = BTreeMap::new();
        files.insert(1u16, vec![1u8]);
        let mut img = seal_files(&key, &[0; NONCE], &files);
        // Re-seal a body whose count says 2 files: authentic, malformed.
        let mut body = encode(&files).to_vec();
        body[3] = 2;
        let cipher = Aes256Gcm::new((&*key).into());
        let ct = cipher
            .encrypt(
                &Nonce::from([0; NONCE]),
                Payload {
                    msg: &body,
                    aad: &img[..HEADER],
                },
            )
            .unwrap();
        img.truncate(HEADER + NONCE);
        img.extend_from_slice(&ct);
        assert_eq!(open_image(&SECRET, &img).err(), Some(ImageError::Malformed));
    }

    #[test]
    fn failed_write_rolls_back() {
        let mem = MemStorage::default();
        let mut fs = open_mem(&mem).unwrap();
        fs.put(1, vec![1]).unwrap();
        fs.put(3, vec![3]).unwrap();
        fs.commit().unwrap();
        mem.fail_writes(true);
        fs.put(2, vec![2]).unwrap();
        fs.put(1, vec![9]).unwrap();
        fs.put(1, vec![10]).unwrap();
        assert!(fs.remove(3));
        assert_eq!(fs.commit(), Err(StatusWord::MEMORY_FAILURE));
        assert!(!fs.exists(2));
        assert_eq!(fs.get(1), Some(&[1u8][..]));
        assert_eq!(fs.get(3), Some(&[3u8][..]));
        // Nothing left to write once rolled back.
        mem.fail_writes(false);
        let before = mem.writes();
        fs.commit().unwrap();
        assert_eq!(mem.writes(), before);
    }

    #[test]
    fn rollback_does_not_read_the_storage_again() {
        let mem = MemStorage::default();
        let mut fs = open_mem(&mem).unwrap();
        fs.put(1, vec![1]).unwrap();
        fs.commit().unwrap();
        mem.corrupt();
        fs.retain(|_| false);
        fs.rollback();
        assert_eq!(fs.get(1), Some(&[1u8][..]));
    }

    #[test]
    fn capacity_is_enforced() {
        let mut fs = open_mem(&MemStorage::default()).unwrap();
        assert_eq!(fs.put(1, vec![0; CAPACITY]), Err(StatusWord::FILE_FULL));
    }
}
