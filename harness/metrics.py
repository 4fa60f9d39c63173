"""Detection metrics in plain numpy: AUROC, AP, recall at a fixed false-positive
rate, per-category recall and percentile-bootstrap intervals.

Conventions: ``y`` is ``(n,)`` int/bool with 1 = damaged (positive); ``s`` is
``(n,)`` float, higher = more likely damaged. Ties in scores are handled the way
scikit-learn does (one ROC point per distinct threshold), so ``roc_auc`` and
``average_precision`` match ``sklearn.metrics`` on the same inputs.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

__all__ = ["roc_curve", "roc_auc", "average_precision", "recall_at_fpr", "threshold_at_fpr", "recall_at_precision",
           "ap_major",
           "per_category_recall", "bootstrap_ci", "summarize", "min_negatives_for_fpr", "VAND_METRICS", "vand_point",
           "vand_per_category"]

# VAND 2026 retail track (Kaputt 2) metric names, in its ranking order
VAND_METRICS = ("AP_any", "AP_major", "AUROC", "recall@50%precision", "recall@1%FPR", "recall@0.1%FPR")


def _check(y, s) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    s = np.asarray(s, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got shapes {y.shape} and {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite, got {int((~np.isfinite(s)).sum())} non-finite values")
    u = np.unique(y)
    if not np.all(np.isin(u, [0, 1])):
        raise ValueError(f"labels must be 0/1, got values {u.tolist()}")
    return y.astype(np.int64), s


def roc_curve(y, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points, one per distinct score threshold (highest first), starting at (0, 0).

    Returns ``(fpr, tpr, thresholds)``, each ``(m + 1,)``; ``thresholds[0] = +inf``.
    A sample is called positive when ``score >= threshold``.
    """
    y, s = _check(y, s)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.where(np.diff(s_sorted))[0]
    last = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    P, N = int(y.sum()), int(y.size - y.sum())
    tpr = np.r_[0.0, tps / P] if P else np.r_[0.0, np.full(tps.shape, np.nan)]
    fpr = np.r_[0.0, fps / N] if N else np.r_[0.0, np.full(fps.shape, np.nan)]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def roc_auc(y, s) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, s = _check(y, s)
    if y.sum() == 0 or y.sum() == y.size:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def _pr_points(y, s) -> tuple[np.ndarray, np.ndarray, int]:
    """At each distinct score threshold (descending): true positives and
    predicted positives at or above it, and the number of positives P."""
    y, s = _check(y, s)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.where(np.diff(s_sorted))[0], y.size - 1]
    return np.cumsum(y_sorted)[last], last + 1, int(y.sum())


def average_precision(y, s) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (no interpolation,
    as ``sklearn.metrics.average_precision_score``); NaN without positives."""
    tps, n_pred, P = _pr_points(y, s)
    if P == 0:
        return float("nan")
    precision = tps / n_pred
    recall = tps / P
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_precision(y, s, precision: float = 0.5) -> float:
    """Largest recall among the thresholds whose precision is >= ``precision``
    (VAND's "recall at 50% precision"); 0 when no threshold reaches it, NaN
    without positives."""
    tps, n_pred, P = _pr_points(y, s)
    if P == 0:
        return float("nan")
    ok = tps / n_pred >= precision - 1e-12
    return float(tps[ok].max() / P) if ok.any() else 0.0


def ap_major(y, s, severity: Sequence) -> float:
    """AP with only major damage as positives: minor-damaged samples are left
    out, intact ones stay negatives. ``severity`` ``(n,)`` of "major"/"minor"/""
    (intact or unknown). NaN when no positive is major."""
    y, s = _check(y, s)
    sev = np.asarray([v or "" for v in severity], dtype=object)
    if sev.shape != y.shape:
        raise ValueError(f"severity must have shape {y.shape}, got {sev.shape}")
    keep = (y == 0) | (sev == "major")
    if not ((y == 1) & keep).any():
        return float("nan")
    return average_precision(y[keep], s[keep])


def min_negatives_for_fpr(fpr: float) -> int:
    """Negatives needed before a false-positive rate of ``fpr`` is resolvable
    (one false positive is then at most ``fpr`` of them): ceil(1 / fpr)."""
    return int(math.ceil(1.0 / fpr - 1e-9))


def threshold_at_fpr(y, s, fpr: float) -> float:
    """Lowest threshold whose false-positive rate on (y, s) is <= ``fpr``.

    Meant to be chosen on a calibration set and then applied to test scores.
    Returns +inf when no threshold reaches the rate (nothing is called damaged).
    """
    f, _, th = roc_curve(y, s)
    ok = np.where(f <= fpr + 1e-12)[0]
    return float(th[ok[-1]])


def recall_at_fpr(y, s, fpr: float) -> dict:
    """Recall (TPR) at the best operating point whose FPR <= ``fpr`` on this set.

    Returns ``{"value": float, "n_neg": int, "resolvable": bool, "note": str}``;
    ``resolvable`` is False when the set has fewer than ceil(1/fpr) negatives, in
    which case the only admissible point is FPR = 0 and ``value`` is the recall at
    zero false positives (a lower bound, stated in ``note``).
    """
    y, s = _check(y, s)
    n_neg = int((y == 0).sum())
    if y.sum() == 0 or n_neg == 0:
        return {"value": float("nan"), "n_neg": n_neg, "resolvable": False, "note": "one class only"}
    f, t, _ = roc_curve(y, s)
    value = float(t[f <= fpr + 1e-12].max())
    need = min_negatives_for_fpr(fpr)
    resolvable = n_neg >= need
    note = "" if resolvable else (f"only {n_neg} negatives (< {need} needed to resolve FPR {fpr:g}); "
                                  "value is recall at zero false positives")
    return {"value": value, "n_neg": n_neg, "resolvable": resolvable, "note": note}


def per_category_recall(y, s, categories: Sequence, threshold: float) -> dict[str, dict]:
    """Recall per damage category of positives at a fixed ``threshold``.

    ``categories`` is ``(n,)`` of str (``""`` or None for intact / unknown);
    returns ``{category: {"recall": float, "n": int}}`` over positive samples.
    """
    y, s = _check(y, s)
    cats = np.asarray([c if c else "" for c in categories], dtype=object)
    if cats.shape != y.shape:
        raise ValueError(f"categories must have shape {y.shape}, got {cats.shape}")
    out = {}
    for c in sorted({c for c in cats[y == 1] if c}):
        m = (y == 1) & (cats == c)
        out[c] = {"recall": float((s[m] >= threshold).mean()), "n": int(m.sum())}
    return out


def bootstrap_ci(y, s, metric: Callable[[np.ndarray, np.ndarray], float], rng: np.random.Generator,
                 n_boot: int = 1000, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y, s)``, resampling within each
    class (stratified, so every resample has both classes). Returns ``(lo, hi)``;
    NaN when the metric is undefined."""
    y, s = _check(y, s)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    if pos.size == 0 or neg.size == 0:
        return float("nan"), float("nan")
    vals = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        vals[b] = metric(y[idx], s[idx])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))


def summarize(y, s, rng: np.random.Generator, categories: Sequence | None = None,
              threshold: float | None = None, n_boot: int = 1000,
              fprs: Sequence[float] = (0.01, 0.001)) -> dict:
    """All metrics of one scored test set, with bootstrap 95% intervals.

    ``threshold`` (chosen elsewhere, never on this set) drives per-category
    recall; when None, per-category recall is computed at the test FPR-1% point
    and flagged ``"threshold": "test"`` (descriptive only).
    """
    y, s = _check(y, s)
    out: dict = {"n": int(y.size), "n_pos": int(y.sum()), "n_neg": int((y == 0).sum())}
    for name, fn in (("auroc", roc_auc), ("ap", average_precision)):
        lo, hi = bootstrap_ci(y, s, fn, rng, n_boot)
        out[name] = {"value": fn(y, s), "ci95": [lo, hi]}
    for f in fprs:
        r = recall_at_fpr(y, s, f)
        lo, hi = bootstrap_ci(y, s, lambda a, b, f=f: recall_at_fpr(a, b, f)["value"], rng, n_boot)
        r["ci95"] = [lo, hi]
        out[f"recall@fpr{f:g}"] = r
    if categories is not None:
        th_src = "given"
        if threshold is None:
            threshold, th_src = threshold_at_fpr(y, s, 0.01), "test"
        out["per_category_recall"] = {"threshold": float(threshold), "threshold_from": th_src,
                                      "recall": per_category_recall(y, s, categories, threshold)}
    return out


def _curve_metrics(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """(AUROC, AP, recall@50% precision, fpr, tpr) from one sort; y, s checked."""
    P, N = int(y.sum()), int(y.size - y.sum())
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.where(np.diff(s_sorted))[0], y.size - 1]
    tps = np.cumsum(y_sorted)[last]
    n_pred = last + 1
    if P == 0:
        return float("nan"), float("nan"), float("nan"), np.zeros(1), np.zeros(1)
    precision, recall = tps / n_pred, tps / P
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    ok = precision >= 0.5 - 1e-12
    r50 = float(recall[ok].max()) if ok.any() else 0.0
    if N == 0:
        return float("nan"), ap, r50, np.zeros(1), np.zeros(1)
    fpr, tpr = np.r_[0.0, (n_pred - tps) / N], np.r_[0.0, recall]
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return auroc, ap, r50, fpr, tpr


def vand_point(y, s, severity: Sequence | None = None) -> dict[str, float]:
    """The VAND metrics of one scored set, point values (``VAND_METRICS`` keys).

    AP_any: AP with every damaged sample positive; AP_major: AP with only major
    damage positive (minor left out; NaN without severity labels or major
    positives); recall@50%precision; recall@1%FPR and recall@0.1%FPR on this
    set's own ROC curve (the VAND definition; 0.1% is NaN unless the set has
    >= 1000 negatives, 1% is reported always and is the recall at zero false
    positives below 100 negatives: see :func:`recall_at_fpr`). Same values as
    :func:`roc_auc`, :func:`average_precision`, :func:`recall_at_precision`
    and :func:`recall_at_fpr`, from one sort.
    """
    y, s = _check(y, s)
    auroc, ap, r50, fpr, tpr = _curve_metrics(y, s)
    n_neg = int((y == 0).sum())
    out = {"AP_any": ap, "AP_major": float("nan"), "AUROC": auroc, "recall@50%precision": r50}
    for name, f in (("recall@1%FPR", 0.01), ("recall@0.1%FPR", 0.001)):
        if y.sum() == 0 or n_neg == 0 or (f < 0.01 and n_neg < min_negatives_for_fpr(f)):
            out[name] = float("nan")
        else:
            out[name] = float(tpr[fpr <= f + 1e-12].max())
    if severity is not None:
        sev = np.asarray([v or "" for v in severity], dtype=object)
        if sev.shape != y.shape:
            raise ValueError(f"severity must have shape {y.shape}, got {sev.shape}")
        keep = (y == 0) | (sev == "major")
        if ((y == 1) & keep).any() and n_neg:
            out["AP_major"] = _curve_metrics(y[keep], s[keep])[1]
    return out


def vand_per_category(y, s, categories: Sequence) -> dict[str, dict[str, float]]:
    """AUROC and AP_any per damage category: the positives of that category
    against every negative. ``{category: {"AUROC", "AP_any", "n_pos"}}``."""
    y, s = _check(y, s)
    cats = np.asarray([c or "" for c in categories], dtype=object)
    out = {}
    for c in sorted({c for c in cats[y == 1] if c}):
        keep = (y == 0) | (cats == c)
        auroc, ap, *_ = _curve_metrics(y[keep], s[keep])
        out[c] = {"AUROC": auroc, "AP_any": ap, "n_pos": int(((y == 1) & keep).sum())}
    return out


def vand_weighted(y, s, counts: np.ndarray, severity: Sequence | None = None,
                  categories: Sequence | None = None) -> dict:
    """:func:`vand_point` (and AUROC / AP_any per category) for many resamples
    at once, each given as per-sample counts: ``counts`` ``(B, n)`` >= 0 (row b
    = how often each of the n samples appears in resample b; a row of ones is
    the set itself). Equal to :func:`vand_point` on the expanded resample
    (tested), in one sort of ``s``: the order of distinct scores is the same in
    every resample, only their multiplicities change. Returns ``{metric: (B,)}``
    and, with categories, ``{"per_category": {c: {"AUROC": (B,), "AP_any": (B,)}}}``.
    """
    y, s = _check(y, s)
    C = np.asarray(counts, np.float64)
    if C.ndim != 2 or C.shape[1] != y.size:
        raise ValueError(f"counts must be (B, {y.size}), got {C.shape}")
    order = np.argsort(-s, kind="mergesort")
    ys, ss, Cs = y[order], s[order], C[:, order]
    starts = np.r_[0, np.where(np.diff(ss))[0] + 1]  # first index of each distinct score (descending)

    def curves(pos_w: np.ndarray, neg_w: np.ndarray) -> dict:
        """pos_w, neg_w: (B, n) weights of positives / negatives in sorted order."""
        tps = np.add.reduceat(pos_w, starts, axis=1).cumsum(1)
        fps = np.add.reduceat(neg_w, starts, axis=1).cumsum(1)
        P, N = tps[:, -1:], fps[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            rec = tps / P
            prec = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            ap = (np.diff(np.c_[np.zeros(len(rec)), rec], axis=1) * prec).sum(1)
            tpr, fpr = np.c_[np.zeros(len(rec)), rec], np.c_[np.zeros(len(rec)), fps / N]
            auroc = (np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2).sum(1)
        P, N = P[:, 0], N[:, 0]
        ap[P == 0] = np.nan
        auroc[(P == 0) | (N == 0)] = np.nan
        return {"ap": ap, "auroc": auroc, "rec": rec, "prec": prec, "tpr": tpr, "fpr": fpr, "P": P, "N": N,
                "pred": tps + fps}

    pos, neg = Cs * (ys == 1), Cs * (ys == 0)
    c = curves(pos, neg)
    out = {"AP_any": c["ap"], "AUROC": c["auroc"]}
    ok = (c["prec"] >= 0.5 - 1e-12) & (c["pred"] > 0)
    r50 = np.where(ok, c["rec"], 0.0).max(1)
    r50[c["P"] == 0] = np.nan
    out["recall@50%precision"] = r50
    for name, f in (("recall@1%FPR", 0.01), ("recall@0.1%FPR", 0.001)):
        v = np.where(c["fpr"] <= f + 1e-12, c["tpr"], -np.inf).max(1)
        bad = (c["P"] == 0) | (c["N"] == 0) | ((f < 0.01) & (c["N"] < min_negatives_for_fpr(f)))
        out[name] = np.where(bad, np.nan, v)
    out["AP_major"] = np.full(len(C), np.nan)
    if severity is not None:
        sev = np.asarray([v or "" for v in severity], dtype=object)
        if sev.shape != y.shape:
            raise ValueError(f"severity must have shape {y.shape}, got {sev.shape}")
        major = (sev[order] == "major") & (ys == 1)
        if major.any():
            cm = curves(Cs * major, neg)
            out["AP_major"] = np.where(cm["N"] > 0, cm["ap"], np.nan)
    out = {m: out[m] for m in VAND_METRICS}
    if categories is not None:
        cats = np.asarray([v or "" for v in categories], dtype=object)[order]
        pc = {}
        for cat in sorted({v for v in cats[ys == 1] if v}):
            cc = curves(Cs * ((ys == 1) & (cats == cat)), neg)
            pc[cat] = {"AUROC": cc["auroc"], "AP_any": cc["ap"]}
        out["per_category"] = pc
    return out
