//! The text readers on the shared datasets: split sizes from annotation.md §8/§10, every
//! ratings item has exactly one text (the keys join), ConvAbuse's hard labels (ints and
//! strings) lie in the task's binary space. Skipped with a reason when `$ARBITER_DATA` is
//! absent, unless `ARBITER_REQUIRE_DATA=1`.

use std::collections::{BTreeMap, HashSet};

use arbiter_ratings::texts::{ItemRecord, lewidi_texts, multipico_texts};
use arbiter_ratings::{Options, datasets};

fn split_sizes(records: &[ItemRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        *out.entry(r.split.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    out
}

fn same_items(records: &[ItemRecord], ratings: &arbiter_stats::Ratings) {
    let texts: HashSet<&str> = records.iter().map(|r| r.item.as_str()).collect();
    assert_eq!(texts.len(), records.len(), "an item has two texts");
    let rated: HashSet<&str> = ratings.items().iter().collect();
    assert_eq!(texts, rated);
    assert!(records.iter().all(|r| !r.text.trim().is_empty()));
}

#[test]
fn lewidi_split_sizes_and_keys() {
    let Some(dir) = arbiter_testkit::shared_data("annotation/lewidi2023") else {
        return;
    };
    for (set, sizes) in [
        ("HS-Brexit", [784, 168, 168]),
        ("ArMIS", [657, 141, 145]),
        ("ConvAbuse", [2398, 812, 840]),
        ("MD-Agreement", [6592, 1104, 3057]),
    ] {
        let records = lewidi_texts(&dir, set).unwrap();
        let got = split_sizes(&records);
        let want: BTreeMap<String, usize> = ["dev", "test", "train"]
            .iter()
            .zip([sizes[1], sizes[2], sizes[0]])
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        assert_eq!(got, want, "{set}");
        let loaded = datasets::lewidi_task(&dir, set, &Options::default()).unwrap();
        assert!(loaded.problems.is_empty(), "{set}: {:?}", loaded.problems);
        assert_eq!(loaded.ratings.domain().values(), ["0", "1"], "{set}");
        same_items(&records, &loaded.ratings);
        assert!(
            records
                .iter()
                .all(|r| matches!(r.hard_label.as_deref(), Some("0" | "1"))),
            "{set}: a hard label outside 0/1"
        );
    }
}

#[test]
fn convabuse_turns_and_binary_labels() {
    let Some(dir) = arbiter_testkit::shared_data("annotation/lewidi2023") else {
        return;
    };
    let records = lewidi_texts(&dir, "ConvAbuse").unwrap();
    let first = records.iter().find(|r| r.item == "train/1").unwrap();
    assert_eq!(
        first.text,
        "agent: Please go on.\nuser: well, i have a eatproblem\nagent: Can you elaborate on that?\nuser: yes"
    );
    // 12,168 labels (annotation.md §8); the binary task labels keep every one, and the share
    // of abusive labels per item is the file's soft label.
    let loaded = datasets::lewidi_task(&dir, "ConvAbuse", &Options::default()).unwrap();
    assert_eq!(loaded.ratings.n_ratings(), 12_168);
    let raw = datasets::lewidi(&dir, "ConvAbuse", &Options::default()).unwrap();
    assert_eq!(raw.ratings.domain().values().len(), 5);
    let abusive_raw = raw
        .ratings
        .rows()
        .iter()
        .filter(|r| raw.ratings.domain().values()[r.label as usize].starts_with('-'))
        .count();
    let abusive = loaded
        .ratings
        .rows()
        .iter()
        .filter(|r| r.label == 1)
        .count();
    assert_eq!(abusive, abusive_raw);
    assert_eq!(abusive, 474 + 496 + 158 + 143 + 194 + 62 + 167 + 196 + 55);
}

#[test]
fn multipico_split_sizes_and_keys() {
    let Some(dir) = arbiter_testkit::shared_data("annotation/multipico") else {
        return;
    };
    let records = multipico_texts(&dir).unwrap();
    let got = split_sizes(&records);
    assert_eq!(got.get("dev"), Some(&3005));
    assert_eq!(got.get("test"), Some(&3756));
    assert_eq!(got.len(), 2);
    assert!(records.iter().all(|r| r.hard_label.is_none()));
    let two = records.iter().find(|r| r.item == "dev/2").unwrap();
    assert!(
        two.text.starts_with("Guy is my longtime fb friend.")
            && two
                .text
                .ends_with("\nLately Barak Valley has become a lot more intolerant"),
        "{}",
        two.text
    );
    let loaded = datasets::multipico(&dir, &["Gender"], &Options::default()).unwrap();
    assert_eq!(loaded.ratings.n_ratings(), 33_871);
    same_items(&records, &loaded.ratings);
}
