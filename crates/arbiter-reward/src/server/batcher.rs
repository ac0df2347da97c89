//! Cross-request batching: requests queue their samples; grader threads take as many queued
//! requests as fit one grader batch, score them in one call and answer each request with its
//! own slice. Eight trainers sending one sample each fill one batch of eight instead of making
//! eight grader calls.
//!
//! The queue is bounded in samples: a request that would overfill it is turned away at once
//! (HTTP 429 with `Retry-After` from the measured throughput) instead of waiting unboundedly,
//! so a trainer backs off and memory stays flat under overload.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arbiter_core::Sample;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::model::{Reward, RewardModel, SampleError};

/// How requests are batched and bounded.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// At most this many samples per grader call (requests are never split, so one larger
    /// request makes one larger call).
    pub max_batch: usize,
    /// After the first request of a batch arrives, wait this long for more when the batch is
    /// not yet full (0: take what is queued).
    pub batch_wait: Duration,
    /// Samples allowed to wait; a request that would exceed it is refused with 429.
    pub queue_samples: usize,
    /// Grader threads (1 for the embedded grader, which uses every core per call; more for an
    /// HTTP grader whose calls mostly wait).
    pub workers: usize,
}

/// Why a queued request got no rewards.
#[derive(Debug, Clone)]
pub enum JobError {
    /// One of its samples could not be scored (index within the request).
    Sample(SampleError),
    /// The grader failed for the whole batch.
    Grader(String),
}

/// What became of a submitted request.
pub enum Submitted {
    /// Queued: the rewards (or the error) arrive on the receiver.
    Queued(oneshot::Receiver<Result<Vec<Reward>, JobError>>),
    /// The queue is full; try again after this many seconds.
    Full {
        /// Suggested wait, whole seconds, at least 1.
        retry_after: u64,
    },
    /// The server is shutting down.
    Closed,
}

struct Job {
    samples: Vec<Sample>,
    reply: oneshot::Sender<Result<Vec<Reward>, JobError>>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    queued: usize,
    closed: bool,
    /// Samples per second over recent batches (exponentially weighted), for `Retry-After`.
    throughput: Option<f64>,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    config: BatchConfig,
    model: Arc<RewardModel>,
    metrics: Arc<Metrics>,
}

/// The queue and its grader threads.
pub struct Batcher {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Batcher {
    /// Start `config.workers` grader threads over `model`.
    pub fn start(
        model: Arc<RewardModel>,
        metrics: Arc<Metrics>,
        config: BatchConfig,
    ) -> std::io::Result<Batcher> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            config,
            model,
            metrics,
        });
        let workers = (0..shared.config.workers.max(1))
            .map(|k| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("reward-grader-{k}"))
                    .spawn(move || work(&shared))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Batcher {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Queue a request's samples (all or none).
    pub fn submit(&self, samples: Vec<Sample>) -> Submitted {
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Submitted::Closed;
        }
        let n = samples.len();
        // An empty queue takes any request (its size is bounded by the request limits), so a
        // request larger than the queue is still served rather than refused forever.
        if state.queued > 0 && state.queued + n > self.shared.config.queue_samples {
            let rate = state.throughput.unwrap_or(1.0).max(1e-3);
            let retry_after = ((state.queued as f64 / rate).ceil() as u64).clamp(1, 60);
            return Submitted::Full { retry_after };
        }
        let (reply, receiver) = oneshot::channel();
        state.queued += n;
        state.jobs.push_back(Job { samples, reply });
        drop(state);
        self.shared.ready.notify_one();
        Submitted::Queued(receiver)
    }

    /// Samples waiting for a grader thread.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).queued
    }

    /// Refuse new requests, let the grader threads finish what is queued, and wait for them.
    pub fn shutdown(&self) {
        lock(&self.shared.state).closed = true;
        self.shared.ready.notify_all();
        let workers = std::mem::take(&mut *lock(&self.workers));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One grader thread: take a batch, score it, answer each request, until closed and drained.
fn work(shared: &Shared) {
    loop {
        let jobs = {
            let mut state = lock(&shared.state);
            while state.jobs.is_empty() && !state.closed {
                state = shared.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.jobs.is_empty() {
                return;
            }
            if !shared.config.batch_wait.is_zero()
                && state.queued < shared.config.max_batch
                && !state.closed
            {
                let (s, _) = shared
                    .ready
                    .wait_timeout(state, shared.config.batch_wait)
                    .unwrap_or_else(|p| p.into_inner());
                state = s;
            }
            take_batch(&mut state, shared.config.max_batch)
        };
        if jobs.is_empty() {
            continue;
        }
        run_batch(shared, jobs);
    }
}

/// The queued requests that fit one batch: always the first, then whole requests while they
/// fit. Requests whose client has gone are dropped unscored.
fn take_batch(state: &mut State, max_batch: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut size = 0;
    while let Some(job) = state.jobs.front() {
        let n = job.samples.len();
        if !jobs.is_empty() && size + n > max_batch {
            break;
        }
        let job = state.jobs.pop_front().expect("front exists");
        state.queued -= n;
        if job.reply.is_closed() {
            continue;
        }
        size += n;
        jobs.push(job);
    }
    jobs
}

fn run_batch(shared: &Shared, jobs: Vec<Job>) {
    let samples: Vec<Sample> = jobs
        .iter()
        .flat_map(|j| j.samples.iter().cloned())
        .collect();
    let started = Instant::now();
    // A panic in the grader fails this batch's requests, not the thread: the server keeps
    // serving instead of queueing forever behind a dead grader thread.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shared.model.score_each(&samples)
    }));
    let outcome = match outcome {
        Ok(Ok(scored)) => Ok(scored),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("internal error: the grader panicked on this batch".to_string()),
    };
    let took = started.elapsed();
    let m = &shared.metrics;
    match outcome {
        Err(message) => {
            for job in jobs {
                let _ = job.reply.send(Err(JobError::Grader(message.clone())));
            }
        }
        Ok((results, stats)) => {
            m.samples.fetch_add(samples.len() as u64, Ordering::Relaxed);
            m.graded.fetch_add(stats.graded as u64, Ordering::Relaxed);
            m.cache_hits
                .fetch_add(stats.cache_hits as u64, Ordering::Relaxed);
            m.grader_micros
                .fetch_add(stats.grader_time.as_micros() as u64, Ordering::Relaxed);
            if stats.graded > 0 {
                m.batches.fetch_add(1, Ordering::Relaxed);
            }
            let mut results = results.into_iter();
            for job in jobs {
                let mine: Vec<Result<Reward, SampleError>> =
                    results.by_ref().take(job.samples.len()).collect();
                let answer = mine
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.map_err(|e| JobError::Sample(e.at(i))))
                    .collect();
                let _ = job.reply.send(answer);
            }
        }
    }
    let rate = samples.len() as f64 / took.as_secs_f64().max(1e-6);
    let mut state = lock(&shared.state);
    state.throughput = Some(match state.throughput {
        Some(old) => 0.8 * old + 0.2 * rate,
        None => rate,
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::PropositionSpec;
    use arbiter_graders::{Grader, GraderError, PropositionGrade, SampleGrades};
    use arbiter_rbr::Policy;
    use arbiter_rbr::pipeline;
    use arbiter_rbr::reward::FitConfig;

    /// Answers 0.5 everywhere, and panics on a completion reading "boom".
    struct Fragile;

    impl Grader for Fragile {
        fn describe(&self) -> String {
            "fragile".into()
        }

        fn grade_batch(
            &self,
            samples: &[Sample],
            propositions: &[PropositionSpec],
        ) -> Result<Vec<SampleGrades>, GraderError> {
            assert!(
                samples.iter().all(|s| s.completion_text() != "boom"),
                "boom"
            );
            Ok(samples
                .iter()
                .map(|s| SampleGrades {
                    id: s.id.clone(),
                    grades: propositions
                        .iter()
                        .map(|p| (p.name.clone(), PropositionGrade::clean(0.5, None)))
                        .collect(),
                })
                .collect())
        }
    }

    fn examples() -> Vec<Sample> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/conversations.jsonl"
        );
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .enumerate()
            .map(|(i, l)| Sample::from_value(serde_json::from_str(l).unwrap(), i).unwrap())
            .collect()
    }

    #[test]
    fn a_grader_panic_fails_its_batch_and_the_next_request_is_served() {
        let policy = Policy::default_policy();
        let samples = examples();
        let rows: Vec<_> = samples
            .iter()
            .map(|s| pipeline::prepare(&policy, s, None, None).unwrap())
            .collect();
        let weights = pipeline::fit(&policy, &rows, false, &FitConfig::default())
            .unwrap()
            .model;
        let model = RewardModel::new(policy, weights, Box::new(Fragile)).unwrap();
        let config = BatchConfig {
            max_batch: 1,
            batch_wait: Duration::ZERO,
            queue_samples: 10,
            workers: 1,
        };
        let batcher = Batcher::start(Arc::new(model), Arc::default(), config).unwrap();
        let answer = |samples: Vec<Sample>| match batcher.submit(samples) {
            Submitted::Queued(rx) => rx.blocking_recv().expect("an answer, not a dropped reply"),
            _ => panic!("not queued"),
        };
        let mut boom = samples[0].clone();
        boom.completion[0].content = "boom".into();
        match answer(vec![boom]) {
            Err(JobError::Grader(message)) => assert!(message.contains("panicked"), "{message}"),
            other => panic!("expected a grader error, got {other:?}"),
        }
        let rewards = answer(vec![samples[1].clone()]).expect("served after the panic");
        assert_eq!(rewards.len(), 1);
        assert!(rewards[0].reward.is_finite());
        batcher.shutdown();
    }
}
