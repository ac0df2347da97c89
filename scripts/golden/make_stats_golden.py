#!/usr/bin/env python3
"""Reference values for arbiter-stats from krippendorff 0.8.1 and crowd-kit 1.4.2.

Writes JSON fixtures (numbers only, plus the rows of the small tables this script invents) to
crates/arbiter-stats/tests/golden/. The shared datasets are read from $ARBITER_DATA (default
../shared/data relative to the repository root) and are never copied.

Environment used: python 3.11, krippendorff==0.8.1, crowd-kit==1.4.2, pandas==2.2.3,
scikit-learn==1.5.2 (see the README next to the fixtures).

Usage: python scripts/golden/make_stats_golden.py [--skip-glad]
"""
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from crowdkit.aggregation import (GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa,
                                  ZeroBasedSkill)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates" / "arbiter-stats" / "tests" / "golden"
DATA = Path(os.environ.get("ARBITER_DATA", ROOT / ".." / "shared" / "data")) / "annotation"
LEVELS = ["nominal", "ordinal", "interval", "ratio"]


def domain_of(labels):
    """Numeric sort when every label is a number, else lexicographic (arbiter's LabelDomain::infer)."""
    vals = sorted(set(labels))
    try:
        return sorted(vals, key=lambda v: (float(v), v))
    except ValueError:
        return vals


def alpha_values(rows, levels):
    """rows: list of (item, rater, label-string). Every row counts (value-counts input)."""
    labels = [r[2] for r in rows]
    dom = domain_of(labels)
    idx = {v: i for i, v in enumerate(dom)}
    items = {}
    for it, _, lab in rows:
        items.setdefault(it, [0] * len(dom))[idx[lab]] += 1
    counts = np.array(list(items.values()), dtype=float)
    out = {}
    numeric = all(_isnum(v) for v in dom)
    for level in levels:
        if level in ("interval", "ratio") and not numeric:
            continue
        domain = [float(v) for v in dom] if numeric else dom
        try:
            out[level] = float(krippendorff.alpha(value_counts=counts, value_domain=domain,
                                                  level_of_measurement=level))
        except ValueError as e:
            out[level] = None
            out[level + "_error"] = str(e)
    return out


def _isnum(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def frame(rows):
    dom = domain_of([r[2] for r in rows])
    numeric = all(_isnum(v) for v in dom)
    conv = (lambda v: int(v) if float(v).is_integer() else float(v)) if numeric else str
    return pd.DataFrame({"task": [r[0] for r in rows], "worker": [str(r[1]) for r in rows],
                         "label": [conv(r[2]) for r in rows]}), dom, conv


def aggregate(rows, skip_glad=False, posteriors=True):
    df, dom, conv = frame(rows)
    key = {conv(v): i for i, v in enumerate(dom)}
    order = list(dict.fromkeys(r[0] for r in rows))  # items in first-appearance order
    methods = {"mv": MajorityVote(), "wawa": Wawa(), "zbs": ZeroBasedSkill(), "ds": DawidSkene(n_iter=100),
               "onecoin-ds": OneCoinDawidSkene(n_iter=100), "mace": MACE()}
    if not skip_glad:
        methods["glad"] = GLAD()
    out = {"domain": dom}
    for name, agg in methods.items():
        t0 = time.time()
        labels = agg.fit_predict(df)
        entry = {"labels": [key[labels[t]] for t in order], "seconds": round(time.time() - t0, 3)}
        if hasattr(agg, "loss_history_"):
            entry["iterations"] = len(agg.loss_history_)
        if name in ("mv", "wawa", "zbs", "onecoin-ds") and getattr(agg, "skills_", None) is not None:
            raters = list(dict.fromkeys(str(r[1]) for r in rows))
            entry["skills"] = [float(agg.skills_[w]) for w in raters]
        if posteriors and name in ("ds", "onecoin-ds", "glad"):
            probas = agg.probas_
            entry["max_posterior"] = [float(probas.loc[t].max()) for t in order]
        out[name] = entry
        print(f"    {name}: {entry['seconds']} s", file=sys.stderr)
    return out


# ---------------------------------------------------------------- shared datasets (readers)

def lewidi(name):
    rows, groups = [], []
    for split in ("train", "dev", "test"):
        with open(DATA / "lewidi2023" / f"{name}_{split}.json", encoding="utf-8") as f:
            d = json.load(f)
        for id_, rec in d.items():
            raters = rec["annotators"].split(",")
            labels = rec["annotations"].split(",")
            info = rec.get("other_info") or {}
            if "annotators group" in info:
                g = info["annotators group"].split(",")
            else:
                g = [info.get(r) for r in raters]
            for r, lab, gg in zip(raters, labels, g):
                rows.append((f"{split}/{id_}", r.strip(), lab.strip()))
                groups.append(gg)
    return rows, groups


def multipico():
    with open(DATA / "multipico" / "MP_annotators_meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    rows, groups = [], []
    for split in ("dev", "test"):
        with open(DATA / "multipico" / f"MP_{split}.json", encoding="utf-8") as f:
            d = json.load(f)
        for id_, rec in d.items():
            for r, lab in rec["annotations"].items():
                rows.append((f"{split}/{id_}", r, lab))
                m = meta.get(r[3:] if r.startswith("Ann") else r, {})
                g = m.get("Gender")
                groups.append(None if g in (None, "DATA_EXPIRED") else g)
    return rows, groups


def convabuse_csv():
    rows = []
    with open(DATA / "convabuse" / "ConvAbuseEMNLPfull.csv", newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            item = "\x1f".join(rec[k] for k in ("conv_id", "prev_agent", "prev_user", "agent", "user"))
            set_ = [c.split(".", 1)[1] for c in rec if c.startswith("is_abuse.") and rec[c] == "1"]
            if len(set_) == 1:
                rows.append((item, rec["annotator_id"], set_[0]))
    return rows


def dedup_first(rows):
    seen, out = set(), []
    for r in rows:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            out.append(r)
    return out


def group_alphas(rows, groups):
    out = {}
    for g in sorted({g for g in groups if g is not None}):
        sub = [r for r, gg in zip(rows, groups) if gg == g]
        out[g] = alpha_values(sub, ["nominal"])["nominal"]
    return out


def dataset_entry(name, rows, groups, skip_glad):
    print(f"{name}: {len(rows)} rows", file=sys.stderr)
    entry = {"dataset": name, "n_ratings": len(rows), "n_items": len({r[0] for r in rows}),
             "n_raters": len({r[1] for r in rows}), "alpha": alpha_values(rows, LEVELS),
             "alpha_nominal_dedup_first": alpha_values(dedup_first(rows), ["nominal"])["nominal"]}
    if groups is not None:
        entry["group_alpha_nominal"] = group_alphas(rows, groups)
    # Posteriors of the large sets would make the fixture megabytes; labels suffice there.
    entry["aggregators"] = aggregate(rows, skip_glad, posteriors=False)
    return entry


# ---------------------------------------------------------------- small fixtures (ours)

def wikipedia():
    lines = ["* * * * * 3 4 1 2 1 1 3 3 * 3", "1 * 2 1 3 3 4 3 * * * * * * *",
             "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"]
    return [(f"u{u:02}", f"r{r}", v) for r, line in enumerate(lines)
            for u, v in enumerate(line.split()) if v != "*"]


def random_table(seed, n_items, n_raters, labels, p_missing, p_dup):
    rng = random.Random(seed)
    skill = [rng.uniform(0.3, 0.95) for _ in range(n_raters)]
    rows = []
    for i in range(n_items):
        truth = rng.choice(labels)
        for r in range(n_raters):
            if rng.random() < p_missing:
                continue
            lab = truth if rng.random() < skill[r] else rng.choice(labels)
            rows.append((f"i{i}", f"w{r}", str(lab)))
            if rng.random() < p_dup:
                rows.append((f"i{i}", f"w{r}", str(rng.choice(labels))))
    rng.shuffle(rows)
    return rows


def small_fixtures(skip_glad):
    tables = {
        "wikipedia": wikipedia(),
        "binary_ties": random_table(1, 40, 4, [0, 1], 0.3, 0.0),
        "three_labels_dups": random_table(2, 60, 7, [1, 2, 3], 0.4, 0.05),
        "five_point_scale": random_table(3, 80, 5, [-2, -1, 0, 1, 2], 0.2, 0.0),
        "string_labels": random_table(4, 50, 6, ["spam", "ham", "eggs"], 0.3, 0.02),
        "many_raters_sparse": random_table(5, 120, 25, [0, 1, 2, 3], 0.85, 0.0),
    }
    out = []
    for name, rows in tables.items():
        print(f"fixture {name}: {len(rows)} rows", file=sys.stderr)
        out.append({"name": name, "rows": [list(r) for r in rows], "alpha": alpha_values(rows, LEVELS),
                    "aggregators": aggregate(rows, skip_glad)})
    return out


def main():
    skip_glad = "--skip-glad" in sys.argv
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "small_tables.json", "w") as f:
        json.dump(small_fixtures(skip_glad), f, indent=None, separators=(",", ":"))
    if not DATA.is_dir():
        print(f"no shared data at {DATA}; dataset fixtures not regenerated", file=sys.stderr)
        return
    sets = []
    for name in ("HS-Brexit", "ArMIS", "MD-Agreement", "ConvAbuse"):
        rows, groups = lewidi(name)
        has_groups = any(g is not None for g in groups)
        sets.append(dataset_entry(f"lewidi/{name}", rows, groups if has_groups else None, skip_glad))
    rows, groups = multipico()
    sets.append(dataset_entry("multipico", rows, groups, skip_glad))
    sets.append(dataset_entry("convabuse/full_csv", convabuse_csv(), None, skip_glad))
    with open(OUT / "shared_datasets.json", "w") as f:
        json.dump(sets, f, indent=None, separators=(",", ":"))


if __name__ == "__main__":
    main()
