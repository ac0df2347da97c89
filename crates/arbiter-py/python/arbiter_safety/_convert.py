"""Results as Arrow or polars tables.

The statistics return pandas objects, in crowd-kit's shape where there is one (so that
replacing ``crowdkit.aggregation`` stays a one-line change), whatever the input's kind. A caller
working in Arrow or polars converts any of them with one call, :func:`to_arrow` or
:func:`to_polars`: the index becomes the leading column(s) (``task``, ``worker``, ``group``,
``(item, group)``, ...), a Series its named column, and column names their text (a
``probas_`` column per label is named by the label's ``str()``). Values are kept as they are
(numbers stay numbers, NaN stays NaN in float columns); a column that mixes Python types, which
Arrow cannot hold in one column, is given as text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ._native import ArbiterError

__all__ = ["to_arrow", "to_polars"]


def _flat(result: Any) -> pd.DataFrame:
    """``result`` as a DataFrame with its index as columns and text column names."""
    if isinstance(result, pd.Series):
        frame = result.to_frame(name=result.name if result.name is not None else "value")
    elif isinstance(result, pd.DataFrame):
        frame = result
    else:
        raise ArbiterError(f"expected a pandas Series or DataFrame from arbiter_safety, got {type(result).__name__}")
    index = frame.index
    # A bare 0..n-1 index (most_dividing) carries nothing; a named or other index is data.
    plain = isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0 and index.step == 1
    if not plain:
        names = [n if n is not None else ("index" if index.nlevels == 1 else f"level_{i}") for i, n in enumerate(index.names)]
        frame = frame.rename_axis(names).reset_index()
    else:
        frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def to_arrow(result: Any) -> Any:
    """A pandas result of this package (``labels_``, ``probas_``, ``skills_``, a
    :class:`Disagreement` field, ``group_alpha``'s frame) as a pyarrow Table, the index as
    leading column(s)."""
    import pyarrow as pa

    frame = _flat(result)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mixed = {
            c: frame[c].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v)).astype(object)
            for c in frame.columns
            if frame[c].dtype == object
        }
        return pa.Table.from_pandas(frame.assign(**mixed), preserve_index=False)


def to_polars(result: Any) -> Any:
    """:func:`to_arrow` as a polars DataFrame."""
    import polars as pl

    return pl.from_arrow(to_arrow(result))
