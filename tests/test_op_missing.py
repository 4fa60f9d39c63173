"""missing_component: exact unit count, cavity labelled (and nothing else),
validity, purity, collision / mass bookkeeping, composition, ParamError."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings, strategies as st

import damage_ops.missing as M
import damage_ops.spill  # noqa: F401  (composition partner)
from damage_ops.base import REGISTRY, ParamError, apply
from damage_ops.product import Part
from _op_checks import assert_unchanged, part_mesh, product, snapshot  # noqa: F401
from _op_checks import assert_valid as _assert_valid

SET_KINDS = ("blister", "multipack")


def assert_valid(p):
    _assert_valid(p, referenced=True)


def unit_boxes(p):
    """Per unit (trimesh connected components of unit faces): (lo, hi) boxes."""
    uid = [i for i, t in enumerate(p.parts) if t.name == "unit"]
    f = np.flatnonzero(np.isin(p.part_id, uid))
    sub = trimesh.Trimesh(p.mesh.vertices, p.mesh.faces[f], process=False)
    comps = trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(f)), min_len=1)
    out = []
    for c in sorted(comps, key=lambda c: int(np.min(c))):
        v = p.mesh.vertices[np.unique(p.mesh.faces[f[c]])]
        out.append((v.min(0), v.max(0)))
    return out


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(SET_KINDS), seed=st.integers(0, 5), rseed=st.integers(0, 2 ** 31),
       frac=st.floats(0.0, 1.0))
def test_missing_count_cavity_labels(kind, seed, rseed, frac):
    p = product(kind, seed)
    before = unit_boxes(p)
    n = len(before)
    k = 1 + int(frac * (n - 2) + 0.5) if n > 2 else 1
    snap = snapshot(p)
    q, rec = apply(p, "missing_component", {"units": k}, np.random.default_rng(rseed))
    assert_unchanged(p, snap)
    assert_valid(q)
    after = unit_boxes(q)
    assert len(after) == n - k
    assert rec.size["units_missing"] == k
    assert rec.severity == ("major" if k >= 2 else "minor") and rec.category == "missing_unit"

    # which units went: the input boxes with no match among the output boxes
    key = lambda b: tuple(np.round(np.concatenate(b), 9))  # noqa: E731
    left = {key(b) for b in after}
    gone = [b for b in before if key(b) not in left]
    assert len(gone) == k
    assert sorted(rec.region["units"]) == [i for i, b in enumerate(before) if key(b) not in left]

    # labelled == non-unit faces whose centroid lies in a removed unit's box
    # expanded by the documented margins
    did = len(q.damages)
    lab = q.damage_id == did
    unit_ids = [i for i, t in enumerate(q.parts) if t.name == "unit"]
    C = q.mesh.triangles_center
    inside = np.zeros(len(C), bool)
    for lo, hi in gone:
        a = lo - np.array([M.MARGIN_XY_M, M.MARGIN_XY_M, M.MARGIN_Z_M])
        b = hi + np.array([M.MARGIN_XY_M, M.MARGIN_XY_M, np.inf])
        here = np.all((C >= a) & (C <= b), axis=1) & ~np.isin(q.part_id, unit_ids)
        assert here.any(), "the empty cavity is labelled"
        # covered from above: some labelled face lies above the unit's footprint centre
        cxy = (lo + hi)[:2] / 2
        assert np.any(here & (np.linalg.norm(C[:, :2] - cxy, axis=1) < 0.5 * np.min(hi[:2] - lo[:2])))
        inside |= here
    assert np.array_equal(lab, inside)
    assert rec.n_faces == lab.sum()
    assert not np.isin(q.part_id[lab], unit_ids).any()

    # nothing else changed: non-unit parts keep their area; remaining units are the input's
    for i, t in enumerate(p.parts):
        if t.name != "unit":
            assert q.mesh.area_faces[q.part_id == i].sum() == pytest.approx(
                p.mesh.area_faces[p.part_id == i].sum(), rel=1e-9)
    tri = lambda m, mask: {tuple(np.round(t.ravel(), 12)) for t in m.triangles[mask]}  # noqa: E731
    assert tri(q.mesh, np.isin(q.part_id, unit_ids)) <= tri(p.mesh, np.isin(p.part_id, unit_ids))
    assert (q.mesh.face_attributes.get("finish", np.zeros(1)) == 0).all()

    # bookkeeping
    assert 0 < q.mass_kg < p.mass_kg
    for c in q.collision:
        assert not any(np.all((c >= lo - 1e-3) & (c <= hi + 1e-3)) for lo, hi in gone)


def test_which_and_collision_per_unit():
    p = product("blister", 1)
    before = unit_boxes(p)
    # pretend the generator made one collision piece per unit: those of removed units go
    corners = [np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
               for lo, hi in before]
    p.collision = tuple(p.collision) + tuple(corners)
    q, rec = M.missing_component(p, M.MissingParams(units=2, which=(0, 2)), np.random.default_rng(0))
    assert rec.region["units"] == [0, 2]
    assert len(q.collision) == len(p.collision) - 2
    assert not any(np.array_equal(c, corners[0]) or np.array_equal(c, corners[2]) for c in q.collision)
    q0, _ = M.missing_component(p, M.MissingParams(units=1), np.random.default_rng(0))
    q1, _ = M.missing_component(p, M.MissingParams(units=1), np.random.default_rng(0))
    assert np.array_equal(q0.mesh.vertices, q1.mesh.vertices) and np.array_equal(q0.damage_id, q1.damage_id)


def test_missing_composes():
    p = product("multipack", 3)
    q1, r1 = apply(p, "spill", {"area_cm2": 30, "stain_area_cm2": 15}, np.random.default_rng(1))
    q2, r2 = apply(q1, "missing_component", {"units": 2}, np.random.default_rng(2))
    assert_valid(q2)
    assert q2.damages[:1] == (r1,) and len(q2.damages) == 2
    assert len(unit_boxes(q2)) == len(unit_boxes(p)) - 2
    assert (q2.damage_id == 2).sum() == r2.n_faces > 0
    assert len(q2.satellites) == 1 and (q2.satellites[0].mesh.face_attributes["damage_id"] == 1).all()
    q3, r3 = apply(q2, "missing_component", {"units": 1}, np.random.default_rng(3))
    assert_valid(q3)
    assert r3.size["units_missing"] == 1 and len(unit_boxes(q3)) == len(unit_boxes(p)) - 3


@pytest.mark.parametrize("bad,field", [
    ({"units": 0}, "units"), ({"units": True}, "units"), ({"units": 1.5}, "units"),
    ({"units": 1, "which": (0, 1)}, "which"), ({"units": 2, "which": (1, 1)}, "which"),
    ({"units": 1, "which": (-1,)}, "which"), ({"count": 1}, "count"),
])
def test_missing_param_errors(bad, field):
    with pytest.raises(ParamError) as e:
        apply(product("blister", 0), "missing_component", bad, np.random.default_rng(0))
    assert "missing_component" in str(e.value) and field in str(e.value)


def test_missing_errors_name_the_count():
    p = product("multipack", 0)
    n = len(unit_boxes(p))
    with pytest.raises(ParamError, match=f"{n} units"):
        apply(p, "missing_component", {"units": n}, np.random.default_rng(0))
    with pytest.raises(ParamError, match=f"out of range for {n} units"):
        apply(p, "missing_component", {"units": 1, "which": (n,)}, np.random.default_rng(0))
    with pytest.raises(ParamError, match="no 'unit' part"):
        apply(product("carton", 0), "missing_component", {"units": 1}, np.random.default_rng(0))


def test_registered():
    spec = REGISTRY["missing_component"]
    assert spec.category == "missing_unit" and spec.opens_surface is False
    assert Part("unit", "metal").name == "unit"
