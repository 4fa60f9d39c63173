"""Damage gallery: every damage op at minor and major severity on every product
kind, rendered through one close-up camera, in one PNG."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .paths import assets_dir

SEVERITIES = ("minor", "major")


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
    from damage_ops.base import ParamError, REGISTRY, apply
    from damage_ops.sampling import applicable_ops, sample_params

    from .catalog import load_catalog
    from .physics import PhysicsWorld
    from .pipeline import footprint_xy, place_beside
    from .render import BoothRenderer, SceneItem
    from .rig import load_rig

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
            rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
            pl = world.settle([base], rig.tray, rng, catalog.materials)[0]
            # centre the item under the camera's aim point for a fair close-up
            T = pl.T_world_from_item.copy()
            T[:2, 3] -= footprint_xy(base.mesh, T).mean(0)
            for j, (op, sev) in enumerate(cols):
                x0, y0 = left + j * tw, head + i * th
                prod = base
                if op != "pristine":
                    if op not in applicable_ops(base):
                        draw.text((x0 + tw // 2 - 10, y0 + th // 2 - 6), "n/a", fill=(120, 120, 120))
                        continue
                    r = np.random.default_rng([seed, zlib.crc32(f"{kind}/{op}/{sev}".encode())])
                    try:
                        prod, _ = apply(base, op, sample_params(op, sev, base, r), r)
                    except (ParamError, ValueError) as e:
                        draw.text((x0 + 4, y0 + th // 2 - 6), f"failed: {str(e)[:28]}", fill=(255, 90, 90))
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
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
