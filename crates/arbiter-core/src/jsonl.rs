//! JSONL reading and writing with `file:line: field` errors.
//!
//! Readers take any `BufRead` and a source name, so callers decide where bytes come from and
//! tests feed byte literals.

use std::io::{BufRead, Write};

use serde::Serialize;
use serde_json::Value;

use crate::error::{FieldError, RecordError};

/// What to do with a line that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Stop at the first bad line and return its error.
    Fail,
    /// Collect the error, skip the line, keep reading.
    Skip,
}

/// A parsed record with the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// 1-based line number.
    pub line: usize,
    /// The record.
    pub record: T,
}

/// Everything read from one source: valid records in input order, and the skipped lines.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// Records in input order.
    pub records: Vec<Located<T>>,
    /// One error per skipped line (empty unless [`OnInvalid::Skip`]).
    pub skipped: Vec<RecordError>,
}

/// The longest line [`read_with`] holds in memory: a record is parsed whole, so one huge line
/// would cost several times its size.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 << 20;

/// Why a line could not be taken.
enum LineError {
    Io(std::io::Error),
    /// Longer than the limit (bytes read before giving up).
    TooLong(usize),
}

/// The next line (without its `\n`) of at most `limit` bytes; a longer one is read past in
/// chunks, never held. `None` at the end.
fn next_line<R: BufRead>(
    reader: &mut R,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Option<Result<(), LineError>> {
    buf.clear();
    let mut taken = std::io::Read::take(&mut *reader, limit as u64 + 1);
    match taken.read_until(b'\n', buf) {
        Err(e) => return Some(Err(LineError::Io(e))),
        Ok(0) => return None,
        Ok(_) => {}
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Some(Ok(()));
    }
    if buf.len() <= limit {
        return Some(Ok(())); // the last line, without a newline
    }
    // Over the limit: skip to the end of the line.
    let mut seen = buf.len();
    buf.clear();
    loop {
        let (done, used, newline) = match reader.fill_buf() {
            Err(e) => return Some(Err(LineError::Io(e))),
            Ok([]) => (true, 0, 0),
            Ok(chunk) => match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1, 1),
                None => (false, chunk.len(), 0),
            },
        };
        reader.consume(used);
        seen += used - newline;
        if done {
            return Some(Err(LineError::TooLong(seen)));
        }
    }
}

/// Read JSONL from `reader`, parsing each non-blank line with `parse(value, line_index)` where
/// `line_index` is 0-based. Blank lines are ignored but still counted. A line longer than
/// [`DEFAULT_MAX_LINE_BYTES`] is a bad line (see [`read_with_limit`]).
pub fn read_with<R, T, F>(
    reader: R,
    source: &str,
    on_invalid: OnInvalid,
    parse: F,
) -> Result<Parsed<T>, RecordError>
where
    R: BufRead,
    F: FnMut(Value, usize) -> Result<T, FieldError>,
{
    read_with_limit(reader, source, on_invalid, DEFAULT_MAX_LINE_BYTES, parse)
}

/// [`read_with`] with lines of at most `max_line_bytes`: a longer line is a bad line naming
/// its size and the limit, read past without being held in memory.
pub fn read_with_limit<R, T, F>(
    mut reader: R,
    source: &str,
    on_invalid: OnInvalid,
    max_line_bytes: usize,
    mut parse: F,
) -> Result<Parsed<T>, RecordError>
where
    R: BufRead,
    F: FnMut(Value, usize) -> Result<T, FieldError>,
{
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut buf = Vec::new();
    let mut index = 0;
    while let Some(line) = next_line(&mut reader, max_line_bytes, &mut buf) {
        let line_no = index + 1;
        index += 1;
        let line = line.map(|()| &buf);
        let outcome = match line {
            // The reader itself failed: no later line can be trusted, whatever the mode.
            Err(LineError::Io(e)) => {
                return Err(RecordError::new(
                    source,
                    line_no,
                    FieldError::new("", format!("could not read: {e}")),
                ));
            }
            Err(LineError::TooLong(n)) => Err(FieldError::new(
                "",
                format!(
                    "the line is {n} bytes, over the limit of {max_line_bytes} bytes per record (raise it with --max-sample-bytes)"
                ),
            )),
            // A UTF-8 byte-order mark (written by some Windows editors) opens the file, not the
            // record.
            Ok(bytes) => match std::str::from_utf8(match bytes.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) if line_no == 1 => rest,
                _ => bytes.as_slice(),
            }) {
                Err(e) => Err(FieldError::new("", format!("not valid UTF-8: {e}"))),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match serde_json::from_str::<Value>(text) {
                    Err(e) => Err(FieldError::new(
                        "",
                        format!("malformed JSON at column {}: {e}", e.column()),
                    )),
                    Ok(v) => parse(v, line_no - 1),
                },
            },
        };
        match outcome {
            Ok(record) => records.push(Located {
                line: line_no,
                record,
            }),
            Err(error) => {
                let err = RecordError::new(source, line_no, error);
                match on_invalid {
                    OnInvalid::Fail => return Err(err),
                    OnInvalid::Skip => skipped.push(err),
                }
            }
        }
    }
    Ok(Parsed { records, skipped })
}

/// Keeps the first record of each key (as text, so `3` and `"3"` are one id); a later record
/// with a key seen before is an error on its line naming the first line (under
/// [`OnInvalid::Skip`], a skipped line). Records keyed by id must be unique, or whatever joins
/// or resumes by id mixes two of them up.
pub fn reject_duplicates<T>(
    parsed: Parsed<T>,
    source: &str,
    field: &str,
    on_invalid: OnInvalid,
    key: impl Fn(&T) -> String,
) -> Result<Parsed<T>, RecordError> {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut records = Vec::with_capacity(parsed.records.len());
    let mut skipped = parsed.skipped;
    for r in parsed.records {
        let k = key(&r.record);
        match first.get(&k) {
            Some(&line) => {
                let err = RecordError::new(
                    source,
                    r.line,
                    FieldError::new(
                        field,
                        format!(
                            "duplicate {field} `{k}` (first on line {line}): each must be unique"
                        ),
                    ),
                );
                match on_invalid {
                    OnInvalid::Fail => return Err(err),
                    OnInvalid::Skip => skipped.push(err),
                }
            }
            None => {
                first.insert(k, r.line);
                records.push(r);
            }
        }
    }
    skipped.sort_by_key(|e| e.line);
    Ok(Parsed { records, skipped })
}

/// Write one value as a JSON line.
pub fn write_line<W: Write + ?Sized, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;

    const INPUT: &str = concat!(
        r#"{"prompt":[{"role":"user","content":"a"}],"completion":"b"}"#,
        "\n\n",
        r#"{"prompt":[{"role":"user","content":"a"}],"completion":"#,
        "\n",
        r#"{"prompt":[{"role":"user","content":"c"}],"completion":"d","response_type":"Comply"}"#,
        "\n"
    );

    #[test]
    fn fail_mode_names_file_and_line() {
        let err = read_with(
            INPUT.as_bytes(),
            "x.jsonl",
            OnInvalid::Fail,
            Sample::from_value,
        )
        .unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.to_string().starts_with("x.jsonl:3: malformed JSON"),
            "{err}"
        );
    }

    #[test]
    fn skip_mode_keeps_valid_lines_in_order_with_line_index_ids() {
        let parsed = read_with(
            INPUT.as_bytes(),
            "x.jsonl",
            OnInvalid::Skip,
            Sample::from_value,
        )
        .unwrap();
        assert_eq!(parsed.skipped.len(), 1);
        let lines: Vec<usize> = parsed.records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 4]);
        assert_eq!(parsed.records[1].record.id.to_string(), "3");
    }

    #[test]
    fn duplicate_ids_name_both_lines_or_keep_the_first() {
        let text = concat!(
            r#"{"id":"s1","prompt":[{"role":"user","content":"a"}],"completion":"b"}"#,
            "\n",
            r#"{"id":3,"prompt":[{"role":"user","content":"a"}],"completion":"b"}"#,
            "\n",
            r#"{"id":"s1","prompt":[{"role":"user","content":"c"}],"completion":"d"}"#,
            "\n",
            r#"{"id":"3","prompt":[{"role":"user","content":"c"}],"completion":"d"}"#,
            "\n",
        );
        let read = |mode| {
            let parsed = read_with(text.as_bytes(), "x.jsonl", mode, Sample::from_value).unwrap();
            reject_duplicates(parsed, "x.jsonl", "id", mode, |s: &Sample| s.id.to_string())
        };
        let err = read(OnInvalid::Fail).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.jsonl:3: field `id`: duplicate id `s1` (first on line 1): each must be unique"
        );
        let kept = read(OnInvalid::Skip).unwrap();
        let lines: Vec<usize> = kept.records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 2]);
        let skipped: Vec<usize> = kept.skipped.iter().map(|e| e.line).collect();
        assert_eq!(
            skipped,
            vec![3, 4],
            "the integer 3 and the string \"3\" are one id"
        );
    }

    #[test]
    fn lines_over_the_limit_are_bad_lines_read_past_not_held() {
        let ok = INPUT.lines().next().unwrap();
        let long = format!("{{\"pad\": \"{}\"}}", "x".repeat(5_000));
        for tail in ["\n", ""] {
            let text = format!("{ok}\n{long}\n{ok}\n{long}{tail}");
            let parsed = read_with_limit(
                text.as_bytes(),
                "x.jsonl",
                OnInvalid::Skip,
                ok.len() + 1,
                Sample::from_value,
            )
            .unwrap();
            let lines: Vec<usize> = parsed.records.iter().map(|r| r.line).collect();
            assert_eq!(lines, vec![1, 3]);
            let skipped: Vec<String> = parsed.skipped.iter().map(|e| e.to_string()).collect();
            assert_eq!(skipped.len(), 2);
            assert!(
                skipped[0].starts_with(&format!(
                    "x.jsonl:2: the line is {} bytes, over the limit of {} bytes",
                    long.len(),
                    ok.len() + 1
                )),
                "{skipped:?}"
            );
            assert!(skipped[1].starts_with("x.jsonl:4: "), "{skipped:?}");
        }
        // A line exactly at the limit is taken, with or without its newline.
        let parsed = read_with_limit(
            ok.as_bytes(),
            "x",
            OnInvalid::Fail,
            ok.len(),
            Sample::from_value,
        );
        assert_eq!(parsed.unwrap().records.len(), 1);
    }

    #[test]
    fn a_byte_order_mark_opens_the_file_only() {
        let text = format!("\u{feff}{}", INPUT.lines().next().unwrap());
        let parsed = read_with(
            text.as_bytes(),
            "x.jsonl",
            OnInvalid::Fail,
            Sample::from_value,
        );
        assert_eq!(parsed.unwrap().records.len(), 1);
        let second = format!(
            "{}\n\u{feff}{}",
            INPUT.lines().next().unwrap(),
            INPUT.lines().next().unwrap()
        );
        let err = read_with(
            second.as_bytes(),
            "x.jsonl",
            OnInvalid::Fail,
            Sample::from_value,
        )
        .unwrap_err();
        assert_eq!(
            err.line, 2,
            "a mark inside the file is an error on its line"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let bytes: &[u8] = b"\xff\xfe\n";
        let err = read_with(bytes, "b.jsonl", OnInvalid::Fail, Sample::from_value).unwrap_err();
        assert!(err.to_string().contains("UTF-8"));
    }
}
