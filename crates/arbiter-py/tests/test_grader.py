"""`EmbeddedGrader`: the lines `arbiter grade` writes, byte for byte, on the example
conversations and the RBR gold test split; tables of every input kind with the same values;
one model load per process; the CLI's errors."""

from __future__ import annotations

import json
import math

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb
from arbiter_safety import _native
from arbiter_safety._samples import make_table
from grading_fixtures import EXAMPLES, cli, gold_test, model, read_jsonl  # noqa: F401


@pytest.fixture(scope="module")
def grader(model):
    return arb.EmbeddedGrader(model_dir=model)


def cli_grades(arbiter_bin, path, model) -> str:
    return cli(arbiter_bin, "grade", "--model-dir", model, path)


def test_grade_lines_equal_arbiter_grade_on_the_examples(grader, arbiter_bin, model):
    want = cli_grades(arbiter_bin, EXAMPLES, model)
    got = "".join(grader.grade_lines(read_jsonl(EXAMPLES)))
    assert got == want
    assert got.count("\n") == 40


def test_grade_lines_equal_arbiter_grade_on_the_gold_test_split(grader, arbiter_bin, model, gold_test):
    rows = read_jsonl(gold_test)
    want = cli_grades(arbiter_bin, gold_test, model)
    # A DataFrame read from the same file: ids default to the row's position, as the CLI's to
    # the line's.
    got = "".join(grader.grade(pd.DataFrame(rows), lines=True)["line"])
    assert got == want
    print(f"gold test split: {len(rows)} samples, grade lines equal to the CLI's")


@pytest.mark.parametrize("kind", ["rows", "pandas", "polars", "pyarrow"])
def test_every_input_kind_gives_the_clis_values(grader, arbiter_bin, model, kind):
    rows = read_jsonl(EXAMPLES)
    samples = {
        "rows": rows,
        "pandas": pd.DataFrame(rows),
        "polars": pl.DataFrame(rows, strict=False),
        "pyarrow": pa.Table.from_pylist(rows),
    }[kind]
    table = grader.grade(samples)
    frame = table if kind in ("rows", "pandas") else table.to_pandas()
    assert type(table).__module__.split(".")[0] == ("pandas" if kind == "rows" else kind)
    want = [json.loads(line) for line in cli_grades(arbiter_bin, EXAMPLES, model).splitlines()]
    assert list(frame["id"]) == [w["id"] for w in want]
    for p in grader.propositions:
        assert list(frame[p]) == [w["propositions"][p] for w in want], p
    assert frame["flags"].isna().all()


def test_the_model_is_loaded_once_per_process(grader, model):
    before = _native.embedded_models_loaded()
    again = arb.EmbeddedGrader(model_dir=model)
    assert _native.embedded_models_loaded() == before
    assert again.id == grader.id and grader.id.startswith("embedded:")


def test_unscored_cells_are_missing_never_zero():
    columns = {"id": [1, 2], "p": [0.25, None], "flags": [None, '{"p":"error"}']}
    frame = make_table(columns, ["p"], "pandas")
    assert frame["p"].iloc[0] == 0.25 and math.isnan(frame["p"].iloc[1])
    table = make_table(columns, ["p"], "pyarrow")
    assert table.column("p").null_count == 1
    assert make_table(columns, ["p"], "polars")["p"].null_count() == 1


def test_bad_samples_raise_the_clis_messages(grader):
    good = read_jsonl(EXAMPLES)[:2]
    with pytest.raises(arb.ArbiterError, match=r"samples:2: field `prompt`: is missing"):
        grader.grade([good[0], {"completion": "x"}])
    with pytest.raises(arb.ArbiterError, match=r"samples:2: field `id`: duplicate id `ex-01`"):
        grader.grade([good[0], {**good[1], "id": "ex-01"}])
    with pytest.raises(arb.ArbiterError, match="list of dicts"):
        grader.grade("not samples")


def test_an_empty_input_gives_an_empty_table(grader):
    assert len(grader.grade([])) == 0


def test_the_ray_actors_refuse_samples_without_ids():
    """On Ray a row's position is known only within its batch, so ids are required there
    (`arbiter_safety.ray` imports Ray only when a job runs)."""
    from arbiter_safety.ray import _need_ids

    with pytest.raises(arb.ArbiterError, match="no `id` column"):
        _need_ids(pa.table({"prompt": ["x"]}))
    _need_ids(pa.table({"id": [1]}))
