"""Pouch / coffee bag lying on its back: thick gusseted bottom (-y end),
sealed thin top (+y end), optional one-way degassing valve.

Parts: ``body`` (foil laminate, printed front and back, with a normal map of
film wrinkles and creases), ``seal`` (the top heat seal strip: unprinted, its
material's ``crimp`` tile shows the knurl of the sealing jaws), ``valve``
(small plastic disc on the front, optional).
Item frame: x = width, y = height of the bag, z = thickness.
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas_maps
from .base import Param, finish, mm, resolve
from .mailer import pillow

PARAMS = {
    "width_mm": mm((120.0, 220.0), "along x"),
    "height_mm": mm((180.0, 320.0), "along y"),
    "thickness_mm": mm((40.0, 100.0), "along z, at the gusset"),
    "valve": Param("choice", (True, True, False), choices=(True, False)),
    "fill": Param("float", (0.5, 0.9), 0.0, 1.0, doc="filled fraction of the bag volume"),
    "art_style": Param("choice", ("retail", "retail", "label"), choices=("retail", "label", "plain", "crack_print", "splash_print")),
}
MATERIALS = ("foil_laminate", "rigid_plastic")
MASS_RANGE_KG = (0.05, 1.5)
BULK_KG_M3 = 380.0  # ground coffee / beans


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["width_mm"], p["height_mm"], p["thickness_mm"])


def check(p: dict) -> None:
    if p["thickness_mm"] > 0.7 * p["width_mm"]:
        raise ValueError(f"thickness_mm {p['thickness_mm']:g} too large for width_mm {p['width_mm']:g}")


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Pouch of exactly (width, height, thickness) mm."""
    p = resolve("pouch", PARAMS, params, rng)
    check(p)
    Wd, Hh, T = p["width_mm"] / 1e3, p["height_mm"] / 1e3, p["thickness_mm"] / 1e3
    # the laminate's soft wrinkles and handling creases are in the normal map
    # (the mesh resolves only the pillow); the colour draws come first, as before
    atlas = paint_atlas_maps(rng, [(p["width_mm"], p["height_mm"])] * 2, p["art_style"], px_per_mm=2.0,
                             surface="film")
    art, rects = atlas.image, atlas.rects

    def gy(y):  # full thickness at the gusset end, tapering to the top seal
        t = np.clip((y + Hh / 2) / Hh, 0, 1)
        return np.clip(1 - t ** 2.2, 0, 1) ** 0.6

    seal_len = min(0.03, 0.12 * Hh)
    y0 = Hh / 2 - seal_len
    body, top = pillow(rng, Wd, Hh, T, 5.0, 2.0, 0.55, min(0.05 * T, 2e-3),
                       {"+z": rects[0], "-z": rects[1]}, gy=gy, calm_above=y0 - 0.01)

    def seal_deform(V, Lat):
        z = top(V[:, 0], V[:, 1])
        return np.stack([V[:, 0], V[:, 1], np.where(Lat[:, 2] == 1, z + 0.6e-3, z - 0.3e-3)], 1)

    seal = G.box(np.linspace(-Wd / 2 + 0.002, Wd / 2 - 0.002, 25), np.linspace(y0, Hh / 2 - 0.001, 5),
                 np.array([0.0, 1.0]), None, seal_deform)[:3]
    parts = [Part("body", "foil_laminate", True), Part("seal", "foil_laminate", False)]
    pieces = [(body, 0), (seal, 1)]
    if p["valve"]:
        vy = Hh / 2 - seal_len - 0.035
        r = 0.011
        z0 = float(min(top(np.array([x]), np.array([y]))[0]
                       for x in (-r, 0, r) for y in (vy - r, vy, vy + r)))
        zmax = 0.55 * T  # the top surface's highest point: keep the valve under it
        h = 3e-3
        z_top = min(z0 + h, zmax - 0.2e-3)
        rings = np.stack([G.circle(r, z0 - 2e-3, 24, 0, vy), G.circle(r, z_top - 0.8e-3, 24, 0, vy),
                          G.circle(r - 1.2e-3, z_top, 24, 0, vy)])
        valve = G.loft(rings, pole_start=(0, vy, z0 - 2e-3), pole_end=(0, vy, z_top))
        parts.append(Part("valve", "rigid_plastic", False))
        pieces.append((valve, 2))
    vol = np.pi / 4 * Wd * T * Hh * 0.8  # elliptic section, tapering
    mass = float(np.clip(0.02 + BULK_KG_M3 * vol * p["fill"], *MASS_RANGE_KG))
    coll = G.slices(body[0], 1, 5)
    return finish(sku, "pouch", pieces, parts, art, mass, coll, p, normal_map=atlas.normal)
