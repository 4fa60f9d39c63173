"""crush: dent depth, clamps, exact labels, validity, composition."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from _damage_helpers import ALL_KINDS, assert_unchanged, assert_valid, closed_parts, product, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import damage_ops.crush  # noqa: F401  registers "crush"
import damage_ops.superficial  # noqa: F401  registers "superficial"
from damage_ops import _surface as S
from damage_ops.base import REGISTRY, ParamError, apply
from damage_ops.crush import DEPTH_PER_THICKNESS, change_threshold_m, target_edge_m

MODES = ("dent", "corner", "edge", "crumple", "bulge")


def _prerefined(p, radius_mm):
    """The product refined everywhere as the op would refine its support, so the
    op (mostly) adds no vertex and output vertex i is input vertex i, displaced.
    Red-green closure can leave a few faces the op still splits; then only the
    original vertices are compared."""
    h = target_edge_m(radius_mm)
    q = p.copy()
    q.mesh, _ = S.refine_where(q.mesh, lambda m, idx: np.ones(len(idx), bool), h, max_levels=8)
    return q


def test_registered():
    spec = REGISTRY["crush"]
    assert spec.category == "deformation" and spec.opens_surface is False


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(MODES),
       depth=st.floats(1.0, 100.0), radius=st.floats(72.0, 200.0))
def test_depth_and_exact_labels(kind, seed, mode, depth, radius):
    p = _prerefined(product(kind, seed % 1000), radius)
    snap = snapshot(p)
    closed = closed_parts(p)
    q, rec = apply(p, "crush", {"depth_mm": depth, "radius_mm": radius, "mode": mode}, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q, closed)
    V0, V1 = np.asarray(p.mesh.vertices), np.asarray(q.mesh.vertices)
    exact = V1.shape == V0.shape
    if exact:
        np.testing.assert_array_equal(q.mesh.faces, p.mesh.faces)
    disp = V1[:len(V0)] - V0
    push = np.asarray(rec.region["direction"])
    depth_meas = float((disp @ push).max()) * 1e3
    assert depth_meas <= rec.size["depth_mm"] + 1e-6
    if exact:
        assert abs(depth_meas - rec.size["depth_mm"]) < 1e-6
    # independent thickness of the item behind the centre along the inward direction
    b = -push if mode == "bulge" else push
    c = np.asarray(rec.region["center_m"])
    thick_mm = float(((V0 - c) @ b).max()) * 1e3
    d_rec = rec.size["depth_mm"]
    if rec.size["clamped"]:
        assert d_rec <= depth + 1e-6
        assert d_rec <= DEPTH_PER_THICKNESS * thick_mm * 1.001 + 1e-6 or d_rec <= radius + 1e-6
    else:
        assert abs(d_rec - depth) <= 0.1 * depth
        if exact:
            assert abs(depth_meas - depth) <= 0.1 * depth
    # exact labels: faces with a vertex moved by more than the documented threshold
    thr = change_threshold_m(d_rec * 1e-3)
    moved = np.zeros(len(V1), bool)
    moved[:len(V0)] = np.sqrt((disp ** 2).sum(1)) > thr
    F1 = np.asarray(q.mesh.faces)
    changed = np.flatnonzero(moved[F1].any(1))
    labelled = np.flatnonzero(q.damage_id == len(q.damages))
    if exact:
        np.testing.assert_array_equal(changed, labelled)
    else:
        assert np.isin(changed, labelled).all()
    assert rec.n_faces == len(labelled) and rec.category == "deformation"
    assert rec.severity == ("major" if rec.size["depth_mm"] >= 10 else "minor")
    # far side untouched: the item still rests where it did
    assert np.allclose(disp[((V0 - c) @ b) > 0.86 * thick_mm * 1e-3], 0.0)
    assert np.isclose(float(((V1 - c) @ b).max()) * 1e3, thick_mm)


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(("dent", "crumple", "bulge")),
       depth=st.floats(1.0, 30.0), radius=st.floats(5.0, 120.0))
def test_dent_on_raw_product(kind, seed, mode, depth, radius):
    """Unrefined input: the op refines; depth checked by a ray cast (trimesh)
    through the centre of the result; every original vertex that moved has
    its faces labelled; labels stay within the bump's support."""
    p = product(kind, seed % 1000)
    snap = snapshot(p)
    closed = closed_parts(p)
    q, rec = apply(p, "crush", {"depth_mm": depth, "radius_mm": radius, "mode": mode}, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q, closed)
    push = np.asarray(rec.region["direction"])
    b = -push if mode == "bulge" else push
    c = np.asarray(rec.region["center_m"])
    start = c - 0.2 * b
    hit, _, _ = trimesh.ray.ray_triangle.RayMeshIntersector(q.mesh).intersects_location([start], [b])
    first = np.min(np.linalg.norm(hit - start, axis=1))
    ray_depth = (first - 0.2) * 1e3 * (1 if mode != "bulge" else -1)
    # the surface crossing the axis moved in by about the recorded depth (less where a
    # coarser layer - a label rim, a tape edge - lies over the snapped centre vertex)
    assert 0.5 * rec.size["depth_mm"] - 0.05 <= ray_depth <= rec.size["depth_mm"] + 0.05
    if not rec.size["clamped"]:
        assert abs(rec.size["depth_mm"] - depth) <= 0.1 * depth
    nv = len(p.mesh.vertices)
    V1 = np.asarray(q.mesh.vertices)
    moved = np.zeros(len(V1), bool)
    moved[:nv] = np.linalg.norm(V1[:nv] - np.asarray(p.mesh.vertices), axis=1) > change_threshold_m(rec.size["depth_mm"] * 1e-3)
    F = np.asarray(q.mesh.faces)
    lab = q.damage_id == len(q.damages)
    assert lab[moved[F].any(1)].all()
    q_rel = V1[F[lab]].reshape(-1, 3) - c
    rho = np.linalg.norm(q_rel - (q_rel @ b)[:, None] * b, axis=1)
    assert rho.min() < radius * 1e-3  # each labelled face has moved, so touches the support
    assert len(q.damages) == 1 and q.damages[0] is rec


def test_clamp_documented_thin_item():
    """A 60 mm dent into a mailer (~10-20 mm thick) is clamped to 0.45 x its
    thickness and reported as clamped; it does not pass through the far wall."""
    p = product("mailer", 3)
    q, rec = apply(p, "crush", {"depth_mm": 60.0, "radius_mm": 80.0}, np.random.default_rng(0))
    assert rec.size["clamped"] == 1.0 and rec.size["requested_depth_mm"] == 60.0
    b = np.asarray(rec.region["direction"])
    c = np.asarray(rec.region["center_m"])
    thick = float(((np.asarray(p.mesh.vertices) - c) @ b).max())
    assert rec.size["depth_mm"] <= DEPTH_PER_THICKNESS * thick * 1e3 * 1.05 + 0.1
    assert rec.size["depth_mm"] < thick * 1e3
    assert q.mesh.is_watertight


def test_aspect_clamp():
    p = product("carton", 1)
    _, rec = apply(p, "crush", {"depth_mm": 40.0, "radius_mm": 8.0}, np.random.default_rng(1))
    assert rec.size["clamped"] == 1.0 and rec.size["depth_mm"] <= 8.0 + 1e-6


def test_deterministic_and_seed_zero():
    p = product("carton", 0)
    a, ra = apply(p, "crush", {"depth_mm": 8, "radius_mm": 30, "mode": "crumple"}, np.random.default_rng(0))
    b, rb = apply(p, "crush", {"depth_mm": 8, "radius_mm": 30, "mode": "crumple"}, np.random.default_rng(0))
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    assert ra.to_json() == rb.to_json()


@pytest.mark.parametrize("params", [
    {"depth_mm": 0.0}, {"depth_mm": 101}, {"depth_mm": float("nan")}, {"radius_mm": 4}, {"radius_mm": "big"},
    {"mode": "squash"}, {"center": -1}, {"center": 1.5}, {"center": 10**9}, {"bogus": 1}, {"depth_mm": True},
])
def test_bad_params(params):
    p = product("carton", 0)
    with pytest.raises(ParamError) as e:
        apply(p, "crush", params, np.random.default_rng(0))
    assert "crush" in str(e.value)


def test_given_center_and_corner_edge_modes():
    p = product("carton", 2)
    for mode in ("corner", "edge"):
        q, rec = apply(p, "crush", {"depth_mm": 15, "radius_mm": 50, "mode": mode, "center": 5}, np.random.default_rng(0))
        d = np.asarray(rec.region["direction"])
        assert np.isclose(np.linalg.norm(d), 1.0)
        assert np.count_nonzero(np.abs(d) > 1e-9) == (3 if mode == "corner" else 2)
        assert rec.region["face"] == 5 and q.mesh.is_watertight


@settings(max_examples=6, deadline=None)
@given(kind=st.sampled_from(ALL_KINDS), seed=st.integers(0, 2**31 - 1))
def test_composition(kind, seed):
    """crush + crush and crush + superficial: newest damage wins on overlap,
    earlier labels survive elsewhere, closed parts stay closed."""
    p = product(kind, seed % 1000)
    closed = closed_parts(p)
    rng = np.random.default_rng(seed)
    q1, r1 = apply(p, "crush", {"depth_mm": 8, "radius_mm": 50}, rng)
    q2, r2 = apply(q1, "crush", {"depth_mm": 12, "radius_mm": 40, "mode": "corner"}, rng)
    assert_valid(q2, closed)
    assert len(q2.damages) == 2 and q2.damages[0] == r1
    assert (q2.damage_id == 2).sum() == r2.n_faces
    # the second dent may cover the first completely (newest wins); never more than it had
    assert 0 <= (q2.damage_id == 1).sum() <= r1.n_faces * 4 ** 6
    assert (q2.damage_id > 0).sum() >= r2.n_faces
    q3, r3 = apply(q2, "superficial", {"style": "scuff", "area_cm2": 4.0}, rng)
    may_open = {i for i, pt in enumerate(q3.parts) if pt.name == "label"}
    assert_valid(q3, closed, may_open)
    assert (q3.damage_id == 3).sum() == r3.n_faces
    assert r3.category == "superficial"
