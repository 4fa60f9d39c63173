"""Surface relief as tangent-space normal maps, and small tiling material textures.

Two kinds of maps:

- **atlas maps** follow a product's artwork atlas (same size, same uv layout):
  :func:`flute_height` / :func:`fibre_height` give a height field per panel in
  millimetres, :func:`normals_from_height` turns it into unit normals. Because
  they share the artwork's uv, a damage op that moves vertices (uv moves with
  them) keeps relief and print aligned.
- **tiles** (:func:`tile`) are seamless square textures for materials without
  artwork (tape, the exposed fluted core, the inner liner, mailer film): the
  renderer maps them by projecting face positions, ``tile_mm`` per repeat.

Normal maps are encoded as glTF/pyrender expect: RGB = (n + 1) / 2 in tangent
space, x along +u (image columns), y along +v (image rows bottom -> top), z out
of the surface. Height fields are in mm; pixel pitch is given in px per mm.
Tiles are constant assets: each is drawn from its own fixed seed, so every
product shares them and nothing here consumes a caller's rng.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

#: flute profiles (pitch mm, height mm): C flute 7.9 / 3.6, B flute 6.3 / 2.5,
#: E flute 3.3 / 1.2 (FEFCO). The liner only shows a faint wash-boarding of
#: the flutes below it: the relief amplitude on the liner is a fraction of that.
FLUTES = {"C": (7.9, 3.6), "B": (6.3, 2.5), "E": (3.3, 1.2)}
#: wash-boarding of the liner: peak-to-peak relief as a fraction of flute height
WASHBOARD = 0.035


def periodic_noise(rng: np.random.Generator, h: int, w: int, sigma_px: tuple[float, float]) -> np.ndarray:
    """(h, w) float32 zero-mean, unit-std Gaussian-filtered white noise that
    tiles seamlessly (wrap-around filter). sigma_px: (rows, cols) blur."""
    z = rng.standard_normal((h, w)).astype(np.float32)
    z = ndimage.gaussian_filter(z, sigma=sigma_px, mode="wrap")
    return (z - z.mean()) / max(float(z.std()), 1e-12)


def smooth_noise(rng: np.random.Generator, h: int, w: int, sigma_px: tuple[float, float] | float,
                 max_work: int = 256) -> np.ndarray:
    """(h, w) float32 zero-mean, unit-std noise with features about ``sigma_px``
    (rows, cols) pixels wide. Large blurs are done on a reduced grid (at most
    ``max_work`` px per side when the blur allows) and upsampled bilinearly, so
    the cost stays near constant."""
    sy, sx = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    f = max(1.0, min(sy, sx) / 2.0, max(h, w) / max_work if min(sy, sx) > 4 else 1.0)
    gh, gw = max(4, int(np.ceil(h / f))), max(4, int(np.ceil(w / f)))
    z = rng.standard_normal((gh, gw)).astype(np.float32)
    z = ndimage.gaussian_filter(z, sigma=(sy / f, sx / f), mode="reflect")
    if (gh, gw) != (h, w):
        z = ndimage.zoom(z, (h / gh, w / gw), order=1, grid_mode=False)
        z = np.pad(z, ((0, max(0, h - z.shape[0])), (0, max(0, w - z.shape[1]))), mode="edge")[:h, :w]
    return (z - z.mean()) / max(float(z.std()), 1e-12)


def flute_profile(x_mm: np.ndarray, pitch_mm: float, phase: float = 0.0) -> np.ndarray:
    """Liner height over the flutes, in [-0.5, 0.5] (times the relief amplitude):
    a raised cosine whose crests are broader than its troughs, as a liner drapes
    over flute tips and sags between them."""
    c = np.cos(2 * np.pi * x_mm / pitch_mm + phase)
    return 0.5 * np.sign(c) * np.abs(c) ** 0.6


def flute_height(h: int, w: int, px_per_mm: float, pitch_mm: float, amp_mm: float, phase: float = 0.0,
                 along: str = "v") -> np.ndarray:
    """(h, w) float32 height in mm of a liner over flutes that run along image
    ``along`` ("v": flutes run up the image, the ridges repeat along u)."""
    if along not in ("u", "v"):
        raise ValueError(f"flute direction must be 'u' or 'v', got {along!r}")
    n = w if along == "v" else h
    x = (np.arange(n, dtype=np.float64) + 0.5) / px_per_mm
    prof = (amp_mm * flute_profile(x, pitch_mm, phase)).astype(np.float32)
    return np.broadcast_to(prof[None, :] if along == "v" else prof[:, None], (h, w)).copy()


def fibre_height(rng: np.random.Generator, h: int, w: int, px_per_mm: float, amp_mm: float = 0.01,
                 periodic: bool = False) -> np.ndarray:
    """(h, w) float32 height in mm of paper fibre and felt: streaks about 2 mm
    long along u (the machine direction of a liner) plus a fine isotropic grain.
    periodic: tile seamlessly (for tiles)."""
    sig = (0.25 * px_per_mm + 0.3, 1.0 * px_per_mm + 0.3)
    if periodic:
        streak, grain = periodic_noise(rng, h, w, sig), periodic_noise(rng, h, w, (0.6, 0.6))
    else:
        streak, grain = smooth_noise(rng, h, w, sig), smooth_noise(rng, h, w, 0.6)
    return (amp_mm * (0.7 * streak + 0.5 * grain)).astype(np.float32)


def normals_from_height(height_mm: np.ndarray, px_per_mm: float) -> np.ndarray:
    """(h, w, 3) float32 unit tangent-space normals of a height field (h, w) in mm
    whose pixels are 1 / px_per_mm mm apart. Row 0 is the top of the image
    (largest v), so +v is towards row 0."""
    hgt = np.asarray(height_mm, np.float32)
    dhdx = np.gradient(hgt, axis=1) * px_per_mm            # dh/du in mm per mm
    dhdv = -np.gradient(hgt, axis=0) * px_per_mm           # rows run against +v
    n = np.stack([-dhdx, -dhdv, np.ones_like(hgt)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def encode_normals(n: np.ndarray) -> np.ndarray:
    """(h, w, 3) unit normals -> (h, w, 3) uint8 RGB = (n + 1) / 2 * 255."""
    return np.clip((np.asarray(n, np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def decode_normals(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (h, w, 3) float32 normals (unit to within 8-bit rounding)."""
    return np.asarray(rgb, np.float32) / 127.5 - 1.0


FLAT_NORMAL = np.array([128, 128, 255], np.uint8)


# -- tiles ---------------------------------------------------------------------

#: tile name -> (tile size mm, what it is). The renderer repeats a tile every
#: ``tile_mm`` along the projected face coordinates.
TILES = {
    "core": (24.0, "exposed fluted core: light wavy flute stripes, 8 mm pitch, with glue lines"),
    "inner_liner": (64.0, "inner liner: light, greyer kraft with fibre streaks and faint flutes"),
    "tape": (96.0, "packing tape: long shallow wrinkles across the strip and air pockets"),
    "film": (160.0, "poly film: soft wrinkles and creases"),
    "bubbles": (48.0, "padded envelope lining: a hex grid of 10 mm air bubbles"),
    "paper": (48.0, "paper: fibre streaks and felt"),
    "crimp": (16.0, "heat-seal crimp of a pouch: a diamond knurl of 0.8 mm pitch pressed into the laminate"),
}
TILE_PX = 256


def _tile_rng(name: str) -> np.random.Generator:
    return np.random.default_rng(list(name.encode()))  # a fixed seed per tile (hash() is salted)


@functools.lru_cache(maxsize=None)
def tile(name: str) -> tuple[np.ndarray | None, np.ndarray]:
    """(colour (TILE_PX, TILE_PX, 3) uint8 sRGB multiplier or None, normal
    (TILE_PX, TILE_PX, 3) uint8) of a seamless material tile (see :data:`TILES`).

    The colour tile multiplies the material's base colour (255 = unchanged)."""
    if name not in TILES:
        raise ValueError(f"unknown surface tile {name!r}; expected one of {sorted(TILES)}")
    rng = _tile_rng(name)
    n = TILE_PX
    size_mm = TILES[name][0]
    ppm = n / size_mm
    x = (np.arange(n) + 0.5) / ppm
    colour = None
    if name == "core":
        # side view of flutes: crests (lit, glued to the liner) and troughs; the
        # pitch divides the tile so it repeats seamlessly
        pitch = size_mm / 3
        ph = 2 * np.pi * x / pitch
        wav = periodic_noise(rng, n, n, (12, 2)) * 0.6
        s = np.cos(ph[None, :] + wav)
        hgt = 0.5 * s
        shade = 0.80 + 0.18 * (0.5 + 0.5 * s) + 0.04 * periodic_noise(rng, n, n, (1, 6))
        glue = np.exp(-((np.abs(((x[None, :] / pitch) % 1.0) - 0.5)) / 0.05) ** 2)  # glue line at each crest
        shade = shade * (1 - 0.08 * glue)
        colour = np.repeat(shade[..., None], 3, axis=2)
        normals = normals_from_height(hgt * 0.6, ppm)
    elif name == "inner_liner":
        hgt = 0.05 * flute_profile(x, size_mm / 8)[None, :] + fibre_height(rng, n, n, ppm, 0.012, periodic=True)
        mott = 0.05 * periodic_noise(rng, n, n, (20, 20)) + 0.03 * periodic_noise(rng, n, n, (0.8, 4))
        colour = np.repeat((1.0 + mott)[..., None], 3, axis=2)
        normals = normals_from_height(hgt, ppm)
    elif name == "tape":
        # shallow wrinkles run across the strip (along v), a few trapped air
        # pockets; periodic noise keeps the tile seamless
        w1 = periodic_noise(rng, n, n, (40, 3))
        pockets = np.clip(periodic_noise(rng, n, n, (6, 6)) - 1.6, 0, None)
        hgt = 0.025 * w1 + 0.05 * pockets
        normals = normals_from_height(hgt, ppm)
    elif name == "film":
        w1 = periodic_noise(rng, n, n, (3, 14))
        w2 = periodic_noise(rng, n, n, (18, 4))
        creases = np.abs(periodic_noise(rng, n, n, (8, 8)))
        hgt = 0.25 * w1 + 0.2 * w2 - 0.25 * np.exp(-creases / 0.15)
        normals = normals_from_height(hgt, ppm)
    elif name == "bubbles":
        # a hex grid stretched to fit the square tile: 4 columns, 4 rows (even, so
        # the alternating row offset wraps), distances taken with wrap-around
        a = size_mm / 4
        yy, xx = np.mgrid[0:n, 0:n] / ppm
        d = np.full((n, n), np.inf)
        for r in range(-1, 6):
            off = (r % 2) * a / 2
            for c in range(-1, 6):
                d = np.minimum(d, np.hypot(xx - (c * a + off), yy - r * a))
        rad = 0.45 * a
        hgt = np.where(d < rad, np.sqrt(np.clip(rad ** 2 - d ** 2, 0, None)), 0.0) * 0.35
        normals = normals_from_height(ndimage.gaussian_filter(hgt, 1.0, mode="wrap"), ppm)
        colour = np.repeat((1.0 - 0.06 * (d > rad))[..., None], 3, axis=2)
    elif name == "crimp":
        # two diagonal ridge sets with a whole number of periods across the tile
        # (seamless); the jaws press unevenly, so the depth wanders
        yy, xx = np.mgrid[0:n, 0:n] / ppm
        k = 2 * np.pi * 14 / size_mm
        ridge = np.abs(np.cos(k * (xx + yy) / 2)) + np.abs(np.cos(k * (xx - yy) / 2))
        depth = 1.0 + 0.25 * periodic_noise(rng, n, n, (10, 10))
        hgt = 0.05 * (ridge - ridge.mean()) * depth
        colour = np.repeat((0.93 + 0.07 * (ridge / 2) + 0.02 * periodic_noise(rng, n, n, (1, 1)))[..., None], 3, axis=2)
        normals = normals_from_height(hgt, ppm)
    else:  # paper
        hgt = fibre_height(rng, n, n, ppm, 0.01, periodic=True)
        colour = np.repeat((1.0 + 0.025 * periodic_noise(rng, n, n, (0.6, 3)))[..., None], 3, axis=2)
        normals = normals_from_height(hgt, ppm)
    c8 = None if colour is None else (np.clip(colour, 0, 1) * 255 + 0.5).astype(np.uint8)
    return c8, encode_normals(normals)
