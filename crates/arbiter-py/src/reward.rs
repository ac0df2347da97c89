//! The fitted rule-based reward for Python: `arbiter_reward::RewardModel` (policy + weights +
//! grader) scoring samples with `score_each`, the function the reward server calls.
//!
//! Each scored sample also comes back as the line `arbiter rbr score` writes for it (the
//! pipeline's `ScoreRow`, serialised by `jsonl::write_line`), so a Python or Ray run can be
//! compared with the CLI byte for byte. A sample that cannot be scored gets no reward and its
//! error, never a number.

use std::sync::Arc;

use arbiter_core::Sample;
use arbiter_rbr::pipeline::ScoreRow;
use arbiter_rbr::reward::RewardWeights;
use arbiter_reward::RewardModel as Model;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arbiter_error;
use crate::grader::{EmbeddedGrader, Shared, id_object, json_line};
use crate::rbr::Policy;
use crate::samples;

/// A fitted rule-based reward: policy, weights from `arbiter rbr fit`, and a grader.
#[pyclass(frozen, name = "RewardModel", module = "arbiter_safety._native")]
pub(crate) struct RewardModel {
    model: Model,
}

#[pymethods]
impl RewardModel {
    /// Join a policy, weights fitted for it (the JSON text `arbiter rbr fit` writes; `source`
    /// names it in errors) and a grader (default: the embedded grader, loaded once per
    /// process). `cache_entries` > 0 keeps that many grades by content, so a completion scored
    /// again is not graded again.
    #[new]
    #[pyo3(signature = (policy, weights_json, grader=None, source="<weights>", cache_entries=0))]
    fn new(
        py: Python<'_>,
        policy: &Bound<'_, Policy>,
        weights_json: &str,
        grader: Option<&Bound<'_, EmbeddedGrader>>,
        source: &str,
        cache_entries: usize,
    ) -> PyResult<RewardModel> {
        let policy = policy.get().inner().clone();
        let weights: RewardWeights = serde_json::from_str(weights_json).map_err(|e| {
            arbiter_error(format!(
                "{source}: not a weights file written by `arbiter rbr fit`: {e}"
            ))
        })?;
        let grader = match grader {
            Some(g) => Arc::clone(&g.get().grader),
            None => EmbeddedGrader::new(py, None, None, None)?.grader,
        };
        let model = Model::new(policy, weights, Box::new(Shared(grader)))
            .map_err(|e| arbiter_error(format!("{source}: {e}")))?
            .with_cache(cache_entries);
        Ok(RewardModel { model })
    }

    /// The grader's id.
    #[getter]
    fn grader_id(&self) -> String {
        self.model.grader_id()
    }

    /// The policy's class names, best first.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.model.policy().classes().to_vec()
    }

    /// The policy's proposition names.
    #[getter]
    fn propositions(&self) -> Vec<String> {
        self.model
            .policy()
            .propositions()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Score samples given as JSONL text. Returns a dict of columns: `id`, `reward`,
    /// `rbr_reward`, `base_reward`, `class`, `p_<class>` per class, one column per proposition
    /// (the grader's P(yes)), `error` (why a sample has no reward; `None` when scored) and
    /// `line` (the `arbiter rbr score` line; `None` when not scored). Unscored samples have
    /// `None` in every value column.
    #[pyo3(signature = (jsonl_text, source="samples"))]
    fn score_jsonl<'py>(
        &self,
        py: Python<'py>,
        jsonl_text: &str,
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let samples = py.detach(|| samples::from_jsonl(jsonl_text, source))?;
        self.score_columns(py, samples, source)
    }

    /// [`score_jsonl`](Self::score_jsonl) for samples given as an Arrow table (pyarrow Table or
    /// RecordBatch, polars DataFrame, any `__arrow_c_stream__` object) in the CLI's Parquet
    /// samples schema.
    #[pyo3(signature = (data, source="samples"))]
    fn score_arrow<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let samples = samples::from_arrow(py, data, source)?;
        self.score_columns(py, samples, source)
    }

    fn __repr__(&self) -> String {
        format!(
            "RewardModel({:?}, grader {:?})",
            self.model.policy().name(),
            self.model.grader_id()
        )
    }
}

impl RewardModel {
    /// The columns of `score_jsonl` for parsed samples; scoring runs without the GIL.
    fn score_columns<'py>(
        &self,
        py: Python<'py>,
        samples: Vec<Sample>,
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (samples, results, lines) = py.detach(|| -> PyResult<_> {
            let (results, _) = self.model.score_each(&samples).map_err(arbiter_error)?;
            let lines = samples
                .iter()
                .zip(&results)
                .map(|(s, r)| match (r, s.response_type) {
                    (Ok(r), Some(response_type)) => json_line(&ScoreRow {
                        id: r.id.clone(),
                        response_type,
                        class: r.class.clone(),
                        reward: r.reward,
                        rbr_reward: r.rbr_reward,
                        base_reward: r.base_reward,
                    })
                    .map(Some),
                    _ => Ok(None),
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok((samples, results, lines))
        })?;
        let policy = self.model.policy();
        let ok = |f: &dyn Fn(&arbiter_reward::Reward) -> f64| -> Vec<Option<f64>> {
            results.iter().map(|r| r.as_ref().ok().map(f)).collect()
        };
        let out = PyDict::new(py);
        let ids = PyList::empty(py);
        for s in &samples {
            ids.append(id_object(py, &s.id)?)?;
        }
        out.set_item("id", ids)?;
        out.set_item("reward", ok(&|r| r.reward))?;
        out.set_item("rbr_reward", ok(&|r| r.rbr_reward))?;
        out.set_item("base_reward", ok(&|r| r.base_reward))?;
        let classes: Vec<Option<&str>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|r| r.class.as_str()))
            .collect();
        out.set_item("class", classes)?;
        for class in policy.classes() {
            out.set_item(
                format!("p_{class}"),
                results
                    .iter()
                    .map(|r| {
                        r.as_ref()
                            .ok()
                            .and_then(|r| r.class_probs.get(class)?.as_f64())
                    })
                    .collect::<Vec<Option<f64>>>(),
            )?;
        }
        for p in policy.propositions() {
            let column: Vec<Option<f64>> = results
                .iter()
                .map(|r| {
                    r.as_ref()
                        .ok()
                        .and_then(|r| r.propositions.get(&p.name).copied())
                })
                .collect();
            out.set_item(&p.name, column)?;
        }
        let errors: Vec<Option<String>> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| format!("{source}: {e}")))
            .collect();
        out.set_item("error", errors)?;
        out.set_item("line", lines)?;
        Ok(out)
    }
}
