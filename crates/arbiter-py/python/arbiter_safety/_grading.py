"""The embedded grader and the fitted RBR reward, over the Rust ``arbiter-graders`` and
``arbiter-reward`` crates (``EmbeddedGrader``, ``RewardModel`` in ``_native``).

Nothing is computed here: samples go to Rust as Arrow data or JSONL text (see ``_samples``) and
the columns that come back are put in a table of the caller's kind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from . import _native
from ._native import ArbiterError, Policy
from ._samples import make_table, samples_input

__all__ = ["EmbeddedGrader", "RewardModel"]


def _output(kind: str, output: str | None) -> str:
    if output is not None:
        return output
    return "pandas" if kind == "rows" else kind


def _columns(native: Any, method: str, samples: Any) -> tuple[dict[str, list[Any]], str]:
    """``native.<method>_jsonl`` or ``_arrow`` on the samples, whichever form they go in, and
    their kind."""
    data, kind = samples_input(samples)
    form = "jsonl" if isinstance(data, str) else "arrow"
    return getattr(native, f"{method}_{form}")(data), kind


def _policy(policy: Policy | str | os.PathLike | None) -> Policy:
    if policy is None:
        return Policy.default()
    if isinstance(policy, Policy):
        return policy
    return Policy.load(policy)


class EmbeddedGrader:
    """The embedded offline grader (all-MiniLM-L6-v2 + learned heads): P(yes) for each of a
    policy's propositions, as ``arbiter grade`` computes it.

    The model is read once per process: another ``EmbeddedGrader`` with the same ``model_dir``
    and ``heads`` reuses it. ``model_dir`` defaults to ``$ARBITER_MODEL_DIR``, else the cache
    that ``scripts/setup-models.sh`` fills; ``heads`` to the built-in heads of the default policy.
    """

    def __init__(
        self,
        policy: Policy | str | os.PathLike | None = None,
        model_dir: str | os.PathLike | None = None,
        heads: str | os.PathLike | None = None,
    ) -> None:
        self._native = _native.EmbeddedGrader(
            _policy(policy) if policy is not None else None,
            model_dir=os.fspath(model_dir) if model_dir is not None else None,
            heads=os.fspath(heads) if heads is not None else None,
        )

    @property
    def id(self) -> str:
        """The grader's id (``embedded:all-minilm-l6-v2+heads:…``), as reports name it."""
        return self._native.id

    @property
    def propositions(self) -> list[str]:
        """The propositions graded, in policy order."""
        return self._native.propositions

    def grade(self, samples: Any, output: str | None = None, lines: bool = False) -> Any:
        """Grade samples (list of dicts, pandas/polars DataFrame or pyarrow Table in the CLI's
        sample shape). One row per sample, in order: ``id``, one float column per proposition
        (P(yes); missing — NaN in pandas, null in Arrow and polars — where the grader gave no
        probability, never 0) and ``flags`` (JSON of the grader's flags, missing when clean).
        ``lines=True`` adds ``line``: the exact ``arbiter grade`` output line of the sample.
        The table is of the input's kind (pandas for a list), or ``output``."""
        columns, kind = _columns(self._native, "grade", samples)
        if not lines:
            del columns["line"]
        return make_table(columns, self.propositions, _output(kind, output))

    def grade_lines(self, samples: Any) -> list[str]:
        """The ``arbiter grade`` output line of each sample (newline included), in order:
        byte for byte what the CLI writes for the same samples."""
        return _columns(self._native, "grade", samples)[0]["line"]

    def __repr__(self) -> str:
        return repr(self._native)


class RewardModel:
    """A fitted rule-based reward: a policy, weights from ``arbiter rbr fit`` and a grader.

    ``score`` gives what ``arbiter rbr score --features grader`` gives on the same samples
    (with ``--base-reward base_reward`` when they carry ``metadata.base_reward``; absent, it is 0) (``arbiter_reward::RewardModel::score_each``, the reward
    server's function). ``weights`` is the path of a weights file or its parsed JSON;
    ``policy`` a :class:`Policy`, a policy file or ``None`` (the built-in default);
    ``grader`` an :class:`EmbeddedGrader` or ``None`` (the default embedded grader).
    ``cache_entries`` > 0 keeps that many grades by content, so repeated completions are graded
    once.
    """

    def __init__(
        self,
        policy: Policy | str | os.PathLike | None,
        weights: str | os.PathLike | Mapping[str, Any],
        grader: EmbeddedGrader | None = None,
        cache_entries: int = 0,
    ) -> None:
        if isinstance(weights, Mapping):
            text, source = json.dumps(weights), "<weights>"
        else:
            path = Path(weights)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise ArbiterError(f"{path}: cannot read the weights: {e}") from e
            source = str(path)
        self._native = _native.RewardModel(
            _policy(policy),
            text,
            grader._native if grader is not None else None,
            source=source,
            cache_entries=cache_entries,
        )

    @classmethod
    def load(
        cls,
        weights_path: str | os.PathLike,
        policy: Policy | str | os.PathLike | None = None,
        grader: EmbeddedGrader | None = None,
        cache_entries: int = 0,
    ) -> "RewardModel":
        """Weights from ``arbiter rbr fit`` (or ``rbr run``'s ``weights.json``), for ``policy``
        (default: the built-in policy), with ``grader`` (default: the embedded grader)."""
        return cls(policy, weights_path, grader, cache_entries)

    @property
    def classes(self) -> list[str]:
        """The policy's classes, best first."""
        return self._native.classes

    @property
    def propositions(self) -> list[str]:
        """The policy's propositions."""
        return self._native.propositions

    @property
    def grader_id(self) -> str:
        """The grader's id."""
        return self._native.grader_id

    def score_columns(self, samples: Any) -> dict[str, list[Any]]:
        """:meth:`score`'s columns as a dict of lists (with ``line``)."""
        return _columns(self._native, "score", samples)[0]

    def score(self, samples: Any, output: str | None = None, lines: bool = False) -> Any:
        """Score samples (list of dicts, pandas/polars DataFrame or pyarrow Table in the CLI's
        sample shape; ``metadata.base_reward`` or a ``base_reward`` column is added to the RBR
        term). One row per sample, in order: ``id``, ``reward``, ``rbr_reward``,
        ``base_reward``, ``class``, ``p_<class>`` for every class, one column per proposition
        (the grader's P(yes)) and ``error``. A sample that cannot be scored (no response type,
        a proposition the grader could not grade, a bad base reward) has missing values and
        its reason in ``error``; it never gets a made-up reward. ``lines=True`` adds ``line``:
        the sample's ``arbiter rbr score`` output line."""
        columns, kind = _columns(self._native, "score", samples)
        if not lines:
            del columns["line"]
        numeric = ["reward", "rbr_reward", "base_reward", *(f"p_{c}" for c in self.classes), *self.propositions]
        return make_table(columns, numeric, _output(kind, output))

    def score_lines(self, samples: Any) -> list[str]:
        """The ``arbiter rbr score`` output line of each sample (newline included), in order.
        Raises :class:`ArbiterError` naming the first sample that cannot be scored, as the CLI
        fails on it."""
        columns = self.score_columns(samples)
        for error in columns["error"]:
            if error is not None:
                raise ArbiterError(error)
        return columns["line"]

    def rewards(self, samples: Any) -> list[float]:
        """The total reward of each sample, in order; raises :class:`ArbiterError` naming the
        first sample that cannot be scored."""
        columns = self.score_columns(samples)
        for error in columns["error"]:
            if error is not None:
                raise ArbiterError(error)
        return columns["reward"]

    @property
    def reward_fn(self) -> Callable[..., list[float]]:
        """This reward as a TRL reward function (see :func:`arbiter_safety.trl.reward_function`)."""
        from .trl import reward_function

        return reward_function(self)

    def __repr__(self) -> str:
        return repr(self._native)
