"""Label-preserving local remeshing.

:func:`refine` splits the faces of a region with red-green refinement: marked
faces split 1 -> 4 (red), their neighbours with one split edge split 1 -> 2
(green), so no T-junction is left and a closed mesh stays closed. Every new face
inherits ``part_id`` / ``damage_id`` of its parent through an explicit new->old
index map, and face-corner ``uv`` is interpolated at the edge midpoints.
"""
from __future__ import annotations

import inspect

import numpy as np
import trimesh

from .product import ADJACENCY_KEY, index_ranges, take_faces


def _edge_keys(a: np.ndarray, b: np.ndarray, n_vertices: int) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64) * n_vertices + hi


def refine_once(mesh: trimesh.Trimesh, face_mask: np.ndarray) -> tuple[trimesh.Trimesh, np.ndarray]:
    """One red-green pass. Returns (new mesh with face attributes, new_from_old)."""
    V = np.asarray(mesh.vertices)
    F = np.asarray(mesh.faces, dtype=np.int64)
    nv, nf = len(V), len(F)
    seed = np.flatnonzero(face_mask)
    if len(seed) == 0:
        return mesh, np.arange(nf)
    # Work on the faces near the marked ones only, so a pass costs ~ the region,
    # not the mesh: ``local`` = faces touching a vertex of ``vmask``. Every face
    # that holds a split edge touches both its endpoints, so once every split
    # edge's endpoints are in ``vmask`` no face outside ``local`` is affected.
    vmask = np.zeros(nv, bool)
    vmask[F[seed]] = True
    while True:
        local = np.flatnonzero(vmask[F].any(1))
        FL = F[local]
        # edges of face f: e0 = (a, b), e1 = (b, c), e2 = (c, a)
        keys = np.stack([_edge_keys(FL[:, 0], FL[:, 1], nv), _edge_keys(FL[:, 1], FL[:, 2], nv),
                         _edge_keys(FL[:, 2], FL[:, 0], nv)], axis=1)
        marked = np.zeros((len(local), 3), bool)
        marked[np.asarray(face_mask, bool)[local]] = True
        # closure: a face with two or more split edges becomes red (all three split)
        while True:
            mk = np.unique(keys[marked])
            at = np.minimum(np.searchsorted(mk, keys), max(len(mk) - 1, 0))  # np.isin(keys, mk), mk sorted
            marked = mk[at] == keys if len(mk) else np.zeros(keys.shape, bool)
            promote = marked.sum(1) == 2
            if not promote.any():
                break
            marked[promote] = True
        ends = np.concatenate([mk // nv, mk % nv])
        if vmask[ends].all():
            break
        vmask[ends] = True
    cnt_local = marked.sum(1)
    a, b = mk // nv, mk % nv
    mid_index = nv + np.arange(len(mk))
    newV = np.concatenate([V, 0.5 * (V[a] + V[b])])
    mid_of = lambda k: mid_index[np.searchsorted(mk, k)]  # noqa: E731  edge key -> midpoint vertex
    uv = np.asarray(mesh.face_attributes["uv"], dtype=np.float32)
    faces_out, parent, uv_out = [], [], []
    # per-face split-edge count and flags over the whole mesh (zero outside ``local``)
    cnt = np.zeros(nf, np.int64)
    cnt[local] = cnt_local
    keep = np.flatnonzero(cnt == 0)
    faces_out.append(F[keep])
    parent.append(keep)
    uv_out.append(uv[keep])
    # local row of each affected face (for its edge keys / flags)
    row = np.full(nf, -1, np.int64)
    row[local] = np.arange(len(local))

    red = np.flatnonzero(cnt == 3)
    if len(red):
        A, B, C = F[red, 0], F[red, 1], F[red, 2]
        r = row[red]
        m0, m1, m2 = mid_of(keys[r, 0]), mid_of(keys[r, 1]), mid_of(keys[r, 2])
        ua, ub, uc = uv[red, 0], uv[red, 1], uv[red, 2]
        u0, u1, u2 = (ua + ub) / 2, (ub + uc) / 2, (uc + ua) / 2
        for tri, tuv in (((A, m0, m2), (ua, u0, u2)), ((m0, B, m1), (u0, ub, u1)),
                         ((m2, m1, C), (u2, u1, uc)), ((m0, m1, m2), (u0, u1, u2))):
            faces_out.append(np.stack(tri, axis=1))
            parent.append(red)
            uv_out.append(np.stack(tuv, axis=1))

    green = np.flatnonzero(cnt == 1)
    if len(green):
        rg = row[green]
        which = np.argmax(marked[rg], axis=1)
        A, B, C = F[green, 0], F[green, 1], F[green, 2]
        ua, ub, uc = uv[green, 0], uv[green, 1], uv[green, 2]
        m = mid_of(keys[rg, which])
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


def grow(faces: np.ndarray, mask: np.ndarray, n_vertices: int, rings: int,
         adjacency: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``mask`` (n,) bool grown by ``rings`` rings of vertex-adjacent faces.

    adjacency: :func:`damage_ops.product.vertex_faces` of these faces, if
    cached: each ring then visits only the faces around the last ring's
    vertices (not every face)."""
    if adjacency is None:
        for _ in range(rings):
            vm = np.zeros(n_vertices, bool)
            vm[faces[mask].ravel()] = True
            mask = vm[faces].any(1)
        return mask
    start, around = adjacency
    out = np.array(mask, bool)
    front = np.flatnonzero(out)
    for _ in range(rings):
        vm = np.zeros(n_vertices, bool)
        vm[faces[front].ravel()] = True
        v = np.flatnonzero(vm)
        nb = around[index_ranges(start[v], start[v + 1] - start[v])]
        nb = nb[~out[nb]]
        out[nb] = True
        front = np.unique(nb)
    return out


def grow_on(mesh: trimesh.Trimesh, mask: np.ndarray, rings: int) -> np.ndarray:
    """:func:`grow` over ``mesh``'s faces, through its cached vertex -> face
    adjacency where it has one (a prepared mesh not changed since)."""
    return grow(np.asarray(mesh.faces), mask, len(mesh.vertices), rings, mesh._cache[ADJACENCY_KEY])


def boundary_keys(F: np.ndarray) -> np.ndarray:
    """Sorted keys of edges used by exactly one face of ``F``."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    k = np.minimum(e[:, 0], e[:, 1]).astype(np.int64) * (1 << 32) + np.maximum(e[:, 0], e[:, 1])
    u, c = np.unique(k, return_counts=True)
    return u[c == 1]


def on_patch(mesh: trimesh.Trimesh, patch: np.ndarray, run, widen: int = 6) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Run a refinement on the faces ``patch`` only, so its cost follows the
    patch and not the mesh.

    run: ``run(sub, idx) -> (sub', new_from_old)`` refines ``sub``, the mesh of
    faces ``idx`` (all vertices kept, so indices are global; midpoints are
    appended). If the refinement split an edge of the patch border (the
    red-green closure ran past it), the patch is widened by ``widen`` rings and
    tried once more, then the whole mesh is refined: the result never has a
    T-junction. Returns (mesh, new_from_old) mapping each face to a face of the
    input; faces outside the patch keep their order and come first."""
    V, F0 = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    patch = np.asarray(patch, bool)
    for _ in range(2):
        if patch.all():
            break
        idx = np.flatnonzero(patch)
        sub = take_faces(mesh, idx, V, F0[idx])
        border = boundary_keys(F0[idx])
        sub, nfo = run(sub, idx)
        if len(sub.faces) == len(idx):  # nothing split: the input as it was
            return mesh, np.arange(len(F0))
        if np.array_equal(boundary_keys(np.asarray(sub.faces)), border):
            rest = np.flatnonzero(~patch)
            out = trimesh.Trimesh(vertices=sub.vertices, faces=np.concatenate([F0[rest], sub.faces]), process=False)
            out.face_attributes = {k: np.concatenate([np.asarray(v)[rest], sub.face_attributes[k]])
                                   for k, v in mesh.face_attributes.items()}
            return out, np.concatenate([rest, idx[nfo]])
        patch = grow(F0, patch, len(V), widen)
    return run(mesh, np.arange(len(F0)))


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


def _takes_faces(select) -> bool:
    """Whether ``select`` accepts ``(mesh, faces)`` (else it is ``select(mesh)``)."""
    try:
        return len(inspect.signature(select).parameters) >= 2
    except (TypeError, ValueError):
        return False


def refine_levels(mesh: trimesh.Trimesh, select, max_edge_m: float, max_levels: int, live: np.ndarray | None = None,
                  by_area: bool = False, slivers: bool = False,
                  drop_unselected: bool = False) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Red-green passes (:func:`refine_once`) over the faces that are too big and
    that ``select`` marks, re-evaluated each pass, until none is left or
    ``max_levels`` passes ran. Returns (mesh, new_from_old).

    select: ``select(mesh, faces) -> (k,) bool`` for the face indices ``faces``,
    or ``select(mesh) -> (n,) bool``. Too big: longest edge above ``max_edge_m``,
    or with ``by_area`` sqrt(2 x area) above it (long fan slivers are not split
    into needles). live: (n,) bool, the faces that may be refined (default all);
    their children inherit it. A face no longer too big leaves ``live`` for good
    (a child is never longer than its parent: halves, or a median no longer than
    the longer sides; areas only shrink), so a pass costs ~ the refining front.
    slivers: a face whose shortest edge is below max_edge_m / 4 leaves too (red
    splits halve every edge: it would multiply without getting less thin).
    drop_unselected: a face ``select`` rejects leaves too (for regions that are a
    fixed set of points: a child lies inside its parent)."""
    total = np.arange(len(mesh.faces))
    live = np.ones(len(mesh.faces), bool) if live is None else np.array(live, bool)
    with_faces = _takes_faces(select)
    for _ in range(max_levels):
        idx = np.flatnonzero(live)
        V, F = np.asarray(mesh.vertices), np.asarray(mesh.faces)[idx]
        A, B, C = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
        if by_area:
            cr = np.cross(B - A, C - A)
            big = np.sqrt(np.einsum("ij,ij->i", cr, cr)) > max_edge_m ** 2
        else:
            e0, e1, e2 = (np.einsum("ij,ij->i", x, x) for x in (B - A, C - B, A - C))
            big = np.maximum(np.maximum(e0, e1), e2) > max_edge_m ** 2
            if slivers:
                big &= np.minimum(np.minimum(e0, e1), e2) > (0.25 * max_edge_m) ** 2
        live[idx[~big]] = False
        idx = idx[big]
        if len(idx) == 0:
            break
        sel = np.asarray(select(mesh, idx) if with_faces else select(mesh)[idx], bool)
        if drop_unselected:
            live[idx[~sel]] = False
        if not sel.any():
            break
        todo = np.zeros(len(mesh.faces), bool)
        todo[idx[sel]] = True
        mesh, nfo = refine_once(mesh, todo)
        total = total[nfo]
        live = live[nfo]
    return mesh, total
