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
when the tear opens the item: ``opening_deg >= 45`` and ``length_mm >= 0.4 x``
the largest extent of the torn part; else ``penetration``.

Measured size (on the result): ``length_mm`` = length of the rip, the outer
rim loop of the cut minus its hinge segment, summed over its 3D edges;
``opening_deg`` = angle between the flap's top normal and the surface normal
at the tear; ``depth_mm`` = depth of the cut below the surface (the sheet
thickness for a through cut). Severity: ``major`` if length_mm >= 60.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import noise
import numpy as np
import trimesh

from . import puncture as P
from ._surface import tangent_frame
from .spatial import face_grid
from .base import check_face_index, ParamError, add_damage, check_range, params_from, register
from .product import FINISH_IDS, Product, concatenate, ensure_optional, face_geometry, normals_areas

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
#: interior finish tint of the pocket floor (dark: the inside) and of the walls
FLOOR_TINT, WALL_TINT = 0.4, 0.7


@dataclass(frozen=True)
class TearParams:
    """length_mm: length of the rip along the surface, mm, in [10, 400]
    opening_deg: angle the flap is peeled back about its hinge, degrees, in [0, 120]
    center: face index on which the tear is centred (the tongue's centroid at the
        face centroid), or None = a random exposed point of a body / flap / film
        part where the tongue fits on a near-flat patch
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


# -- the tongue outline (2-D, tangent plane) ---------------------------------------

def tongue(rng: np.random.Generator, length: float) -> tuple[np.ndarray, int]:
    """Outline of the torn tongue in its own 2-D frame, meters.

    Returns (pts (m, 2) counter-clockwise, k): pts[:k + 1] is the rip (from one
    hinge end over the tip to the other, total length ``length``), and the
    closing segment pts[k] -> pts[0] is the hinge. The hinge lies on x = 0, the
    tip on +x; the outline's area centroid is at the origin."""
    half = np.radians(rng.uniform(12.0, 32.0))          # half-angle at the tip
    leg = length / 2
    n = int(np.clip(length / 1.5e-3 / 2, 12, 90))      # points per leg (~1.5 mm spacing)
    base = int(rng.integers(0, 256))
    off = rng.uniform(0.0, 100.0, 2)
    freq = rng.uniform(2.0, 4.0)
    amp = 0.035 * leg * rng.uniform(0.6, 1.0)
    A = np.array([0.0, -leg * np.sin(half)])
    T = np.array([leg * np.cos(half), 0.0])
    B = np.array([0.0, leg * np.sin(half)])
    legs = []
    for k, (a, b) in enumerate(((A, T), (T, B))):
        s = np.linspace(0.0, 1.0, n + 1)[:-1] if k == 0 else np.linspace(0.0, 1.0, n + 1)
        d = b - a
        nrm = np.array([-d[1], d[0]]) / np.linalg.norm(d)
        w = np.array([noise.pnoise1(float(off[k] + x * freq), octaves=3, base=base) for x in s])
        legs.append(a + s[:, None] * d + (amp * np.sin(np.pi * s) * w)[:, None] * nrm)
    pts = np.concatenate(legs)
    rip = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
    pts = pts * (length / rip)                           # exact rip length, hinge stays on x = 0
    pts = pts - _centroid(pts)
    if _signed_area(pts) < 0:
        pts = pts[::-1].copy()
    return pts, len(pts) - 1


def _signed_area(p: np.ndarray) -> float:
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def _centroid(p: np.ndarray) -> np.ndarray:
    q = np.roll(p, -1, axis=0)
    c = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    a = 0.5 * c.sum()
    return np.array([((p[:, 0] + q[:, 0]) * c).sum(), ((p[:, 1] + q[:, 1]) * c).sum()]) / (6 * a)


def inset(p: np.ndarray, g: float) -> np.ndarray:
    """Polygon p (m, 2, counter-clockwise) offset inward by g (m), mitred (the
    miter is capped at 6 g)."""
    d_prev = p - np.roll(p, 1, axis=0)
    d_next = np.roll(p, -1, axis=0) - p
    n_prev = np.stack([-d_prev[:, 1], d_prev[:, 0]], 1) / np.linalg.norm(d_prev, axis=1)[:, None]
    n_next = np.stack([-d_next[:, 1], d_next[:, 0]], 1) / np.linalg.norm(d_next, axis=1)[:, None]
    m = n_prev + n_next
    m /= np.maximum(np.linalg.norm(m, axis=1), 1e-12)[:, None]
    cosh = np.maximum((m * n_next).sum(1), 1.0 / 6.0)
    return p + m * (g / cosh)[:, None]                   # left normals point inward for CCW


def _triangulate(p: np.ndarray) -> np.ndarray:
    import manifold3d as mf

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
    pts0, k_rip = tongue(rng, L)
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
        site = place(fi, V[F[fi]].mean(0), normals[fi])
        if site is None:
            raise ParamError(f"{OP}.center: a tear of length_mm={params.length_mm:g} does not fit on a near-flat "
                             f"patch around face {fi}")
    else:
        allowed = np.isin(pid, [i for i, pt in enumerate(out.parts) if pt.name in TEAR_PARTS])
        if not allowed.any():
            raise ParamError(f"{OP}: product kind {product.kind!r} has no part a tear applies to ({TEAR_PARTS})")
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
    # a curved patch makes the rip longer than its plane projection: rescale once
    up = site.pts[: k_rip + 1]
    path3 = p + up[:, :1] * e1 + up[:, 1:] * e2 + site.heights[: k_rip + 1, None] * n
    scale = L / np.linalg.norm(np.diff(path3, axis=0), axis=1).sum()
    pts2 = site.pts * scale
    ok, hit, heights = _probe(V, F, normals, cen, cols, rad, pid, part, p, n, e1, e2, pts2, lift)
    if not ok:
        pts2, hit, heights = site.pts, site.hits, site.heights

    pm, rest = P.split_part(mesh, part)
    pg = P.PartGrid(product.mesh, part)
    thick = pg.ray(p - n * 1e-7, -n)
    thick = float(thick[thick > 1e-6].min()) if (np.isfinite(thick) & (thick > 1e-6)).any() else np.inf
    sag = float(max(-heights.min(), 0.0))
    bump = float(max(heights.max(), 0.0))
    through = thick < THIN_M
    want = (params.depth_mm if params.depth_mm is not None else 2.0) / 1e3
    if through:
        depth = thick
        t_bot = thick + sag + 1e-3
    else:
        depth = min(want, 0.6 * thick)
        t_bot = sag + depth
    h_top = bump + 2e-3

    CV, CF, _ = prism(pts2, p, e1, e2, n, h_top, -t_bot)
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
    floor = np.abs(cn @ n) > 0.7
    attrs["tint"][cut] = base_tint * np.where(floor & (not through), FLOOR_TINT, WALL_TINT)[:, None].astype(np.float32)
    attrs["finish"][cut] = FINISH_IDS["interior"]
    cut_part = trimesh.Trimesh(vertices=NV, faces=NF, process=False)
    cut_part.face_attributes = attrs

    # the flap: a thin closed slab in the tongue's shape, rotated about the hinge
    g = min(GAP, 0.02 * L)
    fl2 = inset(pts2, g)
    tf = 0.9 * thick if through else min(0.45 * depth, 1.5e-3)
    FV, FF, kind = prism(fl2, p, e1, e2, n, 0.0, -tf)
    hinge_a, hinge_b = FV[0], FV[k_rip]                 # top corners at the hinge ends
    ax = hinge_b - hinge_a
    ax /= np.linalg.norm(ax)
    c_dir = FV[: len(fl2)].mean(0) - hinge_a
    c_dir -= (c_dir @ ax) * ax
    c_dir /= np.linalg.norm(c_dir)
    k_ax = np.cross(c_dir, n)                            # rotating c_dir about k_ax lifts it toward +n
    th = np.radians(params.opening_deg)
    FV = hinge_a + _rotate(FV - hinge_a, k_ax, th)
    nf = len(FF)
    # flap uv: the surface point under each top corner (the hit triangle, barycentric)
    Fuv = np.zeros((nf, 3, 2), np.float32)
    top = kind == 0
    hit_tris = V[F[hit]]
    corner_pts = p + fl2[:, :1] * e1 + fl2[:, 1:] * e2
    # project each corner onto its hit triangle's plane along n for the barycentric weights
    hn, _ = normals_areas(V, F[hit])
    dn = np.einsum("ij,ij->i", hit_tris[:, 0] - corner_pts, hn) / np.maximum(hn @ n, 1e-6)
    on_surf = corner_pts + dn[:, None] * n
    cuv = P.barycentric_uv(on_surf[:, None], hit_tris, np.asarray(mesh.face_attributes["uv"])[hit])[:, 0]
    m = len(fl2)
    Fuv[:] = cuv[np.where(FF < m, FF, FF - m)]
    flap = trimesh.Trimesh(vertices=FV, faces=FF, process=False)
    flap.face_attributes = {
        "part_id": np.full(nf, part, np.int32),
        "damage_id": np.zeros(nf, np.int32),
        "uv": Fuv,
        "tint": np.where(top[:, None], np.asarray(mesh.face_attributes["tint"])[hit].mean(0),
                         base_tint * WALL_TINT).astype(np.float32),
        "finish": np.where(top, mesh.face_attributes["finish"][fi], FINISH_IDS["interior"]).astype(np.int8),
    }
    out.mesh = concatenate([rest, cut_part, flap])
    nr, nc = len(rest.faces), len(NF)
    faces = np.concatenate([nr + np.flatnonzero(cut | retri), nr + nc + np.arange(nf)])

    # measure on the result: rip length = outer rim loop of the cut minus the hinge segment
    rel = NV - p
    tv = -(rel @ n)
    rim = P.outer_loop(P._rim_edges(NF, cut), tv)
    x, y = rel @ e1, rel @ e2
    ha, hb = pts2[0], pts2[k_rip]
    hd = (hb - ha) / np.linalg.norm(hb - ha)
    dist = np.abs((x - ha[0]) * hd[1] - (y - ha[1]) * hd[0])
    on_hinge = (dist[rim] < 2e-5).all(1)
    length_mm = 1e3 * float(np.linalg.norm(NV[rim[~on_hinge, 0]] - NV[rim[~on_hinge, 1]], axis=1).sum())
    tn, ta = normals_areas(FV, FF[top])
    ft = (tn * ta[:, None]).sum(0)
    opening = float(np.degrees(np.arccos(np.clip(ft @ n / np.linalg.norm(ft), -1.0, 1.0))))
    size = {"length_mm": length_mm, "opening_deg": opening, "depth_mm": 1e3 * depth}
    extent = float(np.ptp(np.asarray(pm.vertices), axis=0).max())
    opens_item = params.opening_deg >= 45.0 and length_mm / 1e3 >= 0.4 * extent
    r_reg = float(np.linalg.norm(pts2, axis=1).max())
    region = {"center_m": p.tolist(), "radius_m": r_reg,
              "normal": n.tolist(), "through": bool(through), "part": out.parts[part].name,
              "hinge_m": [(p + ha[0] * e1 + ha[1] * e2).tolist(), (p + hb[0] * e1 + hb[1] * e2).tolist()]}
    return add_damage(out, faces, OP, size, region, asdict(params),
                      category="deconstruction" if opens_item else "penetration")


def _rotate(X: np.ndarray, k: np.ndarray, th: float) -> np.ndarray:
    """Rodrigues rotation of points X (m, 3) about unit axis k by th radians."""
    k = k / np.linalg.norm(k)
    c, s = np.cos(th), np.sin(th)
    return X * c + np.cross(k, X) * s + np.outer(X @ k, k) * (1 - c)
