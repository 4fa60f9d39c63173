"""Booth rig: tray, lights and cameras, loaded from YAML and validated."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config.sensors import load_presets, parse_sensor
from simulator.core.conventions import intrinsics_matrix, kelvin_to_rgb, look_at, mm_to_m, project
from simulator.core.errors import ConfigError
from simulator.core.paths import default_rig
from simulator.core.yamlio import check_keys, load_yaml, number, vector


@dataclass(frozen=True)
class Tray:
    """The tray items lie on. World origin at the centre of its top surface, z up.

    size_m: inner (x, y) size in meters; the floor spans [-x/2, x/2] x [-y/2, y/2]
    rim_height_m: height of the rim walls above the floor (0 = flat plate)
    rim_width_m: wall thickness
    thickness_m: floor thickness (the floor occupies z in [-thickness, 0])
    material: materials-library key
    """

    size_m: tuple[float, float] = (0.6, 0.4)
    rim_height_m: float = 0.03
    rim_width_m: float = 0.01
    thickness_m: float = 0.02
    material: str = "tray_surface"


MODALITIES = ("rgb", "depth", "rgbd")
#: most pixels of one camera: its 4x MSAA colour + depth framebuffer is then
#: 2 GiB (8192 x 8192); GL contexts fail with a bare GL error beyond what they hold
MAX_CAMERA_PIXELS = 8192 * 8192
#: a rig with more cameras than this runs, with a warning (each camera is a
#: colour and a label pass per capture)
MANY_CAMERAS = 32
MAX_LIGHTS_PER_KIND = 4
LIGHT_TYPES = ("area", "spot", "point", "directional")


@dataclass(frozen=True)
class Light:
    """A booth light. Area lights are rendered as a grid of spot lights.

    position_m, target_m: (3,) world meters; color: linear RGB (max 1)
    intensity: pyrender units (candela for spot/point, lux for directional);
        for area lights the total, shared by the grid
    """

    name: str
    type: str
    position_m: tuple[float, float, float]
    target_m: tuple[float, float, float]
    intensity: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    cone_deg: float = 60.0
    size_m: tuple[float, float] = (0.0, 0.0)
    grid: tuple[int, int] = (1, 1)
    shadows: bool = False

    def emitters(self) -> list[tuple[str, np.ndarray, float, float]]:
        """(type, T_world_from_light in OpenGL axes (4, 4), intensity, cone rad) of
        each point-like emitter; an area light expands into its grid of spots."""
        p = np.array(self.position_m)
        T = look_at(p, np.array(self.target_m), up=(0, 1, 0) if abs(self.position_m[0] - self.target_m[0]) + abs(self.position_m[1] - self.target_m[1]) < 1e-9 else (0, 0, 1))
        T_gl = T @ np.diag([1.0, -1.0, -1.0, 1.0])  # light shines along -z in GL axes
        cone = math.radians(self.cone_deg) / 2
        if self.type != "area":
            return [(self.type, T_gl, self.intensity, cone)]
        out = []
        nx, ny = self.grid
        per = self.intensity / (nx * ny)
        for i in range(nx):
            for j in range(ny):
                ox = (i + 0.5) / nx - 0.5
                oy = (j + 0.5) / ny - 0.5
                Ti = T_gl.copy()
                Ti[:3, 3] = p + T_gl[:3, 0] * ox * self.size_m[0] + T_gl[:3, 1] * oy * self.size_m[1]
                out.append(("spot", Ti, per, cone))
        return out


@dataclass(frozen=True)
class Camera:
    """One booth camera.

    resolution: (width, height) pixels; K: (3, 3) OpenCV intrinsics, pixels
    distortion: (k1, k2, p1, p2, k3) Brown-Conrady
    T_world_from_cam: (4, 4) OpenCV axes (x right, y down, z forward), meters
    range_m: (near, far) meters; returns outside are dropped (depth 0)
    """

    name: str
    modality: str
    resolution: tuple[int, int]
    K: np.ndarray
    distortion: tuple[float, ...]
    T_world_from_cam: np.ndarray
    range_m: tuple[float, float] = (0.1, 4.0)
    device: str = "generic"
    sensor: Any = None  # simulator.config.sensors.SensorModel (None = ideal)

    @property
    def width(self) -> int:
        return self.resolution[0]

    @property
    def height(self) -> int:
        return self.resolution[1]

    def to_json(self) -> dict[str, Any]:
        """JSON form of the camera as written to capture.json and the dataset card:
        resolution (w, h) pixels, K (3, 3) pixels, distortion (k1, k2, p1, p2, k3),
        T_world_from_cam (4, 4) metres with ``convention: opencv``, range_m, device and
        the sensor model (None = ideal)."""
        return {
            "name": self.name,
            "modality": self.modality,
            "resolution": list(self.resolution),
            "K": self.K.tolist(),
            "distortion": list(self.distortion),
            "T_world_from_cam": self.T_world_from_cam.tolist(),
            "convention": "opencv",
            "range_m": list(self.range_m),
            "device": self.device,
            "sensor": self.sensor.to_json() if self.sensor is not None else None,
        }


@dataclass(frozen=True)
class BoothRig:
    """A loaded, validated booth rig (:func:`load_rig`): the tray, its lights and
    cameras (names unique), background colour (linear RGB in [0, 1]) and ambient
    light (0..1). ``path`` is the YAML file it came from."""
    name: str
    path: str
    tray: Tray
    lights: tuple[Light, ...]
    cameras: tuple[Camera, ...]
    background_color: tuple[float, float, float] = (0.85, 0.85, 0.85)
    ambient: float = 0.05
    description: str = ""

    def camera(self, name: str) -> Camera:
        """The camera named ``name``; KeyError listing the rig's cameras if there is none."""
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"rig {self.name!r} has no camera {name!r}; cameras: {[c.name for c in self.cameras]}")

    def to_json(self) -> dict[str, Any]:
        """JSON form of the whole rig (metres, OpenCV camera axes), as in the dataset card."""
        return {
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "tray": {"size_m": list(self.tray.size_m), "rim_height_m": self.tray.rim_height_m,
                     "rim_width_m": self.tray.rim_width_m, "thickness_m": self.tray.thickness_m,
                     "material": self.tray.material},
            "lights": [{"name": l.name, "type": l.type, "position_m": list(l.position_m),
                        "target_m": list(l.target_m), "intensity": l.intensity, "color": list(l.color),
                        "cone_deg": l.cone_deg, "size_m": list(l.size_m), "grid": list(l.grid),
                        "shadows": l.shadows} for l in self.lights],
            "cameras": [c.to_json() for c in self.cameras],
            "background_color": list(self.background_color),
            "ambient": self.ambient,
        }


_ROOT_KEYS = {"name", "description", "tray", "lights", "cameras", "background_color", "ambient"}
_TRAY_KEYS = {"size_mm", "rim_height_mm", "rim_width_mm", "thickness_mm", "material"}
_LIGHT_KEYS = {"name", "type", "position_mm", "target_mm", "intensity", "color", "temperature_k",
               "cone_deg", "size_mm", "grid", "shadows"}
_CAM_KEYS = {"name", "modality", "resolution", "intrinsics", "hfov_deg", "distortion", "position_mm",
             "look_at_mm", "up", "T_world_from_cam", "range_mm", "device", "preset", "sensor"}
_PRESET_CAM_KEYS = ("modality", "resolution", "intrinsics", "hfov_deg", "distortion", "range_mm")
_INTR_KEYS = {"fx", "fy", "cx", "cy"}


def load_rig(path: str | Path | None = None) -> BoothRig:
    """Load and validate a booth rig YAML. Raises ConfigError naming file, key, value."""
    path = Path(path) if path is not None else default_rig()
    d = load_yaml(path)
    check_keys(path, "", d, _ROOT_KEYS, required=("tray", "lights", "cameras"))
    tray = _parse_tray(path, d["tray"])
    if not isinstance(d["lights"], list) or not d["lights"]:
        raise ConfigError(path, "lights", d["lights"], "must be a non-empty list")
    if not isinstance(d["cameras"], list) or not d["cameras"]:
        raise ConfigError(path, "cameras", d["cameras"], "must be a non-empty list")
    lights = tuple(_parse_light(path, f"lights[{i}]", l, tray) for i, l in enumerate(d["lights"]))
    # the renderer (pyrender) shades at most 4 lights of each kind and would drop
    # the rest silently; an area light counts as its grid of point lights
    counts = {"point": 0, "spot": 0, "directional": 0}
    for l in lights:
        counts["point" if l.type == "area" else l.type] += l.grid[0] * l.grid[1] if l.type == "area" else 1
    for kind, n in counts.items():
        if n > MAX_LIGHTS_PER_KIND:
            raise ConfigError(path, "lights", [l.name for l in lights],
                              f"{n} {kind} emitters (area lights count their grid as point lights); "
                              f"at most {MAX_LIGHTS_PER_KIND} per kind are rendered")
    cams = tuple(_parse_camera(path, f"cameras[{i}]", c, tray) for i, c in enumerate(d["cameras"]))
    names = [c.name for c in cams]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(path, f"cameras[{i}].name", n, "duplicate camera name")
    bg = d.get("background_color", [0.85, 0.85, 0.85])
    bg = tuple(number(path, f"background_color[{i}]", c, 0.0, 1.0) for i, c in enumerate(vector(path, "background_color", bg, 3)))
    return BoothRig(
        name=str(d.get("name", path.stem)), path=str(path), tray=tray, lights=lights, cameras=cams,
        background_color=bg, ambient=number(path, "ambient", d.get("ambient", 0.05), 0.0, 1.0),
        description=str(d.get("description", "")),
    )


def _parse_tray(path, t) -> Tray:
    check_keys(path, "tray", t, _TRAY_KEYS, required=("size_mm",))
    sx, sy = vector(path, "tray.size_mm", t["size_mm"], 2)
    for i, s in enumerate((sx, sy)):
        number(path, f"tray.size_mm[{i}]", s, 50.0, 3000.0)
    return Tray(
        size_m=(sx / 1000.0, sy / 1000.0),
        rim_height_m=number(path, "tray.rim_height_mm", t.get("rim_height_mm", 30.0), 0.0, 500.0) / 1000.0,
        rim_width_m=number(path, "tray.rim_width_mm", t.get("rim_width_mm", 10.0), 0.0, 200.0) / 1000.0,
        thickness_m=number(path, "tray.thickness_mm", t.get("thickness_mm", 20.0), 1.0, 500.0) / 1000.0,
        material=str(t.get("material", "tray_surface")),
    )


def _parse_light(path, key, l, tray: Tray) -> Light:
    check_keys(path, key, l, _LIGHT_KEYS, required=("type", "position_mm", "intensity"))
    typ = l["type"]
    if typ not in LIGHT_TYPES:
        raise ConfigError(path, f"{key}.type", typ, f"must be one of {list(LIGHT_TYPES)}")
    pos = tuple(mm_to_m(vector(path, f"{key}.position_mm", l["position_mm"], 3)).tolist())
    tgt = tuple(mm_to_m(vector(path, f"{key}.target_mm", l.get("target_mm", [0, 0, 0]), 3)).tolist())
    if np.allclose(pos, tgt):
        raise ConfigError(path, f"{key}.target_mm", l.get("target_mm", [0, 0, 0]), "equals the light position")
    sx, sy = tray.size_m
    rw, rh = tray.rim_width_m, tray.rim_height_m
    if abs(pos[0]) <= sx / 2 + rw and abs(pos[1]) <= sy / 2 + rw and -tray.thickness_m <= pos[2] <= rh + 0.005:
        raise ConfigError(path, f"{key}.position_mm", l["position_mm"],
                          f"is inside the tray (x within ±{(sx / 2 + rw) * 1000:.0f} mm, y within "
                          f"±{(sy / 2 + rw) * 1000:.0f} mm, z below the rim top {rh * 1000:.0f} mm)")
    if "color" in l and "temperature_k" in l:
        raise ConfigError(path, f"{key}.temperature_k", l["temperature_k"], "give either color or temperature_k, not both")
    if "temperature_k" in l:
        color = kelvin_to_rgb(number(path, f"{key}.temperature_k", l["temperature_k"], 1000.0, 40000.0))
    else:
        color = tuple(number(path, f"{key}.color[{i}]", c, 0.0, 1.0)
                      for i, c in enumerate(vector(path, f"{key}.color", l.get("color", [1, 1, 1]), 3)))
    size = (0.0, 0.0)
    grid = (1, 1)
    if typ == "area":
        if "size_mm" not in l:
            raise ConfigError(path, f"{key}.size_mm", None, "area lights need size_mm [w, h]")
        size = tuple(number(path, f"{key}.size_mm[{i}]", s, 1.0, 5000.0) / 1000.0
                     for i, s in enumerate(vector(path, f"{key}.size_mm", l["size_mm"], 2)))
        g = l.get("grid", [2, 2])
        if not isinstance(g, list) or len(g) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 8 for x in g):
            raise ConfigError(path, f"{key}.grid", g, "must be two integers in 1..8")
        grid = (g[0], g[1])
    elif "size_mm" in l or "grid" in l:
        raise ConfigError(path, f"{key}.size_mm", l.get("size_mm", l.get("grid")), f"only area lights take size_mm/grid, this light is {typ!r}")
    shadows = l.get("shadows", False)
    if not isinstance(shadows, bool):
        raise ConfigError(path, f"{key}.shadows", shadows, "must be true or false")
    return Light(
        name=str(l.get("name", key)), type=typ, position_m=pos, target_m=tgt,
        intensity=number(path, f"{key}.intensity", l["intensity"], 0.0, 1e6, lo_open=True),
        color=color, cone_deg=number(path, f"{key}.cone_deg", l.get("cone_deg", 60.0), 1.0, 179.0),
        size_m=size, grid=grid, shadows=shadows,
    )


def _parse_camera(path, key, c, tray: Tray) -> Camera:
    check_keys(path, key, c, _CAM_KEYS)
    if "preset" in c:
        # a device preset fills what the camera leaves out (intrinsics, resolution,
        # range, distortion, sensor model); the camera's own fields win

        presets = load_presets()
        if not isinstance(c["preset"], str) or c["preset"] not in presets:
            raise ConfigError(path, f"{key}.preset", c["preset"], f"unknown device preset; known: {sorted(presets)}")
        pre = presets[c["preset"]]
        merged = {k: pre[k] for k in _PRESET_CAM_KEYS if k in pre}
        if "hfov_deg" in c or "intrinsics" in c:
            merged.pop("hfov_deg", None)
            merged.pop("intrinsics", None)
        merged.update(c)
        merged.setdefault("device", c["preset"])
        sensor = dict(c.get("sensor") or {})
        sensor.setdefault("preset", c["preset"])
        merged["sensor"] = sensor
        c = merged
    for req in ("name", "modality", "resolution"):
        if req not in c:
            raise ConfigError(path, f"{key}.{req}", None, "required key is missing (or give a preset)")
    name = c["name"]
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(path, f"{key}.name", name, "must be a non-empty string of letters, digits, '_' or '-'")
    key = f"{key}({name})"
    if c["modality"] not in MODALITIES:
        raise ConfigError(path, f"{key}.modality", c["modality"], f"must be one of {list(MODALITIES)}")
    res = c["resolution"]
    if (not isinstance(res, list) or len(res) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 16 <= x <= 16384 for x in res)):
        raise ConfigError(path, f"{key}.resolution", res, "must be [width, height], integers in 16..16384")
    w, h = res
    if w * h > MAX_CAMERA_PIXELS:
        raise ConfigError(path, f"{key}.resolution", res, f"has {w * h:,} pixels; at most {MAX_CAMERA_PIXELS:,} "
                                                          f"(8192 x 8192) can be rendered per camera")
    if ("intrinsics" in c) == ("hfov_deg" in c):
        raise ConfigError(path, f"{key}.intrinsics", c.get("intrinsics"), "give exactly one of intrinsics {fx, fy, cx, cy} or hfov_deg")
    if "intrinsics" in c:
        ik = c["intrinsics"]
        check_keys(path, f"{key}.intrinsics", ik, _INTR_KEYS, required=_INTR_KEYS)
        fx = number(path, f"{key}.intrinsics.fx", ik["fx"], 0.0, 1e6, lo_open=True)
        fy = number(path, f"{key}.intrinsics.fy", ik["fy"], 0.0, 1e6, lo_open=True)
        cx = number(path, f"{key}.intrinsics.cx", ik["cx"], 0.0, float(w))
        cy = number(path, f"{key}.intrinsics.cy", ik["cy"], 0.0, float(h))
        if not 0.2 <= fx / fy <= 5.0:
            raise ConfigError(path, f"{key}.intrinsics.fy", ik["fy"], f"aspect fx/fy = {fx / fy:.3g} is implausible")
    else:
        hfov = number(path, f"{key}.hfov_deg", c["hfov_deg"], 1.0, 170.0)
        fx = fy = (w / 2) / math.tan(math.radians(hfov) / 2)
        cx, cy = (w - 1) / 2, (h - 1) / 2
    K = intrinsics_matrix(fx, fy, cx, cy)
    dist = c.get("distortion", [0, 0, 0, 0, 0])
    if not isinstance(dist, list) or len(dist) not in (4, 5):
        raise ConfigError(path, f"{key}.distortion", dist, "must be [k1, k2, p1, p2] or [k1, k2, p1, p2, k3]")
    dist = tuple(number(path, f"{key}.distortion[{i}]", x, -10.0, 10.0) for i, x in enumerate(dist))
    dist = dist + (0.0,) * (5 - len(dist))
    rng_mm = c.get("range_mm", [100, 4000])
    near, far = vector(path, f"{key}.range_mm", rng_mm, 2)
    if not 1.0 <= near < far <= 100000.0:
        raise ConfigError(path, f"{key}.range_mm", rng_mm, "must be [near, far] with 1 <= near < far <= 100000")
    if "T_world_from_cam" in c:
        if "position_mm" in c or "look_at_mm" in c:
            raise ConfigError(path, f"{key}.T_world_from_cam", c["T_world_from_cam"], "give either T_world_from_cam or position_mm/look_at_mm")
        T = np.array(c["T_world_from_cam"], dtype=object)
        if T.shape != (4, 4):
            raise ConfigError(path, f"{key}.T_world_from_cam", c["T_world_from_cam"], "must be a 4x4 matrix (meters, OpenCV axes)")
        T = np.array([[number(path, f"{key}.T_world_from_cam[{i}][{j}]", T[i, j]) for j in range(4)] for i in range(4)])
        R = T[:3, :3]
        if not (np.allclose(R @ R.T, np.eye(3), atol=1e-4) and abs(np.linalg.det(R) - 1) < 1e-4 and np.allclose(T[3], [0, 0, 0, 1])):
            raise ConfigError(path, f"{key}.T_world_from_cam", c["T_world_from_cam"], "rotation part is not a proper rotation (orthonormal, det +1)")
    else:
        if "position_mm" not in c:
            raise ConfigError(path, f"{key}.position_mm", None, "required (or give T_world_from_cam)")
        pos = mm_to_m(vector(path, f"{key}.position_mm", c["position_mm"], 3))
        tgt = mm_to_m(vector(path, f"{key}.look_at_mm", c.get("look_at_mm", [0, 0, 0]), 3))
        up = vector(path, f"{key}.up", c.get("up", [0, 0, 1]), 3)
        if np.allclose(pos, tgt):
            raise ConfigError(path, f"{key}.look_at_mm", c.get("look_at_mm"), "equals the camera position")
        fwd = (tgt - pos) / np.linalg.norm(tgt - pos)
        if np.linalg.norm(np.cross(fwd, up)) < 1e-6:
            raise ConfigError(path, f"{key}.up", up, "is parallel to the viewing direction; give another up vector")
        T = look_at(pos, tgt, up)

    sensor = parse_sensor(path, f"{key}.sensor", c.get("sensor"))
    cam = Camera(name=name, modality=c["modality"], resolution=(w, h), K=K, distortion=dist,
                 T_world_from_cam=T, range_m=(near / 1000.0, far / 1000.0), device=str(c.get("device", "generic")),
                 sensor=sensor)
    _check_outside_tray(path, key, c, cam, tray)
    _check_sees_tray(path, key, cam, tray)
    return cam


def _check_outside_tray(path, key, c, cam: Camera, tray: Tray) -> None:
    """A camera in or under the tray's floor slab would see the items through
    the floor (and label them there): refuse it."""
    x, y, z = cam.T_world_from_cam[:3, 3]
    sx, sy = tray.size_m
    rw = tray.rim_width_m
    if abs(x) <= sx / 2 + rw and abs(y) <= sy / 2 + rw and z <= 0.001:
        shown = c.get("position_mm", c.get("T_world_from_cam"))
        raise ConfigError(path, f"{key}.position_mm" if "position_mm" in c else f"{key}.T_world_from_cam", shown,
                          f"puts the camera in or under the tray floor (z = {z * 1000:.0f} mm, floor slab "
                          f"{-tray.thickness_m * 1000:.0f}..0 mm, x within ±{(sx / 2 + rw) * 1000:.0f} mm, y within "
                          f"±{(sy / 2 + rw) * 1000:.0f} mm); it would see the items through the floor")


def rig_warnings(rig: BoothRig) -> list[str]:
    """Things a rig may do but that are rarely meant (one line each)."""
    out = []
    if len(rig.cameras) > MANY_CAMERAS:
        px = sum(c.width * c.height for c in rig.cameras)
        out.append(f"{rig.path}: cameras: {len(rig.cameras)} cameras ({px / 1e6:.0f} Mpx per capture, each rendered "
                   f"twice); more than {MANY_CAMERAS} is slow: is that meant?")
    return out


def tray_visibility(cam: Camera, tray: Tray, n: int = 21) -> float:
    """Fraction of a grid of points on the tray floor that project inside the image
    in front of the camera and within its range."""
    sx, sy = tray.size_m
    xs, ys = np.meshgrid(np.linspace(-sx / 2, sx / 2, n), np.linspace(-sy / 2, sy / 2, n))
    pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    uv, z = project(cam.K, cam.T_world_from_cam, pts)
    inside = (z > cam.range_m[0]) & (z < cam.range_m[1]) & (uv[:, 0] >= -0.5) & (uv[:, 0] < cam.width - 0.5) \
        & (uv[:, 1] >= -0.5) & (uv[:, 1] < cam.height - 0.5)
    return float(inside.mean())


def _check_sees_tray(path, key, cam: Camera, tray: Tray) -> None:
    uv, z = project(cam.K, cam.T_world_from_cam, np.zeros((1, 3)))
    center_ok = z[0] > cam.range_m[0] and z[0] < cam.range_m[1] and -0.5 <= uv[0, 0] < cam.width - 0.5 and -0.5 <= uv[0, 1] < cam.height - 0.5
    frac = tray_visibility(cam, tray)
    if not center_ok or frac < 0.2:
        where = f"position {np.round(cam.T_world_from_cam[:3, 3] * 1000).tolist()} mm"
        raise ConfigError(path, f"{key}", where,
                          f"camera does not see the tray (tray centre in view: {bool(center_ok)}, "
                          f"{frac:.0%} of the tray floor in view and range; need the centre and >= 20%)")
