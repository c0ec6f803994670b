//! xorshift64*: a fixed, dependency-free stream of pseudo-random numbers,
//! replayable from its seed. A file of its own so that the fuzz crate's
//! replay test (fuzz/tests/replay.rs) can include it too.

/// The generator; its state is the seed (not 0) to begin with.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (not 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// 16 to 527 bytes.
    pub fn bytes(&mut self) -> Vec<u8> {
        let len = 16 + (self.next() % 512) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}
