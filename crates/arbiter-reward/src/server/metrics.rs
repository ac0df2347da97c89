//! Counters for `/metrics`, in the Prometheus text format (written by hand: a dozen lines do
//! not need a metrics crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by route and status code.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Request latency histogram (cumulative counts per bucket, then +Inf), sum in µs.
    latency: Mutex<Histogram>,
    /// Samples scored.
    pub samples: AtomicU64,
    /// Samples the grader graded (cache misses).
    pub graded: AtomicU64,
    /// Samples answered from the grade cache.
    pub cache_hits: AtomicU64,
    /// Grader calls (batches) made.
    pub batches: AtomicU64,
    /// Time inside the grader, µs.
    pub grader_micros: AtomicU64,
    /// Requests turned away because the queue was full.
    pub rejected_full: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum_micros: u64,
}

impl Metrics {
    /// Count one answered request.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        *lock(&self.requests).entry((route, status)).or_default() += 1;
        let mut h = lock(&self.latency);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        h.counts[bucket] += 1;
        h.sum_micros += took.as_micros() as u64;
    }

    /// The Prometheus exposition; `queued` and `cached` are gauges read at the call.
    pub fn render(&self, queued: usize, cached: usize) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP arbiter_reward_requests_total Requests answered, by route and status code.\n# TYPE arbiter_reward_requests_total counter\n");
        for ((route, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "arbiter_reward_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP arbiter_reward_request_duration_seconds Time from a request's arrival to its answer.\n# TYPE arbiter_reward_request_duration_seconds histogram\n");
        let h = lock(&self.latency);
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += h.counts[i];
            let _ = writeln!(
                out,
                "arbiter_reward_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += h.counts[BUCKETS.len()];
        let _ = writeln!(
            out,
            "arbiter_reward_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\narbiter_reward_request_duration_seconds_sum {}\narbiter_reward_request_duration_seconds_count {cumulative}",
            h.sum_micros as f64 / 1e6
        );
        drop(h);
        let counters = [
            (
                "arbiter_reward_samples_total",
                "Samples scored.",
                get(&self.samples),
            ),
            (
                "arbiter_reward_graded_total",
                "Samples graded (grade cache misses).",
                get(&self.graded),
            ),
            (
                "arbiter_reward_cache_hits_total",
                "Samples answered from the grade cache.",
                get(&self.cache_hits),
            ),
            (
                "arbiter_reward_grader_batches_total",
                "Grader calls made.",
                get(&self.batches),
            ),
            (
                "arbiter_reward_rejected_total",
                "Requests turned away with 429 because the queue was full.",
                get(&self.rejected_full),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP arbiter_reward_grader_seconds_total Time spent inside the grader.\n# TYPE arbiter_reward_grader_seconds_total counter\narbiter_reward_grader_seconds_total {}",
            get(&self.grader_micros) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP arbiter_reward_queued_samples Samples waiting for the grader.\n# TYPE arbiter_reward_queued_samples gauge\narbiter_reward_queued_samples {queued}\n# HELP arbiter_reward_cache_entries Grades held in the cache.\n# TYPE arbiter_reward_cache_entries gauge\narbiter_reward_cache_entries {cached}"
        );
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_match() {
        let m = Metrics::default();
        m.request("/v1/rewards", 200, Duration::from_millis(3));
        m.request("/v1/rewards", 200, Duration::from_millis(30));
        m.request("/get_reward", 422, Duration::from_secs(100));
        let text = m.render(7, 2);
        assert!(
            text.contains("arbiter_reward_requests_total{route=\"/v1/rewards\",code=\"200\"} 2")
        );
        assert!(
            text.contains("arbiter_reward_requests_total{route=\"/get_reward\",code=\"422\"} 1")
        );
        assert!(text.contains("arbiter_reward_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("arbiter_reward_request_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("arbiter_reward_request_duration_seconds_bucket{le=\"30\"} 2"));
        assert!(text.contains("arbiter_reward_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("arbiter_reward_request_duration_seconds_sum 100.033"));
        assert!(text.contains("arbiter_reward_queued_samples 7"));
        assert!(text.contains("arbiter_reward_cache_entries 2"));
    }
}
