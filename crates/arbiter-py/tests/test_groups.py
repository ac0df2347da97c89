"""Group analyses: `arb.disagreement` equals `arbiter disagreement --format json`'s report on the
shared datasets with rater groups (LeWiDi HS-Brexit and ArMIS, MultiPICo by gender), and its
DataFrames hold the report's numbers; the within-group α also equals krippendorff 0.8.1."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

import arbiter_safety as arb
from test_alpha import reference_alpha

GROUPED = ["lewidi/HS-Brexit", "lewidi/ArMIS", "multipico"]
BOOTSTRAP = 200


def cli_report(binary, df: pd.DataFrame, tmp_path, *args) -> dict:
    path = tmp_path / "ratings.csv"
    df[["item", "rater", "label", "group"] + (["text"] if "text" in df else [])].to_csv(path, index=False)
    out = tmp_path / "report"
    done = subprocess.run(
        [str(binary), "disagreement", "--group", "group", "--out", str(out), "--bootstrap", str(BOOTSTRAP), *args, str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("name", GROUPED)
def test_disagreement_equals_the_cli(load, arbiter_bin, tmp_path, name):
    df = load(name)
    want = cli_report(arbiter_bin, df, tmp_path)
    got = arb.disagreement(df, "group", bootstrap=BOOTSTRAP)
    assert got.report == want
    # The frames are the report's numbers.
    assert got.labels == want["labels"]
    assert got.groups_left_out == {g["group"]: g["raters"] for g in want["groups_left_out"]}
    pooled = want["alpha"]["pooled"]
    assert got.alpha.loc["(pooled)", "alpha"] == pooled
    for g in want["alpha"]["within"]:
        row = got.alpha.loc[g["group"]]
        assert (row["alpha"], row["ci_low"], row["ci_high"]) == (g["alpha"], *g["ci95"])
    for g in want["in_group_agreement"]:
        assert got.in_group.loc[g["group"], "a_in"] == g["a_in"]
        assert got.in_group.loc[g["group"], "n_raters"] == g["n_raters"]
    for r in want["label_rates"]:
        assert got.label_rates.loc[(r["group"], r["label"]), "rate"] == r["rate"]
    assert list(got.most_dividing["item"]) == [d["item"] for d in want["most_dividing_items"]]
    assert len(got.soft_labels.xs("(all)", level="group")) == len(want["soft_labels"])
    assert got.chi_square == want["chi_square"]
    print(f"{name}: {len(want['alpha']['within'])} groups kept, {len(want['groups_left_out'])} left out")


def test_disagreement_options_equal_the_cli(load, arbiter_bin, tmp_path):
    df = load("multipico")
    df = df.assign(text="the text of " + df["item"])
    want = cli_report(
        arbiter_bin, df, tmp_path, "--level", "ordinal", "--top", "5", "--seed", "3", "--positive", "0", "--text-column", "text"
    )
    got = arb.disagreement(df, "group", level="ordinal", top=5, seed=3, positive="0", text="text", bootstrap=BOOTSTRAP)
    assert got.report == want
    assert list(got.most_dividing["text"]) == ["the text of " + i for i in got.most_dividing["item"]]
    assert got.label_means is not None and set(got.label_means.index) == {g["group"] for g in want["label_means"]["groups"]}
    assert got.logistic.attrs["positive"] == "0" and len(got.most_dividing) == 5


def test_within_group_alpha_equals_krippendorff(load):
    df = load("multipico")
    got = arb.disagreement(df, "group", bootstrap=BOOTSTRAP)
    kept = [g for g in got.alpha.index if g != "(pooled)"]
    assert kept, "multipico keeps its gender groups"
    for g in kept:
        want = reference_alpha(df[df["group"] == g], "nominal")
        assert abs(got.alpha.loc[g, "alpha"] - want) < 1e-9, g
    assert abs(got.alpha.loc["(pooled)", "alpha"] - reference_alpha(df, "nominal")) < 1e-9


def test_disagreement_errors():
    df = pd.DataFrame({"item": ["a", "a"], "rater": ["x", "y"], "label": [1, 2], "g": ["m", "f"]})
    with pytest.raises(arb.ArbiterError, match="min_group_raters"):
        arb.disagreement(df, "g", min_group_raters=2)
    with pytest.raises(arb.ArbiterError, match="no column `h`"):
        arb.disagreement(df, "h")
    with pytest.raises(arb.ArbiterError, match="bins"):
        arb.disagreement(df, "g", bins="q0")
    assert np.isnan(arb.disagreement(df, "g").alpha.loc["(pooled)", "n_pairable_units"])
