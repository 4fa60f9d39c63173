"""Throughput of the capture pipeline on a rig, with pybullet's TinyRenderer as
the peer, measured in the same run.

Prints captures/s, labelled frames/s, a per-stage breakdown (product build,
physics, render per camera split into colour and label passes, encode, write)
and, per camera, the cost of one labelled frame (RGB + depth + all label images)
against TinyRenderer rendering RGB + depth + segmentation of the same scene at the
same resolution. Writes the figures as JSON to benchmarks/out/throughput.json.

    python benchmarks/throughput.py [--n 8] [--rig FILE] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.glenv import configure  # noqa: E402


def tiny_renderer_frame(client, cam, width, height) -> float:
    """Seconds for one TinyRenderer RGB + depth + segmentation image of the scene
    in ``client`` seen by ``cam`` (same intrinsics and pose)."""
    import pybullet as p

    from simulator.conventions import cv_to_gl

    K = cam.K
    near, far = cam.range_m
    # OpenGL projection from OpenCV intrinsics (column-major list for pybullet)
    P = np.zeros((4, 4))
    P[0, 0] = 2 * K[0, 0] / width
    P[1, 1] = 2 * K[1, 1] / height
    P[0, 2] = (width - 2 * (K[0, 2] + 0.5)) / width
    P[1, 2] = (2 * (K[1, 2] + 0.5) - height) / height
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2 * far * near / (far - near)
    P[3, 2] = -1
    V = np.linalg.inv(cv_to_gl(cam.T_world_from_cam))
    t = time.perf_counter()
    _, _, rgba, depth, seg = p.getCameraImage(
        width, height, viewMatrix=V.T.ravel().tolist(), projectionMatrix=P.T.ravel().tolist(),
        renderer=p.ER_TINY_RENDERER, flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=client)
    np.asarray(rgba), np.asarray(depth), np.asarray(seg)
    return time.perf_counter() - t


def build_tiny_scene(rig, products, placements):
    """A pybullet DIRECT client holding the tray and the items as visual meshes."""
    import pybullet as p

    from simulator.render import tray_mesh

    c = p.connect(p.DIRECT)
    tm = tray_mesh(rig)
    vis = p.createVisualShape(p.GEOM_MESH, vertices=tm.vertices.tolist(), indices=tm.faces.ravel().tolist(),
                              rgbaColor=[0.3, 0.3, 0.3, 1], physicsClientId=c)
    p.createMultiBody(0, baseVisualShapeIndex=vis, physicsClientId=c)
    for prod, pl in zip(products, placements):
        m = prod.mesh
        vis = p.createVisualShape(p.GEOM_MESH, vertices=m.vertices.tolist(), indices=m.faces.ravel().tolist(),
                                  rgbaColor=[0.6, 0.45, 0.3, 1], physicsClientId=c)
        T = pl.T_world_from_item
        from scipy.spatial.transform import Rotation

        q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x, y, z, w as pybullet wants
        p.createMultiBody(0, baseVisualShapeIndex=vis, basePosition=T[:3, 3].tolist(),
                          baseOrientation=q.tolist(), physicsClientId=c)
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="captures to time (after one warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rig", default=None)
    ap.add_argument("--catalog", default=None)
    ap.add_argument("--gl", default=None, choices=["egl", "osmesa"])
    ap.add_argument("--json", default=str(Path(__file__).parent / "out" / "throughput.json"))
    args = ap.parse_args()
    platform = configure(args.gl)

    import pybullet as p
    import pyrender

    from simulator.catalog import load_catalog
    from simulator.paths import default_catalog, default_rig
    from simulator.pipeline import CaptureMaker, GenerateSpec
    from simulator.render import SceneItem
    from simulator.rig import load_rig
    from simulator.writers import depth_to_png, frame_annotations, save_png, write_capture

    rig = load_rig(args.rig or default_rig())
    catalog = load_catalog(args.catalog or default_catalog())
    tmp = Path(tempfile.mkdtemp(prefix="damagesim-bench-"))
    spec = GenerateSpec(n=args.n + 1, seed=args.seed, out=str(tmp), rig=rig.path, catalog=catalog.path)
    stage = defaultdict(list)
    cam_color, cam_label, tiny = defaultdict(list), defaultdict(list), defaultdict(list)
    maker = CaptureMaker(spec, rig, catalog)
    r = maker.renderer
    wall = []
    try:
        for i in range(args.n + 1):
            warm = i == 0
            t0 = time.perf_counter()
            from simulator.pipeline import capture_streams

            streams = capture_streams(spec.seed, i)
            skus = [catalog.sample(streams["scene"]) for _ in range(spec.items_per_tray)]
            catalog._cache.clear() if hasattr(catalog, "_cache") else None  # time a real build, not a cache hit
            t = time.perf_counter()
            products = [catalog.build(s) for s in skus]
            t_build = time.perf_counter() - t
            t = time.perf_counter()
            placements = maker.world.settle(products, rig.tray, streams["physics"], catalog.materials)
            t_phys = time.perf_counter() - t
            # full render through the public path (what generate does) ...
            items = [SceneItem(pr, pl.T_world_from_item, k + 1) for k, (pr, pl) in enumerate(zip(products, placements))]
            t = time.perf_counter()
            meta, frames = maker.make(i)
            t_make = time.perf_counter() - t
            t = time.perf_counter()
            write_capture(tmp, i, meta, frames)
            t_write = time.perf_counter() - t
            # ... and per camera, split into colour and label passes
            per_cam = {}
            for cam in rig.cameras:
                t = time.perf_counter()
                r.render(items, cameras=[cam.name], want_rgb=True)
                full = time.perf_counter() - t
                t = time.perf_counter()
                r.render(items, cameras=[cam.name], want_rgb=False)
                label = time.perf_counter() - t
                per_cam[cam.name] = (full, label)
            # encode alone (PNG + RLE), in memory
            t = time.perf_counter()
            import io

            for name, f in frames.items():
                for a in (f.rgb, depth_to_png(f.depth_m), f.instance, f.part, f.damage_category, f.damage_instance):
                    buf = io.BytesIO()
                    from PIL import Image

                    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
                frame_annotations(f, meta["items"], meta["damages"])
            t_encode = time.perf_counter() - t
            client = build_tiny_scene(rig, products, placements)
            tiny_t = {cam.name: tiny_renderer_frame(client, cam, cam.width, cam.height) for cam in rig.cameras}
            p.disconnect(client)
            if warm:
                continue
            wall.append(t_build + t_phys + t_make + t_write)
            stage["product_build"].append(t_build)
            stage["physics"].append(t_phys)
            stage["render_all_cameras"].append(t_make)
            stage["encode"].append(t_encode)
            stage["write_incl_encode"].append(t_write)
            for name, (full, label) in per_cam.items():
                cam_color[name].append(full - label)
                cam_label[name].append(label)
                tiny[name].append(tiny_t[name])
            print(f"capture {i}: {wall[-1]:.2f} s", file=sys.stderr)
    finally:
        maker.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    med = lambda xs: float(np.median(xs))  # noqa: E731
    n_cams = len(rig.cameras)
    cps = 1.0 / med(wall)
    res = {
        "platform": platform,
        "gl_renderer": None,
        "rig": rig.name,
        "captures_timed": args.n,
        "captures_per_s": cps,
        "labelled_frames_per_s": cps * n_cams,
        "stages_median_s": {k: med(v) for k, v in stage.items()},
        "cameras": {},
    }
    ratios = []
    for cam in rig.cameras:
        ours = med(cam_color[cam.name]) + med(cam_label[cam.name])
        peer = med(tiny[cam.name])
        ratios.append(ours / peer)
        res["cameras"][cam.name] = {
            "resolution": list(cam.resolution), "colour_pass_s": med(cam_color[cam.name]),
            "label_and_depth_pass_s": med(cam_label[cam.name]), "labelled_frame_s": ours,
            "tinyrenderer_frame_s": peer, "ratio_vs_tinyrenderer": ours / peer,
        }
    res["ratio_vs_tinyrenderer_median"] = float(np.median(ratios))
    res["ratio_vs_tinyrenderer_max"] = float(np.max(ratios))
    res["pyrender_version"] = pyrender.__version__ if hasattr(pyrender, "__version__") else None

    print(f"\nrig {rig.name}, GL platform {platform}, {args.n} captures (after 1 warm-up)")
    print(f"captures/s: {cps:.3f}   labelled frames/s: {cps * n_cams:.2f}")
    print("stage medians (s): " + ", ".join(f"{k} {v:.3f}" for k, v in res["stages_median_s"].items()))
    print(f"{'camera':16s} {'res':>10s} {'colour':>8s} {'label+depth':>12s} {'frame':>8s} {'tiny':>8s} {'ratio':>6s}")
    for name, c in res["cameras"].items():
        print(f"{name:16s} {c['resolution'][0]:>5d}x{c['resolution'][1]:<4d} {c['colour_pass_s']:8.3f} "
              f"{c['label_and_depth_pass_s']:12.3f} {c['labelled_frame_s']:8.3f} {c['tinyrenderer_frame_s']:8.3f} "
              f"{c['ratio_vs_tinyrenderer']:6.2f}")
    print(f"labelled frame / TinyRenderer frame: median {res['ratio_vs_tinyrenderer_median']:.2f}, "
          f"max {res['ratio_vs_tinyrenderer_max']:.2f} (target <= 1.5)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
