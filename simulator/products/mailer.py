"""Poly mailer and padded envelope: a filled bag, thin at the welded edges,
wrinkled as real film is.

Parts: ``body`` (the filled envelope, printed front and back) and ``seal``
(the closing flap strip near the +y end, lying on the top surface).
Item frame: x = length, y = width, z = thickness (lying flat, puffier on top).

The film is inextensible, so a filled bag cannot be a smooth pillow: the welded
edges gather into puckers (short sharp-crested wrinkles running in from each
edge, fading over a few centimetres), the faces carry a few long creases (tent
profiles, ridges or valleys) where the bag was folded or pressed, and a broad
low waviness (Cerda and Mahadevan 2003: amplitude ~ (wavelength / pi) sqrt(excess
length)). All of it is a height displacement of the top (and, weaker, the
bottom) surface, scaled by the pillow profile, so the bag stays two height
fields joined at the weld: closed and free of self-intersection. Finer creases
than the mesh resolves are in the normal map (``film`` relief).

Padded envelopes are stiffer (flatter top, steeper edges, fewer and softer
wrinkles) and show the bubble lining through the paper in their normal map.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from damage_ops import Part, Product

from . import _geom as G
from .artwork import _rotate, inked, logo_mark, noise_field, paint_atlas_maps, place, shipping_label
from .base import Param, finish, mm, resolve
from .surface import decode_normals, encode_normals, smooth_noise

PARAMS = {
    "length_mm": mm((200.0, 400.0), "along x"),
    "width_mm": mm((150.0, 300.0), "along y"),
    "thickness_mm": mm((10.0, 50.0), "along z at the puffiest point"),
    "style": Param("choice", ("poly", "padded"), choices=("poly", "padded")),
    "contents_kg": Param("float", (0.05, 1.0), 0.0, 20.0),
    "art_style": Param("choice", ("plain", "plain", "shipping", "shipping", "retail"),
                       choices=("retail", "plain", "shipping", "kraft", "crack_print", "splash_print"),
                       doc="plain: film or paper colour; shipping: plain plus a shipping label"),
    "wrinkle": Param("float", (0.3, 1.0), 0.0, 1.0,
                     doc="0: a smooth pillow; 1: deep edge puckers and creases"),
}
MATERIALS = ("poly_mailer", "padded_paper")
MASS_RANGE_KG = (0.02, 1.5)
EDGE = 0.35e-3  # half thickness of the welded edge (m)
CELL = 0.010    # mesh cell in the bag's interior (m): resolves wrinkles >= ~25 mm
MAX_CELLS = 44  # per axis: keeps the mailer under ~8000 faces

#: sRGB film colours of plain poly mailers (white and grey most often) and
#: their draw weights
POLY_COLOURS = np.array([[0.93, 0.93, 0.92], [0.84, 0.85, 0.87], [0.68, 0.69, 0.72], [0.14, 0.14, 0.15],
                         [0.93, 0.66, 0.76], [0.38, 0.52, 0.76], [0.96, 0.93, 0.84]])
POLY_WEIGHTS = np.array([4, 3, 2, 1, 1, 1, 1], np.float64)
#: sRGB paper colours of padded envelopes: kraft, gold manila, white
PADDED_COLOURS = np.array([[0.72, 0.56, 0.39], [0.84, 0.71, 0.42], [0.93, 0.92, 0.88]])
PADDED_WEIGHTS = np.array([4, 2, 2], np.float64)


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


def bag_coords(half: float, cell: float) -> np.ndarray:
    """Increasing coordinates (meters) over [-half, half]: about ``cell`` apart
    inside, plus planes 1, 2.5 and 5 mm in from each edge where the pillow
    rises steeply."""
    n = int(np.clip(np.ceil(2 * half / cell), 4, MAX_CELLS - 6))
    inner = np.linspace(-half, half, n + 1)
    near = half - np.array([1e-3, 2.5e-3, 5e-3])
    c = np.unique(np.concatenate([inner, near, -near]))
    keep = np.concatenate([[True], np.diff(c) > 0.6e-3])  # drop planes closer than 0.6 mm
    return c[keep]


def _crest(theta: np.ndarray) -> np.ndarray:
    """Zero-mean wave with sharp crests and round troughs (film wrinkles fold at
    the crest): 1 - |sin| minus its mean."""
    return (1.0 - np.abs(np.sin(theta))) - (1.0 - 2.0 / np.pi)


def film_wrinkles(rng: np.random.Generator, L: float, W: float, strength: float, padded: bool):
    """Wrinkle height field of a filled bag, w(x, y) -> meters (arrays in meters).

    - edge puckers: along each welded edge (with probability 0.85, padded 0.4)
      a train of sharp-crested wrinkles across the edge, wavelength 14-32 mm
      (padded 25-45), amplitude 0.8-2.5 mm x strength, fading over 12-40 mm
      from the edge, each crest reaching in its own distance, crests wandering;
    - creases: 2-6 (padded 0-2) straight tent ridges or valleys, half width
      5-12 mm, 0.6-1.8 mm x strength high, 15-45 % of the bag long, tapered to nothing at their ends;
    - broad waviness: :func:`_geom.wrinkle_field` at 45-90 mm, 0.35 mm x strength.
    Padded envelopes get 0.4 x the amplitudes."""
    k_amp = strength * (0.4 if padded else 1.0)
    edges = []
    for axis, half, other in ((0, L / 2, W / 2), (1, W / 2, L / 2)):
        for sgn in (-1.0, 1.0):
            if rng.uniform() < (0.4 if padded else 0.85):
                lam = rng.uniform(25, 45) * 1e-3 if padded else rng.uniform(14, 32) * 1e-3
                edges.append(dict(axis=axis, sgn=sgn, half=half, lam=lam,
                                  amp=k_amp * rng.uniform(0.8, 2.5) * 1e-3, reach=rng.uniform(12, 40) * 1e-3,
                                  ph=rng.uniform(0, 2 * np.pi, 3), wander=rng.uniform(0.3, 1.2, 2),
                                  kw=rng.uniform(2.0, 5.0, 2) * lam, kr=rng.uniform(0.8, 1.6) * lam))
    n_cr = int(rng.integers(0, 3)) if padded else int(rng.integers(2, 7))
    creases = []
    for _ in range(n_cr):
        c = rng.uniform(-0.4, 0.4, 2) * (L, W)
        th = rng.uniform(0, np.pi)
        creases.append(dict(c=c, d=np.array([np.cos(th), np.sin(th)]), half=rng.uniform(0.075, 0.225) * (L + W),
                            sig=rng.uniform(5, 12) * 1e-3,
                            amp=k_amp * rng.uniform(0.6, 1.8) * 1e-3 * (1 if rng.uniform() < 0.6 else -1)))
    lam_b = rng.uniform(45, 90) * 1e-3
    broad_seed = int(rng.integers(0, 2 ** 63 - 1))  # w may be evaluated more than once: same waves each time
    broad_excess = (0.35e-3 * strength * np.pi / lam_b) ** 2

    def w(x, y):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out = np.zeros(np.broadcast(x, y).shape)
        for e in edges:
            along = y if e["axis"] == 0 else x
            across = x if e["axis"] == 0 else y
            d = e["half"] - e["sgn"] * across  # distance in from this edge
            ph = e["ph"][0] + sum(a * np.sin(along / k + p) for a, k, p in zip(e["wander"], e["kw"], e["ph"][1:]))
            theta = np.pi * along / e["lam"] + ph
            # each crest reaches in its own distance
            reach = e["reach"] * (1 + 0.5 * np.sin(along / e["kr"] + e["ph"][2]))
            out += e["amp"] * _crest(theta) * np.exp(-np.clip(d, 0, None) / reach)
        for c in creases:
            px, py = x - c["c"][0], y - c["c"][1]
            u = px * c["d"][0] + py * c["d"][1]
            v = -px * c["d"][1] + py * c["d"][0]
            taper = np.clip(1 - (u / c["half"]) ** 2, 0, None)
            out += c["amp"] * np.clip(1 - np.abs(v) / c["sig"], 0, None) * taper
        P = np.stack([np.ravel(np.broadcast_to(x, out.shape)), np.ravel(np.broadcast_to(y, out.shape))], 1)
        out += G.wrinkle_field(np.random.default_rng(broad_seed), P, lam_b, broad_excess).reshape(out.shape)
        return out
    return w


def bag(L, W, T, px, py, top_share, wrinkles, rects, calm_above=None, cell=CELL):
    """Closed pillow surface: top z = EDGE + g (top_share T - EDGE + w), bottom
    -(EDGE + g ((1 - top_share) T - EDGE + 0.3 w)), g = gx(x) gy(y) in [0, 1]
    (1 at the centre, 0 at the weld), w = ``wrinkles(x, y)`` meters clipped to
    +-0.45 of the top height (so the top stays above the bottom) and faded out
    for y > ``calm_above`` (strips laid on the top surface sit flush there).
    wrinkles None: a smooth pillow. uv of the faces follow position (``rects``
    "+z" and "-z" panels span the bag).
    Returns (V, F, UV) and the wrinkle-free top-height function f(x, y)."""
    xs, ys = bag_coords(L / 2, cell), bag_coords(W / 2, cell)

    def gx(x):
        return np.clip(1 - np.abs(2 * x / L) ** px, 0, 1) ** 0.45

    def g_y(y):
        return np.clip(1 - np.abs(2 * y / W) ** py, 0, 1) ** 0.45

    top_h, bot_h = top_share * T - EDGE, (1 - top_share) * T - EDGE

    def top(x, y):
        return EDGE + top_h * gx(x) * g_y(y)

    def deform(V, Lat):
        x, y = V[:, 0], V[:, 1]
        w = np.zeros(len(V)) if wrinkles is None else wrinkles(x, y)
        if calm_above is not None:
            w = w * np.clip((calm_above - y) / 0.02, 0, 1)
        g = gx(x) * g_y(y)
        wt = np.clip(w, -0.45 * top_h, 0.45 * top_h)
        wb = np.clip(0.3 * w, -0.45 * bot_h, 0.45 * bot_h)
        z = np.where(Lat[:, 2] == 1, EDGE + g * (top_h + wt), -(EDGE + g * (bot_h + wb)))
        return np.stack([x, y, z], 1)

    V, F, UV, side = G.box(xs, ys, np.array([0.0, 1.0]), rects, deform)
    # uv by position, not lattice index: the print keeps its true scale across
    # the non-uniform planes
    for name, sgn in (("+z", 1.0), ("-z", -1.0)):
        if name in rects:
            sel = side == G.SIDES.index(name)
            UV[sel] = _uv_xy(V[F[sel]], rects[name], L, W, sgn)
    if "+z" in rects:  # the weld strip: the front print's rim
        sel = side < G.SIDES.index("+z")
        UV[sel] = _uv_xy(V[F[sel]], rects["+z"], L, W)
    return (V, F, UV), top


def pillow(rng, L, W, T, px, py, top_share, wrinkle, rects, gy=None, nx=16, ny=14, calm_above=None):
    """The pouch's pillow (mailers use :func:`bag`). Closed pillow surface: top z = EDGE + (top_share*T - EDGE) * g, bottom the
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


def _uv_xy(tri: np.ndarray, rect, L: float, W: float, sgn: float = 1.0) -> np.ndarray:
    """(n, 3, 2) uv of triangles (n, 3, 3) meters in the panel ``rect`` spanning
    the bag's [-L/2, L/2] x [-W/2, W/2], seen from +z (sgn 1) or -z (sgn -1,
    mirrored in y so the back print reads upright from below).

    Faces steeper than 60 degrees (the weld and flap edges) are moved inward by
    a tenth of their height above the bag's bottom, so their uv stays inside
    the panel and never degenerates to a line: the shader derives the normal
    map's tangent frame from the uv derivatives, and a degenerate frame
    renders black."""
    u0, v0, u1, v1 = rect
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    steep = (np.abs(n[:, 2]) < 0.5 * np.linalg.norm(n, axis=1))[:, None]
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    inward = np.where(steep, 0.1 * (z - z.min() + 1e-3), 0.0)
    x = x - np.sign(x) * inward
    y = y - np.sign(y) * inward
    fx = np.clip((x + L / 2) / L, 0, 1)
    fy = np.clip((W / 2 + sgn * y) / W, 0, 1)
    return np.stack([u0 + fx * (u1 - u0), v0 + fy * (v1 - v0)], -1)


def _panel_box(rect, shape) -> tuple[int, int, int, int]:
    """Pixel box (y0, y1, x0, x1) of an atlas rect (u0, v0, u1, v1) (half-pixel inset)."""
    H, W = shape[:2]
    u0, v0, u1, v1 = rect
    return (int(round((1 - v1) * H - 0.5)), int(round((1 - v0) * H + 0.5)),
            int(round(u0 * W - 0.5)), int(round(u1 * W + 0.5)))


def _brand(img: np.ndarray, rng: np.random.Generator, rects, ppm: float) -> None:
    """A shop's branded poly mailer, in place on the atlas (h, w, 3) float: its
    logo printed small in a top corner of the front (clear of the label) and
    large across the back, in one ink that contrasts with the film: white on dark or
    coloured film, near-black on light."""
    y0, y1, x0, x1 = _panel_box(rects[0], img.shape)
    film = img[(y0 + y1) // 2, (x0 + x1) // 2]
    light = float(film.mean()) > 0.7
    ink = np.array([0.1, 0.1, 0.11]) if light and rng.uniform() < 0.7 else \
        (np.array([0.95, 0.95, 0.94]) if not light else np.clip(film * rng.uniform(0.3, 0.6), 0, 1))
    for k, rect in enumerate(rects[:2]):
        y0, y1, x0, x1 = _panel_box(rect, img.shape)
        h, w = y1 - y0, x1 - x0
        # the front carries it small, in a top corner, clear of the label; the
        # back large across the middle
        span = rng.uniform(0.25, 0.4) if k == 0 else rng.uniform(0.55, 0.85)
        a = logo_mark(rng, ppm, 1.4 * span * w / ppm)
        if a.shape[1] > span * w * 1.3:
            f = span * w / a.shape[1]
            a = ndimage.zoom(a, f, order=1)
        if a.shape[0] >= 0.45 * h or a.shape[1] >= 0.95 * w or min(a.shape) < 4:
            continue
        cov = inked(rng, a, ppm, density=0.95, mottle=0.15)
        if k == 0:
            cy = 0.06 * h + a.shape[0] / 2 + rng.uniform(0, 0.04) * h
            cx = (0.06 * w + a.shape[1] / 2) if rng.uniform() < 0.5 else (0.94 * w - a.shape[1] / 2)
        else:
            cy, cx = rng.uniform(0.4, 0.6) * h, w / 2
        place(img[y0:y1, x0:x1], cy, cx, cov, ink, "over")


#: share of plain and shipping poly mailers that carry a shop's printed logo
BRANDED_P = 0.35


def _paint(rng: np.random.Generator, p: dict, padded: bool):
    """Atlas (front = panel 0, back = panel 1) with its normal map. Plain and
    shipping styles use a film or paper colour (never the brand palette's dark
    ink: that made plain padded envelopes near-black); padded paper gets fibre
    mottling, film a faint sheen variation; shipping adds a label on the front."""
    panels = [(p["length_mm"], p["width_mm"])] * 2
    style = p["art_style"]
    palette = None
    if style in ("plain", "shipping"):
        cols, wts = (PADDED_COLOURS, PADDED_WEIGHTS) if padded else (POLY_COLOURS, POLY_WEIGHTS)
        c = cols[int(rng.choice(len(cols), p=wts / wts.sum()))] * (1 + rng.uniform(-0.03, 0.03))
        palette = np.clip(np.repeat(c[None], 5, axis=0), 0, 1)
    atlas = paint_atlas_maps(rng, panels, "plain" if style == "shipping" else style, px_per_mm=1.5,
                             palette=palette, surface="bubble" if padded else "film")
    img = atlas.image.astype(np.float32) / 255
    ppm = atlas.px_per_mm
    if style in ("plain", "shipping"):
        for rect in atlas.rects:
            y0, y1, x0, x1 = _panel_box(rect, img.shape)
            h, w = y1 - y0, x1 - x0
            if padded:  # paper: fibre streaks along the machine direction and soft flocs
                lum = 1 + 0.025 * smooth_noise(rng, h, w, (0.3 * ppm + 0.3, 1.5 * ppm + 0.5)) \
                    + 0.02 * smooth_noise(rng, h, w, 6 * ppm)
            else:  # film: faint milky variation of the pigment
                lum = 1 + 0.012 * smooth_noise(rng, h, w, 20 * ppm)
            img[y0:y1, x0:x1] *= lum[..., None]
        if not padded and rng.uniform() < BRANDED_P:
            _brand(img, rng, atlas.rects, ppm)
    normal = atlas.normal
    if style == "shipping":
        y0, y1, x0, x1 = _panel_box(atlas.rects[0], img.shape)
        cover = np.zeros(img.shape[:2], np.float32)
        col, a = shipping_label(rng, ppm)
        deg = rng.uniform(-8, 8)
        ra = _rotate(a, deg)
        rc = np.stack([_rotate(col[..., i], deg) for i in range(3)], -1)
        if ra.shape[0] > 0.9 * (y1 - y0) or ra.shape[1] > 0.9 * (x1 - x0):  # a small bag: the small label
            ra, rc = ra[::2, ::2], rc[::2, ::2]
        place(img[y0:y1, x0:x1], rng.uniform(0.35, 0.65) * (y1 - y0), rng.uniform(0.3, 0.7) * (x1 - x0),
              ra, rc, "over", cover[y0:y1, x0:x1])
        # a paper label bridges the film's fine relief: keep a third of the slope
        n = decode_normals(normal)
        n[..., :2] *= (1 - 0.66 * cover)[..., None]
        normal = encode_normals(n / np.linalg.norm(n, axis=-1, keepdims=True))
    art = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return art, atlas.rects, normal


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Mailer of exactly (length, width, thickness) mm."""
    p = resolve("mailer", PARAMS, params, rng)
    check(p)
    L, W, T = p["length_mm"] / 1e3, p["width_mm"] / 1e3, p["thickness_mm"] / 1e3
    padded = p["style"] == "padded"
    material = "padded_paper" if padded else "poly_mailer"
    art, rects, normal = _paint(rng, p, padded)
    # padded envelopes are stiffer: flatter top, steeper edges
    px, py = (6.0, 6.0) if padded else (2.5, 2.5)
    wr = film_wrinkles(rng, L, W, p["wrinkle"], padded) if p["wrinkle"] > 0 else None
    # seal flap: a thin slab following the top surface near the +y end
    y0, y1 = W / 2 - min(0.045, 0.2 * W), W / 2 - 0.004
    body, top = bag(L, W, T, px, py, 0.62, wr, {"+z": rects[0], "-z": rects[1]}, calm_above=y0 - 0.005)
    x0, x1 = -L / 2 + 0.004, L / 2 - 0.004
    sx = np.linspace(x0, x1, 25)
    sy = np.linspace(y0, y1, 7)
    seal_t = 0.5e-3 if not padded else 0.9e-3

    def seal_deform(V, Lat):
        z = top(V[:, 0], V[:, 1])
        return np.stack([V[:, 0], V[:, 1], np.where(Lat[:, 2] == 1, z + seal_t, z - 0.2e-3)], 1)

    sV, sF, _, _ = G.box(sx, sy, np.array([0.0, 1.0]), None, seal_deform)
    # the flap is the same film as the front: it shows the front print above it
    seal = (sV, sF, _uv_xy(sV[sF], rects[0], L, W))
    # wrinkles may lift the top a little above top_share * T: fit to the exact dims
    zb = body[0][:, 2].min()
    body, seal = G.fit_pieces([body, seal], (-L / 2, -W / 2, zb), (L / 2, W / 2, zb + T))
    parts = [Part("body", material, True), Part("seal", material, True)]
    film = (0.35 if padded else 0.12) * 2 * L * W  # kg of envelope material
    mass = float(np.clip(film + p["contents_kg"], *MASS_RANGE_KG))
    coll = G.slices(body[0], 0, 4)
    return finish(sku, "mailer", [(body, 0), (seal, 1)], parts, art, mass, coll, p, normal_map=normal)
