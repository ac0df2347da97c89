"""Samples in, tables out, for the grader and the reward model.

Samples are rows in the CLI's sample JSONL shape (``id``, ``prompt``, ``completion``,
``response_type``, ``category``, ``propositions``, ``metadata``; any other column is kept in
``metadata`` as the CLI keeps unknown fields). They may be a list of dicts, a pandas or polars
DataFrame or a pyarrow Table or RecordBatch.

A table goes to Rust as Arrow data (the PyCapsule interface, no Python object per cell) and is
read by the conversion the CLI's Parquet reader uses, in the schema it reads (``prompt`` and
``completion`` as lists of ``{role, content}`` structs, ``completion`` also as a string,
``propositions`` as a struct or map of booleans, ``metadata`` as a struct or as JSON text). A
pandas frame is converted with ``pyarrow.Table.from_pandas`` first; one that Arrow cannot type
(an object column mixing ints and strs, say), a polars frame with ``Object`` columns and a list of
dicts go as one JSON line per row instead. Either way each row is parsed by the code that reads
the CLI's files, so validation and error messages are the CLI's, with line N meaning the N-th
sample, and both ways give the same samples.

Missing cells (``None``, NaN, a null in an Arrow struct) are left out of the row: a table cannot
tell an absent key from a null one, and the CLI treats an absent optional field as unset.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

from ._native import ArbiterError

__all__ = ["samples_input", "samples_jsonl", "input_kind", "make_table"]


def input_kind(samples: Any) -> str:
    """``pandas``, ``polars``, ``pyarrow`` or ``rows`` (a sequence of mappings)."""
    module = type(samples).__module__.split(".")[0]
    if module in ("pandas", "polars", "pyarrow"):
        return module
    if isinstance(samples, (list, tuple)) and all(isinstance(r, Mapping) for r in samples):
        return "rows"
    raise ArbiterError(
        "samples must be a list of dicts, a pandas or polars DataFrame or a pyarrow Table, "
        f"got {type(samples).__name__}"
    )


def _rows(samples: Any, kind: str) -> Iterable[Mapping[str, Any]]:
    if kind == "pandas":
        return samples.to_dict("records")
    if kind == "polars":
        return samples.to_dicts()
    if kind == "pyarrow":
        return samples.to_pylist()
    return samples


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean(value: Any) -> Any:
    """Drop missing values from mappings (recursively); turn numpy values into Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if not _missing(v)}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if tolist is not None and type(value).__module__ == "numpy":
        return _clean(tolist())
    return value


def samples_jsonl(samples: Any) -> tuple[str, str]:
    """The samples as JSONL text (one line per sample, in order) and their kind."""
    kind = input_kind(samples)
    lines = [json.dumps(_clean(row), ensure_ascii=False, allow_nan=False) for row in _rows(samples, kind)]
    return "\n".join(lines), kind


def _arrow(samples: Any, kind: str) -> Any:
    """``samples`` as an object exporting the Arrow PyCapsule interface, or None when they must
    go as JSON lines."""
    if kind == "pyarrow":
        return samples
    if kind == "polars":
        import polars as pl

        return None if any(dtype == pl.Object for dtype in samples.schema.values()) else samples
    if kind == "pandas":
        try:
            import pyarrow as pa
        except ImportError:
            return None
        try:
            return pa.Table.from_pandas(samples, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # A column Arrow cannot type (ints and strs mixed, dicts of unlike values): its
            # rows as dicts, the way they always went.
            return None
    return None


def samples_input(samples: Any) -> tuple[Any, str]:
    """The samples as Rust takes them, and their kind: an Arrow object for a table in a schema
    Arrow can hold, else JSONL text (a ``str``, see :func:`samples_jsonl`)."""
    kind = input_kind(samples)
    arrow = _arrow(samples, kind)
    if arrow is not None:
        return arrow, kind
    return samples_jsonl(samples)


def make_table(columns: Mapping[str, Sequence[Any]], numeric: Sequence[str], output: str) -> Any:
    """A result table of ``output`` kind (``pandas``, ``polars``, ``pyarrow``) from columns;
    ``numeric`` columns are float64 with ``None`` as a missing value (NaN in pandas, null in
    Arrow and polars), never 0."""
    numeric = set(numeric)
    if output == "pandas":
        import pandas as pd

        return pd.DataFrame(
            {
                name: pd.Series(values, dtype="float64" if name in numeric else "object")
                for name, values in columns.items()
            }
        )
    if output == "pyarrow":
        import pyarrow as pa

        def array(name: str, values: Sequence[Any]) -> Any:
            if name in numeric:
                return pa.array(values, type=pa.float64())
            try:
                return pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Ids that mix numbers and names: Arrow needs one type, so their text.
                return pa.array([None if v is None else str(v) for v in values])

        return pa.table({name: array(name, values) for name, values in columns.items()})
    if output == "polars":
        import polars as pl

        return pl.DataFrame(
            [
                pl.Series(name, values, dtype=pl.Float64) if name in numeric else pl.Series(name, values, strict=False)
                for name, values in columns.items()
            ]
        )
    raise ArbiterError(f"output must be pandas, polars or pyarrow, got {output!r}")
