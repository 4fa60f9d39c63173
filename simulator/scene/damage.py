"""Damage drawing: the one loop that draws damage onto a pristine product (by a
corpus damage mix, or a fixed category or op), on faces some camera sees."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from damage_ops._surface import pick_exposed_face
from damage_ops.base import NotApplicable, apply
from damage_ops.sampling import applicable_ops, sample_params
from damage_ops.taxonomy import CATEGORIES
from simulator.core.errors import DamageOpError

#: ops whose site is a face index parameter ``center`` (the others pick their own site)
CENTERED_OPS = ("crush", "puncture", "spill", "tear")


def draw_damage(product, choose: Callable[[np.random.Generator], tuple[str, str] | None], rng: np.random.Generator,
                max_tries: int = 6, seen=None, where: str = "") -> tuple[Any, Any, list[dict[str, Any]]]:
    """The one damage-drawing loop (capture maker, booth designer, gallery): up to
    ``max_tries`` draws of one damage on ``product``, stopping at the first that applies.

    choose: rng -> (op, severity), or None when nothing applies (the loop stops).
    Each draw samples the op's params for that severity; with ``seen`` (a
    function mesh -> (n_faces,) bool of the faces some camera can see) an op that
    takes a site is given one among the seen exposed faces, and a damage none of
    whose faces is seen is rejected and drawn again (one living only on
    satellites, such as a puddle beside the item, is always seen).

    Only :class:`damage_ops.base.NotApplicable` (the geometry refuses) is caught
    and logged; any other exception inside an op is a bug and raises
    :class:`simulator.core.errors.DamageOpError`, naming the op, the SKU, the
    params and ``where`` (e.g. "capture 12").

    Returns (damaged product or None, its DamageRecord or None, log): the log
    lists every draw, ``{"op", "severity", "params", "error"}`` for a rejected one
    and ``{"op", "severity", "params", "applied"}`` for the one that applied."""
    log: list[dict[str, Any]] = []
    for _try in range(max_tries):
        pick = choose(rng)
        if pick is None:
            break
        op, sev = pick
        params = sample_params(op, sev, product, rng)
        if seen is not None and op in CENTERED_OPS and "center" not in params:
            mask = seen(product.mesh)
            if not mask.any():
                log.append({"op": op, "severity": sev, "params": params, "error": "no seen face to damage"})
                continue
            params = {**params, "center": int(pick_exposed_face(product.mesh, rng, mask))}
        try:
            damaged, rec = apply(product, op, params, rng)
        except NotApplicable as e:
            log.append({"op": op, "severity": sev, "params": params, "error": f"{type(e).__name__}: {e}"})
            continue
        except Exception as e:  # a bug in the op: fail loudly, with what it was given
            raise DamageOpError(op, product.sku, params, where, e) from e
        if seen is not None and not _damage_seen(damaged, seen):
            log.append({"op": op, "severity": sev, "params": params, "error": "damage on no face a camera sees"})
            continue
        log.append({"op": op, "severity": sev, "params": params, "applied": rec.severity})
        return damaged, rec, log
    return None, None, log


def mix_chooser(product, mix) -> Callable[[np.random.Generator], tuple[str, str] | None]:
    """choose(rng) for :func:`draw_damage` from a corpus damage mix: a category by
    the mix's weights among those with an op that applies to ``product``, an op of
    it uniformly, major at ``mix.major_fraction``; None when no category applies."""

    def choose(rng: np.random.Generator) -> tuple[str, str] | None:
        cats = [c for c in CATEGORIES if mix.category_weights.get(c, 0) > 0 and applicable_ops(product, c)]
        if not cats:
            return None
        w = np.array([mix.category_weights[c] for c in cats], float)
        cat = str(rng.choice(cats, p=w / w.sum()))
        op = str(rng.choice(applicable_ops(product, cat)))
        return op, ("major" if rng.random() < mix.major_fraction else "minor")

    return choose


def damage_item(product, mix, rng: np.random.Generator, max_tries: int = 6, seen=None, where: str = ""):
    """Apply the corpus damage mix to one pristine product: intact at
    1 - ``mix.rate``, else ``mix.per_item`` damages one after the other, each by
    :func:`draw_damage` (``seen``, ``max_tries`` and ``where`` as there).

    Returns (product, log): the damaged product (or the input when the draw says
    intact) and every draw tried, the ones that could not apply included."""
    log: list[dict[str, Any]] = []
    if rng.random() >= mix.rate:
        return product, log
    lo, hi = mix.per_item
    for _ in range(int(rng.integers(lo, hi + 1))):
        damaged, _rec, tried = draw_damage(product, mix_chooser(product, mix), rng, max_tries, seen, where)
        log += tried
        if damaged is not None:
            product = damaged
    return product, log


def _damage_seen(product, seen) -> bool:
    """The newest damage of ``product`` has a face in ``seen(mesh)``, or lives only
    on satellites (they lie on the tray beside the item, in view)."""
    did = len(product.damages)
    faces = np.asarray(product.mesh.face_attributes["damage_id"]) == did
    if not faces.any():
        return any((np.asarray(s.mesh.face_attributes["damage_id"]) == did).any() for s in product.satellites)
    return bool((faces & seen(product.mesh)).any())


def seen_faces(T_world_from_item: np.ndarray, cameras: np.ndarray | None, tray_clearance_m: float = 0.004):
    """A function mesh -> (n_faces,) bool: faces of an item resting at
    ``T_world_from_item`` that some camera can see: facing a camera position
    (``cameras``: (c, 3) world meters; None = cameras anywhere above the tray,
    as with random or close-up viewpoints: facing up or sideways) and not lying
    within ``tray_clearance_m`` of the item's lowest point (the face it rests on).
    Occlusion by other parts is left to the ops' exposed-face tests."""
    T = np.asarray(T_world_from_item, float)
    R, t = T[:3, :3], T[:3, 3]

    def mask(mesh) -> np.ndarray:
        n = np.asarray(mesh.face_normals) @ R.T
        c = np.asarray(mesh.triangles_center) @ R.T + t
        z0 = float((np.asarray(mesh.vertices) @ R[2]).min() + t[2])
        off_floor = c[:, 2] > z0 + tray_clearance_m
        if cameras is None:
            facing = n[:, 2] > -0.3
        else:
            facing = np.zeros(len(c), bool)
            for p in np.asarray(cameras, float):
                v = p - c
                facing |= np.einsum("ij,ij->i", v, n) > 0.05 * np.linalg.norm(v, axis=1)
        return off_floor & facing

    return mask
