"""DataFrames in, ratings tables out: the one place that knows pandas, polars and pyarrow.

Arrow data reaches Rust without a Python object per cell: any object with the Arrow PyCapsule
interface (``__arrow_c_stream__`` or ``__arrow_c_array__``: pyarrow Tables and RecordBatches,
polars DataFrames, ...) is read from its buffers. A pandas DataFrame is converted to Arrow
first (``pyarrow.Table.from_pandas`` of the needed columns only; categorical columns become
dictionary arrays, numpy columns are not copied where Arrow can share them); when pyarrow is
not installed, or a column mixes Python types that Arrow cannot hold in one column, its values
go as Python lists instead. Dicts of lists go as lists. Both ways give the same table.
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _native
from ._native import ArbiterError, Table

__all__ = ["ratings_table", "column_values", "arrow_data", "items_index"]


def _kind(data: Any) -> str:
    module = type(data).__module__.split(".")[0]
    if module in ("pandas", "polars", "pyarrow"):
        return module
    if isinstance(data, dict):
        return "dict"
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return "arrow"
    raise ArbiterError(
        f"expected a pandas or polars DataFrame, a pyarrow Table, an object with the Arrow "
        f"PyCapsule interface or a dict of columns, got {type(data).__name__}"
    )


def _columns(data: Any, kind: str) -> list[str]:
    if kind == "pyarrow":
        return list(data.column_names)
    return [str(c) for c in data.columns] if kind != "dict" else list(data)


def column_values(data: Any, name: str) -> list[Any]:
    """One column of a DataFrame, Table or dict as a Python list."""
    kind = _kind(data)
    if name not in _columns(data, kind):
        raise ArbiterError(f"no column `{name}`; the columns are {_columns(data, kind)}")
    if kind == "pandas":
        return data[name].tolist()
    if kind == "polars":
        return data.get_column(name).to_list()
    if kind == "pyarrow":
        return data.column(name).to_pylist()
    return list(data[name])


def _arrow_source(data: Any, kind: str, names: list[str]) -> Any:
    """An object exporting the Arrow PyCapsule interface with the columns ``names``, or None
    when the values must go as Python lists."""
    if kind == "pandas":
        try:
            import pyarrow as pa
        except ImportError:
            return None
        try:
            return pa.Table.from_pandas(data[names], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # An object column Arrow cannot type (say ints and strs mixed): str() each value.
            return None
    if kind == "polars":
        return data.select(names)
    if kind == "pyarrow" and hasattr(data, "select"):
        return data.select(names)
    return data


def ratings_table(
    data: Any,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    groups: Sequence[str] = (),
    duplicates: str = "keep_all",
    domain: Sequence[Any] | None = None,
    ordered: bool = False,
) -> Table:
    """A ratings table from a pandas/polars DataFrame, a pyarrow Table, any object with the
    Arrow PyCapsule interface, or a dict of lists.

    An already built :class:`Table` is returned as it is.
    """
    if isinstance(data, Table):
        return data
    names = [item, rater, label, *groups]
    domain_list = list(domain) if domain is not None else None
    source = arrow_data(data, names)
    if source is not None:
        return _native.table_arrow(source, names, duplicates=duplicates, domain=domain_list, ordered=ordered)
    cols = [column_values(data, n) for n in names]
    return _native.table(
        cols[0],
        cols[1],
        cols[2],
        names,
        groups=cols[3:],
        duplicates=duplicates,
        domain=domain_list,
        ordered=ordered,
    )


def arrow_data(data: Any, names: Sequence[str]) -> Any:
    """``data`` as an object exporting the Arrow PyCapsule interface with (at least) the
    columns ``names``, or None when its values must go as Python lists (a dict of lists, or a
    pandas DataFrame that Arrow cannot type). Raises :class:`ArbiterError` naming a missing
    column."""
    names = list(names)
    kind = _kind(data)
    if kind != "arrow":
        have = _columns(data, kind)
        for n in names:
            if n not in have:
                raise ArbiterError(f"no column `{n}`; the columns are {have}")
    if kind == "dict":
        return None
    return _arrow_source(data, kind, names)


def items_index(table: Table, name: str) -> Any:
    """The table's items in order of first appearance as a pandas Index named ``name``, the
    same Index as ``pd.Index(table.items())``.

    Text items go through Arrow when pyarrow is installed: pyarrow makes their Python strings
    in one native pass, under half the time of one object each through the extension and an
    Index built from that list (hundreds of thousands of items in a million-row table).
    """
    import pandas as pd

    column = table.items_arrow()
    if column is not None:
        try:
            import pyarrow as pa

            return pd.Index(pa.array(column).to_numpy(zero_copy_only=False), name=name)
        except ImportError:
            pass
    return pd.Index(table.items(), name=name)
