"""Contact sheet of every crush mode, before and after, under grazing light
(not a timing benchmark: a picture to judge the geometry by eye).

Rows: carton modes (dent, corner, edge, crease, buckle, crumple, wrinkle,
bulge), then wrinkle and crumple on a mailer and dent and bulge on a bottle.
Columns: pristine, damaged under a grazing key light from two azimuths, and
the damaged faces outlined in red. Each damage is placed on the face nearest
the top centre (corner / edge modes: the nearest top corner / edge), at a
``major`` size. Writes docs/crush_modes.png (or ``--out``).

    python benchmarks/crush_modes_sheet.py [--out docs/crush_modes.png] [--size 320]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyrender  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import damage_ops.crush  # noqa: E402,F401
from damage_ops.base import apply  # noqa: E402
from simulator.config.catalog import load_catalog  # noqa: E402
from simulator.render.renderer import visual_mesh  # noqa: E402

#: (kind, mode, depth_mm, radius_mm)
ROWS = (
    ("carton", "dent", 12.0, 45.0), ("carton", "corner", 30.0, 70.0), ("carton", "edge", 22.0, 45.0),
    ("carton", "crease", 18.0, 60.0), ("carton", "buckle", 15.0, 60.0), ("carton", "crumple", 18.0, 60.0),
    ("carton", "wrinkle", 4.0, 60.0), ("mailer", "wrinkle", 3.0, 80.0), ("mailer", "crumple", 6.0, 60.0),
    ("bottle", "dent", 8.0, 25.0), ("bottle", "bulge", 4.0, 25.0),
    ("carton", "sag", 25.0, 70.0), ("carton", "barrel", 20.0, 70.0), ("carton", "rack", 30.0, 70.0),
    ("carton", "mangle", 30.0, 60.0), ("carton", "mangle", 30.0, 60.0), ("carton", "mangle", 30.0, 60.0),
    ("carton", "mangle", 30.0, 60.0),
)


def _look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    f = target - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = s, u, -f, eye
    return T


def _light_pose(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Directional light shining from (azimuth, elevation) towards the origin."""
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    d = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    return _look_at(d, np.zeros(3), up=(0.0, 0.0, 1.0) if abs(d[2]) < 0.99 else (0.0, 1.0, 0.0))


def render(product, materials, size: int, light_az: float, light_el: float, mask_faces=None) -> np.ndarray:
    """(size, size, 3) uint8 view of ``product`` (item frame, resting on z = min)
    from above at 50 degrees elevation, one grazing directional light and a
    weak ambient; mask_faces: also return a mask of those faces' pixels."""
    V = np.asarray(product.mesh.vertices)
    lo, hi = V.min(0), V.max(0)
    ctr = 0.5 * (lo + hi)
    ext = float(np.linalg.norm(hi - lo))
    scene = pyrender.Scene(ambient_light=np.full(3, 0.12), bg_color=np.array([0.16, 0.16, 0.17, 1.0]))
    scene.add(visual_mesh(product, materials))
    eye = ctr + ext * 1.15 * np.array([0.55, -0.62, 0.78])
    scene.add(pyrender.PerspectiveCamera(yfov=np.radians(40.0)), pose=_look_at(eye, ctr))
    scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=5.0), pose=_light_pose(light_az, light_el))
    scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=0.6), pose=_light_pose(light_az + 150, 60))
    r = pyrender.OffscreenRenderer(size, size)
    try:
        rgb, _ = r.render(scene)
        mask = None
        if mask_faces is not None and len(mask_faces):
            import trimesh

            F = np.asarray(product.mesh.faces)[mask_faces]
            sub = trimesh.Trimesh(V, F, process=False)
            ms = pyrender.Scene(ambient_light=np.ones(3), bg_color=np.zeros(4))
            ms.add(pyrender.Mesh.from_trimesh(sub, material=pyrender.MetallicRoughnessMaterial(
                baseColorFactor=(1.0, 1.0, 1.0, 1.0)), smooth=False))
            ms.add(pyrender.PerspectiveCamera(yfov=np.radians(40.0)), pose=_look_at(eye, ctr))
            d_full = r.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY)
            d_sub = r.render(ms, flags=pyrender.RenderFlags.DEPTH_ONLY)
            mask = (d_sub > 0) & (np.abs(d_sub - d_full) < 1e-4 + 1e-3 * d_full)
        return rgb, mask
    finally:
        r.delete()


def _outline(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return rgb
    from scipy import ndimage

    edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
    out = rgb.copy()
    out[edge] = (255, 40, 40)
    return out


def _top_center_face(product) -> int:
    m = product.mesh
    n, c = m.face_normals, m.triangles_center
    top = np.flatnonzero((n[:, 2] > 0.9) & (c[:, 2] > c[:, 2].max() - 0.003))
    return int(top[np.argmin(np.linalg.norm(c[top, :2] - c[:, :2].mean(0), axis=1))])


def _corner_face(product) -> int:
    """A top face near the +x/-y corner (the corner facing the camera)."""
    m = product.mesh
    n, c = m.face_normals, m.triangles_center
    lo, hi = np.asarray(m.vertices).min(0), np.asarray(m.vertices).max(0)
    top = np.flatnonzero((n[:, 2] > 0.9) & (c[:, 2] > c[:, 2].max() - 0.003))
    tgt = np.array([hi[0], lo[1]])
    return int(top[np.argmin(np.linalg.norm(c[top, :2] - tgt, axis=1))])


def _edge_face(product) -> int:
    """A face on the top near the middle of the -y top edge (facing the camera)."""
    m = product.mesh
    n, c = m.face_normals, m.triangles_center
    lo, hi = np.asarray(m.vertices).min(0), np.asarray(m.vertices).max(0)
    top = np.flatnonzero((n[:, 2] > 0.9) & (c[:, 2] > c[:, 2].max() - 0.003))
    tgt = np.array([0.5 * (lo[0] + hi[0]), lo[1] + 0.1 * (hi[1] - lo[1])])
    return int(top[np.argmin(np.linalg.norm(c[top, :2] - tgt, axis=1))])


def _side_face(product) -> int:
    """A body face on the side facing the camera, at mid-height."""
    m = product.mesh
    n, c = m.face_normals, m.triangles_center
    body = np.asarray(product.part_id) == 0
    z = np.asarray(m.vertices)[:, 2]
    mid = 0.5 * (z.min() + z.max())
    view = np.array([0.66, -0.75, 0.0])
    cand = np.flatnonzero(body & (n @ view > 0.8) & (np.abs(c[:, 2] - mid) < 0.15 * (z.max() - z.min())))
    return int(cand[np.argmax(n[cand] @ view)])


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "crush_modes.png"))
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--rows", default="", help="comma-separated row indices (default: all)")
    ap.add_argument("--catalog", default=None, help="catalog YAML whose first SKU of each kind is used "
                    "(default: the default catalog)")
    a = ap.parse_args(argv)
    cat = load_catalog(a.catalog) if a.catalog else load_catalog()
    rows = [ROWS[int(i)] for i in a.rows.split(",")] if a.rows else list(ROWS)
    S, left, head = a.size, 150, 26
    cols = ("pristine", "crushed, light from left", "crushed, light from right", "damaged faces")
    sheet = Image.new("RGB", (left + S * len(cols), head + S * len(rows)), (30, 30, 30))
    dr = ImageDraw.Draw(sheet)
    for j, name in enumerate(cols):
        dr.text((left + j * S + 6, 6), name, fill=(235, 235, 235))
    bases = {}
    for i, (kind, mode, depth, radius) in enumerate(rows):
        if kind not in bases:
            sku = next(s for s in cat.skus if s.kind == kind)
            bases[kind] = cat.build(sku)
        base = bases[kind]
        face = (_corner_face(base) if mode == "corner" else _edge_face(base) if mode == "edge"
                else _side_face(base) if kind == "bottle" else _top_center_face(base))
        q, rec = apply(base, "crush", {"depth_mm": depth, "radius_mm": radius, "mode": mode, "center": face},
                       np.random.default_rng(i))
        lab = np.flatnonzero(q.damage_id == len(q.damages))
        y = head + i * S
        dr.text((6, y + 6), f"{kind}\n{mode}\nreq {depth:.0f} mm\nmeas {rec.size['depth_mm']:.1f} mm\n"
                            f"R {radius:.0f} mm\n{rec.severity}", fill=(235, 235, 235))
        imgs = [render(base, cat.materials, S, 200, 12)[0], render(q, cat.materials, S, 200, 12)[0],
                render(q, cat.materials, S, -20, 12)[0]]
        rgb, mask = render(q, cat.materials, S, 200, 35, mask_faces=lab)
        imgs.append(_outline(rgb, mask))
        for j, im in enumerate(imgs):
            sheet.paste(Image.fromarray(im), (left + j * S, y))
        comps = "+".join(c["mode"] for c in rec.region.get("components", []))
        if comps and mode == "mangle":
            dr.text((6, y + 100), comps.replace("+", "\n+"), fill=(235, 235, 235))
        print(f"{kind}/{mode} {comps}: depth {rec.size['depth_mm']:.1f} mm, {rec.n_faces} faces, "
              f"stretch p95 {rec.region.get('stretch_p95', 0):.3f}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


if __name__ == "__main__":
    print(main())
