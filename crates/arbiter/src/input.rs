//! Reading samples, grades and policies from files, with `file:line: field` errors.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arbiter_core::jsonl::{self, Located, OnInvalid};
use arbiter_core::{FieldError, GradeRecord, RecordError, Sample, SampleId};
use arbiter_rbr::Policy;

/// Open a file for reading, or standard input for `-`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    if path.is_dir() {
        bail!("{} is a directory; expected a file", path.display());
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(BufReader::new(file)))
}

/// Create a file for writing (parents included), or standard output for `-` / no path.
pub fn create(path: Option<&Path>) -> Result<Box<dyn Write>> {
    match path {
        None => Ok(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Some(p) => {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Ok(Box::new(BufWriter::new(f)))
        }
    }
}

/// Write a whole file atomically enough for reports: write, then rename into place.
pub fn write_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// An exclusive hold on a run directory for one process: a second run on the same directory
/// would ask the model for every item again and log each twice. The kernel's `flock` on
/// `DIR/.arbiter.lock` is released when the process ends, kill -9 included, so a stale lock never
/// needs cleaning up. Held until dropped.
#[derive(Debug)]
pub struct RunDirLock {
    _file: File,
}

/// Locks the run directory `dir` (which exists) or says which process holds it.
pub fn lock_run_dir(dir: &Path) -> Result<RunDirLock> {
    let path = dir.join(".arbiter.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            bail!(
                "{} is in use by another arbiter run ({}); wait for it to finish or choose another --out",
                dir.display(),
                if holder.is_empty() {
                    "process unknown".to_string()
                } else {
                    format!("pid {holder}")
                }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // The pid is only for the message above; the lock itself is the flock.
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            file.write_all(pid.as_bytes())?;
            file.sync_all()
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(RunDirLock { _file: file })
}

/// The root that suites' relative dataset paths start from: `--data`, else `$ARBITER_DATA`,
/// else `../shared/data` (the layout of a checkout beside the shared data).
pub fn data_root(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("ARBITER_DATA").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => PathBuf::from("../shared/data"),
        },
    }
}

/// Load the policy from a file, or the built-in default.
pub fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy {}", p.display()))?;
            Ok(Policy::from_toml_str(&text, &p.display().to_string())?)
        }
    }
}

/// Collects bad lines when the user asked to skip them, or fails on the first.
pub struct Problems {
    mode: OnInvalid,
    skipped: Vec<RecordError>,
    allow_empty: bool,
    max_line_bytes: usize,
}

impl Problems {
    /// Fail on the first problem unless `skip_invalid`.
    pub fn new(skip_invalid: bool) -> Self {
        Problems {
            mode: if skip_invalid {
                OnInvalid::Skip
            } else {
                OnInvalid::Fail
            },
            skipped: Vec::new(),
            allow_empty: false,
            max_line_bytes: jsonl::DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// The longest sample line read (`--max-sample-bytes`); a longer one is a bad line.
    pub fn with_line_limit(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes;
        self
    }

    /// Whether a file without any sample is accepted (otherwise it is an error: an empty
    /// output from an empty input looks like success).
    pub fn allowing_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }

    /// How JSONL readers should treat bad lines.
    pub fn mode(&self) -> OnInvalid {
        self.mode
    }

    /// Record a problem: an error in fail mode, a reported skip otherwise.
    pub fn report(&mut self, err: RecordError) -> Result<()> {
        match self.mode {
            OnInvalid::Fail => Err(err.into()),
            OnInvalid::Skip => {
                eprintln!("arbiter: skipped {err}");
                self.skipped.push(err);
                Ok(())
            }
        }
    }

    /// Take the skips a reader collected.
    pub fn extend(&mut self, errors: Vec<RecordError>) {
        for e in &errors {
            eprintln!("arbiter: skipped {e}");
        }
        self.skipped.extend(errors);
    }

    /// Print a one-line summary of what was skipped, if anything.
    pub fn summarise(&self) {
        if !self.skipped.is_empty() {
            eprintln!(
                "arbiter: {} invalid line(s) skipped; the rest was processed",
                self.skipped.len()
            );
        }
    }
}

/// Read samples from a JSONL file; ids must be unique (a repeated id is a bad line).
pub fn read_samples(path: &Path, problems: &mut Problems) -> Result<Vec<Located<Sample>>> {
    let source = path.display().to_string();
    let parsed = jsonl::read_with_limit(
        open(path)?,
        &source,
        problems.mode(),
        problems.max_line_bytes,
        Sample::from_value,
    )?;
    let parsed =
        jsonl::reject_duplicates(parsed, &source, "id", problems.mode(), |s| s.id.to_string())?;
    let skipped = parsed.skipped.len();
    problems.extend(parsed.skipped);
    if parsed.records.is_empty() && !problems.allow_empty {
        bail!(
            "{source} holds no samples{} (pass --allow-empty to accept that)",
            if skipped > 0 {
                format!(": all {skipped} line(s) were invalid")
            } else {
                String::new()
            }
        );
    }
    Ok(parsed.records)
}

/// Where proposition values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureSource {
    /// The samples' own human labels.
    Human,
    /// Grade the samples now with the `--grader` (P(yes) per proposition).
    Grader,
    /// A grades file (`{"id", "propositions": {name: p_yes}}` per line).
    Grades(PathBuf),
}

impl FeatureSource {
    /// Parse the `--features` value: `human`, `grader` or a path.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(FeatureSource::Human),
            "grader" => Ok(FeatureSource::Grader),
            "" => Err("expected `human`, `grader` or a grades file".into()),
            _ => Ok(FeatureSource::Grades(PathBuf::from(s))),
        }
    }
}

/// Grades indexed by sample id.
pub struct GradeIndex {
    source: String,
    by_id: HashMap<SampleId, GradeRecord>,
}

impl GradeIndex {
    /// Read a grades file; duplicate ids are an error (or skipped).
    pub fn read(path: &Path, problems: &mut Problems) -> Result<GradeIndex> {
        let source = path.display().to_string();
        let parsed = jsonl::read_with(open(path)?, &source, problems.mode(), |v, _| {
            GradeRecord::from_value(v)
        })?;
        problems.extend(parsed.skipped);
        let mut by_id = HashMap::new();
        for Located { line, record } in parsed.records {
            let id = record.id.clone();
            if by_id.insert(id.clone(), record).is_some() {
                problems.report(RecordError::new(
                    &source,
                    line,
                    FieldError::new("id", format!("id {id} is graded twice")),
                ))?;
            }
        }
        if by_id.is_empty() {
            bail!("{source}: no grades found");
        }
        Ok(GradeIndex { source, by_id })
    }

    /// The grades of one sample.
    pub fn get(&self, id: &SampleId) -> Result<&GradeRecord, FieldError> {
        self.by_id.get(id).ok_or_else(|| {
            FieldError::new(
                "id",
                format!(
                    "no grades for id {id} in {}; grade this file first",
                    self.source
                ),
            )
        })
    }
}
