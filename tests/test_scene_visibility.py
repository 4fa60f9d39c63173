"""Damage where it is seen, per-camera visibility records, close-up framing and
the light/exposure draws of domain randomization."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from simulator.config.randomization import Randomization, parse, preset
from simulator.generate.capture import visible_pixels
from simulator.scene.damage import seen_faces
from simulator.scene.draws import closeup_pose, sample
from simulator.scene.placement import Target
from simulator.scene.scene import Draws, FillDraw

ROOT = Path(__file__).resolve().parents[1]


def _box_mesh(extents=(0.2, 0.1, 0.05)):
    return trimesh.creation.box(extents=extents)


def test_seen_faces_excludes_the_resting_face_and_faces_turned_from_every_camera():
    m = _box_mesh()
    T = np.eye(4)
    T[2, 3] = 0.025  # resting on the tray, bottom at z = 0
    n = np.asarray(m.face_normals)
    above = seen_faces(T, None)(m)
    assert not above[n[:, 2] < -0.99].any()  # the face it lies on
    assert above[n[:, 2] > 0.99].all() and above[np.abs(n[:, 2]) < 1e-6].all()
    # one camera far out on +x and low: sees the +x wall and the top, never -x
    one = seen_faces(T, np.array([[2.0, 0.0, 0.3]]))(m)
    assert one[n[:, 0] > 0.99].all() and one[n[:, 2] > 0.99].all()
    assert not one[n[:, 0] < -0.99].any() and not one[n[:, 2] < -0.99].any()


def test_seen_faces_follows_the_pose():
    m = _box_mesh()
    T = np.eye(4)
    T[:3, :3] = trimesh.transformations.rotation_matrix(np.pi, [1, 0, 0])[:3, :3]  # upside down
    T[2, 3] = 0.025
    n = np.asarray(m.face_normals)
    s = seen_faces(T, None)(m)
    assert not s[n[:, 2] > 0.99].any()  # item top now lies on the tray
    assert s[n[:, 2] < -0.99].all()


def test_closeup_pose_centres_the_target_and_fills_the_requested_field():
    from simulator.config.rig import load_rig

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    cam = rig.cameras[0]
    tgt = Target(center=np.array([0.05, -0.02, 0.06]), radius=0.12)
    d = np.array([0.3, -0.5, 0.8])
    d /= np.linalg.norm(d)
    for fill in (0.5, 0.9):
        T = closeup_pose(cam, tgt, d, fill)
        p = np.linalg.inv(T) @ np.r_[tgt.center, 1.0]  # target in camera (OpenCV) axes
        u = cam.K[0, 0] * p[0] / p[2] + cam.K[0, 2]
        v = cam.K[1, 1] * p[1] / p[2] + cam.K[1, 2]
        assert abs(u - cam.K[0, 2]) < 1e-6 and abs(v - cam.K[1, 2]) < 1e-6
        w, h = cam.resolution
        half = min(np.arctan2(w / 2, cam.K[0, 0]), np.arctan2(h / 2, cam.K[1, 1]))
        ang = np.arcsin(tgt.radius / np.linalg.norm(p[:3]))  # angular radius of the sphere
        assert ang == pytest.approx(half * fill, rel=1e-9)
        assert np.allclose(_unit(T[:3, 3] - tgt.center), d)


def _unit(v):
    return v / np.linalg.norm(v)


def test_closeup_first_camera_looks_along_the_damage_normal():
    from simulator.config.rig import load_rig

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    r = preset("closeup")
    normal = np.array([1.0, 0.0, 0.3]) / np.linalg.norm([1.0, 0.0, 0.3])
    tgt = Target(center=np.array([0.0, 0.0, 0.05]), radius=0.1, damage_normals=normal[None])
    for seed in range(20):
        draws = sample(r, rig, np.random.default_rng(seed), [tgt])
        T = draws.cameras[rig.cameras[0].name].T_world_from_cam
        view = _unit(T[:3, 3] - tgt.center)
        # within the cone, allowing for the elevation clamp and calibration jitter
        assert np.degrees(np.arccos(np.clip(view @ normal, -1, 1))) <= r.closeup_damage_cone_deg + 25


def test_new_draws_leave_older_presets_unchanged():
    from simulator.config.rig import load_rig

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    for name in ("booth", "wild"):
        d = sample(preset(name), rig, np.random.default_rng(3))
        assert all(getattr(d, k) is None for k in ("fill", "exposure", "white_balance", "tray_color_delta"))
        assert not {"fill", "exposure", "white_balance", "tray_color_delta"} & set(d.to_json())
    d = sample(preset("closeup"), rig, np.random.default_rng(3), [Target(np.zeros(3), 0.1)])
    assert {"fill", "exposure", "white_balance", "tray_color_delta"} <= set(d.to_json())
    assert len(d.fill.directions) == preset("closeup").fill_lights
    assert max(d.white_balance) == pytest.approx(1.0)


def test_background_saturation_caps_the_drawn_background_and_keeps_the_draw_stream():
    from simulator.config.rig import load_rig

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    free = Randomization(preset="wild", background_jitter=0.6)
    capped = Randomization(preset="wild", background_jitter=0.6, background_saturation=0.1)
    sats = []
    for seed in range(40):
        a, b = sample(free, rig, np.random.default_rng(seed)), sample(capped, rig, np.random.default_rng(seed))
        ca, cb = np.array(a.background_color), np.array(b.background_color)
        s_a, s_b = (np.ptp(ca) / ca.max()), (np.ptp(cb) / cb.max())
        assert s_b <= 0.1 + 1e-9 and s_b <= s_a + 1e-9
        if s_a <= 0.1:
            assert np.allclose(ca, cb)  # already dull: untouched
        else:  # pulled toward its own grey: same mean, same hue order
            assert cb.mean() == pytest.approx(ca.mean(), abs=1e-6)
            assert list(np.argsort(ca)) == list(np.argsort(cb))
        sats.append(s_a)
        # the cap is arithmetic on the drawn colour, no extra draws: every other draw is identical
        ja, jb = a.to_json(), b.to_json()
        ja.pop("background_color"), jb.pop("background_color")
        assert json.dumps(ja, sort_keys=True) == json.dumps(jb, sort_keys=True)
        assert all(np.array_equal(a.cameras[k].T_world_from_cam, b.cameras[k].T_world_from_cam) for k in a.cameras)
    assert max(sats) > 0.3  # the free jitter does draw saturated colours, so the cap was exercised


@pytest.mark.parametrize("key, value", [("closeup_fill", [0.9, 0.5]), ("closeup_fill", [0.0, 0.5]),
                                        ("exposure", [0.0, 1.0]), ("viewpoints", "orbit"), ("fill_lights", 0),
                                        ("closeup_elevation_deg", [1, 40]), ("background_saturation", 1.5)])
def test_bad_closeup_settings_name_the_key(key, value):
    from simulator.core.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        parse("cat.yaml", {"preset": "closeup", key: value})


def test_exposure_brightens_the_render(gl):
    from simulator.config.materials import load_materials
    from simulator.config.rig import load_rig
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.scene import SceneItem
    from tests.conftest import box_product

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    p = box_product()
    T = np.eye(4)
    T[2, 3] = 0.05
    means = {}
    with BoothRenderer(rig, load_materials()) as r:
        for g in (1.0, 2.0):
            r.configure(Draws(exposure=g))
            fr = r.render([SceneItem(p, T, 1, 0, ())])
            means[g] = np.mean([f.rgb.astype(float).mean() for f in fr.values()])
        r.configure(Draws(fill=FillDraw(intensity=3.0, directions=[[0, 0, 1.0], [0.5, 0.5, 0.7]], color=[1, 1, 1])))
        lit = np.mean([f.rgb.astype(float).mean() for f in r.render([SceneItem(p, T, 1, 0, ())]).values()])
        r.configure(None)
        base = np.mean([f.rgb.astype(float).mean() for f in r.render([SceneItem(p, T, 1, 0, ())]).values()])
    assert means[2.0] > means[1.0] + 10
    assert lit > base + 5
    assert base == pytest.approx(means[1.0], abs=0.5)  # configure(None) restores the rig


def test_visible_pixels_counts_every_label():
    class F:
        def __init__(self, d, i):
            self.damage_instance, self.instance = d, i

    d = np.zeros((4, 5), np.uint16)
    d[0, :3] = 2
    d[3, 4] = 1
    i = np.ones((4, 5), np.uint16)
    i[2] = 0
    dmg, inst = visible_pixels({"a": F(d, i), "b": F(np.zeros_like(d), i)})
    assert dmg == {2: {"a": 3}, 1: {"a": 1}}
    assert inst == {1: {"a": 15, "b": 15}}


@pytest.fixture(scope="module")
def seen_run(tmp_path_factory, gl):
    out = tmp_path_factory.mktemp("seen") / "d"
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", "4", "--seed", "5", "--out", str(out),
                        "--rig", str(ROOT / "assets" / "rigs" / "harness_rgb.yaml"), "--damage-rate", "1",
                        "--no-pairs", "--reference-poses", "0", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def test_damage_records_say_which_cameras_see_them(seen_run):
    n_damages = 0
    for cap in sorted((seen_run / "captures").iterdir()):
        meta = json.loads((cap / "capture.json").read_text())
        for d in meta["damages"]:
            n_damages += 1
            for cam in meta["cameras"]:
                img = np.asarray(Image.open(cap / cam / "damage_instance.png"))
                assert d["visible_px"].get(cam, 0) == int((img == d["damage_instance_id"]).sum())
            assert d["seen_by"] == sorted(c for c, v in d["visible_px"].items() if v > 0)
        for it in meta["items"]:
            for cam in meta["cameras"]:
                img = np.asarray(Image.open(cap / cam / "instance.png"))
                assert it["visible_px"].get(cam, 0) == int((img == it["instance_id"]).sum())
    assert n_damages >= 4


def _scenes(where: str, n: int):
    from simulator.config.catalog import load_catalog
    from simulator.config.rig import load_rig
    from simulator.generate.capture import CaptureMaker
    from simulator.generate.spec import GenerateSpec

    rig_path = ROOT / "assets" / "rigs" / "harness_rgb.yaml"
    spec = GenerateSpec(n=n, seed=11, rig=str(rig_path), damage={"rate": 1.0, "where": where, "pairs": False,
                                                                  "reference_poses": 0})
    rig, cat = load_rig(rig_path), load_catalog(spec.catalog)
    cams = np.array([c.T_world_from_cam[:3, 3] for c in rig.cameras])
    with CaptureMaker(spec, rig, cat) as maker:
        for i in range(n):
            sc = maker.scene(i)
            for prod, pl in zip(sc.products, sc.placements):
                yield prod, pl, seen_faces(pl.T_world_from_item, cams)


def _damages_seen(prod, seen):
    """(damage id, seen) per damage: a face in ``seen(mesh)`` or on a satellite."""
    did = np.asarray(prod.mesh.face_attributes["damage_id"])
    mask = seen(prod.mesh)
    for j in range(1, len(prod.damages) + 1):
        on_sat = any((np.asarray(s.mesh.face_attributes["damage_id"]) == j).any() for s in prod.satellites)
        yield j, bool(on_sat or ((did == j) & mask).any())


def test_where_seen_puts_every_damage_on_a_face_a_camera_sees(gl):
    n = 0
    for prod, pl, seen in _scenes("seen", 10):
        for j, ok in _damages_seen(prod, seen):
            assert ok, (prod.sku, prod.damages[j - 1].type)
            n += 1
        z = np.asarray(prod.mesh.vertices) @ pl.T_world_from_item[2, :3] + pl.T_world_from_item[2, 3]
        assert z.min() > -1e-3  # the damaged item still rests on (not in) the tray
    assert n >= 10


def test_where_anywhere_can_damage_the_resting_face(gl):
    """The control: with ``anywhere`` some damage lies only where no camera sees it
    (so the test above can fail)."""
    unseen = 0
    for prod, pl, seen in _scenes("anywhere", 10):
        unseen += sum(not ok for _j, ok in _damages_seen(prod, seen))
    assert unseen >= 1
