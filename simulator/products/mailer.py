"""Poly mailer and padded envelope: a soft pillow, thin at the sealed edges.

Parts: ``body`` (the filled envelope, printed front and back) and ``seal``
(the closing flap strip near the +y end, lying on the top surface).
Item frame: x = length, y = width, z = thickness (lying flat, puffier on top).
"""
from __future__ import annotations

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import noise_field, paint_atlas_maps
from .base import Param, finish, mm, resolve

PARAMS = {
    "length_mm": mm((200.0, 400.0), "along x"),
    "width_mm": mm((150.0, 300.0), "along y"),
    "thickness_mm": mm((10.0, 50.0), "along z at the puffiest point"),
    "style": Param("choice", ("poly", "padded"), choices=("poly", "padded")),
    "contents_kg": Param("float", (0.05, 1.0), 0.0, 20.0),
    "art_style": Param("choice", ("retail", "plain", "plain"), choices=("retail", "plain", "kraft", "crack_print", "splash_print")),
}
MATERIALS = ("poly_mailer", "padded_paper")
MASS_RANGE_KG = (0.02, 1.5)
EDGE = 0.35e-3  # half thickness of the welded edge (m)


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["length_mm"], p["width_mm"], p["thickness_mm"])


def check(p: dict) -> None:
    if p["thickness_mm"] > 0.4 * min(p["length_mm"], p["width_mm"]):
        raise ValueError(f"thickness_mm {p['thickness_mm']:g} too large for a "
                         f"{p['length_mm']:g} x {p['width_mm']:g} mm envelope")
    if p["thickness_mm"] < 3:
        raise ValueError(f"thickness_mm must be >= 3, got {p['thickness_mm']:g}")


def edge_spacing(half: float, n: int) -> np.ndarray:
    """2n+1 coordinates in [-half, half], dense near the edges, including 0."""
    return half * np.sin(np.linspace(-np.pi / 2, np.pi / 2, 2 * n + 1))


def pillow(rng, L, W, T, px, py, top_share, wrinkle, rects, gy=None, nx=16, ny=14, calm_above=None):
    """Closed pillow surface: top z = EDGE + (top_share*T - EDGE) * g, bottom the
    rest, g = gx(x) gy(y) in [0, 1], 1 at the centre, plus noise wrinkles
    (amplitude ``wrinkle`` m, zero at the centre and the edges, faded out for
    y > calm_above so strips laid on the top surface sit flush).
    Returns (V, F, UV) and the wrinkle-free top-height function f(x, y)."""
    xs, ys = edge_spacing(L / 2, nx), edge_spacing(W / 2, ny)

    def gx(x):
        return np.clip(1 - np.abs(2 * x / L) ** px, 0, 1) ** 0.45

    def g_y(y):
        return np.clip(1 - np.abs(2 * y / W) ** py, 0, 1) ** 0.45 if gy is None else gy(y)

    wr = noise_field(rng, len(ys), len(xs), cells=3.0, octaves=2, grid=12)  # (ny, nx) grid
    top_h, bot_h = top_share * T - EDGE, (1 - top_share) * T - EDGE

    def top(x, y, w=None):
        g = gx(x) * g_y(y)
        return EDGE + top_h * g + (0 if w is None else w * 4 * g * (1 - g))

    def deform(V, Lat):
        x, y = V[:, 0], V[:, 1]
        w = wrinkle * wr[Lat[:, 1], Lat[:, 0]]
        if calm_above is not None:
            w = w * np.clip((calm_above - y) / 0.02, 0, 1)
        g = gx(x) * g_y(y)
        z = np.where(Lat[:, 2] == 1, EDGE + top_h * g + w * 4 * g * (1 - g),
                     -(EDGE + bot_h * g) - 0.3 * w * 4 * g * (1 - g))
        return np.stack([x, y, z], 1)

    V, F, UV, _ = G.box(xs, ys, np.array([0.0, 1.0]), rects, deform)
    return (V, F, UV), top


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Mailer of exactly (length, width, thickness) mm."""
    p = resolve("mailer", PARAMS, params, rng)
    check(p)
    L, W, T = p["length_mm"] / 1e3, p["width_mm"] / 1e3, p["thickness_mm"] / 1e3
    padded = p["style"] == "padded"
    material = "padded_paper" if padded else "poly_mailer"
    atlas = paint_atlas_maps(rng, [(p["length_mm"], p["width_mm"])] * 2, p["art_style"], px_per_mm=1.5,
                             surface="bubble" if padded else "film")
    art, rects = atlas.image, atlas.rects
    # padded envelopes are stiffer: flatter top, steeper edges
    px, py = (6.0, 6.0) if padded else (2.5, 2.5)
    wrinkle = min(0.12 * T, 1.5e-3)
    # seal flap: a thin slab following the top surface near the +y end
    y0, y1 = W / 2 - min(0.045, 0.2 * W), W / 2 - 0.004
    body, top = pillow(rng, L, W, T, px, py, 0.62, wrinkle, {"+z": rects[0], "-z": rects[1]},
                       calm_above=y0 - 0.005)
    x0, x1 = -L / 2 + 0.004, L / 2 - 0.004
    sx = np.linspace(x0, x1, 25)
    sy = np.linspace(y0, y1, 7)
    seal_t = 0.5e-3 if not padded else 0.9e-3

    def seal_deform(V, Lat):
        z = top(V[:, 0], V[:, 1])
        return np.stack([V[:, 0], V[:, 1], np.where(Lat[:, 2] == 1, z + seal_t, z - 0.2e-3)], 1)

    seal = G.box(sx, sy, np.array([0.0, 1.0]), None, seal_deform)[:3]
    parts = [Part("body", material, True), Part("seal", material, False)]
    film = (0.35 if padded else 0.12) * 2 * L * W  # kg of envelope material
    mass = float(np.clip(film + p["contents_kg"], *MASS_RANGE_KG))
    coll = G.slices(body[0], 0, 4)
    return finish(sku, "mailer", [(body, 0), (seal, 1)], parts, art, mass, coll, p, normal_map=atlas.normal)
