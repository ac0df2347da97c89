"""Shared fixtures: where the shared data is, and the `arbiter` binary for CLI comparisons.

Without `$ARBITER_DATA/annotation` (default `../shared/data` beside the repository) the dataset
tests skip with the reason (shown by `pytest -rs`); under `ARBITER_REQUIRE_DATA=1` they fail.
The CLI is `$ARBITER_BIN`, else `$CARGO_TARGET_DIR/debug/arbiter` or `target/debug/arbiter`;
without it the CLI tests skip, and fail under `ARBITER_REQUIRE_CLI=1`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import datasets  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def _need(what: str, reason: str, require_var: str):
    if os.environ.get(require_var) == "1":
        pytest.fail(f"{what}: {reason} ({require_var}=1)")
    pytest.skip(f"{what}: {reason}")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("ARBITER_DATA", REPO.parent / "shared" / "data")) / "annotation"
    if not root.is_dir():
        _need("shared data", f"{root} does not exist; set ARBITER_DATA", "ARBITER_REQUIRE_DATA")
    return root


_cache: dict[str, object] = {}


@pytest.fixture(scope="session")
def load(data_root):
    """load(name) -> DataFrame, read once per session."""

    def get(name: str):
        if name not in _cache:
            _cache[name] = datasets.load(data_root, name)
        return _cache[name]

    return get


@pytest.fixture(scope="session")
def arbiter_bin() -> Path:
    candidates = []
    if os.environ.get("ARBITER_BIN"):
        candidates.append(Path(os.environ["ARBITER_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "arbiter")
    candidates.append(REPO / "target" / "debug" / "arbiter")
    for c in candidates:
        if c.is_file():
            return c
    _need("arbiter CLI", f"not found at {[str(c) for c in candidates]}; build it with cargo build -p arbiter", "ARBITER_REQUIRE_CLI")
