//! Natural order of strings: runs of digits compare as numbers, so `9` < `10` and `age 2` <
//! `age 10`. Group values (ages, pool numbers) read in this order in every report.

use std::cmp::Ordering;

/// Compare two strings in natural order.
///
/// Runs of ASCII digits compare by value (leading zeros ignored, then the shorter run first),
/// everything else character by character; strings equal under these rules fall back to plain
/// byte order, so the order is total and `sort_by(natural_cmp)` is deterministic.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (run_x, rest_x) = digit_run(x);
                let (run_y, rest_y) = digit_run(y);
                let (vx, vy) = (run_x.trim_start_matches('0'), run_y.trim_start_matches('0'));
                let by_value = vx.len().cmp(&vy.len()).then_with(|| vx.cmp(vy));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                x = rest_x;
                y = rest_y;
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x = &x[c.len_utf8()..];
                y = &y[d.len_utf8()..];
            }
        }
    }
}

/// The leading run of ASCII digits of `s` and what follows it.
fn digit_run(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(values: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    }

    #[test]
    fn numbers_sort_by_value() {
        assert_eq!(sorted(&["10", "9", "100", "1"]), ["1", "9", "10", "100"]);
        assert_eq!(
            sorted(&["age 10", "age 2", "age 1a", "age 1"]),
            ["age 1", "age 1a", "age 2", "age 10"]
        );
    }

    #[test]
    fn text_and_ties_are_total() {
        assert_eq!(sorted(&["b", "a", "A"]), ["A", "a", "b"]);
        assert_eq!(natural_cmp("007", "7"), Ordering::Less);
        assert_eq!(natural_cmp("7", "007"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_eq!(natural_cmp("", "0"), Ordering::Less);
        assert_eq!(sorted(&["p2", "p10", "p1"]), ["p1", "p2", "p10"]);
        assert_eq!(sorted(&["é2", "é10"]), ["é2", "é10"]);
    }
}
