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

/// Where a command's output goes: standard output, or a file written atomically.
pub enum Output {
    /// Standard output (`-` or no path).
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A file.
    File(AtomicFile),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

impl Output {
    /// Everything is written: flush standard output, or put the file in place.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File(f) => f.finish(),
        }
    }
}

/// A file that appears whole or not at all. Bytes go to a temporary file beside the target;
/// [`AtomicFile::finish`] flushes, syncs and renames it into place (then syncs the directory).
/// Dropped unfinished (an error on the way, a full disk), the temporary file is removed and the
/// target keeps whatever it held before. Write errors name the target.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Start writing `path` (its parent directories are created).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?;
        remove_stale_temps(path, name);
        let tmp = path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(BufWriter::new(file)),
        })
    }

    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("cannot write {}: {e}", self.path.display()),
        )
    }

    /// Put the file in place.
    pub fn finish(mut self) -> Result<()> {
        let mut w = self.file.take().expect("an unfinished file has its writer");
        let done = w
            .flush()
            .and_then(|()| w.get_ref().sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        drop(w);
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(self.named(e).into());
        }
        sync_parent(&self.path);
        Ok(())
    }
}

/// Removes the temporary files of earlier writers of `path` that were killed before they could
/// (kill -9, power loss): `.NAME.PID.tmp` whose PID no longer runs. A PID still running may be
/// another writer at work, so its file stays. Needs `/proc` (Linux); elsewhere nothing is removed.
fn remove_stale_temps(path: &Path, name: &std::ffi::OsStr) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Makes a rename in `path`'s directory durable (best effort: not every file system can).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self.file.as_mut().expect("writes go to an unfinished file");
        w.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let w = self.file.as_mut().expect("writes go to an unfinished file");
        w.flush().map_err(|e| self.named(e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Create an output: standard output for `-` / no path, else an [`AtomicFile`]. Call
/// [`Output::finish`] when done; an output dropped unfinished leaves no file.
pub fn create(path: Option<&Path>) -> Result<Output> {
    match path {
        None => Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock()))),
        Some(p) if p.as_os_str() == "-" => {
            Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock())))
        }
        Some(p) => Ok(Output::File(AtomicFile::create(p)?)),
    }
}

/// Marks a directory a report command wrote, so the next one may replace it whole.
pub const REPORT_MARKER: &str = ".arbiter-report";

/// A run's output directory built beside its target and swapped into place whole: a kill at
/// any point leaves the target holding the previous run's files or this run's, never a mix.
/// Files are written into [`StagedDir::path`]; [`StagedDir::commit`] exchanges it with the
/// target in one `rename` (Linux `RENAME_EXCHANGE`) and removes the old files. Dropped without
/// commit, the staging directory is removed. Holds the target's [`RunDirLock`] throughout.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    _lock: RunDirLock,
    _staging_lock: Option<RunDirLock>,
    committed: bool,
}

impl StagedDir {
    /// Locks `target` (creating it empty when new), clears what killed runs left beside it,
    /// and starts a fresh staging directory marked with `marker`. A target that holds files
    /// but no `marker` (not an earlier run's output) is refused: committing replaces the whole
    /// directory.
    pub fn begin(target: &Path, marker: &str) -> Result<StagedDir> {
        std::fs::create_dir_all(target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        let lock = lock_run_dir(target)?;
        let foreign = std::fs::read_dir(target)
            .with_context(|| format!("cannot read {}", target.display()))?
            .flatten()
            .any(|e| e.file_name() != ".arbiter.lock")
            && !target.join(marker).is_file();
        if foreign {
            bail!(
                "{} holds files that no earlier run wrote (no {marker}); its contents would be replaced: choose a new or empty directory",
                target.display()
            );
        }
        let real = target
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", target.display()))?;
        let (Some(name), Some(parent)) = (real.file_name(), real.parent()) else {
            bail!(
                "{} has no parent directory to stage beside",
                target.display()
            );
        };
        let (name, parent) = (name.to_string_lossy().into_owned(), parent.to_path_buf());
        let prefix = format!(".{name}.staging-");
        // Holding the lock, no other run is writing beside this target: anything staged is a
        // killed run's leftover.
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let staging = parent.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        // The staged directory becomes the target: it carries a held lock of its own, so the
        // target stays locked after the exchange.
        let staging_lock = lock_run_dir(&staging)?;
        write_file(
            &staging.join(marker),
            "Written by arbiter; the whole directory is replaced by the next run.\n",
        )?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            staging,
            _lock: lock,
            _staging_lock: Some(staging_lock),
            committed: false,
        })
    }

    /// Where this run writes its files.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Swap the staged files into place and remove the previous ones.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.staging);
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.staging,
            rustix::fs::CWD,
            &self.target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .with_context(|| {
            format!(
                "cannot move {} into place at {}",
                self.staging.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        sync_parent(&self.target);
        // The previous run's files now sit at the staging path.
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(())
    }
}

/// Syncs every file directly in `dir`, and `dir` itself.
fn sync_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(f) = File::open(e.path()) {
                let _ = f.sync_all();
            }
        }
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// `path` as the file system resolves it, for comparing paths: an existing file canonically, a
/// new one by its canonical directory and name.
pub fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.canonicalize().ok()?,
        None => std::env::current_dir().ok()?,
    };
    Some(dir.join(path.file_name()?))
}

/// Refuses outputs that would overwrite an input or each other (`--out` equal to the input,
/// `--log` equal to `--out`): each pair is `(flag, path)`; standard streams (`-`) never clash.
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    fn real<'a>(list: &[(&'a str, &Path)]) -> Vec<(&'a str, PathBuf)> {
        list.iter()
            .filter(|(_, p)| p.as_os_str() != "-")
            .filter_map(|(flag, p)| Some((*flag, resolved(p)?)))
            .collect()
    }
    let ins = real(inputs);
    let outs = real(outputs);
    for (i, (flag, out)) in outs.iter().enumerate() {
        if let Some((what, _)) = ins.iter().find(|(_, p)| p == out) {
            bail!(
                "{flag} {} is the {what}: it would be overwritten",
                out.display()
            );
        }
        if let Some((other, _)) = outs[..i].iter().find(|(_, p)| p == out) {
            bail!("{flag} and {other} are the same file {}", out.display());
        }
    }
    Ok(())
}

/// Write a whole file atomically (see [`AtomicFile`]).
pub fn write_file(path: &Path, contents: &str) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(contents.as_bytes())?;
    f.finish()
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

/// Read samples from a JSONL file, or a Parquet file when the name ends in `.parquet` (then
/// `line` is the 0-based row); ids must be unique (a repeated id is a bad line).
pub fn read_samples(path: &Path, problems: &mut Problems) -> Result<Vec<Located<Sample>>> {
    let source = path.display().to_string();
    if arbiter_columnar::is_parquet(path) {
        let rows = arbiter_columnar::samples::read(path)?;
        let records = located_rows(rows, &source, problems, |s| s.id.to_string())?;
        if records.is_empty() && !problems.allow_empty {
            bail!("{source} holds no samples (pass --allow-empty to accept that)");
        }
        return Ok(records);
    }
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

/// The rows of a Parquet file that parsed, each at its row; a bad row or a repeated `key` is
/// an error or a reported skip, as `problems` says.
fn located_rows<T>(
    rows: Vec<arbiter_columnar::samples::Row<T>>,
    source: &str,
    problems: &mut Problems,
    key: impl Fn(&T) -> String,
) -> Result<Vec<Located<T>>> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        match r.record {
            Err(e) => problems.report(RecordError::at_row(source, r.row, e))?,
            Ok(record) => match first.entry(key(&record)) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    problems.report(RecordError::at_row(
                        source,
                        r.row,
                        FieldError::new(
                            "id",
                            format!(
                                "duplicate id `{}` (first on row {}): each must be unique",
                                o.key(),
                                o.get()
                            ),
                        ),
                    ))?;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(r.row);
                    records.push(Located {
                        line: r.row,
                        record,
                    });
                }
            },
        }
    }
    Ok(records)
}

/// The format of a records output (grades, scores, classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// One JSON object per line.
    Jsonl,
    /// A Parquet file (snappy); needs an output file.
    Parquet,
}

impl RecordFormat {
    /// `--format` when given, else Parquet for an output named `*.parquet`, else JSONL. A flag
    /// that contradicts the name, or Parquet to standard output, is refused.
    pub fn choose(flag: Option<RecordFormat>, out: Option<&Path>) -> Result<RecordFormat> {
        let parquet = choose_parquet(
            "--format",
            flag.map(|f| f == RecordFormat::Parquet),
            "jsonl",
            out,
        )?;
        Ok(if parquet {
            RecordFormat::Parquet
        } else {
            RecordFormat::Jsonl
        })
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Jsonl => "jsonl",
            RecordFormat::Parquet => "parquet",
        }
    }
}

/// Whether an output is Parquet: `flag` (`Some(true)` for `FLAG parquet`, `Some(false)` for
/// `FLAG TEXT`) when given, else whether `out` is named `*.parquet`. A flag that contradicts
/// the name, or Parquet to standard output, is refused.
pub fn choose_parquet(
    flag_name: &str,
    flag: Option<bool>,
    text: &str,
    out: Option<&Path>,
) -> Result<bool> {
    let named = out.filter(|p| p.as_os_str() != "-");
    let by_name = named.map(arbiter_columnar::is_parquet);
    match (flag, by_name) {
        (Some(false), Some(true)) => bail!(
            "{flag_name} {text} but {} ends in .parquet",
            named.map(|p| p.display().to_string()).unwrap_or_default()
        ),
        (Some(true), None) => {
            bail!("{flag_name} parquet writes a file: pass --out FILE.parquet")
        }
        (Some(f), _) => Ok(f),
        (None, Some(f)) => Ok(f),
        (None, None) => Ok(false),
    }
}

/// A Parquet file written atomically (see [`AtomicFile`]) from a schema and batches.
pub fn write_parquet(path: &Path, table: arbiter_columnar::Table) -> Result<()> {
    write_parquet_with_metadata(path, table, &[])
}

/// [`write_parquet`] with key-value pairs in the file's footer.
pub fn write_parquet_with_metadata(
    path: &Path,
    table: arbiter_columnar::Table,
    metadata: &[(&str, &str)],
) -> Result<()> {
    arbiter_columnar::file::write_table_with_metadata(
        AtomicFile::create(path)?,
        path,
        table,
        metadata,
    )?
    .finish()
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
    /// Read a grades file (JSONL, or Parquet by its `.parquet` name); duplicate ids are an
    /// error (or skipped).
    pub fn read(path: &Path, problems: &mut Problems) -> Result<GradeIndex> {
        let source = path.display().to_string();
        let (records, in_rows) = if arbiter_columnar::is_parquet(path) {
            let mut records = Vec::new();
            for r in arbiter_columnar::grades::read(path)? {
                match r.record {
                    Ok(record) => records.push(Located {
                        line: r.row,
                        record,
                    }),
                    Err(e) => problems.report(RecordError::at_row(&source, r.row, e))?,
                }
            }
            (records, true)
        } else {
            let parsed = jsonl::read_with(open(path)?, &source, problems.mode(), |v, _| {
                GradeRecord::from_value(v)
            })?;
            problems.extend(parsed.skipped);
            (parsed.records, false)
        };
        let mut by_id = HashMap::new();
        for Located { line, record } in records {
            let id = record.id.clone();
            if by_id.insert(id.clone(), record).is_some() {
                let error = FieldError::new("id", format!("id {id} is graded twice"));
                problems.report(if in_rows {
                    RecordError::at_row(&source, line, error)
                } else {
                    RecordError::new(&source, line, error)
                })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temporary_file_is_removed_by_the_next_writer() {
        let dir = arbiter_testkit::TempDir::new("stale-temps");
        let target = dir.path("out.jsonl");
        // PIDs never exceed 2^22 on Linux: this writer is certainly gone.
        let stale = dir.write(".out.jsonl.999999999.tmp", "half a line");
        // PID 1 always runs: its file may be a live writer's.
        let alive = dir.write(".out.jsonl.1.tmp", "x");
        let other = dir.write(".out.jsonl.b.999999999.tmp", "another target's");
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"whole\n").unwrap();
        f.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "whole\n");
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists(), "the dead writer's file is gone");
        }
        assert!(
            alive.exists() && other.exists(),
            "only NAME.PID.tmp of dead PIDs goes"
        );
    }
}
