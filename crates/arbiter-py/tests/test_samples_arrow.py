"""Samples as Arrow: a pyarrow Table, a polars DataFrame and a pandas DataFrame go to Rust as
Arrow data (never as JSON lines) and give exactly the lines the list of dicts gives, on the
examples and the RBR gold test split; bad tables get the list path's messages; what Arrow cannot
hold still goes as JSON, with the same results."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb
from arbiter_safety import _native, _samples
from grading_fixtures import EXAMPLES, gold_test, model, read_jsonl, weights, with_base_rewards  # noqa: F401

KINDS = ["pyarrow", "polars", "pandas"]


def as_kind(rows: list[dict], kind: str):
    return {
        "pyarrow": lambda: pa.Table.from_pylist(rows),
        "polars": lambda: pl.DataFrame(rows, strict=False),
        "pandas": lambda: pd.DataFrame(rows),
    }[kind]()


@pytest.fixture
def arrow_only(monkeypatch):
    """Fails any call that would send a table (anything but a list of dicts) as JSON lines."""
    by_json = _samples.samples_jsonl

    def refuse(samples):
        if not isinstance(samples, list):
            raise AssertionError(f"{type(samples).__name__} went as JSON lines")
        return by_json(samples)

    monkeypatch.setattr(_samples, "samples_jsonl", refuse)


@pytest.fixture(scope="module")
def grader(model):
    return arb.EmbeddedGrader(model_dir=model)


@pytest.fixture(scope="module")
def reward(model, weights):
    return arb.RewardModel.load(weights, grader=arb.EmbeddedGrader(model_dir=model))


@pytest.fixture(scope="module")
def example_lines(grader):
    rows = read_jsonl(EXAMPLES)
    return rows, grader.grade_lines(rows)


@pytest.fixture(scope="module")
def gold_lines(grader, gold_test):
    rows = read_jsonl(gold_test)
    return rows, grader.grade_lines(rows)


@pytest.mark.parametrize("kind", KINDS)
def test_grade_lines_of_a_table_equal_the_lists_on_the_examples(grader, example_lines, kind, arrow_only):
    rows, want = example_lines
    assert grader.grade_lines(as_kind(rows, kind)) == want


@pytest.mark.parametrize("kind", KINDS)
def test_grade_lines_of_a_table_equal_the_lists_on_the_gold_test_split(grader, gold_lines, kind, arrow_only):
    rows, want = gold_lines
    assert grader.grade_lines(as_kind(rows, kind)) == want
    assert len(want) == len(rows) > 100


@pytest.mark.parametrize("kind", KINDS)
def test_score_lines_of_a_table_equal_the_lists(reward, kind, arrow_only):
    rows = with_base_rewards(read_jsonl(EXAMPLES))
    # Metadata dicts of unlike keys: Arrow widens them to one struct of every key, whose nulls
    # must not reach the sample (a null base_reward is an error, an absent one is 0).
    for i, r in enumerate(rows):
        if i % 3 == 0:
            r["metadata"] = {"source": f"s{i}"}
    assert reward.score_lines(as_kind(rows, kind)) == reward.score_lines(rows)


def test_the_gold_split_scores_the_same_as_a_table(reward, gold_test, arrow_only):
    rows = read_jsonl(gold_test)
    assert reward.score_lines(pa.Table.from_pylist(rows)) == reward.score_lines(rows)


def test_metadata_as_json_text_reads_as_the_clis_parquet_reader_does(reward, arrow_only):
    """The schema `arbiter` writes to Parquet: metadata as JSON text."""
    rows = with_base_rewards(read_jsonl(EXAMPLES))[:6]
    table = pa.Table.from_pylist(rows).drop_columns(["metadata"])
    table = table.append_column("metadata", pa.array([json.dumps(r["metadata"]) for r in rows]))
    assert reward.score_lines(table) == reward.score_lines(rows)


def test_a_polars_nan_is_a_missing_value_as_in_a_dict(reward, arrow_only):
    rows = read_jsonl(EXAMPLES)[:4]
    frame = pl.DataFrame(rows, strict=False).with_columns(base_reward=pl.Series([0.5, float("nan"), None, -1.0]))
    as_rows = [{**r, "base_reward": b} for r, b in zip(rows, [0.5, float("nan"), None, -1.0])]
    assert reward.score_lines(frame) == reward.score_lines(as_rows)


def test_what_arrow_cannot_type_goes_as_json_with_the_same_results(grader, example_lines):
    rows, want = example_lines
    mixed = [{**r, "note": i if i % 2 else f"n{i}"} for i, r in enumerate(rows)]
    data, kind = _samples.samples_input(pd.DataFrame(mixed))
    assert isinstance(data, str) and kind == "pandas"
    assert grader.grade_lines(pd.DataFrame(mixed)) == want


def error(data) -> str:
    with pytest.raises(arb.ArbiterError) as e:
        _native.sample_ids(data)
    return str(e.value)


def bad_tables() -> list[tuple[list[dict], str]]:
    """Rows that are not samples, and the message the list path gives them."""
    good = read_jsonl(EXAMPLES)[:3]
    return [
        ([{k: v for k, v in r.items() if k != "completion"} for r in good], r"samples:1: field `completion`: is missing"),
        ([{**r, "prompt": 7} for r in good], r"samples:1: field `prompt`: must be a list"),
        ([good[0], {**good[1], "prompt": None}, good[2]], r"samples:2: field `prompt`: is missing"),
        ([good[0], {**good[1], "id": "ex-01"}], r"samples:2: field `id`: duplicate id `ex-01`"),
        ([good[0], {**good[1], "response_type": "sometimes"}], r"samples:2: field `response_type`: unknown response type"),
        ([{**r, "propositions": {"apology": 1}} for r in good], r"samples:1: field `propositions.apology`: human labels must be true or false"),
    ]


@pytest.mark.parametrize("case", range(len(bad_tables())))
@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_table_gets_the_list_paths_message(case, kind):
    rows, pattern = bad_tables()[case]
    text, _ = _samples.samples_jsonl(rows)
    want = error(text)
    assert re.match(pattern, want), want
    data, got_kind = _samples.samples_input(as_kind(rows, kind))
    assert not isinstance(data, str) and got_kind == kind
    assert error(data) == want


def test_ids_and_defaults_are_the_lists(gold_test):
    rows = read_jsonl(gold_test)
    want = _native.sample_ids(_samples.samples_jsonl(rows)[0])
    assert want[:3] == [0, 1, 2]
    for kind in KINDS:
        assert _native.sample_ids(_samples.samples_input(as_kind(rows, kind))[0]) == want, kind


def test_reading_a_table_is_faster_than_json_lines():
    """20,000 samples from a pyarrow Table into Rust, by Arrow and by JSON lines (the times are
    printed; `-s` shows them)."""
    rows = read_jsonl(EXAMPLES)
    many = [{**rows[i % len(rows)], "id": i} for i in range(20_000)]
    table = pa.Table.from_pylist(many)

    def best(f) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ids = f()
            times.append(time.perf_counter() - start)
            assert len(ids) == 20_000
        return min(times)

    by_json = best(lambda: _native.sample_ids(_samples.samples_jsonl(table)[0]))
    by_arrow = best(lambda: _native.sample_ids(table))
    print(f"20,000 samples from a pyarrow Table: JSON lines {by_json * 1000:.0f} ms, Arrow {by_arrow * 1000:.0f} ms")
    assert by_arrow < by_json
