"""Procedural product generators.

``GENERATORS`` maps a product kind to ``build(sku, params, rng) -> Product``.
Each generator module also declares ``PARAMS`` (its parameter schema, see
:mod:`simulator.products.base`), ``MATERIALS`` (material names it uses),
``MASS_RANGE_KG``, ``nominal_dims_mm(params)`` and ``check(params)``.

Imports only numpy, scipy, trimesh and noise: never OpenGL, pybullet or torch.
"""
from __future__ import annotations

from types import ModuleType
from typing import Callable

import numpy as np

from damage_ops import Product

from . import blister, bottle, carton, mailer, multipack, pouch

MODULES: dict[str, ModuleType] = {
    "carton": carton,
    "mailer": mailer,
    "blister": blister,
    "bottle": bottle,
    "pouch": pouch,
    "multipack": multipack,
}
KINDS: tuple[str, ...] = tuple(MODULES)
GENERATORS: dict[str, Callable[[str, dict, np.random.Generator], Product]] = {
    k: m.build for k, m in MODULES.items()
}


def build_product(kind: str, sku: str, params: dict, rng: np.random.Generator) -> Product:
    """Build one pristine product.

    kind: one of :data:`KINDS`; params: scalars, ``[lo, hi]`` ranges or
    ``{choice: [...]}`` (missing params are drawn from the generator's
    defaults); rng: every random choice draws from it. Same (params, rng
    state) -> byte-identical arrays.
    """
    if kind not in GENERATORS:
        raise ValueError(f"unknown product kind {kind!r}; expected one of {list(KINDS)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return GENERATORS[kind](sku, dict(params), rng)


__all__ = ["GENERATORS", "KINDS", "MODULES", "build_product"]
