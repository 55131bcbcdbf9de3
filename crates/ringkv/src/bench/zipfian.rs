//! YCSB's zipfian generators (Gray et al., "Quickly generating
//! billion-record synthetic databases"), so popularity skew matches what
//! YCSB numbers elsewhere were measured with.

/// YCSB's zipfian constant.
pub const THETA: f64 = 0.99;
/// The scrambled generator draws from this many items, then hashes the
/// draw onto the real key space: the hot items are then spread over the
/// key space instead of being the lowest ids.
const SCRAMBLE_ITEMS: u64 = 10_000_000_000;
/// ζ(10^10, 0.99), precomputed by YCSB (summing 10^10 terms takes minutes).
const SCRAMBLE_ZETA: f64 = 26.469_028_201_783_02;

/// Zipfian over `0..n`: item 0 is the most popular. `n` may grow between
/// draws (D's inserts); ζ(n) is then extended incrementally.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    zetan: f64,
    zeta2: f64,
    alpha: f64,
    eta: f64,
}

impl Zipfian {
    pub fn new(items: u64) -> Zipfian {
        Self::with_zeta(items, zeta(0, items, 0.0))
    }

    fn with_zeta(items: u64, zetan: f64) -> Zipfian {
        let mut z = Zipfian {
            items,
            zetan,
            zeta2: zeta(0, 2, 0.0),
            alpha: 1.0 / (1.0 - THETA),
            eta: 0.0,
        };
        z.eta = z.eta_for(items);
        z
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - THETA)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// A draw in `0..items` from the uniform `u` in `[0, 1)`.
    pub fn next(&mut self, items: u64, u: f64) -> u64 {
        if items > self.items {
            self.zetan = zeta(self.items, items, self.zetan);
            self.items = items;
            self.eta = self.eta_for(items);
        }
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(THETA) {
            return 1.min(items - 1);
        }
        let spread = (self.eta * u - self.eta + 1.0).powf(self.alpha);
        ((items as f64 * spread) as u64).min(items - 1)
    }
}

/// ζ(to) = Σ_{i=1..=to} 1/i^θ, given `sum` = ζ(from).
fn zeta(from: u64, to: u64, sum: f64) -> f64 {
    (from..to).fold(sum, |acc, i| acc + 1.0 / ((i + 1) as f64).powf(THETA))
}

/// YCSB's scrambled zipfian over `0..items`: zipfian popularity, hot ids
/// scattered by a hash.
#[derive(Clone, Debug)]
pub struct ScrambledZipfian {
    items: u64,
    inner: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> ScrambledZipfian {
        ScrambledZipfian {
            items,
            inner: Zipfian::with_zeta(SCRAMBLE_ITEMS, SCRAMBLE_ZETA),
        }
    }

    pub fn next(&mut self, u: f64) -> u64 {
        fnv64(self.inner.next(SCRAMBLE_ITEMS, u)) % self.items
    }
}

/// YCSB's 64-bit FNV-1a over the 8 little-endian bytes of `value`: the
/// scramble above and the key names.
pub fn fnv64(value: u64) -> u64 {
    let hash = value
        .to_le_bytes()
        .iter()
        .fold(0xCBF2_9CE4_8422_2325u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
        });
    (hash as i64).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    const ITEMS: u64 = 1000;
    const DRAWS: usize = 100_000;

    fn draws(seed: u64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut zipf = ScrambledZipfian::new(ITEMS);
        (0..DRAWS).map(|_| zipf.next(rng.random())).collect()
    }

    fn counts(draws: &[u64], items: u64) -> Vec<usize> {
        let mut counts = vec![0; items as usize];
        for &d in draws {
            counts[d as usize] += 1;
        }
        counts
    }

    #[test]
    fn scrambled_zipfian_is_skewed_in_range_and_seeded() {
        let draws = draws(7);
        assert!(draws.iter().all(|&d| d < ITEMS));
        let counts = counts(&draws, ITEMS);
        let uniform_share = DRAWS / ITEMS as usize;
        let hottest = *counts.iter().max().unwrap();
        // Item 0 alone takes 1/ζ ≈ 3.8% of the draws: ~38× a uniform share.
        assert!(
            hottest > 20 * uniform_share,
            "hottest key drawn {hottest} times, a uniform share is {uniform_share}"
        );
        // The hot ids are scattered, not the lowest ones.
        let hot = counts.iter().position(|&c| c == hottest).unwrap();
        assert_ne!(hot, 0);
        assert_eq!(draws, super::tests::draws(7), "same seed, same draws");
        assert_ne!(draws, super::tests::draws(8));
    }

    #[test]
    fn plain_zipfian_favours_low_ids_and_grows() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut zipf = Zipfian::new(ITEMS);
        let draws: Vec<u64> = (0..DRAWS).map(|_| zipf.next(ITEMS, rng.random())).collect();
        let counts = counts(&draws, ITEMS);
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // Growing the item count extends ζ exactly as computing it afresh.
        zipf.next(2 * ITEMS, 0.5);
        let fresh = Zipfian::new(2 * ITEMS);
        assert!((zipf.zetan - fresh.zetan).abs() < 1e-9);
        assert!((0..1000).all(|i| zipf.next(2 * ITEMS, f64::from(i) / 1000.0) < 2 * ITEMS));
    }
}
