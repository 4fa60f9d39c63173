"""Sampling damages for a corpus: which ops apply to which product, and op
parameters drawn for a requested severity.

Sizes are drawn on the requested side of the op's severity threshold
(:data:`damage_ops.base.SEVERITY_THRESHOLDS`), with a 10% margin so the measured
size lands on the same side, and capped by the product's own dimensions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import OP_CATEGORY, REGISTRY, SEVERITY_THRESHOLDS
from .product import Product

#: op -> product kinds it applies to (None = all). Glass does not dent; only sets
#: lose units; flaps open on cartons; seams burst on bags.
APPLIES_TO: dict[str, tuple[str, ...] | None] = {
    "crush": ("carton", "mailer", "pouch", "multipack", "bottle", "blister", "mesh"),
    "puncture": ("carton", "mailer", "pouch", "blister", "multipack", "mesh"),
    "tear": ("carton", "mailer", "pouch", "multipack"),
    "deconstruction": ("carton", "mailer", "pouch"),
    "spill": ("carton", "mailer", "pouch", "bottle", "multipack", "blister", "mesh"),
    "missing_component": ("blister", "multipack"),
    "superficial": None,
}

#: op -> (lo, hi) of its severity size over both severities, in the size unit
SIZE_RANGE: dict[str, tuple[float, float]] = {
    "crush": (2.0, 35.0),            # depth_mm
    "puncture": (3.0, 40.0),         # diameter_mm
    "tear": (15.0, 220.0),           # length_mm
    "deconstruction": (12.0, 120.0), # opening_mm
    "spill": (6.0, 500.0),           # area_cm2
    "missing_component": (1.0, 3.0), # units_missing
    "superficial": (1.5, 60.0),      # area_cm2
}


def n_units(product: Product) -> int:
    """Number of separate units (connected components of "unit" faces)."""
    faces = product.part_faces("unit")
    if len(faces) == 0:
        return 0
    import trimesh

    sub = trimesh.Trimesh(product.mesh.vertices, product.mesh.faces[faces], process=False)
    return len(trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(faces)), min_len=1))


def applicable_ops(product: Product, category: str | None = None) -> list[str]:
    """Registered ops that apply to this product (optionally of one category)."""
    out = []
    for op in sorted(REGISTRY):
        kinds = APPLIES_TO.get(op)
        if kinds is not None and product.kind not in kinds:
            continue
        if category is not None and OP_CATEGORY[op] != category:
            continue
        if op == "missing_component" and n_units(product) < 2:
            continue
        if op == "deconstruction" and product.kind == "carton" and len(product.part_faces("flap")) == 0:
            continue
        out.append(op)
    return out


def _size(op: str, severity: str, cap: float, rng: np.random.Generator) -> float:
    _, thr = SEVERITY_THRESHOLDS[op]
    lo, hi = SIZE_RANGE[op]
    if severity == "minor":
        a, b = lo, thr * 0.9
    else:
        a, b = thr * 1.1, max(thr * 1.1, min(hi, cap))
    return float(rng.uniform(a, b))


def sample_params(op: str, severity: str, product: Product, rng: np.random.Generator) -> dict[str, Any]:
    """Parameters for ``op`` that give a damage of ``severity`` on ``product``."""
    if severity not in ("minor", "major"):
        raise ValueError(f"severity must be minor or major, got {severity!r}")
    dims = np.sort(np.asarray(product.dims_mm, dtype=float))
    small, large = float(dims[0]), float(dims[-1])
    if op == "crush":
        depth = _size(op, severity, cap=0.35 * small, rng=rng)
        if product.kind == "carton":
            mode = str(rng.choice(["dent", "corner", "edge"], p=[0.4, 0.35, 0.25]))
        elif product.kind in ("mailer", "pouch"):
            mode = str(rng.choice(["dent", "crumple"], p=[0.4, 0.6]))
        else:
            mode = "dent"
        radius = float(np.clip(depth * rng.uniform(2.5, 5.0), 8.0, 0.45 * large))
        return {"depth_mm": depth, "radius_mm": radius, "mode": mode}
    if op == "puncture":
        return {"diameter_mm": _size(op, severity, cap=0.4 * small + 12, rng=rng)}
    if op == "tear":
        return {"length_mm": _size(op, severity, cap=0.8 * large, rng=rng),
                "opening_deg": float(rng.uniform(10, 35) if severity == "minor" else rng.uniform(30, 90))}
    if op == "deconstruction":
        modes = {"carton": ["flap_open", "contents_out", "box_open"], "mailer": ["burst_seam"], "pouch": ["burst_seam"]}[product.kind]
        return {"mode": str(rng.choice(modes)), "opening_mm": _size(op, severity, cap=0.6 * large, rng=rng)}
    if op == "spill":
        substance = "powder" if product.kind == "pouch" and rng.random() < 0.6 else "liquid"
        area = _size(op, severity, cap=600.0, rng=rng)
        stain = 0.0 if rng.random() < 0.25 else float(min(area * rng.uniform(0.1, 0.5), 0.2 * small * large / 100))
        return {"area_cm2": area, "substance": substance, "stain_area_cm2": stain,
                "gap_mm": float(rng.uniform(2, 40))}
    if op == "missing_component":
        n = n_units(product)
        units = 1 if severity == "minor" or n < 3 else int(rng.integers(2, n))
        return {"units": units}
    if op == "superficial":
        style = str(rng.choice(["scuff", "scratch", "stain"] + (["torn_label"] if len(product.part_faces("label")) else [])))
        area = _size(op, severity, cap=0.25 * small * large / 100, rng=rng)
        if style == "scratch":
            width = float(rng.uniform(0.8, 2.0))
            return {"style": style, "length_mm": float(np.clip(area * 100 / width, 5, 400)), "width_mm": width}
        return {"style": style, "area_cm2": area}
    raise ValueError(f"no sampler for op {op!r}")
