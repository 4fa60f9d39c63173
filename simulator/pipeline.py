"""Generation pipeline: sample items, settle them with physics, render every camera,
write one capture folder per sample, then the COCO files and the dataset card.

Capture i depends only on (seed, i): its random streams come from
``np.random.SeedSequence([seed, i])``, the physics world is reset for every
capture and the renderer keeps no per-capture state.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ConfigError
from .paths import default_catalog, default_rig
from .writers import DEPTH_SCALE_M, list_captures, write_capture, write_card, write_coco

#: named random streams of one capture, in spawn order (append only: reordering
#: would change every existing dataset)
STREAMS = ("scene", "damage", "physics", "render")


@dataclass(frozen=True)
class GenerateSpec:
    """What to generate. Paths are stored as given (strings) in the dataset card."""

    n: int = 10
    seed: int = 0
    out: str = "renders/default"
    rig: str = field(default_factory=lambda: str(default_rig()))
    catalog: str = field(default_factory=lambda: str(default_catalog()))
    items_per_tray: int = 1

    def validate(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(None, "--n", self.n, "must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(None, "--seed", self.seed, "must be an integer >= 0")
        if not isinstance(self.items_per_tray, int) or not 1 <= self.items_per_tray <= 8:
            raise ConfigError(None, "--items", self.items_per_tray, "must be an integer in 1..8")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def capture_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators for one capture, determined by (seed, index) only."""
    children = np.random.SeedSequence([seed, index]).spawn(len(STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(STREAMS, children)}


class CaptureMaker:
    """Makes captures. Owns one physics client and one GL context; reuse it."""

    def __init__(self, spec: GenerateSpec, rig, catalog):
        from .physics import PhysicsWorld
        from .render import BoothRenderer

        self.spec, self.rig, self.catalog = spec, rig, catalog
        self.world = PhysicsWorld()
        self.renderer = BoothRenderer(rig, catalog.materials)
        self.timings: dict[str, float] = {}

    def close(self) -> None:
        self.renderer.close()
        self.world.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def scene(self, index: int):
        """Sample and place the items of capture ``index``.

        Returns (products, placements, streams)."""
        streams = capture_streams(self.spec.seed, index)
        skus = [self.catalog.sample(streams["scene"]) for _ in range(self.spec.items_per_tray)]
        products = [self.catalog.build(s) for s in skus]
        placements = self.world.settle(products, self.rig.tray, streams["physics"], self.catalog.materials)
        return products, placements, streams

    def make(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Build, settle and render capture ``index``. Returns (capture.json dict, frames)."""
        from .render import SceneItem

        products, placements, _ = self.scene(index)
        items, damages, scene_items = [], [], []
        offset = 0
        for k, (prod, pl) in enumerate(zip(products, placements)):
            iid = k + 1
            scene_items.append(SceneItem(prod, pl.T_world_from_item, iid, offset))
            ids = []
            for j, rec in enumerate(prod.damages):
                did = offset + j + 1
                ids.append(did)
                damages.append({"damage_instance_id": did, "instance_id": iid, **rec.to_json()})
            offset += len(prod.damages)
            items.append({
                "instance_id": iid, "sku": prod.sku, "kind": prod.kind,
                "dims_mm": [float(x) for x in prod.dims_mm], "mass_kg": float(prod.mass_kg),
                "parts": [{"index": i, "name": p.name, "global_id": p.global_id, "material": p.material,
                           "printed": p.printed} for i, p in enumerate(prod.parts)],
                "T_world_from_item": pl.T_world_from_item.tolist(),
                "physics": {"settled": bool(pl.settled), "steps": int(pl.steps), "lin_speed_m_s": float(pl.lin_speed),
                            "ang_speed_rad_s": float(pl.ang_speed), "min_z_m": float(pl.min_z_m)},
                "damage_instance_ids": ids,
                "n_faces": int(len(prod.mesh.faces)),
                "generator": _jsonable(prod.meta),
            })
        frames = self.renderer.render(scene_items)
        meta = {
            "format": "damagesim-capture/1",
            "index": index,
            "capture_id": f"{index:06d}",
            "seed": self.spec.seed,
            "rig": self.rig.name,
            "cameras": {c.name: {**c.to_json(), "depth_scale_m": DEPTH_SCALE_M} for c in self.rig.cameras},
            "items": items,
            "damages": damages,
        }
        return meta, frames


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def prepare(spec: GenerateSpec):
    """Validate everything before any output exists. Returns (rig, catalog)."""
    from .catalog import load_catalog
    from .rig import load_rig

    spec.validate()
    rig = load_rig(spec.rig)
    catalog = load_catalog(spec.catalog)
    missing = sorted({rig.tray.material} - set(catalog.materials))
    if missing:
        raise ConfigError(rig.path, "tray.material", missing[0], "is not in the materials library")
    out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", str(out), "exists and is not a directory")
    card = out / "dataset.json"
    if card.is_file():
        try:
            old = json.loads(card.read_text())["spec"]
        except (ValueError, KeyError):
            old = None
        mine = spec.to_json()
        if old is not None and {k: old.get(k) for k in mine if k != "n"} != {k: v for k, v in mine.items() if k != "n"}:
            raise ConfigError(None, "--out", str(out),
                              "holds a dataset generated with another spec; choose another --out or delete it")
    return rig, catalog


def generate(spec: GenerateSpec, only: int | None = None,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate ``spec.n`` captures (or just capture ``only``) and (re)write the
    COCO files and the dataset card. Returns the card."""
    rig, catalog = prepare(spec)
    if only is not None and not 0 <= only < spec.n:
        raise ConfigError(None, "--only", only, f"must be in 0..{spec.n - 1} (--n {spec.n})")
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    indices = [only] if only is not None else list(range(spec.n))
    with CaptureMaker(spec, rig, catalog) as maker:
        for i in indices:
            meta, frames = maker.make(i)
            write_capture(out, i, meta, frames)
            if progress is not None:
                progress(1)
    return finalize(out, spec, rig)


def finalize(out: Path, spec: GenerateSpec, rig) -> dict[str, Any]:
    """Write COCO per camera and the dataset card from the captures on disk
    (captures with index < n; stale ones from a larger earlier run are ignored)."""
    caps = [c for c in list_captures(out) if int(c.name) < spec.n]
    rig_json = rig.to_json()
    coco = write_coco(out, rig_json, caps)
    return write_card(out, spec.to_json(), rig_json, caps, coco)
