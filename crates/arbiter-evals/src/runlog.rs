//! The append-only run log that makes eval runs resumable.
//!
//! One JSON line per finished (sample, epoch), written and synced before the runner moves on,
//! so a line that exists was fully acknowledged. On reopening, a torn last line (the process was
//! killed mid-write) is cut off and reported, and the last line per key wins, so `--retry-errors`
//! can append a success after an error without rewriting history.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether the model answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Answered and scored.
    Ok,
    /// The request failed after retries; `error` says why.
    Error,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// One line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Sample id within the suite.
    pub sample_id: String,
    /// Epoch (0-based).
    pub epoch: u32,
    /// Outcome.
    pub status: Status,
    /// The request sent: `{"technique", "sample": {"id", "category", "target"}, "request":
    /// {messages and parameters}}` (see [`crate::runner::sample_record`]).
    pub request: Value,
    /// The model's reply text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
    /// Whether the response came from the cache.
    #[serde(default)]
    pub cache_hit: bool,
    /// Scorer output (suite-specific).
    #[serde(default)]
    pub scores: Value,
    /// What failed, for `Error` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LogLine {
    /// The key that identifies a unit of work.
    pub fn key(&self) -> (String, u32) {
        (self.sample_id.clone(), self.epoch)
    }
}

/// An open run log.
#[derive(Debug)]
pub struct RunLog {
    path: PathBuf,
    file: File,
    latest: BTreeMap<(String, u32), LogLine>,
    /// Bytes cut from a torn final line when the log was opened (0 when clean).
    pub truncated_bytes: u64,
}

/// Why a run log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RunLogError {
    /// Reading or writing failed.
    #[error("{path}: {cause}")]
    Io {
        /// The log file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A complete line in the middle of the log does not parse: the file was edited or is not a
    /// run log.
    #[error("{path}:{line}: not a run-log line ({message}); refusing to append to it")]
    Corrupt {
        /// The log file.
        path: String,
        /// 1-based line.
        line: usize,
        /// Parser message.
        message: String,
    },
    /// A logged item was asked with other content than the suite's data now gives it (the data
    /// changed under the run): resuming would count an answer to another prompt.
    #[error(
        "{path}: item `{key}` (epoch {epoch}) was asked with another request than the suite's data gives it now ({what}); the data changed since the run began: choose another --out"
    )]
    Changed {
        /// The log file.
        path: String,
        /// The item's key.
        key: String,
        /// Its epoch.
        epoch: u32,
        /// What differs.
        what: String,
    },
}

impl RunLog {
    /// Open (creating if needed) the log at `path`, recovering from a torn last line.
    pub fn open(path: &Path) -> Result<RunLog, RunLogError> {
        let io = |cause| RunLogError::Io {
            path: path.display().to_string(),
            cause,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut latest = BTreeMap::new();
        let mut good_len: u64 = 0;
        let mut reader = BufReader::new(&file);
        let mut buf = Vec::new();
        let mut line_no = 0;
        let mut torn = false;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() != Some(&b'\n') {
                torn = true;
                break;
            }
            let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
            if text.trim().is_empty() {
                good_len += n as u64;
                continue;
            }
            match serde_json::from_str::<LogLine>(&text) {
                Ok(l) => {
                    latest.insert(l.key(), l);
                    good_len += n as u64;
                }
                Err(e) => {
                    return Err(RunLogError::Corrupt {
                        path: path.display().to_string(),
                        line: line_no,
                        message: e.to_string(),
                    });
                }
            }
        }
        drop(reader);
        let total = file.seek(SeekFrom::End(0)).map_err(io)?;
        let truncated_bytes = if torn { total - good_len } else { 0 };
        if torn {
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(RunLog {
            path: path.to_path_buf(),
            file,
            latest,
            truncated_bytes,
        })
    }

    /// Append one line and make it durable before returning.
    pub fn append(&mut self, line: &LogLine) -> Result<(), RunLogError> {
        self.append_all(std::slice::from_ref(line))
    }

    /// Append lines with one write and one sync, durable before returning (group commit). A
    /// crash mid-write leaves whole lines plus at most one torn line, which [`RunLog::open`] cuts.
    pub fn append_all(&mut self, lines: &[LogLine]) -> Result<(), RunLogError> {
        let io = |cause| RunLogError::Io {
            path: self.path.display().to_string(),
            cause,
        };
        let mut bytes = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut bytes, line).expect("log lines serialise");
            bytes.push(b'\n');
        }
        self.file.write_all(&bytes).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        for line in lines {
            self.latest.insert(line.key(), line.clone());
        }
        Ok(())
    }

    /// The latest line per (sample, epoch).
    pub fn latest(&self) -> impl Iterator<Item = &LogLine> {
        self.latest.values()
    }

    /// The latest line of `key`, if logged.
    pub fn get(&self, key: &(String, u32)) -> Option<&LogLine> {
        self.latest.get(key)
    }

    /// The log's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keys still to do: not logged yet, or logged as errors when `retry_errors`.
    pub fn pending(
        &self,
        keys: impl IntoIterator<Item = (String, u32)>,
        retry_errors: bool,
    ) -> Vec<(String, u32)> {
        let mut seen = BTreeSet::new();
        keys.into_iter()
            .filter(|k| seen.insert(k.clone()))
            .filter(|k| match self.latest.get(k) {
                None => true,
                Some(l) => retry_errors && l.status == Status::Error,
            })
            .collect()
    }
}

/// A run log read without changing it: every complete line, parsed and as written, in file
/// order, and the bytes of a torn last line (left out; [`RunLog::open`] would cut them).
#[derive(Debug)]
pub struct LogText {
    /// `(parsed, text without its newline)` per non-blank line.
    pub lines: Vec<(LogLine, String)>,
    /// Bytes of a last line without its newline (0 when clean).
    pub torn_bytes: u64,
}

/// Read the log at `path` (read only); a complete line that does not parse is an error, as in
/// [`RunLog::open`]. A missing file is an empty log.
pub fn read_log(path: &Path) -> Result<LogText, RunLogError> {
    let io = |cause| RunLogError::Io {
        path: path.display().to_string(),
        cause,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let mut lines = Vec::new();
    let mut rest: &[u8] = &bytes;
    let mut line_no = 0;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        line_no += 1;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LogLine>(&text) {
            Ok(l) => lines.push((l, text)),
            Err(e) => {
                return Err(RunLogError::Corrupt {
                    path: path.display().to_string(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(LogText {
        lines,
        torn_bytes: rest.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, epoch: u32, status: Status) -> LogLine {
        LogLine {
            sample_id: id.into(),
            epoch,
            status,
            request: serde_json::json!({"m": id}),
            response: (status == Status::Ok).then(|| "r".to_string()),
            usage: Usage::default(),
            cache_hit: false,
            scores: Value::Null,
            error: (status == Status::Error).then(|| "boom".to_string()),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("arbiter-runlog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn resume_skips_done_and_optionally_retries_errors() {
        let p = tmp("resume");
        {
            let mut log = RunLog::open(&p).unwrap();
            log.append(&line("a", 0, Status::Ok)).unwrap();
            log.append(&line("b", 0, Status::Error)).unwrap();
        }
        let mut log = RunLog::open(&p).unwrap();
        let keys = ["a", "b", "c"].map(|k| (k.to_string(), 0));
        let pending: Vec<String> = log
            .pending(keys.clone(), false)
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(pending, ["c"]);
        let pending: Vec<String> = log
            .pending(keys.clone(), true)
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(pending, ["b", "c"]);
        log.append(&line("b", 0, Status::Ok)).unwrap();
        assert!(log.pending(keys, true).iter().all(|k| k.0 == "c"));
        assert_eq!(log.latest().count(), 2);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn torn_last_line_is_cut_and_reported() {
        let p = tmp("torn");
        {
            let mut log = RunLog::open(&p).unwrap();
            log.append(&line("a", 0, Status::Ok)).unwrap();
        }
        let whole = std::fs::read(&p).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        let torn: &[u8] = b"{\"sample_id\": \"b\", \"ep";
        f.write_all(torn).unwrap();
        drop(f);
        let mut log = RunLog::open(&p).unwrap();
        assert_eq!(log.truncated_bytes, torn.len() as u64);
        assert_eq!(std::fs::read(&p).unwrap(), whole);
        log.append(&line("b", 0, Status::Ok)).unwrap();
        drop(log);
        let log = RunLog::open(&p).unwrap();
        assert_eq!(log.latest().count(), 2);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn corrupt_middle_line_is_refused() {
        let p = tmp("corrupt");
        std::fs::write(&p, "not json\n{}\n").unwrap();
        let e = RunLog::open(&p).unwrap_err();
        assert!(e.to_string().contains(":1: not a run-log line"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
