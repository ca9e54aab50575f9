//! Read-only hooks for the fuzz targets in `fuzz/` (cargo feature
//! `fuzzing`, off in every build of the workspace).

use alloc::vec::Vec;

use crate::Card;

impl Card {
    /// Every file of the decoded file system as (FID, content), FID
    /// ascending. The fuzzer compares a running card with a card brought up
    /// from the same storage: the image written at each commit must reload
    /// into exactly the files the card answers from, whatever the image's
    /// encoding.
    pub fn files_for_fuzzing(&self) -> Vec<(u16, Vec<u8>)> {
        self.fs
            .fids()
            .filter_map(|f| self.fs.get(f).map(|d| (f, d.to_vec())))
            .collect()
    }
}
