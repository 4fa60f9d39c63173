"""Frame and unit conversions, one small named function each (tested by round trips).

World: meters, right-handed, z up, tray top at z = 0, origin at the tray centre.
Cameras: OpenCV convention (x right, y down, z forward) everywhere except inside
the renderer, which converts with :func:`cv_to_gl`.
"""
from __future__ import annotations

import numpy as np

#: flips y and z: OpenCV camera axes <-> OpenGL camera axes (x right, y up, z back)
_CV_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def mm_to_m(x):
    """Millimetres -> metres (float64 array of the same shape)."""
    return np.asarray(x, dtype=np.float64) / 1000.0


def m_to_mm(x):
    """Metres -> millimetres (float64 array of the same shape)."""
    return np.asarray(x, dtype=np.float64) * 1000.0


def cv_to_gl(T_world_from_cam_cv: np.ndarray) -> np.ndarray:
    """(4, 4) camera pose with OpenCV axes -> the same pose with OpenGL axes."""
    return np.asarray(T_world_from_cam_cv, dtype=np.float64) @ _CV_GL


def gl_to_cv(T_world_from_cam_gl: np.ndarray) -> np.ndarray:
    """Inverse of :func:`cv_to_gl`."""
    return np.asarray(T_world_from_cam_gl, dtype=np.float64) @ _CV_GL


def cv_principal_point_to_gl(cx: float, cy: float) -> tuple[float, float]:
    """OpenCV puts pixel (u, v)'s centre at integer coordinates; GL window
    coordinates put it at (u + 0.5, v + 0.5). pyrender's IntrinsicsCamera maps
    u = fx x/z + cx straight to window coordinates, so shift by half a pixel."""
    return cx + 0.5, cy + 0.5


def look_at(position: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) T_world_from_cam (OpenCV axes) of a camera at ``position`` looking at
    ``target``; image "up" (-y) points as close to ``up`` as possible."""
    p = np.asarray(position, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - p
    n = np.linalg.norm(z)
    if n == 0:
        raise ValueError("look_at: position equals target")
    z /= n
    up = np.asarray(up, dtype=np.float64)
    x = np.cross(z, up)  # cv x = forward x up ... gives right when y is down
    if np.linalg.norm(x) < 1e-9:  # looking along up: pick another up
        x = np.cross(z, np.array([0.0, 1.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, p
    return T


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) OpenCV camera matrix K from focal lengths and principal point, pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def distort_normalized(x: np.ndarray, y: np.ndarray, dist) -> tuple[np.ndarray, np.ndarray]:
    """Brown-Conrady (OpenCV k1 k2 p1 p2 k3) on normalized image coordinates."""
    k1, k2, p1, p2, k3 = (list(dist) + [0.0] * 5)[:5]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort_normalized(xd: np.ndarray, yd: np.ndarray, dist, iterations: int = 30):
    """Inverse of :func:`distort_normalized` by fixed-point iteration (as OpenCV's
    undistortPoints); converges for the distortion of real lenses."""
    k1, k2, p1, p2, k3 = (list(dist) + [0.0] * 5)[:5]
    x, y = np.array(xd, dtype=np.float64), np.array(yd, dtype=np.float64)
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


def project(K: np.ndarray, T_world_from_cam: np.ndarray, points_world: np.ndarray, dist=None):
    """Projection through a pinhole (and Brown-Conrady ``dist`` if given).
    points (n, 3) meters -> (uv (n, 2) pixels, z (n,) meters). Pixel centres are at
    integer (u, v) (OpenCV)."""
    T_cam_from_world = np.linalg.inv(T_world_from_cam)
    p = np.asarray(points_world, dtype=np.float64) @ T_cam_from_world[:3, :3].T + T_cam_from_world[:3, 3]
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xn, yn = p[:, 0] / z, p[:, 1] / z
    if dist is not None and any(dist):
        xn, yn = distort_normalized(xn, yn, dist)
    uv = np.stack([xn * K[0, 0] + K[0, 2], yn * K[1, 1] + K[1, 2]], axis=1)
    return uv, z


def unproject(depth_m: np.ndarray, K: np.ndarray, T_world_from_cam: np.ndarray, dist=None):
    """Depth image (h, w) meters (0 = no return) -> (n, 3) world points and (n, 2)
    integer pixel coords (u, v) of the valid pixels (undistorting with ``dist``)."""
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u].astype(np.float64)
    xn, yn = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    if dist is not None and any(dist):
        xn, yn = undistort_normalized(xn, yn, dist)
    x = xn * z
    y = yn * z
    pc = np.stack([x, y, z], axis=1)
    pw = pc @ T_world_from_cam[:3, :3].T + T_world_from_cam[:3, 3]
    return pw, np.stack([u, v], axis=1)


def kelvin_to_rgb(t_kelvin: float) -> tuple[float, float, float]:
    """Approximate linear RGB (max channel 1) of a black body at t_kelvin
    (Tanner Helland's fit, 1000-40000 K)."""
    t = np.clip(t_kelvin, 1000.0, 40000.0) / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b]) / 255.0, 0, 1) ** 2.2  # sRGB-ish -> linear
    rgb = rgb / rgb.max()
    return tuple(float(c) for c in rgb)
