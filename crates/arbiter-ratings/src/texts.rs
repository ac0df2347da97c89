//! What a model reads about each item: its text, its official split and the dataset's own hard
//! label, keyed exactly as the ratings importers key items (so the two join on the item id).
//!
//! Unlike the ratings readers, a text that cannot be read is an error naming the file, the
//! record (or line) and the field: an item without its text cannot be modelled, and leaving it
//! out silently would change what is evaluated.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value};

use crate::ReadError;
use crate::datasets::{read_json, top_object};
use crate::generic::scalar;

/// One item's text and what the dataset says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    /// Item id, as the ratings reader of the same source keys it.
    pub item: String,
    /// The text a model reads.
    pub text: String,
    /// Official split (`train`, `dev`, `test`), when the dataset has one.
    pub split: Option<String>,
    /// The dataset's hard label (LeWiDi: majority vote with random tie-breaks), as text.
    pub hard_label: Option<String>,
}

fn format_error(path: &Path, location: String, field: &str, message: &str) -> ReadError {
    ReadError::Format {
        path: path.to_path_buf(),
        location,
        message: format!("{field}: {message}"),
    }
}

/// The order of a ConvAbuse turn's parts: the context turns first.
const CONVABUSE_TURNS: [&str; 4] = ["prev_agent", "prev_user", "agent", "user"];

/// ConvAbuse's `text` is a JSON object of the conversation's last turns; render one
/// `speaker: text` line per non-empty turn, oldest first (`prev_agent` is spoken by `agent`).
/// Parts other than the four known ones follow in name order.
fn render_conversation(turns: &Map<String, Value>) -> Option<String> {
    let mut lines = Vec::new();
    let known = CONVABUSE_TURNS.iter().map(|k| (*k, turns.get(*k)));
    let others = turns
        .iter()
        .filter(|(k, _)| !CONVABUSE_TURNS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), Some(v)));
    for (key, value) in known.chain(others) {
        let Some(value) = value else { continue };
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.trim().to_string(),
            other => scalar(other)?,
        };
        if text.is_empty() {
            continue;
        }
        let speaker = key.strip_prefix("prev_").unwrap_or(key);
        lines.push(format!("{speaker}: {text}"));
    }
    Some(lines.join("\n"))
}

/// LeWiDi 2023 texts of `set` from `<set>_{train,dev,test}.json` in `dir` (those present), items
/// `split/id` like [`crate::datasets::lewidi`]. ConvAbuse's conversation is rendered one
/// `speaker: text` line per turn; a `hard_label` given as a number or a string is read as text.
pub fn lewidi_texts(dir: &Path, set: &str) -> Result<Vec<ItemRecord>, ReadError> {
    let mut out = Vec::new();
    let mut any = false;
    for split in ["train", "dev", "test"] {
        let path = dir.join(format!("{set}_{split}.json"));
        if !path.exists() {
            continue;
        }
        any = true;
        let doc = read_json(&path)?;
        for (id, rec) in &top_object(&path, &doc)? {
            let loc = || format!("record {id}");
            let text = match rec.get("text") {
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    // ConvAbuse: a JSON object serialised into the string.
                    Ok(Value::Object(turns)) if s.trim_start().starts_with('{') => {
                        render_conversation(&turns).ok_or_else(|| {
                            format_error(&path, loc(), "text", "a turn is not a string")
                        })?
                    }
                    _ => s.clone(),
                },
                Some(_) => {
                    return Err(format_error(&path, loc(), "text", "not a string"));
                }
                None => return Err(format_error(&path, loc(), "text", "missing")),
            };
            let hard_label = match rec.get("hard_label") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    scalar(v)
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| format_error(&path, loc(), "hard_label", "not a scalar"))?,
                ),
            };
            out.push(ItemRecord {
                item: format!("{split}/{id}"),
                text,
                split: Some(split.to_string()),
                hard_label,
            });
        }
    }
    if !any {
        return Err(ReadError::Io {
            path: dir.join(format!("{set}_train.json")),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no split file of this set"),
        });
    }
    Ok(out)
}

/// MultiPICo texts from `MP_{train,dev,test}.json` in `dir` (those present), items `split/id`
/// like [`crate::datasets::multipico`]: the post, then the reply on the next line. The split is
/// the file's; there is no hard label.
pub fn multipico_texts(dir: &Path) -> Result<Vec<ItemRecord>, ReadError> {
    let mut out = Vec::new();
    let mut any = false;
    for split in ["train", "dev", "test"] {
        let path = dir.join(format!("MP_{split}.json"));
        if !path.exists() {
            continue;
        }
        any = true;
        let doc = read_json(&path)?;
        for (id, rec) in &top_object(&path, &doc)? {
            let loc = || format!("record {id}");
            let Some(text) = rec.get("text") else {
                return Err(format_error(&path, loc(), "text", "missing"));
            };
            let part = |name: &str| -> Result<String, ReadError> {
                match text.get(name) {
                    Some(Value::String(s)) => Ok(s.trim().to_string()),
                    Some(Value::Null) | None => Ok(String::new()),
                    Some(_) => Err(format_error(
                        &path,
                        loc(),
                        &format!("text.{name}"),
                        "not a string",
                    )),
                }
            };
            let text = match text {
                Value::String(s) => s.clone(),
                Value::Object(_) => {
                    let parts: Vec<String> = [part("post")?, part("reply")?]
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect();
                    parts.join("\n")
                }
                _ => {
                    return Err(format_error(
                        &path,
                        loc(),
                        "text",
                        "neither a string nor {post, reply}",
                    ));
                }
            };
            out.push(ItemRecord {
                item: format!("{split}/{id}"),
                text,
                split: Some(split.to_string()),
                hard_label: None,
            });
        }
    }
    if !any {
        return Err(ReadError::Io {
            path: dir.join("MP_dev.json"),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no MultiPICo split file"),
        });
    }
    Ok(out)
}

/// Which columns of a texts file (or of the ratings file itself) hold what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextColumns {
    /// Item id column.
    pub item: String,
    /// Text column.
    pub text: String,
    /// Optional split column (`train`, `dev`, `test`).
    pub split: Option<String>,
}

/// Keeps the first non-empty text per item, in first-seen item order.
#[derive(Default)]
struct FirstText {
    order: Vec<ItemRecord>,
    index: HashMap<String, usize>,
}

impl FirstText {
    fn add(&mut self, item: &str, text: &str, split: Option<&str>) {
        let item = item.trim();
        match self.index.get(item) {
            Some(&i) => {
                let rec = &mut self.order[i];
                if rec.text.is_empty() {
                    rec.text = text.to_string();
                }
                if rec.split.is_none() {
                    rec.split = split.map(str::to_string);
                }
            }
            None => {
                self.index.insert(item.to_string(), self.order.len());
                self.order.push(ItemRecord {
                    item: item.to_string(),
                    text: text.to_string(),
                    split: split.map(str::to_string),
                    hard_label: None,
                });
            }
        }
    }
}

/// Item texts from a CSV (`.csv`, `.tsv`) or JSONL (`.jsonl`, `.ndjson`) file: the first
/// non-empty text per item (a ratings file repeats the item's text on each of its rows). JSON
/// fields may be dotted paths (`text.post`). Items whose text is empty on every row are kept
/// with an empty text, for the caller to name. A row without the item, or with a text that is
/// not a scalar, is an error naming its line and field.
pub fn texts_file(path: &Path, columns: &TextColumns) -> Result<Vec<ItemRecord>, ReadError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let file = File::open(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    match ext.as_str() {
        "csv" => texts_csv(file, path, b',', columns),
        "tsv" => texts_csv(file, path, b'\t', columns),
        "jsonl" | "ndjson" => texts_jsonl(file, path, columns),
        _ => Err(ReadError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

fn texts_csv(
    file: File,
    path: &Path,
    delimiter: u8,
    columns: &TextColumns,
) -> Result<Vec<ItemRecord>, ReadError> {
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(BufReader::new(file));
    let headers = csv
        .headers()
        .map_err(|e| ReadError::Format {
            path: path.to_path_buf(),
            location: "line 1".into(),
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| ReadError::MissingColumn {
                path: path.to_path_buf(),
                column: name.into(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let (item_i, text_i) = (col(&columns.item)?, col(&columns.text)?);
    let split_i = columns.split.as_deref().map(col).transpose()?;
    let mut out = FirstText::default();
    for record in csv.records() {
        let record = record.map_err(|e| ReadError::Format {
            path: path.to_path_buf(),
            location: format!("line {}", e.position().map_or(0, |p| p.line())),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let item = record.get(item_i).unwrap_or("").trim();
        if item.is_empty() {
            return Err(format_error(
                path,
                format!("line {line}"),
                &columns.item,
                "empty item id",
            ));
        }
        let split = split_i
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty());
        out.add(item, record.get(text_i).unwrap_or("").trim(), split);
    }
    Ok(out.order)
}

fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.get(path)
        .or_else(|| path.split('.').try_fold(v, |v, key| v.get(key)))
}

fn texts_jsonl(
    file: File,
    path: &Path,
    columns: &TextColumns,
) -> Result<Vec<ItemRecord>, ReadError> {
    let mut out = FirstText::default();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let loc = || format!("line {}", n + 1);
        let line = line.map_err(|cause| ReadError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line.trim_start_matches('\u{feff}'))
            .map_err(|e| format_error(path, loc(), "line", &format!("invalid JSON: {e}")))?;
        let item = dotted(&value, &columns.item)
            .and_then(scalar)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format_error(path, loc(), &columns.item, "missing or not a scalar"))?;
        let text = match dotted(&value, &columns.text) {
            None | Some(Value::Null) => String::new(),
            Some(v) => scalar(v).ok_or_else(|| {
                format_error(path, loc(), &columns.text, "not a string or number")
            })?,
        };
        let split = match &columns.split {
            Some(s) => dotted(&value, s).and_then(scalar),
            None => None,
        };
        out.add(
            &item,
            text.trim(),
            split.as_deref().filter(|s| !s.is_empty()),
        );
    }
    Ok(out.order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("arbiter-texts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    #[test]
    fn conversation_turns_in_order() {
        let turns: Map<String, Value> = serde_json::from_str(
            r#"{"user": "u2", "agent": "a2", "prev_user": "", "prev_agent": "a1"}"#,
        )
        .unwrap();
        assert_eq!(
            render_conversation(&turns).unwrap(),
            "agent: a1\nagent: a2\nuser: u2"
        );
    }

    #[test]
    fn lewidi_records_key_text_split_and_hard_label() {
        let dir = temp_file("ConvAbuse_dev.json", "")
            .parent()
            .unwrap()
            .join("lewidi");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ConvAbuse_dev.json"),
            r#"{"1": {"text": "{\"prev_agent\": \"Hi\", \"prev_user\": \"yo\", \"agent\": \"Why?\", \"user\": \"no\"}", "hard_label": 1},
                "2": {"text": "{\"agent\": \"Ok\", \"user\": \"bye\"}", "hard_label": "0"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("ConvAbuse_test.json"),
            r#"{"1": {"text": "plain", "hard_label": null}}"#,
        )
        .unwrap();
        let got = lewidi_texts(&dir, "ConvAbuse").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].item, "dev/1");
        assert_eq!(got[0].text, "agent: Hi\nuser: yo\nagent: Why?\nuser: no");
        assert_eq!(got[0].hard_label.as_deref(), Some("1"));
        assert_eq!(got[1].hard_label.as_deref(), Some("0"));
        assert_eq!(got[2].item, "test/1");
        assert_eq!(got[2].text, "plain");
        assert_eq!(got[2].split.as_deref(), Some("test"));
        assert_eq!(got[2].hard_label, None);

        std::fs::write(
            dir.join("ConvAbuse_test.json"),
            r#"{"7": {"hard_label": 1}}"#,
        )
        .unwrap();
        let err = lewidi_texts(&dir, "ConvAbuse").unwrap_err().to_string();
        assert!(
            err.contains("ConvAbuse_test.json: record 7: text: missing"),
            "{err}"
        );
    }

    #[test]
    fn texts_file_keeps_the_first_non_empty_text() {
        let p = temp_file(
            "t.csv",
            "item,rater,label,text\na,r1,0,\na,r2,1,hello\na,r3,1,other\nb,r1,0,world\nc,r1,1,\n",
        );
        let cols = TextColumns {
            item: "item".into(),
            text: "text".into(),
            split: None,
        };
        let got = texts_file(&p, &cols).unwrap();
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|r| (r.item.as_str(), r.text.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "hello"), ("b", "world"), ("c", "")]);

        let bad = TextColumns {
            text: "body".into(),
            ..cols.clone()
        };
        let err = texts_file(&p, &bad).unwrap_err().to_string();
        assert!(err.contains("no column \"body\""), "{err}");

        let j = temp_file(
            "t.jsonl",
            "{\"id\": 1, \"t\": {\"post\": \"p\"}}\n\n{\"id\": 2, \"t\": {\"post\": [1]}}\n",
        );
        let jc = TextColumns {
            item: "id".into(),
            text: "t.post".into(),
            split: None,
        };
        let err = texts_file(&j, &jc).unwrap_err().to_string();
        assert!(
            err.contains("t.jsonl: line 3: t.post: not a string"),
            "{err}"
        );
    }
}
