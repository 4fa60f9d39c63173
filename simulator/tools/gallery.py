"""Damage gallery: every damage op at minor and major severity on every product
kind, rendered through one close-up camera, in one PNG."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from damage_ops.base import REGISTRY, apply
from damage_ops.sampling import applicable_ops
from simulator.config.catalog import load_catalog
from simulator.config.rig import load_rig
from simulator.config.sensors import load_presets
from simulator.core.paths import assets_dir
from simulator.core.seeds import rng as rng_of
from simulator.render.sensors import apply_to_frames
from simulator.scene.damage import draw_damage
from simulator.scene.draws import closeup_pose
from simulator.scene.placement import Target, footprint_xy, item_target, place_beside
from simulator.scene.scene import CameraDraw, Draws, SceneItem
from simulator.tools.show import colorize_depth

SEVERITIES = ("minor", "major")
#: the gallery camera frames each item's bounding sphere grown by this factor
FRAME_MARGIN = 1.15


def _save(sheet: Image.Image, out_png: str | Path) -> Path:
    """Write a contact sheet, creating its folder; returns the path."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _outline(rgb: np.ndarray, mask: np.ndarray, color=(255, 40, 40)) -> np.ndarray:
    """Draw the boundary of ``mask`` on ``rgb`` (2 px)."""
    edge = np.zeros_like(mask)
    edge[1:] |= mask[1:] != mask[:-1]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[:-1] |= edge[1:]
    out = rgb.copy()
    out[edge & np.roll(mask | edge, 0)] = color
    return out


def render_gallery(out_png: str | Path, catalog_path=None, seed: int = 0, progress=None) -> Path:
    """Rows: product kinds; columns: pristine, then each op at minor and major.
    Damaged pixels are outlined in red; 'n/a' where an op does not apply."""
    # lazy: OpenGL and pybullet load only once a renderer and a physics world are made
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.physics import PhysicsWorld

    rig = load_rig(assets_dir() / "rigs" / "gallery.yaml")
    catalog = load_catalog(catalog_path)
    cam = rig.cameras[0]
    kinds = [k for k in ("carton", "mailer", "blister", "bottle", "pouch", "multipack")
             if any(s.kind == k for s in catalog.skus)]
    ops = sorted(REGISTRY)
    cols = [("pristine", None)] + [(op, sev) for op in ops for sev in SEVERITIES]
    tw, th = cam.width // 2, cam.height // 2
    head, left = 34, 90
    sheet = Image.new("RGB", (left + tw * len(cols), head + th * len(kinds)), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for j, (op, sev) in enumerate(cols):
        draw.text((left + j * tw + 4, 4), op, fill=(235, 235, 235))
        if sev:
            draw.text((left + j * tw + 4, 18), sev, fill=(255, 170, 120) if sev == "major" else (170, 220, 255))
    with PhysicsWorld() as world, BoothRenderer(rig, catalog.materials) as renderer:
        for i, kind in enumerate(kinds):
            draw.text((4, head + i * th + th // 2 - 6), kind, fill=(235, 235, 235))
            sku = next(s for s in catalog.skus if s.kind == kind)
            base = catalog.build(sku)
            rng = rng_of(seed, kind)
            pl = world.settle([base], rig.tray, rng, catalog.materials)[0]
            # centre the item under the camera's aim point for a fair close-up
            T = pl.T_world_from_item.copy()
            T[:2, 3] -= footprint_xy(base.mesh, T).mean(0)
            # frame the camera on this item (a 450 mm parcel and a 60 mm blister both
            # fill the view), looking from the rig camera's direction, with room for
            # what lands beside it (spills, contents)
            tgt = item_target(base, T)
            d = cam.T_world_from_cam[:3, 3] - tgt.center
            # (only its colour is shown: the camera's depth range does not matter here)
            Tc = closeup_pose(cam, Target(tgt.center, FRAME_MARGIN * tgt.radius), d / np.linalg.norm(d), 1.0,
                              keep_range=False)
            renderer.configure(Draws(cameras={cam.name: CameraDraw(Tc, 1.0)}))
            for j, (op, sev) in enumerate(cols):
                x0, y0 = left + j * tw, head + i * th
                prod = base
                if op != "pristine":
                    if op not in applicable_ops(base):
                        draw.text((x0 + tw // 2 - 10, y0 + th // 2 - 6), "n/a", fill=(120, 120, 120))
                        continue
                    r = rng_of(seed, f"{kind}/{op}/{sev}")
                    prod, _, log = draw_damage(base, lambda _r, op=op, sev=sev: (op, sev), r, max_tries=1,
                                               where=f"gallery {kind}/{op}/{sev}")
                    if prod is None:
                        why = log[-1]["error"].split(": ", 1)[-1]
                        draw.text((x0 + 4, y0 + th // 2 - 6), f"failed: {why[:28]}", fill=(255, 90, 90))
                        continue
                poses = []
                occ = [footprint_xy(prod.mesh, T)]
                for sat in prod.satellites:
                    Ts = place_beside(occ[0], np.asarray(sat.mesh.vertices)[:, :2], sat.gap_m, rig.tray,
                                      np.random.default_rng(j), occ)
                    poses.append(Ts if Ts is not None else np.eye(4))
                f = renderer.render([SceneItem(prod, T, 1, 0, tuple(poses))])[cam.name]
                img = _outline(f.rgb, f.damage_instance > 0)
                sheet.paste(Image.fromarray(img).resize((tw, th), Image.BILINEAR), (x0, y0))
                if progress:
                    progress(1)
    return _save(sheet, out_png)


def render_sensor_sheet(out_png: str | Path, seed: int = 0) -> Path:
    """One row per device preset (assets/sensors/presets.yaml): clean RGB, modelled
    RGB, clean depth, modelled depth (black = no return) of the same scene, seen
    by a camera with that preset's intrinsics, distortion and sensor model."""
    # lazy: OpenGL and pybullet load only once a renderer and a physics world are made
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.physics import PhysicsWorld



    presets = [k for k in load_presets() if k != "ideal"]
    base = yaml.safe_load((assets_dir() / "rigs" / "gallery.yaml").read_text())
    catalog = load_catalog()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for name in presets:
            d = dict(base)
            pre = load_presets()[name]
            near = pre.get("range_mm", [150, 4000])[0]
            # far enough for the device's minimum range (a Kinect v1 sees nothing nearer than 0.8 m)
            dist = max(740.0, 1.3 * near)
            aim = np.array([0.0, 0.0, 40.0])
            pos = aim + np.array([0.0, -0.727, 0.687]) * dist
            d["cameras"] = [{"name": "cam", "preset": name, "position_mm": pos.round(1).tolist(), "look_at_mm": aim.tolist()}]
            p = Path(td) / f"{name}.yaml"
            p.write_text(yaml.safe_dump(d))
            rig = load_rig(p)
            rng = np.random.default_rng(seed)
            sku = next(s for s in catalog.skus if s.kind == "carton")
            prod, _ = apply(catalog.build(sku), "crush", {"depth_mm": 20, "radius_mm": 60, "mode": "corner"}, rng)
            with PhysicsWorld() as world:
                pl = world.settle([prod], rig.tray, rng, catalog.materials)[0]
            with BoothRenderer(rig, catalog.materials) as r:
                clean = r.render([SceneItem(prod, pl.T_world_from_item, 1)])
            noisy, _ = apply_to_frames(rig, clean, seed)
            c, n = clean["cam"], noisy["cam"]
            rows.append((name, [c.rgb, n.rgb, colorize_depth(c.depth_m), colorize_depth(n.depth_m)]))
    tw = 320
    head = 24
    th = [round(tiles[0].shape[0] * tw / tiles[0].shape[1]) for _, tiles in rows]
    sheet = Image.new("RGB", (tw * 4, head + sum(t + 18 for t in th)), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for j, t in enumerate(["RGB clean", "RGB modelled", "depth clean", "depth modelled (black: no return)"]):
        draw.text((j * tw + 6, 6), t, fill=(235, 235, 235))
    y = head
    for (name, tiles), h in zip(rows, th):
        draw.text((6, y + 3), name, fill=(255, 200, 120))
        for j, t in enumerate(tiles):
            sheet.paste(Image.fromarray(t).resize((tw, h), Image.BILINEAR), (j * tw, y + 16))
        y += h + 18
    return _save(sheet, out_png)


def _sku_caption(kind: str, p: dict) -> str:
    """A short line naming what a SKU is (dims mm, style, tape)."""
    dims = "x".join(f"{p[k]:.0f}" for k in ("length_mm", "width_mm", "height_mm", "thickness_mm") if k in p)
    if kind == "carton":
        return f"{dims} {p['art_style']} {p['tape_style']} {p['tape_material'].replace('tape_', '')}"
    if kind == "mailer":
        return f"{dims} {p['style']} {p['art_style']}"
    return dims


#: the SKUs of docs/parcels.png (assets/catalogs/transfer.yaml): parcels of each
#: kind (strip, H-tape, re-used and re-taped), poly mailers and a padded envelope
PARCEL_SHEET_SKUS = ("parcel-000", "parcel-001", "parcel-002", "parcel-003", "parcel-small-000", "parcel-small-001",
                     "parcel-reused-000", "parcel-reused-001", "mailer-000", "mailer-001", "mailer-003", "mailer-004")
#: camera distances (m) of the product sheet; each item uses the nearest one that frames it
SHEET_DISTANCES_M = (0.62, 0.8, 1.0, 1.25)


def render_product_sheet(out_png: str | Path, catalog_path=None, n: int = 12, seed: int = 0,
                         cols: int = 4, progress=None, kinds: tuple[str, ...] = ("carton", "mailer"),
                         skus: list[str] | None = None) -> Path:
    """``n`` pristine SKUs of a catalog, each lying upright on the gallery tray
    (its top up, as parcels travel, turned by a random yaw from ``seed``) and
    seen from the gallery camera's direction at the nearest of
    :data:`SHEET_DISTANCES_M` that frames the item; ``cols`` per row, captioned
    with the SKU and its main params. SKUs are taken round-robin over the
    catalog's entries (their name prefix) of the given ``kinds``, so every entry
    shows; or exactly the SKUs named in ``skus`` (then ``n`` and ``kinds`` are ignored).

    docs/parcels.png: ``render_product_sheet("docs/parcels.png",
    "assets/catalogs/transfer.yaml", skus=PARCEL_SHEET_SKUS)``."""
    # lazy: OpenGL loads only once a renderer is made
    from simulator.render.renderer import BoothRenderer





    if n < 1 or cols < 1:
        raise ValueError(f"render_product_sheet: n and cols must be >= 1, got n={n}, cols={cols}")
    base = yaml.safe_load((assets_dir() / "rigs" / "gallery.yaml").read_text())
    cam0 = base["cameras"][0]
    aim = np.array([0.0, 0.0, 60.0])  # mm: about half the height of a parcel
    view = np.asarray(cam0["position_mm"], np.float64) - np.asarray(cam0["look_at_mm"], np.float64)
    view /= np.linalg.norm(view)
    base["cameras"] = [dict(cam0, name=f"d{k}", position_mm=(aim + view * d * 1e3).round(1).tolist(),
                            look_at_mm=aim.tolist()) for k, d in enumerate(SHEET_DISTANCES_M)]
    with tempfile.TemporaryDirectory() as td:
        rp = Path(td) / "sheet.yaml"
        rp.write_text(yaml.safe_dump(base))
        rig = load_rig(rp)
    catalog = load_catalog(catalog_path)
    cam = rig.cameras[0]
    half_v = np.arctan(np.tan(np.radians(cam0["hfov_deg"]) / 2) * cam.height / cam.width)
    groups: dict[str, list] = {}
    for s_ in (s for s in catalog.skus if s.kind in kinds):
        head, _, tail = s_.sku.rpartition("-")
        groups.setdefault(head if tail.isdigit() else s_.sku, []).append(s_)
    picked, k = [], 0
    if skus is not None:
        picked = [catalog.get(name) for name in skus]
    while skus is None and len(picked) < min(n, sum(map(len, groups.values()))):
        for g in groups.values():
            if k < len(g) and len(picked) < n:
                picked.append(g[k])
        k += 1
    tw, th, cap = cam.width, cam.height, 16
    rows = (len(picked) + cols - 1) // cols
    sheet = Image.new("RGB", (tw * cols, (th + cap) * rows), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    with BoothRenderer(rig, catalog.materials) as renderer:
        for i, spec in enumerate(picked):
            prod = catalog.build(spec)
            rng = rng_of(seed, spec.sku)
            yaw = rng.uniform(-0.6, 0.6)
            T = np.eye(4)
            T[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
            lo, hi = prod.mesh.bounds
            T[:3, 3] = -T[:3, :3] @ ((lo + hi) / 2) + [0, 0, (hi[2] - lo[2]) / 2]
            radius = np.linalg.norm(hi - lo) / 2
            need = 1.1 * radius / np.sin(half_v)
            j = next((j for j, d in enumerate(SHEET_DISTANCES_M) if d >= need), len(SHEET_DISTANCES_M) - 1)
            f = renderer.render([SceneItem(prod, T, 1, 0)])[f"d{j}"]
            x0, y0 = (i % cols) * tw, (i // cols) * (th + cap)
            sheet.paste(Image.fromarray(f.rgb), (x0, y0 + cap))
            draw.text((x0 + 4, y0 + 2), f"{spec.sku}: {_sku_caption(spec.kind, spec.params)}", fill=(235, 235, 235))
            if progress:
                progress(1)
    return _save(sheet, out_png)
