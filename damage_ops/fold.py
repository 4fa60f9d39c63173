"""Fold and crease machinery for the ``crush`` operator (private).

Every profile here is a *height field over the lateral plane* of a push
direction ``b``: a callable ``h(P) -> (n,)`` of lateral coordinates ``P``
((n, 2) meters, in a frame ``(e1, e2)`` normal to ``b`` around an apex ``c``)
giving the displacement along ``b`` in meters (inward positive). The crush
operator turns it into the shear ``x -> x + h(lat(x)) g(t(x)) b`` (see
``damage_ops/crush.py``): the coordinates across ``b`` never change, so the
lateral profile may have arbitrarily steep, sharp creases and the map stays
injective on all of space (only the slope along ``b`` is bounded).

Sharp but conforming. A crease is a kink of ``h``: the profiles are built
from piecewise-linear pieces (planes, tents, pyramids, hip roofs) whose kinks
are rounded over a narrow band ``beta`` (a Huber-rounded ``|x|``, C1 with
curvature 1 / beta), so a fine mesh resolves the ridge as a real fold while
the surface stays continuous and closed. On a flat panel, a piece of slope
``tan(theta)`` next to a flat piece is the panel folded by ``theta`` about the
crease line; the fold is a shear, not a rigid rotation: in-plane lengths
across the line are kept, so the folded side stretches by
``1 / cos(theta) - 1`` (6 % at 20 degrees, 15 % at 30). That is what we give
up (isometry of the board) for the injectivity guarantee; no relaxation is run.

The planar pieces meet along lines that cross at points: a pyramid over a
polygon with a few facets is a cone whose ridges radiate from its apex, the
d-cone of a crushed sheet (Cerda et al. 1999; Witten 2007).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _surface as S


def soft_abs(x: np.ndarray, beta: float) -> np.ndarray:
    """|x| with its kink rounded over |x| < beta (Huber: x^2 / 2 beta + beta / 2)."""
    ax = np.abs(x)
    if beta <= 0:
        return ax
    return np.where(ax < beta, 0.5 * (x * x / beta + beta), ax)


def soft_max(a: np.ndarray, b: np.ndarray, beta: float) -> np.ndarray:
    """max(a, b) with the crease where a == b rounded over |a - b| < beta."""
    return 0.5 * (a + b + soft_abs(a - b, beta))


def soft_relu(x: np.ndarray, beta: float) -> np.ndarray:
    """max(x, 0), rounded over |x| < beta (never negative)."""
    return soft_max(x, np.zeros_like(x), beta)


def unit(phi: np.ndarray) -> np.ndarray:
    """(k, 2) unit vectors at angles ``phi`` (radians)."""
    phi = np.atleast_1d(phi)
    return np.stack([np.cos(phi), np.sin(phi)], axis=1)


def radiating_normals(rng: np.random.Generator, k: int, jitter: float = 0.12) -> np.ndarray:
    """(k, 2) outward facet normals of a pyramid: k directions round the circle,
    each jittered by up to ``jitter`` of the even spacing, so consecutive
    normals stay less than 180 degrees apart (the facets close round the apex)."""
    step = 2 * np.pi / k
    phi = rng.uniform(0, 2 * np.pi) + step * np.arange(k) + rng.uniform(-jitter, jitter, k) * step
    return unit(phi)


def terrace(level: np.ndarray, knots: np.ndarray, slopes: np.ndarray, beta: float) -> np.ndarray:
    """Piecewise-linear function of ``level`` (meters): 0 for level <= 0,
    then slope ``slopes[i]`` between ``knots[i]`` and ``knots[i + 1]``
    (``knots[0] == 0``), kinks rounded over ``beta``. Each kink is a crease
    parallel to the level lines: a band of parallel creases."""
    out = slopes[0] * soft_relu(level, beta)
    for k, s0, s1 in zip(knots[1:], slopes[:-1], slopes[1:]):
        out = out + (s1 - s0) * soft_relu(level - k, beta)
    return out


def crease_band(rng: np.random.Generator, width: float, n: int, steep: float = 1.7) -> tuple[np.ndarray, np.ndarray]:
    """(knots, slopes) of a :func:`terrace` that rises by ``width`` over [0, width]
    (mean slope 1) in ``n + 1`` pieces of alternating steep / shallow slope:
    ``n`` parallel creases, alternately mountain and valley."""
    w = rng.uniform(0.6, 1.4, n + 1)
    knots = np.concatenate([[0.0], np.cumsum(w)[:-1]]) / w.sum() * width
    lens = np.diff(np.concatenate([knots, [width]]))
    s = np.where(np.arange(n + 1) % 2 == 0, steep, 2.0 - steep)
    s = s * width / float((s * lens).sum())  # total rise = width exactly
    return knots, s


@dataclass
class Pyramid:
    """Cone over a polygon: h = depth * r(R - R N(p)), N(p) = max_i p.n_i / s_i
    (facets with outward normals n_i, scaled by s_i), capped at |p| / cap
    so the support stays within ``cap`` of the apex. The ridges (where two
    facets meet) radiate from the apex; the rim (h = 0) is a crease too.
    r: identity or a :func:`terrace` (rings of creases round the apex)."""

    depth: float
    radius: float
    normals: np.ndarray
    scales: np.ndarray
    beta: float
    cap: float
    band: tuple[np.ndarray, np.ndarray] | None = None
    _r0: float | None = field(default=None, init=False, repr=False)

    def level(self, P: np.ndarray) -> np.ndarray:
        """(n,) meters inward from the rim (R at the apex, <= 0 outside)."""
        g = np.linalg.norm(P, axis=1) * (self.radius / self.cap)
        for n, s in zip(self.normals, self.scales):
            g = soft_max(g, (P @ n) * (1.0 / s), self.beta)
        return self.radius - g

    def __call__(self, P: np.ndarray) -> np.ndarray:
        lv = self.level(P)
        if self._r0 is None:  # the apex's value, once (the field is called many times)
            top = np.array([self.radius - self._apex_gauge()])
            f0 = soft_relu(top, self.beta) if self.band is None else terrace(top, *self.band, self.beta)
            self._r0 = max(float(f0[0]), 1e-12)
        r = soft_relu(lv, self.beta) if self.band is None else terrace(lv, *self.band, self.beta)
        return self.depth * r / self._r0  # exactly ``depth`` at the apex

    def _apex_gauge(self) -> float:
        return float(self.radius - self.level(np.zeros((1, 2)))[0])

    def support_radius(self) -> float:
        # level <= R - |p| R / cap, and the rounded relu vanishes below -beta
        return self.cap * (1.0 + self.beta / self.radius) + self.beta


@dataclass
class HipRoof:
    """A crease line through the apex along unit ``axis`` (2,): h = depth *
    r(W - W G), G = max(|d| / W, (|s| - half) / (slope W)) with d the lateral
    distance to the line and s the coordinate along it: a ridge of half-width
    W, flat-topped nowhere, ending in two sloped triangular hips (creases
    running diagonally to the line's ends). r: identity or a :func:`terrace`
    (parallel creases along the ridge, the band of an edge crush)."""

    depth: float
    width: float
    half: float
    axis: np.ndarray
    beta: float
    slope: float = 1.0
    band: tuple[np.ndarray, np.ndarray] | None = None
    _r0: float | None = field(default=None, init=False, repr=False)

    def level(self, P: np.ndarray) -> np.ndarray:
        s = P @ self.axis
        d = P @ np.array([-self.axis[1], self.axis[0]])
        g = soft_max(soft_abs(d, self.beta), (soft_abs(s, self.beta) - self.half) / self.slope, self.beta)
        return self.width - g

    def __call__(self, P: np.ndarray) -> np.ndarray:
        lv = self.level(P)
        f = (lambda x: soft_relu(x, self.beta)) if self.band is None else (lambda x: terrace(x, *self.band, self.beta))
        if self._r0 is None:  # the apex's value, once
            self._r0 = max(float(f(self.level(np.zeros((1, 2))))[0]), 1e-12)
        return self.depth * f(lv) / self._r0

    def support_radius(self) -> float:
        return float(np.hypot(self.width, self.half + self.slope * self.width)) + 2 * self.beta


@dataclass
class Creased:
    """``base`` (a profile) times ``1 - mix + mix * M(p)``, M = max over crease
    lines of a tent ``1 - |d_i| / w_i`` (d_i: distance to line i, through
    ``points[i]`` along ``axes[i]``): sharp ridges in random directions over a
    pyramid, a crumple. A line through the apex keeps the apex depth exact."""

    base: Pyramid
    points: np.ndarray
    axes: np.ndarray
    widths: np.ndarray
    mix: float
    beta: float

    def __call__(self, P: np.ndarray) -> np.ndarray:
        M = np.zeros(len(P))
        for q, a, w in zip(self.points, self.axes, self.widths):
            d = (P - q) @ np.array([-a[1], a[0]])
            M = soft_max(M, soft_relu(1.0 - soft_abs(d, self.beta) / w, self.beta / w), self.beta / w)
        M = np.minimum(M, 1.0)
        return self.base(P) * (1.0 - self.mix + self.mix * M)

    def support_radius(self) -> float:
        return self.base.support_radius()


@dataclass
class Buckle:
    """Pinned panel buckle over the rectangle [x0, x0 + a] x [y0, y0 + b] of
    the lateral plane: w = A ((1 - hinge) sin(m pi x/a) + hinge tri(m x/a))
    sin(n pi y/b), tri the unit triangle wave with the sine's zeros and
    extrema: its peaks fold the panel about hinge lines (x = const through
    the lobe extrema). Zero on the rectangle's edges (the stiff panel edges
    stay put) and outside it. Alternate lobes go in and out; the lobe
    holding (x0 + a/(2m), y0 + b/(2n)) goes in (positive)."""

    amp_in: float
    amp_out: float
    x0: float
    a: float
    y0: float
    b: float
    m: int
    n: int
    hinge: float
    beta: float

    def __call__(self, P: np.ndarray) -> np.ndarray:
        x = (P[:, 0] - self.x0) / self.a
        y = (P[:, 1] - self.y0) / self.b
        inside = (x > 0) & (x < 1) & (y > 0) & (y < 1)
        mx = self.m * np.clip(x, 0, 1)
        # triangle wave with period 2 in mx, peaks +-1 at odd halves, kinks rounded
        fr = mx - np.floor(mx)
        tri = 1.0 - soft_abs(2.0 * fr - 1.0, self.beta * 2 * self.m / self.a)
        tri = tri * np.where(np.floor(mx) % 2 == 0, 1.0, -1.0)
        sx = (1 - self.hinge) * np.sin(np.pi * mx) + self.hinge * tri
        w = sx * np.sin(np.pi * self.n * np.clip(y, 0, 1))
        w = np.where(inside, w, 0.0)
        return np.where(w > 0, self.amp_in * w, self.amp_out * w)

    def support_radius(self) -> float:
        return float(np.hypot(self.a, self.b))  # from any apex on the panel


@dataclass
class Wrinkle:
    """Film wrinkles: an oriented sinusoid along compression axis ``axis``
    (2,) with wavelength ``lam`` (m), its phase warped by Perlin noise so the
    crests wander, under the C2 bump envelope (1 - (rho / R)^2)^3. Heights are
    inward positive: crests go out by ``amp_out``, troughs in by ``amp_in``;
    the apex (p = 0) is a crest."""

    amp_out: float
    amp_in: float
    lam: float
    radius: float
    axis: np.ndarray
    noise: S.Noise2 | None = field(repr=False)
    warp: float

    def phase(self, P: np.ndarray) -> np.ndarray:
        ph = 2 * np.pi * (P @ self.axis) / self.lam + 0.5 * np.pi
        if self.noise is not None:
            z = np.zeros(1)
            ph = ph + self.warp * (self.noise(P[:, 0], P[:, 1]) - self.noise(z, z)[0])
        return ph

    def __call__(self, P: np.ndarray) -> np.ndarray:
        wave = np.sin(self.phase(P))
        s2 = np.minimum((P * P).sum(1) / self.radius ** 2, 1.0)
        env = (1.0 - s2) ** 3
        return -env * np.where(wave > 0, self.amp_out * wave, self.amp_in * wave)

    def support_radius(self) -> float:
        return self.radius


def dihedral_turn_deg(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turning angle (degrees, 0 = flat) across every edge shared by exactly
    two faces of ``F`` ((m, 3) int into ``V`` (v, 3) m). Returns (angles (e,),
    edge vertex pairs (e, 2), the two faces of each edge (e, 2))."""
    F = np.asarray(F, np.int64)
    n, _ = S.normals_areas(V, F)
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    fi = np.tile(np.arange(len(F)), 3)
    key = np.minimum(e[:, 0], e[:, 1]) * (len(V) + 1) + np.maximum(e[:, 0], e[:, 1])
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    cnt = np.diff(np.r_[first, len(ks)])
    two = first[cnt == 2]
    fa, fb = fi[order[two]], fi[order[two + 1]]
    cosang = np.clip((n[fa] * n[fb]).sum(1), -1.0, 1.0)
    ed = np.sort(e[order[two]], axis=1)
    return np.degrees(np.arccos(cosang)), ed, np.stack([fa, fb], 1)


@dataclass
class RectSag:
    """A panel crushed in over the whole rectangle [x0, x0 + a] x [y0, y0 + b]
    of the lateral plane, pinned at its edges (the stiff panel edges carry the
    load): h = depth * r(S(p)), S = 1 - max_i q_i, q_i = 1 - (distance of p to
    edge i) / (distance of the apex (0, 0) to edge i). Four planar facets meet
    along ridges running from the apex to the rectangle's corners: the creases
    of a sagging top run in from the corners. r rounds the rim crease (S = 0)
    and is exactly 0 on and outside the rectangle, so the panel's edges and
    the walls below them do not move. The apex (0, 0) must lie inside."""

    depth: float
    x0: float
    a: float
    y0: float
    b: float
    beta: float
    _r1: float | None = field(default=None, init=False, repr=False)

    def level(self, P: np.ndarray) -> np.ndarray:
        """(n,) in [-inf, 1]: 1 at the apex, 0 on the rectangle's edges."""
        x, y = P[:, 0], P[:, 1]
        # distances of the apex to the four edges (the apex is the origin)
        dl, dr, db, dt = -self.x0, self.x0 + self.a, -self.y0, self.y0 + self.b
        s = self.beta / max(min(dl, dr, db, dt), 1e-9)
        q = soft_max(soft_max(-x / dl, x / dr, s), soft_max(-y / db, y / dt, s), s)
        return 1.0 - q

    def _r(self, S: np.ndarray) -> np.ndarray:
        s = self.beta / max(min(-self.x0, self.x0 + self.a, -self.y0, self.y0 + self.b), 1e-9)
        return soft_relu(S - s, s)  # exactly 0 for S <= 0

    def __call__(self, P: np.ndarray) -> np.ndarray:
        if self._r1 is None:
            self._r1 = max(float(self._r(self.level(np.zeros((1, 2))))[0]), 1e-12)
        return self.depth * self._r(self.level(P)) / self._r1

    def support_radius(self) -> float:
        return float(np.hypot(max(-self.x0, self.x0 + self.a), max(-self.y0, self.y0 + self.b))) + 2 * self.beta


@dataclass
class Rack:
    """A box slumped over: points above height ``z0`` (m, item frame) shift
    horizontally along unit ``e`` (3,) by s(z) = terrace(z - z0, knots,
    slopes): the walls fold about horizontal crease lines at ``z0 + knots``
    (a lean of slope ``slopes[0]``, then a Z-fold back where the next slope
    has the other sign). z never changes and each height shifts rigidly, so
    the map is injective on all of space whatever the slopes."""

    z0: float
    knots: np.ndarray
    slopes: np.ndarray
    e: np.ndarray
    beta: float

    def shift(self, z: np.ndarray) -> np.ndarray:
        """(n,) horizontal shift (m) at heights z (n,) m."""
        return terrace(z - self.z0, self.knots, self.slopes, self.beta)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float64)
        return self.shift(X[:, 2])[:, None] * self.e[None, :]
