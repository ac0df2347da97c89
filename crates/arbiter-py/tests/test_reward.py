"""`RewardModel`: `arbiter rbr score --features grader`'s lines byte for byte (with and without
base rewards), the reward table, unscored samples, and the TRL reward function in both of TRL's
formats, equal to `examples/trl/arbiter_reward.py` asking `arbiter reward serve`."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess

import pandas as pd
import pytest

import arbiter_safety as arb
from arbiter_safety import trl
from conftest import REPO
from grading_fixtures import EXAMPLES, cli, gold_test, model, read_jsonl, weights, with_base_rewards, write_jsonl  # noqa: F401


@pytest.fixture(scope="module")
def reward(model, weights):
    return arb.RewardModel.load(weights, grader=arb.EmbeddedGrader(model_dir=model))


def cli_scores(arbiter_bin, path, weights, model, base_reward=True) -> str:
    flags = ["--base-reward", "base_reward"] if base_reward else []
    return cli(
        arbiter_bin, "rbr", "score", "--features", "grader", "--model-dir", model,
        "--weights", weights, *flags, path,
    )  # fmt: skip


def test_score_lines_equal_arbiter_rbr_score(reward, arbiter_bin, weights, model, tmp_path):
    rows = with_base_rewards(read_jsonl(EXAMPLES))
    path = write_jsonl(tmp_path / "samples.jsonl", rows)
    want = cli_scores(arbiter_bin, path, weights, model)
    assert "".join(reward.score_lines(rows)) == want
    assert any(json.loads(line)["base_reward"] != 0 for line in want.splitlines())


def test_score_lines_equal_arbiter_rbr_score_on_the_gold_test_split(reward, arbiter_bin, weights, model, gold_test):
    want = cli_scores(arbiter_bin, gold_test, weights, model, base_reward=False)
    assert "".join(reward.score_lines(read_jsonl(gold_test))) == want


def test_the_reward_table(reward, arbiter_bin, weights, model, tmp_path):
    rows = with_base_rewards(read_jsonl(EXAMPLES))
    want = [json.loads(line) for line in cli_scores(arbiter_bin, write_jsonl(tmp_path / "s.jsonl", rows), weights, model).splitlines()]
    frame = reward.score(pd.DataFrame(rows))
    assert list(frame["id"]) == [w["id"] for w in want]
    assert list(frame["reward"]) == [w["reward"] for w in want]
    assert list(frame["rbr_reward"]) == [w["rbr_reward"] for w in want]
    assert list(frame["base_reward"]) == [w["base_reward"] for w in want]
    assert list(frame["class"]) == [w["class"] for w in want]
    probs = frame[[f"p_{c}" for c in reward.classes]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-9
    assert frame["error"].isna().all()
    assert set(reward.propositions) <= set(frame.columns)


def test_propositions_in_the_table_are_the_graders(reward, model):
    rows = read_jsonl(EXAMPLES)[:5]
    frame = reward.score(rows)
    grades = arb.EmbeddedGrader(model_dir=model).grade(rows)
    for p in reward.propositions:
        assert list(frame[p]) == list(grades[p]), p


def test_an_unscorable_sample_has_no_reward_and_says_why(reward):
    rows = read_jsonl(EXAMPLES)[:3]
    rows[1] = {k: v for k, v in rows[1].items() if k != "response_type"}
    rows[2] = {**rows[2], "metadata": {"base_reward": "high"}}
    frame = reward.score(rows)
    assert not math.isnan(frame["reward"][0]) and frame["error"][0] is None
    for i, field in [(1, "response_type"), (2, "metadata.base_reward")]:
        assert math.isnan(frame["reward"][i]) and frame["class"][i] is None
        assert f"field `{field}`" in frame["error"][i], frame["error"][i]
    with pytest.raises(arb.ArbiterError, match=r"sample 1: field `response_type`: is missing"):
        reward.score_lines(rows)


def trl_batch(conversational: bool):
    rows = with_base_rewards(read_jsonl(EXAMPLES))
    if conversational:
        prompts = [r["prompt"] for r in rows]
        completions = [r["completion"] for r in rows]
    else:
        # Standard format: the last user turn and the reply as plain strings.
        prompts = [r["prompt"][-1]["content"] for r in rows]
        completions = [r["completion"][0]["content"] for r in rows]
    kwargs = {
        "response_type": [r["response_type"] for r in rows],
        "base_reward": [r["metadata"]["base_reward"] for r in rows],
        "category": [r["category"] for r in rows],  # another column TRL passes along
    }
    return prompts, completions, kwargs


@pytest.mark.parametrize("conversational", [False, True])
def test_the_trl_reward_function_gives_the_models_rewards(reward, conversational):
    prompts, completions, kwargs = trl_batch(conversational)
    got = reward.reward_fn(prompts=prompts, completions=completions, **kwargs)
    samples = trl.to_samples(prompts, completions, kwargs["response_type"], kwargs["base_reward"])
    assert got == list(reward.score(samples)["reward"])
    assert all(isinstance(r, float) for r in got) and len(got) == 40


def test_the_trl_reward_function_refuses_to_guess(reward):
    prompts, completions, kwargs = trl_batch(False)
    with pytest.raises(arb.ArbiterError, match="no `response_type` column"):
        reward.reward_fn(prompts, completions)
    kwargs["response_type"] = ["sometimes"] * len(prompts)
    with pytest.raises(arb.ArbiterError, match="unknown response type"):
        reward.reward_fn(prompts, completions, **kwargs)


@pytest.mark.parametrize("conversational", [False, True])
def test_the_trl_reward_function_equals_the_servers(reward, arbiter_bin, weights, model, conversational):
    """The same batch through `examples/trl/arbiter_reward.py` and `arbiter reward serve`."""
    server = subprocess.Popen(
        [str(arbiter_bin), "reward", "serve", "--weights", str(weights), "--model-dir", str(model), "--addr", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = None
        for line in server.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the reward server did not start"
        os.environ["ARBITER_REWARD_URL"] = url
        spec = importlib.util.spec_from_file_location("arbiter_reward_example", REPO / "examples" / "trl" / "arbiter_reward.py")
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        prompts, completions, kwargs = trl_batch(conversational)
        served = example.arbiter_rbr_reward(prompts, completions, **kwargs)
        assert reward.reward_fn(prompts, completions, **kwargs) == served
    finally:
        os.environ.pop("ARBITER_REWARD_URL", None)
        server.terminate()
        server.wait(timeout=30)
