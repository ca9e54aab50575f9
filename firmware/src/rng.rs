//! The card's source of randomness, as an object-safe trait, and the adapter
//! that hands it to RustCrypto crates (rand_core 0.10).

use core::convert::Infallible;

/// A cryptographically secure random source. Any `rand_core::CryptoRng`
/// (e.g. the OS generator on a workstation, the TRNG on a device) is one.
pub trait CardRng: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<R: rand_core::CryptoRng + Send> CardRng for R {
    fn fill(&mut self, buf: &mut [u8]) {
        self.fill_bytes(buf)
    }
}

/// Presents a [`CardRng`] to crates that take `rand_core::CryptoRng`.
pub struct Adapter<'a>(pub &'a mut dyn CardRng);

impl rand_core::TryRng for Adapter<'_> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Adapter<'_> {}
