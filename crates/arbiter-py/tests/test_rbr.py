"""RBR policies: `Policy.load` and `classify` give `arbiter rbr classify`'s classes on the
repository's example conversations (human labels), and errors carry the Rust message."""

from __future__ import annotations

import json
import subprocess

import pytest

import arbiter_safety as arb
from conftest import REPO

POLICY = REPO / "policies" / "default.toml"
EXAMPLES = REPO / "examples" / "conversations.jsonl"


def samples():
    return [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_policy_loads_and_describes_itself():
    policy = arb.Policy.load(POLICY)
    assert policy.name == arb.Policy.default().name
    assert len(policy.classes) >= 2 and len(policy.propositions) >= 10
    assert "comply" in policy.response_types


def test_classify_probabilities_sum_to_one_and_labels_are_probabilities_0_or_1():
    policy = arb.Policy.default()
    s = samples()[0]
    cls, probs = policy.classify(s["response_type"], s["propositions"])
    assert probs[cls] == 1.0 and abs(sum(probs.values()) - 1) < 1e-12
    soft = {k: (0.7 if v else 0.2) for k, v in s["propositions"].items()}
    _, probs = policy.classify(s["response_type"], soft)
    assert abs(sum(probs.values()) - 1) < 1e-12 and max(probs.values()) < 1


def test_errors_name_the_file_line_or_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(arb.ArbiterError, match=r"bad\.toml.*line 1"):
        arb.Policy.load(bad)
    with pytest.raises(arb.ArbiterError, match="unknown proposition"):
        arb.Policy.default().classify("comply", {"no_such_thing": True})
    with pytest.raises(arb.ArbiterError, match="is missing"):
        arb.Policy.default().classify("comply", {})
    with pytest.raises(arb.ArbiterError, match="unknown response type"):
        arb.Policy.default().classify("shrug", {})


def test_classify_equals_the_cli(arbiter_bin):
    done = subprocess.run(
        [str(arbiter_bin), "rbr", "classify", "--policy", str(POLICY), str(EXAMPLES)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli = {row["id"]: row for row in map(json.loads, done.stdout.splitlines())}
    policy = arb.Policy.load(POLICY)
    for s in samples():
        cls, probs = policy.classify(s["response_type"], s["propositions"])
        assert cli[s["id"]]["class"] == cls, s["id"]
        assert cli[s["id"]]["class_probs"] == pytest.approx(probs, abs=1e-12)
