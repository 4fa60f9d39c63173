"""Tear: a rip along a noisy path with a peeled-back flap (Kaputt category
``penetration``; ``deconstruction`` when the tear opens the item, see below).

Shape. The rip is a noisy V (two legs meeting at a tip, each leg offset
sideways by fractal Perlin noise ``noise.pnoise1`` that vanishes at the leg
ends) drawn in the tangent plane of a near-flat patch of one part; its total
length along the surface is ``length_mm``. The chord joining the two open
ends of the V is the hinge: the tongue between the legs and the hinge is the
flap, peeled back about the hinge by ``opening_deg``.

Geometry, keeping every part closed. Products are closed solids (a carton body
is a closed box with no modelled interior), so cutting the surface and lifting
one side would leave a hole. Instead:

- the tongue is removed from the part with a manifold3d boolean difference of a
  prism (the tongue outline extruded along the normal): on a solid part (wall
  thicker than 8 mm) a shallow pocket ``depth_mm`` deep (at most 0.6 x the
  local thickness) whose walls (the torn edge) and floor (the material's
  inside) get finish ``interior``, darkened; on a sheet thinner than 8 mm (a
  carton flap, a shrink film) the prism goes through the sheet, its walls are
  the torn edge and what lies behind (the carton body, the cans in a
  multipack) shows through the opening;
- the flap is a new closed thin slab (a separate connected component of the
  same part) in the shape of the tongue, inset ``GAP`` from the walls, its top
  printed with the artwork of the surface it came from (uv carried), its
  underside and edges finish ``interior``; it is rotated rigidly about the
  hinge line (at the surface) by ``opening_deg`` so its free end lifts off the
  surface. At 0 degrees it lies flush in the opening (a closed cut).

The boolean and the added closed slab keep every part closed:
``opens_surface=False``. The patch must be near flat: every face under the
tongue is within 25 degrees of the tangent plane and within a few mm of it.

Labels. "Changed" faces, exactly those labelled: the faces created by the cut
(pocket walls and floor, or the through-cut walls), surface faces that manifold3d
moved off their source triangle, and every face of the flap. Surface faces that
were only re-triangulated around the cut keep their geometry, appearance and
label.

Category: ``deconstruction`` (passed to :func:`~damage_ops.base.add_damage`)
when the tear opens the item: ``opening_deg >= 45`` and ``length_mm >=
OPENS_ITEM_EXTENT`` (0.8) x the largest extent of the torn part (a rip about as
long as the panel: the item is torn open); else ``penetration`` (a gash, however
large, into a panel that still holds).

Measured size (on the result): ``length_mm`` = length of the rip, the outer
rim loop of the cut minus its hinge segment, summed over its 3D edges;
``opening_deg`` = angle between the flap's top normal and the surface normal
at the tear; ``depth_mm`` = depth of the cut below the surface (the sheet
thickness for a through cut). Severity: ``major`` if length_mm >= 60.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import manifold3d as mf
import noise
import numpy as np
import trimesh

from . import _ragged as R
from . import puncture as P
from ._surface import tangent_frame
from .base import NotApplicable, ParamError, add_damage, check_face_index, check_range, params_from, register
from .product import FINISH_IDS, Product, concatenate, ensure_optional, face_geometry, normals_areas
from .spatial import face_grid

OP = "tear"
#: parts a tear can be placed on when ``center`` is None
TEAR_PARTS = ("body", "flap", "film")
#: a part thinner than this (m) along the normal is torn through
THIN_M = 0.008
#: clearance (m) between the flap slab and the walls of the cut (so the flap
#: never touches the part it came from)
GAP = 0.4e-3
#: max angle (deg) between any face under the tongue and the tangent plane
MAX_TILT_DEG = 25.0
#: placement orientations tried per drawn point
ORIENT_TRIES = 4
#: with an explicit ``center``: the tongue scaled by each of these in turn until
#: it fits (at the centre or slid toward the middle of its flat patch); the
#: record's size is measured on the result, so its severity is what was cut
FIT_SCALES = (1.0, 0.8, 0.62)
#: a tear opened 45 degrees or more whose rip is at least this fraction of the
#: torn part's largest extent opens the item (category deconstruction)
OPENS_ITEM_EXTENT = 0.8
#: interior finish tint of the pocket floor (dark: the inside) and of the walls
FLOOR_TINT, WALL_TINT = 0.25, 0.7
#: materials that are corrugated board: torn in layers (liner, flutes, inner liner)
BOARD_MATERIALS = ("cardboard",)
#: board wall thickness (m) of a solid carton body: below it a pocket shows the box's inside
BOARD_M = 4e-3
#: default pocket depth (m) of a tear in a solid board body: deep enough to read as a hole
BOARD_POCKET_M = 12e-3



@dataclass(frozen=True)
class TearParams:
    """length_mm: length of the rip along the surface, mm, in [10, 400]
    opening_deg: angle the flap is peeled back about its hinge, degrees, in [0, 120]
    center: face index on which the tear is centred (the tongue's centroid at the
        face centroid; when it does not fit there, slid toward the middle of the
        flat patch that face lies on, see
        :func:`damage_ops.puncture.slide_to_fit`, and shorter by
        :data:`FIT_SCALES` where it fits nowhere), or None = a random exposed
        point of a body / flap / film part where the tongue fits on a near-flat
        patch
    depth_mm: depth of the pocket cut into a solid part, mm, in [0.5, 30]; None
        = 2 mm. Capped at 0.6 x the local thickness; sheets thinner than 8 mm are
        torn through whatever the depth.
    """

    length_mm: float = 60.0
    opening_deg: float = 45.0
    center: int | None = None
    depth_mm: float | None = None

    def __post_init__(self) -> None:
        check_range(OP, "length_mm", self.length_mm, 10.0, 400.0)
        check_range(OP, "opening_deg", self.opening_deg, 0.0, 120.0)
        if self.depth_mm is not None:
            check_range(OP, "depth_mm", self.depth_mm, 0.5, 30.0)
        check_face_index(OP, self.center)


# -- the tongue outlines (2-D, tangent plane) --------------------------------------

@dataclass
class Outline:
    """The 2-D outlines of one tear in the tongue's frame (meters; hinge on the
    left, tip on +x; each counter-clockwise, its rip from index 0 over the tip to
    its last index, closed by its straight hinge segment).

    cut_out: where the outer liner is cut (the opening seen on the surface);
    cut_in: where the core and inner liner are cut (inside cut_out, a band of a
    few mm narrower: the band of exposed flutes); flap_out / flap_in: the
    flap's liner and core outlines, ``gap`` inside the cut's. A single-layer
    material (film, foil, plastic) has cut_out == cut_in and flap_out == flap_in.
    """

    cut_out: np.ndarray
    cut_in: np.ndarray
    flap_out: np.ndarray
    flap_in: np.ndarray
    layered: bool

    def scaled(self, k: float) -> "Outline":
        return Outline(self.cut_out * k, self.cut_in * k, self.flap_out * k, self.flap_in * k, self.layered)


def _rip_len(p: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def _clip_at_hinge(P: np.ndarray, xh: float) -> np.ndarray | None:
    """The part of the open polyline P (k, 2) right of the hinge line x = xh, its
    ends moved onto the line; None if P does not leave and re-enter it once."""
    right = P[:, 0] > xh
    idx = np.flatnonzero(right)
    if len(idx) < 3 or idx[0] == 0 or idx[-1] == len(P) - 1 or not right[idx[0]:idx[-1] + 1].all():
        return None
    i0, i1 = idx[0], idx[-1]

    def cross(a, b):
        t = (xh - a[0]) / (b[0] - a[0])
        return a + t * (b - a)

    mid = P[i0:i1 + 1]
    a, b = cross(P[i0 - 1], P[i0]), cross(P[i1], P[i1 + 1])
    seg = float(np.linalg.norm(np.diff(mid, axis=0), axis=1).min()) if len(mid) > 1 else 1e-3
    if np.linalg.norm(mid[0] - a) < 0.25 * seg:
        mid = mid[1:]
    if np.linalg.norm(mid[-1] - b) < 0.25 * seg:
        mid = mid[:-1]
    return np.concatenate([[a], mid, [b]])


def tear_outlines(rng: np.random.Generator, length: float, layered: bool, gap: float) -> Outline:
    """Outlines of a torn tongue whose outer rip (``cut_out`` minus its hinge)
    is ``length`` m long.

    The guide is a V (legs meeting at a rounded tip, each leg offset by
    cm-scale Perlin noise vanishing at its ends); every outline is the guide
    offset along its normal by 1/f^1.6 noise from ~2 cm down to ~1.2 mm (the
    fibre jitter, :func:`damage_ops._ragged.pink_noise`). A layered board's
    liner outline lies a band of 1.2-4.5 mm (varying along the rip) outside the
    core's, on independent jitter; its hinge line lies 0.6 x that band behind.
    ``gap`` m: clearance of the flap inside the cut. The outlines' frame: the
    core outline's area centroid at the origin."""
    half = np.radians(rng.uniform(18.0, 42.0))          # half-angle at the tip
    leg = length / 2
    base = int(rng.integers(0, 256))
    off = rng.uniform(0.0, 100.0, 2)
    freq = rng.uniform(2.0, 4.0)
    amp = 0.035 * leg * rng.uniform(0.6, 1.0)
    ds = max(0.6e-3, length / 300.0)
    A = np.array([0.0, -leg * np.sin(half)])
    T = np.array([leg * np.cos(half), 0.0])
    B = np.array([0.0, leg * np.sin(half)])
    legs = []
    for k, (a, b) in enumerate(((A, T), (T, B))):
        s = np.linspace(0.0, 1.0, 41)[:-1] if k == 0 else np.linspace(0.0, 1.0, 41)
        d = b - a
        nrm = np.array([-d[1], d[0]]) / np.linalg.norm(d)
        w = np.array([noise.pnoise1(float(off[k] + x * freq), octaves=3, base=base) for x in s])
        legs.append(a + s[:, None] * d + (amp * np.sin(np.pi * s) * w)[:, None] * nrm)
    guide = np.concatenate(legs)
    ext = 12e-3                                            # straight run-outs behind the hinge, clipped below
    da, db = (T - A) / np.linalg.norm(T - A), (B - T) / np.linalg.norm(B - T)
    guide = np.concatenate([[A - ext * da], guide, [B + ext * db]])
    guide, _ = R.resample(guide, ds)
    guide = R.smooth_polyline(guide, min(8e-3, 0.15 * length), ds)  # a torn tip is round, not a needle
    guide, s = R.resample(guide, ds)
    N = R.right_normals(guide)                            # outward: the tongue lies left of the rip
    fine = 2.0 * ds
    b0 = float(np.clip(rng.uniform(1.2e-3, 4.5e-3) * min(1.0, np.sqrt(length / 0.06)), 1.2e-3, 4.5e-3))
    jit = rng.uniform(0.7, 1.3) * (0.45e-3 if layered else 0.3e-3)
    out = None
    for attempt in range(4):
        k = 0.5 ** attempt if attempt < 3 else 0.0
        def jitter(a):
            x = R.pink_noise(rng, s, fine, 24e-3)
            return a * k * x / max(float(x.std()), 1e-12)
        o_in = jitter(jit)
        if layered:
            band = R.pink_noise(rng, s, 6e-3, 48e-3)
            band = b0 * np.clip(1.0 + 0.35 * band / max(float(band.std()), 1e-12), 0.45, 1.7)
            o_out = np.maximum(band + jitter(0.8 * jit), o_in + 0.5e-3)
            xo = -0.6 * b0
        else:
            o_out, xo = o_in, 0.0
        polys = [_clip_at_hinge(guide + o[:, None] * N, xh)
                 for o, xh in ((o_out, xo), (o_in, 0.0), (o_out - gap, xo + gap), (o_in - gap, gap))]
        if any(q is None for q in polys):
            continue
        if any(R.segments_cross(q) for q in polys):
            continue
        if layered and (R.segments_cross(polys[0], Q=polys[1], reach=0.2e-3)
                        or R.segments_cross(polys[2], Q=polys[3], reach=0.2e-3)):
            continue
        out = polys
        break
    if out is None:
        raise NotApplicable("tear outline: no simple outline after 4 tries")  # smooth guide offsets never fail
    c = _centroid(out[1])
    out = [q - c for q in out]
    o = Outline(*out, layered=layered)
    return o.scaled(length / _rip_len(o.cut_out))


def tongue(rng: np.random.Generator, length: float) -> tuple[np.ndarray, int]:
    """Single-layer ragged tongue (the core outline of :func:`tear_outlines`):
    (pts (m, 2) counter-clockwise, k) with pts[:k + 1] the rip of length
    ``length`` and pts[k] -> pts[0] the hinge on x = 0 (before centring)."""
    o = tear_outlines(rng, length, False, 0.0)
    return o.cut_in, len(o.cut_in) - 1


def _signed_area(p: np.ndarray) -> float:
    return R.signed_area(p)


def _centroid(p: np.ndarray) -> np.ndarray:
    q = np.roll(p, -1, axis=0)
    c = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    a = 0.5 * c.sum()
    return np.array([((p[:, 0] + q[:, 0]) * c).sum(), ((p[:, 1] + q[:, 1]) * c).sum()]) / (6 * a)


def _triangulate(p: np.ndarray) -> np.ndarray:

    return np.asarray(mf.triangulate([np.ascontiguousarray(p, np.float64)]), np.int64)


def prism(p2: np.ndarray, origin: np.ndarray, e1: np.ndarray, e2: np.ndarray, n: np.ndarray,
          top: float, bottom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed prism: polygon p2 (m, 2) in the plane (origin, e1, e2) extruded from
    ``top`` to ``bottom`` (m along n, top > bottom). Returns (V (2m, 3), F (k, 3)
    wound outward, (k,) int kind: 0 top cap, 1 bottom cap, 2 side)."""
    m = len(p2)
    flat = origin + p2[:, :1] * e1 + p2[:, 1:] * e2
    V = np.concatenate([flat + top * n, flat + bottom * n])
    tri = _triangulate(p2)
    i = np.arange(m)
    j = (i + 1) % m
    a2 = p2[tri]
    ccw = (a2[:, 1, 0] - a2[:, 0, 0]) * (a2[:, 2, 1] - a2[:, 0, 1]) - (a2[:, 1, 1] - a2[:, 0, 1]) * (a2[:, 2, 0] - a2[:, 0, 0])
    tri = np.where((ccw < 0)[:, None], tri[:, ::-1], tri)
    side = np.concatenate([np.stack([j, i, m + i], 1), np.stack([j, m + i, m + j], 1)])
    F = np.concatenate([tri, tri[:, ::-1] + m, side])
    kind = np.concatenate([np.zeros(len(tri), np.int64), np.ones(len(tri), np.int64), np.full(len(side), 2)])
    T = V[F]
    if np.einsum("ij,ij->i", T[:, 0], np.cross(T[:, 1], T[:, 2])).sum() < 0:
        F = F[:, ::-1].copy()
    return V, F, kind


def _top_hits(T2: np.ndarray, Th: np.ndarray, q: np.ndarray, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertical rays in a local frame: triangles with 2-D corners T2 (m, 3, 2) and
    heights Th (m, 3) along n; points q (k, 2). Returns, per point, the highest
    surface height below ``lift`` (-inf = miss) and the triangle index (-1 = miss):
    the first hit of a ray cast along -n from ``lift`` above the plane."""
    a, b, c = T2[:, 0], T2[:, 1], T2[:, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    ok = np.abs(det) > 1e-16
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    dx = q[:, None, 0] - a[None, :, 0]
    dy = q[:, None, 1] - a[None, :, 1]
    l1 = (dx * (c[:, 1] - a[:, 1]) - dy * (c[:, 0] - a[:, 0])) * inv
    l2 = (dy * (b[:, 0] - a[:, 0]) - dx * (b[:, 1] - a[:, 1])) * inv
    eps = 1e-9
    inside = ok & (l1 >= -eps) & (l2 >= -eps) & (l1 + l2 <= 1 + eps)
    h = Th[:, 0] + l1 * (Th[:, 1] - Th[:, 0]) + l2 * (Th[:, 2] - Th[:, 0])
    h = np.where(inside & (h < lift), h, -np.inf)
    k = np.argmax(h, axis=1)
    top = h[np.arange(len(q)), k]
    return top, np.where(np.isfinite(top), k, -1)


class _Site:
    """Where the tongue goes: point p, frame (e1, e2, n), 2-D outline, rays' info."""

    def __init__(self, face, p, n, e1, e2, pts, hits, heights):
        self.face, self.p, self.n, self.e1, self.e2 = face, p, n, e1, e2
        self.pts, self.hits, self.heights = pts, hits, heights


def _probe(V, F, normals, cen, cols, rad, pid, part, p, n, e1, e2, pts2, lift, coarse=False):
    """Cast rays along -n from ``lift`` m above the tongue outline (and a few
    interior points) onto the product. The tongue fits when every ray first hits
    the same part, within a few mm of the tangent plane, on a face tilted less
    than MAX_TILT_DEG. Returns (ok, hit faces (m,), heights (m,) of the surface
    above the tangent plane at the outline points); with ``coarse`` only a dozen
    points are probed (a cheap rejection test)."""
    m = len(pts2)
    if coarse:
        q2 = np.concatenate([pts2[:: max(1, m // 12)], np.zeros((1, 2))])
    else:
        q2 = np.concatenate([pts2, 0.5 * pts2[::3], 0.2 * pts2[::7], np.zeros((1, 2))])
    r = float(np.linalg.norm(pts2, axis=1).max())
    cx, cy, cz = cols  # the centroids' columns: the height needs no (n, 3) temporary
    h = cx * n[0] + cy * n[1] + cz * n[2] - p @ n
    slab = np.flatnonzero((h > -lift - rad) & (h < lift + rad))  # cheap test first
    rs = cen[slab] - p
    lat = np.sqrt(np.maximum(np.einsum("ij,ij->i", rs, rs) - h[slab] ** 2, 0.0))
    cand = slab[lat < r + rad[slab]]
    T = V[F[cand]] - p
    T2 = np.stack([T @ e1, T @ e2], -1)
    top, k = _top_hits(T2, T @ n, q2, lift)
    if not np.isfinite(top).all():
        return False, None, None
    hit = cand[k]
    tol = max(2e-3, 0.06 * r)
    if (pid[hit] != part).any() or np.abs(top).max() > tol:
        return False, None, None
    if (normals[hit] @ n < np.cos(np.radians(MAX_TILT_DEG))).any():
        return False, None, None
    return True, hit[:m], top[:m]


@register(OP, TearParams, "penetration", opens_surface=False)
def tear(product: Product, params: TearParams, rng: np.random.Generator) -> tuple[Product, "DamageRecord"]:  # noqa: F821
    """Tear a noisy V-shaped rip into one part of ``product`` and peel its flap back.

    product: input product (not mutated). params: :class:`TearParams`.
    rng: every random choice (location, orientation, rip shape) draws from it.
    Returns (damaged copy, its DamageRecord); see the module docstring for the
    geometry, what is labelled and how the size is measured.
    """
    params = params_from(TearParams, OP, params)
    out = product.copy()
    ensure_optional(out.mesh)
    mesh = out.mesh
    V = np.asarray(mesh.vertices)
    F = np.asarray(mesh.faces)
    pid = np.asarray(mesh.face_attributes["part_id"])
    normals, areas, cen, rad2 = face_geometry(product.mesh)  # same faces as the copy; cached
    cols = tuple(np.ascontiguousarray(cen.T))  # for the many probes
    L = params.length_mm / 1e3
    g = min(GAP, 0.02 * L)
    outl = tear_outlines(rng, L, True, g)
    pts0 = outl.cut_out
    rad = np.sqrt(rad2)
    lift = 5e-3

    def place(f, q, nq):
        e1, e2 = tangent_frame(nq)
        for _ in range(ORIENT_TRIES):
            a = rng.uniform(0, 2 * np.pi)
            c, s = np.cos(a), np.sin(a)
            u, v = c * e1 + s * e2, -s * e1 + c * e2
            if not _probe(V, F, normals, cen, cols, rad, pid, int(pid[f]), q, nq, u, v, pts0, lift, coarse=True)[0]:
                continue
            ok, hit, hts = _probe(V, F, normals, cen, cols, rad, pid, int(pid[f]), q, nq, u, v, pts0, lift)
            if ok:
                return _Site(f, q, nq, u, v, pts0, hit, hts)
        return None

    site = None
    if params.center is not None:
        fi = int(params.center)
        if fi >= len(F):
            raise ParamError(f"{OP}.center: face index {fi} out of range for a mesh of {len(F)} faces")
        full = outl
        for k in FIT_SCALES:  # the requested length, then shorter where it fits nowhere on the panel
            outl = full.scaled(k)
            pts0 = outl.cut_out
            site = place(fi, V[F[fi]].mean(0), normals[fi])
            if site is None:  # near an edge: slide toward the middle of the flat patch it lies on
                site = P.slide_to_fit(fi, V, F, normals, cen, areas, pid,
                                      lambda f: place(f, V[F[f]].mean(0), normals[f]))
            if site is not None:
                L = k * L
                break
        if site is None:
            raise NotApplicable(f"{OP}.center: a tear of length_mm={params.length_mm:g} does not fit on a near-flat "
                             f"patch around face {fi}")
    else:
        allowed = np.isin(pid, [i for i, pt in enumerate(out.parts) if pt.name in TEAR_PARTS])
        if not allowed.any():
            raise NotApplicable(f"{OP}: product kind {product.kind!r} has no part a tear applies to ({TEAR_PARTS})")
        box = {}

        def fits(f, q, nq):
            box["site"] = place(f, q, nq)
            return box["site"] is not None
        P.draw_surface_point(V, F, normals, areas * allowed, pid, rng, fits, OP,
                             f"a tear of length_mm={params.length_mm:g}", bounds=(cen, rad2),
                             grid=face_grid(product.mesh))
        site = box["site"]

    p, n, e1, e2 = site.p, site.n, site.e1, site.e2
    part = int(pid[site.face])
    layered = out.parts[part].material in BOARD_MATERIALS
    if not layered:  # one material: the surface outline is the core's
        outl = Outline(outl.cut_in, outl.cut_in, outl.flap_in, outl.flap_in, False)
        outl = outl.scaled(L / _rip_len(outl.cut_out))
    # a curved patch makes the rip longer than its plane projection: rescale once
    ok, hit, heights = _probe(V, F, normals, cen, cols, rad, pid, part, p, n, e1, e2, outl.cut_out, lift)
    if not ok:
        ok, hit, heights = True, site.hits, site.heights
        outl = Outline(site.pts, site.pts, outl.flap_out, outl.flap_out, False) if not layered else outl
    up = outl.cut_out
    path3 = p + up[:, :1] * e1 + up[:, 1:] * e2 + heights[:, None] * n
    scale = L / np.linalg.norm(np.diff(path3, axis=0), axis=1).sum()
    o2 = outl.scaled(scale)
    ok, hit2, heights2 = _probe(V, F, normals, cen, cols, rad, pid, part, p, n, e1, e2, o2.cut_out, lift)
    if ok:
        outl, hit, heights = o2, hit2, heights2

    pm, rest = P.split_part(mesh, part)
    pg = P.PartGrid(product.mesh, part)
    thick = pg.ray(p - n * 1e-7, -n)
    thick = float(thick[thick > 1e-6].min()) if (np.isfinite(thick) & (thick > 1e-6)).any() else np.inf
    sag = float(max(-heights.min(), 0.0))
    bump = float(max(heights.max(), 0.0))
    through = thick < THIN_M
    if params.depth_mm is not None:
        want = params.depth_mm / 1e3
    else:
        want = BOARD_POCKET_M if layered else 2e-3   # a torn carton wall opens onto the box's dark inside
    if through:
        depth = thick
        t_bot = thick + sag + 1e-3
    else:
        depth = min(want, 0.6 * thick)
        t_bot = sag + depth
    h_top = bump + 2e-3
    # the outer liner: the step between the two outlines lies this deep
    liner = float(np.clip(0.3 * min(depth, BOARD_M), 0.3e-3, 1.2e-3)) if layered else 0.0

    if layered:
        CV, CF, _ = R.stepped_prism(outl.cut_out, outl.cut_in, p, e1, e2, n, h_top, -liner, -t_bot)
    else:
        CV, CF, _ = prism(outl.cut_in, p, e1, e2, n, h_top, -t_bot)
    clear = not np.isfinite(pg.ray(p + n * 1e-7, n)).any()
    NV, NF, src, fid = P.boolean_difference(pm, CV, CF, n, p, candidates=pg.candidates(np.arange(len(pm.faces)),
                                                                                      len(pm.faces)),
                                            clear_above=clear)

    # labels of the cut part: surface faces inherit from their source triangle
    attrs, retri = P.inherit_labels(pm, NV, NF, src, fid)
    cut = ~src
    fi = site.face
    src_uv = P.barycentric_uv(p[None, None], V[F[fi]][None], mesh.face_attributes["uv"][fi][None])[0, 0]
    base_tint = np.asarray(mesh.face_attributes["tint"][fi], np.float32)
    attrs["uv"][cut] = src_uv
    attrs["part_id"][cut] = part
    attrs["damage_id"][cut] = mesh.face_attributes["damage_id"][fi]
    cn, _ = normals_areas(NV, NF[cut])
    cdepth = -((NV[NF[cut]].mean(1) - p) @ n)
    floor = np.abs(cn @ n) > 0.7
    attrs["tint"][cut] = base_tint * np.where(floor & (not through), FLOOR_TINT, WALL_TINT)[:, None].astype(np.float32)
    fin = np.full(int(cut.sum()), FINISH_IDS["interior"], np.int8)
    if layered:
        # outer liner edge (light torn paper), the flute band and walls (core),
        # and below the board's thickness the box's dark inside
        fin[~floor & (cdepth < liner)] = FINISH_IDS["inner_liner"]
        fin[(cdepth >= liner - 1e-5) & (cdepth < BOARD_M) & ~(floor & (cdepth > 0.5 * (liner + t_bot)))] = FINISH_IDS["core"]
        core_f = fin == FINISH_IDS["core"]
        attrs["tint"][np.flatnonzero(cut)[core_f | (fin == FINISH_IDS["inner_liner"])]] = 1.0
    attrs["finish"][cut] = fin
    behind = np.zeros(len(NF), bool)
    if through:
        behind = R.behind(NV, NF, attrs["part_id"], out.parts, outl.cut_in, p, e1, e2, n, thick) & src
        R.paint_dark(attrs, behind)
    cut_part = trimesh.Trimesh(vertices=NV, faces=NF, process=False)
    cut_part.face_attributes = attrs
    rest_behind = np.zeros(len(rest.faces), bool)
    if through:
        ensure_optional(rest)
        rest_behind = R.behind(np.asarray(rest.vertices), np.asarray(rest.faces), rest.face_attributes["part_id"],
                              out.parts, outl.cut_in, p, e1, e2, n, thick)
        R.paint_dark(rest.face_attributes, rest_behind)

    # the flap: a closed (stepped) slab in the tongue's shape, curled up about the hinge
    if layered:
        tf = 0.9 * thick if through else max(min(0.45 * depth, 2.5e-3), liner + 0.4e-3)
        FV, FF, kind = R.stepped_prism(outl.flap_out, outl.flap_in, p, e1, e2, n, 0.0, -(liner - g), -tf)
    else:
        tf = 0.9 * thick if through else min(0.45 * depth, 1.5e-3)
        FV, FF, kind = prism(outl.flap_in, p, e1, e2, n, 0.0, -tf)
        kind = np.where(kind == 2, R.OUTER_SIDE, kind)
    m_top = len(outl.flap_out)
    hinge_a, hinge_b = FV[0], FV[m_top - 1]              # top corners at the hinge ends
    top = kind == R.TOP
    FV0 = FV
    FV, curl_deg = _curl(FV, FF[top], hinge_a, e1, n, np.radians(params.opening_deg), rng)
    nf = len(FF)
    # flap uv: the surface point under each top corner (the hit triangle, barycentric)
    okf, fhit, _ = _probe(V, F, normals, cen, cols, rad, pid, part, p, n, e1, e2, outl.flap_out, lift)
    if not okf:
        fhit = np.full(m_top, fi)
    hit_tris = V[F[fhit]]
    corner_pts = FV0[:m_top]
    hn, _ = normals_areas(V, F[fhit])
    dn = np.einsum("ij,ij->i", hit_tris[:, 0] - corner_pts, hn) / np.maximum(hn @ n, 1e-6)
    on_surf = corner_pts + dn[:, None] * n
    cuv = P.barycentric_uv(on_surf[:, None], hit_tris, np.asarray(mesh.face_attributes["uv"])[fhit])[:, 0]
    vuv = np.tile(np.asarray(src_uv, np.float32), (len(FV), 1))
    vuv[:m_top] = cuv
    Fuv = vuv[FF].astype(np.float32)
    if layered:
        ffin = np.where(top, mesh.face_attributes["finish"][fi],
                        np.where(kind == R.BOTTOM, FINISH_IDS["inner_liner"], FINISH_IDS["core"]))
        ftint = np.where(top[:, None], np.asarray(mesh.face_attributes["tint"])[fhit].mean(0), 1.0)
    else:
        ffin = np.where(top, mesh.face_attributes["finish"][fi], FINISH_IDS["interior"])
        ftint = np.where(top[:, None], np.asarray(mesh.face_attributes["tint"])[fhit].mean(0), base_tint * WALL_TINT)
    flap = trimesh.Trimesh(vertices=FV, faces=FF, process=False)
    flap.face_attributes = {
        "part_id": np.full(nf, part, np.int32),
        "damage_id": np.zeros(nf, np.int32),
        "uv": Fuv,
        "tint": ftint.astype(np.float32),
        "finish": ffin.astype(np.int8),
    }
    out.mesh = concatenate([rest, cut_part, flap])
    nr, nc = len(rest.faces), len(NF)
    faces = np.concatenate([np.flatnonzero(rest_behind), nr + np.flatnonzero(cut | retri | behind),
                            nr + nc + np.arange(nf)])

    # measure on the result: rip length = outer rim loop of the cut minus the hinge segment
    rel = NV - p
    tv = -(rel @ n)
    rim = P.outer_loop(P._rim_edges(NF, cut), tv)
    x, y = rel @ e1, rel @ e2
    ha, hb = outl.cut_out[0], outl.cut_out[-1]
    hd = (hb - ha) / np.linalg.norm(hb - ha)
    dist = np.abs((x - ha[0]) * hd[1] - (y - ha[1]) * hd[0])
    on_hinge = (dist[rim] < 2e-5).all(1)
    length_mm = 1e3 * float(np.linalg.norm(NV[rim[~on_hinge, 0]] - NV[rim[~on_hinge, 1]], axis=1).sum())
    opening = _top_angle(FV, FF[top], n)
    size = {"length_mm": length_mm, "opening_deg": opening, "depth_mm": 1e3 * depth}
    extent = float(np.ptp(np.asarray(pm.vertices), axis=0).max())
    opens_item = params.opening_deg >= 45.0 and length_mm / 1e3 >= OPENS_ITEM_EXTENT * extent
    r_reg = float(np.linalg.norm(outl.cut_out, axis=1).max())
    region = {"center_m": p.tolist(), "radius_m": r_reg,
              "normal": n.tolist(), "through": bool(through), "part": out.parts[part].name,
              "hinge_m": [(p + ha[0] * e1 + ha[1] * e2).tolist(), (p + hb[0] * e1 + hb[1] * e2).tolist()],
              "layered": bool(layered), "liner_mm": 1e3 * liner, "curl_deg": curl_deg}
    return add_damage(out, faces, OP, size, region, asdict(params),
                      category="deconstruction" if opens_item else "penetration")


def _top_angle(V: np.ndarray, F: np.ndarray, n: np.ndarray) -> float:
    """Angle (degrees) between the area-weighted mean normal of faces F and n."""
    tn, ta = normals_areas(V, F)
    ft = (tn * ta[:, None]).sum(0)
    return float(np.degrees(np.arccos(np.clip(ft @ n / np.linalg.norm(ft), -1.0, 1.0))))


def bend(X: np.ndarray, hinge: np.ndarray, e1: np.ndarray, n: np.ndarray, phi0: float, curl: float,
         U: float) -> np.ndarray:
    """Bend points X (k, 3) about the hinge line through ``hinge`` (along e2 =
    n x e1) so the top surface (height 0 along n) becomes the curve whose tangent
    angle at distance u from the hinge is phi(u) = phi0 + curl (u / U)^1.5
    (radians, lifting e1 towards n); a point h below the top keeps its distance
    h along the curve's normal. All the material lies on the convex side
    (h <= 0), so the map is one-to-one while phi stays below pi: the bent slab
    stays closed and free of self-intersection."""
    rel = X - hinge
    u = np.maximum(rel @ e1, 0.0)
    h = rel @ n
    w = rel - np.outer(rel @ e1, e1) - np.outer(h, n)
    uu = np.linspace(0.0, max(U, float(u.max()), 1e-9), 257)
    ph = phi0 + curl * np.clip(uu / max(U, 1e-12), 0.0, None) ** 1.5
    du = np.diff(uu)
    gx = np.concatenate([[0.0], np.cumsum(0.5 * (np.cos(ph[1:]) + np.cos(ph[:-1])) * du)])
    gz = np.concatenate([[0.0], np.cumsum(0.5 * (np.sin(ph[1:]) + np.sin(ph[:-1])) * du)])
    pu = np.interp(u, uu, ph)
    cx, cz = np.interp(u, uu, gx), np.interp(u, uu, gz)
    return hinge + w + np.outer(cx - h * np.sin(pu), e1) + np.outer(cz + h * np.cos(pu), n)


def _curl(FV: np.ndarray, Ftop: np.ndarray, hinge: np.ndarray, e1: np.ndarray, n: np.ndarray, theta: float,
          rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Curl the flap: rotation rising along it (a torn flap bends, it does not
    stay flat), the mean angle of its top ``theta`` radians. Returns (bent
    vertices, curl in degrees = tip angle - hinge angle)."""
    U = float(((FV - hinge) @ e1).max())
    curl = theta * rng.uniform(0.3, 0.7)
    curl = float(min(curl, max(np.radians(170.0) - theta, 0.0) / 0.6))
    phi0 = theta - 0.45 * curl
    for _ in range(4):  # match the measured mean top angle to theta
        B = bend(FV, hinge, e1, n, phi0, curl, U)
        phi0 += theta - np.radians(_top_angle(B, Ftop, n))
    return bend(FV, hinge, e1, n, phi0, curl, U), float(np.degrees(curl))


def _rotate(X: np.ndarray, k: np.ndarray, th: float) -> np.ndarray:
    """Rodrigues rotation of points X (m, 3) about unit axis k by th radians."""
    k = k / np.linalg.norm(k)
    c, s = np.cos(th), np.sin(th)
    return X * c + np.cross(k, X) * s + np.outer(X @ k, k) * (1 - c)
