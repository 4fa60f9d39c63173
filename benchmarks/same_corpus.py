"""Compare two generated datasets file by file: the check that a refactor
changed no behaviour.

    python benchmarks/same_corpus.py BEFORE AFTER [--rgb-tol 1]

Label and depth PNGs, capture.json files and COCO files must be byte-identical;
rgb.png may differ by at most ``--rgb-tol`` grey levels per channel (GL
rasterisation and float sums may round differently). The dataset card and the
manifest differ in their code version and timings, so they are compared with
those fields removed. Prints one line per difference and a summary; exit 1 on
any difference."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

VOLATILE = {"out", "code_version", "created", "timings", "elapsed_s", "wall_s", "rss_mb", "pid", "host", "time"}


def _strip(x):
    if isinstance(x, str) and x.startswith("/"):  # an absolute path: the checkouts and outputs differ
        return "/".join(x.split("/")[-3:])
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def compare(a: Path, b: Path, rgb_tol: int) -> tuple[list[str], dict[str, int]]:
    """(differences, counts of files compared by kind) between datasets ``a`` and ``b``."""
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    diffs = [f"only in {a}: {p}" for p in sorted(fa - fb)] + [f"only in {b}: {p}" for p in sorted(fb - fa)]
    counts = {"rgb": 0, "png": 0, "json": 0, "other": 0}
    worst_rgb = 0
    for rel in sorted(fa & fb):
        pa, pb = a / rel, b / rel
        if rel.name == "rgb.png":
            x = np.asarray(Image.open(pa)).astype(int)
            y = np.asarray(Image.open(pb)).astype(int)
            counts["rgb"] += 1
            if x.shape != y.shape:
                diffs.append(f"{rel}: shape {x.shape} vs {y.shape}")
                continue
            d = int(np.abs(x - y).max()) if x.size else 0
            worst_rgb = max(worst_rgb, d)
            if d > rgb_tol:
                diffs.append(f"{rel}: RGB differs by up to {d} grey levels")
        elif rel.suffix == ".png":
            counts["png"] += 1
            if pa.read_bytes() != pb.read_bytes():
                diffs.append(f"{rel}: PNG bytes differ")
        elif rel.name in ("dataset.json", "manifest.jsonl"):
            counts["json"] += 1
            if rel.suffix == ".json":
                la, lb = [_strip(json.loads(pa.read_text()))], [_strip(json.loads(pb.read_text()))]
            else:
                la = [_strip(json.loads(s)) for s in pa.read_text().splitlines() if s.strip()]
                lb = [_strip(json.loads(s)) for s in pb.read_text().splitlines() if s.strip()]
            if rel.name == "manifest.jsonl":  # finishing order may differ between runs
                la, lb = sorted(map(json.dumps, la)), sorted(map(json.dumps, lb))
            if la != lb:
                diffs.append(f"{rel}: differs (volatile fields removed)")
        elif rel.suffix == ".json":
            counts["json"] += 1
            if pa.read_bytes() != pb.read_bytes():
                diffs.append(f"{rel}: bytes differ")
        else:
            counts["other"] += 1
            if rel.name != "dataset.md" and pa.read_bytes() != pb.read_bytes():
                diffs.append(f"{rel}: bytes differ")
    counts["worst_rgb_grey_levels"] = worst_rgb
    return diffs, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rgb-tol", type=int, default=1)
    a = ap.parse_args()
    diffs, counts = compare(a.before, a.after, a.rgb_tol)
    for d in diffs[:200]:
        print(d)
    print(f"compared {counts}: {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
