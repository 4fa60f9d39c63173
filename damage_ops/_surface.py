"""Local surface helpers shared by the ``crush`` and ``superficial`` operators
(private: not part of the public damage_ops API).

Everything is vectorised numpy on the labelled trimesh of a product (meters,
item frame); refinement carries face labels through explicit new->old maps.
"""
from __future__ import annotations

from typing import Callable

import noise
import numpy as np
import trimesh
from scipy.ndimage import map_coordinates

from .product import GRID_KEY, carry_face_geometry, face_geometry, index_ranges, normals_areas  # noqa: F401  (for the ops)
from .remesh import grow_on, on_patch, refine_levels


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, y)


def _edge2(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared lengths of the edges (a, b), (b, c), (c, a) of faces ``F``."""
    A, B, C = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    ab, bc, ca = B - A, C - B, A - C
    return _dot(ab, ab), _dot(bc, bc), _dot(ca, ca)


def max_edge(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """(n,) longest edge of each face, meters."""
    e0, e1, e2 = _edge2(V, F)
    return np.sqrt(np.maximum(np.maximum(e0, e1), e2))


def refine_where(mesh: trimesh.Trimesh, select: Callable[[trimesh.Trimesh, np.ndarray], np.ndarray], max_edge_m: float,
                 max_levels: int = 6, candidates: np.ndarray | None = None,
                 keep_geometry: bool = True) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Red-green refine (:func:`damage_ops.remesh.refine_once`) the faces that
    ``select(mesh, idx)`` marks among the candidate faces ``idx`` (re-evaluated
    after every pass), until their longest edge is at most ``max_edge_m`` or
    ``max_levels`` passes ran.

    candidates: (n,) bool, faces that may be refined (their children stay
    candidates); None = all. Restricting them keeps each pass's cost
    proportional to the region, not the mesh. Re-selecting each pass keeps long
    faces that only graze the region from being refined everywhere. Slivers
    (shortest edge below max_edge_m / 4: the long thin facets of a revolved
    bottle or a label's inner wall) stop being split: red splits halve every
    edge, so refining them further would multiply faces without making them any
    less thin. keep_geometry: cache the refined mesh's face geometry from the
    input's (pointless when the caller moves vertices next). Returns (mesh,
    (n_new,) new_from_old)."""
    if candidates is None:
        return refine_levels(mesh, select, max_edge_m, max_levels, slivers=True, drop_unselected=True)
    cand = np.asarray(candidates, bool)
    if not cand.any():
        return mesh, np.arange(len(mesh.faces))
    # refine on a patch (the candidates and 3 rings) so the cost follows the region
    patch = grow_on(mesh, cand, 3)
    out, nfo = on_patch(mesh, patch, lambda sub, idx: refine_levels(sub, select, max_edge_m, max_levels, cand[idx],
                                                                    slivers=True, drop_unselected=True))
    if keep_geometry:  # the caller reads the refined mesh's face geometry next
        carry_face_geometry(mesh, out, nfo)
    return out, nfo


def _mt(T: np.ndarray, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Moller-Trumbore: T (..., 3, 3) triangles, origins/dirs broadcastable (..., 3).
    Returns t (...) with inf where the ray misses."""
    e1, e2 = T[..., 1, :] - T[..., 0, :], T[..., 2, :] - T[..., 0, :]
    p = np.cross(dirs, e2)
    det = (e1 * p).sum(-1)
    ok = np.abs(det) > 1e-20
    inv = 1.0 / np.where(ok, det, 1.0)
    s = origins - T[..., 0, :]
    u = (s * p).sum(-1) * inv
    q = np.cross(s, e1)
    v = (q * dirs).sum(-1) * inv
    t = (q * e2).sum(-1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    return np.where(hit, t, np.inf)


def ray_hits(V: np.ndarray, F: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Distances (m, sorted, > 1e-7) at which one ray meets the faces ``F``."""
    # a face the ray's line meets straddles it in both directions across the ray:
    # test that on the vertices' projections first (cheap), Moller-Trumbore after
    e1, e2 = tangent_frame(direction)
    q = V - origin
    pu, pv = q @ e1, q @ e2
    eps = 1e-12
    Fu, Fv = pu[F], pv[F]
    near = ((np.minimum(np.minimum(Fu[:, 0], Fu[:, 1]), Fu[:, 2]) <= eps)
            & (np.maximum(np.maximum(Fu[:, 0], Fu[:, 1]), Fu[:, 2]) >= -eps)
            & (np.minimum(np.minimum(Fv[:, 0], Fv[:, 1]), Fv[:, 2]) <= eps)
            & (np.maximum(np.maximum(Fv[:, 0], Fv[:, 1]), Fv[:, 2]) >= -eps))
    t = _mt(V[F[near]], origin[None], direction[None])
    return np.sort(t[(t > 1e-7) & np.isfinite(t)])


def _cells(lo: np.ndarray, hi: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Every grid cell key of the boxes [lo, hi] (k, 2) int, and the box each came from."""
    ni, nj = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    cnt = ni * nj
    owner = np.repeat(np.arange(len(lo)), cnt)
    k = index_ranges(np.zeros(len(cnt), np.int64), cnt)  # position within its box
    return (lo[owner, 0] + k // nj[owner]) * w + lo[owner, 1] + k % nj[owner], owner


class Occluders:
    """Occluder faces of (V, F) indexed once for many cover queries
    (:meth:`query`): the ray from each query face's centroid along its own
    outward normal, does it meet one of them within ``max_dist`` m? (a flap
    over a carton top, a tape over a flap, a label over a bottle).

    occluders: face indices; axis: (3,) unit direction the region roughly
    faces; part: (n,) part id of every face, if a face is not to count as
    covered by its own part; scope: the faces later queries will ask about,
    if known (occluders out of reach of their rays are dropped up front). The
    occluders are hashed on a 2-D grid in the plane normal to
    ``axis``: a query ray segment and an occluder meet only if their projected
    boxes share a cell, so a query costs ~ k x (occluders per cell)."""

    def __init__(self, V: np.ndarray, F: np.ndarray, occluders: np.ndarray, axis: np.ndarray, max_dist: float,
                 scope: np.ndarray | None = None, offset: float = 1e-5, geo=None, part: np.ndarray | None = None,
                 cell: float | None = None):
        self.V, self.F, self.axis, self.max_dist = V, F, axis, float(max_dist)
        self.part = part
        occ = np.asarray(occluders, np.int64)
        if scope is not None and len(occ):
            # only the query faces ``scope`` will be asked about: an occluder whose
            # box (or bounding ball) misses the box of all their ray segments cannot be
            # met, nor, with parts, the box of the rays of the other parts' faces
            scope = np.asarray(scope, np.int64)
            o, nq = self._rays(scope, offset, geo)
            end = o + max_dist * nq
            lo_r, hi_r = np.minimum(o, end), np.maximum(o, end)
            if geo is None:
                C = V[F[occ]]
                clo, chi = C.min(1), C.max(1)
            else:
                co, ro = geo[2][occ], np.sqrt(geo[3][occ])[:, None]
                clo, chi = co - ro, co + ro
            if part is None:
                blo, bhi = lo_r.min(0, initial=np.inf), hi_r.max(0, initial=-np.inf)
            else:  # per occluder, the box of the rays of the scope faces of the other parts
                po = part[occ]
                parts = np.flatnonzero(np.bincount(po))  # (a bincount, not a sort)
                sp = part[scope]
                box_lo = np.full((int(parts.max()) + 1, 3), np.inf)
                box_hi = np.full((int(parts.max()) + 1, 3), -np.inf)
                for p in parts:
                    box_lo[p] = lo_r[sp != p].min(0, initial=np.inf)
                    box_hi[p] = hi_r[sp != p].max(0, initial=-np.inf)
                blo, bhi = box_lo[po], box_hi[po]
            a = (chi >= blo) & (clo <= bhi)
            occ = occ[a[:, 0] & a[:, 1] & a[:, 2]]
        self.n = len(occ)
        if self.n == 0:
            return
        self.occ = occ
        self.occ_part = None if part is None else part[occ]
        self.e1, self.e2 = tangent_frame(axis)
        # projections of the occluders' corners, through the vertices (each projected once)
        Fo = F[occ]
        W = V @ np.stack([self.e1, self.e2, axis], 1)             # (v, 3): e1, e2, axis coordinates

        def lo_hi(x):
            a, b, c = x[Fo[:, 0]], x[Fo[:, 1]], x[Fo[:, 2]]
            return np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
        (u0, u1), (v0, v1), (self.t_lo, self.t_hi) = lo_hi(W[:, 0]), lo_hi(W[:, 1]), lo_hi(W[:, 2])
        self.Pmin, self.Pmax = np.stack([u0, v0], 1), np.stack([u1, v1], 1)
        # cells no smaller than a typical occluder, so coarse occluders span few cells
        ext = np.maximum(u1 - u0, v1 - v0)
        self.cell = max(float(np.median(ext)), cell or 0.0, 1e-4)
        olo = np.floor(self.Pmin / self.cell).astype(np.int64)
        ohi = np.floor(self.Pmax / self.cell).astype(np.int64)
        self.base, self.top = olo.min(0), ohi.max(0)
        self.w = int(self.top[1] - self.base[1] + 1)
        okey, oown = _cells(olo - self.base, ohi - self.base, self.w)
        if part is not None:  # one key range per part: a query looks up the other parts' cells only
            self.span = int(okey.max()) + 1
            self.parts = np.flatnonzero(np.bincount(self.occ_part))
            okey = okey + self.occ_part[oown].astype(np.int64) * self.span
        # within a cell, occluders sorted by their top along ``axis`` (the fraction
        # after the key), so a query skips those wholly below its ray
        self.t0, self.t1 = float(self.t_hi.min()), float(self.t_hi.max())
        fkey = okey + self._frac(self.t_hi[oown])
        order = np.argsort(fkey)  # (pair order does not matter)
        self.skey, self.sown = fkey[order], oown[order]

    def _frac(self, t: np.ndarray) -> np.ndarray:
        """Axis coordinates mapped monotonically into [0, 0.999]."""
        return np.clip((t - self.t0) / (self.t1 - self.t0 + 1e-12), 0.0, 1.0) * 0.999

    def query(self, query: np.ndarray, offset: float = 1e-5, geo=None) -> np.ndarray:
        """(k,) bool for the faces ``query``: covered. The ray starts ``offset``
        m above the surface so coincident layers do not count as cover at
        distance zero. geo: :func:`damage_ops.product.face_geometry` of (V, F)
        if the caller has it (saves recomputing normals and centroids)."""
        query = np.asarray(query, np.int64)
        out = np.zeros(len(query), bool)
        if len(query) == 0 or self.n == 0:
            return out
        o, nq = self._rays(query, offset, geo)
        for qq, oo in self._pairs(np.stack([o, o + self.max_dist * nq], 1),
                                  None if self.part is None else self.part[query]):
            t = _mt(self.V[self.F[self.occ[oo]]], o[qq], nq[qq])
            out[qq[(t > 0) & (t < self.max_dist)]] = True
        return out

    def nearest(self, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """(k,) distance along ``direction`` (unit) from each origin (k, 3) to
        the first occluder it meets within ``max_dist`` (inf: none). Rays
        along ``axis`` are the cheap case: each is a point in the hash."""
        origins = np.asarray(origins, np.float64)
        best = np.full(len(origins), np.inf)
        if len(origins) == 0 or self.n == 0:
            return best
        P = np.stack([origins, origins + self.max_dist * direction], 1)
        for qq, oo in self._pairs(P, None):
            t = _mt(self.V[self.F[self.occ[oo]]], origins[qq], direction[None])
            t = np.where((t > 0) & (t <= self.max_dist), t, np.inf)
            np.minimum.at(best, qq, t)
        return best

    def _pairs(self, P: np.ndarray, qpart: np.ndarray | None):
        """Yield (query, occluder) index pairs, in bounded chunks, whose boxes
        overlap: query i's box holds the points P[i] (k, m, 3); pairs within
        one part are left out when qpart (k,) is given."""
        axis = self.axis
        pa = P @ axis
        q_lo, q_hi = pa.min(1), pa.max(1)
        pu, pv = P @ self.e1, P @ self.e2
        Qmin = np.stack([pu.min(1), pv.min(1)], 1)
        Qmax = np.stack([pu.max(1), pv.max(1)], 1)
        # query boxes in cells, clipped to the occluders' cells (none outside)
        qlo = np.maximum(np.floor(Qmin / self.cell).astype(np.int64), self.base) - self.base
        qhi = np.minimum(np.floor(Qmax / self.cell).astype(np.int64), self.top) - self.base
        live = np.flatnonzero((qlo <= qhi).all(1))
        if len(live) == 0:
            return
        qkey, qown = _cells(qlo[live], qhi[live], self.w)
        qown = live[qown]
        if self.part is not None:
            if qpart is None:  # every part's keys
                qown = np.tile(qown, len(self.parts))
                qkey = np.concatenate([qkey + int(p) * self.span for p in self.parts])
            else:  # a part does not cover itself: look up the other parts' keys
                other = [(p, qpart[qown] != p) for p in self.parts]
                qown = np.concatenate([qown[m] for _, m in other])
                qkey = np.concatenate([qkey[m] + int(p) * self.span for p, m in other])
        # in each cell, from the first occluder whose top reaches the ray's bottom
        a = np.searchsorted(self.skey, qkey + np.maximum(self._frac(q_lo[qown]) - 1e-9, 0.0), "left")
        b = np.searchsorted(self.skey, qkey + 0.9995, "right")
        n_pairs = b - a
        if not n_pairs.any():
            return
        qa = np.repeat(qown, n_pairs)
        oa_ = self.sown[index_ranges(a, n_pairs)]
        for i in range(0, len(qa), 1_000_000):  # bounded memory
            qq, oo = qa[i:i + 1_000_000], oa_[i:i + 1_000_000]
            # the boxes themselves must overlap, along ``axis`` and across it (a shared
            # cell is not enough): cheap tests that leave few pairs for Moller-Trumbore
            span = ((self.t_hi[oo] >= q_lo[qq]) & (self.t_lo[oo] <= q_hi[qq])
                    & (self.Pmax[oo, 0] >= Qmin[qq, 0]) & (self.Pmin[oo, 0] <= Qmax[qq, 0])
                    & (self.Pmax[oo, 1] >= Qmin[qq, 1]) & (self.Pmin[oo, 1] <= Qmax[qq, 1]))
            yield qq[span], oo[span]

    def _rays(self, faces: np.ndarray, offset: float, geo) -> tuple[np.ndarray, np.ndarray]:
        """Origins (k, 3) and directions (k, 3) of the faces' cover rays."""
        V, F = self.V, self.F
        if geo is None:
            nq, _ = normals_areas(V, F[faces])
            return (V[F[faces, 0]] + V[F[faces, 1]] + V[F[faces, 2]]) / 3.0 + offset * nq, nq
        return geo[2][faces] + offset * geo[0][faces], geo[0][faces]


def pick_exposed_face(mesh: trimesh.Trimesh, rng: np.random.Generator, mask: np.ndarray | None = None,
                      tries: int = 16) -> int:
    """An area-weighted random face (among ``mask``) whose outward normal ray
    leaves the item without meeting another face: a point a camera can see,
    not a layer hidden under a flap, tape or label. Capped at ``tries`` draws;
    after that the last draw is returned (every face of a closed convex-ish
    item is exposed, so the cap is rarely reached)."""
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    n, a, _, _ = face_geometry(mesh)
    grid = mesh._cache[GRID_KEY]  # a prepared mesh's; a few rays do not pay for building one
    w = a * (np.asarray(mask, bool) if mask is not None else 1.0)
    if w.sum() <= 0:
        w = a
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    f = 0
    for _ in range(tries):
        f = int(min(np.searchsorted(cdf, rng.random()), len(F) - 1))
        o = V[F[f]].mean(0) + 1e-5 * n[f]
        near = F if grid is None else F[grid.ray(o, n[f])]  # the grid: the faces near the ray
        if len(ray_hits(V, near, o, n[f])) == 0:
            return f
    return f


def tangent_frame(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to unit ``n``."""
    a = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(n, a)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1)


class Noise2:
    """Fractal Perlin noise (``noise.pnoise2``) sampled once on a grid and
    interpolated bilinearly, so evaluating it at thousands of points is one
    vectorised call. The permutation base and offset are drawn from ``rng``.

    half_extent: the grid covers [-half_extent, half_extent]^2 (same units as the
    query points; points outside are clamped); scale: feature size (same units).
    Values lie roughly in [-0.7, 0.7]."""

    def __init__(self, rng: np.random.Generator, half_extent: float, scale: float, octaves: int = 3,
                 resolution: int = 48):
        self.h = float(half_extent)
        self.res = int(resolution)
        base = int(rng.integers(0, 256))
        ox, oy = rng.uniform(0.0, 64.0, size=2)
        g = np.linspace(-self.h, self.h, self.res) / scale
        gx, gy = (g + ox).tolist(), (g + oy).tolist()  # Python floats, positional arguments: the
        p2 = noise.pnoise2                             # per-call overhead is most of the cost
        # (octaves, persistence, lacunarity, repeatx, repeaty, base): pnoise2's defaults but octaves and base
        self.grid = np.array([[p2(x, y, octaves, 0.5, 2.0, 1024, 1024, base) for y in gy] for x in gx], np.float64)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        k = (self.res - 1) / (2 * self.h)
        iu = np.clip((np.asarray(u) + self.h) * k, 0, self.res - 1)
        iv = np.clip((np.asarray(v) + self.h) * k, 0, self.res - 1)
        return map_coordinates(self.grid, [iu.ravel(), iv.ravel()], order=1, mode="nearest").reshape(np.shape(u))


def area_threshold(s: np.ndarray, area: np.ndarray, target: float, with_next: bool = False):
    """Threshold ``r`` such that the faces with ``s < r`` have total area closest
    to ``target`` (faces taken in order of increasing ``s``). with_next: return
    (r, s of the first face above r, inf if none): appending faces whose s is
    at least that does not change r."""
    if len(s) == 0:
        return (0.0, np.inf) if with_next else 0.0
    order = np.argsort(s, kind="stable")
    cum = np.cumsum(area[order])
    k = int(np.argmin(np.abs(cum - target)))
    hi = s[order[k + 1]] if k + 1 < len(order) else s[order[k]] + 1.0
    r = float(0.5 * (s[order[k]] + hi))
    if with_next:
        return r, float(s[order[k + 1]]) if k + 1 < len(order) else np.inf
    return r
