"""Crowd label aggregation with crowd-kit 1.4.2's shape, computed by ``arbiter-stats``.

Each class takes crowd-kit's constructor arguments, ``fit(data)`` returns the aggregator, and
``fit_predict`` / ``fit_predict_proba`` return ``labels_`` / ``probas_``. ``data`` has the columns
``task``, ``worker`` and ``label`` (pandas or polars DataFrame, pyarrow Table, dict of lists), so
``from crowdkit.aggregation import DawidSkene`` becomes ``from arbiter_safety import DawidSkene``.

Results are pandas objects like crowd-kit's: ``labels_`` is a Series named ``agg_label``
indexed by ``task``; ``probas_`` a DataFrame indexed by ``task`` with one column per label
(columns named ``label``, labels in sorted order: numeric when every label is a number);
``skills_`` a Series named ``skill`` indexed by ``worker``. Tasks and workers are in order of
first appearance in the data (crowd-kit sorts them: compare by index, not position).

Not (yet) supported: prior skills for ``MajorityVote.fit(skills=)``, gold labels and
``initial_error`` for Dawid–Skene, ``predict``/``predict_proba`` on new data, and the
crowd-kit attributes the Rust crate does not return (``errors_``, ``priors_``, GLAD's
``betas_``, MACE's ``spamming_``/``thetas_``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import _native
from ._frames import items_index, ratings_table
from ._native import ArbiterError

__all__ = [
    "MajorityVote",
    "Wawa",
    "ZeroBasedSkill",
    "DawidSkene",
    "OneCoinDawidSkene",
    "GLAD",
    "MACE",
]


class _Aggregator:
    """Shared fitting and result shaping; subclasses name the Rust method and its parameters."""

    _method: str = ""
    _param_names: Sequence[str] = ()

    labels_: Optional[pd.Series]
    probas_: Optional[pd.DataFrame]
    skills_: Optional[pd.Series]
    loss_history_: list[float]

    def _params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def fit(self, data: Any, *, duplicates: str = "keep_all", domain: Sequence[Any] | None = None) -> "_Aggregator":
        """Fit on ``data`` (columns ``task``, ``worker``, ``label``) and set the ``*_`` attributes.

        ``domain`` fixes the label order used to break ties (default: sorted labels, numeric
        when every label is a number); ``duplicates`` is the policy for repeated
        (task, worker) rows (every row counts by default, as in crowd-kit).
        """
        table = ratings_table(data, "task", "worker", "label", duplicates=duplicates, domain=domain)
        r = _native.aggregate(table, self._method, self._params())
        tasks = items_index(table, "task")
        workers = pd.Index(table.raters(), name="worker")
        labels = pd.Index(table.domain(), name="label")
        post = np.frombuffer(r["posteriors"], dtype=np.float64).reshape(len(tasks), r["n_labels"])
        index = np.frombuffer(r["label_index"], dtype=np.int64)
        if r["labels"] is None:
            self.labels_ = pd.Series(labels.take(index).to_numpy(), index=tasks, name="agg_label")
        else:
            self.labels_ = pd.Series(r["labels"], index=tasks, name="agg_label")
        # A bytearray of its own: the frame may keep it without a copy.
        self.probas_ = pd.DataFrame(post, index=tasks, columns=labels)
        self.skills_ = pd.Series(
            [np.nan if s is None else s for s in r["skills"]], index=workers, name="skill", dtype=float
        )
        self.loss_history_ = list(r["loss_history"])
        self.n_iter_ = r["iterations"]
        self.converged_ = r["converged"]
        self._after_fit()
        return self

    def _after_fit(self) -> None:
        pass

    def fit_predict(self, data: Any, **kw: Any) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data, **kw)
        assert self.labels_ is not None
        return self.labels_

    def fit_predict_proba(self, data: Any, **kw: Any) -> pd.DataFrame:
        """Fit and return ``probas_``."""
        self.fit(data, **kw)
        assert self.probas_ is not None
        return self.probas_


class MajorityVote(_Aggregator):
    """Majority vote; ties go to the smallest label. ``skills_`` = each worker's accuracy
    against the majority label. ``probas_`` = vote shares."""

    _method = "mv"

    def __init__(self, default_skill: Optional[float] = None, on_missing_skill: str = "error") -> None:
        self.default_skill = default_skill
        self.on_missing_skill = on_missing_skill
        self.labels_ = self.probas_ = self.skills_ = None
        self.loss_history_ = []

    def fit(self, data: Any, skills: Optional[pd.Series] = None, **kw: Any) -> "MajorityVote":  # type: ignore[override]
        """Fit; weighting votes by given ``skills`` is not supported yet."""
        if skills is not None:
            raise ArbiterError("MajorityVote: weighting by given skills is not supported yet")
        super().fit(data, **kw)
        return self


class Wawa(_Aggregator):
    """Worker Agreement With Aggregate: skill = agreement with the majority vote, then a
    skill-weighted vote."""

    _method = "wawa"

    def __init__(self) -> None:
        self.labels_ = self.probas_ = self.skills_ = None
        self.loss_history_ = []


class ZeroBasedSkill(_Aggregator):
    """Zero-Based Skill: skills move towards the accuracy against the weighted vote, with a
    learning rate halved every ``lr_steps_to_reduce`` iterations; always ``n_iter`` iterations."""

    _method = "zbs"
    _param_names = ("n_iter", "lr_init", "lr_steps_to_reduce", "lr_reduce_factor", "eps")

    def __init__(
        self,
        n_iter: int = 100,
        lr_init: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        eps: float = 1e-5,
    ) -> None:
        self.n_iter = n_iter
        self.lr_init = lr_init
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.eps = eps
        self.labels_ = self.probas_ = self.skills_ = None
        self.loss_history_ = []


class DawidSkene(_Aggregator):
    """Dawid–Skene by EM (full confusion matrix per worker), stopping when the ELBO per answer
    gains less than ``tol`` (also when it falls, as crowd-kit does). ``skills_`` (not in
    crowd-kit) = each worker's prior-weighted probability of answering correctly."""

    _method = "ds"
    _param_names = ("n_iter", "tol")

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, initial_error_strategy: Optional[str] = None) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.initial_error_strategy = initial_error_strategy
        self.labels_ = self.probas_ = self.skills_ = None
        self.loss_history_ = []

    def _params(self) -> dict[str, Any]:
        if self.initial_error_strategy is not None:
            raise ArbiterError(f"{type(self).__name__}: initial_error_strategy is not supported yet")
        return super()._params()

    def fit(  # type: ignore[override]
        self, data: Any, true_labels: Optional[pd.Series] = None, initial_error: Optional[pd.DataFrame] = None, **kw: Any
    ) -> "DawidSkene":
        """Fit; gold ``true_labels`` and ``initial_error`` are not supported yet."""
        if true_labels is not None or initial_error is not None:
            raise ArbiterError(f"{type(self).__name__}: true_labels and initial_error are not supported yet")
        super().fit(data, **kw)
        return self


class OneCoinDawidSkene(DawidSkene):
    """Dawid–Skene with one accuracy per worker (``skills_``): e[t→t] = s,
    e[t→o] = (1 − s)/(K − 1)."""

    _method = "onecoin-ds"


class GLAD(_Aggregator):
    """GLAD: worker expertise ``alphas_`` (also ``skills_``) and task difficulty, by EM with a
    conjugate-gradient M-step. Matches crowd-kit within the optimiser's tolerance (labels may
    differ on about 1% of tasks), not bit for bit."""

    _method = "glad"
    _param_names = ("n_iter", "tol", "m_step_max_iter", "m_step_tol")

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        silent: bool = True,
        labels_priors: Optional[pd.Series] = None,
        alphas_priors_mean: Optional[pd.Series] = None,
        betas_priors_mean: Optional[pd.Series] = None,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
    ) -> None:
        if labels_priors is not None or alphas_priors_mean is not None or betas_priors_mean is not None:
            raise ArbiterError("GLAD: custom priors are not supported yet")
        self.n_iter = n_iter
        self.tol = tol
        self.silent = silent
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol
        self.labels_ = self.probas_ = self.skills_ = None
        self.alphas_: Optional[pd.Series] = None
        self.loss_history_ = []

    def _after_fit(self) -> None:
        assert self.skills_ is not None
        self.alphas_ = self.skills_.rename("alpha")


class MACE(_Aggregator):
    """MACE by variational Bayes, seeded like crowd-kit (NumPy ``RandomState(random_state)``).
    crowd-kit seeds every restart identically, so one run equals its ``n_restarts``.
    ``skills_`` = each worker's probability of answering from knowledge."""

    _method = "mace"
    _param_names = ("n_iter", "alpha", "beta", "default_noise", "random_state")

    def __init__(
        self,
        n_restarts: int = 10,
        n_iter: int = 50,
        method: str = "vb",
        smoothing: float = 0.1,
        default_noise: float = 0.5,
        alpha: float = 0.5,
        beta: float = 0.5,
        random_state: int = 0,
        verbose: int = 0,
    ) -> None:
        if method != "vb":
            raise ArbiterError(f"MACE: only method='vb' is supported, not {method!r}")
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.method = method
        self.smoothing = smoothing
        self.default_noise = default_noise
        self.alpha = alpha
        self.beta = beta
        self.random_state = random_state
        self.verbose = verbose
        self.labels_ = self.probas_ = self.skills_ = None
        self.loss_history_ = []
