"""End-to-end: generate through the real CLI, then check determinism, --only,
the COCO files (pycocotools), the dataset card, and physics on the tray."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

LABELS = ("depth", "instance", "part", "damage_category", "damage_instance")  # byte-identical on rerun


def _generate(out: Path, rig: Path, *extra: str, n: int = 3, seed: int = 7) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", str(n), "--seed", str(seed),
                        "--rig", str(rig), "--out", str(out), "--quiet", *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory, gl):
    rig = Path(__file__).parent / "data" / "rig_small.yaml"
    base = tmp_path_factory.mktemp("gen")
    a, b, c = base / "a", base / "b", base / "c"
    _generate(a, rig, "--items", "2")
    _generate(b, rig, "--items", "2")
    _generate(c, rig, "--items", "2", "--only", "1")
    return a, b, c


def _same_capture(x: Path, y: Path):
    mx, my = json.loads((x / "capture.json").read_text()), json.loads((y / "capture.json").read_text())
    assert mx == my
    for cam in mx["cameras"]:
        for layer in LABELS:
            assert (x / cam / f"{layer}.png").read_bytes() == (y / cam / f"{layer}.png").read_bytes(), (cam, layer)
        ra = np.asarray(Image.open(x / cam / "rgb.png"), dtype=np.int16)
        rb = np.asarray(Image.open(y / cam / "rgb.png"), dtype=np.int16)
        assert np.abs(ra - rb).max() <= 1, cam


def test_rerun_is_identical(runs):
    a, b, _ = runs
    caps = sorted(p.name for p in (a / "captures").iterdir())
    assert caps == ["000000", "000001", "000002"]
    for cid in caps:
        _same_capture(a / "captures" / cid, b / "captures" / cid)
    for f in (a / "coco").iterdir():
        assert f.read_bytes() == (b / "coco" / f.name).read_bytes()


def test_only_regenerates_one_capture_identically(runs):
    a, _, c = runs
    assert sorted(p.name for p in (c / "captures").iterdir()) == ["000001"]
    _same_capture(a / "captures" / "000001", c / "captures" / "000001")


def test_sensor_draws_are_recorded(runs):
    a, _, _ = runs
    meta = json.loads((a / "captures/000000/capture.json").read_text())
    assert isinstance(meta["sensor_seed"], int)
    top, depth = meta["cameras"]["top"], meta["cameras"]["depth"]
    assert top["sensor_draws"]["rgb"]["enabled"] and top["sensor_draws"]["rgb"]["exposure_gain"] > 0
    assert top["distortion"][0] == -0.1
    assert depth["sensor_draws"]["depth"]["model"] == "active_stereo"
    assert "depth_gt" in depth["files"]  # the noise-free depth is kept beside the modelled one
    noisy = np.asarray(Image.open(a / "captures/000000" / depth["files"]["depth"]), dtype=float)
    clean = np.asarray(Image.open(a / "captures/000000" / depth["files"]["depth_gt"]), dtype=float)
    both = (noisy > 0) & (clean > 0)
    assert both.sum() >= 0.8 * (clean > 0).sum()  # occlusion bands and range drop a few returns, not most
    assert 0 < np.abs(noisy - clean)[both].mean() < 10  # mm: noisy, but by millimetres


def test_captures_differ_from_each_other(runs):
    a, _, _ = runs
    m0 = json.loads((a / "captures/000000/capture.json").read_text())
    m1 = json.loads((a / "captures/000001/capture.json").read_text())
    assert m0["items"][0]["T_world_from_item"] != m1["items"][0]["T_world_from_item"]


def test_coco_loads_with_pycocotools_and_matches_label_images(runs):
    from pycocotools.coco import COCO

    a, _, _ = runs
    card = json.loads((a / "dataset.json").read_text())
    for cam, rel in card["files"]["coco"].items():
        coco = COCO(str(a / rel))
        assert len(coco.getImgIds()) == 3
        n_items = 0
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = coco.loadImgs(ann["image_id"])[0]
            cap = a / "captures" / img["capture"]
            m = coco.annToMask(ann).astype(bool)
            x, y, w, h = ann["bbox"]
            assert w >= 1 and h >= 1
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            assert ann["area"] == m.sum()
            if ann["attributes"]["type"] == "item":
                n_items += 1
                inst = np.asarray(Image.open(cap / cam / "instance.png"))
                assert np.array_equal(m, inst == ann["attributes"]["instance_id"])
            else:
                dmg = np.asarray(Image.open(cap / cam / "damage_instance.png"))
                assert np.array_equal(m, dmg == ann["attributes"]["damage_instance_id"])
        assert n_items >= 3  # every capture shows at least one item in every camera


def test_dataset_card_is_complete(runs):
    a, _, _ = runs
    card = json.loads((a / "dataset.json").read_text())
    assert card["seed"] == 7 and card["spec"]["n"] == 3 and card["spec"]["items_per_tray"] == 2
    assert card["counts"]["captures"] == 3 and card["counts"]["items"] == 6
    assert card["counts"]["frames"] == 3 * len(card["rig"]["cameras"])
    assert sum(card["counts"]["items_by_kind"].values()) == 6
    assert card["code_version"]["damagesim"]
    assert set(card["label_map"]) >= {"instance", "part", "damage_category", "damage_instance", "depth"}
    assert (a / card["files"]["card_markdown"]).is_file()
    for rel in card["files"]["coco"].values():
        assert (a / rel).is_file()
    for cap in card["files"]["captures"]:
        for f in card["files"]["capture_files"]:
            assert (a / cap / f).is_file(), f"{cap}/{f}"
    # no temporary files left behind
    assert not [p for p in a.rglob("*") if p.name.startswith(".")]


def test_items_rest_on_the_tray(runs):

    from simulator.config.catalog import load_catalog

    a, _, _ = runs
    cat = load_catalog()
    for capf in sorted((a / "captures").glob("*/capture.json")):
        meta = json.loads(capf.read_text())
        for it in meta["items"]:
            ph = it["physics"]
            assert ph["settled"] and ph["lin_speed_m_s"] < 5e-3 and ph["ang_speed_rad_s"] < 0.05
            assert ph["min_z_m"] > -2e-3  # the body as placed (damaged or not) does not sink into the tray
            m = cat.build(it["sku"]).mesh.copy()
            m.apply_transform(np.array(it["T_world_from_item"]))
            if not it["damaged"]:
                # the pristine mesh is the body only for an intact item: a damaged one rests
                # at its own lowest point (an opened box has lost the dome of the flaps it lies on)
                assert m.vertices[:, 2].min() > -2e-3
            sx, sy = 0.3, 0.2
            c = m.vertices.mean(0)
            assert abs(c[0]) < sx and abs(c[1]) < sy
        lows = [np.array(it["physics"]["min_z_m"]) for it in meta["items"]]
        assert min(lows) < 2e-3  # at least one item lies on the floor itself


_FORCED_SENSORS = """
import sys, threading
from pathlib import Path
import simulator.generate.capture as cp
import simulator.render.renderer as rd
from simulator.generate.run import generate
from simulator.generate.spec import GenerateSpec

where, rig, out = sys.argv[1:4]
rd.SOFTWARE_GL = ("",) if where == "main" else ()  # "" is in every renderer name: software; () in none
apply, threads = cp.apply_to_frames, []

def recorded(*a, **k):
    threads.append(threading.current_thread() is threading.main_thread())
    return apply(*a, **k)

cp.apply_to_frames = recorded
generate(GenerateSpec(n=2, seed=7, rig=rig, out=out, items_per_tray=2))
assert threads and all(threads) == (where == "main") and any(threads) == (where == "main"), (where, threads)
"""


def test_sensor_models_on_the_writer_thread_give_the_same_captures(tmp_path, gl):
    """On a GPU the sensor models run in the writer's job, beside the next render
    (worker._sensors); on a software rasteriser right after the render. Forced
    either way (in a child process: a GL context made and deleted here would
    end the EGL display of the session's renderers), the captures are the same
    bytes, and the sensor models ran on the thread meant."""
    rig = Path(__file__).parent / "data" / "rig_small.yaml"
    outs = {}
    for where in ("main", "writer"):
        outs[where] = tmp_path / where
        r = subprocess.run([sys.executable, "-c", _FORCED_SENSORS, where, str(rig), str(outs[where])],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    for cid in ("000000", "000001"):
        a, b = outs["main"] / "captures" / cid, outs["writer"] / "captures" / cid
        _same_capture(a, b)
        assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
        for cam in json.loads((a / "capture.json").read_text())["cameras"]:
            assert (a / cam / "rgb.png").read_bytes() == (b / cam / "rgb.png").read_bytes(), cam
