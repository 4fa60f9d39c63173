"""Blister pack / kit: a printed backing card, a clear thermoformed blister and
N separate units inside it (a missing unit is a broken set).

Parts: ``card`` (printed), ``blister`` (clear, one closed dome), ``unit`` x N
(each its own closed, disjoint component). Item frame: lying card-down;
x = card width, y = card height, z = total depth (card + blister).
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas
from .base import Param, finish, mm, resolve

PARAMS = {
    "width_mm": mm((100.0, 200.0), "card width along x"),
    "height_mm": mm((150.0, 260.0), "card height along y"),
    "depth_mm": mm((18.0, 40.0), "total depth: card + blister"),
    "units": Param("int", (2, 5), 1, 24, doc="number of units in the blister"),
    "unit_shape": Param("choice", ("cylinder", "bar"), choices=("cylinder", "bar")),
    "unit_material": Param("choice", ("rigid_plastic", "metal"), choices=("rigid_plastic", "metal")),
    "art_style": Param("choice", ("retail",), choices=("retail", "label", "plain", "crack_print", "splash_print")),
}
MATERIALS = ("cardboard_white", "clear_plastic", "rigid_plastic", "metal")
MASS_RANGE_KG = (0.02, 1.0)
CARD_T = 0.8e-3
GAP = 0.003  # clearance between units (m): units never touch


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["width_mm"], p["height_mm"], p["depth_mm"])


def layout(p: dict):
    """Blister footprint and unit slots. Returns (bx, by, bw, bh) blister centre
    and size, and per-unit (cx, cy, sx, sy) centre and size, meters."""
    W, H = p["width_mm"] / 1e3, p["height_mm"] / 1e3
    bw, bh = 0.8 * W, 0.68 * H
    bx, by = 0.0, -0.5 * H + 0.08 * H + bh / 2  # hang area left at the top of the card
    n = int(p["units"])
    cols = n if n <= 5 else int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    m = 0.006
    sx = (bw - 2 * m - (cols - 1) * GAP) / cols
    sy = (bh - 2 * m - (rows - 1) * GAP) / rows
    slots = []
    for k in range(n):
        r, c = divmod(k, cols)
        cx = bx - bw / 2 + m + sx / 2 + c * (sx + GAP)
        cy = by + bh / 2 - m - sy / 2 - r * (sy + GAP)
        slots.append((cx, cy, sx, sy))
    return (bx, by, bw, bh), slots


def check(p: dict) -> None:
    _, slots = layout(p)
    sx = slots[0][2]
    if sx < 0.006:
        raise ValueError(f"{int(p['units'])} units do not fit a {p['width_mm']:g} mm wide card "
                         f"(unit width {sx * 1e3:.1f} mm < 6 mm)")
    if p["depth_mm"] < 8:
        raise ValueError(f"depth_mm must be >= 8, got {p['depth_mm']:g}")


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Blister card of exactly (width, height, depth) mm with ``units`` units."""
    p = resolve("blister", PARAMS, params, rng)
    check(p)
    W, H, D = p["width_mm"] / 1e3, p["height_mm"] / 1e3, p["depth_mm"] / 1e3
    (bx, by, bw, bh), slots = layout(p)
    art, rects = paint_atlas(rng, [(p["width_mm"], p["height_mm"]), (p["width_mm"], p["height_mm"]), (60.0, 30.0)],
                             p["art_style"], styles=[p["art_style"], "label", "label"], px_per_mm=2.5)

    card = G.box(np.linspace(-W / 2, W / 2, G.divisions(W, 0.012, 4) + 1),
                 np.linspace(-H / 2, H / 2, G.divisions(H, 0.012, 4) + 1),
                 np.array([0.0, CARD_T]), {"+z": rects[0], "-z": rects[1]})[:3]

    # blister: rounded-rect dome with a flange ring, sunk 0.2 mm into the card
    r_c = min(0.008, 0.2 * min(bw, bh))
    inset = min(0.003, 0.1 * min(bw, bh))
    base = G.rounded_rect(bw / 2, bh / 2, r_c, step=0.01)
    # inner rings: the base outline scaled in (same point count; thermoform draft)
    mid = base * np.array([1 - 1.2 * inset / bw, 1 - 1.2 * inset / bh])
    topr = base * np.array([1 - 2 * inset / bw, 1 - 2 * inset / bh])

    def ring(xy, z):
        return np.column_stack([xy[:, 0] + bx, xy[:, 1] + by, np.full(len(xy), z)])
    rings = np.stack([ring(base, CARD_T - 0.2e-3), ring(base, CARD_T + 0.4e-3),
                      ring(mid, D - 1.2e-3), ring(topr, D)])
    blister = G.capped_loft(rings, cap_rings=3)

    unit_h = D - CARD_T - 1.5e-3  # height of the units lying on the card
    units = []
    for cx, cy, sx, sy in slots:
        z0 = CARD_T + 0.3e-3
        if p["unit_shape"] == "cylinder":  # lying along y, like batteries or tubes
            rad = min(sx / 2, unit_h / 2) * 0.95
            ys = np.linspace(cy - sy / 2, cy + sy / 2, 6)
            rr = [rad * 0.6] + [rad] * 4 + [rad * 0.75]
            t = 2 * np.pi * np.arange(24) / 24
            rg = np.stack([np.column_stack([cx + r * np.cos(t), np.full(24, yv), z0 + rad + r * np.sin(t)])
                           for r, yv in zip(rr, ys)])
            rg = rg[:, ::-1]  # counter-clockwise about +y
            units.append(G.capped_loft(rg, cap_rings=1))
        else:  # rounded bar, like a razor cartridge or a lipstick case
            hx, hy = sx / 2 * 0.95, sy / 2 * 0.95
            rb = min(0.3 * min(hx, hy), 0.004)
            xy = G.rounded_rect(hx, hy, rb, n_arc=4, step=0.008)
            hz = min(unit_h, 0.7 * sx + 0.004)
            rg = np.stack([np.column_stack([xy[:, 0] + cx, xy[:, 1] + cy, np.full(len(xy), z)])
                           for z in (z0, z0 + hz)])
            units.append(G.capped_loft(rg, cap_rings=2))
    parts = [Part("card", "cardboard_white", True), Part("blister", "clear_plastic", False),
             Part("unit", p["unit_material"], False)]
    pieces = [(card, 0), (blister, 1)] + [(u, 2) for u in units]
    unit_dens = 2700.0 if p["unit_material"] == "metal" else 900.0
    unit_mass = sum(abs(G.signed_volume(u[0], u[1])) for u in units) * unit_dens * 0.5  # units are partly hollow
    mass = float(np.clip(W * H * 0.35 + 0.3 * bw * bh * 0.02 + unit_mass, *MASS_RANGE_KG))
    coll = [G.hull_points(card[0]), G.hull_points(blister[0])]
    return finish(sku, "blister", pieces, parts, art, mass, coll, p)
