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
import functools
from dataclasses import dataclass
from typing import NamedTuple

import noise
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from simulator.products.surface import flute_profile, smooth_noise

from .surface import FLUTES, WASHBOARD, encode_normals, fibre_height, flute_height, normals_from_height

STYLES: tuple[str, ...] = ("retail", "kraft", "label", "plain", "crack_print", "splash_print", "shipping")
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
    """Rows of small print in place: random words in the default font, each
    row ragged on the right, anti-aliased and slightly soft (ink spread), so
    at a distance they read as grey print, not as bars. A line height under
    7 px falls back to short dark bars (glyphs that small are a blur anyway)."""
    line_h = line_h or max(3, int((y1 - y0) / rng.uniform(4, 9)))
    h, w = img.shape[:2]
    y0, y1 = int(np.clip(y0, 0, h)), int(np.clip(y1, 0, h))
    x0, x1 = int(np.clip(x0, 0, w)), int(np.clip(x1, 0, w))
    if y1 - y0 < 2 or x1 - x0 < 2:
        return
    if line_h < 7:
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
        return
    im, d = _canvas(y1 - y0, x1 - x0)
    f = _font(int(line_h * 0.8))
    y = 0
    while y + 0.7 * line_h <= y1 - y0:
        end = (x1 - x0) * (1 - rng.uniform(0, 0.4))
        x = float(rng.integers(0, max(1, line_h)))
        while x < end:
            word = _words(rng, 1, 2, 9).lower() if rng.uniform() < 0.7 else _words(rng, 1, 2, 6)
            wlen = d.textlength(word, font=f)
            if x + wlen > end:
                break
            d.text((x, y), word, fill=255, font=f)
            x += wlen + 0.35 * line_h
        y += line_h
    a = ndimage.gaussian_filter(_arr(im), 0.4)
    win = img[y0:y1, x0:x1]
    col = np.asarray(color, np.float32)
    win[:] = win * (1 - a[..., None]) + a[..., None] * col


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


# -- corrugated board ----------------------------------------------------------

#: sRGB albedo range of brown kraft liners (light, dark) and of white-top liners,
#: as photographed under neutral light (real-dev cartons read (160-200, 120-160, 80-115))
KRAFT_LIGHT = np.array([199, 158, 112]) / 255.0
KRAFT_DARK = np.array([163, 123, 83]) / 255.0
WHITE_TOP = np.array([226, 219, 204]) / 255.0
BOARD_STYLES: tuple[str, ...] = ("kraft", "shipping")


@dataclass(frozen=True)
class Board:
    """One SKU's corrugated board: liner colour (sRGB in [0, 1]), flute
    (:data:`surface.FLUTES` key) and whether the outer liner is white-top."""

    color: tuple[float, float, float]
    flute: str = "C"
    white_top: bool = False

    @property
    def pitch_mm(self) -> float:
        return FLUTES[self.flute][0]


def draw_board(rng: np.random.Generator, white_top_p: float = 0.12) -> Board:
    """A random board: kraft hue between KRAFT_DARK and KRAFT_LIGHT with a small
    per-SKU hue and saturation shift, or a white-top liner."""
    white = bool(rng.uniform() < white_top_p)
    flute = str(rng.choice(["C", "C", "B", "E"]))
    if white:
        c = WHITE_TOP * (1 + rng.uniform(-0.03, 0.02)) + rng.uniform(-0.01, 0.01, 3)
    else:
        t = rng.uniform()
        c = KRAFT_DARK + t * (KRAFT_LIGHT - KRAFT_DARK)
        warm = rng.uniform(-0.025, 0.025)  # redder or yellower board
        c = c + np.array([warm, 0.0, -warm]) + rng.uniform(-0.012, 0.012, 3)
    return Board(tuple(float(x) for x in np.clip(c, 0, 1)), flute, white)


def kraft_board(img: np.ndarray, rng: np.random.Generator, board: Board, px_per_mm: float) -> None:
    """Paint a liner in place on an (h, w, 3) float sRGB panel: base colour,
    low-frequency mottling (30-150 mm), fibre flocs (5-15 mm), fibre streaks
    along u (the machine direction, ~2 mm), dark recycled specks, the faint
    shading of the flutes beneath (ridges along v, pitch of the board's flute)
    and handling grime (soft smudges, darker edges)."""

    h, w = img.shape[:2]
    ppm = float(px_per_mm)
    base = np.asarray(board.color, np.float32)
    big = smooth_noise(rng, h, w, 40 * ppm)
    mid = smooth_noise(rng, h, w, 4 * ppm)
    chroma = smooth_noise(rng, h, w, 25 * ppm)
    streak = smooth_noise(rng, h, w, (0.2 * ppm + 0.3, 1.2 * ppm + 0.5))
    grain = rng.standard_normal((h, w)).astype(np.float32)
    k = 0.5 if board.white_top else 1.0
    lum = 1.0 + k * (0.035 * big + 0.022 * mid + 0.03 * streak) + 0.012 * grain
    x = (np.arange(w) + 0.5) / ppm
    lum = lum * (1.0 + 0.014 * flute_profile(x, board.pitch_mm))[None, :]
    img[:] = base * lum[..., None]
    img[..., 0] *= 1 + 0.012 * chroma
    img[..., 2] *= 1 - 0.02 * chroma
    # dark specks of recycled fibre: about 0.4 per cm^2
    n = int(rng.poisson(0.004 * h * w / ppm ** 2))
    if n:
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        img[ys, xs] *= rng.uniform(0.6, 0.9, (n, 1)).astype(np.float32)
    # handling grime: darker within ~1-2 cm of the panel edges, broken by noise
    d_edge = np.minimum(np.minimum(np.arange(h)[:, None], h - 1 - np.arange(h)[:, None]),
                        np.minimum(np.arange(w)[None, :], w - 1 - np.arange(w)[None, :])) / ppm
    reach = rng.uniform(6, 20)
    grime = rng.uniform(0.03, 0.09) * np.exp(-d_edge / reach) * np.clip(0.6 + 0.5 * mid, 0, 1.2)
    img *= (1 - grime)[..., None]
    for _ in range(int(rng.integers(0, 4))):  # smudges from hands and conveyor belts
        r = rng.uniform(8, 35) * ppm
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1, x0, x1 = int(max(0, cy - 2 * r)), int(min(h, cy + 2 * r)), int(max(0, cx - 2 * r)), int(min(w, cx + 2 * r))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        f = np.exp(-((yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.4, 1.0)) ** 2) / (2 * r * r))
        img[y0:y1, x0:x1] *= (1 - rng.uniform(0.03, 0.1) * f * np.clip(1 + 0.5 * mid[y0:y1, x0:x1], 0, 2))[..., None]


# -- handling wear ---------------------------------------------------------------

def _edge_coords(h: int, w: int, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) distance in mm to the nearest panel edge, and (h, w) position in
    mm along that edge (running round the panel, so noise drawn over it varies
    along each edge)."""
    yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / ppm
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / ppm
    H, W = h / ppm, w / ppm
    ds = np.stack(np.broadcast_arrays(yy, H - yy, xx, W - xx))          # top, bottom, left, right
    k = np.argmin(ds, axis=0)
    d = np.take_along_axis(ds, k[None], 0)[0]
    along = np.choose(k, np.broadcast_arrays(xx, W + H + xx, 2 * W + H + yy, 2 * W + 2 * H + yy))
    return d, along


def handling_wear(img: np.ndarray, rng: np.random.Generator, px_per_mm: float, wear: float,
                  cover: np.ndarray | None = None) -> None:
    """Paint the wear of a carton that went through a few warehouses, in place,
    on an (h, w, 3) float sRGB board panel whose borders are the box's edges.

    wear in [0, 1] scales everything (0: nothing is painted and no rng is drawn):

    - frayed edges: within 1-5 mm of the edge the outer liner is rubbed, its
      fibres raised (lighter, greyer), in patches along the edge, with a darker
      line of dirt just inside;
    - worn corners: a scuffed, lighter and greyer patch 6-22 mm in radius at a
      corner, fibrous, ringed by grime;
    - scuffs: elongated rub marks 20-120 mm long made of fine parallel
      striations, lighter (liner abraded) or darker (rubber belt and dirt);
    - a panel-wide brightness offset of up to 3 % (sun fading, dust).

    This is intact-item wear (the marks every used parcel carries), so the
    superficial damage op's scuffs are not the only light rub marks a detector
    sees. cover (h, w), opaque labels: they take a third of the wear."""

    wear = float(wear)
    if wear <= 0:
        return
    h, w = img.shape[:2]
    ppm = float(px_per_mm)
    if min(h, w) < 4:
        return
    lum = np.ones((h, w), np.float32)              # brightness multiplier
    grey = np.zeros((h, w), np.float32)            # pull towards a neutral light fibre grey
    d, along = _edge_coords(h, w, ppm)
    # patchiness along the edge: noise of the along-edge coordinate (1D, 10-40 mm features)
    per = 2 * (h + w) / ppm
    n_along = max(8, int(per / 2))
    patch = ndimage.gaussian_filter1d(rng.standard_normal(n_along).astype(np.float32), rng.uniform(5, 20) / 2,
                                      mode="wrap")
    patch = (patch - patch.mean()) / max(float(patch.std()), 1e-6)
    pa = np.interp(along.ravel(), np.arange(n_along) * per / n_along, patch, period=per).reshape(h, w)
    fib = smooth_noise(rng, h, w, (0.3 * ppm + 0.3, 0.3 * ppm + 0.3))
    width = wear * rng.uniform(1.0, 5.0) * np.clip(0.6 + 0.7 * pa, 0, None)   # mm, varies along the edge
    fray = np.clip(1.0 - d / np.maximum(width, 1e-3), 0, 1) * np.clip(0.7 + 0.4 * fib, 0, 1)
    lum += 0.18 * fray
    grey += 0.5 * fray
    dirt_w = rng.uniform(2, 6)
    lum -= wear * rng.uniform(0.02, 0.06) * np.exp(-np.abs(d - width - dirt_w) / dirt_w) * np.clip(0.5 + 0.5 * pa, 0, 1.5)
    # worn corners
    H, W = h / ppm, w / ppm
    yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / ppm
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / ppm
    for cy, cx in ((0.0, 0.0), (0.0, W), (H, 0.0), (H, W)):
        if rng.uniform() > 0.25 + 0.6 * wear:
            continue
        r = wear * rng.uniform(6, 22)
        y0, y1 = int(max(0, (cy - 2.5 * r) * ppm)), int(min(h, (cy + 2.5 * r) * ppm + 1))
        x0, x1 = int(max(0, (cx - 2.5 * r) * ppm)), int(min(w, (cx + 2.5 * r) * ppm + 1))
        if y1 <= y0 or x1 <= x0:
            continue
        rr = np.hypot(yy[y0:y1] - cy, xx[:, x0:x1] - cx) / max(r, 1e-3)
        rr = rr * (1 + 0.35 * smooth_noise(rng, y1 - y0, x1 - x0, 0.25 * r * ppm + 0.5))
        core = np.clip(1.4 - rr, 0, 1) * np.clip(0.6 + 0.5 * fib[y0:y1, x0:x1], 0, 1)
        lum[y0:y1, x0:x1] += 0.2 * core
        grey[y0:y1, x0:x1] += 0.55 * core
        lum[y0:y1, x0:x1] -= rng.uniform(0.03, 0.08) * np.exp(-((rr - 1.5) / 0.4) ** 2)
    # scuffs: elongated rub marks made of fine striations along the rub
    area_m2 = h * w / ppm ** 2 / 1e6
    for _ in range(int(rng.poisson(wear * (0.6 + 15.0 * area_m2)))):
        L = rng.uniform(20, 120)
        Wd = rng.uniform(4, 25)
        th = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ext = 0.5 * (L * max(abs(np.sin(th)), abs(np.cos(th))) + Wd)
        y0, y1 = int(max(0, (cy - ext) * ppm)), int(min(h, (cy + ext) * ppm + 1))
        x0, x1 = int(max(0, (cx - ext) * ppm)), int(min(w, (cx + ext) * ppm + 1))
        if y1 - y0 < 2 or x1 - x0 < 2:
            continue
        Y, X = yy[y0:y1] - cy, xx[:, x0:x1] - cx
        u = X * np.cos(th) + Y * np.sin(th)
        v = -X * np.sin(th) + Y * np.cos(th)
        env = np.exp(-(2 * u / L) ** 4 - (2 * v / Wd) ** 4)
        # striations: fine lines along u, random widths (0.2-1 mm), broken up
        stria = ndimage.gaussian_filter1d(rng.standard_normal(max(8, int(4 * Wd * ppm))).astype(np.float32), 0.6)
        sv = np.interp(v.ravel() * ppm * 2 + 2 * Wd * ppm, np.arange(len(stria)), stria).reshape(v.shape)
        m = env * np.clip(0.5 + 0.5 * sv, 0, 1.5) * np.clip(0.6 + 0.5 * fib[y0:y1, x0:x1], 0, 1)
        if rng.uniform() < 0.6:      # abraded liner: lighter, greyer fibre
            lum[y0:y1, x0:x1] += rng.uniform(0.08, 0.22) * m
            grey[y0:y1, x0:x1] += 0.45 * m
        else:                        # belt rubber and dirt: darker, greyer
            lum[y0:y1, x0:x1] -= rng.uniform(0.08, 0.22) * m
            grey[y0:y1, x0:x1] += 0.25 * m
    lum *= 1 + rng.uniform(-0.03, 0.03)
    k = np.float32(1.0) if cover is None else (1 - 0.66 * np.clip(cover, 0, 1)).astype(np.float32)
    lum = 1 + (lum - 1) * k
    grey = np.clip(grey * k, 0, 0.8)[..., None]
    fibre_grey = img.mean(axis=2, keepdims=True) * np.array([1.04, 1.0, 0.93], np.float32)
    img[:] = np.clip((img * (1 - grey) + fibre_grey * grey) * lum[..., None], 0, 1)


# -- printed marks: decals --------------------------------------------------

@functools.lru_cache(maxsize=64)
def _font(px: int):

    return ImageFont.load_default(size=max(6, int(px)))


def _canvas(h: int, w: int):

    im = Image.new("L", (max(1, int(w)), max(1, int(h))), 0)
    return im, ImageDraw.Draw(im)


def _rect(draw, box, **kw) -> None:
    """ImageDraw.rectangle that skips an empty box (tiny panels make some)."""
    x0, y0, x1, y1 = box
    if x1 >= x0 and y1 >= y0:
        draw.rectangle([x0, y0, x1, y1], **kw)


def _arr(im) -> np.ndarray:
    return np.asarray(im, np.float32) / 255.0


def _words(rng, n: int, lo: int = 3, hi: int = 9) -> str:
    letters = "ABCDEFGHIJKLMNOPRSTUVWY"
    return " ".join("".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(lo, hi))))
                    for _ in range(n))


def _digits(rng, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _rotate(a: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a (h, w) or (h, w, c) float image about its centre, expanding it."""
    if abs(deg) < 1e-3:
        return a
    return ndimage.rotate(a, deg, reshape=True, order=1, mode="constant", cval=0.0, prefilter=False)


def place(img: np.ndarray, cy: float, cx: float, alpha: np.ndarray, color, mode: str = "over",
          cover: np.ndarray | None = None) -> None:
    """Composite a decal centred at (cy, cx) px into ``img`` (h, w, 3) in place.

    alpha: (dh, dw) coverage in [0, 1]; color: (3,) or (dh, dw, 3) sRGB in [0, 1].
    mode "over": opaque paper or film (label, sticker); "multiply": ink soaked
    into the board (the liner shows through: dark ink on kraft is brown-black).
    cover: optional (h, w) float map that records opaque coverage (labels)."""
    h, w = img.shape[:2]
    dh, dw = alpha.shape
    y0, x0 = int(round(cy - dh / 2)), int(round(cx - dw / 2))
    ys0, xs0 = max(0, -y0), max(0, -x0)
    ys1, xs1 = min(dh, h - y0), min(dw, w - x0)
    if ys1 <= ys0 or xs1 <= xs0:
        return
    a = alpha[ys0:ys1, xs0:xs1, None]
    col = np.asarray(color, np.float32)
    if col.ndim == 3:
        col = col[ys0:ys1, xs0:xs1]
    win = img[y0 + ys0:y0 + ys1, x0 + xs0:x0 + xs1]
    win[:] = win * (1 - a) + a * (win * col if mode == "multiply" else col)
    if cover is not None and mode == "over":
        cw = cover[y0 + ys0:y0 + ys1, x0 + xs0:x0 + xs1]
        cw[:] = np.maximum(cw, alpha[ys0:ys1, xs0:xs1])


def inked(rng: np.random.Generator, cov: np.ndarray, px_per_mm: float, density: float = 0.9,
          mottle: float = 0.3, voids: float = 0.0) -> np.ndarray:
    """Ink coverage (h, w) in [0, 1] from a sharp mask: edges softened by ink
    spread (~0.15 mm), density mottled, and (for stamps, ``voids`` > 0) blotchy
    gaps where the stamp did not touch the board."""

    h, w = cov.shape
    a = ndimage.gaussian_filter(cov, 0.15 * px_per_mm + 0.35)
    m = smooth_noise(rng, h, w, 0.8 * px_per_mm + 0.5)
    a = a * density * np.clip(1 - mottle * 0.5 * (1 + m) * 0.6, 0, 1)
    if voids > 0:
        v = smooth_noise(rng, h, w, 2.0 * px_per_mm + 1)
        a = a * np.clip((v + 2.2 - 4 * voids) * 1.5, 0, 1)
    return np.clip(a, 0, 1).astype(np.float32)


def _barcode_mask(rng, draw, x0, y0, x1, y1, module: float) -> None:
    """Code-128-like bars: random widths of 1-4 modules between x0 and x1."""
    x = x0
    while x < x1:
        bw = module * int(rng.integers(1, 5))
        if x + bw > x1:
            break
        _rect(draw, [x, y0, x + bw - 1, y1], fill=255)
        x += bw + module * int(rng.integers(1, 5))


def shipping_label(rng: np.random.Generator, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """A thermal shipping label (4 x 6 in or 100 x 70 mm): carrier block, ship-to
    address, routing code, a big 1D barcode and often a 2D matrix code.
    Returns (colour (h, w, 3), alpha (h, w)) before rotation."""
    big = rng.uniform() < 0.65
    wmm, hmm = (102.0, 152.0) if big else (100.0, 70.0)
    W, H = max(12, int(wmm * ppm)), max(10, int(hmm * ppm))
    im, d = _canvas(H, W)
    lw = max(1, int(0.4 * ppm))
    m = 3 * ppm
    _rect(d, [m, m, W - m, H - m], outline=255, width=lw)
    y = m + 2 * ppm
    fs = max(6, int(3.2 * ppm))
    d.text((m + 2 * ppm, y), _words(rng, 1, 3, 6), fill=255, font=_font(int(6 * ppm)))
    _rect(d, [W - m - 16 * ppm, y, W - m - 3 * ppm, y + 12 * ppm], fill=255)
    y += 14 * ppm
    d.line([m, y, W - m, y], fill=255, width=lw)
    y += 2 * ppm
    for k in range(int(rng.integers(3, 5))):
        d.text((m + 3 * ppm, y), ("SHIP TO: " if k == 0 else "") + _words(rng, int(rng.integers(2, 4))),
               fill=255, font=_font(fs))
        y += 4.3 * ppm
    if big:
        d.line([m, y, W - m, y], fill=255, width=lw)
        y += 2 * ppm
        d.text((m + 3 * ppm, y), _words(rng, 1, 2, 3) + " " + _digits(rng, 3), fill=255, font=_font(int(9 * ppm)))
        if rng.uniform() < 0.7:  # 2D matrix code
            q = int(rng.integers(21, 30))
            cell = max(1, int(26 * ppm / q))
            bits = rng.uniform(size=(q, q)) < 0.5
            bits[:7, :7] = bits[:7, -7:] = bits[-7:, :7] = True
            ox, oy = W - m - 3 * ppm - q * cell, y
            for r, c in zip(*np.nonzero(bits)):
                _rect(d, [ox + c * cell, oy + r * cell, ox + (c + 1) * cell - 1, oy + (r + 1) * cell - 1], fill=255)
        y += 30 * ppm
        d.line([m, y, W - m, y], fill=255, width=lw)
        y += 3 * ppm
    bh = min(25 * ppm, H - m - y - 9 * ppm)
    if bh > 3:
        _barcode_mask(rng, d, m + 6 * ppm, y, W - m - 6 * ppm, y + bh, max(1, int(0.38 * ppm)))
        d.text((m + 12 * ppm, y + bh + 1.5 * ppm), "1Z " + _digits(rng, 4) + " " + _digits(rng, 4) + " " + _digits(rng, 4),
               fill=255, font=_font(fs))
    ink = inked(rng, _arr(im), ppm, density=0.92, mottle=0.25)

    paper = np.asarray((0.95, 0.95, 0.93), np.float32) * (1 + 0.015 * smooth_noise(rng, H, W, 0.8 * ppm))[..., None]
    col = paper * (1 - ink[..., None]) + ink[..., None] * np.float32(0.1)
    alpha = np.ones((H, W), np.float32)
    return col, alpha


def fragile_mark(rng: np.random.Generator, ppm: float) -> tuple[np.ndarray, np.ndarray, str]:
    """FRAGILE as a red sticker (white letters on red paper, opaque) or as a red
    rubber stamp (letters and border, patchy). Returns (colour, alpha, mode)."""
    word = "FRAGILE" if rng.uniform() < 0.8 else str(rng.choice(["HANDLE WITH CARE", "FRAGILE - GLASS"]))
    fpx = int(rng.uniform(10, 18) * ppm)
    f = _font(fpx)
    x0, y0, x1, y1 = f.getbbox(word)
    pad = int(0.35 * fpx)
    W, H = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    im, d = _canvas(H, W)
    red = np.array([0.80, 0.08, 0.10]) * rng.uniform(0.85, 1.05)
    if rng.uniform() < 0.5:  # sticker
        d.text((pad - x0, pad - y0), word, fill=255, font=f, stroke_width=max(1, fpx // 14), stroke_fill=255)
        letters = _arr(im)
        col = red[None, None, :] * (1 - letters[..., None]) + letters[..., None] * np.float32(0.96)
        return col.astype(np.float32), np.ones((H, W), np.float32), "over"
    lw = max(1, int(1.2 * ppm))
    _rect(d, [lw, lw, W - 1 - lw, H - 1 - lw], outline=255, width=lw)
    d.text((pad - x0, pad - y0), word, fill=255, font=f, stroke_width=max(1, fpx // 14), stroke_fill=255)
    a = inked(rng, _arr(im), ppm, density=0.85, mottle=0.45, voids=rng.uniform(0.15, 0.4))
    return np.broadcast_to(red.astype(np.float32), (H, W, 3)).copy(), a, "multiply"


def arrows_mark(rng: np.random.Generator, ppm: float) -> np.ndarray:
    """'This way up': two upward arrows over a bar (ISO 780), ink coverage (h, w)."""
    s = rng.uniform(35, 55) * ppm
    W, H = int(s), int(s * 1.1)
    im, d = _canvas(H, W)
    for cx in (0.28 * W, 0.72 * W):
        hw = 0.2 * W
        d.polygon([(cx, 0.05 * H), (cx - hw, 0.38 * H), (cx + hw, 0.38 * H)], fill=255)
        _rect(d, [cx - 0.07 * W, 0.36 * H, cx + 0.07 * W, 0.82 * H], fill=255)
    _rect(d, [0.05 * W, 0.88 * H, 0.95 * W, 0.97 * H], fill=255)
    return inked(rng, _arr(im), ppm, density=0.9, mottle=0.35)


def recycle_mark(rng: np.random.Generator, ppm: float) -> np.ndarray:
    """Three chasing arrows around a triangle (the recycling mark), ink coverage."""
    s = int(rng.uniform(22, 40) * ppm)
    im, d = _canvas(s, s)
    c = np.array([s / 2, s * 0.55])
    r = 0.4 * s
    lw = max(1, int(0.09 * s))
    for k in range(3):
        a0 = np.radians(90 + 120 * k)
        a1 = np.radians(90 + 120 * (k + 1))
        p0 = c + r * np.array([np.cos(a0), -np.sin(a0)])
        p1 = c + r * np.array([np.cos(a1), -np.sin(a1)])
        q = p0 + 0.72 * (p1 - p0)
        d.line([tuple(p0 + 0.15 * (p1 - p0)), tuple(q)], fill=255, width=lw)
        t = (p1 - p0) / np.linalg.norm(p1 - p0)
        nrm = np.array([-t[1], t[0]])
        tip = q + t * 0.16 * s
        d.polygon([tuple(tip), tuple(q + nrm * 0.1 * s), tuple(q - nrm * 0.1 * s)], fill=255)
    return inked(rng, _arr(im), ppm, density=0.85, mottle=0.35)


def logo_mark(rng: np.random.Generator, ppm: float, width_mm: float) -> np.ndarray:
    """A maker's or brand's printed logo: a solid emblem and a word, coverage (h, w)."""
    fpx = int(rng.uniform(0.08, 0.16) * width_mm * ppm)
    word = _words(rng, 1, 4, 8).capitalize() if rng.uniform() < 0.5 else _words(rng, 1, 4, 8)
    f = _font(fpx)
    x0, y0, x1, y1 = f.getbbox(word)
    e = int(1.3 * (y1 - y0)) if rng.uniform() < 0.7 else 0
    W, H = x1 - x0 + e + 3 * max(1, fpx // 6), max(y1 - y0, e) + 2 * max(1, fpx // 6)
    im, d = _canvas(H, W)
    p = max(1, fpx // 6)
    if e:
        kind = rng.integers(0, 3)
        box = [p, (H - e) / 2, p + e, (H + e) / 2]
        if kind == 0:
            d.ellipse(box, fill=255)
            d.ellipse([box[0] + e * 0.25, box[1] + e * 0.25, box[2] - e * 0.25, box[3] - e * 0.25], fill=0)
        elif kind == 1:
            d.polygon([(p, (H + e) / 2), (p + e / 2, (H - e) / 2), (p + e, (H + e) / 2)], fill=255)
        else:
            _rect(d, box, fill=255)
            _rect(d, [box[0] + e * 0.3, box[1] + e * 0.3, box[2], box[3] - e * 0.3], fill=0)
    d.text((p + e + p - x0, (H - (y1 - y0)) / 2 - y0), word, fill=255, font=f, stroke_width=max(0, fpx // 20), stroke_fill=255)
    return _arr(im)


def scribble(rng: np.random.Generator, ppm: float) -> np.ndarray:
    """Marker handwriting: a short code in large letters with wobble, sometimes a
    cross-out or an underline; coverage (h, w)."""
    fpx = int(rng.uniform(14, 30) * ppm)
    txt = _digits(rng, int(rng.integers(1, 4))) if rng.uniform() < 0.5 else _words(rng, 1, 2, 5)
    f = _font(fpx)
    x0, y0, x1, y1 = f.getbbox(txt)
    W, H = x1 - x0 + fpx, y1 - y0 + fpx
    im, d = _canvas(H, W)
    d.text((fpx / 2 - x0, fpx / 2 - y0), txt, fill=255, font=f, stroke_width=max(1, int(0.8 * ppm)), stroke_fill=255)
    a = _arr(im)
    # wobble: a smooth displacement field, as a hand draws
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    dy = smooth_noise(rng, H, W, 0.3 * fpx) * 0.06 * fpx
    dx = smooth_noise(rng, H, W, 0.3 * fpx) * 0.06 * fpx
    a = ndimage.map_coordinates(a, [yy + dy, xx + dx + (yy - H / 2) * rng.uniform(-0.25, 0.1)], order=1)
    im2, d2 = _canvas(H, W)
    if rng.uniform() < 0.4:
        y = rng.uniform(0.6, 0.9) * H
        d2.line([(0.05 * W, y), (0.95 * W, y + rng.uniform(-0.1, 0.1) * H)], fill=255, width=max(1, int(1.5 * ppm)))
    return np.maximum(a, _arr(im2))


def old_label(rng: np.random.Generator, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """The remains of a peeled label on a re-used box: torn white face paper in
    patches over a grey adhesive ghost, with a few printed fragments.
    Returns (colour (h, w, 3), alpha (h, w))."""

    wmm, hmm = rng.uniform(60, 110), rng.uniform(40, 150)
    W, H = max(8, int(wmm * ppm)), max(8, int(hmm * ppm))
    # the label was pulled off from one side: one or two ragged tear lines (1/f
    # noise along them) cross it; the paper beyond them is gone, leaving the
    # adhesive ghost with flecks of white face fibre stuck in it
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    keep = np.ones((H, W), np.float32)
    for k in range(1 + int(rng.uniform() < 0.3)):
        th = rng.uniform(0, 2 * np.pi)
        a = ((xx - W / 2) * np.cos(th) + (yy - H / 2) * np.sin(th)) / (0.5 * max(H, W))
        rag = 0.12 * smooth_noise(rng, H, W, 8 * ppm) + 0.05 * smooth_noise(rng, H, W, 2 * ppm) \
            + 0.02 * smooth_noise(rng, H, W, 0.5 * ppm + 0.3)
        cut = rng.uniform(-0.5, 0.45) if k == 0 else rng.uniform(0.1, 0.7)
        keep *= np.clip((cut - a - rag) * 0.5 * max(H, W) / 1.2, 0, 1)  # a 1-2 px soft edge
    fleck = np.clip((smooth_noise(rng, H, W, 0.4 * ppm + 0.3) - 1.9) * 1.5, 0, 0.7)
    keep = np.maximum(keep, fleck)
    col = np.empty((H, W, 3), np.float32)
    paper = np.array([0.92, 0.91, 0.88], np.float32)
    ghost = np.array([0.62, 0.52, 0.40], np.float32)         # adhesive residue darkens the liner
    col[:] = ghost * (1 - keep[..., None]) + paper * keep[..., None]
    im, d = _canvas(H, W)
    for _ in range(int(rng.integers(1, 4))):
        y = rng.uniform(0.1, 0.9) * H
        d.text((rng.uniform(0.05, 0.3) * W, y), _words(rng, 2), fill=255, font=_font(int(3.5 * ppm)))
    if rng.uniform() < 0.6:
        y = rng.uniform(0.3, 0.7) * H
        _barcode_mask(rng, d, 0.1 * W, y, 0.9 * W, y + 0.2 * H, max(1, int(0.38 * ppm)))
    txt = _arr(im) * keep
    col = col * (1 - 0.85 * txt[..., None]) + 0.85 * txt[..., None] * 0.1
    alpha = np.full((H, W), 0.55, np.float32) + 0.45 * keep   # the ghost is translucent
    # the adhesive ghost fades out at its rim
    rim = np.minimum.reduce([np.arange(H)[:, None] + 0 * np.arange(W), H - 1 - np.arange(H)[:, None] + 0 * np.arange(W),
                             np.arange(W)[None, :] + 0 * np.arange(H)[:, None], W - 1 - np.arange(W)[None, :] + 0 * np.arange(H)[:, None]])
    alpha = alpha * np.clip(rim / (1.5 * ppm), 0, 1)
    return col, alpha


def tape_ghost(img: np.ndarray, rng: np.random.Generator, ppm: float) -> None:
    """Where old tape was pulled off: a strip of darker, torn liner (fibres
    lifted in light patches), across the panel, in place."""

    h, w = img.shape[:2]
    tw = int(rng.uniform(46, 52) * ppm)
    horizontal = rng.uniform() < 0.5
    n = w if horizontal else h
    L = h if horizontal else w
    c = int(rng.uniform(0.2, 0.8) * L)
    y0, y1 = max(0, c - tw // 2), min(L, c + tw // 2)
    if y1 <= y0:
        return
    sh = (y1 - y0, n)
    torn = np.clip((smooth_noise(rng, *sh, (1.5 * ppm, 6 * ppm)) - 0.9) * 2, 0, 1)
    dark = 0.9 + 0.04 * smooth_noise(rng, *sh, 5 * ppm)
    f = (dark * (1 - torn) + torn * 1.12)[..., None]
    if horizontal:
        img[y0:y1] *= f
    else:
        img[:, y0:y1] *= f.transpose(1, 0, 2)


def shipping_marks(img: np.ndarray, rng: np.random.Generator, px_per_mm: float, primary: bool,
                   reused: bool, cover: np.ndarray) -> None:
    """The marks of a parcel in transit, painted in place on a kraft panel.

    primary: this panel gets the shipping label; reused: the box was shipped
    before (old label remains, tape ghosts, crossed-out marker). cover (h, w)
    records where opaque paper now hides the board."""
    h, w = img.shape[:2]
    ppm = float(px_per_mm)
    wmm, hmm = w / ppm, h / ppm
    if reused:
        if rng.uniform() < 0.5:
            tape_ghost(img, rng, ppm)
        for _ in range(int(rng.uniform() < 0.6) + int(rng.uniform() < 0.15)):
            col, a = old_label(rng, ppm)
            deg = rng.uniform(-20, 20)
            place(img, rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w, _rotate(a, deg),
                  np.stack([_rotate(col[..., i], deg) for i in range(3)], -1), "over")
    if not primary and rng.uniform() < 0.25:  # the maker's print on the board
        a = logo_mark(rng, ppm, wmm)
        place(img, rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, inked(rng, a, ppm, 0.85, 0.4),
              np.array([0.25, 0.22, 0.2]) if rng.uniform() < 0.7 else np.array([0.2, 0.35, 0.6]), "multiply")
    if not primary and rng.uniform() < 0.3:
        a = arrows_mark(rng, ppm)
        place(img, rng.uniform(0.15, 0.4) * h, rng.uniform(0.15, 0.85) * w, a, np.array([0.18, 0.16, 0.15]), "multiply")
    if rng.uniform() < (0.35 if primary else 0.2):
        col, a, mode = fragile_mark(rng, ppm)
        deg = rng.uniform(-12, 12)
        place(img, rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, _rotate(a, deg),
              np.stack([_rotate(col[..., i], deg) for i in range(3)], -1) if mode == "over" else col[0, 0], mode, cover)
    if rng.uniform() < (0.45 if reused else 0.15):
        a = scribble(rng, ppm)
        ink = np.array([0.12, 0.12, 0.13]) if rng.uniform() < 0.7 else np.array([0.15, 0.2, 0.5])
        place(img, rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w, _rotate(a, rng.uniform(-25, 25)), ink, "multiply")
    if primary and min(wmm, hmm) > 60:
        col, a = shipping_label(rng, ppm)
        deg = rng.uniform(-6, 6) + (90 if (hmm < 150 < wmm and col.shape[0] > col.shape[1]) else 0)
        ra = _rotate(a, deg)
        rc = np.stack([_rotate(col[..., i], deg) for i in range(3)], -1)
        cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.7) * w
        # a 1-px contact shadow round the label edge: the paper has thickness
        shadow = np.clip(ndimage.maximum_filter(ra, 3) - ra, 0, 1) * 0.25
        place(img, cy, cx, shadow, np.zeros(3), "over")
        place(img, cy, cx, ra, rc, "over", cover)


# -- panels -----------------------------------------------------------------

def stock_print(img: np.ndarray, rng: np.random.Generator, pal: np.ndarray, px_per_mm: float,
                cover: np.ndarray) -> None:
    """A printed stock carton's marks, in place on an (h, w, 3) kraft panel: the
    maker's or brand's logo in one or two inks (the second slightly
    misregistered), some small print, handling marks, sometimes a white shipping
    label (its opaque coverage recorded in ``cover`` (h, w))."""
    h, w = img.shape[:2]
    ppm = float(px_per_mm)
    inks = [np.array([0.22, 0.2, 0.19]), pal[0] * 0.7 + 0.05]
    a = logo_mark(rng, ppm, w / ppm)
    cy, cx = h * rng.uniform(0.25, 0.45), w * rng.uniform(0.3, 0.7)
    if rng.uniform() < 0.8:
        place(img, cy, cx, inked(rng, a, ppm, 0.9, 0.35), inks[int(rng.integers(0, 2))], "multiply")
        if rng.uniform() < 0.5:  # a second ink band under the logo, off register by up to 0.5 mm
            band = np.zeros((max(2, int(2.5 * ppm)), a.shape[1]), np.float32) + 1
            off = rng.uniform(-0.5, 0.5, 2) * ppm
            place(img, cy + a.shape[0] / 2 + 2 * ppm + off[0], cx + off[1], inked(rng, band, ppm, 0.8, 0.4),
                  inks[1], "multiply")
    small = np.zeros((h, w, 1), np.float32)
    text_lines(small, rng, int(h * 0.62), int(h * 0.78), int(w * 0.1), int(w * 0.9), (1.0,),
               line_h=max(3, int(rng.uniform(3, 5) * ppm)))
    place(img, h / 2, w / 2, inked(rng, small[..., 0], ppm, 0.8, 0.4), inks[0], "multiply")
    if rng.uniform() < 0.3:
        place(img, h * 0.2, w * rng.uniform(0.1, 0.3), arrows_mark(rng, ppm), inks[0], "multiply")
    if rng.uniform() < 0.3:
        place(img, h * 0.85, w * rng.uniform(0.7, 0.9), recycle_mark(rng, ppm), inks[0], "multiply")
    if rng.uniform() < 0.3:  # a white shipping label
        col, a = shipping_label(rng, ppm)
        place(img, h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7), a, col, "over", cover)


def paint_panel(img, rng, style, pal, board: Board | None = None, px_per_mm: float = 2.0,
                primary: bool = False, cover: np.ndarray | None = None, reuse_p: float = 0.4,
                wear: float = 0.0):
    """Paint one panel (h, w, 3) float image in place with ``style``.

    board: the SKU's board for kraft/shipping styles (drawn if None);
    px_per_mm: texture resolution (marks have true physical sizes);
    primary: the panel that gets the shipping label (``shipping`` style);
    cover: optional (h, w) float map filled with the opaque label coverage;
    reuse_p: probability that a ``shipping`` panel shows an earlier trip (old
    label remains, tape ghosts, crossed-out marker);
    wear: handling wear of board styles in [0, 1] (:func:`handling_wear`, painted
    over the marks; 0 paints none and draws nothing)."""
    h, w = img.shape[:2]
    s = min(h, w)
    if cover is None:
        cover = np.zeros((h, w), np.float32)
    if style in BOARD_STYLES:
        board = board if board is not None else draw_board(rng)
        kraft_board(img, rng, board, px_per_mm)
        if style == "shipping":
            shipping_marks(img, rng, px_per_mm, primary, bool(rng.uniform() < reuse_p), cover)
        else:
            stock_print(img, rng, pal, px_per_mm, cover)
        handling_wear(img, rng, px_per_mm, wear, cover)
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
    paint_panel(img, rng, style, pal, primary=True)
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


class Atlas(NamedTuple):
    """A painted texture atlas.

    image: (H, W, 3) uint8 sRGB base colour; rects: (u0, v0, u1, v1) per panel;
    normal: (H, W, 3) uint8 tangent-space normal map in the same layout (None
    when no surface relief was asked for); px_per_mm: atlas resolution."""

    image: np.ndarray
    rects: list
    normal: np.ndarray | None
    px_per_mm: float


#: relief of each surface kind: what the normal map shows
SURFACES: tuple[str, ...] = ("corrugated", "paper", "film", "bubble")


def paint_atlas(rng: np.random.Generator, panels_mm: list[tuple[float, float]], style: str,
                styles: list[str] | None = None, px_per_mm: float = 2.0, max_px: int = 1024,
                palette: np.ndarray | None = None):
    """Texture atlas holding one panel per printed surface, at true aspect ratio.

    panels_mm: (width_mm, height_mm) of each panel as printed (width along u)
    styles: optional per-panel style overriding ``style``
    Returns (image (H, W, 3) uint8, rects: list of (u0, v0, u1, v1)). The image
    is the one :func:`paint_atlas_maps` paints for the same rng state.
    """
    a = paint_atlas_maps(rng, panels_mm, style, styles=styles, px_per_mm=px_per_mm, max_px=max_px,
                         palette=palette, surface=None)
    return a.image, a.rects


def paint_atlas_maps(rng: np.random.Generator, panels_mm: list[tuple[float, float]], style: str,
                     styles: list[str] | None = None, px_per_mm: float = 2.0, max_px: int = 1024,
                     palette: np.ndarray | None = None, surface: str | None = "corrugated",
                     primary: int | None = None, board: Board | None = None, reuse_p: float = 0.4,
                     wear: float = 0.0) -> Atlas:
    """:func:`paint_atlas` plus a normal map of the surface relief, in one :class:`Atlas`.

    surface: ``corrugated`` (liner wash-boarding over flutes that run along v,
        i.e. up the printed panel, plus fibre), ``paper`` (fibre), ``film``
        (soft wrinkles), ``bubble`` (a padded envelope's bubble lining showing
        through), or None (no normal map).
    primary: index of the panel that carries the shipping label (``shipping``
        style); default: a panel drawn with probability proportional to area.
    board: the SKU's board (kraft/shipping styles); drawn from rng if None.
    reuse_p: per-panel probability of the marks of an earlier trip (``shipping``).
    wear: handling wear of board panels in [0, 1] (frayed edges, worn corners,
        scuffs: :func:`handling_wear`); each panel's borders are taken as box edges.
    The colour image uses the rng first, exactly as :func:`paint_atlas` does;
    the normal map draws after it.
    """
    if style not in STYLES:
        raise ValueError(f"unknown artwork style {style!r}; expected one of {list(STYLES)}")
    if surface is not None and surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; expected one of {list(SURFACES)} or None")
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
    panel_styles = [(styles[i] if styles else style) for i in range(len(sizes))]
    if any(s in BOARD_STYLES for s in panel_styles) and board is None:
        board = draw_board(rng)
    if "shipping" in panel_styles and primary is None:
        areas = np.array([h * w * (st == "shipping") for (h, w), st in zip(sizes, panel_styles)], np.float64)
        primary = int(rng.choice(len(sizes), p=areas / areas.sum()))
    img = np.zeros((H, W, 3), np.float32)
    img[:] = pal[-1]
    cover = np.zeros((H, W), np.float32)
    rects = []
    for i, ((y, x), (h, w)) in enumerate(zip(pos, sizes)):
        paint_panel(img[y:y + h, x:x + w], rng, panel_styles[i], pal, board=board, px_per_mm=scale, reuse_p=reuse_p, wear=wear,
                    primary=(i == primary), cover=cover[y:y + h, x:x + w])
        # half-pixel inset so bilinear sampling never bleeds across panels
        rects.append(((x + 0.5) / W, 1 - (y + h - 0.5) / H, (x + w - 0.5) / W, 1 - (y + 0.5) / H))
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    normal = None
    if surface is not None:
        normal = paint_relief(rng, pos, sizes, (H, W), scale, surface, board, cover)
    return Atlas(image, rects, normal, float(scale))


def paint_relief(rng: np.random.Generator, pos, sizes, shape: tuple[int, int], px_per_mm: float,
                 surface: str, board: Board | None, cover: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 normal map of the atlas: per panel a height field in mm
    (see :func:`paint_atlas_maps`), damped under opaque labels (``cover``),
    flat between panels."""

    H, W = shape
    ppm = float(px_per_mm)
    hgt = np.zeros((H, W), np.float32)
    for (y, x), (h, w) in zip(pos, sizes):
        if surface == "corrugated":
            pitch, fh = FLUTES[board.flute if board is not None else "C"]
            amp = WASHBOARD * fh * min(1.0, (pitch * ppm / 6.0) ** 2)  # damp flutes the atlas cannot resolve
            p = flute_height(h, w, ppm, pitch, amp) + fibre_height(rng, h, w, ppm, 0.008)
        elif surface == "paper":
            p = fibre_height(rng, h, w, ppm, 0.01)
        elif surface == "film":
            p = (0.35 * smooth_noise(rng, h, w, (3 * ppm, 14 * ppm)) + 0.2 * smooth_noise(rng, h, w, 8 * ppm)
                 + fibre_height(rng, h, w, ppm, 0.004) + crease_height(rng, h, w, ppm))
        else:  # bubble lining seen through the envelope's paper
            # the paper bridges the bubbles' rims: soft domes, not cliffs (at
            # grazing light the sharp rims read as a saw-tooth along the edges)
            dome = ndimage.gaussian_filter(bubble_height(h, w, ppm, 10.0), 0.7 * ppm)
            p = 0.5 * dome + fibre_height(rng, h, w, ppm, 0.012)
        hgt[y:y + h, x:x + w] = p
    n = normals_from_height(hgt, ppm)
    # a paper label bridges the relief beneath it: keep a third of the slope
    n[..., :2] *= (1 - 0.66 * cover)[..., None]
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    out = encode_normals(n)
    return out


def crease_height(rng: np.random.Generator, h: int, w: int, px_per_mm: float,
                  per_cm2: float = 0.04) -> np.ndarray:
    """(h, w) float32 height in mm of the fine creases of handled film: straight
    tent ridges and valleys (about ``per_cm2`` per cm^2), 8-60 mm long, 0.6-2 mm
    half width, 0.08-0.3 mm high, tapered at their ends; most follow one of two
    directions (a bag is folded and pressed along a few lines), the rest random."""
    ppm = float(px_per_mm)
    out = np.zeros((h, w), np.float32)
    n = int(rng.poisson(per_cm2 * h * w / (10 * ppm) ** 2))
    dirs = rng.uniform(0, np.pi, 2)
    for _ in range(n):
        th = dirs[int(rng.integers(0, 2))] + rng.normal(0, 0.25) if rng.uniform() < 0.7 else rng.uniform(0, np.pi)
        half = rng.uniform(4, 30) * ppm
        sig = rng.uniform(0.6, 2.0) * ppm
        amp = rng.uniform(0.08, 0.3) * (1 if rng.uniform() < 0.6 else -1)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        d = np.array([np.sin(th), np.cos(th)])
        ext = np.abs(d) * half + sig
        y0, y1 = int(max(0, cy - ext[0])), int(min(h, cy + ext[0] + 1))
        x0, x1 = int(max(0, cx - ext[1])), int(min(w, cx + ext[1] + 1))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = (yy - cy) * d[0] + (xx - cx) * d[1]
        v = -(yy - cy) * d[1] + (xx - cx) * d[0]
        out[y0:y1, x0:x1] += amp * np.clip(1 - np.abs(v) / sig, 0, None) * np.clip(1 - (u / half) ** 2, 0, None)
    return out


def bubble_height(h: int, w: int, px_per_mm: float, pitch_mm: float) -> np.ndarray:
    """(h, w) float32 height in mm of a hex grid of domed bubbles ``pitch_mm`` apart."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / px_per_mm
    ry = pitch_mm * np.sqrt(3)
    d = np.full((h, w), np.inf, np.float32)
    for oy, ox in ((0.0, 0.0), (ry / 2, pitch_mm / 2)):
        dy = (yy - oy + ry / 2) % ry - ry / 2
        dx = (xx - ox + pitch_mm / 2) % pitch_mm - pitch_mm / 2
        d = np.minimum(d, np.hypot(dx, dy))
    rad = 0.45 * pitch_mm
    return (np.sqrt(np.clip(rad * rad - d * d, 0, None)) * 0.5).astype(np.float32)
