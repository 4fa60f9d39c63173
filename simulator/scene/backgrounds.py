"""Surfaces a parcel may sit on, as tileable colour textures for the tray floor.

A domain-randomization draw (``randomization.tray_texture``): wood, concrete,
woven fabric or carpet, ribbed or pebbled rubber (conveyor belts, mats), brushed
steel and plain laminate. They are drawn independently of the damage, so a
detector cannot learn damage from them; they only teach it that the surface under
an item is not the item. Pure numpy: a texture is a pure function of its
description ``{"kind", "seed", "tile_mm", "color"}`` (see :func:`draw`)."""
from __future__ import annotations

from typing import Any

import numpy as np


#: texture kinds, and the (lo, hi) side of one repeat in millimetres
KINDS: dict[str, tuple[float, float]] = {
    "wood": (300.0, 600.0),
    "concrete": (400.0, 800.0),
    "fabric": (80.0, 200.0),
    "rubber": (100.0, 250.0),
    "steel": (300.0, 600.0),
    "laminate": (400.0, 800.0),
}

#: sRGB base colour ranges per kind (lo, hi per channel, 0..1)
_COLORS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "wood": ((0.45, 0.30, 0.17), (0.80, 0.62, 0.42)),
    "concrete": ((0.45, 0.45, 0.44), (0.72, 0.71, 0.68)),
    "fabric": ((0.15, 0.15, 0.18), (0.65, 0.62, 0.60)),
    "rubber": ((0.07, 0.07, 0.08), (0.25, 0.25, 0.26)),
    "steel": ((0.55, 0.56, 0.58), (0.78, 0.79, 0.80)),
    "laminate": ((0.70, 0.70, 0.68), (0.93, 0.93, 0.91)),
}

#: texture side in pixels (power of two: GL mipmaps, seamless periodic noise)
SIZE = 512


def periodic_noise(rng: np.random.Generator, h: int, w: int, sigma_px: tuple[float, float]) -> np.ndarray:
    """(h, w) float32 zero-mean, unit-std white noise blurred by a wrap-around
    Gaussian of ``sigma_px`` (rows, cols), so it tiles seamlessly. Filtered in
    the Fourier domain: the cost does not grow with the blur."""
    z = rng.standard_normal((h, w))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    g = np.exp(-2.0 * np.pi**2 * ((fy * sigma_px[0]) ** 2 + (fx * sigma_px[1]) ** 2))
    z = np.fft.irfft2(np.fft.rfft2(z) * g, s=(h, w))
    return ((z - z.mean()) / max(float(z.std()), 1e-12)).astype(np.float32)


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """One surface description: kind, texture seed, repeat size (mm) and base
    colour (sRGB, 0..1). Fabric may be a saturated colour (a blue or red mat)."""
    kind = str(rng.choice(list(KINDS)))
    lo, hi = (np.asarray(c) for c in _COLORS[kind])
    t = rng.uniform(0.0, 1.0)
    color = (lo + t * (hi - lo)) * np.exp(rng.normal(0.0, 0.03, 3))
    if kind == "fabric" and rng.random() < 0.4:
        color = color * np.exp(rng.normal(0.0, 0.35, 3))
    return {"kind": kind, "seed": int(rng.integers(2**31)), "tile_mm": float(rng.uniform(*KINDS[kind])),
            "color": np.clip(color, 0.02, 0.98).round(4).tolist()}


def texture(desc: dict[str, Any]) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8 sRGB tileable texture of a surface ``desc`` (from
    :func:`draw`); deterministic in ``desc``."""
    kind = desc["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown tray texture kind {kind!r}; expected one of {sorted(KINDS)}")
    rng = np.random.default_rng(int(desc["seed"]))
    n = SIZE
    y, x = np.mgrid[0:n, 0:n] / n
    if kind == "wood":
        # planks along x: per-plank shade, long grain streaks, growth rings bending around knots
        planks = int(rng.integers(2, 6))
        plank = np.floor(y * planks).astype(int)
        shade = 1.0 + 0.12 * rng.standard_normal(planks)[plank]
        warp = periodic_noise(rng, n, n, (40, 40)) * 0.03
        rings = np.sin(2 * np.pi * (y * int(rng.integers(20, 46)) + warp * 30 + 0.3 * periodic_noise(rng, n, n, (60, 8))))
        streak = periodic_noise(rng, n, n, (1.0, 30.0))
        v = shade * (1.0 + 0.07 * rings + 0.08 * streak)
        # the dark gap between planks, one pixel either side of each boundary (the
        # texture's own edge is one: the repeat stays seamless)
        f = (y * planks) % 1.0
        seam = np.minimum(f, 1.0 - f) < 1.01 * planks / n
        v = np.where(seam, v * 0.6, v)
    elif kind == "concrete":
        v = (1.0 + 0.10 * periodic_noise(rng, n, n, (30, 30)) + 0.06 * periodic_noise(rng, n, n, (4, 4))
             + 0.05 * periodic_noise(rng, n, n, (0.7, 0.7)))
        pits = rng.random((n, n)) < 0.004
        v = np.where(pits, v * 0.65, v)
        stain = np.clip(periodic_noise(rng, n, n, (50, 50)) - 1.2, 0, None)
        v = v * (1.0 - 0.25 * stain)
    elif kind == "fabric":
        # plain weave: warp and weft threads alternating over and under
        threads = int(rng.choice([64, 96, 128]))
        u, w = x * threads, y * threads
        over = ((np.floor(u) + np.floor(w)) % 2).astype(bool)
        across = np.where(over, np.sin(np.pi * (w % 1.0)), np.sin(np.pi * (u % 1.0)))
        v = (0.82 + 0.22 * across) * (1.0 + 0.06 * periodic_noise(rng, n, n, (12, 12)))
        v = v * (1.0 + 0.05 * periodic_noise(rng, n, n, (0.6, 0.6)))
    elif kind == "rubber":
        if rng.random() < 0.5:  # ribbed belt
            ribs = int(rng.choice([32, 48, 64]))
            v = 1.0 + 0.35 * np.cos(2 * np.pi * y * ribs) ** 8
        else:  # pebbled mat
            k = int(rng.choice([24, 32, 48]))
            d = np.hypot((x * k) % 1.0 - 0.5, (y * k) % 1.0 - 0.5)
            v = 1.0 + 0.45 * (d < 0.28)
        v = v * (1.0 + 0.15 * periodic_noise(rng, n, n, (20, 20)) + 0.08 * periodic_noise(rng, n, n, (0.7, 0.7)))
        dust = np.clip(periodic_noise(rng, n, n, (40, 40)) - 1.0, 0, None)
        v = v * (1.0 + 0.25 * dust)
    elif kind == "steel":
        v = 1.0 + 0.05 * periodic_noise(rng, n, n, (0.5, 40.0)) + 0.03 * periodic_noise(rng, n, n, (25, 25))
        scratches = periodic_noise(rng, n, n, (0.4, 12.0)) > 2.6
        v = np.where(scratches, v * 1.12, v)
    else:  # laminate: a faint mottle and wiped marks
        v = 1.0 + 0.025 * periodic_noise(rng, n, n, (20, 20)) + 0.015 * periodic_noise(rng, n, n, (1, 1))
    # a slow colour drift (uneven wear, light soiling) shared by the channels, barely tinted
    drift = periodic_noise(rng, n, n, (60, 60))
    tint = np.exp(0.035 * drift[..., None] * np.array([1.0, 0.95, 0.85]))
    rgb = np.asarray(desc["color"], float)[None, None, :] * v[..., None] * tint
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
