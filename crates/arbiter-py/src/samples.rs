//! Samples in, for the grader and the reward model: JSONL text (rows that Python wrote with
//! `json.dumps`) or an Arrow table (pyarrow, polars, pandas through pyarrow) read through the C
//! Data Interface into `arbiter-columnar`'s rows → `Sample` conversion, the one the CLI's
//! Parquet reader uses, without a Python object or a JSON line per row.
//!
//! Both ways end in `Sample::from_value` and the same duplicate check, and errors read
//! `SOURCE:N: field …` with N the N-th sample, so a table gives the samples, results and
//! messages its rows would give as dicts. Missing values are read as the Python side cleans a
//! dict (`Missing::LeftOut`): a null or NaN anywhere in a struct is left out, as `None` and NaN
//! are dropped from a dict.

use arbiter_columnar::samples::from_batches;
use arbiter_columnar::value::Missing;
use arbiter_core::jsonl::{self, Located, OnInvalid, Parsed};
use arbiter_core::{RecordError, Sample};
use arrow_array::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::arbiter_error;
use crate::grader::id_object;

/// Samples from JSONL text, the way `arbiter grade` reads a file: `Sample::from_value` per
/// line (the line's 0-based index is the id when none is given), then unique ids.
pub(crate) fn from_jsonl(text: &str, source: &str) -> PyResult<Vec<Sample>> {
    let parsed = jsonl::read_with(text.as_bytes(), source, OnInvalid::Fail, Sample::from_value)
        .map_err(arbiter_error)?;
    unique(parsed, source)
}

/// Samples from an object exporting the Arrow PyCapsule interface. Importing holds the GIL (see
/// `arrow::import`); the conversion does not.
pub(crate) fn from_arrow(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    source: &str,
) -> PyResult<Vec<Sample>> {
    let batches = crate::arrow::import(data)?;
    py.detach(|| from_record_batches(&batches, source))
}

/// Every row of `batches` as a sample; the first bad row is the error, as in [`from_jsonl`]'s
/// fail-fast reading.
fn from_record_batches(batches: &[RecordBatch], source: &str) -> PyResult<Vec<Sample>> {
    let mut records = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for row in from_batches(batches, Missing::LeftOut) {
        let line = row.row + 1;
        match row.record {
            Ok(record) => records.push(Located { line, record }),
            Err(e) => return Err(arbiter_error(RecordError::new(source, line, e))),
        }
    }
    unique(
        Parsed {
            records,
            skipped: Vec::new(),
        },
        source,
    )
}

fn unique(parsed: Parsed<Sample>, source: &str) -> PyResult<Vec<Sample>> {
    let parsed =
        jsonl::reject_duplicates(parsed, source, "id", OnInvalid::Fail, |s| s.id.to_string())
            .map_err(arbiter_error)?;
    Ok(parsed.records.into_iter().map(|r| r.record).collect())
}

/// JSONL text (a `str`) or an Arrow table (anything else) as samples.
pub(crate) fn read(py: Python<'_>, data: &Bound<'_, PyAny>, source: &str) -> PyResult<Vec<Sample>> {
    match data.cast::<PyString>() {
        Ok(text) => {
            let text = text.to_str()?;
            py.detach(|| from_jsonl(text, source))
        }
        Err(_) => from_arrow(py, data, source),
    }
}

/// Read and check samples as grading and scoring do, without grading: their ids, in order.
/// `data` is JSONL text or an Arrow table. For checking a table before a long run (and for
/// timing the reading alone).
#[pyfunction]
#[pyo3(signature = (data, source="samples"))]
pub(crate) fn sample_ids<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    source: &str,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    read(py, data, source)?
        .iter()
        .map(|s| id_object(py, &s.id))
        .collect()
}
