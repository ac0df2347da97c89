"""Arbiter's rule-based reward as a TRL reward function (``GRPOTrainer``, ``RLOOTrainer``),
computed in process: no server.

    from arbiter_safety import RewardModel
    reward = RewardModel.load("weights.json")
    trainer = GRPOTrainer(model=..., reward_funcs=[reward.reward_fn], train_dataset=ds, ...)

TRL calls ``reward_fn(prompts=..., completions=..., **columns)``: prompts and completions are
strings (standard format) or lists of ``{role, content}`` messages (conversational format), and
every other dataset column arrives as a keyword argument. The dataset needs a ``response_type``
column (hard_refuse, safe_refuse_1, safe_refuse_2, comply); a ``base_reward`` column, if present,
is added to the RBR term (the paper's RM + RBR total). A sample that cannot be scored raises
:class:`ArbiterError`: a training step must not go on with a made-up reward.

The rewards are those of ``examples/trl/arbiter_reward.py`` (which asks ``arbiter reward
serve``) for the same model and samples.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ._native import ArbiterError

__all__ = ["reward_function", "to_samples"]


def _messages(x: Any, role: str) -> list[dict[str, str]]:
    if isinstance(x, str):
        return [{"role": role, "content": x}]
    return [{"role": m["role"], "content": m["content"]} for m in x]


def to_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    response_type: Sequence[str] | None,
    base_reward: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """TRL's batch as samples in the CLI's shape, ids 0…n−1."""
    if len(prompts) != len(completions):
        raise ArbiterError(f"{len(prompts)} prompts but {len(completions)} completions")
    if response_type is None:
        raise ArbiterError(
            "no `response_type` column: the dataset needs one (hard_refuse, safe_refuse_1, "
            "safe_refuse_2, comply); TRL passes dataset columns to reward functions as keywords"
        )
    samples = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        sample: dict[str, Any] = {
            "id": i,
            "prompt": _messages(prompt, "user"),
            "completion": _messages(completion, "assistant"),
            "response_type": response_type[i],
        }
        if base_reward is not None:
            sample["metadata"] = {"base_reward": float(base_reward[i])}
        samples.append(sample)
    return samples


def reward_function(model: Any) -> Callable[..., list[float]]:
    """A TRL reward function over a :class:`arbiter_safety.RewardModel`."""

    def arbiter_rbr_reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        response_type: Sequence[str] | None = None,
        base_reward: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        return model.rewards(to_samples(prompts, completions, response_type, base_reward))

    return arbiter_rbr_reward
