//! Running a suite: ask the model for every pending work item, score the reply, append one
//! durable log line per item.
//!
//! Workers are plain threads calling a blocking [`ChatModel`]; HTTP clients bring their own
//! retries, back-off and adaptive concurrency, and the runner caps requests in flight. Replies
//! are scored on separate threads, so a slow grader never holds a model slot. A single
//! writer (the calling thread) appends log lines, so the log never interleaves and a line exists
//! only for a finished item. It writes every line that is ready and then syncs once (group
//! commit), so a slow disk does not throttle many requests in flight. Rerunning after a crash
//! asks only for items without a line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::runlog::{LogLine, RunLog, RunLogError, Status, Usage};
use crate::suite::{Suite, WorkItem};

/// One chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// `{role, content}` messages.
    pub messages: Vec<ChatMessage>,
    /// Completion token limit.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Epoch, so repeated epochs are distinct requests (and distinct cache entries).
    pub epoch: u32,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatReply {
    /// Generated text.
    pub text: String,
    /// Token usage.
    pub usage: Usage,
    /// Served from a response cache.
    pub cache_hit: bool,
}

/// Anything that answers chat requests, blocking the calling thread.
pub trait ChatModel: Sync {
    /// Description for logs and summaries (`openai:NAME@URL`).
    fn describe(&self) -> String;
    /// Answer one request; errors are final (retries are the model's business).
    fn chat(&self, request: &ChatRequest) -> Result<ChatReply, String>;
    /// Estimated spend so far in US dollars (0 for models that cost nothing).
    fn cost_usd(&self) -> f64 {
        0.0
    }
}

/// Turns a reply into the scores a suite's summary reads (see [`crate::summary`]).
pub trait Scorer: Sync {
    /// Score one reply. An error (the grader or judge could not be asked) fails the item, so
    /// `--retry-errors` redoes it; an answer that cannot be read is a score of its own (e.g.
    /// `{"judge_error": …}`), counted as unscored by the summary.
    fn score(&self, item: &WorkItem, reply: &str) -> Result<Value, String>;
    /// Estimated spend of the scorer's own model calls so far, in US dollars.
    fn cost_usd(&self) -> f64 {
        0.0
    }
}

/// Runner settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Redo items whose last line is an error.
    pub retry_errors: bool,
    /// Stop starting new items once this many tokens were used (prompt + completion).
    pub token_limit: Option<u64>,
    /// Stop starting new items once the model and the scorer have spent this many US dollars in
    /// this invocation.
    pub cost_limit: Option<f64>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            concurrency: 16,
            retry_errors: false,
            token_limit: None,
            cost_limit: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunStats {
    /// Items asked in this invocation.
    pub attempted: usize,
    /// Of which failed.
    pub failed: usize,
    /// Items skipped because the log already had them.
    pub already_done: usize,
    /// Tokens used in this invocation.
    pub tokens: u64,
    /// Replies served from the model's cache.
    pub cache_hits: usize,
    /// Spent by the model and the scorer in this invocation, US dollars.
    pub cost_usd: f64,
    /// The token or cost limit stopped the run early.
    pub stopped_by_limit: bool,
}

/// The request for a work item.
pub fn request_for(suite: &Suite, item: &WorkItem) -> ChatRequest {
    let mut messages = Vec::new();
    if let Some(system) = &suite.solver.system_prompt {
        messages.push(ChatMessage {
            role: "system".into(),
            content: system.clone(),
        });
    }
    messages.push(ChatMessage {
        role: "user".into(),
        content: item.user_message.clone(),
    });
    ChatRequest {
        messages,
        max_tokens: suite.solver.max_tokens,
        temperature: suite.solver.temperature,
        epoch: item.epoch,
    }
}

/// Every logged item must have been asked exactly what its work item asks now (messages, and
/// the sample's category and target): the log is keyed by id, and an id whose content changed
/// is another item. Checked before anything is asked.
fn check_logged_content(
    suite: &Suite,
    items: &[WorkItem],
    log: &RunLog,
) -> Result<(), RunLogError> {
    check_logged(suite, items, log.path(), &|key| log.get(key))
}

/// [`check_logged_content`] over any lookup of the latest line per (key, epoch), for readers of
/// a log other than [`RunLog`] (`arbiter eval merge`); `path` names the log in the error.
pub fn check_logged<'a>(
    suite: &Suite,
    items: &[WorkItem],
    path: &std::path::Path,
    latest: &dyn Fn(&(String, u32)) -> Option<&'a LogLine>,
) -> Result<(), RunLogError> {
    for item in items {
        let key = (item.key.clone(), item.epoch);
        let Some(line) = latest(&key) else { continue };
        let asked = &line.request["request"]["messages"];
        let now =
            serde_json::to_value(&request_for(suite, item).messages).expect("messages serialise");
        let what = if *asked != now {
            Some("the prompt differs")
        } else if line.request["sample"] != sample_record(item) {
            Some("its category or target differs")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(RunLogError::Changed {
                path: path.display().to_string(),
                key: key.0,
                epoch: key.1,
                what: what.to_string(),
            });
        }
    }
    Ok(())
}

/// Run every pending item of `items`, appending to `log`. `progress(done, total)` is called after
/// each line is written.
pub fn run(
    suite: &Suite,
    items: &[WorkItem],
    model: &dyn ChatModel,
    scorer: &dyn Scorer,
    log: &mut RunLog,
    config: &RunConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunStats, RunLogError> {
    check_logged_content(suite, items, log)?;
    let keys: Vec<(String, u32)> = items.iter().map(|i| (i.key.clone(), i.epoch)).collect();
    let pending_keys = log.pending(keys, config.retry_errors);
    let pending: Vec<&WorkItem> = {
        let wanted: std::collections::HashSet<&(String, u32)> = pending_keys.iter().collect();
        items
            .iter()
            .filter(|i| wanted.contains(&(i.key.clone(), i.epoch)))
            .collect()
    };
    let mut stats = RunStats {
        already_done: items.len() - pending.len(),
        ..RunStats::default()
    };
    let total = pending.len();
    if total == 0 {
        return Ok(stats);
    }
    let next = Mutex::new(0usize);
    let stop = AtomicBool::new(false);
    let workers = config.concurrency.clamp(1, total);
    // Two stages, so a model slot is free again as soon as its reply arrives: `workers` threads
    // ask the model, as many score the replies (graders and judges are model calls too). A reply
    // is handed to a free scorer directly (rendezvous) and finished lines wait in a queue of
    // `workers`, so nothing runs far ahead of what is durably logged: when a limit is reached,
    // at most three more items per worker are finished (one being asked, one being scored, one
    // queued), and they are logged because they were paid for.
    let (asked_tx, asked_rx) = mpsc::sync_channel::<Asked<'_>>(0);
    let asked_rx = Mutex::new(asked_rx);
    let (tx, rx) = mpsc::sync_channel::<LogLine>(workers);
    let result = std::thread::scope(|scope| {
        for _ in 0..workers {
            let asked_tx = asked_tx.clone();
            let (next, stop, pending) = (&next, &stop, &pending);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let index = {
                        let mut n = next.lock().expect("work counter");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&item) = pending.get(index) else {
                        return;
                    };
                    if asked_tx.send(ask(suite, item, model)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(asked_tx);
        for _ in 0..workers {
            let tx = tx.clone();
            let (asked_rx, stop) = (&asked_rx, &stop);
            scope.spawn(move || {
                let mut writer_gone = false;
                loop {
                    let asked = asked_rx.lock().expect("asked queue").recv();
                    let Ok(asked) = asked else {
                        return;
                    };
                    // Once the writer has stopped, keep draining (without scoring) so that no
                    // model thread blocks on a full queue.
                    if writer_gone {
                        continue;
                    }
                    if tx.send(asked.score(scorer)).is_err() {
                        writer_gone = true;
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        drop(tx);
        // Owned here, so an early return closes the queue and the scorers stop sending.
        let rx = rx;
        let mut written = 0;
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.clear();
            batch.push(first);
            // At most one line per worker per commit: workers that answer instantly would
            // otherwise keep the batch growing, and the limits below would be checked late.
            batch.extend(rx.try_iter().take(workers.saturating_sub(1)));
            for line in &batch {
                stats.attempted += 1;
                if line.status == Status::Error {
                    stats.failed += 1;
                }
                if line.cache_hit {
                    stats.cache_hits += 1;
                }
                stats.tokens += line.usage.prompt_tokens + line.usage.completion_tokens;
            }
            // Limits are checked before the commit so workers stop taking items as early as
            // possible; the lines already answered are still written (they were paid for).
            let over_tokens = config
                .token_limit
                .is_some_and(|limit| stats.tokens >= limit);
            let over_cost = config
                .cost_limit
                .is_some_and(|limit| model.cost_usd() + scorer.cost_usd() >= limit);
            if (over_tokens || over_cost) && !stop.swap(true, Ordering::Relaxed) {
                stats.stopped_by_limit = true;
            }
            if let Err(e) = log.append_all(&batch) {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
            written += batch.len();
            progress(written, total);
        }
        Ok(())
    });
    stats.cost_usd = model.cost_usd() + scorer.cost_usd();
    result.map(|()| stats)
}

/// What the report needs to know about a work item without the dataset: the sample's id (the
/// bootstrap resamples these), its category and its target. Stored in each log line's
/// `request.sample`, so a run directory is self-contained.
pub fn sample_record(item: &WorkItem) -> Value {
    json!({
        "id": item.sample.id,
        "category": item.sample.category,
        "target": item.sample.target,
    })
}

/// A work item the model has answered (or failed), waiting to be scored.
struct Asked<'a> {
    item: &'a WorkItem,
    line: LogLine,
    reply: Result<ChatReply, String>,
}

fn ask<'a>(suite: &Suite, item: &'a WorkItem, model: &dyn ChatModel) -> Asked<'a> {
    let request = request_for(suite, item);
    let request_json = serde_json::to_value(&request).expect("requests serialise");
    let line = LogLine {
        sample_id: item.key.clone(),
        epoch: item.epoch,
        status: Status::Ok,
        request: json!({
            "technique": item.technique,
            "sample": sample_record(item),
            "request": request_json,
        }),
        response: None,
        usage: Usage::default(),
        cache_hit: false,
        scores: Value::Null,
        error: None,
    };
    Asked {
        item,
        line,
        reply: model.chat(&request),
    }
}

impl Asked<'_> {
    /// The finished log line: the model's error, or its reply with the scorer's verdict.
    fn score(self, scorer: &dyn Scorer) -> LogLine {
        let base = self.line;
        match self.reply {
            Err(e) => LogLine {
                status: Status::Error,
                error: Some(e),
                ..base
            },
            Ok(reply) => {
                let (status, scores, error) = match scorer.score(self.item, &reply.text) {
                    Ok(s) => (Status::Ok, s, None),
                    Err(e) => (Status::Error, Value::Null, Some(format!("scoring: {e}"))),
                };
                LogLine {
                    status,
                    response: Some(reply.text),
                    usage: reply.usage,
                    cache_hit: reply.cache_hit,
                    scores,
                    error,
                    ..base
                }
            }
        }
    }
}

/// Scores BBQ replies by reading the chosen option (no model needed).
pub struct ChoiceScorer;

impl Scorer for ChoiceScorer {
    fn score(&self, item: &WorkItem, reply: &str) -> Result<Value, String> {
        match &item.sample.target {
            crate::dataset::Target::Choice { choices, .. } => {
                Ok(json!({"answer": crate::dataset::parse_choice(reply, choices)}))
            }
            other => Err(format!(
                "choice scorer needs a multiple-choice sample, got {other:?}"
            )),
        }
    }
}

/// A model shared by reference across threads, counting its calls (for tests and accounting).
pub struct Counting<M> {
    /// The wrapped model.
    pub inner: M,
    /// Calls made.
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl<M: ChatModel> ChatModel for Counting<M> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatReply, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.chat(request)
    }

    fn cost_usd(&self) -> f64 {
        self.inner.cost_usd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{EvalSample, Target};
    use crate::metrics::Expected;
    use std::sync::atomic::AtomicUsize;

    struct Scripted {
        fail_containing: Option<&'static str>,
    }

    impl ChatModel for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn chat(&self, request: &ChatRequest) -> Result<ChatReply, String> {
            let text = &request.messages.last().unwrap().content;
            if self.fail_containing.is_some_and(|f| text.contains(f)) {
                return Err("HTTP 500 after 4 retries".into());
            }
            Ok(ChatReply {
                text: "I can't help with that.".into(),
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                },
                cache_hit: false,
            })
        }
    }

    struct RefusalByText;
    impl Scorer for RefusalByText {
        fn score(&self, _item: &WorkItem, reply: &str) -> Result<Value, String> {
            let refused = f64::from(u8::from(reply.contains("can't")));
            Ok(json!({"refused": refused, "unsafe": 0.0}))
        }
    }

    fn samples(n: usize) -> Vec<EvalSample> {
        (0..n)
            .map(|i| EvalSample {
                id: format!("s{i}"),
                prompt: format!("prompt {i}"),
                target: Target::Behaviour {
                    expected: Expected::Comply,
                },
                category: "c".into(),
            })
            .collect()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("arbiter-runner-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn every_item_once_then_resume_asks_nothing() {
        let suite = Suite::built_in("refusal").unwrap();
        let items = suite.work(&samples(40));
        let path = tmp("once");
        let calls = Arc::new(AtomicUsize::new(0));
        let model = Counting {
            inner: Scripted {
                fail_containing: Some("prompt 7"),
            },
            calls: calls.clone(),
        };
        let mut log = RunLog::open(&path).unwrap();
        let mut seen = 0;
        let stats = run(
            &suite,
            &items,
            &model,
            &RefusalByText,
            &mut log,
            &RunConfig::default(),
            &mut |done, total| {
                assert!(done <= total);
                seen = done;
            },
        )
        .unwrap();
        assert_eq!((stats.attempted, stats.failed, seen), (40, 1, 40));
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        drop(log);

        let mut log = RunLog::open(&path).unwrap();
        let stats = run(
            &suite,
            &items,
            &model,
            &RefusalByText,
            &mut log,
            &RunConfig::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((stats.attempted, stats.already_done), (0, 40));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            40,
            "finished items are never asked again"
        );

        let retry = RunConfig {
            retry_errors: true,
            ..RunConfig::default()
        };
        let fixed = Counting {
            inner: Scripted {
                fail_containing: None,
            },
            calls: calls.clone(),
        };
        let stats = run(
            &suite,
            &items,
            &fixed,
            &RefusalByText,
            &mut log,
            &retry,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((stats.attempted, stats.failed), (1, 0));
        assert_eq!(calls.load(Ordering::SeqCst), 41);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 41, "the retried item appends; history is kept");
        let s = crate::summary::summarise(
            &suite,
            "m",
            &items,
            &log.latest().map(|l| (l.key(), l.clone())).collect(),
        );
        assert_eq!((s.n_ok, s.n_errors, s.n_pending), (40, 0, 0));
        assert_eq!(s.metrics["not_overrefuse"], json!(0.0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn token_limit_stops_starting_new_items() {
        let suite = Suite::built_in("xstest").unwrap();
        let items = suite.work(&samples(100));
        let path = tmp("limit");
        let mut log = RunLog::open(&path).unwrap();
        let config = RunConfig {
            concurrency: 1,
            token_limit: Some(150),
            ..RunConfig::default()
        };
        let model = Scripted {
            fail_containing: None,
        };
        let stats = run(
            &suite,
            &items,
            &model,
            &RefusalByText,
            &mut log,
            &config,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(stats.stopped_by_limit);
        // The 10th line reaches the limit; with one worker at most three more were in flight
        // (asked, scoring, queued).
        assert!(stats.attempted >= 10 && stats.attempted <= 13, "{stats:?}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn choice_scorer_reads_letters() {
        let suite = Suite::built_in("bbq").unwrap();
        let sample = EvalSample {
            id: "b".into(),
            prompt: "q".into(),
            target: Target::Choice {
                choices: vec!["x".into(), "y".into(), "unknown".into()],
                label: 2,
                unknown: 2,
                biased: 0,
                ambiguous: true,
            },
            category: "Age".into(),
        };
        let item = &suite.work(&[sample])[0];
        assert_eq!(
            ChoiceScorer.score(item, "(B)").unwrap(),
            json!({"answer": 1})
        );
        assert_eq!(
            ChoiceScorer.score(item, "hmm").unwrap(),
            json!({"answer": null})
        );
    }
}
