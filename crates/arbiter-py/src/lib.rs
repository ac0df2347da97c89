//! `arbiter_safety._native`: the compiled half of the `arbiter-safety` Python package.
//!
//! Thin over `arbiter-stats` (and `arbiter-rbr` for policies, in `rbr`): a [`Table`] holds one `arbiter_stats::Ratings` built from three
//! Python lists (item, rater, label) plus optional group columns, and the functions here run the
//! crate's statistics and aggregators on it with the GIL released. Nothing is computed here that
//! the crate does not compute; this file only converts values and errors.
//!
//! The Python package (`python/arbiter_safety`) turns DataFrames into those lists and the plain
//! results into pandas objects shaped like crowd-kit's.
//!
//! Values: a `str` is used as it is; any other value by its `str()` (so `1` is the label `"1"`),
//! and the first such object of each text is kept, so results give back the caller's values
//! (ints stay ints). `None` and float NaN are missing values, which are errors naming the column
//! and the row.

use std::borrow::Cow;
use std::collections::HashMap;

use arbiter_stats::aggregate::{
    Aggregator, DawidSkene, Fitted, Glad, Mace, MajorityVote, OneCoinDawidSkene, Wawa,
    ZeroBasedSkill,
};
use arbiter_stats::agreement::{self, Weights};
use arbiter_stats::groups::group_alphas;
use arbiter_stats::report::{DisagreementSettings, disagreement_report};
use arbiter_stats::{
    Alpha, AlphaReport, Bootstrap, Distance, DomainSpec, DuplicatePolicy, GroupColumn, LabelDomain,
    LabelKind, Rating, Ratings, RatingsBuilder, StatsError, Undefined, alpha_bootstrap,
    alpha_from_label_counts, krippendorff_alpha,
};
use arrow_array::ArrayRef;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyDict, PyFloat, PyList, PyString};

mod arrow;
mod counts;
mod grader;
mod rbr;
mod reward;
mod samples;

create_exception!(
    arbiter_safety,
    ArbiterError,
    PyValueError,
    "An error raised by the Arbiter crates; the message is theirs (column, row, value)."
);
create_exception!(
    arbiter_safety,
    UndefinedError,
    ArbiterError,
    "A statistic that has no value on this data (for example alpha when no item has two \
     ratings, or when every rating has the same value); the message says which case."
);

fn arbiter_error(e: impl std::fmt::Display) -> PyErr {
    ArbiterError::new_err(e.to_string())
}

/// A ratings table: the crate's `Ratings` plus how to give back the caller's values.
#[pyclass(frozen, module = "arbiter_safety._native")]
struct Table {
    ratings: Ratings,
    item_values: Values,
    rater_values: Values,
    label_values: Values,
}

/// How a column's texts map back to the caller's values.
enum Values {
    /// From Python lists: the first object of each non-`str` text (any other text is a `str`).
    Objects(HashMap<String, Py<PyAny>>),
    /// From an Arrow column of this kind: the value is parsed back from its text, with
    /// `domain` objects given by the caller taking precedence (a label column only).
    Arrow(arrow::Kind, HashMap<String, Py<PyAny>>),
}

impl Values {
    /// Whether every value given back is a `str`: a text column, no object kept under its text.
    fn all_text(&self) -> bool {
        match self {
            Values::Objects(o) | Values::Arrow(arrow::Kind::Text, o) => o.is_empty(),
            Values::Arrow(..) => false,
        }
    }

    fn value<'py>(&self, py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
        let (kind, objects) = match self {
            Values::Objects(o) => (arrow::Kind::Text, o),
            Values::Arrow(kind, o) => (*kind, o),
        };
        if let Some(o) = objects.get(name) {
            return o.bind(py).clone();
        }
        let parsed = match kind {
            arrow::Kind::Text => None,
            arrow::Kind::Int => name
                .parse::<i128>()
                .ok()
                .and_then(|v| v.into_pyobject(py).ok())
                .map(|v| v.into_any()),
            arrow::Kind::Float => name
                .parse::<f64>()
                .ok()
                .map(|v| PyFloat::new(py, v).into_any()),
            arrow::Kind::Bool => Some(PyBool::new(py, name == "True").to_owned().into_any()),
        };
        parsed.unwrap_or_else(|| PyString::new(py, name).into_any())
    }
}

/// The text of one cell, or `None` for a missing value (`None`, NaN). A non-`str` value is kept
/// in `objects` under its text the first time that text is seen.
fn cell_text<'a>(
    value: &'a Bound<'_, PyAny>,
    objects: &mut HashMap<String, Py<PyAny>>,
) -> PyResult<Option<Cow<'a, str>>> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Some(s.to_cow()?));
    }
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(f) = value.cast::<PyFloat>()
        && f.value().is_nan()
    {
        return Ok(None);
    }
    let text = value.str()?.to_cow()?.into_owned();
    if !objects.contains_key(&text) {
        objects.insert(text.clone(), value.clone().unbind());
    }
    Ok(Some(Cow::Owned(text)))
}

fn missing(column: &str, row: usize) -> PyErr {
    ArbiterError::new_err(format!(
        "column `{column}`, row {row}: missing value (None or NaN)"
    ))
}

fn duplicate_policy(name: &str) -> PyResult<DuplicatePolicy> {
    Ok(match name.replace('-', "_").as_str() {
        "keep_all" => DuplicatePolicy::KeepAll,
        "first" => DuplicatePolicy::First,
        "last" => DuplicatePolicy::Last,
        "error" => DuplicatePolicy::Error,
        other => {
            return Err(arbiter_error(format!(
                "duplicates must be keep_all, first, last or error, not {other:?}"
            )));
        }
    })
}

fn distance(level: &str) -> PyResult<Distance> {
    Distance::parse_level(level).ok_or_else(|| {
        arbiter_error(format!(
            "level must be nominal, ordinal, interval or ratio, not {level:?}"
        ))
    })
}

/// The label domain rule: `domain` (the caller's values, kept in `objects` by their text) or
/// inference.
fn domain_spec(
    domain: Option<Vec<Bound<'_, PyAny>>>,
    ordered: bool,
    objects: &mut HashMap<String, Py<PyAny>>,
) -> PyResult<DomainSpec> {
    let kind = if ordered {
        LabelKind::Ordered
    } else {
        LabelKind::Nominal
    };
    Ok(match domain {
        Some(values) => {
            let mut texts = Vec::with_capacity(values.len());
            for v in &values {
                match cell_text(v, objects)? {
                    Some(t) => texts.push(t.into_owned()),
                    None => return Err(arbiter_error("domain: missing value (None or NaN)")),
                }
            }
            DomainSpec::Explicit(LabelDomain::new(texts, kind).map_err(arbiter_error)?)
        }
        None => DomainSpec::Infer(kind),
    })
}

/// Build a [`Table`] from equally long lists.
///
/// `columns` names the item, rater and label columns and then the group columns, for error
/// messages and group look-ups. `domain` fixes the label order (and makes labels outside it an
/// error); without it the domain is inferred as by the CLI (numeric order when every label is a
/// number, else lexicographic).
#[pyfunction]
#[pyo3(signature = (items, raters, labels, columns, groups=Vec::new(), duplicates="keep_all", domain=None, ordered=false))]
#[allow(clippy::too_many_arguments)]
fn table(
    py: Python<'_>,
    items: &Bound<'_, PyList>,
    raters: &Bound<'_, PyList>,
    labels: &Bound<'_, PyList>,
    columns: Vec<String>,
    groups: Vec<Bound<'_, PyList>>,
    duplicates: &str,
    domain: Option<Vec<Bound<'_, PyAny>>>,
    ordered: bool,
) -> PyResult<Table> {
    let n = items.len();
    if columns.len() != 3 + groups.len() {
        return Err(arbiter_error(format!(
            "{} column names for {} columns",
            columns.len(),
            3 + groups.len()
        )));
    }
    for (name, len) in [(&columns[1], raters.len()), (&columns[2], labels.len())]
        .into_iter()
        .chain(columns[3..].iter().zip(groups.iter().map(|g| g.len())))
    {
        if len != n {
            return Err(arbiter_error(format!(
                "column `{name}` has {len} rows, column `{}` has {n}",
                columns[0]
            )));
        }
    }
    let policy = duplicate_policy(duplicates)?;
    let mut label_objects = HashMap::new();
    let spec = domain_spec(domain, ordered, &mut label_objects)?;
    let mut builder = RatingsBuilder::new(spec, columns[3..].to_vec());
    builder.reserve(n);
    let mut item_objects = HashMap::new();
    let mut rater_objects = HashMap::new();
    let mut group_cells: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(groups.len());
    let group_values: Vec<Vec<Bound<'_, PyAny>>> =
        groups.iter().map(|g| g.iter().collect()).collect();
    for (row, ((item, rater), label)) in items
        .iter()
        .zip(raters.iter())
        .zip(labels.iter())
        .enumerate()
    {
        let item = cell_text(&item, &mut item_objects)?.ok_or_else(|| missing(&columns[0], row))?;
        let rater =
            cell_text(&rater, &mut rater_objects)?.ok_or_else(|| missing(&columns[1], row))?;
        let label =
            cell_text(&label, &mut label_objects)?.ok_or_else(|| missing(&columns[2], row))?;
        group_cells.clear();
        for g in &group_values {
            let mut unused = HashMap::new();
            group_cells.push(cell_text(&g[row], &mut unused)?);
        }
        let refs: Vec<Option<&str>> = group_cells.iter().map(|c| c.as_deref()).collect();
        builder
            .push(&item, &rater, &label, &refs)
            .map_err(|e| arbiter_error(format!("row {row}: {e}")))?;
    }
    let ratings = py
        .detach(move || builder.build(policy))
        .map_err(arbiter_error)?;
    Ok(Table {
        ratings,
        item_values: Values::Objects(item_objects),
        rater_values: Values::Objects(rater_objects),
        label_values: Values::Objects(label_objects),
    })
}

/// Build a [`Table`] from any object exporting the Arrow PyCapsule interface (a pyarrow Table
/// or RecordBatch, a polars DataFrame, ...): `columns` names the item, rater and label columns
/// and then the group columns. Cells are read from the Arrow buffers (see `arrow`); the rest is
/// as in [`table`]: nulls (and NaN) are missing values, errors name the column and the row.
#[pyfunction]
#[pyo3(signature = (data, columns, duplicates="keep_all", domain=None, ordered=false))]
fn table_arrow(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    columns: Vec<String>,
    duplicates: &str,
    domain: Option<Vec<Bound<'_, PyAny>>>,
    ordered: bool,
) -> PyResult<Table> {
    if columns.len() < 3 {
        return Err(arbiter_error(
            "columns must name the item, rater and label columns (then any group columns)",
        ));
    }
    let policy = duplicate_policy(duplicates)?;
    let mut label_objects = HashMap::new();
    let spec = domain_spec(domain, ordered, &mut label_objects)?;
    let batches = arrow::import(data)?;
    let chunks = columns
        .iter()
        .map(|c| arrow::column(&batches, c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arbiter_error)?;
    drop(batches);
    let (ratings, kinds) = py
        .detach(move || ratings_from_arrow(&columns, chunks, spec, policy))
        .map_err(arbiter_error)?;
    Ok(Table {
        ratings,
        item_values: Values::Arrow(kinds[0], HashMap::new()),
        rater_values: Values::Arrow(kinds[1], HashMap::new()),
        label_values: Values::Arrow(kinds[2], label_objects),
    })
}

/// Build the table from Arrow columns: every column coded to ids in order of first appearance
/// (`arrow::code_column`), then the table built from the codes. A large text column is coded
/// on two threads of its own (`arbiter_stats::textcode`), so such columns are coded one after
/// another; otherwise the item column, usually the one with most distinct values, is coded on
/// a thread while the others are coded on this one.
fn ratings_from_arrow(
    columns: &[String],
    chunks: Vec<Vec<ArrayRef>>,
    spec: DomainSpec,
    policy: DuplicatePolicy,
) -> Result<(Ratings, [arrow::Kind; 3]), String> {
    let large_text = |c: &Vec<ArrayRef>| {
        c.first().is_some_and(|a| arrow::is_text(a.data_type()))
            && c.iter().map(|a| a.len()).sum::<usize>() >= arbiter_stats::textcode::MIN_ROWS
    };
    let coded = if chunks.iter().any(large_text) {
        columns
            .iter()
            .zip(&chunks)
            .map(|(name, c)| arrow::code_column(name, c))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        std::thread::scope(|s| {
            let items = s.spawn(|| arrow::code_column(&columns[0], &chunks[0]));
            let mut coded = vec![];
            for (name, c) in columns.iter().zip(&chunks).skip(1) {
                coded.push(arrow::code_column(name, c));
            }
            coded.insert(0, items.join().expect("coding a column panicked"));
            coded.into_iter().collect::<Result<Vec<_>, _>>()
        })?
    };
    drop(chunks);
    let mut coded = coded.into_iter();
    let (items, raters, labels) = (
        coded.next().expect("item column"),
        coded.next().expect("rater column"),
        coded.next().expect("label column"),
    );
    // Missing values are looked for in one branch-free pass per column (vectorised), and the
    // row named only when there is one, so that building the rows needs no check per row.
    let has_null = |codes: &[u32]| codes.iter().fold(false, |any, &c| any | (c == arrow::NULL));
    if [&items, &raters, &labels]
        .iter()
        .any(|c| has_null(&c.codes))
    {
        let row = (0..items.codes.len())
            .find(|&r| {
                [&items, &raters, &labels]
                    .iter()
                    .any(|c| c.codes[r] == arrow::NULL)
            })
            .expect("a missing value");
        let at = [&items, &raters, &labels]
            .iter()
            .position(|c| c.codes[row] == arrow::NULL)
            .expect("one is missing");
        return Err(format!(
            "column `{}`, row {row}: missing value (null or NaN)",
            columns[at]
        ));
    }
    let rows: Vec<Rating> = items
        .codes
        .iter()
        .zip(&raters.codes)
        .zip(&labels.codes)
        .map(|((&item, &rater), &label)| Rating { item, rater, label })
        .collect();
    let groups = columns[3..]
        .iter()
        .zip(coded)
        .map(|(name, g)| GroupColumn {
            name: name.clone(),
            values: g.names.iter().map(str::to_string).collect(),
            per_row: g
                .codes
                .iter()
                .map(|&c| (c != arrow::NULL).then_some(c))
                .collect(),
        })
        .collect();
    let kinds = [items.kind, raters.kind, labels.kind];
    let label_codes = labels.codes;
    let label_names: Vec<String> = labels.names.iter().map(str::to_string).collect();
    let ratings = Ratings::from_codes(
        items.names,
        raters.names,
        &label_names,
        rows,
        groups,
        spec,
        policy,
    )
    .map_err(|e| match &e {
        // Name the first row with the label, as the list path does.
        StatsError::UnknownLabel { label, .. } => {
            let code = label_names.iter().position(|n| n == label);
            let row = code.and_then(|c| label_codes.iter().position(|&l| l as usize == c));
            match row {
                Some(row) => format!("column `{}`, row {row}: {e}", columns[2]),
                None => e.to_string(),
            }
        }
        _ => e.to_string(),
    })?;
    Ok((ratings, kinds))
}

/// Names mapped back to the caller's values.
fn values<'py>(
    py: Python<'py>,
    names: impl Iterator<Item = impl AsRef<str>>,
    objects: &Values,
) -> Vec<Bound<'py, PyAny>> {
    names.map(|name| objects.value(py, name.as_ref())).collect()
}

#[pymethods]
impl Table {
    /// Number of distinct items.
    #[getter]
    fn n_items(&self) -> usize {
        self.ratings.n_items()
    }
    /// Number of distinct raters.
    #[getter]
    fn n_raters(&self) -> usize {
        self.ratings.n_raters()
    }
    /// Number of ratings kept (after the duplicate policy).
    #[getter]
    fn n_ratings(&self) -> usize {
        self.ratings.n_ratings()
    }
    /// Rows whose (item, rater) pair occurred before.
    #[getter]
    fn n_duplicates(&self) -> usize {
        self.ratings.n_duplicates()
    }
    /// Items in order of first appearance, as the caller's values.
    fn items<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyAny>> {
        values(py, self.ratings.items().iter(), &self.item_values)
    }
    /// Items in order of first appearance as an Arrow large-string column, when every item
    /// is a `str` (else `None`: ask [`Table::items`]).
    fn items_arrow(&self) -> PyResult<Option<arrow::NamesColumn>> {
        if !self.item_values.all_text() {
            return Ok(None);
        }
        arrow::NamesColumn::new(self.ratings.items()).map(Some)
    }
    /// Raters in order of first appearance, as the caller's values.
    fn raters<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyAny>> {
        values(py, self.ratings.raters().iter(), &self.rater_values)
    }
    /// The label domain in its order, as the caller's values.
    fn domain<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyAny>> {
        values(
            py,
            self.ratings.domain().values().iter(),
            &self.label_values,
        )
    }
    /// Group column names.
    fn group_names(&self) -> Vec<String> {
        self.ratings
            .groups()
            .iter()
            .map(|g| g.name.clone())
            .collect()
    }
    fn __repr__(&self) -> String {
        format!(
            "Table({} ratings, {} items, {} raters, {} labels)",
            self.ratings.n_ratings(),
            self.ratings.n_items(),
            self.ratings.n_raters(),
            self.ratings.n_labels()
        )
    }
}

fn undefined_reason(u: Undefined) -> &'static str {
    match u {
        Undefined::NoPairableUnits => "no_pairable_units",
        Undefined::NoExpectedDisagreement => "no_expected_disagreement",
    }
}

fn alpha_dict<'py>(py: Python<'py>, r: &AlphaReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match r.alpha {
        Alpha::Value(v) => {
            d.set_item("alpha", v)?;
            d.set_item("undefined", py.None())?;
        }
        Alpha::Undefined(u) => {
            d.set_item("alpha", py.None())?;
            d.set_item("undefined", undefined_reason(u))?;
        }
    }
    d.set_item("level", r.level)?;
    d.set_item("n_pairable_units", r.n_pairable_units)?;
    d.set_item("n_pairable_values", r.n_pairable_values)?;
    d.set_item("observed_disagreement", r.observed_disagreement)?;
    d.set_item("expected_disagreement", r.expected_disagreement)?;
    Ok(d)
}

/// Krippendorff's α at `level` (`arbiter_stats::krippendorff_alpha`), as a dict with `alpha`
/// (None when undefined), `undefined` (the reason or None), `level` and the disagreements.
#[pyfunction]
fn alpha<'py>(py: Python<'py>, table: &Table, level: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = distance(level)?;
    let report = py
        .detach(|| krippendorff_alpha(&table.ratings, &d))
        .map_err(arbiter_error)?;
    alpha_dict(py, &report)
}

/// Krippendorff's α of Arrow data (as [`table_arrow`] takes it, `columns` naming the item,
/// rater and label columns) with every row counted, as `duplicates="keep_all"` counts them:
/// the dict of [`alpha`], equal to building the table and taking its α, bit for bit.
///
/// α then needs only each item's label counts, which `counts` takes from the columns in one
/// pass; data that path leaves alone (a missing value, more than 64 labels, ...) is built
/// into a table as by [`table_arrow`], whose errors are the ones reported.
#[pyfunction]
#[pyo3(signature = (data, columns, level, domain=None, ordered=false))]
fn alpha_arrow<'py>(
    py: Python<'py>,
    data: &Bound<'_, PyAny>,
    columns: Vec<String>,
    level: &str,
    domain: Option<Vec<Bound<'_, PyAny>>>,
    ordered: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if columns.len() != 3 {
        return Err(arbiter_error(
            "columns must name the item, rater and label columns",
        ));
    }
    let d = distance(level)?;
    let mut label_objects = HashMap::new();
    let spec = domain_spec(domain, ordered, &mut label_objects)?;
    let batches = arrow::import(data)?;
    let chunks = columns
        .iter()
        .map(|c| arrow::column(&batches, c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arbiter_error)?;
    drop(batches);
    let report = py
        .detach(move || {
            if let Some(c) = counts::label_counts(&chunks[0], &chunks[1], &chunks[2]) {
                let parts: Vec<&[u32]> = c.parts.iter().map(Vec::as_slice).collect();
                if let Ok(Some(report)) =
                    alpha_from_label_counts(&c.labels, &parts, spec.clone(), &d)
                {
                    return Ok(report);
                }
            }
            let (ratings, _) =
                ratings_from_arrow(&columns, chunks, spec, DuplicatePolicy::KeepAll)?;
            krippendorff_alpha(&ratings, &d).map_err(|e| e.to_string())
        })
        .map_err(arbiter_error)?;
    alpha_dict(py, &report)
}

/// Percentile bootstrap interval of α over pairable units (`arbiter_stats::alpha_bootstrap`):
/// `(low, high, n_defined)`, or None when α is undefined in every replicate.
#[pyfunction]
#[pyo3(signature = (table, level, replicates=1000, seed=0, confidence=0.95))]
fn alpha_interval(
    py: Python<'_>,
    table: &Table,
    level: &str,
    replicates: usize,
    seed: u64,
    confidence: f64,
) -> PyResult<Option<(f64, f64, usize)>> {
    let d = distance(level)?;
    let settings = Bootstrap {
        replicates,
        seed,
        confidence,
    };
    let interval = py
        .detach(|| alpha_bootstrap(&table.ratings, &d, settings))
        .map_err(arbiter_error)?;
    Ok(interval.map(|i| (i.low, i.high, i.n_defined)))
}

/// Percent agreement, Fleiss' κ and Gwet's AC1 (`arbiter_stats::agreement::multi_rater`) as a
/// dict; a coefficient is None where undefined.
#[pyfunction]
fn multi_rater<'py>(py: Python<'py>, table: &Table) -> PyResult<Bound<'py, PyDict>> {
    let m = py.detach(|| agreement::multi_rater(&table.ratings));
    let d = PyDict::new(py);
    d.set_item("percent_agreement", m.percent_agreement)?;
    d.set_item("fleiss_kappa", m.fleiss_kappa)?;
    d.set_item("gwet_ac1", m.gwet_ac1)?;
    d.set_item("n_items_used", m.n_items_used)?;
    Ok(d)
}

/// Gwet's AC2 with `linear`, `quadratic` or `identity` weights; None where undefined.
#[pyfunction]
fn gwet_ac2(py: Python<'_>, table: &Table, weights: &str) -> PyResult<Option<f64>> {
    let w = match weights {
        "linear" => Weights::Linear,
        "quadratic" => Weights::Quadratic,
        "identity" => Weights::Identity,
        other => {
            return Err(arbiter_error(format!(
                "weights must be linear, quadratic or identity, not {other:?}"
            )));
        }
    };
    Ok(py.detach(|| agreement::gwet_ac2(&table.ratings, w)))
}

/// Cohen's κ between two raters (given as the caller's values); None where undefined.
#[pyfunction]
fn cohen_kappa(
    py: Python<'_>,
    table: &Table,
    rater_a: &Bound<'_, PyAny>,
    rater_b: &Bound<'_, PyAny>,
) -> PyResult<Option<f64>> {
    let index = |r: &Bound<'_, PyAny>| -> PyResult<usize> {
        let mut unused = HashMap::new();
        let text = cell_text(r, &mut unused)?
            .ok_or_else(|| arbiter_error("rater: missing value (None or NaN)"))?;
        table
            .ratings
            .raters()
            .iter()
            .position(|name| name == text)
            .ok_or_else(|| arbiter_error(format!("no rater {text:?} in the table")))
    };
    let (a, b) = (index(rater_a)?, index(rater_b)?);
    Ok(py.detach(|| agreement::cohen_kappa(&table.ratings, a, b)))
}

/// α within each value of a group column and pooled (`arbiter_stats::groups::group_alphas`):
/// `(pooled, [(group, report), …], n_missing)` with the reports as dicts.
#[pyfunction]
fn group_alpha<'py>(
    py: Python<'py>,
    table: &Table,
    column: &str,
    level: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = distance(level)?;
    let ga = py
        .detach(|| group_alphas(&table.ratings, column, &d))
        .map_err(arbiter_error)?;
    let out = PyDict::new(py);
    out.set_item("pooled", alpha_dict(py, &ga.pooled)?)?;
    let within = PyList::empty(py);
    for (group, report) in &ga.within {
        within.append((group, alpha_dict(py, report)?))?;
    }
    out.set_item("within", within)?;
    out.set_item("n_missing", ga.n_missing)?;
    Ok(out)
}

/// The group analyses of `arbiter disagreement` on group column `column`
/// (`arbiter_stats::report::disagreement_report`): per-group α with intervals, in-group vs
/// cross-group agreement with a permutation test, label rates and means, χ², Kruskal–Wallis,
/// logistic regression, most-dividing items and soft labels. Returns the report's JSON text,
/// the CLI's `report.json` byte for byte in content.
#[pyfunction]
#[pyo3(signature = (table, column, level="nominal", positive=None, bootstrap=1000, seed=0, top=20, min_group_raters=5, bins=None, text_column=None))]
#[allow(clippy::too_many_arguments)]
fn disagreement(
    py: Python<'_>,
    table: &Table,
    column: &str,
    level: &str,
    positive: Option<String>,
    bootstrap: usize,
    seed: u64,
    top: usize,
    min_group_raters: usize,
    bins: Option<&str>,
    text_column: Option<String>,
) -> PyResult<String> {
    let bins = bins
        .map(arbiter_stats::bins::Bins::parse)
        .transpose()
        .map_err(|e| arbiter_error(format!("bins: {e}")))?;
    let settings = DisagreementSettings {
        column: column.to_string(),
        distance: distance(level)?,
        positive,
        bootstrap,
        seed,
        top,
        min_group_raters,
        bins,
        text_column,
        n_skipped_rows: 0,
    };
    let report = py
        .detach(|| disagreement_report(&table.ratings, &settings))
        .map_err(arbiter_error)?;
    Ok(report.to_json().to_string())
}

/// Read an optional hyperparameter, refusing the ones a method does not have.
struct Params<'a, 'py> {
    method: &'a str,
    given: Option<&'a Bound<'py, PyDict>>,
    used: usize,
}

impl<'py> Params<'_, 'py> {
    fn get<T: for<'a> FromPyObject<'a, 'py>>(&mut self, name: &str, default: T) -> PyResult<T> {
        let Some(given) = self.given else {
            return Ok(default);
        };
        match given.get_item(name)? {
            Some(v) if !v.is_none() => {
                self.used += 1;
                v.extract().map_err(|_| {
                    arbiter_error(format!(
                        "{}: parameter `{name}` has the wrong type",
                        self.method
                    ))
                })
            }
            Some(_) => {
                self.used += 1;
                Ok(default)
            }
            None => Ok(default),
        }
    }

    fn finish(self) -> PyResult<()> {
        let n = self.given.map_or(0, |g| g.len());
        if n != self.used {
            let names: Vec<String> = self
                .given
                .map(|g| g.keys().iter().map(|k| k.to_string()).collect())
                .unwrap_or_default();
            return Err(arbiter_error(format!(
                "{}: unknown parameter among {names:?}",
                self.method
            )));
        }
        Ok(())
    }
}

fn aggregator(
    method: &str,
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<Box<dyn Aggregator + Send + Sync>> {
    let mut p = Params {
        method,
        given: params,
        used: 0,
    };
    let agg: Box<dyn Aggregator + Send + Sync> = match method {
        "mv" => Box::new(MajorityVote),
        "wawa" => Box::new(Wawa),
        "zbs" => {
            let d = ZeroBasedSkill::default();
            Box::new(ZeroBasedSkill {
                n_iter: p.get("n_iter", d.n_iter)?,
                lr_init: p.get("lr_init", d.lr_init)?,
                lr_steps_to_reduce: p.get("lr_steps_to_reduce", d.lr_steps_to_reduce)?,
                lr_reduce_factor: p.get("lr_reduce_factor", d.lr_reduce_factor)?,
                eps: p.get("eps", d.eps)?,
            })
        }
        "ds" => {
            let d = DawidSkene::default();
            Box::new(DawidSkene {
                n_iter: p.get("n_iter", d.n_iter)?,
                tol: p.get("tol", d.tol)?,
            })
        }
        "onecoin-ds" => {
            let d = OneCoinDawidSkene::default();
            Box::new(OneCoinDawidSkene {
                n_iter: p.get("n_iter", d.n_iter)?,
                tol: p.get("tol", d.tol)?,
            })
        }
        "glad" => {
            let d = Glad::default();
            Box::new(Glad {
                n_iter: p.get("n_iter", d.n_iter)?,
                tol: p.get("tol", d.tol)?,
                m_step_max_iter: p.get("m_step_max_iter", d.m_step_max_iter)?,
                m_step_tol: p.get("m_step_tol", d.m_step_tol)?,
            })
        }
        "mace" => {
            let d = Mace::default();
            Box::new(Mace {
                n_iter: p.get("n_iter", d.n_iter)?,
                alpha: p.get("alpha", d.alpha)?,
                beta: p.get("beta", d.beta)?,
                default_noise: p.get("default_noise", d.default_noise)?,
                random_state: p.get("random_state", d.random_state)?,
                crowdkit_layout: p.get("crowdkit_layout", d.crowdkit_layout)?,
            })
        }
        other => {
            return Err(arbiter_error(format!(
                "unknown method {other:?}; one of {:?}",
                arbiter_stats::aggregate::METHODS
            )));
        }
    };
    p.finish()?;
    Ok(agg)
}

/// Fit an aggregator (`mv`, `wawa`, `zbs`, `ds`, `onecoin-ds`, `glad`, `mace`; hyperparameters
/// by crowd-kit's names in `params`). Returns a dict: `labels` (the caller's label values, per
/// item in `Table.items()` order), `label_index` (bytes, int64 native order: the labels as
/// indices into `Table.domain()`, -1 for none), `posteriors` (bytes, float64 native order, items × domain),
/// `n_labels`, `skills` (per rater in `Table.raters()` order, None without ratings),
/// `iterations`, `converged`, `loss_history`.
#[pyfunction]
#[pyo3(signature = (table, method, params=None))]
fn aggregate<'py>(
    py: Python<'py>,
    table: &Table,
    method: &str,
    params: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let agg = aggregator(method, params)?;
    let fitted: Fitted = py
        .detach(|| agg.fit(&table.ratings))
        .map_err(arbiter_error)?;
    let domain = values(
        py,
        table.ratings.domain().values().iter(),
        &table.label_values,
    );
    // The labels as domain indices (-1: none), from which pandas builds the labels Series by
    // one `take`; as a list of objects only where `take` cannot (some item has none) or would
    // type the Series otherwise (no items).
    let labels = if fitted.labels.is_empty() || fitted.labels.iter().any(Option::is_none) {
        let list = PyList::empty(py);
        for l in &fitted.labels {
            match l {
                Some(i) => list.append(&domain[*i as usize])?,
                None => list.append(py.None())?,
            }
        }
        list.into_any()
    } else {
        py.None().into_bound(py)
    };
    let index = native_bytes(py, &fitted.labels, |l| {
        l.map_or(-1i64, i64::from).to_ne_bytes()
    })?;
    let posteriors = native_bytes(py, &fitted.posteriors, |p| p.to_ne_bytes())?;
    let d = PyDict::new(py);
    d.set_item("labels", labels)?;
    d.set_item("label_index", index)?;
    d.set_item("posteriors", posteriors)?;
    d.set_item("n_labels", fitted.n_labels)?;
    d.set_item("skills", fitted.skills)?;
    d.set_item("iterations", fitted.convergence.iterations)?;
    d.set_item("converged", fitted.convergence.converged)?;
    d.set_item("loss_history", fitted.convergence.loss_history)?;
    Ok(d)
}

/// `values` as one `bytearray` of 8-byte native-endian numbers, written in place: numpy reads
/// it with `frombuffer` as a writable array, so neither side copies the million numbers again.
fn native_bytes<'py, T>(
    py: Python<'py>,
    values: &[T],
    bytes: impl Fn(&T) -> [u8; 8],
) -> PyResult<Bound<'py, PyByteArray>> {
    PyByteArray::new_with(py, values.len() * 8, |buf| {
        for (out, v) in buf.chunks_exact_mut(8).zip(values) {
            out.copy_from_slice(&bytes(v));
        }
        Ok(())
    })
}

/// The compiled module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ArbiterError", py.get_type::<ArbiterError>())?;
    m.add("UndefinedError", py.get_type::<UndefinedError>())?;
    m.add_class::<Table>()?;
    m.add_class::<arrow::NamesColumn>()?;
    m.add_class::<rbr::Policy>()?;
    m.add_class::<grader::EmbeddedGrader>()?;
    m.add_class::<reward::RewardModel>()?;
    m.add_function(wrap_pyfunction!(grader::embedded_models_loaded, m)?)?;
    m.add_function(wrap_pyfunction!(samples::sample_ids, m)?)?;
    m.add_function(wrap_pyfunction!(table, m)?)?;
    m.add_function(wrap_pyfunction!(table_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(alpha, m)?)?;
    m.add_function(wrap_pyfunction!(alpha_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(alpha_interval, m)?)?;
    m.add_function(wrap_pyfunction!(multi_rater, m)?)?;
    m.add_function(wrap_pyfunction!(gwet_ac2, m)?)?;
    m.add_function(wrap_pyfunction!(cohen_kappa, m)?)?;
    m.add_function(wrap_pyfunction!(group_alpha, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(disagreement, m)?)?;
    m.add("METHODS", arbiter_stats::aggregate::METHODS.to_vec())?;
    Ok(())
}
