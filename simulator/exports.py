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

Kaputt-style query + reference set (``export_kaputt``)::

    queries/<query id>.png         RGB of one camera of one capture (query id = <capture>_<camera>)
    masks/<query id>.png           uint8 damage category per pixel (0 intact; label_map in manifest)
    pristine/<query id>.png        the pristine counterfactual, when the capture has one
    references/<sku>_<pose>_<camera>.png   pristine reference captures of the same SKU
    manifest.json                  per query: query id, capture, camera, item SKUs, reference ids,
                                   defect (bool), categories, severity (none|minor|major), ...
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DamagesimError


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
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    _write(path, buf.getvalue())


def _in_test(seed: int, name: str, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2 ** 64 < fraction


def _dominant_category(cat_mask: np.ndarray) -> str | None:
    from damage_ops.taxonomy import CATEGORIES, CATEGORY_IDS

    counts = np.bincount(cat_mask.ravel(), minlength=max(CATEGORY_IDS.values()) + 1)
    counts[0] = 0
    if counts.sum() == 0:
        return None
    best = int(np.argmax(counts))  # ties: the lower id, deterministic
    return next(c for c in CATEGORIES if CATEGORY_IDS[c] == best)


def export_mvtec(dataset: Path, out_dir: Path, by: str = "camera", test_fraction: float = 0.2) -> dict[str, Any]:
    """Write the MVTec/anomalib layout (see the module doc). Returns a summary."""
    from .shards import iter_dataset

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
    from .writers import write_json_atomic

    groups = sorted({e["group"] for e in index})
    summary = {"groups": groups, "images": len(index),
               "good_train": sum(e["label"] == "good" and e["split"] == "train" for e in index),
               "good_test": sum(e["label"] == "good" and e["split"] == "test" for e in index),
               "defective": sum(e["label"] != "good" for e in index), "left_out_frames": left_out}
    write_json_atomic(out_dir / "index.json", {"format": "damagesim-mvtec/1", "dataset": str(dataset), "by": by,
                                               "test_fraction": test_fraction, "summary": summary, "images": index})
    return summary


def export_kaputt(dataset: Path, out_dir: Path) -> dict[str, Any]:
    """Write the Kaputt-style query + reference layout (see the module doc)."""
    from .shards import iter_dataset
    from .writers import label_map, write_json_atomic

    dataset, out_dir = Path(dataset), Path(out_dir)
    card = _load_card(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    cams = _rgb_cameras(card)
    refs_written: set[str] = set()
    queries = []
    for cap in iter_dataset(dataset, card["spec"]["n"]):
        meta = cap.meta
        skus = sorted({it["sku"] for it in meta["items"]})
        for cam in cams:
            qid = f"{cap.name}_{cam}"
            _write(out_dir / "queries" / f"{qid}.png", cap.read(f"{cam}/rgb.png"))
            cat_mask = cap.image(f"{cam}/damage_category.png")
            _png(out_dir / "masks" / f"{qid}.png", cat_mask.astype(np.uint8))
            pristine = None
            if meta.get("pristine_pair") and cap.has(f"pristine/{cam}/rgb.png"):
                pristine = f"pristine/{qid}.png"
                _write(out_dir / pristine, cap.read(f"pristine/{cam}/rgb.png"))
            ref_ids = []
            for sku in skus:
                for rdir in sorted((dataset / "references" / sku).glob("*/capture.json")):
                    rid = f"{sku}_{rdir.parent.name}_{cam}"
                    if rid not in refs_written:
                        _write(out_dir / "references" / f"{rid}.png", (rdir.parent / cam / "rgb.png").read_bytes())
                        refs_written.add(rid)
                    ref_ids.append(rid)
            visible = sorted({int(v) for v in np.unique(cap.image(f"{cam}/damage_instance.png")) if v})
            dmg = meta["damages"]
            sev = {d["severity"] for d in dmg}
            queries.append({
                "query_id": qid, "capture": cap.name, "camera": cam, "image": f"queries/{qid}.png",
                "mask": f"masks/{qid}.png", "pristine": pristine, "skus": skus,
                "kinds": sorted({it["kind"] for it in meta["items"]}),
                "reference_ids": ref_ids, "references": [f"references/{r}.png" for r in ref_ids],
                "defect": bool(dmg), "categories": sorted({d["category"] for d in dmg}),
                "severity": "major" if "major" in sev else "minor" if sev else "none",
                "damage_visible": bool(visible),
                "visible_categories": sorted({d["category"] for d in dmg if d["damage_instance_id"] in visible}),
                "hard_negative": bool(meta.get("hard_negative")),
            })
    manifest = {"format": "damagesim-kaputt/1", "dataset": str(dataset), "seed": card["seed"],
                "mask_labels": label_map()["damage_category"], "queries": queries,
                "references": sorted(refs_written)}
    write_json_atomic(out_dir / "manifest.json", manifest)
    return {"queries": len(queries), "references": len(refs_written),
            "defective": sum(q["defect"] for q in queries)}
