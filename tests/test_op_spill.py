"""spill: puddle / heap satellite area, stain area, exact labels, validity,
purity, composition, ParamError."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from _op_checks import assert_unchanged, assert_valid, part_mesh, product, snapshot  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

import damage_ops.missing  # noqa: F401  (composition partner)
import damage_ops.spill as S
from damage_ops.base import REGISTRY, ParamError, apply
from damage_ops.product import FINISH_IDS
from simulator.products import KINDS


def tri_area(V, F):
    return 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)


@settings(max_examples=24, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 3), rseed=st.integers(0, 2 ** 31),
       area=st.floats(1.0, 1500.0), stain=st.one_of(st.just(0.0), st.floats(1.0, 40.0)),
       substance=st.sampled_from(S.SUBSTANCES))
def test_spill_sizes_labels_validity(kind, seed, rseed, area, stain, substance):
    p = product(kind, seed)
    snap = snapshot(p)
    q, rec = apply(p, "spill", {"area_cm2": area, "stain_area_cm2": stain, "substance": substance},
                   np.random.default_rng(rseed))
    assert_unchanged(p, snap)
    assert_valid(q)
    did = len(q.damages)
    assert rec is q.damages[-1] and rec.category == "spillage"

    # satellite: closed slab on z = 0, centred, fully labelled, debris part, footprint area
    sat = q.satellites[-1]
    sm = sat.mesh
    assert sat.kind == ("puddle" if substance == "liquid" else "heap")
    assert sm.is_watertight and sm.is_winding_consistent and sm.volume > 0
    assert abs(sm.vertices[:, 2].min()) < 1e-12
    lo, hi = sm.vertices.min(0), sm.vertices.max(0)
    assert np.allclose((lo + hi)[:2] / 2, 0, atol=1e-9)
    assert (sm.face_attributes["damage_id"] == did).all()
    assert {q.parts[i].name for i in np.unique(sm.face_attributes["part_id"])} == {"debris"}
    assert (sm.face_attributes["finish"] == FINISH_IDS[substance]).all()
    bottom = sm.face_normals[:, 2] < -0.999
    foot = sm.area_faces[bottom].sum() * 1e4
    assert foot == pytest.approx(area, rel=0.10)
    assert rec.size["area_cm2"] == pytest.approx(foot, rel=1e-6)
    zmax = hi[2] * 1000
    if substance == "liquid":
        assert 0.5 - 1e-9 <= zmax <= 2.0 + 1e-9
    assert sat.gap_m == pytest.approx(S.SpillParams().gap_mm / 1000)

    # stain: labelled faces == faces whose appearance changed; area as asked
    lab = q.damage_id == did
    fin = q.mesh.face_attributes["finish"]
    tint = q.mesh.face_attributes["tint"]
    changed = (fin != 0) | np.any(tint != 1, axis=1)
    assert np.array_equal(lab, changed)
    assert (fin[lab] == FINISH_IDS[substance]).all() and (tint[lab] < 1).all()
    measured = q.mesh.area_faces[lab].sum() * 1e4
    assert rec.n_faces == lab.sum()
    if stain == 0:
        assert not lab.any()
        assert np.array_equal(q.mesh.faces, p.mesh.faces) and np.array_equal(q.mesh.vertices, p.mesh.vertices)
    else:
        assert measured == pytest.approx(stain, rel=0.10)
        assert rec.size["stain_area_cm2"] == pytest.approx(measured, rel=1e-6)
        assert not np.isin(q.part_id[lab], [i for i, t in enumerate(q.parts) if t.name in S.UNSTAINED_PARTS]).any()
    # geometry untouched: same area per part, every vertex on the input surface
    for i in range(len(p.parts)):
        assert q.mesh.area_faces[q.part_id == i].sum() == pytest.approx(p.mesh.area_faces[p.part_id == i].sum(),
                                                                          rel=1e-9)
    new_v = q.mesh.vertices[len(p.mesh.vertices):]
    if len(new_v):
        sample = new_v[np.random.default_rng(0).choice(len(new_v), min(200, len(new_v)), replace=False)]
        _, dist, _ = trimesh.proximity.closest_point(p.mesh, sample)
        assert dist.max() < 1e-9
    assert np.array_equal(q.mesh.vertices[: len(p.mesh.vertices)], p.mesh.vertices)


def test_spill_deterministic_and_seed_zero():
    p = product("pouch", 1)
    a, ra = S.spill(p, S.SpillParams(area_cm2=50, stain_area_cm2=8), np.random.default_rng(0))
    b, rb = S.spill(p, S.SpillParams(area_cm2=50, stain_area_cm2=8), np.random.default_rng(0))
    c, _ = S.spill(p, S.SpillParams(area_cm2=50, stain_area_cm2=8), np.random.default_rng(1))
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.damage_id, b.damage_id)
    assert np.array_equal(a.satellites[-1].mesh.vertices, b.satellites[-1].mesh.vertices)
    assert not np.array_equal(a.satellites[-1].mesh.vertices, c.satellites[-1].mesh.vertices)
    assert ra == rb


def test_spill_center_and_severity():
    p = product("carton", 0)
    f = int(np.argmax(p.mesh.face_normals[:, 2]))
    q, rec = S.spill(p, S.SpillParams(center=f, area_cm2=200, stain_area_cm2=5), np.random.default_rng(3))
    assert rec.severity == "major" and rec.type == "spill"
    c = np.asarray(rec.region["center_m"])
    assert np.allclose(c, p.mesh.triangles_center[f])
    lab = q.mesh.triangles_center[q.damage_id == len(q.damages)]
    assert np.linalg.norm(lab - c, axis=1).max() <= rec.region["radius_m"] + 1e-9
    _, rec2 = S.spill(p, S.SpillParams(area_cm2=10, stain_area_cm2=0), np.random.default_rng(3))
    assert rec2.severity == "minor" and rec2.n_faces == 0


@pytest.mark.parametrize("first", ["missing_component"])
def test_spill_composes(first):
    p = product("blister", 2)
    q1, r1 = apply(p, first, {"units": 1}, np.random.default_rng(5))
    lab1 = q1.damage_id == 1
    q2, r2 = apply(q1, "spill", {"area_cm2": 30, "stain_area_cm2": 20}, np.random.default_rng(6))
    assert_valid(q2)
    assert len(q2.damages) == 2 and q2.damages[0] == r1
    assert (q2.damage_id == 2).sum() == r2.n_faces > 0
    # the first damage keeps its faces except where the stain covers them (newest wins)
    area1 = q1.mesh.area_faces[lab1].sum()
    area_left = q2.mesh.area_faces[q2.damage_id == 1].sum()
    area_over = q2.mesh.area_faces[(q2.damage_id == 2)].sum()
    assert area_left <= area1 + 1e-12 and area_left >= area1 - area_over - 1e-9
    q3, r3 = apply(q2, "spill", {"area_cm2": 5, "stain_area_cm2": 0, "substance": "powder"}, np.random.default_rng(7))
    assert_valid(q3)
    assert len(q3.satellites) == 2 and (q3.satellites[0].mesh.face_attributes["damage_id"] == 2).all()
    assert (q3.satellites[1].mesh.face_attributes["damage_id"] == 3).all()
    assert [t.name for t in q3.parts].count("debris") == 2  # liquid_spill and powder


@pytest.mark.parametrize("bad", [
    {"area_cm2": 0.5}, {"area_cm2": 2000}, {"area_cm2": float("nan")}, {"area_cm2": True},
    {"substance": "gel"}, {"stain_area_cm2": -1}, {"gap_mm": -2}, {"center": -1}, {"center": 1.5},
    {"colour": "red"},
])
def test_spill_param_errors(bad):
    p = product("carton", 0)
    with pytest.raises(ParamError) as e:
        apply(p, "spill", bad, np.random.default_rng(0))
    msg = str(e.value)
    assert "spill" in msg and (list(bad)[0] in msg)


def test_spill_param_errors_need_the_product():
    p = product("carton", 0)
    with pytest.raises(ParamError, match="center"):
        apply(p, "spill", {"center": len(p.mesh.faces)}, np.random.default_rng(0))
    with pytest.raises(ParamError, match="stain_area_cm2"):
        apply(product("blister", 0), "spill", {"stain_area_cm2": 1000}, np.random.default_rng(0))


def test_registered():
    spec = REGISTRY["spill"]
    assert spec.category == "spillage" and spec.opens_surface is False
