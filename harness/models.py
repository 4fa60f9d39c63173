"""Models in plain torch: a compact residual CNN that outputs an image-level
damage logit, with an optional segmentation head trained on synthetic masks.

Import cost: this module imports torch; ``import harness`` does not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResBlock", "DamageNet", "pick_device"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class ResBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU with an identity (or 1x1 strided) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, H, W)`` -> ``(B, cout, H/stride, W/stride)``."""
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.short(x))


class DamageNet(nn.Module):
    """Input ``(B, C, S, S)`` float in [0, 1] (C = 3 RGB or 4 RGB-D), S divisible by 16.

    forward -> ``(logit (B,), seg (B, 1, S/4, S/4) logits or None)``.
    ``features(x)`` -> dict of stride-4/8/16 feature maps for the kNN baseline.
    A 4-channel model can take RGB-only input: the depth channel is zero-filled
    and flagged absent by a learned bias (``rgb_only=True``).
    """

    def __init__(self, in_ch: int = 3, width: int = 24, seg_head: bool = False) -> None:
        super().__init__()
        w = width
        self.in_ch = in_ch
        self.stem = nn.Sequential(nn.Conv2d(in_ch, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.l1 = ResBlock(w, w, 2)           # S/4
        self.l2 = ResBlock(w, 2 * w, 2)       # S/8
        self.l3 = ResBlock(2 * w, 4 * w, 2)   # S/16
        self.l4 = ResBlock(4 * w, 4 * w, 1)   # S/16
        self.head = nn.Linear(4 * w, 1)
        self.drop = nn.Dropout(0.2)
        self.seg = None
        if seg_head:
            self.seg = nn.Sequential(nn.Conv2d(w + 4 * w, w, 3, 1, 1), nn.ReLU(), nn.Conv2d(w, 1, 1))
        self.register_buffer("mean", torch.tensor([0.5] * in_ch).view(1, in_ch, 1, 1))
        self.register_buffer("std", torch.tensor([0.25] * in_ch).view(1, in_ch, 1, 1))

    def _trunk(self, x: torch.Tensor) -> dict:
        if x.shape[1] != self.in_ch:
            if x.shape[1] == 3 and self.in_ch == 4:
                x = torch.cat([x, torch.zeros_like(x[:, :1])], 1)
            else:
                raise ValueError(f"input must have {self.in_ch} channels, got shape {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        f1 = self.l1(self.stem(x))
        f2 = self.l2(f1)
        f4 = self.l4(self.l3(f2))
        return {"s4": f1, "s8": f2, "s16": f4}

    def features(self, x: torch.Tensor) -> dict:
        """The trunk's feature maps of ``x`` (B, C, S, S): {``s4``: (B, w, S/4, S/4),
        ``s8``: (B, 2w, S/8, S/8), ``s16``: (B, 4w, S/16, S/16)}. ValueError when ``x``
        has neither ``in_ch`` channels nor 3 for a 4-channel model."""
        return self._trunk(x)

    def forward(self, x: torch.Tensor):
        """``x`` (B, C, S, S) float in [0, 1] -> (damage logit (B,), segmentation logits
        (B, 1, S/4, S/4) or None without a seg head)."""
        f = self._trunk(x)
        g = f["s16"].mean((2, 3))
        logit = self.head(self.drop(g)).squeeze(1)
        seg = None
        if self.seg is not None:
            up = F.interpolate(f["s16"], size=f["s4"].shape[2:], mode="bilinear", align_corners=False)
            seg = self.seg(torch.cat([f["s4"], up], 1))
        return logit, seg
