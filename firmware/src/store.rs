//! The card's file system: every EF, public or internal, as FID -> bytes,
//! kept in RAM and written out as one image after each command that changed
//! it. One image per commit is what makes a multi-file change (a key, its
//! PrKD and its request) atomic: the [`Storage`] replaces the image whole.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use picohsm_wire::sw::StatusWord;
use sha2::{Digest, Sha256};

use crate::Storage;

const MAGIC: &[u8; 8] = b"PHSMFS01";

/// Total flash the virtual card pretends to have; reported by the free-memory
/// query (docs/protocol.md §2.4) and enforced on writes (6A84).
pub const CAPACITY: usize = 1024 * 1024;

/// Files by FID, with the storage they persist to.
pub struct FileStore {
    files: BTreeMap<u16, Vec<u8>>,
    storage: alloc::boxed::Box<dyn Storage>,
    dirty: bool,
}

impl FileStore {
    /// Loads the image from `storage`; a blank or unreadable image gives an
    /// empty file system (a torn image cannot occur with an atomic storage,
    /// but a corrupted one must not brick the card).
    pub fn open(mut storage: alloc::boxed::Box<dyn Storage>) -> Self {
        let files = storage
            .load()
            .and_then(|img| decode(&img))
            .unwrap_or_default();
        FileStore {
            files,
            storage,
            dirty: false,
        }
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
        self.files.insert(fid, data);
        self.dirty = true;
        Ok(())
    }

    /// Deletes a file; `false` if it did not exist.
    pub fn remove(&mut self, fid: u16) -> bool {
        let had = self.files.remove(&fid).is_some();
        self.dirty |= had;
        had
    }

    /// All FIDs, in ascending order.
    pub fn fids(&self) -> impl Iterator<Item = u16> + '_ {
        self.files.keys().copied()
    }

    /// Removes every file for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(u16) -> bool) {
        let before = self.files.len();
        self.files.retain(|fid, _| keep(*fid));
        self.dirty |= before != self.files.len();
    }

    /// Bytes in use, counting a small per-file overhead.
    pub fn used(&self) -> usize {
        self.files.values().map(|v| v.len() + 8).sum()
    }

    /// Writes the image if anything changed since the last commit.
    /// A failed write is `6581` and the RAM state is rolled back to the last
    /// image that was stored, so what the card answers matches what it holds.
    pub fn commit(&mut self) -> Result<(), StatusWord> {
        if !self.dirty {
            return Ok(());
        }
        let img = encode(&self.files);
        match self.storage.store(&img) {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(_) => {
                self.rollback();
                Err(StatusWord::MEMORY_FAILURE)
            }
        }
    }

    /// Drops uncommitted changes.
    pub fn rollback(&mut self) {
        if self.dirty {
            self.files = self
                .storage
                .load()
                .and_then(|img| decode(&img))
                .unwrap_or_default();
            self.dirty = false;
        }
    }
}

/// Image layout: magic, count (u32), entries (fid u16, len u32, bytes), then
/// SHA-256 of everything before it.
fn encode(files: &BTreeMap<u16, Vec<u8>>) -> Vec<u8> {
    let mut v = Vec::with_capacity(files.values().map(|f| f.len() + 6).sum::<usize>() + 44);
    v.extend_from_slice(MAGIC);
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

fn decode(img: &[u8]) -> Option<BTreeMap<u16, Vec<u8>>> {
    if img.len() < MAGIC.len() + 4 + 32 || &img[..8] != MAGIC {
        return None;
    }
    let (body, hash) = img.split_at(img.len() - 32);
    if Sha256::digest(body).as_slice() != hash {
        return None;
    }
    let count = u32::from_be_bytes(body[8..12].try_into().ok()?) as usize;
    let mut pos = 12;
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let fid = u16::from_be_bytes(body.get(pos..pos + 2)?.try_into().ok()?);
        let len = u32::from_be_bytes(body.get(pos + 2..pos + 6)?.try_into().ok()?) as usize;
        pos += 6;
        files.insert(fid, body.get(pos..pos.checked_add(len)?)?.to_vec());
        pos += len;
    }
    (pos == body.len()).then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::MemStorage;

    #[test]
    fn commit_and_reload() {
        let mem = MemStorage::default();
        let mut fs = FileStore::open(alloc::boxed::Box::new(mem.clone()));
        fs.put(0xCE01, alloc::vec![1, 2, 3]).unwrap();
        fs.put(0x2F02, alloc::vec![]).unwrap();
        fs.commit().unwrap();
        let fs2 = FileStore::open(alloc::boxed::Box::new(mem.clone()));
        assert_eq!(fs2.get(0xCE01), Some(&[1u8, 2, 3][..]));
        assert_eq!(fs2.get(0x2F02), Some(&[][..]));
    }

    #[test]
    fn corrupted_image_loads_empty() {
        let mem = MemStorage::default();
        let mut fs = FileStore::open(alloc::boxed::Box::new(mem.clone()));
        fs.put(1, alloc::vec![9; 10]).unwrap();
        fs.commit().unwrap();
        mem.corrupt();
        let fs2 = FileStore::open(alloc::boxed::Box::new(mem));
        assert_eq!(fs2.fids().count(), 0);
    }

    #[test]
    fn failed_write_rolls_back() {
        let mem = MemStorage::default();
        let mut fs = FileStore::open(alloc::boxed::Box::new(mem.clone()));
        fs.put(1, alloc::vec![1]).unwrap();
        fs.commit().unwrap();
        mem.fail_writes(true);
        fs.put(2, alloc::vec![2]).unwrap();
        assert_eq!(fs.commit(), Err(StatusWord::MEMORY_FAILURE));
        assert!(!fs.exists(2));
        assert!(fs.exists(1));
    }

    #[test]
    fn capacity_is_enforced() {
        let mut fs = FileStore::open(alloc::boxed::Box::new(MemStorage::default()));
        assert_eq!(
            fs.put(1, alloc::vec![0; CAPACITY]),
            Err(StatusWord::FILE_FULL)
        );
    }
}
