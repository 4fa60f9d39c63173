"""Sensor models: what each booth camera does to the perfect render.

Depth models (metres in, metres out, 0 = no return):

- ``structured_light`` (Kinect v1 class): axial noise
  sigma_z = 0.0012 + 0.0019 (z - 0.4)^2 plus the angle term of Nguyen, Izadi &
  Lovell (2012) beyond 60 degrees, lateral noise, disparity quantised to 1/8 px,
  no return where the projector is shadowed.
- ``active_stereo`` (RealSense D4xx class): RMS error z^2 s / (f_px B) with
  sub-pixel accuracy s, no return where the two imagers disagree (occlusion
  between them) or outside the min/max range.
- ``tof`` (Azure Kinect class): sigma = 0.5 mm + 1 mm per metre beyond 0.5 m,
  flying pixels at depth edges, no return on very dark surfaces and at grazing
  angles.

RGB model: Poisson-Gaussian noise in linear space (shot noise from the full-well
capacity, Gaussian read noise), vignetting, exposure and white-balance jitter,
optional motion blur and JPEG. Lens distortion is geometric and exact for labels:
the renderer applies it (render wide, remap).

Labels are never touched here. Every random draw comes from the rng passed in,
and every drawn value is returned so it lands in the capture metadata.
"""
from __future__ import annotations

import functools
import io
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from simulator.config.sensors import DepthModel, RGBModel, SensorModel
from simulator.core.seeds import rng as seeded_rng


# -- noise formulas (one place each; tests and the booth designer use them) -------
def sigma_structured_light(z: np.ndarray, theta: np.ndarray | float = 0.0) -> np.ndarray:
    """Kinect v1 axial noise, metres (Nguyen et al. 2012): 0.0012 + 0.0019 (z-0.4)^2,
    plus 0.0001/sqrt(z) * theta^2 / (pi/2 - theta)^2 (theta in radians) which
    matters beyond about 60 degrees."""
    z = np.asarray(z, dtype=np.float64)
    theta = np.clip(np.asarray(theta, dtype=np.float64), 0.0, np.radians(89.0))
    return 0.0012 + 0.0019 * (z - 0.4) ** 2 + 0.0001 / np.sqrt(np.maximum(z, 1e-6)) * theta ** 2 / (np.pi / 2 - theta) ** 2


def sigma_active_stereo(z: np.ndarray, f_px: float, baseline_m: float, subpixel: float = 0.08) -> np.ndarray:
    """RealSense D4xx RMS depth error, metres: z^2 s / (f_px B)."""
    z = np.asarray(z, dtype=np.float64)
    return z ** 2 * subpixel / (f_px * baseline_m)


def sigma_tof(z: np.ndarray) -> np.ndarray:
    """Azure Kinect class ToF noise, metres: 0.5 mm + 1 mm per metre beyond 0.5 m."""
    z = np.asarray(z, dtype=np.float64)
    return 0.0005 + 0.001 * np.maximum(z - 0.5, 0.0)


def sigma_z(model: DepthModel, z: np.ndarray, f_px: float) -> np.ndarray:
    """Axial noise sigma of a model at depth z (frontal surface), metres."""
    if model.model == "structured_light":
        return sigma_structured_light(z)
    if model.model == "active_stereo":
        return sigma_active_stereo(z, f_px, model.baseline_m, model.subpixel)
    if model.model == "tof":
        return sigma_tof(z)
    return np.zeros_like(np.asarray(z, dtype=np.float64))


# -- geometry helpers ---------------------------------------------------------------
def _pixel_rays(K: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, w) and (h, 1) float32 normalised image coordinates (u - cx) / fx and
    (v - cy) / fy of a camera, cached per (K, size): cameras of one device model
    share them."""
    return _pixel_rays_cached(tuple(float(x) for x in np.asarray(K, dtype=np.float64)[:2].ravel()), h, w)


@functools.lru_cache(maxsize=32)
def _pixel_rays_cached(k: tuple, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    fx, _, cx, _, fy, cy = k
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    a = (u - np.float32(cx)) / np.float32(fx)
    b = (v - np.float32(cy)) / np.float32(fy)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def _grad(P: np.ndarray, axis: int) -> np.ndarray:
    """np.gradient of a float32 image along ``axis`` (unit spacing: central
    differences inside, one-sided at the border), the same float32 values."""
    out = np.empty_like(P)
    if axis == 1:
        np.subtract(P[:, 2:], P[:, :-2], out=out[:, 1:-1])
        out[:, 1:-1] *= np.float32(0.5)  # exact: the same as numpy's division by 2
        out[:, 0] = P[:, 1] - P[:, 0]
        out[:, -1] = P[:, -1] - P[:, -2]
    else:
        np.subtract(P[2:], P[:-2], out=out[1:-1])
        out[1:-1] *= np.float32(0.5)
        out[0] = P[1] - P[0]
        out[-1] = P[-1] - P[-2]
    return out


def _points_normals(depth_m: np.ndarray, K: np.ndarray):
    """Camera-frame points and unit normals of a z-depth image as per-component
    (h, w) float32 images (X, Y, Z), (nx, ny, nz); normals not yet turned to
    face the camera. Whole-image array passes only."""
    h, w = depth_m.shape
    a, b = _pixel_rays(K, h, w)
    z = depth_m.astype(np.float32)
    X, Y = a * z, b * z
    dux, duy, duz = _grad(X, 1), _grad(Y, 1), _grad(z, 1)
    dvx, dvy, dvz = _grad(X, 0), _grad(Y, 0), _grad(z, 0)
    # n = dv x du, one component at a time (what np.cross computes)
    nx = dvy * duz
    nx -= dvz * duy
    ny = dvz * dux
    ny -= dvx * duz
    nz = dvx * duy
    nz -= dvy * dux
    del dux, duy, duz, dvx, dvy, dvz
    norm = np.sqrt(_sum_sq(nx, ny, nz))
    d = np.maximum(norm, np.float32(1e-12))
    ok = norm > 0
    for c in (nx, ny, nz):
        np.divide(c, d, out=c)
        c[~ok] = 0.0
    return (X, Y, z), (nx, ny, nz)


def _sum_sq(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x^2 + y^2 + z^2 in the order numpy's last-axis sum of a stacked (h, w, 3)
    array adds them (so results match ``np.linalg.norm(..., axis=-1)`` bit for bit)."""
    s = x * x
    s += y * y
    s += z * z
    return s


def normals_from_depth(depth_m: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel camera-frame points (h, w, 3) and unit normals (h, w, 3) from a
    z-depth image (central differences; zero where undefined)."""
    (X, Y, z), (nx, ny, nz) = _points_normals(depth_m, K)
    P = np.stack([X, Y, z], axis=-1)
    n = np.stack([nx, ny, nz], axis=-1)
    n = np.where(n[..., 2:3] > 0, -n, n)  # face the camera
    return P, n


def incidence_angle(depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(h, w) float32 angle between the viewing ray and the surface normal, radians."""
    return np.arccos(_incidence_cos(depth_m, K))


def _incidence_cos(depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(h, w) float32 |cos| of the incidence angle, clipped to [0, 1]. The normal's
    sign does not matter under the absolute value, so it is never flipped."""
    (X, Y, z), (nx, ny, nz) = _points_normals(depth_m, K)
    r = np.maximum(np.sqrt(_sum_sq(X, Y, z)), np.float32(1e-12))
    c = (X / r) * nx
    c += (Y / r) * ny
    c += (z / r) * nz
    np.abs(c, out=c)
    return np.clip(c, 0.0, 1.0, out=c)


def occluded_from_offset_view(depth_m: np.ndarray, f_px: float, baseline_m: float) -> np.ndarray:
    """(h, w) bool: pixels hidden from a second viewpoint offset by ``baseline_m``
    along the camera's +x axis (a projector or the second stereo imager).

    A point at column u and depth z appears at column u - f B / z in the second
    view; scanning each row from the right, a pixel is hidden when a nearer
    surface already claimed a column at or left of it."""
    z = depth_m.astype(np.float64)
    h, w = z.shape
    u = np.arange(w, dtype=np.float64)[None, :]
    shift = np.where(z > 0, f_px * baseline_m / np.maximum(z, 1e-9), 0.0)
    up = u - shift
    rev = up[:, ::-1]
    runmin = np.minimum.accumulate(rev, axis=1)
    hidden_rev = rev > runmin + 0.5  # half a pixel of slack for the surface's own slope
    return hidden_rev[:, ::-1] & (z > 0)


# -- depth models -------------------------------------------------------------------
def apply_depth(model: DepthModel, depth_m: np.ndarray, K: np.ndarray, rng: np.random.Generator,
                rgb: np.ndarray | None = None,
                cos_incidence: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Noisy depth (h, w) float32 metres, 0 = no return, and stats for the metadata.

    depth_m: (h, w) clean z-depth, metres, 0 = no return; K: (3, 3) intrinsics;
    rgb: (h, w, 3) uint8 sRGB colour of the same view (ToF dark dropouts only);
    cos_incidence: (h, w)
    float32 |cos| of the incidence angle of this very depth image when already
    computed (a depth-only camera's IR shading), else computed here.
    Whole-image array passes only (no per-pixel Python)."""
    if model.model == "none":
        return depth_m.astype(np.float32), {"model": "none"}
    z = depth_m.astype(np.float64)
    valid = z > 0
    f = float(K[0, 0])
    theta = np.arccos(_incidence_cos(z, K) if cos_incidence is None else cos_incidence)
    invalid = ~valid
    keep = None  # returns exempt from the grazing test (ToF flying pixels)
    if model.model == "structured_light":
        # the published sigma is the total error, disparity rounding included:
        # draw the rest so that noise + rounding has that sigma
        sig = sigma_structured_light(z, theta)
        q = z ** 2 / (f * model.baseline_m) * model.disparity_step_px
        sig = np.sqrt(np.maximum(sig ** 2 - q ** 2 / 12.0, 0.0))
        out = _add_noise(z, rng.standard_normal(z.shape), sig)
        out = _lateral(out, model.lateral_px, rng)
        # disparity quantisation: d = f B / z rounded to 1/8 px
        d = f * model.baseline_m / np.maximum(out, 1e-6)
        d = np.round(d / model.disparity_step_px) * model.disparity_step_px
        out = np.where(d > 0, f * model.baseline_m / np.maximum(d, 1e-9), 0.0)
        invalid |= occluded_from_offset_view(z, f, model.baseline_m)
    elif model.model == "active_stereo":
        sig = np.square(z)  # sigma_active_stereo, in place: z^2 s / (f B)
        sig *= model.subpixel
        sig /= f * model.baseline_m
        out = _add_noise(z, rng.standard_normal(z.shape), sig)
        out = _lateral(out, model.lateral_px, rng)
        invalid |= occluded_from_offset_view(z, f, model.baseline_m)
    elif model.model == "tof":
        sig = sigma_tof(z)
        out = _add_noise(z, rng.standard_normal(z.shape), sig)
        # flying pixels: at depth edges a return mixes foreground and background
        edge = _depth_edges(z, rel=0.03)
        band = ndimage.binary_dilation(edge, iterations=max(model.flying_px - 1, 0)) if model.flying_px > 1 else edge
        zmax = ndimage.maximum_filter(z, size=3)
        zmin = ndimage.minimum_filter(np.where(valid, z, np.inf), size=3)
        a = rng.uniform(0.0, 1.0, z.shape)
        flying = band & valid & np.isfinite(zmin)
        out = np.where(flying, a * zmin + (1 - a) * zmax, out)
        keep = flying
        if rgb is not None:
            invalid |= _srgb8_to_linear64()[rgb].mean(-1) < model.dark_threshold
    else:
        raise ValueError(f"unknown depth model {model.model!r}")
    grazing = theta > np.radians(model.grazing_deg)
    if keep is not None:
        grazing &= ~keep
    invalid |= grazing
    invalid |= out < model.range_m[0]
    invalid |= out > model.range_m[1]
    out[invalid] = 0.0
    stats = {"model": model.model, "invalid_fraction_of_returns": float((invalid & valid).sum() / max(valid.sum(), 1))}
    return out.astype(np.float32), stats


def _add_noise(z: np.ndarray, noise: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """z + noise * sig as a new array (noise, a drawn field, is left untouched)."""
    out = np.multiply(noise, sig)
    out += z
    return out


def _lateral(z: np.ndarray, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Lateral noise: each pixel takes the depth of a neighbour displaced by
    a Gaussian offset (rounded to whole pixels, clamped at the border)."""
    if sigma_px <= 0:
        return z
    h, w = z.shape
    dy = np.rint(rng.standard_normal((h, w)) * sigma_px).astype(np.intp)
    dx = np.rint(rng.standard_normal((h, w)) * sigma_px).astype(np.intp)
    dy += np.arange(h)[:, None]
    np.clip(dy, 0, h - 1, out=dy)
    dx += np.arange(w)[None, :]
    np.clip(dx, 0, w - 1, out=dx)
    dy *= w
    dy += dx  # flat index of the source pixel
    return np.take(z.reshape(-1), dy)


def _depth_edges(z: np.ndarray, rel: float) -> np.ndarray:
    """Depth discontinuities: second differences (a steep but smooth surface has
    none) above ``rel`` of the depth, on the pixels either side of the jump."""
    d2 = np.zeros_like(z)
    d2[:, 1:-1] = np.abs(z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2])
    d2[1:-1] = np.maximum(d2[1:-1], np.abs(z[2:] - 2 * z[1:-1] + z[:-2]))
    return d2 > rel * np.maximum(z, 1e-6)


# -- RGB model ----------------------------------------------------------------------
def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1), same shape."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values in [0, 1] (clipped to [0, 1] first), same shape."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


_SRGB_TO_LIN = None

_LIN_TO_SRGB_N = 16384


def _luts():
    """uint8 sRGB -> linear float32 (256 entries) and linear -> uint8 sRGB
    (16384 entries: finer than one 8-bit step everywhere)."""
    global _SRGB_TO_LIN, _LIN_TO_SRGB
    if _SRGB_TO_LIN is None:
        _SRGB_TO_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
        x = (np.arange(_LIN_TO_SRGB_N) + 0.5) / _LIN_TO_SRGB_N
        _LIN_TO_SRGB = np.clip(np.rint(linear_to_srgb(x) * 255.0), 0, 255).astype(np.uint8)
    return _SRGB_TO_LIN, _LIN_TO_SRGB


@functools.lru_cache(maxsize=1)
def _srgb8_to_linear64() -> np.ndarray:
    """(256,) float64 linear value of each 8-bit sRGB level (the same numbers as
    ``srgb_to_linear(v / 255.0)`` per pixel, looked up)."""
    t = srgb_to_linear(np.arange(256) / 255.0)
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=8)
def _vignette(h: int, w: int, strength: float) -> np.ndarray:
    """(h, w, 1) float32 relative illumination; cameras of one device model share it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    v = (1.0 - strength * r2).astype(np.float32)[..., None]
    v.setflags(write=False)
    return v


def apply_rgb(model: RGBModel, rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """(h, w, 3) uint8 sRGB -> noisy uint8 sRGB, and the drawn values.

    In linear light: exposure and white-balance gains, vignetting, optional motion
    blur, then photon shot noise (Poisson; drawn as its Gaussian limit, exact to
    well under a grey level above a few dozen electrons) plus Gaussian read noise,
    and back to 8-bit sRGB; optionally a JPEG round trip. Whole-image passes in
    place (no per-pixel Python, few temporaries)."""
    if not model.enabled:
        return rgb, {"enabled": False}
    import cv2

    h, w, _ = rgb.shape
    to_lin, to_srgb = _luts()
    exposure = float(2.0 ** rng.normal(0.0, model.exposure_jitter))
    wb = np.exp(rng.normal(0.0, model.wb_jitter, 3))
    gain = (exposure * wb).astype(np.float32)
    # the gain folded into the sRGB -> linear table: a float32 product either
    # way, the same values as a lookup then a multiply
    table = (to_lin[:, None] * gain[None, :]).reshape(1, 256, 3)
    rgb = np.ascontiguousarray(rgb)
    vig = _vignette(h, w, model.vignetting) if model.vignetting else None
    if model.motion_blur_px > 0:
        lin = cv2.LUT(rgb, table)
        if vig is not None:
            lin *= vig
        length = float(rng.uniform(0, model.motion_blur_px))
        angle = float(rng.uniform(0, np.pi))
        lin = _motion_blur(lin, length, angle).astype(np.float32)
        blur = {"motion_blur_px": length, "motion_blur_angle_rad": angle}
        noise = rng.standard_normal(lin.shape, dtype=np.float32)
        out = _expose(lin, noise, model, to_srgb)
    else:
        blur = {}
        noise = rng.standard_normal((h, w, 3), dtype=np.float32)
        out = np.empty((h, w, 3), np.uint8)
        # bands of rows, each through every step while it is in cache (the steps
        # are per pixel: the same values as whole-image passes, in a fraction of
        # the memory traffic)
        step = max(1, _BAND_PX // max(w, 1))
        for r0 in range(0, h, step):
            r1 = min(h, r0 + step)
            lin = cv2.LUT(rgb[r0:r1], table)
            if vig is not None:
                lin *= vig[r0:r1]
            out[r0:r1] = _expose(lin, noise[r0:r1], model, to_srgb)
    if model.jpeg_quality:

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(model.jpeg_quality))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out, {"enabled": True, "exposure_gain": exposure, "white_balance_gains": wb.tolist(), **blur,
                 "jpeg_quality": model.jpeg_quality}


#: pixels per band of apply_rgb's row-banded passes (x 3 channels x 4 bytes: ~0.8 MB, in L2)
_BAND_PX = 1 << 16


def _expose(lin: np.ndarray, noise: np.ndarray, model: RGBModel, to_srgb: np.ndarray) -> np.ndarray:
    """Linear light (float32, changed in place) -> uint8 sRGB with shot and read
    noise: clip to [0, 1], electrons, + sqrt(e + read^2) x noise, back through
    the linear -> sRGB table (truncation, as the table's bins)."""
    e = np.clip(lin, 0, 1, out=lin)
    e *= np.float32(model.full_well_e)  # electrons
    sd = np.add(e, np.float32(model.read_noise_e ** 2))
    np.sqrt(sd, out=sd)
    sd *= noise
    e += sd  # Gaussian limit of Poisson shot noise, plus read noise
    e *= np.float32(_LIN_TO_SRGB_N / model.full_well_e)
    idx = np.clip(e, 0, _LIN_TO_SRGB_N - 1, out=e).astype(np.uint16)
    return np.take(to_srgb, idx)


def _motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    n = max(int(np.ceil(length)), 1)
    if n <= 1:
        return img
    k = np.zeros((2 * n + 1, 2 * n + 1))
    t = np.linspace(-length / 2, length / 2, 4 * n)
    k[np.rint(n + t * np.sin(angle)).astype(int), np.rint(n + t * np.cos(angle)).astype(int)] = 1
    k /= k.sum()
    return np.stack([ndimage.convolve(img[..., c], k, mode="nearest") for c in range(img.shape[-1])], -1)


# -- draws shared by the frames of one capture --------------------------------------
class SensorDraws:
    """The sensor models' random draws of one capture, per (sensor seed, camera).

    A camera's draws depend only on ``default_rng([sensor_seed, camera index])``,
    its models and its image size, never on the image: the pristine
    counterfactual (same seed) gets the very same noise fields. The first
    :func:`apply_to_frames` with a cache records each draw; a later one with the
    same seed replays them instead of drawing again. Keep one per capture (the
    fields of a 6-camera rig are about 80 MB)."""

    def __init__(self) -> None:
        self._seqs: dict[tuple[int, int], list] = {}

    def rng(self, sensor_seed: int, camera_index: int):
        """The draw source of camera ``camera_index`` for ``sensor_seed``: the first call
        records the draws of ``default_rng([sensor_seed, camera_index])``, later calls
        replay them (RuntimeError if a replayed call differs from the recorded one). Only
        ``normal``, ``standard_normal`` and ``uniform`` may be called."""
        key = (int(sensor_seed), int(camera_index))
        seq = self._seqs.get(key)
        if seq is None:
            seq = self._seqs[key] = []
            return _Recording(seeded_rng(sensor_seed, camera_index), seq)
        return _Replay(seq, key)


_DRAW_METHODS = ("normal", "standard_normal", "uniform")


class _Recording:
    """A Generator's draw methods, each result kept (read-only) in ``seq``."""

    def __init__(self, rng: np.random.Generator, seq: list) -> None:
        self._rng, self._seq = rng, seq

    def __getattr__(self, name):
        if name not in _DRAW_METHODS:
            raise AttributeError(f"sensor draws record only {_DRAW_METHODS}, not {name!r}")

        def draw(*args, **kwargs):
            x = getattr(self._rng, name)(*args, **kwargs)
            if isinstance(x, np.ndarray):
                x.setflags(write=False)  # replayed later: nobody may change it
            self._seq.append((name, args, tuple(sorted(kwargs.items())), x))
            return x

        return draw


class _Replay:
    """Hands out a recorded sequence of draws, checking each call matches."""

    def __init__(self, seq: list, key) -> None:
        self._seq, self._i, self._key = seq, 0, key

    def __getattr__(self, name):
        if name not in _DRAW_METHODS:
            raise AttributeError(f"sensor draws replay only {_DRAW_METHODS}, not {name!r}")

        def draw(*args, **kwargs):
            call = (name, args, tuple(sorted(kwargs.items())))
            if self._i >= len(self._seq) or self._seq[self._i][:3] != call:
                raise RuntimeError(f"sensor draws {self._key}: call {self._i} {call} differs from the recorded one; "
                                   "a SensorDraws cache serves frames of one capture with the same sizes and models")
            x = self._seq[self._i][3]
            self._i += 1
            return x

        return draw


def apply_to_frames(rig, frames: dict, sensor_seed: int,
                    draws_cache: SensorDraws | None = None) -> tuple[dict, dict[str, Any]]:
    """Apply every camera's sensor model to its clean frame.

    Camera c (in rig order) draws from ``default_rng([sensor_seed, c])``, so a
    pristine counterfactual rendered with the same ``sensor_seed`` gets the same
    noise realisation. Returns (new frames, camera name -> drawn values); labels
    are passed through untouched and the clean depth is kept as ``depth_gt``.
    draws_cache: a :class:`SensorDraws` shared by the frame sets of one capture
    (damaged and pristine): the second set reuses the first one's draws."""
    out, draws = {}, {}
    for ci, cam in enumerate(rig.cameras):
        fr = frames.get(cam.name)
        if fr is None:
            continue
        sm = cam.sensor or SensorModel()
        rng = draws_cache.rng(sensor_seed, ci) if draws_cache is not None else seeded_rng(sensor_seed, ci)
        rgb, rgb_stats = apply_rgb(sm.rgb, fr.rgb, rng)
        depth, depth_stats = apply_depth(sm.depth, fr.depth_m, cam.K, rng, rgb=fr.rgb,
                                         cos_incidence=fr.incidence_cos)
        changed_depth = sm.depth.model != "none"
        out[cam.name] = replace(fr, rgb=rgb, depth_m=depth, depth_gt=fr.depth_m if changed_depth else None,
                                reflectance=None, incidence_cos=None)
        draws[cam.name] = {"preset": sm.preset, "rgb": rgb_stats, "depth": depth_stats}
    return out, draws
