//! Seeded percentile bootstrap: the pieces every report shares.
//!
//! - [`percentile`]: linear interpolation between order statistics (NumPy's default method);
//! - [`stream`]: a generator per named slice of a report, from the report's seed and the slice's
//!   name (FNV-1a), so adding or removing another slice or run never changes this slice's draws;
//! - [`resample_strata`]: one bootstrap replicate as cluster indices, drawn with replacement
//!   within each stratum.
//!
//! The draw order is part of the contract (golden fixtures reproduce it in Python): for each
//! stratum in the order given, `len` draws of `rng.below(len)`.

use crate::rng::SeededRng;

/// Percentile `q ∈ [0, 1]` of sorted, non-empty data with linear interpolation (NumPy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The central `confidence` percentile interval of `values` (sorted in place); `None` when empty.
pub fn percentile_interval(values: &mut [f64], confidence: f64) -> Option<[f64; 2]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Some([percentile(values, tail), percentile(values, 1.0 - tail)])
}

/// 64-bit FNV-1a hash of a string (stable across platforms and releases).
pub fn fnv1a64(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The generator of one named slice: `SeededRng::new(seed ^ fnv1a64(label))`.
pub fn stream(seed: u64, label: &str) -> SeededRng {
    SeededRng::new(seed ^ fnv1a64(label))
}

/// One replicate: for each stratum (a list of cluster indices), as many draws with replacement
/// from it as it has members. Appends to `out` after clearing it.
pub fn resample_strata(rng: &mut SeededRng, strata: &[Vec<usize>], out: &mut Vec<usize>) {
    out.clear();
    for stratum in strata {
        let n = stratum.len();
        for _ in 0..n {
            out.push(stratum[rng.below(n)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert!((percentile(&v, 0.025) - 1.075).abs() < 1e-12);
        let mut w = vec![4.0, 1.0, 3.0, 2.0];
        let [lo, hi] = percentile_interval(&mut w, 0.95).unwrap();
        assert!((lo - 1.075).abs() < 1e-12 && (hi - 3.925).abs() < 1e-12);
        assert_eq!(percentile_interval(&mut [], 0.95), None);
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn strata_keep_their_sizes_and_members() {
        let strata = vec![vec![0, 1, 2], vec![3], vec![4, 5]];
        let mut rng = stream(0, "x");
        let mut out = Vec::new();
        for _ in 0..50 {
            resample_strata(&mut rng, &strata, &mut out);
            assert_eq!(out.len(), 6);
            assert!(out[..3].iter().all(|i| *i < 3));
            assert_eq!(out[3], 3);
            assert!(out[4..].iter().all(|i| *i == 4 || *i == 5));
        }
    }
}
