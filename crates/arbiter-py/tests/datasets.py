"""Readers of the shared annotation datasets for the tests: (item, rater, label) frames.

The same items, raters and labels as `scripts/golden/make_stats_golden.py` (and so as the
golden numbers in `crates/arbiter-stats/tests/golden/shared_datasets.json`): LeWiDi 2023 sets
with all splits pooled (items keyed `split/id`), MultiPICo dev + test (group: annotator
gender), and the ConvAbuse CSV (one `is_abuse.*` column set per row). Nothing is copied into
the repository; the data is read from `$ARBITER_DATA/annotation`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

LEWIDI = ["HS-Brexit", "ArMIS", "MD-Agreement", "ConvAbuse"]
NAMES = [f"lewidi/{s}" for s in LEWIDI] + ["multipico", "convabuse/full_csv"]


def _lewidi(root: Path, name: str):
    rows = []
    for split in ("train", "dev", "test"):
        with open(root / "lewidi2023" / f"{name}_{split}.json", encoding="utf-8") as f:
            d = json.load(f)
        for id_, rec in d.items():
            raters = rec["annotators"].split(",")
            labels = rec["annotations"].split(",")
            info = rec.get("other_info") or {}
            if "annotators group" in info:
                groups = info["annotators group"].split(",")
            else:
                groups = [info.get(r) for r in raters]
            for r, lab, g in zip(raters, labels, groups):
                rows.append((f"{split}/{id_}", r.strip(), lab.strip(), g))
    return rows


def _multipico(root: Path):
    with open(root / "multipico" / "MP_annotators_meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    rows = []
    for split in ("dev", "test"):
        with open(root / "multipico" / f"MP_{split}.json", encoding="utf-8") as f:
            d = json.load(f)
        for id_, rec in d.items():
            for r, lab in rec["annotations"].items():
                g = meta.get(r[3:] if r.startswith("Ann") else r, {}).get("Gender")
                rows.append((f"{split}/{id_}", r, lab, None if g in (None, "DATA_EXPIRED") else g))
    return rows


def _convabuse_csv(root: Path):
    rows = []
    path = root / "convabuse" / "ConvAbuseEMNLPfull.csv"
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            item = "\x1f".join(rec[k] for k in ("conv_id", "prev_agent", "prev_user", "agent", "user"))
            set_ = [c.split(".", 1)[1] for c in rec if c.startswith("is_abuse.") and rec[c] == "1"]
            if len(set_) == 1:
                rows.append((item, rec["annotator_id"], set_[0], None))
    return rows


def load(root: Path, name: str) -> pd.DataFrame:
    """Columns `item`, `rater`, `label` (strings, as read) and `group` (None where absent)."""
    if name == "multipico":
        rows = _multipico(root)
    elif name == "convabuse/full_csv":
        rows = _convabuse_csv(root)
    else:
        rows = _lewidi(root, name.split("/", 1)[1])
    return pd.DataFrame(rows, columns=["item", "rater", "label", "group"])


def is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def domain_of(labels) -> list[str]:
    """Numeric order when every label is a number, else lexicographic (arbiter's inference)."""
    values = sorted(set(labels))
    if all(is_number(v) for v in values):
        return sorted(values, key=lambda v: (float(v), v))
    return values


def crowd_frame(df: pd.DataFrame) -> pd.DataFrame:
    """crowd-kit's input: `task`, `worker`, `label`, numeric labels as int (as crowd-kit users
    would have them and as the golden script passed them)."""
    labels = df["label"]
    if all(is_number(v) for v in set(labels)):
        labels = labels.map(lambda v: int(float(v)) if float(v).is_integer() else float(v))
    return pd.DataFrame({"task": df["item"], "worker": df["rater"].astype(str), "label": labels})
