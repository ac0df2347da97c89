"""α straight from Arrow columns: with every row counted (``duplicates="keep_all"``, the
default), ``alpha``/``alpha_result`` on Arrow data count labels per item without building a
table (``_native.alpha_arrow``). Whatever the layout, order, duplicates or threading, the
result must be the table path's, bit for bit (compared with ``==``), and data that path leaves
to the table path (missing values, labels outside a domain, more than 64 labels) must fail or
succeed exactly as the table path does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arbiter_safety as arb
from arbiter_safety import _native
from datasets import NAMES, is_number
from test_arrow import LEVELS, arrow_variants, lists


def table_path(data, level="nominal", domain=None) -> arb.AlphaResult:
    """The general path: a Table built (from Python lists, the reference layout), then α."""
    return arb.alpha_result(arb.ratings_table(data, domain=domain), level=level)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ["as read", "shuffled"])
def test_counts_equal_the_table_path_on_shared_data(load, name, order):
    df = load(name)[["item", "rater", "label"]]
    if order == "shuffled":
        df = df.sample(frac=1.0, random_state=11).reset_index(drop=True)
    numeric = all(is_number(v) for v in set(df["label"]))
    levels = LEVELS if numeric else LEVELS[:2]
    want = {lv: table_path(lists(df), lv) for lv in levels}
    for layout, data in arrow_variants(df).items():
        for lv in levels:
            assert arb.alpha_result(data, level=lv) == want[lv], f"{name} {order} {layout} {lv}"


def synthetic(n_items: int, per: int, n_labels: int, order: str, seed: int) -> pd.DataFrame:
    """Items of `per` ratings, with repeated (item, rater) pairs and items of one rating."""
    rng = np.random.default_rng(seed)
    items = np.repeat(np.arange(n_items), per)
    items = np.concatenate([items, np.arange(n_items, n_items + 50)])  # units of one value
    raters = rng.integers(0, 40, size=len(items))  # some (item, rater) pairs repeat
    labels = rng.integers(0, n_labels, size=len(items)) * 2 - 3
    if order == "shuffled":
        p = rng.permutation(len(items))
        items, raters, labels = items[p], raters[p], labels[p]
    return pd.DataFrame({"item": [f"i{i}" for i in items], "rater": [f"r{r}" for r in raters], "label": labels})


def layouts(df: pd.DataFrame) -> dict:
    t = pa.Table.from_pandas(df, preserve_index=False)
    third = len(df) // 3
    return {
        "utf8": t,
        "large_utf8": t.cast(pa.schema([("item", pa.large_string()), ("rater", pa.large_string()), ("label", pa.int64())])),
        "string_view": t.cast(pa.schema([("item", pa.string_view()), ("rater", pa.string_view()), ("label", pa.int64())])),
        "utf8 in three chunks": pa.concat_tables([t.slice(0, third), t.slice(third, third), t.slice(2 * third)]),
        "dictionary": pa.table({"item": t.column("item").dictionary_encode(), "rater": t.column("rater").dictionary_encode(), "label": t.column("label")}),
        "dictionary with unused and repeated entries": pa.table(
            {
                "item": repeated_dictionary(t.column("item").combine_chunks()),
                "rater": t.column("rater"),
                "label": t.column("label").cast(pa.int8()),
            }
        ),
        "integer items": pa.table({"item": pa.array([int(s[1:]) * 7 for s in df["item"]], pa.int64()), "rater": t.column("rater"), "label": t.column("label")}),
        "float labels": t.set_column(2, "label", t.column("label").cast(pa.float64())),
        "text labels": t.set_column(2, "label", pa.array([f"l{v}" for v in df["label"]])),
        "polars": pl.from_pandas(df),
        "pandas": df,
    }


def repeated_dictionary(items: pa.Array) -> pa.DictionaryArray:
    """A dictionary whose values repeat texts and include entries no row uses: equal texts are
    one item wherever their entries are."""
    enc = items.dictionary_encode()
    values = enc.dictionary.to_pylist()
    doubled = values + values + ["never used"]
    keys = np.asarray(enc.indices)
    keys = np.where(np.arange(len(keys)) % 2 == 0, keys, keys + len(values)).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(keys), pa.array(doubled))


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
@pytest.mark.parametrize("size", ["small", "two threads"])
def test_counts_equal_the_table_path_in_every_layout(order, size):
    # "two threads": over 2^16 rows (counted on two threads) and 2^15 items (summed on two).
    n_items, per = (40, 3) if size == "small" else (40_000, 3)
    df = synthetic(n_items, per, 4, order, seed=3)
    want = {lv: table_path(lists(df), lv) for lv in LEVELS}
    text_want = {lv: table_path(lists(df.assign(label=[f"l{v}" for v in df["label"]])), lv) for lv in LEVELS[:2]}
    for layout, data in layouts(df).items():
        for lv in LEVELS if layout != "text labels" else LEVELS[:2]:
            expect = text_want[lv] if layout == "text labels" else want[lv]
            assert arb.alpha_result(data, level=lv) == expect, f"{order} {size} {layout} {lv}"
            assert arb.alpha(data, level=lv) == expect.alpha


def test_text_items_in_runs_then_scattered():
    """Text items are counted here when the first rows come in runs (else the table is built):
    rows that scatter after such a start must count the same."""
    grouped = synthetic(30_000, 3, 4, "grouped", seed=6)
    head, tail = grouped.iloc[:6000], grouped.iloc[6000:].sample(frac=1.0, random_state=1)
    df = pd.concat([head, tail]).reset_index(drop=True)
    t = pa.Table.from_pandas(df, preserve_index=False)
    for lv in LEVELS:
        assert arb.alpha_result(t, level=lv) == table_path(lists(df), lv)


def test_explicit_domains_and_many_labels_agree():
    df = synthetic(300, 4, 5, "shuffled", seed=4)
    t = pa.Table.from_pandas(df, preserve_index=False)
    domain = [9, 7, 5, 3, 1, -1, -3, -5]  # a superset, in reverse order
    for lv in LEVELS:
        assert arb.alpha_result(t, level=lv, domain=domain) == table_path(lists(df), lv, domain)
    # A label outside the domain: the table path's error, naming the first row with it.
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row \d+: label \"-3\" is not in the label domain"):
        arb.alpha(t, domain=[-1, 1, 3, 5])
    # More than 64 labels: no exact sums by unit size, so the table's α (float sums).
    wide = pd.DataFrame({"item": [f"i{i // 3}" for i in range(600)], "rater": [f"r{i % 3}" for i in range(600)], "label": [(i * 7) % 90 for i in range(600)]})
    for lv in LEVELS:
        assert arb.alpha_result(pa.Table.from_pandas(wide), level=lv) == table_path(lists(wide), lv)


def test_missing_values_and_bad_columns_fail_as_the_table_path_does():
    t = pa.table({"item": ["a", "a", "b", "b"], "rater": ["x", "y", "x", "y"], "label": [1, 2, 1, 1]})
    for col, row in (("item", 2), ("rater", 1), ("label", 3)):
        values = t.column(col).to_pylist()
        values[row] = None
        plain = pa.array(values, t.schema.field(col).type)
        for bad in (t.set_column(t.column_names.index(col), col, plain), t.set_column(t.column_names.index(col), col, plain.dictionary_encode())):
            with pytest.raises(arb.ArbiterError, match=rf"column `{col}`, row {row}: missing value"):
                arb.alpha(bad)
    with pytest.raises(arb.ArbiterError, match=r"column `label`, row 1: missing value"):
        arb.alpha(pa.table({"item": ["a", "a"], "rater": ["x", "y"], "label": [1.0, float("nan")]}))
    with pytest.raises(arb.ArbiterError, match=r"column `rater`, row 1: missing value"):
        arb.alpha(pa.table({"item": ["a", "a"], "rater": [1.0, float("nan")], "label": [1, 2]}))
    with pytest.raises(arb.ArbiterError, match=r"column `rater` has Arrow type List"):
        arb.alpha(pa.table({"item": ["a", "a"], "rater": [[1], [2]], "label": [1, 2]}))
    with pytest.raises(arb.ArbiterError, match="no column `coder`"):
        arb.alpha(t, rater="coder")
    with pytest.raises(arb.ArbiterError, match="non-numeric|not a number|numeric"):
        arb.alpha(pa.table({"item": ["a", "a"], "rater": ["x", "y"], "label": ["p", "q"]}), level="interval")
    # No rows: undefined, as for an empty table.
    empty = t.slice(0, 0)
    assert arb.alpha_result(empty) == table_path(lists(empty.to_pandas()))
    with pytest.raises(arb.UndefinedError):
        arb.alpha(empty)


def test_the_counting_path_is_what_alpha_calls():
    """`alpha` on Arrow data with keep_all goes to `_native.alpha_arrow` (whose dict the
    result is), and the other duplicate policies build a table."""
    df = synthetic(50, 3, 3, "shuffled", seed=5)
    t = pa.Table.from_pandas(df, preserve_index=False)
    direct = _native.alpha_arrow(t, ["item", "rater", "label"], "ordinal")
    assert arb.alpha_result(t, level="ordinal") == arb.AlphaResult(**direct)
    for policy in ("first", "last"):
        got = arb.alpha_result(t, duplicates=policy)
        assert got == table_path_policy(df, policy)
        assert got != arb.alpha_result(t)  # the repeats were dropped


def table_path_policy(df: pd.DataFrame, policy: str) -> arb.AlphaResult:
    return arb.alpha_result(arb.ratings_table(lists(df), duplicates=policy))
