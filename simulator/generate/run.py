"""A generation run: validate, make the captures (in process or in parallel), then write COCO and the dataset card."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from simulator.core.errors import ConfigError
from simulator.dataset.shards import SHARD_DIR, finalize_with_shards, shard_files
from simulator.dataset.writers import (
    check_writable,
    list_captures,
    output_error,
    write_card,
    write_coco,
    write_json_atomic,
)
from simulator.generate.parallel import RunOptions, run_captures
from simulator.generate.spec import GenerateSpec, prepare


def generate(spec: GenerateSpec, only: int | None = None,
             progress: Callable[[int], None] | None = None, run=None) -> dict[str, Any]:
    """Generate ``spec.n`` captures (or just capture ``only``) and (re)write the
    COCO files and the dataset card. Returns the card.

    run: simulator.generate.parallel.RunOptions (workers, backend, resume, shards, on_error);
    default: one in-process worker, capture folders, stop on the first error."""

    run = run if run is not None else RunOptions()
    run.validate()
    rig, catalog = prepare(spec)
    if only is not None and not 0 <= only < spec.n:
        raise ConfigError(None, "--only", only, f"must be in 0..{spec.n - 1} (--n {spec.n})")
    if only is not None and run.shards:
        raise ConfigError(None, "--only", only, "cannot be combined with --shards (shards are written whole)")
    out = Path(spec.out)
    check_writable(out)
    indices = [only] if only is not None else list(range(spec.n))
    report = run_captures(spec, indices, run, progress)
    mix = catalog.damage.with_overrides(**spec.damage)
    try:
        card = finalize(out, spec, rig, mix, shard_size=run.shard_size if run.shards else None)
        if report.failed:

            card["failed_captures"] = {str(i): e for i, e in sorted(report.failed.items())}
            write_json_atomic(out / "dataset.json", card)
    except OSError as e:
        raise output_error(out, e) from None
    return card


def finalize(out: Path, spec: GenerateSpec, rig, mix, shard_size: int | None = None) -> dict[str, Any]:
    """Write COCO per camera and the dataset card from the captures on disk
    (captures with index < n; stale ones from a larger earlier run are ignored).
    Captures packed in shards/ are read from the shards."""

    rig_json = rig.to_json()
    spec_json = {**spec.to_json(), "damage_mix": mix.to_json()}
    if shard_files(Path(out) / SHARD_DIR):
        return finalize_with_shards(out, spec_json, rig_json, spec.n, shard_size)
    caps = [c for c in list_captures(out) if int(c.name) < spec.n]
    coco = write_coco(out, rig_json, caps)
    return write_card(out, spec_json, rig_json, caps, coco)
