//! Importers for named public per-rater datasets.
//!
//! Item keys are chosen so that distinct items never collide: LeWiDi ids restart per split, so
//! LeWiDi and MultiPICo items are `split/id`; ConvAbuse CSV items are the conversation turn
//! `(conv_id, prev_agent, prev_user, agent, user)` joined with U+001F.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::generic::{Collector, read_csv_from, scalar};
use crate::{Columns, Loaded, Options, ReadError};

/// Read a JSON document. Python's `json.dump` writes missing numbers as bare `NaN` (the
/// MultiPICo metadata does), which is not JSON; those tokens are read as `null` = missing.
pub(crate) fn read_json(path: &Path) -> Result<Value, ReadError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| BufReader::new(f).read_to_string(&mut text))
        .map_err(|cause| ReadError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
    let parsed = serde_json::from_str(&text).or_else(|first| {
        let patched = nan_to_null(&text);
        if patched == text {
            Err(first)
        } else {
            serde_json::from_str(&patched).map_err(|_| first)
        }
    });
    parsed.map_err(|e| ReadError::Format {
        path: path.to_path_buf(),
        location: format!("line {}", e.line()),
        message: e.to_string(),
    })
}

/// Replace `NaN`, `Infinity` and `-Infinity` outside strings by `null`.
fn nan_to_null(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let token = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                out.push_str("null");
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub(crate) fn top_object(path: &Path, v: &Value) -> Result<Map<String, Value>, ReadError> {
    v.as_object().cloned().ok_or_else(|| ReadError::Format {
        path: path.to_path_buf(),
        location: "top level".into(),
        message: "expected a JSON object keyed by item id".into(),
    })
}

/// LeWiDi 2023 (SemEval-2023 Task 11) sets: `HS-Brexit`, `ArMIS`, `MD-Agreement`, `ConvAbuse`.
///
/// Reads `<set>_{train,dev,test}.json` from `dir` (missing splits are skipped), in that order.
/// One group column, `group`: HS-Brexit's per-rating `annotators group` (`group1` = target
/// group, `group2` = control) or ArMIS's per-rater pool from `other_info`; missing otherwise.
pub fn lewidi(dir: &Path, set: &str, options: &Options) -> Result<Loaded, ReadError> {
    lewidi_recoded(dir, set, options, None)
}

/// [`lewidi`] with the labels the shared task scores: ConvAbuse's five levels (1 = not
/// abusive, 0 = ambiguous, −1…−3 = mildly to very strongly abusive) become `1` (abusive, ≤ −1)
/// and `0` (the rest), the space of its `soft_label` and `hard_label`; the other sets are
/// binary already and read as [`lewidi`] reads them.
pub fn lewidi_task(dir: &Path, set: &str, options: &Options) -> Result<Loaded, ReadError> {
    let recode: Option<fn(&str) -> Option<&'static str>> = if set == "ConvAbuse" {
        Some(|raw| {
            let level: i64 = raw.trim().parse().ok()?;
            (-3..=1)
                .contains(&level)
                .then_some(if level <= -1 { "1" } else { "0" })
        })
    } else {
        None
    };
    lewidi_recoded(dir, set, options, recode)
}

fn lewidi_recoded(
    dir: &Path,
    set: &str,
    options: &Options,
    recode: Option<fn(&str) -> Option<&'static str>>,
) -> Result<Loaded, ReadError> {
    let mut out: Option<Collector> = None;
    let mut any = false;
    for split in ["train", "dev", "test"] {
        let path = dir.join(format!("{set}_{split}.json"));
        if !path.exists() {
            continue;
        }
        any = true;
        let doc = read_json(&path)?;
        let records = top_object(&path, &doc)?;
        let c = out.get_or_insert_with(|| Collector::new(&path, options, vec!["group".into()]));
        c.file = path.clone();
        for (id, rec) in &records {
            let loc = || format!("record {id}");
            let (Some(raters), Some(labels)) = (
                rec.get("annotators").and_then(Value::as_str),
                rec.get("annotations").and_then(Value::as_str),
            ) else {
                c.problem(
                    loc(),
                    Some("annotations"),
                    "missing annotators/annotations strings",
                );
                continue;
            };
            let raters: Vec<&str> = raters.split(',').collect();
            let labels: Vec<&str> = labels.split(',').collect();
            if raters.len() != labels.len() {
                c.problem(
                    loc(),
                    Some("annotations"),
                    format!(
                        "{} annotators but {} annotations",
                        raters.len(),
                        labels.len()
                    ),
                );
                continue;
            }
            let info = rec.get("other_info");
            let per_rating: Option<Vec<&str>> = info
                .and_then(|i| i.get("annotators group"))
                .and_then(Value::as_str)
                .map(|g| g.split(',').collect());
            let item = format!("{split}/{id}");
            for (n, (rater, label)) in raters.iter().zip(&labels).enumerate() {
                let rater = rater.trim();
                let group = match &per_rating {
                    Some(g) => g.get(n).map(|s| s.trim()),
                    None => info.and_then(|i| i.get(rater)).and_then(Value::as_str),
                };
                let label = match recode {
                    None => *label,
                    Some(f) => match f(label) {
                        Some(l) => l,
                        None => {
                            c.problem(
                                loc(),
                                Some("annotations"),
                                format!("{label:?} is not one of the set's levels"),
                            );
                            continue;
                        }
                    },
                };
                c.row(
                    loc,
                    ["id", "annotators", "annotations"],
                    &item,
                    rater,
                    label,
                    &[group],
                );
            }
        }
    }
    match out {
        Some(c) if any => c.finish(options),
        _ => Err(ReadError::Io {
            path: dir.join(format!("{set}_train.json")),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no split file of this set"),
        }),
    }
}

/// MultiPICo (LeWiDi 2025 irony): `MP_dev.json` and `MP_test.json` (those present) with rater
/// demographics from `MP_annotators_meta.json` as group columns (`Gender`, `Age`, …, each
/// `DATA_EXPIRED` treated as missing). `group_fields` picks the metadata fields to attach.
pub fn multipico(
    dir: &Path,
    group_fields: &[&str],
    options: &Options,
) -> Result<Loaded, ReadError> {
    let meta_path = dir.join("MP_annotators_meta.json");
    let meta = read_json(&meta_path)?;
    let meta = top_object(&meta_path, &meta)?;
    let mut c = Collector::new(
        &meta_path,
        options,
        group_fields.iter().map(|s| s.to_string()).collect(),
    );
    let mut any = false;
    for split in ["train", "dev", "test"] {
        let path = dir.join(format!("MP_{split}.json"));
        if !path.exists() {
            continue;
        }
        any = true;
        c.file = path.clone();
        let doc = read_json(&path)?;
        for (id, rec) in &top_object(&path, &doc)? {
            let Some(annotations) = rec.get("annotations").and_then(Value::as_object) else {
                c.problem(
                    format!("record {id}"),
                    Some("annotations"),
                    "missing or not an object",
                );
                continue;
            };
            let item = format!("{split}/{id}");
            for (rater, label) in annotations {
                let key = rater.strip_prefix("Ann").unwrap_or(rater);
                let m = meta.get(key);
                let values: Vec<Option<String>> = group_fields
                    .iter()
                    .map(|f| {
                        m.and_then(|m| m.get(*f))
                            .and_then(scalar)
                            .filter(|v| v != "DATA_EXPIRED" && !v.is_empty())
                    })
                    .collect();
                let groups: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
                let Some(label) = scalar(label) else {
                    c.problem(
                        format!("record {id}"),
                        Some(&format!("annotations.{rater}")),
                        "not a scalar",
                    );
                    continue;
                };
                c.row(
                    || format!("record {id}"),
                    ["id", "annotator", &format!("annotations.{rater}")],
                    &item,
                    rater,
                    &label,
                    &groups,
                );
            }
        }
    }
    if !any {
        return Err(ReadError::Io {
            path: dir.join("MP_dev.json"),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no MultiPICo split file"),
        });
    }
    c.finish(options)
}

/// The ConvAbuse per-annotator CSV (`ConvAbuseEMNLPfull.csv` and splits): the label is the
/// suffix of the one `is_abuse.*` column set to 1 (1 = not abusive … −3 = very strongly
/// abusive). Rows with none or several set are reported.
pub fn convabuse_csv(path: &Path, options: &Options) -> Result<Loaded, ReadError> {
    let file = File::open(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let mut csv = csv::Reader::from_reader(file);
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
            .position(|h| h == name)
            .ok_or_else(|| ReadError::MissingColumn {
                path: path.to_path_buf(),
                column: name.into(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let key_cols = ["conv_id", "prev_agent", "prev_user", "agent", "user"]
        .iter()
        .map(|c| col(c))
        .collect::<Result<Vec<_>, _>>()?;
    let rater_col = col("annotator_id")?;
    let abuse: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("is_abuse.").map(|s| (i, s.to_string())))
        .collect();
    if abuse.is_empty() {
        return Err(ReadError::MissingColumn {
            path: path.to_path_buf(),
            column: "is_abuse.*".into(),
            available: headers.iter().collect::<Vec<_>>().join(", "),
        });
    }
    let mut c = Collector::new(path, options, vec![]);
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                c.problem(format!("line {line}"), None, e.to_string());
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let set: Vec<&str> = abuse
            .iter()
            .filter(|(i, _)| record.get(*i).map(str::trim) == Some("1"))
            .map(|(_, s)| s.as_str())
            .collect();
        if set.len() != 1 {
            c.problem(
                format!("line {line}"),
                Some("is_abuse.*"),
                format!(
                    "expected exactly one is_abuse column set, found {}",
                    set.len()
                ),
            );
            continue;
        }
        let item: Vec<&str> = key_cols
            .iter()
            .map(|&i| record.get(i).unwrap_or(""))
            .collect();
        let rater = record.get(rater_col).unwrap_or("");
        c.row(
            || format!("line {line}"),
            ["conv_id", "annotator_id", "is_abuse"],
            &item.join("\u{1f}"),
            rater,
            set[0],
            &[],
        );
    }
    c.finish(options)
}

/// Attributes of the Jigsaw specialized rater pools file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JigsawAttribute {
    /// `toxic_score`: −2/−1 → `1` (toxic), 1 → `0`, 0 → `unsure`.
    Toxic,
    /// `identity_attack`: −1 → `1` (present), 1 → `0` (absent), 0 → `unsure`.
    IdentityAttack,
    /// `insult`, same coding as identity_attack.
    Insult,
    /// `obscene`, same coding.
    Obscene,
    /// `threat`, same coding.
    Threat,
}

impl JigsawAttribute {
    fn column(self) -> &'static str {
        match self {
            JigsawAttribute::Toxic => "toxic_score",
            JigsawAttribute::IdentityAttack => "identity_attack",
            JigsawAttribute::Insult => "insult",
            JigsawAttribute::Obscene => "obscene",
            JigsawAttribute::Threat => "threat",
        }
    }

    /// Undo the file's inverted polarity (−1 = present) so that `1` means "has the attribute".
    fn recode(self, raw: &str) -> Option<&'static str> {
        let v: f64 = raw.trim().parse().ok()?;
        match (self, v as i64, v.fract() == 0.0) {
            (_, _, false) => None,
            (JigsawAttribute::Toxic, -2 | -1, _) => Some("1"),
            (JigsawAttribute::Toxic, 1, _) => Some("0"),
            (_, 0, _) => Some("unsure"),
            (JigsawAttribute::Toxic, _, _) => None,
            (_, -1, _) => Some("1"),
            (_, 1, _) => Some("0"),
            _ => None,
        }
    }
}

/// Jigsaw specialized rater pools (`specialized_rater_pools_data.csv`): item `id`, rater
/// `unique_contributor_id`, group `rater_group`, label = the recoded attribute. `null`
/// (incomprehensible) and the spreadsheet-mangled id `1.05408E 18` are reported, not read.
pub fn jigsaw_pools(
    path: &Path,
    attribute: JigsawAttribute,
    options: &Options,
) -> Result<Loaded, ReadError> {
    let file = File::open(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let mut csv = csv::Reader::from_reader(file);
    let headers = csv.headers().map_err(|e| ReadError::Format {
        path: path.to_path_buf(),
        location: "line 1".into(),
        message: e.to_string(),
    })?;
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ReadError::MissingColumn {
                path: path.to_path_buf(),
                column: name.into(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let (id_i, rater_i, group_i, label_i) = (
        find("id")?,
        find("unique_contributor_id")?,
        find("rater_group")?,
        find(attribute.column())?,
    );
    let mut c = Collector::new(path, options, vec!["rater_group".into()]);
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                c.problem(
                    format!("line {}", e.position().map_or(0, |p| p.line())),
                    None,
                    e.to_string(),
                );
                continue;
            }
        };
        let loc = format!("line {}", record.position().map_or(0, |p| p.line()));
        let id = record.get(id_i).unwrap_or("").trim();
        if id.contains('E') || id.contains('e') {
            c.problem(
                loc,
                Some("id"),
                format!("id {id:?} was mangled by a spreadsheet"),
            );
            continue;
        }
        let raw = record.get(label_i).unwrap_or("");
        let Some(label) = attribute.recode(raw) else {
            c.problem(
                loc,
                Some(attribute.column()),
                format!("{raw:?} is not a rating (null = incomprehensible)"),
            );
            continue;
        };
        let group = record.get(group_i).map(str::trim).filter(|g| !g.is_empty());
        c.row(
            || loc.clone(),
            ["id", "unique_contributor_id", attribute.column()],
            id,
            record.get(rater_i).unwrap_or(""),
            label,
            &[group],
        );
    }
    c.finish(options)
}

/// DICES (Diverse Conversational AI Safety) CSV: item `item_id`, rater `rater_id`, label
/// `Q_overall` (Yes / No / Unsure), groups `rater_gender`, `rater_race`, `rater_age`,
/// `rater_education`.
pub fn dices(path: &Path, options: &Options) -> Result<Loaded, ReadError> {
    let columns = Columns {
        item: "item_id".into(),
        rater: "rater_id".into(),
        label: "Q_overall".into(),
        groups: ["rater_gender", "rater_race", "rater_age", "rater_education"]
            .map(String::from)
            .to_vec(),
    };
    crate::read_csv(path, &columns, options)
}

/// A POPQUORN-style CSV where every row carries its rater's demographics:
/// `instance_id, user_id, <label>, gender, race, age, occupation, education` (the label
/// column differs per task, e.g. `offensiveness`, `politeness`).
pub fn popquorn(path: &Path, label_column: &str, options: &Options) -> Result<Loaded, ReadError> {
    let file = File::open(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let columns = Columns {
        item: "instance_id".into(),
        rater: "user_id".into(),
        label: label_column.into(),
        groups: ["gender", "race", "age", "occupation", "education"]
            .map(String::from)
            .to_vec(),
    };
    read_csv_from(file, path, b',', &columns, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("arbiter-ratings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    #[test]
    fn jigsaw_file_reports_null_and_mangled_ids() {
        let p = temp_file(
            "pools.csv",
            "id,unique_contributor_id,comment_text,rater_group,identity_attack,insult,obscene,threat,toxic_score\n\
             7,r1,hi,LGBTQ,-1,1,1,1,-2\n\
             7,r2,hi,Control,1,0,1,1,1\n\
             1.05408E 18,r3,x,Control,1,1,1,1,1\n\
             8,r1,yo,LGBTQ,null,null,null,null,null\n",
        );
        let got = jigsaw_pools(&p, JigsawAttribute::Toxic, &Options::default()).unwrap();
        assert_eq!(got.ratings.n_ratings(), 2);
        assert_eq!(got.ratings.domain().values(), ["0", "1"]);
        assert_eq!(got.ratings.rows()[0].label, 1, "−2 = very toxic → 1");
        let msgs: Vec<String> = got.problems.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("line 4: id:") && msgs[0].contains("mangled"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("line 5: toxic_score:"), "{msgs:?}");
        let insult = jigsaw_pools(&p, JigsawAttribute::Insult, &Options::default()).unwrap();
        assert_eq!(insult.ratings.domain().values(), ["0", "unsure"]);
        assert_eq!(insult.ratings.groups()[0].values, ["LGBTQ", "Control"]);
    }

    #[test]
    fn popquorn_rows_carry_demographics() {
        let p = temp_file(
            "popquorn.csv",
            "instance_id,user_id,offensiveness,gender,race,age,occupation,education\n\
             1,u1,3,Woman,Black,18-24,Student,College\n\
             1,u2,1,Man,White,,Retired,High school\n",
        );
        let got = popquorn(&p, "offensiveness", &Options::default()).unwrap();
        assert_eq!(got.ratings.n_ratings(), 2);
        assert_eq!(got.ratings.groups().len(), 5);
        assert_eq!(
            got.ratings.groups()[2].per_row,
            [Some(0), None],
            "empty age = missing"
        );
    }

    #[test]
    fn python_nan_reads_as_null() {
        assert_eq!(
            nan_to_null(r#"{"a": NaN, "b": "NaN \" NaN", "c": -Infinity}"#),
            r#"{"a": null, "b": "NaN \" NaN", "c": null}"#
        );
    }

    #[test]
    fn jigsaw_polarity_is_inverted_back() {
        assert_eq!(JigsawAttribute::Insult.recode("-1"), Some("1"));
        assert_eq!(JigsawAttribute::Insult.recode("1"), Some("0"));
        assert_eq!(JigsawAttribute::Insult.recode("0"), Some("unsure"));
        assert_eq!(JigsawAttribute::Toxic.recode("-2"), Some("1"));
        assert_eq!(JigsawAttribute::Toxic.recode("-1.0"), Some("1"));
        assert_eq!(JigsawAttribute::Toxic.recode("1"), Some("0"));
        assert_eq!(JigsawAttribute::Toxic.recode("null"), None);
        assert_eq!(JigsawAttribute::Threat.recode("-2"), None);
    }
}
