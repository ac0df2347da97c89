//! Generic long-format readers: one rating per CSV row or JSONL line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use arbiter_stats::RatingsBuilder;
use serde_json::Value;

use crate::{Columns, Loaded, Options, Problem, ReadError};

fn open(path: &Path) -> Result<File, ReadError> {
    File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
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
    let mut file = open(path)?;
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return read_csv_buffered(Vec::new(), file, path, delimiter, columns, options);
    }
    let size = meta.len() as usize;
    if let Some(loaded) = read_simple_stream(&file, size, path, delimiter, columns, options)? {
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
}

impl Collector {
    pub(crate) fn new(file: &Path, options: &Options, group_names: Vec<String>) -> Self {
        Collector {
            builder: RatingsBuilder::new(options.domain.clone(), group_names),
            problems: Vec::new(),
            file: file.to_path_buf(),
        }
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

    pub(crate) fn finish(self, options: &Options) -> Result<Loaded, ReadError> {
        let ratings =
            self.builder
                .build(options.duplicates)
                .map_err(|source| ReadError::Table {
                    path: self.file.clone(),
                    source,
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
    prev.0 + if prev.1 { 1 } else { 2 }
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
    let label_column = fields.names[2];
    let state = read_simple_lines(
        &mut Direct {
            out: &mut out,
            label_column,
        },
        head,
        (first_line, header_line),
        &fields,
    );
    out.builder.expect_rows(head.len(), body.len());
    read_simple_lines(
        &mut Direct {
            out: &mut out,
            label_column,
        },
        tail,
        state,
        &fields,
    );
    out.finish(options)
}

/// Bytes read at a time by [`read_simple_stream`]: enough to make system calls rare, few
/// enough that a chunk and its rows stay in the core's L2 cache between the two threads.
const CHUNK: usize = 128 << 10;

/// [`read_simple`] on a regular file of `size` bytes, on two threads: one reads the file a
/// chunk at a time and splits it into rows ([`scan_chunks`]), the other adds them to the table
/// in file order. `Ok(None)` when the file is not plain after all, or cannot be read: the
/// caller then reads it with the csv crate, which gives what reading it whole would have given.
///
/// Reading and splitting took about as long as adding the rows; overlapped, a million-row file
/// reads in about two thirds of the time on two cores (0.15–0.19 s → 0.10–0.12 s), and the
/// table is still built by one thread, in order, with no merge. Chunk buffers go back and
/// forth between the threads, so their pages are faulted in once.
fn read_simple_stream(
    file: &File,
    size: usize,
    path: &Path,
    delimiter: u8,
    columns: &Columns,
    options: &Options,
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

    let mut out = Collector::new(path, options, columns.groups.clone());
    let (batches, batches_in) = mpsc::sync_channel::<Batch>(2);
    let (spent, spent_in) = mpsc::channel::<Batch>();
    let fields = &fields;
    let plain = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            scan_chunks(
                file,
                before..size,
                fields,
                (first_line, header_line),
                batches,
                spent_in,
            )
        });
        let mut first = true;
        for batch in batches_in {
            batch.add_to(&mut out, fields);
            if std::mem::take(&mut first) {
                // The first chunk shows the size of a row and how fast new items come: size
                // the row vectors and the item table for the whole file at once.
                let done = batch.at + batch.text.len() - before;
                let rows = out.builder.len() as f64;
                out.builder
                    .reserve((rows * (size - before) as f64 / done as f64 * 1.1) as usize);
                out.builder.expect_rows(done, size - before);
            }
            // The reader may have finished: then the batch is simply dropped.
            let _ = spent.send(batch);
        }
        reader.join().expect("reader thread panicked")
    });
    if !plain {
        return Ok(None);
    }
    out.finish(options).map(Some)
}

/// Read bytes `range` of `file` (its end a line boundary or the file's end) a chunk of whole
/// lines at a time, split each into rows and send them on in a [`Batch`], reusing the batches
/// that come back on `spent`. `false` when a chunk is not plain (see [`simple_text`]) or the
/// file cannot be read.
fn scan_chunks(
    file: &File,
    range: std::ops::Range<usize>,
    fields: &Fields<'_>,
    mut state: LineState,
    batches: mpsc::SyncSender<Batch>,
    spent: mpsc::Receiver<Batch>,
) -> bool {
    let (mut pos, to) = (range.start, range.end);
    // The start of a line that did not fit in the previous chunk.
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let mut batch = spent.try_recv().unwrap_or_default();
        let mut buf = std::mem::take(&mut batch.text).into_bytes();
        buf.clear();
        buf.extend_from_slice(&rest);
        let mut target = CHUNK.max(rest.len() * 2);
        let whole = loop {
            let filled = buf.len();
            let end = target.min(filled + (to - pos));
            buf.resize(end, 0);
            let mut got = filled;
            while got < end {
                match file.read_at(&mut buf[got..end], pos as u64) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        got += n;
                        pos += n;
                    }
                }
            }
            if pos >= to {
                break buf.len();
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => break i + 1,
                // A line longer than the buffer: make room for more of it.
                None => target *= 2,
            }
        };
        let eof = pos >= to;
        if whole > u32::MAX as usize {
            // Field spans are 32-bit offsets into the chunk: a line of over 4 GiB goes to the
            // csv crate instead.
            return false;
        }
        rest.clear();
        rest.extend_from_slice(&buf[whole..]);
        buf.truncate(whole);
        if simple_text(&buf, fields.delimiter).is_none() {
            return false;
        }
        let Ok(text) = String::from_utf8(buf) else {
            return false;
        };
        batch.at = pos - rest.len() - text.len();
        batch.rows.clear();
        batch.groups.clear();
        batch.problems.clear();
        state = read_simple_lines(&mut batch.sink(&text), &text, state, fields);
        batch.text = text;
        if batches.send(batch).is_err() {
            return false;
        }
        if eof {
            return true;
        }
    }
}

/// A usable row of the fast path: its line number, trimmed item, rater and label (none of them
/// empty) and group values (`None` = missing).
struct RowFields<'t, 'g> {
    number: usize,
    item: &'t str,
    rater: &'t str,
    label: &'t str,
    groups: &'g [Option<&'t str>],
}

/// Where [`read_simple_lines`] puts the rows it finds.
trait RowSink<'t> {
    /// A usable row.
    fn row(&mut self, row: RowFields<'t, '_>);
    /// A row that cannot be used.
    fn problem(&mut self, number: usize, field: Option<&str>, message: String);
}

/// Rows straight into the table.
struct Direct<'c> {
    out: &'c mut Collector,
    label_column: &'c str,
}

impl<'t> RowSink<'t> for Direct<'_> {
    fn row(&mut self, row: RowFields<'t, '_>) {
        if let Err(e) = self
            .out
            .builder
            .push(row.item, row.rater, row.label, row.groups)
        {
            self.out.problem(
                format!("line {}", row.number),
                Some(self.label_column),
                e.to_string(),
            );
        }
    }

    fn problem(&mut self, number: usize, field: Option<&str>, message: String) {
        self.out.problem(format!("line {number}"), field, message);
    }
}

/// A field's byte range in its batch's text; `u32::MAX` as start marks a missing group value.
type Span = (u32, u32);

/// One row of a [`Batch`]: its line number and the spans of its item, rater and label.
struct RowSpans {
    number: usize,
    item: Span,
    rater: Span,
    label: Span,
}

/// The rows of one chunk of text, split by the reading thread for the building thread.
#[derive(Default)]
struct Batch {
    text: String,
    /// Byte offset of `text` in the file.
    at: usize,
    rows: Vec<RowSpans>,
    /// Group value spans, one per group column per row.
    groups: Vec<Span>,
    /// (number of rows before it, line number, field, message) per unusable row.
    problems: Vec<(usize, usize, Option<String>, String)>,
}

impl Batch {
    /// A sink that records spans into this batch's vectors for rows of `text`.
    fn sink<'b>(&'b mut self, text: &'b str) -> BatchSink<'b> {
        BatchSink {
            base: text.as_ptr() as usize,
            batch: self,
        }
    }

    /// Add the rows to `out`, with the problems at their places among them.
    fn add_to(&self, out: &mut Collector, f: &Fields<'_>) {
        let text = self.text.as_str();
        let get = |(start, end): Span| text.get(start as usize..end as usize).unwrap_or_default();
        let n_groups = f.groups.len();
        let mut groups: Vec<Option<&str>> = Vec::with_capacity(n_groups);
        let mut problems = self.problems.iter().peekable();
        let mut direct = Direct {
            out,
            label_column: f.names[2],
        };
        for (i, row) in self.rows.iter().enumerate() {
            while let Some((_, number, field, message)) = problems.next_if(|p| p.0 <= i) {
                direct.problem(*number, field.as_deref(), message.clone());
            }
            if n_groups > 0 {
                groups.clear();
                groups.extend(
                    self.groups[i * n_groups..(i + 1) * n_groups]
                        .iter()
                        .map(|&span| (span.0 != u32::MAX).then(|| get(span))),
                );
            }
            direct.row(RowFields {
                number: row.number,
                item: get(row.item),
                rater: get(row.rater),
                label: get(row.label),
                groups: &groups,
            });
        }
        for (_, number, field, message) in problems {
            direct.problem(*number, field.as_deref(), message.clone());
        }
    }
}

/// [`RowSink`] into a [`Batch`]: fields become spans relative to `base`, the text's start.
struct BatchSink<'b> {
    base: usize,
    batch: &'b mut Batch,
}

impl BatchSink<'_> {
    fn span(&self, field: &str) -> Span {
        let start = field.as_ptr() as usize - self.base;
        (start as u32, (start + field.len()) as u32)
    }
}

impl<'t> RowSink<'t> for BatchSink<'_> {
    fn row(&mut self, row: RowFields<'t, '_>) {
        let spans = RowSpans {
            number: row.number,
            item: self.span(row.item),
            rater: self.span(row.rater),
            label: self.span(row.label),
        };
        self.batch.rows.push(spans);
        for g in row.groups {
            let span = g.map_or((u32::MAX, 0), |v| self.span(v));
            self.batch.groups.push(span);
        }
    }

    fn problem(&mut self, number: usize, field: Option<&str>, message: String) {
        let before = self.batch.rows.len();
        self.batch
            .problems
            .push((before, number, field.map(str::to_string), message));
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

/// Add the rows of `text` (whole lines) to `out`. `state` is (index of the first line, the
/// previous non-blank line as in [`csv_line`]); the state after the last line is returned, to
/// go on with the lines that follow.
///
/// The text is scanned eight bytes at a time (SWAR) for delimiters and line ends together,
/// from start to end rather than line by line: lines are a few short fields, too short for a
/// vectorised search to pay for its set-up, and restarting the scan at every line start would
/// load most bytes twice. Fields are sliced at the positions of ASCII delimiters, so they stay
/// valid UTF-8.
fn read_simple_lines<'t>(
    out: &mut impl RowSink<'t>,
    text: &'t str,
    mut state: LineState,
    f: &Fields<'_>,
) -> LineState {
    let bytes = text.as_bytes();
    let mut ends: Vec<usize> = Vec::with_capacity(f.n + 1);
    let mut groups: Vec<Option<&str>> = Vec::with_capacity(f.groups.len());
    let mut row_start = 0;
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
            let bit = hits & hits.wrapping_neg();
            let j = i + (hits.trailing_zeros() / 8) as usize;
            if newlines & bit != 0 {
                simple_row(
                    out,
                    text,
                    row_start..j,
                    &mut ends,
                    &mut groups,
                    &mut state,
                    f,
                );
                row_start = j + 1;
            } else {
                ends.push(j);
            }
            hits ^= bit;
        }
        i += 8;
    }
    if row_start < bytes.len() {
        simple_row(
            out,
            text,
            row_start..bytes.len(),
            &mut ends,
            &mut groups,
            &mut state,
            f,
        );
    }
    state
}

/// Field `j` (trimmed) of the line starting at `start` with delimiters at `ends`. Inlined into
/// each of its three or four uses per row: as a call it took a fifth of the reading thread.
#[inline(always)]
fn row_field<'t>(text: &'t str, start: usize, ends: &[usize], j: usize) -> &'t str {
    let from = if j == 0 { start } else { ends[j - 1] + 1 };
    trim(text.get(from..ends[j]).unwrap_or_default())
}

/// One line of [`read_simple_lines`]: `line` is its range in `text` (without the `\n`),
/// `ends` the positions of its delimiters (cleared for the next line), `state` as there. Ids
/// and labels are trimmed and must not be empty, as in [`Collector::row`].
#[inline(always)]
fn simple_row<'t>(
    out: &mut impl RowSink<'t>,
    text: &'t str,
    line: std::ops::Range<usize>,
    ends: &mut Vec<usize>,
    groups: &mut Vec<Option<&'t str>>,
    state: &mut LineState,
    f: &Fields<'_>,
) {
    let this = state.0;
    state.0 += 1;
    let bytes = text.as_bytes();
    let crlf = line.end > line.start && bytes[line.end - 1] == b'\r';
    let end = line.end - usize::from(crlf);
    if end == line.start {
        ends.clear();
        return;
    }
    ends.push(end);
    let number = csv_line(state.1);
    state.1 = (this, crlf);
    if ends.len() != f.n {
        out.problem(
            number,
            None,
            format!("row has {} fields, the header {}", ends.len(), f.n),
        );
        ends.clear();
        return;
    }
    let get = |j: usize| row_field(text, line.start, ends, j);
    let (item, rater, label) = (get(f.item), get(f.rater), get(f.label));
    if let Some(name) = [item, rater, label]
        .iter()
        .zip(f.names)
        .find_map(|(v, name)| v.is_empty().then_some(name))
    {
        out.problem(number, Some(name), "empty value".to_string());
        ends.clear();
        return;
    }
    groups.clear();
    groups.extend(
        f.groups
            .iter()
            .map(|&j| Some(get(j)).filter(|v| !v.is_empty())),
    );
    out.row(RowFields {
        number,
        item,
        rater,
        label,
        groups,
    });
    ends.clear();
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
        let line = line.map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
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
            lf.len() > 4 * CHUNK,
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
            "x".repeat(CHUNK + 7),
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
            let streamed = read_csv_file(&path, b',', &cols, &opts).unwrap();
            assert_eq!(streamed.ratings, slow.ratings, "file {n}");
            assert_eq!(msgs(&streamed), msgs(&slow), "file {n}");
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

    proptest! {
        /// On any text it accepts, the fast path gives the csv crate's table, problems and
        /// errors.
        #[test]
        fn fast_path_matches_the_csv_crate_on_any_text(text in pieces()) {
            prop_assert!(simple_text(text.as_bytes(), b',').is_some());
            let cols = cols(&["pool"]);
            let opts = Options::default();
            let path = Path::new("t.csv");
            let fast = read_simple(&text, path, b',', &cols, &opts);
            let slow = read_csv_general(text.as_bytes(), path, b',', &cols, &opts);
            let msgs = |l: &Loaded| l.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>();
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => {
                    prop_assert_eq!(&fast.ratings, &slow.ratings);
                    prop_assert_eq!(msgs(&fast), msgs(&slow));
                }
                (fast, slow) => prop_assert_eq!(
                    fast.err().map(|e| e.to_string()),
                    slow.err().map(|e| e.to_string())
                ),
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
