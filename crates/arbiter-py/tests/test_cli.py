"""The package gives the CLI's numbers: `arbiter agreement --format json` and
`arbiter aggregate` on the same rows (LeWiDi ConvAbuse: five ordered labels, 2–8 raters per
item, and HS-Brexit with its rater groups), written to a temporary CSV."""

from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

import arbiter_safety as arb
from datasets import crowd_frame

TOL = 1e-12


def write_csv(df: pd.DataFrame, path, columns) -> None:
    df[columns].to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)


def run(binary, *args) -> str:
    done = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_agreement_json_equals_the_cli(load, arbiter_bin, tmp_path, level):
    df = load("lewidi/ConvAbuse")
    path = tmp_path / "ratings.csv"
    write_csv(df, path, ["item", "rater", "label"])
    cli = json.loads(run(arbiter_bin, "agreement", "--format", "json", "--level", level, path))
    table = arb.ratings_table(df)
    r = arb.alpha_result(table, level=level)
    assert (cli["n_items"], cli["n_raters"], cli["n_ratings"]) == (table.n_items, table.n_raters, table.n_ratings)
    assert cli["n_pairable_units"] == r.n_pairable_units
    assert abs(cli["alpha"] - r.alpha) < TOL, (cli["alpha"], r.alpha)
    multi = arb.agreement(table)
    for key in ("percent_agreement", "fleiss_kappa", "gwet_ac1"):
        assert abs(cli[key] - multi[key]) < TOL, key
    if level != "nominal":
        assert abs(cli["gwet_ac2_quadratic"] - arb.gwet_ac2(table, weights="quadratic")) < TOL
    print(f"ConvAbuse {level}: CLI alpha {cli['alpha']!r}, arbiter_safety {r.alpha!r}")


def test_group_alpha_equals_the_cli(load, arbiter_bin, tmp_path):
    df = load("lewidi/HS-Brexit")
    path = tmp_path / "ratings.csv"
    write_csv(df, path, ["item", "rater", "label", "group"])
    cli = json.loads(run(arbiter_bin, "agreement", "--format", "json", "--group", "group", path))
    frame = arb.group_alpha(df, "group")
    assert set(cli["groups"]) == set(frame.index) - {"(pooled)"}
    for g, v in cli["groups"].items():
        assert abs(v["alpha"] - frame.loc[g, "alpha"]) < TOL, g
    assert abs(cli["alpha"] - frame.loc["(pooled)", "alpha"]) < TOL


@pytest.mark.parametrize("method, cls", [("mv", "MajorityVote"), ("ds", "DawidSkene"), ("onecoin-ds", "OneCoinDawidSkene")])
def test_aggregate_equals_the_cli(load, arbiter_bin, tmp_path, method, cls):
    df = load("lewidi/ConvAbuse")
    path = tmp_path / "ratings.csv"
    write_csv(df, path, ["item", "rater", "label"])
    out, skills = tmp_path / "labels.csv", tmp_path / "skills.csv"
    run(arbiter_bin, "aggregate", "--method", method, path, "--out", out, "--skills", skills)
    cli = pd.read_csv(out, dtype={"item": str}).set_index("item")
    ours = getattr(arb, cls)().fit(crowd_frame(df))
    assert list(cli.index) == list(ours.labels_.index)
    assert (cli["label"].to_numpy() == ours.labels_.to_numpy()).all()
    probas = cli[[f"p_{label}" for label in ours.probas_.columns]].to_numpy()
    assert float(np.abs(probas - ours.probas_.to_numpy()).max()) < TOL
    cli_skills = pd.read_csv(skills, dtype={"rater": str}).set_index("rater")["skill"]
    assert float(np.abs(cli_skills.loc[ours.skills_.index].to_numpy() - ours.skills_.to_numpy()).max()) < TOL
