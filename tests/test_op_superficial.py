"""superficial: area within 10 %, labels == changed faces, hidden layers never
painted, torn labels open only the label, validity, composition."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from _damage_helpers import (
    ALL_KINDS,
    assert_unchanged,
    assert_valid,
    closed_parts,
    face_areas,
    part_mesh,
    product,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import damage_ops.crush  # noqa: F401  registers "crush"
import damage_ops.superficial  # noqa: F401  registers "superficial"
from damage_ops.base import REGISTRY, ParamError, apply

NO_LABEL = tuple(k for k in ALL_KINDS if k != "bottle")


def _changed(q) -> np.ndarray:
    """Faces whose appearance differs from a pristine face (fresh inputs only)."""
    fa = q.mesh.face_attributes
    return np.flatnonzero((np.abs(fa["tint"] - 1.0) > 1e-6).any(1) | (fa["finish"] != 0))


def test_registered():
    spec = REGISTRY["superficial"]
    assert spec.category == "superficial" and spec.opens_surface is True


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1),
       style=st.sampled_from(("scuff", "stain")), area=st.floats(0.5, 40.0))
def test_blob_area_and_labels(kind, seed, style, area):
    p = product(kind, seed % 1000)
    snap = snapshot(p)
    closed = closed_parts(p)
    q, rec = apply(p, "superficial", {"style": style, "area_cm2": area}, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q, closed)
    lab = np.flatnonzero(q.damage_id == 1)
    np.testing.assert_array_equal(_changed(q), lab)
    meas = face_areas(q)[lab].sum() * 1e4
    assert abs(meas - rec.size["area_cm2"]) < 1e-6
    assert abs(meas - area) <= 0.1 * area
    assert rec.severity == ("major" if meas >= 12 else "minor")
    tint = q.mesh.face_attributes["tint"][lab]
    if style == "scuff":
        assert (tint > 1.0).all() and (q.mesh.face_attributes["finish"][lab] == 4).all()
    else:
        assert (tint < 1.0).all()
    # geometry untouched: every vertex of the result lies on the input surface
    _, dist, _ = trimesh.proximity.closest_point(p.mesh, np.asarray(q.mesh.vertices)[np.unique(q.mesh.faces[lab])][:400])
    assert dist.max() < 1e-9


@settings(max_examples=4, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1),
       length=st.floats(10.0, 100.0), width=st.floats(0.5, 2.0))
def test_scratch(kind, seed, length, width):
    p = product(kind, seed % 1000)
    snap = snapshot(p)
    closed = closed_parts(p)
    q, rec = apply(p, "superficial", {"style": "scratch", "length_mm": length, "width_mm": width},
                   np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q, closed)
    lab = np.flatnonzero(q.damage_id == 1)
    np.testing.assert_array_equal(_changed(q), lab)
    meas = face_areas(q)[lab].sum() * 1e4
    want = length * width / 100.0
    assert abs(meas - want) <= 0.1 * want
    # relief <= 0.3 mm, and only scratch faces changed shape: vertices of other
    # faces near the scratch lie on the input surface
    V = np.asarray(q.mesh.vertices)
    F = np.asarray(q.mesh.faces)
    c = np.asarray(rec.region["center_m"])
    in_v = np.unique(F[lab])
    out_v = np.setdiff1d(np.unique(F[np.setdiff1d(np.arange(len(F)), lab)]), in_v)
    out_v = out_v[np.linalg.norm(V[out_v] - c, axis=1) < length * 1e-3]
    _, d_out, _ = trimesh.proximity.closest_point(p.mesh, V[out_v][:600])
    assert d_out.max() < 1e-9
    _, d_in, _ = trimesh.proximity.closest_point(p.mesh, V[in_v][:600])
    assert d_in.max() <= 0.3e-3 + 1e-9
    assert rec.size["relief_mm"] <= 0.3 + 1e-9


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), area=st.floats(1.0, 40.0))
def test_torn_label_reveals_body_and_opens_label_only(seed, area):
    p = product("bottle", seed % 1000)
    snap = snapshot(p)
    closed = closed_parts(p)
    label = [i for i, pt in enumerate(p.parts) if pt.name == "label"]
    q, rec = apply(p, "superficial", {"style": "torn_label", "area_cm2": area}, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q, closed, may_open=set(label))
    assert rec.region["opens_surface"] is True
    assert not part_mesh(q, label[0]).is_watertight and rec.size["removed_faces"] > 0
    lab = np.flatnonzero(q.damage_id == 1)
    assert len(lab) and not np.isin(q.part_id[lab], label).any()
    meas = face_areas(q)[lab].sum() * 1e4
    assert abs(meas - area) <= 0.1 * area
    # each revealed face: covered by the label before (ray outward meets it within
    # 8 mm), uncovered now. Independent ray casts with trimesh.
    V, F = np.asarray(q.mesh.vertices), np.asarray(q.mesh.faces)
    sample = lab[:: max(1, len(lab) // 80)]
    n = q.mesh.face_normals[sample]
    o = V[F[sample]].mean(1) + 1e-5 * n

    def covered(mesh, parts):
        sub = trimesh.Trimesh(mesh.vertices, np.asarray(mesh.faces)[np.isin(mesh.face_attributes["part_id"], parts)],
                              process=False)
        loc, idx, _ = trimesh.ray.ray_triangle.RayMeshIntersector(sub).intersects_location(o, n)
        d = np.linalg.norm(loc - o[idx], axis=1)
        out = np.zeros(len(o), bool)
        out[idx[d < 0.008]] = True
        return out

    assert covered(p.mesh, label).mean() > 0.9
    assert not covered(q.mesh, label).any()


@pytest.mark.parametrize("kind", NO_LABEL)
def test_torn_label_without_label_tears_liner(kind):
    p = product(kind, 5)
    closed = closed_parts(p)
    q, rec = apply(p, "superficial", {"style": "torn_label", "area_cm2": 5.0}, np.random.default_rng(5))
    assert_valid(q, closed)
    lab = np.flatnonzero(q.damage_id == 1)
    np.testing.assert_array_equal(_changed(q), lab)
    assert (q.mesh.face_attributes["finish"][lab] == 3).all()
    assert abs(face_areas(q)[lab].sum() * 1e4 - 5.0) <= 0.5


def test_hidden_layers_never_painted():
    """A scuff on a carton top paints the flaps/tape, never the body top under them."""
    p = product("carton", 0)
    top = np.flatnonzero((p.mesh.face_normals[:, 2] > 0.99) & (p.part_id == 1))
    top = top[np.argsort(np.linalg.norm(p.mesh.triangles_center[top, :2], axis=1))][5]
    q, rec = apply(p, "superficial", {"style": "stain", "area_cm2": 60.0, "center": int(top)}, np.random.default_rng(0))
    lab = q.damage_id == 1
    body = [i for i, pt in enumerate(q.parts) if pt.name == "body"]
    zmax = q.mesh.vertices[:, 2].max()
    under = lab & np.isin(q.part_id, body) & (q.mesh.triangles_center[:, 2] > zmax - 0.02)
    assert not under.any()
    assert abs(face_areas(q)[lab].sum() * 1e4 - 60.0) <= 6.0


@pytest.mark.parametrize("params", [
    {"style": "smudge"}, {"area_cm2": 0.1}, {"area_cm2": 500}, {"style": "scuff", "length_mm": 20},
    {"style": "scratch", "length_mm": 20, "area_cm2": 1.0}, {"style": "scratch", "length_mm": 1000},
    {"width_mm": 10}, {"relief_mm": 0.5}, {"center": -3}, {"center": 10**9}, {"style": "scratch", "area_cm2": 100},
    {"nope": 1},
])
def test_bad_params(params):
    p = product("carton", 0)
    with pytest.raises(ParamError) as e:
        apply(p, "superficial", params, np.random.default_rng(0))
    assert "superficial" in str(e.value)


@settings(max_examples=4, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1))
def test_composition(kind, seed):
    """crush then scuff, then a stain over the scuff: newest wins, labels valid."""
    p = product(kind, seed % 1000)
    closed = closed_parts(p)
    rng = np.random.default_rng(seed)
    q1, r1 = apply(p, "crush", {"depth_mm": 6, "radius_mm": 40}, rng)
    face = int(np.flatnonzero(q1.damage_id == 1)[0]) if r1.n_faces else None
    q2, r2 = apply(q1, "superficial", {"style": "scuff", "area_cm2": 8.0}, rng)
    q3, r3 = apply(q2, "superficial", {"style": "stain", "area_cm2": 4.0, "center": face}, rng)
    assert_valid(q3, closed)
    assert [d.type for d in q3.damages] == ["crush", "superficial", "superficial"]
    assert (q3.damage_id == 3).sum() == r3.n_faces
    assert (q3.damage_id == 2).sum() <= r2.n_faces * 4 ** 7
    assert abs(face_areas(q3)[q3.damage_id == 3].sum() * 1e4 - 4.0) <= 0.4


def test_deterministic():
    p = product("pouch", 0)
    a, ra = apply(p, "superficial", {"style": "scratch"}, np.random.default_rng(0))
    b, rb = apply(p, "superficial", {"style": "scratch"}, np.random.default_rng(0))
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.mesh.face_attributes["tint"], b.mesh.face_attributes["tint"])
    assert ra.to_json() == rb.to_json()


def test_stain_edge_lies_on_refined_faces():
    """The refined band follows the stain's threshold: where a coarse mesh
    misjudged it, the band moves to the threshold and is refined there too, so
    the faces along the stain's edge are about the requested edge length h (the
    session-start code left 10% of these cases with edges ~6 h there)."""
    from tests._op_checks import product as fresh

    ratios = []
    for kind in ("multipack", "blister", "pouch", "carton"):
        for seed in range(4):
            for area in (40.0, 10.0):
                try:
                    q, rec = apply(fresh(kind, seed), "superficial", {"style": "stain", "area_cm2": area},
                                   np.random.default_rng(seed))
                except ParamError:
                    continue
                m = q.mesh
                lab = q.damage_id == len(q.damages)
                adj = m.face_adjacency
                edge = np.unique(adj[lab[adj[:, 0]] != lab[adj[:, 1]]].ravel())
                T = m.vertices[m.faces[edge]]
                el = np.linalg.norm(T - np.roll(T, 1, axis=1), axis=2).max(1)
                h_mm = float(np.clip(np.sqrt(area * 100) / 8.0, 0.7, 3.5))
                ratios.append(np.percentile(el * 1e3, 90) / h_mm)
    assert len(ratios) >= 24
    assert np.percentile(ratios, 90) < 3.0, np.round(sorted(ratios), 2)
