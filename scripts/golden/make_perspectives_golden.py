#!/usr/bin/env python3
"""Reference values for arbiter-perspectives' metrics, from scikit-learn and numpy.

Writes crates/arbiter-perspectives/tests/golden/metrics.json: seeded label vectors with
sklearn's micro- and macro-F1 (zero_division=0), and soft-label cases with the LeWiDi 2023
cross-entropy and LeWiDi 2025 Manhattan distance computed with numpy from their definitions
(annotation.md section 10), and Pearson's r from numpy.corrcoef.

Run with scikit-learn and numpy installed, e.g. ~/.cache/arbiter/py-venv/bin/python
scripts/golden/make_perspectives_golden.py
"""
import json
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import f1_score

rng = np.random.default_rng(23)
cases = []
for n, classes, absent in [(10, 2, None), (57, 3, None), (200, 5, 3), (33, 4, 0), (1, 2, None)]:
    gold = rng.integers(0, classes, n)
    pred = rng.integers(0, classes, n)
    if absent is not None:
        gold[gold == absent] = (absent + 1) % classes
    cases.append(
        {
            "gold": gold.tolist(),
            "pred": pred.tolist(),
            "micro_f1": float(f1_score(gold, pred, average="micro")),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        }
    )

soft = []
for n, k in [(5, 2), (40, 3), (12, 2)]:
    t = rng.dirichlet(np.ones(k), n)
    p = rng.dirichlet(np.ones(k) * 0.5, n)
    p[0] = np.eye(k)[0]  # a confident prediction, clipped by the metric
    ce = float(np.mean(np.sum(-t * np.log(np.clip(p, 1e-12, 1 - 1e-12) + 1e-9), axis=1)))
    manhattan = float(np.mean(np.sum(np.abs(p - t), axis=1)))
    soft.append({"target": t.tolist(), "pred": p.tolist(), "soft_ce": ce, "manhattan": manhattan})

x = rng.normal(size=30)
y = 0.5 * x + rng.normal(size=30)
out = {
    "made_by": f"scripts/golden/make_perspectives_golden.py with scikit-learn {sklearn.__version__}, numpy {np.__version__}",
    "f1": cases,
    "soft": soft,
    "pearson": {"x": x.tolist(), "y": y.tolist(), "r": float(np.corrcoef(x, y)[0, 1])},
}
path = Path(__file__).resolve().parents[2] / "crates/arbiter-perspectives/tests/golden/metrics.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
