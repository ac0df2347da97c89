"""Ratings read from CSV and from Parquet by `arbiter agreement --timings`, side by side.

    python scripts/bench/parquet_ratings.py BINARY [N_ROWS]

Writes N_ROWS (default 1,000,000) shuffled ratings (N/5 items, 5 raters each from 500, labels
0-4) as CSV and as Parquet (pyarrow: int64 items, dictionary raters, int64 labels, snappy) to a
temporary directory, runs `agreement --format json --timings` on each three times, checks that
both print the same JSON, and reports the best wall time and the reading phase of each.
"""

import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(4)
items = n // 5
rows = []
for item in range(items):
    for rater in rng.sample(range(500), 5):
        rows.append((item, f"r{rater}", rng.randrange(5)))
rng.shuffle(rows)
table = pa.table(
    {
        "item": pa.array([r[0] for r in rows], pa.int64()),
        "rater": pa.array([r[1] for r in rows]).dictionary_encode(),
        "label": pa.array([r[2] for r in rows], pa.int64()),
    }
)
with tempfile.TemporaryDirectory() as d:
    csv_path = Path(d) / "r.csv"
    pq_path = Path(d) / "r.parquet"
    pacsv.write_csv(table.cast(pa.schema([("item", pa.int64()), ("rater", pa.string()), ("label", pa.int64())])), csv_path)
    pq.write_table(table, pq_path, compression="snappy")
    outputs = {}
    for path in (csv_path, pq_path):
        best, read = None, None
        for _ in range(3):
            t = time.perf_counter()
            p = subprocess.run([binary, "agreement", "--format", "json", "--timings", str(path)], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            if best is None or wall < best:
                best = wall
                m = re.search(r"timing: read ([0-9.]+) s", p.stderr)
                read = float(m.group(1)) if m else float("nan")
        outputs[path.suffix] = p.stdout
        print(f"{path.suffix:9} {path.stat().st_size / 1e6:7.1f} MB  wall {best:.3f} s  read {read:.3f} s")
    assert outputs[".csv"] == outputs[".parquet"], "the two formats disagree"
    print(f"{n} rows: same JSON from both")
