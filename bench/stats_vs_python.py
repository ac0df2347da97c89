#!/usr/bin/env python3
"""Arbiter vs the Python references, side by side, on seeded synthetic ratings.

For each size, writes a CSV (item, rater, label, group) to a temporary directory, in one or
both of two row orders (--order): grouped (each item's rows together, which the readers' fast
path for grouped files favours) and shuffled (the same rows in a seeded random order, like an
annotation tool's export ordered by time). On each file it runs, each in its own process so
that wall time, CPU time and peak RSS are per tool:

  alpha: `arbiter agreement --level nominal --format json`  vs  krippendorff 0.8.1, two ways:
         value counts (read_csv + group-by counts + krippendorff.alpha(value_counts=…), its
         fastest input) and the documented raters × units matrix
         (krippendorff.alpha(reliability_data=…), skipped when the matrix would exceed 2 GB)
  DS:    `arbiter aggregate --method ds`                     vs  crowd-kit 1.4.2 DawidSkene
         (pandas read_csv + DawidSkene(n_iter=100).fit_predict, labels and probas_ to_csv)

Ratios are end-to-end process wall times (both sides read the same CSV and, for DS, write the
same file: item, label and one posterior column per label); the Python compute-only time
(excluding interpreter start, imports and read_csv) is printed too. Results are checked: α
within 1e-9, DS labels identical and posteriors within 1e-9.

Usage:
  bench/stats_vs_python.py [--sizes 10000,100000,1000000] [--raters-per-item 5]
      [--raters 500] [--labels 3] [--groups 3] [--seed 1] [--arbiter PATH] [--python PATH]
      [--skip-ds-above N] [--repeat N] [--order grouped|shuffled|both]

With --repeat N every measurement is taken N times (alternating the two sides, and the two
orders) and the summary gives, per statistic and order, the median of each ratio and peak RSS,
with the load average at the start and the end.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PY_ALPHA = r"""
import sys, time, json
import numpy as np, pandas as pd, krippendorff
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"item": str, "rater": str, "label": "int64"})
t1 = time.perf_counter()
counts = df.groupby(["item", "label"]).size().unstack(fill_value=0)
a = krippendorff.alpha(value_counts=counts.to_numpy(dtype=float), value_domain=[float(c) for c in counts.columns], level_of_measurement="nominal")
t2 = time.perf_counter()
print(json.dumps({"alpha": float(a), "read": t1 - t0, "compute": t2 - t1}))
"""

PY_ALPHA_MATRIX = r"""
import sys, time, json
import numpy as np, pandas as pd, krippendorff
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"item": str, "rater": str, "label": "int64"})
t1 = time.perf_counter()
items, item_idx = np.unique(df["item"].to_numpy(), return_inverse=True)
raters, rater_idx = np.unique(df["rater"].to_numpy(), return_inverse=True)
data = np.full((len(raters), len(items)), np.nan)
data[rater_idx, item_idx] = df["label"].to_numpy(dtype=float)
a = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
t2 = time.perf_counter()
print(json.dumps({"alpha": float(a), "read": t1 - t0, "compute": t2 - t1}))
"""

PY_DS = r"""
import sys, time, json
import pandas as pd
from crowdkit.aggregation import DawidSkene
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"item": str, "rater": str, "label": "int64"})
df = df.rename(columns={"item": "task", "rater": "worker"})[["task", "worker", "label"]]
t1 = time.perf_counter()
ds = DawidSkene(n_iter=100)
labels = ds.fit_predict(df)
t2 = time.perf_counter()
# The same file as `arbiter aggregate`: item, label, then the posterior of each label.
out = ds.probas_.rename(columns=lambda c: f"p_{c}")
out.insert(0, "label", labels)
out.rename_axis("item").to_csv(sys.argv[2])
print(json.dumps({"read": t1 - t0, "compute": t2 - t1, "iterations": len(ds.loss_history_)}))
"""


def run(cmd):
    """Run a command; return (stdout, wall seconds, stderr, rusage). The child is reaped with
    wait4, whose rusage gives its CPU time with no wrapper process (an exec of /usr/bin/time
    added about a millisecond to every run)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    streams = {}
    readers = [threading.Thread(target=lambda name=name: streams.__setitem__(name, getattr(proc, name).read()))
               for name in ("stdout", "stderr")]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = streams["stdout"], streams["stderr"]
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{err}")
    return out, wall, err, usage


def peak_rss(cmd):
    """Peak RSS in MiB of one run of `cmd`, from /usr/bin/time. A child of this script cannot
    report its own: its ru_maxrss counts the pages of this (large) process it was forked from,
    kept across exec, where /usr/bin/time's child is forked from a small process. Measured
    once per command, in a run of its own, so that the wrapper stays out of the timed runs."""
    if cmd not in peak_rss.seen:
        _, _, err, _ = run(["/usr/bin/time", "-f", "MAXRSS_KB=%M"] + list(cmd))
        kb = [l for l in err.splitlines() if l.startswith("MAXRSS_KB=")]
        peak_rss.seen[cmd] = int(kb[-1].split("=")[1]) / 1024 if kb else float("nan")
    return peak_rss.seen[cmd]


peak_rss.seen = {}


def timings(err):
    """Phase times printed by `arbiter --timings`."""
    out = {}
    for line in err.splitlines():
        if line.startswith("arbiter: timing: "):
            phase, secs, _ = line[len("arbiter: timing: "):].split(" ")
            out[phase] = float(secs)
    return out


def run_measured(cmd):
    """Like run(), plus peak RSS in MiB (see peak_rss); the process's CPU time (user + system,
    which other processes' load inflates far less than wall time) is left in
    run_measured.last_cpu."""
    cmd = tuple(map(str, cmd))
    out, wall, err, usage = run(cmd)
    run_measured.last_cpu = usage.ru_utime + usage.ru_stime
    run_measured.last_timings = timings(err)
    return out, wall, peak_rss(cmd)


def generate(path, n_ratings, per_item, n_raters, n_labels, n_groups, seed, orders):
    """Write the ratings once per order in `orders`: `grouped` (each item's rows together, in
    item order, to `path`) and `shuffled` (the same rows in a seeded random order, as an
    annotation tool's export ordered by time would have them, to `path` with a `_shuffled`
    suffix). Returns (number of items, number of rows, {order: path})."""
    rng = random.Random(seed)
    skill = [rng.uniform(0.4, 0.95) for _ in range(n_raters)]
    group = [f"g{rng.randrange(n_groups)}" for _ in range(n_raters)]
    n_items = max(1, n_ratings // per_item)
    lines = []
    for i in range(n_items):
        truth = rng.randrange(n_labels)
        for r in rng.sample(range(n_raters), per_item):
            lab = truth if rng.random() < skill[r] else rng.randrange(n_labels)
            lines.append(f"i{i},r{r},{lab},{group[r]}\n")
    paths = {}
    for order in orders:
        if order == "shuffled":
            lines = lines[:]
            random.Random(seed + 1).shuffle(lines)
            paths[order] = path.with_name(f"{path.stem}_shuffled{path.suffix}")
        else:
            paths[order] = path
        with open(paths[order], "w") as f:
            f.write("item,rater,label,group\n")
            f.writelines(lines)
    return n_items, len(lines), paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--raters-per-item", type=int, default=5)
    ap.add_argument("--raters", type=int, default=500)
    ap.add_argument("--labels", type=int, default=3)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arbiter", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "arbiter"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--skip-ds-above", type=int, default=10**9, help="skip crowd-kit DS above this many ratings")
    ap.add_argument("--repeat", type=int, default=1, help="measure each pair this many times; the summary gives medians")
    ap.add_argument("--order", choices=["grouped", "shuffled", "both"], default="both",
                    help="row order of the files: grouped by item, shuffled (seeded), or both")
    args = ap.parse_args()
    if not Path(args.arbiter).exists():
        sys.exit(f"no arbiter binary at {args.arbiter}: cargo build --release -p arbiter")
    rows = []
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "alpha.py").write_text(PY_ALPHA)
        (tmp / "ds.py").write_text(PY_DS)
        (tmp / "alpha_matrix.py").write_text(PY_ALPHA_MATRIX)
        for size in [int(s) for s in args.sizes.split(",")]:
            orders = ["grouped", "shuffled"] if args.order == "both" else [args.order]
            n_items, n, paths = generate(tmp / f"ratings_{size}.csv", size, args.raters_per_item, args.raters,
                                         args.labels, args.groups, args.seed, orders)
            print(f"\n== {n:,} ratings, {n_items:,} items, {args.raters_per_item} raters per item, {args.raters} raters,"
                  f" {args.labels} labels, {args.groups} groups (seed {args.seed})", flush=True)
            for _ in range(args.repeat):
                for order in orders:
                    print(f"-- rows {order}", flush=True)
                    start = len(rows)
                    measure(args, tmp, paths[order], n, n_items, rows)
                    # Each summary line is one statistic on one order of the rows.
                    rows[start:] = [(f"{r[0]}/{order}",) + tuple(r[1:]) for r in rows[start:]]

    print(f"\nsummary (medians of {args.repeat} run(s); load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end):"
          " end-to-end = process wall time (start-up, CSV reading, computing, output);"
          " compute = statistic only (Python: after read_csv; Arbiter: after reading, from --timings)")
    groups = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    for (what, n), rs in groups.items():
        med = lambda f: statistics.median(f(r) for r in rs)
        print(f"  {what:21} {n:>9,} ratings: {med(lambda r: r[3] / r[2]):6.1f}x end-to-end, {med(lambda r: r[4] / r[5]):7.1f}x compute;"
              f" arbiter {med(lambda r: r[2]):.3f} s, python {med(lambda r: r[3]):.3f} s;"
              f" cpu time {med(lambda r: r[10] / max(r[9], 0.01)):6.1f}x;"
              f" peak RSS arbiter {med(lambda r: r[6]):.0f} MiB, python {med(lambda r: r[7]):.0f} MiB;"
              f" results {'identical' if all(r[8] for r in rs) else 'DIFFER'}")


def measure(args, tmp, csv_path, n, n_items, rows):
    """One Arbiter-vs-Python measurement of each statistic on one file, appended to `rows`."""
    out, a_wall, a_mem = run_measured([args.arbiter, "agreement", "--level", "nominal", "--format", "json", "--timings", csv_path])
    a_cpu = run_measured.last_cpu
    a_alpha = json.loads(out)["alpha"]
    a_compute = run_measured.last_timings.get("alpha", float("nan"))
    out, p_wall, p_mem = run_measured([args.python, tmp / "alpha.py", csv_path])
    p_cpu = run_measured.last_cpu
    py = json.loads(out)
    same = abs(a_alpha - py["alpha"]) < 1e-9
    print(f"alpha  arbiter {a_wall:8.3f} s {a_mem:8.1f} MiB | krippendorff {p_wall:8.3f} s (compute {py['compute']:.3f} s) {p_mem:8.1f} MiB"
          f" | ratio {p_wall / a_wall:6.1f}x, compute {py['compute'] / a_compute:6.1f}x (arbiter alpha {a_compute:.4f} s)"
          f" | alpha {a_alpha:.12f} vs {py['alpha']:.12f} {'identical' if same else 'DIFFERENT'}", flush=True)
    print(f"       cpu time (user+sys): arbiter {a_cpu:.2f} s, krippendorff {p_cpu:.2f} s | ratio {p_cpu / max(a_cpu, 0.01):6.1f}x", flush=True)
    rows.append(("alpha", n, a_wall, p_wall, py["compute"], a_compute, a_mem, p_mem, same, a_cpu, p_cpu))
    if args.raters * n_items * 8 <= 2 * 1024**3:
        out, m_wall, m_mem = run_measured([args.python, tmp / "alpha_matrix.py", csv_path])
        pm = json.loads(out)
        same_m = abs(a_alpha - pm["alpha"]) < 1e-9
        print(f"alpha  (krippendorff reliability_data matrix: {m_wall:8.3f} s, compute {pm['compute']:.3f} s, {m_mem:8.1f} MiB)"
              f" | ratio {m_wall / a_wall:6.1f}x, compute {pm['compute'] / a_compute:6.1f}x | {'identical' if same_m else 'DIFFERENT'}", flush=True)
        rows.append(("alpha-matrix", n, a_wall, m_wall, pm["compute"], a_compute, a_mem, m_mem, same_m, a_cpu, run_measured.last_cpu))

    if n > args.skip_ds_above:
        print("DS     skipped (--skip-ds-above)")
        return
    a_out = tmp / "arbiter_ds.csv"
    _, a_wall, a_mem = run_measured([args.arbiter, "aggregate", "--method", "ds", "--timings", "--out", a_out, csv_path])
    a_cpu = run_measured.last_cpu
    a_compute = run_measured.last_timings.get("fit", float("nan"))
    p_out = tmp / "python_ds.csv"
    out, p_wall, p_mem = run_measured([args.python, tmp / "ds.py", csv_path, p_out])
    p_cpu = run_measured.last_cpu
    py = json.loads(out)
    ours, ours_p = read_ds_output(a_out)
    theirs, theirs_p = read_ds_output(p_out)
    differ = sum(ours.get(k) != v for k, v in theirs.items()) + abs(len(ours) - len(theirs))
    # Posteriors: same columns, and every value within 1e-9 of crowd-kit's.
    if ours_p.keys() != theirs_p.keys() or any(len(ours_p[k]) != len(v) for k, v in theirs_p.items()):
        differ += 1
        gap = float("inf")
    else:
        gap = max((abs(a - b) for k, v in theirs_p.items() for a, b in zip(ours_p[k], v)), default=0.0)
        differ += gap > 1e-9
    print(f"DS     arbiter {a_wall:8.3f} s {a_mem:8.1f} MiB | crowd-kit    {p_wall:8.3f} s (compute {py['compute']:.3f} s) {p_mem:8.1f} MiB"
          f" | ratio {p_wall / a_wall:6.1f}x, compute {py['compute'] / a_compute:6.1f}x (arbiter fit {a_compute:.4f} s)"
          f" | labels {'identical' if differ == 0 else f'{differ} differ'}, posteriors within {gap:.1e} ({py['iterations']} EM iterations)", flush=True)
    print(f"       cpu time (user+sys): arbiter {a_cpu:.2f} s, crowd-kit {p_cpu:.2f} s | ratio {p_cpu / max(a_cpu, 0.01):6.1f}x", flush=True)
    rows.append(("ds", n, a_wall, p_wall, py["compute"], a_compute, a_mem, p_mem, differ == 0, a_cpu, p_cpu))


def read_ds_output(path):
    """(item -> label, item -> posteriors by column name) of an `item,label,p_…` file."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    order = sorted(range(2, len(header)), key=lambda j: header[j])
    labels, posteriors = {}, {}
    for line in lines[1:]:
        cells = line.split(",")
        labels[cells[0]] = cells[1]
        posteriors[cells[0]] = [float(cells[j]) for j in order]
    return labels, posteriors


if __name__ == "__main__":
    main()
