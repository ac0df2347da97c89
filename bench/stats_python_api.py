#!/usr/bin/env python3
"""Arbiter's Python API vs the Python references, on data already in memory.

The Python-side companion of bench/stats_vs_python.py (same seeded generator): it times, in one
process, what a notebook user runs once the ratings are loaded:

  alpha: arbiter_safety.alpha(pyarrow Table)  -- the whole call: Arrow -> ratings -> α
         vs krippendorff 0.8.1's compute on the same rows as a pandas DataFrame, including the
         group-by to value counts (as stats_vs_python.py's reference does)
  DS:    arbiter_safety.DawidSkene(n_iter=100).fit_predict(pyarrow Table)  -- the whole call,
         pandas results included
         vs crowd-kit 1.4.2 DawidSkene(n_iter=100).fit_predict(pandas DataFrame)

for the rows grouped by item (as generated) and shuffled (a seeded permutation, like an export
ordered by time), with plain string columns and with dictionary-encoded ones. Loading, shuffling
and encoding happen before timing. Results are checked: α within 1e-9, DS labels identical and
posteriors within 1e-9. Each timing is the median of --repeat runs (crowd-kit: --repeat-ref), and the
whole comparison is made --rounds times (the summary gives every round's ratio and their median).

Run it with the Python that has arbiter_safety, krippendorff, crowd-kit and pyarrow installed
(scripts/test-python.sh's venv), e.g.
  nice -n -15 ~/.cache/arbiter/py-venv/bin/python bench/stats_python_api.py --sizes 1000000
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats_vs_python import generate  # noqa: E402

import arbiter_safety as arb  # noqa: E402
import krippendorff  # noqa: E402
from crowdkit.aggregation import DawidSkene as CkDawidSkene  # noqa: E402


def median_time(fn, repeat):
    """Median wall time of `repeat` calls, the result, and the median CPU time of this process
    (all threads) per call, which other processes' load inflates far less than wall time."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median_time.cpu = statistics.median(cpu)
    return statistics.median(times), result


def krippendorff_compute(df):
    counts = df.groupby(["item", "label"]).size().unstack(fill_value=0)
    return float(
        krippendorff.alpha(
            value_counts=counts.to_numpy(dtype=float),
            value_domain=[float(c) for c in counts.columns],
            level_of_measurement="nominal",
        )
    )


def crowdkit_compute(df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = CkDawidSkene(n_iter=100)
        labels = ds.fit_predict(df)
    return labels, ds.probas_


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--raters-per-item", type=int, default=5)
    ap.add_argument("--raters", type=int, default=500)
    ap.add_argument("--labels", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7, help="runs per Arbiter / krippendorff timing (median)")
    ap.add_argument("--repeat-ref", type=int, default=1, help="runs per crowd-kit timing (median)")
    ap.add_argument("--skip-ds", action="store_true")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="times every comparison is made again, both sides each time; the summary gives each round's ratio and their median",
    )
    args = ap.parse_args()
    print(f"arbiter_safety {arb.__file__}; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    summary = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ratings.csv"
            n_items, n, _ = generate(path, size, args.raters_per_item, args.raters, args.labels, 1, args.seed, ["grouped"])
            grouped = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={"item": pa.string(), "rater": pa.string(), "label": pa.int64()},
                    include_columns=["item", "rater", "label"],
                ),
            ).combine_chunks()
        perm = np.random.default_rng(args.seed).permutation(n)
        orders = {"grouped": grouped, "shuffled": grouped.take(perm).combine_chunks()}
        print(
            f"\n== {n:,} ratings, {n_items:,} items, {args.raters_per_item} raters per item of {args.raters},"
            f" {args.labels} labels (int64), seed {args.seed}",
            flush=True,
        )
        for order, table in [(o, t) for _ in range(args.rounds) for o, t in orders.items()]:
            df = table.to_pandas()
            ref_alpha_t, ref_alpha = median_time(lambda: krippendorff_compute(df), args.repeat)
            ref_alpha_cpu = median_time.cpu
            layouts = {
                "string": table,
                "dictionary": pa.table({c: table.column(c).dictionary_encode() for c in ("item", "rater")} | {"label": table.column("label")}),
            }
            for layout, t in layouts.items():
                ours_t, ours = median_time(lambda: arb.alpha(t, level="nominal"), args.repeat)
                ours_cpu = median_time.cpu
                same = abs(ours - ref_alpha) < 1e-9
                ratio = ref_alpha_t / ours_t
                print(
                    f"alpha {order:8} {layout:10}: arbiter {ours_t * 1e3:8.1f} ms | krippendorff compute {ref_alpha_t * 1e3:8.1f} ms"
                    f" | {ratio:6.1f}x (cpu time {ref_alpha_cpu / ours_cpu:5.1f}x) | alpha {ours:.12f} vs {ref_alpha:.12f} {'identical' if same else 'DIFFERENT'}",
                    flush=True,
                )
                summary.append(("alpha", n, order, layout, ours_t, ref_alpha_t, same, ours_cpu, ref_alpha_cpu))
            if args.skip_ds:
                continue
            crowd = df.rename(columns={"item": "task", "rater": "worker"})
            ref_ds_t, (ref_labels, ref_probas) = median_time(lambda: crowdkit_compute(crowd), args.repeat_ref)
            ref_ds_cpu = median_time.cpu
            for layout, t in layouts.items():
                t = t.rename_columns(["task" if c == "item" else "worker" if c == "rater" else c for c in t.column_names])
                model = arb.DawidSkene(n_iter=100)
                ours_t, labels = median_time(lambda: model.fit_predict(t), args.repeat)
                ours_cpu = median_time.cpu
                differ = int((labels != ref_labels.loc[labels.index]).sum()) + abs(len(labels) - len(ref_labels))
                gap = float(np.abs(model.probas_.to_numpy() - ref_probas.loc[labels.index, list(model.probas_.columns)].to_numpy()).max())
                same = differ == 0 and gap < 1e-9
                print(
                    f"DS    {order:8} {layout:10}: arbiter {ours_t * 1e3:8.1f} ms | crowd-kit compute {ref_ds_t * 1e3:9.1f} ms"
                    f" | {ref_ds_t / ours_t:6.1f}x (cpu time {ref_ds_cpu / ours_cpu:5.1f}x) | labels {'identical' if differ == 0 else f'{differ} differ'},"
                    f" posteriors within {gap:.1e} ({model.n_iter_} EM iterations)",
                    flush=True,
                )
                summary.append(("DS", n, order, layout, ours_t, ref_ds_t, same, ours_cpu, ref_ds_cpu))
    print(
        f"\nsummary ({args.rounds} rounds, each a median of --repeat calls; load average {os.getloadavg()[0]:.2f} at the end):"
        " reference's compute / Arbiter's whole call in wall time, each round's ratio and their median; the same for CPU"
        " time (all threads). The two sides of a round are timed within seconds of each other, so a ratio holds where"
        " this VM's speed drifts between rounds."
    )
    keys = list(dict.fromkeys((what, n, order, layout) for what, n, order, layout, *_ in summary))
    for key in keys:
        runs = [s[4:] for s in summary if s[:4] == key]
        wall = [ref_t / ours_t for ours_t, ref_t, _, _, _ in runs]
        cpu = [ref_cpu / ours_cpu for _, _, _, ours_cpu, ref_cpu in runs]
        same = all(s for _, _, s, _, _ in runs)
        what, n, order, layout = key
        print(
            f"  {what:5} {n:>9,} rows {order:8} {layout:10}: {statistics.median(wall):6.1f}x wall"
            f" (rounds {', '.join(f'{r:.1f}' for r in wall)}; arbiter {statistics.median(r[0] for r in runs) * 1e3:.1f} ms,"
            f" reference {statistics.median(r[1] for r in runs) * 1e3:.1f} ms), {statistics.median(cpu):6.1f}x cpu time"
            f"  {'identical' if same else 'DIFFER'}"
        )


if __name__ == "__main__":
    main()
