"""Shared checks for damage-operator tests (not collected: no test_ prefix)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from simulator.products import KINDS, build_product


def product(kind: str, seed: int):
    try:
        return build_product(kind, f"{kind}-{seed}", {}, np.random.default_rng(seed))
    except NotImplementedError as e:  # a generator still in progress
        pytest.skip(f"product kind {kind!r} not ready: {e}")


def snapshot(p) -> dict:
    d = {"V": np.array(p.mesh.vertices, copy=True), "F": np.array(p.mesh.faces, copy=True),
         "n_damages": len(p.damages), "n_parts": len(p.parts)}
    for k, v in p.mesh.face_attributes.items():
        d["attr_" + k] = np.array(v, copy=True)
    return d


def assert_unchanged(p, snap: dict) -> None:
    np.testing.assert_array_equal(p.mesh.vertices, snap["V"])
    np.testing.assert_array_equal(p.mesh.faces, snap["F"])
    assert len(p.damages) == snap["n_damages"] and len(p.parts) == snap["n_parts"]
    for k, v in p.mesh.face_attributes.items():
        np.testing.assert_array_equal(v, snap["attr_" + k])
    assert set(p.mesh.face_attributes) == {k[5:] for k in snap if k.startswith("attr_")}


def part_mesh(p, part: int) -> trimesh.Trimesh:
    F = np.asarray(p.mesh.faces)[np.asarray(p.part_id) == part]
    return trimesh.Trimesh(np.asarray(p.mesh.vertices), F, process=True)


def closed_parts(p) -> set[int]:
    return {i for i in np.unique(p.part_id) if part_mesh(p, int(i)).is_watertight}


def assert_valid(p, closed_before: set[int], may_open: set[int] = frozenset()) -> None:
    p.validate()
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    assert np.isfinite(V).all()
    area = trimesh.triangles.area(V[F])
    assert area.min() > 1e-14, f"degenerate face: area {area.min()}"
    srt = np.sort(F, axis=1)
    assert len(np.unique(srt, axis=0)) == len(F), "duplicate faces"
    for k in ("tint", "finish"):
        if k in p.mesh.face_attributes:
            assert len(p.mesh.face_attributes[k]) == len(F)
    for part in closed_before - set(may_open):
        assert part_mesh(p, part).is_watertight, f"part {p.parts[part].name} is no longer closed"


def face_areas(p) -> np.ndarray:
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    return trimesh.triangles.area(V[F])


ALL_KINDS = KINDS
