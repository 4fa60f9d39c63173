"""Tear op: measured rip length and flap angle, exact labels, validity, purity,
composition with puncture and crush, bad params."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from damage_ops import FINISH_IDS
from damage_ops.base import ParamError

tear_mod = pytest.importorskip("damage_ops.tear")
from test_op_puncture import changed_faces, check_valid, product, same, snapshot, surface_distance  # noqa: E402

TearParams = tear_mod.TearParams
tear = tear_mod.tear
KINDS = ("carton", "mailer", "pouch", "multipack")


def _run(p, prm, seed):
    try:
        return tear(p, prm, np.random.default_rng(seed))
    except ParamError as e:
        assume("no exposed surface point fits" not in str(e))  # the item is too small for this rip
        raise


def flap_faces(q, rec) -> np.ndarray:
    """(n,) bool: faces of the torn part's connected components that have no
    vertex on the part's main body: the detached flap (found by topology)."""
    part = [i for i, pt in enumerate(q.parts) if pt.name == rec.region["part"]][0]
    idx = np.flatnonzero(q.part_id == part)
    sub = trimesh.Trimesh(q.mesh.vertices, q.mesh.faces[idx], process=False)
    comp = trimesh.graph.connected_component_labels(sub.face_adjacency, node_count=len(idx))
    dmg = q.damage_id[idx] == len(q.damages)
    out = np.zeros(len(q.mesh.faces), bool)
    for c in np.unique(comp[dmg]):
        if dmg[comp == c].all():  # a component made only of damaged faces is new: the flap
            out[idx[comp == c]] = True
    return out


def rip_length_mm(q, rec, before) -> float:
    """Length of the rip measured on the output: edges where a wall face (steep
    to the tear's normal) meets a surface face near the outside, minus the edges
    on the hinge line; flap faces excluded."""
    c, n = np.array(rec.region["center_m"]), np.array(rec.region["normal"])
    part = [i for i, pt in enumerate(q.parts) if pt.name == rec.region["part"]][0]
    keep = (q.part_id == part) & ~flap_faces(q, rec)
    sub = trimesh.Trimesh(q.mesh.vertices, q.mesh.faces[keep], process=False)
    steep = np.abs(sub.face_normals @ n) < 0.3
    dmg = q.damage_id[keep] == len(q.damages)
    adj = sub.face_adjacency
    e = sub.face_adjacency_edges[(steep[adj[:, 0]] != steep[adj[:, 1]]) & (dmg[adj[:, 0]] | dmg[adj[:, 1]])]
    # the rim lies on the input surface (the pocket floor does not); a through cut
    # also meets the sheet's inner side: keep the loop nearer the outside
    v = np.unique(e)
    on = np.zeros(len(sub.vertices), bool)
    on[v] = surface_distance(before.mesh, sub.vertices[v]) < 1e-6
    e = e[on[e].all(1)]
    if rec.region["through"]:
        depth = -((sub.vertices - c) @ n)
        e = e[(depth[e] < 0.5 * rec.size["depth_mm"] / 1e3).all(1)]
    a, b = (np.array(h) for h in rec.region["hinge_m"])
    d = (b - a) / np.linalg.norm(b - a)
    rel = sub.vertices - a
    rel -= np.outer(rel @ n, n)  # in the tangent plane: the hinge follows a curved surface below its chord
    off = np.linalg.norm(rel - np.outer(rel @ d, d), axis=1)
    e = e[~(off[e] < 5e-5).all(1)]
    return 1e3 * float(np.linalg.norm(sub.vertices[e[:, 0]] - sub.vertices[e[:, 1]], axis=1).sum())


#: finishes a cut shows: the raw inside, the fluted core, the inner liner
CUT_FINISHES = [FINISH_IDS["interior"], FINISH_IDS["core"], FINISH_IDS["inner_liner"]]


def flap_angle_deg(q, rec) -> float:
    f = flap_faces(q, rec) & ~np.isin(q.mesh.face_attributes["finish"], CUT_FINISHES)
    T = q.mesh.vertices[q.mesh.faces[f]]
    c = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]).sum(0)
    return float(np.degrees(np.arccos(np.clip(c @ np.array(rec.region["normal"]) / np.linalg.norm(c), -1, 1))))


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 3), op_seed=st.integers(0, 2**32 - 1),
       length=st.floats(10.0, 220.0), opening=st.floats(0.0, 120.0))
def test_tear_size_labels_validity(kind, seed, op_seed, length, opening):
    p = product(kind, seed)
    snap = snapshot(p)
    q, rec = _run(p, TearParams(length_mm=length, opening_deg=opening), op_seed)
    assert same(p, snap), "input mutated"
    check_valid(q)
    assert rec.type == "tear"
    assert rec.severity == ("major" if rec.size["length_mm"] >= 60.0 else "minor")
    part = [i for i, pt in enumerate(q.parts) if pt.name == rec.region["part"]][0]
    extent = float(np.ptp(p.mesh.vertices[np.unique(p.mesh.faces[p.part_id == part])], axis=0).max())
    assert rec.category == ("deconstruction" if opening >= 45 and length >= 1e3 * tear_mod.OPENS_ITEM_EXTENT * extent
                            else "penetration")
    assert abs(rec.size["length_mm"] - length) <= 0.1 * length
    assert abs(rip_length_mm(q, rec, p) - length) <= 0.1 * length
    assert abs(rec.size["opening_deg"] - opening) <= 0.1 * opening + 0.05
    assert abs(flap_angle_deg(q, rec) - opening) <= 0.1 * opening + 0.1
    dmg = q.damage_id == len(q.damages)
    assert dmg.sum() == rec.n_faces > 0
    # changed = off the input surface, part of the new flap (which lies flush at 0
    # degrees), or showing the raw inside (a pristine item has no interior finish;
    # the cut leaves sub-micron wall slivers at the rim that only this reveals)
    fin = q.mesh.face_attributes["finish"]
    assert not np.isin(p.mesh.face_attributes.get("finish", np.zeros(1, np.int8)), CUT_FINISHES).any()
    changed = changed_faces(p.mesh, q.mesh) | flap_faces(q, rec) | np.isin(fin, CUT_FINISHES)
    assert np.array_equal(dmg, changed), f"labelled {dmg.sum()} vs changed {changed.sum()} ({(dmg != changed).sum()} differ)"
    assert np.isin(fin[dmg], CUT_FINISHES[:2]).any()
    # other parts change only behind a through cut: the item's dark inside shows there
    other = dmg & (q.part_id != part)
    assert not other.any() or rec.region["through"]
    assert (fin[other] == FINISH_IDS["interior"]).all()
    assert (q.part_id != part).sum() == (p.part_id != part).sum()  # other parts untouched


def test_tear_deterministic_seed_zero_and_opens_item(monkeypatch):
    p = product("carton", 0)
    # carton 0's panels hold no rip of 0.8 x its 341 mm length: the rule at 0.4
    # (the hypothesis test checks it at the default on every draw)
    monkeypatch.setattr(tear_mod, "OPENS_ITEM_EXTENT", 0.4)
    a, ra = tear(p, TearParams(length_mm=150, opening_deg=90), np.random.default_rng(0))
    b, rb = tear(p, TearParams(length_mm=150, opening_deg=90), np.random.default_rng(0))
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and ra.to_json() == rb.to_json()
    assert ra.category == "deconstruction" and ra.severity == "major"
    c, rc = tear(p, TearParams(length_mm=20, opening_deg=90), np.random.default_rng(0))
    assert rc.category == "penetration" and rc.severity == "minor"


def test_tear_explicit_center_and_depth():
    p = product("carton", 1)
    side = int(np.argmax(p.mesh.triangles_center[:, 1] * (p.part_id == 0) * (p.mesh.face_normals[:, 1] > 0.9)))
    q, rec = tear(p, {"length_mm": 30.0, "opening_deg": 30.0, "center": side, "depth_mm": 3.0}, np.random.default_rng(1))
    check_valid(q)
    assert rec.region["part"] == "body" and not rec.region["through"]
    assert abs(rec.size["depth_mm"] - 3.0) < 1e-6
    assert abs(rip_length_mm(q, rec, p) - 30.0) <= 3.0


@pytest.mark.parametrize("other,params", [("puncture", {"diameter_mm": 12.0}),
                                          ("crush", {"depth_mm": 8.0, "radius_mm": 40.0})])
@pytest.mark.parametrize("first", ["tear", "other"])
def test_tear_composes(other, params, first):
    import damage_ops.crush  # noqa: F401  (registers crush)
    import damage_ops.puncture  # noqa: F401
    from damage_ops.base import apply

    p = product("carton", 2)
    steps = [("tear", {"length_mm": 80.0, "opening_deg": 60.0}), (other, params)]
    if first == "other":
        steps = steps[::-1]
    q = p
    for i, (op, prm) in enumerate(steps):
        q, rec = apply(q, op, prm, np.random.default_rng(10 + i))
        assert (q.damage_id == len(q.damages)).sum() == rec.n_faces > 0
    check_valid(q)
    assert len(q.damages) == 2 and (q.damage_id == 1).sum() + (q.damage_id == 2).sum() > 0


@pytest.mark.parametrize("params,field", [
    ({"length_mm": 5.0}, "length_mm"), ({"length_mm": 500.0}, "length_mm"),
    ({"length_mm": float("nan")}, "length_mm"), ({"opening_deg": -1.0}, "opening_deg"),
    ({"opening_deg": 150.0}, "opening_deg"), ({"depth_mm": 0.1}, "depth_mm"),
    ({"center": -1}, "center"), ({"center": True}, "center"), ({"center": 10**9}, "center"),
])
def test_tear_bad_params(params, field):
    from damage_ops.base import REGISTRY, apply

    assert REGISTRY["tear"].opens_surface is False
    with pytest.raises(ParamError, match=f"tear.{field}"):
        apply(product("carton", 0), "tear", params, np.random.default_rng(0))


def test_local_cut_gives_the_whole_part_result(monkeypatch):
    """The tear's prism is cut on a closed local patch of the part (as the
    puncture's cutter is); the result equals manifold3d's cut of the whole part,
    and the local cut really ran."""
    from tests._op_checks import compare_local_and_whole_cut
    from tests._op_checks import product as fresh

    cases = [(fresh(kind, seed), {"length_mm": length, "opening_deg": deg}, seed)
             for kind in ("carton", "mailer", "pouch")
             for seed, (length, deg) in enumerate(((30.0, 10.0), (80.0, 40.0), (120.0, 70.0)))]
    n, ran = compare_local_and_whole_cut(monkeypatch, "tear", cases, "length_mm", 1e-3)
    assert n >= 6 and sum(ran) >= 0.8 * len(ran), (n, ran)


def _flap_top_site(p):
    """A face in the middle of one carton top flap, away from the taped seam."""
    n, c = p.mesh.face_normals, p.mesh.triangles_center
    flap = [i for i, pt in enumerate(p.parts) if pt.name == "flap"][0]
    sel = np.flatnonzero((p.part_id == flap) & (n[:, 2] > 0.9) & (c[:, 1] < 0))
    mid = np.array([0.0, c[sel, 1].mean(), c[sel, 2].mean()])
    return int(sel[np.argmin(np.linalg.norm(c[sel] - mid, axis=1))])


def test_tear_outline_is_ragged_at_mm_scale():
    """The outline carries fibre-scale jitter on top of the cm-scale guide: its
    residual from a 4 mm moving average is >= 0.06 mm rms on every outline, the
    liner outline lies outside the core's by a band, and no outline crosses itself."""
    from damage_ops import _ragged as R

    for seed in range(4):
        o = tear_mod.tear_outlines(np.random.default_rng(seed), 0.08, True, 0.4e-3)
        for q in (o.cut_out, o.cut_in, o.flap_out, o.flap_in):
            P, _ = R.resample(q, 0.5e-3)
            sm = R.smooth_polyline(P, 4e-3, 0.5e-3)
            res = np.linalg.norm(P - sm, axis=1)[10:-10]
            assert np.sqrt((res ** 2).mean()) > 0.06e-3
            assert not R.segments_cross(q)
        # band: every core point lies inside the liner outline, >= 0.3 mm from it
        assert R.in_poly(o.cut_in, o.cut_out).all()
        assert R.in_poly(o.flap_in, o.flap_out).all()
        from scipy.spatial import cKDTree
        d, _ = cKDTree(R.resample(o.cut_out, 0.2e-3)[0]).query(o.cut_in[1:-1])
        assert d.min() > 0.3e-3 and np.median(d) > 1.0e-3


@pytest.mark.parametrize("opening", [40.0, 100.0])
def test_tear_flap_curls(opening):
    """The flap bends progressively: the angle of its top faces to the surface
    rises monotonically with the distance from the hinge (binned), by the
    recorded curl; the slab stays closed with positive volume, and its mean top
    angle is the requested opening."""
    p = product("carton", 1)
    q, rec = tear(p, {"length_mm": 90.0, "opening_deg": opening}, np.random.default_rng(7))
    fl = flap_faces(q, rec)
    fin = q.mesh.face_attributes["finish"]
    top = np.flatnonzero(fl & ~np.isin(fin, CUT_FINISHES))
    n = np.array(rec.region["normal"])
    a, b = (np.array(h) for h in rec.region["hinge_m"])
    # distance from the hinge along the surface: the bend keeps it, so measure it on the input frame
    ang = np.degrees(np.arccos(np.clip(q.mesh.face_normals[top] @ n, -1, 1)))
    hd = (b - a) / np.linalg.norm(b - a)
    rel = q.mesh.triangles_center[top] - a
    dist = np.linalg.norm(rel - np.outer(rel @ hd, hd), axis=1)   # distance from the hinge line (3-D)
    w = q.mesh.area_faces[top]
    edges = np.quantile(dist, np.linspace(0, 1, 7))
    means = [np.average(ang[(dist >= lo) & (dist <= hi)], weights=w[(dist >= lo) & (dist <= hi)])
             for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.all(np.diff(means) > 0), means
    assert means[-1] - means[0] > 0.3 * rec.region["curl_deg"] > 0
    assert rec.region["curl_deg"] >= 0.25 * opening
    assert abs(flap_angle_deg(q, rec) - opening) < 0.5
    slab = trimesh.Trimesh(q.mesh.vertices, q.mesh.faces[fl], process=True)
    assert slab.is_watertight and slab.is_winding_consistent and slab.volume > 0
    assert ang.max() < 180.0


def test_tear_bend_is_one_to_one():
    """bend() maps a slab below its top surface one-to-one: sampled points of a
    thick block keep their order along the bent curve and their depth."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 0.05, 4000), rng.uniform(-0.01, 0.01, 4000), rng.uniform(-0.004, 0, 4000)])
    e1, n = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    Y = tear_mod.bend(X, np.zeros(3), e1, n, np.radians(60), np.radians(70), 0.05)
    from scipy.spatial import cKDTree
    dX, _ = cKDTree(X).query(X, k=2)
    dY, _ = cKDTree(Y).query(Y, k=2)
    assert dY[:, 1].min() > 0.5 * dX[:, 1].min()   # no two points collapse
    assert np.allclose(Y[:, 1], X[:, 1])
