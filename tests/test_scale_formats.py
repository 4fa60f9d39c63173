"""Shards read back by a plain webdataset pipeline and by simulator's reader;
MVTec and Kaputt exports read back by their expected paths; COCO by pycocotools;
validate passes a clean dataset and catches planted corruption."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests._scale_helpers import N, base_dataset, cli, generate


@pytest.fixture(scope="module")
def base(gl):
    return base_dataset()


def test_shards_read_back_by_webdataset(base, tmp_path):
    wds = pytest.importorskip("webdataset")
    from simulator.dataset.reader import iter_dataset, png_as_array
    from simulator.dataset.shards import read_index

    cli("export", "shards", str(base), "--out", str(tmp_path / "sh"), "--shard-size", "2")
    index = read_index(tmp_path / "sh")
    assert [e["count"] for e in index["shards"]] == [2, N - 2]
    urls = [str(tmp_path / "sh" / e["file"]) for e in index["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode(png_as_array))
    assert [s["__key__"] for s in samples] == [f"{i:06d}" for i in range(N)]
    for s in samples:
        cap = base / "captures" / s["__key__"]
        meta = s["capture.json"]
        assert meta == json.loads((cap / "capture.json").read_text())
        for cam, c in meta["cameras"].items():
            for key, rel in c["files"].items():
                ref = np.asarray(Image.open(cap / rel))
                got = s[rel.replace("/", ".")]
                assert got.dtype == ref.dtype and np.array_equal(got, ref), rel
        assert ("pristine." + next(iter(meta["cameras"])) + ".rgb.png" in s) == meta["pristine_pair"]
    # a plain pipeline with webdataset's own decoder
    rgb = next(iter(wds.WebDataset(urls, shardshuffle=False).decode("rgb8")))
    assert rgb["top.rgb.png"].dtype == np.uint8 and rgb["top.rgb.png"].ndim == 3
    # simulator's reader, no webdataset
    shutil.copytree(base, tmp_path / "mixed")
    (tmp_path / "mixed" / "shards").mkdir()
    shutil.copy(tmp_path / "sh" / index["shards"][0]["file"], tmp_path / "mixed" / "shards")
    names = [c.name for c in iter_dataset(tmp_path / "mixed")]
    assert sorted(names) == [f"{i:06d}" for i in range(N)]  # shard copies win, no capture twice


def test_mvtec_export_layout(base, tmp_path):
    out = tmp_path / "mvtec"
    cli("export", "mvtec", str(base), "--out", str(out), "--test-fraction", "0.3")
    index = json.loads((out / "index.json").read_text())
    card = json.loads((base / "dataset.json").read_text())
    rgb_cams = {c["name"] for c in card["rig"]["cameras"] if c["modality"] != "depth"}
    assert index["by"] == "camera" and set(index["summary"]["groups"]) <= rgb_cams
    for e in index["images"]:
        img = out / e["image"]
        assert img.is_file()
        parts = img.relative_to(out).parts
        assert parts[0] == e["group"]
        if e["label"] == "good":
            assert parts[1:3] in (("train", "good"), ("test", "good")) and e["mask"] is None
        else:
            assert parts[1:3] == ("test", e["label"])
            mask = out / e["group"] / "ground_truth" / e["label"] / (img.stem + "_mask.png")
            assert mask == out / e["mask"] and mask.is_file()
            m = np.asarray(Image.open(mask))
            ref = np.asarray(Image.open(base / "captures" / e["capture"] / e["camera"] / "damage_category.png"))
            assert set(np.unique(m)) <= {0, 255} and np.array_equal(m > 0, ref > 0) and m.any()
        assert img.read_bytes() == (base / "captures" / e["capture"] / e["camera"] / "rgb.png").read_bytes()
    assert index["summary"]["good_train"] >= 1
    # anomalib's folder convention: every test/<defect> image has ground_truth/<defect>/<stem>_mask.png
    for grp in index["summary"]["groups"]:
        for d in (out / grp / "test").iterdir():
            for f in d.glob("*.png"):
                if d.name != "good":
                    assert (out / grp / "ground_truth" / d.name / f"{f.stem}_mask.png").is_file()
    cli("export", "mvtec", str(base), "--out", str(tmp_path / "bykind"), "--by", "kind")
    kinds = {it["kind"] for c in (base / "captures").iterdir()
             for it in json.loads((c / "capture.json").read_text())["items"]}
    assert set(json.loads((tmp_path / "bykind" / "index.json").read_text())["summary"]["groups"]) == kinds


def test_kaputt_export_read_back(base, tmp_path):
    """A generated dataset exported to the Kaputt layout reads back through
    harness.kaputt as the same views, labels and masks the harness reads from
    the dataset itself, with the SKU's references; anomalib's joins find every file."""
    pq = pytest.importorskip("pyarrow.parquet")
    from harness.data import load_synthetic
    from harness.kaputt import load_kaputt
    from tests.test_harness_kaputt import anomalib_samples

    out = tmp_path / "kaputt"
    cli("export", "kaputt", str(base), "--out", str(out), "--split-by", "capture", "--fractions", "0.5,0,0.5")
    for s in anomalib_samples(out):
        assert s["image_path"].is_file() and (s["mask_path"] is None or s["mask_path"].is_file())
    syn = load_synthetic(base, size=32)
    by_src = {s: i for i, s in enumerate(syn.sources)}
    n_views = 0
    for split in ("train", "validation", "test"):
        rows = pq.read_table(out / "datasets" / f"query-{split}.parquet").to_pylist()
        if not rows:
            continue
        q = load_kaputt(out, split, size=32)
        ref = syn.subset([by_src[f"{base.name}/{r['capture']}/{r['camera']}"] for r in rows])
        assert np.array_equal(q.images, ref.images) and np.array_equal(q.masks, ref.masks)
        assert q.labels.tolist() == ref.labels.tolist()
        for r, refs in zip(rows, q.references):
            meta = json.loads((base / "captures" / r["capture"] / "capture.json").read_text())
            assert r["item_identifier"] == meta["items"][0]["sku"] and r["defect"] == bool(meta["damages"])
            assert r["major_defect"] == (r["defect"] and any(d["severity"] == "major" for d in meta["damages"]))
            assert refs and all(f"{r['item_identifier']}_00_{r['camera']}" in p for p in refs)
        n_views += len(rows)
    hidden = json.loads((out / "damagesim-kaputt.json").read_text())["summary"]["left_out_views"]["hidden_damage"]
    assert n_views + hidden == len(syn) == N * 2  # two RGB cameras in the small rig


def test_coco_reads_back(base):
    from pycocotools.coco import COCO

    card = json.loads((base / "dataset.json").read_text())
    for rel in card["files"]["coco"].values():
        coco = COCO(str(base / rel))
        assert len(coco.getImgIds()) == N
        for ann in coco.loadAnns(coco.getAnnIds()):
            assert coco.annToMask(ann).sum() == ann["area"]


def _plant(base, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(base, d)
    return d


def test_validate_passes_clean_and_catches_planted_corruption(base, tmp_path):
    from simulator.dataset.validate import validate

    assert validate(base).problems == []
    r = cli("validate", str(base), check=False)
    assert r.returncode == 0, r.stdout

    d = _plant(base, tmp_path, "truncated")
    f = d / "captures/000000/top/rgb.png"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    assert any("000000" in p and "top/rgb.png does not decode" in p for p in validate(d).problems)
    r = cli("validate", str(d), check=False)
    assert r.returncode == 1 and "does not decode" in r.stdout

    d = _plant(base, tmp_path, "outside")
    cat = d / "captures/000001/oblique/damage_category.png"
    inst = np.asarray(Image.open(d / "captures/000001/oblique/instance.png"))
    a = np.asarray(Image.open(cat)).copy()
    y, x = np.argwhere(inst == 0)[0]
    a[y, x] = 1
    Image.fromarray(a).save(cat)
    assert any("damage pixel(s) outside the item mask" in p for p in validate(d).problems)

    d = _plant(base, tmp_path, "missing")
    (d / "captures/000002/depth/depth.png").unlink()
    assert any("000002" in p and "depth/depth.png missing" in p for p in validate(d).problems)

    d = _plant(base, tmp_path, "count")
    card = json.loads((d / "dataset.json").read_text())
    card["counts"]["items"] += 1
    (d / "dataset.json").write_text(json.dumps(card))
    assert any("counts.items" in p for p in validate(d).problems)

    d = _plant(base, tmp_path, "gone")
    shutil.rmtree(d / "captures/000002")
    probs = validate(d).problems
    assert any("counts.captures" in p for p in probs) and any("000002" in p for p in probs)

    d = _plant(base, tmp_path, "shard")
    cli("export", "shards", str(base), "--out", str(d / "shards"), "--shard-size", "2")
    for c in (d / "captures").iterdir():
        shutil.rmtree(c)
    t = d / "shards/shard-000001.tar"
    t.write_bytes(t.read_bytes()[:3000])
    assert any("shard-000001.tar" in p for p in validate(d).problems)


def test_harness_reads_generated_shards_like_folders(base, tmp_path):
    """The lift harness gives identical views (arrays equal) from the capture
    folders, from the same captures packed by ``generate --shards`` (here
    ``--resume --shards`` on a copy: it packs the finished folders, no
    rendering) and from ``export shards``; ``damagesim lift train`` reads them."""
    from harness.data import load_synthetic
    from tests._harness_helpers import assert_same_views

    gen = tmp_path / "gen" / base.name
    shutil.copytree(base, gen)
    card = json.loads((gen / "dataset.json").read_text())
    card["spec"]["out"] = str(gen)
    (gen / "dataset.json").write_text(json.dumps(card))
    generate(gen, "--resume", "--shards", "--shard-size", "2")
    assert not list((gen / "captures").iterdir())
    assert json.loads((gen / "dataset.json").read_text())["files"]["shards"]["files"] == [
        "shard-000000.tar", "shard-000001.tar"]
    exp = tmp_path / "exp" / base.name
    cli("export", "shards", str(base), "--out", str(exp), "--shard-size", "2")
    for kw in ({"size": 48, "depth": True}, {"size": 32, "cameras": ["top"], "min_damage_px": 30}):
        ref = load_synthetic(base, **kw)
        assert len(ref) == N * (2 if "cameras" not in kw else 1) - ref.meta["ambiguous_views_dropped"]
        assert_same_views(ref, load_synthetic(gen, **kw))
        assert_same_views(ref, load_synthetic(exp, **kw))
    ck = tmp_path / "ck.pt"
    r = cli("lift", "train", "--synthetic", str(gen), "--steps", "2", "--batch", "4", "--size", "32",
            "--width", "8", "--device", "cpu", "--out", str(ck), check=False)
    if "needs torch" not in r.stderr:
        assert r.returncode == 0, r.stderr[-2000:]
        assert ck.stat().st_size > 0 and f"loaded {2 * N} synthetic views" in r.stderr
