//! Generic long-format readers: one rating per CSV row or JSONL line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use arbiter_stats::RatingsBuilder;
use serde_json::Value;

use crate::{Columns, Loaded, Options, Problem, ReadError};

fn open(path: &Path) -> Result<File, ReadError> {
    File::open(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })
}

/// Read a CSV (or TSV when the file ends in `.tsv`) or JSONL file, chosen by extension.
pub fn read_path(path: &Path, columns: &Columns, options: &Options) -> Result<Loaded, ReadError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => read_csv(path, columns, options),
        "tsv" => read_csv_file(path, b'\t', columns, options),
        "jsonl" | "ndjson" => read_jsonl(path, columns, options),
        _ => Err(ReadError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Read a comma-separated file with a header row.
pub fn read_csv(path: &Path, columns: &Columns, options: &Options) -> Result<Loaded, ReadError> {
    read_csv_file(path, b',', columns, options)
}

/// A delimited file. A regular file is read by [`read_simple_stream`], in chunks that stay in
/// the cache (reading a large file whole costs a page fault per 4 KiB of buffer, more than
/// parsing it), and read again by the csv crate when it turns out not to be plain; anything else
/// (a pipe) is read whole.
fn read_csv_file(
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    read_csv_file_with(path, delimiter, columns, options, Split::DEFAULT)
}

/// [`read_csv_file`], reading a plain file as `split` says.
fn read_csv_file_with(
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
    split: Split,
) -> Result<Loaded, ReadError> {
    let mut file = open(path)?;
    let io = |cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return read_csv_buffered(Vec::new(), file, path, delimiter, columns, options);
    }
    let size = meta.len() as usize;
    if let Some(loaded) = read_simple_stream(&file, size, path, delimiter, columns, options, split)?
    {
        return Ok(loaded);
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    read_csv_general(file, path, delimiter, columns, options)
}

/// `str::trim`, answered without decoding when both ends are visibly not whitespace (a
/// printable ASCII byte, `!`..=DEL: one comparison), which is nearly every field of a large file.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    let clear = |b: u8| b.wrapping_sub(b'!') <= 0x7f - b'!';
    match s.as_bytes() {
        [first, .., last] if clear(*first) && clear(*last) => s,
        [only] if clear(*only) => s,
        _ => s.trim(),
    }
}

/// Collects rows into a builder and bad rows into problems.
pub(crate) struct Collector {
    pub(crate) builder: RatingsBuilder,
    pub(crate) problems: Vec<Problem>,
    pub(crate) file: PathBuf,
    /// Problems of the fast path by line number (field, message), made into [`Problem`]s
    /// after `problems` when the read finishes: the second half of a file read on another
    /// thread learns where its lines start only when the first half is done.
    numbered: Vec<(usize, Option<String>, String)>,
}

impl Collector {
    pub(crate) fn new(file: &Path, options: &Options, group_names: Vec<String>) -> Self {
        Collector {
            builder: RatingsBuilder::new(options.domain.clone(), group_names),
            problems: Vec::new(),
            file: file.to_path_buf(),
            numbered: Vec::new(),
        }
    }

    /// A problem at line `number` of the fast path.
    fn line_problem(&mut self, number: usize, field: Option<&str>, message: impl Into<String>) {
        self.numbered
            .push((number, field.map(str::to_string), message.into()));
    }

    /// Add the rows and problems of `later`, which read the lines that follow this one's,
    /// numbering them from `first_line` (the 0-based index of its first line here, with its
    /// own numbers counted from a first line of index 0).
    fn append(&mut self, later: Collector, first_line: usize) {
        self.builder.append(later.builder);
        self.numbered.extend(
            later
                .numbered
                .into_iter()
                .map(|(n, field, message)| (n.wrapping_add(first_line), field, message)),
        );
    }

    pub(crate) fn problem(
        &mut self,
        location: String,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.file.clone(),
            location,
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    /// Add a row, or record why it cannot be added. Empty ids and labels are problems; empty
    /// group values are missing values.
    pub(crate) fn row(
        &mut self,
        location: impl Fn() -> String,
        names: [&str; 3],
        item: &str,
        rater: &str,
        label: &str,
        groups: &[Option<&str>],
    ) {
        let (item, rater, label) = (trim(item), trim(rater), trim(label));
        for (name, v) in names.iter().zip([item, rater, label]) {
            if v.is_empty() {
                self.problem(location(), Some(name), "empty value");
                return;
            }
        }
        if let Err(e) = self.builder.push(item, rater, label, groups) {
            self.problem(location(), Some(names[2]), e.to_string());
        }
    }

    pub(crate) fn finish(mut self, options: &Options) -> Result<Loaded, ReadError> {
        for (number, field, message) in std::mem::take(&mut self.numbered) {
            self.problem(format!("line {number}"), field.as_deref(), message);
        }
        let ratings = self
            .builder
            .build(options.duplicates)
            .map_err(|cause| ReadError::Table {
                path: self.file.clone(),
                cause,
            })?;
        Ok(Loaded {
            ratings,
            problems: self.problems,
        })
    }
}

/// Read delimited text from any reader; `path` is used in messages only.
///
/// The input is read whole, then parsed by [`read_simple`] when it is plain (valid UTF-8, no
/// quote character, no bare carriage return, no byte-order mark), which is what almost every
/// exported ratings file looks like; anything else goes through the `csv` crate. Both paths give
/// the same table and the same problems, line for line.
pub fn read_csv_from(
    reader: impl Read,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    read_csv_buffered(Vec::new(), reader, path, delimiter, columns, options)
}

/// [`read_csv_from`] into the buffer `bytes`.
fn read_csv_buffered(
    mut bytes: Vec<u8>,
    mut reader: impl Read,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    if reader.read_to_end(&mut bytes).is_err() {
        // Let the csv crate meet the error again and report it where it happens, as before.
        return read_csv_general(
            bytes.as_slice().chain(reader),
            path,
            delimiter,
            columns,
            options,
        );
    }
    if let Some(text) = simple_text(&bytes, delimiter) {
        return read_simple(text, path, delimiter, columns, options);
    }
    read_csv_general(bytes.as_slice(), path, delimiter, columns, options)
}

/// The input as text when the fast path reads it exactly as the csv crate would: valid UTF-8,
/// no quote (so no quoted fields), every `\r` followed by `\n` (the csv crate also ends records
/// at a bare `\r`, and does not count it as a line), no byte-order mark, an ASCII delimiter.
fn simple_text(bytes: &[u8], delimiter: u8) -> Option<&str> {
    if !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\r' | b'\n') {
        return None;
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return None;
    }
    // One pass finds both quotes and carriage returns.
    for i in memchr::memchr2_iter(b'"', b'\r', bytes) {
        if bytes[i] == b'"' || bytes.get(i + 1) != Some(&b'\n') {
            return None;
        }
    }
    std::str::from_utf8(bytes).ok()
}

/// Byte offsets of the fields of one line (no terminator), reusing `ends`: field j is
/// `line[starts(j)..ends[j]]` with start 0 or one past the previous end.
fn split_fields(line: &[u8], delimiter: u8, ends: &mut Vec<usize>) {
    ends.clear();
    for (i, &b) in line.iter().enumerate() {
        if b == delimiter {
            ends.push(i);
        }
    }
    ends.push(line.len());
}

/// Field `j` of a line split by [`split_fields`].
fn field<'a>(line: &'a str, ends: &[usize], j: usize) -> &'a str {
    let start = if j == 0 { 0 } else { ends[j - 1] + 1 };
    &line[start..ends[j]]
}

/// The line number the csv crate reports for a record, given the previous record (or header):
/// its 0-based line index and whether it ended in `\r\n`. The crate numbers a record by the
/// newlines it has consumed when the previous record ended: blank lines in between are not
/// counted yet, and a `\r\n` record ends at the `\r`, before its newline. Reports keep these
/// numbers so that they do not change with the fast path.
fn csv_line(prev: (usize, bool)) -> usize {
    // Wrapping: a second half read on its own numbers its lines from 0 and takes the line
    // before it as line −1 (see `Collector::append`).
    prev.0.wrapping_add(if prev.1 { 1 } else { 2 })
}

/// The first non-blank line (terminator removed) with its line index and whether it ended in
/// `\r\n`, and the text after it.
fn header_and_body(text: &str) -> (Option<(&str, usize, bool)>, &str) {
    let mut rest = text;
    let mut index = 0;
    loop {
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (line, crlf) = match line.strip_suffix('\r') {
            Some(l) => (l, true),
            None => (line, false),
        };
        if !line.is_empty() {
            return (Some((line, index, crlf)), after);
        }
        index += 1;
        if after.is_empty() {
            return (None, "");
        }
        rest = after;
    }
}

/// Where the mapped columns are, from the header line (`None` when the text has none).
fn fields_from_header<'a>(
    header: Option<&str>,
    path: &Path,
    delimiter: u8,
    columns: &'a Columns,
) -> Result<Fields<'a>, ReadError> {
    let mut ends = Vec::new();
    let headers: Vec<&str> = match header {
        Some(header) => {
            split_fields(header.as_bytes(), delimiter, &mut ends);
            (0..ends.len()).map(|j| field(header, &ends, j)).collect()
        }
        None => Vec::new(),
    };
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| ReadError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                available: headers.join(", "),
            })
    };
    Ok(Fields {
        names: [
            columns.item.as_str(),
            columns.rater.as_str(),
            columns.label.as_str(),
        ],
        item: find(&columns.item)?,
        rater: find(&columns.rater)?,
        label: find(&columns.label)?,
        groups: columns
            .groups
            .iter()
            .map(|g| find(g))
            .collect::<Result<Vec<_>, _>>()?,
        n: headers.len(),
        delimiter,
    })
}

/// The fast path of [`read_csv_from`] for text accepted by [`simple_text`]: split lines and
/// fields in place, no per-row allocation, same checks and messages as the csv-crate path.
fn read_simple(
    text: &str,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    let (header, body) = header_and_body(text);
    let fields = fields_from_header(header.map(|h| h.0), path, delimiter, columns)?;
    let header_line = header.map_or((0, false), |(_, n, crlf)| (n, crlf));
    let before = text.len() - body.len();
    let first_line = memchr::memchr_iter(b'\n', &text.as_bytes()[..before]).count();
    let mut out = Collector::new(path, options, columns.groups.clone());
    // One row per line at most: reserving up front avoids regrowing the row vectors.
    out.builder
        .reserve(memchr::memchr_iter(b'\n', body.as_bytes()).count() + 1);
    // A first stretch of about 1/32 of the text shows how fast new items come, so that the
    // item table can be sized once for the whole file.
    let cut = memchr::memchr(b'\n', &body.as_bytes()[body.len() / 32..])
        .map_or(body.len(), |i| body.len() / 32 + i + 1);
    let (head, tail) = body.split_at(cut);
    let state = add_lines(&mut out, head, (first_line, header_line), &fields);
    out.builder.expect_rows(head.len(), body.len());
    add_lines(&mut out, tail, state, &fields);
    out.finish(options)
}

/// How [`read_simple_stream`] reads a plain file: in two halves from `two_halves` bytes of
/// rows on, `chunk` bytes at a time, a thread that is done taking over the second half of what
/// the other has left when that is at least `steal` bytes.
#[derive(Debug, Clone, Copy)]
struct Split {
    two_halves: usize,
    chunk: usize,
    steal: usize,
}

impl Split {
    /// Two halves from 2 MiB of rows on (below that a thread costs more than it saves); chunks
    /// of 128 KiB, enough to make system calls rare, few enough to stay in the core's L2 cache
    /// while their rows are added; taking over from 512 KiB left (about a millisecond of work,
    /// several times the cost of one more table to append).
    const DEFAULT: Split = Split {
        two_halves: 2 << 20,
        chunk: 128 << 10,
        steal: 512 << 10,
    };
}

/// The part of a byte range that its reader has not claimed yet, `(next, end)`: the reader
/// claims a chunk at a time, and another thread may cut off the tail (see [`steal`]).
type Claim = Mutex<(usize, usize)>;

fn lock(claim: &Claim) -> MutexGuard<'_, (usize, usize)> {
    claim.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cut off the second half of what is left unclaimed of `claim` at a line start (see
/// [`split_point`]): the range taken, and whether the line before it ended in `\r\n`. `None`
/// when fewer than `at_least` bytes (and at least one) are left, or no cut is found before the
/// reader gets there.
fn steal(
    file: &File,
    claim: &Claim,
    at_least: usize,
    delimiter: u8,
) -> Option<(std::ops::Range<usize>, bool)> {
    let (next, end) = *lock(claim);
    if end - next < at_least.max(1) {
        return None;
    }
    let (at, crlf) = split_point(file, next + (end - next) / 2, delimiter)?;
    let mut claim = lock(claim);
    if at <= claim.0 || at >= claim.1 {
        return None;
    }
    let end = std::mem::replace(&mut claim.1, at);
    Some((at..end, crlf))
}

/// [`read_simple`] on a regular file of `size` bytes, read a chunk at a time into a reused
/// buffer (its pages are faulted in once; reading the file whole costs a fault per 4 KiB).
/// `Ok(None)` when the file is not plain after all, or cannot be read: the caller then reads
/// it with the csv crate, which gives what reading it whole would have given.
///
/// A large file is read in two halves on two threads, each into a table of its own, and the
/// second table is appended to the first ([`RatingsBuilder::append`]; a pass over its rows
/// and, for a file grouped by item, one batch check of its item names). Splitting the work
/// this way, instead of one thread splitting lines and the other adding the rows, halves
/// every part of reading, page faults included. A thread that finishes first takes over half
/// of what the other has left, into a third table appended after that half: the two cores of
/// a virtual machine are often not equally fast for long, and waiting for the slower one cost
/// more than the extra append.
fn read_simple_stream(
    file: &File,
    size: usize,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
    split: Split,
) -> Result<Option<Loaded>, ReadError> {
    // The header, from the file's first block.
    let mut block = vec![b'\n'; size.min(64 << 10)];
    let mut filled = 0;
    while filled < block.len() {
        match file.read_at(&mut block[filled..], filled as u64) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => filled += n,
        }
    }
    let upto = match memchr::memrchr(b'\n', &block) {
        _ if block.len() == size => size,
        Some(i) => i + 1,
        None => return Ok(None),
    };
    let Some(text) = simple_text(&block[..upto], delimiter) else {
        return Ok(None);
    };
    let (header, body) = header_and_body(text);
    if header.is_none() && upto < size {
        // Only blank lines in the first block (a rarity).
        return Ok(None);
    }
    let fields = fields_from_header(header.map(|h| h.0), path, delimiter, columns)?;
    let header_line = header.map_or((0, false), |(_, n, crlf)| (n, crlf));
    let before = text.len() - body.len();
    let first_line = memchr::memchr_iter(b'\n', &text.as_bytes()[..before]).count();
    drop(block);

    let state = (first_line, header_line);
    let cut = if size - before >= split.two_halves {
        split_point(file, before + (size - before) / 2, delimiter)
    } else {
        None
    };
    // Read the bytes in `claim` from line state `state` into a table of its own.
    let read_part = |claim: &Claim, state: LineState| {
        let mut out = Collector::new(path, options, columns.groups.clone());
        let read = add_chunks(file, claim, split.chunk, &fields, state, &mut out);
        out.builder.check_items_now();
        (out, read)
    };
    // Read `range` from line state `state`; then, unless `rest` is None, take over part of
    // what the reader of `rest` has left. The tables in file order.
    let work = |range: &Claim, state: LineState, rest: Option<&Claim>| {
        let (out, read) = read_part(range, state);
        let mut tables = vec![(out, read)];
        if let (Some(_), Some(rest)) = (read, rest)
            && let Some((taken, crlf)) = steal(file, rest, split.steal, delimiter)
        {
            let claim = Mutex::new((taken.start, taken.end));
            tables.push(read_part(&claim, (0, (usize::MAX, crlf))));
        }
        tables
    };
    let tables = match cut {
        None => work(&Mutex::new((before, size)), state, None),
        Some((at, crlf)) => {
            let (first, second) = (Mutex::new((before, at)), Mutex::new((at, size)));
            let (mut first, mut second) = std::thread::scope(|s| {
                // The second half numbers its lines from 0, after a line −1 that is the
                // first half's last (not blank, see `split_point`); so does a part taken over.
                let later = s.spawn(|| work(&second, (0, (usize::MAX, crlf)), Some(&first)));
                let earlier = work(&first, state, Some(&second));
                (earlier, later.join().expect("reading thread panicked"))
            });
            // What the second thread took over ends the first half; what the first took
            // over ends the file.
            let (first_half, second_half) = (first.remove(0), second.remove(0));
            let mut tables = vec![first_half];
            tables.append(&mut second);
            tables.push(second_half);
            tables.append(&mut first);
            tables
        }
    };
    let mut tables = tables.into_iter();
    let Some((mut out, Some((mut next_line, _)))) = tables.next() else {
        return Ok(None);
    };
    for (later, read) in tables {
        let Some((lines, _)) = read else {
            return Ok(None);
        };
        out.append(later, next_line);
        next_line = next_line.wrapping_add(lines);
    }
    out.finish(options).map(Some)
}

/// Where to cut a file in two at or after byte `from`: the start of a line that follows a
/// non-blank line (so the second half's first row is numbered from that line alone), with
/// whether that line ended in `\r\n`. `None` when none is found in the next 64 KiB, or the
/// bytes there are not plain: the file is then read in one piece.
fn split_point(file: &File, from: usize, delimiter: u8) -> Option<(usize, bool)> {
    let mut block = vec![0u8; 64 << 10];
    let mut filled = 0;
    while filled < block.len() {
        match file.read_at(&mut block[filled..], (from + filled) as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    block.truncate(filled);
    let mut newlines = memchr::memchr_iter(b'\n', &block);
    let mut start = newlines.next()? + 1;
    for end in newlines {
        let line = &block[start..end];
        let crlf = line.last() == Some(&b'\r');
        if line.len() > usize::from(crlf) {
            simple_text(&block[..end + 1], delimiter)?;
            return Some((from + end + 1, crlf));
        }
        start = end + 1;
    }
    None
}

/// Add the rows of the bytes of `file` in `claim` (ending at a line boundary or the file's
/// end) to `out`, claiming `chunk` bytes of whole lines at a time. `None` when a chunk is not
/// plain (see [`simple_text`]) or the file cannot be read; else the line state after the last
/// line.
fn add_chunks(
    file: &File,
    claim: &Claim,
    chunk: usize,
    fields: &Fields<'_>,
    mut state: LineState,
    out: &mut Collector,
) -> Option<LineState> {
    let (start, planned) = *lock(claim);
    // The start of a line that did not fit in the previous chunk (`kept` bytes), then the
    // next chunk. Zeroed once: the reads overwrite it.
    let mut buf: Vec<u8> = vec![0; chunk.max(1)];
    let mut kept = 0;
    let mut first = true;
    loop {
        if kept * 2 > buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let mut filled = kept;
        let (whole, last) = loop {
            let (pos, to) = {
                let mut claim = lock(claim);
                let pos = claim.0;
                claim.0 += (buf.len() - filled).min(claim.1 - pos);
                (pos, claim.0)
            };
            let end = filled + (to - pos);
            let mut at = pos;
            while filled < end {
                match file.read_at(&mut buf[filled..end], at as u64) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => {
                        filled += n;
                        at += n;
                    }
                }
            }
            // Claimed to the end, which then cannot move (see `steal`).
            let claim = lock(claim);
            if claim.0 >= claim.1 {
                break (filled, true);
            }
            drop(claim);
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(i) => break (i + 1, false),
                // A line longer than the buffer: make room for more of it.
                None => buf.resize(buf.len() * 2, 0),
            }
        };
        let text = simple_text(&buf[..whole], fields.delimiter)?;
        state = add_lines(out, text, state, fields);
        if last {
            return Some(state);
        }
        if std::mem::take(&mut first) {
            // The first chunk shows the size of a row and how fast new items come: size the
            // row vectors and the item table for the whole range at once.
            let next = lock(claim).0;
            let (done, total) = (next - start - (filled - whole), planned - start);
            let rows = out.builder.len() as f64;
            out.builder
                .reserve((rows * total as f64 / done as f64 * 1.1) as usize);
            out.builder.expect_rows(done, total);
        }
        buf.copy_within(whole..filled, 0);
        kept = filled - whole;
    }
}

/// Where the mapped columns are in a row of the fast path.
struct Fields<'a> {
    names: [&'a str; 3],
    item: usize,
    rater: usize,
    label: usize,
    groups: Vec<usize>,
    /// Number of header fields.
    n: usize,
    delimiter: u8,
}

/// Bit 7 of each byte of the result is set exactly where `word` has the byte `b` (no carries
/// cross bytes, so there are no false positives).
#[inline]
fn bytes_equal(word: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(b));
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// Where a scan of lines stands: (index of the next line, the previous non-blank line as in
/// [`csv_line`]).
type LineState = (usize, (usize, bool));

/// Add the rows of `text` (whole lines; the last one may lack its `\n`) to `out`. `state` is
/// (index of the first line, the previous non-blank line as in [`csv_line`]); the state after
/// the last line is returned, to go on with the lines that follow.
///
/// The text is scanned eight bytes at a time (SWAR) for delimiters and line ends together,
/// from start to end rather than line by line: lines are a few short fields, too short for a
/// vectorised search to pay for its set-up, and restarting the scan at every line start would
/// load most bytes twice. Each line is added as soon as its end is found, from the delimiter
/// positions in a fixed array (no handing on of spans, no growing vector). Fields are sliced at
/// the positions of ASCII delimiters, so they stay valid UTF-8.
fn add_lines<'t>(
    out: &mut Collector,
    text: &'t str,
    mut state: LineState,
    f: &Fields<'_>,
) -> LineState {
    let bytes = text.as_bytes();
    // Field j of the current line is `bounds[j] + 1..bounds[j + 1]`: bounds[0] is the
    // position of the line end before it (wrapping to −1 for the first line), then come its
    // delimiters, and its end at index n. A line with more fields than the header's counts
    // the rest without storing them.
    let mut bounds = vec![usize::MAX; f.n + 1];
    let mut delimiters = 0usize;
    let mut groups: Vec<Option<&'t str>> = Vec::with_capacity(f.groups.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // The last word of the text is zero-padded, and hits in the padding are masked off.
        let (word, valid) = match bytes.get(i..i + 8) {
            Some(chunk) => (
                u64::from_le_bytes(chunk.try_into().expect("eight bytes")),
                u64::MAX,
            ),
            None => {
                let mut word = [0u8; 8];
                word[..bytes.len() - i].copy_from_slice(&bytes[i..]);
                (
                    u64::from_le_bytes(word),
                    (1u64 << (8 * (bytes.len() - i))) - 1,
                )
            }
        };
        let newlines = bytes_equal(word, b'\n') & valid;
        let mut hits = (bytes_equal(word, f.delimiter) & valid) | newlines;
        while hits != 0 {
            let j = i + (hits.trailing_zeros() / 8) as usize;
            let bit = hits & hits.wrapping_neg();
            hits ^= bit;
            if newlines & bit == 0 {
                delimiters += 1;
                bounds[delimiters.min(f.n)] = j;
                continue;
            }
            add_line(
                out,
                text,
                start..j,
                (&mut bounds, delimiters),
                &mut groups,
                &mut state,
                f,
            );
            delimiters = 0;
            bounds[0] = j;
            start = j + 1;
        }
        i += 8;
    }
    if start < bytes.len() {
        add_line(
            out,
            text,
            start..bytes.len(),
            (&mut bounds, delimiters),
            &mut groups,
            &mut state,
            f,
        );
    }
    state
}

/// One line of [`add_lines`]: `line` is its range in `text` (without the `\n`), `bounds` as
/// there with the number of its delimiters, `state` as there. Ids and labels are trimmed and
/// must not be empty, as in [`Collector::row`].
#[inline(always)]
fn add_line<'t>(
    out: &mut Collector,
    text: &'t str,
    line: std::ops::Range<usize>,
    (bounds, delimiters): (&mut [usize], usize),
    groups: &mut Vec<Option<&'t str>>,
    state: &mut LineState,
    f: &Fields<'_>,
) {
    let this = state.0;
    state.0 += 1;
    let crlf = line.end > line.start && text.as_bytes()[line.end - 1] == b'\r';
    let end = line.end - usize::from(crlf);
    if end == line.start {
        return;
    }
    let number = csv_line(state.1);
    state.1 = (this, crlf);
    if delimiters + 1 != f.n {
        out.line_problem(
            number,
            None,
            format!("row has {} fields, the header {}", delimiters + 1, f.n),
        );
        return;
    }
    bounds[f.n] = end;
    let get = |j: usize| {
        trim(
            text.get(bounds[j].wrapping_add(1)..bounds[j + 1])
                .unwrap_or_default(),
        )
    };
    let (item, rater, label) = (get(f.item), get(f.rater), get(f.label));
    if item.is_empty() || rater.is_empty() || label.is_empty() {
        let empty = [item, rater, label].iter().position(|v| v.is_empty());
        out.line_problem(number, empty.map(|k| f.names[k]), "empty value");
        return;
    }
    if !f.groups.is_empty() {
        groups.clear();
        groups.extend(
            f.groups
                .iter()
                .map(|&j| Some(get(j)).filter(|v| !v.is_empty())),
        );
    }
    if let Err(e) = out.builder.push(item, rater, label, groups) {
        out.line_problem(number, Some(f.names[2]), e.to_string());
    }
}

/// The general path of [`read_csv_from`]: the csv crate, for quoted fields and other rarities.
fn read_csv_general(
    reader: impl Read,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| ReadError::Format {
            path: path.to_path_buf(),
            location: "line 1".into(),
            message: e.to_string(),
        })?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| ReadError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let item_i = find(&columns.item)?;
    let rater_i = find(&columns.rater)?;
    let label_i = find(&columns.label)?;
    let group_i = columns
        .groups
        .iter()
        .map(|g| find(g))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Collector::new(path, options, columns.groups.clone());
    let names = [
        columns.item.as_str(),
        columns.rater.as_str(),
        columns.label.as_str(),
    ];
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line() + 1;
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                out.problem(format!("line {line}"), None, e.to_string());
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.len() != headers.len() {
            out.problem(
                format!("line {line}"),
                None,
                format!(
                    "row has {} fields, the header {}",
                    record.len(),
                    headers.len()
                ),
            );
            continue;
        }
        let get = |i: usize| record.get(i);
        let (Some(item), Some(rater), Some(label)) = (get(item_i), get(rater_i), get(label_i))
        else {
            continue;
        };
        let groups: Vec<Option<&str>> = group_i
            .iter()
            .map(|&i| get(i).map(str::trim).filter(|v| !v.is_empty()))
            .collect();
        out.row(
            || format!("line {line}"),
            names,
            item,
            rater,
            label,
            &groups,
        );
    }
    out.finish(options)
}

/// Read a JSON-lines file: one object per line, fields named by `columns` (dotted paths reach
/// into nested objects). Strings are taken as they are; numbers and booleans as their JSON text.
pub fn read_jsonl(path: &Path, columns: &Columns, options: &Options) -> Result<Loaded, ReadError> {
    read_jsonl_from(open(path)?, path, columns, options)
}

/// A scalar JSON value as a label/id string; `None` for null, arrays and objects.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, key| v.get(key))
        .or_else(|| v.get(path))
}

/// JSON lines from any reader; `path` is used in messages only.
pub fn read_jsonl_from(
    reader: impl Read,
    path: &Path,
    columns: &Columns,
    options: &Options,
) -> Result<Loaded, ReadError> {
    let mut out = Collector::new(path, options, columns.groups.clone());
    let names = [
        columns.item.as_str(),
        columns.rater.as_str(),
        columns.label.as_str(),
    ];
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|cause| ReadError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                out.problem(
                    format!("line {line_no}"),
                    None,
                    format!("invalid JSON: {e}"),
                );
                continue;
            }
        };
        let mut fields = Vec::with_capacity(3);
        for name in names {
            match dotted(&value, name).and_then(scalar) {
                Some(s) => fields.push(s),
                None => {
                    out.problem(
                        format!("line {line_no}"),
                        Some(name),
                        "missing or not a scalar",
                    );
                    break;
                }
            }
        }
        if fields.len() < 3 {
            continue;
        }
        let group_values: Vec<Option<String>> = columns
            .groups
            .iter()
            .map(|g| {
                dotted(&value, g)
                    .and_then(scalar)
                    .filter(|s| !s.trim().is_empty())
            })
            .collect();
        let groups: Vec<Option<&str>> = group_values.iter().map(|g| g.as_deref()).collect();
        out.row(
            || format!("line {line_no}"),
            names,
            &fields[0],
            &fields[1],
            &fields[2],
            &groups,
        );
    }
    out.finish(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    /// Ways to read a file: whole on one thread, in two halves, in two halves of 7-byte chunks
    /// where the thread done first takes over part of the other's rest whatever is left (in
    /// about a third of the property test's cases), the default.
    const SPLITS: [Split; 4] = [
        Split {
            two_halves: usize::MAX,
            ..Split::DEFAULT
        },
        Split {
            two_halves: 0,
            ..Split::DEFAULT
        },
        Split {
            two_halves: 0,
            chunk: 7,
            steal: 0,
        },
        Split::DEFAULT,
    ];

    /// A steal takes the second half of what is left from a line start after a non-blank
    /// line, shortens the claim to it, and takes nothing from a claim used up.
    #[test]
    fn steal_cuts_the_rest_at_a_line_start() {
        let dir = arbiter_testkit::TempDir::new("steal");
        let text = "h,r,l\na,x,1\nb,y,2\n\nc,z,3\r\nd,x,1\ne,y,2\n";
        let path = dir.write("t.csv", text);
        let file = File::open(&path).unwrap();
        let at = |s: &str| text.find(s).unwrap();
        // From the middle (in "b,y,2"), past the blank line, after "c,z,3\r\n".
        let claim: Claim = Mutex::new((0, at("e,y")));
        assert_eq!(
            steal(&file, &claim, 0, b','),
            Some((at("d,x")..at("e,y"), true))
        );
        assert_eq!(*lock(&claim), (0, at("d,x")));
        assert_eq!(
            steal(&file, &claim, at("d,x") + 1, b','),
            None,
            "less than asked for"
        );
        let claim: Claim = Mutex::new((at("a,x"), text.len()));
        assert_eq!(
            steal(&file, &claim, 0, b','),
            Some((at("e,y")..text.len(), false))
        );
        *lock(&claim) = (at("e,y"), at("e,y"));
        assert_eq!(steal(&file, &claim, 0, b','), None, "nothing is left");
    }

    fn cols(groups: &[&str]) -> Columns {
        Columns {
            item: "item".into(),
            rater: "rater".into(),
            label: "label".into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn csv_reports_bad_rows_with_lines_and_keeps_the_rest() {
        let text = "item,rater,label,pool\n1,a,0,x\n1,b,,x\n2,a,1\n2,b,1,\n";
        let got = read_csv_from(
            text.as_bytes(),
            Path::new("t.csv"),
            b',',
            &cols(&["pool"]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(got.ratings.n_ratings(), 2);
        let msgs: Vec<String> = got.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("t.csv: line 3: label: empty value"),
            "{msgs:?}"
        );
        assert!(msgs[1].starts_with("t.csv: line 4:"), "{msgs:?}");
        assert_eq!(got.ratings.groups()[0].per_row, [Some(0), None]);
    }

    /// The fast path and the csv crate agree on table and problems (with the crate's line
    /// numbers), for LF and CRLF, blank lines, bad rows, items grouped or coming back later,
    /// read from memory or streamed from a file in chunks (where a quote after the first chunk
    /// sends the whole file to the csv crate).
    #[test]
    fn fast_path_matches_the_csv_crate() {
        let mut lf = String::from("\n item ,rater,label,pool\n");
        for i in 0..120_000 {
            match i % 997 {
                3 => lf.push_str(&format!("{i},r{},,p\n", i % 7)),
                5 => lf.push_str(&format!("{i},r{},1,p,extra\n", i % 7)),
                7 => lf.push_str("\n\n"),
                _ => lf.push_str(&format!("{},r{}, {} ,p{}\n", i / 3, i % 7, i % 4, i % 3)),
            }
        }
        let crlf = lf.replace('\n', "\r\n");
        assert!(
            lf.len() > 4 * Split::DEFAULT.chunk,
            "large enough to be read in several chunks"
        );
        let mut scattered = String::from("item,rater,label,pool\n");
        for i in 0..150_000 {
            let item = (i * 7919) % 90_000;
            scattered.push_str(&format!("item-{item},r{},{},p\n", i % 5, i % 3));
        }
        let quoted = format!("{lf}\"1\",r1,1,p\n");
        // A line longer than a chunk, and a header after more blank lines than a first block.
        let long = format!(
            "{}{},r1,1,p\n{}",
            &lf[..5000],
            "x".repeat(Split::DEFAULT.chunk + 7),
            &lf[5000..]
        );
        let late_header = format!("{}{}", "\n".repeat(70_000), &lf[..9000]);
        let dir = arbiter_testkit::TempDir::new("fast-path");
        let cols = cols(&["pool"]);
        let opts = Options::default();
        let msgs = |l: &Loaded| l.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let texts = [
            &lf,
            &crlf,
            &lf[..4000],
            &crlf[..4001],
            &scattered,
            &long,
            &late_header,
            &quoted,
        ];
        for (n, text) in texts.into_iter().enumerate() {
            let path = dir.write(&format!("t{n}.csv"), text);
            let slow = read_csv_general(text.as_bytes(), &path, b',', &cols, &opts).unwrap();
            // In one piece, in two halves, in small chunks with parts taken over, and as it
            // comes by size.
            for split in SPLITS {
                let streamed = read_csv_file_with(&path, b',', &cols, &opts, split).unwrap();
                assert_eq!(streamed.ratings, slow.ratings, "file {n}, {split:?}");
                assert_eq!(msgs(&streamed), msgs(&slow), "file {n}, {split:?}");
            }
            if simple_text(text.as_bytes(), b',').is_some() {
                let fast = read_simple(text, &path, b',', &cols, &opts).unwrap();
                assert_eq!(fast.ratings, slow.ratings, "text {n}");
                assert_eq!(msgs(&fast), msgs(&slow), "text {n}");
            } else {
                assert_eq!(n, texts.len() - 1);
            }
        }
        assert!(simple_text(b"a,\"b\"\n", b',').is_none());
        assert!(simple_text(b"a,b\rc\n", b',').is_none());
    }

    /// Texts made of the pieces that matter to the line and field scan.
    fn pieces() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a",
            "bb",
            "1",
            "22",
            ",",
            ",",
            ",",
            "\n",
            "\n",
            "\r\n",
            " ",
            "\t",
            "é",
            "ccccccccc",
        ]);
        (
            prop::sample::select(vec![
                "item,rater,label,pool\n",
                "\r\n pool,label,item,rater\r\n",
                "",
            ]),
            prop::collection::vec(piece, 0..200),
        )
            .prop_map(|(header, body)| format!("{header}{}", body.concat()))
    }

    /// The same table, problems and errors as the csv crate's.
    fn same_as_csv(
        got: Result<Loaded, ReadError>,
        slow: Result<Loaded, ReadError>,
    ) -> Result<(), TestCaseError> {
        let msgs = |l: &Loaded| l.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        match (got, slow) {
            (Ok(got), Ok(slow)) => {
                prop_assert_eq!(&got.ratings, &slow.ratings);
                prop_assert_eq!(msgs(&got), msgs(&slow));
            }
            (got, slow) => prop_assert_eq!(
                got.err().map(|e| e.to_string()),
                slow.err().map(|e| e.to_string())
            ),
        }
        Ok(())
    }

    proptest! {
        /// On any text it accepts, the fast path gives the csv crate's table, problems and
        /// errors.
        #[test]
        fn fast_path_matches_the_csv_crate_on_any_text(text in pieces()) {
            prop_assert!(simple_text(text.as_bytes(), b',').is_some());
            let cols = cols(&["pool"]);
            let opts = Options::default();
            let path = Path::new("t.csv");
            same_as_csv(
                read_simple(&text, path, b',', &cols, &opts),
                read_csv_general(text.as_bytes(), path, b',', &cols, &opts),
            )?;
        }

        /// Read from a file in two halves (cut at its middle, or the next usable line), in
        /// chunks of a few bytes with parts taken over by the thread done first, any text
        /// gives the csv crate's table, problems and errors.
        #[test]
        fn two_halves_match_the_csv_crate_on_any_text(text in pieces()) {
            let dir = arbiter_testkit::TempDir::new("two-halves");
            let path = dir.write("t.csv", &text);
            let cols = cols(&["pool"]);
            let opts = Options::default();
            for split in &SPLITS[1..3] {
                same_as_csv(
                    read_csv_file_with(&path, b',', &cols, &opts, *split),
                    read_csv_general(text.as_bytes(), &path, b',', &cols, &opts),
                )?;
            }
        }
    }

    #[test]
    fn csv_missing_column_is_an_error() {
        let err = read_csv_from(
            "a,b\n".as_bytes(),
            Path::new("t.csv"),
            b',',
            &cols(&[]),
            &Options::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no column \"item\""), "{err}");
    }

    #[test]
    fn jsonl_nested_fields_and_numbers() {
        let text = "{\"item\": 1, \"rater\": \"a\", \"label\": 2, \"meta\": {\"g\": \"x\"}}\nnot json\n{\"item\": 1, \"rater\": \"b\"}\n";
        let got = read_jsonl_from(
            text.as_bytes(),
            Path::new("t.jsonl"),
            &cols(&["meta.g"]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(got.ratings.n_ratings(), 1);
        assert_eq!(got.ratings.domain().values(), ["2"]);
        assert_eq!(got.problems.len(), 2);
        assert_eq!(
            got.problems[1].to_string(),
            "t.jsonl: line 3: label: missing or not a scalar"
        );
    }
}
