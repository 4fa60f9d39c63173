"""Shared by the damage-op tests: cached products and the purity and validity
checks every op must pass."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import trimesh

from simulator.products import build_product


@lru_cache(maxsize=None)
def _product(kind: str, seed: int):
    return build_product(kind, f"{kind}-{seed}", {}, np.random.default_rng(seed))


def product(kind, seed):
    """A fresh copy of a cached pristine product (ops may not mutate the cache)."""
    return _product(kind, seed).copy()


def snapshot(p):
    m = p.mesh
    return (m.vertices.copy(), m.faces.copy(), {k: np.array(v) for k, v in m.face_attributes.items()},
            p.parts, p.damages, len(p.satellites), p.mass_kg, [c.copy() for c in p.collision])


def assert_unchanged(p, snap):
    """The op left its input exactly as it was."""
    V, F, A, parts, damages, nsat, mass, coll = snap
    assert np.array_equal(p.mesh.vertices, V) and np.array_equal(p.mesh.faces, F)
    assert set(p.mesh.face_attributes) == set(A)
    for k, v in A.items():
        assert np.array_equal(p.mesh.face_attributes[k], v), k
    assert p.parts == parts and p.damages == damages and len(p.satellites) == nsat and p.mass_kg == mass
    assert len(p.collision) == len(coll) and all(np.array_equal(a, b) for a, b in zip(p.collision, coll))


def part_mesh(p, i):
    f = p.mesh.faces[p.part_id == i]
    u, inv = np.unique(f, return_inverse=True)
    return trimesh.Trimesh(p.mesh.vertices[u], inv.reshape(-1, 3), process=False)


def assert_valid(p, referenced: bool = False, winding: bool = False, satellites: bool = False):
    """Labels consistent, finite, no degenerate or duplicate faces, every part
    closed; optionally every vertex referenced, parts consistently wound, and
    satellites closed and resting at z = 0."""
    p.validate()
    m = p.mesh
    assert np.isfinite(m.vertices).all()
    assert m.area_faces.min() > 1e-14, "degenerate face"
    srt = np.sort(m.faces, axis=1)
    assert len(np.unique(srt, axis=0)) == len(srt), "duplicate faces"
    if referenced:
        assert len(np.unique(m.faces)) == len(m.vertices), "unreferenced vertices"
    for i in np.unique(p.part_id):
        pm = part_mesh(p, i)
        assert pm.is_watertight and (pm.is_winding_consistent or not winding), p.parts[i]
    if satellites:
        for s in p.satellites:
            assert s.mesh.is_watertight and abs(s.mesh.vertices[:, 2].min()) < 1e-12


def same_surface(a: trimesh.Trimesh, b: trimesh.Trimesh, tol: float = 1e-6) -> bool:
    """Every triangle of a has one in b with the same corners (each within tol m,
    same orientation), and the counts agree."""
    from scipy.spatial import cKDTree

    if len(a.faces) != len(b.faces):
        return False
    Ta, Tb = np.asarray(a.vertices)[a.faces], np.asarray(b.vertices)[b.faces]
    tree = cKDTree(Tb.mean(1))
    for i, t in enumerate(Ta):
        ok = False
        for j in tree.query_ball_point(t.mean(0), 3 * tol):
            if any(np.abs(np.roll(Tb[j], s, axis=0) - t).max() <= tol for s in range(3)):
                ok = True
                break
        if not ok:
            return False
    return True


def compare_local_and_whole_cut(monkeypatch, op: str, cases, size_key: str, size_tol: float):
    """Run ``op`` on each (product, params, seed) of ``cases`` with the boolean
    on a closed local patch and again with it turned off (the whole part): the
    same triangles within a micron (manifold3d may round an intersection vertex
    ~1e-8 m differently), the same labels and size. Returns (cases that ran,
    [whether the local cut ran, per call]) so the caller can check the local
    cut is what passed, not the fallback."""
    import damage_ops.puncture as P
    from damage_ops.base import ParamError, apply

    ran = []
    real = P._local_difference

    def spy(*a, **k):
        out = real(*a, **k)
        ran.append(out is not None)
        return out

    n = 0
    for p, params, seed in cases:
        monkeypatch.setattr(P, "_local_difference", spy)
        try:
            a, ra = apply(p, op, params, np.random.default_rng(seed))
        except ParamError:
            continue
        monkeypatch.setattr(P, "_local_difference", lambda *x, **k: None)
        b, rb = apply(p, op, params, np.random.default_rng(seed))
        monkeypatch.setattr(P, "_local_difference", real)
        n += 1
        assert same_surface(a.mesh, b.mesh), (p.sku, params, seed)
        assert np.array_equal(np.sort(a.part_id), np.sort(b.part_id))
        assert np.array_equal(np.sort(a.mesh.face_attributes["damage_id"]), np.sort(b.mesh.face_attributes["damage_id"]))
        assert ra.n_faces == rb.n_faces and abs(ra.size[size_key] - rb.size[size_key]) < size_tol
    return n, ran

