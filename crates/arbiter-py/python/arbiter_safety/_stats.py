"""Agreement coefficients: Krippendorff's alpha, Fleiss' kappa, Gwet's AC1/AC2, Cohen's kappa.

Every function takes a DataFrame (pandas or polars), a pyarrow Table, a dict of columns or a
:class:`Table` built once with :func:`ratings_table`, plus the column names. The numbers are
computed by the Rust crate ``arbiter-stats`` (the same code as ``arbiter agreement``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd

from . import _native
from ._frames import arrow_data, ratings_table
from ._native import Table, UndefinedError

__all__ = [
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
]


@dataclass(frozen=True)
class AlphaResult:
    """Krippendorff's alpha with the quantities behind it.

    ``alpha`` is None when undefined, and ``undefined`` then says why
    (``no_pairable_units`` or ``no_expected_disagreement``).
    """

    alpha: Optional[float]
    undefined: Optional[str]
    level: str
    n_pairable_units: int
    n_pairable_values: float
    observed_disagreement: float
    expected_disagreement: float
    interval: Optional[tuple[float, float]] = None
    """Percentile bootstrap interval (low, high), when asked for."""


def _defined(value: Optional[float], what: str) -> float:
    if value is None:
        raise UndefinedError(f"{what} is undefined on this data")
    return value


def _alpha(
    data: Any,
    item: str,
    rater: str,
    label: str,
    level: str,
    duplicates: str,
    domain: Sequence[Any] | None,
) -> dict[str, Any]:
    """The native α dict. Arrow data with every row counted goes to ``alpha_arrow``, which
    counts labels per item without building a table (the same α, bit for bit); anything else
    is built into a :class:`Table` first."""
    if duplicates.replace("-", "_") == "keep_all" and not isinstance(data, Table):
        source = arrow_data(data, [item, rater, label])
        if source is not None:
            domain_list = list(domain) if domain is not None else None
            return _native.alpha_arrow(source, [item, rater, label], level, domain=domain_list)
    table = ratings_table(data, item, rater, label, duplicates=duplicates, domain=domain)
    return _native.alpha(table, level)


def alpha_result(
    data: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    level: str = "nominal",
    *,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
) -> AlphaResult:
    """Krippendorff's alpha as an :class:`AlphaResult` (never raises for undefined alpha).

    ``bootstrap`` > 0 adds a percentile interval from that many replicates over pairable units.
    """
    if bootstrap <= 0:
        return AlphaResult(**_alpha(data, item, rater, label, level, duplicates, domain))
    table = ratings_table(data, item, rater, label, duplicates=duplicates, domain=domain)
    r = _native.alpha(table, level)
    interval = None
    if bootstrap > 0:
        got = _native.alpha_interval(table, level, bootstrap, seed, confidence)
        interval = None if got is None else (got[0], got[1])
    return AlphaResult(interval=interval, **r)


def alpha(
    data: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    level: str = "nominal",
    *,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
) -> float:
    """Krippendorff's alpha at ``level`` (nominal, ordinal, interval or ratio).

    Every row counts (``duplicates="keep_all"``, like the value-counts input of
    ``krippendorff``); ``"first"``/``"last"`` keep one row per (item, rater), ``"error"``
    refuses repeats. ``domain`` fixes the label order for ordinal alpha (default: numeric order
    when every label is a number, else lexicographic). Raises :class:`UndefinedError` when
    alpha has no value (no item with two ratings, or no expected disagreement), as
    ``krippendorff.alpha`` raises ``ValueError``.
    """
    r = _alpha(data, item, rater, label, level, duplicates, domain)
    if r["alpha"] is None:
        raise UndefinedError(f"alpha ({level}) is undefined: {r['undefined']}")
    return r["alpha"]


def agreement(
    data: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    *,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Percent agreement, Fleiss' kappa and Gwet's AC1 in one pass, as a dict
    (``percent_agreement``, ``fleiss_kappa``, ``gwet_ac1``: None where undefined;
    ``n_items_used``: items with two or more ratings)."""
    table = ratings_table(data, item, rater, label, duplicates=duplicates, domain=domain)
    return _native.multi_rater(table)


def percent_agreement(data: Any, item: str = "item", rater: str = "rater", label: str = "label", **kw: Any) -> float:
    """Observed pairwise agreement p_a. Raises :class:`UndefinedError` when undefined."""
    return _defined(agreement(data, item, rater, label, **kw)["percent_agreement"], "percent agreement")


def fleiss_kappa(data: Any, item: str = "item", rater: str = "rater", label: str = "label", **kw: Any) -> float:
    """Fleiss' kappa. Raises :class:`UndefinedError` when undefined."""
    return _defined(agreement(data, item, rater, label, **kw)["fleiss_kappa"], "Fleiss' kappa")


def gwet_ac1(data: Any, item: str = "item", rater: str = "rater", label: str = "label", **kw: Any) -> float:
    """Gwet's AC1. Raises :class:`UndefinedError` when undefined."""
    return _defined(agreement(data, item, rater, label, **kw)["gwet_ac1"], "Gwet's AC1")


def gwet_ac2(
    data: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    weights: str = "quadratic",
    *,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
) -> float:
    """Gwet's AC2 with ``linear``, ``quadratic`` or ``identity`` weights over ordered labels.
    Raises :class:`UndefinedError` when undefined."""
    table = ratings_table(data, item, rater, label, duplicates=duplicates, domain=domain)
    return _defined(_native.gwet_ac2(table, weights), "Gwet's AC2")


def cohen_kappa(
    data: Any,
    rater_a: Any,
    rater_b: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    *,
    domain: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two raters over the items both rated (a rater's first rating of
    an item counts). Raises :class:`UndefinedError` when undefined."""
    table = ratings_table(data, item, rater, label, domain=domain)
    return _defined(_native.cohen_kappa(table, rater_a, rater_b), "Cohen's kappa")


def group_alpha(
    data: Any,
    group: str,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    level: str = "nominal",
    *,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Alpha within each value of the column ``group`` and pooled, as a DataFrame indexed by
    ``group`` (the pooled row is named ``"(pooled)"``), with the columns of
    :class:`AlphaResult`. Rows with a missing group count in the pooled row only."""
    table = ratings_table(data, item, rater, label, groups=[group], duplicates=duplicates, domain=domain)
    r = _native.group_alpha(table, group, level)
    rows = [("(pooled)", r["pooled"])] + [(g, rep) for g, rep in r["within"]]
    frame = pd.DataFrame([rep for _, rep in rows], index=pd.Index([g for g, _ in rows], name=group))
    frame.attrs["n_missing"] = r["n_missing"]
    return frame
