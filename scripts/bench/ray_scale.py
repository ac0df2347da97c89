"""Driver of scripts/bench/ray_scale.sh: times `arbiter_safety.ray.grade_parquet` with 1 and
2 grader actors on one running cluster (RAY_ADDRESS), plus the same samples graded in this
process without Ray, and checks every run wrote the same lines.

Samples: the RBR gold splits (train + test, 518 conversations), else the 40 examples, repeated
with new ids to N (default 20,000), written as Parquet files of 1,000 rows (a file is a Ray Data block).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray

import arbiter_safety as arb
from arbiter_safety import ray as arb_ray

REPO = Path(__file__).resolve().parents[2]


def load_rows(n: int) -> tuple[list[dict], str]:
    data = Path(os.environ.get("ARBITER_DATA", REPO.parent / "shared" / "data")) / "rbr_gold"
    files = [data / "train.jsonl", data / "test.jsonl"]
    if all(f.is_file() for f in files):
        source = "RBR gold train + test"
    else:
        files, source = [REPO / "examples" / "conversations.jsonl"], "the 40 examples"
    base = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    rows = []
    for i in range(n):
        r = dict(base[i % len(base)])
        r["id"] = f"s{i}"
        rows.append(r)
    return rows, f"{source} ({len(base)} conversations) repeated to {n}"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    batch = int(os.environ.get("BATCH", "1024"))
    rows, shape = load_rows(n)
    chars = sum(len(r["completion"][0]["content"]) + sum(len(m["content"]) for m in r["prompt"]) for r in rows)
    print(f"samples: {shape}; {chars / n:.0f} characters per sample on average; batch_size {batch}")
    with tempfile.TemporaryDirectory(prefix="arbiter-ray-bench-") as tmp:
        src = Path(tmp) / "samples"
        src.mkdir()
        table = pa.Table.from_pylist(rows)
        for k in range(0, n, 1000):
            pq.write_table(table.slice(k, 1000), src / f"part-{k // 1000:04}.parquet")
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        print(f"cluster: {ray.cluster_resources().get('CPU')} CPUs, {sum(n['Alive'] for n in ray.nodes())} nodes; os.cpu_count() {os.cpu_count()}")
        results = {}
        for workers in (1, 2):
            out = Path(tmp) / f"grades-{workers}"
            load = os.getloadavg()[0]
            t = time.perf_counter()
            arb_ray.grade_parquet(src, out, workers=workers, batch_size=batch, num_cpus=0.5, blocks=4 * workers)
            wall = time.perf_counter() - t
            lines = pq.read_table(out).column("line").to_pylist()
            results[workers] = lines
            print(f"ray, {workers} worker(s): {wall:.1f} s wall, {n / wall:.0f} samples/s (load before {load:.2f}, after {os.getloadavg()[0]:.2f})")
        ray.shutdown()
        load = os.getloadavg()[0]
        t = time.perf_counter()
        single = arb.EmbeddedGrader().grade_lines(rows)
        wall = time.perf_counter() - t
        print(f"in process, no ray: {wall:.1f} s wall, {n / wall:.0f} samples/s (load before {load:.2f}, after {os.getloadavg()[0]:.2f})")
        for workers, lines in results.items():
            assert lines == single, f"{workers} worker(s): lines differ from the in-process grades"
        print("all runs wrote the same lines")


if __name__ == "__main__":
    main()
