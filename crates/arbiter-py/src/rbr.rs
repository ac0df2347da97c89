//! Rule-Based Rewards: a policy loaded from TOML and the classification of one sample's
//! proposition values, over `arbiter-rbr` (`Policy::from_toml_str`, `classify`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbiter_core::ResponseType;
use arbiter_rbr::{FeatureValues, Policy as RbrPolicy, classify};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{ArbiterError, arbiter_error};

/// A validated RBR policy (propositions, classes and per-response-type rules).
#[pyclass(frozen, name = "Policy", module = "arbiter_safety._native")]
pub(crate) struct Policy {
    policy: RbrPolicy,
}

fn response_type(name: &str) -> PyResult<ResponseType> {
    ResponseType::parse(name).ok_or_else(|| {
        arbiter_error(format!(
            "unknown response type {name:?}; one of hard_refuse, safe_refuse_1, safe_refuse_2, comply"
        ))
    })
}

impl Policy {
    /// The crate's policy, for the grader and the reward model.
    pub(crate) fn inner(&self) -> &RbrPolicy {
        &self.policy
    }
}

#[pymethods]
impl Policy {
    /// Read and validate a policy file; errors name the file and the line or field.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Policy> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ArbiterError::new_err(format!("{}: {e}", path.display())))?;
        let name = path.display().to_string();
        let policy = py
            .detach(|| RbrPolicy::from_toml_str(&text, &name))
            .map_err(arbiter_error)?;
        Ok(Policy { policy })
    }

    /// Validate a policy given as TOML text; `source_name` is used in error messages.
    #[staticmethod]
    #[pyo3(signature = (text, source_name="<string>"))]
    fn from_toml(text: &str, source_name: &str) -> PyResult<Policy> {
        let policy = RbrPolicy::from_toml_str(text, source_name).map_err(arbiter_error)?;
        Ok(Policy { policy })
    }

    /// The built-in default policy (`policies/default.toml`).
    #[staticmethod]
    fn default() -> Policy {
        Policy {
            policy: RbrPolicy::default_policy(),
        }
    }

    /// The policy's name.
    #[getter]
    fn name(&self) -> &str {
        self.policy.name()
    }

    /// Class names, best first.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.policy.classes().to_vec()
    }

    /// Proposition names, in the policy's order.
    #[getter]
    fn propositions(&self) -> Vec<String> {
        self.policy
            .propositions()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Response types with rules.
    #[getter]
    fn response_types(&self) -> Vec<&'static str> {
        self.policy.response_types().map(|r| r.as_str()).collect()
    }

    /// Classify one sample: `features` maps proposition names to a human label (bool) or a
    /// grader's P(yes) in [0, 1]. Returns `(class, {class: probability})`; the probabilities
    /// are exact for independent propositions and sum to 1.
    fn classify<'py>(
        &self,
        py: Python<'py>,
        response_type_name: &str,
        features: BTreeMap<String, f64>,
    ) -> PyResult<(String, Bound<'py, PyDict>)> {
        let rt = response_type(response_type_name)?;
        let values =
            FeatureValues::from_probabilities(&self.policy, &features).map_err(arbiter_error)?;
        let c = classify(&self.policy, rt, &values).map_err(arbiter_error)?;
        let probs = PyDict::new(py);
        for (name, p) in self.policy.classes().iter().zip(&c.class_probs) {
            probs.set_item(name, p)?;
        }
        Ok((self.policy.classes()[c.class].clone(), probs))
    }

    fn __repr__(&self) -> String {
        format!(
            "Policy({:?}, {} propositions, {} classes)",
            self.policy.name(),
            self.policy.propositions().len(),
            self.policy.classes().len()
        )
    }
}
