"""Kaputt for the lift harness: a reader of the Kaputt layout (the real
benchmark, Hoefer et al., ICCV 2025, or ``damagesim export kaputt``) and
reference comparison (a query scored by its distance to the reference images
of the same item).

Layout, as anomalib's ``KaputtDataset`` reads it
(``src/anomalib/data/datasets/image/kaputt.py``) and Kaputt's README documents::

    ROOT/datasets/query-{train,validation,test}.parquet
    ROOT/datasets/reference-{train,validation,test}.parquet
    ROOT/query-{image,crop,mask}/data/<split>/query-data/{image,crop,mask}/<capture_id>.<ext>
    ROOT/reference-{image,crop,mask}/data/<split>/reference-data/{image,crop,mask}/...

Query columns: ``capture_id``, ``item_identifier``, ``defect`` (bool),
``major_defect`` (bool; major = defect and major_defect), ``defect_types``
(comma-separated string), ``item_material``, ``query_image``, ``query_crop``,
``query_mask`` (``query_mask`` is the *item* segmentation mask). Reference
columns: ``item_identifier``, ``reference_image``, ``reference_crop``,
``reference_mask``, one path per row (anomalib) or comma-separated (Kaputt's
README); both are read. A path value is looked up as anomalib joins it,
``ROOT/<side>-<kind>/<value>``, then as Kaputt's README joins it, ``ROOT/<value>``.
damagesim's export adds columns anomalib ignores; the reader uses two:
``query_damage`` (damage category per pixel, read into ``masks``) and
``camera`` (a query is compared with references of its own camera first).

On the command line a Kaputt root is named ``kaputt:ROOT``, with options as a
query string: ``kaputt:ROOT?split=train&defect_rate=0.01&seed=0&image=crop``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Hashable, Sequence
from urllib.parse import parse_qs

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from harness import metrics as M
from harness.data import load_references

from .data import DatasetError, ImageSet, _resize

__all__ = ["KaputtSet", "load_kaputt", "load_kaputt_references", "parse_kaputt_spec", "load_kaputt_spec",
           "kaputt_test_spec", "is_kaputt_root", "pixel_features", "reference_scores",
           "kaputt_reference_comparison", "synthetic_reference_comparison", "SPLITS", "IMAGE_TYPES"]

SPLITS = ("train", "validation", "test")
IMAGE_TYPES = ("crop", "image")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation"}
_QUERY_REQUIRED = ("capture_id", "defect")
_SPEC_KEYS = ("split", "defect_rate", "seed", "image")


@dataclass
class KaputtSet(ImageSet):
    """An :class:`ImageSet` of Kaputt queries, with Kaputt's per-query labels.

    ``categories`` holds the query's ``defect_types`` string (comma-separated,
    sorted; ``""`` intact), ``groups`` its item identifier (the queries of one
    item are never split between train and test).
    severity: n of ``""`` (intact), ``minor``, ``major``, or ``unknown`` (a
        defect in a table without ``major_defect``).
    defect_types: n tuples of Kaputt defect type names.
    materials: n ``item_material`` strings (``""`` unknown).
    items: n item identifiers.
    cameras: n camera names (damagesim exports; ``""`` for Kaputt).
    references: n lists of reference image paths of the query's item (the
        same ``image`` kind as the query; only its own camera's where the table names
        cameras and the item has one there).
    ``subset`` keeps these columns; ``save``/``load`` keep the ImageSet ones only.
    """

    severity: list[str] = field(default_factory=list)
    defect_types: list[tuple[str, ...]] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    references: list[list[str]] = field(default_factory=list)

    _EXTRA = ("severity", "defect_types", "materials", "items", "cameras", "references")

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.labels)
        for name in self._EXTRA:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have length {n}, got {len(getattr(self, name))}")

    def subset(self, idx: Sequence[int] | np.ndarray) -> "KaputtSet":
        """A new set of the rows ``idx``, the Kaputt columns (severity, defect types,
        materials, items, cameras, references) picked along with the ImageSet ones."""
        base = super().subset(idx)
        idx = np.asarray(idx, dtype=np.int64)
        extra = {name: [getattr(self, name)[i] for i in idx] for name in self._EXTRA}
        return KaputtSet(**{f.name: getattr(base, f.name) for f in fields(ImageSet) if f.name not in self._EXTRA}, **extra)

    @property
    def major(self) -> np.ndarray:
        """``(n,)`` bool: major defects."""
        return np.array([s == "major" for s in self.severity], bool)


# ----------------------------------------------------------------------------- tables

def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError('reading Kaputt parquet tables needs pyarrow: pip install -e ".[harness]" '
                           '(or pip install "pyarrow>=14,<22")') from None
    return pa, pq


def _read_table(path: Path, want: Sequence[str], required: Sequence[str]) -> dict[str, list]:
    """Columns ``want`` (those present) of a parquet file as python lists;
    DatasetError naming the file when it is missing, unreadable or lacks a
    ``required`` column."""
    pa, pq = _pyarrow()
    if not path.is_file():
        raise DatasetError(f"{path}: Kaputt table not found (expected ROOT/datasets/<query|reference>-<split>.parquet)")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in required if c not in names]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; the table has {names}")
        t = pq.read_table(path, columns=[c for c in want if c in names])
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: unreadable parquet table ({type(e).__name__}: {e})") from None
    return {c: t.column(c).to_pylist() for c in t.column_names}


def _split_name(split: str) -> str:
    s = _SPLIT_ALIASES.get(str(split), str(split))
    if s not in SPLITS:
        raise DatasetError(f"Kaputt split must be one of {list(SPLITS)} (or val), got {split!r}")
    return s


def _types(v) -> tuple[str, ...]:
    """``defect_types`` cell (comma-separated string, list or null) -> sorted names."""
    if v is None:
        return ()
    parts = v.split(",") if isinstance(v, str) else [str(x) for x in v]
    return tuple(sorted({p.strip() for p in parts if p and p.strip()}))


def _paths(v) -> list[str]:
    """A path cell: one path, or several comma-separated (Kaputt's README), or a list."""
    if v is None:
        return []
    parts = v.split(",") if isinstance(v, str) else [str(x) for x in v]
    return [p.strip() for p in parts if p.strip()]


class _Resolver:
    """Path values of one column -> files: ``ROOT/<side>-<kind>/<value>``
    (anomalib), then ``ROOT/<value>`` (Kaputt's README), then an absolute value.
    The convention that matched last is tried first."""

    def __init__(self, root: Path, side: str, kind: str, table: Path):
        self.bases = [root / f"{side}-{kind}", root]
        self.table, self.col = table, f"{side}_{kind}"

    def __call__(self, value: str, row: str) -> Path:
        p = Path(value)
        cands = [p] if p.is_absolute() else [b / value for b in self.bases]
        for i, c in enumerate(cands):
            if c.is_file():
                if i:
                    self.bases.insert(0, self.bases.pop(i))
                return c
        raise DatasetError(f"{self.table}: {row}: {self.col} {value!r} not found (looked for "
                           f"{', '.join(str(c) for c in cands)})")


def _read(path: Path, mode: str, size: int) -> tuple[np.ndarray, float]:
    """(image, width / height of the file); a JPEG is decoded near ``2 size``
    px when ``size`` > 0 (never below that), other formats in full."""

    try:
        with Image.open(path) as im:
            aspect = im.size[0] / max(im.size[1], 1)
            if im.format == "JPEG" and size > 0:  # DCT scaling: Kaputt's 2048 px JPEGs decode at a fraction of the cost
                im.draft(mode, (2 * size, 2 * size))
            return np.asarray(im.convert(mode)), aspect
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _subsample(defect: list[bool], rate: float | None, seed: int) -> np.ndarray:
    """Row indices kept: every intact row, and defective rows drawn (seeded)
    so that they make ``rate`` of the kept rows (at least one when any exists)."""
    idx = np.arange(len(defect))
    if rate is None:
        return idx
    rate = float(rate)
    if not 0 < rate < 1:
        raise DatasetError(f"Kaputt defect_rate must be in (0, 1), got {rate}")
    d = np.asarray(defect, bool)
    pos, neg = idx[d], idx[~d]
    want = max(1, int(round(rate * len(neg) / (1 - rate)))) if len(pos) else 0
    keep = np.random.default_rng([seed, 13]).choice(pos, min(want, len(pos)), replace=False)
    return np.sort(np.concatenate([neg, keep]))


def _reference_index(root: Path, split: str, image_type: str) -> dict[str, list[tuple[Path, str]]]:
    """item_identifier -> [(reference image path, camera or "")] of one split
    (empty when the split has no reference table)."""
    table = root / "datasets" / f"reference-{split}.parquet"
    if not table.is_file():
        return {}
    col = f"reference_{image_type}"
    t = _read_table(table, ("item_identifier", col, "camera"), ("item_identifier", col))
    res = _Resolver(root, "reference", image_type, table)
    out: dict[str, list[tuple[Path, str]]] = {}
    cams = t.get("camera") or [""] * len(t[col])
    for i, (item, v, cam) in enumerate(zip(t["item_identifier"], t[col], cams)):
        for p in _paths(v):
            out.setdefault(str(item), []).append((res(p, f"row {i} (item {item})"), cam or ""))
    return out


def is_kaputt_root(path: str | Path) -> bool:
    """True when ``path`` holds ``datasets/query-*.parquet``."""
    return any((Path(path) / "datasets").glob("query-*.parquet"))


def load_kaputt(root: str | Path, split: str = "train", size: int = 96, defect_rate: float | None = None,
                seed: int = 0, image_type: str = "crop", progress: bool = False) -> KaputtSet:
    """Queries of one split of a Kaputt root as a :class:`KaputtSet`.

    split: train, validation (or val) or test; size: side of the square images
    in pixels (crops are square; full images are squashed, their aspect kept in
    ``aspect``); defect_rate: keep every intact query and a seeded draw of the
    defective ones so that they make this share of the set (Kaputt's low-defect
    regime, e.g. 0.01); image_type: ``crop`` (the item crop, as the harness
    crops synthetic views) or ``image`` (the full tray image). ``masks`` hold
    damage masks where the table has damagesim's ``query_damage`` column
    (cut to the crop by ``crop_box``), else None: Kaputt's ``query_mask`` is an
    item mask, not a damage mask.
    """

    root, split = Path(root), _split_name(split)
    if image_type not in IMAGE_TYPES:
        raise DatasetError(f"Kaputt image type must be one of {list(IMAGE_TYPES)}, got {image_type!r}")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such Kaputt folder")
    table = root / "datasets" / f"query-{split}.parquet"
    col = f"query_{image_type}"
    t = _read_table(table, ("capture_id", "item_identifier", "defect", "major_defect", "defect_types",
                            "item_material", col, "query_damage", "crop_box", "camera"), (*_QUERY_REQUIRED, col))
    n_rows = len(t["capture_id"])
    if n_rows == 0:
        raise DatasetError(f"{table}: the table has no rows")
    defect = [bool(v) for v in t["defect"]]  # null = not defective, as anomalib reads it
    keep = _subsample(defect, defect_rate, seed)
    refs = _reference_index(root, split, image_type)
    res = _Resolver(root, "query", image_type, table)
    dres = _Resolver(root, "query", "damage", table)
    has_damage = "query_damage" in t
    has_major = "major_defect" in t
    get = lambda c, i, d="": (t[c][i] if c in t and t[c][i] is not None else d)  # noqa: E731
    imgs, masks, aspect, rows = [], [], [], []
    for i in tqdm(keep, desc=f"load kaputt {split}", unit="img", disable=not progress):
        i = int(i)
        cid = str(t["capture_id"][i])
        where = f"row {i} (capture_id {cid})"
        if t[col][i] is None:
            raise DatasetError(f"{table}: {where}: {col} is empty")
        path = res(str(t[col][i]), where)
        a, asp = _read(path, "RGB", size)
        imgs.append(_resize(a, size))
        aspect.append(asp)
        if has_damage:
            m = np.zeros((size, size), np.uint8)
            if t["query_damage"][i] is not None:
                d, _ = _read(dres(str(t["query_damage"][i]), where), "L", 0)
                box = get("crop_box", i, None)
                if image_type == "crop" and box is not None:
                    x0, y0, x1, y1 = (int(v) for v in box)
                    d = d[y0:y1, x0:x1]
                m = _resize((d > 0).astype(np.uint8), size, nearest=True)
            masks.append(m)
        if not defect[i]:
            sev = ""
        elif has_major:
            sev = "major" if bool(get("major_defect", i, False)) else "minor"
        else:
            sev = "unknown"
        item = str(get("item_identifier", i, "")) or cid
        cam = str(get("camera", i, ""))
        mine = refs.get(item, [])
        same = [str(p) for p, c in mine if c == cam] if cam else []
        rows.append((int(defect[i]), ",".join(_types(get("defect_types", i, None))), str(path), item, sev,
                     _types(get("defect_types", i, None)), str(get("item_material", i, "")), cam,
                     same or [str(p) for p, _ in mine]))
    labels = np.array([r[0] for r in rows], np.int64)
    meta = {"kind": "kaputt", "root": str(root), "split": split, "image_type": image_type,
            "defect_rate": defect_rate, "seed": seed, "rows_in_split": n_rows,
            "defective_in_split": int(sum(defect)), "has_severity": has_major, "has_damage_masks": has_damage,
            "label": "Kaputt's defect column (item level, as annotated)"}
    return KaputtSet(np.stack(imgs), labels, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                     np.array(aspect), np.stack(masks) if has_damage else None,
                     np.ones(len(rows), bool) if has_damage else None, labels.astype(bool), meta,
                     severity=[r[4] for r in rows], defect_types=[r[5] for r in rows],
                     materials=[r[6] for r in rows], items=[r[3] for r in rows], cameras=[r[7] for r in rows],
                     references=[r[8] for r in rows])


def load_kaputt_references(root: str | Path, split: str = "train", size: int = 96, image_type: str = "crop",
                           progress: bool = False) -> tuple[ImageSet, list[str], list[str]]:
    """Reference images of one split: ``(images, item identifiers, cameras)``;
    the ImageSet's labels are 0 (references are primarily intact in Kaputt)."""

    root, split = Path(root), _split_name(split)
    if image_type not in IMAGE_TYPES:
        raise DatasetError(f"Kaputt image type must be one of {list(IMAGE_TYPES)}, got {image_type!r}")
    table = root / "datasets" / f"reference-{split}.parquet"
    if not table.is_file():
        raise DatasetError(f"{table}: Kaputt reference table not found")
    index = _reference_index(root, split, image_type)
    entries = [(item, p, cam) for item, lst in index.items() for p, cam in lst]
    if not entries:
        raise DatasetError(f"{table}: the reference table lists no images")
    imgs, aspect = [], []
    for _, p, _ in tqdm(entries, desc=f"load kaputt references {split}", unit="img", disable=not progress):
        a, asp = _read(p, "RGB", size)
        imgs.append(_resize(a, size))
        aspect.append(asp)
    n = len(entries)
    src = [str(e[1]) for e in entries]
    ref = ImageSet(np.stack(imgs), np.zeros(n, np.int64), [""] * n, src, [e[0] for e in entries],
                   np.array(aspect), meta={"kind": "kaputt_references", "root": str(root), "split": split})
    return ref, [e[0] for e in entries], [e[2] for e in entries]


# ----------------------------------------------------------------------------- kaputt:ROOT specs

def parse_kaputt_spec(spec: str) -> tuple[Path, dict]:
    """``kaputt:ROOT[?split=..&defect_rate=..&seed=..&image=crop|image]`` ->
    (root, load_kaputt keyword arguments)."""

    if not spec.startswith("kaputt:"):
        raise DatasetError(f"{spec!r}: a Kaputt source starts with kaputt: (kaputt:ROOT)")
    body = spec[len("kaputt:"):]
    path, _, query = body.partition("?")
    if not path:
        raise DatasetError(f"{spec!r}: no folder after kaputt:")
    opts: dict = {}
    for k, v in parse_qs(query, keep_blank_values=True, strict_parsing=bool(query)).items() if query else ():
        if k not in _SPEC_KEYS:
            raise DatasetError(f"{spec!r}: unknown option {k!r}; expected {list(_SPEC_KEYS)}")
        try:
            if k == "defect_rate":
                opts[k] = float(v[-1])
            elif k == "seed":
                opts[k] = int(v[-1])
            elif k == "image":
                opts["image_type"] = v[-1]
            else:
                opts[k] = v[-1]
        except ValueError:
            raise DatasetError(f"{spec!r}: option {k}={v[-1]!r} is not a number") from None
    return Path(path), opts


def load_kaputt_spec(spec: str, size: int = 96, progress: bool = False) -> KaputtSet:
    """The queries named by a ``kaputt:ROOT[?split=..&defect_rate=..&seed=..&image=..]``
    spec (:func:`parse_kaputt_spec`), loaded by :func:`load_kaputt` with ``size``
    px images. DatasetError for a malformed spec or an unreadable root."""
    root, opts = parse_kaputt_spec(spec)
    return load_kaputt(root, size=size, progress=progress, **opts)


def kaputt_test_spec(spec: str) -> str:
    """The test split of the same Kaputt root and image kind, at its own defect
    rate (a low-defect regime cuts training defects, never test ones)."""
    root, opts = parse_kaputt_spec(spec)
    return f"kaputt:{root}?split=test&image={opts.get('image_type', 'crop')}"


# ----------------------------------------------------------------------------- reference comparison

def pixel_features(images: np.ndarray, side: int = 16) -> np.ndarray:
    """A weight-free feature: ``(n, side*side*C)`` float32, the image shrunk to
    ``side`` px (box filter), each channel standardised per image (so a
    brighter capture of the same item stays near), then L2-normalised.
    images: ``(n, S, S, C)`` uint8."""

    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, S, S, C), got {images.shape}")
    out = np.empty((len(images), side * side * images.shape[3]), np.float32)
    for i, a in enumerate(images):
        im = Image.fromarray(a if a.shape[2] != 1 else a[..., 0])
        x = np.asarray(im.resize((side, side), Image.BOX), np.float32).reshape(side, side, -1)
        x = (x - x.mean((0, 1))) / (x.std((0, 1)) + 1.0)
        v = x.ravel()
        out[i] = v / (np.linalg.norm(v) + 1e-8)
    return out


def _features(fn, images: np.ndarray, batch: int, progress: bool, desc: str) -> np.ndarray:

    parts = []
    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", disable=not progress):
        f = np.asarray(fn(images[i:i + batch]), np.float64)
        if f.ndim != 2 or len(f) != len(images[i:i + batch]):
            raise ValueError(f"feature function must return (n, D) for n = {len(images[i:i + batch])} images, "
                             f"got shape {f.shape}")
        parts.append(f)
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def reference_scores(query_images: np.ndarray, query_items: Sequence[Hashable], ref_images: np.ndarray,
                     ref_items: Sequence[Hashable], features: Callable[[np.ndarray], np.ndarray] | None = None,
                     query_cameras: Sequence[str] | None = None, ref_cameras: Sequence[str] | None = None,
                     batch: int = 256, progress: bool = False) -> np.ndarray:
    """Anomaly score of each query: the Euclidean distance, in ``features``'
    space, to the nearest reference image of the same item (of the same camera
    when cameras are given and the item has one there). Higher = more unlike
    its intact references.

    query_images ``(n, S, S, C)`` / ref_images ``(m, S, S, C)`` uint8;
    features: ``(k, S, S, C)`` uint8 -> ``(k, D)`` (a backbone's pooled
    features; default :func:`pixel_features`). Returns ``(n,)`` float64, NaN
    where the item has no reference.
    """
    if len(query_items) != len(query_images) or len(ref_items) != len(ref_images):
        raise ValueError(f"items must match images: {len(query_items)} query items for {len(query_images)} images, "
                         f"{len(ref_items)} reference items for {len(ref_images)} images")
    if (query_cameras is None) != (ref_cameras is None):
        raise ValueError("give cameras for both queries and references, or for neither")
    fn = features or pixel_features
    fq = _features(fn, query_images, batch, progress, "features: queries")
    fr = _features(fn, ref_images, batch, progress, "features: references")
    if len(fr) and fq.shape[1:] != fr.shape[1:]:
        raise ValueError(f"query features {fq.shape} and reference features {fr.shape} differ in width")
    by_item: dict[Hashable, list[int]] = {}
    for j, it in enumerate(ref_items):
        by_item.setdefault(it, []).append(j)
    out = np.full(len(fq), np.nan)
    for i, it in enumerate(query_items):
        sel = by_item.get(it, [])
        if query_cameras is not None:
            sel = [j for j in sel if ref_cameras[j] == query_cameras[i]] or sel
        if sel:
            out[i] = float(np.sqrt(((fr[sel] - fq[i]) ** 2).sum(1)).min())
    return out


def _summary(labels: np.ndarray, scores: np.ndarray, categories, seed: int, n_boot: int) -> dict:

    return M.summarize(labels, scores, np.random.default_rng(seed), categories, n_boot=n_boot)


def kaputt_reference_comparison(root: str | Path, split: str = "test", size: int = 96,
                                features: Callable[[np.ndarray], np.ndarray] | None = None,
                                defect_rate: float | None = None, seed: int = 0, image_type: str = "crop",
                                n_boot: int = 1000, progress: bool = False) -> dict:
    """Reference comparison on one Kaputt split: every query scored by
    :func:`reference_scores` against its item's references; metrics (harness
    metrics, per defect_types string) over the queries that have a reference."""
    q = load_kaputt(root, split, size, defect_rate, seed, image_type, progress)
    ref, r_items, r_cams = load_kaputt_references(root, split, size, image_type, progress)
    cams = any(q.cameras) and any(r_cams)
    s = reference_scores(q.images, q.items, ref.images, r_items, features, q.cameras if cams else None,
                         r_cams if cams else None, progress=progress)
    ok = ~np.isnan(s)
    if not ok.any() or len(set(q.labels[ok].tolist())) < 2:
        raise DatasetError(f"{root}: split {split}: the queries with a reference ({int(ok.sum())} of {len(q)}; "
                           f"{int(q.labels[ok].sum())} defective) are not of both classes: nothing to rank")
    res = _summary(q.labels[ok], s[ok], [q.categories[i] for i in np.nonzero(ok)[0]], seed, n_boot)
    res.update({"queries": q.subset(np.nonzero(ok)[0]).counts(), "queries_without_reference": int((~ok).sum()),
                "references": len(ref), "features": getattr(features, "__name__", "pixel_features")})
    return res


def synthetic_reference_comparison(root: str | Path, size: int = 96,
                                   features: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                                   n_boot: int = 1000, progress: bool = False) -> dict:
    """Reference comparison on a damagesim dataset made with
    ``--reference-poses`` >= 1: each view against the pristine reference views
    of its SKU, same camera first (harness.data.load_references)."""

    q, ref, q_sku, r_sku = load_references(root, size=size)
    cam = lambda src: src.rsplit("/", 1)[1]  # noqa: E731  (sources end in /<camera>)
    s = reference_scores(q.images, q_sku, ref.images, r_sku, features, [cam(x) for x in q.sources],
                         [cam(x) for x in ref.sources], progress=progress)
    res = _summary(q.labels, s, q.categories, seed, n_boot)
    res.update({"queries": q.counts(), "references": len(ref),
                "features": getattr(features, "__name__", "pixel_features")})
    return res
