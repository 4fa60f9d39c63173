"""deconstruction: flap_open / burst_seam / contents_out opening size measured
on the output, labels cover the changed region, validity (parts stay closed),
purity, composition, ParamError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from _op_checks import assert_unchanged, part_mesh, product, snapshot  # noqa: F401
from _op_checks import assert_valid as _assert_valid
from hypothesis import given, settings
from hypothesis import strategies as st

import damage_ops.deconstruction as D
import damage_ops.spill  # noqa: F401  (composition partner)
from damage_ops.base import REGISTRY, ParamError, apply
from damage_ops.product import FINISH_IDS


def assert_valid(p):
    _assert_valid(p, winding=True, satellites=True)


def surface_distance(mesh, pts):
    _, d, _ = trimesh.proximity.closest_point(mesh, pts)
    return d


def sample(idx, k, seed=0):
    idx = np.asarray(idx)
    return idx if len(idx) <= k else np.random.default_rng(seed).choice(idx, k, replace=False)


def check_unlabelled_unchanged(p, q, did):
    """Unlabelled faces keep the input geometry (their vertices lie on the input
    surface) and the default appearance."""
    un = q.damage_id != did
    fin = q.mesh.face_attributes["finish"]
    tint = q.mesh.face_attributes["tint"]
    old = (q.damage_id > 0) & un  # faces of earlier damages may carry a finish
    assert (fin[un & ~old] == 0).all() and (tint[un & ~old] == 1).all()
    v = np.unique(q.mesh.faces[un])
    d = surface_distance(p.mesh, q.mesh.vertices[sample(v, 300)])
    assert d.max() < 1e-7


def flap_components(p):
    fid = [i for i, t in enumerate(p.parts) if t.name == "flap"]
    f = np.flatnonzero(np.isin(p.part_id, fid))
    sub = trimesh.Trimesh(p.mesh.vertices, p.mesh.faces[f], process=False)
    comps = trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(f)), min_len=1)
    return [np.unique(p.mesh.faces[f[c]]) for c in sorted(comps, key=lambda c: int(np.min(c)))]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 5), rseed=st.integers(0, 2 ** 31), frac=st.floats(0.02, 1.0),
       mode=st.sampled_from(["flap_open", "contents_out"]))
def test_flap_open(seed, rseed, frac, mode):
    p = product("carton", seed)
    flaps_in = flap_components(p)
    # the widest opening a flap allows is twice its width: stay under it
    widths = [np.ptp(p.mesh.vertices[v], axis=0)[:2].min() for v in flaps_in]
    opening = float(np.clip(frac * 2 * min(widths) * 1000, 1.0, 400.0))
    snap = snapshot(p)
    q, rec = apply(p, "deconstruction", {"mode": mode, "opening_mm": opening}, np.random.default_rng(rseed))
    assert_unchanged(p, snap)
    assert_valid(q)
    did = len(q.damages)
    k = rec.region["flap"]
    flaps_out = flap_components(q)
    assert len(flaps_out) == len(flaps_in)
    # vertex order survives the op (faces are dropped/refined, vertices only renumbered in order)
    moved = q.mesh.vertices[flaps_out[k]]
    orig = p.mesh.vertices[flaps_in[k]]
    disp = np.linalg.norm(moved - orig, axis=1).max() * 1000
    assert disp == pytest.approx(opening, rel=0.10)
    assert rec.size["opening_mm"] == pytest.approx(disp, rel=1e-6)
    # rigid: same shape
    assert np.allclose(np.linalg.norm(moved - moved[0], axis=1), np.linalg.norm(orig - orig[0], axis=1), atol=1e-9)
    # the open flap does not dip into the body box
    body = [i for i, t in enumerate(q.parts) if t.name == "body"]
    bv = q.mesh.vertices[np.unique(q.mesh.faces[np.isin(q.part_id, body)])]
    blo, bhi = bv.min(0), bv.max(0)
    inside = np.all((moved > blo + 1e-6) & (moved < bhi - 1e-6), axis=1)
    if inside.any():  # inside the box of a bowed body (carton bow_mm): must still lie outside its walls
        walls = trimesh.Trimesh(q.mesh.vertices, q.mesh.faces[np.isin(q.part_id, body)], process=False)
        cp, _, tri = trimesh.proximity.closest_point(walls, moved[inside])
        side = np.einsum("ij,ij->i", moved[inside] - cp, walls.face_normals[tri])
        assert (side > -1e-6).all(), f"flap vertices inside the body by up to {-side.min() * 1e3:.2f} mm"
    # labels: the moved flap, the dark interior and what the tape covered
    lab = q.damage_id == did
    fid = [i for i, t in enumerate(q.parts) if t.name == "flap"]
    fl = np.flatnonzero(np.isin(q.part_id, fid))
    on_moved = np.isin(q.mesh.faces[fl], flaps_out[k]).all(1)
    assert lab[fl[on_moved]].all()
    fin = q.mesh.face_attributes["finish"]
    assert lab[fin == FINISH_IDS["interior"]].all()
    floor = lab & (fin == FINISH_IDS["interior"]) & np.isin(q.part_id, body)
    assert floor.any() and (q.mesh.face_attributes["tint"][floor] < 0.5).all()
    tape = [i for i, t in enumerate(q.parts) if t.name == "tape"]
    assert not np.isin(q.part_id, tape).any()  # the carton's one tape ran over the flap: peeled off
    check_unlabelled_unchanged(p, q, did)
    assert rec.severity == ("major" if rec.size["opening_mm"] >= 40 else "minor")
    if mode == "contents_out":
        sat = q.satellites[-1]
        assert sat.kind == "contents"
        assert (sat.mesh.face_attributes["damage_id"] == did).all()
        names = {q.parts[i].name for i in np.unique(sat.mesh.face_attributes["part_id"])}
        assert names == {"contents"}
        assert np.ptp(sat.mesh.vertices, axis=0).min() <= opening / 1000 + 1e-9  # it fits through


def slit_opening(p, q, rec):
    """Independent slit measurement: vertices sunk below the input surface, their
    spread across the slit axis (m)."""
    did = len(q.damages)
    c = np.asarray(rec.region["center_m"])
    n0 = np.asarray(rec.region["normal"])
    ax = np.asarray(rec.region["axis"])
    b = np.cross(n0, ax)
    depth = rec.region["depth_m"]
    v = np.unique(q.mesh.faces[q.damage_id == did])
    d = surface_distance(p.mesh, q.mesh.vertices[v])
    deep = v[d > 0.1 * depth]
    t = (q.mesh.vertices[deep] - c) @ b
    return float(t.max() - t.min()), d, v


@settings(max_examples=24, deadline=None)
@given(kind=st.sampled_from(["mailer", "pouch", "carton"]), seed=st.integers(0, 5), rseed=st.integers(0, 2 ** 31),
       opening=st.floats(3.0, 30.0), mode=st.sampled_from(["burst_seam", "contents_out"]))
def test_slit(kind, seed, rseed, opening, mode):
    if kind == "carton" and mode == "contents_out":
        mode = "burst_seam"  # cartons spill contents through a flap (test_flap_open)
    p = product(kind, seed)
    snap = snapshot(p)
    try:
        q, rec = apply(p, "deconstruction", {"mode": mode, "opening_mm": opening}, np.random.default_rng(rseed))
    except ParamError as e:
        assert "no room" in str(e)  # a documented refusal, never a broken mesh
        return
    assert_unchanged(p, snap)
    assert_valid(q)
    did = len(q.damages)
    w, d, v = slit_opening(p, q, rec)
    assert w * 1000 == pytest.approx(opening, rel=0.10)
    assert rec.size["opening_mm"] == pytest.approx(opening, rel=0.10)
    # the trough is deep (lips slide along the tangent plane, which lifts them
    # off a curved pouch a little: hence 0.7, not 1)
    assert d.max() >= 0.7 * rec.region["depth_m"] - 1e-9
    check_unlabelled_unchanged(p, q, did)
    # labelled faces stay in the slit's neighbourhood
    c = np.asarray(rec.region["center_m"])
    lab_c = q.mesh.triangles_center[q.damage_id == did]
    assert np.linalg.norm(lab_c - c, axis=1).max() < rec.region["radius_m"] + opening / 1000 + 0.01
    fin = q.mesh.face_attributes["finish"]
    assert (fin == FINISH_IDS["interior"]).sum() > 0 and (q.damage_id[fin == FINISH_IDS["interior"]] == did).all()
    if mode == "contents_out":
        sat = q.satellites[-1]
        assert sat.kind == "contents" and (sat.mesh.face_attributes["damage_id"] == did).all()


@pytest.mark.parametrize("kind,seed", [("blister", 1), ("blister", 2), ("multipack", 0), ("multipack", 1)])
def test_contents_out_unit(kind, seed):
    p = product(kind, seed)
    uid = [i for i, t in enumerate(p.parts) if t.name == "unit"]

    def n_units(x):
        f = np.flatnonzero(np.isin(x.part_id, uid))
        sub = trimesh.Trimesh(x.mesh.vertices, x.mesh.faces[f], process=False)
        return len(trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(f)), min_len=1))

    q, rec = D.deconstruction(p, D.DeconstructionParams(mode="contents_out", opening_mm=6.0),
                              np.random.default_rng(seed))
    assert_valid(q)
    did = len(q.damages)
    assert n_units(q) == n_units(p) - 1
    sat = q.satellites[-1]
    assert sat.kind == "contents" and (sat.mesh.face_attributes["damage_id"] == did).all()
    assert {q.parts[i].name for i in np.unique(sat.mesh.face_attributes["part_id"])} == {"unit"}
    ext = np.ptp(sat.mesh.vertices, axis=0)
    assert ext[2] <= ext[:2].max() + 1e-9  # lies on its side
    w, _, _ = slit_opening(p, q, rec)
    assert w * 1000 == pytest.approx(6.0, rel=0.10)
    check_unlabelled_unchanged(p, q, did)


def test_deconstruction_composes():
    p = product("pouch", 1)
    q1, r1 = apply(p, "spill", {"area_cm2": 40, "stain_area_cm2": 10, "substance": "powder"},
                   np.random.default_rng(0))
    q2, r2 = apply(q1, "deconstruction", {"mode": "burst_seam", "opening_mm": 12}, np.random.default_rng(1))
    assert_valid(q2)
    assert q2.damages[0] == r1 and len(q2.damages) == 2 and (q2.damage_id == 2).sum() == r2.n_faces
    q3, r3 = apply(q2, "deconstruction", {"mode": "contents_out", "opening_mm": 8}, np.random.default_rng(2))
    assert_valid(q3)
    assert len(q3.satellites) == 2 and (q3.satellites[1].mesh.face_attributes["damage_id"] == 3).all()
    c = product("carton", 2)
    c1, _ = apply(c, "spill", {"area_cm2": 10, "stain_area_cm2": 30}, np.random.default_rng(3))
    c2, rc = apply(c1, "deconstruction", {"mode": "flap_open", "opening_mm": 60}, np.random.default_rng(4))
    assert_valid(c2)
    assert rc.size["opening_mm"] == pytest.approx(60, rel=1e-6) and rc.severity == "major"


@pytest.mark.parametrize("bad,field", [
    ({"mode": "explode"}, "mode"), ({"opening_mm": 0.5}, "opening_mm"), ({"opening_mm": float("inf")}, "opening_mm"),
    ({"length_mm": 1}, "length_mm"), ({"flap": -1}, "flap"), ({"center": 2.5}, "center"),
    ({"contents_material": ""}, "contents_material"), ({"angle": 3}, "angle"),
])
def test_param_errors(bad, field):
    with pytest.raises(ParamError) as e:
        apply(product("carton", 0), "deconstruction", bad, np.random.default_rng(0))
    assert "deconstruction" in str(e.value) and field in str(e.value)


def test_param_errors_need_the_product():
    with pytest.raises(ParamError, match="'flap_open' needs a 'flap' part"):
        apply(product("mailer", 0), "deconstruction", {"mode": "flap_open"}, np.random.default_rng(0))
    with pytest.raises(ParamError, match="opening_mm.*180 degrees"):
        apply(product("carton", 0), "deconstruction", {"mode": "flap_open", "opening_mm": 400},
              np.random.default_rng(0))
    with pytest.raises(ParamError, match="flap"):
        apply(product("carton", 0), "deconstruction", {"mode": "flap_open", "flap": 7}, np.random.default_rng(0))
    with pytest.raises(ParamError, match="short side"):
        apply(product("blister", 0), "deconstruction", {"mode": "contents_out", "opening_mm": 200},
              np.random.default_rng(0))
    with pytest.raises(ParamError, match="center"):
        apply(product("carton", 0), "deconstruction", {"mode": "burst_seam", "center": 10 ** 6},
              np.random.default_rng(0))


def test_registered():
    spec = REGISTRY["deconstruction"]
    assert spec.category == "deconstruction" and spec.opens_surface is False


@pytest.mark.parametrize("seed,contents", [(0, True), (1, False), (3, None)])
def test_box_open(seed, contents):
    """An opened carton: every flap swings open about its hinge by more than 60
    degrees (measured on the output: the angle of its top to the horizontal),
    rigidly; its former underside shows the inner liner; the tape is peeled; the
    labels are exactly the moved flaps, the dark inside, what the tape covered
    and the contents box standing in the opening."""
    p = product("carton", seed)
    flaps_in = flap_components(p)
    widths = [np.ptp(p.mesh.vertices[v], axis=0)[:2].min() for v in flaps_in]
    snap = snapshot(p)
    prm = {"mode": "box_open", "opening_mm": 1.6 * min(widths) * 1000, "forced": False}
    if contents is not None:
        prm["contents"] = contents
    q, rec = apply(p, "deconstruction", prm, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q)
    did = len(q.damages)
    lab = q.damage_id == did
    assert rec.category == "deconstruction" and rec.region["mode"] == "box_open"
    flaps_out = flap_components(q)
    assert len(flaps_out) == len(flaps_in) == len(rec.region["flaps"]) >= 2
    fid = [i for i, t in enumerate(q.parts) if t.name == "flap"]
    fl = np.flatnonzero(np.isin(q.part_id, fid))
    fin = q.mesh.face_attributes["finish"]
    for k, (vin, vout) in enumerate(zip(flaps_in, flaps_out)):
        moved, orig = q.mesh.vertices[vout], p.mesh.vertices[vin]
        assert np.allclose(np.linalg.norm(moved - moved[0], axis=1), np.linalg.norm(orig - orig[0], axis=1),
                           atol=1e-9)  # rigid
        on = fl[np.isin(q.mesh.faces[fl], vout).all(1)]
        assert lab[on].all()
        # hinge angle measured: the faces that faced up now face ... rotated by the recorded angle
        was_up = np.isin(p.mesh.faces[np.flatnonzero(np.isin(p.part_id, fid))], vin).all(1)
        up_in = np.flatnonzero(np.isin(p.part_id, fid))[was_up]
        up_in = up_in[p.mesh.face_normals[up_in][:, 2] > 0.9]
        area_up = p.mesh.area_faces[up_in].sum()
        top_out = on[(fin[on] != FINISH_IDS["inner_liner"]) & (fin[on] != FINISH_IDS["interior"])]
        nz = q.mesh.face_normals[top_out] @ [0, 0, 1.0]
        big = q.mesh.area_faces[top_out] > 0
        ang = np.degrees(np.arccos(np.clip(np.median(nz[big]), -1, 1)))
        assert ang > 60.0
        assert ang == pytest.approx(rec.region["flaps"][k]["angle_deg"], abs=2.0)
        assert area_up > 0
        assert (fin[on] == FINISH_IDS["inner_liner"]).any()   # the inside face of the board shows
    tape = [i for i, t in enumerate(q.parts) if t.name == "tape"]
    assert not np.isin(q.part_id, tape).any()
    body = [i for i, t in enumerate(q.parts) if t.name == "body"]
    floor = lab & (fin == FINISH_IDS["interior"]) & np.isin(q.part_id, body)
    assert floor.any() and (q.mesh.face_attributes["tint"][floor] < 0.5).all()
    cont = [i for i, t in enumerate(q.parts) if t.name == "contents"]
    has = bool(cont) and np.isin(q.part_id, cont).any()
    assert has == rec.region["contents"]
    if contents is not None:
        assert has == contents
    if has:
        cf = np.isin(q.part_id, cont)
        assert lab[cf].all()
        assert q.mesh.vertices[np.unique(q.mesh.faces[cf])][:, 2].min() >= rec.region["floor_m"]  # on the floor
    # the body is hollow under the flaps: inner-liner walls down to a floor well below the top
    bv = q.mesh.vertices[np.unique(q.mesh.faces[np.isin(q.part_id, body)])]
    walls = lab & np.isin(q.part_id, body) & (fin == FINISH_IDS["inner_liner"])
    assert walls.any() and (np.abs(q.mesh.face_normals[walls][:, 2]) < 0.1).all()
    assert bv[:, 2].max() - rec.region["floor_m"] > 0.5 * np.ptp(bv[:, 2])
    assert (lab & np.isin(q.part_id, body) & (fin == FINISH_IDS["core"])).any()  # the cut edge on the rim
    check_unlabelled_unchanged(p, q, did)
    # deterministic
    q2, rec2 = apply(p, "deconstruction", prm, np.random.default_rng(seed))
    assert np.array_equal(q2.mesh.vertices, q.mesh.vertices) and rec2.to_json() == rec.to_json()


def test_box_open_needs_flaps_and_bool_contents():
    with pytest.raises(ParamError, match="'box_open' needs a 'flap' part"):
        apply(product("mailer", 0), "deconstruction", {"mode": "box_open"}, np.random.default_rng(0))
    with pytest.raises(ParamError, match="deconstruction.contents"):
        apply(product("carton", 0), "deconstruction", {"mode": "box_open", "contents": "yes"}, np.random.default_rng(0))


@pytest.mark.parametrize("seed", [0, 2, 3, 4])
def test_box_open_forced(seed):
    """A box opened by force: flaps at scattered angles (some drooping past 180
    degrees over the wall, some creased across: then not rigid, but a bend keeps
    the mid-plane's lengths), the rim dented; every flap and every moved face is
    labelled, nothing unlabelled changed, no flap face crosses any other face;
    deterministic."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_crush_geometry import self_intersections

    p = product("carton", seed)
    snap = snapshot(p)
    prm = {"mode": "box_open", "opening_mm": 110.0}
    q, rec = apply(p, "deconstruction", prm, np.random.default_rng(seed))
    assert_unchanged(p, snap)
    assert_valid(q)
    did = len(q.damages)
    lab = q.damage_id == did
    fl = [f for f in rec.region["flaps"]]
    assert len(fl) == len(flap_components(p)) >= 2
    fid = [i for i, t in enumerate(q.parts) if t.name == "flap"]
    assert lab[np.isin(q.part_id, fid)].all()
    assert all(40.0 - 1e-6 <= f["angle_deg"] <= 240.0 + 1e-6 for f in fl)
    assert all(f["drooping"] == (f["angle_deg"] > 180.0) for f in fl)
    assert rec.region["rim_dent"]["depth_mm"] > 2.0
    # unlabelled faces keep the default look and lie on the input surface, up to
    # the rim dent's label threshold (the crush convention: a vertex moved by less
    # than change_threshold_m(depth) does not make its faces damaged)
    from damage_ops.crush import change_threshold_m

    un = ~lab
    old = (q.damage_id > 0) & un
    fin, tint = q.mesh.face_attributes["finish"], q.mesh.face_attributes["tint"]
    assert (fin[un & ~old] == 0).all() and (tint[un & ~old] == 1).all()
    v = np.unique(q.mesh.faces[un])
    d = surface_distance(p.mesh, q.mesh.vertices[sample(v, 300)])
    assert d.max() <= change_threshold_m(rec.region["rim_dent"]["depth_mm"] * 1e-3) + 1e-7
    V, F = np.asarray(q.mesh.vertices), np.asarray(q.mesh.faces)
    assert self_intersections(V, F, np.flatnonzero(np.isin(q.part_id, fid))) == 0
    # a torn flap: its free edge receded (the flap is shorter than its hinge frame's
    # reach somewhere), the torn edge shows the fluted core, the liner along it the
    # inner paper; an untorn flap has neither
    core = np.isin(q.part_id, fid) & (fin == FINISH_IDS["core"])
    assert core.any() == any(f["torn"] for f in fl)
    for f in fl:
        assert (f["torn_recede_mm"] > 1.0) == f["torn"]
        assert f["torn_recede_mm"] <= 0.45 * 0.85 * 1e3 * np.ptp(p.mesh.vertices, axis=0)[:2].max()
    q2, rec2 = apply(p, "deconstruction", prm, np.random.default_rng(seed))
    assert np.array_equal(q2.mesh.vertices, q.mesh.vertices) and rec2.to_json() == rec.to_json()


def test_box_open_forced_draws_droops_and_creases():
    """Over a few seeds the forced opening shows a drooping, a creased and a torn
    flap, and a torn flap with a piece bitten out of its edge."""
    seen = set()
    for seed in range(6):
        q, rec = apply(product("carton", seed), "deconstruction", {"mode": "box_open", "opening_mm": 110.0},
                       np.random.default_rng(seed))
        for f in rec.region["flaps"]:
            seen |= {"droop"} if f["drooping"] else set()
            seen |= {"bend"} if f["bend_deg"] else set()
            seen |= {"torn"} if f["torn"] else set()
            seen |= {"bite"} if f["torn_bite"] else set()
    assert seen == {"droop", "bend", "torn", "bite"}


@pytest.mark.parametrize("kind", ["paper_kraft", "paper_pink", "bubble_wrap", "air_pillows"])
def test_box_open_dunnage(kind):
    """Dunnage in an opened carton: every piece a closed (watertight) mesh of the
    kind's material, standing on the inside floor within the body's footprint,
    rising above the rim (paper, bubble wrap) but crossing no flap,
    every face of it labelled with the damage; deterministic; the box's other
    labels as without dunnage (check_unlabelled_unchanged)."""
    import damage_ops.dunnage as DN
    p = product("carton", 0)
    prm = {"mode": "box_open", "opening_mm": 110.0, "contents": True, "dunnage": kind, "forced": False}
    q, rec = apply(p, "deconstruction", prm, np.random.default_rng(4))
    assert_valid(q)
    did = len(q.damages)
    assert rec.region["dunnage"] == kind and rec.region["contents"] is True
    cont = [i for i, t in enumerate(q.parts) if t.name == "contents"]
    assert [q.parts[i].material for i in cont] == [DN.KINDS[kind]]
    cf = np.isin(q.part_id, cont)
    assert cf.sum() > 100 and (q.damage_id[cf] == did).all()
    sub = trimesh.Trimesh(q.mesh.vertices, q.mesh.faces[cf], process=False)
    pieces = sub.split(only_watertight=False)
    assert len(pieces) >= 1 and all(m.is_watertight and m.volume > 0 for m in pieces)
    body = [i for i, t in enumerate(q.parts) if t.name == "body"]
    bv = p.mesh.vertices[np.unique(p.mesh.faces[np.isin(p.part_id, body)])]
    cv = q.mesh.vertices[np.unique(q.mesh.faces[cf])]
    assert (cv[:, :2] >= bv[:, :2].min(0) - 1e-6).all() and (cv[:, :2] <= bv[:, :2].max(0) + 1e-6).all()
    assert cv[:, 2].min() >= rec.region["floor_m"] - 1e-6
    # it rises above the rim but never pierces a flap leaning over the opening
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_crush_geometry import self_intersections
    fid = [i for i, t in enumerate(q.parts) if t.name == "flap"]
    assert cv[:, 2].max() > bv[:, 2].max() or kind == "air_pillows"
    assert self_intersections(q.mesh.vertices, q.mesh.faces, np.flatnonzero(np.isin(q.part_id, fid)),
                              np.flatnonzero(cf)) == 0
    check_unlabelled_unchanged(p, q, did)
    q2, rec2 = apply(p, "deconstruction", prm, np.random.default_rng(4))
    assert np.array_equal(q2.mesh.vertices, q.mesh.vertices) and rec2.to_json() == rec.to_json()


def test_box_open_dunnage_bad_kind():
    with pytest.raises(ParamError, match="dunnage"):
        apply(product("carton", 0), "deconstruction", {"mode": "box_open", "dunnage": "popcorn"},
              np.random.default_rng(0))


def test_burst_seam_sampled_fits_bags():
    """Sampled burst seams on the default catalog's mailers and pouches: the
    opening stays within BURST_OPENING_PER_WIDTH x the bag's width (and on the
    requested side of the severity threshold), and the op finds room for nearly
    all of them (a major slit gaping 80-120 mm found none on a labelled mailer);
    a placed one is recorded at the sampled severity."""
    from damage_ops.sampling import BURST_OPENING_PER_WIDTH, sample_params
    from simulator.config.catalog import load_catalog
    from damage_ops.base import NotApplicable

    cat = load_catalog(None)
    ok = n = 0
    for s in cat.skus:
        if s.kind not in ("mailer", "pouch"):
            continue
        p = cat.build(s)
        width = float(np.sort(p.dims_mm)[1])
        for seed in range(3):
            for sev in ("minor", "major"):
                rng = np.random.default_rng(seed)
                prm = sample_params("deconstruction", sev, p, rng)
                assert prm["mode"] == "burst_seam"
                assert (prm["opening_mm"] >= 44.0) == (sev == "major")
                assert prm["opening_mm"] <= max(44.0, BURST_OPENING_PER_WIDTH * width) + 1e-9
                n += 1
                try:
                    q, rec = apply(p, "deconstruction", prm, rng)
                except NotApplicable:
                    continue
                ok += 1
                assert rec.severity == sev
    assert n >= 20 and ok >= 0.85 * n
