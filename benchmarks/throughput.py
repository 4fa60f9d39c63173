"""Throughput of `damagesim generate` on a rig, with pybullet's TinyRenderer as
the peer, all measured in one run.

Three phases, one after the other in this process and its children:

1. end to end: ``--n`` captures made exactly as ``damagesim generate`` makes
   them (one in-process worker: CaptureMaker.start with its pristine pairs and
   references, the CaptureWriter thread encoding and writing the previous
   capture meanwhile, and on a GPU running its sensor models too). Labelled frames/s = frames rendered (capture, pair and
   reference frames: each is written with its labels) per second of wall time,
   from the start of capture 1 (capture 0 is the warm-up: shader compiles,
   first uploads) to the last folder on disk. Each stage's share of that wall
   time comes from timers around the stages (scene build / damage / physics,
   rendering, sensor models, the rest of the main thread incl. waiting for the
   writer); the writer thread's own busy time is printed beside it (it runs
   concurrently, so it is not a share of the wall).
2. render only: the same scenes (rebuilt: a capture is a pure function of
   (seed, index)) rendered alone through every camera, nothing else running,
   and, right after each, TinyRenderer rendering RGB + depth + segmentation of
   the same items through the same cameras at the same resolutions: the peer.
3. workers: the same ``--n`` captures by ``damagesim generate --workers 1``
   and ``--workers 2`` (benchmarks/scaling.py's steady-state measure).

    python benchmarks/throughput.py [--n 6] [--workers-n 6] [--rig FILE] [--catalog FILE] [--seed 0] [--skip-workers]

On an NVIDIA GPU the same pipeline renders through EGL on the driver:

    PYOPENGL_PLATFORM=egl EGL_DEVICE_ID=0 \\
    __EGL_VENDOR_LIBRARY_FILENAMES=/usr/share/glvnd/egl_vendor.d/10_nvidia.json \\
    .venv/bin/python benchmarks/throughput.py --gpu --n 12

(``EGL_DEVICE_ID`` picks the EGL device pyrender opens, the vendor file makes
glvnd load NVIDIA's EGL rather than Mesa's); ``--gpu`` refuses to report when
the context it got is a software rasteriser (llvmpipe, softpipe, swrast).
Writes the figures to benchmarks/out/throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.render.glenv import configure  # noqa: E402

SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software")


def tiny_projection(cam) -> list[float]:
    """OpenGL projection (column-major, as pybullet wants) from OpenCV intrinsics."""
    w, h = cam.resolution
    K = cam.K
    near, far = cam.range_m
    P = np.zeros((4, 4))
    P[0, 0] = 2 * K[0, 0] / w
    P[1, 1] = 2 * K[1, 1] / h
    P[0, 2] = (w - 2 * (K[0, 2] + 0.5)) / w
    P[1, 2] = (2 * (K[1, 2] + 0.5) - h) / h
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2 * far * near / (far - near)
    P[3, 2] = -1
    return P.T.ravel().tolist()


def tiny_frame(client, cam) -> float:
    """Seconds for one TinyRenderer RGB + depth + segmentation image."""
    import pybullet as p

    from simulator.core.conventions import cv_to_gl

    V = np.linalg.inv(cv_to_gl(cam.T_world_from_cam))
    t = time.perf_counter()
    _, _, rgba, depth, seg = p.getCameraImage(
        cam.width, cam.height, viewMatrix=V.T.ravel().tolist(), projectionMatrix=tiny_projection(cam),
        renderer=p.ER_TINY_RENDERER, flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=client)
    np.asarray(rgba), np.asarray(depth), np.asarray(seg)
    return time.perf_counter() - t


def tiny_scene(rig, scene_items):
    """A pybullet DIRECT client holding the tray and the items (with satellites)
    as textured-less visual meshes at their poses."""
    import pybullet as p
    from scipy.spatial.transform import Rotation

    from simulator.render.renderer import tray_mesh

    c = p.connect(p.DIRECT)
    meshes = [(tray_mesh(rig), np.eye(4), [0.3, 0.3, 0.3, 1])]
    for it in scene_items:
        for m, T in it.pieces():
            meshes.append((m, T, [0.6, 0.45, 0.3, 1]))
    for m, T, rgba in meshes:
        vis = p.createVisualShape(p.GEOM_MESH, vertices=np.asarray(m.vertices).tolist(),
                                  indices=np.asarray(m.faces).ravel().tolist(), rgbaColor=rgba, physicsClientId=c)
        q = Rotation.from_matrix(T[:3, :3]).as_quat()  # (x, y, z, w), pybullet's order
        p.createMultiBody(0, baseVisualShapeIndex=vis, basePosition=T[:3, 3].tolist(),
                          baseOrientation=q.tolist(), physicsClientId=c)
    return c


class StageTimer:
    """Wall seconds per stage on the main thread, per capture index, and the
    writer thread's busy seconds; frames rendered per capture index."""

    def __init__(self) -> None:
        self.main: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.frames: dict[int, int] = defaultdict(int)
        self.writes: list[tuple[float, float]] = []  # writer thread: (start, end) of each write_capture
        self.off_main: dict[str, list[tuple[float, float]]] = defaultdict(list)  # writer thread, per stage
        self.start: dict[int, float] = {}
        self.cpu_start: dict[int, float] = {}  # this process's CPU seconds (all threads) at each start
        self.index = -1
        self.lock = threading.Lock()

    def wrap(self, obj, name: str, stage: str, count_frames: bool = False):
        fn = getattr(obj, name)
        timer = self

        def timed(*a, **k):
            if threading.current_thread() is not threading.main_thread():
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:  # the writer thread's share of a stage (the sensor models run there)
                    with timer.lock:
                        timer.off_main[stage].append((t, time.perf_counter()))
            t = time.perf_counter()
            try:
                out = fn(*a, **k)
            finally:
                timer.main[stage][timer.index] += time.perf_counter() - t
            if count_frames:
                timer.frames[timer.index] += len(out)
            return out

        setattr(obj, name, timed)
        return fn


def end_to_end(spec, n: int) -> dict:
    """Phase 1: generate's in-process path, timed per stage (see the module doc)."""
    import simulator.dataset.writers as wr
    import simulator.generate.capture as pl
    import simulator.render.renderer as rd
    from simulator.generate.parallel import RunOptions, run_captures

    st = StageTimer()
    originals = []
    # the capture's start: CaptureMaker.start (the sensor models then run on the
    # writer thread), or make in a version without it (to measure an older tree)
    entry = "start" if hasattr(pl.CaptureMaker, "start") else "make"
    make = getattr(pl.CaptureMaker, entry)

    def make_timed(self, index, _make=make):
        st.index = index
        st.start[index] = time.perf_counter()
        st.cpu_start[index] = time.process_time()
        return _make(self, index)

    setattr(pl.CaptureMaker, entry, make_timed)
    originals.append((pl.CaptureMaker, entry, make))
    for obj, name, stage, frames in ((pl.CaptureMaker, "scene", "scene_build_damage_physics", False),
                                     (rd.BoothRenderer, "render", "render", True),
                                     (pl, "apply_to_frames", "sensor_models", False)):
        originals.append((obj, name, st.wrap(obj, name, stage, frames)))
    wc = wr.write_capture

    def write_timed(*a, **k):  # captures and references alike, on the writer thread
        t = time.perf_counter()
        try:
            return wc(*a, **k)
        finally:
            with st.lock:
                st.writes.append((t, time.perf_counter()))

    originals.append((wr, "write_capture", wc))
    wr.write_capture = write_timed
    # the worker module calls the name it imported: time it there too (else the
    # writer thread's busy time reads 0)
    import simulator.generate.worker as wk

    if hasattr(wk, "write_capture"):
        originals.append((wk, "write_capture", wk.write_capture))
        wk.write_capture = write_timed
    done = {}
    try:
        run_captures(spec, list(range(n)), RunOptions(), on_result=lambda r: done.setdefault(r["index"], time.perf_counter()))
    finally:
        cpu_end = time.process_time()
        for obj, name, fn in originals:
            setattr(obj, name, fn)
    t0, t1 = st.start[1], max(done.values())
    wall = t1 - t0
    timed = range(1, n)
    frames = sum(st.frames[i] for i in timed)
    stages = {k: sum(v[i] for i in timed) for k, v in st.main.items()}
    # render() includes nothing of the sensors; make() minus its parts is metadata and bookkeeping
    stages["main_thread_other_incl_writer_wait"] = wall - sum(stages.values())
    busy = lambda spans: sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in spans)  # noqa: E731
    return {"captures_timed": n - 1, "frames": frames, "wall_s": wall, "stages_s": stages,
            "writer_busy_s": busy(st.writes), "writer_stages_s": {k: busy(v) for k, v in st.off_main.items()},
            "frames_per_capture": frames / (n - 1),
            "cpu_s_per_capture": (cpu_end - st.cpu_start[1]) / (n - 1)}


def render_only(spec, rig, catalog, n: int) -> dict:
    """Phase 2: the same scenes rendered alone, camera by camera, and TinyRenderer
    on the same items and cameras right after each (see the module doc)."""
    import pybullet as p

    from simulator.generate.capture import CaptureMaker

    cams = list(rig.cameras)
    ours_cam, tiny_cam = defaultdict(list), defaultdict(list)
    ours_total, tiny_total, passes = [], [], defaultdict(list)
    gl_renderer = None
    with CaptureMaker(spec, rig, catalog) as maker:
        r = maker.renderer
        for i in range(n):
            sc = maker.scene(i)
            items = maker.scene_items(sc)
            r.configure(sc.randomization)
            r.timings.clear()
            t = time.perf_counter()
            r.render(items)
            t_render = time.perf_counter() - t
            r.configure(None)
            if gl_renderer is None:
                from OpenGL.GL import GL_RENDERER, glGetString

                gl_renderer = glGetString(GL_RENDERER).decode()
            client = tiny_scene(rig, items)
            tiny_t = {c.name: tiny_frame(client, c) for c in cams}
            p.disconnect(client)
            if i == 0:  # warm-up
                continue
            tm = {k: list(v) for k, v in r.timings.items()}
            for k, v in tm.items():
                passes[k].append(sum(v))
            setup_share = sum(tm.get("scene_setup", [0])) / len(cams)
            # the renderer's order: largest render first; colour passes only for colour cameras
            order = sorted(cams, key=lambda c: (-np.prod(r._render_size(c)), c.name))
            colour = iter(tm.get("colour_pass", []))
            ir = iter(tm.get("ir_shading", []))
            for j, c in enumerate(order):
                o = tm["label_pass"][j] + tm["label_decode"][j] + setup_share
                o += next(colour) if c.modality != "depth" or "ir_shading" not in tm else next(ir, 0.0)
                ours_cam[c.name].append(o)
                tiny_cam[c.name].append(tiny_t[c.name])
            ours_total.append(t_render)
            tiny_total.append(sum(tiny_t.values()))
            print(f"  render-only capture {i}: ours {t_render:.2f} s, TinyRenderer {tiny_total[-1]:.2f} s", file=sys.stderr)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {"gl_renderer": gl_renderer, "render_s": med(ours_total), "tiny_s": med(tiny_total),
            "passes_s": {k: med(v) for k, v in passes.items()},
            "per_camera": {c.name: {"resolution": list(c.resolution), "modality": c.modality,
                                    "ours_s": med(ours_cam[c.name]), "tiny_s": med(tiny_cam[c.name]),
                                    "ratio": med(ours_cam[c.name]) / med(tiny_cam[c.name])} for c in cams}}


def workers(spec, n: int) -> dict:
    """Phase 3: generate with 1 and with 2 local workers (steady state)."""
    import importlib.util
    from dataclasses import replace

    # benchmarks/ is no package (and its damage_ops.py would shadow the real one on sys.path)
    sp = importlib.util.spec_from_file_location("_scaling", Path(__file__).resolve().parent / "scaling.py")
    scaling = importlib.util.module_from_spec(sp)
    sp.loader.exec_module(scaling)
    timed_run = scaling.timed_run
    from simulator.generate.parallel import RunOptions

    out = {}
    for w in (1, 2):
        d = Path(tempfile.mkdtemp(prefix=f"damagesim-bench-w{w}-"))
        try:
            out[w] = timed_run(replace(spec, out=str(d)), RunOptions(workers=w), warmup=1)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print(f"  {w} worker(s): {out[w].get('captures_per_s_steady', float('nan')):.3f} captures/s steady, "
              f"{out[w]['captures_per_s_wall']:.3f} over the whole run", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="captures per phase (the first is a warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rig", default=None)
    ap.add_argument("--catalog", default=None)
    ap.add_argument("--gl", default=None, choices=["egl", "osmesa"])
    ap.add_argument("--gpu", action="store_true", help="EGL on a GPU; refuse a software rasteriser")
    ap.add_argument("--skip-workers", action="store_true", help="leave out phase 3 (1 vs 2 workers)")
    ap.add_argument("--workers-n", type=int, default=6,
                    help="captures per run of phase 3 (each of 2 workers needs a warm-up and timed ones)")
    ap.add_argument("--json", default=str(Path(__file__).parent / "out" / "throughput.json"))
    args = ap.parse_args()
    if args.n < 3:
        ap.error(f"--n must be at least 3 (a warm-up and two timed captures), got {args.n}")
    platform = configure("egl" if args.gpu else args.gl)

    from dataclasses import replace

    from simulator.generate.spec import GenerateSpec, prepare

    tmp = Path(tempfile.mkdtemp(prefix="damagesim-bench-"))
    kw = {k: v for k, v in (("rig", args.rig), ("catalog", args.catalog)) if v}
    spec = GenerateSpec(n=args.n, seed=args.seed, out=str(tmp / "e2e"), **kw)
    rig, catalog = prepare(spec)
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    try:
        print("phase 1: end to end (generate, in process)", file=sys.stderr)
        e2e = end_to_end(spec, args.n)
        print("phase 2: render only + TinyRenderer", file=sys.stderr)
        ro = render_only(spec, rig, catalog, args.n)
        if args.gpu and any(s in ro["gl_renderer"].lower() for s in SOFTWARE_GL):
            sys.exit(f"--gpu: the EGL context renders on {ro['gl_renderer']!r}, a software rasteriser; pick the "
                     "GPU with EGL_DEVICE_ID=<k> and __EGL_VENDOR_LIBRARY_FILENAMES=<nvidia vendor json>")
        wk = None
        if not args.skip_workers:
            print("phase 3: 1 vs 2 workers", file=sys.stderr)
            wk = workers(replace(spec, n=max(args.workers_n, 4)), max(args.workers_n, 4))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()

    ncam = len(rig.cameras)
    e2e_fps = e2e["frames"] / e2e["wall_s"]
    render_in_run_fps = e2e["frames"] / e2e["stages_s"]["render"]
    render_only_fps = ncam / ro["render_s"]
    tiny_fps = ncam / ro["tiny_s"]
    res = {"gl_platform": platform, "gl_renderer": ro["gl_renderer"], "rig": rig.name, "cameras": ncam,
           "n": args.n, "seed": args.seed, "load_avg_before": load0, "load_avg_after": load1,
           "cpu_count": os.cpu_count(), "seconds": time.perf_counter() - t_start,
           "end_to_end": e2e, "render_only": ro, "workers": wk,
           "end_to_end_labelled_frames_per_s": e2e_fps,
           "render_only_labelled_frames_per_s": render_only_fps,
           "render_in_run_labelled_frames_per_s": render_in_run_fps,
           "end_to_end_share_of_render_only": e2e_fps / render_only_fps,
           "tinyrenderer_frames_per_s": tiny_fps,
           "labelled_frame_over_tinyrenderer_frame": ro["render_s"] / ro["tiny_s"]}
    if wk:
        s1, s2 = wk[1].get("captures_per_s_steady"), wk[2].get("captures_per_s_steady")
        res["two_over_one_worker"] = s2 / s1 if s1 and s2 else float("nan")

    print(f"\nrig {rig.name} ({ncam} cameras), GL {platform}: {ro['gl_renderer']}; {os.cpu_count()} CPUs, "
          f"load average {load0[0]:.2f} -> {load1[0]:.2f}; {args.n} captures per phase, the first a warm-up")
    print(f"end to end (generate): {e2e_fps:.2f} labelled frames/s ({e2e['frames_per_capture']:.1f} frames per "
          f"capture incl. pristine pairs and references, {e2e['captures_timed']} captures in {e2e['wall_s']:.1f} s)")
    print(f"  this process's CPU time (all threads, llvmpipe's included): {e2e['cpu_s_per_capture']:.2f} s per "
          f"capture ({e2e['cpu_s_per_capture'] / e2e['frames_per_capture']:.3f} s per labelled frame)")
    print(f"render only:           {render_only_fps:.2f} labelled frames/s (alone); inside the run "
          f"{render_in_run_fps:.2f}")
    print(f"end to end / render only = {100 * res['end_to_end_share_of_render_only']:.0f}% (target >= 75%)")
    print("stage shares of end-to-end wall time (main thread):")
    for k, v in e2e["stages_s"].items():
        print(f"  {k:38s} {v / e2e['wall_s'] * 100:5.1f}%  ({v / e2e['captures_timed']:.3f} s per capture)")
    print(f"  writer thread busy (encode + write, overlapped) {e2e['writer_busy_s'] / e2e['wall_s'] * 100:5.1f}% of wall")
    for k, v in e2e["writer_stages_s"].items():
        print(f"  writer thread busy ({k}, overlapped) {v / e2e['wall_s'] * 100:5.1f}% of wall "
              f"({v / e2e['captures_timed']:.3f} s per capture)")
    print("render-only passes per capture (s): " + ", ".join(f"{k} {v:.3f}" for k, v in ro["passes_s"].items()))
    print(f"{'camera':16s} {'modality':8s} {'res':>10s} {'ours (s)':>9s} {'tiny (s)':>9s} {'ratio':>6s}")
    for name, c in ro["per_camera"].items():
        print(f"{name:16s} {c['modality']:8s} {c['resolution'][0]:>5d}x{c['resolution'][1]:<4d} {c['ours_s']:9.4f} "
              f"{c['tiny_s']:9.4f} {c['ratio']:6.2f}")
    print(f"all cameras of a capture: ours {ro['render_s']:.3f} s, TinyRenderer {ro['tiny_s']:.3f} s "
          f"({tiny_fps:.2f} frames/s) -> labelled frame / TinyRenderer frame = "
          f"{res['labelled_frame_over_tinyrenderer_frame']:.2f} (target <= 1.0)")
    if wk:
        print(f"workers: 1 -> {wk[1].get('captures_per_s_steady', float('nan')):.3f}, 2 -> "
              f"{wk[2].get('captures_per_s_steady', float('nan')):.3f} captures/s steady: "
              f"{res['two_over_one_worker']:.2f}x (target >= 1.8x)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
