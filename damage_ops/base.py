"""Operator registry, severity thresholds and the shared bookkeeping of every op.

An operator is a pure function ``op(product, params, rng) -> (new_product, record)``:
it never mutates its input (work on ``product.copy()``), draws every random
choice from ``rng``, labels the faces it changed with a new ``damage_id`` and
returns the :class:`~damage_ops.product.DamageRecord` it appended.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np

from .product import DamageRecord, Product

#: op name -> (size key, threshold): size >= threshold is ``major``. Documented
#: in the README; chosen so a minor damage is visible but easy to miss at a
#: glance and a major one is obvious from a metre away.
SEVERITY_THRESHOLDS: dict[str, tuple[str, float]] = {
    "crush": ("depth_mm", 10.0),
    "puncture": ("diameter_mm", 12.0),
    "tear": ("length_mm", 60.0),
    "deconstruction": ("opening_mm", 40.0),
    "spill": ("area_cm2", 60.0),
    "missing_component": ("units_missing", 2.0),
    "superficial": ("area_cm2", 12.0),
}

def severity(op: str, size: dict[str, float]) -> str:
    """``major`` or ``minor`` for a damage of op ``op`` with physical ``size`` (e.g.
    ``{"depth_mm": 12.0}``): major when the op's size key is at least its threshold
    in :data:`SEVERITY_THRESHOLDS`. KeyError for an op with no threshold,
    ValueError when ``size`` lacks the op's key."""
    key, thr = SEVERITY_THRESHOLDS[op]
    if key not in size:
        raise ValueError(f"{op}: size has no {key!r} to grade severity; got keys {sorted(size)}")
    return "major" if float(size[key]) >= thr else "minor"


class ParamError(ValueError):
    """Bad operator parameters; the message names the op, the field and the value."""


class NotApplicable(ParamError):
    """The op cannot apply to this product here: the geometry refuses (no room
    for the cut, no part the op works on, a boolean the mesh kernel rejects).

    The one error a damage-drawing loop catches to draw another damage; any
    other exception inside an op is a bug and fails the capture. A subclass of
    :class:`ParamError`, so callers that pass explicit params see both alike."""


def check_range(op: str, name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float, checked to be a finite number in [lo, hi]; otherwise
    ParamError naming ``op.name`` and the value (booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not np.isfinite(value):
        raise ParamError(f"{op}.{name}: must be a finite number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise ParamError(f"{op}.{name}: must be in [{lo}, {hi}], got {value!r}")
    return float(value)


def check_face_index(op: str, value: Any) -> None:
    """``center``-style params: None (random) or a face index >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
        raise ParamError(f"{op}.center: must be a face index >= 0 or None, got {value!r}")


def params_from(cls, op: str, params: Any):
    """A frozen params dataclass from an instance or a dict; unknown keys are errors."""
    if isinstance(params, cls):
        return params
    if not isinstance(params, dict):
        raise ParamError(f"{op}: params must be a mapping or {cls.__name__}, got {type(params).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ParamError(f"{op}: unknown parameter {unknown[0]!r}; allowed: {sorted(names)}")
    return cls(**params)


def add_damage(product: Product, faces: np.ndarray, op: str, size: dict[str, float], region: dict[str, Any],
               params: dict[str, Any], category: str | None = None) -> tuple[Product, DamageRecord]:
    """Label ``faces`` of ``product`` (already a private copy) with a new damage and
    append its record. Faces already carrying an earlier damage are relabelled: the
    newest damage wins where two overlap."""
    faces = np.unique(np.asarray(faces, dtype=np.int64))
    rec = DamageRecord(type=op, category=category or REGISTRY[op].category, severity=severity(op, size),
                       size={k: float(v) for k, v in size.items()}, n_faces=int(len(faces)),
                       region=region, params=params)
    product.damages = tuple(product.damages) + (rec,)
    product.mesh.face_attributes["damage_id"][faces] = len(product.damages)
    return product, rec


@dataclass(frozen=True)
class OpSpec:
    """A registered operator: its name, params dataclass, function
    ``fn(product, params, rng) -> (product, record)``, Kaputt category (the one
    place an op's category is declared; tear may report deconstruction on a
    record when it opens the item), and whether it may leave a closed part open."""
    name: str
    params_cls: type
    fn: Callable[..., tuple[Product, DamageRecord]]
    category: str
    opens_surface: bool  # whether the op may leave a closed part open (documented per op)


REGISTRY: dict[str, OpSpec] = {}


def register(name: str, params_cls: type, category: str, opens_surface: bool):
    """Decorator: register the decorated op function in :data:`REGISTRY` under
    ``name`` (a later registration of the same name replaces it); returns the
    function unchanged."""
    def deco(fn):
        REGISTRY[name] = OpSpec(name, params_cls, fn, category, opens_surface)
        return fn
    return deco


def apply(product: Product, op: str, params: Any, rng: np.random.Generator) -> tuple[Product, DamageRecord]:
    """Apply a registered op by name."""
    if op not in REGISTRY:
        raise ParamError(f"unknown damage op {op!r}; available: {sorted(REGISTRY)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy Generator, got {type(rng).__name__}")
    spec = REGISTRY[op]
    return spec.fn(product, params_from(spec.params_cls, op, params), rng)
