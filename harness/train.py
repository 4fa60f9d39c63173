"""Training and scoring loops (torch). Every random draw (init, batches,
augmentation, dropout) comes from an explicitly seeded ``torch.Generator`` or
a seed passed in; nothing here seeds torch's global generator."""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import ImageSet
from .models import DamageNet, pick_device

__all__ = ["TrainConfig", "new_model", "train", "predict", "to_tensor", "augment"]


@dataclass(frozen=True)
class TrainConfig:
    """steps: optimizer steps; batch: images per step; lr: AdamW learning rate;
    seg_weight: weight of the segmentation loss on samples that have masks;
    balance: draw positives and negatives equally often; augment: flips,
    scale/shift jitter and colour jitter."""

    steps: int = 300
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seg_weight: float = 0.5
    balance: bool = True
    augment: bool = True

    def __post_init__(self) -> None:
        for k in ("steps", "batch"):
            if getattr(self, k) < 1:
                raise ValueError(f"TrainConfig.{k} must be >= 1, got {getattr(self, k)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")


@contextlib.contextmanager
def _fork_rng(seed: int, device: torch.device):
    """Run a block with torch's global RNG (used by init and dropout) set from
    ``seed`` and restored afterwards, so library calls never leak seeding."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def new_model(seed: int, in_ch: int = 3, width: int = 16, seg_head: bool = True) -> DamageNet:
    """A freshly initialised :class:`DamageNet`, its init drawn from ``seed``."""
    with _fork_rng(seed, torch.device("cpu")):
        return DamageNet(in_ch, width, seg_head)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(n, S, S, C)`` uint8 -> ``(n, C, S, S)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def augment(x: torch.Tensor, m: torch.Tensor | None, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flip, scale/shift (affine, 0.8-1.15x, +-8%), brightness,
    contrast and saturation jitter on RGB. x: ``(B, C, S, S)`` in [0, 1]; m: ``(B, 1, S, S)``."""
    B = x.shape[0]
    dev = x.device
    r = lambda *s: torch.rand(*s, generator=g).to(dev)  # noqa: E731
    flip = r(B) < 0.5
    x = torch.where(flip.view(B, 1, 1, 1), x.flip(3), x)
    if m is not None:
        m = torch.where(flip.view(B, 1, 1, 1), m.flip(3), m)
    scale = 0.8 + 0.35 * r(B)
    shift = (r(B, 2) - 0.5) * 0.16
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if m is not None:
        m = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    rgb = x[:, :3]
    rgb = rgb * (0.7 + 0.6 * r(B, 1, 1, 1))                                   # brightness
    mean = rgb.mean((1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * (0.7 + 0.6 * r(B, 1, 1, 1)) + mean                   # contrast
    grey = rgb.mean(1, keepdim=True)
    rgb = (rgb - grey) * (0.5 + 1.0 * r(B, 1, 1, 1)) + grey                   # saturation
    x = torch.cat([rgb.clamp(0, 1), x[:, 3:]], 1)
    return x, m


def _batch_indices(labels: np.ndarray, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    n = len(labels)
    if cfg.balance and 0 < labels.sum() < n:
        w = np.where(labels == 1, 0.5 / labels.sum(), 0.5 / (n - labels.sum()))
    else:
        w = np.full(n, 1.0 / n)
    return torch.multinomial(torch.from_numpy(w), cfg.batch, replacement=True, generator=g)


def train(model: DamageNet, data: ImageSet, cfg: TrainConfig, seed: int, device: str = "auto",
          progress: bool = False, desc: str = "train") -> dict:
    """Train ``model`` in place on ``data`` for ``cfg.steps`` steps.

    Loss = BCE(image logit, label) + seg_weight * BCE(seg logits, mask at S/4)
    on samples with masks (when the model has a seg head). Returns
    ``{"losses": [per-step total loss], "seconds": float, "steps": int}``.
    """

    if len(data) == 0:
        raise ValueError("cannot train on an empty ImageSet")
    dev = pick_device(device)
    model.to(dev).train()
    g = torch.Generator().manual_seed(seed)
    X = to_tensor(data.images)
    Y = torch.from_numpy(data.labels).float()
    M = torch.from_numpy(data.masks).float().unsqueeze(1) if data.masks is not None else None
    H = torch.from_numpy(data.has_mask) if data.has_mask is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    losses = []
    t0 = time.perf_counter()
    with _fork_rng(seed + 1, dev):  # dropout draws from the global RNG: keep it forked
        for _ in tqdm(range(cfg.steps), desc=desc, unit="step", disable=not progress, leave=False):
            idx = _batch_indices(data.labels, cfg, g)
            x = X[idx].to(dev)
            m = M[idx].to(dev) if M is not None else None
            if cfg.augment:
                x, m = augment(x, m, g)
            logit, seg = model(x)
            loss = F.binary_cross_entropy_with_logits(logit, Y[idx].to(dev))
            if seg is not None and m is not None and cfg.seg_weight > 0:
                has = H[idx].to(dev)
                if has.any():
                    target = F.adaptive_max_pool2d(m, seg.shape[2:])
                    loss = loss + cfg.seg_weight * F.binary_cross_entropy_with_logits(seg[has], target[has])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    return {"losses": losses, "seconds": time.perf_counter() - t0, "steps": cfg.steps}


@torch.no_grad()
def predict(model: DamageNet, images: np.ndarray, device: str = "auto", batch: int = 128) -> np.ndarray:
    """Damage scores ``(n,)`` float64 (logits; higher = more likely damaged)
    for ``(n, S, S, C)`` uint8 images."""
    dev = pick_device(device)
    model.to(dev).eval()
    out = []
    for i in range(0, len(images), batch):
        logit, _ = model(to_tensor(images[i:i + batch]).to(dev))
        out.append(logit.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def clone(model: DamageNet) -> DamageNet:
    """A deep copy of ``model`` (weights, buffers, head), independent of the original."""
    return copy.deepcopy(model)
