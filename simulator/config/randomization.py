"""Domain randomization: per-capture variation of lights, tray and background,
camera calibration, product materials and clutter, within ranges set in the
corpus spec (a catalog's ``randomization:`` section or ``--randomization``).

Synthetic-to-real transfer depends as much on variation as on fidelity (Tremblay
et al. 2018; Hinterstoisser et al. 2019). Every drawn value is returned and lands
in capture.json, so a study can slice results by it. Presets: ``off`` (the rig as
designed), ``booth`` (the variation a fleet of real booths has), ``wild`` (beyond
the booth: random backgrounds, light and viewpoints, for studies against photos
not taken in a booth).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from simulator.core.errors import ConfigError
from simulator.core.yamlio import check_keys, integer, number

PRESETS = ("off", "booth", "wild", "closeup")


VIEWPOINTS = ("rig", "random", "closeup")


@dataclass(frozen=True)
class Randomization:
    """Ranges (lo, hi) or magnitudes; 0 / (1, 1) means no variation.

    light_intensity_scale: multiplies every light; light_temperature_k: colour
    temperature of each light (None keeps the rig's colour); light_position_mm:
    sigma of each light's position jitter; light_dropout: probability that a light
    is off (at least one stays on); background_jitter: max change of each
    background channel; tray_shade: multiplier of the tray colour;
    camera_rotation_deg / camera_translation_mm: sigma of the calibration error
    (the image comes from the true pose; metadata keeps both);
    focal_error: relative sigma of the true focal length (pinhole cameras);
    material_shade: multiplier of product base colours (cardboard shade...);
    material_roughness: added to roughness; clutter: (min, max) distractor objects;
    viewpoints: ``rig``, ``random`` (wild: cameras re-aimed from random points on
    a hemisphere around the tray) or ``closeup`` (each camera re-aimed at the item
    from a random direction above the tray, at the distance where the item's
    bounding sphere fills ``closeup_fill`` of the narrower half field of view; on a
    damaged item the first camera looks within ``closeup_damage_cone_deg`` of the
    damage's outward normal, so crops have pixels and the damage is in view);
    closeup_elevation_deg: (lo, hi) camera elevation above the tray plane;
    fill_light: (lo, hi) total intensity of a sky / fill hemisphere of
    ``fill_lights`` directional lights at random directions above the tray (no
    shadow maps: soft, shadowless fill, like light bouncing off walls and
    ceiling); exposure: (lo, hi) gain on every light and the ambient term (a
    camera's exposure, in linear light); white_balance: sigma of a per-channel
    log gain on the light colours (an uncorrected white balance); tray_jitter:
    max change of each tray colour channel (linear RGB); background_saturation: cap
    on the drawn background's saturation (max - min) / max, the colour pulled
    toward its grey (1: no cap): walls, floors and curtains are greys, beiges and
    dull tints, not the pastels a free per-channel jitter gives; tray_texture:
    probability that the tray floor shows a surface a parcel may sit on (wood,
    concrete, fabric, rubber, steel or laminate: :mod:`simulator.scene.backgrounds`),
    drawn independently of the damage, instead of a flat colour."""

    preset: str = "off"
    light_intensity_scale: tuple[float, float] = (1.0, 1.0)
    light_temperature_k: tuple[float, float] | None = None
    light_position_mm: float = 0.0
    light_dropout: float = 0.0
    background_jitter: float = 0.0
    tray_shade: tuple[float, float] = (1.0, 1.0)
    camera_rotation_deg: float = 0.0
    camera_translation_mm: float = 0.0
    focal_error: float = 0.0
    material_shade: tuple[float, float] = (1.0, 1.0)
    material_roughness: float = 0.0
    clutter: tuple[int, int] = (0, 0)
    viewpoints: str = "rig"
    closeup_fill: tuple[float, float] = (0.55, 0.9)
    closeup_elevation_deg: tuple[float, float] = (25.0, 80.0)
    closeup_damage_cone_deg: float = 40.0
    fill_light: tuple[float, float] = (0.0, 0.0)
    fill_lights: int = 6
    exposure: tuple[float, float] = (1.0, 1.0)
    white_balance: float = 0.0
    tray_jitter: float = 0.0
    background_saturation: float = 1.0
    tray_texture: float = 0.0

    @property
    def active(self) -> bool:
        return self != Randomization(preset=self.preset) or self.preset in ("wild", "closeup")

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, for the dataset card."""
        return asdict(self)


def preset(name: str) -> Randomization:
    """The :class:`Randomization` of preset ``name`` (one of :data:`PRESETS`; ``off``
    randomizes nothing). Raises ConfigError for an unknown name."""
    if name == "off":
        return Randomization()
    if name == "booth":
        return Randomization(preset="booth", light_intensity_scale=(0.75, 1.3), light_temperature_k=(4500, 6800),
                             light_position_mm=40.0, light_dropout=0.1, background_jitter=0.08, tray_shade=(0.7, 1.4),
                             camera_rotation_deg=0.3, camera_translation_mm=3.0, focal_error=0.005,
                             material_shade=(0.8, 1.2), material_roughness=0.1, clutter=(0, 1))
    if name == "wild":
        return Randomization(preset="wild", light_intensity_scale=(0.4, 2.0), light_temperature_k=(2800, 9000),
                             light_position_mm=300.0, light_dropout=0.3, background_jitter=0.6, tray_shade=(0.3, 3.0),
                             camera_rotation_deg=1.0, camera_translation_mm=10.0, focal_error=0.02,
                             material_shade=(0.6, 1.4), material_roughness=0.3, clutter=(0, 4), viewpoints="random")
    if name == "closeup":
        # for studies against close-up photos of parcels: cameras framed on the item
        # (its damage in view of the first), wild light with a sky / fill hemisphere,
        # exposure and white balance as an uncontrolled camera has them
        return Randomization(preset="closeup", light_intensity_scale=(0.5, 1.8), light_temperature_k=(3000, 8000),
                             light_position_mm=300.0, light_dropout=0.3, background_jitter=0.5, tray_shade=(0.4, 3.5),
                             camera_rotation_deg=1.0, camera_translation_mm=5.0, focal_error=0.02,
                             material_shade=(0.75, 1.25), material_roughness=0.2, clutter=(0, 2), viewpoints="closeup",
                             fill_light=(0.5, 3.0), exposure=(1.0, 2.0), white_balance=0.06, tray_jitter=0.05,
                             background_saturation=0.1, tray_texture=0.75)
    raise ConfigError(None, "randomization.preset", name, f"must be one of {list(PRESETS)}")


_KEYS = {f for f in Randomization.__dataclass_fields__}


def parse(file, d: Any) -> Randomization:
    """A catalog's ``randomization:`` section: a preset name, or a mapping with an
    optional ``preset`` and overrides of its fields."""
    if d is None:
        return Randomization()
    if isinstance(d, str):
        return preset(d)
    check_keys(file, "randomization", d, _KEYS)
    base = preset(d.get("preset", "off"))
    kw = {}
    for k, v in d.items():
        if k == "preset":
            continue
        key = f"randomization.{k}"
        cur = getattr(base, k)
        if k == "viewpoints":
            if v not in VIEWPOINTS:
                raise ConfigError(file, key, v, f"must be one of {list(VIEWPOINTS)}")
            kw[k] = v
        elif k == "fill_lights":
            kw[k] = integer(file, key, v, 1, 32)
        elif k == "clutter":
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                    and 0 <= v[0] <= v[1] <= 20):
                raise ConfigError(file, key, v, "must be [min, max] integers in 0..20")
            kw[k] = tuple(v)
        elif isinstance(cur, tuple) or (k == "light_temperature_k"):
            if v is None and k == "light_temperature_k":
                kw[k] = None
                continue
            if not isinstance(v, list) or len(v) != 2:
                raise ConfigError(file, key, v, "must be [lo, hi]")
            lo, hi = (number(file, f"{key}[{i}]", x, 0.0, 1e5) for i, x in enumerate(v))
            if lo > hi:
                raise ConfigError(file, key, v, "lo must be <= hi")
            kw[k] = (lo, hi)
        else:
            kw[k] = number(file, key, v, 0.0, 1e4)
    out = replace(base, **kw)
    if out.light_dropout >= 1.0:
        raise ConfigError(file, "randomization.light_dropout", out.light_dropout, "must be < 1")
    if not 0.05 <= out.closeup_fill[0] <= out.closeup_fill[1] <= 1.0:
        raise ConfigError(file, "randomization.closeup_fill", list(out.closeup_fill), "must be [lo, hi] in 0.05..1")
    if not 5.0 <= out.closeup_elevation_deg[0] <= out.closeup_elevation_deg[1] <= 90.0:
        raise ConfigError(file, "randomization.closeup_elevation_deg", list(out.closeup_elevation_deg),
                          "must be [lo, hi] in 5..90 degrees")
    if out.closeup_damage_cone_deg > 90.0:
        raise ConfigError(file, "randomization.closeup_damage_cone_deg", out.closeup_damage_cone_deg, "must be <= 90")
    if out.exposure[0] <= 0.0:
        raise ConfigError(file, "randomization.exposure", list(out.exposure), "must be > 0")
    if out.background_saturation > 1.0:
        raise ConfigError(file, "randomization.background_saturation", out.background_saturation, "must be in 0..1")
    if out.white_balance > 1.0:
        raise ConfigError(file, "randomization.white_balance", out.white_balance, "must be <= 1 (a log gain sigma)")
    if out.tray_texture > 1.0:
        raise ConfigError(file, "randomization.tray_texture", out.tray_texture, "must be a probability in 0..1")
    return out
