"""Randomization draws of one capture: lights, tray and background, camera poses and calibration, exposure and white balance, material jitter and clutter, drawn from the ranges of a :class:`simulator.config.randomization.Randomization`."""
from __future__ import annotations

from typing import Any

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from damage_ops import Part, Product, labelled_mesh
from simulator.config.materials import Material
from simulator.config.randomization import Randomization
from simulator.core.conventions import kelvin_to_rgb, look_at
from simulator.scene import backgrounds
from simulator.scene.placement import Target, footprint_xy
from simulator.scene.scene import CameraDraw, Draws, FillDraw, LightDraw


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

    return Rotation.from_rotvec(np.radians(rng.normal(0.0, sigma_deg, 3))).as_matrix()




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


def closeup_pose(cam, target: Target, direction: np.ndarray, fill: float, keep_range: bool = True) -> np.ndarray:
    """T_world_from_cam (OpenCV axes) of ``cam`` looking at ``target`` from
    ``direction`` at the distance where the bounding sphere spans ``fill`` of the
    narrower half field of view (with ``keep_range``, never nearer than the
    camera's near range: its depth must see the item)."""
    w, h = cam.resolution
    K = cam.K
    half = min(np.arctan2(w / 2, K[0, 0]), np.arctan2(h / 2, K[1, 1]))
    dist = target.radius / np.sin(half * fill)
    if keep_range:
        dist = max(dist, cam.range_m[0] + target.radius + 0.02)
    pos = np.asarray(target.center) + dist * direction
    up = (0, 0, 1) if direction[2] < np.sin(np.radians(84)) else (0, 1, 0)
    return look_at(pos, np.asarray(target.center), up=up)


def sample(r: Randomization, rig, rng: np.random.Generator, targets: list[Target] | None = None) -> Draws:
    """Draw one capture's values: a :class:`~simulator.scene.scene.Draws` that
    BoothRenderer.configure applies and capture.json records (``to_json``).

    targets: the items of the scene (first = the item close-up cameras aim at);
    needed by ``viewpoints: closeup``. Draws of the fields added later (fill
    light, exposure, white balance, tray jitter, close-up) are made only where
    they vary, so the draws of older settings are unchanged."""
    draws: dict[str, Any] = {"preset": r.preset}
    if not r.active:
        return Draws(**draws)
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
        lights.append(LightDraw(name=l.name, on=bool(keep), intensity_scale=scale, color=list(color),
                                position_m=pos.tolist()))
    draws["lights"] = tuple(lights)
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
        cams[cam.name] = CameraDraw(T_world_from_cam=T, focal_scale=focal)
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
        draws["fill"] = FillDraw(intensity=total, directions=dirs, color=list(tint))
    if r.exposure != (1.0, 1.0):
        draws["exposure"] = _uniform(rng, r.exposure)
    if r.white_balance > 0:
        g = np.exp(rng.normal(0.0, r.white_balance, 3))
        draws["white_balance"] = (g / g.max()).tolist()
    if r.tray_jitter > 0:
        draws["tray_color_delta"] = rng.uniform(-r.tray_jitter, r.tray_jitter, 3).tolist()
    if r.tray_texture > 0 and rng.random() < r.tray_texture:
        draws["tray_texture"] = backgrounds.draw(rng)
    return Draws(**draws)


def jitter_materials(materials: dict, draws: Draws) -> dict:
    """The materials library with this capture's shade and gloss applied to
    product materials (the tray is handled by the renderer)."""

    if draws.material_shade is None:
        return materials
    s, dr = draws.material_shade, draws.material_roughness_delta
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
