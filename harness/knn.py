"""Reference-comparison baseline on synthetic query/reference pairs: each query
view is scored by PatchCore-style kNN distance of its backbone patch features
to the patches of its SKU's pristine reference views (same camera)."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics as M
from .baselines import patchcore_scores
from .data import load_references
from .models import pick_device
from .train import new_model, to_tensor

__all__ = ["patch_features", "knn_baseline"]


@torch.no_grad()
def patch_features(model, images: np.ndarray, device: str = "auto", batch: int = 64) -> np.ndarray:
    """``(n, P, D)`` float32: stride-8 features concatenated with upsampled
    stride-16 features, 3x3 average-pooled (PatchCore's local neighbourhood);
    P = (S/8)^2 patches. images: ``(n, S, S, C)`` uint8."""
    dev = pick_device(device)
    model.to(dev).eval()
    out = []
    for i in range(0, len(images), batch):
        f = model.features(to_tensor(images[i:i + batch]).to(dev))
        a = f["s8"]
        b = F.interpolate(f["s16"], size=a.shape[2:], mode="bilinear", align_corners=False)
        x = F.avg_pool2d(torch.cat([a, b], 1), 3, 1, 1)
        out.append(x.flatten(2).transpose(1, 2).cpu().numpy())
    return np.concatenate(out)


def knn_baseline(root, checkpoint=None, size: int = 96, width: int = 16, seed: int = 0, device: str = "auto") -> dict:
    """Metrics of the kNN anomaly score on ``root``'s captures vs its references."""
    t = time.perf_counter()
    q, ref, q_sku, r_sku = load_references(root, size=size)
    if checkpoint:
        ck = torch.load(checkpoint, map_location="cpu")
        model = new_model(seed, ck["in_ch"], ck["width"], seg_head=any(k.startswith("seg.") for k in ck["state"]))
        model.load_state_dict(ck["state"])
        backbone = f"checkpoint {checkpoint}"
    else:
        model = new_model(seed, 3, width, seg_head=False)
        backbone = f"random-init DamageNet (seed {seed})"
    fq = patch_features(model, q.images, device)
    fr = patch_features(model, ref.images, device)
    cam = lambda s: s.rsplit("/", 1)[1]  # noqa: E731
    banks = []
    for i, (sku, src) in enumerate(zip(q_sku, q.sources)):
        sel = [j for j, (rs, rsrc) in enumerate(zip(r_sku, ref.sources)) if rs == sku and cam(rsrc) == cam(src)]
        sel = sel or [j for j, rs in enumerate(r_sku) if rs == sku]
        banks.append(fr[sel].reshape(-1, fr.shape[2]))
    s = patchcore_scores(fq, banks)
    res = M.summarize(q.labels, s, np.random.default_rng(seed), q.categories)
    res.update({"backbone": backbone, "queries": q.counts(), "references": len(ref),
                "seconds": time.perf_counter() - t})
    return res
