"""Exports of an existing dataset (capture folders and/or shards) to layouts other
tools read with no glue code.

anomalib / MVTec AD (``export_mvtec``), one category folder per RGB camera
(``by="camera"``) or per product kind (``by="kind"``)::

    <group>/train/good/<capture>[_<camera>].png          intact frames (train split)
    <group>/test/good/<capture>[_<camera>].png           intact frames (test split)
    <group>/test/<damage category>/<name>.png            damaged frames
    <group>/ground_truth/<damage category>/<name>_mask.png   0/255 damage mask
    index.json                                           every image with its labels

A frame is *good* when its item is intact (no damage on the capture), *damaged*
when damage pixels are visible in it; frames of damaged items whose damage that
camera cannot see are left out (neither good nor labelled bad). A frame with
several damage categories goes under the category with the most pixels; its
mask holds every damage pixel. The test/good split is by capture id
(sha256 of seed and id), so it is stable when the dataset grows. ``by="kind"``
uses captures whose items all have one kind. Depth-only cameras are skipped.

Kaputt (``export_kaputt``): the layout of the Kaputt benchmark (Hoefer et al.,
ICCV 2025) as anomalib's ``KaputtDataset`` reads it
(``src/anomalib/data/datasets/image/kaputt.py``)::

    datasets/query-{train,validation,test}.parquet       one row per query (all three always written)
    datasets/reference-{train,validation,test}.parquet   one row per reference image
    query-image/data/<split>/query-data/image/<capture_id>.png    RGB of one camera view
    query-crop/data/<split>/query-data/crop/<capture_id>.png      square crop around the item
    query-mask/data/<split>/query-data/mask/<capture_id>.png      item mask, 0/255, full image
    query-damage/data/<split>/query-data/damage/<capture_id>.png  damagesim extra: damage category
                                                                  per pixel (0 intact; label map in
                                                                  damagesim-kaputt.json), full image
    reference-{image,crop,mask}/data/<split>/reference-data/{image,crop,mask}/<id>.png
    damagesim-kaputt.json                                 summary, vocabularies, label map

Query columns are Kaputt's: ``capture_id`` (``<capture>_<camera>``, plus
``_i<k>`` when a tray holds several items), ``item_identifier`` (the SKU),
``defect``, ``major_defect`` (``defect`` and a visible major damage),
``defect_types`` (comma-separated, sorted, Kaputt's names: actuation,
deconstruction, deformation, missing_unit, penetration, spillage, superficial;
a deconstruction that opens a flap is ``actuation``), ``item_material``
(Kaputt's ten materials, from the item's outer part) and ``query_image``,
``query_crop``, ``query_mask``: paths relative to ``query-image/``,
``query-crop/``, ``query-mask/`` (anomalib joins them so). As in Kaputt,
``query_mask`` is the *item* segmentation mask (anomalib takes it as the
defect mask of a defective query; ``query_mask="damage"`` writes the 0/255
damage mask there instead, for anomalib's pixel metrics); the damage mask is
always in the extra column ``query_damage``. anomalib's ``Kaputt`` datamodule
filters ``item_material`` by ``category="book_other"`` unless told otherwise:
pass ``category=None`` (or a material) for an export. Other extra columns (anomalib ignores them): capture,
camera, instance_id, kind, hard_negative, design_variant, crop_box
(``x0 y0 x1 y1`` pixels of the crop in the full image). Reference rows carry
``item_identifier``, ``reference_image``, ``reference_crop``,
``reference_mask`` and the extras reference (``<sku>/<pose>``) and camera; they
are the dataset's pristine reference captures (``--reference-poses``) of the
split's SKUs.

Labels are per view, as the harness reads a view: a view of a damaged item
whose damage that camera cannot see is left out (counted), never written as
intact or as defective. Splits are drawn by a hash of (seed, SKU), so they are
stable when the dataset grows and, as in Kaputt, no item is in two splits
(``split_by="capture"`` hashes the capture id instead). The export is built in a
temporary folder and renamed into place: an error leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from damage_ops.taxonomy import CATEGORIES, CATEGORY_IDS
from simulator.core.errors import DamagesimError
from simulator.dataset.reader import FolderCapture, iter_dataset
from simulator.dataset.writers import label_map, write_json_atomic


def _load_card(dataset: Path) -> dict[str, Any]:
    p = Path(dataset) / "dataset.json"
    if not p.is_file():
        raise DamagesimError(f"{dataset}: not a damagesim dataset (no dataset.json)")
    return json.loads(p.read_text())


def _rgb_cameras(card: dict[str, Any]) -> list[str]:
    return [c["name"] for c in card["rig"]["cameras"] if c.get("modality", "rgb") in ("rgb", "rgbd")]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _png(path: Path, array: np.ndarray) -> None:


    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    _write(path, buf.getvalue())


def _in_test(seed: int, name: str, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2 ** 64 < fraction


def _dominant_category(cat_mask: np.ndarray) -> str | None:

    counts = np.bincount(cat_mask.ravel(), minlength=max(CATEGORY_IDS.values()) + 1)
    counts[0] = 0
    if counts.sum() == 0:
        return None
    best = int(np.argmax(counts))  # ties: the lower id, deterministic
    return next(c for c in CATEGORIES if CATEGORY_IDS[c] == best)


def export_mvtec(dataset: Path, out_dir: Path, by: str = "camera", test_fraction: float = 0.2) -> dict[str, Any]:
    """Write the MVTec/anomalib layout (see the module doc). Returns a summary."""

    if by not in ("camera", "kind"):
        raise DamagesimError(f"export mvtec: --by must be camera or kind, got {by!r}")
    if not 0 <= test_fraction < 1:
        raise DamagesimError(f"export mvtec: --test-fraction must be in [0, 1), got {test_fraction}")
    dataset, out_dir = Path(dataset), Path(out_dir)
    card = _load_card(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(card["seed"])
    cams = _rgb_cameras(card)
    index: list[dict[str, Any]] = []
    left_out = 0
    for cap in iter_dataset(dataset, card["spec"]["n"]):
        meta = cap.meta
        kinds = sorted({it["kind"] for it in meta["items"]})
        if by == "kind" and len(kinds) != 1:
            left_out += len(cams)
            continue
        damaged = bool(meta["damages"])
        test = _in_test(seed, cap.name, test_fraction)
        for cam in cams:
            group = cam if by == "camera" else kinds[0]
            name = cap.name if by == "camera" else f"{cap.name}_{cam}"
            rgb = cap.read(f"{cam}/rgb.png")
            entry = {"group": group, "capture": cap.name, "camera": cam, "skus": [it["sku"] for it in meta["items"]]}
            if not damaged:
                split = "test/good" if test else "train/good"
                rel = f"{group}/{split}/{name}.png"
                _write(out_dir / rel, rgb)
                index.append({**entry, "image": rel, "label": "good", "split": split.split("/")[0], "mask": None})
                continue
            cat_mask = cap.image(f"{cam}/damage_category.png")
            cat = _dominant_category(cat_mask)
            if cat is None:
                left_out += 1  # damaged item, damage not visible from this camera
                continue
            rel = f"{group}/test/{cat}/{name}.png"
            mrel = f"{group}/ground_truth/{cat}/{name}_mask.png"
            _write(out_dir / rel, rgb)
            _png(out_dir / mrel, ((cat_mask > 0) * 255).astype(np.uint8))
            sev = sorted({d["severity"] for d in meta["damages"]})
            index.append({**entry, "image": rel, "label": cat, "split": "test", "mask": mrel,
                          "categories": sorted({d["category"] for d in meta["damages"]}),
                          "severity": "major" if "major" in sev else "minor"})
    if not index:
        raise DamagesimError(f"{dataset}: nothing to export (no RGB frames)")

    groups = sorted({e["group"] for e in index})
    summary = {"groups": groups, "images": len(index),
               "good_train": sum(e["label"] == "good" and e["split"] == "train" for e in index),
               "good_test": sum(e["label"] == "good" and e["split"] == "test" for e in index),
               "defective": sum(e["label"] != "good" for e in index), "left_out_frames": left_out}
    write_json_atomic(out_dir / "index.json", {"format": "damagesim-mvtec/1", "dataset": str(dataset), "by": by,
                                               "test_fraction": test_fraction, "summary": summary, "images": index})
    return summary


# ----------------------------------------------------------------------------- Kaputt
KAPUTT_SPLITS = ("train", "validation", "test")
#: Kaputt's defect types (its README), sorted as its ``defect_types`` strings are
KAPUTT_DEFECT_TYPES = ("actuation", "deconstruction", "deformation", "missing_unit", "penetration", "spillage",
                       "superficial")
#: Kaputt's ``item_material`` values (anomalib's CATEGORIES)
KAPUTT_MATERIALS = ("book_other", "book_paper", "book_plastic_tight_wrap", "cardboard", "other", "paper",
                    "plastic_bubble_wrap", "plastic_hard", "plastic_loose_bag", "plastic_tight_wrap")
KAPUTT_QUERY_COLUMNS = ("capture_id", "item_identifier", "defect", "major_defect", "defect_types", "item_material",
                        "query_image", "query_crop", "query_mask")
KAPUTT_REFERENCE_COLUMNS = ("item_identifier", "reference_image", "reference_crop", "reference_mask")
KAPUTT_EXPORT_FORMAT = "damagesim-kaputt/2"
KAPUTT_MARKER = "damagesim-kaputt.json"
#: damagesim material of an item's outer part -> Kaputt item_material
_KAPUTT_MATERIAL = {"cardboard": "cardboard", "cardboard_white": "cardboard", "paper_label": "paper",
                    "padded_paper": "paper", "poly_mailer": "plastic_loose_bag", "plastic_film": "plastic_loose_bag",
                    "foil_laminate": "plastic_loose_bag", "shrink_film": "plastic_tight_wrap",
                    "clear_plastic": "plastic_hard", "rigid_plastic": "plastic_hard"}
#: the part a person sees first, by priority: shrink film over its units, the
#: blister over its card, else the body
_OUTER_PARTS = ("film", "blister", "body")


def kaputt_defect_type(damage: dict[str, Any]) -> str:
    """Kaputt defect type of one capture.json ``damages[]`` record: its category,
    except a deconstruction that opens a flap, which Kaputt calls actuation."""
    cat = damage["category"]
    if cat == "deconstruction" and (damage.get("region") or {}).get("mode") in ("flap_open", "box_open"):
        return "actuation"
    if cat not in KAPUTT_DEFECT_TYPES:
        raise DamagesimError(f"damage {damage.get('damage_instance_id')}: category {cat!r} has no Kaputt name "
                             f"(expected one of {list(KAPUTT_DEFECT_TYPES)})")
    return cat


def kaputt_material(item: dict[str, Any]) -> str:
    """Kaputt item_material of one capture.json ``items[]`` entry, from the
    material of its outer part (``other`` when unknown: glass, metal, a user's)."""
    parts = item.get("parts") or []
    by_name = {p.get("name"): p.get("material") for p in parts}
    mat = next((by_name[n] for n in _OUTER_PARTS if n in by_name), parts[0].get("material") if parts else None)
    return _KAPUTT_MATERIAL.get(mat, "other")


def kaputt_split(key: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """train / validation / test of ``key`` by sha256 of (seed, key): stable
    when the dataset grows."""
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(h[:8], "little") / 2 ** 64
    return "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"


def square_box(mask: np.ndarray, pad: float) -> tuple[int, int, int, int] | None:
    """Square box ``(x0, y0, x1, y1)`` (pixels, exclusive end) around ``mask``'s
    non-zero pixels, grown by ``pad`` of its longer side each way, shifted to lie
    in the image and no larger than its shorter side; None when ``mask`` is empty.
    The same box as the harness's item crops (harness.data.crop_box)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * (1 + 2 * pad)
    H, W = mask.shape[:2]
    side = min(side, H, W)
    x0 = int(round(min(max(cx - side / 2, 0), W - side)))
    y0 = int(round(min(max(cy - side / 2, 0), H - side)))
    return x0, y0, x0 + int(side), y0 + int(side)


def _encode(array: np.ndarray, fmt: str) -> bytes:


    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    else:
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _need_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DamagesimError('export kaputt writes parquet and needs pyarrow: pip install "pyarrow>=14,<22" '
                             '(or pip install -e ".[harness]")') from None
    return pa, pq


class _KaputtWriter:
    """Files and parquet rows of one export, under a temporary root."""

    def __init__(self, root: Path, fmt: str, query_mask: str = "item"):
        self.root, self.fmt, self.query_mask = root, fmt, query_mask
        self.ext = "png" if fmt == "png" else "jpg"
        self.queries: dict[str, list[dict[str, Any]]] = {s: [] for s in KAPUTT_SPLITS}
        self.references: dict[str, list[dict[str, Any]]] = {s: [] for s in KAPUTT_SPLITS}

    def _put(self, side: str, kind: str, split: str, name: str, data: bytes) -> str:
        """Write one file; returns its path relative to ``<side>-<kind>/`` (the
        value anomalib joins to that folder)."""
        rel = f"data/{split}/{side}-data/{kind}/{name}"
        _write(self.root / f"{side}-{kind}" / rel, data)
        return rel

    def view(self, side: str, split: str, name: str, rgb_bytes: bytes, rgb: np.ndarray, item: np.ndarray,
             box: tuple[int, int, int, int]) -> dict[str, Any]:
        """Write image, crop (``box``) and mask (``item``: (H, W) bool, 0/255 in
        the file) of one view."""
        x0, y0, x1, y1 = box
        img = rgb_bytes if self.fmt == "png" and rgb_bytes[:8] == b"\x89PNG\r\n\x1a\n" else _encode(rgb, self.fmt)
        return {f"{side}_image": self._put(side, "image", split, f"{name}.{self.ext}", img),
                f"{side}_crop": self._put(side, "crop", split, f"{name}.{self.ext}",
                                          _encode(rgb[y0:y1, x0:x1], self.fmt)),
                f"{side}_mask": self._put(side, "mask", split, f"{name}.png",
                                          _encode((item * 255).astype(np.uint8), "png")),
                "crop_box": [x0, y0, x1, y1]}

    def damage(self, split: str, name: str, cat: np.ndarray) -> str:
        return self._put("query", "damage", split, f"{name}.png", _encode(cat.astype(np.uint8), "png"))

    def tables(self, pa, pq) -> None:
        qtypes = {"capture_id": pa.string(), "item_identifier": pa.string(), "defect": pa.bool_(),
                  "major_defect": pa.bool_(), "defect_types": pa.string(), "item_material": pa.string(),
                  "query_image": pa.string(), "query_crop": pa.string(), "query_mask": pa.string(),
                  "query_damage": pa.string(), "capture": pa.string(), "camera": pa.string(),
                  "instance_id": pa.int32(), "kind": pa.string(), "hard_negative": pa.bool_(),
                  "design_variant": pa.string(), "crop_box": pa.list_(pa.int32())}
        rtypes = {"item_identifier": pa.string(), "reference_image": pa.string(), "reference_crop": pa.string(),
                  "reference_mask": pa.string(), "reference": pa.string(), "camera": pa.string(),
                  "crop_box": pa.list_(pa.int32())}
        d = self.root / "datasets"
        d.mkdir(parents=True, exist_ok=True)
        for side, rows, types in (("query", self.queries, qtypes), ("reference", self.references, rtypes)):
            schema = pa.schema(list(types.items()))
            for split in KAPUTT_SPLITS:
                cols = {k: [r[k] for r in rows[split]] for k in types}
                pq.write_table(pa.table(cols, schema=schema), d / f"{side}-{split}.parquet")


def _view_layers(cap, files: dict[str, str], rgb_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, instance (H, W)) of one view, sizes checked."""


    with Image.open(io.BytesIO(rgb_bytes)) as im:
        rgb = np.asarray(im.convert("RGB"))
    inst = cap.image(files["instance"])
    if rgb.shape[:2] != inst.shape[:2]:
        raise DamagesimError(f"{cap.location(files['rgb'])}: rgb is {rgb.shape[1]}x{rgb.shape[0]} but the instance "
                             f"mask {cap.location(files['instance'])} is {inst.shape[1]}x{inst.shape[0]}")
    return rgb, inst


def _item_damage(cap, files: dict[str, str], inst: np.ndarray, dmg_ids: list[int], n_items: int
                 ) -> tuple[np.ndarray, set[int]]:
    """(damage category image of one item's damages ``dmg_ids``, (H, W) uint8;
    the ids of those visible in the view)."""
    dcat = cap.image(files["damage_category"])
    dinst = cap.image(files["damage_instance"])
    if dcat.shape != inst.shape or dinst.shape != inst.shape:
        raise DamagesimError(f"{cap.location(files['damage_category'])}: damage layers differ in size from "
                             f"{cap.location(files['instance'])}")
    own = np.isin(dinst, dmg_ids) if n_items > 1 else dinst > 0
    visible = {int(v) for v in np.unique(dinst[own])} & set(dmg_ids)
    return np.where(own, dcat, 0).astype(np.uint8), visible


def _export_capture(w: _KaputtWriter, cap, meta: dict[str, Any], split_by: str, seed: int,
                    fr: tuple[float, float, float], pad: float, counts: dict[str, int],
                    split_skus: dict[str, set[str]]) -> None:
    """Query rows and files of every RGB view x item of one capture."""
    items = meta.get("items") or []
    for cam, c in meta["cameras"].items():
        if c.get("modality", "rgb") not in ("rgb", "rgbd"):
            continue
        files = c.get("files") or {k: f"{cam}/{k}.png" for k in
                                   ("rgb", "instance", "damage_category", "damage_instance")}
        rgb_bytes = cap.read(files["rgb"])
        rgb, inst = _view_layers(cap, files, rgb_bytes)
        for it in items:
            k = int(it["instance_id"])
            sku = it["sku"]
            name = f"{cap.name}_{cam}" if len(items) == 1 else f"{cap.name}_{cam}_i{k}"
            box = square_box(inst == k, pad)
            if box is None:
                counts["not_visible"] += 1
                continue
            dmg = [d for d in meta.get("damages", []) if int(d.get("instance_id", k)) == k]
            cat, visible = _item_damage(cap, files, inst, [int(d["damage_instance_id"]) for d in dmg],
                                        len(items))
            seen = [d for d in dmg if int(d["damage_instance_id"]) in visible]
            if dmg and not seen:
                counts["hidden_damage"] += 1  # nothing in these pixels says damaged, nor intact
                continue
            split = kaputt_split(sku if split_by == "item" else cap.name, seed, fr)
            mask = cat > 0 if w.query_mask == "damage" else inst == k
            row = w.view("query", split, name, rgb_bytes, rgb, mask, box)
            row.update({
                "capture_id": name, "item_identifier": sku, "defect": bool(seen),
                "major_defect": any(d["severity"] == "major" for d in seen),
                "defect_types": ",".join(sorted({kaputt_defect_type(d) for d in seen})),
                "item_material": kaputt_material(it), "query_damage": w.damage(split, name, cat),
                "capture": cap.name, "camera": cam, "instance_id": k, "kind": it.get("kind", ""),
                "hard_negative": bool(it.get("hard_negative")) or bool(meta.get("hard_negative")),
                "design_variant": (None if it.get("design_variant") is None
                                   else json.dumps(it["design_variant"], sort_keys=True))})
            w.queries[split].append(row)
            split_skus[split].add(sku)


def _export_reference(w: _KaputtWriter, rcap, pose: str, seed: int, fr: tuple[float, float, float], pad: float,
                      split_skus: dict[str, set[str]]) -> None:
    """Reference rows and files of every RGB view of one pristine reference capture."""
    meta = rcap.meta
    it = meta["items"][0]
    sku = it["sku"]
    # a reference goes to every split that has queries of its SKU (one split with
    # split_by=item); a SKU with no query keeps its references in its own split
    splits = [s for s in KAPUTT_SPLITS if sku in split_skus[s]] or [kaputt_split(sku, seed, fr)]
    for cam, c in meta["cameras"].items():
        if c.get("modality", "rgb") not in ("rgb", "rgbd"):
            continue
        files = c.get("files") or {k: f"{cam}/{k}.png" for k in ("rgb", "instance")}
        rgb_bytes = rcap.read(files["rgb"])
        rgb, inst = _view_layers(rcap, files, rgb_bytes)
        item = inst == int(it["instance_id"])
        box = square_box(item, pad)
        if box is None:
            continue
        for split in splits:
            row = w.view("reference", split, f"{sku}_{pose}_{cam}", rgb_bytes, rgb, item, box)
            row.update({"item_identifier": sku, "reference": f"{sku}/{pose}", "camera": cam})
            w.references[split].append(row)


def export_kaputt(dataset: Path, out_dir: Path, split_by: str = "item",
                  fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), pad: float = 0.15,
                  image_format: str = "png", query_mask: str = "item") -> dict[str, Any]:
    """Write the Kaputt layout of ``dataset`` to ``out_dir`` (see the module doc).

    split_by: ``item`` (hash of the SKU: no item in two splits, as in Kaputt) or
    ``capture`` (hash of the capture id); fractions: train, validation, test
    shares, summing to 1; pad: crop margin as a fraction of the item box's longer
    side; image_format: ``png`` (RGB bytes copied unchanged) or ``jpg`` (quality
    95, as Kaputt ships); query_mask: ``item`` (Kaputt's item mask) or
    ``damage`` (the damage mask, for anomalib's segmentation metrics).
    ``out_dir`` must be new, empty or an earlier Kaputt export (replaced
    whole). Returns the summary also written to ``damagesim-kaputt.json``.
    """


    if split_by not in ("item", "capture"):
        raise DamagesimError(f"export kaputt: --split-by must be item or capture, got {split_by!r}")
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
        raise DamagesimError(f"export kaputt: split fractions must be three shares >= 0 summing to 1, got {fractions}")
    if image_format not in ("png", "jpg"):
        raise DamagesimError(f"export kaputt: image format must be png or jpg, got {image_format!r}")
    if query_mask not in ("item", "damage"):
        raise DamagesimError(f"export kaputt: query mask must be item or damage, got {query_mask!r}")
    if not 0 <= pad < 1:
        raise DamagesimError(f"export kaputt: pad must be in [0, 1), got {pad}")
    pa, pq = _need_pyarrow()
    dataset, out_dir = Path(dataset), Path(out_dir)
    card = _load_card(dataset)
    # never replace what this command did not write
    replaceable = out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / KAPUTT_MARKER).is_file())
    if out_dir.exists() and not replaceable:
        raise DamagesimError(f"{out_dir}: exists and is not an empty folder or an earlier Kaputt export; "
                             "choose a new --out")
    seed = int(card.get("seed", 0))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    done = False
    try:
        w = _KaputtWriter(tmp, image_format, query_mask)
        counts = {"not_visible": 0, "hidden_damage": 0}
        split_skus: dict[str, set[str]] = {s: set() for s in KAPUTT_SPLITS}
        for cap in iter_dataset(dataset, (card.get("spec") or {}).get("n")):
            try:
                meta = cap.meta
            except (OSError, ValueError) as e:
                raise DamagesimError(f"{cap.location('capture.json')}: cannot read capture metadata ({e})") from None
            try:
                _export_capture(w, cap, meta, split_by, seed, fr, pad, counts, split_skus)
            except (OSError, KeyError) as e:
                raise DamagesimError(f"{cap.where}: cannot export this capture ({type(e).__name__}: {e})") from None
        if not any(w.queries.values()):
            raise DamagesimError(f"{dataset}: nothing to export (no RGB view shows an item)")
        for rel in card.get("files", {}).get("references", []):
            rcap = FolderCapture(dataset / rel)
            try:
                _export_reference(w, rcap, Path(rel).name, seed, fr, pad, split_skus)
            except (OSError, KeyError, ValueError) as e:
                raise DamagesimError(f"{rcap.where}: cannot export this reference capture "
                                     f"({type(e).__name__}: {e})") from None
        w.tables(pa, pq)
        summary = {"queries": {s: len(w.queries[s]) for s in KAPUTT_SPLITS},
                   "defective": {s: sum(r["defect"] for r in w.queries[s]) for s in KAPUTT_SPLITS},
                   "major": {s: sum(r["major_defect"] for r in w.queries[s]) for s in KAPUTT_SPLITS},
                   "references": {s: len(w.references[s]) for s in KAPUTT_SPLITS},
                   "items": {s: len(split_skus[s]) for s in KAPUTT_SPLITS},
                   "left_out_views": counts}
        write_json_atomic(tmp / KAPUTT_MARKER, {
            "format": KAPUTT_EXPORT_FORMAT, "dataset": str(dataset), "seed": seed, "split_by": split_by,
            "fractions": list(fr), "pad": pad, "image_format": image_format, "query_mask": query_mask,
            "summary": summary,
            "defect_types": list(KAPUTT_DEFECT_TYPES), "materials": list(KAPUTT_MATERIALS),
            "material_map": _KAPUTT_MATERIAL, "query_damage_labels": label_map()["damage_category"]})
        if out_dir.exists():  # empty, or an earlier export: swap it out whole
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary
