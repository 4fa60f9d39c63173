"""Procedural printed artwork: the texture shown on printed parts.

Artwork is the full base colour of printed faces, sRGB (H, W, 3) uint8. It is
built from Perlin noise evaluated on a coarse grid and upsampled (fast: a few
ms per megapixel), colour blocks, text-like lines (rows of dark bars),
EAN-like barcodes and logo blobs. Hard-negative styles print damage-looking
graphics on intact packaging: ``crack_print`` (a cracked phone screen, as on a
screen-protector box) and ``splash_print`` (splash graphics, as on a cleaner box).

UV convention of :func:`paint_atlas`: u along image columns, v = 0 at the bottom
image row (trimesh / OpenGL).
"""
from __future__ import annotations

import colorsys

import noise
import numpy as np
from scipy import ndimage

STYLES: tuple[str, ...] = ("retail", "kraft", "label", "plain", "crack_print", "splash_print")
HARD_NEGATIVE_STYLES: tuple[str, ...] = ("crack_print", "splash_print")

KRAFT = np.array([0.70, 0.54, 0.36])


def random_palette(rng: np.random.Generator, n: int = 5) -> np.ndarray:
    """(n, 3) float RGB in [0, 1]: a brand palette (one hue family + accent + dark + light)."""
    h = rng.uniform()
    cols = []
    for k in range(n - 2):
        hh = (h + (0.5 if k == 1 else rng.uniform(-0.06, 0.06))) % 1.0
        cols.append(colorsys.hsv_to_rgb(hh, rng.uniform(0.45, 0.95), rng.uniform(0.45, 0.95)))
    cols.append(colorsys.hsv_to_rgb(h, rng.uniform(0.1, 0.4), rng.uniform(0.05, 0.18)))  # dark
    cols.append(colorsys.hsv_to_rgb(h, rng.uniform(0.0, 0.1), rng.uniform(0.9, 1.0)))   # light
    return np.array(cols)


def noise_field(rng: np.random.Generator, h: int, w: int, cells: float = 4.0, octaves: int = 3,
                grid: int = 40) -> np.ndarray:
    """(h, w) float32 Perlin noise, roughly in [-1, 1].

    pnoise2 is evaluated on a coarse grid (<= grid x grid) and upsampled
    bilinearly; ``cells``: noise periods across the longer side.
    """
    s = max(h, w)
    gh, gw = max(4, int(round(grid * h / s))), max(4, int(round(grid * w / s)))
    ox, oy = rng.uniform(0, 512, 2)
    base = int(rng.integers(0, 256))
    ys = oy + np.linspace(0, cells * h / s, gh)
    xs = ox + np.linspace(0, cells * w / s, gw)
    vals = np.array([[noise.pnoise2(x, y, octaves=octaves, base=base) for x in xs] for y in ys],
                    dtype=np.float32) * 1.6
    out = ndimage.zoom(vals, (h / gh, w / gw), order=1, grid_mode=False)
    if out.shape != (h, w):  # zoom rounds the output shape
        out = np.pad(out, ((0, max(0, h - out.shape[0])), (0, max(0, w - out.shape[1]))), mode="edge")[:h, :w]
    return out


# -- primitives (operate in place on float (h, w, 3) images in [0, 1]) ------

def fill_rect(img, y0, y1, x0, x1, color, alpha=1.0):
    h, w = img.shape[:2]
    y0, y1 = int(np.clip(y0, 0, h)), int(np.clip(y1, 0, h))
    x0, x1 = int(np.clip(x0, 0, w)), int(np.clip(x1, 0, w))
    if y1 > y0 and x1 > x0:
        img[y0:y1, x0:x1] = (1 - alpha) * img[y0:y1, x0:x1] + alpha * np.asarray(color)


def text_lines(img, rng, y0, y1, x0, x1, color, line_h=None):
    """Rows of short dark bars that read as small print."""
    line_h = line_h or max(3, int((y1 - y0) / rng.uniform(4, 9)))
    bar = max(1, int(line_h * 0.55))
    y = y0
    while y + bar <= y1:
        x = x0 + int(rng.integers(0, max(1, line_h)))
        end = x1 - int(rng.uniform(0, 0.4) * (x1 - x0))
        while x < end:
            wlen = int(line_h * rng.uniform(0.8, 3.5))
            fill_rect(img, y, y + bar, x, min(x + wlen, end), color)
            x += wlen + max(1, int(line_h * 0.5))
        y += line_h


def barcode(img, rng, y0, y1, x0, x1):
    """EAN-13-like bars on a white quiet zone: 95 modules, longer guard bars."""
    fill_rect(img, y0, y1, x0, x1, (1.0, 1.0, 1.0))
    w = x1 - x0
    mod = max(1, int(w * 0.85 / 95))
    bits = rng.integers(0, 2, 95)
    guards = np.zeros(95, bool)
    for a, pattern in ((0, "101"), (45, "01010"), (92, "101")):
        bits[a:a + len(pattern)] = [int(c) for c in pattern]
        guards[a:a + len(pattern)] = True
    bx = x0 + (w - 95 * mod) // 2
    h = y1 - y0
    for k in np.flatnonzero(bits):
        bottom = y1 - int(0.06 * h) if guards[k] else y1 - int(0.18 * h)
        fill_rect(img, y0 + int(0.08 * h), bottom, bx + k * mod, bx + (k + 1) * mod, (0.02, 0.02, 0.02))


def blob(img, rng, cy, cx, r, color, alpha=1.0, spikes=0.0, harmonics=5):
    """Paint a star-shaped blob in place: radius modulated by random harmonics
    (``spikes`` > 0 adds splash-like spikes). Works in the blob's window only."""
    h, w = img.shape[:2]
    amps = [rng.uniform(0, 0.25 / k) for k in range(1, harmonics + 1)]
    phases = rng.uniform(0, 2 * np.pi, harmonics)
    n_sp = int(rng.integers(12, 30)) if spikes > 0 else 0
    sp_phase = rng.uniform(0, np.pi) if spikes > 0 else 0.0
    reach = r * (1 + sum(amps) + spikes) + 1
    y0, y1 = int(max(0, cy - reach)), int(min(h, cy + reach + 1))
    x0, x1 = int(max(0, cx - reach)), int(min(w, cx + reach + 1))
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    ang = np.arctan2(yy - cy, xx - cx)
    rr = np.ones(ang.shape)
    for k in range(harmonics):
        rr += amps[k] * np.cos((k + 1) * ang + phases[k])
    if spikes > 0:
        rr += spikes * np.abs(np.cos(n_sp * ang / 2 + sp_phase)) ** 8
    m = np.hypot(yy - cy, xx - cx) < r * rr
    win = img[y0:y1, x0:x1]
    win[m] = (1 - alpha) * win[m] + alpha * np.asarray(color)


def logo(img, rng, cy, cx, r, color, ring=None):
    blob(img, rng, cy, cx, r, color)
    if ring is not None:
        blob(img, rng, cy, cx, r * 0.55, ring)


def polyline(img, pts, width, color):
    """Stamp a polyline (k, 2) of (y, x) pixel points with a square pen."""
    h, w = img.shape[:2]
    pts = np.asarray(pts, np.float64)
    seg = []
    for a, b in zip(pts[:-1], pts[1:]):
        n = int(np.ceil(np.linalg.norm(b - a) * 2)) + 1
        seg.append(a + (b - a) * np.linspace(0, 1, n)[:, None])
    if not seg:
        return
    p = np.round(np.concatenate(seg)).astype(np.int64)
    r = max(0, int(width) // 2)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            y, x = p[:, 0] + dy, p[:, 1] + dx
            ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            img[y[ok], x[ok]] = color


def cracks(img, rng, cy, cx, length, color, n=None, width=1):
    """Branching crack lines radiating from an impact point (y, x)."""
    n = n or int(rng.integers(5, 10))
    for k in range(n):
        ang = 2 * np.pi * k / n + rng.uniform(-0.3, 0.3)
        p = np.array([cy, cx], np.float64)
        pts = [p.copy()]
        L = length * rng.uniform(0.4, 1.0)
        steps = int(rng.integers(5, 12))
        for _ in range(steps):
            ang += rng.uniform(-0.5, 0.5)
            p = p + (L / steps) * np.array([np.sin(ang), np.cos(ang)])
            pts.append(p.copy())
            if rng.uniform() < 0.25:  # a side branch
                q = p + (L / steps) * rng.uniform(0.5, 2) * np.array([np.sin(ang + 0.9), np.cos(ang + 0.9)])
                polyline(img, [p, q], width, color)
        polyline(img, pts, width, color)
    # concentric shatter ring segments near the impact
    for rad in rng.uniform(0.05, 0.2, 2) * length:
        a0 = rng.uniform(0, 2 * np.pi)
        t = a0 + np.linspace(0, rng.uniform(1, 3), 12)
        polyline(img, np.stack([cy + rad * np.sin(t), cx + rad * np.cos(t)], 1), width, color)


def splashes(img, rng, color, n=None):
    """Splash blobs with spikes plus droplets, like splash graphics on a cleaner box."""
    h, w = img.shape[:2]
    n = n or int(rng.integers(1, 4))
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        r = rng.uniform(0.08, 0.22) * min(h, w)
        blob(img, rng, cy, cx, r, color, alpha=0.65, spikes=rng.uniform(0.3, 0.8))
        for _ in range(int(rng.integers(4, 12))):
            a, d = rng.uniform(0, 2 * np.pi), r * rng.uniform(1.3, 2.4)
            blob(img, rng, cy + d * np.sin(a), cx + d * np.cos(a), r * rng.uniform(0.04, 0.12), color, alpha=0.65)


# -- panels -----------------------------------------------------------------

def paint_panel(img, rng, style, pal):
    """Paint one panel (h, w, 3) float image in place with ``style``."""
    h, w = img.shape[:2]
    s = min(h, w)
    if style == "kraft":
        n = noise_field(rng, h, w, cells=rng.uniform(6, 14), octaves=4)
        img[:] = KRAFT * (1.0 + 0.06 * n)[..., None]
        ink = pal[-2] if rng.uniform() < 0.7 else pal[0] * 0.6
        if rng.uniform() < 0.8:
            logo(img, rng, h * rng.uniform(0.25, 0.45), w * rng.uniform(0.2, 0.8), 0.18 * s, ink)
        text_lines(img, rng, int(h * 0.6), int(h * 0.8), int(w * 0.1), int(w * 0.9), ink)
        if rng.uniform() < 0.5:  # white shipping label with barcode and address lines
            ly, lx = int(h * rng.uniform(0.05, 0.4)), int(w * rng.uniform(0.05, 0.5))
            lh, lw = int(0.45 * s), int(0.6 * s)
            fill_rect(img, ly, ly + lh, lx, lx + lw, (0.95, 0.95, 0.93))
            text_lines(img, rng, ly + lh // 10, ly + lh // 2, lx + lw // 10, lx + lw - lw // 10, (0.1, 0.1, 0.1))
            barcode(img, rng, ly + lh // 2 + 2, ly + lh - lh // 10, lx + lw // 10, lx + lw - lw // 10)
        return
    if style == "plain":
        n = noise_field(rng, h, w, cells=3, octaves=2)
        img[:] = pal[int(rng.integers(len(pal)))] * (1.0 + 0.03 * n)[..., None]
        return
    # retail / label / hard negatives share a colourful base
    bg = pal[-1] if style == "label" else pal[int(rng.integers(0, len(pal) - 2))]
    n = noise_field(rng, h, w, cells=rng.uniform(1.5, 4), octaves=3)
    grad = np.linspace(-1, 1, h)[:, None] * rng.uniform(-0.12, 0.12)
    img[:] = np.clip(bg * (1.0 + 0.15 * n + grad)[..., None], 0, 1)
    for _ in range(int(rng.integers(1, 4))):  # colour blocks and bands
        c = pal[int(rng.integers(len(pal)))]
        if rng.uniform() < 0.5:
            y0 = int(rng.uniform(0, 0.8) * h)
            fill_rect(img, y0, y0 + int(rng.uniform(0.08, 0.3) * h), 0, w, c)
        else:
            y0, x0 = int(rng.uniform(0, 0.7) * h), int(rng.uniform(0, 0.7) * w)
            fill_rect(img, y0, y0 + int(rng.uniform(0.1, 0.4) * h), x0, x0 + int(rng.uniform(0.1, 0.4) * w), c)
    logo(img, rng, h * rng.uniform(0.2, 0.4), w * rng.uniform(0.25, 0.75), 0.16 * s,
         pal[int(rng.integers(0, len(pal) - 2))], ring=pal[-1] if rng.uniform() < 0.5 else None)
    text_lines(img, rng, int(h * 0.55), int(h * 0.75), int(w * 0.08), int(w * 0.92), pal[-2])
    if style == "crack_print":
        # a phone with a cracked screen
        ph, pw = int(0.6 * h), int(0.32 * w)
        py, px = int(h * 0.2), int(w * rng.uniform(0.05, 0.6))
        fill_rect(img, py, py + ph, px, px + pw, (0.05, 0.05, 0.06))
        fill_rect(img, py + ph // 20, py + ph - ph // 20, px + pw // 12, px + pw - pw // 12, (0.15, 0.25, 0.4))
        sub = img[py:py + ph, px:px + pw]
        cracks(sub, rng, ph * rng.uniform(0.3, 0.7), pw * rng.uniform(0.3, 0.7), 0.7 * max(ph, pw),
               (0.85, 0.88, 0.9), width=max(1, s // 300))
    elif style == "splash_print":
        col = (rng.uniform(0.1, 0.4), rng.uniform(0.4, 0.8), rng.uniform(0.8, 1.0)) if rng.uniform() < 0.6 \
            else (0.55, 0.35, 0.15)
        splashes(img, rng, col)
    elif rng.uniform() < 0.6:
        by, bx = int(h * 0.8), int(w * rng.uniform(0.05, 0.55))
        barcode(img, rng, by, by + int(0.15 * h), bx, bx + int(0.4 * w))


def make_artwork(rng: np.random.Generator, height: int = 512, width: int = 512, style: str = "retail",
                 palette: np.ndarray | None = None) -> np.ndarray:
    """One printed panel, (height, width, 3) uint8 sRGB."""
    if style not in STYLES:
        raise ValueError(f"unknown artwork style {style!r}; expected one of {list(STYLES)}")
    if height < 8 or width < 8:
        raise ValueError(f"artwork must be at least 8x8 pixels, got {height}x{width}")
    pal = random_palette(rng) if palette is None else np.asarray(palette, np.float64)
    img = np.zeros((int(height), int(width), 3), np.float32)
    paint_panel(img, rng, style, pal)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def pack(sizes_px: list[tuple[int, int]], width: int) -> tuple[list[tuple[int, int]], int]:
    """Shelf packing of (h, w) panels into a strip ``width`` wide: (y, x) per panel, total height."""
    order = sorted(range(len(sizes_px)), key=lambda i: (-sizes_px[i][0], i))
    pos = [(0, 0)] * len(sizes_px)
    x = y = shelf = 0
    for i in order:
        h, w = sizes_px[i]
        if x + w > width and x > 0:
            y, x, shelf = y + shelf, 0, 0
        pos[i] = (y, x)
        x += w
        shelf = max(shelf, h)
    return pos, y + shelf


def paint_atlas(rng: np.random.Generator, panels_mm: list[tuple[float, float]], style: str,
                styles: list[str] | None = None, px_per_mm: float = 2.0, max_px: int = 1024,
                palette: np.ndarray | None = None):
    """Texture atlas holding one panel per printed surface, at true aspect ratio.

    panels_mm: (width_mm, height_mm) of each panel as printed (width along u)
    styles: optional per-panel style overriding ``style``
    Returns (image (H, W, 3) uint8, rects: list of (u0, v0, u1, v1)).
    """
    pal = random_palette(rng) if palette is None else palette
    scale = px_per_mm
    for _ in range(30):
        sizes = [(max(8, int(round(hm * scale))), max(8, int(round(wm * scale)))) for wm, hm in panels_mm]
        area = sum(h * w for h, w in sizes)
        W = max(max(w for _, w in sizes), int(np.sqrt(area) * 1.15))
        pos, H = pack(sizes, W)
        if max(W, H) <= max_px:
            break
        scale *= 0.85 * max_px / max(W, H)
    img = np.zeros((H, W, 3), np.float32)
    img[:] = pal[-1]
    rects = []
    for i, ((y, x), (h, w)) in enumerate(zip(pos, sizes)):
        paint_panel(img[y:y + h, x:x + w], rng, (styles[i] if styles else style), pal)
        # half-pixel inset so bilinear sampling never bleeds across panels
        rects.append(((x + 0.5) / W, 1 - (y + h - 0.5) / H, (x + w - 0.5) / W, 1 - (y + 0.5) / H))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), rects
