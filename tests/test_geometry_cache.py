"""The per-face geometry the damage ops read from their input product is cached
on the mesh (trimesh's cache) and carried by Product.copy: it must equal a
fresh computation, die with any change of the vertices, and never change what
an op produces."""
from __future__ import annotations

import numpy as np
import pytest

from damage_ops.base import apply
from damage_ops.product import GEOMETRY_KEY, face_geometry
from tests._op_checks import product


def _fresh(m):
    T = np.asarray(m.vertices)[np.asarray(m.faces)]
    c = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
    a = np.linalg.norm(c, axis=1)
    cen = T.mean(1)
    return c / np.where(a > 0, a, 1)[:, None], a / 2, cen, ((T - cen[:, None]) ** 2).sum(2).max(1)


def test_values_copy_and_invalidation():
    p = product("carton", 3)
    geo = face_geometry(p.mesh)
    for got, want in zip(geo, _fresh(p.mesh)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert not got.flags.writeable
    q = p.copy()
    assert GEOMETRY_KEY in q.mesh._cache and face_geometry(q.mesh)[0] is geo[0]
    q.mesh.vertices[0, 0] += 1e-3  # any change of the geometry drops the entry
    assert GEOMETRY_KEY not in q.mesh._cache
    for got, want in zip(face_geometry(q.mesh), _fresh(q.mesh)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert face_geometry(p.mesh)[0] is geo[0]  # the original keeps its own


@pytest.mark.parametrize("op,kind,params", [
    ("crush", "carton", {"depth_mm": 8.0, "radius_mm": 40.0}),
    ("puncture", "carton", {"diameter_mm": 10.0}),
    ("tear", "mailer", {"length_mm": 50.0}),
    ("superficial", "bottle", {"style": "stain", "area_cm2": 10.0}),
])
def test_ops_identical_with_and_without_cache(op, kind, params):
    p = product(kind, 1)
    warm = p.copy()
    face_geometry(warm.mesh)
    cold = p.copy()
    cold.mesh._cache.clear()
    a, ra = apply(warm, op, params, np.random.default_rng(5))
    b, rb = apply(cold, op, params, np.random.default_rng(5))
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)
    for k in a.mesh.face_attributes:
        assert np.array_equal(a.mesh.face_attributes[k], b.mesh.face_attributes[k]), k
    assert ra == rb


def test_refinement_carries_exact_geometry():
    from damage_ops._surface import refine_where

    p = product("pouch", 2)
    m = p.mesh
    face_geometry(m)
    c = m.triangles_center[len(m.faces) // 3]

    def select(mm, idx):
        return np.linalg.norm(np.asarray(mm.vertices)[np.asarray(mm.faces)[idx]].mean(1) - c, axis=1) < 0.03

    out, nfo = refine_where(m, select, 0.003, candidates=np.linalg.norm(m.triangles_center - c, axis=1) < 0.04)
    assert len(out.faces) > len(m.faces) and GEOMETRY_KEY in out._cache
    for got, want in zip(out._cache[GEOMETRY_KEY], _fresh(out)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("kind", ["carton", "bottle", "pouch", "mailer"])
def test_shared_cover_record_never_changes_a_result(kind):
    """Superficial's cover answers are kept on the product and shared by its
    copies. Ops on copies that share a record another op already filled must
    give exactly what they give on a product nobody has seen; and what the
    record holds must be each face's true cover."""
    from damage_ops._surface import Occluders
    from damage_ops.product import COVER_KEY, face_cover
    from damage_ops.superficial import COVER_M, TRANSPARENT_MATERIALS

    p = product(kind, 2)
    face_geometry(p.mesh)
    held = face_cover(p.mesh)
    cases = [{"style": "stain", "area_cm2": 30.0}, {"style": "scuff", "area_cm2": 4.0},
             {"style": "stain", "area_cm2": 8.0}]
    for i, params in enumerate(cases * 2):
        cold = p.copy()
        cold.mesh._cache.clear()
        warm = p.copy()
        assert warm.mesh._cache[COVER_KEY] is held
        a, ra = apply(warm, "superficial", params, np.random.default_rng(i))
        b, rb = apply(cold, "superficial", params, np.random.default_rng(i))
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)
        for k in a.mesh.face_attributes:
            assert np.array_equal(a.mesh.face_attributes[k], b.mesh.face_attributes[k]), k
        assert ra == rb
    known = held[0]
    got = np.flatnonzero(known >= 0)
    assert len(got) > 0, "the ops filled the record"
    # the truth: each face's cover ray against every opaque face of another part
    opaque = [i for i, pt in enumerate(p.parts) if pt.material not in TRANSPARENT_MATERIALS]
    pid = p.part_id
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    truth = np.zeros(len(got), bool)
    for q in np.unique(pid[got]):
        sel = pid[got] == q
        occ = np.flatnonzero(np.isin(pid, opaque) & (pid != q))
        truth[sel] = Occluders(V, F, occ, np.array([0.0, 0.0, 1.0]), COVER_M).query(got[sel])
    assert np.array_equal(known[got] == 1, truth)


def test_occluder_index_matches_brute_force():
    """Occluders (2-D hashed, part-aware) answers exactly what testing every
    cover ray against every occluder answers, for any axis."""
    from damage_ops._surface import Occluders, _mt

    p = product("carton", 1)
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    n, _, cen, _ = face_geometry(p.mesh)
    pid = p.part_id
    rng = np.random.default_rng(0)
    query = rng.choice(len(F), 300, replace=False)
    occ = np.arange(len(F))
    o = cen[query] + 1e-5 * n[query]
    t = _mt(V[F[occ]][None], o[:, None], n[query][:, None])        # (q, all faces)
    hit = (t > 0) & (t < 0.008) & (pid[occ][None] != pid[query][:, None])
    want = hit.any(1)
    assert want.any() and not want.all()
    for axis in (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), np.array([0.6, 0.0, 0.8])):
        idx = Occluders(V, F, occ, axis, 0.008, scope=query, part=pid)
        assert np.array_equal(idx.query(query), want)
        assert np.array_equal(idx.query(query, geo=face_geometry(p.mesh)), want)
