"""Parameter schemas shared by the generators, and product assembly.

Every generator declares ``PARAMS: dict[str, Param]``. A param value in a
catalog may be a scalar, a ``[lo, hi]`` range (numbers) or ``{choice: [...]}``;
:func:`draw` turns it into a scalar with the rng it is given, and
:func:`resolve` fills params left out from the declared defaults, in the
declared order, so resolution is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from damage_ops import Part, Product, concatenate, labelled_mesh

from ._geom import outward

#: Largest physical length any generator accepts (mm): sanity, not the tray.
MAX_MM = 2000.0


@dataclass(frozen=True)
class Param:
    """One generator parameter.

    kind: ``mm`` (length, millimetres), ``float``, ``int`` or ``choice``
    default: (lo, hi) range for numbers or tuple of options for choice; drawn
        when the param is not given
    lo, hi: hard bounds of any accepted value (validation)
    choices: accepted options for ``choice``
    """

    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    doc: str = ""


def mm(default: tuple[float, float], doc: str = "", lo: float = 0.0, hi: float = MAX_MM) -> Param:
    return Param("mm", default, lo, hi, (), doc)


def check_value(name: str, spec: Param, v: Any) -> Any:
    """Validate one scalar value; raises ``ValueError`` naming the param and value."""
    if spec.kind == "choice":
        if v not in spec.choices:
            raise ValueError(f"param {name!r} must be one of {list(spec.choices)}, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"param {name!r} must be a number, got {v!r}")
    x = float(v)
    if not np.isfinite(x):
        raise ValueError(f"param {name!r} must be finite, got {v!r}")
    if spec.kind == "int":
        if x != round(x):
            raise ValueError(f"param {name!r} must be an integer, got {v!r}")
        x = int(round(x))
    if spec.lo is not None and (x <= spec.lo if spec.kind == "mm" else x < spec.lo):
        op = ">" if spec.kind == "mm" else ">="
        raise ValueError(f"param {name!r} must be {op} {spec.lo:g}, got {v!r}")
    if spec.hi is not None and x > spec.hi:
        raise ValueError(f"param {name!r} must be <= {spec.hi:g}, got {v!r}")
    return x


def draw(name: str, spec: Param, value: Any, rng: np.random.Generator) -> Any:
    """Scalar from a scalar, a [lo, hi] range or {choice: [...]}; validated."""
    if isinstance(value, dict):
        if set(value) != {"choice"} or not isinstance(value["choice"], (list, tuple)) or not value["choice"]:
            raise ValueError(f"param {name!r}: a mapping must be {{choice: [options...]}}, got {value!r}")
        opts = [check_value(name, spec, o) for o in value["choice"]]
        return opts[int(rng.integers(len(opts)))]
    if isinstance(value, (list, tuple)):
        if spec.kind == "choice":
            opts = [check_value(name, spec, o) for o in value]
            if not opts:
                raise ValueError(f"param {name!r}: empty choice list")
            return opts[int(rng.integers(len(opts)))]
        if len(value) != 2:
            raise ValueError(f"param {name!r}: a range must be [lo, hi], got {value!r}")
        lo, hi = (check_value(name, spec, x) for x in value)
        if lo > hi:
            raise ValueError(f"param {name!r}: range min {lo:g} > max {hi:g} in {value!r}")
        if spec.kind == "int":
            return int(rng.integers(int(lo), int(hi) + 1))
        return float(rng.uniform(lo, hi))
    return check_value(name, spec, value)


def resolve(kind: str, params_spec: dict[str, Param], params: dict, rng: np.random.Generator) -> dict:
    """All params as scalars: given ones validated, missing ones drawn from defaults."""
    unknown = sorted(set(params) - set(params_spec))
    if unknown:
        raise ValueError(f"{kind}: unknown param(s) {unknown}; allowed: {sorted(params_spec)}")
    out = {}
    for name, spec in params_spec.items():
        out[name] = draw(name, spec, params[name] if name in params else spec.default, rng)
    return out


def finish(sku: str, kind: str, pieces: list[tuple[tuple, int]], parts: list[Part],
           artwork: np.ndarray | None, mass_kg: float, collision: list[np.ndarray], meta: dict,
           normal_map: np.ndarray | None = None) -> Product:
    """Assemble a :class:`Product` from closed pieces ``((V, F, UV), part_index)``.

    Each piece is flipped outward if needed; the whole is shifted so its
    bbox centre is the origin (collision pieces move with it). dims_mm are the
    actual bbox extents.
    """
    meshes = []
    for (V, F, UV), pi in pieces:
        V, F, UV = outward(V, F, UV)
        meshes.append(labelled_mesh(V, F, pi, UV))
    mesh = concatenate(meshes)
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    centre = (lo + hi) / 2
    mesh.vertices = mesh.vertices - centre
    dims = tuple(float(x) for x in (hi - lo) * 1000.0)
    return Product(
        sku=sku, kind=kind, mesh=mesh, parts=tuple(parts), artwork=artwork,
        collision=tuple(np.asarray(c, np.float64) - centre for c in collision),
        mass_kg=float(mass_kg), dims_mm=dims, meta=dict(meta), normal_map=normal_map,
    )
