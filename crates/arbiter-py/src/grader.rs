//! The embedded offline grader for Python, over `arbiter-graders` (`from_spec("embedded", …)`).
//!
//! Samples arrive as JSONL text in the CLI's sample shape (rows the Python side serialised with
//! `json.dumps`) or as an Arrow table in the CLI's Parquet samples schema (see `samples`), and
//! are parsed by the same `Sample::from_value` and duplicate check as `arbiter grade`, so a
//! sample the CLI refuses is refused here with the same message. Each
//! grade comes back both as values (for a table) and as the exact line `arbiter grade` writes
//! (`jsonl::write_line` of `SampleGrades::to_record`).
//!
//! Loading the model (about 90 MB, checksummed) is the slow part of a small call, so the loaded
//! grader is kept per process, keyed by model folder and heads file: a second
//! `EmbeddedGrader()` with the same files reuses it. Ray's actors rely on this (one load per
//! worker process).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arbiter_core::{GradeRecord, PropositionSpec, Sample, SampleId, jsonl};
use arbiter_graders::{Grader, GraderError, GraderOptions, SampleGrades, Validation};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::rbr::Policy;
use crate::{arbiter_error, samples};

/// A grader shared by every Python object (and reward model) built over the same files.
pub(crate) type SharedGrader = Arc<dyn Grader + Send + Sync>;

type Key = (PathBuf, Option<PathBuf>);

/// Graders loaded in this process, by (model folder, heads file).
fn loaded() -> &'static Mutex<HashMap<Key, SharedGrader>> {
    static LOADED: OnceLock<Mutex<HashMap<Key, SharedGrader>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// How many times a model was actually read from disk in this process (tests check reuse).
static LOADS: AtomicUsize = AtomicUsize::new(0);

/// The process's grader for these files, loading it on first use. The lock is held while
/// loading, so two threads asking at once load it once.
fn shared_embedded(model_dir: Option<PathBuf>, heads: Option<PathBuf>) -> PyResult<SharedGrader> {
    let dir = model_dir.unwrap_or_else(arbiter_graders::embedded::model::default_model_dir);
    let key = (dir.clone(), heads.clone());
    let mut map = loaded()
        .lock()
        .map_err(|_| arbiter_error("the grader cache was poisoned by a panic in another thread"))?;
    if let Some(g) = map.get(&key) {
        return Ok(Arc::clone(g));
    }
    let options = GraderOptions {
        heads,
        model_dir: Some(dir),
        ..GraderOptions::default()
    };
    let grader: SharedGrader =
        Arc::from(arbiter_graders::from_spec("embedded", &options).map_err(arbiter_error)?);
    LOADS.fetch_add(1, Ordering::Relaxed);
    map.insert(key, Arc::clone(&grader));
    Ok(grader)
}

/// A [`SharedGrader`] as the owned grader `arbiter_reward::RewardModel` takes.
pub(crate) struct Shared(pub(crate) SharedGrader);

impl Grader for Shared {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn grade_batch(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
    ) -> Result<Vec<SampleGrades>, GraderError> {
        self.0.grade_batch(samples, propositions)
    }
    fn grade_batch_with_progress(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<SampleGrades>, GraderError> {
        self.0
            .grade_batch_with_progress(samples, propositions, progress)
    }
    fn preferred_batch_size(&self) -> usize {
        self.0.preferred_batch_size()
    }
    fn usage_summary(&self) -> Option<String> {
        self.0.usage_summary()
    }
    fn cost_usd(&self) -> f64 {
        self.0.cost_usd()
    }
    fn validation(&self) -> Option<&Validation> {
        self.0.validation()
    }
}

/// A sample id as Python sees it: `int` for a numeric id, `str` otherwise.
pub(crate) fn id_object<'py>(py: Python<'py>, id: &SampleId) -> PyResult<Bound<'py, PyAny>> {
    Ok(match id {
        SampleId::Index(i) => i.into_pyobject(py)?.into_any(),
        SampleId::Name(s) => s.into_pyobject(py)?.into_any(),
    })
}

/// One JSON line exactly as the CLI writes it (`jsonl::write_line`), newline included.
pub(crate) fn json_line<T: serde::Serialize>(value: &T) -> PyResult<String> {
    let mut buf = Vec::new();
    jsonl::write_line(&mut buf, value).map_err(arbiter_error)?;
    String::from_utf8(buf).map_err(arbiter_error)
}

/// The embedded offline grader (all-MiniLM-L6-v2 + learned heads): P(yes) per proposition.
#[pyclass(frozen, name = "EmbeddedGrader", module = "arbiter_safety._native")]
pub(crate) struct EmbeddedGrader {
    pub(crate) grader: SharedGrader,
    propositions: Vec<PropositionSpec>,
}

impl EmbeddedGrader {
    /// Grade in calls of the grader's preferred size, as `arbiter grade` does.
    fn grade_records(&self, samples: &[Sample]) -> PyResult<Vec<GradeRecord>> {
        let mut records = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(self.grader.preferred_batch_size().max(1)) {
            let grades = self
                .grader
                .grade_batch(chunk, &self.propositions)
                .map_err(arbiter_error)?;
            if grades.len() != chunk.len() {
                return Err(arbiter_error(format!(
                    "grader returned {} results for {} samples",
                    grades.len(),
                    chunk.len()
                )));
            }
            records.extend(grades.iter().map(SampleGrades::to_record));
        }
        Ok(records)
    }

    /// The columns of `grade_jsonl` for parsed samples; grading runs without the GIL.
    fn grade_columns<'py>(
        &self,
        py: Python<'py>,
        samples: &[Sample],
    ) -> PyResult<Bound<'py, PyDict>> {
        let (records, lines, flags) = py.detach(|| -> PyResult<_> {
            let records = self.grade_records(samples)?;
            let lines = records
                .iter()
                .map(json_line)
                .collect::<PyResult<Vec<_>>>()?;
            let flags = records
                .iter()
                .map(|r| {
                    (!r.flags.is_empty())
                        .then(|| serde_json::to_string(&r.flags).map_err(arbiter_error))
                        .transpose()
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok((records, lines, flags))
        })?;
        let out = PyDict::new(py);
        let ids = PyList::empty(py);
        for r in &records {
            ids.append(id_object(py, &r.id)?)?;
        }
        out.set_item("id", ids)?;
        for p in &self.propositions {
            let column: Vec<Option<f64>> = records
                .iter()
                .map(|r| r.propositions.get(&p.name).copied())
                .collect();
            out.set_item(&p.name, column)?;
        }
        out.set_item("flags", flags)?;
        out.set_item("line", lines)?;
        Ok(out)
    }
}

#[pymethods]
impl EmbeddedGrader {
    /// Load (or reuse) the embedded grader for `policy`'s propositions (default: the built-in
    /// policy). `model_dir`: the model folder (default `$ARBITER_MODEL_DIR`, else the cache
    /// `scripts/setup-models.sh` fills); `heads`: a heads file from `arbiter grader train`
    /// (default: the built-in heads for the default policy).
    #[new]
    #[pyo3(signature = (policy=None, model_dir=None, heads=None))]
    pub(crate) fn new(
        py: Python<'_>,
        policy: Option<&Bound<'_, Policy>>,
        model_dir: Option<PathBuf>,
        heads: Option<PathBuf>,
    ) -> PyResult<EmbeddedGrader> {
        let propositions = match policy {
            Some(p) => p.get().inner().propositions().to_vec(),
            None => arbiter_rbr::Policy::default_policy()
                .propositions()
                .to_vec(),
        };
        let grader = py.detach(|| shared_embedded(model_dir, heads))?;
        Ok(EmbeddedGrader {
            grader,
            propositions,
        })
    }

    /// The grader's id as `arbiter grade` reports it (`embedded:all-minilm-l6-v2+heads:…`).
    #[getter]
    fn id(&self) -> String {
        self.grader.describe()
    }

    /// The propositions graded, in the policy's order.
    #[getter]
    fn propositions(&self) -> Vec<String> {
        self.propositions.iter().map(|p| p.name.clone()).collect()
    }

    /// Samples per grading call that suit this grader (4096).
    #[getter]
    fn preferred_batch_size(&self) -> usize {
        self.grader.preferred_batch_size()
    }

    /// Grade samples given as JSONL text (one sample per line). Returns a dict of columns:
    /// `id`, one list per proposition (P(yes), `None` where the grader gave none), `flags`
    /// (JSON text of the line's flags, `None` when clean) and `line` (the `arbiter grade` line).
    #[pyo3(signature = (jsonl_text, source="samples"))]
    fn grade_jsonl<'py>(
        &self,
        py: Python<'py>,
        jsonl_text: &str,
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let samples = py.detach(|| samples::from_jsonl(jsonl_text, source))?;
        self.grade_columns(py, &samples)
    }

    /// [`grade_jsonl`](Self::grade_jsonl) for samples given as an Arrow table (pyarrow Table or
    /// RecordBatch, polars DataFrame, any `__arrow_c_stream__` object) in the CLI's Parquet
    /// samples schema.
    #[pyo3(signature = (data, source="samples"))]
    fn grade_arrow<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let samples = samples::from_arrow(py, data, source)?;
        self.grade_columns(py, &samples)
    }

    fn __repr__(&self) -> String {
        format!(
            "EmbeddedGrader({:?}, {} propositions)",
            self.grader.describe(),
            self.propositions.len()
        )
    }
}

/// How many embedded models this process has read from disk (each `(model_dir, heads)` once).
#[pyfunction]
pub(crate) fn embedded_models_loaded() -> usize {
    LOADS.load(Ordering::Relaxed)
}
