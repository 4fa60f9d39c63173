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

import numpy as np

from .conventions import kelvin_to_rgb, look_at
from .errors import ConfigError
from .yamlio import check_keys, number

PRESETS = ("off", "booth", "wild")


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
    viewpoints: ``rig`` or ``random`` (wild: cameras re-aimed from random points on
    a hemisphere around the tray)."""

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

    @property
    def active(self) -> bool:
        return self != Randomization(preset=self.preset) or self.preset == "wild"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def preset(name: str) -> Randomization:
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
            if v not in ("rig", "random"):
                raise ConfigError(file, key, v, "must be 'rig' or 'random'")
            kw[k] = v
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
    return out


def _uniform(rng, lohi) -> float:
    lo, hi = lohi
    return float(lo if lo == hi else rng.uniform(lo, hi))


def _small_rotation(rng, sigma_deg: float) -> np.ndarray:
    if sigma_deg <= 0:
        return np.eye(3)
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.radians(rng.normal(0.0, sigma_deg, 3))).as_matrix()


def sample(r: Randomization, rig, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one capture's values. Returns a JSON-able dict (with numpy arrays
    for poses) that BoothRenderer.configure applies and capture.json records."""
    draws: dict[str, Any] = {"preset": r.preset}
    if not r.active:
        return draws
    # lights
    lights = []
    on = rng.random(len(rig.lights)) >= r.light_dropout
    if not on.any():
        on[int(rng.integers(len(rig.lights)))] = True
    for l, keep in zip(rig.lights, on):
        scale = _uniform(rng, r.light_intensity_scale)
        color = kelvin_to_rgb(_uniform(rng, r.light_temperature_k)) if r.light_temperature_k else l.color
        pos = np.array(l.position_m) + rng.normal(0.0, r.light_position_mm / 1000.0, 3)
        pos[2] = max(pos[2], rig.tray.rim_height_m + 0.1)  # never inside the tray
        lights.append({"name": l.name, "on": bool(keep), "intensity_scale": scale, "color": list(color),
                       "position_m": pos.tolist()})
    draws["lights"] = lights
    draws["background_color"] = np.clip(np.array(rig.background_color) + rng.uniform(-r.background_jitter, r.background_jitter, 3), 0, 1).tolist()
    draws["tray_shade"] = _uniform(rng, r.tray_shade)
    # cameras: the true pose and focal differ from the calibrated (nominal) ones
    cams = {}
    for cam in rig.cameras:
        T = cam.T_world_from_cam.copy()
        if r.viewpoints == "random":
            az = rng.uniform(0, 2 * np.pi)
            el = rng.uniform(np.radians(25), np.radians(85))
            dist = np.linalg.norm(T[:3, 3]) * rng.uniform(0.8, 1.2)
            pos = dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            T = look_at(pos, rng.uniform(-0.05, 0.05, 3) * [1, 1, 0] + [0, 0, 0.04],
                        up=(0, 0, 1) if el < np.radians(80) else (0, 1, 0))
        T[:3, :3] = T[:3, :3] @ _small_rotation(rng, r.camera_rotation_deg)
        T[:3, 3] += rng.normal(0.0, r.camera_translation_mm / 1000.0, 3)
        focal = float(1.0 + rng.normal(0.0, r.focal_error)) if not any(cam.distortion) else 1.0
        cams[cam.name] = {"T_world_from_cam": T, "focal_scale": focal}
    draws["cameras"] = cams
    draws["material_shade"] = _uniform(rng, r.material_shade)
    draws["material_roughness_delta"] = float(rng.uniform(-r.material_roughness, r.material_roughness))
    lo, hi = r.clutter
    draws["clutter"] = int(rng.integers(lo, hi + 1)) if hi > 0 else 0
    return draws


def jitter_materials(materials: dict, draws: dict) -> dict:
    """The materials library with this capture's shade and gloss applied to
    product materials (the tray is handled by the renderer)."""
    from .materials import Material

    if "material_shade" not in draws:
        return materials
    s, dr = draws["material_shade"], draws["material_roughness_delta"]
    out = {}
    for k, m in materials.items():
        if k == "tray_surface":
            out[k] = m
            continue
        out[k] = Material(name=m.name, color=tuple(float(np.clip(c * s, 0, 1)) for c in m.color),
                          roughness=float(np.clip(m.roughness + dr, 0.02, 1.0)), metallic=m.metallic, alpha=m.alpha,
                          density_kg_m3=m.density_kg_m3, friction=m.friction, restitution=m.restitution,
                          pattern=m.pattern)
    return out


def clutter_products(n: int, rng: np.random.Generator, tray, occupied: list[np.ndarray]):
    """Distractor objects (small boxes and cylinders in random plain colours) lying
    on the tray clear of the items: list of (Product, T_world, description)."""
    import trimesh

    from damage_ops import Part, Product, labelled_mesh

    from .pipeline import footprint_xy

    out = []
    sx, sy = tray.size_m
    for k in range(n):
        for _try in range(20):
            if rng.random() < 0.5:
                ext = rng.uniform(0.02, 0.08, 3)
                m = trimesh.creation.box(extents=ext)
                shape = {"shape": "box", "extents_m": ext.tolist()}
            else:
                r, h = rng.uniform(0.01, 0.04), rng.uniform(0.01, 0.1)
                m = trimesh.creation.cylinder(radius=r, height=h, sections=24)
                shape = {"shape": "cylinder", "radius_m": r, "height_m": h}
            m.apply_translation([0, 0, -m.bounds[0, 2]])
            T = np.eye(4)
            yaw = rng.uniform(0, 2 * np.pi)
            T[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
            T[:2, 3] = rng.uniform([-sx / 2 + 0.05, -sy / 2 + 0.05], [sx / 2 - 0.05, sy / 2 - 0.05])
            xy = footprint_xy(m, T)
            if any((xy.min(0) <= o.max(0) + 0.01).all() and (o.min(0) <= xy.max(0) + 0.01).all() for o in occupied):
                continue
            occupied.append(xy)
            mat = str(rng.choice(["rigid_plastic", "cardboard_white", "paper_label", "metal"]))
            prod = Product(sku=f"clutter-{k}", kind="mesh", mesh=labelled_mesh(m.vertices, m.faces, 0),
                           parts=(Part("body", mat),))
            out.append((prod, T, {**shape, "material": mat, "T_world": T.tolist()}))
            break
    return out
