"""Median time of the spill, missing_component and deconstruction operators on
~20k-face products (target: <= 20 ms each). A generated product is refined
(red-green, whole faces) until it has about 20k faces, then each op runs
``--n`` times with different seeds. Writes benchmarks/out/ops_spill_missing_deconstruction.json.

    python benchmarks/ops_spill_missing_deconstruction.py [--n 30]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import damage_ops.deconstruction  # noqa: E402,F401
import damage_ops.missing  # noqa: E402,F401
import damage_ops.spill  # noqa: E402,F401
from damage_ops.base import apply  # noqa: E402
from damage_ops.remesh import refine_once  # noqa: E402
from simulator.products import build_product  # noqa: E402

TARGET = 20_000


def to_20k(p):
    """Refine the first faces of ``p`` (1 -> 4) until it has about 20k faces."""
    while len(p.mesh.faces) < 0.95 * TARGET:
        n = len(p.mesh.faces)
        k = min(n, int((TARGET - n) / 4.5))
        mask = np.zeros(n, bool)
        mask[np.random.default_rng(0).permutation(n)[:k]] = True
        p.mesh, _ = refine_once(p.mesh, mask)
    return p


CASES = [
    ("spill", "carton", {"length_mm": 450, "width_mm": 300, "height_mm": 300},
     {"area_cm2": 80, "stain_area_cm2": 20}),
    ("spill", "pouch", {}, {"area_cm2": 30, "stain_area_cm2": 0, "substance": "powder"}),
    ("missing_component", "multipack", {"units": 12}, {"units": 2}),
    ("missing_component", "blister", {"units": 12, "width_mm": 200, "height_mm": 260}, {"units": 1}),
    ("deconstruction", "carton", {"length_mm": 450, "width_mm": 300, "height_mm": 300},
     {"mode": "flap_open", "opening_mm": 60}),
    ("deconstruction", "pouch", {}, {"mode": "burst_seam", "opening_mm": 15}),
    ("deconstruction", "carton", {"length_mm": 450, "width_mm": 300, "height_mm": 300},
     {"mode": "contents_out", "opening_mm": 40}),
    ("deconstruction", "multipack", {"units": 12}, {"mode": "contents_out", "opening_mm": 15}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    a = ap.parse_args()
    rows = []
    for op, kind, kp, params in CASES:
        p = to_20k(build_product(kind, f"{kind}-bench", kp, np.random.default_rng(0)))
        apply(p, op, params, np.random.default_rng(0))  # warm-up
        ts = []
        for s in range(a.n):
            t = time.perf_counter()
            apply(p, op, params, np.random.default_rng(s))
            ts.append(time.perf_counter() - t)
        row = {"op": op, "kind": kind, "faces": len(p.mesh.faces), "params": params,
               "median_ms": float(np.median(ts) * 1e3), "p90_ms": float(np.percentile(ts, 90) * 1e3)}
        rows.append(row)
        print(f"{op:18s} {kind:9s} {row['faces']:6d} faces  median {row['median_ms']:6.1f} ms  "
              f"p90 {row['p90_ms']:6.1f} ms  {params}")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "ops_spill_missing_deconstruction.json").write_text(json.dumps(
        {"machine": platform.processor() or platform.machine(), "n": a.n, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
