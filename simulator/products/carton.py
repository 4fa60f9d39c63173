"""Corrugated shipping carton (regular slotted carton, lying flat, closed).

Parts: ``body`` (closed box, printed sides), two top ``flap`` slabs meeting at
a seam along x (the outer flaps of an RSC, printed), ``tape`` over the seam
that folds down both end walls. Item frame: x = length, y = width, z = height.
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas_maps
from .base import Param, finish, mm, resolve

PARAMS = {
    "length_mm": mm((150.0, 450.0), "outer length along x"),
    "width_mm": mm((100.0, 300.0), "outer width along y"),
    "height_mm": mm((60.0, 300.0), "outer height along z, tape included"),
    "board_mm": Param("float", (3.0, 5.0), 1.0, 10.0, doc="flap board thickness"),
    "tape_width_mm": Param("float", (48.0, 50.0), 10.0, 100.0),
    "fill_kg_m3": Param("float", (15.0, 60.0), 0.0, 2000.0, doc="contents mass per outer volume"),
    "art_style": Param("choice", ("kraft", "kraft", "retail"), choices=("kraft", "shipping", "retail", "plain", "crack_print", "splash_print")),
}
MATERIALS = ("cardboard", "tape")
MASS_RANGE_KG = (0.2, 3.0)
TAPE_T = 0.3e-3
CELL = 0.018  # target grid cell (m): fine enough for dents, few enough faces


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["length_mm"], p["width_mm"], p["height_mm"])


def check(p: dict) -> None:
    if p["height_mm"] < 3 * p["board_mm"] + 10:
        raise ValueError(f"height_mm {p['height_mm']:g} too small for board_mm {p['board_mm']:g}")
    if p["tape_width_mm"] > 0.8 * p["width_mm"]:
        raise ValueError(f"tape_width_mm {p['tape_width_mm']:g} wider than 0.8 * width_mm {p['width_mm']:g}")


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Carton with dims exactly (length, width, height) mm; mass 0.2-3 kg."""
    p = resolve("carton", PARAMS, params, rng)
    check(p)
    L, W, H = p["length_mm"] / 1e3, p["width_mm"] / 1e3, p["height_mm"] / 1e3
    bt, tw = p["board_mm"] / 1e3, p["tape_width_mm"] / 1e3
    hx = L / 2 - TAPE_T  # body and flaps inset so the tape folds land on the bbox
    z_top = H - TAPE_T    # flap top
    z_body = z_top - bt   # body top = flap bottom

    # atlas panels: walls (+x, -x, +y, -y), bottom, two flap tops
    panels = [(W, z_body), (W, z_body), (2 * hx, z_body), (2 * hx, z_body), (2 * hx, W),
              (2 * hx, W / 2), (2 * hx, W / 2)]
    # the shipping label goes on a flap top (panel 5); flutes run up the walls
    atlas = paint_atlas_maps(rng, [(a * 1e3, b * 1e3) for a, b in panels], p["art_style"], primary=5)
    art, rects = atlas.image, atlas.rects
    body_rects = dict(zip(("+x", "-x", "+y", "-y", "-z"), rects[:5]))

    nx, ny, nz = G.divisions(2 * hx, CELL, 4), G.divisions(W, CELL, 4), G.divisions(z_body, CELL, 3)
    body = G.box(np.linspace(-hx, hx, nx + 1), np.linspace(-W / 2, W / 2, ny + 1),
                 np.linspace(0, z_body, nz + 1), body_rects)[:3]
    gap = 0.5e-3
    flaps = []
    for k, (y0, y1) in enumerate(((-W / 2, -gap), (gap, W / 2))):
        fy = G.divisions(y1 - y0, CELL, 2)
        flaps.append(G.box(np.linspace(-hx, hx, nx + 1), np.linspace(y0, y1, fy + 1),
                           np.linspace(z_body, z_top, 2), {"+z": rects[5 + k]})[:3])

    # tape: a strip of rectangular section over the seam and down both ends
    drop = min(0.065, 0.45 * z_top)
    zs = np.linspace(z_top - drop, z_top, 5)
    xs = np.linspace(-hx, hx, nx + 1)
    inner = [(-hx, z) for z in zs] + [(x, z_top) for x in xs[1:-1]] + [(hx, z) for z in zs[::-1]]
    outer = [(-L / 2, z) for z in zs[:-1]] + [(-L / 2, H)] + [(x, H) for x in xs[1:-1]] + \
            [(L / 2, H)] + [(L / 2, z) for z in zs[::-1][1:]]
    inner, outer = np.array(inner), np.array(outer)
    rings = np.stack([
        np.stack([inner[:, 0], np.full(len(inner), -tw / 2), inner[:, 1]], 1),
        np.stack([outer[:, 0], np.full(len(inner), -tw / 2), outer[:, 1]], 1),
        np.stack([outer[:, 0], np.full(len(inner), tw / 2), outer[:, 1]], 1),
        np.stack([inner[:, 0], np.full(len(inner), tw / 2), inner[:, 1]], 1),
    ], 1)  # (m, 4, 3)
    tape = G.loft(rings, pole_start=rings[0].mean(0), pole_end=rings[-1].mean(0))

    parts = [Part("body", "cardboard", True), Part("flap", "cardboard", True), Part("tape", "tape", False)]
    pieces = [(body, 0), (flaps[0], 1), (flaps[1], 1), (tape, 2)]
    area = 2 * (L * W + L * H + W * H) + L * W  # walls + double board under the flaps
    mass = float(np.clip(0.55 * area + p["fill_kg_m3"] * L * W * H, *MASS_RANGE_KG))
    coll = [G.hull_points(np.array([[x, y, z] for x in (-L / 2, L / 2) for y in (-W / 2, W / 2) for z in (0, H)]))]
    return finish(sku, "carton", pieces, parts, art, mass, coll, p, normal_map=atlas.normal)
