"""Damage drawing: apply a corpus damage mix to one pristine product, on faces some camera sees."""
from __future__ import annotations

from typing import Any

import numpy as np

from damage_ops._surface import pick_exposed_face
from damage_ops.base import ParamError, apply
from damage_ops.sampling import applicable_ops, sample_params
from damage_ops.taxonomy import CATEGORIES

#: ops whose site is a face index parameter ``center`` (the others pick their own site)
CENTERED_OPS = ("crush", "puncture", "spill", "tear")


def damage_item(product, mix, rng: np.random.Generator, max_tries: int = 6, seen=None):
    """Apply the corpus damage mix to one pristine product.

    seen: None (damage anywhere), or a function mesh -> (n_faces,) bool of the
    faces some camera can see (the product at its resting pose). Then ops that
    take a site are given one drawn among the seen exposed faces, and a damage
    none of whose faces is seen (an op that picks its own site, e.g. a flap that
    opens on the resting face) is rejected and drawn again; a damage that lives
    only on satellites (a puddle beside the item) is always seen.

    Returns (product, log): the damaged product (or the input when the draw says
    intact) and a list of what was tried, including ops that could not apply
    (capped at ``max_tries`` draws per damage)."""

    log: list[dict[str, Any]] = []
    if rng.random() >= mix.rate:
        return product, log
    lo, hi = mix.per_item
    for _ in range(int(rng.integers(lo, hi + 1))):
        for _try in range(max_tries):
            cats = [c for c in CATEGORIES if mix.category_weights.get(c, 0) > 0 and applicable_ops(product, c)]
            if not cats:
                break
            w = np.array([mix.category_weights[c] for c in cats], float)
            cat = str(rng.choice(cats, p=w / w.sum()))
            op = str(rng.choice(applicable_ops(product, cat)))
            sev = "major" if rng.random() < mix.major_fraction else "minor"
            params = sample_params(op, sev, product, rng)
            if seen is not None and op in CENTERED_OPS and "center" not in params:
                mask = seen(product.mesh)
                if not mask.any():
                    log.append({"op": op, "severity": sev, "params": params, "error": "no seen face to damage"})
                    continue
                params = {**params, "center": int(pick_exposed_face(product.mesh, rng, mask))}
            try:
                damaged, rec = apply(product, op, params, rng)
            except (ParamError, ValueError, RuntimeError) as e:
                # an op that cannot apply here (no room, a boolean the geometry
                # kernel rejects): logged, and another damage is drawn
                log.append({"op": op, "severity": sev, "params": params, "error": f"{type(e).__name__}: {e}"})
                continue
            if seen is not None and not _damage_seen(damaged, seen):
                log.append({"op": op, "severity": sev, "params": params, "error": "damage on no face a camera sees"})
                continue
            product = damaged
            log.append({"op": op, "severity": sev, "params": params, "applied": rec.severity})
            break
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
