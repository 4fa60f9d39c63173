"""Packaging design variants of one SKU: a hard negative.

A design variant is the same item (same mesh, parts, materials, uv, dims, mass,
collision) whose printed artwork differs from the canonical design, as after a
seasonal redesign or a promotion: a detector that compares a query with the
SKU's pristine reference gallery must not call it damaged. Only
``Product.artwork`` changes, so the variant has no damage and no damaged pixel.

The canonical atlas is edited panel by panel (panels are recovered from the
printed faces' uv, so any product with artwork works, user meshes included).
Edits, drawn from ``np.random.default_rng(seed)``:

- ``recolour``: hue rotated by 60-180 degrees on coloured print (kraft board,
  white, black and greys keep their colour): a seasonal colourway;
- ``relayout``: each panel's print rolled down by 30-70 % of its height and
  mirrored left-right with probability 0.5: logo and text lines move;
- ``colour_block``: a new band across every panel (10-25 % of its height, an
  accent colour, with a row of light text);
- ``sticker``: a promo sticker (starburst or disc, bright colour, dark print) on
  one to two panels.

Every variant has ``relayout``, ``recolour`` with probability 0.6 and each of
the other two with probability 0.5; where that changes fewer than
``MIN_CHANGED_FRACTION`` of the printed pixels (plain print), the edits left
out are added in the order above until it does. Same (artwork, uv, seed) -> identical artwork.
"""
from __future__ import annotations

import colorsys

import numpy as np
from scipy import ndimage

from damage_ops import Product

from .artwork import KRAFT, blob, fill_rect, text_lines

EDITS: tuple[str, ...] = ("recolour", "relayout", "colour_block", "sticker")
#: a variant changes at least this fraction of the printed pixels by more than MIN_CHANGE
MIN_CHANGED_FRACTION = 0.25
MIN_CHANGE = 40 / 255


def artwork_panels(product: Product) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles (y0, y1, x0, x1) of the artwork that printed faces map to.

    Each printed face's uv bounding box is rasterised at twice the atlas
    resolution, shrunk by a quarter pixel, so panels that touch in the atlas (the
    packer leaves no gap, the uv rects are inset by half a pixel) stay apart;
    connected regions are the panels. Faces with a degenerate uv box (parts
    without print) are ignored. Falls back to the whole image."""
    art = product.artwork
    H, W = art.shape[:2]
    printed = [i for i, p in enumerate(product.parts) if p.printed]
    uv = np.asarray(product.uv)[np.isin(product.part_id, printed)]
    if len(uv):
        umin, umax = uv[:, :, 0].min(1), uv[:, :, 0].max(1)
        vmin, vmax = uv[:, :, 1].min(1), uv[:, :, 1].max(1)
        ok = (umax - umin > 0.25 / W) & (vmax - vmin > 0.25 / H)
        # atlas rows run top-down; v = 0 is the bottom row (trimesh / OpenGL)
        x0 = np.floor(umin[ok] * 2 * W + 0.5).astype(int)
        x1 = np.floor(umax[ok] * 2 * W - 0.5).astype(int)
        y0 = np.floor((1 - vmax[ok]) * 2 * H + 0.5).astype(int)
        y1 = np.floor((1 - vmin[ok]) * 2 * H - 0.5).astype(int)
        grid = np.zeros((2 * H + 1, 2 * W + 1), np.int32)
        # mark each face box: a 2D difference array, summed twice
        np.add.at(grid, (np.clip(y0, 0, 2 * H), np.clip(x0, 0, 2 * W)), 1)
        np.add.at(grid, (np.clip(y0, 0, 2 * H), np.clip(x1 + 1, 0, 2 * W)), -1)
        np.add.at(grid, (np.clip(y1 + 1, 0, 2 * H), np.clip(x0, 0, 2 * W)), -1)
        np.add.at(grid, (np.clip(y1 + 1, 0, 2 * H), np.clip(x1 + 1, 0, 2 * W)), 1)
        cover = grid.cumsum(0).cumsum(1)[:2 * H, :2 * W] > 0
        lab, n = ndimage.label(cover)
        out = []
        for sl in ndimage.find_objects(lab):
            ya, yb = sl[0].start // 2, (sl[0].stop + 1) // 2
            xa, xb = sl[1].start // 2, (sl[1].stop + 1) // 2
            if yb - ya >= 8 and xb - xa >= 8:
                out.append((ya, yb, xa, xb))
        if out:
            return sorted(out)
    return [(0, H, 0, W)]


def _recolour(img: np.ndarray, rng: np.random.Generator) -> dict:
    """Rotate the hue of coloured print in place (float RGB in [0, 1])."""
    turn = float(rng.uniform(60, 180) * rng.choice([-1, 1]))
    mx, mn = img.max(2), img.min(2)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    kraft = np.linalg.norm(img - KRAFT, axis=2) < 0.12
    m = (sat > 0.25) & (mx > 0.15) & ~kraft
    if m.any():
        px = img[m]
        # hue rotation about the grey axis (Rodrigues): luminance-neutral and vectorised
        a = np.radians(turn)
        k = np.ones(3) / np.sqrt(3)
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        Rm = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
        img[m] = np.clip(px @ Rm.T, 0, 1)
    return {"edit": "recolour", "hue_deg": round(turn, 2)}


def _relayout(img: np.ndarray, panels, rng: np.random.Generator) -> dict:
    frac = float(rng.uniform(0.3, 0.7))
    mirror = bool(rng.random() < 0.5)
    for y0, y1, x0, x1 in panels:
        sub = img[y0:y1, x0:x1]
        sub[:] = np.roll(sub, int(round(frac * (y1 - y0))), axis=0)
        if mirror:
            sub[:] = sub[:, ::-1].copy()
    return {"edit": "relayout", "roll": round(frac, 3), "mirror": mirror}


def _accent(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)))


def _colour_block(img: np.ndarray, panels, rng: np.random.Generator) -> dict:
    col = _accent(rng)
    top, height = float(rng.uniform(0.0, 0.75)), float(rng.uniform(0.10, 0.25))
    state = rng.bit_generator.state  # the same text on every panel, scaled to it
    for y0, y1, x0, x1 in panels:
        h = y1 - y0
        a, b = y0 + int(top * h), y0 + int(min(top + height, 1.0) * h)
        fill_rect(img, a, b, x0, x1, col)
        rng.bit_generator.state = state
        if b - a >= 6:
            text_lines(img, rng, a + (b - a) // 4, b - (b - a) // 4, x0 + (x1 - x0) // 10, x1 - (x1 - x0) // 10,
                       (0.97, 0.97, 0.95))
    return {"edit": "colour_block", "top": round(top, 3), "height": round(height, 3),
            "rgb": [round(float(c), 3) for c in col]}


def _sticker(img: np.ndarray, panels, rng: np.random.Generator) -> dict:
    col = _accent(rng)
    spikes = float(rng.uniform(0.15, 0.3)) if rng.random() < 0.5 else 0.0
    # the largest panels are the faces a camera sees most
    order = sorted(range(len(panels)), key=lambda i: -(panels[i][1] - panels[i][0]) * (panels[i][3] - panels[i][2]))
    k = min(len(panels), int(rng.integers(1, 3)))
    placed = []
    for i in order[:k]:
        y0, y1, x0, x1 = panels[i]
        h, w = y1 - y0, x1 - x0
        r = float(rng.uniform(0.14, 0.22)) * min(h, w)
        cy, cx = y0 + rng.uniform(0.3, 0.7) * h, x0 + rng.uniform(0.3, 0.7) * w
        sub = img[y0:y1, x0:x1]  # a view: the sticker stays on its panel
        blob(sub, rng, cy - y0, cx - x0, r, col, spikes=spikes, harmonics=2)
        text_lines(sub, rng, int(cy - y0 - 0.35 * r), int(cy - y0 + 0.35 * r), int(cx - x0 - 0.55 * r),
                   int(cx - x0 + 0.55 * r), (0.05, 0.05, 0.08), line_h=max(3, int(0.22 * r)))
        placed.append(i)
    return {"edit": "sticker", "panels": placed, "rgb": [round(float(c), 3) for c in col], "starburst": spikes > 0}


def design_variant(product: Product, variant: int, seed: int) -> Product:
    """The same item with a variant of its printed design.

    variant: the variant's number for this SKU (>= 1; 0 is the canonical design)
    seed: the variant's seed (every edit draws from ``default_rng(seed)``)
    Returns a copy whose ``artwork`` is edited and whose ``meta["design_variant"]``
    records ``{"variant", "seed", "edits"}``; everything else is equal to the
    input's. Raises ``ValueError`` for a product without artwork or a bad number.
    """
    if isinstance(variant, bool) or not isinstance(variant, (int, np.integer)) or variant < 1:
        raise ValueError(f"design variant number must be an integer >= 1, got {variant!r}")
    if product.artwork is None:
        raise ValueError(f"product {product.sku!r} ({product.kind}) has no artwork to vary")
    rng = np.random.default_rng(seed)
    panels = artwork_panels(product)
    img = product.artwork.astype(np.float32) / 255.0
    edits = []
    if rng.random() < 0.6:
        edits.append(_recolour(img, rng))
    edits.append(_relayout(img, panels, rng))
    if rng.random() < 0.5:
        edits.append(_colour_block(img, panels, rng))
    if rng.random() < 0.5:
        edits.append(_sticker(img, panels, rng))
    # plain or low-contrast print hardly changes when moved: add the edits left out
    # until a fifth of the printed pixels differ (a variant must look different)
    mask = np.zeros(img.shape[:2], bool)
    for y0, y1, x0, x1 in panels:
        mask[y0:y1, x0:x1] = True
    base = product.artwork.astype(np.float32) / 255.0
    for name, fn in (("recolour", lambda: _recolour(img, rng)), ("colour_block", lambda: _colour_block(img, panels, rng)),
                     ("sticker", lambda: _sticker(img, panels, rng))):
        if (np.abs(img - base).max(2)[mask] > MIN_CHANGE).mean() >= MIN_CHANGED_FRACTION:
            break
        if name not in {e["edit"] for e in edits}:
            edits.append(fn())
    out = product.copy()
    out.artwork = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    out.meta = dict(out.meta, design_variant={"variant": int(variant), "seed": int(seed), "edits": edits})
    return out


__all__ = ["EDITS", "artwork_panels", "design_variant"]
