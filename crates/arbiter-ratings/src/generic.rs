//! Generic long-format readers: one rating per CSV row or JSONL line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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
        "tsv" => read_csv_from(open(path)?, path, b'\t', columns, options),
        "jsonl" | "ndjson" => read_jsonl(path, columns, options),
        _ => Err(ReadError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Read a comma-separated file with a header row.
pub fn read_csv(path: &Path, columns: &Columns, options: &Options) -> Result<Loaded, ReadError> {
    read_csv_from(open(path)?, path, b',', columns, options)
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
        for (name, v) in names.iter().zip([item, rater, label]) {
            if v.trim().is_empty() {
                self.problem(location(), Some(name), "empty value");
                return;
            }
        }
        if let Err(e) = self
            .builder
            .push(item.trim(), rater.trim(), label.trim(), groups)
        {
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
pub fn read_csv_from(
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
