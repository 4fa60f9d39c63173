"""Missing component (Kaputt category ``missing_unit``): a broken set, one or
more units gone from a blister pack, kit or multipack.

Units are the connected components of the faces of the product's ``unit``
part(s), numbered in the order the generator built them (lowest face index
first). Removing a unit drops its faces (labels carried through the face map).
What gets labelled is the empty cavity: the faces of the other parts (card,
blister, film...) that enclose or cover the removed unit's footprint, i.e.
faces whose centroid lies in the unit's bounding box expanded by
``MARGIN_XY_M`` in x and y (the card plane; z is up in the item frame of every
set generator) and no lower than ``MARGIN_Z_M`` below the unit's bottom, so
the card top and the blister dome or film above and around the unit are
labelled but the back of the card is not. Those faces are refined first so the
label follows the footprint.

Film sag: shrink film (a part named ``film``) is held by the units under it,
so where a unit is gone it collapses into the vacated slot; otherwise a depth
camera could not see the damage at all. Film vertices move by one smooth
displacement field (:func:`sag_field`): down by up to ``SAG_FRAC`` of the
unit height and inward toward the slot's axis by up to ``INWARD_FRAC`` of
their distance from it, with amplitude ``s(x, y) * w(x, y) * h(z)``:

- ``s``: the product over the remaining units of a smoothstep of the vertex's
  xy distance ``d_i`` to unit ``i``'s footprint (radius from its bounding
  box), each 0 within ``SUPPORT_CLEAR_M`` of its unit (the film stays where
  units hold it) and 1 from one unit radius on. A product, not the fade of
  the nearest distance: that min has a kink where two units are equally near
  (an X-shaped crease along the slot's diagonals). The product is C1, never
  above the nearest unit's fade (so 0 wherever that is) and equal to it
  wherever only one unit is within a radius (over the slot's middle: 1);
- ``w``: the union ``1 - prod(1 - w_j)`` of one window per removed unit,
  ``w_j`` 1 within ``WINDOW`` [0] unit radii of its axis and smooth to 0 at
  ``WINDOW`` [1] radii, so film elsewhere (even over a slot emptied by an
  earlier damage) does not move; the inward pull is toward the ``w_j``-weighted
  mean of the removed axes (the one axis where only one window reaches);
- ``h``: smoothstep of height over the removed unit's span, 0 at its bottom
  (the film under the units rests on the tray), 1 at its top.

Displacements below 1 um are dropped, so film elsewhere keeps its exact
coordinates. Apart from that the field is C1 (bounded second differences, no
crease for the film's linear triangles to miss), and at every point it is the
earlier nearest-unit field (``s`` of the nearest distance, ``min(sum w_j, 1)``)
times a factor in [0, 1]: each film point moves along the same line as under
that field, no further. Its vertical part is a monotone map of z
(``SAG_FRAC`` < 2/3), the horizontal part a contraction: faces keep their
orientation and the film stays one closed, non-self-intersecting surface
that moves away from, never into, the remaining units. Film faces within
reach of the field are refined to about a third of a unit radius first (also
when ``sag`` is 0, so the tessellation does not depend on the amount) and the
faces with a moved vertex join the label: labelled = cavity (above, measured
before the sag) | film faces that moved. ``record.size`` gains ``film_sag_mm``,
the largest film displacement.

Whole closed components are removed and the film is only moved, so every
remaining part stays closed: ``opens_surface=False``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._opkit import drop_faces, face_components, grow_on, part_indices, refine_where
from .base import NotApplicable, ParamError, add_damage, check_range, register
from .product import DamageRecord, Product, take_faces

OP = "missing_component"
MARGIN_XY_M = 0.003
MARGIN_Z_M = 0.0005
#: fraction of the item's mass assumed to sit in its units (the rest is packaging)
UNIT_MASS_SHARE = 0.85
#: full film collapse (``sag`` = 1): the film over a slot sinks by this fraction of the
#: unit height (< 2/3 keeps the vertical map monotone) and moves inward by this
#: fraction of its distance from the slot's axis
SAG_FRAC = 0.3
INWARD_FRAC = 0.3
#: film within this xy distance of a remaining unit's footprint does not move (m)
SUPPORT_CLEAR_M = 0.003
#: (inner, outer) radius of the sag window about a removed unit's axis, in unit radii
WINDOW = (1.3, 2.0)
#: displacements below this are dropped (m): film elsewhere keeps exact coordinates
MIN_MOVE_M = 1e-6


@dataclass(frozen=True)
class MissingParams:
    """units: number of units removed (int >= 1, fewer than the units present)
    which: indices of the units to remove (len == units, distinct), or None
        (drawn from the rng)
    sag: how far shrink film collapses into the vacated slots, 0..1 (1 = the
        full collapse of ``SAG_FRAC`` / ``INWARD_FRAC``; 0 = film left in place,
        tessellation unchanged)
    """

    units: int = 1
    which: tuple[int, ...] | None = None
    sag: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.units, bool) or not isinstance(self.units, (int, np.integer)) or self.units < 1:
            raise ParamError(f"{OP}.units: must be an integer >= 1, got {self.units!r}")
        if self.which is not None:
            w = self.which
            if not isinstance(w, (tuple, list)) or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in w):
                raise ParamError(f"{OP}.which: must be a sequence of unit indices >= 0 or None, got {w!r}")
            if len(set(int(i) for i in w)) != len(w):
                raise ParamError(f"{OP}.which: unit indices must be distinct, got {w!r}")
            if len(w) != self.units:
                raise ParamError(f"{OP}.which: gives {len(w)} unit(s) but units={self.units!r}")
        check_range(OP, "sag", self.sag, 0.0, 1.0)


def units_of(product: Product) -> tuple[np.ndarray, np.ndarray, int]:
    """(unit face indices (k,), unit number of each (k,), number of units)."""
    ids = part_indices(product, "unit")
    faces = np.flatnonzero(np.isin(product.part_id, ids)) if ids else np.zeros(0, np.int64)
    n, comp = face_components(np.asarray(product.mesh.faces)[faces], len(product.mesh.vertices))
    return faces, comp, n


def _signed_volume(V: np.ndarray, F: np.ndarray) -> float:
    T = V[F]
    return float(np.einsum("ij,ij->i", T[:, 0], np.cross(T[:, 1], T[:, 2])).sum() / 6.0)


def _face_boxes(mesh, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((k, 3), (k, 3)) bounding box corners of the faces with indices ``faces``."""
    T = np.asarray(mesh.vertices)[np.asarray(mesh.faces)[faces]]
    return np.minimum(np.minimum(T[:, 0], T[:, 1]), T[:, 2]), np.maximum(np.maximum(T[:, 0], T[:, 1]), T[:, 2])


def _expanded(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (lo - np.array([MARGIN_XY_M, MARGIN_XY_M, MARGIN_Z_M]),
            hi + np.array([MARGIN_XY_M, MARGIN_XY_M, np.inf]))


def cavity_faces(mesh, lo: np.ndarray, hi: np.ndarray, unit_ids) -> np.ndarray:
    """Indices of the non-unit faces whose centroid lies in a removed unit's box
    ``(lo, hi)`` ((k, 3) m) expanded by the documented margins."""
    lo_e, hi_e = _expanded(lo, hi)
    cand = np.flatnonzero(~np.isin(mesh.face_attributes["part_id"], unit_ids))
    C = np.asarray(mesh.vertices)[np.asarray(mesh.faces)[cand]].sum(1) / 3.0
    inside = np.zeros(len(C), bool)
    for a, b in zip(lo_e, hi_e):
        inside |= np.all((C >= a) & (C <= b), axis=1)
    return cand[inside]


def unit_boxes(V: np.ndarray, F: np.ndarray, ufaces: np.ndarray, comp: np.ndarray, n: int):
    """(lo (n, 3), hi (n, 3)): bounding box of every unit, meters."""
    lo, hi = np.empty((n, 3)), np.empty((n, 3))
    for u in range(n):
        pts = V[np.unique(F[ufaces[comp == u]])]
        lo[u], hi[u] = pts.min(0), pts.max(0)
    return lo, hi


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def sag_field(P: np.ndarray, gone_lo: np.ndarray, gone_hi: np.ndarray, keep_lo: np.ndarray,
              keep_hi: np.ndarray, sag: float) -> np.ndarray:
    """(k, 3) displacement (m) of film points ``P`` ((k, 3) m, item frame) when the
    units with boxes ``gone_*`` ((g, 3) m) are removed and those with boxes
    ``keep_*`` stay (see the module docstring for the field)."""
    xy = P[:, :2]
    gc = 0.5 * (gone_lo + gone_hi)[:, :2]
    gr = 0.5 * np.min(gone_hi[:, :2] - gone_lo[:, :2], axis=1)
    R = float(gr.mean())
    s = np.ones(len(P))
    if len(keep_lo):
        kc = 0.5 * (keep_lo + keep_hi)[:, :2]
        kr = 0.5 * np.min(keep_hi[:, :2] - keep_lo[:, :2], axis=1)
        d = np.linalg.norm(xy[:, None, :] - kc[None], axis=2) - kr[None]        # (k, n)
        # a product of per-unit fades, not the fade of the nearest distance: that
        # min creases where two units are equally near (the slot's diagonals)
        s = np.prod(_smoothstep((d - SUPPORT_CLEAR_M) / max(R - SUPPORT_CLEAR_M, 1e-6)), axis=1)
    rel = xy[:, None, :] - gc[None]                                   # (k, g, 2)
    rho = np.linalg.norm(rel, axis=2) / gr[None]
    w = 1.0 - _smoothstep((rho - WINDOW[0]) / (WINDOW[1] - WINDOW[0]))  # (k, g)
    # union of the windows (1 - prod(1 - w)), not min(sum w, 1): no crease where
    # the sum of overlapping windows reaches 1
    win = 1.0 - np.prod(1.0 - w, axis=1)
    wsum = w.sum(1)
    pull = (w[:, :, None] * rel).sum(1) / np.where(wsum > 0, wsum, 1.0)[:, None]   # from the windows' mean axis
    z0, z1 = float(gone_lo[:, 2].min()), float(gone_hi[:, 2].max())
    hz = _smoothstep((P[:, 2] - z0) / max(z1 - z0, 1e-6))
    amp = sag * s * win * hz
    D = np.zeros_like(P)
    D[:, 2] = -SAG_FRAC * (z1 - z0) * amp
    D[:, :2] = -INWARD_FRAC * amp[:, None] * pull
    D[np.linalg.norm(D, axis=1) < MIN_MOVE_M] = 0.0
    return D


def sag_reach(p: Product, lo_all: np.ndarray, hi_all: np.ndarray, which: np.ndarray):
    """Selector ``(mesh, cand, tlo, thi) -> (k,) bool`` marking, of the non-unit
    faces ``cand`` with bounding boxes ``tlo, thi`` ((k, 3) m), the film faces
    within reach of :func:`sag_field` (bbox overlapping a removed unit's window
    square, above its bottom), for :func:`remove_units` to refine; None if ``p``
    has no film."""
    film_ids = part_indices(p, "film")
    if not film_ids:
        return None
    glo, ghi = lo_all[which], hi_all[which]
    gc = 0.5 * (glo + ghi)[:, :2]
    reach = WINDOW[1] * 0.5 * np.max(ghi[:, :2] - glo[:, :2], axis=1)
    z0 = float(glo[:, 2].min())

    def reachable(mesh, cand, tlo, thi):
        """of the faces ``cand`` with boxes (tlo, thi): film faces within reach"""
        h = np.zeros(len(cand), bool)
        for c, r in zip(gc, reach):
            h |= (thi[:, 0] >= c[0] - r) & (tlo[:, 0] <= c[0] + r) & (thi[:, 1] >= c[1] - r) & (tlo[:, 1] <= c[1] + r)
        return h & (thi[:, 2] > z0) & np.isin(mesh.face_attributes["part_id"][cand], film_ids)

    return reachable


def sag_film(p: Product, lo_all: np.ndarray, hi_all: np.ndarray, which: np.ndarray,
             sag: float) -> tuple[np.ndarray, float]:
    """Move the film of ``p`` (a private copy, mutated; already refined within
    :func:`sag_reach`) by :func:`sag_field`.

    lo_all, hi_all: (n, 3) boxes of every unit before removal; which: removed units.
    Returns (indices of the film faces with a moved vertex, largest film
    displacement in meters)."""
    film_ids = part_indices(p, "film")
    m = p.mesh
    F = np.asarray(m.faces)
    if not film_ids:
        return np.zeros(0, np.int64), 0.0
    gone = np.zeros(len(lo_all), bool)
    gone[which] = True
    vidx = np.unique(F[np.isin(m.face_attributes["part_id"], film_ids)])
    V = np.array(m.vertices, copy=True)
    D = sag_field(V[vidx], lo_all[gone], hi_all[gone], lo_all[~gone], hi_all[~gone], float(sag))
    mv = np.abs(D).max(1) > 0
    if not mv.any():
        return np.zeros(0, np.int64), 0.0
    V[vidx[mv]] += D[mv]
    moved_v = np.zeros(len(V), bool)
    moved_v[vidx[mv]] = True
    p.mesh = take_faces(m, np.arange(len(F)), V, F)
    return np.flatnonzero(moved_v[F].any(1)), float(np.linalg.norm(D, axis=1).max())


def remove_units(p: Product, ufaces: np.ndarray, comp: np.ndarray, n: int, which: np.ndarray,
                 want_meshes: bool = False, also_refine=None):
    """Remove units ``which`` from ``p`` (a private copy, mutated): faces dropped,
    cavity refined, collision and mass updated.

    also_refine: optional selector ``(mesh, cand, tlo, thi) -> (k,) bool`` of more
    non-unit faces to refine in the same pass (the film within reach of the sag,
    see :func:`sag_reach`).
    Returns (cavity face indices of the new mesh, lo (k, 3), hi (k, 3) boxes of
    the removed units in meters, the removed units' labelled meshes if
    ``want_meshes`` else [])."""
    pm0 = p.mesh
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    boxes, vols = [], np.zeros(n)
    for u in range(n):
        fu = F[ufaces[comp == u]]
        vols[u] = abs(_signed_volume(V, fu))
        if u in which:
            pts = V[np.unique(fu)]
            boxes.append((pts.min(0), pts.max(0)))
    lo = np.array([b[0] for b in boxes])
    hi = np.array([b[1] for b in boxes])

    keep = np.ones(len(F), bool)
    keep[ufaces[np.isin(comp, which)]] = False
    m = drop_faces(p.mesh, keep)

    unit_ids = np.array(part_indices(p, "unit"))
    lo_e, hi_e = _expanded(lo, hi)

    def overlap(mesh):
        """non-unit faces whose bbox overlaps an expanded unit prism (| also_refine)"""
        hit = np.zeros(len(mesh.faces), bool)
        cand = np.flatnonzero(~np.isin(mesh.face_attributes["part_id"], unit_ids))
        tlo, thi = _face_boxes(mesh, cand)
        h = np.zeros(len(cand), bool)
        for a, b in zip(lo_e, hi_e):
            h |= ((thi[:, 0] >= a[0]) & (tlo[:, 0] <= b[0]) & (thi[:, 1] >= a[1]) & (tlo[:, 1] <= b[1])
                  & (thi[:, 2] >= a[2]))
        if also_refine is not None:
            h |= also_refine(mesh, cand, tlo, thi)
        hit[cand[h]] = True
        return hit

    short = float(np.min(hi[:, :2] - lo[:, :2]))
    edge = float(np.clip(short / 3, 0.003, 0.012))
    sel = overlap(m)
    m, nfo = refine_where(m, overlap, edge, patch=grow_on(m, sel, 3), by_area=True)
    cavity = cavity_faces(m, lo, hi, unit_ids)
    p.mesh = m
    removed = [drop_faces(pm0, np.isin(np.arange(len(F)), ufaces[comp == u])) for u in which] if want_meshes else []

    # collision pieces that were one removed unit each (containment test)
    coll = []
    for c in p.collision:
        c = np.asarray(c)
        gone = any(np.all((c >= a - 1e-3) & (c <= b + 1e-3)) for a, b in zip(lo, hi))
        if not gone:
            coll.append(c)
    p.collision = tuple(coll)
    p.mass_kg = float(p.mass_kg * (1 - UNIT_MASS_SHARE * vols[which].sum() / max(vols.sum(), 1e-18)))

    return cavity, lo, hi, removed


@register(OP, MissingParams, "missing_unit", opens_surface=False)
def missing_component(product: Product, params: MissingParams,
                      rng: np.random.Generator) -> tuple[Product, DamageRecord]:
    """Remove ``params.units`` units and label the cavity they leave.

    Returns (new product, record) with size {"units_missing": units present
    before minus connected unit components left, counted on the result} and,
    on items with a film, ``film_sag_mm`` (largest film displacement).
    collision pieces lying inside a removed unit's box are dropped; mass_kg
    loses the removed units' volume share of ``UNIT_MASS_SHARE`` of the mass.
    """
    prm = params
    ufaces, comp, n = units_of(product)
    if n == 0:
        raise NotApplicable(f"{OP}: product {product.sku!r} ({product.kind}) has no 'unit' part; "
                         f"parts are {[p.name for p in product.parts]}")
    if prm.units >= n:
        raise NotApplicable(f"{OP}.units: must be fewer than the {n} units present, got {prm.units!r}")
    if prm.which is not None:
        bad = [int(i) for i in prm.which if int(i) >= n]
        if bad:
            raise ParamError(f"{OP}.which: unit index {bad[0]} out of range for {n} units")
        which = np.sort(np.asarray(prm.which, np.int64))
    else:
        which = np.sort(rng.choice(n, size=int(prm.units), replace=False))

    p = product.copy()  # same faces in the same order: ufaces / comp still apply
    lo_all, hi_all = unit_boxes(np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces), ufaces, comp, n)
    cavity, lo, hi, _ = remove_units(p, ufaces, comp, n, which, also_refine=sag_reach(p, lo_all, hi_all, which))
    moved, sag_m = sag_film(p, lo_all, hi_all, which, prm.sag)
    labelled = np.union1d(cavity, moved)
    _, _, n_after = units_of(p)
    centre = 0.5 * (lo + hi)
    region = {"center_m": centre.mean(0).tolist(),
              "radius_m": float(np.max(np.linalg.norm(np.concatenate([lo, hi]) - centre.mean(0), axis=1))),
              "units": [int(i) for i in which]}
    size = {"units_missing": float(n - n_after)}
    if part_indices(p, "film"):
        size["film_sag_mm"] = sag_m * 1e3
    return add_damage(p, labelled, OP, size, region, asdict(prm))
