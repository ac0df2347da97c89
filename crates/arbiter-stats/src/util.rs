//! Small numeric helpers shared by the statistics.

use crate::Ratings;

/// Row indices grouped by item (counting sort, stable in input order) and the start offset of
/// each item's rows; `starts` has `n_items + 1` entries.
pub(crate) fn sort_rows_by_item(ratings: &Ratings) -> (Vec<u32>, Vec<usize>) {
    crate::table::group_by_item(ratings.rows(), ratings.n_items())
}

/// Compensated (Kahan) running sum, in the exact form pandas uses for group sums, so that sums
/// of the same terms in the same order agree with crowd-kit to the last bit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Kahan {
    sum: f64,
    compensation: f64,
}

impl Kahan {
    pub(crate) fn add(&mut self, x: f64) {
        let y = x - self.compensation;
        let t = self.sum + y;
        self.compensation = t - self.sum - y;
        self.sum = t;
    }
    pub(crate) fn value(self) -> f64 {
        self.sum
    }
}

/// Linear-interpolation quantile of sorted data (NumPy's default method).
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Percentile interval of the values (sorted in place); `None` if there are none.
pub(crate) fn percentile_interval(
    values: &mut [f64],
    confidence: f64,
) -> Option<crate::alpha::Interval> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Some(crate::alpha::Interval {
        low: quantile_sorted(values, tail),
        high: quantile_sorted(values, 1.0 - tail),
        n_defined: values.len(),
    })
}

/// A seeded xorshift64 stream for tests: reproducible tables without a dependency.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
