"""Sampling damages for a corpus: which ops apply to which product, and op
parameters drawn for a requested severity.

Sizes are drawn on the requested side of the op's severity threshold
(:data:`damage_ops.base.SEVERITY_THRESHOLDS`), with a 10% margin so the measured
size lands on the same side, and capped by the product's own dimensions.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import trimesh

from .base import REGISTRY, SEVERITY_THRESHOLDS
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
    "puncture": (3.0, 130.0),        # diameter_mm
    "tear": (15.0, 400.0),           # length_mm
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

    sub = trimesh.Trimesh(product.mesh.vertices, product.mesh.faces[faces], process=False)
    return len(trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(faces)), min_len=1))


def applicable_ops(product: Product, category: str | None = None) -> list[str]:
    """Registered ops that apply to this product (optionally of one category)."""
    out = []
    for op in sorted(REGISTRY):
        kinds = APPLIES_TO.get(op)
        if kinds is not None and product.kind not in kinds:
            continue
        if category is not None and REGISTRY[op].category != category:
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


#: material of the part a crush deforms -> how it fails (see :func:`crush_material`)
BOARD_MATERIALS = frozenset({"cardboard", "cardboard_white", "paper"})
FILM_MATERIALS = frozenset({"poly_mailer", "plastic_film", "shrink_film", "foil_laminate", "padded_paper"})
#: the part whose material decides, first found wins: a blister's rigid shell
#: before its backing card, a multipack's film before the units inside
CRUSH_PART_ORDER = ("body", "blister", "film", "unit", "card")
#: material class -> (modes, probabilities) of a crush. Board creases, folds and
#: buckles (REALISM.md: corrugated board does not dent); film wrinkles and
#: crumples; rigid items keep the smooth dent (and its outward twin, the bulge).
CRUSH_MODES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "board": (("corner", "edge", "crease", "buckle", "crumple", "dent"), (0.3, 0.25, 0.15, 0.1, 0.15, 0.05)),
    "film": (("wrinkle", "crumple"), (0.6, 0.4)),
    "rigid": (("dent", "bulge"), (0.85, 0.15)),
}
#: major crushes of board: mostly a mangled box (several folds and a whole-box
#: mode in one damage, as real crushed parcels show: docs/crush_modes.png),
#: else one of the single folds or a crushed-in top
BOARD_MAJOR_MODES: tuple[tuple[str, ...], tuple[float, ...]] = (
    ("mangle", "sag", "corner", "edge", "crease", "buckle", "crumple"), (0.5, 0.1, 0.12, 0.1, 0.06, 0.05, 0.07))
#: crush mode -> (lo, hi) of radius_mm / depth_mm (the region's size per unit depth)
CRUSH_RADIUS_PER_DEPTH: dict[str, tuple[float, float]] = {
    "dent": (2.5, 5.0), "bulge": (2.5, 5.0), "corner": (1.8, 3.0), "edge": (1.5, 2.5), "crease": (2.5, 4.5),
    "buckle": (3.0, 5.0), "crumple": (2.5, 4.0), "wrinkle": (5.0, 10.0),
    "sag": (2.5, 4.0), "barrel": (2.5, 4.0), "rack": (2.5, 4.0), "mangle": (1.8, 3.0),
}
#: major board crushes along a corner / edge diagonal (and mangles): depth_mm in
#: this range, capped at 0.35 x the item's largest dimension (plainly visible at
#: booth distance: a corner caved in by 30-80 mm, as crushed parcels show it; at
#: 15-40 mm most crops of a crushed carton read as intact)
BOARD_MAJOR_DEPTH_MM = (30.0, 80.0)
#: major board crushes into a panel (crease, buckle, crumple, sag): depth_mm in
#: this range, capped at 0.45 x the thinnest dimension (the op's injectivity clamp)
BOARD_MAJOR_PANEL_DEPTH_MM = (20.0, 50.0)
#: major punctures of parcels and bags: diameter_mm in this range, capped by
#: the panel it must fit on (CARTON_HOLE_PER_SIDE, BAG_HOLE_PER_WIDTH; below
#: the range when even its low end does not fit). At harness distance a 13-40
#: mm hole covered ~100 px, 1% of the item's pixels: invisible in a crop, while
#: the holes in real damaged-parcel photos span a good part of a panel.
PUNCTURE_MAJOR_MM = (55.0, 130.0)
#: the kinds whose major punctures are drawn from PUNCTURE_MAJOR_MM (parcels and
#: bags); a blister's shell or a multipack's film keeps the smaller holes of
#: the threshold rule (a 55 mm hole fits on neither)
BIG_HOLE_KINDS = frozenset({"carton", "mailer", "pouch"})
#: a bag's major hole: at most this fraction of its width (the hole's pushed-in
#: rim needs a flat patch about twice its diameter on a wrinkled or pillowed bag)
BAG_HOLE_PER_WIDTH = 0.3
#: a carton's major hole: at most this fraction of its thinnest side
CARTON_HOLE_PER_SIDE = 0.5
#: major tears: length_mm of the rip (both legs of the V) in this range and in
#: 0.6-1.1 x the item's largest dimension (the op shortens a tear that fits
#: nowhere on its panel), and the flap peeled back this far (degrees): a 60-220
#: mm rip opened 30-90 degrees covered ~40 px at harness distance, a real gash
#: runs across much of a panel
TEAR_MAJOR_MM = (140.0, 400.0)
TEAR_MAJOR_OPENING_DEG = (70.0, 120.0)
#: burst seams (mailers, pouches): the opening is capped at this fraction of the
#: bag's middle dimension (its width); 0.6 x its length let a major slit gape
#: 80-120 mm, for which no wrinkled, labelled mailer had room
BURST_OPENING_PER_WIDTH = 0.3


def crush_material(product: Product) -> str:
    """``board``, ``film`` or ``rigid``: the class of the material of the part a
    crush deforms (the first of :data:`CRUSH_PART_ORDER` the product has)."""
    names = {pt.name: pt.material for pt in product.parts}
    part = next((n for n in CRUSH_PART_ORDER if n in names), None)
    mat = names[part] if part is not None else (product.parts[0].material if product.parts else "")
    return "board" if mat in BOARD_MATERIALS else "film" if mat in FILM_MATERIALS else "rigid"


def _crush_params(severity: str, product: Product, small: float, large: float,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Crush parameters by material (:data:`CRUSH_MODES`); sizes in mm. The op
    clamps the depth by the item's thickness (inward modes) and the radius, so
    the radius is drawn as a multiple of the depth and the depth capped by the
    thinnest dimension where a clamp would bite (it stays on the requested side
    of the severity threshold)."""
    cls = crush_material(product)
    modes, prob = CRUSH_MODES[cls]
    if cls == "board" and severity == "major":
        modes, prob = BOARD_MAJOR_MODES
    mode = str(rng.choice(modes, p=prob))
    if cls == "film" and severity == "major" and mode == "crumple" and 0.45 * small < 11.0:
        mode = "wrinkle"  # a flat mailer is too thin to crumple 10 mm in; its wrinkles stand out
    if cls == "rigid" and severity == "major" and 0.45 * small < 11.0:
        mode = "bulge"  # a flat blister is too thin to dent 10 mm in (the op clamps inward depth)
    if cls == "board" and severity == "major" and mode in ("corner", "edge", "mangle"):
        # pushed in along a corner / edge diagonal: the item is thick that way
        lo, hi = BOARD_MAJOR_DEPTH_MM
        depth = float(rng.uniform(lo, max(lo, min(hi, 0.35 * large))))
    elif mode == "wrinkle":  # crests go out: no thickness clamp
        depth = _size("crush", severity, cap=0.1 * large, rng=rng)
    elif cls == "board" and severity == "major":  # into a panel: the thickness clamp is 0.45 x small
        cap = max(11.0, 0.45 * small)
        lo, hi = BOARD_MAJOR_PANEL_DEPTH_MM
        depth = float(rng.uniform(min(lo, cap), min(hi, cap)))
    else:
        depth = _size("crush", severity, cap=0.35 * small, rng=rng)
    a, b = CRUSH_RADIUS_PER_DEPTH[mode]
    radius = float(np.clip(depth * rng.uniform(a, b), 8.0, max(8.0, 0.45 * large)))
    radius = min(max(radius, 1.05 * depth), 200.0)  # keeps the op's depth <= radius clamp idle
    return {"depth_mm": float(depth), "radius_mm": radius, "mode": mode}


def sample_params(op: str, severity: str, product: Product, rng: np.random.Generator) -> dict[str, Any]:
    """Parameters for ``op`` that give a damage of ``severity`` on ``product``."""
    if severity not in ("minor", "major"):
        raise ValueError(f"severity must be minor or major, got {severity!r}")
    dims = np.sort(np.asarray(product.dims_mm, dtype=float))
    small, large = float(dims[0]), float(dims[-1])
    if op == "crush":
        return _crush_params(severity, product, small, large, rng)
    if op == "puncture":
        if severity == "major" and product.kind in BIG_HOLE_KINDS:
            # a hole a fist or a fork-lift tine leaves: plainly seen at booth distance;
            # it must fit on a panel (a carton's thinnest side, a bag's width)
            lo, hi = PUNCTURE_MAJOR_MM
            side = CARTON_HOLE_PER_SIDE * small if product.kind == "carton" else BAG_HOLE_PER_WIDTH * float(dims[1])
            a = min(lo, side)
            return {"diameter_mm": float(rng.uniform(a, max(a, min(hi, side))))}
        return {"diameter_mm": _size(op, severity, cap=0.4 * small + 12, rng=rng)}
    if op == "tear":
        if severity == "major":  # a gash across a panel, its flap peeled well back
            lo, hi = TEAR_MAJOR_MM
            return {"length_mm": float(rng.uniform(max(lo, 0.6 * large), max(lo, min(hi, 1.1 * large)))),
                    "opening_deg": float(rng.uniform(*TEAR_MAJOR_OPENING_DEG))}
        return {"length_mm": _size(op, severity, cap=0.8 * large, rng=rng),
                "opening_deg": float(rng.uniform(10, 35))}
    if op == "deconstruction":
        modes = {"carton": ["flap_open", "contents_out", "box_open"], "mailer": ["burst_seam"], "pouch": ["burst_seam"]}[product.kind]
        mode = str(rng.choice(modes))
        # a burst seam's lips part by at most BURST_OPENING_PER_WIDTH x the bag's width:
        # wider, the slit's band finds no flat patch clear of the label on a wrinkled mailer
        cap = 0.6 * large if mode != "burst_seam" else BURST_OPENING_PER_WIDTH * float(dims[1])
        return {"mode": mode, "opening_mm": _size(op, severity, cap=cap, rng=rng)}
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
