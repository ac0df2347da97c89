#!/usr/bin/env python3
"""Reference values for arbiter_stats::ppi from ppi_python 0.2.3.

Writes crates/arbiter-stats/tests/golden/ppi.json: small fixed datasets (their values are stored
in the fixture) with ppi_python's point estimates and two-sided z intervals
(`ppi_mean_pointestimate`, `ppi_mean_ci` with lam=None for PPI++ and lam=1 for PPI,
`classical_mean_ci` on the labels and on all grader predictions) and the tuned lambda
(`_calc_lam_glm`, called exactly as `ppi_mean_ci` calls it).

Environment used: python 3.11, ppi-python==0.2.3, numpy 2.4, scipy 1.17 (see the README next to
the fixtures).

Usage: python scripts/golden/make_ppi_golden.py
"""
import json
from pathlib import Path

import numpy as np
from ppi_py import classical_mean_ci, ppi_mean_ci, ppi_mean_pointestimate
from ppi_py.ppi import _calc_lam_glm

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates" / "arbiter-stats" / "tests" / "golden" / "ppi.json"


def biased_binary(rng, n, big_n, share, miss, false_pos):
    """Binary truth and a grader that misses `miss` of positives and flags `false_pos` of negatives."""
    y = (rng.random(n + big_n) < share).astype(float)
    u = rng.random(n + big_n)
    f = np.where(y == 1, u >= miss, u < false_pos).astype(float)
    return y[:n], f[:n], f[n:]


def probabilities(rng, n, big_n):
    """Binary truth and a grader that outputs overconfident probabilities."""
    y = (rng.random(n + big_n) < 0.4).astype(float)
    logit = 2.5 * (y - 0.5) + rng.normal(0.0, 1.2, n + big_n) + 0.6
    f = 1.0 / (1.0 + np.exp(-logit))
    return y[:n], np.round(f[:n], 6), np.round(f[n:], 6)


def datasets():
    rng = np.random.default_rng(20240117)
    out = []
    y, f, u = biased_binary(rng, 20, 60, 0.3, 0.3, 0.05)
    out.append(("binary_biased", y, f, u))
    y, f, u = probabilities(rng, 25, 80)
    out.append(("probabilities", y, f, u))
    # More labelled than unlabelled rows.
    y, f, u = probabilities(rng, 12, 5)
    out.append(("more_labelled_than_unlabelled", y, f, u))
    # A grader that is wrong more often than right: negative covariance, lambda clipped to 0.
    y = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1], dtype=float)
    f = 1.0 - y
    f[0] = 1.0
    u = np.array([0.2, 0.9, 0.4, 0.1, 0.7, 0.5, 0.3, 0.8], dtype=float)
    out.append(("negative_covariance", y, f, u))
    # Labelled predictions spread out, unlabelled ones all 0.5: the raw lambda exceeds 1.
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=float)
    f = y.copy()
    u = np.full(100, 0.5)
    out.append(("lambda_clipped_to_one", y, f, u))
    # Fractional human values (soft labels) and a biased grader.
    y = np.round(rng.random(15), 4)
    f = np.clip(np.round(y + rng.normal(0.1, 0.15, 15), 4), 0, 1)
    u = np.clip(np.round(rng.random(40) + 0.1, 4), 0, 1)
    out.append(("soft_labels", y, f, u))
    return out


def tuned_lambda(y, f, u):
    """The lambda ppi_mean_ci(lam=None) uses, obtained the way it obtains it."""
    y2, f2, u2 = y.reshape(-1, 1), f.reshape(-1, 1), u.reshape(-1, 1)
    theta = ppi_mean_pointestimate(y2, f2, u2, lam=1)
    return float(
        _calc_lam_glm(y2 - theta, f2 - theta, u2 - theta, np.eye(1), coord=None, clip=True)
    )


def interval(pair):
    lo, hi = pair
    return [float(np.squeeze(lo)), float(np.squeeze(hi))]


def main():
    cases = []
    for name, y, f, u in datasets():
        case = {"name": name, "labels": y.tolist(), "predictions": f.tolist(), "unlabelled": u.tolist()}
        lam = tuned_lambda(y, f, u)
        case["lambda_tuned"] = lam
        for level in (0.95, 0.9):
            alpha = 1.0 - level
            key = f"{level:g}"
            case[key] = {
                "ppi++": {
                    "estimate": float(np.squeeze(ppi_mean_pointestimate(y, f, u, lam=None))),
                    "ci": interval(ppi_mean_ci(y, f, u, alpha=alpha, lam=None)),
                },
                "ppi": {
                    "estimate": float(np.squeeze(ppi_mean_pointestimate(y, f, u, lam=1))),
                    "ci": interval(ppi_mean_ci(y, f, u, alpha=alpha, lam=1)),
                },
                "classical": {
                    "estimate": float(y.mean()),
                    "ci": interval(classical_mean_ci(y, alpha=alpha)),
                },
                "grader_only": {
                    "estimate": float(np.concatenate([f, u]).mean()),
                    "ci": interval(classical_mean_ci(np.concatenate([f, u]), alpha=alpha)),
                },
            }
        cases.append(case)
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
