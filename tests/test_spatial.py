"""The face grid behind the ops' ray and ball queries: every face a brute-force
test finds must be among the grid's candidates (a missed face would let a
covered point pass as exposed, or a hole land across an edge)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from damage_ops.product import GRID_KEY, face_geometry
from damage_ops.puncture import closest_point_on_triangles, ray_hits
from damage_ops.spatial import FaceGrid, face_grid
from tests._op_checks import product

KINDS = ("carton", "mailer", "blister", "bottle", "pouch", "multipack")
AXES = np.concatenate([np.eye(3), -np.eye(3)])


def _direction(rng, axis_aligned: bool) -> np.ndarray:
    if axis_aligned:  # the ops' rays along a carton's face normals are exactly axis-parallel
        return AXES[rng.integers(0, 6)].copy()
    d = rng.normal(size=3)
    return d / np.linalg.norm(d)


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 3), rs=st.integers(0, 2**32 - 1))
def test_ray_candidates_hold_every_hit(kind, seed, rs):
    p = product(kind, seed)
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    normals, _, cen, _ = face_geometry(p.mesh)
    grid = face_grid(p.mesh)
    rng = np.random.default_rng(rs)
    tris = V[F]
    for k in range(24):
        f = int(rng.integers(0, len(F)))
        if k % 3 == 0:    # from a surface point along its normal, as the ops cast them
            o, d = cen[f] + 1e-6 * normals[f], normals[f]
        else:             # from anywhere in or around the item, any direction
            lo, hi = V.min(0), V.max(0)
            o, d = rng.uniform(lo - 0.05, hi + 0.05), _direction(rng, k % 3 == 1)
        hits = np.flatnonzero(np.isfinite(ray_hits(o, d, tris)))
        cand = grid.ray(o, d)
        assert np.isin(hits, cand).all(), f"ray {o} {d}: grid missed faces {np.setdiff1d(hits, cand)}"
        assert len(np.unique(cand)) == len(cand)


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 3), rs=st.integers(0, 2**32 - 1))
def test_ball_candidates_hold_every_face_within_radius(kind, seed, rs):
    p = product(kind, seed)
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    grid = face_grid(p.mesh)
    rng = np.random.default_rng(rs)
    tris = V[F]
    ext = float(np.linalg.norm(V.max(0) - V.min(0)))
    for _ in range(12):
        c = rng.uniform(V.min(0) - 0.02, V.max(0) + 0.02)
        r = float(rng.uniform(0.0, 0.4)) * ext
        d = np.linalg.norm(closest_point_on_triangles(tris, c) - c, axis=1)
        within = np.flatnonzero(d <= r)
        cand = grid.ball(c, r)
        assert np.isin(within, cand).all()
        # and it is a real filter: far faces are not all returned
        if r < 0.05 * ext:
            assert len(cand) < len(F)


def test_grid_is_cached_carried_by_copy_and_dropped_on_change():
    p = product("carton", 0)
    g = face_grid(p.mesh)
    assert face_grid(p.mesh) is g
    q = p.copy()
    assert q.mesh._cache[GRID_KEY] is g          # same vertices and faces: shared
    q.mesh.vertices = q.mesh.vertices + [0.01, 0.0, 0.0]
    g2 = face_grid(q.mesh)
    assert g2 is not g
    # the rebuilt grid answers for the moved mesh
    c = np.asarray(q.mesh.vertices)[q.mesh.faces[0]].mean(0)
    assert 0 in g2.ball(c, 1e-4)


def test_empty_and_single_face_grid():
    g = FaceGrid(np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    assert len(g.ray(np.zeros(3), np.array([0.0, 0.0, 1.0]))) == 0
    assert len(g.ball(np.zeros(3), 1.0)) == 0
    g = FaceGrid(np.array([[0.0, 0.0, 1.0]]), np.array([0.01]), np.array([0.001]))
    assert list(g.ray(np.zeros(3), np.array([0.0, 0.0, 1.0]))) == [0]
    assert list(g.ray(np.zeros(3), np.array([0.0, 0.0, -1.0]))) == []
    assert list(g.ball(np.zeros(3), 0.95)) == [0]
    assert list(g.ball(np.zeros(3), 0.85)) == []
