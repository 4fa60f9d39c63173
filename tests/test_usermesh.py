"""User meshes: formats, units, centring, and clear MeshErrors naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from simulator.core.errors import MeshError
from simulator.products.usermesh import load_user_mesh


def make_box(tmp_path, ext, extents):
    path = tmp_path / f"box.{ext}"
    m = trimesh.creation.box(extents=extents)
    m.apply_translation([5.0 * extents[0], -3.0 * extents[1], 2.0 * extents[2]])  # off-centre on purpose
    m.export(str(path))
    return path


@pytest.mark.parametrize("ext", ["obj", "glb", "ply", "stl"])
def test_roundtrip_mm(tmp_path, ext):
    path = make_box(tmp_path, ext, [120.0, 80.0, 40.0])
    prod = load_user_mesh(path, "mm", "rigid_plastic", "mug-000")
    prod.validate()
    lo, hi = prod.mesh.bounds
    np.testing.assert_allclose(hi - lo, [0.12, 0.08, 0.04], atol=1e-6)
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-9)
    np.testing.assert_allclose(prod.dims_mm, [120, 80, 40], atol=1e-3)
    assert prod.kind == "mesh" and prod.sku == "mug-000"
    assert prod.parts[0].name == "body" and prod.parts[0].material == "rigid_plastic"
    assert prod.collision == ()
    assert (prod.damage_id == 0).all() and (prod.part_id == 0).all()


@pytest.mark.parametrize("ext", ["obj", "glb", "ply", "stl"])
def test_units_scale(tmp_path, ext):
    path = make_box(tmp_path, ext, [0.3, 0.2, 0.1])
    in_m = load_user_mesh(path, "m", "cardboard", "a")
    np.testing.assert_allclose(in_m.mesh.extents, [0.3, 0.2, 0.1], atol=1e-6)
    in_cm = load_user_mesh(make_box(tmp_path, ext, [30.0, 20.0, 10.0]), "cm", "cardboard", "a")
    np.testing.assert_allclose(in_cm.mesh.extents, [0.3, 0.2, 0.1], atol=1e-6)
    in_in = load_user_mesh(make_box(tmp_path, ext, [3.0, 2.0, 1.0]), "in", "cardboard", "a")
    np.testing.assert_allclose(in_in.mesh.extents, [0.0762, 0.0508, 0.0254], atol=1e-6)


def test_broken_file(tmp_path):
    path = tmp_path / "broken.glb"
    path.write_bytes(b"this is not a glb file at all")
    with pytest.raises(MeshError, match="broken.glb"):
        load_user_mesh(path, "mm", "cardboard", "x")


def test_garbage_obj(tmp_path):
    path = tmp_path / "garbage.obj"
    path.write_text("v 0 0 0\nv 1 0 0\n")  # vertices, no faces
    with pytest.raises(MeshError, match="garbage.obj"):
        load_user_mesh(path, "mm", "cardboard", "x")


def test_empty_mesh(tmp_path):
    path = tmp_path / "empty.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                    "property float z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    with pytest.raises(MeshError, match="empty.ply") as e:
        load_user_mesh(path, "mm", "cardboard", "x")
    assert "no faces" in str(e.value) or "cannot read" in str(e.value)


def test_nan_vertex(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv 10 0 0\nv 0 10 0\nv nan 0 5\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(MeshError, match="nan.obj") as e:
        load_user_mesh(path, "mm", "cardboard", "x")
    assert "NaN" in str(e.value) or "cannot read" in str(e.value)


def test_too_large(tmp_path):
    path = make_box(tmp_path, "stl", [5.0, 1.0, 1.0])
    with pytest.raises(MeshError, match="box.stl") as e:
        load_user_mesh(path, "m", "cardboard", "x")
    assert "check the units" in str(e.value)


def test_too_small(tmp_path):
    path = make_box(tmp_path, "stl", [2.0, 1.0, 1.0])
    with pytest.raises(MeshError, match="box.stl"):
        load_user_mesh(path, "mm", "cardboard", "x")


def test_bad_units_missing_file_and_format(tmp_path):
    path = make_box(tmp_path, "stl", [0.1, 0.1, 0.1])
    with pytest.raises(MeshError, match="units"):
        load_user_mesh(path, "furlong", "cardboard", "x")
    with pytest.raises(MeshError, match="nope.obj"):
        load_user_mesh(tmp_path / "nope.obj", "mm", "cardboard", "x")
    bad = tmp_path / "model.xyz"
    bad.write_text("1 2 3\n")
    with pytest.raises(MeshError, match="model.xyz"):
        load_user_mesh(bad, "mm", "cardboard", "x")
