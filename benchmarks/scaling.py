"""Scaling of generation: throughput with 1 and 2 local worker processes and with
Ray (local cluster), scaling efficiency, and worker RSS over a long run.

    python benchmarks/scaling.py [--n 24] [--repeat 2] [--warmup 2] [--rig tests/data/rig_small.yaml]
                                 [--rss-frames 10000] [--skip-ray] [--skip-rss] [--skip-ceiling]

Throughput is steady state: captures completed after every worker has finished
its first ``--warmup`` captures (process start, GL context, imports, first
shader compiles, catalog/texture caches filling: all paid once per worker
process, i.e. once per ``--recycle`` captures in a real run) and before the
first worker runs out of work (the drain at the end of a run, which a long run
pays once), divided by that time; the whole-run wall time is printed too. Scaling efficiency =
speedup / workers; "per added core" = (speedup - 1) / (workers - 1).

Where the loss goes (from what each worker reports per capture): speedup =
workers x busy x (s1 / s2), with s the worker's wall seconds per capture and
busy the share of the steady window the workers spent making captures. busy < 1
is dispatch / parent overhead (or a worker waiting); s2 > s1 is the workers
slowing each other down (shared caches, memory bandwidth, other load). The
machine's own ceiling is measured in the same run: a CPU-bound kernel (numpy,
zlib, Python) in 1 process, then in 2 processes at once.

Configurations run interleaved (1, 2, Ray, 1, 2, Ray, ...) ``--repeat`` times so
that load from other processes drifting during the run biases none of them;
the median of each is reported. The load average is printed with the figures.

RSS (the target: at most 50 MB of worker RSS growth over a 10,000-frame run):
one worker process that is never recycled makes captures for ``--rss-frames``
labelled frames (captures x cameras; default 3,000, about 10 minutes on the
small rig: pass 10000 for the target's own run). Growth = last RSS minus the RSS
after the first 10 captures (warm-up: imports, GL context, caches). When fewer
than 10,000 frames are run, a least-squares line through the post-warm-up RSS
is extrapolated to 10,000 frames and printed as an extrapolation, next to the
measured growth. Then, for comparison, the same frames with workers recycled as
shipped (simulator.generate.parallel.DEFAULT_RECYCLE captures per process): the largest
RSS any worker reached (``--skip-rss-recycled`` leaves it out).
Prints figures; writes benchmarks/out/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.render.glenv import configure  # noqa: E402


def timed_run(spec, opts, warmup: int = 1) -> dict:
    """Run ``spec`` with ``opts``; steady-state throughput and where time went."""
    from simulator.generate.parallel import run_captures

    done: list[tuple[float, dict]] = []
    t0 = time.perf_counter()
    rep = run_captures(spec, list(range(spec.n)), opts, on_result=lambda r: done.append((time.perf_counter(), r)))
    wall = time.perf_counter() - t0
    per: dict[int, list[tuple[float, dict]]] = {}
    for t, r in done:
        per.setdefault(r["pid"], []).append((t, r))
    out = {"workers": opts.workers, "backend": opts.backend, "captures": len(done), "wall_s": wall,
           "captures_per_s_wall": len(done) / wall, "worker_processes": len(per), "rss": rep.worker_rss_mb}
    # the steady window starts when the last worker finishes its warm-up captures
    if any(len(v) <= warmup for v in per.values()) or len(per) < opts.workers:
        out["captures_per_s_steady"] = float("nan")
        return out
    start = max(v[warmup - 1][0] for v in per.values())
    # ...and ends when the first worker finishes its last capture: after that the
    # run is draining (fewer captures left than workers), which a long run does once
    end = min(v[-1][0] for v in per.values())
    window = [(t, r) for t, r in done if start < t <= end]
    if not window:
        out["captures_per_s_steady"] = float("nan")
        return out
    span = end - start
    secs = [r["seconds"] for _, r in window]
    cpu = []  # worker CPU seconds per capture, from consecutive reports of one process
    for v in per.values():
        cpu += [b["cpu_seconds"] - a["cpu_seconds"] for (_, a), (tb, b) in zip(v, v[1:]) if tb > start]
    out.update({"captures_per_s_steady": len(window) / span, "steady_captures": len(window),
                "worker_s_per_capture": statistics.mean(secs),
                "worker_cpu_s_per_capture": statistics.mean(cpu) if cpu else float("nan"),
                # each capture's working interval [end - seconds, end] clipped to the window
                "busy": sum(max(0.0, min(t, end) - max(t - r["seconds"], start)) for t, r in done)
                        / (opts.workers * span)})
    return out


# -- the machine's own ceiling: the same CPU-bound work in 1 process and in 2 at once --
def _kernel(iters: int) -> tuple[int, float, float]:
    """(pid, start, end) of a fixed CPU-bound job: BLAS (one thread), zlib like
    PNG encoding, plain Python."""
    import zlib

    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((192, 192))
    buf = rng.integers(0, 64, 1 << 18, dtype=np.uint8).tobytes()
    t = time.perf_counter()
    for _ in range(iters):
        a = np.tanh(a @ a.T / 192.0)
        zlib.compress(buf, 1)
        sum(i * i for i in range(20000))
    return os.getpid(), t, time.perf_counter()


def machine_ceiling(iters: int = 150, tries: int = 5) -> dict:
    """Speedup of 2 processes running the kernel at once over 1 process running
    it alone: what this machine gives two independent CPU-bound processes now."""
    import multiprocessing as mp

    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, "1")
    with mp.get_context("spawn").Pool(2) as pool:  # both processes started up front
        pool.map(_kernel, [2, 2], chunksize=1)
        _, t0, t1 = pool.apply(_kernel, (iters,))
        one = t1 - t0
        for _ in range(tries):
            two = pool.map(_kernel, [iters, iters], chunksize=1)
            if two[0][0] != two[1][0]:  # really two processes, not one after the other
                break
        else:
            raise RuntimeError("the pool ran both kernels in one process")
    both = max(e for _, _, e in two) - min(s for _, s, _ in two)
    speedup = (2 * iters / both) / (iters / one)
    return {"iters": iters, "one_process_s": one, "two_processes_s": [e - s for _, s, e in two],
            "speedup": speedup, "efficiency_per_added_core": speedup - 1}


#: the target's run length (frames) and allowance (MB of worker RSS growth)
TARGET_FRAMES, TARGET_GROWTH_MB = 10000, 50.0
#: captures left out as warm-up (imports, GL context, caches filling)
RSS_WARMUP_CAPTURES = 10
#: captures in each median of the median growth (first and last after warm-up)
RSS_MEDIAN_WINDOW = 50
#: fewer post-warm-up captures than this are not extrapolated (RSS swings of a few MB)
RSS_FIT_MIN_CAPTURES = 100


def rss_growth(series: list[float], ncam: int) -> dict:
    """Figures of one never-recycled worker's RSS after each capture (MB): measured
    growth after warm-up and, for a run shorter than the target's, the growth a
    least-squares line through the post-warm-up points reaches at TARGET_FRAMES."""
    import numpy as np

    k = min(RSS_WARMUP_CAPTURES, len(series)) - 1
    warm, after = series[k], np.asarray(series[k:], float)
    out = {"frames": len(series) * ncam, "captures": len(series), "warmup_captures": k + 1,
           "rss_mb_first": series[0], "rss_mb_after_warmup": warm, "rss_mb_last": series[-1],
           "rss_mb_max": max(series), "growth_mb": series[-1] - warm}
    w = max(1, min(RSS_MEDIAN_WINDOW, len(after) // 4))  # one capture's RSS swings by ~10 MB (big products)
    out["median_growth_mb"] = float(np.median(after[-w:]) - np.median(after[:w]))
    out["median_window_captures"] = w
    if len(after) >= RSS_FIT_MIN_CAPTURES:
        frames = (np.arange(len(after)) + k + 1) * ncam
        slope, icpt = np.polyfit(frames, after, 1)
        out["fit_mb_per_1000_frames"] = float(slope * 1000)
        out["fit_residual_sd_mb"] = float(np.std(after - (slope * frames + icpt)))
        out["extrapolated_growth_mb_at_target"] = float(slope * (TARGET_FRAMES - (k + 1) * ncam))
    return out


def print_rss(f: dict) -> None:
    print(f"worker RSS over {f['frames']} frames ({f['captures']} captures, one process, no recycling): "
          f"{f['rss_mb_first']:.0f} MB first, {f['rss_mb_after_warmup']:.0f} MB after warm-up, "
          f"{f['rss_mb_last']:.0f} MB last, max {f['rss_mb_max']:.0f} MB; measured growth "
          f"{f['growth_mb']:+.1f} MB (median of the last {f['median_window_captures']} captures minus median of "
          f"the first {f['median_window_captures']}: {f['median_growth_mb']:+.1f} MB); load "
          f"{f['load_avg_before'][0]:.2f} -> {f['load_avg_after'][0]:.2f}")
    if "fit_mb_per_1000_frames" in f:
        print(f"  fitted slope {f['fit_mb_per_1000_frames']:+.2f} MB per 1,000 frames (residual sd "
              f"{f['fit_residual_sd_mb']:.1f} MB)")
    if f["frames"] >= TARGET_FRAMES:
        ok = f["growth_mb"] <= TARGET_GROWTH_MB
        print(f"  target (<= {TARGET_GROWTH_MB:.0f} MB over {TARGET_FRAMES} frames), measured: "
              f"{'met' if ok else 'NOT met'}")
    elif "extrapolated_growth_mb_at_target" not in f:
        print(f"  too short to extrapolate to {TARGET_FRAMES} frames (fewer than {RSS_FIT_MIN_CAPTURES} captures "
              "after warm-up)")
    else:
        g = f["extrapolated_growth_mb_at_target"]
        print(f"  EXTRAPOLATION from {f['frames']} frames, not a measurement: the fitted line reaches "
              f"{g:+.1f} MB at {TARGET_FRAMES} frames (target <= {TARGET_GROWTH_MB:.0f} MB: "
              f"{'met' if g <= TARGET_GROWTH_MB else 'NOT met'} if the trend holds); run --rss-frames "
              f"{TARGET_FRAMES} to measure it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24, help="captures per scaling run")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved runs of each configuration (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="captures per worker left out of the steady window")
    ap.add_argument("--rig", default=str(Path(__file__).resolve().parent.parent / "tests/data/rig_small.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rss-frames", type=int, default=3000,
                    help="frames of the RSS run (the target is stated over 10000; fewer are extrapolated)")
    ap.add_argument("--skip-rss-recycled", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-ceiling", action="store_true")
    a = ap.parse_args()
    gl = configure()
    from simulator.generate.parallel import RunOptions
    from simulator.generate.spec import GenerateSpec, prepare

    tmp = Path(tempfile.mkdtemp(prefix="damagesim-scaling-"))
    cheap = {"pairs": False, "reference_poses": 0}  # captures only: what scales
    res: dict = {"rig": a.rig, "n": a.n, "repeat": a.repeat, "warmup": a.warmup, "cpus": os.cpu_count(),
                 "load_avg_before": os.getloadavg(), "runs": [], "median": []}
    try:
        if not a.skip_ceiling:
            c = machine_ceiling()
            res["machine_ceiling"] = c
            print(f"machine ceiling (CPU-bound kernel, 1 vs 2 processes at once): speedup {c['speedup']:.2f}x, "
                  f"per added core {c['efficiency_per_added_core']:.0%}; load {os.getloadavg()[0]:.2f}", flush=True)
        if not a.skip_scaling:
            configs = [RunOptions(workers=1, recycle=10 ** 9, gl=gl), RunOptions(workers=2, recycle=10 ** 9, gl=gl)]
            if not a.skip_ray:
                configs.append(RunOptions(workers=2, backend="ray", recycle=10 ** 9, gl=gl))
            runs: dict[int, list[dict]] = {k: [] for k in range(len(configs))}
            for rep in range(a.repeat):
                for k, opts in enumerate(configs):
                    spec = GenerateSpec(n=a.n, seed=a.seed, out=str(tmp / f"run{rep}-{k}"), rig=a.rig, damage=cheap)
                    prepare(spec)
                    load = os.getloadavg()[0]
                    r = timed_run(spec, opts, a.warmup)
                    r.pop("rss")
                    r["repeat"], r["load_avg_1min_before"] = rep, load
                    runs[k].append(r)
                    res["runs"].append(r)
                    print(f"[{rep}] {opts.backend:5s} workers={opts.workers}: {r['captures_per_s_steady']:.3f} captures/s "
                          f"steady, {r['captures_per_s_wall']:.3f} over the whole run ({r['wall_s']:.1f} s); worker "
                          f"{r.get('worker_s_per_capture', float('nan')):.3f} s/capture (CPU "
                          f"{r.get('worker_cpu_s_per_capture', float('nan')):.3f} s), busy {r.get('busy', float('nan')):.0%}; "
                          f"load {load:.2f}", flush=True)
            keys = ("captures_per_s_steady", "captures_per_s_wall", "worker_s_per_capture", "worker_cpu_s_per_capture",
                    "busy")
            for k, opts in enumerate(configs):
                m = {"workers": opts.workers, "backend": opts.backend}
                m.update({key: statistics.median(r.get(key, float("nan")) for r in runs[k]) for key in keys})
                res["median"].append(m)
            one = res["median"][0]
            for m in res["median"][1:]:
                s = m["captures_per_s_steady"] / one["captures_per_s_steady"]
                m["speedup"], m["efficiency"] = s, s / m["workers"]
                m["efficiency_per_added_core"] = (s - 1) / (m["workers"] - 1)
                slow = m["worker_s_per_capture"] / one["worker_s_per_capture"]
                print(f"{m['backend']:5s} workers={m['workers']} (median of {a.repeat}): speedup {s:.2f}x, efficiency "
                      f"{s / m['workers']:.0%}, per added core {(s - 1) / (m['workers'] - 1):.0%} (target >= 85%); "
                      f"workers busy {m['busy']:.0%}, each capture {slow:.2f}x the 1-worker time "
                      f"(CPU {m['worker_cpu_s_per_capture'] / one['worker_cpu_s_per_capture']:.2f}x)")
            res["load_avg_after_scaling"] = os.getloadavg()
            print(f"load average before/after: {res['load_avg_before']} / {res['load_avg_after_scaling']}")
        if not a.skip_rss:
            from simulator.config.rig import load_rig
            from simulator.generate.parallel import DEFAULT_RECYCLE

            ncam = len(load_rig(a.rig).cameras)
            n = -(-a.rss_frames // ncam)
            spec = GenerateSpec(n=n, seed=a.seed + 1, out=str(tmp / "rss"), rig=a.rig, damage=cheap)
            prepare(spec)
            load = os.getloadavg()
            r = timed_run(spec, RunOptions(workers=1, recycle=10 ** 9, gl=gl, on_error="skip"), a.warmup)
            (pid, series), = r["rss"].items()
            res["rss"] = {**rss_growth(series, ncam), "wall_s": r["wall_s"], "load_avg_before": load,
                          "load_avg_after": os.getloadavg(), "series_every_10": series[::10]}
            print_rss(res["rss"])
            if not a.skip_rss_recycled:
                spec = GenerateSpec(n=n, seed=a.seed + 1, out=str(tmp / "rss-recycled"), rig=a.rig, damage=cheap)
                prepare(spec)
                load = os.getloadavg()
                r = timed_run(spec, RunOptions(workers=1, recycle=DEFAULT_RECYCLE, gl=gl, on_error="skip"), a.warmup)
                per = r["rss"]
                res["rss_recycled"] = {
                    "recycle": DEFAULT_RECYCLE, "frames": n * ncam, "captures": n, "worker_processes": len(per),
                    "rss_mb_max": max(max(v) for v in per.values()),
                    "per_worker": [{"captures": len(v), "rss_mb_first": v[0], "rss_mb_last": v[-1], "rss_mb_max": max(v)}
                                   for v in per.values()],
                    "wall_s": r["wall_s"], "load_avg_before": load, "load_avg_after": os.getloadavg()}
                rr = res["rss_recycled"]
                last = ", ".join(f"{w['rss_mb_last']:.0f}" for w in rr["per_worker"])
                print(f"recycled as shipped (a new worker every {DEFAULT_RECYCLE} captures), {n * ncam} frames, "
                      f"{len(per)} worker processes: max RSS {rr['rss_mb_max']:.0f} MB; last RSS per worker "
                      f"{last} MB; load {rr['load_avg_after'][0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(__file__).resolve().parent / "out" / "scaling.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
