//! Which of N shards a sample belongs to: the `--shard I/N` of `arbiter grade` and `arbiter
//! eval run`, so one job can be split over N machines and the pieces merged back.
//!
//! **The rule.** A sample id's *canonical text* is the id as written: a string id is its UTF-8
//! text, an integer id (also the default id, the 0-based line index) its decimal digits
//! (`17`, no sign, no leading zeros). Its *hash* is the first 8 bytes of the SHA-256 of that
//! text read as a big-endian unsigned 64-bit integer. Shards are numbered from 1, as in the
//! `--shard 1/4 … 4/4` of jest, vitest and Playwright: an id belongs to shard
//! `hash mod N + 1` of N. In Python:
//!
//! ```text
//! int.from_bytes(hashlib.sha256(str(id).encode()).digest()[:8], "big") % n + 1
//! ```
//!
//! The shard of an id depends on nothing but the id and N: not on the input's order, its other
//! samples, the platform or the Rust version (no `DefaultHasher`). So every id falls in exactly
//! one of the N shards, and the N shards together hold every sample once. A string id `"17"`
//! and the integer id `17` share their canonical text, and so their shard.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::SampleId;

/// One shard of N: the samples whose id hashes to it (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    index: u64,
    count: u64,
}

/// Why a shard could not be formed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// The text is not `I/N` with I and N whole numbers.
    #[error("expected I/N with whole numbers I and N (e.g. 1/4), found {0:?}")]
    Syntax(String),
    /// N is 0.
    #[error("the number of shards must be at least 1, found {0}")]
    NoShards(u64),
    /// I is outside 1..=N.
    #[error(
        "shards are numbered from 1 to N: shard {index} of {count} does not exist (use 1/{count} … {count}/{count})"
    )]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The number of shards.
        count: u64,
    },
}

impl Shard {
    /// Shard `index` (1-based) of `count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards(count));
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Read `I/N` (1-based I, e.g. `2/4`); only ASCII digits around one `/`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let number = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (i, n) = text
            .split_once('/')
            .and_then(|(i, n)| Some((number(i)?, number(n)?)))
            .ok_or_else(|| ShardError::Syntax(text.to_string()))?;
        Shard::new(i, n)
    }

    /// The shard's number, from 1 to [`Shard::count`].
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// All `count` shards, 1 to `count`.
    pub fn all(count: u64) -> Result<Vec<Shard>, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards(count));
        }
        Ok((1..=count).map(|index| Shard { index, count }).collect())
    }

    /// Whether the sample `id` is in this shard.
    pub fn contains(&self, id: &SampleId) -> bool {
        self.contains_text(&canonical_text(id))
    }

    /// Whether the id whose canonical text is `text` is in this shard (eval sample ids are
    /// strings: their text is the id).
    pub fn contains_text(&self, text: &str) -> bool {
        shard_of(text, self.count) == self.index
    }
}

/// The canonical text of an id: a string as is, an integer in decimal.
pub fn canonical_text(id: &SampleId) -> String {
    id.to_string()
}

/// The first 8 bytes of SHA-256(`text`) as a big-endian integer.
pub fn id_hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The 1-based shard of `count` (≥ 1) that the id with canonical text `text` belongs to.
///
/// # Panics
/// When `count` is 0 (a [`Shard`] never has 0 shards).
pub fn shard_of(text: &str, count: u64) -> u64 {
    assert!(count > 0, "shard_of: count must be at least 1");
    id_hash(text) % count + 1
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        Shard::parse(s)
    }
}

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shard, D::Error> {
        let text = String::deserialize(d)?;
        Shard::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pinned against an independent implementation, computed once with
    /// `python3 -c 'import hashlib; t="ex-17"; print(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big"))'`
    /// for each text below (hash, then `% 3 + 1` and `% 4 + 1`).
    const PINNED: &[(&str, u64, u64, u64)] = &[
        ("ex-17", 8588292552215113282, 2, 3),
        ("0", 6912158355717386040, 1, 1),
        ("5", 17234451680913495083, 3, 4),
        ("r0", 15931789994081791714, 2, 3),
        ("c3", 8943189944482948754, 3, 3),
        ("hello world", 13352372148217134600, 1, 1),
        ("é", 5375421630974772051, 1, 4),
    ];

    #[test]
    fn hashes_equal_python_hashlib() {
        for &(text, hash, of3, of4) in PINNED {
            assert_eq!(id_hash(text), hash, "{text:?}");
            assert_eq!(shard_of(text, 3), of3, "{text:?}");
            assert_eq!(shard_of(text, 4), of4, "{text:?}");
        }
        // Integer ids hash their decimal text: the default id 5 (line 6) is "5".
        assert!(Shard::parse("4/4").unwrap().contains(&SampleId::Index(5)));
        assert!(
            Shard::parse("4/4")
                .unwrap()
                .contains(&SampleId::Name("5".into()))
        );
        assert!(
            Shard::parse("3/4")
                .unwrap()
                .contains(&SampleId::Name("ex-17".into()))
        );
    }

    #[test]
    fn parse_is_one_based_and_strict() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard::new(1, 4).unwrap());
        assert_eq!(Shard::parse("4/4").unwrap().to_string(), "4/4");
        assert_eq!(Shard::parse("1/1").unwrap().count(), 1);
        assert_eq!(
            Shard::parse("0/4"),
            Err(ShardError::OutOfRange { index: 0, count: 4 })
        );
        assert_eq!(
            Shard::parse("5/4"),
            Err(ShardError::OutOfRange { index: 5, count: 4 })
        );
        assert_eq!(Shard::parse("0/0"), Err(ShardError::NoShards(0)));
        for bad in [
            "",
            "1",
            "1/",
            "/4",
            "a/4",
            "1/4/4",
            " 1/4",
            "1/4 ",
            "+1/4",
            "-1/4",
            "1.0/4",
            "99999999999999999999/1",
        ] {
            assert_eq!(
                Shard::parse(bad),
                Err(ShardError::Syntax(bad.into())),
                "{bad:?}"
            );
        }
        let e = Shard::parse("0/4").unwrap_err().to_string();
        assert!(
            e.contains("numbered from 1") && e.contains("1/4 … 4/4"),
            "{e}"
        );
    }

    #[test]
    fn serialises_as_its_text() {
        let s = Shard::new(2, 3).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"2/3\"");
        assert_eq!(serde_json::from_str::<Shard>("\"2/3\"").unwrap(), s);
        assert!(serde_json::from_str::<Shard>("\"0/3\"").is_err());
    }

    fn any_id() -> impl Strategy<Value = SampleId> {
        prop_oneof![
            any::<u64>().prop_map(SampleId::Index),
            ".{0,40}".prop_map(SampleId::Name),
        ]
    }

    proptest! {
        #[test]
        fn every_id_is_in_exactly_one_shard(id in any_id(), n in 1u64..64) {
            let shards = Shard::all(n).unwrap();
            let holders: Vec<u64> = shards.iter().filter(|s| s.contains(&id)).map(|s| s.index()).collect();
            prop_assert_eq!(holders.len(), 1);
            prop_assert_eq!(holders[0], shard_of(&canonical_text(&id), n));
        }

        #[test]
        fn the_shards_partition_any_set_of_ids_whatever_its_order(
            ids in proptest::collection::btree_set(any_id(), 0..60),
            n in 1u64..9,
            rotate in 0usize..60,
        ) {
            let ids: Vec<SampleId> = ids.into_iter().collect();
            let mut reordered = ids.clone();
            if !reordered.is_empty() {
                let k = rotate % reordered.len();
                reordered.rotate_left(k);
                reordered.reverse();
            }
            let mut union: Vec<SampleId> = Vec::new();
            for shard in Shard::all(n).unwrap() {
                let here: Vec<&SampleId> = ids.iter().filter(|i| shard.contains(i)).collect();
                let there: std::collections::BTreeSet<&SampleId> =
                    reordered.iter().filter(|i| shard.contains(i)).collect();
                // Membership does not depend on the order (or the company) ids come in.
                prop_assert_eq!(here.iter().copied().collect::<std::collections::BTreeSet<_>>(), there);
                union.extend(here.into_iter().cloned());
            }
            union.sort();
            prop_assert_eq!(union, ids);
        }

        #[test]
        fn one_shard_holds_everything(id in any_id()) {
            prop_assert!(Shard::new(1, 1).unwrap().contains(&id));
        }
    }
}
