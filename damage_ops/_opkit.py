"""Small vectorised helpers shared by the spill, missing_component and
deconstruction operators (private: not part of the public damage_ops API).

Everything works on the labelled trimesh of a :class:`~damage_ops.product.Product`
(meters, item frame) and carries face labels through explicit new->old maps.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .product import FINISH_IDS, Part, Product, ensure_optional, normals_areas, take_faces
from .remesh import grow, grow_on, on_patch, refine_levels  # noqa: F401  (grow, grow_on: used by the ops)


def face_components(faces: np.ndarray, n_vertices: int) -> tuple[int, np.ndarray]:
    """Connected components of the faces (shared vertices connect).

    faces: (n, 3) int vertex indices. Returns (count, (n,) int component of each
    face), components numbered in order of their lowest face index."""
    faces = np.asarray(faces, np.int64)
    if len(faces) == 0:
        return 0, np.zeros(0, np.int64)
    used, inv = np.unique(faces, return_inverse=True)
    inv = inv.reshape(-1, 3)
    a = np.concatenate([inv[:, 0], inv[:, 1]])
    b = np.concatenate([inv[:, 1], inv[:, 2]])
    g = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(used), len(used)))
    n, lab = connected_components(g, directed=False)
    comp = lab[inv[:, 0]]
    # renumber by first occurrence so unit k is the k-th unit the generator built
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return int(n), rank[comp]


def part_indices(product: Product, name: str) -> list[int]:
    return [i for i, p in enumerate(product.parts) if p.name == name]


def add_part(product: Product, name: str, material: str) -> int:
    """Index of Part(name, material) in the product's part table, appended if absent."""
    for i, p in enumerate(product.parts):
        if p.name == name and p.material == material:
            return i
    product.parts = tuple(product.parts) + (Part(name, material, False),)
    return len(product.parts) - 1


def refine_where(mesh: trimesh.Trimesh, select: Callable[[trimesh.Trimesh], np.ndarray], max_edge_m: float,
                 patch: np.ndarray | None = None, max_levels: int = 6,
                 by_area: bool = False) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Red-green refine the faces ``select(m)`` marks (re-evaluated on the
    current mesh ``m`` after each pass) until their longest edge is at most
    ``max_edge_m``.

    patch: optional (n,) bool mask of faces that contain every face the
    refinement can touch (the selection plus a few rings): refinement then runs
    on that patch only, so its cost does not grow with the mesh. If the
    red-green closure would split an edge on the patch border the whole mesh is
    refined instead, so the result never has a T-junction.
    Returns (mesh, new_from_old) mapping each face to a face of the input mesh.
    Faces outside the patch keep their order and come first.
    by_area: measure a face by sqrt(2 * area) instead of its longest edge, so
    long slivers (fan caps) are not split into hundreds of needles."""
    if patch is None:
        return refine_levels(mesh, select, max_edge_m, max_levels, by_area=by_area)
    return on_patch(mesh, patch, lambda sub, idx: refine_levels(sub, select, max_edge_m, max_levels, by_area=by_area))


def drop_faces(mesh: trimesh.Trimesh, keep: np.ndarray) -> trimesh.Trimesh:
    """A mesh with only the faces in ``keep`` (bool mask), unreferenced vertices
    removed, labels carried through the face map."""
    idx = np.flatnonzero(keep)
    F = np.asarray(mesh.faces)[idx]
    used, inv = np.unique(F, return_inverse=True)
    return take_faces(mesh, idx, np.asarray(mesh.vertices)[used], inv.reshape(-1, 3))


def ray_first_hit(mesh: trimesh.Trimesh, origin: np.ndarray, direction: np.ndarray, eps: float = 1e-7) -> float:
    """Distance (m) from ``origin`` along unit ``direction`` to the first face hit
    beyond ``eps``; inf if none (Moller-Trumbore against every face, vectorised)."""
    V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    # only faces whose vertices straddle the ray in both in-plane directions can be hit
    u = np.cross(direction, [1.0, 0, 0] if abs(direction[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    v_ = np.cross(direction, u)
    pu, pv = (V - origin) @ u, (V - origin) @ v_
    Fu, Fv = pu[F], pv[F]
    cand = (Fu.min(1) <= 0) & (Fu.max(1) >= 0) & (Fv.min(1) <= 0) & (Fv.max(1) >= 0)
    T = V[F[cand]]
    e1, e2 = T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]
    p = np.cross(direction, e2)
    det = (e1 * p).sum(1)
    ok = np.abs(det) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - T[:, 0]
    u = (s * p).sum(1) * inv
    q = np.cross(s, e1)
    v = (q @ direction) * inv
    t = (q * e2).sum(1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > eps)
    return float(t[hit].min()) if hit.any() else float("inf")


def face_normals_of(mesh: trimesh.Trimesh, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((k, 3) unit normals, (k,) areas m^2) of the faces with indices ``faces``."""
    return normals_areas(np.asarray(mesh.vertices), np.asarray(mesh.faces)[np.atleast_1d(faces)])


def paint(mesh: trimesh.Trimesh, faces: np.ndarray, tint, finish: str) -> None:
    """Set tint ((3,) or (k, 3) RGB multiplier) and finish on ``faces`` (in place)."""
    ensure_optional(mesh)
    mesh.face_attributes["tint"][faces] = np.asarray(tint, np.float32)
    mesh.face_attributes["finish"][faces] = FINISH_IDS[finish]


#: width of the band (x opening) over which a slit's lips are pushed aside;
#: > 0.5 keeps the push monotone (no fold) even with a vanishing wall band
LIP_BAND = 0.75


def trough(mesh: trimesh.Trimesh, local: np.ndarray, center: np.ndarray, n0: np.ndarray, axis: np.ndarray,
           opening: float, length: float, depth: float,
           vertex_ok: np.ndarray) -> tuple[trimesh.Trimesh, np.ndarray, dict]:
    """Open a gaping slit as a closed trough (the surface is never cut).

    local: indices of the faces around the slit (every face that can move, plus
    a ring): vertex normals are taken from them only, so the cost does not grow
    with the mesh. Vertices with ``vertex_ok`` ((v,) bool) near the segment
    ``center +- axis * length / 2`` (meters, on the surface, unit normal ``n0``)
    are pushed apart sideways so the two lips stand ``opening`` m apart (times a
    taper that closes the slit at both ends) and the vertices between them
    sink up to ``depth`` m along their inward normal, forming vertical walls and
    a floor. The mesh must already be refined around the segment (edges well
    below ``opening / 2``). Returns (mesh with moved vertices, (n_faces,) bool
    faces with a moved vertex, info) where info holds the measured
    ``opening_m`` (lateral separation of the sunk vertices at the widest point),
    ``depth_m`` and ``sunk_faces`` ((n_faces,) bool: faces with a sunk vertex,
    the walls and floor).
    """
    V = np.asarray(mesh.vertices)
    F = np.asarray(mesh.faces)
    FL = F[local]
    vidx = np.unique(FL)
    P = V[vidx]
    b = np.cross(n0, axis)
    rel = P - center
    s = rel @ axis
    t = rel @ b
    ok = vertex_ok[vidx]
    # the wall band must hold at least one vertex row on each side of the line:
    # a face straddling the line has a vertex within one edge length of it
    loc = np.searchsorted(vidx, FL)
    near = (ok[loc].any(1)) & (np.abs(s[loc]).min(1) < length / 2) & (np.abs(t[loc]).min(1) < opening)
    if near.any():
        T = P[loc[near]]
        el = float(np.sqrt(((T - np.roll(T, -1, axis=1)) ** 2).sum(2)).max())
    else:
        el = 0.0
    e_in = 1.2 * el
    half = length / 2
    taper_len = min(opening, length / 3)
    a_s = np.abs(s)
    Tp = np.where(a_s <= half - taper_len, 1.0,
                  np.cos(0.5 * np.pi * np.clip((a_s - (half - taper_len)) / taper_len, 0, 1)) ** 2)
    Tp = np.where(a_s < half, Tp, 0.0)
    at = np.abs(t)
    sg = np.where(t >= 0, 1.0, -1.0)
    R = LIP_BAND * opening  # lips are pushed aside over this band beyond the wall
    w2 = 0.5 * opening * Tp
    lat_new = np.where(at < e_in, w2, w2 + (at - e_in) * (e_in + R - w2) / R)
    inside = at < e_in + R
    move = ok & (Tp > 0) & inside
    dlat = np.where(move, sg * (lat_new - at), 0.0)
    D = np.where(move & (at < e_in), depth * Tp * (1 - at / max(e_in, 1e-12)), 0.0)
    # vertex normals from the local faces (area weighted)
    TL = P[loc]
    fn = np.cross(TL[:, 1] - TL[:, 0], TL[:, 2] - TL[:, 0])
    vn = np.zeros_like(P)
    for k in range(3):
        np.add.at(vn, loc[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-30)
    bv = b - (vn @ b)[:, None] * vn
    bn = np.linalg.norm(bv, axis=1, keepdims=True)
    bv = np.where(bn > 1e-9, bv / np.where(bn > 1e-9, bn, 1.0), b)
    disp = bv * dlat[:, None] - vn * D[:, None]
    mv = move & (np.abs(disp).max(1) > 0)
    newV = V.copy()
    newV[vidx[mv]] += disp[mv]
    out = take_faces(mesh, np.arange(len(F)), newV, F.copy())
    moved_v = np.zeros(len(V), bool)
    moved_v[vidx[mv]] = True
    sunk_v = np.zeros(len(V), bool)
    sunk_v[vidx[mv & (D > 0)]] = True
    tt = (newV[vidx] - center) @ b
    sk = mv & (D > 0)
    pos_, neg_ = sk & (t >= 0), sk & (t < 0)
    meas = (tt[pos_].max() if pos_.any() else 0.0) - (tt[neg_].min() if neg_.any() else 0.0)
    return out, moved_v[F].any(1), {"opening_m": float(meas), "depth_m": float(D.max()) if len(D) else 0.0,
                                    "sunk_faces": sunk_v[F].any(1)}
