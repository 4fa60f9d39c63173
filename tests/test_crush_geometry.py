"""crush geometry: creases are sharp folds of board (dihedral angles between
flat facets across a narrow band), the shear keeps the mesh free of
self-intersection, labels equal the moved faces, and rigid items keep the
smooth, creaseless dent."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from _damage_helpers import assert_valid, closed_parts, product
from scipy.spatial import cKDTree

import damage_ops.crush  # noqa: F401  registers "crush"
from damage_ops import _surface as S
from damage_ops.base import apply
from damage_ops.crush import change_threshold_m, crease_band_m, crush_field, target_edge_m
from damage_ops.fold import dihedral_turn_deg
from damage_ops.sampling import crush_material, sample_params


def _top_face(p, where=(0.5, 0.5)) -> int:
    """A body face on the top, nearest the fractional (x, y) position ``where``."""
    m = p.mesh
    n, c = m.face_normals, m.triangles_center
    body = np.asarray(p.part_id) == [pt.name for pt in p.parts].index("body")
    top = np.flatnonzero(body & (n[:, 2] > 0.9) & (c[:, 2] > c[body, 2].max() - 1e-3))
    lo, hi = np.asarray(m.vertices).min(0), np.asarray(m.vertices).max(0)
    tgt = lo[:2] + np.asarray(where) * (hi[:2] - lo[:2])
    return int(top[np.argmin(np.linalg.norm(c[top, :2] - tgt, axis=1))])


def _body_faces(p) -> np.ndarray:
    return np.asarray(p.part_id) == [pt.name for pt in p.parts].index("body")


def _flat_faces(V, F, max_turn_deg=2.0) -> np.ndarray:
    """(len(F),) bool: faces whose every shared edge turns by at most ``max_turn_deg``
    (the inside of a flat facet, away from any crease); boundary edges count as bent."""
    ang, _, pair = dihedral_turn_deg(V, F)
    bent = np.zeros(len(F), bool)
    np.logical_or.at(bent, pair.ravel(), np.repeat(ang > max_turn_deg, 2))
    n_shared = np.bincount(pair.ravel(), minlength=len(F))
    return ~bent & (n_shared == 3)


def crease_pairs(V, F, faces, reach_m, lo_deg, hi_deg=75.0):
    """Pairs (i, j) of flat faces among ``faces`` (indices into F) whose
    centroids lie within ``reach_m`` of each other and whose normals differ by
    ``lo_deg`` to ``hi_deg``: two facets meeting at a sharp crease (a smooth
    bend turns by much less over so short a distance; box edges turn by 90)."""
    sub = F[faces]
    flat = faces[_flat_faces(V, sub)]
    if len(flat) < 2:
        return np.zeros((0, 2), int)
    n, _ = S.normals_areas(V, F[flat])
    cen = V[F[flat]].mean(1)
    pr = cKDTree(cen).query_pairs(reach_m, output_type="ndarray")
    if len(pr) == 0:
        return pr
    ang = np.degrees(np.arccos(np.clip((n[pr[:, 0]] * n[pr[:, 1]]).sum(1), -1, 1)))
    ok = (ang >= lo_deg) & (ang <= hi_deg)
    return flat[pr[ok]]


def self_intersections(V, F, faces, against=None, pairs=False):
    """Number of pairs (a in ``faces``, b in ``against`` (default: all)) of
    triangles sharing no vertex where an edge of one crosses the other's
    interior (Moller-Trumbore on segments). Coplanar overlaps are not counted:
    the crush shears along one direction and never lays faces flat on others."""
    against = np.arange(len(F)) if against is None else against
    T = V[F]
    cen = T.mean(1)
    rad = np.sqrt(((T - cen[:, None]) ** 2).sum(2)).max(1)
    # broad phase: bounding balls, the candidates binned by radius so that a few
    # large faces do not widen every query
    ia, ib = [np.zeros(0, int)], [np.zeros(0, int)]
    lvl = np.floor(np.log2(np.maximum(rad[against], 1e-6)))
    for L_ in np.unique(lvl):
        grp = against[lvl == L_]
        nbs = cKDTree(cen[grp]).query_ball_point(cen[faces], rad[faces] + rad[grp].max())
        lens = np.fromiter((len(n) for n in nbs), int, len(nbs))
        if lens.sum() == 0:
            continue
        a = np.repeat(faces, lens)
        bb = grp[np.concatenate([np.asarray(n, int) for n in nbs if n])]
        keep = np.linalg.norm(cen[bb] - cen[a], axis=1) <= rad[bb] + rad[a]
        ia.append(a[keep])
        ib.append(bb[keep])
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    share = (F[ia][:, :, None] == F[ib][:, None, :]).any((1, 2))
    ia, ib = ia[~share], ib[~share]
    hits = np.zeros(len(ia), bool)
    for A, B in ((ia, ib), (ib, ia)):
        for k in range(3):
            p0, p1 = T[A, k], T[A, (k + 1) % 3]
            tb = T[B]
            e1, e2 = tb[:, 1] - tb[:, 0], tb[:, 2] - tb[:, 0]
            d = p1 - p0
            pv = np.cross(d, e2)
            det = (e1 * pv).sum(1)
            ok = np.abs(det) > 1e-18
            inv = 1.0 / np.where(ok, det, 1.0)
            s = p0 - tb[:, 0]
            u = (s * pv).sum(1) * inv
            q = np.cross(s, e1)
            v = (d * q).sum(1) * inv
            t = (e2 * q).sum(1) * inv
            eps = 1e-9
            hits |= ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)
    return np.stack([ia[hits], ib[hits]], 1) if pairs else int(hits.sum())


#: (mode, depth_mm, radius_mm, where on the top) for the major board folds
FOLDS = (("corner", 30.0, 70.0, (0.95, 0.05)), ("edge", 22.0, 45.0, (0.5, 0.1)),
         ("crease", 18.0, 60.0, (0.5, 0.5)), ("crumple", 18.0, 60.0, (0.5, 0.5)),
         ("sag", 25.0, 70.0, (0.4, 0.6)), ("mangle", 30.0, 60.0, (0.5, 0.5)))
#: whole-box modes (and the composition) checked for self-intersection too
WHOLE = (("barrel", 20.0, 70.0, (0.5, 0.5)), ("rack", 30.0, 70.0, (0.5, 0.5)))


@pytest.fixture(scope="module")
def carton():
    return product("carton", 1)


@pytest.fixture(scope="module")
def crushed(carton):
    out = {}
    for mode, depth, radius, where in FOLDS + WHOLE:
        out[mode] = apply(carton, "crush", {"depth_mm": depth, "radius_mm": radius, "mode": mode,
                                             "center": _top_face(carton, where)}, np.random.default_rng(7))
    return out


@pytest.mark.parametrize("mode", [f[0] for f in FOLDS])
def test_crease_dihedral(carton, crushed, mode):
    """Along a crease two flat facets of the board meet at >= 15 degrees within
    a few crease bands of each other, over a crease at least half the damage's
    radius long: a fold, not a bump."""
    q, rec = crushed[mode]
    V, F = np.asarray(q.mesh.vertices), np.asarray(q.mesh.faces)
    lab = np.flatnonzero((q.damage_id == len(q.damages)) & _body_faces(q))
    beta = crease_band_m(rec.params["radius_mm"])
    pr = crease_pairs(V, F, lab, 6 * beta, 15.0)
    assert len(pr) > 0, f"{mode}: no sharp crease"
    on = V[F[np.unique(pr)]].mean(1)
    length = float(np.linalg.norm(on.max(0) - on.min(0)))
    assert length >= 0.5 * rec.params["radius_mm"] * 1e-3, f"{mode}: crease {length * 1e3:.1f} mm long"
    # the pristine carton has no such pair: the creases are the crush's
    V0, F0 = np.asarray(carton.mesh.vertices), np.asarray(carton.mesh.faces)
    assert len(crease_pairs(V0, F0, np.flatnonzero(_body_faces(carton)), 6 * beta, 15.0)) == 0


@pytest.mark.parametrize("mode", [f[0] for f in FOLDS + WHOLE])
def test_no_self_intersection(carton, crushed, mode):
    """No two triangles of the crushed body that share no vertex cross each
    other, and no damaged face crosses a face of another part, except where
    the pristine parts lie within 0.5 mm (a flap flush on the body, a tape
    0.3 mm over a flap, a tape strip stacked on another): the module doc gives those up, the mesh interpolates
    the field only within a tolerance)."""
    q, _ = crushed[mode]
    V, F = np.asarray(q.mesh.vertices), np.asarray(q.mesh.faces)
    body = np.flatnonzero(_body_faces(q))
    lab = np.flatnonzero(q.damage_id == len(q.damages))
    assert self_intersections(V, F, np.intersect1d(lab, body), body) == 0
    V0, F0, pid0 = np.asarray(carton.mesh.vertices), np.asarray(carton.mesh.faces), np.asarray(carton.part_id)
    parts = np.unique(pid0)
    flush = set()  # part pairs lying within 0.5 mm of each other (a tape 0.3 mm over a flap)
    for i in parts:
        surf = trimesh.Trimesh(V0, F0[pid0 == i], process=False)
        comps = surf.split(only_watertight=False)
        # a part made of stacked pieces (tape strips laid over one another) is flush with itself
        if any(trimesh.proximity.closest_point(a, np.asarray(b.vertices))[1].min() < 0.5e-3
               for k, a in enumerate(comps) for b in comps[k + 1:]):
            flush.add((int(i), int(i)))
        for j in parts[parts > i]:
            if trimesh.proximity.closest_point(surf, V0[np.unique(F0[pid0 == j])])[1].min() < 0.5e-3:
                flush.add((int(i), int(j)))
    pid = np.asarray(q.part_id)
    pr = self_intersections(V, F, lab, pairs=True)
    kinds = {tuple(sorted((int(a), int(b)))) for a, b in pid[pr]}
    assert kinds <= flush, f"{mode}: parts {kinds - flush} cross"


@pytest.mark.parametrize("mode", ["corner", "edge", "crease", "buckle", "crumple", "wrinkle", "sag", "barrel",
                                  "rack", "mangle"])
def test_labels_equal_moved_faces(carton, mode):
    """The op keeps the input's vertices first and in order (refinement appends
    midpoints), so input vertex i is output vertex i: every face with an input
    vertex moved by more than the documented threshold is labelled, and a face
    made of input vertices only is labelled exactly when one of them moved.
    Closed parts stay closed; damage stays inside the item; same rng,
    identical arrays."""
    params = {"depth_mm": 15.0, "radius_mm": 40.0, "mode": mode, "center": _top_face(carton, (0.3, 0.6))}
    closed = closed_parts(carton)
    q, rec = apply(carton, "crush", params, np.random.default_rng(3))
    q2, rec2 = apply(carton, "crush", params, np.random.default_rng(3))
    np.testing.assert_array_equal(q.mesh.vertices, q2.mesh.vertices)
    np.testing.assert_array_equal(q.mesh.faces, q2.mesh.faces)
    np.testing.assert_array_equal(q.damage_id, q2.damage_id)
    assert rec.to_json() == rec2.to_json()
    assert_valid(q, closed)
    V0, V1 = np.asarray(carton.mesh.vertices), np.asarray(q.mesh.vertices)
    F = np.asarray(q.mesh.faces)
    nv = len(V0)
    moved = np.zeros(len(V1), bool)
    moved[:nv] = np.linalg.norm(V1[:nv] - V0, axis=1) > change_threshold_m(rec.size["depth_mm"] * 1e-3)
    lab = q.damage_id == len(q.damages)
    assert lab[moved[F].any(1)].all()
    old = (F < nv).all(1)
    np.testing.assert_array_equal(lab[old], moved[F[old]].any(1))
    assert rec.n_faces == int(lab.sum()) and rec.severity == "major"
    # damage inside the item: inward modes stay within the pristine bbox (a barrel
    # bulges out, a rack leans over, a mangle may hold either)
    if mode not in ("wrinkle", "barrel", "rack", "mangle"):
        lo, hi = V0.min(0), V0.max(0)
        assert (V1 >= lo - 1e-9).all() and (V1 <= hi + 1e-9).all()


@pytest.mark.parametrize("kind", ["bottle", "multipack"])
def test_rigid_dent_is_smooth(kind):
    """The smooth dent stays for rigid items (a bottle; the cans of a
    multipack): every vertex moves by the documented C2 bump
    ``d (1 - rho^2/R^2)^3 g(t) b`` (crush_field, from the record), and that
    field bends by no more than its analytic curvature bound along any line:
    no crease anywhere (a fold would turn its full angle across a narrow band)."""
    p = product(kind, 2)
    radius = 30.0
    q = p.copy()
    q.mesh, _ = S.refine_where(q.mesh, lambda m, idx: np.ones(len(idx), bool), target_edge_m(radius), max_levels=8)
    face = int(np.argmax(q.mesh.face_normals[:, 0] * (np.asarray(q.part_id) == 0)))  # a side of the body/units
    r, rec = apply(q, "crush", {"depth_mm": 8.0, "radius_mm": radius, "mode": "dent", "center": face},
                   np.random.default_rng(0))
    V0, V1 = np.asarray(q.mesh.vertices), np.asarray(r.mesh.vertices)
    assert V1.shape == V0.shape and rec.size["depth_mm"] > 4.0
    c, b = np.asarray(rec.region["center_m"]), np.asarray(rec.region["direction"])
    d, R, L = rec.size["depth_mm"] * 1e-3, radius * 1e-3, rec.region["falloff_m"]
    np.testing.assert_allclose(V1 - V0, crush_field(V0, c, b, 1.0, d, R, L), atol=1e-12)
    # second differences of the field along random lines through the dent: |s''| is at
    # most 6 d / R^2 laterally plus 6 d / L^2 along b and their cross term (a kink
    # of 15 degrees would give tan(15 deg) / h = 536 / m at h = 0.5 mm, 4x more)
    rng = np.random.default_rng(0)
    h = 0.5e-3
    bound = 6 * d / R ** 2 + 6 * d / L ** 2 + 6 * d / (R * L)
    for _ in range(50):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        x = c + np.outer(np.arange(-1.2 * R, 1.2 * R, h), u)
        s = crush_field(x, c, b, 1.0, d, R, L) @ b
        dd = np.abs(s[2:] - 2 * s[1:-1] + s[:-2]) / h ** 2
        assert dd.max() <= 1.05 * bound
    assert np.tan(np.radians(15.0)) / h > 4 * bound


@pytest.mark.parametrize("kind,cls", [("carton", "board"), ("mailer", "film"), ("pouch", "film"),
                                      ("bottle", "rigid"), ("blister", "rigid")])
def test_modes_follow_material(kind, cls):
    """Board creases and folds, film wrinkles and crumples, rigid items dent;
    drawn sizes land on the requested severity."""
    p = product(kind, 0)
    assert crush_material(p) == cls
    allowed = {"board": {"corner", "edge", "crease", "buckle", "crumple", "dent", "sag", "mangle"},
               "film": {"wrinkle", "crumple"}, "rigid": {"dent", "bulge"}}[cls]
    rng = np.random.default_rng(5)
    seen = set()
    for sev in ("minor", "major"):
        for _ in range(12):
            par = sample_params("crush", sev, p, rng)
            assert par["mode"] in allowed
            seen.add(par["mode"])
            if sev == "major" and cls == "board" and par["mode"] in ("corner", "edge"):
                assert par["depth_mm"] >= 15.0
    if cls == "board":  # mostly folds, rarely a dent
        assert len(seen - {"dent"}) >= 3


@pytest.mark.parametrize("seed,depth", [(0, 30.0), (1, 30.0), (2, 30.0), (3, 30.0), (4, 70.0), (5, 70.0)])
def test_mangle_composes(carton, seed, depth):
    """A mangle is several shears in one damage: at least one whole-box mode
    (sag, barrel, rack) and two local folds, each recorded, shallow or as deep
    as a major parcel crush is drawn (sampling.BOARD_MAJOR_DEPTH_MM); the body never
    crosses itself; the labels are the faces that moved (by the recorded
    depth's threshold); the item still rests flat on its bottom."""
    q, rec = apply(carton, "crush", {"depth_mm": depth, "radius_mm": 2 * depth, "mode": "mangle",
                                     "center": _top_face(carton, (0.5, 0.5))}, np.random.default_rng(seed))
    modes = [c["mode"] for c in rec.region["components"]]
    assert len(modes) >= 3 and set(modes) & {"sag", "barrel", "rack"}
    assert sum(m in {"corner", "edge", "crease", "crumple", "buckle"} for m in modes) >= 2
    assert rec.severity == "major" and rec.size["depth_mm"] >= 10.0
    V, F = np.asarray(q.mesh.vertices), np.asarray(q.mesh.faces)
    body = np.flatnonzero(_body_faces(q))
    lab = np.flatnonzero(q.damage_id == len(q.damages))
    assert self_intersections(V, F, np.intersect1d(lab, body), body) == 0
    V0 = np.asarray(carton.mesh.vertices)
    nv = len(V0)
    moved = np.zeros(len(V), bool)
    moved[:nv] = np.linalg.norm(V[:nv] - V0, axis=1) > change_threshold_m(rec.size["depth_mm"] * 1e-3)
    labm = q.damage_id == len(q.damages)
    assert labm[moved[F].any(1)].all()
    old = (F < nv).all(1)
    np.testing.assert_array_equal(labm[old], moved[F[old]].any(1))
    # the item still rests flat: the bottom keeps its height (every shear falls
    # off before the floor; a rack shifts only above its crease; a crushed
    # vertical edge may move the bottom's corner sideways)
    bot = V0[:, 2] < V0[:, 2].min() + 1e-6
    np.testing.assert_allclose(V[:nv][bot, 2], V0[bot, 2], atol=1e-9)
    assert V[:, 2].min() >= V0[:, 2].min() - 1e-9
