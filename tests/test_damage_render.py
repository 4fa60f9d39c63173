"""Damage as rendered: every op's category shows up in the damage-category image
of each camera that sees the damaged faces, damage pixels are item pixels, and a
pristine counterfactual differs from the damaged render only where damage is."""
import zlib

import numpy as np
import pytest
from scipy import ndimage

from damage_ops.base import REGISTRY, apply
from damage_ops.sampling import applicable_ops, sample_params
from damage_ops.taxonomy import CATEGORY_IDS
from simulator.core.conventions import project

KIND_FOR = {"crush": "carton", "puncture": "carton", "tear": "mailer", "deconstruction": "carton",
            "spill": "bottle", "missing_component": "blister", "superficial": "pouch"}


@pytest.fixture(scope="module")
def world(gl, small_rig_path):
    from simulator.config.catalog import load_catalog
    from simulator.config.rig import load_rig
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.physics import PhysicsWorld

    rig = load_rig(small_rig_path)
    cat = load_catalog()
    with PhysicsWorld() as w, BoothRenderer(rig, cat.materials) as r:
        yield rig, cat, w, r


def _damaged_scene(world, op, severity="major", seed=0):
    from simulator.scene.scene import SceneItem
    from simulator.scene.placement import footprint_xy, place_beside

    rig, cat, w, r = world
    kind = KIND_FOR[op]
    # an item without see-through parts over the damage: a crushed wall under clear
    # tape (alpha 0.3) shades differently a few pixels beyond the labelled faces,
    # where the refined translucent tape blends in another order than the pristine
    # tape (a known limit of the labels under see-through layers, see the README)
    sku = next(s for s in cat.skus if s.kind == kind and "tape_clear" not in
               {pt.material for pt in cat.build(s).parts})
    base = cat.build(sku)
    rng = np.random.default_rng([seed, zlib.crc32(op.encode())])
    T = w.settle([base], rig.tray, rng, cat.materials)[0].T_world_from_item
    T = T.copy()
    T[:2, 3] -= footprint_xy(base.mesh, T).mean(0)
    assert op in applicable_ops(base), f"{op} should apply to {kind}"
    params = sample_params(op, severity, base, rng)
    if "center" in {f.name for f in __import__("dataclasses").fields(REGISTRY[op].params_cls)}:
        # put the damage on top, where the booth cameras look (a random spot may be underneath)
        n = base.mesh.face_normals @ T[:3, :3].T
        c = base.mesh.triangles_center @ T[:3, :3].T + T[:3, 3]
        top = np.flatnonzero((n[:, 2] > 0.7) & (c[:, 2] > c[:, 2].max() - 0.01))
        params["center"] = int(top[np.argmin(np.linalg.norm(c[top, :2] - c[:, :2].mean(0), axis=1))])
    prod, rec = apply(base, op, params, rng)
    occ = footprint_xy(prod.mesh, T)
    poses = []
    for sat in prod.satellites:
        Ts = place_beside(occ, np.asarray(sat.mesh.vertices)[:, :2], sat.gap_m, rig.tray, rng, [occ])
        assert Ts is not None
        poses.append(Ts)
    return base, prod, rec, T, SceneItem(prod, T, 1, 0, tuple(poses)), SceneItem(base, T, 1, 0)


def _visible_cameras(rig, frames, prod, T, item):
    """Cameras in which some damaged face centroid is unoccluded (rendered depth at
    its pixel equals its own depth within 2 mm)."""
    out = []
    pieces = item.pieces()
    for cam in rig.cameras:
        f = frames[cam.name]
        seen = False
        for mesh, Tm in pieces:
            sel = mesh.face_attributes["damage_id"] > 0
            if not sel.any():
                continue
            c = mesh.triangles_center[sel] @ Tm[:3, :3].T + Tm[:3, 3]
            uv, z = project(cam.K, cam.T_world_from_cam, c)
            u, v = np.round(uv).astype(int).T
            ok = (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height) & (z > 0)
            d = f.depth_m[v[ok], u[ok]]
            seen |= bool((np.abs(d - z[ok]) < 2e-3).sum() >= 3)
        if seen:
            out.append(cam.name)
    return out


@pytest.mark.parametrize("op", sorted(KIND_FOR))
def test_category_appears_where_the_damage_is_seen(world, op):
    if op not in REGISTRY:
        pytest.skip(f"op {op} not registered")
    rig, cat, w, r = world
    base, prod, rec, T, item, _ = _damaged_scene(world, op)
    frames = r.render([item], want_rgb=False)
    cams = _visible_cameras(rig, frames, prod, T, item)
    assert cams, f"{op}: no camera sees the damage"
    cid = CATEGORY_IDS[rec.category]
    for name in cams:
        f = frames[name]
        assert (f.damage_category == cid).any(), f"{op}: {rec.category} missing in {name}"
    for f in frames.values():
        assert not ((f.damage_instance > 0) & (f.instance == 0)).any()


@pytest.mark.parametrize("op", sorted(KIND_FOR))
def test_counterfactual_differs_only_where_damage_is(world, op):
    if op not in REGISTRY:
        pytest.skip(f"op {op} not registered")
    rig, cat, w, r = world
    base, prod, rec, T, item, pristine = _damaged_scene(world, op, seed=1)
    shadows = r._spot_shadows
    r._spot_shadows = False  # the test excludes cast shadows by not casting any
    try:
        fd = r.render([item])
        fp = r.render([pristine])
    finally:
        r._spot_shadows = shadows
    for name, a in fd.items():
        b = fp[name]
        # where the surface moved at all (below a label threshold too) counts as changed
        changed = (a.damage_instance > 0) | (b.instance != a.instance) | (np.abs(a.depth_m - b.depth_m) > 2e-4)
        allowed = ndimage.binary_dilation(changed, iterations=3)
        diff = np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max(-1)
        outside = diff[~allowed]
        # a few grey levels at most; a handful of isolated pixels may differ more
        # (thin parts riding on a dent, like tape, whose edges re-tessellate)
        assert np.percentile(outside, 99.9) <= 3, f"{op}/{name}: 99.9th pct {np.percentile(outside, 99.9)} levels"
        assert np.sum(outside > 3) <= 5e-4 * diff.size, f"{op}/{name}: {np.sum(outside > 3)} px differ by > 3"
