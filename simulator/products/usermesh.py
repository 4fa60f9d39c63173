"""Load a user-supplied mesh (OBJ, GLB/GLTF, PLY, STL) as a one-part Product."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from damage_ops import Part, Product, labelled_mesh
from simulator.core.errors import MeshError

UNITS_M: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
MAX_EXTENT_M = 2.0
MIN_EXTENT_M = 0.005
SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
#: most faces of a user mesh: damage ops, convex decomposition and rendering
#: stay within seconds and a GB; a 5M-face scan ran out of memory (decimate it)
MAX_FACES = 500_000
#: a mesh file larger than this is refused before it is read (a binary STL of
#: MAX_FACES faces is 25 MB)
MAX_FILE_BYTES = 256 << 20
#: faces with less area than this (m²) count as degenerate
MIN_FACE_AREA_M2 = 1e-12
#: the thinnest a mesh may be (m): physics and damage need a solid, not a sheet
MIN_THICKNESS_M = 0.0005


def load_user_mesh(path: str | Path, units: str, material: str, sku: str) -> Product:
    """A Product (kind ``mesh``, one part ``body``) from a mesh file.

    path: OBJ / GLB / GLTF / PLY / STL file; units: ``m``, ``cm``, ``mm`` or
    ``in`` (the file's length unit); material: key of the materials library
    (not checked here; the catalog checks it). The mesh is scaled to meters
    and shifted so its bbox centre is the origin. ``collision`` is left empty:
    physics decomposes the mesh itself. Raises :class:`MeshError` naming the
    file for an unreadable file, no faces, non-finite vertices, or a largest
    extent over 2 m or under 5 mm.
    """

    path = Path(path)
    if units not in UNITS_M:
        raise MeshError(path, f"units must be one of {list(UNITS_M)}, got {units!r}")
    if not path.is_file():
        raise MeshError(path, "file does not exist")
    if path.suffix.lower() not in SUFFIXES:
        raise MeshError(path, f"unsupported mesh format {path.suffix!r}; expected one of {list(SUFFIXES)}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise MeshError(path, f"mesh file is {size / 2**20:.0f} MiB (largest allowed {MAX_FILE_BYTES >> 20} MiB); "
                              f"decimate it to at most {MAX_FACES:,} faces")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for broken files
        raise MeshError(path, f"cannot read mesh: {type(e).__name__}: {e}") from None
    if not isinstance(mesh, trimesh.Trimesh):
        raise MeshError(path, f"file holds no triangle mesh (got {type(mesh).__name__})")
    V = np.asarray(mesh.vertices, np.float64)
    F = np.asarray(mesh.faces, np.int64)
    if len(F) == 0 or len(V) == 0:
        raise MeshError(path, "mesh has no faces")
    if not np.isfinite(V).all():
        bad = int((~np.isfinite(V).all(axis=1)).sum())
        raise MeshError(path, f"mesh has {bad} vertices with NaN or infinite coordinates")
    if F.min() < 0 or F.max() >= len(V):
        raise MeshError(path, f"face indices out of range [0, {len(V)})")
    if len(F) > MAX_FACES:
        raise MeshError(path, f"mesh has {len(F):,} faces (at most {MAX_FACES:,}); decimate it, e.g. "
                              f"trimesh's simplify_quadric_decimation or Blender's Decimate modifier")
    V = V * UNITS_M[units]
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    good = int((area > MIN_FACE_AREA_M2).sum())
    if good < 4:
        raise MeshError(path, f"mesh has {good} face(s) with non-zero area (of {len(F)}); a product needs a closed "
                              f"or at least solid surface of 4 or more")
    lo, hi = V[np.unique(F)].min(0), V[np.unique(F)].max(0)
    ext = float((hi - lo).max())
    if ext > MAX_EXTENT_M:
        raise MeshError(path, f"mesh is {ext:.3g} m across in units {units!r} (largest allowed {MAX_EXTENT_M} m); "
                              f"check the units")
    if ext < MIN_EXTENT_M:
        raise MeshError(path, f"mesh is {ext * 1e3:.3g} mm across in units {units!r} (smallest allowed "
                              f"{MIN_EXTENT_M * 1e3:g} mm); check the units")
    thin = float((hi - lo).min())
    if thin < MIN_THICKNESS_M:
        raise MeshError(path, f"mesh is flat ({thin * 1e3:.3g} mm thick in units {units!r}; at least "
                              f"{MIN_THICKNESS_M * 1e3:g} mm): physics and damage need a solid")
    V = V - (lo + hi) / 2
    uv = None
    vis_uv = getattr(getattr(mesh, "visual", None), "uv", None)
    artwork = None
    if vis_uv is not None and len(vis_uv) == len(V):
        img = getattr(getattr(mesh.visual, "material", None), "image", None)
        if img is not None:
            artwork = np.asarray(img.convert("RGB"), np.uint8)
            uv = np.asarray(vis_uv, np.float64)[F]
    out = labelled_mesh(V, F, 0, uv)
    return Product(
        sku=sku, kind="mesh", mesh=out, parts=(Part("body", material, artwork is not None),),
        artwork=artwork, collision=(), mass_kg=0.5, dims_mm=tuple(float(x) for x in (hi - lo) * 1e3),
        meta={"path": str(path), "units": units, "material": material},
    )
