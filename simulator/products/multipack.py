"""Shrink-wrapped multipack of N cans or bottles standing in a grid.

Parts: ``unit`` x N (metal cans or glass/plastic bottles, printed, each a
separate closed component), ``film`` (shrink film: one closed hull hugging
the grid, waisted between units). Item frame: standing; x = the longer grid
side, y = the shorter, z = height.
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas
from .base import Param, finish, mm, resolve

PARAMS = {
    "units": Param("choice", (4, 6, 8), choices=(4, 6, 8, 12)),
    "unit_kind": Param("choice", ("can", "can", "bottle"), choices=("can", "bottle")),
    "unit_diameter_mm": mm((66.0, 66.0), "can or bottle diameter"),
    "unit_height_mm": mm((115.0, 123.0), "can or bottle height (cap included)"),
    "unit_material": Param("choice", ("auto",), choices=("auto", "metal", "glass", "rigid_plastic")),
    "art_style": Param("choice", ("retail", "retail", "label"), choices=("retail", "label", "plain", "crack_print", "splash_print")),
}
MATERIALS = ("metal", "glass", "rigid_plastic", "shrink_film")
MASS_RANGE_KG = (0.5, 8.0)
FILM_T = 0.8e-3   # film clearance around the units (m)
SEG = 32
GRIDS = {4: (2, 2), 6: (3, 2), 8: (4, 2), 12: (4, 3)}


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    nx, ny = GRIDS[int(p["units"])]
    d, h, t = p["unit_diameter_mm"], p["unit_height_mm"], FILM_T * 1e3
    return (nx * d + 2 * t, ny * d + 2 * t, h + 2 * t)


def check(p: dict) -> None:
    d, h = p["unit_diameter_mm"], p["unit_height_mm"]
    if not 30 <= d <= 120:
        raise ValueError(f"unit_diameter_mm must be in [30, 120], got {d:g}")
    if h < 1.2 * d:
        raise ValueError(f"unit_height_mm {h:g} must be >= 1.2 * unit_diameter_mm {d:g}")
    if p["unit_kind"] == "can" and p["unit_material"] not in ("auto", "metal"):
        raise ValueError(f"cans are metal, got unit_material {p['unit_material']!r}")


def can_profile(R: float, h: float) -> np.ndarray:
    """(k, 2) (r, z) outer profile of a beverage can: necked base and top."""
    return np.array([(R - 0.008, 0.0), (R - 0.003, 0.0015), (R, 0.006)] +
                    [(R, z) for z in np.linspace(0.006, h - 0.014, 6)[1:]] +
                    [(R - 0.004, h - 0.006), (R - 0.0055, h - 0.003), (R - 0.0052, h)])


def bottle_profile(R: float, h: float) -> np.ndarray:
    """(k, 2) (r, z) outer profile of a small beer/soda bottle (crown cap included)."""
    rn = min(0.0135, 0.45 * R)
    zs, zn = 0.55 * h, 0.82 * h
    t = np.linspace(0, 1, 8)[1:]
    sh = [(rn + (R - rn) * (1 - (3 * u ** 2 - 2 * u ** 3)), zs + u * (zn - zs)) for u in t]
    return np.array([(R - 0.004, 0.0), (R - 0.001, 0.002), (R, 0.005)] +
                    [(R, z) for z in np.linspace(0.005, zs, 5)[1:]] + sh +
                    [(rn, h - 0.012), (rn + 0.0012, h - 0.010), (rn + 0.0012, h - 0.001), (rn, h)])


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Multipack with ``units`` units; dims are :func:`nominal_dims_mm`."""
    p = resolve("multipack", PARAMS, params, rng)
    check(p)
    n = int(p["units"])
    nx, ny = GRIDS[n]
    d, h = p["unit_diameter_mm"] / 1e3, p["unit_height_mm"] / 1e3
    R = d / 2
    mat = p["unit_material"]
    if mat == "auto":
        mat = "metal" if p["unit_kind"] == "can" else "glass"
    prof = can_profile(R, h) if p["unit_kind"] == "can" else bottle_profile(R, h)
    # printed band: the straight wall
    wall = np.flatnonzero(np.isclose(prof[:, 0], R))
    b0, b1 = int(wall[0]), int(wall[-1])
    band_h = (prof[b1, 1] - prof[b0, 1]) * 1e3
    art, rects = paint_atlas(rng, [(np.pi * d * 1e3, band_h)], p["art_style"], px_per_mm=1.8)

    units = []
    for k in range(n):
        i, j = k % nx, k // nx
        cx, cy = (i - (nx - 1) / 2) * d, (j - (ny - 1) / 2) * d
        # every unit is rotated a little so the print does not repeat in lockstep
        seg = SEG if p["unit_kind"] == "can" else 24  # bottles have more rings: keep faces < 10k
        rings = np.stack([G.circle(r, z, seg) for r, z in prof])
        a = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        rings = rings @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
        rings[..., 0] += cx
        rings[..., 1] += cy
        # shrink units 0.2 mm radially so neighbours never touch
        rings[..., :2] = np.array([cx, cy]) + (rings[..., :2] - np.array([cx, cy])) * (1 - 2e-4 / R)
        pole0 = (cx, cy, 0.003 if p["unit_kind"] == "can" else 0.0015)
        units.append(G.loft(rings, pole_start=pole0, pole_end=(cx, cy, h), band=(b0, b1), rect=rects[0]))

    # film: waisted rounded rectangle around the grid, extruded over the height
    hx, hy = nx * d / 2 + FILM_T, ny * d / 2 + FILM_T
    outline = G.rounded_rect(hx, hy, R + FILM_T, n_arc=8, step=0.012)
    # pull the straight sides in between neighbouring units (film waist)
    x, y = outline[:, 0], outline[:, 1]
    wx = np.where(np.abs(x) < (nx / 2 - 0.5) * d, np.sin(np.pi * (x / d - ((nx + 1) % 2) / 2)) ** 2, 0.0)
    wy = np.where(np.abs(y) < (ny / 2 - 0.5) * d, np.sin(np.pi * (y / d - ((ny + 1) % 2) / 2)) ** 2, 0.0)
    waist = 0.0025
    on_y_side = np.isclose(np.abs(y), hy)
    on_x_side = np.isclose(np.abs(x), hx)
    outline = outline.copy()
    outline[on_y_side, 1] -= np.sign(y[on_y_side]) * waist * wx[on_y_side]
    outline[on_x_side, 0] -= np.sign(x[on_x_side]) * waist * wy[on_x_side]
    zs = np.linspace(-FILM_T, h + FILM_T, 7)
    rings = np.stack([np.column_stack([outline, np.full(len(outline), z)]) for z in zs])
    # top and bottom: even, well-shaped triangles (~7 mm for 66 mm cans), not a fan of
    # slivers, so the film can follow a smooth deformation (the sag over a missing unit)
    film = G.capped_loft(rings, cap_edge=float(np.clip(d / 9, 0.004, 0.012)))

    parts = [Part("unit", mat, True), Part("film", "shrink_film", False)]
    pieces = [(u, 0) for u in units] + [(film, 1)]
    vol = abs(G.signed_volume(*units[0][:2]))
    shell = {"metal": 0.014, "glass": 0.20 * vol / 3.3e-4 + 0.05, "rigid_plastic": 0.025}[mat]
    mass = float(np.clip(n * (shell + 0.95 * vol * 1000.0 * 0.93), *MASS_RANGE_KG))
    coll = [G.hull_points(film[0])]
    meta = dict(p, unit_material=mat)
    return finish(sku, "multipack", pieces, parts, art, mass, coll, meta)
