"""Corrugated shipping carton: a regular slotted carton (RSC) lying flat, closed
and taped, as parcels come.

Parts (names and frame are what the damage ops rely on):

- ``body``: the closed box (printed walls and bottom). Its vertical and bottom
  edges are rounded with ``edge_round_mm`` (board folds are never sharp); the
  top edges stay square, under the flaps. The two long side walls bow out (or,
  one time in five, in) by up to ``bow_mm`` at their middle.
- ``flap``: the two outer top flaps, one closed slab each, hinged along the long
  sides and meeting along x at a seam: a gap of ``seam_gap_mm`` between their
  rounded free edges, where the body top shows in shadow as a dark line. The
  fold edges are rounded; the flaps dome up a little (``flap_bulge_mm``) with
  per-flap unevenness and a low waviness, zero at the folds and the ends.
- ``tape``: thin closed strips (each its own connected component) lying on the
  flaps and end walls. ``tape_style``: ``strip`` (one strip along the seam,
  down both end walls), ``h_tape`` (that, plus a strip across each end seam,
  half on the top, half on the end wall) or ``retaped`` (a second strip over
  the first, offset and skewed by up to 1.5 degrees). Strips carry lifted edges,
  a peeled end and small wrinkles (outward displacement only). A strip laid
  over another rides ``TAPE_T + STACK_GAP`` higher over the lower strip's
  footprint widened by ``DELTA``, ramping down over ``RHO``, and is sampled
  finer than ``DELTA`` across that ramp, so no strip pokes into another; a
  strip never dips under the board (it lies ``EPS`` above the flap surface,
  which it samples itself, and moves only outward).

Item frame: x = length, y = width, z = height (tape included). The finished
pieces are fitted to exactly (length, width, height) by one per-axis affine
stretch (:func:`_geom.fit_pieces`; the stretch is below a percent).

Tape is laid out in the developed surface of the top and both end walls:
s runs along x over the top (the folds at s = +-hx) and continues down the end
walls (depth below the top edge = |s| - hx); y runs across.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from damage_ops import Part, Product

from . import _geom as G
from .artwork import paint_atlas_maps
from .base import Param, finish, mm, resolve

#: tape materials a carton may name (the library must hold the one chosen; the
#: catalog checks that). "tape" is the legacy brown tape.
TAPE_MATERIALS = ("tape", "tape_brown", "tape_clear", "tape_white")
TAPE_STYLES = ("strip", "h_tape", "retaped")

PARAMS = {
    "length_mm": mm((150.0, 450.0), "outer length along x"),
    "width_mm": mm((100.0, 300.0), "outer width along y"),
    "height_mm": mm((60.0, 300.0), "outer height along z, tape included"),
    "board_mm": Param("float", (3.0, 5.0), 1.0, 10.0, doc="flap board thickness"),
    "tape_width_mm": Param("float", (48.0, 50.0), 10.0, 100.0),
    "fill_kg_m3": Param("float", (15.0, 60.0), 0.0, 2000.0, doc="contents mass per outer volume"),
    "art_style": Param("choice", ("kraft", "kraft", "retail"),
                       choices=("kraft", "shipping", "retail", "plain", "crack_print", "splash_print")),
    # h_tape is not drawn by default: deconstruction's flap_open peels only tape
    # reaching the domed flap's peak, and H-tape end strips (at the flat ends) stay
    # floating over an opened flap; catalogs may still name it
    "tape_style": Param("choice", ("strip", "strip", "retaped"), choices=TAPE_STYLES,
                        doc="strip | h_tape | retaped"),
    # brown tape most often, as parcels come; "tape" (legacy brown) stays nameable
    "tape_material": Param("choice", ("tape_brown", "tape_brown", "tape_clear", "tape_white"),
                           choices=TAPE_MATERIALS, doc="material of every tape strip"),
    "seam_gap_mm": Param("float", (1.0, 3.5), 0.2, 10.0, doc="gap between the two flaps at the seam"),
    "flap_bulge_mm": Param("float", (0.0, 4.0), 0.0, 15.0, doc="how far the flaps dome up at the seam"),
    "edge_round_mm": Param("float", (1.5, 4.0), 0.0, 15.0, doc="radius of the rounded box edges"),
    "tape_wear": Param("float", (0.0, 1.0), 0.0, 1.0,
                       doc="0: tape lies flat; 1: lifted edges, a peeled end and wrinkles on most strips"),
    "reuse_p": Param("float", (0.4, 0.4), 0.0, 1.0,
                     doc="per-panel probability of an earlier trip's marks (shipping style: old label "
                         "remains, tape ghosts, crossed-out marker)"),
    "wear": Param("float", (0.1, 0.9), 0.0, 1.0,
                  doc="handling wear of the board: 0 new; 1 frayed edges, worn corners, scuffs on most panels"),
    "bow_mm": Param("float", (0.0, 4.0), 0.0, 10.0,
                    doc="how far each long side wall bows out (filled box) or in (slack), at its middle"),
}
MATERIALS = ("cardboard", "tape")
MASS_RANGE_KG = (0.2, 3.0)
TAPE_T = 0.3e-3
CELL = 0.018  # target grid cell (m): fine enough for dents, few enough faces
TAPE_CELL = 0.02  # tape cell along its length (m): the chord lift over the domed flaps grows with its square
TAPE_T_CELL = 0.012  # tape cell across a narrow strip (m)
EPS = 0.05e-3  # tape inner surface above the board (m), plus the chord error of the domed flaps
DELTA, RHO = 4e-3, 8e-3  # stacking: plateau margin and ramp beyond a lower strip (m)
STACK_GAP = 0.25e-3  # extra clearance of a strip over a lower one (m)
FINE = 3e-3  # sample spacing of a strip across a lower strip's edge (m), < DELTA


def nominal_dims_mm(p: dict) -> tuple[float, float, float]:
    return (p["length_mm"], p["width_mm"], p["height_mm"])


def check(p: dict) -> None:
    if p["height_mm"] < 3 * p["board_mm"] + 10:
        raise ValueError(f"height_mm {p['height_mm']:g} too small for board_mm {p['board_mm']:g}")
    if p["tape_width_mm"] > 0.8 * p["width_mm"]:
        raise ValueError(f"tape_width_mm {p['tape_width_mm']:g} wider than 0.8 * width_mm {p['width_mm']:g}")
    if p["seam_gap_mm"] > 0.2 * p["tape_width_mm"]:
        raise ValueError(f"seam_gap_mm {p['seam_gap_mm']:g} wider than 0.2 * tape_width_mm {p['tape_width_mm']:g}")
    small = min(p["length_mm"], p["width_mm"], p["height_mm"])
    if p["edge_round_mm"] > 0.1 * small:
        raise ValueError(f"edge_round_mm {p['edge_round_mm']:g} larger than 0.1 x the smallest side ({small:g} mm)")


@dataclass
class Strip:
    """One tape strip in the developed surface: s in [s0, s1], y = y0 + slope s + t,
    t in [t0, t1] (meters). Features (outward lifts, meters):
    ridges (s_c, k, amp, sigma): a wrinkle along s = s_c + k t;
    tlifts (side, sa, sb, amp, l): the edge t = t0 (side -1) or t1 (+1) lifted
    over l, for s in [sa, sb];
    slifts (end, amp, e): the end s = s0 (-1) or s1 (+1) peeled over e."""

    s0: float
    s1: float
    y0: float
    slope: float
    t0: float
    t1: float
    ridges: list = field(default_factory=list)
    tlifts: list = field(default_factory=list)
    slifts: list = field(default_factory=list)

    def outside(self, s, y):
        """Chebyshev distance outside the footprint (<= 0 inside), meters."""
        t = y - self.y0 - self.slope * s
        return np.maximum(np.maximum(self.s0 - s, s - self.s1), np.maximum(self.t0 - t, t - self.t1))

    def bbox(self):
        ys = [self.y0 + self.slope * s + t for s in (self.s0, self.s1) for t in (self.t0, self.t1)]
        return np.array([self.s0, min(ys)]), np.array([self.s1, max(ys)])

    def lift(self, s, t):
        d = np.zeros(np.broadcast(s, t).shape)
        for sc, k, amp, sig in self.ridges:
            d += amp * np.exp(-((s - sc - k * t) / sig) ** 2)
        for side, sa, sb, amp, l in self.tlifts:
            edge = self.t1 if side > 0 else self.t0
            u = np.clip(1 - side * (edge - t) / l, 0, 1)
            win = np.clip(np.minimum(s - sa, sb - s) / 0.01 + 1, 0, 1)
            d += amp * u * u * (3 - 2 * u) * win * win
        for end, amp, e in self.slifts:
            u = np.clip((s - (self.s1 - e)) / e, 0, 1) if end > 0 else np.clip(((self.s0 + e) - s) / e, 0, 1)
            d += amp * u ** 2
        return d

    def feature_boxes(self):
        """(kind, index, (s_lo, y_lo), (s_hi, y_hi)) support of each feature."""
        out = []
        tw = max(abs(self.t0), abs(self.t1))
        for i, (sc, k, amp, sig) in enumerate(self.ridges):
            a = abs(k) * tw + 3 * sig
            out.append(("ridges", i, sc - a, sc + a, self.t0, self.t1))
        for i, (side, sa, sb, amp, l) in enumerate(self.tlifts):
            ta, tb = (self.t1 - l, self.t1) if side > 0 else (self.t0, self.t0 + l)
            out.append(("tlifts", i, sa - 0.01, sb + 0.01, ta, tb))
        for i, (end, amp, e) in enumerate(self.slifts):
            sa, sb = (self.s1 - e, self.s1) if end > 0 else (self.s0, self.s0 + e)
            out.append(("slifts", i, sa, sb, self.t0, self.t1))
        boxes = []
        for kind, i, sa, sb, ta, tb in out:
            ys = [self.y0 + self.slope * s + t for s in (sa, sb) for t in (ta, tb)]
            boxes.append((kind, i, np.array([sa, min(ys)]), np.array([sb, max(ys)])))
        return boxes


def _cluster(c0: float, c1: float, step: float) -> np.ndarray:
    n = max(1, int(np.ceil((c1 - c0) / step)))
    return np.linspace(c0, c1, n + 1)


def _merge(vals: np.ndarray, lo: float, hi: float, keep: np.ndarray, tol: float = 0.4e-3) -> np.ndarray:
    """Sorted unique samples in [lo, hi]; samples within tol of a kept one or of
    the previous one are dropped (kept ones: ends, folds)."""
    vals = np.unique(np.clip(vals, lo, hi))
    keep = np.unique(np.clip(np.concatenate([keep, [lo, hi]]), lo, hi))
    rest = vals[np.abs(vals[:, None] - keep[None]).min(1) > tol] if len(vals) else vals
    out = []
    for v in np.sort(np.concatenate([keep, rest])):
        if not out or v - out[-1] > tol or v in keep:
            if out and v - out[-1] <= tol and v in keep:
                out[-1] = v
            else:
                out.append(v)
    return np.array(out)


def _lay_strips(rng: np.random.Generator, p: dict, hx: float, W: float, z_top: float, r: float) -> list[Strip]:
    """Strips in laying order (later ones lie over earlier ones), with their features."""
    tw = p["tape_width_mm"] / 1e3
    margin = r + 0.004

    def drop():
        return float(min(rng.uniform(0.04, 0.075), 0.45 * z_top))

    off = float(rng.uniform(-0.12, 0.12) * tw)
    strips = [Strip(-hx - drop(), hx + drop(), off, 0.0, -tw / 2, tw / 2)]
    style = p["tape_style"]
    if style == "h_tape":
        for sgn in (-1, 1):
            a_top = float(min(rng.uniform(0.4, 0.6) * tw, 0.3 * hx))
            a_wall = float(min(tw - a_top, 0.4 * z_top))
            m0, m1 = margin + rng.uniform(0, 0.012), margin + rng.uniform(0, 0.012)
            s0, s1 = (-hx - a_wall, -hx + a_top) if sgn < 0 else (hx - a_top, hx + a_wall)
            strips.append(Strip(s0, s1, 0.0, 0.0, -W / 2 + m0, W / 2 - m1))
    elif style == "retaped":
        slope = float(np.tan(np.radians(rng.uniform(-1.5, 1.5))))
        dy = float(rng.uniform(-0.35, 0.35) * tw)
        s0, s1 = -hx - drop(), hx + drop()
        reach = abs(slope) * max(-s0, s1)
        y0 = float(np.clip(off + dy, -(W / 2 - margin - tw / 2 - reach), W / 2 - margin - tw / 2 - reach))
        strips.append(Strip(s0, s1, y0, slope, -tw / 2, tw / 2))

    wear = p["tape_wear"]
    for st in strips:
        along_s = st.t1 - st.t0 < st.s1 - st.s0
        if along_s:
            top_lo, top_hi = -hx + 0.03, hx - 0.03
            for _ in range(int(rng.integers(0, 1 + int(round(2 * wear))))):
                st.ridges.append((float(rng.uniform(top_lo, top_hi)) if top_hi > top_lo else 0.0,
                                  float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.15, 0.6) * 1e-3),
                                  float(rng.uniform(1.5, 3.0) * 1e-3)))
            if rng.random() < 0.7 * wear and top_hi - top_lo > 0.06:
                sa = float(rng.uniform(top_lo, top_hi - 0.03))
                st.tlifts.append((int(rng.choice([-1, 1])), sa, float(min(top_hi, sa + rng.uniform(0.02, 0.09))),
                                  float(rng.uniform(0.4, 1.5) * 1e-3), float(rng.uniform(3, 8) * 1e-3)))
            if rng.random() < 0.5 * wear:
                end = int(rng.choice([-1, 1]))
                wall = (st.s1 - hx) if end > 0 else (-hx - st.s0)
                e = float(min(rng.uniform(0.008, 0.02), wall - 0.006))
                if e > 0.004:
                    st.slifts.append((end, float(rng.uniform(1.0, 3.0) * 1e-3), e))
        elif rng.random() < 0.5 * wear:  # an H end strip: its wall edge peels
            end = 1 if st.s0 > 0 else -1
            wall = (st.s1 - hx) if end > 0 else (-hx - st.s0)
            e = float(min(rng.uniform(0.006, 0.012), 0.5 * wall))
            st.slifts.append((end, float(rng.uniform(0.5, 1.5) * 1e-3), e))

    # a feature may not lie under a later strip: drop those (their support box
    # within reach of a later strip's bounding box)
    reach = DELTA + RHO + 0.003
    for i, st in enumerate(strips):
        drop_idx = {"ridges": set(), "tlifts": set(), "slifts": set()}
        for kind, k, blo, bhi in st.feature_boxes():
            for later in strips[i + 1:]:
                llo, lhi = later.bbox()
                if np.all(blo - reach <= lhi) and np.all(llo <= bhi + reach):
                    drop_idx[kind].add(k)
        for kind, idx in drop_idx.items():
            setattr(st, kind, [f for j, f in enumerate(getattr(st, kind)) if j not in idx])
    return strips


def _strip_samples(st: Strip, lower: list[Strip], hx: float) -> tuple[np.ndarray, np.ndarray]:
    """s and t samples of one strip: coarse, plus fine where features or a lower
    strip's edges are (closer than FINE < DELTA across those edges)."""
    folds = np.array([f for f in (-hx, hx) if st.s0 < f < st.s1])
    s = [np.linspace(st.s0, st.s1, max(2, int(np.ceil((st.s1 - st.s0) / TAPE_CELL))) + 1)]
    # fine across: an H end strip runs across the domed flaps, whose chord error
    # (the lift that keeps the strip off the board) grows with the square of this cell
    nt = max(2, int(np.ceil((st.t1 - st.t0) / TAPE_T_CELL)))
    t = [np.linspace(st.t0, st.t1, nt + 1)]
    for sc, k, amp, sig in st.ridges:
        a = abs(k) * max(abs(st.t0), abs(st.t1)) + 2.5 * sig
        s.append(_cluster(sc - a, sc + a, sig / 1.2))
    for side, sa, sb, amp, l in st.tlifts:
        s.append(_cluster(sa - 0.01, sb + 0.01, 0.01))
        edge = st.t1 if side > 0 else st.t0
        t.append(_cluster(min(edge, edge - side * l), max(edge, edge - side * l), l / 4))
    for end, amp, e in st.slifts:
        s.append(_cluster(st.s1 - e, st.s1, e / 4) if end > 0 else _cluster(st.s0, st.s0 + e, e / 4))
    # only the plateau edge (a concave kink, DELTA outside the lower strip) needs
    # the fine spacing; the ramp's foot is convex, chords lie above it
    pad = DELTA + FINE
    for lo in lower:
        for edge in (lo.s0, lo.s1):
            if st.s0 - pad < edge < st.s1 + pad:
                s.append(_cluster(edge - pad, edge + pad, FINE))
        # the lower strip's long edges in this strip's t, over this strip's s range
        for edge in (lo.t0, lo.t1):
            ts = [lo.y0 + lo.slope * ss + edge - st.y0 - st.slope * ss for ss in (st.s0, st.s1)]
            a, b = min(ts) - pad, max(ts) + pad
            if b > st.t0 and a < st.t1:
                t.append(_cluster(max(a, st.t0), min(b, st.t1), FINE))
    S = _merge(np.concatenate(s), st.s0, st.s1, folds)
    T = _merge(np.concatenate(t), st.t0, st.t1, np.zeros(0))
    return S, T


def _flap_top(hx: float, W: float, g: float, b_c: float, b_k: tuple[float, float], wav: list):
    """Height of the flap top above its flat level, as a function of (x, y) meters:
    a dome (b_c, peak at the seam), per-flap unevenness b_k (zero at fold and
    seam, so the surface stays continuous across the gap), low waviness; all
    zero at the folds (|y| = W/2) and the ends (|x| = hx)."""
    def f(x, y):
        ux = np.clip((x + hx) / (2 * hx), 0, 1)
        uy = np.clip((y + W / 2) / W, 0, 1)
        ex = np.sin(np.pi * ux)
        v = np.clip((W / 2 - np.abs(y)) / (W / 2 - g), 0, 1)
        bk = np.where(y < 0, b_k[0], b_k[1])
        z = b_c * np.sin(np.pi * uy) + bk * np.sin(np.pi * v) ** 2
        for a, kx, ky, ph in wav:
            z = z + a * np.sin(kx * x + ky * y + ph) * np.sin(np.pi * uy)
        return ex * z
    return f


def build(sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Carton with dims exactly (length, width, height) mm; mass 0.2-3 kg."""
    p = resolve("carton", PARAMS, params, rng)
    check(p)
    L, W, H = p["length_mm"] / 1e3, p["width_mm"] / 1e3, p["height_mm"] / 1e3
    bt = p["board_mm"] / 1e3
    g = p["seam_gap_mm"] / 2e3                 # half gap
    r = p["edge_round_mm"] / 1e3
    hx = L / 2 - TAPE_T  # body and flaps inset so the tape on the end walls lands on the bbox
    z_top = H - TAPE_T   # flat flap top (before the dome; the fit restores H)
    z_body = z_top - bt  # body top = flap bottom

    panels = [(W, z_body), (W, z_body), (2 * hx, z_body), (2 * hx, z_body), (2 * hx, W),
              (2 * hx, W / 2), (2 * hx, W / 2)]
    # the shipping label goes on a flap top (panel 5); flutes run up the walls
    atlas = paint_atlas_maps(rng, [(a * 1e3, b * 1e3) for a, b in panels], p["art_style"], primary=5,
                             reuse_p=p["reuse_p"], wear=p["wear"])
    art, rects = atlas.image, atlas.rects
    # every printed face gets a real uv patch, hidden ones too (the body top
    # under the flaps shows in the seam gap, the flaps' cut edges at the ends):
    # the shader derives the normal map's tangent frame from uv derivatives, and
    # a face with one uv for all its corners renders black
    body_rects = dict(zip(("+x", "-x", "+y", "-y", "-z"), rects[:5]), **{"+z": rects[4]})

    # flap surface: dome, unevenness, waviness (drawn before the tape: fixed order)
    bulge = p["flap_bulge_mm"] / 1e3
    b_c = float(rng.uniform(0.5, 1.0) * bulge)
    b_k = tuple(float(x) for x in rng.uniform(-0.3, 0.3, 2) * bulge)
    wav = [(float(rng.uniform(0.05, 0.2) * 1e-3 + 0.05 * bulge), *(rng.normal(size=2) * 2 * np.pi / 0.5),
            float(rng.uniform(0, 2 * np.pi))) for _ in range(3)]
    top = _flap_top(hx, W, g, b_c, b_k, wav)
    # the tape samples the domed top coarser than the flaps do: lift it by the
    # chord error (curvature bound x the squared triangle diameter / 8)
    kx = (np.pi / (2 * hx)) ** 2 * (b_c + max(map(abs, b_k))) + sum(a * (k1 ** 2 + k2 ** 2) for a, k1, k2, _ in wav)
    ky = (np.pi / W) ** 2 * b_c + 2 * (np.pi / (W / 2 - g)) ** 2 * max(map(abs, b_k))
    # never sag more than half the board: the flap keeps its volume
    top_of = (lambda x, y: np.maximum(top(x, y), -0.5 * bt))

    # body: rounded vertical and bottom edges, square top edges (under the flaps)
    # one plane r in from each rounded edge: a three-point arc (a bevel with a
    # rounded look under smooth normals); cells grow on big boxes to keep the
    # face count of body and flaps near 5000
    cell = max(CELL, float(np.sqrt((2 * (L * W + L * H + W * H) + 2 * L * W) / 2400)))
    ex = lambda lo, hi, rr: (lo + rr, hi - rr) if rr > 0 else ()
    xs = G.planes(-hx, hx, cell, ex(-hx, hx, r), 4)
    ys = G.planes(-W / 2, W / 2, cell, ex(-W / 2, W / 2, r), 4)
    zs = G.planes(0, z_body, cell, (r,) if r > 0 else (), 3)
    bV, bF, bUV, _ = G.box(xs, ys, zs, body_rects)
    bV = G.round_edges(bV, (-hx, -W / 2, 0), (hx, W / 2, z_body), (r, r, r), (r, r, 0))
    # the long side walls (no tape on them) are never quite flat: a filled box
    # bows out, a slack one sags in. Without it a flat panel would be the mark
    # of an intact box and any shading across one a damage cue. The bow is a
    # sin x sin bump zero on the wall's flat boundary (the planes r in from the
    # rounded edges, the square top edge under the flaps), so the edges keep
    # their shape; it stays under 2.5 % of the wall's span and the mesh's cells
    # (<= CELL ... a few cm) resolve it
    for sgn in (-1.0, 1.0):
        bow = p["bow_mm"] / 1e3 * rng.uniform(0.5, 1.0) * (1.0 if rng.uniform() < 0.8 else -0.6)
        wall = sgn * bV[:, 1] >= W / 2 - 1e-9
        fx = np.sin(np.pi * np.clip((bV[:, 0] + hx - r) / (2 * (hx - r)), 0, 1))
        fz = np.sin(np.pi * np.clip((bV[:, 2] - r) / (z_body - r), 0, 1))
        bow = float(np.clip(bow, -0.025 * min(2 * hx, z_body), 0.025 * min(2 * hx, z_body)))
        bV[wall, 1] += sgn * bow * (fx * fz)[wall]
    body = (bV, bF, bUV)

    # flaps: rounded fold edge and seam edge (top only), square ends
    rf = min(r, 0.6 * bt)            # fold edge
    rs = min(0.8e-3, 0.4 * bt)       # free (seam) edge, a cut edge: tighter
    rz = rf if rf > 0 else rs
    fz = np.unique([z_body, z_top - rz, z_top])
    flaps = []
    for k, (y0, y1) in enumerate(((-W / 2, -g), (g, W / 2))):
        fold_lo = k == 0
        r_lo = (0, rf if fold_lo else rs, 0)
        r_hi = (0, rs if fold_lo else rf, rz)
        fy = G.planes(y0, y1, cell, (y0 + r_lo[1], y1 - r_hi[1]), 2)
        V, F, UV, _ = G.box(xs, fy, fz, {side: rects[5 + k] for side in G.SIDES})
        V = G.round_edges(V, (-hx, y0, z_body), (hx, y1, z_top), r_lo, r_hi)
        frac = np.clip((V[:, 2] - z_body) / bt, 0, 1)
        V[:, 2] += frac * top_of(V[:, 0], V[:, 1])
        flaps.append((V, F, UV))

    # tape strips in the developed surface
    strips = _lay_strips(rng, p, hx, W, z_top, r)
    tapes = []
    for j, st in enumerate(strips):
        S, T = _strip_samples(st, strips[:j], hx)
        eps = EPS + (kx * np.diff(S).max() ** 2 + ky * np.diff(T).max() ** 2) * 2 / 8

        def deform(V, Lat, st=st, S=S, T=T, lower=strips[:j], eps=eps):
            s, t, layer = S[Lat[:, 0]], T[Lat[:, 1]], Lat[:, 2]
            y = st.y0 + st.slope * s + t
            h = eps + st.lift(s, t) + TAPE_T * layer
            for lo in lower:
                h = h + (TAPE_T + STACK_GAP) * np.clip((DELTA + RHO - lo.outside(s, y)) / RHO, 0, 1)
            on_top = np.abs(s) < hx
            sx = np.sign(s)
            x = np.where(on_top, s, sx * (hx + h))
            x = np.where(np.abs(np.abs(s) - hx) < 1e-12, sx * (hx + h), x)  # the fold: mitred
            z = np.where(on_top, z_top + top_of(np.clip(s, -hx, hx), y) + h, z_top - (np.abs(s) - hx))
            z = np.where(np.abs(np.abs(s) - hx) < 1e-12, z_top + h, z)
            return np.stack([x, y, z], 1)

        tapes.append(G.box(S, T, np.array([0.0, 1.0]), None, deform)[:3])

    pieces = G.fit_pieces([body, *flaps, *tapes], (-L / 2, -W / 2, 0), (L / 2, W / 2, H))
    tape_mat = p["tape_material"]
    parts = [Part("body", "cardboard", True), Part("flap", "cardboard", True), Part("tape", tape_mat, False)]
    labelled = [(pieces[0], 0), (pieces[1], 1), (pieces[2], 1)] + [(t, 2) for t in pieces[3:]]
    area = 2 * (L * W + L * H + W * H) + L * W  # walls + double board under the flaps
    mass = float(np.clip(0.55 * area + p["fill_kg_m3"] * L * W * H, *MASS_RANGE_KG))
    coll = [G.hull_points(np.array([[x, y, z] for x in (-L / 2, L / 2) for y in (-W / 2, W / 2) for z in (0, H)]))]
    return finish(sku, "carton", labelled, parts, art, mass, coll, p, normal_map=atlas.normal)
