"""Kaputt read and written, and reference comparison, on tiny generated data
(no GL, no real Kaputt, no anomalib: its path joins are restated from its
source, ``src/anomalib/data/datasets/image/kaputt.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._harness_helpers import assert_same_views, draw, fake_synthetic

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from harness.data import DatasetError, load_synthetic  # noqa: E402
from harness.kaputt import (  # noqa: E402
    KaputtSet,
    kaputt_test_spec,
    load_kaputt,
    load_kaputt_references,
    parse_kaputt_spec,
    pixel_features,
    reference_scores,
    synthetic_reference_comparison,
)
from harness.real import load_real  # noqa: E402
from simulator.core.errors import DamagesimError  # noqa: E402
from simulator.dataset.exports import (
    KAPUTT_DEFECT_TYPES,
    KAPUTT_MATERIALS,
    KAPUTT_QUERY_COLUMNS,
    KAPUTT_REFERENCE_COLUMNS,
    export_kaputt,
    kaputt_defect_type,
    kaputt_material,
)

TYPES = ("deformation", "deformation,penetration", "actuation,superficial", "spillage")


# ----------------------------------------------------------------------------- a Kaputt root per its README

def _save(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(a).save(path)


def write_kaputt(root: Path, n: int = 12, seed: int = 0, convention: str = "anomalib") -> dict:
    """Kaputt's documented schema: three query and three reference tables;
    ``convention`` anomalib (values relative to ``query-<kind>/``) or readme
    (values relative to ROOT, under ``kaputt-release/``). Returns the rows."""
    rng = np.random.default_rng(seed)
    rows = {}
    for s, split in enumerate(("train", "validation", "test")):
        q, r = [], []
        for i in range(n):
            cid, item = f"{split[:2]}{i:04d}", f"item-{split}-{i // 2}"  # two queries per item
            defect = i % 3 == 0
            img, inst, _ = draw(rng, defect)
            ys, xs = np.nonzero(inst)
            crop = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            rel = {k: (f"data/{split}/query-data/{k}/{cid}.{'png' if k == 'mask' else 'jpg'}"
                       if convention == "anomalib" else
                       f"kaputt-release/{split}/query-data/{k}/{cid}.{'png' if k == 'mask' else 'jpg'}")
                   for k in ("image", "crop", "mask")}
            for k, a in (("image", img), ("crop", crop), ("mask", (inst > 0).astype(np.uint8) * 255)):
                _save(root / (f"query-{k}" if convention == "anomalib" else "") / rel[k], a)
            q.append({"capture_id": cid, "item_identifier": item, "defect": defect,
                      "major_defect": defect and i % 2 == 0,
                      "defect_types": TYPES[i % len(TYPES)] if defect else "",
                      "item_material": KAPUTT_MATERIALS[i % len(KAPUTT_MATERIALS)],
                      "query_image": rel["image"], "query_crop": rel["crop"], "query_mask": rel["mask"]})
            if i % 2 == 0:  # references of the item: two captures, comma-separated on one row (README)
                paths = {k: [] for k in ("image", "crop", "mask")}
                for k_ref in range(2):
                    rimg, rinst, _ = draw(rng, False)
                    ys, xs = np.nonzero(rinst)
                    for k, a in (("image", rimg), ("crop", rimg[ys.min():ys.max() + 1, xs.min():xs.max() + 1]),
                                 ("mask", (rinst > 0).astype(np.uint8) * 255)):
                        ext = "png" if k == "mask" else "jpg"
                        v = (f"data/{split}/reference-data/{k}/{item}_{k_ref}.{ext}" if convention == "anomalib"
                             else f"kaputt-release/{split}/reference-data/{k}/{item}_{k_ref}.{ext}")
                        _save(root / (f"reference-{k}" if convention == "anomalib" else "") / v, a)
                        paths[k].append(v)
                r.append({"item_identifier": item, **{f"reference_{k}": ",".join(v) for k, v in paths.items()}})
        (root / "datasets").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(q), root / "datasets" / f"query-{split}.parquet")
        pq.write_table(pa.Table.from_pylist(r), root / "datasets" / f"reference-{split}.parquet")
        rows[split] = q
    return rows


@pytest.fixture(scope="module")
def kaputt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaputt")
    return root, write_kaputt(root)


def test_reader_reads_the_documented_schema(kaputt_root):
    root, rows = kaputt_root
    for split in ("train", "validation", "test"):
        q = load_kaputt(root, split, size=24)
        r = rows[split]
        assert isinstance(q, KaputtSet) and len(q) == len(r) and q.images.shape == (len(r), 24, 24, 3)
        assert q.labels.tolist() == [int(x["defect"]) for x in r]
        assert q.categories == [x["defect_types"] for x in r]
        assert q.defect_types == [tuple(x["defect_types"].split(",")) if x["defect_types"] else () for x in r]
        assert q.severity == [("major" if x["major_defect"] else "minor") if x["defect"] else "" for x in r]
        assert q.materials == [x["item_material"] for x in r] and q.items == [x["item_identifier"] for x in r]
        assert q.groups == q.items and q.masks is None and q.item_damaged.tolist() == [x["defect"] for x in r]
        assert q.sources == [str(root / "query-crop" / x["query_crop"]) for x in r]
        for x, refs in zip(r, q.references):  # both references of the item, crops, from the comma-separated row
            assert [Path(p).name for p in refs] == [f"{x['item_identifier']}_{k}.jpg" for k in range(2)]
            assert all(Path(p).is_file() and "reference-crop" in p for p in refs)
    # the image is the crop file, resized
    from harness.data import _resize

    a = np.asarray(Image.open(q.sources[0]).convert("RGB"))
    assert np.array_equal(q.images[0], _resize(a, 24))
    full = load_kaputt(root, "test", size=24, image_type="image")
    assert all("query-image" in s for s in full.sources) and np.allclose(full.aspect, 64 / 48)


def test_reader_follows_the_readme_convention_too(tmp_path):
    rows = write_kaputt(tmp_path, n=6, convention="readme")
    q = load_kaputt(tmp_path, "val", size=16)
    assert q.sources == [str(tmp_path / x["query_crop"]) for x in rows["validation"]]
    assert all(len(r) == 2 and all(Path(p).is_file() for p in r) for r in q.references)


def test_defect_rate_keeps_every_intact_query_and_a_seeded_share_of_defects(tmp_path):
    rows = write_kaputt(tmp_path, n=60)["train"]
    intact = {x["capture_id"] for x in rows if not x["defect"]}
    defects = {x["capture_id"] for x in rows if x["defect"]}
    cid = lambda q: {Path(s).stem for s in q.sources}  # noqa: E731
    a = load_kaputt(tmp_path, "train", 8, defect_rate=0.1, seed=3)
    assert cid(a) >= intact and len(cid(a) & defects) == round(0.1 * 40 / 0.9) == 4
    assert a.labels.sum() == 4 and a.meta["rows_in_split"] == 60
    b = load_kaputt(tmp_path, "train", 8, defect_rate=0.1, seed=3)
    assert a.sources == b.sources and np.array_equal(a.images, b.images)
    assert len({frozenset(cid(load_kaputt(tmp_path, "train", 8, defect_rate=0.1, seed=s)) & defects)
                for s in range(4)}) > 1
    assert load_kaputt(tmp_path, "train", 8, defect_rate=0.001).labels.sum() == 1  # never none
    spec = load_real(f"kaputt:{tmp_path}?split=train&defect_rate=0.1&seed=3", size=8)
    assert spec.sources == a.sources
    with pytest.raises(DatasetError, match="defect_rate must be in"):
        load_kaputt(tmp_path, "train", 8, defect_rate=1.5)


def test_specs_and_clear_errors(kaputt_root, tmp_path):
    root, _ = kaputt_root
    assert parse_kaputt_spec(f"kaputt:{root}?split=val&defect_rate=0.01&image=image") == \
        (root, {"split": "val", "defect_rate": 0.01, "image_type": "image"})
    assert kaputt_test_spec(f"kaputt:{root}?defect_rate=0.01") == f"kaputt:{root}?split=test&image=crop"
    assert load_real(f"kaputt:{root}", size=8).meta["split"] == "train"
    with pytest.raises(DatasetError, match="unknown option 'rate'"):
        load_real(f"kaputt:{root}?rate=1", size=8)
    with pytest.raises(DatasetError, match="name it kaputt:"):
        load_real(root)
    with pytest.raises(DatasetError, match="split must be one of"):
        load_kaputt(root, "dev")
    bad = tmp_path / "bad"
    write_kaputt(bad, n=3)
    t = pq.read_table(bad / "datasets" / "query-test.parquet").drop_columns(["defect"])
    pq.write_table(t, bad / "datasets" / "query-test.parquet")
    with pytest.raises(DatasetError, match=r"query-test\.parquet: missing column\(s\) \['defect'\]"):
        load_kaputt(bad, "test")
    missing = bad / "query-crop" / pq.read_table(bad / "datasets" / "query-train.parquet")["query_crop"][1].as_py()
    missing.unlink()
    with pytest.raises(DatasetError, match=rf"capture_id tr0001\).*{missing.name}' not found"):
        load_kaputt(bad, "train")
    (bad / "datasets" / "query-validation.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="unreadable parquet"):
        load_kaputt(bad, "validation")


def test_subset_keeps_the_kaputt_columns(kaputt_root):
    q = load_kaputt(kaputt_root[0], "train", 8)
    s = q.subset([3, 0])
    assert isinstance(s, KaputtSet) and s.items == [q.items[3], q.items[0]]
    assert s.severity == [q.severity[3], q.severity[0]] and s.references == [q.references[3], q.references[0]]


# ----------------------------------------------------------------------------- reference comparison

def test_reference_scores_rank_damage_above_intact():
    rng = np.random.default_rng(4)
    base = {it: np.full((32, 32, 3), 60 + 40 * it, np.uint8) + rng.integers(0, 6, (32, 32, 3), dtype=np.uint8)
            for it in range(3)}
    refs, r_items, queries, q_items, y = [], [], [], [], []
    for it, img in base.items():
        for _ in range(2):
            refs.append(np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8))
            r_items.append(it)
        for dmg in (0, 1):
            q = np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
            if dmg:
                q[10:20, 12:22] = 5  # a dark hole
            queries.append(q)
            q_items.append(it)
            y.append(dmg)
    s = reference_scores(np.stack(queries), q_items, np.stack(refs), r_items)
    y = np.array(y)
    assert s[y == 1].min() > s[y == 0].max()
    # the distance is the direct formula on the features
    f = pixel_features(np.stack(queries[:1]))[0]
    fr = pixel_features(np.stack(refs[:2]))
    assert s[0] == pytest.approx(np.sqrt(((fr - f) ** 2).sum(1)).min())
    # a given feature function is used; an item without a reference scores NaN
    calls = []

    def mean_colour(x):
        calls.append(len(x))
        return x.reshape(len(x), -1, 3).mean(1)

    s2 = reference_scores(np.stack(queries), [*q_items[:-1], 99], np.stack(refs), r_items, mean_colour)
    assert sum(calls) == len(queries) + len(refs) and np.isnan(s2[-1]) and np.isfinite(s2[:-1]).all()
    # same camera first: the query's copy seen by another camera is not compared
    two = np.stack([refs[0], queries[0]])
    s3 = reference_scores(np.stack(queries[:1]), [0], two, [0, 0], None, ["top"], ["top", "side"])
    assert s3[0] == pytest.approx(np.sqrt(((fr[0] - f) ** 2).sum())) and s3[0] > 0
    assert reference_scores(np.stack(queries[:1]), [0], two, [0, 0])[0] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="cameras for both"):
        reference_scores(np.stack(queries), q_items, np.stack(refs), r_items, query_cameras=["a"] * len(queries))


def test_reference_comparison_on_damagesim_references(tmp_path):
    syn = fake_synthetic(tmp_path / "syn", n=12, references=2)
    res = synthetic_reference_comparison(syn, size=32, n_boot=50)
    assert res["queries"]["damaged"] == 12 and res["references"] == 8
    assert res["auroc"]["value"] > 0.9  # the dark blob is far from every pristine view
    from click.testing import CliRunner

    from harness.cli import lift

    r = CliRunner().invoke(lift, ["reference", "--synthetic", str(syn), "--size", "32", "--n-boot", "50",
                                  "--out", str(tmp_path / "ref.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ref.json").read_text())["auroc"] == res["auroc"]
    r = CliRunner().invoke(lift, ["reference"])
    assert r.exit_code == 2 and "give one of --real kaputt:ROOT or --synthetic DIR" in r.output


# ----------------------------------------------------------------------------- export, read back

def _fake_dataset(root: Path, n: int = 10, seed: int = 0, refs: int = 1) -> Path:
    """A damagesim-shaped dataset with every layer the export reads: two RGB
    cameras and a depth one, three SKUs, damage records with severity."""
    rng = np.random.default_rng(seed)
    kinds = {"carton-000": ("carton", "cardboard"), "mailer-000": ("mailer", "poly_mailer"),
             "multipack-000": ("multipack", "shrink_film")}
    skus = list(kinds)

    def capture(d: Path, damaged: bool, sku: str, severity: str, mode: str | None):
        cameras = {}
        for cam in ("top", "side", "depth"):
            (d / cam).mkdir(parents=True)
            rgb, inst, dmg = draw(rng, damaged and cam != "side" or (damaged and mode == "both"))
            files = {k: f"{cam}/{k}.png" for k in ("rgb", "instance", "damage_category", "damage_instance")}
            Image.fromarray(rgb).save(d / files["rgb"])
            Image.fromarray(inst).save(d / files["instance"])
            Image.fromarray(dmg * (3 if mode == "flap_open" else 1)).save(d / files["damage_category"])
            Image.fromarray(dmg.astype(np.uint16)).save(d / files["damage_instance"])
            cameras[cam] = {"name": cam, "modality": "depth" if cam == "depth" else "rgb", "files": files}
        kind, mat = kinds[sku]
        part = "film" if kind == "multipack" else "body"
        item = {"instance_id": 1, "sku": sku, "kind": kind, "damaged": damaged,
                "parts": [{"name": "unit", "material": "metal"}, {"name": part, "material": mat}]}
        dmgs = ([{"damage_instance_id": 1, "instance_id": 1, "severity": severity,
                  "category": "deconstruction" if mode == "flap_open" else "deformation",
                  "region": {"mode": mode} if mode else {}}] if damaged else [])
        (d / "capture.json").write_text(json.dumps({"cameras": cameras, "items": [item], "damages": dmgs}))

    caps, rrel = [], []
    for i in range(n):
        damaged = i % 2 == 1
        capture(root / "captures" / f"{i:06d}", damaged, skus[i % 3], "major" if i % 4 == 1 else "minor",
                "flap_open" if i % 6 == 3 else ("both" if i == 5 else None))
        caps.append(f"captures/{i:06d}")
    for sku in skus:
        for k in range(refs):
            rel = f"references/{sku}/{k:02d}"
            capture(root / rel, False, sku, "", None)
            rrel.append(rel)
    (root / "dataset.json").write_text(json.dumps({"seed": 7, "spec": {"n": n},
                                                   "files": {"captures": caps, "references": rrel}}))
    return root


def anomalib_samples(root: Path, image_type: str = "image") -> list[dict]:
    """The rows anomalib's make_kaputt_dataset builds, restated from its source:
    image = ROOT/query-<type>/<query_<type>>, mask (defects only) =
    ROOT/query-mask/<query_mask>, references one path per row under
    ROOT/reference-<type>/; all three query tables must exist."""
    out = []
    for split in ("train", "validation", "test"):
        q = pq.read_table(root / "datasets" / f"query-{split}.parquet").to_pylist()
        for r in q:
            out.append({"image_path": root / f"query-{image_type}" / r[f"query_{image_type}"],
                        "mask_path": root / "query-mask" / r["query_mask"] if r["defect"] else None,
                        "label_index": int(r["defect"]), "split": split, "capture_id": r["capture_id"]})
        for r in pq.read_table(root / "datasets" / f"reference-{split}.parquet").to_pylist():
            out.append({"image_path": root / f"reference-{image_type}" / r[f"reference_{image_type}"],
                        "mask_path": None, "label_index": 0, "split": split, "capture_id": r["item_identifier"]})
    return out


def test_export_round_trip(tmp_path):
    src = _fake_dataset(tmp_path / "ds")
    out = tmp_path / "kaputt"
    summary = export_kaputt(src, out)
    # the documented columns, three splits each; anomalib's joins find every file
    for split in ("train", "validation", "test"):
        assert set(KAPUTT_QUERY_COLUMNS) <= set(pq.read_schema(out / "datasets" / f"query-{split}.parquet").names)
        assert set(KAPUTT_REFERENCE_COLUMNS) <= set(
            pq.read_schema(out / "datasets" / f"reference-{split}.parquet").names)
    for kind in ("image", "crop"):
        for s in anomalib_samples(out, kind):
            assert s["image_path"].is_file() and (s["mask_path"] is None or s["mask_path"].is_file())
    # read back: the same views as the harness reads from the dataset itself
    syn = load_synthetic(src, size=32)
    by_src = {s: i for i, s in enumerate(syn.sources)}
    got, splits_of = [], {}
    for split in ("train", "validation", "test"):
        if not summary["queries"][split]:
            continue
        q = load_kaputt(out, split, size=32)
        rows = pq.read_table(out / "datasets" / f"query-{split}.parquet").to_pylist()
        idx = [by_src[f"ds/{r['capture']}/{r['camera']}"] for r in rows]
        ref = syn.subset(idx)
        assert np.array_equal(q.images, ref.images) and np.array_equal(q.masks, ref.masks)
        assert q.labels.tolist() == ref.labels.tolist()
        for item in q.items:
            splits_of.setdefault(item, set()).add(split)
        for r, refs, cam, item in zip(rows, q.references, q.cameras, q.items):
            assert refs and all(f"{item}_00_{cam}" in p for p in refs)  # its SKU, its camera
            meta = json.loads((src / "captures" / r["capture"] / "capture.json").read_text())
            d = meta["damages"]
            assert r["defect"] == bool(d) and r["major_defect"] == any(x["severity"] == "major" for x in d)
            assert r["defect_types"] == ",".join(sorted({kaputt_defect_type(x) for x in d}))
            assert r["item_material"] == kaputt_material(meta["items"][0])
            # crops and masks are the source's pixels
            rgb = np.asarray(Image.open(src / "captures" / r["capture"] / r["camera"] / "rgb.png"))
            x0, y0, x1, y1 = r["crop_box"]
            assert np.array_equal(np.asarray(Image.open(out / "query-crop" / r["query_crop"])), rgb[y0:y1, x0:x1])
            inst = np.asarray(Image.open(src / "captures" / r["capture"] / r["camera"] / "instance.png"))
            assert np.array_equal(np.asarray(Image.open(out / "query-mask" / r["query_mask"])) > 0, inst == 1)
        got.append(q)
    assert all(len(v) == 1 for v in splits_of.values())  # no item in two splits
    # every RGB view is exported but damaged side views (damage drawn on top only): hidden, left out
    hidden = sum(1 for i in range(10) if i % 2 == 1 and i != 5)
    assert sum(len(q) for q in got) == 10 * 2 - hidden and summary["left_out_views"]["hidden_damage"] == hidden
    assert sum(q.labels.sum() for q in got) == syn.labels.sum()
    types = {t for q in got for t in q.categories}
    assert types == {"", "deformation", "actuation"} and set(types) - {""} <= set(KAPUTT_DEFECT_TYPES)
    mats = {m for q in got for m in q.materials}
    assert mats == {"cardboard", "plastic_loose_bag", "plastic_tight_wrap"}
    # the references read back are the dataset's pristine views, byte for byte
    for split in ("train", "validation", "test"):
        if summary["references"][split]:
            ref, items, cams = load_kaputt_references(out, split, size=32)
            for p, item, cam in zip(ref.sources, items, cams):
                rows = pq.read_table(out / "datasets" / f"reference-{split}.parquet").to_pylist()
                r = next(r for r in rows if str(out / "reference-crop" / r["reference_crop"]) == p)
                full = out / "reference-image" / r["reference_image"]
                assert full.read_bytes() == (src / "references" / item / "00" / cam / "rgb.png").read_bytes()
    # deterministic: a second export is identical, and replaces the first whole
    again = tmp_path / "again"
    export_kaputt(src, again)
    files = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))  # noqa: E731
                       if p.is_file() and p.name != "damagesim-kaputt.json"}
    assert files(again) == files(out)
    (again / "query-image" / "stray.txt").write_text("x")
    export_kaputt(src, again)
    assert files(again) == files(out)


def test_export_options_and_atomic_failure(tmp_path):
    src = _fake_dataset(tmp_path / "ds", n=6)
    by_cap = tmp_path / "bycap"
    export_kaputt(src, by_cap, split_by="capture", fractions=(0.5, 0.0, 0.5), image_format="jpg", query_mask="damage")
    rows = {s: pq.read_table(by_cap / "datasets" / f"query-{s}.parquet").to_pylist() for s in ("train", "test")}
    assert not pq.read_table(by_cap / "datasets" / "query-validation.parquet").num_rows
    for s, rs in rows.items():  # every view of a capture in one split; files are JPEG
        for r in rs:
            assert all(r["capture"] not in {x["capture"] for x in rows[o]} for o in rows if o != s)
            assert r["query_image"].endswith(".jpg") and (by_cap / "query-image" / r["query_image"]).is_file()
            dmg = np.asarray(Image.open(by_cap / "query-damage" / r["query_damage"])) > 0
            assert np.array_equal(np.asarray(Image.open(by_cap / "query-mask" / r["query_mask"])) > 0, dmg)
            assert dmg.any() == r["defect"]
    with pytest.raises(DamagesimError, match="fractions"):
        export_kaputt(src, tmp_path / "x", fractions=(0.5, 0.5, 0.5))
    with pytest.raises(DamagesimError, match="not an empty folder or an earlier Kaputt export"):
        export_kaputt(src, src)
    (src / "captures" / "000005" / "top" / "damage_instance.png").unlink()
    with pytest.raises(DamagesimError, match="000005"):
        export_kaputt(src, tmp_path / "broken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bycap", "ds"]  # nothing half-written
    before = sorted(p.relative_to(by_cap) for p in by_cap.rglob("*"))
    with pytest.raises(DamagesimError, match="000005"):
        export_kaputt(src, by_cap)
    assert sorted(p.relative_to(by_cap) for p in by_cap.rglob("*")) == before  # the earlier export is kept


def test_export_read_back_by_the_study_loader(tmp_path):
    out = tmp_path / "kaputt"
    export_kaputt(_fake_dataset(tmp_path / "ds"), out)  # seed 7: one SKU in train, one in test
    a = load_real(f"kaputt:{out}", size=16)
    b = load_real(kaputt_test_spec(f"kaputt:{out}"), size=16)
    assert a.meta["split"] == "train" and b.meta["split"] == "test"
    assert not set(a.items) & set(b.items)
    assert_same_views(a, load_kaputt(out, "train", 16))


def test_lift_study_runs_on_kaputt_splits(tmp_path):
    """``lift study --real kaputt:ROOT?defect_rate=..`` trains on the cut train
    split and tests on Kaputt's whole test split."""
    torch = pytest.importorskip("torch")
    from click.testing import CliRunner

    from harness.cli import lift

    threads = torch.get_num_threads()  # the study sets --threads 1 (default); restore for other tests
    root = tmp_path / "k"
    write_kaputt(root, n=24)
    out = tmp_path / "study"
    r = CliRunner().invoke(lift, ["study", "--real", f"kaputt:{root}?defect_rate=0.2", "--budgets", "4,all",
                                  "--seeds", "1", "--pretrain-steps", "2", "--finetune-steps", "2", "--n-boot", "10",
                                  "--size", "16", "--out", str(out)])
    torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["real"]["pool"] == {"n": 20, "damaged": 4, "intact": 16}
    assert res["real"]["test"] == {"n": 24, "damaged": 8, "intact": 16}
    assert all("query-data/crop/te" in s for s in res["test_sources"])


def test_export_writes_one_query_per_item_of_a_multi_item_tray(tmp_path):
    """Two items on the tray, the second damaged: two rows per view, each
    item's own crop, mask, label and damage pixels."""
    root = tmp_path / "ds"
    d = root / "captures" / "000000"
    (d / "top").mkdir(parents=True)
    rgb = np.full((40, 60, 3), 120, np.uint8)
    inst = np.zeros((40, 60), np.uint16)
    inst[5:20, 5:25], inst[22:38, 30:55] = 1, 2
    dinst = np.zeros((40, 60), np.uint16)
    dinst[25:30, 35:40] = 1
    for name, a in (("rgb", rgb), ("instance", inst), ("damage_category", (dinst > 0).astype(np.uint8) * 2),
                    ("damage_instance", dinst)):
        Image.fromarray(a).save(d / "top" / f"{name}.png")
    files = {k: f"top/{k}.png" for k in ("rgb", "instance", "damage_category", "damage_instance")}
    items = [{"instance_id": k, "sku": f"s{k}", "kind": "carton", "damaged": k == 2,
              "parts": [{"name": "body", "material": "cardboard"}]} for k in (1, 2)]
    dmg = [{"damage_instance_id": 1, "instance_id": 2, "category": "penetration", "severity": "major"}]
    (d / "capture.json").write_text(json.dumps({"cameras": {"top": {"modality": "rgb", "files": files}},
                                                "items": items, "damages": dmg}))
    (root / "dataset.json").write_text(json.dumps({"seed": 0, "files": {"captures": ["captures/000000"]}}))
    out = tmp_path / "k"
    export_kaputt(root, out, split_by="capture")
    rows = [r for s in ("train", "validation", "test")
            for r in pq.read_table(out / "datasets" / f"query-{s}.parquet").to_pylist()]
    assert sorted((r["capture_id"], r["defect"], r["major_defect"], r["defect_types"]) for r in rows) == \
        [("000000_top_i1", False, False, ""), ("000000_top_i2", True, True, "penetration")]
    for r in rows:
        k = r["instance_id"]
        m = np.asarray(Image.open(out / "query-mask" / r["query_mask"])) > 0
        dm = np.asarray(Image.open(out / "query-damage" / r["query_damage"]))
        assert np.array_equal(m, inst == k) and np.array_equal(dm > 0, (dinst > 0) & (k == 2))
        x0, y0, x1, y1 = r["crop_box"]
        ys, xs = np.nonzero(inst == k)
        assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1 and x1 - x0 == y1 - y0
