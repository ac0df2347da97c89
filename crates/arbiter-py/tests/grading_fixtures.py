"""Fixtures of the grader and reward tests: the embedded model, samples, fitted weights.

The model is `$ARBITER_MODEL_DIR`, else `$ARBITER_CACHE/all-minilm-l6-v2`, else
`~/.cache/arbiter/all-minilm-l6-v2` (where `scripts/setup-models.sh` puts it): without it the
tests that grade skip with the reason, and fail under `ARBITER_REQUIRE_MODEL=1`, as the Rust
tests do.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, _need

EXAMPLES = REPO / "examples" / "conversations.jsonl"


def model_dir() -> Path:
    if os.environ.get("ARBITER_MODEL_DIR"):
        return Path(os.environ["ARBITER_MODEL_DIR"])
    cache = Path(os.environ.get("ARBITER_CACHE", Path.home() / ".cache" / "arbiter"))
    return cache / "all-minilm-l6-v2"


@pytest.fixture(scope="session")
def model() -> Path:
    d = model_dir()
    if not (d / "model.safetensors").is_file():
        _need("embedded model", f"{d} has no model.safetensors; run scripts/setup-models.sh", "ARBITER_REQUIRE_MODEL")
    return d


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli(binary: Path, *args) -> str:
    done = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def weights(arbiter_bin, tmp_path_factory) -> Path:
    """Weights fitted by `arbiter rbr fit` on the example conversations' human labels."""
    out = tmp_path_factory.mktemp("weights") / "weights.json"
    cli(arbiter_bin, "rbr", "fit", EXAMPLES, "--out", out, "--steps", "300")
    return out


def with_base_rewards(rows: list[dict]) -> list[dict]:
    """Every sample gets a base reward-model score (negative, zero, fractional), as
    `arbiter rbr score --base-reward base_reward` needs on every sample."""
    return [{**r, "metadata": {**r.get("metadata", {}), "base_reward": round(0.37 * (i % 20) - 2.59, 2)}} for i, r in enumerate(rows)]


@pytest.fixture(scope="session")
def gold_test(data_root) -> Path:
    """The RBR gold test split (`$ARBITER_DATA/rbr_gold/test.jsonl`)."""
    path = data_root.parent / "rbr_gold" / "test.jsonl"
    if not path.is_file():
        _need("rbr gold data", f"{path} does not exist", "ARBITER_REQUIRE_DATA")
    return path
