"""Arbiter for Python: agreement statistics and crowd label aggregation over the Rust crates.

Install with ``pip install ./crates/arbiter-py`` (distribution ``arbiter-safety``), import as
``arbiter_safety``::

    import pandas as pd
    import arbiter_safety as arb

    df = pd.DataFrame({"item": [...], "rater": [...], "label": [...]})
    arb.alpha(df, level="nominal")                     # Krippendorff's alpha
    arb.DawidSkene(n_iter=100).fit_predict(df.rename(columns={"item": "task", "rater": "worker"}))

Statistics: :func:`alpha`, :func:`alpha_result`, :func:`agreement`, :func:`percent_agreement`,
:func:`fleiss_kappa`, :func:`gwet_ac1`, :func:`gwet_ac2`, :func:`cohen_kappa`,
:func:`group_alpha`; the group analyses of ``arbiter disagreement`` as DataFrames:
:func:`disagreement`. Aggregators (crowd-kit 1.4.2's shape): :class:`MajorityVote`,
:class:`Wawa`, :class:`ZeroBasedSkill`, :class:`DawidSkene`, :class:`OneCoinDawidSkene`,
:class:`GLAD`, :class:`MACE`. Errors are :class:`ArbiterError` (a ``ValueError``) carrying the
Rust message; undefined statistics raise :class:`UndefinedError` (an ``ArbiterError``).

RBR: :class:`Policy` (``Policy.load(path)``, ``Policy.default()``, ``classify``),
:class:`RewardModel` (``RewardModel.load(weights).score(samples)``, ``.reward_fn`` for TRL) and
the offline grader :class:`EmbeddedGrader` (``EmbeddedGrader().grade(samples)``). Ray Data
scale-out: :mod:`arbiter_safety.ray`.

Inputs: pandas or polars DataFrames, pyarrow Tables (any object with the Arrow PyCapsule
interface is read from its Arrow buffers, with no Python object per cell), dicts of lists, or a
:class:`Table` built once with :func:`ratings_table` and reused. The Rust work runs with the GIL
released. Statistics results are pandas objects (crowd-kit's shape) whatever the input;
:func:`to_arrow` and :func:`to_polars` convert any of them, the index becoming columns.
"""

from ._aggregation import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa, ZeroBasedSkill
from ._convert import to_arrow, to_polars
from ._frames import ratings_table
from ._groups import Disagreement, disagreement
from ._grading import EmbeddedGrader, RewardModel
from ._native import ArbiterError, Policy, Table, UndefinedError
from ._stats import (
    AlphaResult,
    agreement,
    alpha,
    alpha_result,
    cohen_kappa,
    fleiss_kappa,
    group_alpha,
    gwet_ac1,
    gwet_ac2,
    percent_agreement,
)

__all__ = [
    "ArbiterError",
    "UndefinedError",
    "Table",
    "Policy",
    "EmbeddedGrader",
    "RewardModel",
    "ratings_table",
    "AlphaResult",
    "alpha",
    "alpha_result",
    "agreement",
    "percent_agreement",
    "fleiss_kappa",
    "gwet_ac1",
    "gwet_ac2",
    "cohen_kappa",
    "group_alpha",
    "Disagreement",
    "disagreement",
    "MajorityVote",
    "Wawa",
    "ZeroBasedSkill",
    "DawidSkene",
    "OneCoinDawidSkene",
    "GLAD",
    "MACE",
    "to_arrow",
    "to_polars",
]
