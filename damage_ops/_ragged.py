"""Ragged cut outlines and layered cutters shared by tear and puncture (private).

A torn edge in board or paper is a smooth guide curve with stochastic detail on
every scale down to the fibres (Lejemble et al., MIG 2015): here 1/f^beta value
noise summed over octaves from a few cm down to ~1 mm, offset along the smooth
guide's normal. The two liners of corrugated board tear apart from each other,
so a layered cut is a *stepped* solid: the outer liner is cut along an outline
that lies a band of a few mm outside the core's, and the fluted core shows in
that band (the step floor) and on the walls below it.

All lengths are meters; 2-D outlines live in a tangent frame (e1, e2) of the
surface with e1 x e2 = n.
"""
from __future__ import annotations

import manifold3d as mf
import numpy as np
from scipy.spatial import cKDTree

from damage_ops.product import FINISH_IDS, normals_areas


def pink_noise(rng: np.random.Generator, s: np.ndarray, lam_min: float, lam_max: float,
               beta: float = 1.6) -> np.ndarray:
    """1/f^beta value noise along the arclength samples ``s`` (k,) m.

    Octaves of wavelength lam_max, lam_max / 2, ... down to >= lam_min (m); an
    octave's amplitude goes as lam^((beta - 1) / 2), so beta = 1 is pink (equal
    power per octave) and larger beta favours the coarse scales. Each octave is
    C1 value noise (random knots every wavelength, smoothstep between).
    Returns (k,) values normalised so the finest octave has amplitude 1."""
    s = np.asarray(s, float)
    out = np.zeros_like(s)
    lam = lam_max
    lams = []
    while lam >= lam_min * 0.999:
        lams.append(lam)
        lam /= 2.0
    if not lams:
        lams = [lam_min]
    s0 = float(s.min()) if len(s) else 0.0
    for lam in lams:
        x = (s - s0) / lam + rng.uniform(0.0, 1.0)
        knots = rng.uniform(-1.0, 1.0, int(np.floor(x.max() if len(x) else 0.0)) + 2)
        i = np.floor(x).astype(np.int64)
        f = x - i
        w = f * f * (3.0 - 2.0 * f)
        out += (lam / lams[-1]) ** ((beta - 1.0) / 2.0) * (knots[i] * (1 - w) + knots[i + 1] * w)
    return out


def pink_noise_loop(rng: np.random.Generator, n: int, perimeter: float, lam_min: float,
                    beta: float = 1.6) -> np.ndarray:
    """Periodic 1/f^beta value noise at n equally spaced points round a closed
    loop of ``perimeter`` m (octaves from perimeter / 3 down to >= lam_min, as
    :func:`pink_noise`; each octave's knot count is a whole number, so the
    loop closes smoothly). Returns (n,) values, zero mean, unit std."""
    t = np.arange(n) / n
    out = np.zeros(n)
    lam = perimeter / 3.0
    lams = []
    while lam >= lam_min * 0.999 and len(lams) < 10:
        lams.append(lam)
        lam /= 2.0
    for lam in lams or [perimeter / 3.0]:
        k = max(int(round(perimeter / lam)), 3)
        knots = rng.uniform(-1.0, 1.0, k)
        x = t * k + rng.uniform(0.0, 1.0)
        i = np.floor(x).astype(np.int64)
        f = x - i
        w = f * f * (3.0 - 2.0 * f)
        out += (lam / (lams[-1] if lams else lam)) ** ((beta - 1.0) / 2.0) * (knots[i % k] * (1 - w) + knots[(i + 1) % k] * w)
    out -= out.mean()
    return out / max(float(out.std()), 1e-12)


def resample(P: np.ndarray, ds: float) -> tuple[np.ndarray, np.ndarray]:
    """Polyline P (k, 2) resampled at arclength spacing ~ds (both ends kept).
    Returns (Q (j, 2), arclength (j,))."""
    seg = np.linalg.norm(np.diff(P, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / ds)), 2)
    t = np.linspace(0.0, s[-1], n + 1)
    return np.stack([np.interp(t, s, P[:, 0]), np.interp(t, s, P[:, 1])], 1), t


def smooth_polyline(P: np.ndarray, width: float, ds: float) -> np.ndarray:
    """Moving-average smoothing of a uniformly sampled polyline P (k, 2) (spacing
    ds) over ``width`` m; the ends are padded by linear extrapolation so straight
    ends stay straight. Rounds corners to a radius ~ width / 4."""
    h = max(int(round(width / ds / 2)), 1)
    if len(P) < 3:
        return P.copy()
    a = P[0] + (P[0] - P[1])[None] * np.arange(h, 0, -1)[:, None]
    b = P[-1] + (P[-1] - P[-2])[None] * np.arange(1, h + 1)[:, None]
    Q = np.concatenate([a, P, b])
    c = np.cumsum(np.concatenate([np.zeros((1, 2)), Q]), axis=0)
    return (c[2 * h + 1:] - c[:-2 * h - 1]) / (2 * h + 1)


def right_normals(P: np.ndarray) -> np.ndarray:
    """(k, 2) unit right-hand normals of a polyline (central differences)."""
    d = np.gradient(P, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-15)
    return np.stack([d[:, 1], -d[:, 0]], 1)


def segments_cross(P: np.ndarray, closed: bool = True, Q: np.ndarray | None = None, reach: float | None = None) -> bool:
    """Whether the polygon P (k, 2) crosses itself, or (with Q) whether P and Q
    cross or come within ``reach`` of touching. Only segment pairs whose
    midpoints lie within twice the longest segment are tested (outlines built by
    small offsets go wrong locally), so the cost is ~linear."""

    def segs(X):
        Y = np.roll(X, -1, axis=0) if closed else X[1:]
        return (X if closed else X[:-1]), Y

    a0, a1 = segs(P)
    if Q is None:
        b0, b1 = a0, a1
    else:
        b0, b1 = segs(Q)
    la, lb = np.linalg.norm(a1 - a0, axis=1), np.linalg.norm(b1 - b0, axis=1)
    lref = 3.0 * float(np.median(np.concatenate([la, lb])))
    r = 2.0 * lref + (reach or 0.0)
    ta, tb = cKDTree(0.5 * (a0 + a1)), cKDTree(0.5 * (b0 + b1))
    pr = ta.query_ball_tree(tb, r)
    ii = np.repeat(np.arange(len(pr)), [len(p) for p in pr])
    jj = np.concatenate([np.asarray(p, np.int64) for p in pr]) if len(ii) else np.zeros(0, np.int64)
    # the few long segments (a hinge) against everything
    la_long, lb_long = np.flatnonzero(la > lref), np.flatnonzero(lb > lref)
    ii = np.concatenate([ii, np.repeat(la_long, len(b0)), np.tile(np.arange(len(a0)), len(lb_long))])
    jj = np.concatenate([jj, np.tile(np.arange(len(b0)), len(la_long)), np.repeat(lb_long, len(a0))])
    if Q is None:
        na = len(a0)
        adj = (jj == ii) | (jj == (ii + 1) % na) | (ii == (jj + 1) % na)
        keep = ~adj & (jj > ii)
        ii, jj = ii[keep], jj[keep]
    if len(ii) == 0:
        return False
    p, p2, q, q2 = a0[ii], a1[ii], b0[jj], b1[jj]

    def orient(a, b, c):
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    d1, d2, d3, d4 = orient(q, q2, p), orient(q, q2, p2), orient(p, p2, q), orient(p, p2, q2)
    if ((d1 * d2 <= 0) & (d3 * d4 <= 0)).any():
        return True
    if reach:
        # closest approach of the two point sets (a band narrower than reach)
        dd, _ = tb.query(a0)
        return bool(dd.min() < reach)
    return False


def signed_area(p: np.ndarray) -> float:
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def _triangulate(polys: list[np.ndarray]) -> np.ndarray:

    return np.asarray(mf.triangulate([np.ascontiguousarray(p, np.float64) for p in polys]), np.int64)


#: kinds of the faces of :func:`stepped_prism`
TOP, BOTTOM, OUTER_SIDE, STEP, INNER_SIDE = 0, 1, 2, 3, 4


def stepped_prism(outer: np.ndarray, inner: np.ndarray, origin: np.ndarray, e1: np.ndarray, e2: np.ndarray,
                  n: np.ndarray, top: float, mid: float, bottom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed stepped solid: the outline ``outer`` (m1, 2, counter-clockwise)
    extruded from ``top`` to ``mid`` (m along n) on top of ``inner`` (m2, 2,
    counter-clockwise, strictly inside outer) extruded from ``mid`` to
    ``bottom`` (top > mid > bottom). The ring between the two outlines at
    ``mid`` is the step.

    Returns (V (2 m1 + 2 m2, 3): rings outer@top, outer@mid, inner@mid,
    inner@bottom; F (k, 3) wound outward; (k,) kind: TOP, BOTTOM, OUTER_SIDE,
    STEP (faces -n) or INNER_SIDE)."""
    m1, m2 = len(outer), len(inner)

    def ring(p2, h):
        return origin + p2[:, :1] * e1 + p2[:, 1:] * e2 + h * n

    V = np.concatenate([ring(outer, top), ring(outer, mid), ring(inner, mid), ring(inner, bottom)])
    o_top, o_mid, i_mid, i_bot = 0, m1, 2 * m1, 2 * m1 + m2

    def up(tri, pts):  # 2-D counter-clockwise = +n (e1 x e2 = n)
        a = pts[tri]
        c = (a[:, 1, 0] - a[:, 0, 0]) * (a[:, 2, 1] - a[:, 0, 1]) - (a[:, 1, 1] - a[:, 0, 1]) * (a[:, 2, 0] - a[:, 0, 0])
        return np.where((c < 0)[:, None], tri[:, ::-1], tri)

    cap_t = up(_triangulate([outer]), outer) + o_top
    cap_b = up(_triangulate([inner]), inner)[:, ::-1] + i_bot
    both = np.concatenate([outer, inner[::-1]])
    st = up(_triangulate([outer, inner[::-1]]), both)[:, ::-1]
    st = np.where(st < m1, st + o_mid, i_mid + (m2 - 1 - (st - m1)))

    def side(a0, b0, m):
        i = np.arange(m)
        j = (i + 1) % m
        # counter-clockwise outline: outward is right of i -> j; (a_i, b_i, b_j) then faces outward
        return np.concatenate([np.stack([a0 + i, b0 + i, b0 + j], 1), np.stack([a0 + i, b0 + j, a0 + j], 1)])

    so, si = side(o_top, o_mid, m1), side(i_mid, i_bot, m2)
    F = np.concatenate([cap_t, cap_b, so, st, si])
    kind = np.concatenate([np.full(len(cap_t), TOP), np.full(len(cap_b), BOTTOM), np.full(len(so), OUTER_SIDE),
                           np.full(len(st), STEP), np.full(len(si), INNER_SIDE)])
    return V, F, kind


#: parts behind a through cut that show as the item's dark inside (other parts,
#: units and contents, show as they are)
DARK_BEHIND = ("body", "flap", "seal", "film")
#: tint of the faces behind a through cut (with finish ``interior``)
BEHIND_TINT = 0.45


def behind(V: np.ndarray, F: np.ndarray, part_ids: np.ndarray, parts, poly: np.ndarray, p: np.ndarray,
           e1: np.ndarray, e2: np.ndarray, n: np.ndarray, thick: float) -> np.ndarray:
    """(len(F),) bool: faces that a through cut of outline ``poly`` (m, 2) in the
    frame (p, e1, e2, n) opens a view onto: facing the viewer (normal . n > 0.3),
    more than thick / 2 and less than 0.25 m behind the surface, overlapping the
    outline in projection, of a part named in DARK_BEHIND."""

    if len(F) == 0:
        return np.zeros(0, bool)
    T = V[F]
    rel = T - p
    h = rel @ n
    ok_part = np.isin(part_ids, [i for i, q in enumerate(parts) if q.name in DARK_BEHIND])
    fn, _ = normals_areas(V, F)
    r = float(np.linalg.norm(poly, axis=1).max())
    x, y = rel @ e1, rel @ e2
    cand = ok_part & (fn @ n > 0.3) & (h.max(1) < -0.5 * thick) & (h.min(1) > -0.25) \
        & (x.min(1) < r) & (x.max(1) > -r) & (y.min(1) < r) & (y.max(1) > -r)
    idx = np.flatnonzero(cand)
    if not len(idx):
        return cand
    tri = np.stack([x[idx], y[idx]], -1)                 # (k, 3, 2)
    hit = in_poly(tri.reshape(-1, 2), poly).reshape(-1, 3).any(1) | in_poly(tri.mean(1), poly)
    # outline points inside a (large) triangle
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    q = poly[:: max(1, len(poly) // 32)]

    def side(u, v):
        return (v[:, None, 0] - u[:, None, 0]) * (q[None, :, 1] - u[:, None, 1]) \
            - (v[:, None, 1] - u[:, None, 1]) * (q[None, :, 0] - u[:, None, 0])
    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    hit |= inside.any(1)
    out = np.zeros(len(F), bool)
    out[idx[hit]] = True
    return out


def in_poly(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(k,) bool: points q (k, 2) inside polygon poly (m, 2) (crossing number)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    yq = q[:, None, 1]
    straddle = (a[None, :, 1] > yq) != (b[None, :, 1] > yq)
    t = (yq - a[None, :, 1]) / np.where(b[None, :, 1] == a[None, :, 1], 1e-30, b[None, :, 1] - a[None, :, 1])
    xc = a[None, :, 0] + t * (b[None, :, 0] - a[None, :, 0])
    return ((straddle & (q[:, None, 0] < xc)).sum(1) % 2) == 1


def paint_dark(attrs: dict, faces: np.ndarray) -> None:
    """The item's dark inside on ``faces`` (in place on face attributes)."""

    attrs["finish"][faces] = FINISH_IDS["interior"]
    attrs["tint"][faces] = np.float32(BEHIND_TINT)
