"""Contact sheets: every camera of a capture as RGB, colourised depth and label overlays."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from simulator.core.errors import DamagesimError
from simulator.dataset.reader import FolderCapture
from simulator.dataset.writers import DEPTH_SCALE_M

TILE_W = 400
#: distinct colours for ids (instance, damage category)
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
    [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0]], dtype=np.uint8)


def colorize_depth(depth_m: np.ndarray) -> np.ndarray:
    """(h, w) meters -> (h, w, 3) uint8, near = warm, far = cool, no return = black.
    Scaled to the 2nd..98th percentile of valid depths."""
    valid = depth_m > 0
    out = np.zeros(depth_m.shape + (3,), np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth_m[valid], [2, 98])
    t = np.clip((depth_m - lo) / max(hi - lo, 1e-6), 0, 1)
    # a compact turbo-like ramp: red -> yellow -> green -> cyan -> blue
    stops = np.array([[180, 4, 38], [244, 109, 67], [254, 224, 139], [171, 221, 164], [50, 136, 189], [40, 40, 120]], float)
    x = t * (len(stops) - 1)
    i = np.clip(x.astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    out[valid] = rgb[valid].astype(np.uint8)
    return out


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend palette colours of non-zero labels over rgb and draw label edges."""
    col = PALETTE[(labels.astype(np.int64) - 1) % (len(PALETTE) - 1) + 1]
    m = labels > 0
    out = rgb.astype(np.float32).copy()
    out[m] = out[m] * (1 - alpha) + col[m] * alpha
    edge = np.zeros_like(m)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[edge & m] = col[edge & m]
    return out.astype(np.uint8)


def _tile(a: np.ndarray) -> Image.Image:
    im = Image.fromarray(a)
    h = round(im.height * TILE_W / im.width)
    return im.resize((TILE_W, h), Image.NEAREST if a.ndim == 2 else Image.BILINEAR)


def contact_sheet(capture_dir: str | Path, out_png: str | Path | None = None) -> Path:
    """Write a contact sheet PNG for one capture folder; returns its path.

    One row per camera: RGB | depth | instance overlay | part overlay | damage overlay."""
    cap = FolderCapture(Path(capture_dir))
    if not cap.has("capture.json"):
        raise DamagesimError(f"{cap.path}: not a capture folder (no capture.json)")
    meta = cap.meta
    cols = ["rgb", "depth", "instance", "part", "damage"]
    rows = []
    for name, cam in meta["cameras"].items():
        f = cam["files"]
        rgb = cap.image(f["rgb"])
        rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]
        depth = cap.depth_m(f["depth"], cam.get("depth_scale_m", DEPTH_SCALE_M))
        inst = cap.image(f["instance"])
        part = cap.image(f["part"])
        dmg = cap.image(f["damage_category"])
        tiles = [rgb, colorize_depth(depth), overlay(rgb, inst), overlay(rgb, part), overlay(rgb, dmg)]
        rows.append((name, cam, [_tile(t) for t in tiles]))
    header = 28
    row_h = [max(t.height for t in r[2]) + 22 for r in rows]
    sheet = Image.new("RGB", (TILE_W * len(cols), header + sum(row_h)), (24, 24, 24))
    d = ImageDraw.Draw(sheet)
    n_dmg = len(meta["damages"])
    kinds = ", ".join(f"{it['kind']} ({it['sku']})" for it in meta["items"])
    d.text((8, 8), f"capture {meta['capture_id']}  seed {meta['seed']}  items: {kinds}  damages: {n_dmg}", fill=(240, 240, 240))
    y = header
    for (name, cam, tiles), h in zip(rows, row_h):
        for j, (t, c) in enumerate(zip(tiles, cols)):
            sheet.paste(t, (j * TILE_W, y + 20))
            d.text((j * TILE_W + 6, y + 4), f"{name} [{cam['modality']}] {c}" if j == 0 else c, fill=(220, 220, 220))
        y += h
    out = Path(out_png) if out_png else cap.path / "contact_sheet.png"
    try:
        sheet.save(out)
    except OSError as e:
        hint = "" if out_png else "; give --out PNG (e.g. for a read-only dataset)"
        raise DamagesimError(f"cannot write the contact sheet {out} ({e.strerror or e}){hint}") from None
    return out
