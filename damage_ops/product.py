"""Core data model shared by products, damage operators and the renderer.

A :class:`Product` is one item: a single triangle mesh made of parts, with
per-face labels carried in ``mesh.face_attributes``:

- ``part_id``  (n,) int32: index into ``Product.parts``
- ``damage_id`` (n,) int32: 0 = intact, k = ``Product.damages[k-1]``
- ``uv``       (n, 3, 2) float32: per face-corner texture coordinates into the
  part's artwork (face corners, not vertices, so closed meshes stay merged and
  watertight while printed artwork can have seams)

Every operation that edits faces must carry all three arrays through explicit
new->old face index maps (see :func:`take_faces`). Coordinates are meters in
the item frame: z up, origin at the centre of the axis-aligned bounding box.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from .taxonomy import CATEGORIES, SEVERITIES
from .taxonomy import part_id as _global_part_id

FACE_KEYS = ("part_id", "damage_id", "uv")
#: optional face attributes, filled with defaults where absent:
#: ``tint`` (n, 3) float32 RGB multiplier on the part's colour/artwork (1 = unchanged;
#: stains darken, scuffs lighten above 1); ``finish`` (n,) int8 index into FINISHES,
#: a surface-finish override (0 = the part's own material)
OPTIONAL_FACE_KEYS = ("tint", "finish")
#: ``core``: the exposed fluted core of cut/torn/crushed board; ``inner_liner``: the
#: lighter inside face of a board (an opened box). New finishes go at the end (ids are stored).
FINISHES: tuple[str, ...] = ("base", "liquid", "powder", "interior", "scuffed", "core", "inner_liner")
FINISH_IDS: dict[str, int] = {n: i for i, n in enumerate(FINISHES)}


def default_face_attribute(key: str, n: int) -> np.ndarray:
    """The default of optional face attribute ``key`` for ``n`` faces: ``tint`` (n, 3)
    float32 ones (unchanged colour), ``finish`` (n,) int8 zeros (the part's own
    material). KeyError for any other key."""
    if key == "tint":
        return np.ones((n, 3), np.float32)
    if key == "finish":
        return np.zeros(n, np.int8)
    raise KeyError(key)


def ensure_optional(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Add default ``tint`` / ``finish`` face attributes where missing (in place)."""
    for k in OPTIONAL_FACE_KEYS:
        if k not in mesh.face_attributes:
            mesh.face_attributes[k] = default_face_attribute(k, len(mesh.faces))
    return mesh


@dataclass(frozen=True)
class Part:
    """One part of a product.

    name: a name from :data:`damage_ops.taxonomy.PART_NAMES` (``body``, ``cap``...)
    material: key into the materials library (``cardboard``, ``clear_plastic``...)
    printed: whether the part shows the product's artwork texture
    """

    name: str
    material: str
    printed: bool = False

    @property
    def global_id(self) -> int:
        return _global_part_id(self.name)


@dataclass(frozen=True)
class DamageRecord:
    """What one damage operator did to a product.

    type: operator name (``crush``, ``puncture``...)
    category: Kaputt category (:data:`damage_ops.taxonomy.CATEGORIES`)
    severity: ``minor`` or ``major`` (from documented size thresholds)
    size: physical size, e.g. ``{"depth_mm": 6.0, "radius_mm": 30.0}``
    n_faces: number of faces labelled with this damage
    region: 3D region in the item frame, ``{"center_m": [x, y, z], "radius_m": r}``
    params: the operator's parameters as given
    """

    type: str
    category: str
    severity: str
    size: dict[str, float]
    n_faces: int
    region: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"DamageRecord.category must be one of {CATEGORIES}, got {self.category!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"DamageRecord.severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON types (sizes as floats, numpy arrays in ``region`` and
        ``params`` as lists), as written to capture.json's ``damages``."""
        return {
            "type": self.type,
            "category": self.category,
            "severity": self.severity,
            "size": {k: float(v) for k, v in self.size.items()},
            "n_faces": int(self.n_faces),
            "region": jsonable(self.region),
            "params": jsonable(self.params),
        }


def jsonable(x: Any) -> Any:
    """Nested dicts/lists/tuples of numpy arrays and scalars -> plain JSON types."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


@dataclass
class Satellite:
    """Geometry that belongs to an item but lies on the tray beside it: a puddle of
    spilled liquid, a heap of powder, a unit that fell out of its box.

    mesh: labelled mesh whose ``part_id`` / ``damage_id`` index the parent product's
        part table and damages; its own frame: z up, lowest point at z = 0, centred
        in x, y (the simulator places it on the tray, ``gap_m`` from the item)
    gap_m: distance between the item's footprint and the satellite's, meters
    kind: ``puddle``, ``heap`` or ``contents``
    """

    mesh: trimesh.Trimesh
    gap_m: float = 0.01
    kind: str = "puddle"


@dataclass
class Product:
    """One item, ready to be damaged, placed and rendered.

    sku: stock-keeping unit id (same SKU = same design and dimensions)
    kind: product kind (``carton``, ``mailer``, ``blister``, ``bottle``, ``pouch``,
        ``multipack``, ``mesh``)
    mesh: trimesh with face attributes ``part_id``, ``damage_id``, ``uv``; meters
    parts: part table indexed by ``part_id``
    artwork: (H, W, 3) uint8 texture shown on printed parts (None = no print)
    damages: damage records; ``damage_id`` k refers to ``damages[k-1]``
    collision: convex pieces for physics, each (k, 3) float64 meters, item frame
    mass_kg: total mass
    dims_mm: nominal outer dimensions (x, y, z) in millimetres
    meta: free-form generator parameters (written to capture metadata)
    satellites: pieces lying on the tray beside the item (see :class:`Satellite`)
    normal_map: (H, W, 3) uint8 tangent-space normal map in the artwork's uv
        layout (flute ridges, fibre, wrinkles), or None (smooth)
    """

    sku: str
    kind: str
    mesh: trimesh.Trimesh
    parts: tuple[Part, ...]
    artwork: np.ndarray | None = None
    damages: tuple[DamageRecord, ...] = ()
    collision: tuple[np.ndarray, ...] = ()
    mass_kg: float = 0.2
    dims_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    meta: dict[str, Any] = field(default_factory=dict)
    satellites: tuple[Satellite, ...] = ()
    normal_map: np.ndarray | None = None

    # -- label access -------------------------------------------------------
    @property
    def part_id(self) -> np.ndarray:
        """(n_faces,) int32 index into ``parts``."""
        return self.mesh.face_attributes["part_id"]

    @property
    def damage_id(self) -> np.ndarray:
        """(n_faces,) int32, 0 = intact, k = ``damages[k-1]``."""
        return self.mesh.face_attributes["damage_id"]

    @property
    def uv(self) -> np.ndarray:
        """(n_faces, 3, 2) float32 face-corner texture coordinates."""
        return self.mesh.face_attributes["uv"]

    def copy(self) -> "Product":
        """Deep copy: operators work on a copy and never mutate their input."""
        mesh = _copy_mesh(self.mesh)
        return Product(
            sku=self.sku,
            kind=self.kind,
            mesh=mesh,
            parts=self.parts,
            artwork=self.artwork,  # read-only by convention; ops that repaint copy it
            damages=tuple(self.damages),
            collision=tuple(np.array(c, copy=True) for c in self.collision),
            mass_kg=self.mass_kg,
            dims_mm=self.dims_mm,
            meta=copy.deepcopy(self.meta),
            satellites=tuple(Satellite(_copy_mesh(s.mesh), s.gap_m, s.kind) for s in self.satellites),
            normal_map=self.normal_map,  # read-only by convention, like artwork
        )

    def validate(self) -> None:
        """Raise ``ValueError`` if labels or geometry are inconsistent."""
        m = self.mesh
        n = len(m.faces)
        if n == 0:
            raise ValueError(f"product {self.sku!r}: mesh has no faces")
        if not np.isfinite(m.vertices).all():
            raise ValueError(f"product {self.sku!r}: mesh has non-finite vertices")
        for key in FACE_KEYS:
            if key not in m.face_attributes:
                raise ValueError(f"product {self.sku!r}: missing face attribute {key!r}")
            if len(m.face_attributes[key]) != n:
                raise ValueError(
                    f"product {self.sku!r}: face attribute {key!r} has length "
                    f"{len(m.face_attributes[key])}, mesh has {n} faces"
                )
        pid = self.part_id
        if pid.min() < 0 or pid.max() >= len(self.parts):
            raise ValueError(f"product {self.sku!r}: part_id out of range [0, {len(self.parts)})")
        did = self.damage_id
        if did.min() < 0 or did.max() > len(self.damages):
            raise ValueError(f"product {self.sku!r}: damage_id out of range [0, {len(self.damages)}]")
        if self.uv.shape != (n, 3, 2):
            raise ValueError(f"product {self.sku!r}: uv must have shape ({n}, 3, 2), got {self.uv.shape}")

        for i, sat in enumerate(self.satellites):
            sm = sat.mesh
            for key in ("part_id", "damage_id"):
                a = sm.face_attributes.get(key)
                if a is None or len(a) != len(sm.faces):
                    raise ValueError(f"product {self.sku!r}: satellite {i} lacks a valid {key!r}")
            if sm.face_attributes["part_id"].max() >= len(self.parts) or sm.face_attributes["damage_id"].max() > len(self.damages):
                raise ValueError(f"product {self.sku!r}: satellite {i} labels index outside the parent's tables")
            if not np.isfinite(sm.vertices).all():
                raise ValueError(f"product {self.sku!r}: satellite {i} has non-finite vertices")

    def part_faces(self, name: str) -> np.ndarray:
        """Indices of faces whose part has the given name."""
        ids = [i for i, p in enumerate(self.parts) if p.name == name]
        return np.flatnonzero(np.isin(self.part_id, ids))


def _copy_mesh(m: trimesh.Trimesh) -> trimesh.Trimesh:
    out = trimesh.Trimesh(vertices=np.array(m.vertices, copy=True), faces=np.array(m.faces, copy=True), process=False)
    out.face_attributes = {k: np.array(v, copy=True) for k, v in m.face_attributes.items()}
    for key in CARRIED_KEYS:  # same vertices and faces: what is cached about them carries over
        if m._cache[key] is not None:
            out._cache[key] = m._cache[key]
    return out


GEOMETRY_KEY = "damagesim_face_geometry"
#: the cached :class:`damage_ops.spatial.FaceGrid` of a mesh
GRID_KEY = "damagesim_face_grid"
#: per face, whether another opaque part covers it (superficial's cover test:
#: -1 not measured yet, 0 no, 1 yes): filled in as ops measure it and shared
#: by copies, since the answer depends only on the mesh
COVER_KEY = "damagesim_face_cover"
#: vertex -> faces adjacency (CSR: start (v + 1,), faces) of a prepared mesh
ADJACENCY_KEY = "damagesim_vertex_faces"
CARRIED_KEYS = (GEOMETRY_KEY, GRID_KEY, COVER_KEY, ADJACENCY_KEY)


def normals_areas(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((n, 3) unit face normals, (n,) face areas m^2) of faces ``F`` over vertices
    ``V``; a zero-area face gets a zero normal."""
    A = V[F[:, 0]]
    c = np.cross(V[F[:, 1]] - A, V[F[:, 2]] - A)
    a = np.sqrt(np.einsum("ij,ij->i", c, c))
    return c / np.where(a > 0, a, 1.0)[:, None], 0.5 * a


def tri_bounds(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (n, 3) and squared bounding radii about them (n,) of triangles (n, 3, 3)."""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    cen = (a + b + c) / 3.0
    r2 = [np.einsum("ij,ij->i", x - cen, x - cen) for x in (a, b, c)]
    return cen, np.maximum(np.maximum(r2[0], r2[1]), r2[2])


def index_ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The indices start[i], ..., start[i] + count[i] - 1 of every range i, one
    after the other (a vectorised concatenation of aranges)."""
    count = np.asarray(count, np.int64)
    return np.repeat(np.asarray(start, np.int64) - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))


def _geometry_of(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (*normals_areas(V, F), *tri_bounds(V[F]))


def _set_geometry(mesh: trimesh.Trimesh, geo) -> None:
    for x in geo:
        x.flags.writeable = False
    mesh._cache[GEOMETRY_KEY] = tuple(geo)


def carry_face_geometry(old: trimesh.Trimesh, new: trimesh.Trimesh, new_from_old: np.ndarray) -> None:
    """Cache ``new``'s face geometry from ``old``'s (if cached) after a
    refinement that moved no vertex: a face that is its parent's only child is
    the parent (same corners), the others are computed."""
    if GEOMETRY_KEY not in old._cache or GEOMETRY_KEY in new._cache:
        return
    nfo = np.asarray(new_from_old, np.int64)
    redo = np.flatnonzero(np.bincount(nfo, minlength=len(old.faces))[nfo] != 1)
    geo = [x[nfo] for x in old._cache[GEOMETRY_KEY]]  # (fancy indexing copies)
    if len(redo):
        for g, x in zip(geo, _geometry_of(np.asarray(new.vertices, np.float64), np.asarray(new.faces)[redo])):
            g[redo] = x
    _set_geometry(new, geo)


def face_geometry(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(unit normals (n, 3), areas (n,) m^2, centroids (n, 3), squared bounding
    radii about the centroid (n,)) of every face, read-only.

    Cached on the mesh in trimesh's own cache, which drops the entry as soon as
    the vertices or faces change, and carried by :meth:`Product.copy`: the
    catalog computes it once per pristine product, so the damage ops (which
    read it from their input, never mutated) do not recompute it per item."""
    if GEOMETRY_KEY not in mesh._cache:
        _set_geometry(mesh, _geometry_of(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces)))
    return mesh._cache[GEOMETRY_KEY]


def vertex_faces(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """(start (v + 1,), faces): the faces around vertex i are
    faces[start[i]:start[i + 1]]. Cached like the face geometry."""
    if ADJACENCY_KEY not in mesh._cache:
        F = np.asarray(mesh.faces)
        order = np.argsort(F.ravel(), kind="stable")
        start = np.searchsorted(F.ravel()[order], np.arange(len(mesh.vertices) + 1))
        faces = order // 3
        for x in (start, faces):
            x.flags.writeable = False
        mesh._cache[ADJACENCY_KEY] = (start, faces)
    return mesh._cache[ADJACENCY_KEY]


def face_cover(mesh: trimesh.Trimesh) -> list:
    """The mesh's shared cover record (see COVER_KEY): a one-element list
    holding an int8 array, -1 where not measured yet. Made once per mesh and
    carried by :meth:`Product.copy`, so what one op measures on a catalog
    product's copy, the next op on another copy reads."""
    held = mesh._cache[COVER_KEY]
    if held is None:
        held = [np.full(len(mesh.faces), -1, np.int8)]  # a holder: trimesh's cache freezes arrays
        mesh._cache[COVER_KEY] = held
    return held


def labelled_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    part_index: int | np.ndarray,
    uv: np.ndarray | None = None,
) -> trimesh.Trimesh:
    """Build a trimesh with the three label face attributes set.

    vertices: (v, 3) float meters; faces: (n, 3) int
    part_index: scalar or (n,) index into the product's part table
    uv: (n, 3, 2) face-corner uv, or None (zeros)
    """
    faces = np.asarray(faces, dtype=np.int64)
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64), faces=faces, process=False)
    n = len(faces)
    pid = np.broadcast_to(np.asarray(part_index, dtype=np.int32), (n,)).copy()
    mesh.face_attributes = {
        "part_id": pid,
        "damage_id": np.zeros(n, dtype=np.int32),
        "uv": np.zeros((n, 3, 2), np.float32) if uv is None else np.asarray(uv, np.float32).reshape(n, 3, 2),
    }
    return mesh


def concatenate(meshes: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Concatenate labelled meshes keeping every face attribute aligned (optional
    attributes present on any input are filled with defaults on the others)."""
    keys = list(FACE_KEYS) + [k for k in OPTIONAL_FACE_KEYS if any(k in m.face_attributes for m in meshes)]
    verts, faces, attrs = [], [], {k: [] for k in keys}
    offset = 0
    for m in meshes:
        verts.append(np.asarray(m.vertices))
        faces.append(np.asarray(m.faces) + offset)
        offset += len(m.vertices)
        for k in keys:
            a = m.face_attributes.get(k)
            attrs[k].append(a if a is not None else default_face_attribute(k, len(m.faces)))
    out = trimesh.Trimesh(vertices=np.concatenate(verts), faces=np.concatenate(faces), process=False)
    out.face_attributes = {k: np.concatenate(v) for k, v in attrs.items()}
    return out


def take_faces(mesh: trimesh.Trimesh, new_from_old: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A new mesh whose face i inherits the labels of old face ``new_from_old[i]``.

    The uv of inherited faces is copied as is; operators that split faces
    should interpolate uv themselves and overwrite ``face_attributes['uv']``.
    """
    new_from_old = np.asarray(new_from_old, dtype=np.int64)
    if len(new_from_old) != len(faces):
        raise ValueError(f"new_from_old has {len(new_from_old)} entries for {len(faces)} faces")
    out = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    out.face_attributes = {k: np.asarray(v)[new_from_old] for k, v in mesh.face_attributes.items()}  # (a copy)
    return out
