"""WebDataset tar shards: write them so they are never torn, index them, read them.

A shard is a plain (USTAR) tar; one sample per capture, its files contiguous, the
WebDataset key being the capture id::

    000007.capture.json              capture.json (cameras, items, damages)
    000007.annotations.json          that capture's COCO annotations per camera
    000007.<camera>.<layer>.png      rgb, depth, instance, part, damage_category, damage_instance
    000007.pristine.<camera>.<layer>.png   the pristine counterfactual, when present

i.e. the member name is ``<key>.`` + the file's path in the capture folder with
``/`` replaced by ``.`` (camera names must not contain a dot). Shard ``k`` of a
generated dataset holds exactly the captures ``k*S .. min(n, (k+1)*S) - 1``
(S = shard size), so shard contents do not depend on the worker count. Tar
headers carry no time, owner or mode of the machine: the same captures give the
same shard bytes.

A shard is written to ``.tmp-<name>-<pid>``, fsync'ed and renamed: it is either
complete or absent. ``shards/index.json`` lists every shard with its keys, size
and sha256.

Reading with a plain WebDataset pipeline::

    import webdataset as wds
    from simulator.dataset.reader import png_as_array
    ds = wds.WebDataset(sorted(glob("DATASET/shards/shard-*.tar")), shardshuffle=False).decode(png_as_array)
    for s in ds:
        s["__key__"], s["capture.json"], s["top.rgb.png"], s["top.depth.png"]  # dict, uint8 (h,w,3), uint16 (h,w)

(``.decode("pil")`` silently makes every PNG 8-bit RGB, uint16 depth and ids
included: use :func:`png_as_array`.)

or without webdataset: :func:`iter_dataset` (folders and shards alike).

COCO files of a sharded dataset: an image in a shard has ``file_name =
"shards/<file>#<member>"`` (plus ``shard`` and ``member``); pycocotools loads
the file as it is, and :func:`open_coco_image` reads any image entry, in a
folder or in a shard::

    coco = COCO("DATASET/coco/top.json")
    rgb = open_coco_image("DATASET", coco.loadImgs(coco.getImgIds())[0])  # uint8 (h, w, 3)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator

from simulator.core.errors import DamagesimError
from simulator.dataset.writers import capture_id, list_captures, write_card, write_coco, write_json_atomic

SHARD_DIR = "shards"

INDEX = "index.json"

SHARDS_FORMAT = "damagesim-shards/1"

_SHARD_RE = re.compile(r"^shard-(\d{6})\.tar$")


def shard_name(k: int) -> str:
    """File name of shard ``k``: ``shard-<k, 6 digits>.tar``."""
    return f"shard-{k:06d}.tar"


def shard_range(k: int, size: int, n: int) -> range:
    """Capture indices of shard ``k`` (shard size ``size``, ``n`` captures in all)."""
    return range(k * size, min(n, (k + 1) * size))


def shard_files(d: Path) -> list[tuple[int, Path]]:
    """Complete shards in folder ``d`` as (k, path), sorted (temporaries ignored)."""
    d = Path(d)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _SHARD_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def member_name(key: str, rel: str) -> str:
    """Tar member name of file ``rel`` of capture ``key``: ``<key>.`` + ``rel`` with ``/``
    replaced by ``.`` (``000007``, ``top/rgb.png`` -> ``000007.top.rgb.png``)."""
    return f"{key}." + rel.replace("/", ".")


def _capture_files(cap_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for p in sorted(Path(cap_dir).rglob("*")):
        if p.is_file():
            rel = p.relative_to(cap_dir).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            if "/" in rel and "." in rel.rsplit("/", 1)[0]:
                raise ValueError(f"{p}: a folder name with a dot cannot be a WebDataset member ({rel})")
            files.append((rel, p))
    return files


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(dest: Path, samples: list[tuple[str, Path]]) -> Path:
    """Write the capture folders ``samples`` [(key, folder)] into tar ``dest``:
    temporary name, fsync, rename, fsync of the folder. Never leaves a torn tar."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for key, d in samples:
                    for rel, p in _capture_files(d):
                        data = p.read_bytes()
                        tar.addfile(_tarinfo(member_name(key, rel), len(data)), io.BytesIO(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# -- index -------------------------------------------------------------------------
def iter_shard(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for every sample of one shard, in order. The
    extension is the member name after the key's dot, e.g. ``top.rgb.png``."""
    key, files = None, {}
    with tarfile.open(path, mode="r:") as tar:
        for m in tar:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            k, _, ext = base.partition(".")
            if k != key and key is not None:
                yield key, files
                files = {}
            key = k
            files[ext] = tar.extractfile(m).read()
    if key is not None:
        yield key, files


def write_index(shard_dir: Path, shard_size: int | None) -> dict[str, Any]:
    """Scan the complete shards of ``shard_dir`` and write index.json."""

    shard_dir = Path(shard_dir)
    entries = []
    for k, p in shard_files(shard_dir):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        keys = [key for key, _ in iter_shard(p)]
        entries.append({"file": p.name, "shard": k, "keys": keys, "count": len(keys), "bytes": p.stat().st_size,
                        "sha256": h.hexdigest()})
    index = {"format": SHARDS_FORMAT, "shard_size": shard_size, "samples": sum(e["count"] for e in entries),
             "member_names": ["<key>.capture.json", "<key>.annotations.json", "<key>.<camera>.<layer>.png",
                              "<key>.pristine.<camera>.<layer>.png"],
             "shards": entries}
    write_json_atomic(shard_dir / INDEX, index)
    return index


def read_index(shard_dir: Path) -> dict[str, Any]:
    """The parsed ``index.json`` of ``shard_dir`` (see :func:`write_index`). Raises
    FileNotFoundError if there is none, ValueError if it is not JSON."""
    return json.loads((Path(shard_dir) / INDEX).read_text())


# -- packing during generation ------------------------------------------------------
class ShardPacker:
    """Packs capture folders of a generation run into shards as soon as a shard's
    whole range is on disk, then removes those folders (renamed to ``.del-*``
    first, so a kill never leaves a half-deleted folder that looks complete).

    Invariant: a capture lives in its shard or in its folder; after a kill
    between the two steps it may briefly live in both, and :meth:`recover`
    removes the folder copy."""

    def __init__(self, out: Path, n: int, size: int):
        self.out, self.n, self.size = Path(out), n, size
        self.dir = self.out / SHARD_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.present: set[int] = set()
        self.packed: set[int] = set()

    def _folder(self, i: int) -> Path:

        return self.out / "captures" / capture_id(i)

    def _drop_folders(self, k: int) -> None:
        for i in shard_range(k, self.size, self.n):
            d = self._folder(i)
            if d.exists():
                gone = d.parent / f".del-{d.name}"
                if gone.exists():
                    shutil.rmtree(gone)
                os.rename(d, gone)
                shutil.rmtree(gone)

    def recover(self) -> None:
        """After a kill: drop folder copies of captures already in a shard, and
        note the complete folders not yet packed."""

        for k, _ in shard_files(self.dir):
            self._drop_folders(k)
            self.packed.add(k)
        self.present = {int(p.name) for p in list_captures(self.out) if p.name.isdigit() and int(p.name) < self.n}

    def completed(self, i: int, manifest=None) -> None:
        """Note that capture ``i`` is complete on disk; pack its shard (:meth:`pack`) once
        every capture of the shard's range is. ``manifest``: a
        :class:`~simulator.dataset.manifest.Manifest` to log the packed shard to, or None."""
        self.present.add(i)
        k = i // self.size
        if all(j in self.present for j in shard_range(k, self.size, self.n)):
            self.pack(k, manifest)

    def pack(self, k: int, manifest=None) -> None:
        """Write shard ``k`` from its capture folders (which must all be complete), log it
        to ``manifest`` when given, then remove the folders."""

        r = shard_range(k, self.size, self.n)
        write_shard(self.dir / shard_name(k), [(capture_id(i), self._folder(i)) for i in r])
        if manifest is not None:
            manifest.append({"shard": shard_name(k), "captures": [r.start, r.stop]})
        self._drop_folders(k)
        self.packed.add(k)
        self.present.difference_update(r)

    def flush(self, manifest=None, final: bool = False) -> None:
        """Pack every shard whose range is complete and not yet packed (e.g. at the end of
        a run, or after :meth:`recover`). Shards with missing captures stay as folders;
        ``final`` is accepted for the callers' sake and changes nothing."""
        for k in sorted({i // self.size for i in self.present}):
            if k not in self.packed and all(j in self.present for j in shard_range(k, self.size, self.n)):
                self.pack(k, manifest)


def export_shards(dataset: Path, out_dir: Path, shard_size: int = 256) -> dict[str, Any]:
    """Pack the capture folders of an existing dataset into shards in ``out_dir``
    (the dataset is left as it is). Shard k holds the k-th group of ``shard_size``
    captures in id order. Returns the index."""

    caps = list_captures(dataset)
    if not caps:

        raise DamagesimError(f"{dataset}: no capture folders to pack (is it a dataset folder, or already sharded?)")
    out_dir = Path(out_dir)
    for k in range(0, (len(caps) + shard_size - 1) // shard_size):
        group = caps[k * shard_size:(k + 1) * shard_size]
        write_shard(out_dir / shard_name(k), [(c.name, c) for c in group])
    return write_index(out_dir, shard_size)


# -- dataset card and COCO for datasets with shards ---------------------------------
def finalize_with_shards(out: Path, spec_json: dict[str, Any], rig_json: dict[str, Any], n: int,
                         shard_size: int | None = None) -> dict[str, Any]:
    """COCO per camera + card for a dataset whose captures are in shards (and
    possibly some folders). COCO images of shard captures get
    ``file_name = "shards/<file>#<key>.<camera>.rgb.png"`` and a ``shard`` field."""

    out = Path(out)
    index = write_index(out / SHARD_DIR, shard_size)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-finalize-"))
    try:
        where: dict[str, str] = {}
        caps = []
        for _k, p in shard_files(out / SHARD_DIR):
            for key, files in iter_shard(p):
                if int(key) >= n:
                    continue
                d = tmp / "captures" / key
                d.mkdir(parents=True)
                (d / "capture.json").write_bytes(files["capture.json"])
                (d / "annotations.json").write_bytes(files["annotations.json"])
                caps.append(d)
                where[key] = f"{SHARD_DIR}/{p.name}"
        caps += [c for c in list_captures(out) if c.name not in where and int(c.name) < n]
        caps.sort(key=lambda c: c.name)
        coco = write_coco(out, rig_json, caps)
        for cam, rel in coco.items():
            doc = json.loads((out / rel).read_text())
            for img in doc["images"]:
                if img["capture"] in where:
                    img["shard"] = where[img["capture"]]
                    img["member"] = member_name(img["capture"], f"{cam}/rgb.png")
                    img["file_name"] = f"{img['shard']}#{img['member']}"
            write_json_atomic(out / rel, doc)
        card = write_card(out, spec_json, rig_json, caps, coco)
        card["files"]["captures"] = [f"captures/{c.name}" for c in caps if c.name not in where]
        card["files"]["shards"] = {"index": f"{SHARD_DIR}/{INDEX}", "files": [e["file"] for e in index["shards"]],
                                   "samples": index["samples"], "member_names": index["member_names"]}
        write_json_atomic(out / "dataset.json", card)
        return card
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
