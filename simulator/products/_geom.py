"""Closed-mesh building blocks shared by the product generators.

Every helper here returns ``(V, F, UV)``: ``V`` (v, 3) float64 meters, ``F``
(n, 3) int64 faces wound outward, ``UV`` (n, 3, 2) float64 face-corner texture
coordinates (zeros where unprinted). Each result is one closed (watertight)
surface: boxes are built on an integer lattice so shared edges weld exactly,
lofts index their seams modulo the ring size, and poles close with fans (or,
for planar end rings, with :func:`polygon_cap`'s even triangles).

UV convention (trimesh / OpenGL): u runs along image columns left to right,
v runs from the bottom image row (v = 0) to the top row (v = 1).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial import ConvexHull, Delaunay

Rect = tuple[float, float, float, float]  # (u0, v0, u1, v1) in the atlas

SIDES = ("+x", "-x", "+y", "-y", "+z", "-z")


def quad_grid(nu: int, nv: int, closed_u: bool = False, closed_v: bool = False):
    """Triangles of a (rows x cols) vertex grid, vertex index = row * cols + col.

    Returns faces (2*nu*nv, 3) int64, corner params (2*nu*nv, 3, 2) in [0, 1]
    (u along columns, v along rows) and the row of each face (2*nu*nv,) int64.
    The surface normal is d/du x d/dv.
    """
    ncols = nu if closed_u else nu + 1
    nrows = nv if closed_v else nv + 1
    J, I = np.meshgrid(np.arange(nv), np.arange(nu), indexing="ij")
    I, J = I.ravel(), J.ravel()
    I1 = (I + 1) % ncols
    J1 = (J + 1) % nrows
    a, b, c, d = J * ncols + I, J * ncols + I1, J1 * ncols + I1, J1 * ncols + I
    faces = np.empty((2 * len(a), 3), np.int64)
    faces[0::2] = np.stack([a, b, c], 1)
    faces[1::2] = np.stack([a, c, d], 1)
    u0, u1, v0, v1 = I / nu, (I + 1) / nu, J / nv, (J + 1) / nv
    pa, pb = np.stack([u0, v0], 1), np.stack([u1, v0], 1)
    pc, pd = np.stack([u1, v1], 1), np.stack([u0, v1], 1)
    uv = np.empty((2 * len(a), 3, 2))
    uv[0::2] = np.stack([pa, pb, pc], 1)
    uv[1::2] = np.stack([pa, pc, pd], 1)
    rows = np.repeat(J, 2)
    return faces, uv, rows


def to_rect(uv01: np.ndarray, rect: Rect | None) -> np.ndarray:
    """Map params in [0, 1]^2 into an atlas rect; zeros when ``rect`` is None."""
    if rect is None:
        return np.zeros_like(uv01)
    u0, v0, u1, v1 = rect
    out = np.empty_like(uv01)
    out[..., 0] = u0 + (u1 - u0) * uv01[..., 0]
    out[..., 1] = v0 + (v1 - v0) * uv01[..., 1]
    return out


def lattice_box(nx: int, ny: int, nz: int, rects: dict[str, Rect] | None = None):
    """Closed box surface on the integer lattice [0, nx] x [0, ny] x [0, nz].

    Returns L (v, 3) int64 lattice coords, F (n, 3), UV (n, 3, 2) and side
    (n,) int index into :data:`SIDES`. Side prints read upright (v along +z);
    the four walls wrap counter-clockwise seen from above.
    """
    rects = rects or {}
    defs = {
        "+x": (ny, nz, lambda U, V: (np.full_like(U, nx), U, V)),
        "-x": (ny, nz, lambda U, V: (np.zeros_like(U), ny - U, V)),
        "+y": (nx, nz, lambda U, V: (nx - U, np.full_like(U, ny), V)),
        "-y": (nx, nz, lambda U, V: (U, np.zeros_like(U), V)),
        "+z": (nx, ny, lambda U, V: (U, V, np.full_like(U, nz))),
        "-z": (nx, ny, lambda U, V: (U, ny - V, np.zeros_like(U))),
    }
    Ls, Fs, UVs, Ss = [], [], [], []
    off = 0
    for s, name in enumerate(SIDES):
        nu, nv, fn = defs[name]
        V, U = np.meshgrid(np.arange(nv + 1), np.arange(nu + 1), indexing="ij")
        pts = np.stack(fn(U.ravel(), V.ravel()), 1)
        f, uv, _ = quad_grid(nu, nv)
        Ls.append(pts)
        Fs.append(f + off)
        UVs.append(to_rect(uv, rects.get(name)))
        Ss.append(np.full(len(f), s))
        off += len(pts)
    L = np.concatenate(Ls)
    uniq, inv = np.unique(L, axis=0, return_inverse=True)
    F = inv.reshape(-1)[np.concatenate(Fs)]
    return uniq, F, np.concatenate(UVs), np.concatenate(Ss)


def box(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, rects: dict[str, Rect] | None = None,
        deform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
    """Closed, subdivided box whose lattice planes sit at ``xs``, ``ys``, ``zs``.

    xs, ys, zs: increasing coordinates (meters) of the grid planes, each >= 2 long.
    deform(V, L) -> V' may move vertices (V (v, 3) meters, L (v, 3) lattice
    indices), e.g. to puff a pillow; it must not fold the surface.
    Returns V, F, UV and side (n,) index into :data:`SIDES`.
    """
    xs, ys, zs = (np.asarray(a, np.float64) for a in (xs, ys, zs))
    L, F, UV, side = lattice_box(len(xs) - 1, len(ys) - 1, len(zs) - 1, rects)
    V = np.stack([xs[L[:, 0]], ys[L[:, 1]], zs[L[:, 2]]], 1)
    if deform is not None:
        V = deform(V, L)
    return V, F, UV, side


def divisions(length: float, target: float, lo: int = 1, hi: int = 40) -> int:
    """Number of cells so that cells are about ``target`` long (both meters)."""
    return int(np.clip(round(length / target), lo, hi))


def loft(rings: np.ndarray, pole_start: np.ndarray | None = None, pole_end: np.ndarray | None = None,
         band: tuple[int, int] | None = None, rect: Rect | None = None):
    """Closed surface through rings (m, c, 3), each ring counter-clockwise about
    the direction of travel (ring 0 -> ring m-1), closed by fans to the poles.

    band=(r0, r1): rings r0..r1 carry uv into ``rect`` (u around, v along travel).
    Without poles both ends stay open (use only inside :func:`revolve_loop`).
    """
    m, c, _ = rings.shape
    V = [rings.reshape(-1, 3)]
    F, uv01, rows = quad_grid(c, m - 1, closed_u=True)
    UV = np.zeros_like(uv01)
    if band is not None and rect is not None:
        r0, r1 = band
        sel = (rows >= r0) & (rows < r1)
        t = uv01[sel].copy()
        t[..., 1] = (t[..., 1] * (m - 1) - r0) / (r1 - r0)
        UV[sel] = to_rect(t, rect)
    Fs, UVs = [F], [UV]
    i = np.arange(c)
    i1 = (i + 1) % c
    n = len(V[0])
    if pole_start is not None:
        V.append(np.asarray(pole_start, np.float64).reshape(1, 3))
        Fs.append(np.stack([np.full(c, n), i1, i], 1))
        UVs.append(np.zeros((c, 3, 2)))
        n += 1
    if pole_end is not None:
        V.append(np.asarray(pole_end, np.float64).reshape(1, 3))
        base = (m - 1) * c
        Fs.append(np.stack([base + i, base + i1, np.full(c, n)], 1))
        UVs.append(np.zeros((c, 3, 2)))
    return np.concatenate(V), np.concatenate(Fs), np.concatenate(UVs)


def _in_polygon(P: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(k,) bool: points P (k, 2) strictly inside the closed polygon (c, 2) (even-odd)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    x, y = P[:, 0:1], P[:, 1:2]
    straddle = (a[None, :, 1] > y) != (b[None, :, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = a[None, :, 0] + (y - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (b[None, :, 1] - a[None, :, 1])
    return (straddle & (x < xc)).sum(1) % 2 == 1


def _segment_distance(P: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(k,) distance from points P (k, 2) to the closed polygon outline (c, 2)."""
    a, d = poly, np.roll(poly, -1, axis=0) - poly
    t = np.einsum("kcj,cj->kc", P[:, None] - a[None], d) / np.maximum((d * d).sum(1), 1e-300)
    q = a[None] + np.clip(t, 0.0, 1.0)[..., None] * d[None]
    return np.linalg.norm(P[:, None] - q, axis=2).min(1)


def polygon_cap(ring: np.ndarray, edge: float):
    """Triangulate the inside of a closed planar ring (c, 3) with well-shaped
    triangles about ``edge`` meters on a side (a Delaunay mesh of the ring and
    a triangular lattice of interior points), the ring's own edges kept.

    Returns interior vertices W (k, 3) and faces (n, 3) indexing
    ``concatenate([ring, W])``, wound counter-clockwise about the ring's
    direction (right-hand rule over the ring order). Lattice points closer to
    the outline than half an edge, or inside the circle on any ring edge as
    diameter, are dropped: then every ring edge is a Delaunay edge, so the
    triangles inside the ring tile it exactly (checked: raises ValueError on a
    ring that is not planar or not simple, or whose own vertices fall inside
    such a circle, as at a sharp inward corner).
    """

    ring = np.asarray(ring, np.float64)
    c = len(ring)
    g = ring.mean(0)
    a, b = ring - g, np.roll(ring, -1, axis=0) - g
    nrm = np.cross(a, b).sum(0)  # Newell: twice the vector area
    size = float(np.ptp(ring, axis=0).max())
    if np.linalg.norm(nrm) < 1e-12 * max(size, 1e-9) ** 2:
        raise ValueError(f"polygon_cap: ring of {c} points encloses no area")
    nrm /= np.linalg.norm(nrm)
    if np.abs(a @ nrm).max() > 1e-6 * size:
        raise ValueError(f"polygon_cap: ring is not planar (off its plane by {np.abs(a @ nrm).max():.3g} m)")
    e1 = a[np.argmax(np.linalg.norm(a, axis=1))]
    e1 = e1 - (e1 @ nrm) * nrm
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(nrm, e1)
    poly = np.stack([a @ e1, a @ e2], 1)  # counter-clockwise in (e1, e2)

    lo, hi = poly.min(0), poly.max(0)
    dy = edge * np.sqrt(3) / 2
    J = np.arange(np.floor(lo[1] / dy), np.ceil(hi[1] / dy) + 1)
    I = np.arange(np.floor(lo[0] / edge) - 1, np.ceil(hi[0] / edge) + 2)
    JJ, II = np.meshgrid(J, I, indexing="ij")
    L = np.stack([(II + 0.5 * (JJ % 2)) * edge, JJ * dy], -1).reshape(-1, 2)
    L = L[_in_polygon(L, poly)]
    if len(L):
        L = L[_segment_distance(L, poly) > 0.5 * edge]
    if len(L):
        mid = 0.5 * (poly + np.roll(poly, -1, axis=0))
        rad = 0.5 * np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1)
        d = np.linalg.norm(L[:, None] - mid[None], axis=2)
        L = L[np.all(d > 1.05 * rad[None] + 1e-9 * size, axis=1)]
    # far ghost points: no ring point is on the convex hull, where qhull would join
    # collinear ring points (straight sides) by flat triangles
    t = 2 * np.pi * np.arange(8) / 8
    ghosts = 10 * size * np.stack([np.cos(t), np.sin(t)], 1)
    pts = np.concatenate([poly, L, ghosts])
    tri = Delaunay(pts).simplices.astype(np.int64)
    T = pts[tri]
    cross = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
    keep = _in_polygon(T.mean(1), poly) & (np.abs(cross) > 1e-12 * size ** 2) & np.all(tri < c + len(L), axis=1)
    tri, cross = tri[keep], cross[keep]
    tri[cross < 0] = tri[cross < 0][:, ::-1]
    # a tiling of the ring: c + 2k - 2 triangles, each ring edge used once, forward
    ed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    ring_e = {(i, (i + 1) % c) for i in range(c)}
    if len(tri) != c + 2 * len(L) - 2 or not ring_e <= set(map(tuple, ed.tolist())):
        raise ValueError(f"polygon_cap: could not tile the ring of {c} points (not simple?)")
    return g + L[:, :1] * e1 + L[:, 1:] * e2, tri


def capped_loft(rings: np.ndarray, cap_rings: int = 2, band=None, rect=None, cap_edge: float | None = None):
    """Loft closed at both ends. rings (m, c, 3).

    cap_edge None: caps of ``cap_rings`` concentric inset rings shrinking to the
    ring centroid, then a fan (nicer than one fan, but its triangles are long
    and thin on elongated outlines). cap_edge (meters): each end ring must be
    planar; it is closed by :func:`polygon_cap`, well-shaped triangles about
    ``cap_edge`` on a side (``cap_rings`` is then unused). Caps carry no uv.
    """
    if cap_edge is not None:
        V, F, UV = loft(rings, band=band, rect=rect)
        m, c, _ = rings.shape
        Vs, Fs = [V], [F]
        n = len(V)
        for r, flip in ((0, True), (m - 1, False)):
            W, tri = polygon_cap(rings[r], cap_edge)
            idx = np.concatenate([r * c + np.arange(c), n + np.arange(len(W))])
            f = idx[tri]
            Vs.append(W)
            Fs.append(f[:, ::-1] if flip else f)
            n += len(W)
        Fc = np.concatenate(Fs)
        UVc = np.concatenate([UV, np.zeros((len(Fc) - len(F), 3, 2))])
        return np.concatenate(Vs), Fc, UVc

    def inset(ring, reverse):
        g = ring.mean(0)
        s = np.arange(cap_rings, 0, -1) / (cap_rings + 1)  # not 1, not 0
        out = [g + k * (ring - g) for k in s[::-1]] if reverse else [g + k * (ring - g) for k in s]
        return out, g

    start, g0 = inset(rings[0], reverse=True)
    end, g1 = inset(rings[-1], reverse=False)
    all_rings = np.stack(start + list(rings) + end)
    if band is not None:
        band = (band[0] + cap_rings, band[1] + cap_rings)
    return loft(all_rings, pole_start=g0, pole_end=g1, band=band, rect=rect)


def circle(r: float, z: float, n: int, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    """(n, 3) ring counter-clockwise about +z; vertex 0 on +x so extents are exact
    when n is divisible by 4."""
    t = 2 * np.pi * np.arange(n) / n
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)], 1)


def revolve_loop(profile_rz: np.ndarray, n: int, printed_segments=(), rect: Rect | None = None):
    """Revolve a closed (r, z) polygon (counter-clockwise in the r-z plane, all
    r > 0) about z: a closed ring-shaped solid (e.g. a label sleeve).

    printed_segments: profile segment indices that get uv (u around, v along
    those segments in order) into ``rect``.
    """
    p = np.asarray(profile_rz, np.float64)
    m = len(p)
    rings = np.stack([circle(r, z, n) for r, z in p])
    V = rings.reshape(-1, 3)
    F, uv01, rows = quad_grid(n, m, closed_u=True, closed_v=True)
    UV = np.zeros_like(uv01)
    segs = list(printed_segments)
    if segs and rect is not None:
        k = len(segs)
        for j, s in enumerate(segs):
            sel = rows == s
            t = uv01[sel].copy()
            t[..., 1] = (t[..., 1] * m - s + j) / k
            UV[sel] = to_rect(t, rect)
    return V, F, UV


def rounded_rect(hx: float, hy: float, r: float, n_arc: int = 6, step: float = 0.02) -> np.ndarray:
    """(c, 2) counter-clockwise outline of a rounded rectangle, half sizes hx, hy,
    corner radius 0 < r < min(hx, hy); extents are exact. step: max straight
    segment length (meters)."""
    pts = []
    cs = [(hx - r, hy - r), (-(hx - r), hy - r), (-(hx - r), -(hy - r)), (hx - r, -(hy - r))]
    for k, (cx, cy) in enumerate(cs):
        a = np.deg2rad(90 * k + np.linspace(0, 90, n_arc + 1))
        arc = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
        pts.append(arc)
        nx_, ny_ = cs[(k + 1) % 4]
        end = arc[-1]
        nxt = np.array([nx_ + r * np.cos(np.deg2rad(90 * (k + 1))), ny_ + r * np.sin(np.deg2rad(90 * (k + 1)))])
        length = np.linalg.norm(nxt - end)
        ns = max(1, int(np.ceil(length / step)))
        t = np.arange(1, ns)[:, None] / ns
        pts.append(end + t * (nxt - end))
    return np.concatenate(pts)


def signed_volume(V: np.ndarray, F: np.ndarray) -> float:
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def outward(V: np.ndarray, F: np.ndarray, UV: np.ndarray):
    """Flip a closed surface whose faces point inward (negative volume)."""
    if signed_volume(V, F) < 0:
        return V, F[:, ::-1].copy(), UV[:, ::-1].copy()
    return V, F, UV


def hull_points(V: np.ndarray) -> np.ndarray:
    """(k, 3) vertices of the convex hull of V (meters)."""
    h = ConvexHull(V)
    return np.ascontiguousarray(V[np.sort(h.vertices)])


def slices(V: np.ndarray, axis: int, n: int) -> list[np.ndarray]:
    """Convex pieces: hulls of ``n`` overlapping slabs of V along ``axis``.

    Soft shapes (mailers, pouches) keep their thin edges this way, where one
    hull would fill them in.
    """
    lo, hi = V[:, axis].min(), V[:, axis].max()
    edges = np.linspace(lo, hi, n + 1)
    pad = (hi - lo) / (4 * n)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (V[:, axis] >= a - pad) & (V[:, axis] <= b + pad)
        if sel.sum() >= 4:
            out.append(hull_points(V[sel]))
    return out


def round_edges(V: np.ndarray, lo, hi, r_lo, r_hi) -> np.ndarray:
    """Round the edges of an axis-aligned box surface [lo, hi] (meters).

    V (v, 3): vertices on (or inside) the box; lo, hi (3,) its corners; r_lo,
    r_hi (3,) the radius of rounding on the low and high side of each axis
    (0 keeps that side's edges sharp; a radius per side gives elliptic edges
    where two radii differ). Each vertex's offset p from the inner box
    [lo + r_lo, hi - r_hi], scaled by the radii to q, is mapped from the unit
    cube to the unit ball (q |q|_inf / |q|_2): a continuous bijection, so a
    lattice box stays closed and unfolded, faces stay on their side, and box
    extents are kept (face centres do not move). Needs lattice planes at
    ``lo + r_lo`` and ``hi - r_hi`` (and between, for a rounder arc).
    Returns the moved (v, 3) vertices.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    r_lo, r_hi = np.asarray(r_lo, np.float64), np.asarray(r_hi, np.float64)
    c = np.clip(V, lo + r_lo, hi - r_hi)
    p = V - c
    r = np.where(p < 0, r_lo, r_hi) * np.ones_like(p)
    q = np.divide(p, r, out=np.zeros_like(p), where=r > 0)
    n2 = np.linalg.norm(q, axis=1)
    s = np.divide(np.abs(q).max(1), n2, out=np.ones_like(n2), where=n2 > 0)
    return c + q * s[:, None] * r


def planes(lo: float, hi: float, target: float, extra=(), lo_n: int = 1, hi_n: int = 40) -> np.ndarray:
    """Increasing grid-plane coordinates from lo to hi (meters): about ``target``
    apart, plus the ``extra`` coordinates inside (lo, hi) (e.g. where edges round
    off); a regular plane closer than 0.4 spacings to an extra one is dropped,
    so no cell becomes a sliver."""
    n = divisions(hi - lo, target, lo_n, hi_n)
    base = np.linspace(lo, hi, n + 1)
    ex = np.asarray([e for e in extra if lo < e < hi], np.float64)
    if len(ex) == 0:
        return base
    inner = base[1:-1]
    inner = inner[np.abs(inner[:, None] - ex[None]).min(1) > 0.4 * (hi - lo) / n]
    return np.unique(np.concatenate([[lo], ex, inner, [hi]]))


def fit_pieces(pieces: list, lo, hi) -> list:
    """Map closed pieces ``(V, F, UV)`` by one per-axis affine map so that their
    union's bounding box is exactly [lo, hi] (meters, (3,) each).

    Products whose surface is displaced after layout (bulging flaps, lifted tape,
    wrinkles) land on their requested dimensions this way; the map is a tiny
    stretch (the displacement over the size), keeps every piece closed and
    keeps pieces that did not intersect apart."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    allv = np.concatenate([p[0] for p in pieces])
    a0, a1 = allv.min(0), allv.max(0)
    k = (hi - lo) / (a1 - a0)
    return [((V - a0) * k + lo,) + tuple(rest) for V, *rest in pieces]


def wrinkle_field(rng: np.random.Generator, P: np.ndarray, wavelength: float, excess: float,
                  n_waves: int = 3, noise: float = 0.25) -> np.ndarray:
    """Height field of compressed-film wrinkles at points P (k, 2) (meters).

    A few oriented sinusoids (one dominant direction, the others within
    +-50 degrees of it, wavelengths 0.7-1.3 x ``wavelength``), each with a phase
    that wanders slowly (low-frequency phase noise, so crests bend and end),
    plus ``noise`` x amplitude of smooth noise. The amplitude follows from the
    excess length to absorb (inextensible film: A ~ (lambda / pi) sqrt(excess),
    Cerda and Mahadevan 2003), split over the waves. Returns (k,) meters.
    """
    P = np.asarray(P, np.float64)
    amp = wavelength / np.pi * np.sqrt(max(excess, 0.0))
    th0 = rng.uniform(0, np.pi)
    out = np.zeros(len(P))
    w = rng.uniform(0.4, 1.0, n_waves)
    w[0] = 1.0
    w = w / np.sqrt((w ** 2).sum())
    for j in range(n_waves):
        th = th0 + (0 if j == 0 else rng.uniform(-0.9, 0.9))
        lam = wavelength * rng.uniform(0.7, 1.3)
        d = np.array([np.cos(th), np.sin(th)])
        e = np.array([-d[1], d[0]])
        u, v = P @ d, P @ e
        # slow phase wander along the crest direction: crests curve and fork
        ph = rng.uniform(0, 2 * np.pi) + sum(rng.uniform(0.5, 1.5) * np.sin(v / (lam * rng.uniform(2, 5)) + rng.uniform(0, 6.3))
                                             for _ in range(2))
        # crest strength varies along the crest: wrinkles fade in and out
        env = 0.6 + 0.4 * np.sin(v / (lam * rng.uniform(1.5, 4)) + rng.uniform(0, 6.3))
        out += w[j] * env * np.sin(2 * np.pi * u / lam + ph)
    k = rng.normal(size=(4, 2)) / (0.6 * wavelength)
    phs = rng.uniform(0, 2 * np.pi, 4)
    out += noise * np.sum([np.sin(P @ k[i] + phs[i]) for i in range(4)], axis=0) / 2
    return amp * out
