//! Errors that point at the exact place in the input that is wrong.

use std::fmt;

/// A problem with one field of one record, before the record's location is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field (`prompt[2].role`), empty for the record as a whole.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A problem with the named field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefix the field path with a parent (`prompt` + `[2].role` → `prompt[2].role`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// A problem located in a file: `source:line: field `x`: message`, or for a columnar file
/// (Parquet) `source: row N: field `x`: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {error}", if *.in_rows { format!(": row {line}") } else { format!(":{line}") })]
pub struct RecordError {
    /// The file (or stream name) the record came from.
    pub file: String,
    /// 1-based line number, or with `in_rows` the 0-based row (as pandas and pyarrow count).
    pub line: usize,
    /// `line` is a row of a columnar file.
    pub in_rows: bool,
    /// The field-level problem.
    pub error: FieldError,
}

impl RecordError {
    /// Locate a field error in a source file.
    pub fn new(file: impl Into<String>, line: usize, error: FieldError) -> Self {
        RecordError {
            file: file.into(),
            line,
            in_rows: false,
            error,
        }
    }

    /// Locate a field error at a row (0-based) of a columnar file.
    pub fn at_row(file: impl Into<String>, row: usize, error: FieldError) -> Self {
        RecordError {
            in_rows: true,
            ..RecordError::new(file, row, error)
        }
    }
}

/// The 1-based line holding byte `offset` of `text` (the end of the text when past it), for
/// turning a parser's byte span into a location a person can find.
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod line_tests {
    #[test]
    fn line_at_counts_newlines_before_the_offset() {
        let t = "a = 1\nb = 2\n\nc";
        assert_eq!(super::line_at(t, 0), 1);
        assert_eq!(super::line_at(t, 6), 2);
        assert_eq!(super::line_at(t, 13), 4);
        assert_eq!(super::line_at(t, 999), 4);
    }
}
