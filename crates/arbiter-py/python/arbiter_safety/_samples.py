"""Samples in, tables out, for the grader and the reward model.

Samples are rows in the CLI's sample JSONL shape (``id``, ``prompt``, ``completion``,
``response_type``, ``category``, ``propositions``, ``metadata``; any other column is kept in
``metadata`` as the CLI keeps unknown fields). They may be a list of dicts, a pandas or polars
DataFrame or a pyarrow Table. Each row is written as one JSON line and parsed in Rust by the
same code that reads the CLI's files, so validation and error messages are the CLI's, with line
N meaning the N-th sample.

Missing cells (``None``, NaN, a null in an Arrow struct) are left out of the row: a table cannot
tell an absent key from a null one, and the CLI treats an absent optional field as unset.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

from ._native import ArbiterError

__all__ = ["samples_jsonl", "input_kind", "make_table"]


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
