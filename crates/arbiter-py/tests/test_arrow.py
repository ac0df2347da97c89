"""Arrow inputs: every way of handing over the same rows builds the same table.

The list path (a dict of Python lists, one object per cell) is the reference; pandas, pyarrow
(utf8, large_utf8, string_view, dictionary columns, chunked, RecordBatch), polars (string_view,
categorical) and bare PyCapsule objects must give the same items, raters, domain, duplicate
count and statistics, on every shared dataset and in shuffled row order. Nulls are missing
values and unsupported types are errors, both naming the column (and the row).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb
from arbiter_safety._frames import items_index
from datasets import NAMES, is_number

LEVELS = ["nominal", "ordinal", "interval", "ratio"]


class StreamOnly:
    """Exposes only ``__arrow_c_stream__``: any producer of the interface, not a known library."""

    def __init__(self, table: pa.Table) -> None:
        self._t = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._t.__arrow_c_stream__(requested_schema)


class ArrayOnly:
    """Exposes only ``__arrow_c_array__`` (one struct array)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._b = batch

    def __arrow_c_array__(self, requested_schema=None):
        return self._b.__arrow_c_array__(requested_schema)


def lists(df: pd.DataFrame, columns=("item", "rater", "label")) -> dict:
    return {c: df[c].tolist() for c in columns}


def describe(table: arb.Table):
    return (
        table.n_items,
        table.n_raters,
        table.n_ratings,
        table.n_duplicates,
        table.items(),
        table.raters(),
        table.domain(),
    )


def arrow_variants(df: pd.DataFrame) -> dict:
    """The same rows as pyarrow, polars and capsule objects of every supported layout."""
    t = pa.Table.from_pandas(df[["item", "rater", "label"]], preserve_index=False)
    dict_t = pa.table({c: t.column(c).dictionary_encode() for c in t.column_names})
    half = len(df) // 2
    return {
        "pandas": df,
        "pyarrow utf8": t,
        "pyarrow large_utf8": t.cast(pa.schema([(c, pa.large_string()) for c in t.column_names])),
        "pyarrow string_view": t.cast(pa.schema([(c, pa.string_view()) for c in t.column_names])),
        "pyarrow dictionary": dict_t,
        # Two chunks, each with its own dictionary: ids follow first appearance across both.
        "pyarrow dictionary, chunked": pa.concat_tables(
            [
                pa.table({c: t.column(c).slice(0, half).dictionary_encode() for c in t.column_names}),
                pa.table({c: t.column(c).slice(half).dictionary_encode() for c in t.column_names}),
            ]
        ),
        "pyarrow RecordBatch": t.combine_chunks().to_batches()[0] if len(df) else t,
        "stream capsule only": StreamOnly(t),
        "array capsule only": ArrayOnly(t.combine_chunks().to_batches()[0]),
        "polars": pl.from_pandas(df[["item", "rater", "label"]]),
        "polars categorical": pl.from_pandas(df[["item", "rater", "label"]]).with_columns(
            pl.col("item").cast(pl.Categorical), pl.col("rater").cast(pl.Categorical)
        ),
        "pandas categorical": df.astype({"item": "category", "label": "category"}),
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ["as read", "shuffled"])
def test_every_arrow_layout_equals_the_list_path_on_shared_data(load, name, order):
    df = load(name)[["item", "rater", "label"]]
    if order == "shuffled":
        df = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    want_table = arb.ratings_table(lists(df))
    want = describe(want_table)
    numeric = all(is_number(v) for v in set(df["label"]))
    levels = LEVELS if numeric else LEVELS[:2]
    want_alpha = {lv: arb.alpha_result(want_table, level=lv) for lv in levels}
    want_ds = arb.DawidSkene(n_iter=20).fit(want_table_frame(df))
    for layout, data in arrow_variants(df).items():
        table = arb.ratings_table(data)
        assert describe(table) == want, f"{name} {order}: {layout}"
        pd.testing.assert_index_equal(items_index(table, "task"), pd.Index(want[4], name="task"), exact=True)
        for lv in levels:
            assert arb.alpha_result(table, level=lv) == want_alpha[lv], f"{name} {order} {layout} {lv}"
    for layout in ("pyarrow dictionary", "polars"):
        data = arrow_variants(df)[layout]
        renamed = data.rename_columns(["task", "worker", "label"]) if layout != "polars" else data.rename(
            {"item": "task", "rater": "worker"}
        )
        got = arb.DawidSkene(n_iter=20).fit(renamed)
        pd.testing.assert_series_equal(got.labels_, want_ds.labels_)
        pd.testing.assert_frame_equal(got.probas_, want_ds.probas_)
        pd.testing.assert_series_equal(got.skills_, want_ds.skills_)


def want_table_frame(df: pd.DataFrame) -> dict:
    return {"task": df["item"].tolist(), "worker": df["rater"].tolist(), "label": df["label"].tolist()}


@pytest.mark.parametrize("policy", ["keep_all", "first", "last", "error"])
def test_duplicate_policies_agree(policy):
    rows = [("a", "x", "1"), ("b", "x", "2"), ("a", "x", "2"), ("a", "y", "1"), ("b", "y", "2"), ("b", "x", "1")]
    df = pd.DataFrame(rows, columns=["item", "rater", "label"])
    for data in (df, pa.Table.from_pandas(df).combine_chunks(), pl.from_pandas(df)):
        if policy == "error":
            with pytest.raises(arb.ArbiterError, match='rater "x" rated item "a" more than once'):
                arb.ratings_table(data, duplicates=policy)
            continue
        got, want = arb.ratings_table(data, duplicates=policy), arb.ratings_table(lists(df), duplicates=policy)
        assert describe(got) == describe(want)
        assert arb.alpha(got) == arb.alpha(want)


def test_small_integer_ranges_number_by_first_appearance():
    # Integer columns spanning a short range are coded through their offsets from the least
    # value: negative values, values at the top of uint64 and several chunks keep the rows'
    # order of first appearance, as the list path numbers them.
    cases = [
        (pa.chunked_array([pa.array([5, -3, 5, 7, -3, -128], pa.int8())]), [5, -3, 7, -128]),
        (pa.chunked_array([pa.array([2**64 - 1, 2**64 - 3, 2**64 - 1, 2**64 - 2], pa.uint64())]), [2**64 - 1, 2**64 - 3, 2**64 - 2]),
        (pa.chunked_array([pa.array([3, 1], pa.int64()), pa.array([2, 3, 1, 0], pa.int64())]), [3, 1, 2, 0]),
    ]
    for items, want in cases:
        n = len(items)
        t = pa.table({"item": items, "rater": pa.array([f"r{i}" for i in range(n)]), "label": pa.array([i % 2 for i in range(n)])})
        assert arb.ratings_table(t).items() == want
        assert arb.ratings_table(lists(t.to_pandas())).items() == want


def test_typed_columns_give_back_the_callers_values():
    items = [10, 10, 10, 20, 20, 30, 30, 30]
    raters = [1, 2, 3, 1, 2, 1, 2, 3]
    for pa_type in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()):
        labels = [0, 1, 1, 2, 2, 0, 0, 1]
        t = pa.table({"item": pa.array(items, pa_type), "rater": pa.array(raters, pa.int64()), "label": pa.array(labels, pa_type)})
        table = arb.ratings_table(t)
        assert table.items() == [10, 20, 30] and table.raters() == [1, 2, 3] and table.domain() == [0, 1, 2], pa_type
        assert all(type(v) is int for v in table.items() + table.domain())
        want = arb.ratings_table(lists(pd.DataFrame({"item": items, "rater": raters, "label": labels})))
        assert arb.alpha(table, level="interval") == arb.alpha(want, level="interval")
        labels_ = arb.MajorityVote().fit_predict(t.rename_columns(["task", "worker", "label"]))
        assert list(labels_.index) == [10, 20, 30] and all(type(v) is int for v in labels_)
    big = pa.table({"item": pa.array([2**64 - 1, 2**64 - 1], pa.uint64()), "rater": ["a", "b"], "label": [1, 2]})
    assert arb.ratings_table(big).items() == [2**64 - 1]
    floats = [0.5, 1.5, 1.5, 2.5, 0.5, 0.5, 1.5, 2.5]
    for pa_type in (pa.float32(), pa.float64()):
        t = pa.table({"item": items, "rater": raters, "label": pa.array(floats, pa_type)})
        table = arb.ratings_table(t)
        assert table.domain() == [0.5, 1.5, 2.5] and all(type(v) is float for v in table.domain())
        want = arb.ratings_table({"item": items, "rater": raters, "label": pa.array(floats, pa_type).to_pylist()})
        assert arb.alpha(table, level="ratio") == arb.alpha(want, level="ratio")
    bools = [True, False, True, True, True, False, False, True]
    table = arb.ratings_table(pa.table({"item": items, "rater": raters, "label": bools}))
    assert table.domain() == [False, True] and all(type(v) is bool for v in table.domain())
    assert arb.alpha(table) == arb.alpha({"item": items, "rater": raters, "label": bools})


def test_float_texts_are_pythons():
    """A float cell's text is Python's ``str()`` of it (the list path's text): group names show it."""
    values = [1e-05, 0.1, 1e16, 1.5, -0.0, 0.0, 123456789.123, 1e-4, 2.5e-300, 1.7976931348623157e308, 0.1 + 0.2]
    values += [float(np.float32(0.1)), 1e15, 9007199254740992.0, -3e-7, math.pi]
    n = len(values)
    rows = {"item": [i // 2 for i in range(2 * n)], "rater": [i % 2 for i in range(2 * n)], "label": [1] * (2 * n)}
    rows["label"][0] = 2
    rows["g"] = [values[i // 2] for i in range(2 * n)]
    from_lists = arb.group_alpha(rows, "g")
    for g_type in (pa.float64(),):
        t = pa.table({k: v for k, v in rows.items()}).cast(
            pa.schema([("item", pa.int64()), ("rater", pa.int64()), ("label", pa.int64()), ("g", g_type)])
        )
        from_arrow = arb.group_alpha(t, "g")
        assert list(from_arrow.index) == list(from_lists.index) == ["(pooled)"] + [str(v) for v in values]


def test_nulls_are_missing_values_naming_column_and_row():
    df = pd.DataFrame({"item": ["a", "a", "b", "b"], "rater": ["x", "y", "x", "y"], "label": [1, 2, 1, 1]})
    t = pa.Table.from_pandas(df, preserve_index=False)
    for col, row in (("item", 2), ("rater", 1), ("label", 3)):
        values = t.column(col).to_pylist()
        values[row] = None
        for layout, bad in (
            ("plain", t.set_column(t.column_names.index(col), col, pa.array(values, t.schema.field(col).type))),
            ("dictionary", t.set_column(t.column_names.index(col), col, pa.array(values, t.schema.field(col).type).dictionary_encode())),
            ("polars", pl.from_arrow(t.set_column(t.column_names.index(col), col, pa.array(values, t.schema.field(col).type)))),
        ):
            with pytest.raises(arb.ArbiterError, match=rf"column `{col}`, row {row}: missing value"):
                arb.ratings_table(bad)
    # NaN in a float column is missing too (pandas' missing value).
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row 1: missing value"):
        arb.ratings_table(pa.table({"item": ["a", "a"], "rater": ["x", "y"], "label": [1.0, float("nan")]}))
    # A null in a dictionary's values, not its keys.
    keys = pa.array([0, 1, 0, 1], pa.int8())
    labels = pa.DictionaryArray.from_arrays(keys, pa.array(["p", None]))
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row 1: missing value"):
        arb.ratings_table(pa.table({"item": ["a", "a", "b", "b"], "rater": ["x", "y", "x", "y"], "label": labels}))
    # Group columns may miss values: those rows count in the pooled row only.
    g = pa.array(["m", None, "m", "f"]).dictionary_encode()
    frame = arb.group_alpha(t.append_column("g", g), "g")
    assert frame.attrs["n_missing"] == 1


def test_wrong_types_and_columns_are_errors_naming_the_column():
    t = pa.table({"item": ["a", "b"], "rater": ["x", "y"], "label": [[1], [2]]})
    with pytest.raises(arb.ArbiterError, match=r"column `label` has Arrow type List.*expected text"):
        arb.ratings_table(t)
    t = pa.table({"item": pa.array([b"a", b"b"], pa.binary()), "rater": ["x", "y"], "label": [1, 2]})
    with pytest.raises(arb.ArbiterError, match=r"column `item` has Arrow type Binary"):
        arb.ratings_table(t)
    with pytest.raises(arb.ArbiterError, match="no column `coder`"):
        arb.ratings_table(StreamOnly(pa.table({"item": ["a"], "rater": ["x"], "label": [1]})), rater="coder")
    with pytest.raises(arb.ArbiterError, match="expected a table"):
        arb.ratings_table(ArrayOnly(pa.array([1, 2])))
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row 2: label \"9\" is not in the label domain"):
        arb.ratings_table(pa.table({"item": ["a", "a", "b"], "rater": ["x", "y", "x"], "label": [1, 2, 9]}), domain=[1, 2])


def test_text_items_go_to_pandas_through_arrow_as_the_list_path_gives_them():
    """Text items leave as an Arrow large_string column (fresh capsules on every call) and make
    the same Index as the list of ``items()``; items that are not all ``str`` give no column."""
    items = ["a", "", "ünï", "a", "long " * 40, "", "😀", "b"]
    df = pd.DataFrame({"item": items, "rater": [f"r{i % 3}" for i in range(len(items))], "label": [i % 2 for i in range(len(items))]})
    want_items = ["a", "", "ünï", "long " * 40, "😀", "b"]
    for layout, data in arrow_variants(df).items():
        table = arb.ratings_table(data)
        column = table.items_arrow()
        assert column is not None and len(column) == len(want_items), layout
        for _ in range(2):
            got = pa.array(column)
            assert got.type == pa.large_string() and got.to_pylist() == want_items, layout
        index = items_index(table, "task")
        pd.testing.assert_index_equal(index, pd.Index(want_items, name="task"), exact=True)
        assert all(type(v) is str for v in index), layout
    # A capsule dropped unread releases its own copy (no leak, no double release).
    schema, array = arb.ratings_table(df).items_arrow().__arrow_c_array__()
    del schema, array
    empty = arb.ratings_table({"item": [], "rater": [], "label": []})
    pd.testing.assert_index_equal(items_index(empty, "task"), pd.Index([], name="task"), exact=True)
    for data in (
        pa.table({"item": pa.array([10, 20, 10], pa.int64()), "rater": ["x", "y", "y"], "label": [1, 0, 1]}),
        pa.table({"item": pa.array([0.5, 1.5, 0.5]), "rater": ["x", "y", "y"], "label": [1, 0, 1]}),
        {"item": ["a", 1, "a"], "rater": ["x", "y", "y"], "label": [1, 0, 1]},
    ):
        table = arb.ratings_table(data)
        assert table.items_arrow() is None
        pd.testing.assert_index_equal(items_index(table, "task"), pd.Index(table.items(), name="task"), exact=True)


def test_mixed_object_columns_fall_back_to_lists():
    """A pandas object column Arrow cannot type (ints and strs) still works, value by value."""
    df = pd.DataFrame({"item": ["a", "a", "b", "b"], "rater": [1, "y", 1, "y"], "label": [1, 2, 1, 1]})
    table = arb.ratings_table(df)
    assert table.raters() == [1, "y"]
    assert arb.alpha(table) == arb.alpha(lists(df))


def test_explicit_domain_keeps_the_callers_values():
    t = pa.table({"item": ["a", "a", "b", "b"], "rater": ["x", "y", "x", "y"], "label": pa.array([1, 2, 1, 1], pa.int32())})
    table = arb.ratings_table(t, domain=[3, 2, 1])
    assert table.domain() == [3, 2, 1]
    assert arb.alpha(table, level="ordinal") == arb.alpha(lists(t.to_pandas()), level="ordinal", domain=[3, 2, 1])


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
def test_large_text_tables_filled_on_two_threads_equal_the_other_paths(order):
    """From 2^18 rows a text table is filled in two halves on two threads and joined: the same
    table as the list path (one builder) and the dictionary path (codes), duplicates and errors
    in the second half included."""
    rng = np.random.default_rng(5)
    n_items, per = 70_000, 4
    items = np.repeat(np.arange(n_items), per)
    raters = rng.integers(0, 300, size=len(items))  # some (item, rater) pairs repeat
    labels = rng.integers(0, 4, size=len(items))
    if order == "shuffled":
        p = rng.permutation(len(items))
        items, raters, labels = items[p], raters[p], labels[p]
    df = pd.DataFrame({"item": [f"i{i}" for i in items], "rater": [f"r{r}" for r in raters], "label": labels})
    assert len(df) >= 2**18
    t = pa.Table.from_pandas(df, preserve_index=False)
    dict_t = pa.table({"item": t.column("item").dictionary_encode(), "rater": t.column("rater").dictionary_encode(), "label": t.column("label")})
    for policy in ("keep_all", "first", "last"):
        want = arb.ratings_table(lists(df), duplicates=policy)
        assert want.n_duplicates > 0
        for data in (t, dict_t):
            got = arb.ratings_table(data, duplicates=policy)
            assert describe(got) == describe(want), (order, policy)
            assert arb.alpha_result(got, level="ordinal") == arb.alpha_result(want, level="ordinal")
    bad = df["rater"].tolist()
    bad[len(df) - 10] = None
    with pytest.raises(arb.ArbiterError, match=rf"column `rater`, row {len(df) - 10}: missing value"):
        arb.ratings_table(t.set_column(1, "rater", pa.array(bad)))
