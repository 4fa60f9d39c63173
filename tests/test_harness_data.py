"""Harness loaders: synthetic views from damagesim-shaped folders, the three
real layouts, and clear errors (naming the file or folder) for bad datasets."""
import json

import numpy as np
import pytest
from _harness_helpers import assert_same_views, fake_real, fake_synthetic
from PIL import Image

from harness.data import DatasetError, ImageSet, load_references, load_synthetic
from harness.real import load_coco, load_mvtec, load_real


def test_synthetic_views_labels_masks(tmp_path):
    root = fake_synthetic(tmp_path / "syn", n=6)
    s = load_synthetic(root, size=32)
    assert s.images.shape == (12, 32, 32, 3) and s.masks.shape == (12, 32, 32)
    # odd captures are damaged in both views; label = visible damage pixels
    assert s.labels.tolist() == [0, 0, 1, 1] * 3
    assert all(c == ("deformation" if l else "") for c, l in zip(s.categories, s.labels))
    assert (s.masks[s.labels == 0] == 0).all() and (s.masks[s.labels == 1].sum((1, 2)) > 0).all()
    assert s.groups[0] == s.groups[1] != s.groups[2]
    d = load_synthetic(root, size=32, depth=True, cameras=["top"])
    assert d.images.shape == (6, 32, 32, 4)


def test_imageset_cache_roundtrip(tmp_path):
    s = load_synthetic(fake_synthetic(tmp_path / "syn", n=2), size=16)
    s.save(tmp_path / "c.npz")
    t = ImageSet.load(tmp_path / "c.npz")
    assert (t.images == s.images).all() and t.sources == s.sources and t.categories == s.categories


def test_references_pair_queries_by_sku(tmp_path):
    q, ref, qs, rs = load_references(fake_synthetic(tmp_path / "syn", n=4, references=2), size=16)
    assert len(q) == 8 and len(ref) == 8 and set(qs) == set(rs) == {"sku-0", "sku-1"}


def test_class_folders_with_categories_and_masks(tmp_path):
    root = fake_real(tmp_path / "real", 4, 3, categories=("dent", "tear"))
    m = root / "masks" / "damaged" / "dent"
    m.mkdir(parents=True)
    Image.fromarray(np.ones((48, 64), np.uint8) * 255).save(m / "d000.png")
    r = load_real(root, size=32)
    assert r.counts() == {"n": 7, "damaged": 4, "intact": 3}
    assert sorted(set(r.categories)) == ["", "dent", "tear"]
    assert r.has_mask.sum() == 1 and r.masks[r.has_mask].all()


def test_empty_class_names_folder(tmp_path):
    root = fake_real(tmp_path / "real", 3, 0)
    with pytest.raises(DatasetError, match=r"intact: class folder has no images"):
        load_real(root)


def test_missing_class_folder(tmp_path):
    root = fake_real(tmp_path / "real", 3, 2)
    for p in (root / "intact").iterdir():
        p.unlink()
    (root / "intact").rmdir()
    with pytest.raises(DatasetError, match=r"intact: missing class folder"):
        load_real(root)


def test_unreadable_image_names_file(tmp_path):
    root = fake_real(tmp_path / "real", 3, 3)
    (root / "intact" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"broken\.jpg: cannot read image"):
        load_real(root)


def test_mismatched_mask_names_both(tmp_path):
    root = fake_real(tmp_path / "real", 2, 2)
    m = root / "masks" / "damaged" / "dent"
    m.mkdir(parents=True)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(m / "d000.png")
    with pytest.raises(DatasetError, match=r"d000\.png: mask is 10x10 but its image .*d000\.png is 64x48"):
        load_real(root)


def test_unknown_layout_and_synthetic_passed_as_real(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="unknown layout"):
        load_real(tmp_path / "x")
    with pytest.raises(DatasetError, match="pass it with --synthetic"):
        load_real(fake_synthetic(tmp_path / "syn", n=1))


def test_coco_layout_and_errors(tmp_path):
    root = fake_real(tmp_path / "real", 2, 2)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    coco = {"images": [{"id": i, "file_name": f} for i, f in enumerate(files)],
            "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "damage/penetration"}],
            "annotations": [{"id": 9, "image_id": i, "category_id": 2} for i, f in enumerate(files)
                            if f.startswith("damaged")]}
    (root / "ann.json").write_text(json.dumps(coco))
    r = load_coco(root / "ann.json", size=16)
    assert r.labels.sum() == 2 and set(r.categories) == {"", "penetration"}
    coco["images"].append({"id": 99, "file_name": "gone.png"})
    (root / "ann.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"gone\.png: image listed in .*ann\.json does not exist"):
        load_real(root / "ann.json")


def test_mvtec_layout(tmp_path):
    src = fake_real(tmp_path / "real", 2, 3)
    root = tmp_path / "mv"
    for sub, files in (("train/good", sorted((src / "intact").glob("*.png"))[:2]),
                       ("test/good", sorted((src / "intact").glob("*.png"))[2:]),
                       ("test/dent", sorted((src / "damaged").rglob("*.png")))):
        (root / sub).mkdir(parents=True)
        for f in files:
            (root / sub / f.name).write_bytes(f.read_bytes())
    (root / "ground_truth" / "dent").mkdir(parents=True)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "ground_truth/dent/d000_mask.png")
    r = load_mvtec(root, size=16)
    assert r.counts() == {"n": 5, "damaged": 2, "intact": 3} and r.has_mask.sum() == 1
    (root / "test" / "scratch").mkdir()
    with pytest.raises(DatasetError, match=r"scratch: class folder has no images"):
        load_real(root)


def test_imports_stay_light():
    import subprocess
    import sys

    code = ("import sys, simulator.cli, harness, harness.data, harness.metrics, harness.protocol, harness.report, "
            "harness.baselines, harness.cli; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_views_with_too_little_visible_damage_are_dropped(tmp_path):
    s = load_synthetic(fake_synthetic(tmp_path / "syn", n=4), size=16, min_damage_px=10**6)
    assert s.labels.sum() == 0 and len(s) == 4 and s.meta["ambiguous_views_dropped"] == 4


# ----------------------------------------------------------------------------- shards

def _sharded_dataset(tmp_path, src):
    """``src``'s captures 0..5 packed in shards of 3 under DS/shards, capture 6
    left a folder, a card listing both (the layout ``generate --shards`` leaves
    when a shard's range is incomplete), and a corrupt stale folder copy of
    capture 2 (a run killed while packing) that the card does not list."""
    import shutil

    from simulator.dataset.shards import export_shards

    tmp = tmp_path / "pack" / "syn"
    shutil.copytree(src, tmp)
    shutil.rmtree(tmp / "captures" / "000006")
    ds = tmp_path / "c" / "syn"
    index = export_shards(tmp, ds / "shards", shard_size=3)
    shutil.copytree(src / "captures" / "000006", ds / "captures" / "000006")
    shutil.copytree(src / "captures" / "000002", ds / "captures" / "000002")
    (ds / "captures" / "000002" / "top" / "rgb.png").write_bytes(b"stale copy, must not be read")
    card = {"files": {"captures": ["captures/000006"],
                      "shards": {"files": [e["file"] for e in index["shards"]], "samples": index["samples"]}}}
    (ds / "dataset.json").write_text(json.dumps(card))
    return ds


def test_shards_give_the_same_views_as_folders(tmp_path):
    from simulator.dataset.shards import export_shards

    folders = fake_synthetic(tmp_path / "a" / "syn", n=7)
    shard_dir = tmp_path / "b" / "syn"
    export_shards(folders, shard_dir, shard_size=3)  # shard-*.tar + index.json, no card
    mixed = _sharded_dataset(tmp_path, folders)
    for kw in ({"size": 32}, {"size": 24, "depth": True, "cameras": ["front"]}, {"size": 16, "limit": 4}):
        ref = load_synthetic(folders, **kw)
        assert len(ref) == 2 * kw.get("limit", 7) // (2 if "cameras" in kw else 1)
        assert_same_views(ref, load_synthetic(shard_dir, **kw))
        assert_same_views(ref, load_synthetic(mixed, **kw))
    # a run still in progress (no card): complete shards and folders, the shard copy of 2 wins
    (mixed / "dataset.json").unlink()
    assert_same_views(load_synthetic(folders, size=32), load_synthetic(mixed, size=32))
    # the shards folder alone (index.json): captures 0..5
    alone, ref = load_synthetic(mixed / "shards", size=32), load_synthetic(folders, size=32, limit=6)
    assert np.array_equal(alone.images, ref.images) and [s.split("/", 1)[1] for s in alone.sources] == [
        s.split("/", 1)[1] for s in ref.sources]
    # two roots: folders then shards
    both = load_synthetic([folders, shard_dir], size=16)
    assert len(both) == 28 and np.array_equal(both.images[:14], both.images[14:])


def test_shards_references_pair_queries_by_sku(tmp_path):
    import shutil

    from simulator.dataset.shards import export_shards

    src = fake_synthetic(tmp_path / "a" / "syn", n=4, references=2)
    ds = tmp_path / "b" / "syn"
    shutil.copytree(src, ds, ignore=shutil.ignore_patterns("captures"))
    index = export_shards(src, ds / "shards", shard_size=3)
    card = json.loads((ds / "dataset.json").read_text())
    card["files"]["captures"] = []
    card["files"]["shards"] = {"files": [e["file"] for e in index["shards"]], "samples": index["samples"]}
    (ds / "dataset.json").write_text(json.dumps(card))
    a, b = load_references(src, size=16), load_references(ds, size=16)
    assert_same_views(a[0], b[0])
    assert_same_views(a[1], b[1])
    assert a[2:] == b[2:] and len(a[0]) == 8


def test_bad_shards_name_the_shard(tmp_path):
    from simulator.dataset.shards import export_shards, shard_name

    folders = fake_synthetic(tmp_path / "a" / "syn", n=4)
    sh = tmp_path / "b" / "syn"
    export_shards(folders, sh, shard_size=2)
    import tarfile

    data = (sh / shard_name(1)).read_bytes()
    with tarfile.open(sh / shard_name(1)) as t:
        m = max(t.getmembers()[:4], key=lambda m: m.size)  # cut inside a member's data, not between members
    (sh / shard_name(1)).write_bytes(data[: m.offset_data + m.size // 2])  # torn copy
    with pytest.raises(DatasetError, match=r"shard-000001\.tar: unreadable shard \(ReadError"):
        load_synthetic(sh, size=16)
    (sh / shard_name(1)).unlink()
    with pytest.raises(DatasetError, match=r"shard-000001\.tar: shard listed in the dataset is missing"):
        load_synthetic(sh, size=16)
    with pytest.raises(DatasetError, match="pass it with --synthetic"):
        load_real(sh)
    (sh / "index.json").write_text(json.dumps({"format": "other/1", "shards": [], "samples": 0}))
    with pytest.raises(DatasetError, match=r"index\.json: unreadable shard index .*'other/1'"):
        load_synthetic(sh, size=16)


def test_kinds_and_severity_per_view_survive_subset_and_cache(tmp_path):
    s = load_synthetic(fake_synthetic(tmp_path / "syn", n=8), size=16)
    # fake captures: sku-0 (even) carton intact; odd damaged pouch, i = 1, 5 minor and 3, 7 major
    cap = [int(x.split("/")[1]) for x in s.groups]
    assert s.kinds == ["carton" if c % 2 == 0 else "pouch" for c in cap]
    assert s.severity == ["" if not lab else ("major" if c % 4 == 3 else "minor") for c, lab in zip(cap, s.labels)]
    sub = s.subset([3, 1])
    assert sub.kinds == [s.kinds[3], s.kinds[1]] and sub.severity == [s.severity[3], s.severity[1]]
    s.save(tmp_path / "c.npz")
    back = ImageSet.load(tmp_path / "c.npz")
    assert back.kinds == s.kinds and back.severity == s.severity
    real = load_real(fake_real(tmp_path / "r", 2, 2), size=16)
    real.save(tmp_path / "r.npz")
    assert real.kinds is None and ImageSet.load(tmp_path / "r.npz").kinds is None
