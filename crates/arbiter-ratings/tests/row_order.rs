//! Rows in any order: a CSV grouped by item and the same rows shuffled give the same table
//! (items, raters, duplicates), the same statistics bit for bit, and the same problems at the
//! lines the rows moved to. Exports of annotation tools come ordered by time, and the readers
//! take another path for them than for grouped files (items looked up in batches, rows counted
//! by item instead of read in runs).

use std::path::Path;

use arbiter_ratings::{Columns, Loaded, Options, ReadError, read_csv_from, read_path};
use arbiter_stats::{Distance, DomainSpec, DuplicatePolicy, LabelKind, agreement};
use proptest::prelude::*;

/// (item, rater, label, kind): kind 0 is a bad row (an empty label), 1 one with a field too
/// many, anything else a good row.
type Row = (u32, u32, u32, u8);

fn columns() -> Columns {
    Columns {
        item: "item".into(),
        rater: "rater".into(),
        label: "label".into(),
        groups: vec!["pool".into()],
    }
}

fn line(&(item, rater, label, kind): &Row) -> String {
    match kind {
        0 => format!("item-{item},r{rater},,p{}\n", rater % 3),
        1 => format!("item-{item},r{rater},{label},p,extra\n"),
        _ => format!("item-{item},r{rater},{label},p{}\n", rater % 3),
    }
}

fn text(rows: &[Row]) -> String {
    let mut text = String::from("item,rater,label,pool\n");
    text.extend(rows.iter().map(line));
    text
}

/// A seeded permutation of `0..n` (Fisher–Yates over a 64-bit LCG).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed | 1;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, ((state >> 33) % (i as u64 + 1)) as usize);
    }
    order
}

/// The rows grouped by item (in order of first appearance) and the same rows shuffled, with
/// `moved[k]` the grouped position of shuffled row k.
fn orders(rows: &[Row], seed: u64) -> (Vec<Row>, Vec<Row>, Vec<usize>) {
    let mut first = std::collections::HashMap::new();
    for (at, r) in rows.iter().enumerate() {
        first.entry(r.0).or_insert(at);
    }
    let mut grouped = rows.to_vec();
    grouped.sort_by_key(|r| first[&r.0]);
    let moved = permutation(grouped.len(), seed);
    let shuffled = moved.iter().map(|&k| grouped[k]).collect();
    (grouped, shuffled, moved)
}

/// The problems' messages, with the line of shuffled row k given as that of grouped row
/// `moved[k]` (data starts at line 2), sorted.
fn messages(loaded: &Loaded, moved: Option<&[usize]>) -> Vec<String> {
    let mut out: Vec<String> = loaded
        .problems
        .iter()
        .map(|p| {
            let n: usize = p.location["line ".len()..].parse().expect("a line number");
            let n = moved.map_or(n, |moved| moved[n - 2] + 2);
            format!("line {n}: {:?}: {}", p.field, p.message)
        })
        .collect();
    out.sort();
    out
}

/// α at every level, percent agreement, Fleiss' κ and Gwet's AC1, as bits.
fn statistics(loaded: &Loaded) -> Vec<Option<u64>> {
    let t = &loaded.ratings;
    let mut out: Vec<Option<u64>> = [
        Distance::Nominal,
        Distance::Ordinal,
        Distance::Interval,
        Distance::Ratio,
    ]
    .iter()
    .map(|d| {
        arbiter_stats::krippendorff_alpha(t, d)
            .unwrap()
            .alpha
            .value()
            .map(f64::to_bits)
    })
    .collect();
    let multi = agreement::multi_rater(t);
    out.extend(
        [multi.percent_agreement, multi.fleiss_kappa, multi.gwet_ac1].map(|x| x.map(f64::to_bits)),
    );
    out
}

fn options(policy: DuplicatePolicy) -> Options {
    Options {
        domain: DomainSpec::Infer(LabelKind::Ordered),
        duplicates: policy,
    }
}

/// Grouped and shuffled readings agree; `read` reads a text under a policy.
fn check_orders(
    rows: &[Row],
    seed: u64,
    read: impl Fn(&str, DuplicatePolicy) -> Result<Loaded, ReadError>,
) -> Result<(), TestCaseError> {
    let (grouped, shuffled, moved) = orders(rows, seed);
    let (grouped, shuffled) = (text(&grouped), text(&shuffled));
    for policy in [
        DuplicatePolicy::KeepAll,
        DuplicatePolicy::First,
        DuplicatePolicy::Last,
        DuplicatePolicy::Error,
    ] {
        let (a, b) = (read(&grouped, policy), read(&shuffled, policy));
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(a), Err(b)) => {
                // The first duplicate in item order: the same pair when there is one.
                let pairs = duplicate_pairs(rows);
                if pairs == 1 {
                    prop_assert_eq!(a.to_string(), b.to_string());
                }
                prop_assert!(pairs >= 1);
                continue;
            }
            (a, b) => {
                return Err(TestCaseError::fail(format!(
                    "{policy:?}: grouped {:?}, shuffled {:?}",
                    a.err().map(|e| e.to_string()),
                    b.err().map(|e| e.to_string())
                )));
            }
        };
        let (ta, tb) = (&a.ratings, &b.ratings);
        prop_assert_eq!(ta.n_ratings(), tb.n_ratings());
        prop_assert_eq!(ta.n_duplicates(), tb.n_duplicates());
        // Ids follow first appearance, which the order changes; the names do not.
        let sorted = |names: &arbiter_stats::Names| {
            let mut names: Vec<String> = names.iter().map(str::to_string).collect();
            names.sort_unstable();
            names
        };
        prop_assert_eq!(sorted(ta.items()), sorted(tb.items()));
        prop_assert_eq!(sorted(ta.raters()), sorted(tb.raters()));
        prop_assert_eq!(ta.domain().values(), tb.domain().values());
        prop_assert_eq!(messages(&a, None), messages(&b, Some(&moved)));
        if policy == DuplicatePolicy::KeepAll {
            // Keeping the first or last of a rater's labels depends on the order.
            prop_assert_eq!(statistics(&a), statistics(&b));
        }
    }
    Ok(())
}

/// Number of (item, rater) pairs rated more than once by good rows.
fn duplicate_pairs(rows: &[Row]) -> usize {
    let mut seen = std::collections::HashMap::new();
    for r in rows.iter().filter(|r| r.3 > 1) {
        *seen.entry((r.0, r.1)).or_insert(0) += 1;
    }
    seen.values().filter(|&&n| n > 1).count()
}

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0u32..40, 0u32..8, 0u32..4, 0u8..30), 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// From memory, any rows in grouped and shuffled order.
    #[test]
    fn shuffled_rows_read_as_grouped_ones(rows in rows_strategy(), seed in any::<u64>()) {
        let path = Path::new("t.csv");
        check_orders(&rows, seed, |text, policy| {
            read_csv_from(text.as_bytes(), path, b',', &columns(), &options(policy))
        })?;
    }
}

/// A file large enough to be read in two halves on two threads, in chunks, with items looked
/// up in many batches (more than one batch of names per half), a few duplicates and bad rows.
#[test]
fn large_shuffled_file_reads_as_the_grouped_one() {
    let rows: Vec<Row> = (0..300_000u32)
        .map(|i| {
            let item = i / 5 + (i % 7919 == 0) as u32;
            let kind = match i % 10_007 {
                3 => 0,
                5 => 1,
                _ => 2,
            };
            // Now and then a rater rates the item of the row before again.
            let rater = if i % 4999 == 2 { i - 1 } else { i } * 37 % 50;
            (item, rater, (i * 13 + i / 5) % 4, kind)
        })
        .collect();
    let dir = arbiter_testkit::TempDir::new("row-order");
    // One path for both orders, so that messages naming the file compare equal.
    check_orders(&rows, 7, |text, policy| {
        let path = dir.write("t.csv", text);
        read_path(&path, &columns(), &options(policy))
    })
    .unwrap();
    assert!(
        duplicate_pairs(&rows) > 0,
        "the policies have duplicates to handle"
    );
}
