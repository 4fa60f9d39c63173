"""A uniform 3-D grid over a mesh's faces, for the ray and ball queries the ops
repeat many times on one product (is this point covered by another part? which
faces lie within r of p?).

Faces are bucketed by centroid; every occupied cell keeps the box of its
faces' bounding balls, so a query tests the cells first (a few thousand boxes)
and then only the faces of the cells it meets. Every answer is a superset of
the faces that can meet the ray or ball: the caller's exact test decides.

The grid of a mesh is cached in trimesh's cache next to the face geometry
(:func:`damage_ops.product.face_geometry`), dropped with it when the vertices
change and carried by :meth:`Product.copy`, so a catalog product builds it
once.
"""
from __future__ import annotations

import numpy as np
import trimesh

from .product import GRID_KEY, face_cover, face_geometry, index_ranges, vertex_faces

#: faces per occupied cell the cell size aims at
FACES_PER_CELL = 8


class FaceGrid:
    """Faces of one mesh bucketed by centroid (see the module docstring).

    cen (n, 3), r2 (n,): face centroids and squared bounding radii;
    areas (n,): face areas (they set the cell size: about
    ``FACES_PER_CELL`` faces per cell on the surface)."""

    def __init__(self, cen: np.ndarray, r2: np.ndarray, areas: np.ndarray):
        n = len(cen)
        rad = np.sqrt(r2)
        lo = cen.min(0) if n else np.zeros(3)
        mean_area = float(areas.sum()) / max(n, 1)
        size = max(np.sqrt(FACES_PER_CELL * mean_area), 1e-6)
        ijk = np.floor((cen - lo) / size).astype(np.int64)
        dims = ijk.max(0) + 1 if n else np.ones(3, np.int64)
        key = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
        self.order = np.argsort(key, kind="stable")
        skey = key[self.order]
        self.start = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]]) if n else np.zeros(0, np.int64)
        self.count = np.diff(np.r_[self.start, n])
        c, r = cen[self.order], rad[self.order][:, None]
        if n:
            self.lo = np.minimum.reduceat(c - r, self.start, axis=0)
            self.hi = np.maximum.reduceat(c + r, self.start, axis=0)
        else:
            self.lo = self.hi = np.zeros((0, 3))
        # each cell's bounding ball, for ray queries
        self.center = np.ascontiguousarray(0.5 * (self.lo + self.hi))
        self.center2 = np.einsum("ij,ij->i", self.center, self.center)
        self.radius2 = (0.5 * 1.0001) ** 2 * np.einsum("ij,ij->i", self.hi - self.lo, self.hi - self.lo) + 1e-18
        self.radius = np.sqrt(self.radius2)
        for x in (self.order, self.start, self.count, self.lo, self.hi, self.center, self.center2, self.radius2,
                  self.radius):
            x.flags.writeable = False

    def _faces_of(self, cells: np.ndarray) -> np.ndarray:
        """Face indices in the given cells, in grid order."""
        return self.order[index_ranges(self.start[cells], self.count[cells])]

    def ray(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Faces that the ray origin + t * direction, t >= 0 (direction a unit
        vector), may meet: those of the cells whose bounding ball it meets."""
        along = self.center @ direction - origin @ direction
        perp2 = self.center2 - 2.0 * (self.center @ origin) + origin @ origin - along * along
        return self._faces_of(np.flatnonzero((perp2 <= self.radius2) & (along >= -self.radius)))

    def ball(self, p: np.ndarray, radius: float) -> np.ndarray:
        """Faces whose bounding ball may come within ``radius`` of p."""
        d = np.maximum(np.maximum(self.lo - p, p - self.hi), 0.0)
        return self._faces_of(np.flatnonzero(np.einsum("ij,ij->i", d, d) <= radius * radius))


def face_grid(mesh: trimesh.Trimesh) -> FaceGrid:
    """The mesh's :class:`FaceGrid`, cached like its face geometry."""
    grid = mesh._cache[GRID_KEY]  # None if absent or dropped
    if grid is None:
        _, areas, cen, r2 = face_geometry(mesh)
        grid = FaceGrid(cen, r2, areas)
        mesh._cache[GRID_KEY] = grid
    return grid


def prepare(mesh: trimesh.Trimesh) -> None:
    """Compute what the damage ops read about a pristine mesh (face geometry,
    the face grid, the shared cover record, vertex -> face adjacency) once, for
    every copy to carry: the catalog calls it per product."""

    face_geometry(mesh)
    face_grid(mesh)
    face_cover(mesh)
    vertex_faces(mesh)
