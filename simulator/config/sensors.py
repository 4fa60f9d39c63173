"""Sensor models as configuration: the depth and RGB model of each booth camera, its device preset (assets/sensors/presets.yaml) and the rig YAML that overrides it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from simulator.core.errors import ConfigError
from simulator.core.paths import assets_dir
from simulator.core.yamlio import check_keys, integer, load_yaml, number

DEPTH_MODELS = ("none", "structured_light", "active_stereo", "tof")


@dataclass(frozen=True)
class DepthModel:
    """Parameters of a depth sensor model (units: metres, pixels, degrees).

    model: one of DEPTH_MODELS; baseline_m: projector-camera (structured light)
    or left-right imager (stereo) distance; subpixel: stereo matching accuracy, px;
    disparity_step_px: disparity quantisation (structured light: 1/8 px);
    lateral_px: lateral (xy) noise sigma, px; range_m: valid (min, max) depth;
    dark_threshold: ToF: linear reflectance below which there is no return;
    grazing_deg: no return beyond this incidence angle; flying_px: ToF
    flying-pixel band width at depth edges."""

    model: str = "none"
    baseline_m: float = 0.05
    subpixel: float = 0.08
    disparity_step_px: float = 0.125
    lateral_px: float = 0.5
    range_m: tuple[float, float] = (0.1, 10.0)
    dark_threshold: float = 0.02
    grazing_deg: float = 80.0
    flying_px: int = 1


@dataclass(frozen=True)
class RGBModel:
    """full_well_e: electrons at saturation (shot noise); read_noise_e: Gaussian
    read noise, electrons; vignetting: relative fall-off at the image corner;
    exposure_jitter: sigma of log2 exposure; wb_jitter: sigma of per-channel
    gains; motion_blur_px: max blur length (0 = off); jpeg_quality: 0 = PNG."""

    enabled: bool = False
    full_well_e: float = 10000.0
    read_noise_e: float = 5.0
    vignetting: float = 0.25
    exposure_jitter: float = 0.1
    wb_jitter: float = 0.03
    motion_blur_px: float = 0.0
    jpeg_quality: int = 0


@dataclass(frozen=True)
class SensorModel:
    """A camera's sensor: its depth model and RGB model; ``preset`` names the
    device it came from (assets/sensors/presets.yaml)."""

    preset: str = "ideal"
    depth: DepthModel = field(default_factory=DepthModel)
    rgb: RGBModel = field(default_factory=RGBModel)

    def to_json(self) -> dict[str, Any]:
        """{``preset``, ``depth``, ``rgb``} with the two models' fields, for capture.json."""
        return {"preset": self.preset, "depth": asdict(self.depth), "rgb": asdict(self.rgb)}


# -- presets ------------------------------------------------------------------------
def presets_path() -> Path:
    """The device presets file, ``<assets>/sensors/presets.yaml``."""
    return assets_dir() / "sensors" / "presets.yaml"


def _dc_from(cls, file, key: str, d: dict):
    allowed = {f.name for f in fields(cls)}
    check_keys(file, key, d, allowed)
    kw = {}
    for f_ in fields(cls):
        if f_.name not in d:
            continue
        v = d[f_.name]
        if f_.name == "model":
            if v not in DEPTH_MODELS:
                raise ConfigError(file, f"{key}.model", v, f"must be one of {list(DEPTH_MODELS)}")
            kw[f_.name] = v
        elif f_.name == "enabled":
            if not isinstance(v, bool):
                raise ConfigError(file, f"{key}.enabled", v, "must be true or false")
            kw[f_.name] = v
        elif f_.name == "range_m":
            if not isinstance(v, list) or len(v) != 2:
                raise ConfigError(file, f"{key}.range_m", v, "must be [min, max] metres")
            lo, hi = (number(file, f"{key}.range_m[{i}]", x, 0.0, 100.0) for i, x in enumerate(v))
            if lo >= hi:
                raise ConfigError(file, f"{key}.range_m", v, "min must be < max")
            kw[f_.name] = (lo, hi)
        elif f_.name in ("flying_px", "jpeg_quality"):
            kw[f_.name] = integer(file, f"{key}.{f_.name}", v, 0, 100)
        else:
            kw[f_.name] = number(file, f"{key}.{f_.name}", v, 0.0, 1e7)
    return replace(cls(), **kw)


def load_presets(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Device presets: name -> raw mapping (intrinsics, resolution, sensor)."""
    path = Path(path) if path is not None else presets_path()
    d = load_yaml(path)
    if not isinstance(d, dict) or not d:
        raise ConfigError(path, "<root>", d, "must be a mapping of preset name -> device")
    return d


def parse_sensor(file, key: str, d: Any, presets: dict[str, dict[str, Any]] | None = None) -> SensorModel:
    """A camera's ``sensor:`` entry: ``{preset: NAME, depth: {...}, rgb: {...}}``;
    fields given override the preset's."""
    if d is None:
        return SensorModel()
    check_keys(file, key, d, {"preset", "depth", "rgb"})
    base_depth, base_rgb, name = {}, {}, "custom"
    if "preset" in d:
        presets = presets if presets is not None else load_presets()
        if not isinstance(d["preset"], str) or d["preset"] not in presets:
            raise ConfigError(file, f"{key}.preset", d["preset"], f"unknown sensor preset; known: {sorted(presets)}")
        name = d["preset"]
        ps = presets[name].get("sensor", {})
        base_depth, base_rgb = dict(ps.get("depth", {})), dict(ps.get("rgb", {}))
    depth = _dc_from(DepthModel, file, f"{key}.depth", {**base_depth, **(d.get("depth") or {})})
    rgb = _dc_from(RGBModel, file, f"{key}.rgb", {**base_rgb, **(d.get("rgb") or {})})
    return SensorModel(preset=name, depth=depth, rgb=rgb)
