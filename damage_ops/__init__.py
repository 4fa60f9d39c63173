"""Procedural damage operators and the product data model.

Imports only numpy, scipy, trimesh and noise: never OpenGL, pybullet or torch.
"""
from .product import (
                      FINISH_IDS,
                      FINISHES,
                      DamageRecord,
                      Part,
                      Product,
                      Satellite,
                      concatenate,
                      ensure_optional,
                      labelled_mesh,
                      take_faces,
)
from .taxonomy import CATEGORIES, CATEGORY_IDS, PART_IDS, PART_NAMES, SEVERITIES, category_id, part_id

__all__ = [
    "FINISHES", "FINISH_IDS", "Satellite", "ensure_optional", "CATEGORIES", "CATEGORY_IDS", "PART_IDS", "PART_NAMES", "SEVERITIES",
    "DamageRecord", "Part", "Product", "category_id", "concatenate", "labelled_mesh",
    "part_id", "take_faces",
]

# Importing the operator modules registers them in damage_ops.base.REGISTRY.
from . import crush, deconstruction, missing, puncture, spill, superficial, tear  # noqa: E402,F401
from .base import REGISTRY, apply  # noqa: E402
