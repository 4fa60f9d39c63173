"""What to generate (:class:`GenerateSpec`) and the checks made before any output exists: configs load, overrides parse, the output holds no other dataset, every camera fits the GL context."""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config.catalog import load_catalog
from simulator.config.randomization import parse as parse_dr
from simulator.config.rig import load_rig, rig_warnings
from simulator.core.conventions import undistort_normalized
from simulator.core.errors import ConfigError, excerpt
from simulator.core.paths import default_catalog, default_rig
from simulator.core.yamlio import integer

#: most captures in one dataset (the manifest, the COCO files and the card are
#: built in memory; 10^7 is the top of the corpus sizes researchers ask for)
MAX_CAPTURES = 10 ** 7


@dataclass(frozen=True)
class GenerateSpec:
    """What to generate. Paths are stored as given (strings) in the dataset card."""

    n: int = 10
    seed: int = 0
    out: str = "renders/default"
    rig: str = field(default_factory=lambda: str(default_rig()))
    catalog: str = field(default_factory=lambda: str(default_catalog()))
    items_per_tray: int = 1
    #: command-line overrides of the catalog's damage mix (simulator.config.mix.DamageMix fields)
    damage: dict = field(default_factory=dict)
    #: domain randomization preset name or mapping (None = the catalog's section)
    randomization: Any = None

    def validate(self) -> None:
        """Check ``n``, ``seed`` and ``items_per_tray``; a bad one raises ConfigError named
        by its flag (``--n``, ``--seed``, ``--items``). Rig, catalog and overrides are
        checked by :func:`prepare`."""
        integer(None, "--n", self.n, 1, MAX_CAPTURES, f"must be an integer in 1..{MAX_CAPTURES:,} (a larger corpus: "
                                                       f"several datasets with different --seed)")
        integer(None, "--seed", self.seed, 0)
        integer(None, "--items", self.items_per_tray, 1, 8)

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict: the dataset card's ``spec``."""
        return asdict(self)


def prepare(spec: GenerateSpec):
    """Validate everything before any output exists. Returns (rig, catalog)."""

    spec.validate()
    rig = load_rig(spec.rig)
    catalog = load_catalog(spec.catalog)
    catalog.damage.with_overrides(**spec.damage)  # bad overrides fail here, before any output
    if spec.randomization is not None:

        parse_dr(None, spec.randomization)
    missing = sorted({rig.tray.material} - set(catalog.materials))
    if missing:
        raise ConfigError(rig.path, "tray.material", missing[0], "is not in the materials library")
    out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", str(out), "exists and is not a directory")
    card = out / "dataset.json"
    if card.is_file():
        try:
            old = json.loads(card.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("spec"), dict):
            diff = spec_differences(old, spec, rig)
            if diff:
                raise ConfigError(None, "--out", str(out),
                                  f"holds a dataset generated with another spec ({'; '.join(diff)}); "
                                  f"choose another --out or delete it")
    check_render_limits(rig)


    for w in rig_warnings(rig):
        warnings.warn(w, stacklevel=2)
    return rig, catalog


#: render sides every GL context we run on holds (llvmpipe and GPU drivers
#: allow 16384); only a rig that renders larger pays for asking the context
GL_SAFE_SIDE = 4096


def check_render_limits(rig) -> None:
    """Every camera's render (the wider pinhole view of a distorted lens
    included) must fit the GL context's largest renderbuffer and viewport;
    checked here, before any output, not as a raw GL error in a worker."""
    sizes = {i: (_wide_size(cam) if any(cam.distortion) else cam.resolution) for i, cam in enumerate(rig.cameras)}
    if max(max(s) for s in sizes.values()) <= GL_SAFE_SIDE:
        return
    limit = gl_max_render_size()
    for i, (w, h) in sizes.items():
        cam = rig.cameras[i]
        if max(w, h) > limit:
            wide = "" if (w, h) == cam.resolution else f" (its lens distortion needs a {w}x{h} pinhole render)"
            raise ConfigError(rig.path, f"cameras[{i}]({cam.name}).resolution", list(cam.resolution),
                              f"is larger than this GL context renders{wide}: at most {limit} pixels a side")


def _wide_size(cam) -> tuple[int, int]:
    """(w, h) of the pinhole render a distorted camera needs (what
    render.LensRemap computes from every pixel), from the image border and a
    coarse grid: cheap enough for every generate, a few pixels generous."""

    w, h = cam.resolution
    K = cam.K
    us = np.unique(np.r_[np.linspace(0, w - 1, 65), [0, w - 1]])
    vs = np.unique(np.r_[np.linspace(0, h - 1, 65), [0, h - 1]])
    u, v = np.meshgrid(us, vs)
    xu, yu = undistort_normalized((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], cam.distortion)
    return (int(np.ceil(K[0, 0] * (xu.max() - xu.min()))) + 9, int(np.ceil(K[1, 1] * (yu.max() - yu.min()))) + 9)


def gl_max_render_size() -> int:
    """min(GL_MAX_RENDERBUFFER_SIZE, GL_MAX_VIEWPORT_DIMS) of a fresh offscreen context."""
    import pyrender
    from OpenGL import GL

    r = pyrender.OffscreenRenderer(16, 16)
    try:
        return int(min(int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE)), *[int(x) for x in
                                                                            GL.glGetIntegerv(GL.GL_MAX_VIEWPORT_DIMS)]))
    finally:
        r.delete()


def _same_file(a: str, b: str) -> bool:
    """Two spellings of one file, or two files with the same bytes (a copy)."""
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes())
    except OSError:
        return False


def spec_differences(card: dict[str, Any], spec: GenerateSpec, rig) -> list[str]:
    """What differs between the spec a dataset was made with (its card) and
    ``spec``, as short "field: there X, here Y" strings; empty when the same
    dataset would come out. The output path (the dataset may have been moved,
    copied, or named by another path spelling) and ``n`` (a run may be grown)
    are not compared; the rig is compared by content, the catalog as a file."""

    old, mine = card["spec"], spec.to_json()
    out = []
    for k, v in mine.items():
        if k in ("n", "out"):
            continue
        was = old.get(k)
        if k == "rig":
            if isinstance(card.get("rig"), dict):
                a = {x: y for x, y in card["rig"].items() if x != "path"}
                b = {x: y for x, y in rig.to_json().items() if x != "path"}
                if json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
                    out.append(f"rig: {excerpt(was, 60)} there, {excerpt(v, 60)} here, with other content")
                continue
            same = isinstance(was, str) and _same_file(was, v)
        elif k == "catalog":
            same = isinstance(was, str) and _same_file(was, v)
        else:
            same = json.loads(json.dumps(was)) == json.loads(json.dumps(v))
        if not same:
            out.append(f"{k}: {excerpt(was, 60)} there, {excerpt(v, 60)} here")
    return out
