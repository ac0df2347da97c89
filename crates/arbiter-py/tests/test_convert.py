"""Statistics results as Arrow and polars tables (`to_arrow`, `to_polars`): the pandas result's
index becomes the leading column(s), every value is kept, in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb


def crowd() -> pl.DataFrame:
    rng = np.random.default_rng(2)
    n = 600
    task = rng.integers(0, 120, size=n)
    worker = rng.integers(0, 15, size=n)
    label = (task + (rng.random(n) < 0.3) * rng.integers(1, 3, size=n)) % 3
    return pl.DataFrame({"task": [f"t{t}" for t in task], "worker": [f"w{w}" for w in worker], "label": label})


def test_aggregator_results_convert_with_their_index():
    df = crowd()
    ds = arb.DawidSkene(n_iter=30)
    labels = ds.fit_predict(df)
    t = arb.to_arrow(labels)
    assert isinstance(t, pa.Table)
    assert t.column_names == ["task", "agg_label"]
    assert t.column("task").to_pylist() == list(labels.index)
    assert t.column("agg_label").to_pylist() == labels.tolist()
    assert t.schema.field("agg_label").type == pa.int64()
    p = arb.to_polars(ds.probas_)
    assert isinstance(p, pl.DataFrame)
    assert p.columns == ["task", *[str(c) for c in ds.probas_.columns]]
    np.testing.assert_array_equal(p.drop("task").to_numpy(), ds.probas_.to_numpy())
    s = arb.to_polars(ds.skills_)
    assert s.columns == ["worker", "skill"]
    assert s["skill"].to_list() == ds.skills_.tolist()


def test_disagreement_frames_convert_including_multi_indexes_and_lists():
    rng = np.random.default_rng(3)
    n = 400
    r = rng.integers(0, 24, size=n)
    df = pd.DataFrame(
        {
            "item": [f"i{i}" for i in rng.integers(0, 60, size=n)],
            "rater": [f"r{x}" for x in r],
            "label": rng.integers(0, 2, size=n),
            "g": ["a" if x % 2 else "b" for x in r],
        }
    )
    d = arb.disagreement(df, "g", bootstrap=50, min_group_raters=5)
    alpha = arb.to_arrow(d.alpha)
    assert alpha.column_names == ["g", "alpha", "ci_low", "ci_high", "n_pairable_units"]
    assert alpha.column("g").to_pylist() == list(d.alpha.index)
    np.testing.assert_array_equal(np.asarray(alpha.column("alpha")), d.alpha["alpha"].to_numpy())
    rates = arb.to_polars(d.label_rates)
    assert rates.columns[:2] == ["group", "label"] and rates.height == len(d.label_rates)
    soft = arb.to_arrow(d.soft_labels)
    assert soft.column_names[:2] == ["item", "g"]
    dividing = arb.to_arrow(d.most_dividing)  # a plain 0..n-1 index is not a column
    assert dividing.column_names == list(d.most_dividing.columns)
    assert dividing.column("shares_a").to_pylist() == d.most_dividing["shares_a"].tolist()


def test_mixed_values_become_text_and_other_objects_are_refused():
    s = pd.Series([1, "x", None], index=pd.Index(["a", "b", "c"], name="task"), name="agg_label")
    t = arb.to_arrow(s)
    assert t.column("agg_label").to_pylist() == ["1", "x", None]
    with pytest.raises(arb.ArbiterError, match="expected a pandas Series or DataFrame"):
        arb.to_arrow([1, 2])
