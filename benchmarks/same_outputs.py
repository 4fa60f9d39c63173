"""Are two datasets the same data? For a change that must not alter outputs
(a faster encoder, a reordered pipeline): made with the same command by two
code versions, every image must decode to the same pixels, label and depth
images exactly, RGB within ``--rgb-tol`` grey levels, and every capture.json /
annotations.json / COCO file must hold the same values (file bytes may differ:
PNG compression is free to change).

    python benchmarks/same_outputs.py BEFORE_DIR AFTER_DIR [--rgb-tol 1] [--skip-depth-camera-rgb] [--bytes]

``--bytes`` is the check for a refactor that must change nothing at all:
label and depth PNGs and every capture.json / annotations.json / COCO file
byte-identical (the card's paths and code version aside).

``--skip-depth-camera-rgb`` leaves out the rgb.png of depth-only cameras (rig
modality ``depth``), for a change that meant to alter them (before: a lit
colour render; since the depth-only pass: the active-IR amplitude image); their
largest difference is still printed.

Exit status 0 when they match, 1 with a list of differences otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: capture.json fields that name the run, not the data
_VOLATILE = ("code_version",)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def depth_only_cameras(root: Path) -> set[str]:
    """Names of the rig's depth-only cameras (modality ``depth``) in a dataset card."""
    card = json.loads((Path(root) / "dataset.json").read_text())
    return {c["name"] for c in card.get("rig", {}).get("cameras", []) if c.get("modality") == "depth"}


def compare(a: Path, b: Path, rgb_tol: int = 1, skip_depth_camera_rgb: bool = False,
            exact_bytes: bool = False) -> tuple[list[str], dict[str, int]]:
    """Returns (differences, counts of what was compared); ``exact_bytes``: label/depth
    PNGs and the JSON files (but the card) must also match byte for byte."""
    diffs: list[str] = []
    counts = {"label_depth_png": 0, "rgb_png": 0, "json": 0, "skipped_depth_camera_rgb": 0,
              "depth_camera_rgb_max_diff": 0}
    skip_cams = depth_only_cameras(a) if skip_depth_camera_rgb else set()
    fa = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    skip = {"manifest.jsonl", "dataset.md"}
    for rel in sorted((fa ^ fb) - skip):
        diffs.append(f"{rel}: only in {'before' if rel in fa else 'after'}")
    rgb_max = 0
    for rel in sorted((fa & fb) - skip):
        pa, pb = a / rel, b / rel
        if rel.endswith(".png"):
            x, y = np.asarray(Image.open(pa)), np.asarray(Image.open(pb))
            if x.shape != y.shape or x.dtype != y.dtype:
                diffs.append(f"{rel}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
            elif rel.endswith("/rgb.png") and Path(rel).parent.name in skip_cams:
                d = int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max())
                counts["skipped_depth_camera_rgb"] += 1
                counts["depth_camera_rgb_max_diff"] = max(counts["depth_camera_rgb_max_diff"], d)
            elif rel.endswith("/rgb.png"):
                d = int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max())
                rgb_max = max(rgb_max, d)
                counts["rgb_png"] += 1
                if d > rgb_tol:
                    diffs.append(f"{rel}: RGB differs by up to {d} grey levels (tolerance {rgb_tol})")
            else:
                counts["label_depth_png"] += 1
                if not np.array_equal(x, y):
                    diffs.append(f"{rel}: {int((x != y).sum())} pixels differ")
                elif exact_bytes and pa.read_bytes() != pb.read_bytes():
                    diffs.append(f"{rel}: same pixels, different bytes")
        elif rel.endswith(".json"):
            counts["json"] += 1
            ja, jb = json.loads(pa.read_text()), json.loads(pb.read_text())
            if rel == "dataset.json":  # paths name the checkout and the output folder
                for j in (ja, jb):
                    for k in ("out", "rig", "catalog"):
                        j.get("spec", {}).pop(k, None)
                    j.get("rig", {}).pop("path", None)
            if _strip(ja) != _strip(jb):
                diffs.append(f"{rel}: values differ")
            elif exact_bytes and rel != "dataset.json" and pa.read_bytes() != pb.read_bytes():
                diffs.append(f"{rel}: same values, different bytes")
    counts["rgb_max_diff"] = rgb_max
    return diffs, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rgb-tol", type=int, default=1, help="max RGB difference, grey levels")
    ap.add_argument("--skip-depth-camera-rgb", action="store_true",
                    help="leave out rgb.png of depth-only cameras (an intended change)")
    ap.add_argument("--bytes", action="store_true", help="label/depth PNGs and JSON files byte-identical too")
    args = ap.parse_args()
    for d in (args.before, args.after):
        if not (d / "dataset.json").is_file():
            print(f"{d}: not a dataset folder (no dataset.json)", file=sys.stderr)
            return 2
    diffs, counts = compare(args.before, args.after, args.rgb_tol, args.skip_depth_camera_rgb, args.bytes)
    print(f"compared {counts['label_depth_png']} label/depth PNGs (exact), {counts['rgb_png']} RGB PNGs "
          f"(max difference {counts['rgb_max_diff']} grey levels), {counts['json']} JSON files")
    if counts["skipped_depth_camera_rgb"]:
        print(f"not compared: {counts['skipped_depth_camera_rgb']} rgb.png of depth-only cameras (max difference "
              f"{counts['depth_camera_rgb_max_diff']} grey levels)")
    for d in diffs[:50]:
        print("  " + d)
    if len(diffs) > 50:
        print(f"  ... and {len(diffs) - 50} more")
    print("same outputs" if not diffs else f"{len(diffs)} difference(s)")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
