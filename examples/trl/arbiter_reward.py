"""Arbiter's rule-based reward as a TRL reward function (GRPOTrainer, RLOOTrainer).

Start the server first (weights from `arbiter rbr fit` or `arbiter rbr run`):

    arbiter reward serve --weights weights.json --addr 127.0.0.1:8000

then pass the function to the trainer, next to (or instead of) a reward model:

    from arbiter_reward import arbiter_rbr_reward
    trainer = GRPOTrainer(model=..., reward_funcs=[arbiter_rbr_reward], train_dataset=ds, ...)

The dataset needs a `response_type` column (hard_refuse, safe_refuse_1, safe_refuse_2,
comply): TRL passes every extra column to reward functions as a keyword argument. A
`base_reward` column, if present, is added to the RBR term (the paper's RM + RBR total); with
a separate reward model in `reward_funcs`, TRL sums the two itself and this column is not
needed.

Only the standard library is used. A request that fails raises: a training step must not go
on with a made-up reward.
"""

import json
import os
import urllib.request

ARBITER_URL = os.environ.get("ARBITER_REWARD_URL", "http://127.0.0.1:8000")


def _messages(x, role):
    """TRL passes plain strings (standard format) or lists of {role, content} (conversational)."""
    if isinstance(x, str):
        return [{"role": role, "content": x}]
    return [{"role": m["role"], "content": m["content"]} for m in x]


def arbiter_rbr_reward(prompts, completions, response_type, base_reward=None, **kwargs):
    samples = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        sample = {
            "id": i,
            "prompt": _messages(prompt, "user"),
            "completion": _messages(completion, "assistant"),
            "response_type": response_type[i],
        }
        if base_reward is not None:
            sample["metadata"] = {"base_reward": float(base_reward[i])}
        samples.append(sample)
    request = urllib.request.Request(
        ARBITER_URL.rstrip("/") + "/v1/rewards",
        data=json.dumps({"samples": samples}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        rewards = json.load(response)["rewards"]
    return [r["reward"] for r in rewards]
