"""Sharded datasets a user can load: the report shows their captures, their
COCO files open with pycocotools and their images through
simulator.dataset.reader.open_coco_image, webdataset keeps 16-bit depth with
png_as_array; report and show write elsewhere (--out) for a read-only dataset."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._scale_helpers import N, base_dataset, cli, generate


@pytest.fixture(scope="module")
def sharded(gl, tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "ds"
    generate(out, "--shards", "--shard-size", "2")
    assert not list((out / "captures").glob("0*")), "expected every capture in a shard"
    return out


def _page_data(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page.read_text(), re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_of_a_sharded_dataset_shows_its_captures(sharded, tmp_path):
    base = base_dataset()
    r = cli("report", str(sharded), "--out", str(tmp_path / "rep"))
    page = Path(r.stdout.strip())
    data = _page_data(page)
    assert sorted(c["id"] for c in data["captures"]) == [f"{i:06d}" for i in range(N)]
    for c in data["captures"]:
        for cam, v in c["cameras"].items():
            rgb = (page.parent / v["rgb"]).resolve()
            assert rgb.read_bytes() == (base / "captures" / c["id"] / cam / "rgb.png").read_bytes()
    assert f"{N} captures" in page.read_text()


def test_sharded_coco_opens_with_pycocotools(sharded):
    from pycocotools.coco import COCO

    from simulator.dataset.reader import open_coco_image

    base = base_dataset()
    card = json.loads((sharded / "dataset.json").read_text())
    assert card["files"]["coco"]
    for cam, rel in card["files"]["coco"].items():
        coco, ref = COCO(str(sharded / rel)), COCO(str(base / rel))
        imgs = coco.loadImgs(coco.getImgIds())
        assert len(imgs) == N
        for img in imgs:
            assert img["file_name"].startswith("shards/shard-") and "#" in img["file_name"]
            want = np.asarray(Image.open(base / ref.loadImgs([img["id"]])[0]["file_name"]))
            got = open_coco_image(sharded, img)
            assert got.dtype == np.uint8 and np.array_equal(got, want)
            assert np.array_equal(open_coco_image(base, ref.loadImgs([img["id"]])[0]), want)
            a = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            b = ref.loadAnns(ref.getAnnIds(imgIds=[img["id"]]))
            assert [x["bbox"] for x in a] == [x["bbox"] for x in b]
            for x, y in zip(a, b):
                assert np.array_equal(coco.annToMask(x), ref.annToMask(y))


def test_webdataset_keeps_16_bit_depth(sharded):
    import webdataset as wds

    from simulator.dataset.reader import png_as_array

    base = base_dataset()
    urls = sorted(str(p) for p in (sharded / "shards").glob("shard-*.tar"))
    n = 0
    for s in wds.WebDataset(urls, shardshuffle=False).decode(png_as_array):
        want = np.asarray(Image.open(base / "captures" / s["__key__"] / "depth" / "depth.png"))
        assert s["depth.depth.png"].dtype == np.uint16 and np.array_equal(s["depth.depth.png"], want)
        assert want.max() > 255  # the point: 8 bits would lose it
        assert s["capture.json"]["capture_id"] == s["__key__"]
        n += 1
    assert n == N


def _read_only(path: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` with ``path`` read-only: chmod for a normal user; for root
    (who ignores modes) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        for p in [path, *path.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            return subprocess.run(cmd, capture_output=True, text=True)
        finally:
            for p in [path, *path.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
    import shlex

    script = f"mount --bind -o ro {shlex.quote(str(path))} {shlex.quote(str(path))} && exec {shlex.join(cmd)}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)


def test_report_and_show_on_a_read_only_dataset(tmp_path):
    ds = tmp_path / "ro"
    shutil.copytree(base_dataset(), ds)
    py = (sys.executable, "-m", "simulator.cli")
    r = _read_only(ds, *py, "report", str(ds))
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _read_only(ds, *py, "report", str(ds), "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    assert len(_page_data(tmp_path / "rep" / "index.html")["captures"]) == N
    cap = ds / "captures" / "000000"
    r = _read_only(ds, *py, "show", str(cap))
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _read_only(ds, *py, "show", str(cap), "--out", str(tmp_path / "sheet.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "sheet.png").size[0] > 0
    assert not (ds / "report").exists() and not (cap / "contact_sheet.png").exists()
