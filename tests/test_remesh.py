"""Label-preserving local refinement (damage_ops.remesh): red-green passes that
touch only the faces near the marks, and refinement on a patch, must give the
same surface as refining the whole mesh, with no T-junction, area kept and
every child inside its parent with its parent's labels."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damage_ops._surface import refine_where
from damage_ops.remesh import on_patch, refine_levels, refine_once
from tests._op_checks import product

KINDS = ("carton", "bottle", "multipack", "pouch", "mailer", "blister")


def _edge_use(F):
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    return c


def _tri_key(m):
    """The faces as a sorted table of (corner coordinates, labels): a surface
    independent of face order and vertex numbering."""
    T = np.round(np.asarray(m.vertices)[np.asarray(m.faces)] * 1e9).astype(np.int64)  # (n, 3, 3) nm
    # rotate each triangle so its smallest corner comes first (keeps orientation)
    first = np.array([min(range(3), key=lambda j: tuple(t[j])) for t in T])
    idx = (first[:, None] + np.arange(3)) % 3
    T = np.take_along_axis(T, idx[:, :, None], axis=1)
    uv = np.take_along_axis(np.asarray(m.face_attributes["uv"]), idx[:, :, None], axis=1)
    rows = np.concatenate([T.reshape(len(T), 9), m.face_attributes["part_id"][:, None],
                           m.face_attributes["damage_id"][:, None], np.round(uv.reshape(len(T), 6) * 1e6)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1), frac=st.floats(0.002, 0.2))
def test_refine_once_is_conforming_and_label_preserving(kind, seed, frac):
    p = product(kind, seed % 7)
    m = p.mesh
    rng = np.random.default_rng(seed)
    F0 = np.asarray(m.faces)
    use0 = _edge_use(F0)
    c = m.triangles_center[rng.integers(len(F0))]
    d = np.linalg.norm(m.triangles_center - c, axis=1)
    mask = d <= np.quantile(d, frac)
    out, nfo = refine_once(m, mask)
    F1 = np.asarray(out.faces)
    # no T-junction: every edge is used as often as the input's edges were (a
    # closed mesh stays closed: 2 faces per edge)
    assert set(np.unique(_edge_use(F1))) <= set(np.unique(use0))
    # marked faces split 1 -> 4; the area of every parent is kept by its children
    counts = np.bincount(nfo, minlength=len(F0))
    assert (counts[mask] == 4).all() and set(np.unique(counts)) <= {1, 2, 4}
    a0, a1 = m.area_faces, out.area_faces
    np.testing.assert_allclose(np.bincount(nfo, weights=a1, minlength=len(F0)), a0, rtol=1e-9, atol=1e-15)
    # children lie in their parent's plane, inherit its labels and its uv field
    for k in ("part_id", "damage_id"):
        np.testing.assert_array_equal(out.face_attributes[k], m.face_attributes[k][nfo])
    n0 = m.face_normals[nfo]
    good = a0[nfo] > 1e-12
    assert (np.abs(np.einsum("ij,ij->i", out.triangles_center - m.triangles_center[nfo], n0))[good] < 1e-9).all()
    # unsplit faces come through untouched
    same = counts == 1
    keep_rows = np.isin(nfo, np.flatnonzero(same))
    assert np.array_equal(np.sort(nfo[keep_rows]), np.flatnonzero(same))


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1), radius=st.floats(0.005, 0.06),
       h=st.floats(0.0015, 0.01))
def test_patch_refinement_equals_whole_mesh(kind, seed, radius, h):
    """refine_where on a patch (candidates) gives exactly the surface of the
    same refinement run on the whole mesh, whatever the closure does at the
    patch border."""
    p = product(kind, seed % 7)
    m = p.mesh
    rng = np.random.default_rng(seed)
    c = m.triangles_center[rng.integers(len(m.faces))]

    def select(mm, idx):
        T = np.asarray(mm.vertices)[np.asarray(mm.faces)[idx]]
        return np.linalg.norm(T.mean(1) - c, axis=1) < radius

    cand = np.linalg.norm(m.triangles_center - c, axis=1) < radius + 0.002
    local, nfo_l = refine_where(m, select, h, max_levels=4, candidates=cand)
    whole, nfo_w = refine_levels(m, select, h, 4, cand, slivers=True, drop_unselected=True)  # the same passes, whole mesh
    if len(whole.faces) == len(m.faces):
        assert local is m
        return
    np.testing.assert_array_equal(_tri_key(local), _tri_key(whole))
    # each input face has the same children, whatever the order
    np.testing.assert_array_equal(np.bincount(nfo_l, minlength=len(m.faces)), np.bincount(nfo_w, minlength=len(m.faces)))
    # a patch with no margin: the closure runs past its border, so on_patch must
    # widen it (or fall back to the whole mesh) and still give the same surface
    tight, nfo_t = on_patch(m, cand, lambda sub, idx: refine_levels(sub, select, h, 4, cand[idx], slivers=True,
                                                                   drop_unselected=True))
    np.testing.assert_array_equal(_tri_key(tight), _tri_key(whole))
    np.testing.assert_array_equal(np.bincount(nfo_t, minlength=len(m.faces)), np.bincount(nfo_w, minlength=len(m.faces)))


def test_on_patch_nothing_to_do_returns_input():
    p = product("carton", 0)
    out, nfo = on_patch(p.mesh, np.zeros(len(p.mesh.faces), bool) | (np.arange(len(p.mesh.faces)) < 5),
                        lambda sub, idx: (sub, np.arange(len(sub.faces))))
    assert out is p.mesh and np.array_equal(nfo, np.arange(len(p.mesh.faces)))


if __name__ == "__main__":
    pytest.main([__file__, "-q"])


def test_grow_through_adjacency_equals_the_full_scan():
    """grow() over a cached vertex -> face adjacency visits only the rings'
    neighbourhoods but must give exactly the full scan's answer."""
    from damage_ops.product import vertex_faces
    from damage_ops.remesh import grow
    from tests._op_checks import product

    rng = np.random.default_rng(0)
    for kind in ("carton", "pouch", "multipack", "blister"):
        m = product(kind, 1).mesh
        F = np.asarray(m.faces)
        adj = vertex_faces(m)
        for rings in (1, 3):
            for frac in (0.001, 0.02, 0.3):
                mask = rng.random(len(F)) < frac
                assert np.array_equal(grow(F, mask, len(m.vertices), rings, adj), grow(F, mask, len(m.vertices), rings))
        start, faces = adj
        v = int(rng.integers(len(m.vertices)))
        assert set(faces[start[v]:start[v + 1]].tolist()) == set(np.flatnonzero((F == v).any(1)).tolist())
