"""Close-ups of tears, punctures and opened boxes on a kraft shipping carton
(docs/tear_modes.png): one oblique close-up camera re-aimed at each damage.

    python benchmarks/tear_modes_sheet.py [--out docs/tear_modes.png] [--seed 0]

Each tile: the transfer catalog's first carton, upright on the gallery rig's
tray, one damage with an explicit centre (a top flap or a side wall), the
camera ``dist`` m from the damage, ``elev`` degrees above its tangent plane.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: (title, op, params, where, camera distance m, elevation deg)
VIEWS = [
    ("tear flap major", "tear", {"length_mm": 200.0, "opening_deg": 100.0}, "flap", 0.34, 65),
    ("tear side major", "tear", {"length_mm": 260.0, "opening_deg": 115.0}, "side", 0.40, 50),
    ("tear side major 75deg", "tear", {"length_mm": 220.0, "opening_deg": 75.0}, "side", 0.36, 50),
    ("tear side minor", "tear", {"length_mm": 35.0, "opening_deg": 35.0}, "side", 0.13, 55),
    ("puncture flap major", "puncture", {"diameter_mm": 70.0}, "flap", 0.30, 60),
    ("puncture side major", "puncture", {"diameter_mm": 90.0}, "side", 0.34, 60),
    ("opened box + contents", "deconstruction", {"mode": "box_open", "opening_mm": 110.0, "contents": True},
     "box", 0.6, 75),
    ("opened box", "deconstruction", {"mode": "box_open", "opening_mm": 90.0, "contents": False}, "box", 0.6, 78),
]


def _site(prod, T, where: str) -> int:
    n = prod.mesh.face_normals @ T[:3, :3].T
    c = prod.mesh.triangles_center @ T[:3, :3].T + T[:3, 3]
    names = [p.name for p in prod.parts]
    pid = prod.part_id
    if where == "flap":
        sel = np.flatnonzero((n[:, 2] > 0.9) & (np.array(names)[pid] == "flap"))
        cx = c[:, :2].mean(0)
        # halfway out on one flap, clear of the tape on the seam
        score = np.abs(np.linalg.norm(c[sel, :2] - cx, axis=1) - 0.06)
        return int(sel[np.argmin(score)])
    # side: the largest side wall facing the camera's side (-y world)
    body = (np.array(names)[pid] == "body") & (np.abs(n[:, 2]) < 0.2)
    for d in ([0, -1.0, 0], [-1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]):
        sel = np.flatnonzero(body & (n @ np.array(d) > 0.9))
        if len(sel):
            break
    mid = c[sel].mean(0)
    return int(sel[np.argmin(np.linalg.norm(c[sel] - mid, axis=1))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/tear_modes.png")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import damage_ops.deconstruction  # noqa: F401
    import damage_ops.puncture  # noqa: F401
    import damage_ops.tear  # noqa: F401
    from damage_ops.base import apply
    from simulator.config.catalog import load_catalog
    from simulator.config.rig import load_rig
    from simulator.core.conventions import cv_to_gl, look_at
    from simulator.core.paths import assets_dir
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.placement import footprint_xy, place_beside
    from simulator.scene.scene import SceneItem
    from simulator.tools.gallery import _outline

    rig = load_rig(assets_dir() / "rigs" / "gallery.yaml")
    cat = load_catalog(assets_dir() / "catalogs" / "transfer.yaml")
    cam = rig.cameras[0]
    sku = next(s for s in cat.skus if s.kind == "carton")
    base = cat.build(sku)
    tw, th = cam.width, cam.height
    cols = 4
    rows = (len(VIEWS) + cols - 1) // cols
    sheet = Image.new("RGB", (tw * cols, (th + 18) * rows), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    with BoothRenderer(rig, cat.materials) as renderer:
        # upright on the tray (top flaps up, long side across the view), a little turned
        c, s_ = np.cos(np.radians(12.0)), np.sin(np.radians(12.0))
        T = np.eye(4)
        T[:2, :2] = [[c, -s_], [s_, c]]
        T[2, 3] = -float(np.asarray(base.mesh.vertices)[:, 2].min())
        for k, (title, op, prm, where, dist, elev) in enumerate(VIEWS):
            prm = dict(prm)
            r = np.random.default_rng([a.seed, k])
            if where != "box":
                prm["center"] = _site(base, T, where)
            try:
                prod, rec = apply(base, op, prm, r)
            except Exception as e:  # noqa: BLE001  (a sheet shows the failure instead of stopping)
                draw.text((tw * (k % cols) + 4, (th + 18) * (k // cols) + th // 2), f"{title}: {e}"[:60],
                          fill=(255, 90, 90))
                continue
            c_item = np.array(rec.region["center_m"])
            n_item = np.array(rec.region.get("normal", [0, 0, 1.0]))
            ctr = T[:3, :3] @ c_item + T[:3, 3]
            nw = T[:3, :3] @ n_item
            if where == "box":
                ctr = T[:3, 3] + np.array([0, 0, 0.02])
                nw = np.array([0, 0, 1.0])
            # azimuth: a direction in the damage's tangent plane; elevation above that plane
            if op == "tear":
                # from beyond the tip back at the hinge: into the opening and under the flap
                hm = T[:3, :3] @ np.mean(rec.region["hinge_m"], axis=0) + T[:3, 3]
                az = ctr - hm
            elif abs(nw[2]) < 0.9:
                az = np.array([0, 0, 1.0]) + 0.4 * np.cross(nw, [0, 0, 1.0])
            else:
                az = np.array([0.2, -1.0, 0])
            az = az - (az @ nw) * nw
            az /= np.linalg.norm(az)
            d = np.cos(np.radians(elev)) * az + np.sin(np.radians(elev)) * nw
            pose = look_at(ctr + dist * d, ctr)
            renderer.scene.set_pose(renderer._cam_nodes[cam.name], cv_to_gl(pose))
            occ = footprint_xy(prod.mesh, T)
            poses = []
            for sat in prod.satellites:
                Ts = place_beside(occ, np.asarray(sat.mesh.vertices)[:, :2], sat.gap_m, rig.tray,
                                  np.random.default_rng(k), [occ])
                poses.append(Ts if Ts is not None else np.eye(4))
            f = renderer.render([SceneItem(prod, T, 1, 0, tuple(poses))])[cam.name]
            img = f.rgb
            x0, y0 = tw * (k % cols), (th + 18) * (k // cols)
            sheet.paste(Image.fromarray(img), (x0, y0 + 18))
            # a thin outline strip under the title shows the damage mask as a small inset
            m = Image.fromarray(_outline(img, f.damage_instance > 0)).resize((tw // 4, th // 4))
            sheet.paste(m, (x0 + tw - tw // 4, y0 + 18))
            draw.text((x0 + 4, y0 + 3), f"{title}  {rec.severity}  {', '.join(f'{k2}={v:.0f}' for k2, v in rec.size.items())}",
                      fill=(235, 235, 235))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
