"""Dataset writers: per-capture folders, COCO per camera, the dataset card.

Layout of one dataset (all paths relative to its root)::

    dataset.json   dataset card (spec, seed, code version, counts, label map, files)
    dataset.md     the same, short, for people
    coco/<camera>.json               COCO instances + damage segments (RLE) per camera
    captures/<id>/capture.json       cameras (K, distortion, T_world_from_cam), items, damages
    captures/<id>/annotations.json   this capture's COCO annotations per camera
    captures/<id>/<camera>/{rgb,depth,instance,part,damage_category,damage_instance}.png

Every file is written to a temporary name and renamed into place, and a capture
folder appears only once complete, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import errno  # SIBLING
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from damage_ops.taxonomy import CATEGORIES, CATEGORY_IDS, PART_NAMES
from simulator import __version__
from simulator.core.errors import OutputError
from simulator.core.paths import REPO_ROOT

LAYERS = ("rgb", "depth", "instance", "part", "damage_category", "damage_instance")
DEPTH_SCALE_M = 0.001  # depth PNG unit: 1 mm
PRODUCT_KINDS = ("carton", "mailer", "blister", "bottle", "pouch", "multipack", "mesh")
#: COCO category ids: item kinds 1..7, damage categories 101..106
ITEM_CATEGORY_IDS = {k: i + 1 for i, k in enumerate(PRODUCT_KINDS)}
DAMAGE_CATEGORY_OFFSET = 100
CAPTURE_FORMAT = "damagesim-capture/1"
DATASET_FORMAT = "damagesim-dataset/1"


def capture_id(index: int) -> str:
    """Folder name / WebDataset key of capture ``index``: six digits, ``7`` -> ``000007``."""
    return f"{index:06d}"


def label_map() -> dict[str, Any]:
    """What the values of each label image mean, for the dataset card:
    {layer: {value: meaning}}; ``depth`` gives its unit (``unit_m`` = 0.001, i.e. mm)."""
    return {
        "instance": {"0": "no item (tray, booth, no return)", "k": "items[k-1] in capture.json (instance_id k)"},
        "part": {str(i): n for i, n in enumerate(PART_NAMES)},
        "damage_category": {"0": "intact", **{str(CATEGORY_IDS[c]): c for c in CATEGORIES}},
        "damage_instance": {"0": "intact", "k": "damages[] entry with damage_instance_id k in capture.json"},
        "depth": {"unit_m": DEPTH_SCALE_M, "0": "no return"},
    }


def coco_categories() -> list[dict[str, Any]]:
    """COCO ``categories``: item kinds with ids 1..7 (supercategory ``item``), then
    damage categories ``damage/<name>`` with ids 100 + category id (101..106,
    supercategory ``damage``)."""
    cats = [{"id": ITEM_CATEGORY_IDS[k], "name": k, "supercategory": "item"} for k in PRODUCT_KINDS]
    cats += [{"id": DAMAGE_CATEGORY_OFFSET + CATEGORY_IDS[c], "name": f"damage/{c}", "supercategory": "damage"}
             for c in CATEGORIES]
    return cats


def code_version() -> dict[str, Any]:
    """{``damagesim``: package version, ``git``: HEAD commit of the repository or None,
    ``git_dirty``: tracked files modified (only when git answered)}. Never raises:
    no git, or not a checkout, gives ``git = None``."""
    out = {"damagesim": __version__, "git": None}
    try:
        sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if sha.returncode == 0:
            out["git"] = sha.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5)
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# -- atomic writes ------------------------------------------------------------
def umask() -> int:
    """This process's umask, read without changing it (Linux: /proc; elsewhere
    the set-and-restore dance)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _mkstemp(**kw) -> tuple[int, str]:
    """tempfile.mkstemp with the mode a plain open() would give (mkstemp makes
    0600 whatever the umask: a dataset on a shared disk must be readable)."""
    fd, tmp = tempfile.mkstemp(**kw)
    os.fchmod(fd, 0o666 & ~umask())
    return fd, tmp


def _mkdtemp(**kw) -> Path:
    """tempfile.mkdtemp with the mode a plain mkdir would give (not 0700)."""
    d = tempfile.mkdtemp(**kw)
    os.chmod(d, 0o777 & ~umask())
    return Path(d)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, rename over ``path``."""
    path = Path(path)
    fd, tmp = _mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        done = True
    finally:
        if not done and os.path.exists(tmp):
            os.unlink(tmp)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (h, w) / (h, w, 3) or uint16 (h, w) -> the bytes of a lossless PNG.
    Deterministic bytes (for one zlib build).

    Every row is "Up"-filtered (the difference to the row above) and deflated at
    level 1 with zlib's run-length strategy: label and depth images are long
    runs and a rendered photo's rows differ little, so this is as small as
    Pillow's adaptive filtering at level 1 for well under half its time, and
    numpy and zlib release the GIL while they work, so encoders run in parallel
    threads and beside rendering."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"encode_png: expected uint8 or uint16, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8)) or 0 in a.shape:
        raise ValueError(f"encode_png: expected (h, w) or (h, w, 3) uint8, got shape {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    raw = (a.astype(">u2") if a.dtype == np.uint16 else np.ascontiguousarray(a)).view(np.uint8).reshape(h, -1)
    rows = np.empty((h, raw.shape[1] + 1), np.uint8)
    rows[:, 0] = 2  # filter type "Up" on every row (row 0: its row above is zeros)
    rows[0, 1:] = raw[0]
    np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])  # modulo 256, as PNG wants
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    idat = z.compress(rows) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 16 if a.dtype == np.uint16 else 8, 0 if a.ndim == 2 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def save_png(path: Path, array: np.ndarray) -> None:
    """uint8 (h, w) / (h, w, 3) or uint16 (h, w) -> PNG (:func:`encode_png`)."""
    Path(path).write_bytes(encode_png(array))


def depth_to_png(depth_m: np.ndarray) -> np.ndarray:
    """(h, w) float meters -> uint16 millimetres, 0 = no return; values beyond
    65.535 m become 0 (no return) rather than wrapping."""
    mm = np.rint(depth_m.astype(np.float64) / DEPTH_SCALE_M)
    mm[(mm > 65535) | ~np.isfinite(mm)] = 0
    return mm.astype(np.uint16)


# -- COCO ------------------------------------------------------------------------
def _masks(img: np.ndarray):
    """For each non-zero id of a label image, ascending: (id, COCO RLE, area, bbox)
    of ``img == id``, the same values as ``pycocotools.mask.encode``, the pixel
    count and the tight box of the full mask, computed inside the id's bounding box (one
    :func:`scipy.ndimage.find_objects` pass over the image finds every id present
    and its box): a mask's run lengths in column-major order are its box's
    columns, full height, between two stretches of zeros."""
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    h, w = img.shape
    boxes = ndimage.find_objects(img) if img.size and img.any() else []
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        rows, cols = box
        y0, y1, x0, x1 = rows.start, rows.stop, cols.start, cols.stop
        crop = img[y0:y1, x0:x1] == k
        block = np.zeros((x1 - x0, h), np.bool_)  # the box's columns, full height, column-major
        block[:, y0:y1] = crop.T
        flat = block.reshape(-1)
        edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
        lead, trail = x0 * h, (w - x1) * h  # zeros before and after the box's columns
        if flat[0]:
            runs.insert(0, lead)
        else:
            runs[0] += lead
        if (len(runs) % 2) == 1:  # the last run is zeros
            runs[-1] += trail
        elif trail:
            runs.append(trail)
        r = mask_utils.frPyObjects({"counts": runs, "size": [h, w]}, h, w)
        rle = {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
        yield k, rle, int(crop.sum()), [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def frame_annotations(frame, items: list[dict], damages: list[dict]) -> list[dict[str, Any]]:
    """COCO annotations (without ids) of one camera frame: one per visible item and
    per visible damage instance. Boxes are tight around the mask, at least 1 px."""
    anns = []
    kinds = {it["instance_id"]: it for it in items}
    for iid, rle, area, bbox in _masks(frame.instance):
        it = kinds[int(iid)]
        anns.append({"category_id": ITEM_CATEGORY_IDS[it["kind"]], "segmentation": rle, "area": area,
                     "bbox": bbox, "iscrowd": 0,
                     "attributes": {"instance_id": int(iid), "sku": it["sku"], "type": "item",
                                    "hard_negative": it.get("hard_negative"),
                                    "design_variant": (it.get("design_variant") or {}).get("variant", 0)}})
    dmap = {d["damage_instance_id"]: d for d in damages}
    for did, rle, area, bbox in _masks(frame.damage_instance):
        d = dmap[int(did)]
        anns.append({"category_id": DAMAGE_CATEGORY_OFFSET + CATEGORY_IDS[d["category"]], "segmentation": rle,
                     "area": area, "bbox": bbox, "iscrowd": 0,
                     "attributes": {"damage_instance_id": int(did), "instance_id": d["instance_id"],
                                    "severity": d["severity"], "type": "damage", "op": d["type"]}})
    return anns


# -- capture folders -------------------------------------------------------------
def reference_dir(root: Path, sku: str, pose: int) -> Path:
    """Folder of reference capture ``pose`` of ``sku``: references/<sku>/<pose>."""
    return Path(root) / "references" / sku / f"{pose:02d}"


def _frame_layers(fr) -> dict[str, Any]:
    """Layer name -> a function giving its PNG array (depth converted in the
    encoding thread, not the caller's)."""
    layers = {"rgb": lambda: fr.rgb, "depth": lambda: depth_to_png(fr.depth_m), "instance": lambda: fr.instance,
              "part": lambda: fr.part, "damage_category": lambda: fr.damage_category,
              "damage_instance": lambda: fr.damage_instance}
    if fr.depth_gt is not None:  # noise-free depth, kept for research
        layers["depth_gt"] = lambda: depth_to_png(fr.depth_gt)
    return layers


def _write_frame(d: Path, fr, jobs: list) -> list[str]:
    """Make folder d and queue one camera's layers as (path, array function) in
    ``jobs``; returns the layer names."""
    d.mkdir(parents=True)
    layers = _frame_layers(fr)
    jobs.extend((d / f"{k}.png", get) for k, get in layers.items())
    return list(layers)


def _save_job(job) -> None:
    path, get = job
    save_png(path, get())


def write_capture(root: Path, index: int, meta: dict[str, Any], frames: dict[str, Any],
                  extra: dict[str, dict[str, Any]] | None = None, root_dir: Path | None = None,
                  pool=None) -> Path:
    """Write one capture atomically: build it in a temporary folder, then rename.

    meta: the capture.json content (cameras get their file paths added here)
    frames: camera name -> render.Frame
    extra: named sets of frames written in sub-folders, e.g. {"pristine": frames}
        (the counterfactual without damage); their paths go under cameras[*].files
    root_dir: the capture's folder (default ``root/captures/<id>``)
    pool: a concurrent.futures executor that encodes the PNGs in parallel (its
        threads; default: one after the other here). Either way every file is
        on disk before the folder is renamed into place.
    """
    final = Path(root_dir) if root_dir is not None else Path(root) / "captures" / capture_id(index)
    captures = final.parent
    captures.mkdir(parents=True, exist_ok=True)
    tmp = _mkdtemp(dir=captures, prefix=f".tmp-{final.name}-")
    done = False
    futures = []
    try:
        jobs: list = []
        for cam_name, fr in frames.items():
            files = {k: f"{cam_name}/{k}.png" for k in _write_frame(tmp / cam_name, fr, jobs)}
            for set_name, set_frames in (extra or {}).items():
                layers = _write_frame(tmp / set_name / cam_name, set_frames[cam_name], jobs)
                files.update({f"{set_name}/{k}": f"{set_name}/{cam_name}/{k}.png" for k in layers})
            meta["cameras"][cam_name]["files"] = files
        if pool is not None:
            # the photos first (the slowest to encode): the pool's threads finish together
            jobs.sort(key=lambda j: j[0].name != "rgb.png")
            futures = [pool.submit(_save_job, j) for j in jobs]
        else:
            for j in jobs:
                _save_job(j)
        # the COCO annotations: once per camera, from the label images in memory,
        # while the pool encodes
        annotations = {cam_name: frame_annotations(fr, meta["items"], meta["damages"])
                       for cam_name, fr in frames.items()}
        for f in futures:
            f.result()  # every PNG on disk (or its error raised) before the rename
        write_json_atomic(tmp / "capture.json", meta)
        write_json_atomic(tmp / "annotations.json", annotations)
        if final.exists():
            old = _mkdtemp(dir=captures, prefix=f".old-{final.name}-")
            os.replace(final, old / "c")
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        done = True
    finally:
        if not done:
            for f in futures:  # no thread may still write into tmp while it is removed
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    try:
                        f.result()
                    except Exception:  # the first error is already propagating
                        pass
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class CaptureWriter:
    """Writes capture folders in a background thread, so rendering the next
    capture never waits for PNG encoding and disk.

    Jobs run one at a time in submission order (a capture's references are on
    disk before the capture that needs them); each job's PNGs are encoded by a
    pool of ``encode_threads`` threads. A job is a function taking ``pool=``
    (passed on to :func:`write_capture`); :meth:`submit` returns its Future,
    which holds the job's result or raises its error."""

    def __init__(self, encode_threads: int = 2):

        self.encode_threads = max(1, int(encode_threads))
        self._pool = ThreadPoolExecutor(self.encode_threads, thread_name_prefix="damagesim-png")
        self._queue = ThreadPoolExecutor(1, thread_name_prefix="damagesim-writer")

    def submit(self, job, *args, **kwargs):
        """Queue ``job(*args, pool=<encoder pool>, **kwargs)``; returns its Future."""
        return self._queue.submit(job, *args, pool=self._pool, **kwargs)

    def close(self) -> None:
        """Wait for every queued job, then stop the threads."""
        self._queue.shutdown(wait=True)
        self._pool.shutdown(wait=True)


def list_captures(root: Path) -> list[Path]:
    """Complete capture folders (those with capture.json), sorted by index."""
    cdir = Path(root) / "captures"
    if not cdir.is_dir():
        return []
    return sorted(p for p in cdir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "capture.json").is_file())


def write_coco(root: Path, rig_json: dict[str, Any], captures: list[Path]) -> dict[str, str]:
    """Assemble coco/<camera>.json from the capture folders' annotation files."""
    root = Path(root)
    (root / "coco").mkdir(exist_ok=True)
    cams = [c["name"] for c in rig_json["cameras"]]
    per_cam = {c: {"images": [], "annotations": []} for c in cams}
    for cap in captures:
        meta = json.loads((cap / "capture.json").read_text())
        anns = json.loads((cap / "annotations.json").read_text())
        for c in cams:
            w, h = meta["cameras"][c]["resolution"]
            img_id = int(meta["index"])
            per_cam[c]["images"].append({"id": img_id, "file_name": f"captures/{cap.name}/{c}/rgb.png",
                                         "width": w, "height": h, "capture": cap.name})
            for a in anns[c]:
                a = dict(a, image_id=img_id, id=len(per_cam[c]["annotations"]) + 1)
                per_cam[c]["annotations"].append(a)
    paths = {}
    for c in cams:
        doc = {"info": {"description": f"damagesim camera {c}", "version": __version__},
               "licenses": [], "categories": coco_categories(), **per_cam[c]}
        p = root / "coco" / f"{c}.json"
        write_json_atomic(p, doc)
        paths[c] = f"coco/{c}.json"
    return paths


def write_card(root: Path, spec: dict[str, Any], rig_json: dict[str, Any], captures: list[Path],
               coco_paths: dict[str, str]) -> dict[str, Any]:
    """Write dataset.json and dataset.md from what is on disk."""
    root = Path(root)
    by_kind: dict[str, int] = {}
    by_cat = {c: 0 for c in CATEGORIES}
    by_sev = {"minor": 0, "major": 0}
    n_items = 0
    damaged_captures = pairs = hard_negatives = 0
    hn_items: dict[str, int] = {}
    for cap in captures:
        meta = json.loads((cap / "capture.json").read_text())
        pairs += bool(meta.get("pristine_pair"))
        hard_negatives += bool(meta.get("hard_negative"))
        for it in meta["items"]:
            n_items += 1
            by_kind[it["kind"]] = by_kind.get(it["kind"], 0) + 1
            if it.get("hard_negative"):
                hn_items[it["hard_negative"]] = hn_items.get(it["hard_negative"], 0) + 1
        for d in meta["damages"]:
            by_cat[d["category"]] += 1
            by_sev[d["severity"]] += 1
        damaged_captures += bool(meta["damages"])
    cams = [c["name"] for c in rig_json["cameras"]]
    refs = sorted(p.parent for p in root.glob("references/*/*/capture.json"))
    card = {
        "format": DATASET_FORMAT,
        "spec": spec,
        "seed": spec["seed"],
        "code_version": code_version(),
        "rig": rig_json,
        "counts": {
            "captures": len(captures),
            "cameras": len(cams),
            "frames": len(captures) * len(cams),
            "items": n_items,
            "captures_with_damage": damaged_captures,
            "pristine_pairs": pairs,
            "hard_negative_captures": hard_negatives,
            "hard_negative_items": dict(sorted(hn_items.items())),
            "reference_captures": len(refs),
            "reference_skus": len({r.parent.name for r in refs}),
            "items_by_kind": dict(sorted(by_kind.items())),
            "damages_by_category": by_cat,
            "damages_by_severity": by_sev,
        },
        "label_map": label_map(),
        "coco_categories": coco_categories(),
        "files": {
            "card_markdown": "dataset.md",
            "coco": coco_paths,
            "captures": [f"captures/{c.name}" for c in captures],
            "references": [str(r.relative_to(root)) for r in refs],
            "pristine_files": "captures/<id>/pristine/<camera>/<layer>.png where capture.json has pristine_pair: true",
            "capture_files": ["capture.json", "annotations.json"]
                             + [f"{cam}/{layer}.png" for cam in cams for layer in LAYERS],
        },
    }
    write_json_atomic(root / "dataset.json", card)
    lines = ["# damagesim dataset", "",
             f"- captures: {len(captures)} x {len(cams)} cameras = {len(captures) * len(cams)} labelled frames",
             f"- seed: {spec['seed']}; rig: {rig_json['name']}; catalog: {spec.get('catalog')}",
             f"- code: damagesim {card['code_version']['damagesim']} ({card['code_version'].get('git') or 'no git'})",
             f"- items by kind: {card['counts']['items_by_kind']}",
             f"- damages by category: {by_cat}", f"- damages by severity: {by_sev}", "",
             "Depth PNGs are uint16 millimetres (0 = no return). Label images: see label_map in dataset.json.",
             "Camera metadata (K, distortion, T_world_from_cam) uses OpenCV axes; see captures/*/capture.json.", ""]
    write_text_atomic(root / "dataset.md", "\n".join(lines))
    return card


# -- output errors ---------------------------------------------------------------
_DISK_ERRNOS = {errno.ENOSPC: "the output device is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the output file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied"}


def output_error(out: Path, e: OSError) -> OutputError:
    """An :class:`OutputError` for OSError ``e`` while writing under ``out``: says why in
    words (disk full, read-only, permission denied, ...), which file, and that
    ``--resume`` continues the run."""
    why = _DISK_ERRNOS.get(e.errno, e.strerror or type(e).__name__)
    return OutputError(f"cannot write to output folder {out}: {why} ({e.filename or out}); "
                       f"completed captures are kept: fix it and rerun with --resume")


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written, renamed and removed there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".tmp-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        os.replace(probe, out / f".tmp-probe2-{os.getpid()}")
        os.unlink(out / f".tmp-probe2-{os.getpid()}")
    except OSError as e:
        raise output_error(out, e) from None
