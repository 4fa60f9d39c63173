"""The one dataset reader: captures from capture folders and WebDataset shards alike (:func:`iter_dataset`), used by validate, exports, report, show and the harness."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from simulator.dataset.shards import SHARD_DIR, iter_shard, member_name, shard_files
from simulator.dataset.writers import list_captures


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
    """Every capture of a dataset folder: samples of ``shards/`` then capture
    folders not in a shard; with ``n``, only indices < n."""

    root = Path(root)
    seen = set()
    for _k, p in shard_files(root / SHARD_DIR):
        rel = f"{SHARD_DIR}/{p.name}"
        for key, files in iter_shard(p):
            if n is not None and key.isdigit() and int(key) >= n:
                continue
            seen.add(key)
            yield ShardCapture(rel, key, files)
    for c in list_captures(root):
        if c.name in seen or (n is not None and c.name.isdigit() and int(c.name) >= n):
            continue
        yield FolderCapture(c)
