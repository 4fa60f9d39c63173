"""Missing component (Kaputt category ``missing_unit``): a broken set, one or
more units gone from a blister pack, kit or multipack.

Units are the connected components of the faces of the product's ``unit``
part(s), numbered in the order the generator built them (lowest face index
first). Removing a unit drops its faces (labels carried through the face map).
Nothing on the item moved, so what gets labelled is the empty cavity: the faces
of the other parts (card, blister, film...) that enclose or cover the removed
unit's footprint, i.e. faces whose centroid lies in the unit's bounding box
expanded by ``MARGIN_XY_M`` in x and y (the card plane; z is up in the item
frame of every set generator) and no lower than ``MARGIN_Z_M`` below the
unit's bottom, so the card top and the blister dome or film above and around
the unit are labelled but the back of the card is not. Those faces are refined
first so the label follows the footprint.

Whole closed components are removed, so every remaining part stays closed:
``opens_surface=False``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._opkit import drop_faces, face_components, grow, part_indices, refine_where
from .base import ParamError, add_damage, register
from .product import DamageRecord, Product

OP = "missing_component"
MARGIN_XY_M = 0.003
MARGIN_Z_M = 0.0005
#: fraction of the item's mass assumed to sit in its units (the rest is packaging)
UNIT_MASS_SHARE = 0.85


@dataclass(frozen=True)
class MissingParams:
    """units: number of units removed (int >= 1, fewer than the units present)
    which: indices of the units to remove (len == units, distinct), or None
        (drawn from the rng)
    """

    units: int = 1
    which: tuple[int, ...] | None = None

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


def units_of(product: Product) -> tuple[np.ndarray, np.ndarray, int]:
    """(unit face indices (k,), unit number of each (k,), number of units)."""
    ids = part_indices(product, "unit")
    faces = np.flatnonzero(np.isin(product.part_id, ids)) if ids else np.zeros(0, np.int64)
    n, comp = face_components(np.asarray(product.mesh.faces)[faces], len(product.mesh.vertices))
    return faces, comp, n


def _signed_volume(V: np.ndarray, F: np.ndarray) -> float:
    T = V[F]
    return float(np.einsum("ij,ij->i", T[:, 0], np.cross(T[:, 1], T[:, 2])).sum() / 6.0)


def remove_units(p: Product, ufaces: np.ndarray, comp: np.ndarray, n: int, which: np.ndarray,
                 want_meshes: bool = False):
    """Remove units ``which`` from ``p`` (a private copy, mutated): faces dropped,
    cavity refined, collision and mass updated.

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
    lo_e = lo - np.array([MARGIN_XY_M, MARGIN_XY_M, MARGIN_Z_M])
    hi_e = hi + np.array([MARGIN_XY_M, MARGIN_XY_M, np.inf])

    def overlap(mesh, faces=None):
        """non-unit faces whose bbox overlaps an expanded unit prism"""
        Fm = np.asarray(mesh.faces)
        T = np.asarray(mesh.vertices)[Fm]
        tlo, thi = T.min(1), T.max(1)
        hit = np.zeros(len(Fm), bool)
        for a, b in zip(lo_e, hi_e):
            hit |= ((thi[:, 0] >= a[0]) & (tlo[:, 0] <= b[0]) & (thi[:, 1] >= a[1]) & (tlo[:, 1] <= b[1])
                    & (thi[:, 2] >= a[2]))
        return hit & ~np.isin(mesh.face_attributes["part_id"], unit_ids)

    short = float(np.min(hi[:, :2] - lo[:, :2]))
    edge = float(np.clip(short / 3, 0.003, 0.012))
    sel = overlap(m)
    m, nfo = refine_where(m, overlap, edge, patch=grow(np.asarray(m.faces), sel, len(m.vertices), 3), by_area=True)
    C = np.asarray(m.vertices)[np.asarray(m.faces)].mean(1)
    inside = np.zeros(len(C), bool)
    for a, b in zip(lo_e, hi_e):
        inside |= np.all((C >= a) & (C <= b), axis=1)
    cavity = np.flatnonzero(inside & ~np.isin(m.face_attributes["part_id"], unit_ids))
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
    before minus connected unit components left, counted on the result}.
    collision pieces lying inside a removed unit's box are dropped; mass_kg
    loses the removed units' volume share of ``UNIT_MASS_SHARE`` of the mass.
    """
    prm = params
    ufaces, comp, n = units_of(product)
    if n == 0:
        raise ParamError(f"{OP}: product {product.sku!r} ({product.kind}) has no 'unit' part; "
                         f"parts are {[p.name for p in product.parts]}")
    if prm.units >= n:
        raise ParamError(f"{OP}.units: must be fewer than the {n} units present, got {prm.units!r}")
    if prm.which is not None:
        bad = [int(i) for i in prm.which if int(i) >= n]
        if bad:
            raise ParamError(f"{OP}.which: unit index {bad[0]} out of range for {n} units")
        which = np.sort(np.asarray(prm.which, np.int64))
    else:
        which = np.sort(rng.choice(n, size=int(prm.units), replace=False))

    p = product.copy()  # same faces in the same order: ufaces / comp still apply
    cavity, lo, hi, _ = remove_units(p, ufaces, comp, n, which)
    _, _, n_after = units_of(p)
    centre = 0.5 * (lo + hi)
    region = {"center_m": centre.mean(0).tolist(),
              "radius_m": float(np.max(np.linalg.norm(np.concatenate([lo, hi]) - centre.mean(0), axis=1))),
              "units": [int(i) for i in which]}
    return add_damage(p, cavity, OP, {"units_missing": float(n - n_after)}, region, asdict(prm))
