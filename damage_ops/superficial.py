"""Superficial damage: scuffs, scratches, stains and torn labels (Kaputt
category ``superficial``).

Mostly texture-level: faces in an irregular region get a new ``tint`` (RGB
multiplier) and/or ``finish`` (see :data:`damage_ops.product.FINISHES`):

- ``scuff``: an elongated rub mark, noisy outline; finish ``scuffed`` and a
  lighter tint (x1.06..1.3, noise-varied).
- ``scratch``: a thin line (``width_mm``) along a wavy path walked over the
  surface, ``length_mm`` long; either light (coating scraped off: finish
  ``scuffed``, tint x1.35) or dark (dirt: tint x0.55), plus a groove: the
  vertices inside the line sink by ``relief_mm`` (<= 0.3 mm, <= 0.25 x the
  item's thickness at the centre, and shallower where steep groove walls
  would add more than 4 % to the line's area) along their normal.
- ``stain``: an irregular Perlin-noise blob, darker (coffee, grease or water
  mark colour), with a darker rim (coffee-ring effect).
- ``torn_label``: on a product with a ``label`` part, a noisy patch of the
  label is torn off (its faces removed, both paper walls), revealing the body
  underneath. This OPENS the label part (it is a closed paper sleeve; the hole
  leaves a boundary), every other part stays closed - hence the op registers
  ``opens_surface=True``; the other styles never open anything. On a product
  without a label the top liner of the board is torn instead: the patch gets
  finish ``interior`` (raw board showing), geometry untouched.

The region is shaped on the surface around the centre (a random exposed face,
or ``center``) by a scalar field ``s`` (a noise-modulated, anisotropic
distance for blobs; the distance to the walked path for scratches); faces are
taken in increasing ``s`` until their area equals the requested area, so the
measured area matches the request up to one small face. Only faces that face
the viewer of the centre (normal within ~73 deg of the centre normal) and are
not covered by another opaque part within 8 mm (a flap over a carton top, a
tape over a flap, a label over a bottle) are eligible: paint never lands on a
hidden layer. The region is refined first (red-green, labels carried) so its
outline is resolved: edges <= clip(sqrt(area) / 8, 0.7, 3.5) mm for blobs,
clip(0.5 x width, 0.3, 2.5) mm for scratches.

Labels: "changed" = faces whose tint, finish or geometry changed (for
``torn_label``: the body faces the tear revealed - the removed label faces no
longer exist); exactly those get the new ``damage_id``. Size (measured):
``area_cm2`` = area of the labelled faces (severity: ``major`` if >= 12 cm^2);
scratches also report ``length_mm`` (walked path length) and ``width_mm``
(area / length), ``relief_mm`` (deepest vertex sink).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from . import _surface as S
from .base import ParamError, add_damage, check_range, register
from .product import COVER_KEY, FINISH_IDS, Product, ensure_optional, face_cover, take_faces
from .remesh import grow_on
from .spatial import face_grid

OP = "superficial"
STYLES = ("scuff", "scratch", "stain", "torn_label")
#: see-through materials: they never hide what lies under them
TRANSPARENT_MATERIALS = frozenset({"clear_plastic", "shrink_film"})
#: a face is eligible if its normal . centre normal exceeds this
FACING_MIN = 0.3
#: cover searched within this distance above a face (m)
COVER_M = 0.008
#: half-width of the refined band around the estimated stain radius, as a
#: fraction of it (plus one edge length h); a threshold that lands outside
#: moves the band
BAND_FRAC = 0.03
DEFAULT_AREA_CM2 = 6.0
DEFAULT_LENGTH_MM = 60.0
STAIN_COLOURS = ((0.62, 0.48, 0.34), (0.70, 0.68, 0.58), (0.80, 0.80, 0.82))  # coffee, grease, water mark


@dataclass(frozen=True)
class SuperficialParams:
    """style: ``scuff`` | ``scratch`` | ``stain`` | ``torn_label``
    area_cm2: damaged area, cm^2, in [0.5, 200]; None = 6 cm^2 (blobs) or
        length x width (scratch)
    length_mm: scratch length, mm, in [5, 400] (scratch only; give it or
        area_cm2, not both); None = 60 mm
    width_mm: scratch line width, mm, in [0.3, 3]
    relief_mm: scratch groove depth, mm, in [0, 0.3]
    center: face index whose centroid is the damage centre, or None = random
        exposed face (a label face for torn_label)
    """

    style: str = "scuff"
    area_cm2: float | None = None
    length_mm: float | None = None
    width_mm: float = 1.0
    relief_mm: float = 0.15
    center: int | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ParamError(f"{OP}.style: must be one of {list(STYLES)}, got {self.style!r}")
        if self.area_cm2 is not None:
            check_range(OP, "area_cm2", self.area_cm2, 0.5, 200.0)
        check_range(OP, "width_mm", self.width_mm, 0.3, 3.0)
        check_range(OP, "relief_mm", self.relief_mm, 0.0, 0.3)
        if self.length_mm is not None:
            if self.style != "scratch":
                raise ParamError(f"{OP}.length_mm: only for style 'scratch', got {self.length_mm!r} "
                                 f"with style {self.style!r}")
            if self.area_cm2 is not None:
                raise ParamError(f"{OP}.length_mm: give length_mm or area_cm2 for a scratch, not both "
                                 f"(got {self.length_mm!r} and {self.area_cm2!r})")
            check_range(OP, "length_mm", self.length_mm, 5.0, 400.0)
        if self.style == "scratch" and self.area_cm2 is not None:
            length = self.area_cm2 * 100.0 / self.width_mm
            if not 5.0 <= length <= 400.0:
                raise ParamError(f"{OP}.area_cm2: a scratch of width {self.width_mm} mm and area "
                                 f"{self.area_cm2} cm^2 would be {length:.0f} mm long, outside [5, 400]")
        if self.center is not None and (isinstance(self.center, bool) or not isinstance(self.center, (int, np.integer))
                                        or self.center < 0):
            raise ParamError(f"{OP}.center: must be None or a face index >= 0, got {self.center!r}")

    @property
    def scratch_length_mm(self) -> float:
        if self.length_mm is not None:
            return float(self.length_mm)
        if self.area_cm2 is not None:
            return float(self.area_cm2) * 100.0 / self.width_mm
        return DEFAULT_LENGTH_MM

    @property
    def target_area_mm2(self) -> float:
        if self.style == "scratch":
            return self.scratch_length_mm * self.width_mm
        return float(self.area_cm2 if self.area_cm2 is not None else DEFAULT_AREA_CM2) * 100.0


# -- fields ----------------------------------------------------------------------
def _blob_field(rng, c, n, radius, aspect, amp):
    """Noise-modulated, area-preserving anisotropic distance from c (m)."""
    e1, e2 = S.tangent_frame(n)
    th = rng.uniform(0, np.pi)
    a1, a2 = np.cos(th) * e1 + np.sin(th) * e2, -np.sin(th) * e1 + np.cos(th) * e2
    k = np.sqrt(aspect)
    nz = S.Noise2(rng, 4.0 * radius * k, 0.6 * radius, octaves=3)

    def s(X: np.ndarray, bound: float | None = None) -> np.ndarray:  # exact everywhere: bound unused
        q = X - c
        u, v, z = q @ a1, q @ a2, q @ n
        d = np.sqrt((u / k) ** 2 + (v * k) ** 2 + z ** 2)
        return d * (1.0 + amp * nz(u, v))
    s.noise_min = float(nz.grid.min())
    return s


def _walk_path(rng, mesh, c, n, length, cand):
    """A wavy path of ``length`` m centred on c, projected on the surface
    (rays along -n onto candidate faces). Tries up to 8 headings and keeps
    the one that stays on the surface longest. Returns (k, 3) points."""
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    e1, e2 = S.tangent_frame(n)
    k = int(np.clip(length / 1.5e-3, 16, 160))
    tau = np.linspace(-0.5, 0.5, k) * length
    nC, _ = S.normals_areas(V, F[cand])
    # the path lands on the first facing face below each point: rays along -n,
    # hashed in the plane normal to n (each ray is a point there)
    land = S.Occluders(V, F, cand[nC @ n > FACING_MIN], n, 1.0)
    best, best_len = None, -1.0
    for _ in range(8):
        th0 = rng.uniform(0, 2 * np.pi)
        curv = np.cumsum(rng.normal(0.0, 1.0, k)) * (0.8 / np.sqrt(k))  # gentle random wander (rad)
        curv -= curv[k // 2]
        th = th0 + curv * 0.6
        step = np.diff(tau, prepend=tau[0])
        du = np.cumsum(step * np.cos(th))
        dv = np.cumsum(step * np.sin(th))
        du -= du[k // 2]
        dv -= dv[k // 2]
        P = c + du[:, None] * e1 + dv[:, None] * e2 + n * 0.02
        tt = land.nearest(P, -n)
        ok = np.isfinite(tt)
        # keep the contiguous on-surface stretch through the centre
        mid = k // 2
        if not ok[mid]:
            continue
        lo = mid
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        hi = mid
        while hi < k - 1 and ok[hi + 1]:
            hi += 1
        pts = P[lo:hi + 1] - n * tt[lo:hi + 1, None]
        plen = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        if plen > best_len:
            best, best_len = pts, plen
        if hi - lo == k - 1:
            break
    if best is None:
        best = c[None]
    return best


def _segment_distance(P: np.ndarray, k: int = 4):
    """Exact distance to the polyline P (n, 3): returns fn(X (m, 3)) -> (m,).

    Each point is measured against the ``k`` segments with the nearest
    midpoints (a KD-tree built once); the result is exact when the k-th
    midpoint is farther than the best distance plus half the longest segment
    (no other segment can come closer), which holds for nearly every point of
    a gentle path; the few others are measured against every segment."""
    P = np.asarray(P, np.float64)
    if len(P) == 1:
        return lambda X: np.linalg.norm(np.asarray(X, np.float64) - P[0], axis=1)
    A, B = P[:-1], P[1:]
    AB = B - A
    L2 = np.maximum((AB ** 2).sum(1), 1e-18)
    half = 0.5 * float(np.sqrt(L2.max()))
    k = min(k, len(A))
    tree = cKDTree(0.5 * (A + B))

    def dist(x, seg):  # x (m, 3), seg (m, j) segment indices -> (m,) min distance
        a, ab, l2 = A[seg], AB[seg], L2[seg]
        t = np.clip(np.einsum("mjd,mjd->mj", x[:, None] - a, ab) / l2, 0.0, 1.0)
        d = x[:, None] - (a + t[..., None] * ab)
        return np.sqrt(np.einsum("mjd,mjd->mj", d, d).min(1))

    def fn(X, bound: float | None = None):
        """bound: distances above it may come back as inf (cheaper far away)."""
        X = np.asarray(X, np.float64)
        out = np.full(len(X), np.inf)
        if bound is None:
            dm, seg = tree.query(X, k=k)
        else:  # a segment whose midpoint is beyond bound + half is beyond bound
            dm, seg = tree.query(X, k=k, distance_upper_bound=bound + half)
        dm, seg = np.asarray(dm).reshape(len(X), k), np.asarray(seg).reshape(len(X), k)
        have = np.flatnonzero(np.isfinite(dm[:, 0]))
        dm, seg = dm[have], seg[have]
        seg = np.where(np.isfinite(dm), seg, seg[:, :1])  # missing neighbours: repeat the nearest
        d = dist(X[have], seg)
        if k < len(A):  # exact unless a segment not among the k could be nearer
            unsure = np.flatnonzero(dm[:, -1] - half < d)
            for i in range(0, len(unsure), 2048):
                j = unsure[i:i + 2048]
                d[j] = dist(X[have[j]], np.broadcast_to(np.arange(len(A)), (len(j), len(A))))
        out[have] = d
        if bound is not None:
            out[out > bound] = np.inf
        return out
    return fn


def _face_s(mesh, s_fn, idx, bound=None):
    """(min, max, centroid) of the field over each face ``idx`` (vertices and
    centroid); values above ``bound`` may come back as inf."""
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)[idx]
    used = np.zeros(len(V), bool)  # each vertex once (a bitmap, not a sort)
    used[F.ravel()] = True
    u = np.flatnonzero(used)
    at = np.cumsum(used) - 1
    sv = s_fn(V[u], bound)[at[F]]
    sc = s_fn((V[F[:, 0]] + V[F[:, 1]] + V[F[:, 2]]) / 3.0, bound)
    a, b, d = sv[:, 0], sv[:, 1], sv[:, 2]
    return (np.minimum(np.minimum(np.minimum(a, b), d), sc), np.maximum(np.maximum(np.maximum(a, b), d), sc), sc)


def _ball(mesh, c, radius):
    """(n,) bool: faces that may reach within ``radius`` m of ``c``."""
    _, _, cen, r2 = S.face_geometry(mesh)
    d = cen - c
    return np.sqrt(S._dot(d, d)) - np.sqrt(r2) < radius


def _drop_faces(mesh: trimesh.Trimesh, keep: np.ndarray) -> trimesh.Trimesh:
    idx = np.flatnonzero(keep)
    F = np.asarray(mesh.faces)[idx]
    used, inv = np.unique(F, return_inverse=True)
    return take_faces(mesh, idx, np.asarray(mesh.vertices)[used], inv.reshape(-1, 3))


@register(OP, SuperficialParams, "superficial", opens_surface=True)
def superficial(product: Product, params: SuperficialParams, rng: np.random.Generator):
    """Scuff / scratch / stain / torn label on ``product`` (not mutated); returns
    (new product, DamageRecord). See the module docstring."""
    p = product.copy()
    mesh = ensure_optional(p.mesh)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    nf0 = len(F)
    if params.center is not None and params.center >= nf0:
        raise ParamError(f"{OP}.center: face index must be < {nf0} for product {p.sku!r}, got {params.center!r}")
    label_parts = [i for i, q in enumerate(p.parts) if q.name == "label"]
    opaque_parts = [i for i, q in enumerate(p.parts) if q.material not in TRANSPARENT_MATERIALS]
    peel = params.style == "torn_label" and bool(label_parts)
    pid = p.part_id
    if params.center is not None:
        face = int(params.center)
    else:
        mask = np.isin(pid, label_parts) if peel else np.isin(pid, opaque_parts)
        face = S.pick_exposed_face(product.mesh, rng, mask if mask.any() else None)  # same faces, cached geometry
    fn, _ = S.normals_areas(V, F[face:face + 1])
    n = fn[0]
    c = V[F[face]].mean(0)
    A = params.target_area_mm2 * 1e-6  # m^2

    # -- the field ------------------------------------------------------------
    if params.style == "scratch":
        w = params.width_mm * 1e-3
        Lm = params.scratch_length_mm * 1e-3
        _, _, cen0, r20 = S.face_geometry(mesh)
        near = face_grid(mesh).ball(c, 0.5 * Lm + 0.01 + 2.0 * float(np.sqrt(r20.max())))  # a face's edge < 2 radii
        near = np.sort(near[np.linalg.norm(cen0[near] - c, axis=1) < 0.5 * Lm + S.max_edge(V, F[near]) + 0.01])
        path = _walk_path(rng, mesh, c, n, Lm, near)

        s_fn = _segment_distance(path)
        span = float(np.sqrt(((path - c) ** 2).sum(1)).max())

        def reach(smax):  # s(x) < smax  =>  |x - c| < reach(smax)
            return smax + span
        R0, h = 0.5 * w, float(np.clip(0.5 * params.width_mm, 0.3, 2.5)) * 1e-3
    else:
        aspect = {"scuff": rng.uniform(1.5, 3.0), "stain": rng.uniform(1.0, 1.6)}.get(params.style, rng.uniform(1.0, 2.0))
        amp = {"scuff": 0.25, "stain": 0.45}.get(params.style, 0.35)
        R0 = np.sqrt(A / np.pi)
        s_fn = _blob_field(rng, c, n, R0, aspect, amp)

        # |q| / k <= d and s = d (1 + amp noise) with noise >= the noise grid's least
        # value (bilinear interpolation of the grid never goes below it)
        gain = max(np.sqrt(aspect) / (1.0 + amp * min(s_fn.noise_min, 0.0)), 1.0)

        def reach(smax, gain=gain):
            return gain * smax
        h = float(np.clip(np.sqrt(params.target_area_mm2) / 8.0, 0.7, 3.5)) * 1e-3
        if params.style == "torn_label":
            h = float(np.clip(np.sqrt(params.target_area_mm2) / 12.0, 0.5, 2.5)) * 1e-3

    # -- estimate the threshold on the coarse mesh, then refine around it -------
    pid = mesh.face_attributes["part_id"]
    opaque = np.isin(pid, opaque_parts)
    lab = np.isin(pid, label_parts) if peel else np.zeros(len(F), bool)

    # per mesh: occluder indexes per (occluder mask, scope), and every face's cover
    # once measured against all opaque faces around it: -1 unknown, 0 no, 1 yes
    memo = {"mesh": None}

    def covered(query: np.ndarray, occ_mask: np.ndarray, scope: np.ndarray | None = None,
                ball: float | None = None) -> np.ndarray:
        """Which ``query`` faces of the current ``mesh`` lie under an ``occ_mask``
        face of another part. Cover by a different part only: a part never
        hides itself locally. scope: every face later calls with the same mask
        will ask about (their occluders are indexed once); default ``query``.
        ball: occ_mask holds every opaque face that reaches within ``ball`` m
        of c, so the answer for a face whose cover ray lies in that ball is the
        mesh's own: it is kept and reused (refinement carries it to the faces it
        does not split)."""
        if memo["mesh"] is not mesh:
            memo.clear()
            memo["mesh"] = mesh
            if mesh._cache[COVER_KEY] is None:  # shared with the input product and its copies
                mesh._cache[COVER_KEY] = face_cover(product.mesh)
            memo["known"] = face_cover(mesh)[0]
        Vm, Fm = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        pidm, geo = mesh.face_attributes["part_id"], S.face_geometry(mesh)
        known = None if peel else memo["known"]
        res = np.zeros(len(query), bool)
        todo = np.arange(len(query))
        if known is not None:
            k = known[query]
            res[k >= 0] = k[k >= 0] == 1
            todo = np.flatnonzero(k < 0)
        ask = query[todo]
        skey = (ask if scope is None else scope).tobytes()
        if scope is None:
            scope = ask
        elif known is not None:
            scope = scope[known[scope] < 0]  # only faces not yet known will be asked about
        if not peel:  # a see-through film lies on top of what it wraps: nothing covers it
            sel = np.isin(pidm[ask], opaque_parts)
            todo, ask = todo[sel], ask[sel]
            scope = scope[np.isin(pidm[scope], opaque_parts)]
        key = (np.packbits(occ_mask).tobytes(), skey)
        index = memo.get(key)
        if index is None and len(ask):
            cell = 2.0 * float(np.median(np.sqrt(geo[3][scope]))) if len(scope) else None
            index = memo[key] = S.Occluders(Vm, Fm, np.flatnonzero(occ_mask), n, COVER_M, scope=scope, geo=geo,
                                            part=pidm, cell=cell)
        if len(ask):
            res[todo] = index.query(ask, geo=geo)
        if known is not None and ball is not None and len(ask):
            d = geo[2][ask] - c
            inside = np.sqrt(S._dot(d, d)) + COVER_M + 1e-4 <= ball
            known[ask[inside]] = res[todo[inside]]
        return res

    def carry_cover(new_mesh: trimesh.Trimesh, new_from_old: np.ndarray) -> None:
        """Keep the known cover of the faces refinement left whole (a face that
        is its parent's only child is the parent: same triangle, and the
        occluders' children tile their parents)."""
        if memo["mesh"] is None or peel:
            return
        nfo = np.asarray(new_from_old)
        only = np.bincount(nfo, minlength=len(memo["known"]))[nfo] == 1
        known = np.where(only, memo["known"][nfo], -1).astype(np.int8)
        memo.clear()
        memo["mesh"], memo["known"] = new_mesh, known

    if params.style == "scratch":
        band_lo, band_hi = 0.0, 1.5 * R0 + 1.5 * h  # the width is calibrated near 2 R0
        zone = np.flatnonzero(_ball(mesh, c, reach(band_hi + COVER_M)))
        nrm = S.face_geometry(mesh)[0][zone]
        cand = zone[(nrm @ n > FACING_MIN) & opaque[zone]]
        zmask = np.zeros(len(F), bool)
        zmask[zone] = True
        cand = cand[~covered(cand, zmask & opaque)]
    else:
        # 7 sample points per face (centroid + 6 inner points) for the area of {s < r}
        bary = np.array([[1, 1, 1], [4, 1, 1], [1, 4, 1], [1, 1, 4], [1, 2.5, 2.5], [2.5, 1, 2.5], [2.5, 2.5, 1]])
        bary = bary / bary.sum(1, keepdims=True)
        # faces with s < 2 R0 nearly always hold the threshold; the estimate is exact
        # (the same as over every face) when the sample after it is still below
        # that bound, since every face left out has s above it (smin - el is a
        # lower bound of s on a face, as in the candidate test); else look to 3 R0
        for reach_s in (2.0 * R0, 3.0 * R0):
            zone = np.flatnonzero(_ball(mesh, c, reach(reach_s + COVER_M)))
            geo0 = S.face_geometry(mesh)
            cand = zone[(geo0[0][zone] @ n > FACING_MIN) & ~lab[zone] & opaque[zone]]
            smin, _, _ = _face_s(mesh, s_fn, cand)  # (the field only where a face may be stained)
            cand = cand[smin - S.max_edge(V, F[cand]) < reach_s]
            # every face within COVER_M of a candidate's cover ray lies in the ball: all may cover
            zmask = np.zeros(len(F), bool)
            zmask[zone] = True
            occ_mask = zmask & (lab if peel else opaque)
            area = np.zeros(len(F))
            area[cand] = geo0[1][cand]
            if peel:
                cand = cand[covered(cand, occ_mask)]
            else:
                cand = cand[~covered(cand, occ_mask, ball=reach(reach_s + COVER_M))]
            if not len(cand):
                r_est = R0
                continue
            X = np.einsum("kj,fjd->fkd", bary, V[F[cand]]).reshape(-1, 3)
            r_est, s_next = S.area_threshold(s_fn(X), np.repeat(area[cand] / 7.0, 7), A, with_next=True)
            if s_next < reach_s:
                break
        # the estimate on the coarse mesh is within a few % of the final radius
        frac = 0.1 if peel else BAND_FRAC  # (a torn label is not re-banded below)
        band_lo, band_hi = (1.0 - frac) * r_est - h, (1.0 + frac) * r_est + h
        R0 = r_est
    stainable = np.zeros(len(F), bool)
    stainable[cand] = True

    # a narrow band around the estimated threshold is refined; should the
    # threshold come out beyond it (a coarse mesh misjudged it), the band moves
    # there and is refined too, so the stain's edge always lies on fine faces
    for attempt in range(2):
        def select(m, idx):
            el = S.max_edge(np.asarray(m.vertices), np.asarray(m.faces)[idx])
            # beyond band_hi + el / 2 a face is out whatever its exact value (inf is fine)
            smin, smax, _ = _face_s(m, s_fn, idx, band_hi + 0.5 * float(el.max(initial=0.0)))
            return (smin - 0.5 * el < band_hi) & (smax + 0.5 * el > band_lo)

        region = _ball(mesh, c, reach(band_hi))
        if not peel:
            # only what can be stained: faces facing the viewer and not under another
            # part on the coarse mesh, and a ring around them for cover that a finer
            # mesh resolves (hidden layers and walls beside the stain stay coarse)
            region &= grow_on(mesh, stainable, 1)
        refined, nfo = S.refine_where(mesh, select, h, max_levels=7, candidates=region)
        carry_cover(refined, nfo)
        mesh = refined
        V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        pid = mesh.face_attributes["part_id"]
        opaque = np.isin(pid, opaque_parts)
        lab = np.isin(pid, label_parts) if peel else np.zeros(len(F), bool)

        # -- eligible faces: facing the viewer of the centre, not under another opaque part
        cutoff = max(1.6 * R0, 3.0 * R0 if params.style == "scratch" else 0.0) + 2 * h
        zone = np.flatnonzero(_ball(mesh, c, reach(cutoff + COVER_M)))
        nz_, az_ = S.face_geometry(mesh)[0][zone], S.face_geometry(mesh)[1][zone]
        nrm = np.zeros((len(F), 3))
        nrm[zone] = nz_
        area = np.zeros(len(F))
        area[zone] = az_
        sc = np.full(len(F), np.inf)
        need = zone if peel else zone[nz_ @ n > FACING_MIN]  # (unfacing faces are never stained)
        sc[need] = s_fn((V[F[need, 0]] + V[F[need, 1]] + V[F[need, 2]]) / 3.0, cutoff + COVER_M)  # only s < that is used
        near = sc < cutoff + COVER_M
        facing = near & (nrm @ n > FACING_MIN) & (sc < cutoff)

        if peel:
            body_q = np.flatnonzero(facing & ~lab & opaque)
            under = body_q[covered(body_q, near & lab)]
            # calibrate the tear radius on the revealed area (2 passes)
            r = S.area_threshold(sc[under], area[under], A)
            for _ in range(2):
                gone = lab & (sc < r)
                still = covered(under, near & lab & ~gone)
                rev = under[~still]
                a_rev = float(area[rev].sum())
                if a_rev <= 0 or abs(a_rev - A) < 0.03 * A:
                    break
                r *= np.sqrt(A / a_rev)
            gone = lab & (sc < r)
            still = covered(under, near & lab & ~gone)
            rev = under[~still]
            keep = ~gone
            new_index = np.cumsum(keep) - 1
            mesh = _drop_faces(mesh, keep)
            faces = new_index[rev]
            p.mesh = mesh
            size = {"area_cm2": float(area[rev].sum()) * 1e4, "removed_faces": float(gone.sum())}
        else:
            q = np.flatnonzero(facing)
            # the threshold only looks at eligible faces in order of s up to a little
            # past the target area: test cover in that order, in chunks, and stop
            # once 1.25 A is uncovered (the faces after it cannot change r)
            q = q[np.argsort(sc[q], kind="stable")]
            cum = np.cumsum(area[q])
            parts, got, start = [], 0.0, 0
            occ_mask = np.zeros(len(F), bool)  # every opaque face within COVER_M of a query's cover ray
            occ_mask[zone] = True
            occ_mask &= opaque
            while start < len(q) and got < 1.25 * A:
                # enough area that, at the uncovered share seen so far, 1.3 A comes out uncovered
                share = got / float(cum[start - 1]) if start else 1.0
                want = (1.3 * A - got) / max(share, 0.1)
                end = max(start + 16, int(np.searchsorted(cum, cum[start] - area[q[start]] + want)) + 1)
                chunk = q[start:end]
                ok = chunk[~covered(chunk, occ_mask, scope=q)]  # (no later call reads what this one learns)
                parts.append(ok)
                got += float(area[ok].sum())
                start = end
            elig = np.sort(np.concatenate(parts)) if parts else q[:0]
            r = S.area_threshold(sc[elig], area[elig], A)
        if peel or params.style == "scratch" or attempt or band_lo <= r <= band_hi:
            break
        band_lo, band_hi = (1.0 - BAND_FRAC) * r - h, (1.0 + BAND_FRAC) * r + h
        stainable = facing
    if not peel:
        faces = elig[sc[elig] < r]
        tint = mesh.face_attributes["tint"]
        finish = mesh.face_attributes["finish"]
        e1, e2 = S.tangent_frame(n)
        cen = V[F[faces]].mean(1) - c
        # a gentle tint variation (2 octaves): 32 samples a side resolve it
        nz = S.Noise2(rng, max(4.0 * R0, 0.5 * params.scratch_length_mm * 1e-3), max(R0, 2e-3), octaves=2, resolution=32)
        var = nz(cen @ e1, cen @ e2)  # ~[-0.7, 0.7]
        size = {}
        if params.style == "scuff":
            fac = np.clip(1.18 + 0.15 * var, 1.06, 1.3)[:, None] * np.ones(3)
            finish[faces] = FINISH_IDS["scuffed"]
        elif params.style == "stain":
            col = np.asarray(STAIN_COLOURS[int(rng.integers(len(STAIN_COLOURS)))])
            ring = np.clip(sc[faces] / max(r, 1e-9), 0, 1) ** 6
            k = np.clip(0.75 + 0.25 * var + 0.35 * ring, 0.5, 1.2)
            fac = np.minimum(1.0 - k[:, None] * (1.0 - col[None]), 0.95)
        elif params.style == "torn_label":  # no label part: the board's top liner tears off
            fac = np.clip(0.92 + 0.05 * var, 0.85, 0.97)[:, None] * np.ones(3)
            finish[faces] = FINISH_IDS["interior"]
        else:  # scratch
            light = rng.random() < 0.5
            fac = (np.clip(1.35 + 0.1 * var, 1.2, 1.5) if light else np.clip(0.55 + 0.1 * var, 0.4, 0.7))[:, None] * np.ones(3)
            if light:
                finish[faces] = FINISH_IDS["scuffed"]
        tint[faces] = (tint[faces] * fac).astype(np.float32)
        if params.style == "scratch":
            a0 = float(area[faces].sum())
            grooved, relief = _groove(mesh, faces, params.relief_mm * 1e-3, c, n)
            a = float(S.normals_areas(np.asarray(grooved.vertices), F[faces])[1].sum())
            if a > 1.04 * a0 and relief > 0:  # steep groove walls on a narrow line: shallower
                grooved, relief = _groove(mesh, faces, relief * np.sqrt(0.04 * a0 / (a - a0)), c, n)
                a = float(S.normals_areas(np.asarray(grooved.vertices), F[faces])[1].sum())
            mesh = grooved
            area = area.copy()
            area[faces] = S.normals_areas(np.asarray(mesh.vertices), F[faces])[1]
            plen = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0
            size = {"length_mm": plen * 1e3, "width_mm": a / max(plen, 1e-9) * 1e3, "relief_mm": relief * 1e3}
        p.mesh = mesh
        size = {"area_cm2": float(area[faces].sum()) * 1e4, **size}
    region = {"center_m": c.tolist(), "radius_m": float(np.sqrt(max(size["area_cm2"], 1e-9) * 1e-4 / np.pi)),
              "normal": n.tolist(), "style": params.style, "face": face, "opens_surface": bool(peel)}
    return add_damage(p, faces, OP, size, region, asdict(params))


def _groove(mesh, faces, relief_m: float, c, n) -> tuple[trimesh.Trimesh, float]:
    """Sink the vertices inside the scratch (every incident face is in it) along
    their normal, so only scratch faces change shape. Returns (mesh, deepest
    sink m)."""
    if relief_m <= 0 or len(faces) == 0:
        return mesh, 0.0
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    inside = np.zeros(len(F), bool)
    inside[faces] = True
    touch_out = np.zeros(len(V), bool)
    touch_out[F[~inside].ravel()] = True
    verts = np.setdiff1d(np.unique(F[faces]), np.flatnonzero(touch_out))
    if len(verts) == 0:
        return mesh, 0.0
    # a groove never deeper than a quarter of the item's thickness at the centre
    hits = S.ray_hits(V, F, c - 1e-6 * n, -n)
    thick = float(hits[0]) if len(hits) else 1.0
    depth = min(relief_m, 0.25 * thick)
    fn, fa = S.normals_areas(V, F[faces])
    vn = np.zeros((len(V), 3))
    for k in range(3):
        np.add.at(vn, F[faces, k], fn * fa[:, None])
    vn = vn[verts]
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-18)
    newV = V.copy()
    newV[verts] -= depth * vn
    return take_faces(mesh, np.arange(len(F)), newV, F.copy()), depth
