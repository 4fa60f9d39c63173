"""Kernel Inception Distance (KID, Bińkowski et al. 2018, "Demystifying MMD
GANs") between two sets of features, in numpy.

KID = the unbiased estimate of the squared MMD with the polynomial kernel
``k(x, y) = (x . y / d + 1) ** 3`` (d = feature dimension), averaged over
random subsets: each subset draws ``m`` rows of X and ``m`` rows of Y without
replacement (m = min(subset_size, n_x, n_y); the paper and torch-fidelity use
100 subsets of 1000), and the mean and standard deviation over subsets are
reported. Unbiased, so it is near 0 (and can be slightly negative) for two
samples of one distribution. Usually quoted x 1000.
"""
from __future__ import annotations

import numpy as np

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kid"]


def polynomial_kernel(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``(n, m)`` kernel matrix ``(X Y^T / d + 1) ** 3`` of X ``(n, d)``, Y ``(m, d)``."""
    d = X.shape[1]
    return (X @ Y.T / d + 1.0) ** 3


def mmd2_unbiased(X: np.ndarray, Y: np.ndarray) -> float:
    """Unbiased MMD^2 of samples X ``(m, d)`` and Y ``(n, d)`` (m, n >= 2):
    mean of k(x_i, x_j) over i != j + the same for Y - 2 mean of k(x_i, y_j)."""
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    m, n = len(X), len(Y)
    if m < 2 or n < 2 or X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"need X (m, d), Y (n, d) with m, n >= 2 and equal d, got {X.shape} and {Y.shape}")
    kxx, kyy, kxy = polynomial_kernel(X, X), polynomial_kernel(Y, Y), polynomial_kernel(X, Y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(X: np.ndarray, Y: np.ndarray, rng: np.random.Generator, n_subsets: int = 100, subset_size: int = 1000
        ) -> dict:
    """KID of feature sets X ``(n_x, d)`` and Y ``(n_y, d)``.

    Returns ``{"mean", "std", "subset_size", "n_subsets", "n_x", "n_y"}``
    (mean and std of the unbiased MMD^2 over the subsets, unscaled). When both
    sets are no larger than the subset size, every subset is the full sets and
    one is computed (std 0).
    """
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    m = min(subset_size, len(X), len(Y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {len(X)} and {len(Y)}")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    if m == len(X) == len(Y):
        vals = np.array([mmd2_unbiased(X, Y)])
    else:
        vals = np.array([mmd2_unbiased(X[rng.choice(len(X), m, replace=False)],
                                       Y[rng.choice(len(Y), m, replace=False)]) for _ in range(n_subsets)])
    return {"mean": float(vals.mean()), "std": float(vals.std()), "subset_size": int(m),
            "n_subsets": int(len(vals)), "n_x": int(len(X)), "n_y": int(len(Y))}
