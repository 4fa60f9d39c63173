"""Label-preserving local remeshing.

:func:`refine` splits the faces of a region with red-green refinement: marked
faces split 1 -> 4 (red), their neighbours with one split edge split 1 -> 2
(green), so no T-junction is left and a closed mesh stays closed. Every new face
inherits ``part_id`` / ``damage_id`` of its parent through an explicit new->old
index map, and face-corner ``uv`` is interpolated at the edge midpoints.
"""
from __future__ import annotations

import numpy as np
import trimesh

from .product import take_faces


def _edge_keys(a: np.ndarray, b: np.ndarray, n_vertices: int) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64) * n_vertices + hi


def refine_once(mesh: trimesh.Trimesh, face_mask: np.ndarray) -> tuple[trimesh.Trimesh, np.ndarray]:
    """One red-green pass. Returns (new mesh with face attributes, new_from_old)."""
    V = np.asarray(mesh.vertices)
    F = np.asarray(mesh.faces, dtype=np.int64)
    nv, nf = len(V), len(F)
    # edges of face f: e0 = (a, b), e1 = (b, c), e2 = (c, a)
    keys = np.stack([_edge_keys(F[:, 0], F[:, 1], nv), _edge_keys(F[:, 1], F[:, 2], nv),
                     _edge_keys(F[:, 2], F[:, 0], nv)], axis=1)
    marked = np.zeros((nf, 3), bool)
    marked[face_mask] = True
    # closure: a face with two or more split edges becomes red (all three split)
    while True:
        mk = np.unique(keys[marked])
        marked = np.isin(keys, mk)
        cnt = marked.sum(1)
        promote = (cnt == 2)
        if not promote.any():
            break
        marked[promote] = True
    mk = np.unique(keys[marked])
    if len(mk) == 0:
        return mesh, np.arange(nf)
    a, b = mk // nv, mk % nv
    mid_index = nv + np.arange(len(mk))
    newV = np.concatenate([V, 0.5 * (V[a] + V[b])])
    mid_of = lambda k: mid_index[np.searchsorted(mk, k)]  # noqa: E731  edge key -> midpoint vertex

    cnt = marked.sum(1)
    uv = np.asarray(mesh.face_attributes["uv"], dtype=np.float32)
    faces_out, parent, uv_out = [], [], []

    keep = np.flatnonzero(cnt == 0)
    faces_out.append(F[keep])
    parent.append(keep)
    uv_out.append(uv[keep])

    red = np.flatnonzero(cnt == 3)
    if len(red):
        A, B, C = F[red, 0], F[red, 1], F[red, 2]
        m0, m1, m2 = mid_of(keys[red, 0]), mid_of(keys[red, 1]), mid_of(keys[red, 2])
        ua, ub, uc = uv[red, 0], uv[red, 1], uv[red, 2]
        u0, u1, u2 = (ua + ub) / 2, (ub + uc) / 2, (uc + ua) / 2
        for tri, tuv in (((A, m0, m2), (ua, u0, u2)), ((m0, B, m1), (u0, ub, u1)),
                         ((m2, m1, C), (u2, u1, uc)), ((m0, m1, m2), (u0, u1, u2))):
            faces_out.append(np.stack(tri, axis=1))
            parent.append(red)
            uv_out.append(np.stack(tuv, axis=1))

    green = np.flatnonzero(cnt == 1)
    if len(green):
        which = np.argmax(marked[green], axis=1)
        A, B, C = F[green, 0], F[green, 1], F[green, 2]
        ua, ub, uc = uv[green, 0], uv[green, 1], uv[green, 2]
        m = mid_of(keys[green, which])
        for w in range(3):
            s = which == w
            if not s.any():
                continue
            a_, b_, c_, m_ = A[s], B[s], C[s], m[s]
            ua_, ub_, uc_ = ua[s], ub[s], uc[s]
            if w == 0:    # split (a, b)
                um = (ua_ + ub_) / 2
                tris = (((a_, m_, c_), (ua_, um, uc_)), ((m_, b_, c_), (um, ub_, uc_)))
            elif w == 1:  # split (b, c)
                um = (ub_ + uc_) / 2
                tris = (((a_, b_, m_), (ua_, ub_, um)), ((a_, m_, c_), (ua_, um, uc_)))
            else:         # split (c, a)
                um = (uc_ + ua_) / 2
                tris = (((a_, b_, m_), (ua_, ub_, um)), ((m_, b_, c_), (um, ub_, uc_)))
            for tri, tuv in tris:
                faces_out.append(np.stack(tri, axis=1))
                parent.append(green[s])
                uv_out.append(np.stack(tuv, axis=1))

    newF = np.concatenate(faces_out)
    new_from_old = np.concatenate(parent)
    out = take_faces(mesh, new_from_old, newV, newF)
    out.face_attributes["uv"] = np.concatenate(uv_out).astype(np.float32)
    return out, new_from_old


def refine(mesh: trimesh.Trimesh, face_mask: np.ndarray, max_edge_m: float, max_levels: int = 6,
           region=None) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Refine the faces in ``face_mask`` until their edges are at most ``max_edge_m``.

    region: optional callable (face centroids (n, 3)) -> bool mask that re-selects
    the region after each pass (default: children of the initially marked faces).
    Returns (mesh, new_from_old) where new_from_old maps each new face to its face
    in the input mesh."""
    mask = np.asarray(face_mask, bool)
    total = np.arange(len(mesh.faces))
    for _ in range(max_levels):
        F = mesh.faces
        V = mesh.vertices
        el = np.linalg.norm(V[F] - V[np.roll(F, -1, axis=1)], axis=2).max(1)
        todo = mask & (el > max_edge_m)
        if not todo.any():
            break
        mesh, nfo = refine_once(mesh, todo)
        total = total[nfo]
        mask = region(mesh.triangles_center) if region is not None else mask[nfo]
    return mesh, total
