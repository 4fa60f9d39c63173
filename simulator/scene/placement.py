"""Placement geometry on the tray: footprints, pieces laid beside an item, a damaged item at its pristine twin's pose, close-up targets."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def rest_like(product, pristine, placement):
    """The placement of a damaged product that takes its pristine twin's resting
    pose: the same pose, lowered or raised so its lowest point is where the
    pristine one's was (damage on seen faces leaves the resting face in place;
    this removes the millimetres a crushed or opened item gains or loses)."""

    T = np.array(placement.T_world_from_item, float)
    z = lambda m: float((np.asarray(m.vertices) @ T[2, :3]).min() + T[2, 3])  # noqa: E731
    T[2, 3] += z(pristine.mesh) - z(product.mesh)
    return replace(placement, T_world_from_item=T, min_z_m=float(placement.min_z_m))


@dataclass(frozen=True)
class Target:
    """What a close-up camera aims at: an item's bounding sphere (world meters)
    and, for a damaged item, the outward unit normals (k, 3) of its damage sites
    in world axes (empty when intact)."""

    center: np.ndarray
    radius: float
    damage_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def item_target(product, T: np.ndarray):
    """The close-up target of one placed item: its world bounding sphere and the
    outward normals of its damages (area-weighted mean over each damage's faces)."""

    T = np.asarray(T, float)
    V = np.asarray(product.mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    lo, hi = V.min(0), V.max(0)
    normals = []
    did = np.asarray(product.mesh.face_attributes["damage_id"])
    if product.damages:
        fn = np.asarray(product.mesh.face_normals) * np.asarray(product.mesh.area_faces)[:, None]
        for j in range(1, len(product.damages) + 1):
            sel = did == j
            if sel.any():
                v = fn[sel].sum(0) @ T[:3, :3].T
                if np.linalg.norm(v) > 1e-12:
                    normals.append(v / np.linalg.norm(v))
    return Target(center=(lo + hi) / 2, radius=float(np.linalg.norm(hi - lo) / 2),
                  damage_normals=np.array(normals).reshape(-1, 3))


def footprint_xy(mesh, T: np.ndarray) -> np.ndarray:
    """(k, 2) world xy of the mesh's vertices after T (for placing things beside it)."""
    V = np.asarray(mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    return V[:, :2]


def place_beside(item_xy: np.ndarray, piece_xy: np.ndarray, gap_m: float, tray, rng: np.random.Generator,
                 occupied: list[np.ndarray] = (), tries: int = 16) -> np.ndarray | None:
    """A (4, 4) pose (rotation about z + translation) that puts a piece lying on
    the tray ``gap_m`` beside an item, inside the tray, clear of ``occupied``
    footprints. Directions are tried from a random start; None if none fits."""
    sx, sy = tray.size_m
    c = item_xy.mean(0)
    start = rng.uniform(0, 2 * np.pi)
    yaw = rng.uniform(0, 2 * np.pi)
    R = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    P = (piece_xy - piece_xy.mean(0)) @ R.T
    for k in range(tries):
        a = start + 2 * np.pi * k / tries
        d = np.array([np.cos(a), np.sin(a)])
        reach = (item_xy - c) @ d
        back = -(P @ d)
        pos = c + d * (reach.max() + gap_m + back.max())
        Q = P + pos
        if (np.abs(Q[:, 0]) > sx / 2 - 0.005).any() or (np.abs(Q[:, 1]) > sy / 2 - 0.005).any():
            continue
        if any(_overlap(Q, o) for o in occupied):
            continue
        T = np.eye(4)
        T[:2, :2] = R
        T[:2, 3] = pos - R @ piece_xy.mean(0)
        T[2, 3] = 2e-4  # a hair above the floor: no z-fighting with the tray
        return T
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Axis-aligned bounding boxes of two xy point sets overlap."""
    return bool((a.min(0) <= b.max(0)).all() and (b.min(0) <= a.max(0)).all())
