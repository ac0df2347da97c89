"""Arbiter on Ray: grade, score rewards and run eval suites over datasets bigger than a machine.

Needs ``ray[data]`` (pinned in ``crates/arbiter-py/requirements-ray.txt``) and
``arbiter-safety`` installed on every node. Three recipes:

- :func:`grade_parquet`: Ray Data reads samples from Parquet, ``map_batches`` hands Arrow
  batches to :class:`GradeBatches` actors, each holding one :class:`~arbiter_safety.EmbeddedGrader`
  (the model is read once per worker process, not per batch), and the grades are written back
  to Parquet: ``id``, P(yes) per proposition (null where ungraded), ``flags`` and ``line``, the
  sample's ``arbiter grade`` line.
- :func:`score_parquet`: the same with :class:`ScoreBatches` and a
  :class:`~arbiter_safety.RewardModel`: ``reward``, ``rbr_reward``, ``base_reward``, ``class``,
  class probabilities, propositions, ``error`` and ``line`` (the ``arbiter rbr score`` line).
- :func:`run_eval_shards`: ``arbiter eval run --shard I/N`` as N Ray tasks, then
  ``arbiter eval merge``: the merged run directory is the unsharded run's, byte for byte.

Order: the datasets run with ``preserve_order``, so the output rows are in input order; the
``line`` column concatenated is then the CLI's output file. Paths must be visible to every node
(a shared file system or object storage URI that Ray Data reads).

Cores: the embedded grader uses every core its process may run on. On a cluster give each actor
a node's cores (``num_cpus``); two actors sharing cores only compete for them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

from ._native import ArbiterError

__all__ = ["GradeBatches", "ScoreBatches", "grade_parquet", "score_parquet", "run_eval_shards"]


def _need_ids(batch: Any) -> None:
    """Without ids a sample's id would be its position in its batch: not unique, not stable."""
    if "id" not in batch.column_names:
        raise ArbiterError(
            f"the samples have no `id` column (columns: {batch.column_names}); on Ray every "
            "sample needs its own id, since a row's position is only known within its batch"
        )


class GradeBatches:
    """``map_batches`` callable class: grades Arrow batches with one embedded grader per actor.

    Arguments are paths (they travel to the workers): ``policy`` a policy TOML (default: the
    built-in policy), ``model_dir`` and ``heads`` as for :class:`~arbiter_safety.EmbeddedGrader`.
    """

    def __init__(self, policy: str | None = None, model_dir: str | None = None, heads: str | None = None) -> None:
        from ._grading import EmbeddedGrader

        self.grader = EmbeddedGrader(policy, model_dir=model_dir, heads=heads)

    def __call__(self, batch: Any) -> Any:
        _need_ids(batch)
        return self.grader.grade(batch, output="pyarrow", lines=True)


class ScoreBatches:
    """``map_batches`` callable class: scores Arrow batches with one reward model per actor
    (``weights`` from ``arbiter rbr fit``; the other arguments as for :class:`GradeBatches`)."""

    def __init__(
        self,
        weights: str,
        policy: str | None = None,
        model_dir: str | None = None,
        heads: str | None = None,
        cache_entries: int = 0,
    ) -> None:
        from ._grading import EmbeddedGrader, RewardModel

        grader = EmbeddedGrader(policy, model_dir=model_dir, heads=heads)
        self.model = RewardModel(policy, weights, grader, cache_entries=cache_entries)

    def __call__(self, batch: Any) -> Any:
        _need_ids(batch)
        return self.model.score(batch, output="pyarrow", lines=True)


def _map(
    src: str,
    dst: str,
    cls: type,
    kwargs: dict[str, Any],
    workers: int,
    batch_size: int,
    num_cpus: float,
    io_cpus: float,
    blocks: int | None,
) -> None:
    import ray

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.read_parquet(src, num_cpus=io_cpus)
    if blocks is not None:
        ds = ds.repartition(blocks)
    (
        ds.map_batches(
            cls,
            fn_constructor_kwargs=kwargs,
            batch_format="pyarrow",
            batch_size=batch_size,
            concurrency=workers,
            num_cpus=num_cpus,
        )
        .write_parquet(dst, ray_remote_args={"num_cpus": io_cpus})
    )


def _paths(**paths: Any) -> dict[str, Any]:
    return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in paths.items()}


def grade_parquet(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    workers: int = 2,
    batch_size: int = 1024,
    num_cpus: float = 1,
    io_cpus: float = 0.25,
    blocks: int | None = None,
    policy: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    heads: str | os.PathLike | None = None,
) -> None:
    """Grade the samples in Parquet ``src`` (a file or folder in the CLI's sample shape) with
    ``workers`` grader actors of ``num_cpus`` each; write the grades to the Parquet folder
    ``dst``, in input order. Reading and writing tasks ask for ``io_cpus`` each: a node whose
    CPUs the actors hold entirely runs none, so leave room (``num_cpus`` + ``io_cpus`` ≤ a
    node's CPUs). Ray Data reads small Parquet inputs as one block, and a block goes to one
    actor: for an input of few files, ``blocks`` splits it (an all-to-all step that holds the
    whole input in the object store). Connect first (``ray.init(address=...)``), or Ray starts a local
    instance."""
    kwargs = _paths(policy=policy, model_dir=model_dir, heads=heads)
    _map(os.fspath(src), os.fspath(dst), GradeBatches, kwargs, workers, batch_size, num_cpus, io_cpus, blocks)


def score_parquet(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    weights: str | os.PathLike,
    *,
    workers: int = 2,
    batch_size: int = 1024,
    num_cpus: float = 1,
    io_cpus: float = 0.25,
    blocks: int | None = None,
    policy: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    heads: str | os.PathLike | None = None,
    cache_entries: int = 0,
) -> None:
    """Score the samples in Parquet ``src`` with the reward of ``weights`` (``arbiter rbr
    fit``), ``workers`` actors of ``num_cpus`` each; write the rewards to the Parquet folder
    ``dst``, in input order."""
    kwargs = _paths(weights=weights, policy=policy, model_dir=model_dir, heads=heads)
    kwargs["cache_entries"] = cache_entries
    _map(os.fspath(src), os.fspath(dst), ScoreBatches, kwargs, workers, batch_size, num_cpus, io_cpus, blocks)


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ArbiterError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-2000:]}")


def run_eval_shards(
    arbiter: str | os.PathLike,
    run_args: Sequence[str],
    suite: str,
    out: str | os.PathLike,
    shards: int,
    *,
    data: str | os.PathLike | None = None,
    num_cpus: float = 1,
) -> Path:
    """Run ``arbiter eval run --suite SUITE RUN_ARGS --shard I/N`` for I = 1…N as Ray tasks
    (each writing ``OUT.shards/I``), then ``arbiter eval merge`` them into ``OUT``: the run
    directory an unsharded ``eval run`` writes. ``arbiter`` is the binary's path on the nodes;
    ``run_args`` the other ``eval run`` flags (``--model``, ``--grader``, …, not ``--out``);
    ``data`` the suites' data root (``--data``). Returns ``OUT``."""
    import ray

    if shards < 1:
        raise ArbiterError("shards must be at least 1")
    out = Path(out)
    shard_dirs = [Path(f"{out}.shards") / str(i) for i in range(1, shards + 1)]
    data_args = ["--data", os.fspath(data)] if data is not None else []
    binary = os.fspath(arbiter)

    @ray.remote(num_cpus=num_cpus)
    def run_shard(i: int, shard_dir: str) -> None:
        _run([binary, "eval", "run", "--suite", suite, *data_args, *run_args, "--out", shard_dir, "--shard", f"{i}/{shards}"])

    ray.get([run_shard.remote(i, os.fspath(d)) for i, d in enumerate(shard_dirs, start=1)])
    _run([binary, "eval", "merge", "--suite", suite, *data_args, "--out", os.fspath(out), *map(os.fspath, shard_dirs)])
    return out
