//! The harnesses behind the cargo-fuzz targets in `fuzz_targets/`: each
//! target is one call into this crate, so the harnesses can also be run by
//! hand on a file (`cargo run --example replay`).
//!
//! An input is read with a [`Reader`]: a byte at a time, never failing (an
//! exhausted input reads as zeros and ends the operation loop), so every
//! input is a valid program and libFuzzer mutates programs, not just bytes.

pub mod firmware;
pub mod module;
pub mod wire;

/// Reads a fuzzer input front to back.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 at the end.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// A byte string preceded by its length in one byte.
    pub fn short(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }

    /// A byte string preceded by its length in two bytes.
    pub fn long(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}
