"""Tray floor surfaces (``randomization.tray_texture``): tileable, deterministic
textures; the draw leaves every older draw alone; rendering one changes the
colour of the tray and nothing else (depth and every label stay identical)."""
from pathlib import Path

import numpy as np
import pytest

from simulator.config.randomization import Randomization, parse, preset
from simulator.scene import backgrounds
from simulator.scene.draws import sample
from simulator.scene.placement import Target
from simulator.scene.scene import Draws

ROOT = Path(__file__).resolve().parents[1]


def _desc(kind, seed=7):
    return {"kind": kind, "seed": seed, "tile_mm": backgrounds.KINDS[kind][0],
            "color": [float(c) for c in np.mean(backgrounds._COLORS[kind], axis=0)]}


@pytest.mark.parametrize("kind", sorted(backgrounds.KINDS))
def test_texture_is_deterministic_textured_and_tiles_without_a_seam(kind):
    a = backgrounds.texture(_desc(kind))
    assert a.shape == (backgrounds.SIZE, backgrounds.SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, backgrounds.texture(_desc(kind)))
    assert not np.array_equal(a, backgrounds.texture(_desc(kind, seed=8)))
    v = a.astype(float).mean(2)
    assert v.std() > 0.5  # a surface, not a flat colour
    # the wrap-around step (last row/column to the first) is no larger than a typical
    # step inside the image: the repeat shows no seam
    for ax in (0, 1):
        inner = np.abs(np.diff(v, axis=ax)).mean()
        wrap = np.abs(np.take(v, 0, axis=ax) - np.take(v, -1, axis=ax)).mean()
        assert wrap <= 2.0 * inner + 0.5, (kind, ax, wrap, inner)
    # the drawn base colour sets the mean colour (the pattern modulates, it does not repaint)
    mean = a.reshape(-1, 3).mean(0) / 255.0
    assert np.abs(mean - np.asarray(_desc(kind)["color"])).max() < 0.2


def test_kinds_look_different_and_an_unknown_kind_is_named():
    means = {k: backgrounds.texture(_desc(k)).reshape(-1, 3).mean(0) for k in backgrounds.KINDS}
    ks = sorted(means)
    assert min(np.abs(means[a] - means[b]).max() for i, a in enumerate(ks) for b in ks[i + 1:]) > 3
    with pytest.raises(ValueError, match="'marble'"):
        backgrounds.texture({"kind": "marble", "seed": 1, "tile_mm": 100.0, "color": [0.5] * 3})


def test_draw_is_deterministic_and_covers_every_kind():
    d = [backgrounds.draw(np.random.default_rng(s)) for s in range(300)]
    assert d[:5] == [backgrounds.draw(np.random.default_rng(s)) for s in range(5)]
    assert {x["kind"] for x in d} == set(backgrounds.KINDS)
    for x in d:
        lo, hi = backgrounds.KINDS[x["kind"]]
        assert lo <= x["tile_mm"] <= hi
        assert all(0.0 < c < 1.0 for c in x["color"])


def test_tray_texture_draw_is_last_and_at_its_rate():
    from simulator.config.rig import load_rig

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    off, on = preset("closeup"), Randomization(**{**vars(preset("closeup")), "tray_texture": 1.0})
    off = Randomization(**{**vars(off), "tray_texture": 0.0})
    n_on = 0
    for seed in range(60):
        a = sample(off, rig, np.random.default_rng(seed), [Target(np.zeros(3), 0.1)])
        b = sample(on, rig, np.random.default_rng(seed), [Target(np.zeros(3), 0.1)])
        assert a.tray_texture is None and "tray_texture" not in a.to_json()
        ja, jb = a.to_json(), b.to_json()
        n_on += jb.pop("tray_texture", None) is not None
        assert ja == jb  # every other draw is untouched: the texture is drawn after them
    assert n_on == 60
    half = Randomization(**{**vars(on), "tray_texture": 0.5})
    k = sum(sample(half, rig, np.random.default_rng(s), [Target(np.zeros(3), 0.1)]).tray_texture is not None
            for s in range(200))
    assert 70 <= k <= 130
    for name in ("booth", "wild"):
        assert sample(preset(name), rig, np.random.default_rng(3)).tray_texture is None


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_bad_tray_texture_names_the_key(value):
    from simulator.core.errors import ConfigError

    with pytest.raises(ConfigError, match="tray_texture"):
        parse("cat.yaml", {"preset": "closeup", "tray_texture": value})


def test_a_textured_tray_changes_its_colour_and_nothing_else(gl):
    from simulator.config.materials import load_materials
    from simulator.config.rig import load_rig
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.scene import SceneItem
    from tests.conftest import box_product

    rig = load_rig(ROOT / "assets" / "rigs" / "harness_rgb.yaml")
    p = box_product(damaged_faces=(0, 1))
    T = np.eye(4)
    T[2, 3] = 0.05
    item = [SceneItem(p, T, 1, 0, ())]
    desc = backgrounds.draw(np.random.default_rng(5))
    with BoothRenderer(rig, load_materials()) as r:
        r.configure(Draws())
        flat = r.render(item)
        r.configure(Draws(tray_texture=desc))
        tex = r.render(item)
        r.configure(Draws())
        back = r.render(item)
    for cam in flat:
        f, t, b = flat[cam], tex[cam], back[cam]
        for k in ("depth_m", "instance", "part", "damage_category", "damage_instance"):
            assert np.array_equal(getattr(f, k), getattr(t, k)), (cam, k)
        assert np.array_equal(f.rgb, b.rgb)  # the flat tray comes back exactly
        tray = (f.instance == 0) & (f.depth_m > 0)
        if not tray.any() or f.rgb is None:
            continue
        assert np.abs(f.rgb[tray].astype(int) - t.rgb[tray].astype(int)).mean() > 2
        assert t.rgb[tray].astype(float).std(0).max() > f.rgb[tray].astype(float).std(0).max()
