"""Puncture: a hole with a jagged rim pushed inward (Kaputt category ``penetration``).

Products are closed solids (a carton is a closed box, no modelled interior), so
the hole is a *cavity*: a boolean difference (manifold3d) of a jagged, slightly
conical cutter placed at a surface point along the inward normal, followed by
pushing the rim and the cavity inward with a smooth falloff. Where the punctured
part is a thin sheet (a flap, a blister card, a film) thinner than the requested
depth, the cutter goes through that part only and the hole shows what lies
behind it (other parts are never cut).

The boolean and the displacement keep each closed part closed, so the op never
opens the surface (``opens_surface=False``).

Labels: every face whose geometry changed carries the new ``damage_id``:
faces created by the cutter (the cavity walls and floor, finish ``interior``,
darkened tint), surface faces split by the cut and surface faces with at least
one vertex displaced by the push (the pushed-in rim; the ring of faces touching
the hole edge gets finish ``interior``: the torn liner). Surface faces that were
only re-triangulated (refined) but not moved keep their geometry and are not
labelled. ``part_id``, ``uv``, ``tint`` and ``finish`` of surface faces are
carried through the boolean with manifold3d's per-triangle provenance
(``run_original_id`` / ``face_id``); uv is re-interpolated barycentrically in
the source triangle.

Measured size (on the result): ``diameter_mm`` = equivalent diameter
2 sqrt(A / pi) of the hole opening, A the area of the outer rim loop projected
on the tangent plane at the puncture point; ``depth_mm`` = depth of the cut
below the surface (the part thickness for a through-hole); ``push_mm`` = how
far the rim was pushed in. Severity: ``major`` if diameter_mm >= 12.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import manifold3d as mf
import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import _ragged as R
from ._surface import tangent_frame
from .base import NotApplicable, ParamError, add_damage, check_face_index, check_range, params_from, register
from .product import (
    FINISH_IDS,
    Product,
    concatenate,
    ensure_optional,
    face_geometry,
    normals_areas,
    take_faces,
    tri_bounds,
)
from .remesh import refine_once
from .spatial import face_grid

OP = "puncture"
#: attempts to draw an exposed, flat enough puncture point before giving up
MAX_TRIALS = 64
#: a part thinner than this (m) along the normal, and thinner than the requested
#: depth, is punctured through (a sheet: flap, card, film)
THIN_M = 0.008
#: manifold3d tolerance (m) that collapses the slivers a cut leaves near mesh vertices
SLIVER_M = 1e-7
#: displacements below this (m) are dropped: labelled faces moved visibly
MIN_PUSH_M = 5e-5
#: materials that are corrugated board: cut in layers (liner, flutes, inner liner)
BOARD_MATERIALS = ("cardboard",)
#: board wall thickness (m): deeper in a solid carton body lies the box's dark inside
BOARD_M = 4e-3
#: tint of the cavity below a board's wall (the box's inside: in shadow)
INSIDE_TINT = 0.3


@dataclass(frozen=True)
class PunctureParams:
    """diameter_mm: equivalent diameter of the opening, mm, in [2, 150]
    depth_mm: depth of the cavity below the surface, mm, in [1, 100]; None =
        clip(0.5 * diameter, 3, 30) mm. Capped at 0.6 x the local thickness of
        the part; a sheet thinner than the depth (< 8 mm) is punctured through.
    center: face index of the puncture point (its centroid; where the hole does
        not fit on a near-flat patch there, slid toward the middle of the flat
        patch that face lies on, see :func:`slide_to_fit`; kept where it fits
        nowhere), or None = a random
        exposed point (area-weighted) where the hole fits on a near-flat patch
    """

    diameter_mm: float = 10.0
    depth_mm: float | None = None
    center: int | None = None

    def __post_init__(self) -> None:
        check_range(OP, "diameter_mm", self.diameter_mm, 2.0, 150.0)
        if self.depth_mm is not None:
            check_range(OP, "depth_mm", self.depth_mm, 1.0, 100.0)
        check_face_index(OP, self.center)


# -- small geometry helpers (shared with tear) --------------------------------------

def ray_hits(origin: np.ndarray, direction: np.ndarray, tris: np.ndarray, cen: np.ndarray | None = None,
             reach2: np.ndarray | None = None) -> np.ndarray:
    """Möller-Trumbore: distance along ``direction`` (3,) from ``origin`` (3,) to each
    triangle of tris (n, 3, 3); inf where the ray misses (or hits behind).
    cen (n, 3) / reach2 (n,): optional precomputed centroids and squared
    centroid-to-corner radii (a cheap prefilter)."""
    if cen is None or reach2 is None:
        cen, reach2 = tri_bounds(tris)
    rel = cen - origin
    along = rel @ direction
    dist2 = np.einsum("ij,ij->i", rel, rel)
    reach = np.sqrt(reach2)
    out = np.full(len(tris), np.inf)
    cand = np.flatnonzero((dist2 - along * along <= reach2 * 1.0001 + 1e-15) & (along > -reach - 1e-9))
    if len(cand) == 0:
        return out
    out[cand] = _mt(origin, direction, tris[cand])
    return out


def _mt(origin: np.ndarray, direction: np.ndarray, tris: np.ndarray) -> np.ndarray:
    e1 = tris[:, 1] - tris[:, 0]
    e2 = tris[:, 2] - tris[:, 0]
    pv = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, pv)
    ok = np.abs(det) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tv = origin - tris[:, 0]
    u = np.einsum("ij,ij->i", tv, pv) * inv
    qv = np.cross(tv, e1)
    v = (qv @ direction) * inv
    t = np.einsum("ij,ij->i", e2, qv) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return np.where(hit, t, np.inf)


def closest_point_on_triangles(tris: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact closest points (n, 3) on triangles tris (n, 3, 3) to points p ((3,) or
    (n, 3)), Ericson's region test, vectorised. (trimesh.triangles.closest_point
    misplaces the point on some right triangles in trimesh 5.2.)"""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    p = np.broadcast_to(p, a.shape)
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    den = va + vb + vc
    den = np.where(np.abs(den) > 1e-300, den, 1e-300)
    v, w = vb / den, vc / den
    out = a + ab * v[:, None] + ac * w[:, None]                      # interior
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)                # edge bc
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        out = np.where(m[:, None], b + (c - b) * np.nan_to_num(t)[:, None], out)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)                          # edge ac
        t = d2 / (d2 - d6)
        out = np.where(m[:, None], a + ac * np.nan_to_num(t)[:, None], out)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)                          # edge ab
        t = d1 / (d1 - d3)
        out = np.where(m[:, None], a + ab * np.nan_to_num(t)[:, None], out)
    out = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)         # vertex c
    out = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)         # vertex b
    out = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)          # vertex a
    return out


def compact(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unreferenced vertices: (V', F') with F' indexing V'."""
    used = np.zeros(len(V), bool)
    used[np.asarray(F).ravel()] = True
    remap = np.cumsum(used) - 1  # same numbering as np.unique, without the sort
    return V[used], remap[F]


def split_part(mesh: trimesh.Trimesh, part: int) -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(faces of ``part``, the other faces) as two compact labelled meshes."""
    pid = mesh.face_attributes["part_id"]
    out = []
    for sel in (np.flatnonzero(pid == part), np.flatnonzero(pid != part)):
        V, F = compact(np.asarray(mesh.vertices), np.asarray(mesh.faces)[sel])
        out.append(take_faces(mesh, sel, V, F))
    return out[0], out[1]


def barycentric_uv(P: np.ndarray, tri: np.ndarray, uv: np.ndarray, return_weights: bool = False):
    """Interpolate face-corner uv (n, 3, 2) of triangles tri (n, 3, 3) at points P
    (n, k, 3) -> (n, k, 2); weights within 1e-9 of 0/1 snap so shared corners
    copy uv exactly."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1 = b - a, c - a
    d00 = np.einsum("ij,ij->i", v0, v0)
    d01 = np.einsum("ij,ij->i", v0, v1)
    d11 = np.einsum("ij,ij->i", v1, v1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) > 1e-300, den, 1.0)
    v2 = P - a[:, None]
    d20 = np.einsum("ikj,ij->ik", v2, v0)
    d21 = np.einsum("ikj,ij->ik", v2, v1)
    w1 = (d11[:, None] * d20 - d01[:, None] * d21) / den[:, None]
    w2 = (d00[:, None] * d21 - d01[:, None] * d20) / den[:, None]
    w = np.stack([1 - w1 - w2, w1, w2], -1)
    w = np.where(np.abs(w) < 1e-9, 0.0, np.where(np.abs(w - 1) < 1e-9, 1.0, w))
    out = np.einsum("ikj,ijl->ikl", w, uv.astype(np.float64)).astype(np.float32)
    if return_weights:
        return out, w
    return out


class PartGrid:
    """Grid queries (:class:`damage_ops.spatial.FaceGrid`) about one part of a
    prepared product mesh, answered as faces of that part's mesh split off by
    :func:`split_part` (same faces, same order)."""

    def __init__(self, mesh: trimesh.Trimesh, part: int):
        self.V, self.F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        self.pid = mesh.face_attributes["part_id"]
        self.part = part
        self.faces = np.flatnonzero(self.pid == part)   # part mesh face i = mesh face faces[i]
        self.grid = face_grid(mesh)
        _, _, self.cen, self.r2 = face_geometry(mesh)

    def _own(self, f: np.ndarray) -> np.ndarray:
        return f[self.pid[f] == self.part]

    def near(self, c: np.ndarray, radius: float) -> np.ndarray:
        """Part faces whose bounding ball comes within ``radius`` of c."""
        return np.searchsorted(self.faces, self._own(self.grid.ball(c, radius)))

    def ray(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Distances (inf: no hit) from o along unit d to the part's faces near the ray."""
        f = self._own(self.grid.ray(o, d))
        return ray_hits(o, d, self.V[self.F[f]], self.cen[f], self.r2[f])

    def candidates(self, kept: np.ndarray | None, n_faces: int):
        """``candidates`` for :func:`boolean_difference` on the part mesh after a
        refinement that kept input faces ``kept`` first and appended n_faces -
        len(kept) new ones (all counted near: they lie in the refined patch)."""
        if kept is None:
            return None

        def fn(c, radius):
            m = np.zeros(len(self.faces), bool)
            m[self.near(c, radius)] = True
            return np.concatenate([np.flatnonzero(m[kept]), np.arange(len(kept), n_faces)])
        return fn


#: sliding a damage that does not fit at its ``center``: the patch is the faces of
#: the same part within this angle (deg) of the centre face's normal and this
#: distance (m) of its plane; positions tried along the way to the patch centroid
SLIDE_DEG, SLIDE_PLANE_M, SLIDE_STEPS = 10.0, 3e-3, (0.25, 0.5, 0.75, 1.0)


def slide_to_fit(fi, V, F, normals, cen, areas, pid, try_at):
    """Where a damage centred on face ``fi`` does not fit: ``try_at(face)`` (a
    site, or None where it does not fit) at points on the way from ``fi`` to the
    area centroid of the flat patch ``fi`` lies on (same part, normal within
    SLIDE_DEG, plane within SLIDE_PLANE_M), each at the patch face nearest that
    point. Returns the first site, or None. A seen centre stays on the same flat
    panel, so the damage stays where a camera looks."""
    n0, c0 = normals[fi], cen[fi]
    patch = np.flatnonzero((pid == pid[fi]) & (normals @ n0 > np.cos(np.radians(SLIDE_DEG)))
                           & (np.abs((cen - c0) @ n0) < SLIDE_PLANE_M))
    if len(patch) < 2:
        return None
    m = (cen[patch] * areas[patch, None]).sum(0) / max(float(areas[patch].sum()), 1e-18)
    tried = {int(fi)}
    for t in SLIDE_STEPS:
        q = c0 + t * (m - c0)
        f = int(patch[np.argmin(np.linalg.norm(cen[patch] - q, axis=1))])
        if f in tried:
            continue
        tried.add(f)
        site = try_at(f)
        if site is not None:
            return site
    return None


def draw_surface_point(V: np.ndarray, F: np.ndarray, normals: np.ndarray, areas: np.ndarray, pid: np.ndarray,
                       rng: np.random.Generator, fits, op: str, what: str, bounds: tuple[np.ndarray, np.ndarray],
                       grid) -> tuple[int, np.ndarray, np.ndarray]:
    """An area-weighted random surface point that is exposed (a ray along its
    normal leaves the product) and accepted by ``fits(face, point, normal)``.
    Returns (face index, point (3,) m, unit normal (3,)); raises ParamError after
    MAX_TRIALS tries. bounds: :func:`tri_bounds` of (V, F); grid: the
    :class:`damage_ops.spatial.FaceGrid` of (V, F), which narrows each ray test
    to the faces near the ray."""
    cdf = np.cumsum(areas)
    cen, reach2 = bounds
    for _ in range(MAX_TRIALS):
        fi = int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(F) - 1))
        r1, r2 = rng.random(2)
        s = np.sqrt(r1)
        tri = V[F[fi]]
        p = tri[0] * (1 - s) + tri[1] * (s * (1 - r2)) + tri[2] * (s * r2)
        n = normals[fi]
        if areas[fi] <= 0:
            continue
        o = p + n * 1e-6
        near = grid.ray(o, n)
        near = near[near != fi]
        t = ray_hits(o, n, V[F[near]], cen[near], reach2[near])
        if np.isfinite(t).any():
            continue  # covered by another part (a flap over the body, a label over a bottle)
        if fits(fi, p, n):
            return fi, p, n
    raise NotApplicable(f"{op}: no exposed surface point fits {what} after {MAX_TRIALS} tries")


def local_flat(V: np.ndarray, F: np.ndarray, normals: np.ndarray, p: np.ndarray, n: np.ndarray, radius: float,
               max_angle_deg: float = 30.0, bounds=None) -> bool:
    """Whether every face of (V, F) within ``radius`` of p, on the near side
    (normal . n > -0.3), is within ``max_angle_deg`` of n: no edge or strong
    curvature under the damage."""
    if bounds is None:
        bounds = tri_bounds(V[F])
    cen, reach = bounds[0], np.sqrt(bounds[1])
    near = np.flatnonzero(np.linalg.norm(cen - p, axis=1) < radius + reach)
    tris = V[F[near]]
    if len(near) == 0:
        return True
    cp = closest_point_on_triangles(tris, p)
    near = near[np.linalg.norm(cp - p, axis=1) < radius]
    d = normals[near] @ n
    d = d[d > -0.3]
    return bool((d >= np.cos(np.radians(max_angle_deg))).all())


def refine_near(mesh: trimesh.Trimesh, p: np.ndarray, radius: float, max_edge: float,
                max_levels: int = 6, near: np.ndarray | None = None) -> tuple[trimesh.Trimesh, np.ndarray | None]:
    """Red-green refine the faces within ``radius`` (m) of p until their edges are
    at most ``max_edge`` (m); labels and uv carried by :func:`refine_once`.

    Works on a local patch (the faces near p plus a margin) so the cost does not
    grow with the mesh; falls back to the whole mesh if refinement reached the
    patch border. near: indices of the faces whose bounding ball comes within
    radius + 2.5 x (largest face bounding radius) of p, a superset, if the
    caller has them (:meth:`damage_ops.spatial.FaceGrid.ball`); else all faces
    are measured.

    Returns (mesh, kept): the first len(kept) faces of the result are the input
    faces ``kept``, unchanged; the faces after them are new. kept is None where
    the whole mesh was refined (no such split known)."""
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    idx = np.arange(len(F)) if near is None else np.asarray(near, np.int64)
    cen, reach2 = tri_bounds(V[F[idx]])
    reach = np.sqrt(reach2)
    dist = np.linalg.norm(cen - p, axis=1) - reach
    inner = dist < radius
    if not inner.any():
        return mesh, np.arange(len(F))
    margin = 2.5 * float(reach[inner].max())
    local = np.sort(idx[dist < radius + margin])
    used, inv = np.unique(F[local], return_inverse=True)
    sub = take_faces(mesh, local, V[used], inv.reshape(-1, 3))
    before = _boundary_keys(np.asarray(sub.faces))
    sub2 = _refine_all(sub, p, radius, max_edge, max_levels)
    if len(sub2.faces) == len(sub.faces):
        return mesh, np.arange(len(F))
    SF = np.asarray(sub2.faces)
    if not np.array_equal(before, _boundary_keys(SF[:, :], n_old=len(used))):
        return _refine_all(mesh, p, radius, max_edge, max_levels), None
    nu = len(used)
    vmap = np.concatenate([used, len(V) + np.arange(len(sub2.vertices) - nu)])
    keep = np.ones(len(F), bool)
    keep[local] = False
    keep = np.flatnonzero(keep)
    NV = np.concatenate([V, np.asarray(sub2.vertices)[nu:]])
    NF = np.concatenate([F[keep], vmap[SF]])
    out = trimesh.Trimesh(vertices=NV, faces=NF, process=False)
    out.face_attributes = {k: np.concatenate([np.asarray(v)[keep], np.asarray(sub2.face_attributes[k])])
                           for k, v in mesh.face_attributes.items()}
    return out, keep


def _boundary_keys(F: np.ndarray, n_old: int | None = None) -> np.ndarray:
    """Sorted keys of the edges used by exactly one face (the patch border); with
    n_old, a border edge touching a vertex >= n_old (a new midpoint) marks -1."""
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    nv = int(F.max()) + 1
    k, c = np.unique(e[:, 0] * nv + e[:, 1], return_counts=True)
    b = k[c == 1]
    a, bb = b // nv, b % nv
    if n_old is not None:
        if (bb >= n_old).any():
            return np.array([-1])
    return np.sort(a * (1 << 32) + bb)


def _refine_all(mesh, p, radius, max_edge, max_levels):
    # a face that is short enough or farther than ``radius`` has children that are
    # too (each lies inside it): it leaves the candidates, so a pass costs ~ the front
    live = np.ones(len(mesh.faces), bool)
    for _ in range(max_levels):
        idx = np.flatnonzero(live)
        if len(idx) == 0:
            break
        V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        tris = V[F[idx]]
        cen, reach2 = tri_bounds(tris)
        a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
        el2 = np.maximum(np.maximum(np.einsum("ij,ij->i", b - a, b - a), np.einsum("ij,ij->i", c - b, c - b)),
                         np.einsum("ij,ij->i", a - c, a - c))
        d = cen - p
        ok = (np.sqrt(np.einsum("ij,ij->i", d, d)) < radius + np.sqrt(reach2)) & (el2 > max_edge * max_edge)
        if ok.any():
            cp = closest_point_on_triangles(tris[ok], p)
            ok[ok] = np.linalg.norm(cp - p, axis=1) < radius
        live[idx[~ok]] = False
        if not ok.any():
            break
        mask = np.zeros(len(F), bool)
        mask[idx[ok]] = True
        mesh, nfo = refine_once(mesh, mask)
        live = live[nfo]
    return mesh


def smooth_falloff(u: np.ndarray) -> np.ndarray:
    """1 at u <= 0, 0 at u >= 1, C1 smooth between."""
    u = np.clip(u, 0.0, 1.0)
    return 1.0 - u * u * (3.0 - 2.0 * u)


# -- the op --------------------------------------------------------------------------

def _jagged_radii(rng: np.random.Generator, n_ang: int, r_eq: float, jitter: float | None = None) -> np.ndarray:
    """(n_ang,) radii of a star-shaped jagged polygon whose area is pi r_eq^2:
    low harmonics (the burst shape) plus 1/f fibre jitter round the rim
    (:func:`damage_ops._ragged.pink_noise_loop`, ~1 mm down to the sample
    spacing) of rms ``jitter`` m (None: max(0.3 mm, 0.06 r_eq))."""
    th = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
    k = np.arange(2, 6)
    amp = rng.uniform(0.0, 1.0, len(k)) / k
    ph = rng.uniform(0, 2 * np.pi, len(k))
    low = (amp[:, None] * np.cos(k[:, None] * th + ph[:, None])).sum(0)
    low = low / max(np.abs(low).max(), 1e-9)
    per = 2 * np.pi * r_eq
    jit = min(max(0.3e-3, 0.06 * r_eq), 0.08 * r_eq) if jitter is None else jitter
    fib = R.pink_noise_loop(rng, n_ang, per, 2.0 * per / n_ang)
    r = 1.0 + 0.15 * low + np.clip(jit / r_eq * fib, -0.25, 0.25)
    area = 0.5 * np.sum(r * np.roll(r, -1)) * np.sin(2 * np.pi / n_ang)
    return r * r_eq * np.sqrt(np.pi / area)


def _band_radii(rng: np.random.Generator, radii: np.ndarray, r_eq: float) -> np.ndarray:
    """Radii of the core's cut inside the liner's (``radii``): a band of
    clip(0.15 d, 0.6, 3) mm that varies round the rim and carries its own
    fibre jitter; always >= 0.3 band and >= 25 % of the radius inside."""
    n_ang = len(radii)
    band = float(np.clip(0.3 * r_eq, 0.6e-3, 3e-3))
    per = 2 * np.pi * r_eq
    b = band * np.clip(1.0 + 0.4 * R.pink_noise_loop(rng, n_ang, per, per / 12), 0.3, 1.8)
    b = b + 0.25 * band * R.pink_noise_loop(rng, n_ang, per, 2.0 * per / n_ang)
    b = np.clip(b, 0.3 * band, None)
    return np.maximum(radii - b, 0.25 * radii)


def _cutter(p, n, e1, e2, radii, levels):
    """Closed cutter: rings of ``radii`` (m) scaled per level, at depths t (m, along
    -n from p); levels = [(t, scale), ...] top (outside) to bottom. Returns V, F
    wound outward."""
    k = len(radii)
    th = np.linspace(0, 2 * np.pi, k, endpoint=False)
    dirs = np.cos(th)[:, None] * e1 + np.sin(th)[:, None] * e2
    rings = [p - t * n + (s * radii)[:, None] * dirs for t, s in levels]
    V = np.concatenate(rings + [[p - levels[0][0] * n], [p - levels[-1][0] * n]])
    top, bot = len(V) - 2, len(V) - 1
    i = np.arange(k)
    j = (i + 1) % k
    F = []
    for L in range(len(levels) - 1):
        a, b = L * k + i, L * k + j
        c, d = (L + 1) * k + j, (L + 1) * k + i
        F += [np.stack([a, d, c], 1), np.stack([a, c, b], 1)]
    F += [np.stack([np.full(k, top), i, j], 1)]
    last = (len(levels) - 1) * k
    F += [np.stack([np.full(k, bot), last + j, last + i], 1)]
    F = np.concatenate(F)
    # orient outward (signed volume > 0)
    tris = V[F]
    vol = np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum()
    if vol < 0:
        F = F[:, ::-1]
    return V, F


def _to_manifold(V: np.ndarray, F: np.ndarray, run_id: int):

    mesh = mf.Mesh64(vert_properties=np.ascontiguousarray(V, dtype=np.float64),
                     tri_verts=np.ascontiguousarray(F, dtype=np.uint64),
                     run_index=np.array([0, 3 * len(F)], np.uint64),
                     run_original_id=np.array([run_id], np.uint32),
                     face_id=np.arange(len(F), dtype=np.uint64))
    return mf.Manifold(mesh)


def boolean_difference(part: trimesh.Trimesh, CV: np.ndarray, CF: np.ndarray, n: np.ndarray | None = None,
                       origin: np.ndarray | None = None, candidates=None, clear_above: bool = False):
    """part minus the closed cutter (CV, CF) with manifold3d.

    n (3,), origin (3,): the cut's frame, the outward direction the cutter is
    pushed in against and a point of the cut (on the surface) from which a ray
    along n leaves ``part`` near the cutter. With them the boolean runs on a
    closed local patch (:func:`_local_difference`: the result is the same, the
    cost follows the patch, not the part); without them, or where no patch can
    be closed safely, on the whole part. candidates: ``candidates(c, r)`` ->
    indices of a superset of the faces whose bounding ball comes within r of
    c (or None: all faces), so finding the patch costs ~ the patch;
    clear_above: the caller knows the ray from ``origin`` along n meets no
    face of ``part``.

    Returns (V (v, 3), F (n, 3), src (n,) bool: face comes from ``part``,
    fid (n,) index of the source triangle in part or in the cutter)."""
    if n is not None and origin is not None:
        res = _local_difference(part, CV, CF, np.asarray(n, float), np.asarray(origin, float), candidates,
                                clear_above)
        if res is not None:
            return res
    V = np.asarray(part.vertices)
    return _difference(V, np.asarray(part.faces), CV, CF)


def _difference(V: np.ndarray, F: np.ndarray, CV: np.ndarray, CF: np.ndarray):
    """(V, F) minus the cutter (CV, CF), both closed, with manifold3d; slivers
    collapsed onto the input's own vertices where they have one, needles split.
    Returns (V', F', src, fid) as :func:`boolean_difference`."""

    ida = mf.Manifold.reserve_ids(2)
    A = _to_manifold(V, F, ida)
    B = _to_manifold(CV, CF, ida + 1)
    if A.is_empty() or B.is_empty():
        raise NotApplicable(f"{OP}: manifold3d rejected the part or the cutter ({A.status()}, {B.status()})")
    out = (A - B).to_mesh64()
    NV = np.asarray(out.vert_properties)[:, :3].astype(np.float64)
    NF = np.asarray(out.tri_verts).astype(np.int64)
    fid = np.asarray(out.face_id).astype(np.int64)
    run_index = np.asarray(out.run_index).astype(np.int64) // 3
    run_id = np.asarray(out.run_original_id)
    tri_run = np.searchsorted(run_index, np.arange(len(NF)), side="right") - 1
    src = run_id[tri_run] == ida
    # the cut can leave sub-micron triangles where a cutter edge passes a mesh vertex
    NF, keep = collapse_short_edges(NV, NF, SLIVER_M, prefer=np.flatnonzero(_match_rows(V, NV) >= 0))
    src, fid = src[keep], fid[keep]
    # ... and zero-area needles (a vertex on the opposite edge): split them away
    NF, new_from_old = split_needles(NV, NF)
    return NV, NF, src[new_from_old], fid[new_from_old]


def _local_difference(part: trimesh.Trimesh, CV: np.ndarray, CF: np.ndarray, n: np.ndarray, origin: np.ndarray,
                      candidates=None, clear_above: bool = False):
    """:func:`boolean_difference` on a closed local patch, or None where the
    patch cannot be closed safely (the caller then cuts the whole part).

    The cutter lies in a cylinder Z along n (axis through the middle of its
    footprint, radius r, depths [d0, d1] below ``origin``). The patch P is
    every face of the part that may reach into Z; each of its border loops is
    closed by a fan to an apex on the axis, deep enough that no fan triangle
    enters Z. Winding numbers then agree on Z: part - (P + fans) is the closed
    surface (rest of the part) + (fans reversed), which misses Z, so its
    winding number is one constant on Z; a ray from the top of Z along n that
    crosses none of it shows the constant is 0. The cutter lies in Z, so
    (P + fans) - cutter, fans dropped, is exactly the cut part's patch. Checks
    after the cut: the fans came back whole and the patch border is unchanged.

    candidates (see :func:`boolean_difference`) must hold every face that
    reaches into Z: a face left out is caught where the gap it leaves has its
    border inside Z (no fan can close it), not where the gap is wider than Z."""
    V, F = np.asarray(part.vertices), np.asarray(part.faces)
    cd = -((CV - origin) @ n)
    d0, d1 = float(cd.min()), float(cd.max())
    lat = (CV - origin) + cd[:, None] * n
    c0 = 0.5 * (lat.min(0) + lat.max(0))
    c0 = c0 - (c0 @ n) * n
    r = float(np.linalg.norm(lat - c0, axis=1).max())
    a0 = origin + c0                                   # the axis of Z passes here
    # the patch: faces that reach into this cylinder, a little wider and deeper than Z
    R, lo, hi = 1.05 * r + 2e-4, d0 - 2e-4, d1 + 2e-4
    idx = None if candidates is None else candidates(a0 - 0.5 * (lo + hi) * n, float(np.hypot(R, 0.5 * (hi - lo))))
    idx = np.arange(len(F)) if idx is None else np.asarray(idx, np.int64)
    cen, r2 = tri_bounds(V[F[idx]])
    rad = np.sqrt(r2)
    rel = cen - a0
    fd = -(rel @ n)
    fl = np.linalg.norm(rel + fd[:, None] * n, axis=1)
    sel = np.zeros(len(F), bool)
    sel[idx[(fl - rad < R) & (fd + rad > lo) & (fd - rad < hi)]] = True
    for _ in range(4):
        if sel.all() or not sel.any():
            return None
        psel = np.flatnonzero(sel)
        used = np.zeros(len(V), bool)
        used[F[psel].ravel()] = True
        gidx = np.flatnonzero(used)                    # local vertex -> part vertex
        loc = np.cumsum(used) - 1
        PF = loc[F[psel]]
        nv = len(gidx)
        border = _directed_border(PF, nv)  # it must form simple loops
        pinch = np.flatnonzero(np.bincount(border[:, 0], minlength=nv) > 1)
        if len(pinch) == 0:
            break
        # P touches itself at these vertices: take in all their faces
        at = np.zeros(len(V), bool)
        at[gidx[pinch]] = True
        sel = sel | at[F].any(1)
    else:
        return None
    LV = V[gidx]
    if len(border):

        nl, lab = connected_components(coo_matrix((np.ones(len(border)), (border[:, 0], border[:, 1])),
                                                  shape=(nv, nv)), directed=True, connection="weak")
        loop = lab[border[:, 0]]
        _, loop = np.unique(loop, return_inverse=True)
        # fans to an apex on the axis at depth L: a fan point s*b + (1-s)*apex is
        # s*|b_lat| >= s*m from the axis, so inside Z only for s <= r/m, where it
        # lies deeper than d1 once L is large enough
        bu, bv = LV[border[:, 0]] - a0, LV[border[:, 1]] - a0
        du, dv = -(bu @ n), -(bv @ n)
        lu, lv = bu + du[:, None] * n, bv + dv[:, None] * n
        seg = lv - lu
        t = np.clip(-np.einsum("ij,ij->i", lu, seg) / np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-30), 0, 1)
        m = np.linalg.norm(lu + t[:, None] * seg, axis=1)
        md = np.minimum(du, dv)
        deep = md > d1 + 1e-5
        side = ~deep
        if side.any():
            if (m[side] < 1.02 * r).any():
                return None
            rho = r / m[side]
            L = float(((d1 + rho * np.maximum(-md[side], 0.0) + 1e-4) / (1.0 - rho)).max())
        else:
            L = 0.0
        L = max(L, d1 + 2.0 * r, d1 + 1e-3)
        nloops = int(loop.max()) + 1
        apex = a0 - (L * (1.0 + 0.05 * np.arange(nloops)))[:, None] * n
        fans = np.stack([border[:, 1], border[:, 0], nv + loop], 1)
        LV = np.concatenate([LV, apex])
    else:
        fans = np.zeros((0, 3), np.int64)
    # the ray from the top of Z along n must cross neither the rest of the part nor a fan
    q = origin - (d0 + 1e-5) * n
    if d0 > 0 or (not clear_above and np.isfinite(ray_hits(q, n, V[F[~sel]])).any()):
        return None
    if len(fans) and np.isfinite(ray_hits(q, n, LV[fans])).any():
        return None
    nP = len(PF)
    try:
        OV, OF, src, fid = _difference(LV, np.concatenate([PF, fans]), CV, CF)
    except RuntimeError:
        return None
    is_fan = src & (fid >= nP)
    if int(is_fan.sum()) != len(fans):
        return None                                    # a fan was cut: the patch was not closed safely
    if normals_areas(OV, OF)[1].min() < NEEDLE_AREA_M2:
        return None  # a needle split_needles could not undo here: the whole part's triangulation differs
    keep = ~is_fan
    OF, src, fid = OF[keep], src[keep], fid[keep]
    # output vertices identical to a patch vertex keep its index in the part
    vmap = _match_rows(LV[:nv], OV)
    hit = vmap >= 0
    newv = np.zeros(len(OV), bool)
    newv[np.unique(OF)] = True
    newv &= ~hit
    vmap = np.where(hit, gidx[np.maximum(vmap, 0)], -1)
    vmap[newv] = len(V) + np.arange(int(newv.sum()))
    GF = vmap[OF]
    if (GF < 0).any():
        return None
    # the cut patch has exactly the patch's border
    nvg = len(V) + int(newv.sum())
    ob, gb = _directed_border(GF, nvg), gidx[border]
    if not np.array_equal(np.sort(ob[:, 0] * nvg + ob[:, 1]), np.sort(gb[:, 0] * nvg + gb[:, 1])):
        return None
    rest = np.flatnonzero(~sel)
    NV = np.concatenate([V, OV[newv]])
    NF = np.concatenate([F[rest], GF])
    fid = np.where(src, psel[np.where(src, fid, 0)], fid)
    return NV, NF, np.concatenate([np.ones(len(rest), bool), src]), np.concatenate([rest, fid])


def _directed_border(F: np.ndarray, nv: int) -> np.ndarray:
    """(k, 2) the directed edges of faces F (over nv vertices) whose reverse no
    face has: an open surface's border loops."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    return e[~np.isin(e[:, 1] * nv + e[:, 0], e[:, 0] * nv + e[:, 1])]


def _match_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of B (m, 3) the index of a bit-identical row of A (n, 3), or -1."""
    def h(X):
        k = np.ascontiguousarray(X, np.float64).view(np.uint64)
        return (k[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (k[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)) ^ k[:, 2]
    ha, hb = h(A), h(B)
    order = np.argsort(ha, kind="stable")
    pos = np.minimum(np.searchsorted(ha[order], hb), len(A) - 1)
    cand = order[pos]
    ok = (ha[cand] == hb) & (A[cand] == B).all(1)
    return np.where(ok, cand, -1)


NEEDLE_AREA_M2 = 1e-12


def split_needles(V: np.ndarray, F: np.ndarray, area_eps: float = NEEDLE_AREA_M2, passes: int = 4):
    """Remove zero-area 'needle' faces (a, b, w) whose vertex w lies on its longest
    edge (a, b): the needle is dropped and the face across (b, a) is split at w
    into two, so the surface stays closed. Returns (F', new_from_old (n',)): each
    new face's source face (split halves inherit the neighbour's)."""
    F = np.asarray(F, dtype=np.int64)
    src = np.arange(len(F))
    for _ in range(passes):
        e1, e2 = V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]
        area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
        bad = np.flatnonzero(area < area_eps)
        if len(bad) == 0:
            break
        # directed edge -> face, for the faces around the needles only (the face
        # across a needle's edge shares both its vertices)
        vm = np.zeros(len(V), bool)
        vm[F[bad].ravel()] = True
        edge_face = {(int(F[f, k]), int(F[f, (k + 1) % 3])): f
                     for f in np.flatnonzero(vm[F].any(1)).tolist() for k in range(3)}
        drop, add, add_src, touched = set(), [], [], set()
        for f in bad.tolist():
            if f in touched:
                continue
            tri = F[f]
            lens = [np.linalg.norm(V[tri[(k + 1) % 3]] - V[tri[k]]) for k in range(3)]
            k = int(np.argmax(lens))
            p, q, w = int(tri[k]), int(tri[(k + 1) % 3]), int(tri[(k + 2) % 3])
            g = edge_face.get((q, p))
            if g is None or g in touched or g == f:
                continue
            gt = F[g].tolist()
            d = [x for x in gt if x not in (p, q)]
            if len(d) != 1:
                continue
            d = d[0]
            drop.update((f, g))
            touched.update((f, g))
            add += [(q, w, d), (w, p, d)]
            add_src += [src[g], src[g]]
        if not drop:
            break
        keep = np.setdiff1d(np.arange(len(F)), np.fromiter(drop, int))
        F = np.concatenate([F[keep], np.asarray(add, dtype=np.int64).reshape(-1, 3)])
        src = np.concatenate([src[keep], np.asarray(add_src, dtype=np.int64)])
    return F, src


def collapse_short_edges(V: np.ndarray, F: np.ndarray, eps: float, prefer: np.ndarray | None = None):
    """Weld the endpoints of edges shorter than ``eps`` (m) and drop the faces
    that collapse. Returns (F', kept face mask (n,)). Vertices are not moved: each
    welded cluster maps to one of its members (the lowest index, or one whose
    index is in ``prefer``... a position-identical original vertex)."""

    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    short = np.linalg.norm(V[e[:, 0]] - V[e[:, 1]], axis=1) < eps
    if not short.any():
        return F, np.ones(len(F), bool)
    e = e[short]
    nv = len(V)
    # clusters of the short edges' endpoints only (a graph over the few involved
    # vertices, not over the whole mesh)
    involved, inv = np.unique(e, return_inverse=True)
    inv = inv.reshape(-1, 2)
    k = len(involved)
    ncomp, lab = connected_components(coo_matrix((np.ones(len(inv)), (inv[:, 0], inv[:, 1])), shape=(k, k)),
                                      directed=False)
    rep = np.arange(nv)
    # representative per cluster: an original (preferred) vertex if any, else the lowest index
    if prefer is None:
        score = np.ones(k, np.int64)
    else:
        is_pref = np.zeros(nv, bool)
        is_pref[np.asarray(prefer)[np.asarray(prefer) < nv]] = True
        score = np.where(is_pref[involved], 0, 1)
    order = np.lexsort((involved, score, lab))
    lab_sorted = lab[order]
    first = np.r_[True, lab_sorted[1:] != lab_sorted[:-1]]
    cluster_rep = np.empty(ncomp, np.int64)
    cluster_rep[lab_sorted[first]] = involved[order][first]
    rep[involved] = cluster_rep[lab]
    F2 = rep[F]
    keep = (F2[:, 0] != F2[:, 1]) & (F2[:, 1] != F2[:, 2]) & (F2[:, 2] != F2[:, 0])
    return F2[keep], keep


@register(OP, PunctureParams, "penetration", opens_surface=False)
def puncture(product: Product, params: PunctureParams, rng: np.random.Generator) -> tuple[Product, "DamageRecord"]:  # noqa: F821
    """Punch a jagged hole with a pushed-in rim into one part of ``product``.

    product: input product (not mutated). params: :class:`PunctureParams`.
    rng: every random choice (location, rim shape) draws from it.
    Returns (damaged copy, its DamageRecord); see the module docstring for what
    is labelled and how the size is measured.
    """
    params = params_from(PunctureParams, OP, params)
    out = product.copy()
    ensure_optional(out.mesh)
    mesh = out.mesh
    V = np.asarray(mesh.vertices)
    F = np.asarray(mesh.faces)
    pid = mesh.face_attributes["part_id"]
    normals, areas, cen, reach2 = face_geometry(product.mesh)  # same faces as the copy; cached
    r_eq = params.diameter_mm / 2e3
    # enough rim samples for mm-scale fibre jitter (~0.8 mm apart), 48..160
    n_ang = int(np.clip(2 * np.pi * r_eq / 0.8e-3, 48, 160))
    radii = _jagged_radii(rng, n_ang, r_eq)
    radii_in = _band_radii(rng, radii, r_eq)  # drawn always: the rng stream does not depend on the site
    r_max = float(radii.max())
    width = 0.8 * r_eq + 1e-3           # falloff width of the pushed-in rim (m)
    reach = r_max + width
    grid = face_grid(product.mesh)

    def fits(f, q, nq):
        near = grid.ball(q, reach)
        near = near[pid[near] == pid[f]]
        return local_flat(V, F[near], normals[near], q, nq, reach, bounds=(cen[near], reach2[near]))

    if params.center is not None:
        fi = int(params.center)
        if fi >= len(F):
            raise ParamError(f"{OP}.center: face index {fi} out of range for a mesh of {len(F)} faces")
        p = V[F[fi]].mean(0)
        n = normals[fi]
        if not fits(fi, p, n):  # over an edge: slide toward the middle of its flat patch if it fits there
            fi = slide_to_fit(fi, V, F, normals, cen, areas, pid,
                              lambda f: f if fits(f, V[F[f]].mean(0), normals[f]) else None)
            fi = int(params.center) if fi is None else fi
            p, n = V[F[fi]].mean(0), normals[fi]
    else:
        fi, p, n = draw_surface_point(V, F, normals, areas, pid, rng, fits, OP,
                                      f"a hole of diameter_mm={params.diameter_mm:g}", bounds=(cen, reach2),
                                      grid=grid)
    part = int(pid[fi])
    e1, e2 = tangent_frame(n)

    pm, rest = split_part(mesh, part)
    pg = PartGrid(product.mesh, part)
    PV = np.asarray(pm.vertices)
    # local thickness of the part along -n, and how far the surface curves away
    thick = pg.ray(p - n * 1e-7, -n)
    thick = float(thick[thick > 1e-6].min()) if np.isfinite(thick).any() and (thick > 1e-6).any() else np.inf
    rel = PV - p
    tv = -(rel @ n)
    lat = np.linalg.norm(rel + tv[:, None] * n, axis=1)
    near = (lat < 1.3 * r_max) & (tv < 0.5 * min(thick, 1.0))
    sag = float(max(tv[near].max(), 0.0)) if near.any() else 0.0

    want = params.depth_mm / 1e3 if params.depth_mm is not None else float(np.clip(0.5 * params.diameter_mm, 3.0, 30.0)) / 1e3
    through = thick < THIN_M and thick < want
    if through:
        t_bot, taper = thick + sag + 1e-3, 0.85
        push = min(0.35 * thick, 0.25 * r_eq)
        t_lim = thick + sag + 0.5e-3
    else:
        t_bot, taper = min(want, 0.6 * thick), 0.6
        push = min(0.3 * t_bot, 0.25 * r_eq, 6e-3)
        t_lim = t_bot + 0.5e-3
    t0 = sag + 0.5e-3                   # straight (scale 1) down to here: exact opening area
    h = sag + 2e-3                      # cutter starts this far outside the surface
    layered = out.parts[part].material in BOARD_MATERIALS
    liner = float(np.clip(0.3 * min(t_bot - sag, BOARD_M), 0.3e-3, 1.2e-3)) if layered else 0.0
    if layered:
        t0 = sag + liner                # the outer liner: cut along the outer radii down to here
    if t_bot <= t0 + 0.2e-3:
        t_bot = t0 + max(0.5e-3, 0.5 * t_bot)
    if layered:
        # a step: the core is cut a band inside the liner, the flutes show in the band
        ratio = radii_in / radii
        levels = [(-h, 1.0), (t0, 1.0), (t0, ratio), (t_bot, ratio * taper)]
    else:
        levels = [(-h, 1.0), (t0, 1.0), (t_bot, taper)]

    pm, kept = refine_near(pm, p, reach, max(width / 2.5, 1.2e-3),
                           near=pg.near(p, reach + 2.5 * float(np.sqrt(reach2.max()))))
    clear = not np.isfinite(pg.ray(p + n * 1e-7, n)).any()
    CV, CF = _cutter(p, n, e1, e2, radii, levels)
    NV, NF, src, fid = boolean_difference(pm, CV, CF, n, p, candidates=pg.candidates(kept, len(pm.faces)),
                                          clear_above=clear)

    # labels: surface faces inherit from their source triangle, cutter faces from the punctured face
    attrs, retri = inherit_labels(pm, NV, NF, src, fid)
    src_uv = barycentric_uv(p[None, None], V[F[fi]][None], mesh.face_attributes["uv"][fi][None])[0, 0]
    cut = ~src
    attrs["uv"][cut] = src_uv
    attrs["part_id"][cut] = part
    attrs["damage_id"][cut] = mesh.face_attributes["damage_id"][fi]
    attrs["tint"][cut] = np.asarray(mesh.face_attributes["tint"][fi]) * 0.7
    attrs["finish"][cut] = FINISH_IDS["interior"]
    if layered:
        # torn liner edge (light paper), flute band and walls through the board
        # (core), below the board the dark inside of the box (interior)
        ci = np.flatnonzero(cut)
        cnrm, _ = normals_areas(NV, NF[ci])
        cd = -((NV[NF[ci]].mean(1) - p) @ n)
        steep = np.abs(cnrm @ n) < 0.7
        fin = np.where(cd < sag + BOARD_M, FINISH_IDS["core"], FINISH_IDS["interior"])
        fin = np.where(steep & (cd < t0 - 1e-5), FINISH_IDS["inner_liner"], fin)
        attrs["finish"][ci] = fin
        attrs["tint"][ci[fin != FINISH_IDS["interior"]]] = 1.0
        # the box's inside, below the board: in shadow, darker than the cut walls
        attrs["tint"][ci[fin == FINISH_IDS["interior"]]] *= INSIDE_TINT / 0.7

    # push the rim and the cavity in along -n with a smooth falloff around the jagged edge
    rel = NV - p
    tv = -(rel @ n)
    x, y = rel @ e1, rel @ e2
    lat = np.hypot(x, y)
    ang = np.mod(np.arctan2(y, x), 2 * np.pi) / (2 * np.pi) * n_ang
    i0 = np.floor(ang).astype(np.int64) % n_ang
    fr = ang - np.floor(ang)
    r_at = radii[i0] * (1 - fr) + radii[(i0 + 1) % n_ang] * fr
    disp = push * smooth_falloff((lat - r_at) / width)
    disp[(tv > t_lim) | (tv < -h)] = 0.0
    disp[disp < MIN_PUSH_M] = 0.0  # the falloff tail below 50 um is not worth a label
    NV = NV - disp[:, None] * n

    moved = disp[NF].max(1) > 0
    labelled = cut | moved | retri
    # the torn liner: surface faces touching the hole edge
    rim_v = np.zeros(len(NV), bool)
    rim_v[NF[cut].ravel()] = True
    edge_faces = src & rim_v[NF].any(1)
    attrs["finish"][edge_faces] = FINISH_IDS["inner_liner" if layered else "interior"]
    behind_self = np.zeros(len(NF), bool)
    rest_behind = np.zeros(len(rest.faces), bool)
    if through:
        # the view into the item: what lies behind the hole is its dark inside
        th_ = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
        poly = (radii_in if layered else radii)[:, None] * taper * np.stack([np.cos(th_), np.sin(th_)], 1)
        behind_self = R.behind(NV, NF, attrs["part_id"], out.parts, poly, p, e1, e2, n, thick) & src & ~labelled
        R.paint_dark(attrs, behind_self)
        ensure_optional(rest)
        rest_behind = R.behind(np.asarray(rest.vertices), np.asarray(rest.faces), rest.face_attributes["part_id"],
                               out.parts, poly, p, e1, e2, n, thick)
        R.paint_dark(rest.face_attributes, rest_behind)

    new_part = trimesh.Trimesh(vertices=NV, faces=NF, process=False)
    new_part.face_attributes = attrs
    out.mesh = concatenate([rest, new_part])
    faces = np.concatenate([np.flatnonzero(rest_behind), len(rest.faces) + np.flatnonzero(labelled | behind_self)])

    # measure: opening = rim loop nearest the outside, projected on the tangent plane
    rim_edges = _rim_edges(NF, cut)
    tv_pre = tv
    re = outer_loop(rim_edges, tv_pre)
    px, py = x[re], y[re]
    area = 0.5 * np.abs(px[:, 0] * py[:, 1] - px[:, 1] * py[:, 0]).sum()
    diameter_mm = 2e3 * np.sqrt(area / np.pi)
    cut_v = np.unique(NF[cut])
    depth_mm = 1e3 * float(tv_pre[cut_v].max())
    size = {"diameter_mm": diameter_mm, "depth_mm": depth_mm, "push_mm": push * 1e3}
    region = {"center_m": p.tolist(), "radius_m": float(reach), "normal": n.tolist(), "through": bool(through),
              "part": out.parts[part].name, "layered": bool(layered), "liner_mm": 1e3 * liner}
    return add_damage(out, faces, OP, size, region, asdict(params))


def inherit_labels(part: trimesh.Trimesh, NV: np.ndarray, NF: np.ndarray, src: np.ndarray, fid: np.ndarray):
    """Face attributes of a :func:`boolean_difference` result (NV, NF, src, fid)
    of ``part``: every face takes its source triangle's labels (cutter faces
    take part face 0's, for the caller to overwrite); the uv of a surface face
    that is not its source triangle unchanged is re-interpolated in it.

    Returns (attrs, retri): retri (n,) bool marks surface faces that left their
    source triangle (off its plane or outside its edges: manifold3d may
    re-triangulate beside the cut), i.e. changed geometry."""
    fa = part.face_attributes
    sfid = np.where(src, fid, 0)
    attrs = {k: np.asarray(v)[sfid] for k, v in fa.items()}  # (fancy indexing copies)
    PV, PF = np.asarray(part.vertices), np.asarray(part.faces)
    # untouched: the source triangle, same corner order; same vertex indices
    # settle most faces of a local cut without comparing coordinates
    same = src & (NF == PF[sfid]).all(1)
    look = np.flatnonzero(src & ~same)
    same[look] = (NV[NF[look]] == PV[PF[sfid[look]]]).all((1, 2))
    redo = np.flatnonzero(~same)
    T_new, T_src = NV[NF[redo]], PV[PF[sfid[redo]]]
    uv = attrs["uv"]
    uv[redo], w = barycentric_uv(T_new, T_src, uv[redo], return_weights=True)
    nrm, _ = normals_areas(PV, PF[sfid[redo]])
    off = np.abs(np.einsum("ikj,ij->ik", T_new - T_src[:, :1], nrm)).max(1) > 1e-9
    retri = np.zeros(len(NF), bool)
    retri[redo] = src[redo] & (off | (w < -1e-9).any((1, 2)))
    return attrs, retri


def outer_loop(edges: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Of the edge loops in ``edges`` (k, 2), the one with the smallest mean
    ``depth`` (per-vertex, along -n): the opening on the outside."""

    if len(edges) == 0:
        return edges
    nv = int(edges.max()) + 1
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(nv, nv))
    _, lab = connected_components(g, directed=False)
    el = lab[edges[:, 0]]
    ids = np.unique(el)
    mean_d = np.array([depth[edges[el == i]].mean() for i in ids])
    return edges[el == ids[np.argmin(mean_d)]]


def _rim_edges(F: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """(k, 2) sorted vertex pairs of the edges shared by a cutter face and a surface face."""
    nv = int(F.max()) + 1
    at = np.zeros(nv, bool)
    at[F[cut].ravel()] = True
    near = at[F].any(1)  # only faces touching the cut can share an edge with it
    F, cut = F[near], cut[near]
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    key = e[:, 0] * nv + e[:, 1]
    owner = np.tile(cut, 3)
    both = np.intersect1d(key[owner], key[~owner])
    return np.stack([both // nv, both % nv], 1)
