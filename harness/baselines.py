"""Baselines: a shortcut classifier on trivial global features, and a
PatchCore-style reference-comparison (kNN) anomaly score.

The shortcut baseline answers "could a model score well without looking at
damage?": if logistic regression on brightness, near-white background fraction
and aspect ratio scores near the CNNs, the data has a shortcut.
"""
from __future__ import annotations

import numpy as np

__all__ = ["shortcut_features", "LogisticRegression", "patchcore_scores", "SHORTCUT_FEATURES"]

SHORTCUT_FEATURES = ("brightness", "near_white_fraction", "aspect_ratio")


def shortcut_features(images: np.ndarray, aspect: np.ndarray, white_level: int = 220) -> np.ndarray:
    """``(n, 3)`` float64: mean grey level in [0, 1], fraction of pixels whose
    three RGB channels are all >= ``white_level`` (near-white background), and the
    original width/height aspect ratio. images: ``(n, S, S, C)`` uint8."""
    rgb = images[..., :3].astype(np.float64)
    bright = rgb.mean(axis=(1, 2, 3)) / 255.0
    white = (images[..., :3] >= white_level).all(axis=3).mean(axis=(1, 2))
    return np.stack([bright, white, np.asarray(aspect, np.float64)], axis=1)


class LogisticRegression:
    """L2-regularised logistic regression fitted by Newton's method (numpy).

    Features are standardised with the training mean/std. ``l2`` is the penalty
    on the weights (not the intercept), per sample.
    """

    def __init__(self, l2: float = 1.0, max_iter: int = 50, tol: float = 1e-8) -> None:
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2, self.max_iter, self.tol = l2, max_iter, tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LogisticRegression":
        """Fit on features ``X`` (n, d) and 0/1 labels ``y`` (n,): standardise, then
        Newton steps until the largest step is below ``tol`` or ``max_iter`` steps.
        Returns self; ValueError for mismatched shapes."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y, np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
        self.mu = X.mean(0)
        self.sd = X.std(0) + 1e-9
        Z = np.c_[np.ones(len(X)), (X - self.mu) / self.sd]
        w = np.zeros(Z.shape[1])
        reg = np.r_[0.0, np.full(Z.shape[1] - 1, self.l2)]
        n = len(X)
        for _ in range(self.max_iter):
            p = 1 / (1 + np.exp(-Z @ w))
            grad = Z.T @ (p - y) / n + reg * w
            Hm = (Z * (p * (1 - p))[:, None]).T @ Z / n + np.diag(reg) + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(Hm, grad)
            w -= step
            if np.abs(step).max() < self.tol:
                break
        self.w = w
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` logits."""
        Z = np.c_[np.ones(len(X)), (np.asarray(X, np.float64) - self.mu) / self.sd]
        return Z @ self.w


def patchcore_scores(query_feats: np.ndarray, ref_feats: list[np.ndarray], query_masks: np.ndarray | None = None
                     ) -> np.ndarray:
    """PatchCore-style anomaly score: for each query, the largest distance from
    one of its patches to the nearest patch of its own reference bank.

    query_feats: ``(n, P, D)`` patch features; ref_feats: n arrays ``(R_i, D)``
    (the memory bank of query i, e.g. every patch of its SKU's pristine
    references); query_masks: ``(n, P)`` bool, patches to score (e.g. on the
    item), all when None. Returns ``(n,)`` float64, L2 distance units.
    """
    n = len(query_feats)
    if len(ref_feats) != n:
        raise ValueError(f"need one reference bank per query: {n} queries, {len(ref_feats)} banks")
    out = np.empty(n)
    for i in range(n):
        q = query_feats[i].astype(np.float32)
        r = ref_feats[i].astype(np.float32)
        d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * q @ r.T
        nn = np.sqrt(np.maximum(d2.min(1), 0))
        if query_masks is not None and query_masks[i].any():
            nn = nn[query_masks[i]]
        out[i] = float(nn.max())
    return out
