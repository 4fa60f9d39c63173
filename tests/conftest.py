"""Shared fixtures. The test session is an entry point, so it picks the GL
platform here (EGL through Mesa llvmpipe on a CPU machine) before any test
imports pyrender."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import settings

from simulator.render.glenv import configure

GL_PLATFORM = configure()
# CI explores the same examples every run (a failure is reproducible, not flaky);
# HYPOTHESIS_PROFILE=explore draws new ones locally
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "ci"))
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_rig_path() -> Path:
    return DATA / "rig_small.yaml"


@pytest.fixture(scope="session")
def materials():
    from simulator.config.materials import load_materials

    return load_materials()


def _gl_ok() -> tuple[bool, str]:
    try:
        import pyrender

        r = pyrender.OffscreenRenderer(16, 16)
        r.delete()
        return True, ""
    except Exception as e:  # no GL on this machine: GL tests skip with the reason
        return False, f"no headless OpenGL ({GL_PLATFORM}): {e}"


@pytest.fixture(scope="session")
def gl():
    ok, why = _gl_ok()
    if not ok:
        pytest.skip(why)
    return GL_PLATFORM


def box_product(extents=(0.2, 0.15, 0.1), damaged_faces=(), sku="test-box"):
    """A labelled two-part box product (body + a lid slab on top); the faces in
    ``damaged_faces`` of the body carry one damage record."""
    from damage_ops import DamageRecord, Part, Product, concatenate, labelled_mesh

    b = trimesh.creation.box(extents=extents)
    lid = trimesh.creation.box(extents=(extents[0] * 0.9, extents[1] * 0.9, 0.004),
                               transform=trimesh.transformations.translation_matrix((0, 0, extents[2] / 2 + 0.002)))
    body = labelled_mesh(b.vertices, b.faces, 0)
    top = labelled_mesh(lid.vertices, lid.faces, 1)
    mesh = concatenate([body, top])
    damages = ()
    if len(damaged_faces):
        mesh.face_attributes["damage_id"][list(damaged_faces)] = 1
        damages = (DamageRecord("crush", "deformation", "minor", {"depth_mm": 3.0}, len(damaged_faces),
                                {"center_m": [0, 0, 0], "radius_m": 0.05}),)
    return Product(sku=sku, kind="carton", mesh=mesh, parts=(Part("body", "cardboard"), Part("flap", "cardboard_white")),
                   damages=damages, collision=(np.asarray(b.vertices),), mass_kg=0.5,
                   dims_mm=tuple(float(x) * 1000 for x in extents))
