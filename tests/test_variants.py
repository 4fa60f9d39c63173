"""Packaging design variants (hard negatives): same item, other printed design;
deterministic from the seed; drawn at the corpus's variant_rate; recorded in the
metadata; the reference gallery keeps the canonical design; bad config named."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simulator.core.errors import ConfigError
from simulator.products import KINDS, build_product
from simulator.products.variants import artwork_panels, design_variant


def _pristine(kind, seed=0):
    return build_product(kind, f"{kind}-{seed}", {}, np.random.default_rng(seed))


def _panel_pixels(p):
    m = np.zeros(p.artwork.shape[:2], bool)
    for y0, y1, x0, x1 in artwork_panels(p):
        m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_variant_is_the_same_item_with_other_artwork(kind, seed):
    p = _pristine(kind, seed)
    v = design_variant(p, 2, 1000 + seed)
    # identical geometry, labels, parts, physics; no damage
    assert np.array_equal(v.mesh.vertices, p.mesh.vertices) and np.array_equal(v.mesh.faces, p.mesh.faces)
    assert set(v.mesh.face_attributes) == set(p.mesh.face_attributes)
    for k, a in p.mesh.face_attributes.items():
        assert np.array_equal(v.mesh.face_attributes[k], a), k
    assert (v.sku, v.kind, v.parts, v.dims_mm, v.mass_kg) == (p.sku, p.kind, p.parts, p.dims_mm, p.mass_kg)
    assert len(v.collision) == len(p.collision) and all(np.array_equal(a, b) for a, b in zip(v.collision, p.collision))
    assert v.damages == () and not v.damage_id.any() and v.satellites == ()
    # the printed design differs substantially: a fifth of the printed pixels change by > 30 levels
    assert v.artwork.shape == p.artwork.shape and v.artwork.dtype == np.uint8
    m = _panel_pixels(p)
    diff = np.abs(v.artwork.astype(int) - p.artwork.astype(int)).max(2)[m]
    assert (diff > 30).mean() > 0.2, (diff > 30).mean()
    rec = v.meta["design_variant"]
    assert rec["variant"] == 2 and rec["seed"] == 1000 + seed and rec["edits"][0]["edit"] in ("recolour", "relayout")
    # the input is untouched
    assert "design_variant" not in p.meta


def test_variant_is_deterministic_from_its_seed():
    p = _pristine("carton", 3)
    a, b, c = design_variant(p, 1, 7), design_variant(p, 1, 7), design_variant(p, 1, 8)
    assert np.array_equal(a.artwork, b.artwork) and a.meta == b.meta
    assert not np.array_equal(a.artwork, c.artwork)


def test_panels_are_recovered_from_uv():
    # carton: four walls, the bottom and two flap tops; each panel a separate rectangle
    p = _pristine("carton", 0)
    panels = artwork_panels(p)
    assert len(panels) == 7
    for i, (a, b, c, d) in enumerate(panels):
        for e, f, g, h in panels[i + 1:]:
            assert b <= e or f <= a or d <= g or h <= c, "panels overlap"
    assert len(artwork_panels(_pristine("multipack", 0))) == 1


def test_bad_variant_inputs():
    p = _pristine("pouch", 0)
    with pytest.raises(ValueError, match="variant number"):
        design_variant(p, 0, 1)
    q = p.copy()
    q.artwork = None
    with pytest.raises(ValueError, match="no artwork"):
        design_variant(q, 1, 1)


def test_catalog_variant_is_deterministic_and_per_k():
    from simulator.config.catalog import load_catalog

    cat = load_catalog()
    sku = cat.skus[0]
    a1, a2 = cat.variant(sku, 1), cat.variant(sku.sku, 2)
    cat._cache.clear()
    b1 = cat.variant(sku, 1)
    assert np.array_equal(a1.artwork, b1.artwork)
    assert not np.array_equal(a1.artwork, a2.artwork)
    assert not np.array_equal(a1.artwork, cat.build(sku).artwork)
    assert np.array_equal(a1.mesh.vertices, cat.build(sku).mesh.vertices)


def test_variant_rate_gives_the_requested_fraction():
    """The pipeline's draw over a corpus's real per-capture streams: the variant
    fraction and the spread over variant numbers match within 4 binomial sigma."""
    from simulator.config.mix import DamageMix
    from simulator.generate.capture import CaptureMaker
    from simulator.scene.streams import capture_streams

    n, rate, K = 3000, 0.3, 3
    fake = SimpleNamespace(mix=DamageMix(variant_rate=rate, variants_per_sku=K),
                           catalog=SimpleNamespace(variant=lambda sku, k: k))
    intact = SimpleNamespace(damages=(), artwork=np.zeros((8, 8, 3), np.uint8))
    got = [CaptureMaker._design_variant(fake, "sku", intact, capture_streams(11, i)["variant"]) for i in range(n)]
    chosen = np.array([g for g in got if g is not None])
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(len(chosen) / n - rate) < 4 * sd
    for k in range(1, K + 1):
        pk = 1 / K
        assert abs((chosen == k).mean() - pk) < 4 * np.sqrt(pk * (1 - pk) / len(chosen))
    # damaged items and items without artwork are never variants; rate 0 and 1 are exact
    damaged = SimpleNamespace(damages=("x",), artwork=intact.artwork)
    bare = SimpleNamespace(damages=(), artwork=None)
    one = SimpleNamespace(mix=DamageMix(variant_rate=1.0), catalog=fake.catalog)
    zero = SimpleNamespace(mix=DamageMix(variant_rate=0.0), catalog=fake.catalog)
    for i in range(200):
        assert CaptureMaker._design_variant(one, "s", damaged, capture_streams(1, i)["variant"]) is None
        assert CaptureMaker._design_variant(one, "s", bare, capture_streams(1, i)["variant"]) is None
        assert CaptureMaker._design_variant(one, "s", intact, capture_streams(1, i)["variant"]) is not None
        assert CaptureMaker._design_variant(zero, "s", intact, capture_streams(1, i)["variant"]) is None


@pytest.mark.parametrize("key,value,msg", [
    ("variant_rate", 1.5, "must be <= 1"), ("variant_rate", -0.1, "must be >= 0"), ("variant_rate", "x", "number"),
    ("variants_per_sku", 0, "1..64"), ("variants_per_sku", 2.5, "1..64"), ("variants_per_sku", True, "1..64"),
])
def test_bad_variant_config_names_file_key_value(tmp_path, key, value, msg):
    from simulator.config.catalog import load_catalog

    cat = tmp_path / "cat.yaml"
    cat.write_text(f"products:\n  - kind: pouch\ndamage:\n  {key}: {json.dumps(value)}\n")
    with pytest.raises(ConfigError) as e:
        load_catalog(cat)
    s = str(e.value)
    assert str(cat) in s and f"damage.{key}" in s and repr(value) in s and msg in s


def test_bad_variant_flag_is_rejected_before_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", "1", "--out", str(tmp_path / "o"),
                        "--variant-rate", "2", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "--variant-rate" in r.stderr and "2.0" in r.stderr
    assert not (tmp_path / "o" / "captures").exists()


def test_generated_variants_are_recorded_and_references_stay_canonical(tmp_path, gl):
    out = tmp_path / "ds"
    rig = Path(__file__).parent / "data" / "rig_small.yaml"
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", "2", "--seed", "5", "--rig", str(rig),
                        "--out", str(out), "--quiet", "--damage-rate", "0", "--mess-rate", "0", "--variant-rate", "1",
                        "--variants-per-sku", "2", "--reference-poses", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    n_items = 0
    for cap in sorted((out / "captures").iterdir()):
        meta = json.loads((cap / "capture.json").read_text())
        assert meta["hard_negative"] is True and meta["hard_negative_kinds"] == ["design_variant"]
        for it in meta["items"]:
            n_items += 1
            assert it["hard_negative"] == "design_variant" and it["design_variant"]["variant"] in (1, 2)
            assert not it["damaged"] and "design_variant" not in it["generator"]
    refs = sorted(out.glob("references/*/*/capture.json"))
    assert refs
    for ref in refs:
        for it in json.loads(ref.read_text())["items"]:
            assert it["design_variant"] is None and it["hard_negative"] != "design_variant"
    card = json.loads((out / "dataset.json").read_text())
    assert card["counts"]["hard_negative_items"] == {"design_variant": n_items}
    assert card["spec"]["damage_mix"]["variant_rate"] == 1.0
    coco = json.loads(next((out / "coco").glob("*.json")).read_text())
    items = [a for a in coco["annotations"] if a["attributes"]["type"] == "item"]
    assert items and all(a["attributes"]["hard_negative"] == "design_variant" for a in items)
    assert all(a["attributes"]["design_variant"] in (1, 2) for a in items)
    # no damage pixels anywhere
    from PIL import Image

    for cap in (out / "captures").iterdir():
        for cam in cap.iterdir():
            if (cam / "damage_category.png").is_file():
                assert not np.asarray(Image.open(cam / "damage_category.png")).any()
