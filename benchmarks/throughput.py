"""Throughput of the capture pipeline on a rig, with pybullet's TinyRenderer as
the peer, measured in the same run.

Prints captures/s, labelled frames/s, a per-stage breakdown (product build,
physics, render: scene set-up, colour pass, label+depth pass, label decode;
encode; write) and the cost of one labelled frame (RGB + metric depth + instance,
part, damage-category and damage-instance images) against TinyRenderer rendering
RGB + depth + segmentation of the same scene, through the same cameras, at the
same resolutions. Writes the figures to benchmarks/out/throughput.json.

    python benchmarks/throughput.py [--n 8] [--rig FILE] [--catalog FILE] [--seed 0]
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.glenv import configure  # noqa: E402


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

    from simulator.conventions import cv_to_gl

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

    from simulator.render import tray_mesh

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


def ideal_only(args) -> None:
    """Render + sensor time per capture through the rig made ideal (pinhole, no
    sensor effects); writes {"render_and_sensors_s": [...]} to args.json."""
    from dataclasses import replace

    from simulator.pipeline import CaptureMaker, GenerateSpec, prepare
    from simulator.sensors import SensorModel, apply_to_frames

    tmp = Path(tempfile.mkdtemp(prefix="damagesim-bench-"))
    kw = {k: v for k, v in (("rig", args.rig), ("catalog", args.catalog)) if v}
    spec = GenerateSpec(n=args.n + 1, seed=args.seed, out=str(tmp), **kw)
    rig, catalog = prepare(spec)
    ideal = replace(rig, cameras=tuple(replace(c, distortion=(0.0,) * 5, sensor=SensorModel()) for c in rig.cameras))
    times = []
    with CaptureMaker(spec, ideal, catalog) as maker:
        for i in range(args.n + 1):
            sc = maker.scene(i)
            t = time.perf_counter()
            apply_to_frames(ideal, maker.renderer.render(maker.scene_items(sc)), sc["sensor_seed"])
            if i:
                times.append(time.perf_counter() - t)
    Path(args.json).write_text(json.dumps({"render_and_sensors_s": times}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="captures to time (after one warm-up capture)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rig", default=None)
    ap.add_argument("--catalog", default=None)
    ap.add_argument("--gl", default=None, choices=["egl", "osmesa"])
    ap.add_argument("--json", default=str(Path(__file__).parent / "out" / "throughput.json"))
    ap.add_argument("--ideal-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    platform = configure(args.gl)
    if args.ideal_only:
        return ideal_only(args)

    import pybullet as p
    from OpenGL.GL import GL_RENDERER, glGetString
    from PIL import Image

    from simulator.pipeline import CaptureMaker, GenerateSpec, capture_streams, prepare
    from simulator.sensors import apply_to_frames
    from simulator.writers import depth_to_png, frame_annotations, write_capture

    tmp = Path(tempfile.mkdtemp(prefix="damagesim-bench-"))
    kw = {k: v for k, v in (("rig", args.rig), ("catalog", args.catalog)) if v}
    spec = GenerateSpec(n=args.n + 1, seed=args.seed, out=str(tmp), **kw)
    rig, catalog = prepare(spec)
    cams = list(rig.cameras)
    stage = defaultdict(list)
    ours_cam, tiny_cam = defaultdict(list), defaultdict(list)
    ours_total, tiny_total, wall, sensor_cost = [], [], [], []
    maker = CaptureMaker(spec, rig, catalog)
    r = maker.renderer
    gl_renderer = None
    try:
        for i in range(args.n + 1):

            t = time.perf_counter()
            sc = maker.scene(i)  # products, damage, physics, satellites: what generate does
            t_scene = time.perf_counter() - t
            items = maker.scene_items(sc)
            r.timings.clear()
            t = time.perf_counter()
            frames = r.render(items)
            t_render = time.perf_counter() - t
            t = time.perf_counter()
            frames, draws = apply_to_frames(rig, frames, sc["sensor_seed"])
            t_sensor = time.perf_counter() - t
            tm = {k: list(v) for k, v in r.timings.items()}
            if gl_renderer is None:
                gl_renderer = glGetString(GL_RENDERER).decode()
            meta = maker.metadata(sc, index=i)
            t = time.perf_counter()
            for f in frames.values():
                for a in (f.rgb, depth_to_png(f.depth_m), f.instance, f.part, f.damage_category, f.damage_instance):
                    Image.fromarray(a).save(io.BytesIO(), format="PNG", compress_level=1)
                frame_annotations(f, meta["items"], meta["damages"])
            t_encode = time.perf_counter() - t
            t = time.perf_counter()
            write_capture(tmp, i, meta, frames)
            t_write = time.perf_counter() - t
            client = tiny_scene(rig, items)
            tiny_t = {c.name: tiny_frame(client, c) for c in cams}
            p.disconnect(client)
            if i == 0:  # warm-up: GL program compilation, first uploads
                continue
            wall.append(t_scene + t_render + t_sensor + t_write)
            sensor_cost.append(t_sensor + sum(tm.get("lens_remap", [0])))
            for k, v in (("scene_build_damage_physics", t_scene), ("render", t_render),
                         ("sensor_models", t_sensor),
                         ("encode_png_rle", t_encode), ("write_incl_encode", t_write)):
                stage[k].append(v)
            for k in ("scene_setup",):
                stage[f"render.{k}"].append(sum(tm.get(k, [0])))
            stage["render.lens_remap"].append(sum(tm.get("lens_remap", [0])))
            for k in ("colour_pass", "label_pass", "label_decode"):
                stage[f"render.{k}_per_camera"].append(float(np.mean(tm[k])))
            # per camera: its colour + label + decode, plus an equal share of the scene set-up
            setup_share = sum(tm.get("scene_setup", [0])) / len(cams)
            order = sorted(cams, key=lambda c: (-c.width * c.height, c.name))  # the renderer's order
            for j, c in enumerate(order):
                ours_cam[c.name].append(tm["colour_pass"][j] + tm["label_pass"][j] + tm["label_decode"][j] + setup_share)
                tiny_cam[c.name].append(tiny_t[c.name])
            ours_total.append(t_render)
            tiny_total.append(sum(tiny_t.values()))
            print(f"capture {i}: {wall[-1]:.2f} s (render {t_render:.2f} s, TinyRenderer {tiny_total[-1]:.2f} s)",
                  file=sys.stderr)
    finally:
        maker.close()
        shutil.rmtree(tmp, ignore_errors=True)

    # the same scenes through an ideal rig (pinhole, no sensor effects), in a fresh
    # process (one GL context per process): what the sensor models and lenses add
    import subprocess

    ideal_json = Path(tempfile.mkdtemp(prefix="damagesim-ideal-")) / "ideal.json"
    cmd = [sys.executable, __file__, "--ideal-only", "--n", str(args.n), "--seed", str(args.seed),
           "--json", str(ideal_json)] + [a for k, v in (("--rig", args.rig), ("--catalog", args.catalog)) if v for a in (k, v)]
    subprocess.run(cmd, check=True)
    ideal_wall = json.loads(ideal_json.read_text())["render_and_sensors_s"]

    med = lambda xs: float(np.median(xs))  # noqa: E731
    cps = 1.0 / med(wall)
    res = {
        "gl_platform": platform, "gl_renderer": gl_renderer, "rig": rig.name, "cameras": len(cams),
        "captures_timed": args.n, "captures_per_s": cps, "labelled_frames_per_s": cps * len(cams),
        "render_only_labelled_frames_per_s": len(cams) / med(ours_total),
        "tinyrenderer_frames_per_s": len(cams) / med(tiny_total),
        "stages_median_s": {k: med(v) for k, v in stage.items()},
        "per_camera": {},
        "ratio_vs_tinyrenderer": med(ours_total) / med(tiny_total),
        "render_and_sensors_s": med([a + b for a, b in zip(ours_total, stage["sensor_models"])]),
        "ideal_render_s": med(ideal_wall),
    }
    res["sensor_overhead_of_capture_time"] = (res["render_and_sensors_s"] - res["ideal_render_s"]) / med(wall)
    for c in cams:
        o, t = med(ours_cam[c.name]), med(tiny_cam[c.name])
        res["per_camera"][c.name] = {"resolution": list(c.resolution), "labelled_frame_s": o, "tinyrenderer_frame_s": t,
                                     "ratio": o / t}

    print(f"\nrig {rig.name} ({len(cams)} cameras), GL {platform}: {gl_renderer}; {args.n} captures after 1 warm-up")
    print(f"captures/s {cps:.3f}   labelled frames/s {cps * len(cams):.2f} (end to end, incl. physics and writing)")
    print("stage medians (s):")
    for k, v in res["stages_median_s"].items():
        print(f"  {k:34s} {v:.4f}")
    print(f"{'camera':16s} {'res':>10s} {'ours (s)':>9s} {'tiny (s)':>9s} {'ratio':>6s}")
    for name, c in res["per_camera"].items():
        print(f"{name:16s} {c['resolution'][0]:>5d}x{c['resolution'][1]:<4d} {c['labelled_frame_s']:9.4f} "
              f"{c['tinyrenderer_frame_s']:9.4f} {c['ratio']:6.2f}")
    print(f"all cameras of a capture: ours {med(ours_total):.3f} s, TinyRenderer {med(tiny_total):.3f} s -> "
          f"labelled frame / TinyRenderer frame = {res['ratio_vs_tinyrenderer']:.2f} (target <= 1.5)")
    print(f"sensor models + lens remap: render+sensors {res['render_and_sensors_s']:.3f} s vs ideal rig "
          f"{res['ideal_render_s']:.3f} s -> +{100 * res['sensor_overhead_of_capture_time']:.1f}% of capture time "
          f"(target <= 25%)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
