"""The one dataset reader: captures from capture folders and WebDataset shards alike (:func:`iter_dataset`), used by validate, exports, report, show and the harness."""
from __future__ import annotations

import heapq
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from simulator.core.errors import DamagesimError
from simulator.dataset.shards import INDEX, SHARD_DIR, SHARDS_FORMAT, iter_shard, member_name, shard_files
from simulator.dataset.writers import DEPTH_SCALE_M, list_captures


# -- reading -----------------------------------------------------------------------
def png_as_array(key: str, data: bytes):
    """WebDataset decoder handler: PNG members -> numpy arrays with their stored
    dtype (uint16 depth in mm and uint16 ids stay uint16; webdataset's "pil"/"rgb"
    specs would convert them to 8-bit RGB). Other members: None (next handler)::

        wds.WebDataset(urls, shardshuffle=False).decode(png_as_array)
    """
    if not key.lower().endswith("png"):
        return None

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


class _Members:
    """Byte offsets of a shard's members, read once per shard file (a tar has
    no index: finding one member means walking its headers)."""

    def __init__(self):
        self._cache: dict[tuple[str, float], dict[str, tuple[int, int]]] = {}

    def get(self, path: Path) -> dict[str, tuple[int, int]]:
        key = (str(Path(path).resolve()), Path(path).stat().st_mtime)
        if key not in self._cache:
            with tarfile.open(path, mode="r:") as tar:
                self._cache[key] = {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
            while len(self._cache) > 64:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[key]


_MEMBERS = _Members()


def read_member(shard: Path, member: str) -> bytes:
    """Bytes of one member of a shard (random access, no extraction)."""
    members = _MEMBERS.get(shard)
    if member not in members:
        raise FileNotFoundError(f"{shard}: no member {member}")
    off, size = members[member]
    with open(shard, "rb") as f:
        f.seek(off)
        return f.read(size)


def open_coco_image(root: str | Path, image: dict[str, Any]) -> np.ndarray:
    """The pixels of a COCO ``images[]`` entry of a damagesim dataset at
    ``root``: a file of a capture folder, or a member of a shard
    (``file_name = "shards/<file>#<member>"``). (h, w, 3) uint8 for RGB."""

    root = Path(root)
    name = image["file_name"]
    if "#" in name:
        shard, _, member = name.partition("#")
        data = read_member(root / shard, member)
    else:
        data = (root / name).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)




class Capture:
    """One capture of a dataset, from a folder or a shard sample.

    name: capture id ("000007"); where: folder path or "shards/<file>#<key>"."""

    name: str
    where: str

    def read(self, rel: str) -> bytes:
        """The bytes of file ``rel`` of this capture (a path in the capture folder, e.g.
        ``top/rgb.png``). Raises FileNotFoundError when the capture has no such file."""
        raise NotImplementedError

    def has(self, rel: str) -> bool:
        """Whether this capture has file ``rel`` (a path in the capture folder)."""
        raise NotImplementedError

    def location(self, rel: str) -> str:
        """Where file ``rel`` of this capture lives, for messages."""
        raise NotImplementedError

    def json(self, rel: str) -> Any:
        """File ``rel`` parsed as JSON (e.g. ``annotations.json``). Raises FileNotFoundError
        if absent, ValueError if it is not valid JSON."""
        return json.loads(self.read(rel))

    @property
    def meta(self) -> dict[str, Any]:
        if not hasattr(self, "_meta"):
            self._meta = self.json("capture.json")
        return self._meta

    def depth_m(self, rel: str, depth_scale_m: float = DEPTH_SCALE_M) -> np.ndarray:
        """Depth PNG ``rel`` as (h, w) float64 metres (0 = no return): the stored
        uint16 times ``depth_scale_m`` (the camera's ``depth_scale_m`` in capture.json)."""
        return self.image(rel).astype(np.float64) * depth_scale_m

    def image(self, rel: str) -> np.ndarray:
        """PNG file ``rel`` decoded with its stored dtype: uint8 (h, w, 3) RGB, uint16 (h, w)
        depth in mm or ids, uint8 (h, w) part / damage category. Raises FileNotFoundError
        if absent, PIL's UnidentifiedImageError if it is not an image."""

        with Image.open(io.BytesIO(self.read(rel))) as im:
            im.load()
            return np.asarray(im)


class FolderCapture(Capture):
    """A capture stored as a folder ``captures/<id>/``; ``path`` is that folder."""
    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self.where = str(self.path)

    def read(self, rel: str) -> bytes:
        """The bytes of ``path / rel``; FileNotFoundError when absent."""
        return (self.path / rel).read_bytes()

    def has(self, rel: str) -> bool:
        """Whether ``path / rel`` is a file."""
        return (self.path / rel).is_file()

    def location(self, rel: str) -> str:
        """The file's path, ``<folder>/<rel>``."""
        return str(self.path / rel)


class ShardCapture(Capture):
    """A capture stored as one sample of a shard.

    shard: the shard's path relative to the dataset root (``shards/shard-000000.tar``);
    key: the sample's key (the capture id); files: {extension: bytes} as
    :func:`~simulator.dataset.shards.iter_shard` yields them (``top.rgb.png``)."""
    def __init__(self, shard: str, key: str, files: dict[str, bytes]):
        self.shard, self.name, self.files = shard, key, files
        self.where = f"{shard}#{key}"

    def read(self, rel: str) -> bytes:
        """The bytes of member ``<key>.<rel with / -> .>``; FileNotFoundError naming the
        shard and member when the sample has none."""
        try:
            return self.files[rel.replace("/", ".")]
        except KeyError:
            raise FileNotFoundError(f"{self.where}: no member {member_name(self.name, rel)}") from None

    def has(self, rel: str) -> bool:
        """Whether the sample has the member for file ``rel``."""
        return rel.replace("/", ".") in self.files

    def location(self, rel: str) -> str:
        """``shards/<file>#<member>`` of file ``rel``, for messages."""
        return f"{self.shard}#{member_name(self.name, rel)}"


def iter_dataset(root: Path, n: int | None = None) -> Iterator[Capture]:
    """Every capture on disk in a dataset folder, in capture-id order: samples of
    ``shards/`` and capture folders (``captures/<id>/``) not in a shard; with
    ``n``, only indices < n. What validate, exports and the report read (the
    card may be missing or wrong there); :func:`open_dataset` reads what the
    card lists."""
    root = Path(root)
    return _merged([p for _, p in shard_files(root / SHARD_DIR)], list_captures(root), n)


class DatasetReadError(DamagesimError):
    """A dataset that cannot be read: no captures, an unreadable card, index or
    shard, a shard the card lists that is missing. The message names the file."""


def dataset_sources(root: Path) -> tuple[list[Path], list[Path], int]:
    """(capture folders, shard files, capture count) of one synthetic dataset:
    a dataset folder (card ``files.captures`` and ``files.shards``), a run still
    in progress (complete capture folders and shards so far), or a folder of
    shards with its ``index.json`` as ``damagesim export shards`` writes it."""

    card = root / "dataset.json"
    if card.is_file():
        try:
            files = json.loads(card.read_text())["files"]
            folders = [root / c for c in files["captures"]]
            sh = files.get("shards") or {}
            shards = [root / SHARD_DIR / f for f in sh.get("files", [])]
            count = len(folders) + int(sh.get("samples", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetReadError(f"{card}: unreadable dataset card ({type(e).__name__}: {e})") from None
        if not folders and not shards:
            raise DatasetReadError(f"{card}: the dataset has no captures")
        return folders, shards, count
    index = root / INDEX
    if index.is_file():
        try:
            doc = json.loads(index.read_text())
            if doc.get("format") != SHARDS_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {SHARDS_FORMAT!r}")
            shards = [root / e["file"] for e in doc["shards"]]
            count = int(doc["samples"])
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetReadError(f"{index}: unreadable shard index ({type(e).__name__}: {e})") from None
        if not shards:
            raise DatasetReadError(f"{index}: the shard index lists no shards")
        return [], shards, count
    # a run still in progress (or killed) has no card yet; capture folders and
    # shards appear only once complete (simulator.dataset.writers, simulator.dataset.shards), so
    # the finished ones are usable
    folders = sorted(p.parent for p in root.glob("captures/[0-9]*/capture.json"))
    shards = [p for _, p in shard_files(root / SHARD_DIR) or shard_files(root)]
    if not folders and not shards:
        raise DatasetReadError(f"{root}: not a damagesim dataset (no dataset.json, no complete captures/<id>/, "
                           f"no shards/shard-*.tar, no shard index.json)")
    return folders, shards, -1


def _shard_samples(shards: list[Path]):
    """Samples of the shards, one at a time, read from the tar as a stream
    (nothing is extracted to disk; one sample's bytes in memory at a time)."""


    for p in shards:
        if not p.is_file():
            raise DatasetReadError(f"{p}: shard listed in the dataset is missing")
        try:
            for key, files in iter_shard(p):
                yield ShardCapture(str(p), key, files)
        except (tarfile.TarError, OSError) as e:
            raise DatasetReadError(f"{p}: unreadable shard ({type(e).__name__}: {e})") from None


def open_dataset(root: Path) -> tuple[Iterator[Capture], int]:
    """(iterator of :class:`Capture` in capture-id order, count or -1): every
    capture of one dataset as its card lists it (or, without a card, every
    complete one on disk; see :func:`dataset_sources`), from folders and shards
    alike. A capture present both in a shard and as a folder (a run killed while
    packing) is read once, from the shard. Raises DatasetReadError."""


    folders, shards, count = dataset_sources(root)

    return _merged(shards, folders), count


def _merged(shards: list[Path], folders: list[Path], n: int | None = None) -> Iterator[Capture]:
    """Shard samples and capture folders in capture-id order, each capture once
    (the shard copy on a tie); with ``n``, only indices < n."""
    last = None
    # shard k holds captures k*S .. (k+1)*S-1, so the shards in order are
    # sorted; merge is stable, so on a tie the shard copy comes first
    for cap in heapq.merge(_shard_samples(shards), (FolderCapture(d) for d in folders), key=lambda c: c.name):
        if cap.name == last or (n is not None and cap.name.isdigit() and int(cap.name) >= n):
            continue
        last = cap.name
        yield cap
