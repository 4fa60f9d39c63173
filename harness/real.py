"""Real labelled images by layout: damaged/ + intact/ class folders, an MVTec
folder, a COCO file, or a Kaputt split (``kaputt:ROOT[?options]``);
:func:`load_real` detects which."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from harness.data import IMAGE_EXTS, KAPUTT_CATEGORIES, DatasetError, ImageSet, _read_image, _resize
from harness.kaputt import load_kaputt_spec


def _images_under(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _build_real(entries: list[tuple[Path, int, str, Path | None]], size: int, meta: dict,
                progress: bool = False) -> ImageSet:
    """entries: (image path, label, category, mask path or None)."""

    imgs, masks, has, aspect = [], [], [], []
    for path, _, _, mpath in tqdm(entries, desc="load real", unit="img", disable=not progress):
        a = _read_image(path)
        aspect.append(a.shape[1] / a.shape[0])
        imgs.append(_resize(a, size))
        if mpath is not None:
            m = _read_image(mpath, mode="L")
            if m.shape[:2] != a.shape[:2]:
                raise DatasetError(f"{mpath}: mask is {m.shape[1]}x{m.shape[0]} but its image {path} is "
                                   f"{a.shape[1]}x{a.shape[0]}")
            masks.append(_resize((m > 0).astype(np.uint8), size, nearest=True))
            has.append(True)
        else:
            masks.append(np.zeros((size, size), np.uint8))
            has.append(False)
    src = [str(e[0]) for e in entries]
    return ImageSet(np.stack(imgs), np.array([e[1] for e in entries], np.int64), [e[2] for e in entries], src,
                    list(src), np.array(aspect), np.stack(masks) if any(has) else None,
                    np.array(has) if any(has) else None, meta=meta)


def load_class_folders(root: str | Path, size: int = 96, progress: bool = False) -> ImageSet:
    """Layout (a): ``ROOT/damaged/[category/]IMG``, ``ROOT/intact/IMG``, optional ``ROOT/masks/...``."""
    root = Path(root)
    entries = []
    for cls, label in (("damaged", 1), ("intact", 0)):
        d = root / cls
        if not d.is_dir():
            raise DatasetError(f"{d}: missing class folder (expected {root}/damaged/ and {root}/intact/)")
        files = _images_under(d)
        if not files:
            raise DatasetError(f"{d}: class folder has no images ({', '.join(IMAGE_EXTS)})")
        for p in files:
            rel = p.relative_to(d)
            cat = rel.parts[0] if label and len(rel.parts) > 1 else ""
            m = root / "masks" / cls / rel.with_suffix(".png")
            entries.append((p, label, cat, m if m.is_file() else None))
    return _build_real(entries, size, {"kind": "class_folders", "root": str(root)}, progress)


def load_mvtec(root: str | Path, size: int = 96, progress: bool = False) -> ImageSet:
    """Layout (c): MVTec AD / anomalib folder of one object class."""
    root = Path(root)
    entries = []
    for split in ("train", "test"):
        sd = root / split
        if not sd.is_dir():
            continue
        for d in sorted(p for p in sd.iterdir() if p.is_dir()):
            files = _images_under(d)
            if not files:
                raise DatasetError(f"{d}: class folder has no images")
            good = d.name == "good"
            for p in files:
                m = root / "ground_truth" / d.name / f"{p.stem}_mask.png"
                entries.append((p, 0 if good else 1, "" if good else d.name, m if (not good and m.is_file()) else None))
    if not entries:
        raise DatasetError(f"{root}: no MVTec layout (expected train/good/ and test/<defect>/)")
    for lab, name in ((0, "good (intact)"), (1, "defect (damaged)")):
        if not any(e[1] == lab for e in entries):
            raise DatasetError(f"{root}: no {name} images in the MVTec layout")
    return _build_real(entries, size, {"kind": "mvtec", "root": str(root)}, progress)


def _is_damage_name(name: str) -> bool:
    n = name.lower()
    return n == "damaged" or n.startswith("damage") or n in KAPUTT_CATEGORIES


def load_coco(path: str | Path, images_dir: str | Path | None = None, size: int = 96, progress: bool = False
              ) -> ImageSet:
    """Layout (b): a COCO json; image-level label from its damage annotations."""
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        images = coco["images"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: not a readable COCO file ({e.__class__.__name__}: {e})") from None
    base = Path(images_dir) if images_dir is not None else path.parent
    dmg: dict[int, str] = {}
    for a in coco.get("annotations", []):
        if a.get("category_id") not in cats:
            raise DatasetError(f"{path}: annotation {a.get('id')} has unknown category_id {a.get('category_id')}")
        name = cats[a["category_id"]]
        if _is_damage_name(name):
            c = name.split("/", 1)[1] if "/" in name else ("" if name.lower() == "damaged" else name)
            dmg.setdefault(a["image_id"], c)
    entries = [(base / im["file_name"], int(im["id"] in dmg), dmg.get(im["id"], ""), None) for im in images]
    if not entries:
        raise DatasetError(f"{path}: COCO file lists no images")
    for lab, name in ((1, "damaged (no damage annotation)"), (0, "intact (every image has a damage annotation)")):
        if not any(e[1] == lab for e in entries):
            raise DatasetError(f"{path}: no {name} images")
    for p, *_ in entries:
        if not p.is_file():
            raise DatasetError(f"{p}: image listed in {path} does not exist")
    return _build_real(entries, size, {"kind": "coco", "file": str(path)}, progress)


def load_real(path: str | Path, size: int = 96, progress: bool = False) -> ImageSet:
    """Detect the layout of ``path`` (COCO json, class folders or MVTec) and load it;
    ``kaputt:ROOT[?options]`` loads a Kaputt split (harness.kaputt.load_kaputt_spec)."""
    if str(path).startswith("kaputt:"):
        return load_kaputt_spec(str(path), size=size, progress=progress)
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return load_coco(p, size=size, progress=progress)
        raise DatasetError(f"{p}: expected a folder or a COCO .json file")
    if (p / "damaged").is_dir() or (p / "intact").is_dir():
        return load_class_folders(p, size=size, progress=progress)
    if (p / "train" / "good").is_dir() or (p / "test").is_dir():
        return load_mvtec(p, size=size, progress=progress)
    if any((p / "datasets").glob("query-*.parquet")):
        raise DatasetError(f"{p}: is a Kaputt layout; name it kaputt:{p} (options: ?split=train&defect_rate=0.01)")
    if (p / "dataset.json").is_file() or any(p.glob("shard-*.tar")):
        raise DatasetError(f"{p}: is a damagesim (synthetic) dataset; pass it with --synthetic")
    raise DatasetError(f"{p}: unknown layout; expected damaged/ + intact/ class folders, "
                       "an MVTec folder (train/good, test/<defect>), a COCO .json or kaputt:ROOT")
