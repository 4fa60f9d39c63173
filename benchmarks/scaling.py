"""Scaling of generation: throughput with 1 and 2 local worker processes and with
Ray (local cluster), scaling efficiency, and worker RSS over a long run.

    python benchmarks/scaling.py [--n 16] [--rig tests/data/rig_small.yaml]
                                 [--rss-frames 10000] [--skip-ray] [--skip-rss]

Throughput is steady state: captures completed after every worker has finished
its first capture (process start, GL context and imports excluded), divided by
the time since; the whole-run wall time is printed too. Scaling efficiency =
speedup / workers; "per added core" = (speedup - 1) / (workers - 1).
RSS: one worker process that is never recycled makes captures for
``--rss-frames`` labelled frames (captures x cameras); growth = last RSS minus
the RSS after the first 10 captures (warm-up: imports, GL context, caches).
Prints figures; writes benchmarks/out/scaling.json. The machine must be quiet for
the scaling figures to mean anything: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.glenv import configure  # noqa: E402


def timed_run(spec, opts) -> dict:
    from simulator.parallel import run_captures

    stamps: list[float] = []
    t0 = time.perf_counter()
    rep = run_captures(spec, list(range(spec.n)), opts, progress=lambda k: stamps.extend([time.perf_counter()] * k))
    wall = time.perf_counter() - t0
    w = max(opts.workers, 1)
    steady = (len(stamps) - w) / (stamps[-1] - stamps[w - 1]) if len(stamps) > w + 1 else float("nan")
    return {"workers": opts.workers, "backend": opts.backend, "captures": len(stamps), "wall_s": wall,
            "captures_per_s_wall": len(stamps) / wall, "captures_per_s_steady": steady, "rss": rep.worker_rss_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rig", default=str(Path(__file__).resolve().parent.parent / "tests/data/rig_small.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rss-frames", type=int, default=10000)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    a = ap.parse_args()
    gl = configure()
    from simulator.parallel import RunOptions
    from simulator.pipeline import GenerateSpec, prepare

    tmp = Path(tempfile.mkdtemp(prefix="damagesim-scaling-"))
    cheap = {"pairs": False, "reference_poses": 0}  # captures only: what scales
    res: dict = {"rig": a.rig, "n": a.n, "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(), "runs": []}
    try:
        if not a.skip_scaling:
            configs = [RunOptions(workers=1, recycle=10 ** 9, gl=gl), RunOptions(workers=2, recycle=10 ** 9, gl=gl)]
            if not a.skip_ray:
                configs.append(RunOptions(workers=2, backend="ray", recycle=10 ** 9, gl=gl))
            for k, opts in enumerate(configs):
                spec = GenerateSpec(n=a.n, seed=a.seed, out=str(tmp / f"run{k}"), rig=a.rig, damage=cheap)
                prepare(spec)
                r = timed_run(spec, opts)
                r.pop("rss")
                res["runs"].append(r)
                print(f"{opts.backend:5s} workers={opts.workers}: {r['captures_per_s_steady']:.3f} captures/s steady, "
                      f"{r['captures_per_s_wall']:.3f} captures/s over the whole run ({r['wall_s']:.1f} s)", flush=True)
            one = res["runs"][0]["captures_per_s_steady"]
            for r in res["runs"][1:]:
                s = r["captures_per_s_steady"] / one
                r["speedup"], r["efficiency"] = s, s / r["workers"]
                r["efficiency_per_added_core"] = (s - 1) / (r["workers"] - 1)
                print(f"{r['backend']:5s} workers={r['workers']}: speedup {s:.2f}x, efficiency {s / r['workers']:.0%}, "
                      f"per added core {(s - 1) / (r['workers'] - 1):.0%} (target >= 85%)")
            res["load_avg_after_scaling"] = os.getloadavg()
            print(f"load average before/after: {res['load_avg_before']} / {res['load_avg_after_scaling']}")
        if not a.skip_rss:
            from simulator.rig import load_rig

            ncam = len(load_rig(a.rig).cameras)
            n = -(-a.rss_frames // ncam)
            spec = GenerateSpec(n=n, seed=a.seed + 1, out=str(tmp / "rss"), rig=a.rig, damage=cheap)
            prepare(spec)
            r = timed_run(spec, RunOptions(workers=1, recycle=10 ** 9, gl=gl, on_error="skip"))
            (pid, series), = r["rss"].items()
            warm = series[min(9, len(series) - 1)]
            res["rss"] = {"frames": n * ncam, "captures": n, "rss_mb_first": series[0], "rss_mb_after_warmup": warm,
                          "rss_mb_last": series[-1], "rss_mb_max": max(series), "growth_mb": series[-1] - warm,
                          "series_every_10": series[::10], "wall_s": r["wall_s"]}
            print(f"worker RSS over {n * ncam} frames ({n} captures, one process, no recycling): "
                  f"{series[0]:.0f} MB first, {warm:.0f} MB after warm-up, {series[-1]:.0f} MB last, "
                  f"max {max(series):.0f} MB; growth {series[-1] - warm:+.1f} MB (target <= 50 MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(__file__).resolve().parent / "out" / "scaling.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
