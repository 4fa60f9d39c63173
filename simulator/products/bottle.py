"""Bottle: a revolved profile (foot, body, shoulder, neck, finish), a cap and a
paper label sleeve slightly proud of the body.

Parts: ``body`` (glass or rigid plastic), ``cap`` (plastic or metal),
``label`` (paper, printed). Item frame: standing, axis = z; x, y extents =
diameter (the label's outer diameter), z extent = height including the cap.
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas
from .base import Param, finish, mm, resolve

PARAMS = {
    "height_mm": mm((150.0, 300.0), "overall height, cap included"),
    "diameter_mm": mm((50.0, 95.0), "body diameter at the label"),
    "material": Param("choice", ("glass", "rigid_plastic"), choices=("glass", "rigid_plastic")),
    "shape": Param("choice", ("wine", "water", "sauce"), choices=("wine", "water", "sauce")),
    "cap_material": Param("choice", ("rigid_plastic", "metal"), choices=("rigid_plastic", "metal")),
    "fill": Param("float", (0.85, 0.95), 0.0, 1.0, doc="filled fraction of the inner volume"),
    "art_style": Param("choice", ("label", "retail"), choices=("label", "retail", "plain", "crack_print", "splash_print")),
}
MATERIALS = ("glass", "rigid_plastic", "metal", "paper_label")
MASS_RANGE_KG = (0.1, 3.5)
SEG = 48  # segments around: divisible by 4 so x/y extents are exact
LABEL_T = 0.6e-3


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["diameter_mm"], p["diameter_mm"], p["height_mm"])


def check(p: dict) -> None:
    if p["height_mm"] < 1.4 * p["diameter_mm"]:
        raise ValueError(f"height_mm {p['height_mm']:g} must be >= 1.4 * diameter_mm {p['diameter_mm']:g}")


def profile(p: dict, rng: np.random.Generator):
    """Outer body profile (k, 2) (r, z) meters from the foot up to the neck top,
    plus (neck radius, neck top z, cap height, label z range)."""
    H, R = p["height_mm"] / 1e3, p["diameter_mm"] / 2e3 - LABEL_T
    shape = p["shape"]
    rn = float(np.clip(0.24 * 2 * R, 0.011, 0.016))
    hc = float(np.clip(0.075 * H, 0.013, 0.024))
    zn = H - hc + 0.004  # neck top, under the cap's top
    if shape == "wine":
        zs, zn0 = 0.58 * zn, 0.74 * zn  # shoulder start, neck start
    elif shape == "water":
        zs, zn0 = 0.70 * zn, 0.86 * zn
    else:
        zs, zn0 = 0.74 * zn, 0.86 * zn
    zs += rng.uniform(-0.02, 0.02) * zn
    foot = min(0.005, 0.1 * R)
    pts = [(R - foot, 0.0), (R - 0.3 * foot, 0.25 * foot), (R, foot)]
    pts += [(R, z) for z in np.linspace(foot, zs, 8)[1:]]
    t = np.linspace(0, 1, 12)[1:]
    if shape == "wine":  # long S-shaped shoulder
        r = rn + (R - rn) * (1 - (3 * t ** 2 - 2 * t ** 3))
    elif shape == "water":  # conical shoulder, rounded at both ends
        r = rn + (R - rn) * (1 - t) ** 1.3 * (1 - 0.25 * np.sin(np.pi * t))
    else:  # sauce: round quick shoulder
        r = rn + (R - rn) * np.sqrt(np.clip(1 - t ** 2, 0, 1))
    pts += list(zip(r, zs + t * (zn0 - zs)))
    pts += [(rn, z) for z in np.linspace(zn0, zn - 0.006, 4)[1:]]
    pts += [(rn + 0.0015, zn - 0.0055), (rn + 0.0015, zn - 0.0035), (rn, zn - 0.003), (rn, zn)]
    lab = (foot + 0.12 * (zs - foot), zs - 0.05 * (zs - foot))
    return np.array(pts), rn, zn, hc, lab


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Bottle of exactly (diameter, diameter, height) mm."""
    p = resolve("bottle", PARAMS, params, rng)
    check(p)
    H, R = p["height_mm"] / 1e3, p["diameter_mm"] / 2e3 - LABEL_T
    prof, rn, zn, hc, (lz0, lz1) = profile(p, rng)
    art, rects = paint_atlas(rng, [(np.pi * p["diameter_mm"], (lz1 - lz0) * 1e3)], p["art_style"], px_per_mm=1.6)

    rings = np.stack([G.circle(r, z, SEG) for r, z in prof])
    body = G.loft(rings, pole_start=(0, 0, 0.0015), pole_end=(0, 0, zn))  # punt: the base dips inward

    # label: a closed sleeve, inner face sunk into the body, outer face proud
    zl = np.linspace(lz0, lz1, 9)
    loop = [(R - 0.4e-3, lz0)] + [(R + LABEL_T, z) for z in zl] + [(R - 0.4e-3, lz1)]
    label = G.revolve_loop(np.array(loop), SEG, printed_segments=range(1, 9), rect=rects[0])

    rc = rn + 0.0025
    zc0 = H - hc
    cap_prof = [(rc, zc0), (rc, H - 0.0015), (rc - 0.0012, H - 0.0002), (rc - 0.002, H)]
    cap_rings = np.stack([G.circle(r, z, SEG) for r, z in cap_prof])
    cap = G.loft(cap_rings, pole_start=(0, 0, zc0), pole_end=(0, 0, H))

    cap_mat = p["cap_material"]
    parts = [Part("body", p["material"], False), Part("cap", cap_mat, False), Part("label", "paper_label", True)]
    # mass: wall shell + liquid
    r_mid = np.linalg.norm(rings[:, 0, :2], axis=1)
    dz = np.diff(prof[:, 1])
    vol = float(np.sum(np.pi * ((r_mid[1:] + r_mid[:-1]) / 2) ** 2 * dz))
    area = float(np.sum(2 * np.pi * (r_mid[1:] + r_mid[:-1]) / 2 * np.hypot(dz, np.diff(r_mid))))
    wall, dens = (0.0035, 2500.0) if p["material"] == "glass" else (0.0006, 1100.0)
    mass = float(np.clip(area * wall * dens + vol * p["fill"] * 1000.0 * 0.92, *MASS_RANGE_KG))
    coll = [G.hull_points(np.concatenate([body[0][body[0][:, 2] <= lz1 + 0.01], label[0]])),
            G.hull_points(np.concatenate([body[0][body[0][:, 2] >= lz1], cap[0]]))]
    return finish(sku, "bottle", [(body, 0), (cap, 1), (label, 2)], parts, art, mass, coll, p)
