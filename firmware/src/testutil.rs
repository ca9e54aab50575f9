//! In-memory storage and a deterministic RNG for unit tests.

extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex;

use crate::{Storage, StorageError};

#[derive(Default)]
struct Inner {
    image: Option<Vec<u8>>,
    fail: bool,
    writes: usize,
}

/// Storage in RAM, shared between clones (so a test can "restart" a card).
#[derive(Clone, Default)]
pub struct MemStorage(Arc<Mutex<Inner>>);

impl MemStorage {
    /// Storage that already holds `image`.
    pub fn with_image(image: &[u8]) -> MemStorage {
        let m = MemStorage::default();
        m.0.lock().unwrap().image = Some(image.to_vec());
        m
    }
    /// The image stored now.
    pub fn image(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().image.clone()
    }
    /// How many times [`Storage::store`] succeeded.
    pub fn writes(&self) -> usize {
        self.0.lock().unwrap().writes
    }
    /// Flips a byte of the stored image.
    pub fn corrupt(&self) {
        if let Some(img) = self.0.lock().unwrap().image.as_mut() {
            let n = img.len() / 2;
            img[n] ^= 0xFF;
        }
    }
    /// Makes later writes fail.
    pub fn fail_writes(&self, fail: bool) {
        self.0.lock().unwrap().fail = fail;
    }
}

impl Storage for MemStorage {
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.lock().unwrap().image.clone())
    }
    fn store(&mut self, image: &[u8]) -> Result<(), StorageError> {
        let mut g = self.0.lock().unwrap();
        if g.fail {
            return Err(StorageError);
        }
        g.image = Some(image.to_vec());
        g.writes += 1;
        Ok(())
    }
}

/// A deterministic generator (xorshift) — tests only, never a card.
pub struct TestRng(u64);

impl Default for TestRng {
    fn default() -> Self {
        TestRng(0x9E37_79B9_7F4A_7C15)
    }
}

impl TestRng {
    /// Another deterministic stream (`seed` must not be 0).
    pub fn seeded(seed: u64) -> Self {
        TestRng(seed | 1)
    }
}

impl crate::CardRng for TestRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}
