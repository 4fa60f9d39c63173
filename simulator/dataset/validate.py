"""``damagesim validate DATASET``: check a dataset end to end and list problems.

Checks
- dataset.json loads; every capture (folder or shard sample) has capture.json,
  annotations.json and every file its cameras list; each PNG decodes fully and
  has the camera's resolution and the layer's dtype;
- masks are consistent in every frame (pristine ones too): a damage pixel is an
  item pixel; damage category > 0 <=> damage instance > 0; part > 0 <=> instance > 0;
  ids name items / damages of capture.json;
- no capture is both in a shard and in a folder; shards: index.json lists every
  shard with the right keys, size and sha256; every tar reads to the end;
- COCO per camera loads with pycocotools and its annotations are those of the
  captures' annotations.json (same masks, boxes, areas, categories);
- the card's counts and capture list match what is on disk; references are whole;
- manifest.jsonl lists exactly the captures on disk (what --resume trusts).
Stale temporary folders (a killed run not yet resumed) are warnings.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from damage_ops.taxonomy import CATEGORIES
from simulator.dataset.manifest import MANIFEST, logged_captures
from simulator.dataset.reader import FolderCapture, iter_dataset
from simulator.dataset.shards import INDEX, SHARD_DIR, iter_shard, shard_files

LAYER_DTYPES = {"rgb": np.uint8, "depth": np.uint16, "instance": np.uint16, "part": np.uint8,
                "damage_category": np.uint8, "damage_instance": np.uint16}


@dataclass
class ValidationReport:
    """Outcome of :func:`validate`: ``problems`` (each a message naming the file or
    capture; any one makes the dataset invalid), ``warnings`` (e.g. stale temporary
    folders), and the number of captures and files checked."""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    captures: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _decode(data: bytes) -> np.ndarray:

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def check_capture(cap, rep: ValidationReport) -> dict[str, Any] | None:
    """Check one capture (simulator.dataset.reader.Capture); returns its metadata or None."""
    P = rep.problems.append
    try:
        meta = cap.meta
    except (OSError, ValueError) as e:
        P(f"{cap.where}: capture.json unreadable: {e}")
        return None
    rep.files += 1
    if not cap.has("annotations.json"):
        P(f"{cap.where}: annotations.json missing")
    else:
        try:
            cap.json("annotations.json")
            rep.files += 1
        except ValueError as e:
            P(f"{cap.where}: annotations.json unreadable: {e}")
    item_ids = {it["instance_id"] for it in meta.get("items", [])}
    dmg_ids = {d["damage_instance_id"] for d in meta.get("damages", [])}
    for cam, c in meta.get("cameras", {}).items():
        w, h = c["resolution"]
        sets: dict[str, dict[str, np.ndarray]] = {}
        for key, rel in c.get("files", {}).items():
            prefix, _, layer = key.rpartition("/")
            if not cap.has(rel):
                P(f"{cap.where}: {rel} missing")
                continue
            try:
                a = _decode(cap.read(rel))
            except Exception as e:  # any decoder error is a finding, not a crash
                P(f"{cap.where}: {rel} does not decode ({type(e).__name__}: {e})")
                continue
            rep.files += 1
            if a.shape[:2] != (h, w):
                P(f"{cap.where}: {rel} has shape {a.shape}, camera {cam} is {w}x{h}")
                continue
            want = LAYER_DTYPES.get(layer)
            if want is not None and a.dtype != want:
                P(f"{cap.where}: {rel} is {a.dtype}, expected {np.dtype(want)}")
            sets.setdefault(prefix, {})[layer] = a
        for prefix, L in sets.items():
            where = f"{cap.where}: {prefix + '/' if prefix else ''}{cam}"
            if not {"instance", "part", "damage_category", "damage_instance"} <= set(L):
                continue
            inst, part, dcat, dinst = L["instance"], L["part"], L["damage_category"], L["damage_instance"]
            n = int(((dcat > 0) & (inst == 0)).sum())
            if n:
                P(f"{where}: {n} damage pixel(s) outside the item mask")
            n = int(((dcat > 0) != (dinst > 0)).sum())
            if n:
                P(f"{where}: {n} pixel(s) where damage_category and damage_instance disagree")
            n = int(((part > 0) != (inst > 0)).sum())
            if n:
                P(f"{where}: {n} pixel(s) where part > 0 and instance > 0 disagree")
            bad = sorted(set(np.unique(inst).tolist()) - {0} - item_ids)
            if bad:
                P(f"{where}: instance ids {bad} not in capture.json items")
            bad = sorted(set(np.unique(dinst).tolist()) - {0} - dmg_ids)
            if bad:
                P(f"{where}: damage instance ids {bad} not in capture.json damages")
    return meta


def _check_shards(root: Path, rep: ValidationReport) -> None:

    d = root / SHARD_DIR
    files = shard_files(d)
    if not files:
        return
    try:
        index = json.loads((d / INDEX).read_text())
    except (OSError, ValueError) as e:
        rep.problems.append(f"{SHARD_DIR}/{INDEX}: unreadable ({e})")
        index = {"shards": []}
    listed = {e["file"]: e for e in index.get("shards", [])}
    for _k, p in files:
        e = listed.pop(p.name, None)
        rel = f"{SHARD_DIR}/{p.name}"
        if e is None:
            rep.problems.append(f"{rel}: not in {SHARD_DIR}/{INDEX}")
        try:
            keys = [k for k, _ in iter_shard(p)]
        except Exception as ex:  # tarfile.ReadError, EOFError, ...: a torn or corrupt tar
            rep.problems.append(f"{rel}: unreadable tar ({type(ex).__name__}: {ex})")
            continue
        if e is not None:
            if keys != e.get("keys"):
                rep.problems.append(f"{rel}: keys {keys[:3]}... differ from the index")
            if p.stat().st_size != e.get("bytes"):
                rep.problems.append(f"{rel}: {p.stat().st_size} bytes, index says {e.get('bytes')}")
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            if h != e.get("sha256"):
                rep.problems.append(f"{rel}: sha256 differs from the index")
        if len(set(keys)) != len(keys):
            rep.problems.append(f"{rel}: duplicate keys")
    for name in listed:
        rep.problems.append(f"{SHARD_DIR}/{INDEX} lists {name}, which is missing")


def _check_manifest(root: Path, n: int, on_disk: set[str], rep: ValidationReport) -> None:
    """manifest.jsonl (what resume trusts) must list exactly the captures on disk."""

    path = root / MANIFEST
    if not path.is_file():
        rep.warnings.append(f"{MANIFEST}: missing (a dataset not made by generate, or copied without it)")
        return
    entries = []
    for k, line in enumerate(path.read_bytes().splitlines()):
        try:
            entries.append(json.loads(line))
        except ValueError:
            rep.problems.append(f"{MANIFEST}: line {k + 1} is not JSON (a torn line: rerun generate with --resume)")
            break
    logged = {f"{i:06d}" for i in logged_captures(entries) if i < n}
    if on_disk - logged:
        rep.problems.append(f"{MANIFEST}: captures on disk not in the manifest: {sorted(on_disk - logged)[:8]} "
                            f"({len(on_disk - logged)}; rerun generate with --resume to record them)")
    if logged - on_disk:
        rep.problems.append(f"{MANIFEST}: lists captures that are not on disk: {sorted(logged - on_disk)[:8]} "
                            f"({len(logged - on_disk)})")


def _ann_key(a: dict[str, Any]) -> tuple:
    seg = a["segmentation"]
    return (a["category_id"], seg["counts"] if isinstance(seg, dict) else json.dumps(seg),
            tuple(a["bbox"]), a["area"])


def validate(root: Path) -> ValidationReport:
    """Check the dataset at ``root`` end to end (see the module docstring for the
    checks). Never raises for a bad dataset: every problem found is a message in
    the returned report (a missing dataset.json stops the checks at once)."""

    root = Path(root)
    rep = ValidationReport()
    P = rep.problems.append
    try:
        card = json.loads((root / "dataset.json").read_text())
    except (OSError, ValueError) as e:
        P(f"dataset.json: missing or unreadable ({e})")
        return rep
    n = int(card.get("spec", {}).get("n", 10 ** 12))
    _check_shards(root, rep)

    for d in [root, root / "captures", root / "shards"]:
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith((".tmp-", ".del-", ".old-", ".stage-")):
                    rep.warnings.append(f"{p.relative_to(root)}: stale temporary entry (rerun generate with --resume)")

    # captures
    anns: dict[str, dict[str, list]] = {}
    counts = {"items": 0, "captures_with_damage": 0, "pristine_pairs": 0, "hard_negative_captures": 0}
    by_kind: dict[str, int] = {}
    by_cat = {c: 0 for c in CATEGORIES}
    by_sev = {"minor": 0, "major": 0}
    seen: dict[str, str] = {}
    folder_names = set()
    try:
        for cap in iter_dataset(root):
            if cap.name in seen:
                P(f"capture {cap.name} appears twice ({seen[cap.name]} and {cap.where})")
                continue
            seen[cap.name] = cap.where
            if isinstance(cap, FolderCapture):
                folder_names.add(cap.name)
            if cap.name.isdigit() and int(cap.name) >= n:
                continue
            rep.captures += 1
            meta = check_capture(cap, rep)
            if meta is None:
                continue
            try:
                anns[cap.name] = {k: [_ann_key(a) for a in v] for k, v in cap.json("annotations.json").items()}
            except (OSError, ValueError, KeyError, TypeError):
                pass
            counts["items"] += len(meta["items"])
            counts["captures_with_damage"] += bool(meta["damages"])
            counts["pristine_pairs"] += bool(meta.get("pristine_pair"))
            counts["hard_negative_captures"] += bool(meta.get("hard_negative"))
            for it in meta["items"]:
                by_kind[it["kind"]] = by_kind.get(it["kind"], 0) + 1
            for dm in meta["damages"]:
                by_cat[dm["category"]] = by_cat.get(dm["category"], 0) + 1
                by_sev[dm["severity"]] = by_sev.get(dm["severity"], 0) + 1
    except Exception as e:  # a shard that stops mid-way: reported above per shard too
        P(f"reading captures stopped: {type(e).__name__}: {e}")

    # folders that exist but are not complete captures
    cdir = root / "captures"
    if cdir.is_dir():
        for p in cdir.iterdir():
            if p.is_dir() and not p.name.startswith(".") and not (p / "capture.json").is_file():
                P(f"captures/{p.name}: folder without capture.json")

    # references
    for rc in sorted(root.glob("references/*/*/capture.json")):
        check_capture(FolderCapture(rc.parent), rep)

    # card counts
    c = card.get("counts", {})
    ncam = len(card.get("rig", {}).get("cameras", []))
    mine = {"captures": rep.captures, "frames": rep.captures * ncam, **counts,
            "items_by_kind": dict(sorted(by_kind.items())), "damages_by_category": by_cat,
            "damages_by_severity": by_sev,
            "reference_captures": len(list(root.glob("references/*/*/capture.json")))}
    for k, v in mine.items():
        if c.get(k) != v:
            P(f"dataset.json: counts.{k} is {c.get(k)!r}, the dataset has {v!r}")
    listed = {Path(x).name for x in card.get("files", {}).get("captures", [])}
    want = {x for x in folder_names if int(x) < n}
    if listed != want:
        P(f"dataset.json: files.captures lists {len(listed)} folders, disk has {len(want)} "
          f"(missing on disk: {sorted(listed - want)[:5]}, not listed: {sorted(want - listed)[:5]})")
    for k in range(n if n < 10 ** 12 else 0):
        if f"{k:06d}" not in seen and str(k) not in card.get("failed_captures", {}):
            P(f"capture {k:06d} missing (spec n = {n})")
            break

    _check_manifest(root, n, {k for k in seen if k.isdigit() and int(k) < n}, rep)

    # COCO
    from pycocotools.coco import COCO

    for cam, rel in card.get("files", {}).get("coco", {}).items():
        try:

            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(root / rel))
        except Exception as e:  # pycocotools raises bare AssertionError, KeyError, ValueError
            P(f"{rel}: does not load with pycocotools ({type(e).__name__}: {e})")
            continue
        imgs = coco.loadImgs(coco.getImgIds())
        if len(imgs) != rep.captures:
            P(f"{rel}: {len(imgs)} images, the dataset has {rep.captures} captures")
        for img in imgs:
            name = img.get("capture")
            if name not in anns:
                P(f"{rel}: image {img['id']} names capture {name!r}, which is not in the dataset")
                continue
            got = sorted(_ann_key(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])))
            if got != sorted(anns[name].get(cam, [])):
                P(f"{rel}: annotations of capture {name} differ from its annotations.json")
    return rep
