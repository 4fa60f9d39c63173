"""Data-equivalence: how many real labelled images a synthetic corpus is worth.

Definition (the lift study's headline): the real budget k* at which the
real-only curve (metric vs k, mean over seeds) first reaches the synthetic-only
score, interpolated linearly in log k between the two budgets that bracket the
crossing. Censored answers are reported as such, never as a number:
``"<k_min"`` when the real-only curve already meets the target at its smallest
budget (the synthetic corpus is worth fewer real images than the study can
resolve), ``">k_max"`` when it never reaches it (worth more than every real
image the study has). The interval comes from a bootstrap that resamples seeds
and test images together (:func:`bootstrap_equivalence`); censored draws count
as 0 (below) and +inf (above), so the percentiles stay well defined.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["crossing_k", "bootstrap_equivalence", "format_k"]


def crossing_k(ks: Sequence[float], values: Sequence[float], target: float) -> dict:
    """First crossing of ``target`` by the curve ``values`` over budgets ``ks``.

    ks: increasing budgets (real images, all >= 1); values: metric at each k
    (NaN points are skipped). Returns ``{"k": float or None, "censored": None |
    "below" | "above", "k_num": float, "bracket": [k_lo, k_hi] or None}``;
    ``k_num`` is k, 0.0 when below, +inf when above (for percentiles).
    """
    ks = np.asarray(ks, np.float64)
    v = np.asarray(values, np.float64)
    if ks.shape != v.shape or ks.ndim != 1:
        raise ValueError(f"ks and values must be 1-D of equal length, got {ks.shape} and {v.shape}")
    ok = np.isfinite(v)
    ks, v = ks[ok], v[ok]
    if ks.size == 0 or not math.isfinite(target):
        return {"k": None, "censored": "undefined", "k_num": float("nan"), "bracket": None}
    if np.any(ks < 1) or np.any(np.diff(ks) <= 0):
        raise ValueError(f"budgets must be increasing and >= 1 (log scale), got {ks.tolist()}")
    hit = np.where(v >= target)[0]
    if hit.size == 0:
        return {"k": None, "censored": "above", "k_num": math.inf, "bracket": None}
    i = int(hit[0])
    if i == 0:
        return {"k": None, "censored": "below", "k_num": 0.0, "bracket": None}
    # v[i-1] < target <= v[i]: interpolate log k linearly in the metric
    t = (target - v[i - 1]) / (v[i] - v[i - 1])
    lk = math.log(ks[i - 1]) + t * (math.log(ks[i]) - math.log(ks[i - 1]))
    k = float(math.exp(lk))
    return {"k": k, "censored": None, "k_num": k, "bracket": [float(ks[i - 1]), float(ks[i])]}


def format_k(k_num: float, k_min: float, k_max: float) -> str:
    """``"7.3"``, ``"<2"`` (k_num 0) or ``">32"`` (k_num inf); ``"n/a"`` for NaN."""
    if math.isnan(k_num):
        return "n/a"
    if k_num == 0.0:
        return f"<{k_min:g}"
    if math.isinf(k_num):
        return f">{k_max:g}"
    return f"{k_num:.1f}"


def bootstrap_equivalence(ks: Sequence[float], real: np.ndarray, synth: np.ndarray, rng: np.random.Generator,
                          alpha: float = 0.05) -> dict:
    """Data-equivalence with a percentile interval.

    real: ``(B + 1, n_k, S)`` the real-only metric per test resample (row 0 =
    the test set itself, rows 1.. = bootstrap resamples of test images, shared
    with ``synth``), budget and seed; synth: ``(B + 1, S_syn)`` the
    synthetic-only metric per resample and synthetic model. Each bootstrap draw
    takes one test resample and resamples the seeds of both arms with
    replacement. Returns the point estimate (:func:`crossing_k` on the seed
    means of row 0), ``ci95`` as ``[lo, hi]`` k_num values (0 = below,
    inf = above), the share of censored draws and the target.
    """
    real = np.asarray(real, np.float64)
    synth = np.asarray(synth, np.float64)
    if real.ndim != 3 or synth.ndim != 2 or real.shape[0] != synth.shape[0] or real.shape[1] != len(ks):
        raise ValueError(f"real must be (B+1, {len(ks)}, S) and synth (B+1, S_syn), got {real.shape}, {synth.shape}")
    target = float(np.nanmean(synth[0]))
    point = crossing_k(ks, np.nanmean(real[0], axis=1), target)
    B, S, Ss = real.shape[0] - 1, real.shape[2], synth.shape[1]
    draws = np.empty(B)
    for b in range(B):
        si = rng.integers(0, S, S)
        sj = rng.integers(0, Ss, Ss)
        with np.errstate(all="ignore"):
            curve = np.nanmean(real[b + 1][:, si], axis=1)
            tgt = float(np.nanmean(synth[b + 1][sj]))
        draws[b] = crossing_k(ks, curve, tgt)["k_num"]
    draws = draws[~np.isnan(draws)]
    if draws.size:
        lo = float(np.quantile(draws, alpha / 2, method="lower"))
        hi = float(np.quantile(draws, 1 - alpha / 2, method="higher"))
    else:
        lo = hi = float("nan")
    return {**point, "target": target, "ci95": [lo, hi], "n_boot": int(draws.size),
            "share_below": float((draws == 0).mean()) if draws.size else float("nan"),
            "share_above": float(np.isinf(draws).mean()) if draws.size else float("nan"),
            "ks": [float(k) for k in ks], "curve": [float(x) for x in np.nanmean(real[0], axis=1)]}
