"""Depth-noise level of a booth camera: ``camera_sigma_z(camera, z)``, the
standard deviation of its z reading at range z. The booth designer (``damagesim
rig report``) uses it to decide whether a damage's depth change stands out of the
noise. The formulas themselves live in :mod:`simulator.render.sensors` (one place each,
shared with the full sensor simulation); this module only picks one per camera:

1. the camera's own sensor model (``camera.sensor.depth``, from a device preset
   or a ``sensor:`` block in the rig) when it has one;
2. else by the camera's ``device`` string (case-insensitive), :func:`sigma_z`:

- contains ``tof``: time of flight, sigma = 0.5 mm + 1 mm per metre beyond 0.5 m;
- contains ``structured`` or ``sl_``: structured light,
  sigma = 1.2 mm + 1.9 mm/m^2 * (z - 0.4 m)^2 (a Kinect-v1-class fit);
- anything else (``active_stereo...``, ``generic``): active stereo,
  sigma = z^2 * s / (f_px * B), subpixel disparity noise s = 0.08 px, baseline B
  from :data:`STEREO_BASELINES_M` when the device string contains one of its keys,
  else :data:`DEFAULT_BASELINE_M` (50 mm, a RealSense-D435-class unit).

All figures are 1-sigma, meters. They describe typical datasheet-level behaviour
of a device class, not any particular unit.
"""
from __future__ import annotations

import numpy as np

from simulator.render.sensors import sigma_active_stereo, sigma_structured_light, sigma_tof
from simulator.render.sensors import sigma_z as sensor_sigma_z

#: active-stereo baseline (meters) by a substring of the device string; first match wins
STEREO_BASELINES_M: dict[str, float] = {
    "d405": 0.018,
    "d415": 0.055,
    "d435": 0.050,
    "d455": 0.095,
    "active_stereo_848": 0.050,
}
DEFAULT_BASELINE_M = 0.050
#: active-stereo subpixel disparity noise, pixels (1 sigma)
STEREO_SUBPIXEL_PX = 0.08

FAMILIES = ("tof", "structured_light", "active_stereo")


def family(device: str) -> str:
    """Noise-model family of a device string: one of :data:`FAMILIES`."""
    d = device.lower()
    if "tof" in d:
        return "tof"
    if "structured" in d or "sl_" in d:
        return "structured_light"
    return "active_stereo"


def stereo_baseline_m(device: str) -> float:
    """Baseline (meters) of an active-stereo device string."""
    d = device.lower()
    for key, b in STEREO_BASELINES_M.items():
        if key in d:
            return b
    return DEFAULT_BASELINE_M


def sigma_z(z_m, device: str, f_px: float) -> np.ndarray:
    """Depth noise, 1 sigma, meters, of a camera of this ``device`` at range ``z_m``.

    z_m: scalar or array, meters (z-depth along the optical axis)
    device: the rig camera's ``device`` string (picks the model, see module doc)
    f_px: focal length in pixels (used by active stereo only)
    Returns an array shaped like ``z_m`` (float64, meters)."""
    z = np.asarray(z_m, dtype=np.float64)
    fam = family(device)
    if fam == "tof":
        return sigma_tof(z)
    if fam == "structured_light":
        return sigma_structured_light(z)
    return sigma_active_stereo(z, float(f_px), stereo_baseline_m(device), STEREO_SUBPIXEL_PX)


def camera_model(camera) -> str:
    """Which noise model :func:`camera_sigma_z` uses for a camera, e.g.
    ``active_stereo (sensor preset realsense_d435, B 50 mm)`` or ``tof (device string)``."""
    depth = getattr(getattr(camera, "sensor", None), "depth", None)
    if depth is not None and depth.model != "none":
        extra = f", B {depth.baseline_m * 1000:.0f} mm" if depth.model != "tof" else ""
        return f"{depth.model} (sensor {camera.sensor.preset}{extra})"
    fam = family(camera.device)
    extra = f", B {stereo_baseline_m(camera.device) * 1000:.0f} mm" if fam == "active_stereo" else ""
    return f"{fam} (device {camera.device!r}{extra})"


def camera_sigma_z(camera, z_m) -> np.ndarray:
    """Depth sigma (meters, shaped like ``z_m``) of a :class:`simulator.config.rig.Camera`:
    its sensor model's when it has one, else :func:`sigma_z` by its ``device`` string."""
    depth = getattr(getattr(camera, "sensor", None), "depth", None)
    if depth is not None and depth.model != "none":
        return sensor_sigma_z(depth, np.asarray(z_m, dtype=np.float64), float(camera.K[0, 0]))
    return sigma_z(z_m, camera.device, float(camera.K[0, 0]))
