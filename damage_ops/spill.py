"""Spill (Kaputt category ``spillage``): liquid or powder that leaked out of an
item, as a stain on the product and a puddle (liquid) or heap (powder) on the
tray beside it.

The puddle / heap is a :class:`~damage_ops.product.Satellite`: a thin closed
slab whose outline is a Perlin-noise blob (polar radius modulated by
``noise.pnoise2`` sampled on a circle, so it closes seamlessly). A liquid
puddle is 0.5-2 mm thick with a rounded meniscus rim and the glossy ``liquid``
finish; a powder heap is a low noisy mound with the matte ``powder`` finish.
The stain on the product is a noisy blob of faces around a surface point,
refined so its area matches the request, tinted darker and given the same
finish. ``stain_area_cm2 = 0`` gives the "puddle next to an intact-looking
item" case: nothing on the product is labelled, only the satellite is.

What counts as changed: the stain faces (tint and finish differ from the
input); geometry of the item is untouched (only refined: faces split, shape
identical). Every satellite face carries the damage. The op never opens a
surface: the item's parts keep their closedness and the satellite is a closed
slab (``opens_surface=False``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from noise import pnoise2

from ._opkit import add_part, face_normals_of, grow_on, paint, refine_where
from .base import NotApplicable, ParamError, add_damage, check_face_index, check_range, register
from .product import FINISH_IDS, DamageRecord, Product, Satellite, ensure_optional, labelled_mesh

OP = "spill"
SUBSTANCES = ("liquid", "powder")
MATERIAL = {"liquid": "liquid_spill", "powder": "powder"}
#: parts that are never stained (inside the item or already debris)
UNSTAINED_PARTS = ("unit", "contents", "debris")


@dataclass(frozen=True)
class SpillParams:
    """area_cm2: footprint area of the puddle / heap on the tray, cm^2, in [1, 1500]
    substance: ``liquid`` (puddle, glossy) or ``powder`` (heap, matte)
    stain_area_cm2: area of the stain on the product, cm^2, in [0, 1000]; 0 = the
        item shows nothing, only the puddle / heap is labelled
    gap_mm: distance between the item and the puddle / heap footprints, mm, [0, 300]
    center: face index of the input product at the stain centre, or None (random,
        area-weighted over faces of outer parts not facing the tray)
    """

    area_cm2: float = 40.0
    substance: str = "liquid"
    stain_area_cm2: float = 10.0
    gap_mm: float = 5.0
    center: int | None = None

    def __post_init__(self) -> None:
        check_range(OP, "area_cm2", self.area_cm2, 1.0, 1500.0)
        check_range(OP, "stain_area_cm2", self.stain_area_cm2, 0.0, 1000.0)
        check_range(OP, "gap_mm", self.gap_mm, 0.0, 300.0)
        if self.substance not in SUBSTANCES:
            raise ParamError(f"{OP}.substance: must be one of {list(SUBSTANCES)}, got {self.substance!r}")
        check_face_index(OP, self.center)


def blob_radius(rng: np.random.Generator, n: int, roughness: float) -> np.ndarray:
    """(n,) relative radius at angles 2 pi k / n: 1 + roughness * Perlin noise
    sampled on a circle (periodic), clipped to stay a star-shaped blob."""
    ox, oy = rng.uniform(0.0, 200.0, 2)
    freq = rng.uniform(1.2, 2.2)
    th = 2 * np.pi * np.arange(n) / n
    nz = np.array([pnoise2(ox + freq * np.cos(a), oy + freq * np.sin(a), octaves=3) for a in th])
    return np.clip(1.0 + roughness * 2.0 * nz, 0.35, 2.0)


def puddle_mesh(rng: np.random.Generator, area_m2: float, substance: str, part: int, n_ang: int = 96,
                n_rings: int = 8):
    """Closed puddle (liquid) or heap (powder) slab in its own frame.

    area_m2: footprint area (m^2, exact for the polygon outline)
    Returns (V (v, 3) m, F (n, 3), top (n,) bool: faces of the upper surface).
    Lowest point at z = 0, bbox centred in x, y. The top surface and the flat
    bottom share the outline ring, so the slab is closed with no side wall.
    """
    rough = 0.22 if substance == "liquid" else 0.12
    r = blob_radius(rng, n_ang, rough)
    dth = 2 * np.pi / n_ang
    area0 = 0.5 * np.sum(r * np.roll(r, -1)) * np.sin(dth)
    r = r * np.sqrt(area_m2 / area0)
    r_eq = np.sqrt(area_m2 / np.pi)
    th = dth * np.arange(n_ang)
    f = np.arange(1, n_rings + 1) / n_rings                   # ring fractions, last = outline
    X = f[:, None] * (r * np.cos(th))[None, :]
    Y = f[:, None] * (r * np.sin(th))[None, :]
    if substance == "liquid":
        h0 = float(np.clip(rng.uniform(0.5e-3, 2.0e-3) * (0.7 + 0.3 * min(1.0, r_eq / 0.05)), 0.5e-3, 2.0e-3))
        prof = h0 * np.sqrt(np.clip(1 - f ** 6, 0, 1))
        Z = np.repeat(prof[:, None], n_ang, 1)
        zc = h0
    else:
        h0 = float(np.clip(rng.uniform(0.08, 0.16) * r_eq, 1.5e-3, 0.04))
        ox, oy = rng.uniform(0, 200, 2)
        sc = 2.5 / r_eq
        bump = np.array([[pnoise2(ox + x * sc, oy + y * sc, octaves=2) for x, y in zip(xr, yr)]
                         for xr, yr in zip(X, Y)])
        Z = h0 * (1 - f[:, None] ** 2) ** 1.3 * (1 + 0.5 * bump)
        zc = h0
    Z[-1] = 0.0
    top_c = np.array([[0.0, 0.0, zc]])
    ring_v = np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1)   # ring k, angle j -> 1 + k * n + j
    bot_c = np.array([[0.0, 0.0, 0.0]])
    V = np.concatenate([top_c, ring_v, bot_c])
    j = np.arange(n_ang)
    j1 = (j + 1) % n_ang
    tris = [np.stack([np.zeros(n_ang, np.int64), 1 + j, 1 + j1], 1)]   # top cap fan (ccw from above)
    for k in range(n_rings - 1):
        a, b = 1 + k * n_ang + j, 1 + k * n_ang + j1
        c, d = 1 + (k + 1) * n_ang + j1, 1 + (k + 1) * n_ang + j
        tris += [np.stack([a, d, c], 1), np.stack([a, c, b], 1)]
    top = np.concatenate(tris)
    outer = 1 + (n_rings - 1) * n_ang
    bc = len(V) - 1
    bottom = np.stack([np.full(n_ang, bc), outer + j1, outer + j], 1)  # facing down
    F = np.concatenate([top, bottom])
    lo, hi = V.min(0), V.max(0)
    V = V - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    is_top = np.zeros(len(F), bool)
    is_top[: len(top)] = True
    return V, F, is_top


def footprint_area_m2(V: np.ndarray, F: np.ndarray) -> float:
    """Area of the satellite's footprint: projected area of its upward faces (m^2)."""
    T = V[F]
    cz = (T[:, 1, 0] - T[:, 0, 0]) * (T[:, 2, 1] - T[:, 0, 1]) - (T[:, 1, 1] - T[:, 0, 1]) * (T[:, 2, 0] - T[:, 0, 0])
    return float(0.5 * cz[cz > 0].sum())


def _stain(p: Product, prm: SpillParams, rng: np.random.Generator, center_face: int) -> tuple[np.ndarray, dict]:
    """Refine around the stain centre and pick the stain faces. Mutates p.mesh.
    Returns (face indices, region dict)."""
    target = prm.stain_area_cm2 * 1e-4
    m = p.mesh
    fn, _ = face_normals_of(m, [center_face])
    c = m.vertices[m.faces[center_face]].mean(0)
    n0 = fn[0]
    r_eq = np.sqrt(target / np.pi)
    n_ang = 128
    rr = blob_radius(rng, n_ang, 0.25)
    e1 = np.cross(n0, [1.0, 0, 0] if abs(n0[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n0, e1)
    allowed = np.ones(len(p.parts), bool)
    for i, part in enumerate(p.parts):
        allowed[i] = part.name not in UNSTAINED_PARTS
    # the prefix of faces sorted by dist / rr(angle) covering the target area
    # reaches about r_eq * rr / rms(rr) from the centre
    reach = 1.15 * r_eq * rr.max() / np.sqrt(np.mean(rr ** 2))

    def eligible(mesh, faces=None):
        F = mesh.faces if faces is None else mesh.faces[faces]
        T = mesh.vertices[F]
        nrm = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]) @ n0
        pid = mesh.face_attributes["part_id"] if faces is None else mesh.face_attributes["part_id"][faces]
        return allowed[pid] & (nrm > -0.2 * np.linalg.norm(np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]), axis=1))

    def near(mesh, faces=None):
        F = mesh.faces if faces is None else mesh.faces[faces]
        T = mesh.vertices[F]
        el = np.sqrt(((T - np.roll(T, -1, axis=1)) ** 2).sum(2)).max(1)
        return np.linalg.norm(T.mean(1) - c, axis=1) < reach + el

    def select(mesh, faces=None):
        return near(mesh, faces) & eligible(mesh, faces)

    edge = float(np.clip(r_eq / 3, 1e-3, 0.03))
    F0, V0 = np.asarray(m.faces), np.asarray(m.vertices)
    seed = (np.sum((V0 - c) ** 2, axis=1) < reach ** 2)[F0].any(1)
    seed[center_face] = True
    patch = grow_on(m, seed, 3)
    m, nfo = refine_where(m, select, edge, patch=patch)
    p.mesh = m
    cand = np.flatnonzero(patch[nfo])             # faces refined from the patch
    for attempt in range(2):
        ok = cand[eligible(m, cand)]
        tc = m.vertices[m.faces[ok]].mean(1)
        d = tc - c
        dist = np.linalg.norm(d, axis=1)
        ang = np.mod(np.arctan2(d @ e2, d @ e1), 2 * np.pi) * n_ang / (2 * np.pi)
        i0 = np.floor(ang).astype(np.int64) % n_ang
        w = ang - np.floor(ang)
        rad = (1 - w) * rr[i0] + w * rr[(i0 + 1) % n_ang]
        score = dist / rad
        _, area = face_normals_of(m, ok)
        order = np.argsort(score, kind="stable")
        cum = np.cumsum(area[order])
        if len(cum) and cum[-1] >= target and score[order[np.searchsorted(cum, target)]] < reach / rr.max():
            break
        cand = np.arange(len(m.faces))             # stain spills past the patch: score every face
    if not len(cum) or cum[-1] < target:
        raise NotApplicable(f"{OP}.stain_area_cm2: {prm.stain_area_cm2!r} exceeds the stainable area "
                         f"{(cum[-1] if len(cum) else 0.0) * 1e4:.1f} cm^2 around face {center_face} of this product")
    k = int(np.searchsorted(cum, target))
    if k > 0 and abs(cum[k - 1] - target) < abs(cum[k] - target):
        k -= 1
    faces = ok[order[: k + 1]]
    s = score[order[: k + 1]]
    dist = dist[order]
    region = {"center_m": c.tolist(), "radius_m": float(dist[: k + 1].max()),
              "normal": n0.tolist()}
    return faces, region, s / max(float(s.max()), 1e-12)


def _pick_center(p: Product, rng: np.random.Generator, n_try: int = 64) -> int:
    """A random stain centre: area-weighted among ``n_try`` uniformly drawn faces
    of outer parts that do not face the tray (cost independent of mesh size)."""
    allowed = np.array([pt.name not in UNSTAINED_PARTS for pt in p.parts])
    for _ in range(20):
        idx = rng.integers(0, len(p.mesh.faces), n_try)
        fn, fa = face_normals_of(p.mesh, idx)
        w = fa * (allowed[p.part_id[idx]] & (fn[:, 2] > -0.5))
        if w.sum() > 0:
            return int(idx[rng.choice(n_try, p=w / w.sum())])
    raise NotApplicable(f"{OP}: product {p.sku!r} has no stainable faces (parts {[pt.name for pt in p.parts]})")


@register(OP, SpillParams, "spillage", opens_surface=False)
def spill(product: Product, params: SpillParams, rng: np.random.Generator) -> tuple[Product, DamageRecord]:
    """Stain the item and pool liquid / heap powder on the tray beside it.

    product: input item (not mutated); params: :class:`SpillParams`; rng: every
    random choice. Returns (new product with the stain faces, a new
    Satellite(kind ``puddle`` or ``heap``) and a ``debris`` part, record) with
    size {"area_cm2": footprint of the satellite mesh, "stain_area_cm2": area of
    the labelled stain faces}, both measured on the result.
    """
    prm = params
    n_in = len(product.mesh.faces)
    if prm.center is not None and prm.center >= n_in:
        raise ParamError(f"{OP}.center: face index {prm.center} out of range for a product with {n_in} faces")
    p = product.copy()
    ensure_optional(p.mesh)
    debris = add_part(p, "debris", MATERIAL[prm.substance])

    stain_faces = np.zeros(0, np.int64)
    region = {"center_m": [0.0, 0.0, float(p.mesh.vertices[:, 2].min())], "radius_m": 0.0}
    if prm.stain_area_cm2 > 0:
        if prm.center is None:
            center = _pick_center(p, rng)
        else:
            center = int(prm.center)
        stain_faces, region, rel = _stain(p, prm, rng, center)
        if prm.substance == "liquid":
            dark = rng.uniform(0.55, 0.8)
            tint = dark * (1 - 0.15 * rel[:, None] ** 4) * np.array([1.0, 0.97, 0.92])  # darker drying ring
        else:
            dark = rng.uniform(0.85, 0.95)
            tint = np.full((len(stain_faces), 3), dark)
        paint(p.mesh, stain_faces, tint, prm.substance)

    V, F, is_top = puddle_mesh(rng, prm.area_cm2 * 1e-4, prm.substance, debris)
    sm = labelled_mesh(V, F, debris)
    ensure_optional(sm)
    sm.face_attributes["finish"][:] = FINISH_IDS[prm.substance]
    kind = "puddle" if prm.substance == "liquid" else "heap"
    p.satellites = tuple(p.satellites) + (Satellite(sm, prm.gap_mm / 1000.0, kind),)

    _, fa = face_normals_of(p.mesh, stain_faces)
    size = {"area_cm2": footprint_area_m2(V, F) * 1e4, "stain_area_cm2": float(fa.sum()) * 1e4}
    region = dict(region, satellite=len(p.satellites) - 1)
    p, rec = add_damage(p, stain_faces, OP, size, region, asdict(prm))
    sm.face_attributes["damage_id"][:] = len(p.damages)
    return p, rec
