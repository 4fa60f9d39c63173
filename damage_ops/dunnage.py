"""Dunnage for opened cartons: crumpled packing paper, bubble wrap and air
pillows as closed, deterministic meshes (from ``rng``) that fill a pocket.

Every piece is a displaced icosphere: radial displacement of a sphere keeps the
surface closed (watertight) and free of self-intersections as long as the
radius stays positive, which it does here (clipped)."""
from __future__ import annotations

import numpy as np
import trimesh

# kind -> material of its pieces (names in assets/materials/default.yaml)
KINDS = {"paper_kraft": "kraft_paper", "paper_white": "paper", "paper_pink": "packing_paper_pink",
         "bubble_wrap": "bubble_wrap", "air_pillows": "air_pillow", "box": None}


def _sphere(sub: int) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=sub)
    return np.asarray(s.vertices, float), np.asarray(s.faces)


def _creases(U: np.ndarray, rng: np.random.Generator, n: int, f_lo: float, f_hi: float) -> np.ndarray:
    """Multi-octave ridged noise on unit directions U: sum of |sin| of random
    plane waves -> sharp creases where the sine crosses zero."""
    out = np.zeros(len(U))
    for k in range(n):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        f = rng.uniform(f_lo, f_hi) * (1.7 ** (k % 3))
        out += (1.0 - np.abs(np.sin(f * U @ d + rng.uniform(0, 2 * np.pi)))) / (1.0 + 0.6 * (k % 3))
    return out / max(n, 1)


def paper_blob(rng: np.random.Generator, half: np.ndarray) -> trimesh.Trimesh:
    """A crumpled paper ball of half-extents ``half`` (m), centred at 0."""
    V, F = _sphere(3)
    r = 1.0 - 0.55 * _creases(V, rng, 14, 1.5, 4.0) + 0.08 * rng.normal(size=len(V)).clip(-2, 2)
    r = np.clip(r / max(r.max(), 1e-9), 0.25, 1.0)
    return trimesh.Trimesh(V * r[:, None] * half, F, process=False)


def bubble_wad(rng: np.random.Generator, half: np.ndarray) -> trimesh.Trimesh:
    """A loosely folded wad of bubble wrap: a flattened, wavy lump. The
    bubbles are the material's ``bubbles`` tile (colour and normal map): as
    geometry, 10 mm bubbles on a ~6 mm mesh aliased into spikes."""
    V, F = _sphere(5)
    fold = _creases(V, rng, 6, 1.0, 2.5)
    rng.uniform(0.009, 0.012)  # (the bubble pitch drawn by earlier versions: keeps the stream)
    r = 1.0 - 0.35 * fold
    r = np.clip(r / r.max(), 0.3, 1.0)
    return trimesh.Trimesh(V * r[:, None] * half, F, process=False)


def air_pillow(rng: np.random.Generator, half: np.ndarray) -> trimesh.Trimesh:
    """An inflated air pillow: a rounded square cushion (superellipse in xy,
    thin in z), slightly creased at the seams."""
    V, F = _sphere(3)
    p = 3.5
    n = (np.abs(V[:, 0]) ** p + np.abs(V[:, 1]) ** p + np.abs(V[:, 2]) ** 2) ** (1 / p)
    U = V / n[:, None]
    U[:, 2] *= 1.0 - 0.25 * (np.abs(U[:, 0]) ** 6 + np.abs(U[:, 1]) ** 6)   # flatter near the seams
    U *= (1.0 + 0.03 * _creases(V, rng, 4, 2.0, 4.0))[:, None]
    return trimesh.Trimesh(U * half, F, process=False)


def _yaw(rng: np.random.Generator, tilt: float) -> np.ndarray:
    R = trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0, 0, 1])[:3, :3]
    T = trimesh.transformations.rotation_matrix(rng.uniform(-tilt, tilt), [1, 0, 0])[:3, :3]
    return R @ T


def fill(kind: str, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, floor_z: float,
         rim_z: float) -> list[trimesh.Trimesh]:
    """Pieces of dunnage ``kind`` packed in the pocket whose inner footprint is
    lo..hi (xy, m), standing on floor_z and rising above the rim rim_z.
    Every vertex lies within the footprint in xy."""
    ext = hi[:2] - lo[:2]
    depth = max(rim_z - floor_z, 0.01)
    pieces = []
    if kind.startswith("paper"):
        n = int(rng.integers(2, 7))
        # a rough grid of balls so they fill the opening
        nx = max(1, int(round(np.sqrt(n * ext[0] / max(ext[1], 1e-6)))))
        ny = max(1, int(np.ceil(n / nx)))
        for k in range(n):
            i, j = k % nx, k // nx
            hx = ext[0] / nx * rng.uniform(0.55, 0.8)
            hy = ext[1] / ny * rng.uniform(0.55, 0.8)
            h = np.array([hx, hy, max(min(hx, hy), 0.6 * depth) * rng.uniform(0.8, 1.1)])
            pieces.append((paper_blob(rng, h), (i + 0.5) / nx, (j + 0.5) / ny, rng.uniform(0.15, 0.45)))
    elif kind == "bubble_wrap":
        n = int(rng.integers(1, 3))
        for k in range(n):
            h = np.array([ext[0] * rng.uniform(0.35, 0.5), ext[1] * rng.uniform(0.3, 0.5),
                          depth * rng.uniform(0.5, 0.8)])
            pieces.append((bubble_wad(rng, h), rng.uniform(0.35, 0.65), (k + 0.5) / n, rng.uniform(0.2, 0.45)))
    elif kind == "air_pillows":
        n = int(rng.integers(2, 6))
        for k in range(n):
            s = rng.uniform(0.28, 0.4)
            h = np.array([ext[0] * s, ext[1] * s * rng.uniform(0.7, 1.0), rng.uniform(0.012, 0.022)])
            pieces.append((air_pillow(rng, h), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), 0.2 + 0.9 * k / n))
    else:
        raise ValueError(f"unknown dunnage kind {kind!r}")
    out = []
    for m, u, v, up in pieces:
        P = np.asarray(m.vertices) @ _yaw(rng, 0.6 if kind == "air_pillows" else 0.3).T
        # fit inside the footprint (shrink if the rotated piece is too wide), then place
        w = np.ptp(P[:, :2], axis=0)
        P *= min(1.0, float(np.min(ext * 0.98 / np.maximum(w, 1e-9))))
        pmin, pmax = P.min(0), P.max(0)
        c = lo[:2] + np.array([u, v]) * ext
        c = np.clip(c, lo[:2] - pmin[:2] + 1e-4, hi[:2] - pmax[:2] - 1e-4)
        z = floor_z + 1e-4 - pmin[2] + up * depth
        z = min(z, rim_z + 0.6 * (pmax[2] - pmin[2]) - pmax[2] + depth * 0.25)   # tops show above the rim
        z = max(z, floor_z + 1e-4 - pmin[2])
        out.append(trimesh.Trimesh(P + [c[0], c[1], z], m.faces, process=False))
    return out
