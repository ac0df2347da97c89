"""DataFrames in, ratings tables out: the one place that knows pandas, polars and pyarrow.

Columns reach Rust as Python lists (``Series.tolist()``, ``polars.Series.to_list()``,
``pyarrow.ChunkedArray.to_pylist()``): no CSV round trip, but one Python object per cell. Reading
Arrow buffers directly through the Arrow PyCapsule interface is the planned next step.
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _native
from ._native import ArbiterError, Table

__all__ = ["ratings_table", "column_values"]


def _kind(data: Any) -> str:
    module = type(data).__module__.split(".")[0]
    if module in ("pandas", "polars", "pyarrow"):
        return module
    if isinstance(data, dict):
        return "dict"
    raise ArbiterError(
        f"expected a pandas or polars DataFrame, a pyarrow Table or a dict of columns, "
        f"got {type(data).__name__}"
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
    """A ratings table from a pandas/polars DataFrame, a pyarrow Table or a dict of lists.

    An already built :class:`Table` is returned as it is.
    """
    if isinstance(data, Table):
        return data
    names = [item, rater, label, *groups]
    cols = [column_values(data, n) for n in names]
    return _native.table(
        cols[0],
        cols[1],
        cols[2],
        names,
        groups=cols[3:],
        duplicates=duplicates,
        domain=list(domain) if domain is not None else None,
        ordered=ordered,
    )
