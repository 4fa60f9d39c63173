"""Physics placement: drop products onto the booth tray with pybullet and let them settle.

World frame: meters, z up, tray floor top at z = 0, origin at the tray centre.

Each product becomes one rigid pybullet body whose collision shape is a compound
of convex pieces. Pybullet puts a body's centre of mass at its base frame origin
and its inertia on the base frame axes, so every product gets a *body frame*:
origin at the centre of mass, axes along the principal axes of inertia. The item
frame (the frame of ``Product.mesh``) is related to it by a fixed rigid transform
``T_body_from_item``; :class:`Placement` always reports ``T_world_from_item``.

Determinism: every settle call resets the pybullet world and replays the same
sequence of calls, and every random choice draws from the rng passed in, so the
same products and rng seed give bit-identical placements whatever the world did
before.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection
from scipy.spatial.transform import Rotation

from damage_ops.product import Product
from simulator.config.materials import Material
from simulator.config.rig import Tray
from simulator.core.errors import PlacementError


def _quiet_import_pybullet():
    """``import pybullet`` without its "pybullet build time" banner, which the C
    module writes to stderr on import (even under --quiet, in the middle of
    the progress bar). fds 1 and 2 point at /dev/null during the import only
    (C stdio flushed before they are restored, for a banner on stdout)."""

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no such fd: nothing to protect
        import pybullet
        return pybullet
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in saved:
            os.dup2(null, fd)
        os.close(null)
        import pybullet
        try:
            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError):
            pass
    finally:
        for fd, orig in saved.items():
            os.dup2(orig, fd)
            os.close(orig)
    return pybullet


p = _quiet_import_pybullet()

GRAVITY_M_S2 = 9.81

# Rest test: every item slower than this (mean over the last REST_STEPS steps) for
# REST_STEPS consecutive steps.
REST_LIN_SPEED_M_S = 0.005
REST_ANG_SPEED_RAD_S = 0.05
REST_STEPS = 24

# Bullet pads convex hulls outward by the collision margin (pybullet's default is
# 1 mm, which makes items hover 1 mm above the tray). Boxes (the tray) keep their
# margin inside. 0.1 mm keeps GJK/EPA robust and the hover negligible.
COLLISION_MARGIN_M = 1e-4

# On-tray check after settling.
ON_TRAY_TOL_M = 0.003         # lowest point within this of z = 0 counts as on the floor
FOOTPRINT_TOL_M = 0.003       # mesh may poke this far past the floor edge (contact slop)

# A watertight part whose hull is this much bigger than the part is decomposed.
CONCAVITY_RATIO = 1.15

DEFAULT_FRICTION = 0.6
DEFAULT_RESTITUTION = 0.05

# Rolling resistance lever arm (m) and spinning friction of items, so polygonal
# cylinders stop rolling. Bullet combines them as r_a * mu_b + r_b * mu_a (mu =
# lateral friction), so the tray keeps its rolling/spinning friction at 0.
ROLLING_FRICTION_M = 5e-4
SPINNING_FRICTION_M = 0.0

# Draws of an item's drop xy to avoid items already placed before stacking it on them.
SPREAD_TRIES = 20

# Drop height of the lowest point above the floor (or the rim, or the previous item): uniform in this range.
DROP_GAP_M = (0.02, 0.10)

# Convex decomposition results by content hash of the part (vertices, faces, params);
# bounded (oldest out first): damaged parts are new meshes, a long run would grow it.
_DECOMPOSITION_CACHE: dict[str, tuple[np.ndarray, ...]] = {}
DECOMPOSITION_CACHE_SIZE = 64
_VHACD_PARAMS = {"resolution": 100_000, "concavity": 0.0025, "maxNumVerticesPerCH": 64,
                 "minVolumePerCH": 1e-4}


@dataclass(frozen=True)
class Placement:
    """Where one product came to rest.

    T_world_from_item: (4, 4) float64, maps item-frame points (meters) to world
    settled: the rest test passed before the step cap
    steps: simulation steps taken (whole scene, last attempt)
    lin_speed: m/s of the centre of mass at the end (mean over the last REST_STEPS steps)
    ang_speed: rad/s at the end (mean over the last REST_STEPS steps)
    min_z_m: lowest mesh vertex in world z after settling, meters
    """

    T_world_from_item: np.ndarray
    settled: bool
    steps: int
    lin_speed: float
    ang_speed: float
    min_z_m: float


# -- conventions --------------------------------------------------------------

def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """Pybullet quaternion (x, y, z, w) -> (w, x, y, z), float64."""
    q = np.asarray(q, dtype=np.float64)
    return np.array([q[3], q[0], q[1], q[2]])


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> pybullet quaternion (x, y, z, w), float64."""
    q = np.asarray(q, dtype=np.float64)
    return np.array([q[1], q[2], q[3], q[0]])


def matrix_from_quat_wxyz(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> (3, 3) float64 rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quat_wxyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> unit quaternion (w, x, y, z) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    # Shepperd's method: pivot on the largest of w, x, y, z for accuracy.
    k = int(np.argmax([tr, R[0, 0], R[1, 1], R[2, 2]]))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def matrix_from_pybullet_pose(pos, quat_xyzw) -> np.ndarray:
    """Pybullet (position, quaternion x y z w) -> (4, 4) float64 transform."""
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat_wxyz(quat_xyzw_to_wxyz(quat_xyzw))
    T[:3, 3] = pos
    return T


def pybullet_pose_from_matrix(T: np.ndarray) -> tuple[list[float], list[float]]:
    """(4, 4) rigid transform -> pybullet (position, quaternion x y z w) lists."""
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].tolist(), quat_wxyz_to_xyzw(quat_wxyz_from_matrix(T[:3, :3])).tolist()


def _uniform_inside(rng: np.random.Generator, a: float, b: float) -> float:
    """Uniform in [a, b]; the midpoint when the interval is empty (always one draw)."""
    u = rng.uniform(0.0, 1.0)
    return float(a + u * (b - a)) if b >= a else 0.5 * (a + b)


def _drop_range(size: float, radius: float, lo: float, hi: float) -> tuple[float, float]:
    """Range of the centre along one tray axis: bounding sphere inside the floor if it
    fits, else the footprint [lo, hi] (relative to the centre) inside the floor."""
    if radius <= size / 2:
        return -size / 2 + radius, size / 2 - radius
    return -size / 2 - lo, size / 2 - hi


#: an item is flat when its thinnest extent is below this fraction of its longest
FLAT_RATIO = 0.2
#: largest tilt (degrees) of a flat item's thin axis from vertical at the drop
FLAT_TILT_DEG = 20.0


def _extents_axes(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extents (3,) of points (n, 3) along their principal axes (columns of the
    (3, 3) matrix returned second), thinnest first."""
    c = pts - pts.mean(0)
    _, vecs = np.linalg.eigh(c.T @ c)
    ext = np.ptp(c @ vecs, axis=0)
    order = np.argsort(ext)
    return ext[order], vecs[:, order]


def is_flat(pts: np.ndarray) -> bool:
    """True when the body points (n, 3) are a flat item: thinnest principal
    extent < :data:`FLAT_RATIO` x the longest."""
    ext, _ = _extents_axes(pts)
    return bool(ext[0] < FLAT_RATIO * ext[2])


def flat_drop_rotation(rng: np.random.Generator, pts: np.ndarray,
                       fit: tuple[float, float] | None = None) -> np.ndarray:
    """(3, 3) drop rotation of a flat item (body points ``pts`` (n, 3)): its thin
    principal axis turned to vertical, up or down with equal odds, tilted by up
    to :data:`FLAT_TILT_DEG` about a random horizontal axis, at a uniformly
    random yaw. ``fit``: the floor (x, y) in meters; a yaw whose footprint does
    not fit is redrawn (up to 8 times), then the long axis is laid along the
    floor's long axis (within 5 degrees), as a person sets a big envelope down."""
    _, axes = _extents_axes(pts)
    n = axes[:, 0]
    a = axes[:, 2]  # long axis, to fix the in-plane frame
    B = np.stack([a, np.cross(n, a), n], axis=1)  # body -> frame with n as z (proper rotation)
    flip = np.diag([1.0, -1.0, -1.0]) if rng.uniform() < 0.5 else np.eye(3)
    tilt_axis = rng.uniform(0, 2 * np.pi)
    tilt = np.radians(FLAT_TILT_DEG) * np.sqrt(rng.uniform())
    Rt = _rot(np.array([np.cos(tilt_axis), np.sin(tilt_axis), 0.0]), tilt)
    z = np.array([0.0, 0.0, 1.0])
    for _ in range(8):
        R = Rt @ _rot(z, rng.uniform(0, 2 * np.pi)) @ flip @ B.T
        if fit is None:
            return R
        ext = np.ptp(pts @ R.T, axis=0)
        if ext[0] <= fit[0] and ext[1] <= fit[1]:
            return R
    base = 0.0 if fit[0] >= fit[1] else np.pi / 2
    yaw = base + rng.choice([0.0, np.pi]) + np.radians(rng.uniform(-5.0, 5.0))
    return Rt @ _rot(z, yaw) @ flip @ B.T


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation about a unit axis by angle (radians)."""
    return Rotation.from_rotvec(np.asarray(axis, float) * angle).as_matrix()


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random (3, 3) rotation (normalised 4-d Gaussian quaternion)."""
    q = rng.standard_normal(4)
    while np.linalg.norm(q) < 1e-9:  # probability zero; keeps the division safe
        q = rng.standard_normal(4)
    return matrix_from_quat_wxyz(q)


# -- collision geometry -----------------------------------------------------------

def _hull_vertices(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)[ConvexHull(points).vertices]


def _part_meshes(product: Product) -> list[trimesh.Trimesh]:
    pid = np.asarray(product.part_id)
    out = []
    for k in np.unique(pid):
        sub = trimesh.Trimesh(vertices=product.mesh.vertices, faces=product.mesh.faces[pid == k], process=False)
        sub.remove_unreferenced_vertices()
        sub.merge_vertices()
        out.append(sub)
    return out


def _write_obj(path: Path, pieces: list[np.ndarray]) -> None:
    """One OBJ object per convex piece: pybullet loads it as a compound of hulls."""
    lines, offset = [], 1
    for i, pts in enumerate(pieces):
        hull = ConvexHull(pts)
        lines.append(f"o piece_{i}")
        lines.extend("v %.17g %.17g %.17g" % tuple(v) for v in pts)
        lines.extend("f %d %d %d" % tuple(s + offset) for s in hull.simplices)
        offset += len(pts)
    path.write_text("\n".join(lines) + "\n")


def _read_obj_objects(path: Path) -> list[np.ndarray]:
    """Vertices of each ``o`` object of an OBJ (V-HACD output)."""
    pieces, cur = [], None
    for line in path.read_text().splitlines():
        if line.startswith("o "):
            cur = []
            pieces.append(cur)
        elif line.startswith("v "):
            if cur is None:
                cur = []
                pieces.append(cur)
            cur.append([float(t) for t in line.split()[1:4]])
    return [np.asarray(c, dtype=np.float64) for c in pieces if len(c) >= 4]


@contextlib.contextmanager
def _quiet_stdout():
    """V-HACD prints its progress from C to fd 1; keep it out of our output."""
    try:
        fd = os.dup(1)
    except OSError:  # no real stdout (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def _clip_to_hull(piece: np.ndarray, hull: ConvexHull) -> np.ndarray:
    """Intersect a convex piece with the part's convex hull.

    V-HACD voxelises, so its pieces bulge about half a voxel past the surface;
    clipping them by the hull puts every outer face back on the true surface (the
    faces an item rests on), so items do not stand on voxel padding.
    """
    try:
        ph = ConvexHull(piece)
    except Exception:
        return piece
    eq = np.vstack([ph.equations, hull.equations])  # rows: n . x + d <= 0
    # Chebyshev centre: an interior point as far as possible from every plane.
    norms = np.linalg.norm(eq[:, :3], axis=1)
    res = linprog(c=[0, 0, 0, -1], A_ub=np.hstack([eq[:, :3], norms[:, None]]), b_ub=-eq[:, 3],
                  bounds=[(None, None)] * 3 + [(0, None)], method="highs")
    if not res.success or res.x[3] < 1e-6:
        return piece
    try:
        pts = HalfspaceIntersection(eq, res.x[:3]).intersections
        return _hull_vertices(pts)
    except Exception:
        return piece


def convex_decomposition(mesh: trimesh.Trimesh) -> tuple[np.ndarray, ...]:
    """Convex pieces of a concave mesh with pybullet's V-HACD, clipped to its hull.

    Returns a tuple of (k, 3) float64 arrays (meters, mesh frame). Cached in a
    module-level dict by a hash of the vertices, faces and V-HACD parameters.
    """
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    key = hashlib.sha256(v.tobytes() + f.tobytes() + repr(sorted(_VHACD_PARAMS.items())).encode()).hexdigest()
    hit = _DECOMPOSITION_CACHE.get(key)
    if hit is not None:
        return hit
    with tempfile.TemporaryDirectory(prefix="damagesim_vhacd_") as tmp:
        src, dst, log = Path(tmp) / "in.obj", Path(tmp) / "out.obj", Path(tmp) / "log.txt"
        src.write_text("".join("v %.17g %.17g %.17g\n" % tuple(x) for x in v)
                       + "".join("f %d %d %d\n" % tuple(t + 1) for t in f))
        with _quiet_stdout():
            p.vhacd(str(src), str(dst), str(log), **_VHACD_PARAMS)
        raw = _read_obj_objects(dst) if dst.exists() else []
    hull = ConvexHull(v)
    pieces = tuple(_clip_to_hull(pc, hull) for pc in raw)
    if not pieces:  # V-HACD failed: the hull is a safe, if coarse, answer
        pieces = (v[hull.vertices],)
    if len(_DECOMPOSITION_CACHE) >= DECOMPOSITION_CACHE_SIZE:
        _DECOMPOSITION_CACHE.pop(next(iter(_DECOMPOSITION_CACHE)))
    _DECOMPOSITION_CACHE[key] = pieces
    return pieces


def collision_pieces(product: Product) -> tuple[np.ndarray, ...]:
    """Convex collision pieces of a product, (k, 3) float64 meters, item frame.

    ``product.collision`` when set; else per part its convex hull, or a V-HACD
    decomposition for watertight parts whose hull exceeds the part volume by
    more than :data:`CONCAVITY_RATIO`.
    """
    if product.collision:
        return tuple(np.asarray(c, dtype=np.float64) for c in product.collision)
    pieces: list[np.ndarray] = []
    for part in _part_meshes(product):
        if len(part.vertices) < 4:
            continue
        hull_v = _hull_vertices(part.vertices)
        concave = False
        if part.is_watertight and part.volume > 0:
            concave = ConvexHull(part.vertices).volume > CONCAVITY_RATIO * part.volume
        pieces.extend(convex_decomposition(part) if concave else [hull_v])
    if not pieces:
        raise PlacementError(f"product {product.sku!r}: no part has enough vertices for a collision shape")
    return tuple(pieces)


@dataclass(frozen=True)
class BodyModel:
    """A product prepared for pybullet (all in the body frame: COM origin, principal axes)."""

    sku: str
    pieces_body: tuple[np.ndarray, ...]
    T_body_from_item: np.ndarray
    inertia_diag: np.ndarray      # kg m^2, principal moments
    mass_kg: float
    radius_m: float               # bounding radius about the COM
    friction: float
    restitution: float
    obj_name: str                 # content hash: the OBJ file name for this compound


def _mass_properties(product: Product, pieces: tuple[np.ndarray, ...]) -> tuple[float, np.ndarray, np.ndarray]:
    """(volume m^3, centre of mass (3,), inertia about it (3, 3) at unit density)."""
    m = product.mesh
    if m.is_watertight and m.volume > 1e-12:
        return float(m.volume), np.asarray(m.center_mass, float), np.asarray(m.moment_inertia, float)
    # Not closed: treat the union of the convex pieces as solid (overlaps double count a little).
    hulls = [trimesh.convex.convex_hull(pc) for pc in pieces]
    vols = np.array([h.volume for h in hulls])
    coms = np.array([h.center_mass for h in hulls])
    vol = float(vols.sum())
    com = (vols[:, None] * coms).sum(0) / vol
    inertia = np.zeros((3, 3))
    for h, d in zip(hulls, coms - com):
        inertia += np.asarray(h.moment_inertia) + h.volume * (d @ d * np.eye(3) - np.outer(d, d))
    return vol, com, inertia


def _material_of(product: Product, materials: dict[str, Material] | None) -> tuple[float, float]:
    if materials is None:
        return DEFAULT_FRICTION, DEFAULT_RESTITUTION
    areas = np.bincount(np.asarray(product.part_id), weights=product.mesh.area_faces, minlength=len(product.parts))
    name = product.parts[int(np.argmax(areas))].material
    if name not in materials:
        raise ValueError(f"product {product.sku!r}: material {name!r} is not in the materials library "
                         f"(known: {sorted(materials)})")
    return materials[name].friction, materials[name].restitution


def body_model(product: Product, materials: dict[str, Material] | None = None) -> BodyModel:
    """Prepare one product for pybullet: collision pieces, mass properties, body frame."""
    if not product.mass_kg > 0:
        raise ValueError(f"product {product.sku!r}: mass_kg must be > 0, got {product.mass_kg!r}")
    pieces = collision_pieces(product)
    vol, com, inertia = _mass_properties(product, pieces)
    evals, R = np.linalg.eigh(0.5 * (inertia + inertia.T))
    if np.linalg.det(R) < 0:
        R[:, 2] = -R[:, 2]
    density = product.mass_kg / vol
    # Very thin items have a near-zero moment; a floor keeps the solver stable.
    moments = np.maximum(evals * density, 1e-2 * evals.max() * density)
    T_body_from_item = np.eye(4)
    T_body_from_item[:3, :3] = R.T
    T_body_from_item[:3, 3] = -R.T @ com
    pieces_body = tuple((pc - com) @ R for pc in pieces)
    radius = max(float(np.linalg.norm((np.asarray(product.mesh.vertices) - com), axis=1).max()),
                 max(float(np.linalg.norm(pc, axis=1).max()) for pc in pieces_body))
    friction, restitution = _material_of(product, materials)
    h = hashlib.sha256()
    for pc in pieces_body:
        h.update(np.ascontiguousarray(pc).tobytes())
    return BodyModel(product.sku, pieces_body, T_body_from_item, moments, float(product.mass_kg),
                      radius, float(friction), float(restitution), h.hexdigest()[:32] + ".obj")


# -- the world ------------------------------------------------------------------------

class PhysicsWorld:
    """Owns one pybullet DIRECT client (context manager, :meth:`close`).

    Reused across captures: each :meth:`settle` call resets the simulation, so
    results depend only on the inputs.

    timestep: seconds per step; max_steps: step cap per attempt;
    substeps: pybullet sub-steps per step; linear_damping, angular_damping:
    pybullet velocity damping (1/s), a little settles items faster (air drag,
    rolling resistance) without changing where they land much.
    """

    def __init__(self, *, timestep: float = 1 / 240, max_steps: int = 2400, substeps: int = 1,
                 solver_iterations: int = 50, linear_damping: float = 0.05, angular_damping: float = 0.2):
        if not timestep > 0:
            raise ValueError(f"timestep must be > 0 seconds, got {timestep!r}")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
        if int(substeps) < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps!r}")
        if linear_damping < 0 or angular_damping < 0:
            raise ValueError(f"damping must be >= 0, got linear {linear_damping!r}, angular {angular_damping!r}")
        self.timestep = float(timestep)
        self.max_steps = int(max_steps)
        self.substeps = int(substeps)
        self.solver_iterations = int(solver_iterations)
        self.linear_damping = float(linear_damping)
        self.angular_damping = float(angular_damping)
        self._tmp = tempfile.TemporaryDirectory(prefix="damagesim_physics_")
        self.client = p.connect(p.DIRECT)
        # pybullet keeps every .obj it parses, by file name, for the life of the
        # process (resetSimulation does not clear it): a damaged product is a new
        # file, so a long run grew ~70 kB per capture. Off = parse each time (a few kB).
        p.setPhysicsEngineParameter(enableFileCaching=0, physicsClientId=self.client)
        self.tray_body: int | None = None

    # context manager -------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect the pybullet client and remove the temporary mesh files. Idempotent."""
        if self.client is not None and self.client >= 0:
            with contextlib.suppress(Exception):
                p.disconnect(physicsClientId=self.client)
            self.client = None
        self._tmp.cleanup()

    def __enter__(self) -> "PhysicsWorld":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # scene building (public so tests and other placers can drive the same world) -------
    def reset_scene(self, tray: Tray, materials: dict[str, Material] | None = None) -> int:
        """Clear the world and build the tray: a static floor box plus rim walls. Returns its body id."""
        c = self.client
        if c is None:
            raise RuntimeError("PhysicsWorld is closed")
        p.resetSimulation(physicsClientId=c)
        p.setGravity(0, 0, -GRAVITY_M_S2, physicsClientId=c)
        p.setPhysicsEngineParameter(fixedTimeStep=self.timestep, numSubSteps=self.substeps,
                                    numSolverIterations=self.solver_iterations,
                                    deterministicOverlappingPairs=1, physicsClientId=c)
        sx, sy = (float(s) for s in tray.size_m)
        t, h, w = float(tray.thickness_m), float(tray.rim_height_m), float(tray.rim_width_m)
        half = [[sx / 2, sy / 2, t / 2]]
        pos = [[0.0, 0.0, -t / 2]]
        if h > 0 and w > 0:
            zc, hz = (h - t) / 2, (h + t) / 2  # walls span z in [-t, h]
            half += [[w / 2, sy / 2 + w, hz]] * 2 + [[sx / 2, w / 2, hz]] * 2
            pos += [[sx / 2 + w / 2, 0, zc], [-sx / 2 - w / 2, 0, zc],
                    [0, sy / 2 + w / 2, zc], [0, -sy / 2 - w / 2, zc]]
        shape = p.createCollisionShapeArray(shapeTypes=[p.GEOM_BOX] * len(half), halfExtents=half,
                                            collisionFramePositions=pos, physicsClientId=c)
        body = p.createMultiBody(baseMass=0, baseCollisionShapeIndex=shape, physicsClientId=c)
        friction, restitution = DEFAULT_FRICTION, DEFAULT_RESTITUTION
        if materials is not None:
            if tray.material not in materials:
                raise ValueError(f"tray material {tray.material!r} is not in the materials library "
                                 f"(known: {sorted(materials)})")
            friction, restitution = materials[tray.material].friction, materials[tray.material].restitution
        p.changeDynamics(body, -1, lateralFriction=friction, restitution=restitution, physicsClientId=c)
        self.tray_body = body
        return body

    def add_body(self, model: BodyModel, T_world_from_item: np.ndarray) -> int:
        """Add a prepared product at a pose; returns the pybullet body id."""
        c = self.client
        obj = Path(self._tmp.name) / model.obj_name
        if not obj.exists():
            _write_obj(obj, list(model.pieces_body))
        shape = p.createCollisionShape(p.GEOM_MESH, fileName=str(obj), physicsClientId=c)
        if shape < 0:
            raise PlacementError(f"product {model.sku!r}: pybullet could not build its collision shape")
        pos, quat = pybullet_pose_from_matrix(np.asarray(T_world_from_item) @ np.linalg.inv(model.T_body_from_item))
        body = p.createMultiBody(baseMass=model.mass_kg, baseCollisionShapeIndex=shape,
                                 basePosition=pos, baseOrientation=quat, physicsClientId=c)
        p.changeDynamics(body, -1, lateralFriction=model.friction, restitution=model.restitution,
                         rollingFriction=ROLLING_FRICTION_M, spinningFriction=SPINNING_FRICTION_M,
                         linearDamping=self.linear_damping, angularDamping=self.angular_damping,
                         localInertiaDiagonal=model.inertia_diag.tolist(),
                         collisionMargin=COLLISION_MARGIN_M,
                         activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=c)
        return body

    def step(self) -> None:
        """Advance the simulation by one time step."""
        p.stepSimulation(physicsClientId=self.client)

    def pose(self, body: int, model: BodyModel) -> np.ndarray:
        """Current (4, 4) T_world_from_item of a body."""
        pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return matrix_from_pybullet_pose(pos, quat) @ model.T_body_from_item

    def speeds(self, body: int) -> tuple[float, float]:
        """(linear m/s of the COM, angular rad/s)."""
        lin, ang = p.getBaseVelocity(body, physicsClientId=self.client)
        return float(np.linalg.norm(lin)), float(np.linalg.norm(ang))

    # placement -------------------------------------------------------------------------
    def settle(self, products: list[Product], tray: Tray, rng: np.random.Generator,
               materials: dict[str, Material] | None = None, max_attempts: int = 20) -> list[Placement]:
        """Drop the products onto the tray one after another and return where they rest.

        Item k is dropped onto the scene left by items 0..k-1 (re-created at rest
        at their settled poses) and the scene is simulated until everything rests.
        A drop fails when the scene does not rest within ``max_steps`` or any item
        ends off the tray; it is then redrawn from ``rng`` (fresh orientation and
        position), at most ``max_attempts`` times per item, after which
        :class:`PlacementError` names the SKU and what failed.

        The default cap is generous because a drop is cheap (a few ms) while a big
        item on a small tray often topples over the rim: a 300 x 200 mm box on the
        600 x 400 mm booth tray ends on the rim in about half of its drops.

        Returns one :class:`Placement` per product, in order. ``steps`` is the
        number of steps of the drop that placed that item.
        """
        if int(max_attempts) < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        for old in Path(self._tmp.name).glob("*.obj"):  # the last scene's shapes: one file per product
            old.unlink()
        models = [body_model(prod, materials) for prod in products]
        placed: list[Placement] = []
        for k in range(len(products)):
            failure = ""
            for _ in range(int(max_attempts)):
                result, failure = self._drop(products[:k + 1], models[:k + 1], placed, tray, rng, materials)
                if result is not None:
                    break
            else:
                raise PlacementError(
                    f"could not place item {k} of {len(products)} (SKU {products[k].sku!r}) on the "
                    f"{tray.size_m[0]:g} x {tray.size_m[1]:g} m tray in {int(max_attempts)} attempts of at most "
                    f"{self.max_steps} steps; last attempt: {failure}")
            # Earlier items keep the step count of their own drop, with the poses after this one.
            placed = [Placement(r.T_world_from_item, r.settled, old.steps, r.lin_speed, r.ang_speed, r.min_z_m)
                      for r, old in zip(result[:-1], placed)] + [result[-1]]
        return placed

    def _drop_pose(self, model: BodyModel, tray: Tray, rng: np.random.Generator,
                   occupied: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """A drop pose (T_world_from_item) for one item.

        Uniformly random orientation, except for flat items (a mailer, a pouch:
        :func:`is_flat`), which are dropped near face-down (:func:`flat_drop_rotation`):
        a flat item dropped on its edge topples by up to its length, and a big one
        lands on the rim in most drops. xy keeps the bounding sphere inside the floor
        where it fits (else the rotated footprint, else centred) and is redrawn up to
        :data:`SPREAD_TRIES` times to miss the footprints of the items already on the
        tray (``occupied``: world AABBs (lo, hi)). The lowest point starts a few cm
        above the floor, the rim where the footprint does not fit inside it, and every
        item it still overlaps, so it never starts interpenetrating anything.
        """
        sx, sy = (float(s) for s in tray.size_m)
        pts = np.concatenate(model.pieces_body)
        R = flat_drop_rotation(rng, pts, (sx, sy)) if is_flat(pts) else random_rotation(rng)
        pts = pts @ R.T
        lo, hi = pts.min(0), pts.max(0)
        ranges = [(_drop_range(sx, model.radius_m, lo[0], hi[0]), _drop_range(sy, model.radius_m, lo[1], hi[1])),
                  ((-sx / 2 - lo[0], sx / 2 - hi[0]), (-sy / 2 - lo[1], sy / 2 - hi[1]))]
        for i in range(SPREAD_TRIES):
            # First half of the tries keeps clear of the rim; then use the whole floor.
            rx, ry = ranges[0] if i < SPREAD_TRIES // 2 else ranges[1]
            xy = np.array([_uniform_inside(rng, *rx), _uniform_inside(rng, *ry)])
            under = [b_hi[2] for b_lo, b_hi in occupied
                     if np.all(xy + lo[:2] < b_hi[:2]) and np.all(b_lo[:2] < xy + hi[:2])]
            if not under:
                break
        fits = (hi[0] - lo[0]) <= sx and (hi[1] - lo[1]) <= sy
        floor = max([0.0 if fits else float(tray.rim_height_m)] + under)
        T_world_from_body = np.eye(4)
        T_world_from_body[:3, :3] = R
        T_world_from_body[:3, 3] = (xy[0], xy[1], floor + rng.uniform(*DROP_GAP_M) - lo[2])
        return T_world_from_body @ model.T_body_from_item

    def _run_until_rest(self, bodies: list[int], tray: Tray) -> tuple[int, int, list[tuple[float, float]]]:
        """Step until the rest test passes or ``max_steps``.

        Speeds are the mean over the last :data:`REST_STEPS` steps (pose change over
        that window / its duration): Bullet's contact solver can leave a resting body
        with a velocity that flips sign every step while its pose stays put, which an
        instantaneous test would never call rest. Rest = every body under both
        thresholds for REST_STEPS consecutive steps. Returns (steps, consecutive
        still steps, [(lin m/s, ang rad/s)] per body); steps = -1 when a body fell
        off the tray (stopped early: it would never rest).
        """
        c, W = self.client, REST_STEPS
        fell_below = -float(tray.thickness_m) - 0.05

        def poses():
            st = [p.getBasePositionAndOrientation(b, physicsClientId=c) for b in bodies]
            return np.array([s[0] for s in st]), np.array([s[1] for s in st])

        history = [poses()]
        still, steps = 0, 0
        speeds = [(np.inf, np.inf)] * len(bodies)
        while steps < self.max_steps:
            self.step()
            steps += 1
            history.append(poses())
            if len(history) > W + 1:
                history.pop(0)
            pos, quat = history[-1]
            if np.any(pos[:, 2] < fell_below):
                return -1, 0, speeds
            if len(history) == W + 1:
                pos0, quat0 = history[0]
                dt = W * self.timestep
                lin = np.linalg.norm(pos - pos0, axis=1) / dt
                ang = 2 * np.arccos(np.clip(np.abs(np.sum(quat * quat0, axis=1)), 0.0, 1.0)) / dt
                speeds = list(zip(lin.tolist(), ang.tolist()))
                if np.all(lin < REST_LIN_SPEED_M_S) and np.all(ang < REST_ANG_SPEED_RAD_S):
                    still += 1
                    if still >= W:
                        break
                else:
                    still = 0
        return steps, still, speeds

    def _drop(self, products, models, placed, tray, rng, materials) -> tuple[list[Placement] | None, str]:
        """Re-create the placed items at rest, drop the last product, simulate, check."""
        self.reset_scene(tray, materials)
        bodies, occupied = [], []
        for m, pl in zip(models, placed):
            bodies.append(self.add_body(m, pl.T_world_from_item))
            T_world_from_body = pl.T_world_from_item @ np.linalg.inv(m.T_body_from_item)
            w = np.concatenate(m.pieces_body) @ T_world_from_body[:3, :3].T + T_world_from_body[:3, 3]
            occupied.append((w.min(0), w.max(0)))
        bodies.append(self.add_body(models[-1], self._drop_pose(models[-1], tray, rng, occupied)))
        dropped = products[-1].sku
        steps, still, speeds = self._run_until_rest(bodies, tray)
        if steps < 0:
            k = int(np.argmin([p.getBasePositionAndOrientation(b, physicsClientId=self.client)[0][2] for b in bodies]))
            return None, f"{products[k].sku!r} fell off the tray after dropping {dropped!r}"
        if still < REST_STEPS:
            k = int(np.argmax([ls / REST_LIN_SPEED_M_S + a / REST_ANG_SPEED_RAD_S for ls, a in speeds]))
            return None, (f"scene did not come to rest within {self.max_steps} steps after dropping {dropped!r} "
                          f"({products[k].sku!r} still at {speeds[k][0]:.4f} m/s, {speeds[k][1]:.3f} rad/s)")
        sx, sy = (float(s) for s in tray.size_m)
        out = []
        for prod, m, b, (lin, ang) in zip(products, models, bodies, speeds):
            T = self.pose(b, m)
            v = np.asarray(prod.mesh.vertices) @ T[:3, :3].T + T[:3, 3]
            min_z = float(v[:, 2].min())
            over = max(np.abs(v[:, 0]).max() - sx / 2, np.abs(v[:, 1]).max() - sy / 2)
            if not over <= FOOTPRINT_TOL_M:
                return None, (f"{prod.sku!r} ends {over * 1000:.1f} mm past the tray floor edge (on the rim "
                              f"or off the tray) after dropping {dropped!r}")
            on_item = any(p.getContactPoints(bodyA=b, bodyB=o, physicsClientId=self.client)
                          for o in bodies if o != b)
            if min_z < -ON_TRAY_TOL_M or (min_z > ON_TRAY_TOL_M and not on_item):
                return None, (f"{prod.sku!r} has its lowest point at z = {min_z * 1000:.1f} mm, not resting on "
                              f"the tray floor or another item, after dropping {dropped!r}")
            out.append(Placement(T_world_from_item=T, settled=True, steps=steps,
                                 lin_speed=lin, ang_speed=ang, min_z_m=min_z))
        return out, ""


def settle(products: list[Product], tray: Tray, rng: np.random.Generator,
           materials: dict[str, Material] | None = None, *, max_attempts: int = 20, **world_kw) -> list[Placement]:
    """One-shot :meth:`PhysicsWorld.settle` in a fresh world (``world_kw`` go to the world)."""
    with PhysicsWorld(**world_kw) as world:
        return world.settle(products, tray, rng, materials, max_attempts=max_attempts)
