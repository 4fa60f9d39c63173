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

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .conventions import kelvin_to_rgb, look_at
from .errors import ConfigError
from .yamlio import check_keys, number

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
    dull tints, not the pastels a free per-channel jitter gives."""

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

    @property
    def active(self) -> bool:
        return self != Randomization(preset=self.preset) or self.preset in ("wild", "closeup")

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
    if name == "closeup":
        # for studies against close-up photos of parcels: cameras framed on the item
        # (its damage in view of the first), wild light with a sky / fill hemisphere,
        # exposure and white balance as an uncontrolled camera has them
        return Randomization(preset="closeup", light_intensity_scale=(0.5, 1.8), light_temperature_k=(3000, 8000),
                             light_position_mm=300.0, light_dropout=0.3, background_jitter=0.5, tray_shade=(0.4, 3.5),
                             camera_rotation_deg=1.0, camera_translation_mm=5.0, focal_error=0.02,
                             material_shade=(0.75, 1.25), material_roughness=0.2, clutter=(0, 2), viewpoints="closeup",
                             fill_light=(0.5, 3.0), exposure=(1.0, 2.0), white_balance=0.06, tray_jitter=0.05,
                             background_saturation=0.1)
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
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 32:
                raise ConfigError(file, key, v, "must be an integer in 1..32")
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
    return out


def _desaturate(c: np.ndarray, cap: float) -> np.ndarray:
    """Colour ``c`` (3,) in [0, 1] pulled toward its mean grey until its
    saturation (max - min) / max is at most ``cap`` (unchanged when it already is)."""
    hi, lo = float(c.max()), float(c.min())
    if cap >= 1.0 or hi <= 0.0 or (hi - lo) / hi <= cap:
        return c
    g = float(c.mean())
    # saturation of g + a (c - g) is a (hi - lo) / (g + a (hi - g)); solve for the cap
    a = cap * g / ((hi - lo) - cap * (hi - g))
    return np.clip(g + a * (c - g), 0.0, 1.0)


def _uniform(rng, lohi) -> float:
    lo, hi = lohi
    return float(lo if lo == hi else rng.uniform(lo, hi))


def _small_rotation(rng, sigma_deg: float) -> np.ndarray:
    if sigma_deg <= 0:
        return np.eye(3)
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.radians(rng.normal(0.0, sigma_deg, 3))).as_matrix()


@dataclass(frozen=True)
class Target:
    """What a close-up camera aims at: an item's bounding sphere (world meters)
    and, for a damaged item, the outward unit normals (k, 3) of its damage sites
    in world axes (empty when intact)."""

    center: np.ndarray
    radius: float
    damage_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _closeup_direction(rng: np.random.Generator, r: Randomization, toward: np.ndarray | None) -> np.ndarray:
    """Unit vector from the target to the camera: uniform in azimuth with an
    elevation in ``closeup_elevation_deg``, or within ``closeup_damage_cone_deg``
    of ``toward`` (then clamped into the elevation range)."""
    lo, hi = np.radians(r.closeup_elevation_deg)
    if toward is None:
        az = rng.uniform(0, 2 * np.pi)
        el = rng.uniform(lo, hi)
    else:
        # a random direction in the cone about the damage normal
        t = _unit(np.asarray(toward, float))
        a = np.radians(r.closeup_damage_cone_deg) * np.sqrt(rng.uniform())
        phi = rng.uniform(0, 2 * np.pi)
        e1 = _unit(np.cross(t, [0.0, 0.0, 1.0] if abs(t[2]) < 0.9 else [1.0, 0.0, 0.0]))
        e2 = np.cross(t, e1)
        d = np.cos(a) * t + np.sin(a) * (np.cos(phi) * e1 + np.sin(phi) * e2)
        az = float(np.arctan2(d[1], d[0]))
        el = float(np.clip(np.arcsin(np.clip(d[2], -1, 1)), lo, hi))
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def closeup_pose(cam, target: Target, direction: np.ndarray, fill: float) -> np.ndarray:
    """T_world_from_cam (OpenCV axes) of ``cam`` looking at ``target`` from
    ``direction`` at the distance where the bounding sphere spans ``fill`` of the
    narrower half field of view (never nearer than the camera's near range)."""
    w, h = cam.resolution
    K = cam.K
    half = min(np.arctan2(w / 2, K[0, 0]), np.arctan2(h / 2, K[1, 1]))
    dist = target.radius / np.sin(half * fill)
    dist = max(dist, cam.range_m[0] + target.radius + 0.02)
    pos = np.asarray(target.center) + dist * direction
    up = (0, 0, 1) if direction[2] < np.sin(np.radians(84)) else (0, 1, 0)
    return look_at(pos, np.asarray(target.center), up=up)


def sample(r: Randomization, rig, rng: np.random.Generator, targets: list[Target] | None = None) -> dict[str, Any]:
    """Draw one capture's values. Returns a JSON-able dict (with numpy arrays
    for poses) that BoothRenderer.configure applies and capture.json records.

    targets: the items of the scene (first = the item close-up cameras aim at);
    needed by ``viewpoints: closeup``. Draws of the fields added later (fill
    light, exposure, white balance, tray jitter, close-up) are made only where
    they vary, so the draws of older settings are unchanged."""
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
    bg = np.clip(np.array(rig.background_color) + rng.uniform(-r.background_jitter, r.background_jitter, 3), 0, 1)
    draws["background_color"] = _desaturate(bg, r.background_saturation).tolist()
    draws["tray_shade"] = _uniform(rng, r.tray_shade)
    # cameras: the true pose and focal differ from the calibrated (nominal) ones
    if r.viewpoints == "closeup" and not targets:
        raise ValueError("viewpoints 'closeup' needs the scene's targets")
    cams = {}
    for k, cam in enumerate(rig.cameras):
        T = cam.T_world_from_cam.copy()
        if r.viewpoints == "random":
            az = rng.uniform(0, 2 * np.pi)
            el = rng.uniform(np.radians(25), np.radians(85))
            dist = np.linalg.norm(T[:3, 3]) * rng.uniform(0.8, 1.2)
            pos = dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            T = look_at(pos, rng.uniform(-0.05, 0.05, 3) * [1, 1, 0] + [0, 0, 0.04],
                        up=(0, 0, 1) if el < np.radians(80) else (0, 1, 0))
        elif r.viewpoints == "closeup":
            tgt = targets[0]
            normals = tgt.damage_normals
            toward = normals[int(rng.integers(len(normals)))] if (k == 0 and len(normals)) else None
            d = _closeup_direction(rng, r, toward)
            T = closeup_pose(cam, tgt, d, _uniform(rng, r.closeup_fill))
        T[:3, :3] = T[:3, :3] @ _small_rotation(rng, r.camera_rotation_deg)
        T[:3, 3] += rng.normal(0.0, r.camera_translation_mm / 1000.0, 3)
        focal = float(1.0 + rng.normal(0.0, r.focal_error)) if not any(cam.distortion) else 1.0
        cams[cam.name] = {"T_world_from_cam": T, "focal_scale": focal}
    draws["cameras"] = cams
    draws["material_shade"] = _uniform(rng, r.material_shade)
    draws["material_roughness_delta"] = float(rng.uniform(-r.material_roughness, r.material_roughness))
    lo, hi = r.clutter
    draws["clutter"] = int(rng.integers(lo, hi + 1)) if hi > 0 else 0
    if r.fill_light[1] > 0:
        total = _uniform(rng, r.fill_light)
        dirs = []
        for _ in range(r.fill_lights):
            az, z = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 1.0)  # uniform on the upper cap
            s = np.sqrt(1 - z * z)
            dirs.append([s * np.cos(az), s * np.sin(az), z])
        tint = kelvin_to_rgb(_uniform(rng, (6500.0, 12000.0)))  # sky / wall bounce: bluish to neutral
        draws["fill"] = {"intensity": total, "directions": dirs, "color": list(tint)}
    if r.exposure != (1.0, 1.0):
        draws["exposure"] = _uniform(rng, r.exposure)
    if r.white_balance > 0:
        g = np.exp(rng.normal(0.0, r.white_balance, 3))
        draws["white_balance"] = (g / g.max()).tolist()
    if r.tray_jitter > 0:
        draws["tray_color_delta"] = rng.uniform(-r.tray_jitter, r.tray_jitter, 3).tolist()
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
