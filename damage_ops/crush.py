"""Crush: dents, crushed carton corners and edges, crumples and bulges
(Kaputt category ``deformation``).

Displacement field. A compactly supported smooth bump pushed along one fixed
direction ``a`` (the inward surface normal at the dent centre; the corner or
edge diagonal for ``corner`` / ``edge``; outward for ``bulge``):

    u(x) = sign * depth * phi(rho / R) * g(t) * m(x) * a
    phi(s) = (1 - s^2)^3 for s < 1, else 0   (C2, flat top, zero at the rim)
    g(t)   = 1 for t <= 0, 1 - smoothstep(t / L) for 0 < t < L, 0 beyond

with ``rho`` the distance of x from the axis through the centre c along a,
``t = (x - c) . b`` the depth of x below the dented surface (b = inward
direction) and ``L = 0.85 T``, T the item's thickness behind the centre
along b (extent of its vertices: ``max((x - c) . b)``). ``m`` is 1, or for ``crumple`` a ridged Perlin
modulation in [0.45, 1] (1 at the centre) that leaves sharp creases.

Why this and not regularized Kelvinlets (de Goes & James 2017): a Kelvinlet is
the physically exact response of an infinite elastic medium, but it decays as
1/r and never reaches zero, so every vertex of the item moves a little, the
damaged region has no crisp boundary for the labels, and nothing bounds a
large brush from folding the surface. The field above is a *shear along a
fixed direction*: the coordinates across ``a`` never change and, along each
line parallel to ``a``, the shift varies with slope ``depth * |g'| <= 1.5 depth / L``.
While that slope is below 1 the map x -> x + u(x) is injective on all of space,
so no face can cross another - the dent cannot punch through the opposite
wall and a tape or label lying on the dented wall moves with it and never
pokes through - and the far wall (t >= L) does not move at all, so the item
still rests flat. Hence the clamp: ``depth <= 0.45 T`` (slope <= 0.8). Where the
wall under the centre is thinner than T (a blister card corner, a flap, a
mailer's edge) the whole local sheet moves together - it bends instead of
being squashed - and the injectivity still rules out any crossing. The
dent is also clamped to ``depth <= radius`` (deeper than wide is a puncture,
not a dent). ``phi`` being C2 with zero slope at the centre and the rim gives
the rounded, creaseless profile of a dent in board or sheet metal.

Meshing. The support is refined first (red-green, labels carried) to edges of
:func:`target_edge_m` (``radius / 6``, clipped to [1, 12] mm) so the dent is
smooth; the dent centre is then snapped to the nearest vertex of the
located part so the requested depth is reached exactly at a vertex of the
exposed surface. Vertices only move (uv moves
with them, so printed artwork stretches); no face is added after refinement or
removed, so a closed part stays closed: ``opens_surface=False``.

Labels: "changed" = faces with at least one vertex displaced by more than
``max(0.2 mm, 2 % of depth)``; exactly those get the new ``damage_id``.
Size (measured on the result): ``depth_mm`` = maximum displacement of any
vertex along the push direction; ``radius_mm`` = the bump radius;
``requested_depth_mm``, ``clamped`` (1.0 when the depth was clamped).
Severity: ``major`` if depth_mm >= 10.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import _surface as S
from .base import check_face_index, ParamError, add_damage, check_range, register
from .product import Product, take_faces

OP = "crush"
MODES = ("dent", "corner", "edge", "crumple", "bulge")
#: depth <= DEPTH_PER_THICKNESS * thickness behind the centre (keeps the map injective)
DEPTH_PER_THICKNESS = 0.45
#: the depth falloff reaches zero at this fraction of the thickness (far wall stays put)
FALLOFF_PER_THICKNESS = 0.85
#: depth <= DEPTH_PER_RADIUS * radius
DEPTH_PER_RADIUS = 1.0


@dataclass(frozen=True)
class CrushParams:
    """depth_mm: peak displacement, mm, in [1, 60] (clamped, see module doc)
    radius_mm: radius of the bump's support, mm, in [5, 200]
    mode: ``dent`` | ``corner`` | ``edge`` | ``crumple`` | ``bulge``
    center: face index whose centroid locates the damage (for corner/edge: the
        nearest bbox corner/edge to it), or None = a random exposed face
    """

    depth_mm: float = 6.0
    radius_mm: float = 40.0
    mode: str = "dent"
    center: int | None = None

    def __post_init__(self) -> None:
        check_range(OP, "depth_mm", self.depth_mm, 1.0, 60.0)
        check_range(OP, "radius_mm", self.radius_mm, 5.0, 200.0)
        if self.mode not in MODES:
            raise ParamError(f"{OP}.mode: must be one of {list(MODES)}, got {self.mode!r}")
        check_face_index(OP, self.center)


def target_edge_m(radius_mm: float) -> float:
    """Edge length (m) the dent support is refined to: radius / 6 in [1, 12] mm."""
    return float(np.clip(radius_mm / 6.0, 1.0, 12.0)) * 1e-3


def change_threshold_m(depth_m: float) -> float:
    """A vertex displaced by more than this (m) makes its faces 'changed'."""
    return max(0.2e-3, 0.02 * depth_m)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _frame(V: np.ndarray, F: np.ndarray, face: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(anchor point c0 (3,), inward unit direction b (3,)) for the mode."""
    tri = V[F[face]]
    x0 = tri.mean(0)
    n, _ = S.normals_areas(V, F[face:face + 1])
    n = n[0]
    if mode in ("dent", "crumple", "bulge"):
        return x0, -n
    lo, hi = V.min(0), V.max(0)
    mid = 0.5 * (lo + hi)
    sgn = np.where(x0 >= mid, 1.0, -1.0)  # the octant of the location
    if mode == "corner":
        c0 = np.where(sgn > 0, hi, lo)
        return c0, -sgn / np.sqrt(3.0)
    # edge: of the 3 edges through the nearest corner, the one nearest the location
    corner = np.where(sgn > 0, hi, lo)
    # distance to the edge along axis k ignores coordinate k: the nearest edge runs
    # along the axis in which the location is farthest from the corner
    axis = int(np.argmax(np.abs(x0 - corner)))
    c0 = corner.copy()
    c0[axis] = x0[axis]
    d = -sgn.copy()
    d[axis] = 0.0
    return c0, d / np.linalg.norm(d)


def crush_field(V: np.ndarray, c: np.ndarray, b: np.ndarray, sign: float, depth_m: float, radius_m: float,
                falloff_m: float, modulation=None) -> np.ndarray:
    """(v, 3) displacement (m) of points ``V`` (v, 3) m: see the module doc.

    c: centre (3,), b: unit inward direction (3,), sign: +1 pushes along b (dent),
    -1 against it (bulge), modulation: None or callable (u, v, rho) -> (v,) in
    [0, 1] of the tangent coordinates and axis distance (m) around c."""
    q = V - c
    t = q @ b
    lat = q - t[:, None] * b
    rho = np.linalg.norm(lat, axis=1)
    s2 = np.minimum((rho / radius_m) ** 2, 1.0)
    phi = (1.0 - s2) ** 3
    g = 1.0 - _smoothstep(t / falloff_m)
    w = phi * g
    if modulation is not None:
        e1, e2 = S.tangent_frame(b)
        w = w * modulation(lat @ e1, lat @ e2, rho)
    return (sign * depth_m) * w[:, None] * b[None, :]


def _crumple(rng: np.random.Generator, radius_m: float):
    nz = S.Noise2(rng, radius_m, 0.35 * radius_m, octaves=3)

    def m(u: np.ndarray, v: np.ndarray, rho: np.ndarray) -> np.ndarray:
        ridge = 1.0 - np.clip(np.abs(nz(u, v)) * 3.0, 0.0, 1.0)  # 1 on crease lines, 0 between
        away = 1.0 - np.exp(-(rho / (0.2 * radius_m)) ** 2)     # 0 at the centre: peak depth stays exact
        return 1.0 - 0.55 * (1.0 - ridge) * away
    return m


@register(OP, CrushParams, "deformation", opens_surface=False)
def crush(product: Product, params: CrushParams, rng: np.random.Generator):
    """Dent / crush / crumple / bulge ``product`` (not mutated); returns
    (new product, DamageRecord). See the module docstring for the field, the
    clamps and the label definition."""
    p = product.copy()
    mesh = p.mesh
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if params.center is not None and params.center >= len(F):
        raise ParamError(f"{OP}.center: face index must be < {len(F)} for product {p.sku!r}, got {params.center!r}")
    face = int(params.center) if params.center is not None else S.pick_exposed_face(product.mesh, rng)  # same faces; its geometry is cached
    c0, b = _frame(V, F, face, params.mode)
    sign = -1.0 if params.mode == "bulge" else 1.0
    r = params.radius_mm * 1e-3

    # thickness of the item behind the anchor along b (its far side stays put)
    T = float(max(((V - c0) @ b).max(), 1e-4))
    L = FALLOFF_PER_THICKNESS * T
    d_req = params.depth_mm * 1e-3
    d = min(d_req, DEPTH_PER_THICKNESS * T, DEPTH_PER_RADIUS * r)
    clamped = d < d_req

    def support(m, idx: np.ndarray) -> np.ndarray:
        """Faces ``idx`` of mesh ``m`` that may meet the field's support."""
        Vm, Fm = np.asarray(m.vertices), np.asarray(m.faces)[idx]
        rho_min = t_min = np.inf
        for j in range(3):  # per corner: (k, 3) arrays, cheaper than one (k, 3, 3)
            q = Vm[Fm[:, j]] - c0
            t = q @ b
            rho_min = np.minimum(rho_min, np.sqrt(np.maximum(np.einsum("ij,ij->i", q, q) - t * t, 0.0)))
            t_min = np.minimum(t_min, t)
        return (rho_min - S.max_edge(Vm, Fm) < r) & (t_min < L)

    h = target_edge_m(params.radius_mm)
    # candidates: faces within (radius + their size) of the axis, found once; a
    # face's corners lie within its bounding radius of its centroid and its
    # edges are at most twice that, so the balls narrow the exact test down
    _, _, cen, r2 = S.face_geometry(product.mesh)  # same faces; cached
    rad = np.sqrt(r2)
    q = cen - c0
    t_c = q @ b
    rho_c = np.sqrt(np.maximum(np.einsum("ij,ij->i", q, q) - t_c * t_c, 0.0))
    near = np.flatnonzero((rho_c - 3.0 * rad < r) & (t_c - rad < L))
    cand = np.zeros(len(F), bool)
    cand[near[support(mesh, near)]] = True
    face_part = int(mesh.face_attributes["part_id"][face])
    mesh, _ = S.refine_where(mesh, support, h, max_levels=6, candidates=cand, keep_geometry=False)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    # snap: the peak lands on a vertex of the located part (the exposed layer, not
    # a hidden one beneath it), so the requested depth is reached exactly
    if params.mode in ("dent", "crumple", "bulge"):
        on = np.zeros(len(V), bool)  # the part's vertices (a bitmap, not a sort)
        on[F[mesh.face_attributes["part_id"] == face_part].ravel()] = True
        cand = np.flatnonzero(on)
    else:
        cand = np.arange(len(V))
    c = V[cand[int(np.argmin(((V[cand] - c0) ** 2).sum(1)))]]
    T = float(max(((V - c) @ b).max(), 1e-4))  # again, from the snapped centre
    L = FALLOFF_PER_THICKNESS * T
    d = min(d_req, DEPTH_PER_THICKNESS * T, DEPTH_PER_RADIUS * r)
    clamped = d < d_req

    mod = _crumple(rng, r) if params.mode == "crumple" else None
    newV = V + crush_field(V, c, b, sign, d, r, L, mod)
    disp = newV - V
    moved = np.sqrt((disp ** 2).sum(1)) > change_threshold_m(d)
    faces = np.flatnonzero(moved[F].any(1))
    push = sign * b
    depth_meas = float(max((disp @ push).max(), 0.0))

    out = take_faces(mesh, np.arange(len(F)), newV, F.copy())
    p.mesh = out
    if p.collision:  # physics hulls follow the same (continuous) field
        p.collision = tuple(np.asarray(cp) + crush_field(np.asarray(cp, np.float64), c, b, sign, d, r, L, mod)
                            for cp in p.collision)
    size = {"depth_mm": depth_meas * 1e3, "radius_mm": params.radius_mm,
            "requested_depth_mm": params.depth_mm, "clamped": float(clamped)}
    region = {"center_m": c.tolist(), "radius_m": r, "direction": push.tolist(), "mode": params.mode,
              "face": face, "thickness_m": T, "falloff_m": L}
    return add_damage(p, faces, OP, size, region, asdict(params))
