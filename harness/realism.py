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
from PIL import Image, ImageDraw

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


# ----------------------------------------------------------------------------- the realism gauge

MIN_SLICE = 2  # KID needs >= 2 rows per side


def _slice(name: str, what: str, real_idx: np.ndarray, syn_idx: np.ndarray, Fr: np.ndarray, Fs: np.ndarray,
           rng: np.random.Generator, n_subsets: int, subset_size: int) -> dict:
    rec = {"slice": name, "what": what, "n_real": int(len(real_idx)), "n_synthetic": int(len(syn_idx))}
    if len(real_idx) < MIN_SLICE or len(syn_idx) < MIN_SLICE:
        rec["kid_x1000"] = None
        rec["note"] = f"n/a: fewer than {MIN_SLICE} images on a side"
        return rec
    k = kid(Fr[real_idx], Fs[syn_idx], rng, n_subsets, subset_size)
    rec.update(kid_x1000=1000 * k["mean"], kid_std_x1000=1000 * k["std"], subset_size=k["subset_size"],
               n_subsets=k["n_subsets"])
    return rec


def realism_report(real, synth, Fr: np.ndarray, Fs: np.ndarray, rng: np.random.Generator, n_subsets: int = 100,
                   subset_size: int = 1000) -> dict:
    """KID x 1000 between real images and synthetic item crops on features
    ``Fr (n_real, d)``, ``Fs (n_syn, d)`` (rows of ``real`` / ``synth``, two
    :class:`harness.data.ImageSet`), for these slices:

    - ``overall``: every synthetic view vs every real image;
    - ``damaged`` / ``intact``: views and images of that label on both sides;
    - ``kind=K``: synthetic views of product kind K vs every real image (real
      photos carry no kind);
    - ``category=C``: damaged synthetic views of category C vs the real damaged
      images of category C when the real set has that category, else vs every
      real damaged image (``what`` says which);
    - ``severity=S``: damaged synthetic views of severity S vs real damaged;
    - ``real_split``: the real set against itself, two random halves: the
      noise floor of a KID at this real sample size (about 0 when the features
      are sane; its std says how far apart two real samples of this size land).
    """
    Fr, Fs = np.asarray(Fr, np.float64), np.asarray(Fs, np.float64)
    if len(Fr) != len(real) or len(Fs) != len(synth):
        raise ValueError(f"features ({len(Fr)}, {len(Fs)}) do not match the image sets ({len(real)}, {len(synth)})")
    ar, as_ = np.arange(len(real)), np.arange(len(synth))
    yr, ys = real.labels, synth.labels
    sl = [_slice("overall", "all synthetic views vs all real images", ar, as_, Fr, Fs, rng, n_subsets, subset_size),
          _slice("damaged", "damaged views vs damaged real images", ar[yr == 1], as_[ys == 1], Fr, Fs, rng,
                 n_subsets, subset_size),
          _slice("intact", "intact views vs intact real images", ar[yr == 0], as_[ys == 0], Fr, Fs, rng,
                 n_subsets, subset_size)]
    kinds = synth.kinds or [""] * len(synth)
    for kd in sorted({k for k in kinds if k}):
        idx = as_[np.array(kinds) == kd]
        sl.append(_slice(f"kind={kd}", f"synthetic {kd} views vs all real images", ar, idx, Fr, Fs, rng,
                         n_subsets, subset_size))
    rcats = np.array(real.categories)
    for c in sorted({c for c, y in zip(synth.categories, ys) if y and c}):
        sidx = as_[(ys == 1) & (np.array(synth.categories) == c)]
        ridx = ar[(yr == 1) & (rcats == c)]
        what = f"synthetic {c} views vs real {c} images"
        if len(ridx) < MIN_SLICE:
            ridx, what = ar[yr == 1], f"synthetic {c} views vs all damaged real images (real set has no {c!r})"
        sl.append(_slice(f"category={c}", what, ridx, sidx, Fr, Fs, rng, n_subsets, subset_size))
    sev = np.array(synth.severity or [""] * len(synth))
    for s in ("minor", "major"):
        sidx = as_[(ys == 1) & (sev == s)]
        if len(sidx):
            sl.append(_slice(f"severity={s}", f"synthetic {s}-damage views vs damaged real images", ar[yr == 1],
                             sidx, Fr, Fs, rng, n_subsets, subset_size))
    perm = rng.permutation(len(real))
    h = len(perm) // 2
    split = {"slice": "real_split", "what": "two random halves of the real set (noise floor)",
             "n_real": int(h), "n_synthetic": 0}
    if h >= MIN_SLICE:
        # many random splits: the spread of a real-vs-real KID at this size
        vals = []
        for _ in range(max(10, min(n_subsets, 50))):
            p = rng.permutation(len(real))
            vals.append(mmd2_unbiased(Fr[p[:h]], Fr[p[h:2 * h]]))
        split.update(kid_x1000=1000 * float(np.mean(vals)), kid_std_x1000=1000 * float(np.std(vals)),
                     subset_size=int(h), n_subsets=len(vals))
    else:
        split.update(kid_x1000=None, note="n/a: fewer than 4 real images")
    sl.append(split)
    return {"slices": sl, "n_real": int(len(real)), "n_synthetic": int(len(synth)),
            "kernel": "(x.y/d + 1)^3", "estimator": "unbiased MMD^2 (Binkowski et al. 2018), x1000"}


def nearest(Fa: np.ndarray, Fb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row of Fa ``(n, d)``, the ``k`` nearest rows of Fb ``(m, d)`` by
    cosine similarity: ``(indices (n, k), similarities (n, k))``, nearest first."""
    A = Fa / (np.linalg.norm(Fa, axis=1, keepdims=True) + 1e-12)
    Bm = Fb / (np.linalg.norm(Fb, axis=1, keepdims=True) + 1e-12)
    S = A @ Bm.T
    k = min(k, S.shape[1])
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(S, idx, 1)


def neighbours_picture(real, synth, Fr: np.ndarray, Fs: np.ndarray, path, rng: np.random.Generator,
                       n_rows: int = 6, k: int = 5, thumb: int = 96) -> dict:
    """PNG of two panels: ``n_rows`` sampled real images (left column, green
    frame = damaged, grey = intact), each with its ``k`` nearest synthetic crops;
    then ``n_rows`` sampled synthetic crops with their ``k`` nearest real images.
    Half of each sample is damaged when there are enough. Returns what was drawn
    (sources and similarities) for the JSON."""

    def sample(labels):
        pos, neg = np.where(labels == 1)[0], np.where(labels == 0)[0]
        npos = min(len(pos), (n_rows + 1) // 2)
        nneg = min(len(neg), n_rows - npos)
        npos = min(len(pos), n_rows - nneg)
        return np.r_[rng.choice(pos, npos, replace=False), rng.choice(neg, nneg, replace=False)].astype(int)

    qr, qs = sample(real.labels), sample(synth.labels)
    ir, sr = nearest(Fr[qr], Fs, k)
    is_, ss = nearest(Fs[qs], Fr, k)
    pad, head = 4, 18
    cols = k + 1
    W = cols * (thumb + pad) + pad + 10
    H = 2 * head + (len(qr) + len(qs)) * (thumb + pad + 12) + 2 * pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    dr = ImageDraw.Draw(canvas)

    def tile(img, label, x, y, text):
        t = Image.fromarray(np.ascontiguousarray(img[..., :3])).resize((thumb, thumb), Image.BILINEAR)
        canvas.paste(t, (x, y))
        dr.rectangle([x - 2, y - 2, x + thumb + 1, y + thumb + 1], outline=(0, 160, 0) if label else (150, 150, 150),
                     width=2)
        dr.text((x, y + thumb + 1), text, fill=(0, 0, 0))

    y = pad
    out = {"real_to_synthetic": [], "synthetic_to_real": []}
    for title, qset, qidx, nset, nidx, sims, key in (
            ("real photo -> nearest synthetic crops (cosine on backbone features)", real, qr, synth, ir, sr,
             "real_to_synthetic"),
            ("synthetic crop -> nearest real photos", synth, qs, real, is_, ss, "synthetic_to_real")):
        dr.text((pad, y), title + "   (green frame: damaged)", fill=(0, 0, 0))
        y += head
        for q, nn, sm in zip(qidx, nidx, sims):
            tile(qset.images[q], qset.labels[q], pad, y, "query")
            for j, (n, s) in enumerate(zip(nn, sm)):
                cat = nset.categories[n] or ("damaged" if nset.labels[n] else "intact")
                tile(nset.images[n], nset.labels[n], pad + 10 + (j + 1) * (thumb + pad), y, f"{s:.2f} {cat}"[:16])
            out[key].append({"query": qset.sources[q], "neighbours": [nset.sources[n] for n in nn],
                             "cosine": [float(s) for s in sm]})
            y += thumb + pad + 12
    canvas.save(path)
    return out


def realism_markdown(res: dict) -> str:
    """The slices as a markdown table (KID x1000, std over subsets, sizes)."""
    lines = ["| slice | KID x1000 | std (subsets) | n real | n synthetic | compared |", "|---|---|---|---|---|---|"]
    for s in res["slices"]:
        v = "n/a" if s.get("kid_x1000") is None else f"{s['kid_x1000']:.1f}"
        sd = "" if s.get("kid_std_x1000") is None else f"{s['kid_std_x1000']:.1f}"
        lines.append(f"| {s['slice']} | {v} | {sd} | {s['n_real']} | {s['n_synthetic']} | {s['what']} |")
    return "\n".join(lines) + "\n"
