import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.config.rig import load_rig, tray_visibility
from simulator.core.errors import ConfigError
from simulator.core.paths import default_rig

BASE = yaml.safe_load(default_rig().read_text())


def test_default_rig_loads_and_matches_the_booth():
    rig = load_rig()
    assert rig.tray.size_m == (0.6, 0.4)
    rgb = [c for c in rig.cameras if c.modality in ("rgb", "rgbd")]
    depth = [c for c in rig.cameras if c.modality in ("depth", "rgbd")]
    assert len(rgb) >= 4 and len(depth) >= 2
    assert all(c.width * c.height >= 1280 * 960 for c in rgb)
    assert any(c.resolution == (848, 480) for c in depth)
    # one overhead camera looks straight down
    assert any(np.allclose(c.T_world_from_cam[:3, 2], [0, 0, -1], atol=1e-6) for c in rgb)
    for c in rig.cameras:
        R = c.T_world_from_cam[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
        assert tray_visibility(c, rig.tray) > 0.9
    assert any(l.type in ("area", "spot") for l in rig.lights)


def _write(tmp_path: Path, d) -> Path:
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _bad(mut):
    d = copy.deepcopy(BASE)
    mut(d)
    return d


BAD = {
    "unknown_root_key": (lambda d: d.update(colour="red"), "colour", "red"),
    "unknown_camera_key": (lambda d: d["cameras"][0].update(focal=12), "focal", "12"),
    "negative_fx": (lambda d: d["cameras"][1]["intrinsics"].update(fx=-100.0), "intrinsics.fx", "-100.0"),
    "cx_outside_image": (lambda d: d["cameras"][1]["intrinsics"].update(cx=5000.0), "intrinsics.cx", "5000.0"),
    "zero_resolution": (lambda d: d["cameras"][0].update(resolution=[0, 960]), "resolution", "[0, 960]"),
    "camera_misses_tray": (lambda d: d["cameras"][1].update(look_at_mm=[0, -3000, 650]), "cameras[1](rgb_front)", "does not see the tray"),
    "camera_looks_up": (lambda d: d["cameras"][0].update(look_at_mm=[0, 0, 3000]), "cameras[0](rgb_top)", "does not see the tray"),
    "light_inside_tray": (lambda d: d["lights"][1].update(position_mm=[100, 50, 10]), "lights[1].position_mm", "[100, 50, 10]"),
    "bad_modality": (lambda d: d["cameras"][0].update(modality="thermal"), "modality", "thermal"),
    "duplicate_camera": (lambda d: d["cameras"][1].update(name="rgb_top"), "name", "rgb_top"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rig_names_file_key_and_value(tmp_path, case):
    mut, key, value = BAD[case]
    p = _write(tmp_path, _bad(mut))
    with pytest.raises(ConfigError) as ei:
        load_rig(p)
    msg = str(ei.value)
    assert str(p) in msg and key in msg and value in msg, msg


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_rig(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("cameras: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rig(p)


@pytest.mark.parametrize("case", ["unknown_camera_key", "negative_fx", "camera_misses_tray", "light_inside_tray"])
def test_cli_rejects_bad_rig_before_writing_anything(tmp_path, case):
    mut, key, value = BAD[case]
    p = _write(tmp_path, _bad(mut))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", "1", "--rig", str(p),
                        "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert str(p) in r.stderr and key in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_more_lights_than_the_renderer_shades_is_an_error(tmp_path):
    d = copy.deepcopy(BASE)
    d["lights"].append({"name": "extra", "type": "point", "position_mm": [0, 600, 900], "intensity": 1})
    p = _write(tmp_path, d)  # the 2x2 area panel already uses 4 point lights
    with pytest.raises(ConfigError, match="at most 4 per kind"):
        load_rig(p)
