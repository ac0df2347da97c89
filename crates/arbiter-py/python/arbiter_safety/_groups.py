"""Group analyses as DataFrames: do raters of different groups label differently?

:func:`disagreement` runs the report of ``arbiter disagreement --group COL`` (the Rust
``disagreement_report``; nothing is recomputed here) and shapes its parts as pandas objects.
The whole report, exactly the CLI's ``report.json``, is kept in :attr:`Disagreement.report`.
Items, labels and groups appear by their text, as in the CLI's report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import _native
from ._frames import ratings_table

__all__ = ["Disagreement", "disagreement"]


def _bounds(interval: Any) -> tuple[float, float]:
    """(low, high) of an interval given as ``[low, high]``, ``{"low": …, "high": …}`` or None."""
    if interval is None:
        return (np.nan, np.nan)
    if isinstance(interval, dict):
        return (interval["low"], interval["high"])
    return (interval[0], interval[1])


def _num(value: Optional[float]) -> float:
    return np.nan if value is None else value


@dataclass(frozen=True)
class Disagreement:
    """The group analyses of one group column (see :func:`disagreement`)."""

    alpha: pd.DataFrame
    """α per kept group and pooled (row ``"(pooled)"``), with 95% bootstrap intervals over items
    (``ci_low``, ``ci_high``) and pairable units; indexed by group."""
    in_group: pd.DataFrame
    """In-group vs cross-group pairwise agreement per group (``a_in``, ``a_cross``, ``ratio``)
    with the permutation test's ``p_value``; indexed by group."""
    label_rates: pd.DataFrame
    """Share of each label per group (``n`` ratings, ``rate``, ``ci_low``/``ci_high`` over
    items); indexed by (group, label)."""
    label_means: Optional[pd.DataFrame]
    """Mean label per group with intervals over raters (ordered levels only)."""
    chi_square: Optional[dict[str, float]]
    """χ² test of group × label (``statistic``, ``df``, ``p_value``), None where undefined."""
    kruskal_wallis: Optional[dict[str, float]]
    """Kruskal–Wallis test across groups (ordered levels only)."""
    logistic: pd.DataFrame
    """Logistic regression of the positive label on group: ``estimate`` per term with rater- and
    item-clustered bootstrap intervals; ``attrs["positive"]`` is the label modelled."""
    most_dividing: pd.DataFrame
    """Items whose label distributions differ most between two groups: ``divergence`` (total
    variation), the two groups and their distributions (label shares in ``labels`` order)."""
    soft_labels: pd.DataFrame
    """Label shares per item overall (group ``"(all)"``, with ``n`` ratings) and per group;
    indexed by (item, group), one column per label."""
    labels: list[str] = field(default_factory=list)
    """Labels in domain order."""
    groups_left_out: dict[str, int] = field(default_factory=dict)
    """Groups with fewer than ``min_group_raters`` raters, with their rater counts."""
    report: dict[str, Any] = field(default_factory=dict)
    """The whole report, as ``arbiter disagreement`` writes ``report.json``."""


def disagreement(
    data: Any,
    group: str,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    level: str = "nominal",
    *,
    positive: Optional[str] = None,
    bootstrap: int = 1000,
    seed: int = 0,
    top: int = 20,
    min_group_raters: int = 5,
    bins: Optional[str] = None,
    text: Optional[str] = None,
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
) -> Disagreement:
    """The group analyses of ``arbiter disagreement --group GROUP`` as DataFrames.

    Groups with fewer than ``min_group_raters`` raters are left out of every per-group
    statistic; ``bootstrap`` replicates (and permutations) are drawn with ``seed``; ``bins``
    bins a numeric group column (``"q4"``, or edges ``"18,30,50"``); ``text`` names a column of
    item text shown with the most-dividing items. ``positive`` is the label modelled by the
    logistic regression (default: the last label). Same data and settings, same numbers as the
    CLI.
    """
    groups = [group] + ([text] if text is not None else [])
    table = ratings_table(
        data, item, rater, label, groups=groups, duplicates=duplicates, domain=domain, ordered=level != "nominal"
    )
    report = json.loads(
        _native.disagreement(
            table,
            group,
            level=level,
            positive=None if positive is None else str(positive),
            bootstrap=bootstrap,
            seed=seed,
            top=top,
            min_group_raters=min_group_raters,
            bins=bins,
            text_column=text,
        )
    )
    labels = report["labels"]
    a = report["alpha"]
    alpha_rows = [("(pooled)", a["pooled"], a["pooled_ci95"], np.nan)] + [
        (g["group"], g["alpha"], g["ci95"], g["n_pairable_units"]) for g in a["within"]
    ]
    alpha = pd.DataFrame(
        [(_num(v), *_bounds(ci), n) for _, v, ci, n in alpha_rows],
        index=pd.Index([g for g, *_ in alpha_rows], name=group),
        columns=["alpha", "ci_low", "ci_high", "n_pairable_units"],
    )
    alpha.attrs["n_rows_missing_group"] = a["n_rows_missing_group"]
    in_group = pd.DataFrame(
        [{k: _num(v) if k != "group" else v for k, v in r.items()} for r in report["in_group_agreement"]],
        columns=["group", "n_raters", "a_in", "a_cross", "ratio", "p_value"],
    ).set_index("group")
    label_rates = pd.DataFrame(
        [(r["group"], r["label"], r["n"], r["rate"], *_bounds(r["interval"])) for r in report["label_rates"]],
        columns=["group", "label", "n", "rate", "ci_low", "ci_high"],
    ).set_index(["group", "label"])
    label_means = None
    if "label_means" in report:
        m = report["label_means"]
        label_means = pd.DataFrame(
            [(g["group"], g["n"], g["n_raters"], _num(g["mean"]), *_bounds(g["interval"])) for g in m["groups"]],
            columns=["group", "n", "n_raters", "mean", "ci_low", "ci_high"],
        ).set_index("group")
        label_means.attrs["scale"] = m["scale"]
    coefficients = report["logistic"]["coefficients"]
    logistic = pd.DataFrame(
        [
            (c["term"], c["estimate"], *_bounds(c["rater_clustered"]), *_bounds(c["item_clustered"]))
            for c in coefficients
        ],
        columns=["term", "estimate", "rater_ci_low", "rater_ci_high", "item_ci_low", "item_ci_high"],
    ).set_index("term")
    logistic.attrs["positive"] = report["logistic"]["positive"]
    dividing_rows = []
    for d in report["most_dividing_items"]:
        dist = dict((g, shares) for g, shares in d["distributions"])
        a_, b_ = d["groups"]
        dividing_rows.append((d["item"], d["divergence"], a_, b_, dist.get(a_), dist.get(b_), d.get("text")))
    most_dividing = pd.DataFrame(
        dividing_rows, columns=["item", "divergence", "group_a", "group_b", "shares_a", "shares_b", "text"]
    )
    if text is None:
        most_dividing = most_dividing.drop(columns="text")
    soft_rows = []
    for s in report["soft_labels"]:
        soft_rows.append((s["item"], "(all)", s["n"], *s["overall"]))
        soft_rows.extend((s["item"], g, np.nan, *shares) for g, shares in s["by_group"])
    soft_labels = pd.DataFrame(soft_rows, columns=["item", group, "n", *labels]).set_index(["item", group])
    return Disagreement(
        alpha=alpha,
        in_group=in_group,
        label_rates=label_rates,
        label_means=label_means,
        chi_square=report["chi_square"],
        kruskal_wallis=report["kruskal_wallis"],
        logistic=logistic,
        most_dividing=most_dividing,
        soft_labels=soft_labels,
        labels=labels,
        groups_left_out={g["group"]: g["raters"] for g in report["groups_left_out"]},
        report=report,
    )
