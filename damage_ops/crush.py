"""Crush: dents and bulges of rigid items; creased, folded, buckled and
wrinkled board and film (Kaputt category ``deformation``).

Every mode is one *shear along a fixed direction*: with ``b`` the inward unit
push direction, ``c`` the apex (a vertex of the mesh), ``t = (x - c) . b`` the
depth below the surface and ``p`` the lateral coordinates of x in a frame
normal to ``b``,

    u(x) = h(p) * g(t) * b
    g(t) = 1 for t <= 0, 1 - smoothstep(t / L) for 0 < t < L, 0 beyond

``L = 0.85 T``, T the item's thickness behind the apex along b
(``max((x - c) . b)``; for ``corner`` / ``edge``, whose push is diagonal,
at most the depth along b to the nearest bbox wall it moves towards, so the
floor and the side walls stay put). Modes differ in the lateral profile ``h`` (meters,
inward positive):

- ``dent`` / ``bulge`` (the smooth dent of a rigid item: bottle, can,
  blister): ``h = +-depth (1 - (rho/R)^2)^3`` for rho < R, a C2 bump with a
  flat top and no crease (rho: distance of x from the axis through c).
- ``corner``: a d-cone at the bbox corner nearest the location, pushed in
  along ``(1, 1, 2) / sqrt(6)`` (into the item; down twice as much as in:
  a stacked or dropped carton's corner collapses from above): a pyramid over a polygon with 3-4 jittered
  facets (``folds``), so 3-4 sharp ridges radiate from the corner and a rim
  crease closes the crushed region; major ones add 1-2 rings of creases.
- ``edge``: an edge crush along the bbox edge nearest the location (push along
  the edge diagonal): a hip roof whose ridge is the edge, pushed in by depth
  over a length, with a band of 2-4 parallel creases (alternately steep and
  shallow slopes) on both adjoining faces and diagonal hips at the ends.
- ``crease``: a panel folded about a hinge line through the location at a
  random angle, spanning the item: a V of half-width R, with 0-2 parallel
  creases on each flank (alternately steep and shallow).
- ``buckle``: the bbox panel nearest the location buckles, pinned at its edges:
  ``w = A ((1 - k) sin(m pi x/a) + k tri(m x/a)) sin(n pi y/b)`` with m, n in
  {1, 2} and a triangle-wave share k whose peaks fold the panel about hinge
  lines; alternate lobes go in and out.
- ``crumple``: a 4-5 facet pyramid times ``1 - mix + mix M``, M the max of
  tents over 2 crease lines through the apex and ``folds`` more in random
  directions: sharp ridges every which way.
- ``wrinkle`` (film: mailers, pouches): an oriented sinusoid along a random
  compression axis, phase warped by Perlin noise, under a C2 envelope of
  radius R; crests go out by depth (the push is outward, as for ``bulge``),
  troughs in by at most the thickness clamp. Wavelength
  ``lambda = pi depth / sqrt(excess)`` (inextensible film absorbing an excess
  length fraction ``excess``), clipped to [6 mm, R].

- ``sag`` (whole panel): the bbox panel the location looks out of is crushed
  in, pinned at its edges: a pyramid over the whole panel (``fold.RectSag``)
  whose four facets meet along ridges running in from the panel's corners,
  apex near the location (within the middle 60 %), times 2-4 random crease
  tents (``fold.Creased``): a top crushed in by a stacked load.
- ``barrel`` (whole panel): a side wall (the located one, or a random side
  when the location is on the top) bulges out over its whole width: a pinned
  ``m = n = 1`` buckle pushed outward, with a hinge crease through its middle;
  depth <= 0.12 x the panel's short side.
- ``rack`` (whole box): the box slumps over: points above a crease height
  shift horizontally by s(z) (``fold.Rack``), a lean, or a Z-fold (the upper
  part leans back); slope <= 0.45, top shift <= 0.2 x the height.
- ``mangle``: several of these in one damage record, as a mangled parcel
  shows them: one or two whole-box modes (sag, barrel, rack) plus 2-4 local
  folds (corner, edge, crease, crumple, buckle) at further sites drawn in the
  upper half of the item, on faces neither facing down nor opposite the
  location, each at U(0.5, 1) x the depth and U(0.6, 1.3) x the radius; the
  rack (if any) last. Each shear is built on the item as the earlier ones left
  it; the local folds' falloff is bounded by the nearest bbox wall along
  their push (so the floor stays put); the region lists every component.

Composition (sag, barrel, rack, mangle): the map is x -> f_k(... f_1(x)),
each f_i an injective shear as below (a rack: z kept, each height shifted
rigidly), so the composition is injective too. The mesh is refined once
where the composed map is not linear across a face (3-D error), then moved.
Labels: faces with a vertex whose total displacement exceeds
``change_threshold_m(depth)``, ``depth_mm`` = the largest total displacement
(any direction). A barrel and a rack leave the pristine bbox (out of the
wall, leaning over): the physics hulls follow the map, plus one hull round a
barrelled wall.

The creases are kinks of h rounded over a narrow band (``damage_ops/fold.py``):
sharp at booth distance, continuous on the mesh. On a flat panel a crease of
slope tan(theta) folds the board by theta about the line, as a shear: the
board stretches by 1/cos(theta) - 1 there instead of staying isometric.

Why a shear: the coordinates across ``b`` never change and, along each line
parallel to b, the shift varies with slope ``h |g'| <= 1.5 h / L``. While that
slope is below 1 for the inward pushes (outward ones only ever spread the
line), the map x -> x + u(x) is injective on all of space, whatever the lateral
profile does - so creases may be as sharp as we like. No face can cross
another: the crush cannot punch through the opposite wall, a tape, flap or
label lying on a crushed wall moves with it, and the far wall (t >= L) does
not move at all, so the item still rests flat. Hence the clamp: inward
``depth <= 0.45 T`` (slope <= 0.8; outward ``bulge`` / ``wrinkle`` crests have none), and ``depth <= R`` (for ``buckle``:
``<= min(a, b) / 4``). What the mesh gives up: the triangles interpolate the
field linearly between vertices, so the guarantee holds up to the
interpolation error, which the refinement bounds (below) - layers closer than
twice that may cross: a flap resting flush on the body, a tape 0.3 mm over a
flap (tests/test_crush_geometry.py checks the body never crosses itself and
only such pairs of parts cross). The board does not stay isometric either
(see ``damage_ops/fold.py``): a fold of theta stretches it by
1 / cos(theta) - 1, recorded as ``stretch_p95`` / ``stretch_max``.

Meshing. ``dent`` / ``bulge``: the support is refined (red-green, labels
carried) to edges of :func:`target_edge_m` (``radius / 6`` in [1, 12] mm) and
the centre then snapped to the nearest vertex of the located part, so the
requested depth is reached exactly at a vertex. The other modes snap the apex
to a vertex first (of the located part; any part for ``corner`` / ``edge``),
then refine adaptively where the field is not linear across a face: a face
splits while the displacement at an edge midpoint or its centroid differs
from the linear interpolation of its corners by more than
:func:`interp_tol_m`, down to edges of :func:`crease_edge_m`. So creases are
resolved finely and flat facets stay coarse. Vertices only move (uv moves with
them, so printed artwork stretches); no face is added after refinement or
removed, so a closed part stays closed: ``opens_surface=False``.

Labels: "changed" = faces with at least one vertex displaced by more than
``max(0.2 mm, 2 % of the recorded depth_mm)``; exactly those get the new ``damage_id``.
Size (measured on the result): ``depth_mm`` = maximum displacement of any
vertex along the push direction (the record's ``direction``); ``radius_mm``;
``requested_depth_mm``, ``clamped`` (1.0 when the depth was clamped). The
region records the mode's shape (folds, creases, wavelength) and
``stretch_p95`` / ``stretch_max``: the relative edge-length change over the
changed faces (0 for an isometric fold). Severity: ``major`` if depth_mm >= 10.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import _surface as S
from . import fold as FD
from .base import ParamError, add_damage, check_face_index, check_range, register
from .product import Product, take_faces

OP = "crush"
MODES = ("dent", "corner", "edge", "crease", "buckle", "crumple", "wrinkle", "bulge", "sag", "barrel", "rack",
         "mangle")
#: modes with the smooth C2 bump (rigid items)
SMOOTH_MODES = ("dent", "bulge")
#: modes located on the bbox (corner / edge), not on the picked face
BBOX_MODES = ("corner", "edge")
#: whole-box modes and their composition (one shear after another: see :func:`_composed`)
WHOLE_MODES = ("sag", "barrel", "rack")
COMPOSED_MODES = WHOLE_MODES + ("mangle",)
#: the local folds a ``mangle`` adds to its whole-box modes, and their odds
MANGLE_LOCAL = (("corner", "edge", "crease", "crumple", "buckle"), (0.3, 0.25, 0.2, 0.15, 0.1))
#: depth <= DEPTH_PER_THICKNESS * thickness behind the centre (keeps the map injective)
DEPTH_PER_THICKNESS = 0.45
#: the depth falloff reaches zero at this fraction of the thickness (far wall stays put)
FALLOFF_PER_THICKNESS = 0.85
#: a corner is pushed along (1, 1, CORNER_DOWN) (signs into the item), normalised
CORNER_DOWN = 2.0
#: depth <= DEPTH_PER_RADIUS * radius
DEPTH_PER_RADIUS = 1.0


@dataclass(frozen=True)
class CrushParams:
    """depth_mm: peak displacement, mm, in [1, 100] (clamped, see module doc)
    radius_mm: size of the damage, mm, in [5, 200]: the bump radius (dent,
        bulge, wrinkle envelope), the crushed region's radius (corner,
        crumple), the half-width of the crushed band (edge) or of the V (crease)
    mode: one of :data:`MODES`
    center: face index whose centroid locates the damage (for corner/edge: the
        nearest bbox corner/edge to it), or None = a random exposed face
    folds: corner: ridges of the d-cone (3-4); crumple: crease lines besides the
        two through the apex (1-6); 0 = drawn from the rng
    excess: wrinkle: the excess length fraction the film absorbs, in
        [0.005, 0.5] (sets the wavelength)
    """

    depth_mm: float = 6.0
    radius_mm: float = 40.0
    mode: str = "dent"
    center: int | None = None
    folds: int = 0
    excess: float = 0.15

    def __post_init__(self) -> None:
        check_range(OP, "depth_mm", self.depth_mm, 1.0, 100.0)
        check_range(OP, "radius_mm", self.radius_mm, 5.0, 200.0)
        if self.mode not in MODES:
            raise ParamError(f"{OP}.mode: must be one of {list(MODES)}, got {self.mode!r}")
        check_face_index(OP, self.center)
        if isinstance(self.folds, bool) or not isinstance(self.folds, (int, np.integer)) or not 0 <= self.folds <= 6:
            raise ParamError(f"{OP}.folds: must be an int in [0, 6] (0 = random), got {self.folds!r}")
        if self.mode == "corner" and self.folds not in (0, 3, 4):
            raise ParamError(f"{OP}.folds: a corner d-cone has 3 or 4 ridges (0 = random), got {self.folds!r}")
        check_range(OP, "excess", self.excess, 0.005, 0.5)


def target_edge_m(radius_mm: float) -> float:
    """Edge length (m) the dent support is refined to: radius / 6 in [1, 12] mm."""
    return float(np.clip(radius_mm / 6.0, 1.0, 12.0)) * 1e-3


def crease_band_m(radius_mm: float) -> float:
    """Half-width (m) over which a crease's kink is rounded: 3 % of the
    radius in [2, 3] mm - about the thickness of corrugated board, which
    cannot fold sharper than that; sharp at booth distance."""
    return float(np.clip(0.03 * radius_mm, 2.0, 3.0)) * 1e-3


def crease_edge_m(radius_mm: float) -> float:
    """Smallest edge (m) the adaptive refinement goes down to: 0.8 x the crease band."""
    return 0.8 * crease_band_m(radius_mm)


def nonlinear_faces(field, tol: float):
    """The refinement test of a displacement: a function (mesh, face indices) ->
    bool per face, True where ``field`` (points (n, 3) m -> (n,) scalar or (n, 3)
    vector) is not linear across the face to within ``tol`` m, measured at the
    edge midpoints and the centroid against the corners' interpolation."""

    def nonlinear(m, idx: np.ndarray) -> np.ndarray:
        Vm, Fm = np.asarray(m.vertices), np.asarray(m.faces)[idx]
        A, B, C = Vm[Fm[:, 0]], Vm[Fm[:, 1]], Vm[Fm[:, 2]]
        k = len(idx)
        s = field(np.concatenate([A, B, C, 0.5 * (A + B), 0.5 * (B + C), 0.5 * (C + A), (A + B + C) / 3]))
        sa, sb, sc, sab, sbc, sca, sm = (s[i * k:(i + 1) * k] for i in range(7))
        size = np.abs if s.ndim == 1 else (lambda x: np.sqrt((x * x).sum(1)))
        err = np.maximum(np.maximum(size(sab - 0.5 * (sa + sb)), size(sbc - 0.5 * (sb + sc))),
                         np.maximum(size(sca - 0.5 * (sc + sa)), size(sm - (sa + sb + sc) / 3)))
        return err > tol

    return nonlinear


def interp_tol_m(depth_m: float) -> float:
    """A face splits while linear interpolation misses the field by more than this (m)."""
    return max(0.1e-3, 0.01 * depth_m)


def change_threshold_m(depth_m: float) -> float:
    """A vertex displaced by more than this (m) makes its faces 'changed'."""
    return max(0.2e-3, 0.02 * depth_m)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _frame(V: np.ndarray, F: np.ndarray, face: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(anchor point c0 (3,), inward unit direction b (3,), edge axis (3,) or
    None) for the mode."""
    tri = V[F[face]]
    x0 = tri.mean(0)
    n, _ = S.normals_areas(V, F[face:face + 1])
    n = n[0]
    lo, hi = V.min(0), V.max(0)
    if mode == "buckle":  # the bbox panel the face looks out of
        k = int(np.argmax(np.abs(n)))
        b = np.zeros(3)
        b[k] = -np.sign(n[k]) if n[k] != 0 else -1.0
        return x0, b, None
    if mode not in BBOX_MODES:
        return x0, -n, None
    mid = 0.5 * (lo + hi)
    sgn = np.where(x0 >= mid, 1.0, -1.0)  # the octant of the location
    corner = np.where(sgn > 0, hi, lo)
    if mode == "corner":
        # down (along z, the item's up) twice as much as in: the corner of a stacked
        # or dropped carton collapses from above, and the floor, 0.82 x the height
        # down along this push, lets it go deeper than along the diagonal (0.58)
        w = -sgn * np.array([1.0, 1.0, CORNER_DOWN])
        return corner, w / np.linalg.norm(w), None
    # edge: of the 3 edges through the nearest corner, the one nearest the location
    # (distance to the edge along axis k ignores coordinate k: the nearest edge runs
    # along the axis in which the location is farthest from the corner)
    axis = int(np.argmax(np.abs(x0 - corner)))
    c0 = corner.copy()
    c0[axis] = x0[axis]
    d = -sgn.copy()
    d[axis] = 0.0
    e = np.zeros(3)
    e[axis] = 1.0
    return c0, d / np.linalg.norm(d), e


def crush_field(V: np.ndarray, c: np.ndarray, b: np.ndarray, sign: float, depth_m: float, radius_m: float,
                falloff_m: float) -> np.ndarray:
    """(v, 3) displacement (m) of points ``V`` (v, 3) m for the smooth
    ``dent`` / ``bulge``: see the module doc. c: centre (3,), b: unit inward
    direction (3,), sign: +1 pushes along b (dent), -1 against it (bulge)."""
    q = V - c
    t = q @ b
    lat = q - t[:, None] * b
    rho = np.linalg.norm(lat, axis=1)
    s2 = np.minimum((rho / radius_m) ** 2, 1.0)
    phi = (1.0 - s2) ** 3
    g = 1.0 - _smoothstep(t / falloff_m)
    return (sign * depth_m) * (phi * g)[:, None] * b[None, :]


@dataclass
class FoldField:
    """The shear ``x -> x + prof(p) g(t) b`` of the module doc: ``prof`` a
    profile of :mod:`damage_ops.fold` over lateral coordinates p = ((x - c).e1,
    (x - c).e2) (m), ``falloff`` = L (m)."""

    c: np.ndarray
    b: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    prof: object
    falloff: float

    def scalar(self, X: np.ndarray) -> np.ndarray:
        """(n,) shift (m) along b of points X (n, 3) m."""
        q = X - self.c
        t = q @ self.b
        out = np.zeros(len(X))
        # the profile only where it can be non-zero: above the falloff depth and
        # within its support radius (most of a mesh is neither)
        pu, pv = q @ self.e1, q @ self.e2
        rs = self.prof.support_radius()
        on = np.flatnonzero((t < self.falloff) & (pu * pu + pv * pv < rs * rs))
        if len(on):
            h = self.prof(np.stack([pu[on], pv[on]], axis=1))
            out[on] = h * (1.0 - _smoothstep(t[on] / self.falloff))
        return out

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.scalar(np.asarray(X, np.float64))[:, None] * self.b[None, :]


def _lateral_frame(b: np.ndarray, first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if first is None:
        return S.tangent_frame(b)
    e1 = first - (first @ b) * b
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(b, e1)


def _profile(mode: str, params: CrushParams, d_in: float, V: np.ndarray, c: np.ndarray, b: np.ndarray,
             e1: np.ndarray, e2: np.ndarray, T: float, rng: np.random.Generator):
    """(profile, region facts) for a fold mode: see the module doc. d_in: the
    (clamped) inward depth, m; the rng draws the shape."""
    R = params.radius_mm * 1e-3
    beta = crease_band_m(params.radius_mm)
    ext = float(np.linalg.norm(V.max(0) - V.min(0)))
    major = d_in >= 10e-3
    if mode == "corner":
        k = params.folds or int(rng.choice([3, 4]))
        band = None
        rings = int(rng.integers(1, 3)) if major else int(rng.integers(0, 2))
        if rings:
            band = FD.crease_band(rng, R, rings)
        prof = FD.Pyramid(d_in, R, FD.radiating_normals(rng, k), rng.uniform(0.75, 1.25, k), beta, 1.5 * R, band)
        return prof, {"folds": k, "rings": rings}
    if mode == "edge":
        n = int(rng.integers(2, 5))
        half = R * rng.uniform(0.8, 2.0)
        prof = FD.HipRoof(d_in, R, half, np.array([1.0, 0.0]), beta, rng.uniform(0.6, 1.2), FD.crease_band(rng, R, n))
        return prof, {"creases": n, "half_length_m": half}
    if mode == "crease":
        ax = FD.unit(rng.uniform(0, np.pi))[0]
        n = int(rng.integers(0, 3))  # parallel creases beside the hinge: the board gives way in steps
        prof = FD.HipRoof(d_in, R, ext, ax, beta, 1.0, FD.crease_band(rng, R, n) if n else None)
        return prof, {"creases": 1 + 2 * n, "axis_lateral": ax.tolist()}
    if mode == "crumple":
        k = int(rng.integers(4, 6))
        base = FD.Pyramid(d_in, R, FD.radiating_normals(rng, k), rng.uniform(0.8, 1.2, k), beta, 1.5 * R, None)
        extra = params.folds or int(rng.integers(2, 5))
        phi = rng.uniform(0, np.pi, 2 + extra)
        pts = np.zeros((2 + extra, 2))
        pts[2:] = rng.uniform(-0.7, 0.7, (extra, 2)) * R
        widths = rng.uniform(0.2, 0.45, 2 + extra) * R
        prof = FD.Creased(base, pts, FD.unit(phi), widths, 0.55, beta)
        return prof, {"folds": k, "creases": 2 + extra}
    if mode == "buckle":  # e1, e2 run along the panel's edges (see crush)
        lo, hi = V.min(0), V.max(0)
        box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) - c
        px, py = box @ e1, box @ e2
        x0, a, y0, bb = px.min(), px.max() - px.min(), py.min(), py.max() - py.min()
        m, n = [(1, 1), (2, 1), (1, 2), (2, 2)][int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))]
        prof = FD.Buckle(d_in, d_in, float(x0), float(a), float(y0), float(bb), m, n, float(rng.uniform(0.65, 0.95)), beta)
        lobe = [float(x0 + a / (2 * m)), float(y0 + bb / (2 * n))]
        return prof, {"m": m, "n": n, "hinge": prof.hinge, "lobe_lateral": lobe}
    if mode == "wrinkle":
        lam = float(np.clip(np.pi * d_in / np.sqrt(params.excess), 6e-3, R))
        amp_in = min(d_in, DEPTH_PER_THICKNESS * T)
        nz = S.Noise2(rng, R, 1.5 * lam, octaves=2)
        prof = FD.Wrinkle(d_in, amp_in, lam, R, FD.unit(rng.uniform(0, np.pi))[0], nz, 1.2)
        return prof, {"wavelength_m": lam, "trough_m": amp_in}
    raise AssertionError(mode)


def _stretch(V0: np.ndarray, V1: np.ndarray, F: np.ndarray) -> tuple[float, float]:
    """(95th percentile, max) of |edge length change| / length over faces F."""
    if len(F) == 0:
        return 0.0, 0.0
    e0 = V0[F] - V0[np.roll(F, -1, axis=1)]
    e1 = V1[F] - V1[np.roll(F, -1, axis=1)]
    l0 = np.sqrt((e0 ** 2).sum(2)).ravel()
    r = np.abs(np.sqrt((e1 ** 2).sum(2)).ravel() / np.maximum(l0, 1e-12) - 1.0)
    return float(np.percentile(r, 95)), float(r.max())


def _candidates(product: Product, c0: np.ndarray, b: np.ndarray, r: float, L: float) -> np.ndarray:
    """(n,) bool faces whose bounding ball may meet the cylinder of radius r
    round the axis through c0 along b, above depth L."""
    _, _, cen, r2 = S.face_geometry(product.mesh)  # same faces; cached
    rad = np.sqrt(r2)
    q = cen - c0
    t_c = q @ b
    rho_c = np.sqrt(np.maximum(np.einsum("ij,ij->i", q, q) - t_c * t_c, 0.0))
    # a face's corners lie within its bounding radius of its centroid and its
    # edges are at most twice that, so the balls narrow the exact test down
    return (rho_c - 3.0 * rad < r) & (t_c - rad < L)


def _wall_depth(V: np.ndarray, c: np.ndarray, b: np.ndarray) -> float:
    """Depth (m) along b from c, a point on the bbox of V, to the nearest bbox
    wall the push moves towards: for each axis b has a component along, the
    least ``(corner - c) . b`` over the corners of the far wall. A diagonal
    push at a top corner reaches the floor long before the opposite corner;
    a falloff within this depth keeps the bottom (the item rests on it) and
    the side walls where they are."""
    lo, hi = V.min(0), V.max(0)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    out = np.inf
    for k in range(3):
        if abs(b[k]) < 1e-9:
            continue
        wall = corners[np.isclose(corners[:, k], hi[k] if b[k] > 0 else lo[k])]
        out = min(out, float(((wall - c) @ b).min()))
    return max(out, 1e-4)


def _snap(V: np.ndarray, F: np.ndarray, part_id: np.ndarray, c0: np.ndarray, face_part: int | None) -> np.ndarray:
    """The vertex nearest c0 (of part ``face_part``'s faces, or of any)."""
    if face_part is None:
        cand = np.arange(len(V))
    else:
        on = np.zeros(len(V), bool)  # the part's vertices (a bitmap, not a sort)
        on[F[part_id == face_part].ravel()] = True
        cand = np.flatnonzero(on)
    return V[cand[int(np.argmin(((V[cand] - c0) ** 2).sum(1)))]].copy()


@register(OP, CrushParams, "deformation", opens_surface=False)
def crush(product: Product, params: CrushParams, rng: np.random.Generator):
    """Dent / fold / buckle / wrinkle ``product`` (not mutated); returns
    (new product, DamageRecord). See the module docstring for the fields, the
    clamps and the label definition."""
    p = product.copy()
    mesh = p.mesh
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if params.center is not None and params.center >= len(F):
        raise ParamError(f"{OP}.center: face index must be < {len(F)} for product {p.sku!r}, got {params.center!r}")
    face = int(params.center) if params.center is not None else S.pick_exposed_face(product.mesh, rng)  # same faces; its geometry is cached
    mode = params.mode
    c0, b, edge_axis = _frame(V, F, face, mode)
    face_part = int(mesh.face_attributes["part_id"][face])
    r = params.radius_mm * 1e-3
    d_req = params.depth_mm * 1e-3
    if mode in SMOOTH_MODES:
        return _smooth(product, p, params, rng, face, face_part, c0, b)
    if mode in COMPOSED_MODES:
        return _composed(product, p, params, rng, face)

    sign = -1.0 if mode == "wrinkle" else 1.0  # wrinkle crests go out: its size is measured outward
    c = _snap(V, F, np.asarray(mesh.face_attributes["part_id"]), c0, None if mode in BBOX_MODES else face_part)
    T = float(max(((V - c) @ b).max(), 1e-4))
    if mode in BBOX_MODES:
        T = min(T, _wall_depth(V, c, b))
    L = FALLOFF_PER_THICKNESS * T
    if mode == "buckle":
        k = int(np.argmax(np.abs(b)))
        span = np.delete(V.max(0) - V.min(0), k)
        d = min(d_req, DEPTH_PER_THICKNESS * T, 0.25 * float(span.min()))
    elif mode == "wrinkle":
        d = min(d_req, DEPTH_PER_RADIUS * r)  # outward crests: no thickness clamp (troughs have theirs)
    else:
        d = min(d_req, DEPTH_PER_THICKNESS * T, DEPTH_PER_RADIUS * r)
    clamped = d < d_req
    if mode == "buckle":  # the panel's own axes, the hinge along one of them
        ij = [a for a in range(3) if a != int(np.argmax(np.abs(b)))]
        edge_axis = np.eye(3)[ij[int(rng.integers(0, 2))]]
    e1, e2 = _lateral_frame(b, edge_axis)
    prof, shape = _profile(mode, params, d, V, c, b, e1, e2, T, rng)
    fld = FoldField(c, b, e1, e2, prof, L)

    tol = interp_tol_m(d)
    cand = _candidates(product, c, b, prof.support_radius(), L)

    nonlinear = nonlinear_faces(fld.scalar, tol)

    mesh, _ = S.refine_where(mesh, nonlinear, crease_edge_m(params.radius_mm), max_levels=7, candidates=cand,
                             keep_geometry=False)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    disp = fld(V)
    newV = V + disp
    push = sign * b
    depth_meas = float(max((disp @ push).max(), 0.0))
    # the threshold follows the recorded depth, so the record alone reproduces the labels
    moved = np.sqrt((disp ** 2).sum(1)) > change_threshold_m(depth_meas)
    faces = np.flatnonzero(moved[F].any(1))
    st95, stmax = _stretch(V, newV, F[faces])

    p.mesh = take_faces(mesh, np.arange(len(F)), newV, F.copy())
    if p.collision:  # physics hulls follow the same (continuous) field
        p.collision = tuple(np.asarray(cp) + fld(np.asarray(cp, np.float64)) for cp in p.collision)
    size = {"depth_mm": depth_meas * 1e3, "radius_mm": params.radius_mm,
            "requested_depth_mm": params.depth_mm, "clamped": float(clamped)}
    region = {"center_m": c.tolist(), "radius_m": r, "direction": push.tolist(), "mode": mode,
              "face": face, "thickness_m": T, "falloff_m": L, "lateral_frame": [e1.tolist(), e2.tolist()],
              "crease_band_m": crease_band_m(params.radius_mm), "stretch_p95": st95, "stretch_max": stmax}
    region.update(shape)
    return add_damage(p, faces, OP, size, region, asdict(params))


def _smooth(product: Product, p: Product, params: CrushParams, rng: np.random.Generator, face: int, face_part: int,
            c0: np.ndarray, b: np.ndarray):
    """The smooth ``dent`` / ``bulge`` (rigid items): see the module doc."""
    mesh = p.mesh
    V = np.asarray(mesh.vertices)
    sign = -1.0 if params.mode == "bulge" else 1.0
    r = params.radius_mm * 1e-3
    T = float(max(((V - c0) @ b).max(), 1e-4))  # thickness of the item behind the anchor along b
    L = FALLOFF_PER_THICKNESS * T
    d_req = params.depth_mm * 1e-3

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

    near = np.flatnonzero(_candidates(product, c0, b, r, L))
    cand = np.zeros(len(mesh.faces), bool)
    cand[near[support(mesh, near)]] = True
    mesh, _ = S.refine_where(mesh, support, target_edge_m(params.radius_mm), max_levels=6, candidates=cand,
                             keep_geometry=False)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    # snap: the peak lands on a vertex of the located part (the exposed layer, not
    # a hidden one beneath it), so the requested depth is reached exactly
    c = _snap(V, F, np.asarray(mesh.face_attributes["part_id"]), c0, face_part)
    T = float(max(((V - c) @ b).max(), 1e-4))  # again, from the snapped centre
    L = FALLOFF_PER_THICKNESS * T
    # an outward bulge only spreads each line along b apart: no thickness clamp
    d = min(d_req, DEPTH_PER_RADIUS * r) if sign < 0 else min(d_req, DEPTH_PER_THICKNESS * T, DEPTH_PER_RADIUS * r)
    clamped = d < d_req

    newV = V + crush_field(V, c, b, sign, d, r, L)
    disp = newV - V
    push = sign * b
    depth_meas = float(max((disp @ push).max(), 0.0))
    moved = np.sqrt((disp ** 2).sum(1)) > change_threshold_m(depth_meas)
    faces = np.flatnonzero(moved[F].any(1))

    p.mesh = take_faces(mesh, np.arange(len(F)), newV, F.copy())
    if p.collision:  # physics hulls follow the same (continuous) field
        p.collision = tuple(np.asarray(cp) + crush_field(np.asarray(cp, np.float64), c, b, sign, d, r, L)
                            for cp in p.collision)
    size = {"depth_mm": depth_meas * 1e3, "radius_mm": params.radius_mm,
            "requested_depth_mm": params.depth_mm, "clamped": float(clamped)}
    region = {"center_m": c.tolist(), "radius_m": r, "direction": push.tolist(), "mode": params.mode,
              "face": face, "thickness_m": T, "falloff_m": L}
    return add_damage(p, faces, OP, size, region, asdict(params))


# -- whole-box modes and their composition -------------------------------------

@dataclass
class _Comp:
    """One shear of a composed crush: ``field(X) -> (n, 3)`` displacement (m),
    ``cand(product, margin) -> (n_faces,) bool`` faces it may bend (margin: m the
    earlier shears may have moved them), and what the record says of it."""

    field: object
    cand: object
    info: dict


def _panel(V: np.ndarray, F: np.ndarray, face: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(axis k, inward unit b (3,), the face centroid moved onto the bbox wall (3,))
    of the bbox panel that ``face`` looks out of."""
    n, _ = S.normals_areas(V, F[face:face + 1])
    n = n[0]
    k = int(np.argmax(np.abs(n)))
    sgn = np.sign(n[k]) if n[k] != 0 else 1.0
    b = np.zeros(3)
    b[k] = -sgn
    c = V[F[face]].mean(0)
    c[k] = V.max(0)[k] if sgn > 0 else V.min(0)[k]
    return k, b, c


def _panel_rect(V: np.ndarray, c: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, a, y0, b): the bbox's projection onto the lateral frame (e1, e2) round c."""
    lo, hi = V.min(0), V.max(0)
    box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) - c
    px, py = box @ e1, box @ e2
    return float(px.min()), float(np.ptp(px)), float(py.min()), float(np.ptp(py))


def _fold_cand(fld: FoldField):
    def cand(product: Product, margin: float) -> np.ndarray:
        return _candidates(product, fld.c, fld.b, fld.prof.support_radius() + margin, fld.falloff + margin)
    return cand


def _whole_comp(mode: str, V: np.ndarray, F: np.ndarray, face: int, d_req: float, radius_mm: float,
                rng: np.random.Generator) -> tuple[_Comp, float]:
    """A ``sag``, ``barrel`` or ``rack`` shear of the item whose (current)
    vertices are V (v, 3) m, at the bbox panel ``face`` looks out of. Returns
    (component, requested depth after the clamps, m)."""
    beta = crease_band_m(radius_mm)
    lo, hi = V.min(0), V.max(0)
    if mode == "rack":
        H = float(hi[2] - lo[2])
        z0 = float(lo[2] + rng.uniform(0.2, 0.55) * H)
        phi = float(rng.choice([0.0, 0.5, 1.0, 1.5]) * np.pi + rng.uniform(-0.15, 0.15))
        e = np.array([np.cos(phi), np.sin(phi), 0.0])
        d = min(d_req, 0.2 * H)
        if rng.uniform() < 0.5:  # one crease: a lean
            knots, slopes = np.array([0.0]), np.array([1.0])
        else:                    # a Z-fold: the upper part leans back
            k2 = float(rng.uniform(0.35, 0.7) * (hi[2] - z0))
            knots, slopes = np.array([0.0, k2]), np.array([1.0, -rng.uniform(0.3, 0.8)])
        top = float(FD.terrace(np.array([hi[2] - z0]), knots, slopes, 0.0)[0])
        k = min(d / max(abs(top), 1e-6), 0.45)  # the lean's slope: at most 24 degrees
        fld = FD.Rack(z0, knots, slopes * k, e, beta)
        band = 3 * beta + 1e-3

        def cand(product: Product, margin: float, z=z0 + knots) -> np.ndarray:
            _, _, cen, r2 = S.face_geometry(product.mesh)
            rad = np.sqrt(r2) + band + margin
            return (np.abs(cen[:, 2][:, None] - z[None, :]) < rad[:, None]).any(1)

        info = {"mode": mode, "z0_m": z0, "direction": e.tolist(), "creases": len(knots),
                "slopes": (slopes * k).tolist()}
        return _Comp(fld, cand, info), float(k * abs(top))
    k, b, c = _panel(V, F, face)
    if mode == "barrel" and k == 2:
        # a top or bottom does not barrel under a stacking load, the walls do:
        # a side wall (of the two axes, random side), at the location's height
        k = int(rng.integers(0, 2))
        s = 1.0 if rng.uniform() < 0.5 else -1.0
        b = np.zeros(3)
        b[k] = -s
        c = 0.5 * (lo + hi)
        c[k] = hi[k] if s > 0 else lo[k]
    T = float(max(((V - c) @ b).max(), 1e-4))
    L = FALLOFF_PER_THICKNESS * T
    ij = [a for a in range(3) if a != k]
    e1, e2 = _lateral_frame(b, np.eye(3)[ij[int(rng.integers(0, 2))]])
    x0, a, y0, bb = _panel_rect(V, c, e1, e2)
    if mode == "sag":
        # the apex within the middle 60 % of the panel, nearest the location
        u = float(np.clip(-x0, 0.2 * a, 0.8 * a))
        v = float(np.clip(-y0, 0.2 * bb, 0.8 * bb))
        c = c + (-x0 - u) * e1 + (-y0 - v) * e2
        x0, y0 = -u, -v
        d = min(d_req, DEPTH_PER_THICKNESS * T, 0.3 * min(a, bb))
        base = FD.RectSag(d, x0, a, y0, bb, beta)
        n_cr = int(rng.integers(2, 5))  # crumpled: a few creases across the sagging panel
        pts = np.stack([rng.uniform(x0, x0 + a, n_cr), rng.uniform(y0, y0 + bb, n_cr)], 1) * 0.8
        prof = FD.Creased(base, pts, FD.unit(rng.uniform(0, np.pi, n_cr)),
                          rng.uniform(0.12, 0.3, n_cr) * min(a, bb), float(rng.uniform(0.25, 0.45)), beta)
        fld = FoldField(c, b, e1, e2, prof, L)
        info = {"mode": mode, "center_m": c.tolist(), "direction": b.tolist(), "creases": n_cr}
        return _Comp(fld, _fold_cand(fld), info), d
    if mode == "barrel":  # pushed out: injective for any depth; bounded by the panel
        d = min(d_req, 0.12 * min(a, bb))
        prof = FD.Buckle(-d, -d, x0, a, y0, bb, 1, 1, float(rng.uniform(0.3, 0.8)), beta)
        fld = FoldField(c, b, e1, e2, prof, L)
        info = {"mode": mode, "center_m": c.tolist(), "direction": (-b).tolist(), "hinge": prof.hinge}
        return _Comp(fld, _fold_cand(fld), info), d
    raise AssertionError(mode)


def _local_comp(mode: str, V: np.ndarray, F: np.ndarray, pid: np.ndarray, face: int, d_req: float,
                radius_mm: float, rng: np.random.Generator) -> tuple[_Comp, float]:
    """One of the local folds (corner, edge, crease, buckle, crumple) as in
    :func:`crush`, built on the current vertices V. Returns (component, depth m)."""
    c0, b, edge_axis = _frame(V, F, face, mode)
    c = _snap(V, F, pid, c0, None if mode in BBOX_MODES else int(pid[face]))
    # within the nearest bbox wall along b, for every mode: after earlier shears the
    # site's normal is tilted, and the thickness over the whole item along it would
    # let the falloff reach the floor the item rests on
    T = min(float(max(((V - c) @ b).max(), 1e-4)), _wall_depth(V, c, b))
    L = FALLOFF_PER_THICKNESS * T
    r = radius_mm * 1e-3
    if mode == "buckle":
        kk = int(np.argmax(np.abs(b)))
        span = np.delete(V.max(0) - V.min(0), kk)
        d = min(d_req, DEPTH_PER_THICKNESS * T, 0.25 * float(span.min()))
        ij = [a for a in range(3) if a != kk]
        edge_axis = np.eye(3)[ij[int(rng.integers(0, 2))]]
    else:
        d = min(d_req, DEPTH_PER_THICKNESS * T, DEPTH_PER_RADIUS * r)
    e1, e2 = _lateral_frame(b, edge_axis)
    prm = CrushParams(depth_mm=float(np.clip(d * 1e3, 1.0, 60.0)), radius_mm=radius_mm, mode=mode)
    prof, shape = _profile(mode, prm, d, V, c, b, e1, e2, T, rng)
    fld = FoldField(c, b, e1, e2, prof, L)
    info = {"mode": mode, "center_m": c.tolist(), "direction": b.tolist(), **shape}
    return _Comp(fld, _fold_cand(fld), info), d


@dataclass
class Composed:
    """x -> f_k(... f_2(f_1(x))), each f_i(x) = x + field_i(x) a shear that is
    injective on all of space, so the composition is too. ``__call__(X)``:
    (n, 3) total displacement (m) of points X (n, 3) m."""

    fields: list

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float64)
        Y = X.copy()
        for f in self.fields:
            Y = Y + f(Y)
        return Y - X


def _composed(product: Product, p: Product, params: CrushParams, rng: np.random.Generator, face: int):
    """``sag`` / ``barrel`` / ``rack`` alone, or a ``mangle``: one or two of them
    plus 2-4 local folds (``MANGLE_LOCAL``), one shear after another (module doc)."""
    mesh = p.mesh
    V0, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    pid = np.asarray(mesh.face_attributes["part_id"])
    d_req = params.depth_mm * 1e-3
    mode = params.mode
    if mode == "mangle":
        whole = [str(rng.choice(WHOLE_MODES, p=[0.5, 0.25, 0.25]))]
        if rng.uniform() < 0.5:
            whole.append(str(rng.choice([m for m in WHOLE_MODES if m != whole[0]])))
        local = [str(x) for x in rng.choice(MANGLE_LOCAL[0], size=int(rng.integers(2, 5)), p=MANGLE_LOCAL[1])]
        # rack last: a lean after the panels are crushed (the panels are the bbox's)
        plan = [m for m in whole if m != "rack"] + local + [m for m in whole if m == "rack"]
        # further sites: faces in the upper half, not facing the located face's
        # opposite nor down (a carton rests on its bottom; the located face is one
        # a camera sees), so corners and edges crushed are top ones
        n, _ = S.normals_areas(V0, F)
        zc = V0[F].mean(1)[:, 2]
        mask = (n @ n[face] > -0.2) & (n[:, 2] > -0.5) & (zc > 0.5 * (V0[:, 2].min() + V0[:, 2].max()))
    else:
        plan, mask = [mode], None
    comps, V, margin, req = [], V0.copy(), 0.0, []
    for i, m in enumerate(plan):
        f = face if i == 0 or mask is None or not mask.any() else int(S.pick_exposed_face(product.mesh, rng, mask))
        d_i = d_req if i == 0 else d_req * float(rng.uniform(0.5, 1.0))
        r_i = float(np.clip(params.radius_mm * (1.0 if i == 0 else rng.uniform(0.6, 1.3)), 8.0, 200.0))
        if m in WHOLE_MODES:
            comp, d = _whole_comp(m, V, F, f, d_i, r_i, rng)
        else:
            comp, d = _local_comp(m, V, F, pid, f, d_i, r_i, rng)
        comp.info.update(face=f, requested_depth_m=d_i, depth_m=d, radius_m=r_i * 1e-3)
        comps.append((comp, margin))
        req.append(d < d_i - 1e-9)
        V = V + comp.field(V)
        margin += d + 1e-3
    fld = Composed([c.field for c, _ in comps])
    cand = np.zeros(len(F), bool)
    for c, mg in comps:
        cand |= c.cand(product, mg)
    tol = interp_tol_m(d_req)

    nonlinear = nonlinear_faces(fld, tol)

    mesh, _ = S.refine_where(mesh, nonlinear, crease_edge_m(params.radius_mm), max_levels=7, candidates=cand,
                             keep_geometry=False)
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    disp = fld(V)
    newV = V + disp
    dn = np.sqrt((disp ** 2).sum(1))
    depth_meas = float(dn.max())
    # the threshold follows the recorded depth, so the record alone reproduces the labels
    moved = dn > change_threshold_m(depth_meas)
    faces = np.flatnonzero(moved[F].any(1))
    st95, stmax = _stretch(V, newV, F[faces])
    p.mesh = take_faces(mesh, np.arange(len(F)), newV, F.copy())
    if p.collision:  # physics hulls follow the same (continuous) map
        p.collision = tuple(np.asarray(cp) + fld(np.asarray(cp, np.float64)) for cp in p.collision)
        if any(c.info["mode"] == "barrel" for c, _ in comps) and moved.any():
            # a barrelled side bulges past the box hull: one more hull round the moved surface
            mv = np.flatnonzero(moved)
            p.collision = tuple(p.collision) + (newV[mv[np.linspace(0, len(mv) - 1, min(len(mv), 400)).astype(int)]],)
    first = comps[0][0].info
    size = {"depth_mm": depth_meas * 1e3, "radius_mm": params.radius_mm,
            "requested_depth_mm": params.depth_mm, "clamped": float(req[0])}
    region = {"center_m": first.get("center_m", V0.mean(0).tolist()), "radius_m": params.radius_mm * 1e-3,
              "direction": first["direction"], "mode": mode, "face": face,
              "components": [c.info for c, _ in comps], "crease_band_m": crease_band_m(params.radius_mm),
              "stretch_p95": st95, "stretch_max": stmax}
    return add_damage(p, faces, OP, size, region, asdict(params))
