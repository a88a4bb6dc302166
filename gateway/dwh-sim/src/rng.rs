//! A small deterministic generator (SplitMix64).
//!
//! The population must be identical for a given seed on every machine and with every
//! dependency version, so the simulator carries its own generator instead of relying on
//! `rand`'s unspecified algorithms.

/// SplitMix64: fast, well distributed, and stable by construction.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        finalize(self.0)
    }

    /// A value in `0..n` (`n > 0`), by multiply-shift (bias is negligible for our sizes).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// An index into a slice of `len` items (`len > 0`).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(u32::try_from(len).unwrap_or(u32::MAX)) as usize
    }

    /// A value in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille
    }

    /// An index chosen with the given relative weights (not all zero).
    pub(crate) fn weighted(&mut self, weights: &[u16]) -> usize {
        let total: u32 = weights.iter().map(|&w| u32::from(w)).sum();
        let mut roll = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            let w = u32::from(w);
            if roll < w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }
}

/// Mixes two values into one well-distributed value: derives sub-seeds and per-record
/// values (photo, fingerprints) without storing them.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    finalize(a ^ finalize(b.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_is_deterministic() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..10_000 {
            let x = a.below(13);
            assert!(x < 13);
            assert_eq!(x, b.below(13));
        }
    }

    #[test]
    fn weighted_never_picks_zero_weight() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            assert_ne!(rng.weighted(&[5, 0, 3]), 1);
        }
    }
}
