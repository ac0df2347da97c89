"""Agreement coefficients: against krippendorff 0.8.1 on every shared dataset, and the
formula's textbook values on small tables the tests write out."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb
from datasets import NAMES, domain_of, is_number

LEVELS = ["nominal", "ordinal", "interval", "ratio"]
GOLDEN = Path(__file__).resolve().parents[2] / "arbiter-stats" / "tests" / "golden" / "shared_datasets.json"

# The Wikipedia example of annotation.md (`*` = missing), raters A, B, C over 15 units.
WIKI = ["* * * * * 3 4 1 2 1 1 3 3 * 3", "1 * 2 1 3 3 4 3 * * * * * * *", "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"]
WIKI_ALPHA = {"nominal": 0.691358, "ordinal": 0.806721, "interval": 0.810845, "ratio": 0.808944}


def wiki_frame() -> pd.DataFrame:
    rows = [
        (f"u{u:02}", rater, int(v))
        for rater, line in zip("ABC", WIKI)
        for u, v in enumerate(line.split())
        if v != "*"
    ]
    return pd.DataFrame(rows, columns=["item", "rater", "label"])


def reference_alpha(df: pd.DataFrame, level: str) -> float | None:
    """krippendorff 0.8.1 on the value counts (every row counts); None where it raises."""
    domain = domain_of(df["label"].astype(str))
    counts = pd.crosstab(df["item"], df["label"].astype(str)).reindex(columns=domain, fill_value=0)
    numeric = all(is_number(v) for v in domain)
    value_domain = [float(v) for v in domain] if numeric else domain
    try:
        return float(
            krippendorff.alpha(
                value_counts=counts.to_numpy(dtype=float), value_domain=value_domain, level_of_measurement=level
            )
        )
    except ValueError:
        return None


@pytest.mark.parametrize("level", LEVELS)
def test_wikipedia_example(level):
    df = wiki_frame()
    assert arb.alpha(df, level=level) == pytest.approx(WIKI_ALPHA[level], abs=5e-7)
    assert arb.alpha(df, level=level) == pytest.approx(reference_alpha(df, level), abs=1e-9)


def test_inputs_pandas_polars_arrow_dict_and_table_agree():
    df = wiki_frame()
    want = arb.alpha(df)
    assert arb.alpha(pl.from_pandas(df)) == want
    assert arb.alpha(pa.Table.from_pandas(df)) == want
    assert arb.alpha({c: df[c].tolist() for c in df.columns}) == want
    table = arb.ratings_table(df)
    assert (table.n_ratings, table.n_items, table.n_raters) == (len(df), 13, 3)
    assert arb.alpha(table) == want
    # Labels given as text are the same labels.
    assert arb.alpha(df.assign(label=df["label"].astype(str)), level="interval") == arb.alpha(df, level="interval")


def test_other_coefficients_on_the_wikipedia_example():
    df = wiki_frame()
    got = arb.agreement(df)
    assert got["n_items_used"] == 12
    assert arb.percent_agreement(df) == got["percent_agreement"]
    assert arb.fleiss_kappa(df) == got["fleiss_kappa"]
    assert arb.gwet_ac1(df) == got["gwet_ac1"]
    # AC2 with identity weights is AC1.
    assert arb.gwet_ac2(df, weights="identity") == pytest.approx(got["gwet_ac1"], abs=1e-12)
    # Cohen's kappa by hand on the items A and C both rated.
    pairs = df.pivot(index="item", columns="rater", values="label")[["A", "C"]].dropna()
    po = float((pairs.A == pairs.C).mean())
    pe = sum((pairs.A == k).mean() * (pairs.C == k).mean() for k in set(pairs.A) | set(pairs.C))
    assert arb.cohen_kappa(df, "A", "C") == pytest.approx((po - pe) / (1 - pe), abs=1e-12)


def test_result_object_and_bootstrap():
    r = arb.alpha_result(wiki_frame(), level="ordinal", bootstrap=200, seed=1)
    assert r.alpha == pytest.approx(WIKI_ALPHA["ordinal"], abs=5e-7)
    assert r.undefined is None and r.n_pairable_units == 12 and r.level == "ordinal"
    low, high = r.interval
    assert low < r.alpha < high
    assert arb.alpha_result(wiki_frame(), level="ordinal", bootstrap=200, seed=1) == r


def test_undefined_and_errors_are_exceptions_with_the_rust_message():
    df = wiki_frame()
    with pytest.raises(arb.UndefinedError, match="no_expected_disagreement"):
        arb.alpha(df.assign(label=1))
    assert arb.alpha_result(df.assign(label=1)).alpha is None
    with pytest.raises(ValueError, match="no_pairable_units"):
        arb.alpha(df.drop_duplicates("item"))
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row 3: missing value"):
        arb.alpha(df.assign(label=[1, 2, 3, None] + [1] * (len(df) - 4)))
    with pytest.raises(arb.ArbiterError, match="no column `coder`"):
        arb.alpha(df, rater="coder")
    with pytest.raises(arb.ArbiterError, match="level must be"):
        arb.alpha(df, level="cardinal")
    with pytest.raises(arb.ArbiterError, match="needs numeric labels"):
        arb.alpha(df.assign(label=df["label"].map({1: "a", 2: "b", 3: "c", 4: "d"})), level="interval")
    with pytest.raises(arb.ArbiterError, match="rated item .* more than once"):
        arb.alpha(pd.concat([df, df.head(1)]), duplicates="error")
    with pytest.raises(arb.ArbiterError, match=r"label \"9\" is not in the label domain"):
        arb.alpha(df.assign(label=df["label"].replace(4, 9)), domain=[1, 2, 3, 4])


def test_group_alpha_is_alpha_of_each_group():
    df = wiki_frame().assign(team=lambda d: d["rater"].map({"A": "x", "B": "x", "C": "y"}))
    frame = arb.group_alpha(df, "team")
    assert list(frame.index) == ["(pooled)", "x", "y"]
    assert frame.loc["(pooled)", "alpha"] == arb.alpha(df)
    assert frame.loc["x", "alpha"] == arb.alpha(df[df.team == "x"])
    assert frame.loc["y", "undefined"] == "no_pairable_units"


@pytest.mark.parametrize("name", NAMES)
def test_alpha_equals_krippendorff_on_shared_data(load, name):
    df = load(name)
    numeric = all(is_number(v) for v in set(df["label"]))
    table = arb.ratings_table(df)
    for level in LEVELS:
        if level in ("interval", "ratio") and not numeric:
            continue
        want = reference_alpha(df, level)
        got = arb.alpha_result(table, level=level).alpha
        if want is None:
            assert got is None, f"{name} {level}: krippendorff raises, we gave {got}"
        else:
            assert abs(got - want) < 1e-9, f"{name} {level}: {got} vs krippendorff {want}"
        print(f"{name} alpha {level}: arbiter_safety {got!r} krippendorff {want!r}")
    # One row per (item, rater), the first.
    first = df.drop_duplicates(["item", "rater"], keep="first")
    assert abs(arb.alpha(df, duplicates="first") - reference_alpha(first, "nominal")) < 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_group_alpha_equals_krippendorff_on_shared_data(load, name):
    df = load(name)
    if df["group"].isna().all():
        pytest.skip(f"{name} has no rater groups")
    frame = arb.group_alpha(df, "group")
    for g, sub in df.dropna(subset=["group"]).groupby("group"):
        want = reference_alpha(sub, "nominal")
        got = frame.loc[g, "alpha"]
        if want is None:
            assert np.isnan(got)
        else:
            assert abs(got - want) < 1e-9, f"{name} group {g}: {got} vs {want}"


def test_shared_data_matches_the_golden_numbers(load):
    """The same numbers the Rust golden test checks (made with krippendorff 0.8.1)."""
    for entry in json.loads(GOLDEN.read_text()):
        df = load(entry["dataset"])
        table = arb.ratings_table(df)
        assert (table.n_ratings, table.n_items, table.n_raters) == (
            entry["n_ratings"],
            entry["n_items"],
            entry["n_raters"],
        )
        for level, want in entry["alpha"].items():
            if level in LEVELS and want is not None:
                assert abs(arb.alpha(table, level=level) - want) < 1e-9, (entry["dataset"], level)
