"""Booth designer: coverage and detectability on constructed scenes with a known
answer, the noise models, and the rig report / preview end to end on small rigs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from simulator.render.noise_models import DEFAULT_BASELINE_M, family, sigma_z, stereo_baseline_m
from simulator.tools.designer import (
    ReportSettings,
    damage_signal,
    detect,
    resolution_px_per_mm,
    sample_surface,
    surface_visibility,
)

TRAY = "tray: {size_mm: [600, 400], rim_height_mm: 25, rim_width_mm: 12, thickness_mm: 20}\n"
LIGHTS = "lights:\n  - {name: top, type: area, position_mm: [0, 0, 1500], size_mm: [600, 400], grid: [2, 2], intensity: 1.5}\n"


def _rig(tmp_path, cams: str, name="rig_test"):
    from simulator.config.rig import load_rig

    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\n" + TRAY + LIGHTS + "cameras:\n" + cams)
    return load_rig(p)


def _box_product(extents, subdivide_m=None, dent=None, sku="box"):
    """A one-part box; ``dent`` = (depth_m, radius_m): a smooth dent pushed down
    into the top face at its centre, its faces labelled damage 1."""
    from damage_ops import DamageRecord, Part, Product, labelled_mesh

    b = trimesh.creation.box(extents=extents)
    V, F = b.vertices, b.faces
    if subdivide_m:
        V, F = trimesh.remesh.subdivide_to_size(V, F, max_edge=subdivide_m)
    V = np.array(V, float)
    damages = ()
    moved = np.zeros(len(V), bool)
    if dent is not None:
        depth, radius = dent
        top = np.isclose(V[:, 2], extents[2] / 2)
        r = np.linalg.norm(V[:, :2], axis=1)
        w = np.where(r < radius, (1 - (r / radius) ** 2) ** 3, 0.0) * top
        V[:, 2] -= depth * w
        moved = w > 1e-3
    mesh = labelled_mesh(V, F, 0)
    if dent is not None:
        faces = np.flatnonzero(moved[F].any(axis=1))
        mesh.face_attributes["damage_id"][faces] = 1
        damages = (DamageRecord("crush", "deformation", "minor", {"depth_mm": dent[0] * 1000}, len(faces),
                                {"center_m": [0, 0, extents[2] / 2], "radius_m": dent[1]}),)
    return Product(sku=sku, kind="carton", mesh=mesh, parts=(Part("body", "cardboard"),), damages=damages,
                   collision=(np.asarray(b.vertices),), mass_kg=0.5, dims_mm=tuple(x * 1000 for x in extents))


def _resting(extents):
    T = np.eye(4)
    T[2, 3] = extents[2] / 2
    return T


# -- pure geometry, no GL ---------------------------------------------------------

def test_resolution_is_f_over_z_facing_and_cos_tilted():
    from simulator.config.rig import Camera
    from simulator.core.conventions import intrinsics_matrix, look_at

    cam = Camera("c", "rgb", (640, 480), intrinsics_matrix(800, 800, 319.5, 239.5), (0,) * 5,
                 look_at(np.array([0, 0, 1.0]), np.zeros(3), up=(0, 1, 0)))
    p = np.zeros((1, 3))
    assert resolution_px_per_mm(cam, p, np.array([[0, 0, 1.0]]))[0] == pytest.approx(0.8, rel=1e-9)
    tilt = np.radians(60)
    n = np.array([[0, np.sin(tilt), np.cos(tilt)]])
    assert resolution_px_per_mm(cam, p, n)[0] == pytest.approx(0.8 * np.cos(tilt), rel=1e-6)
    assert resolution_px_per_mm(cam, np.array([[0, 0, 2.0]]), np.array([[0, 0, 1.0]]))[0] == 0.0  # behind


def test_sample_surface_is_area_uniform_and_seeded():
    box = trimesh.creation.box(extents=(0.4, 0.1, 0.1))
    p1, n1, f1 = sample_surface(box, 20000, np.random.default_rng(3))
    p2, _, _ = sample_surface(box, 20000, np.random.default_rng(3))
    assert np.array_equal(p1, p2)
    # the four long faces hold 4 * 0.04 of the 0.18 m^2 total
    long_faces = np.abs(n1[:, 0]) < 0.5
    assert long_faces.mean() == pytest.approx(0.16 / 0.18, abs=0.01)
    assert np.all(np.abs(p1) <= np.array([0.2, 0.05, 0.05]) + 1e-12)


def test_noise_models():
    assert family("realsense_d435") == "active_stereo" and family("generic") == "active_stereo"
    assert family("azure_kinect_tof") == "tof" and family("kinect_v1_structured_light") == "structured_light"
    assert stereo_baseline_m("realsense_d455") == 0.095 and stereo_baseline_m("whatever") == DEFAULT_BASELINE_M
    # active stereo: z^2 s / (f B)
    assert sigma_z(1.0, "generic", 600.0) == pytest.approx(1.0 * 0.08 / (600 * 0.05))
    assert sigma_z(2.0, "generic", 600.0) == pytest.approx(4 * sigma_z(1.0, "generic", 600.0))
    assert sigma_z(0.4, "structured_light", 1.0) == pytest.approx(0.0012)
    assert sigma_z(1.4, "structured_light", 1.0) == pytest.approx(0.0012 + 0.0019)
    assert sigma_z(0.3, "tof", 1.0) == pytest.approx(0.0005)
    assert sigma_z(1.5, "tof", 1.0) == pytest.approx(0.0015)
    assert sigma_z(np.array([0.5, 1.0]), "tof", 1.0).shape == (2,)


def test_settings_validation_names_the_option():
    from simulator.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--n"):
        ReportSettings(n=0).validate()
    with pytest.raises(ConfigError, match="--px-per-mm"):
        ReportSettings(px_per_mm=float("nan")).validate()


# -- rendered known answers --------------------------------------------------------

TOP = ("  - {name: top, modality: rgb, resolution: [200, 150], intrinsics: {fx: 500, fy: 500, cx: 99.5, cy: 74.5},\n"
       "     position_mm: [0, 0, 1100], look_at_mm: [0, 0, 0], up: [0, 1, 0]}\n")
FRONT = ("  - {name: front, modality: rgb, resolution: [200, 150], intrinsics: {fx: 300, fy: 300, cx: 99.5, cy: 74.5},\n"
         "     position_mm: [0, -700, 600], look_at_mm: [0, 0, 50]}\n")


def test_coverage_of_faces_a_camera_cannot_see(gl, tmp_path, materials):
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.scene import SceneItem

    rig = _rig(tmp_path, TOP + FRONT)
    ext = (0.2, 0.15, 0.1)
    prod = _box_product(ext)
    T = _resting(ext)
    pts, nrm, _ = sample_surface(prod.mesh, 6000, np.random.default_rng(0))
    pw, nw = pts + T[:3, 3], nrm
    with BoothRenderer(rig, materials) as r:
        frames = r.render([SceneItem(prod, T, 1)], want_rgb=False)
    faces = {"top": nw[:, 2] > 0.9, "bottom": nw[:, 2] < -0.9, "+x": nw[:, 0] > 0.9, "-y": nw[:, 1] < -0.9,
             "+y": nw[:, 1] > 0.9}
    seen, res = {}, {}
    for cam in rig.cameras:
        f = frames[cam.name]
        seen[cam.name], res[cam.name] = surface_visibility(cam, f.depth_m, f.instance, 1, pw, nw)
    top, front = seen["top"], seen["front"]
    # straight down: the top face is seen whole; sides are edge-on or facing away; the bottom lies on the tray
    assert top[faces["top"]].mean() > 0.98
    for k in ("bottom", "+x", "-y", "+y"):
        assert top[faces[k]].mean() == 0.0, k
    # from the front: top and front (-y) faces seen, the back (+y) face and the bottom never
    assert front[faces["-y"]].mean() > 0.98 and front[faces["top"]].mean() > 0.98
    assert front[faces["+y"]].mean() == 0.0 and front[faces["bottom"]].mean() == 0.0
    # the top face is fronto-parallel 1.0 m from the top camera (f = 500 px): 0.5 px/mm everywhere
    r_top = res["top"][faces["top"] & top]
    assert np.allclose(r_top, 0.5, rtol=1e-6)
    # coverage at a resolution threshold: the whole top face at 0.45 px/mm, none of it at 0.55
    assert (top & (res["top"] >= 0.45))[faces["top"]].mean() > 0.98
    assert (top & (res["top"] >= 0.55))[faces["top"]].mean() == 0.0


DEPTH_CAMS = (TOP + "  - {name: depth, modality: depth, device: active_stereo_848, resolution: [160, 120],\n"
              "     intrinsics: {fx: 300, fy: 300, cx: 79.5, cy: 59.5}, position_mm: [0, 0, 900], look_at_mm: [0, 0, 0],\n"
              "     up: [0, 1, 0], range_mm: [280, 3000]}\n")


@pytest.mark.parametrize("depth_mm, depth_detectable", [(2.0, False), (25.0, True)])
def test_dent_against_depth_noise(gl, tmp_path, materials, depth_mm, depth_detectable):
    """The top face is 0.82 m from the depth camera (f 300 px, B 50 mm): sigma_z =
    0.82^2 * 0.08 / (300 * 0.05) = 3.6 mm, so 3 sigma = 10.8 mm. A 2 mm dent is
    visible to the RGB camera but not to depth; a 25 mm dent is visible to both."""
    from simulator.render.noise_models import camera_sigma_z
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.scene import SceneItem

    rig = _rig(tmp_path, DEPTH_CAMS)
    ext = (0.25, 0.2, 0.08)
    pristine = _box_product(ext, subdivide_m=0.01)
    damaged = _box_product(ext, subdivide_m=0.01, dent=(depth_mm / 1000, 0.06))
    assert len(damaged.mesh.faces) == len(pristine.mesh.faces)
    T = _resting(ext)
    dcam = rig.camera("depth")
    assert 3 * camera_sigma_z(dcam, 0.82) == pytest.approx(0.0108, abs=2e-4)
    with BoothRenderer(rig, materials) as r:
        fd = r.render([SceneItem(damaged, T, 1)], want_rgb=False)
        fp = r.render([SceneItem(pristine, T, 1)], want_rgb=False)
    sig = {c.name: damage_signal(c, fd[c.name], fp[c.name], 1) for c in rig.cameras}
    assert sig["top"]["pixels"] > 200 and sig["top"]["depth_pixels"] == 0  # RGB cameras have no depth verdict
    assert sig["depth"]["pixels"] > 50
    # the dent's depth change: at most its depth (plus a pixel of slope), against sigma at the top face
    assert sig["depth"]["max_snr"] <= (depth_mm / 1000 + 0.003) / camera_sigma_z(dcam, 0.80)
    verdict = detect(sig, rig, min_pixels=25, min_depth_pixels=4)
    assert verdict == {"rgb": True, "depth": depth_detectable, "any": True}
    if depth_detectable:
        assert sig["depth"]["depth_pixels"] > 20
    else:
        assert sig["depth"]["depth_pixels"] == 0 and sig["depth"]["max_snr"] < 1.0
    # counting every changed pixel of the item (one damage per item) gives the same verdict here
    whole = {c.name: damage_signal(c, fd[c.name], fp[c.name], 1, instance_id=1) for c in rig.cameras}
    assert detect(whole, rig, 25, 4) == verdict
    assert whole["depth"]["depth_pixels"] >= sig["depth"]["depth_pixels"]


def test_removed_unit_counts_only_with_the_item_region(gl, tmp_path, materials):
    """A box removed from beside another (a missing unit) leaves no damage label
    where it was: its depth change shows only in the item region."""
    from damage_ops import DamageRecord, Part, Product, concatenate, labelled_mesh
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.scene import SceneItem

    rig = _rig(tmp_path, DEPTH_CAMS)

    def unit(x):
        b = trimesh.creation.box(extents=(0.08, 0.08, 0.1),
                                 transform=trimesh.transformations.translation_matrix((x, 0, 0.05)))
        return labelled_mesh(b.vertices, b.faces, 0)

    both = concatenate([unit(-0.05), unit(0.05)])
    left = unit(-0.05)
    left.face_attributes["damage_id"][:2] = 1  # a sliver of cavity label, as missing_component leaves
    parts = (Part("unit", "cardboard"),)
    pristine = Product(sku="set", kind="multipack", mesh=both, parts=parts)
    damaged = Product(sku="set", kind="multipack", mesh=left, parts=parts,
                      damages=(DamageRecord("missing_component", "missing_unit", "minor", {"units_missing": 1.0}, 2,
                                            {"center_m": [0.05, 0, 0.05]}),))
    with BoothRenderer(rig, materials) as r:
        fd = r.render([SceneItem(damaged, np.eye(4), 1)], want_rgb=False)
        fp = r.render([SceneItem(pristine, np.eye(4), 1)], want_rgb=False)
    cam = rig.camera("depth")
    own = damage_signal(cam, fd["depth"], fp["depth"], 1)
    item = damage_signal(cam, fd["depth"], fp["depth"], 1, instance_id=1)
    assert own["depth_pixels"] == 0
    assert item["depth_pixels"] > 100  # the 100 mm tall unit is gone: the tray shows 10 cm further


# -- end to end ---------------------------------------------------------------------

ONE_CAM = ("  - {name: top, modality: rgb, resolution: [240, 180], intrinsics: {fx: 272, fy: 272, cx: 119.5, cy: 89.5},\n"
           "     position_mm: [0, 0, 1100], look_at_mm: [0, 0, 0], up: [0, 1, 0]}\n")


def test_rig_report_compare_writes_json_markdown_plots(gl, tmp_path, small_rig_path):
    from simulator.cli import main

    other = tmp_path / "one_cam.yaml"
    other.write_text("name: one_cam\n" + TRAY + LIGHTS + "cameras:\n" + ONE_CAM)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["rig", "report", str(small_rig_path), "--compare", str(other), "--n", "2",
                                    "--px-per-mm", "0.2", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "rig_report.json").read_text())
    a, b = doc["rigs"]
    assert (a["rig"], b["rig"]) == ("rig_small", "one_cam")
    for r in (a, b):
        c = r["coverage"]
        assert 0 < c["rig"] <= c["seen_at_any_resolution"] <= 1
        assert c["rig"] >= max(c["per_camera"].values())
        assert all(x >= y - 1e-12 for x, y in zip(c["curve"]["rig"], c["curve"]["rig"][1:]))  # falls with X
        assert r["detectability"]["overall"]["n"] + len(r["detectability"]["skipped"]) == 2
    # paired samples: the same items; a subset of cameras never covers more
    assert [i["sku"] for i in a["coverage"]["items"]] == [i["sku"] for i in b["coverage"]["items"]]
    assert b["coverage"]["depth_cameras"] is None
    md = (out / "rig_report.md").read_text()
    assert "| | rig_small | one_cam |" in md and "coverage @ 0.2 px/mm" in md
    from PIL import Image

    for name in ("coverage.png", "detectability.png"):
        im = Image.open(out / name)
        assert im.width >= 1000  # two panels side by side


def test_rig_preview_png(gl, tmp_path, small_rig_path):
    from PIL import Image

    from simulator.tools.designer import rig_preview

    p = rig_preview(small_rig_path, tmp_path / "prev.png")
    im = np.asarray(Image.open(p).convert("RGB"))
    assert im.shape[1] > 960 and im.std() > 10


def test_cli_rejects_bad_options(tmp_path, small_rig_path):
    from simulator.cli import main

    res = CliRunner().invoke(main, ["rig", "report", str(small_rig_path), "--n", "0", "--quiet"])
    assert res.exit_code == 2 and "--n" in res.output
    res = CliRunner().invoke(main, ["rig", "report", str(small_rig_path), "--min-pixels", "-3", "--quiet"])
    assert res.exit_code == 2 and "--min-pixels" in res.output
