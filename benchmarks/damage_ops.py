"""Median time of every registered damage operator on a ~20k-face product, with
trimesh's own ``Trimesh.copy()`` + ``subdivide()`` of the same mesh as the peer,
measured in the same run. Target: <= 20 ms per op (median).

Each op runs on a carton refined (damage_ops.remesh.refine, all faces) to
~20k faces, except where the op needs another kind (missing_component: a
multipack, also refined to ~20k faces), with a ``minor`` and a ``major``
parameter set, ``--n`` runs each (rng seeds 0..n-1, so the location varies),
on a fresh copy of the product each run. The figure is warm: the product's
per-face geometry is cached as a catalog product's is in a corpus run; "cold"
is the same with that cache cleared. Writes benchmarks/out/damage_ops.json.

    python benchmarks/damage_ops.py [--n 9] [--faces 20000]
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damage_ops.base import REGISTRY, apply  # noqa: E402
from damage_ops.remesh import refine  # noqa: E402
from damage_ops.spatial import prepare  # noqa: E402
from simulator.products import build_product  # noqa: E402

#: op modules, imported if present (other engineers add them concurrently)
OP_MODULES = ("crush", "superficial", "puncture", "tear", "spill", "missing", "deconstruction")

#: op -> {"minor": params, "major": params}; ops not listed run their defaults for both
PARAMS: dict[str, dict[str, dict]] = {
    "crush": {"minor": {"depth_mm": 5.0, "radius_mm": 30.0}, "major": {"depth_mm": 25.0, "radius_mm": 90.0, "mode": "corner"}},
    "superficial": {"minor": {"style": "scuff", "area_cm2": 4.0}, "major": {"style": "stain", "area_cm2": 40.0}},
    "puncture": {"minor": {"diameter_mm": 6.0}, "major": {"diameter_mm": 30.0}},
    "tear": {"minor": {"length_mm": 30.0, "opening_deg": 10.0}, "major": {"length_mm": 120.0, "opening_deg": 60.0}},
    "spill": {"minor": {"area_cm2": 20.0}, "major": {"area_cm2": 150.0}},
    "missing_component": {"minor": {"units": 1}, "major": {"units": 3}},
    "deconstruction": {"minor": {"opening_mm": 20.0}, "major": {"opening_mm": 80.0}},
}
#: extra cases worth a figure of their own (op, label, params)
EXTRA = (
    ("crush", "crumple", {"depth_mm": 10.0, "radius_mm": 60.0, "mode": "crumple"}),
    ("crush", "edge", {"depth_mm": 25.0, "radius_mm": 60.0, "mode": "edge"}),
    ("crush", "crease", {"depth_mm": 20.0, "radius_mm": 70.0, "mode": "crease"}),
    ("crush", "buckle", {"depth_mm": 15.0, "radius_mm": 60.0, "mode": "buckle"}),
    ("crush", "wrinkle", {"depth_mm": 5.0, "radius_mm": 80.0, "mode": "wrinkle"}),
    ("superficial", "scratch", {"style": "scratch", "length_mm": 80.0, "width_mm": 1.0}),
    ("superficial", "torn_label(liner)", {"style": "torn_label", "area_cm2": 10.0}),
)
KIND_FOR = {"missing_component": "multipack"}


def product_near(kind: str, faces: int, seed: int = 0):
    """A product of ``kind`` refined on all faces to about ``faces`` faces."""
    p = build_product(kind, f"bench-{kind}", {}, np.random.default_rng(seed))
    lo, hi = 1e-3, 0.2  # bisect the max edge length (m) for the face count
    best = None
    for _ in range(14):
        mid = np.sqrt(lo * hi)
        m, _ = refine(p.mesh, np.ones(len(p.mesh.faces), bool), mid, max_levels=4)
        if best is None or abs(len(m.faces) - faces) < abs(len(best.faces) - faces):
            best = m
        if len(m.faces) > faces:
            lo = mid
        else:
            hi = mid
    q = p.copy()
    q.mesh = best
    return q


def time_op(p, op: str, params: dict, n: int) -> dict:
    """Median over ``n`` runs, warm and cold. Warm: the input is a copy of a
    product prepared as the catalog prepares each product once
    (damage_ops.spatial.prepare: per-face geometry, the face grid, and the
    cover record the copies share, which fills as runs measure cover). Cold:
    those caches cleared before each run (a product nobody has seen)."""
    prepare(p.mesh)
    ts, tc = [], []
    for i in range(n):
        q = p.copy()
        t = time.perf_counter()
        apply(q, op, params, np.random.default_rng(i))
        ts.append(time.perf_counter() - t)
        q = p.copy()
        q.mesh._cache.clear()
        t = time.perf_counter()
        apply(q, op, params, np.random.default_rng(i))
        tc.append(time.perf_counter() - t)
    ts, tc = np.array(ts) * 1e3, np.array(tc) * 1e3
    return {"median_ms": float(np.median(ts)), "min_ms": float(ts.min()), "max_ms": float(ts.max()), "n": n,
            "cold_median_ms": float(np.median(tc))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=9)
    ap.add_argument("--faces", type=int, default=20000)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "damage_ops.json"))
    a = ap.parse_args(argv)

    notes = []
    for mod in OP_MODULES:
        try:
            importlib.import_module(f"damage_ops.{mod}")
        except ImportError as e:
            notes.append(f"damage_ops.{mod} not available ({e}); skipped")
            print(f"note: damage_ops.{mod} not available ({e}); skipped")

    products = {}
    for kind in sorted({KIND_FOR.get(op, "carton") for op in REGISTRY}):
        products[kind] = product_near(kind, a.faces)
        print(f"{kind}: {len(products[kind].mesh.faces)} faces")

    # peer: trimesh's own copy + subdivide (1 -> 4 split of every face) of the carton
    peer_mesh = products.get("carton", next(iter(products.values()))).mesh
    ts = []
    for _ in range(a.n):
        t = time.perf_counter()
        peer_mesh.copy().subdivide()
        ts.append(time.perf_counter() - t)
    peer = {"median_ms": float(np.median(ts) * 1e3), "faces": len(peer_mesh.faces)}
    print(f"{'peer: trimesh copy()+subdivide()':44s} {peer['median_ms']:8.2f} ms")

    results = {}
    cases = [(op, sev, PARAMS.get(op, {}).get(sev, {})) for op in sorted(REGISTRY) for sev in ("minor", "major")]
    cases += [c for c in EXTRA if c[0] in REGISTRY]
    for op, label, params in cases:
        p = products[KIND_FOR.get(op, "carton")]
        try:
            r = time_op(p, op, params, a.n)
        except Exception as e:  # an op still in progress must not hide the others' figures
            r = {"error": f"{type(e).__name__}: {e}"}
            print(f"{op + ' ' + label:44s} ERROR {r['error']}")
        else:
            _, rec = apply(p, op, params, np.random.default_rng(0))
            r.update({"params": params, "severity_seed0": rec.severity, "size_seed0": rec.size,
                      "faces_in": len(p.mesh.faces), "vs_peer": r["median_ms"] / peer["median_ms"],
                      "meets_20ms": r["median_ms"] <= 20.0})
            print(f"{op + ' ' + label:44s} {r['median_ms']:8.2f} ms  ({r['median_ms'] / peer['median_ms']:.1f}x peer)"
                  f"  cold {r['cold_median_ms']:6.2f} ms{'' if r['meets_20ms'] else '  > 20 ms target'}")
        results.setdefault(op, {})[label] = r

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "target_ms": 20.0, "faces": a.faces, "n": a.n, "peer": peer, "ops": results, "notes": notes,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__},
    }, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
