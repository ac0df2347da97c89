//! The data a perspective model learns from: items with their text, annotators with their
//! self-described identity, and each annotator's labels.

use std::collections::HashMap;

use arbiter_stats::Ratings;
use serde::{Deserialize, Serialize};

/// An official split of a shared-task dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training items.
    Train,
    /// Development items (model selection).
    Dev,
    /// Held-out test items.
    Test,
}

impl Split {
    /// The split's name as the datasets spell it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    /// `train`, `dev` (or `val`, `valid`, `validation`) or `test`.
    pub fn parse(text: &str) -> Option<Split> {
        match text.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "dev" | "val" | "valid" | "validation" | "development" => Some(Split::Dev),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// What the edge knows about an item beyond its ratings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemMeta {
    /// The text a model reads.
    pub text: String,
    /// Official split, when the dataset has one.
    pub split: Option<Split>,
    /// The dataset's own hard label (LeWiDi's majority with random tie-breaks), as a label
    /// value of the ratings' domain.
    pub hard_label: Option<String>,
}

/// One item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Item id as in the ratings.
    pub id: String,
    /// The text.
    pub text: String,
    /// Official split, when there is one.
    pub split: Option<Split>,
    /// The dataset's hard label as a class index, when it gives one.
    pub hard_label: Option<u16>,
}

/// One annotator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotator {
    /// Rater id as in the ratings.
    pub id: String,
    /// Identity attributes, aligned with [`Corpus::attributes`]; `None` = not given.
    pub attributes: Vec<Option<String>>,
}

/// One label by one annotator on one item (indices into the corpus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating {
    /// Item index.
    pub item: u32,
    /// Annotator index.
    pub annotator: u32,
    /// Class index.
    pub label: u16,
}

/// Items, annotators and labels, with every index checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// Dataset name, for reports.
    pub name: String,
    /// Class names, in the ratings' domain order.
    pub classes: Vec<String>,
    /// Names of the annotator attributes (the ratings' group columns).
    pub attributes: Vec<String>,
    /// Items.
    pub items: Vec<Item>,
    /// Annotators.
    pub annotators: Vec<Annotator>,
    /// Labels, in the table's row order.
    pub ratings: Vec<Rating>,
}

/// Why a corpus could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorpusError {
    /// Items without a text.
    #[error("{count} item(s) have no text (first: {})", first.join(", "))]
    MissingText {
        /// How many.
        count: usize,
        /// Up to five of their ids.
        first: Vec<String>,
    },
    /// A hard label outside the label domain.
    #[error("item {item}: hard label {label:?} is not one of the labels {classes:?}")]
    UnknownHardLabel {
        /// Item id.
        item: String,
        /// The label given.
        label: String,
        /// The domain.
        classes: Vec<String>,
    },
    /// Fewer than two classes: nothing to model.
    #[error("the labels have {0} distinct value(s); a perspective model needs at least two")]
    TooFewClasses(usize),
    /// More classes than a model handles.
    #[error("{0} distinct labels; perspective models handle at most 256")]
    TooManyClasses(usize),
    /// No rating at all.
    #[error("no ratings")]
    Empty,
    /// A named attribute is not among the ratings' group columns.
    #[error("no annotator attribute {name:?} (attributes: {available:?})")]
    UnknownAttribute {
        /// The name asked for.
        name: String,
        /// The attributes present.
        available: Vec<String>,
    },
}

impl Corpus {
    /// Build a corpus from a ratings table and, per item id, what the edge read about the
    /// item. Every item needs a text. An annotator's attribute is the value of its first row
    /// that has one (group columns are per row in the table).
    pub fn from_ratings(
        name: &str,
        ratings: &Ratings,
        mut meta: impl FnMut(&str) -> Option<ItemMeta>,
    ) -> Result<Corpus, CorpusError> {
        if ratings.n_ratings() == 0 {
            return Err(CorpusError::Empty);
        }
        let classes: Vec<String> = ratings.domain().values().to_vec();
        if classes.len() < 2 {
            return Err(CorpusError::TooFewClasses(classes.len()));
        }
        if classes.len() > 256 {
            return Err(CorpusError::TooManyClasses(classes.len()));
        }
        let class_index: HashMap<&str, u16> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u16))
            .collect();
        let mut items = Vec::with_capacity(ratings.n_items());
        let mut missing = Vec::new();
        let mut n_missing = 0;
        for id in ratings.items().iter() {
            match meta(id) {
                Some(m) => {
                    let hard_label = match &m.hard_label {
                        None => None,
                        Some(label) => Some(*class_index.get(label.trim()).ok_or_else(|| {
                            CorpusError::UnknownHardLabel {
                                item: id.to_string(),
                                label: label.clone(),
                                classes: classes.clone(),
                            }
                        })?),
                    };
                    items.push(Item {
                        id: id.to_string(),
                        text: m.text,
                        split: m.split,
                        hard_label,
                    });
                }
                None => {
                    n_missing += 1;
                    if missing.len() < 5 {
                        missing.push(id.to_string());
                    }
                }
            }
        }
        if n_missing > 0 {
            return Err(CorpusError::MissingText {
                count: n_missing,
                first: missing,
            });
        }
        let attributes: Vec<String> = ratings.groups().iter().map(|g| g.name.clone()).collect();
        let mut annotators: Vec<Annotator> = ratings
            .raters()
            .iter()
            .map(|id| Annotator {
                id: id.to_string(),
                attributes: vec![None; attributes.len()],
            })
            .collect();
        for (g, column) in ratings.groups().iter().enumerate() {
            for (row, value) in ratings.rows().iter().zip(&column.per_row) {
                let slot = &mut annotators[row.rater as usize].attributes[g];
                if slot.is_none() {
                    *slot = value.map(|v| column.values[v as usize].clone());
                }
            }
        }
        let rows = ratings
            .rows()
            .iter()
            .map(|r| Rating {
                item: r.item,
                annotator: r.rater,
                label: r.label as u16,
            })
            .collect();
        Ok(Corpus {
            name: name.to_string(),
            classes,
            attributes,
            items,
            annotators,
            ratings: rows,
        })
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Items of an official split, in corpus order.
    pub fn split_items(&self, split: Split) -> Vec<u32> {
        (0..self.items.len() as u32)
            .filter(|&i| self.items[i as usize].split == Some(split))
            .collect()
    }

    /// Whether every item has an official split.
    pub fn has_splits(&self) -> bool {
        self.items.iter().all(|i| i.split.is_some())
    }

    /// The ratings of each item, as (annotator, label), in row order.
    pub fn by_item(&self) -> Vec<Vec<(u32, u16)>> {
        let mut out = vec![Vec::new(); self.items.len()];
        for r in &self.ratings {
            out[r.item as usize].push((r.annotator, r.label));
        }
        out
    }

    /// Each annotator's pool under `attribute`: the pool names (sorted naturally) and, per
    /// annotator, its pool index (`None` where the annotator did not say).
    pub fn pools(&self, attribute: &str) -> Result<(Vec<String>, Vec<Option<u32>>), CorpusError> {
        let a = self
            .attributes
            .iter()
            .position(|n| n == attribute)
            .ok_or_else(|| CorpusError::UnknownAttribute {
                name: attribute.to_string(),
                available: self.attributes.clone(),
            })?;
        let mut names: Vec<String> = self
            .annotators
            .iter()
            .filter_map(|x| x.attributes[a].clone())
            .collect();
        names.sort_by(|x, y| arbiter_stats::natural::natural_cmp(x, y));
        names.dedup();
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        let per_annotator = self
            .annotators
            .iter()
            .map(|x| x.attributes[a].as_deref().map(|v| index[v]))
            .collect();
        Ok((names, per_annotator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_stats::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    fn table() -> Ratings {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["pool".into()]);
        for (item, rater, label, pool) in [
            ("a", "r1", "1", Some("x")),
            ("a", "r2", "0", None),
            ("b", "r2", "0", Some("y")),
            ("b", "r1", "1", Some("z")),
        ] {
            b.push(item, rater, label, &[pool]).unwrap();
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn attributes_come_from_each_raters_first_row_with_a_value() {
        let c = Corpus::from_ratings("t", &table(), |id| {
            Some(ItemMeta {
                text: format!("text {id}"),
                split: Split::parse(if id == "a" { "train" } else { "test" }),
                hard_label: Some("1".into()),
            })
        })
        .unwrap();
        assert_eq!(c.classes, ["0", "1"]);
        assert_eq!(c.annotators[0].attributes, [Some("x".to_string())]);
        assert_eq!(c.annotators[1].attributes, [Some("y".to_string())]);
        assert_eq!(c.split_items(Split::Test), [1]);
        assert_eq!(c.items[0].hard_label, Some(1));
        let (names, per) = c.pools("pool").unwrap();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(per, [Some(0), Some(1)]);
        assert_eq!(c.by_item()[1], [(1, 0), (0, 1)]);
    }

    #[test]
    fn items_without_text_and_unknown_hard_labels_are_refused() {
        let e = Corpus::from_ratings("t", &table(), |id| (id == "a").then(ItemMeta::default))
            .unwrap_err();
        assert_eq!(
            e,
            CorpusError::MissingText {
                count: 1,
                first: vec!["b".into()]
            }
        );
        let e = Corpus::from_ratings("t", &table(), |_| {
            Some(ItemMeta {
                hard_label: Some("2".into()),
                ..ItemMeta::default()
            })
        })
        .unwrap_err();
        assert!(matches!(e, CorpusError::UnknownHardLabel { .. }));
    }
}
