"""Image sets for the lift harness: damagesim output and real photographs, loaded
into one in-memory form (:class:`ImageSet`) of small square crops.

Synthetic label (documented choice): one sample = one camera view of one capture,
cropped around the item via the instance mask (real photos are item-centred).
The view is *damaged* when at least ``min_damage_px`` damage pixels of that view
(``damage_category.png > 0``) are visible; a damaged item whose damage is hidden
from a camera is intact *in that image*, because nothing in the pixels says
otherwise. The capture-level ``items[].damaged`` flag is kept in ``item_damaged``.

Synthetic input: a dataset folder (capture folders and/or ``shards/``), a folder
of WebDataset shards with its ``index.json``, or a run still in progress. Shard
samples are streamed from the tar (never extracted) and go through the same crop
code as folders, so both give identical samples.

Real layouts (:func:`load_real` detects which):
  (a) class folders: ``ROOT/damaged/**/IMG``, ``ROOT/intact/**/IMG``; a first-level
      subfolder of ``damaged/`` is the damage category; optional masks at
      ``ROOT/masks/<same relative path, .png>`` (non-zero = damage).
  (b) COCO: a ``.json`` file; ``images[].file_name`` relative to the json's folder
      or ``images_dir``; an image is damaged when it has an annotation whose
      category name is ``damaged``, starts with ``damage`` or is a Kaputt category.
  (c) MVTec / anomalib: ``ROOT/{train,test}/good/IMG`` intact,
      ``ROOT/test/<defect>/IMG`` damaged (category = defect), masks at
      ``ROOT/ground_truth/<defect>/<stem>_mask.png``.
  (d) Kaputt, named ``kaputt:ROOT[?split=..&defect_rate=..]``: parquet tables and
      image folders as anomalib reads them (harness.kaputt.load_kaputt).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from simulator.dataset.reader import DatasetReadError, FolderCapture, open_dataset

__all__ = ["DatasetError", "ImageSet", "load_synthetic",
           "load_references", "IMAGE_EXTS", "KAPUTT_CATEGORIES"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
KAPUTT_CATEGORIES = ("deformation", "penetration", "deconstruction", "spillage", "missing_unit", "superficial")


class DatasetError(ValueError):
    """A dataset on disk is missing, empty, unreadable or inconsistent; the
    message names the file or folder."""


@dataclass
class ImageSet:
    """Square crops with image-level labels.

    images: ``(n, S, S, C)`` uint8 (C = 3 RGB, or 4 with a depth channel:
        item-relative depth, 128 = item median, 1 grey level = 1 mm, clipped).
    labels: ``(n,)`` int64, 1 = damaged.
    categories: n strings, damage category of the view ("" = intact / unknown).
    masks: ``(n, S, S)`` uint8 0/1 damage masks, or None; ``has_mask`` ``(n,)`` bool.
    sources: n unique ids (file path, or ``capture/camera``).
    groups: n group ids; samples of one group (the cameras of one capture) are
        never split between train and test.
    aspect: ``(n,)`` float, width / height of the original image or item crop box.
    kinds: n product kinds (``carton``, ``pouch``, ...; "" = unknown), or None.
    severity: n severities of the view's damage (``major`` when any visible
        damage is major, else ``minor``; "" = intact / unknown), or None.
    """

    images: np.ndarray
    labels: np.ndarray
    categories: list[str]
    sources: list[str]
    groups: list[str]
    aspect: np.ndarray
    masks: np.ndarray | None = None
    has_mask: np.ndarray | None = None
    item_damaged: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    kinds: list[str] | None = None
    severity: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.ndim != 4 or self.images.shape[0] != n or self.images.shape[1] != self.images.shape[2]:
            raise ValueError(f"images must have shape (n, S, S, C) with n = {n}, got {self.images.shape}")
        for name in ("categories", "sources", "groups", "aspect"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have length {n}, got {len(getattr(self, name))}")
        for name in ("kinds", "severity"):
            if getattr(self, name) is not None and len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have length {n}, got {len(getattr(self, name))}")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"masks must have shape {self.images.shape[:3]}, got {self.masks.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def subset(self, idx: Sequence[int] | np.ndarray) -> "ImageSet":
        """A new set of the rows ``idx`` (in that order; repeats allowed), every column
        and ``meta`` copied along."""
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        lst = lambda a: None if a is None else [a[i] for i in idx]  # noqa: E731
        return ImageSet(self.images[idx], self.labels[idx], [self.categories[i] for i in idx],
                        [self.sources[i] for i in idx], [self.groups[i] for i in idx], self.aspect[idx],
                        pick(self.masks), pick(self.has_mask), pick(self.item_damaged), dict(self.meta),
                        lst(self.kinds), lst(self.severity))

    def counts(self) -> dict:
        """{``n``: rows, ``damaged``: label 1, ``intact``: label 0}."""
        return {"n": len(self), "damaged": int(self.labels.sum()), "intact": int((self.labels == 0).sum())}

    def save(self, path: str | Path) -> None:
        """Cache to one ``.npz`` (read back with :meth:`load`)."""
        np.savez_compressed(path, images=self.images, labels=self.labels, categories=np.array(self.categories),
                            sources=np.array(self.sources), groups=np.array(self.groups), aspect=self.aspect,
                            masks=self.masks if self.masks is not None else np.zeros(0, np.uint8),
                            has_mask=self.has_mask if self.has_mask is not None else np.zeros(0, bool),
                            item_damaged=(self.item_damaged if self.item_damaged is not None
                                          else np.zeros(0, bool)), meta=json.dumps(self.meta),
                            kinds=np.array(self.kinds if self.kinds is not None else [], dtype=str),
                            severity=np.array(self.severity if self.severity is not None else [], dtype=str),
                            has_kinds=self.kinds is not None, has_severity=self.severity is not None)

    @classmethod
    def load(cls, path: str | Path) -> "ImageSet":
        """An ImageSet cached by :meth:`save` at ``path`` (a ``.npz``). Caches written
        before ``kinds``/``severity`` existed load with those None."""
        z = np.load(path, allow_pickle=False)
        opt = lambda k: z[k] if z[k].size else None  # noqa: E731
        # caches written before kinds/severity existed have neither key
        lst = lambda k: z[k].tolist() if f"has_{k}" in z and bool(z[f"has_{k}"]) else None  # noqa: E731
        return cls(z["images"], z["labels"], z["categories"].tolist(), z["sources"].tolist(), z["groups"].tolist(),
                   z["aspect"], opt("masks"), opt("has_mask"), opt("item_damaged"), json.loads(str(z["meta"])),
                   lst("kinds"), lst("severity"))


# ----------------------------------------------------------------------------- image helpers

def _read_image(src: Path | bytes, mode: str = "RGB", name: str | None = None) -> np.ndarray:
    """Decode an image file (a path, or its bytes read from a shard; ``name``
    says where they came from in messages)."""


    name = name if name is not None else str(src)
    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            if mode == "RGB" and im.mode in ("I;16", "I"):
                raise DatasetError(f"{name}: expected a colour image, got a 16-bit single-channel image")
            return np.asarray(im.convert(mode) if mode else im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"{name}: cannot read image ({e.__class__.__name__}: {e})") from None


def _resize(a: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:

    im = Image.fromarray(a)
    return np.asarray(im.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR))


def crop_box(mask: np.ndarray, pad: float, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Square box ``(x0, y0, x1, y1)`` (pixels, exclusive end) around ``mask``'s
    non-zero pixels, grown by ``pad`` of its longer side each way and clipped to
    ``shape`` (H, W); None when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * (1 + 2 * pad)
    H, W = shape
    side = min(side, H, W)
    x0 = int(round(min(max(cx - side / 2, 0), W - side)))
    y0 = int(round(min(max(cy - side / 2, 0), H - side)))
    return x0, y0, x0 + int(side), y0 + int(side)


# ----------------------------------------------------------------------------- synthetic

def _as_dataset_errors(caps):
    """The reader's captures, its read errors (raised while iterating: a shard is
    read as it streams) re-raised as this module's DatasetError."""
    try:
        yield from caps
    except DatasetReadError as e:
        raise DatasetError(str(e)) from None


def _view_sample(cap, cam: str, files: dict, size: int, pad: float, min_px: int, depth: bool,
                 prefix: str = "", severities: dict | None = None) -> tuple | None:
    """One camera view of ``cap`` (a simulator.dataset.reader.Capture: folder or shard
    sample; same bytes, same sample) -> (image, mask, label, category, aspect,
    severity), None when the item is not visible, "ambiguous" when too little
    damage shows. severities: damage_instance_id -> "minor"/"major" of the
    capture; a damaged view is "major" when any damage instance visible in it
    (``damage_instance`` layer) is major, else "minor"; "" when intact or unknown."""
    def read(layer, mode):
        rel = files[prefix + layer]
        try:
            data = cap.read(rel)
        except OSError as e:
            raise DatasetError(f"{cap.location(rel)}: cannot read ({type(e).__name__}: {e})") from None
        return _read_image(data, mode, cap.location(rel))

    def f(layer):
        return cap.location(files[prefix + layer])

    inst = read("instance", "")
    box = crop_box(inst > 0, pad, inst.shape[:2])
    if box is None:
        return None
    x0, y0, x1, y1 = box
    rgb = read("rgb", "RGB")
    if rgb.shape[:2] != inst.shape[:2]:
        raise DatasetError(f"{f('rgb')}: size {rgb.shape[1]}x{rgb.shape[0]} differs from its instance mask "
                           f"{inst.shape[1]}x{inst.shape[0]} ({f('instance')})")
    dcat = read("damage_category", "")
    if dcat.shape[:2] != inst.shape[:2]:
        raise DatasetError(f"{f('damage_category')}: size {dcat.shape[::-1]} differs from {f('instance')}")
    img = _resize(rgb[y0:y1, x0:x1], size)
    if depth:
        d = read("depth", "").astype(np.float64)[y0:y1, x0:x1]
        item = inst[y0:y1, x0:x1] > 0
        med = np.median(d[item & (d > 0)]) if np.any(item & (d > 0)) else 0.0
        rel = np.clip(128 + (med - d), 0, 255).astype(np.uint8)  # nearer than median = brighter
        rel[d == 0] = 0
        img = np.concatenate([img, _resize(rel, size, nearest=True)[..., None]], axis=2)
    dc = dcat[y0:y1, x0:x1]
    n_dmg = int((dc > 0).sum())
    if 0 < n_dmg < min_px:
        return "ambiguous"
    label = int(n_dmg >= min_px)
    cat = ""
    if label:
        vals, cnt = np.unique(dc[dc > 0], return_counts=True)
        cat = KAPUTT_CATEGORIES[int(vals[np.argmax(cnt)]) - 1] if 1 <= vals[np.argmax(cnt)] <= 6 else "unknown"
    sev = ""
    if label and severities:
        if prefix + "damage_instance" in files:
            ids = np.unique(read("damage_instance", "")[y0:y1, x0:x1][dc > 0])
            seen = [severities.get(int(i), "") for i in ids if i > 0]
        else:  # no per-instance layer: the capture's damages
            seen = list(severities.values())
        sev = "major" if "major" in seen else ("minor" if "minor" in seen else "")
    mask = _resize((dc > 0).astype(np.uint8), size, nearest=True)
    return img, mask, label, cat, (x1 - x0) / max(y1 - y0, 1), sev


def load_synthetic(roots: str | Path | Sequence[str | Path], size: int = 96, pad: float = 0.15,
                   min_damage_px: int = 1, cameras: Sequence[str] | None = None, depth: bool = False,
                   limit: int | None = None, progress: bool = False) -> ImageSet:
    """Every RGB/RGB-D camera view of every capture of one or more damagesim datasets.

    A root is a dataset folder (capture folders and/or ``shards/``), a folder of
    WebDataset shards with its ``index.json`` (``damagesim export shards``), or a
    run still in progress. Shards are read as a stream, one sample at a time;
    a capture gives the same sample whether it is read from a folder or a shard.

    size: crop side in pixels; pad: crop margin as a fraction of the item box's
    longer side; min_damage_px: visible damage pixels (at full resolution) for a
    view to count as damaged (views with 1 .. min_damage_px - 1 are too small to
    call either way at crop resolution and are dropped, counted in ``meta``); cameras: restrict to these camera names; depth: add
    the item-relative depth channel; limit: first ``limit`` captures (in id order) per root.
    Views where the item is not visible are skipped (counted in ``meta``).
    """
    return _load_synthetic(roots, size, pad, min_damage_px, cameras, depth, limit, progress)[0]


def _load_synthetic(roots, size, pad, min_damage_px, cameras, depth, limit, progress) -> tuple[ImageSet, list[str]]:
    """load_synthetic, plus the SKU of each view's (first) item."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if not roots:
        raise DatasetError("no synthetic dataset given")


    sources = []
    for r in roots:  # every root is checked before the long read starts
        try:
            caps, count = open_dataset(Path(r))
        except DatasetReadError as e:
            raise DatasetError(str(e)) from None
        caps = _as_dataset_errors(caps)
        if limit is not None:
            caps, count = islice(caps, limit), (min(count, limit) if count >= 0 else limit)
        sources.append((Path(r), caps, count))
    total = None if any(c < 0 for *_, c in sources) else sum(c for *_, c in sources)
    rows, skipped, ambiguous = [], 0, 0
    with tqdm(total=total, desc="load synthetic", unit="capture", disable=not progress) as bar:
        for root, caps, count in sources:
            seen = 0
            for cap in caps:
                seen += 1
                bar.update(1)
                try:
                    meta = cap.meta
                except (OSError, ValueError) as e:
                    raise DatasetError(f"{cap.location('capture.json')}: cannot read capture metadata ({e})") from None
                item_dmg = any(it.get("damaged", False) for it in meta.get("items", []))
                sku = meta["items"][0]["sku"] if meta.get("items") else ""
                kind = meta["items"][0].get("kind", "") if meta.get("items") else ""
                sevs = {int(d["damage_instance_id"]): d.get("severity", "") for d in meta.get("damages", [])
                        if isinstance(d, dict) and "damage_instance_id" in d}
                for cam, c in meta["cameras"].items():
                    if c["modality"] not in ("rgb", "rgbd") or (cameras is not None and cam not in cameras):
                        continue
                    s = _view_sample(cap, cam, c["files"], size, pad, min_damage_px, depth, severities=sevs)
                    if s is None or isinstance(s, str):
                        skipped += s is None
                        ambiguous += s == "ambiguous"
                        continue
                    rows.append((s, f"{root.name}/{cap.name}/{cam}", f"{root.name}/{cap.name}", item_dmg, sku, kind))
            if count >= 0 and seen != count:
                raise DatasetError(f"{root}: the dataset lists {count} captures but {seen} were read "
                                   f"(a truncated shard or a missing capture folder?)")
    if not rows:
        raise DatasetError(f"{', '.join(map(str, roots))}: no camera view shows an item "
                           f"(cameras={list(cameras) if cameras else 'all rgb'})")
    return ImageSet(np.stack([r[0][0] for r in rows]), np.array([r[0][2] for r in rows], np.int64),
                    [r[0][3] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                    np.array([r[0][4] for r in rows]), np.stack([r[0][1] for r in rows]),
                    np.ones(len(rows), bool), np.array([r[3] for r in rows]),
                    {"kind": "synthetic", "roots": [str(r) for r in roots], "skipped_views": skipped,
                     "ambiguous_views_dropped": ambiguous,
                     "label": f"view damaged when >= {min_damage_px} damage pixels visible, intact at 0; "
                              "views in between are dropped"},
                    [r[5] for r in rows], [r[0][5] for r in rows]), [r[4] for r in rows]


def load_references(root: str | Path, size: int = 96, pad: float = 0.15, cameras: Sequence[str] | None = None
                    ) -> tuple[ImageSet, ImageSet, list[str], list[str]]:
    """Kaputt-style query/reference views of one damagesim dataset made with
    ``--reference-poses`` >= 1: returns ``(queries, references, query_skus,
    reference_skus)``; queries are the captures' views (folders or shards), references the pristine
    ``references/<sku>/<k>/`` views. Queries whose SKU has no reference are dropped."""

    root = Path(root)
    card = json.loads((root / "dataset.json").read_text()) if (root / "dataset.json").is_file() else None
    if card is None:
        raise DatasetError(f"{root}: not a damagesim dataset (no dataset.json)")
    refs = card["files"].get("references", [])
    if not refs:
        raise DatasetError(f"{root / 'dataset.json'}: no reference captures; generate with --reference-poses 1 or more")
    rows, ref_skus = [], []
    for rel in refs:
        rcap = FolderCapture(root / rel)
        try:
            cap = rcap.meta
        except (OSError, ValueError) as e:
            raise DatasetError(f"{rcap.location('capture.json')}: cannot read capture metadata ({e})") from None
        sku = cap["items"][0]["sku"]
        for cam, c in cap["cameras"].items():
            if c["modality"] not in ("rgb", "rgbd") or (cameras is not None and cam not in cameras):
                continue
            s = _view_sample(rcap, cam, c["files"], size, pad, 1, False)
            if s is not None and not isinstance(s, str):
                rows.append((s, f"{rel}/{cam}", rel))
                ref_skus.append(sku)
    ref = ImageSet(np.stack([r[0][0] for r in rows]), np.zeros(len(rows), np.int64), [""] * len(rows),
                   [r[1] for r in rows], [r[2] for r in rows], np.array([r[0][4] for r in rows]),
                   meta={"kind": "references"})
    q, skus = _load_synthetic(root, size, pad, 1, cameras, False, None, False)
    keep = [i for i, s in enumerate(skus) if s in set(ref_skus)]
    return q.subset(keep), ref, [skus[i] for i in keep], ref_skus


# ----------------------------------------------------------------------------- real













