"""A fixed small corpus, to check that a speed change leaves outputs unchanged.

    python benchmarks/fixed_corpus.py make DIR [--n 3] [--seed 7]
    python benchmarks/fixed_corpus.py compare BEFORE_DIR AFTER_DIR [--rgb-tol 1]

``make`` runs ``damagesim generate`` (one in-process worker, the default rig and
catalog) for ``--n`` captures with a fixed seed into DIR (which must not exist).
Make BEFORE_DIR with the old code (e.g. ``git archive <rev> | tar -x -C /tmp/old``
then ``PYTHONPATH=/tmp/old python /tmp/old/benchmarks/fixed_corpus.py make ...``
or this very script with PYTHONPATH pointing at the old tree) and AFTER_DIR with
the new one, then ``compare``: label and depth PNGs must decode to identical
pixels, RGB within ``--rgb-tol`` grey levels, JSON files the same values
(:func:`benchmarks.same_outputs.compare`). Exit status 0 when they match.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# benchmarks/damage_ops.py would shadow the damage_ops package: not on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def make(out: Path, n: int, seed: int) -> None:
    from simulator.render.glenv import configure

    configure(None)
    from simulator.generate.run import generate
    from simulator.generate.spec import GenerateSpec

    if out.exists():
        sys.exit(f"{out} exists: give a new folder")
    t = time.perf_counter()
    generate(GenerateSpec(n=n, seed=seed, out=str(out)))
    import simulator

    print(f"made {n} captures (seed {seed}) in {out} with {Path(simulator.__file__).parent.parent} "
          f"in {time.perf_counter() - t:.1f} s")


def compare(a: Path, b: Path, rgb_tol: int) -> int:
    for d in (a, b):
        if not (d / "dataset.json").is_file():
            print(f"{d}: not a dataset folder (no dataset.json)", file=sys.stderr)
            return 2
    sp = importlib.util.spec_from_file_location("_same_outputs", HERE / "same_outputs.py")
    so = importlib.util.module_from_spec(sp)
    sp.loader.exec_module(so)
    diffs, counts = so.compare(a, b, rgb_tol)
    print(f"compared {counts['label_depth_png']} label/depth PNGs (exact), {counts['rgb_png']} RGB PNGs "
          f"(max difference {counts['rgb_max_diff']} grey levels, tolerance {rgb_tol}), {counts['json']} JSON files")
    for d in diffs[:50]:
        print("  " + d)
    print("same outputs" if not diffs else f"{len(diffs)} difference(s)")
    return 0 if not diffs else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out", type=Path)
    m.add_argument("--n", type=int, default=3)
    m.add_argument("--seed", type=int, default=7)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--rgb-tol", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.out, args.n, args.seed)
        return 0
    return compare(args.before, args.after, args.rgb_tol)


if __name__ == "__main__":
    sys.exit(main())
