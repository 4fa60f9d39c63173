"""Deconstruction (Kaputt category ``deconstruction``): opened or burst packaging.

Modes:

- ``flap_open``: one carton ``flap`` (a separate closed component of a part
  named ``flap``) swings open about its hinge (the flap's long edge nearest
  the item's outline, at the flap's underside) so its free edge moves
  ``opening_mm``. Tape pieces lying on that flap are peeled off (removed: a cut
  tape would leave a surface we cannot keep closed). The body top under the
  opened flap becomes the dark open interior (finish ``interior``, tint about
  0.35) and the flap's former underside shows the raw board (finish
  ``interior``). Changed = the moved flap, the interior faces, and every face
  that lay under the removed tape (within its box + 1 mm).
- ``burst_seam``: a seam or wall splits: a gaping slit ``length_mm`` long whose
  lips stand ``opening_mm`` apart, placed next to a ``seal`` part when the
  product has one (pouches and mailers burst along their seals), else on a
  flat-enough patch of the body (carton walls). The slit is a deep trough with
  vertical walls and a floor in the ``interior`` finish (tinted dark); the
  surface is not cut. Changed = faces with a moved vertex.
- ``contents_out``: an opening plus what came out of it lying on the tray as
  ``Satellite(kind="contents")``. Sets (blister, multipack): one unit is
  removed, its cavity labelled as in ``missing_component``, a slit opens the
  cover above it and the unit itself is the satellite (laid on its side if it
  stood). Items with a flap (cartons): the flap opens as in ``flap_open`` and a
  generic contents box (``Part("contents", material)``) lies beside. Other
  items: a slit as in ``burst_seam`` and a contents box that fits through it.
  Changed = the opening's faces (+ cavity); every satellite face carries the
  damage.
- ``box_open``: an opened carton (Kaputt actuation / deconstruction): every
  flap swings open as in ``flap_open``, each to its own opening
  (``opening_mm`` x U(0.75, 1.25), capped at 1.9 x the flap's reach), tape on
  the flaps peeled; the solid body is hollowed under the flaps (a boolean
  pocket one board thickness inside the walls, down to 30 % of the height:
  inner-liner walls, a dark floor, the board's cut edge on the rim); with
  ``contents`` (None: even odds) a contents box (``Part("contents",
  contents_material)``) stands on the inside floor. Changed = every moved
  flap, what the tape covered, the pocket's faces and rim, the contents box.

  With ``forced`` (the default) the box was opened by force: each flap's angle
  is the neat one x U(0.7, 1.6) in [40, 175] degrees, or (odds DROOP_P, when
  the neat angle passes 60) 195-240 degrees, drooping over its wall (turned
  about the fold's top edge, so it stays outside the wall); with odds BEND_P a
  flap is creased across (``_bend``: wrapped round a cylinder over a 12 mm+
  band at 35-70 % of its reach, 20-60 degrees, away from the wall when it
  droops); with odds RAG_P a flap's free edge is torn ragged first (``_rag_flaps``:
  1/f noise and, in half of them, a bite at one end; the edge recedes toward
  the hinge by up to 0.38 x the flap's reach, moving vertices along the flap
  only, monotone across it, so it stays closed and free of self-intersection;
  the torn edge shows the fluted core, the liner along it the inner paper);
  dunnage or a contents box rising above the rim is squashed toward the floor
  until it clears every opened flap (``_clear_of_flaps``), so nothing pierces a
  flap leaning over the opening; the rim of an end wall is dented (a 3-4 ridge d-cone pushed down
  and in, the crush op's injective shear ``FoldField``). Labels: as above, plus
  every face the dent moves by more than ``crush.change_threshold_m`` (the
  crush convention: faces moved by less stay unlabelled). A creased flap is
  not rigid (its mid-plane keeps its lengths). ``forced: false`` is the neat
  opening of earlier versions.

The opened flaps' former undersides show the board's lighter inner liner
(finish ``inner_liner``) on corrugated board, the raw inside (``interior``)
otherwise.

Every mode moves, removes or recolours whole closed components or displaces
vertices of a closed surface without cutting it, so all parts stay closed:
``opens_surface=False``. Measured size: {"opening_mm": the flap's largest
vertex displacement (flap_open, contents_out on a flap; box_open: the largest over its flaps) or the lateral separation of the slit walls at
their widest (burst_seam, contents_out), both measured on the result}.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh

from damage_ops import fold as FD
from damage_ops import puncture as PU
from damage_ops.crush import (
    FoldField,
    _lateral_frame,
    _wall_depth,
    change_threshold_m,
    crease_band_m,
    crease_edge_m,
    interp_tol_m,
    nonlinear_faces,
)

from . import _surface as S
from ._opkit import (
    LIP_BAND,
    add_part,
    drop_faces,
    face_components,
    face_normals_of,
    grow,
    paint,
    part_indices,
    ray_first_hit,
    refine_where,
    trough,
)
from . import _ragged as R
from . import dunnage as DN
from .base import NotApplicable, ParamError, add_damage, check_range, register
from .missing import remove_units, units_of
from .product import (
    FINISH_IDS,
    DamageRecord,
    Product,
    Satellite,
    concatenate,
    ensure_optional,
    labelled_mesh,
    normals_areas,
)

OP = "deconstruction"
MODES = ("flap_open", "burst_seam", "contents_out", "box_open")
#: widest a flap opens when drawn from opening_mm (a forced box_open may droop further, about the fold)
MAX_OPEN_DEG = 155.0
INTERIOR_TINT = 0.35
#: a slit site must be a patch whose face normals stay within ~60 degrees of the
#: centre's (pillows curve; carton walls are flat)
FLAT_DOT = 0.5


@dataclass(frozen=True)
class DeconstructionParams:
    """mode: ``flap_open``, ``burst_seam`` or ``contents_out``
    opening_mm: flap_open: how far the flap's free edge moves, mm (at most twice
        the flap width: 180 degrees); slit modes: distance between the lips, mm.
        In [1, 400].
    length_mm: slit length, mm, in [5, 600]; None = max(2.5 * opening, opening
        + 20) capped to 0.8 x the item's largest dimension (slit modes only)
    flap: flap_open: index of the flap (connected components of the flap
        part, in build order) or None (random)
    center: slit modes: face index of the input product at the slit centre, or
        None (random)
    contents_material: contents_out without units, box_open: material of the contents box
    dunnage: box_open with contents: what shows in the opening, one of
        :data:`damage_ops.dunnage.KINDS` (crumpled ``paper_kraft`` /
        ``paper_white`` / ``paper_pink``, ``bubble_wrap``, ``air_pillows`` or
        the product ``box``); None: drawn with even odds
    contents: box_open: whether contents show in the opened box (None: drawn,
        even odds)
    forced: box_open: opened by force (flaps at scattered angles, some drooping
        over the walls, some creased across, the rim dented; see the module
        doc); false: every flap swings neatly to its opening
    """

    mode: str = "flap_open"
    opening_mm: float = 30.0
    length_mm: float | None = None
    flap: int | None = None
    center: int | None = None
    contents_material: str = "cardboard_white"
    contents: bool | None = None
    dunnage: str | None = None
    forced: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParamError(f"{OP}.mode: must be one of {list(MODES)}, got {self.mode!r}")
        check_range(OP, "opening_mm", self.opening_mm, 1.0, 400.0)
        if self.length_mm is not None:
            check_range(OP, "length_mm", self.length_mm, 5.0, 600.0)
        for name in ("flap", "center"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
                raise ParamError(f"{OP}.{name}: must be an index >= 0 or None, got {v!r}")
        if self.dunnage is not None and self.dunnage not in DN.KINDS:
            raise ParamError(f"{OP}.dunnage: must be one of {list(DN.KINDS)} or null, got {self.dunnage!r}")
        if self.contents is not None and not isinstance(self.contents, (bool, np.bool_)):
            raise ParamError(f"{OP}.contents: must be true, false or null, got {self.contents!r}")
        if not isinstance(self.forced, (bool, np.bool_)):
            raise ParamError(f"{OP}.forced: must be true or false, got {self.forced!r}")
        if not isinstance(self.contents_material, str) or not self.contents_material:
            raise ParamError(f"{OP}.contents_material: must be a material name, got {self.contents_material!r}")


# -- flap_open ---------------------------------------------------------------

def _rotation(axis_pt: np.ndarray, ax: np.ndarray, inward: np.ndarray, theta: float, P: np.ndarray) -> np.ndarray:
    """Rotate points P (k, 3) about the line (axis_pt, ax) so that the direction
    ``inward`` turns towards +z by ``theta`` radians."""
    up = np.cross(ax, inward)  # completes the (inward, up, ax) frame
    rel = P - axis_pt
    a, b, c = rel @ inward, rel @ up, rel @ ax
    ct, st = np.cos(theta), np.sin(theta)
    return axis_pt + np.outer(a * ct - b * st, inward) + np.outer(a * st + b * ct, up) + np.outer(c, ax)


def _bend(P: np.ndarray, hinge: np.ndarray, inward: np.ndarray, up: np.ndarray, z_lo: float, z_hi: float,
          u0: float, phi: float, band: float) -> np.ndarray:
    """Points P (k, 3) of a flap lying flat (hinge line through ``hinge``, u =
    (P - hinge) . inward from it, w = height above the mid-plane (z_lo + z_hi) / 2)
    bent about a line parallel to the hinge at u0: over [u0, u0 + band] the flap
    wraps round a cylinder of radius band / |phi| (its axis on the ``phi`` side),
    beyond it continues straight, turned by phi. The radius must exceed the
    flap's half-thickness (plus its dome) for the map to stay injective."""
    rel = P - hinge
    u, w = rel @ inward, P[:, 2] - 0.5 * (z_lo + z_hi)
    R = band / abs(phi)
    sg = 1.0 if phi > 0 else -1.0
    s = np.clip(u - u0, 0.0, band)
    a = s / R
    rest = np.maximum(u - u0 - band, 0.0)
    du = np.where(u <= u0, u, u0 + (R - sg * w) * np.sin(a) + rest * np.cos(abs(phi)))
    dw = np.where(u <= u0, w, sg * R - (sg * R - w) * np.cos(a) + sg * rest * np.sin(abs(phi)))
    out = P + np.outer(du - u, inward)
    out[:, 2] = 0.5 * (z_lo + z_hi) + dw
    return out


def _flap_open(p: Product, prm: DeconstructionParams, rng: np.random.Generator, scale_w: float | None = None,
               theta: float | None = None, bend: tuple[float, float, float] | None = None):
    """Open one flap (``prm.flap`` or a random one) so its free edge moves
    ``prm.opening_mm``; with ``scale_w`` the opening is scaled by it and capped at
    1.9 x the flap's reach (an opened box's flaps each fall their own way)
    instead of refused. theta: the hinge angle (radians) instead, up to 270
    degrees: past 180 the flap droops over the wall, turned about the hinge's
    top edge so no part of it dips into the wall. bend: (u0 m, phi radians,
    band m) a fold across the flap, parallel to the hinge at u0 from it, the
    outer part turned by phi (> 0 towards the flap's top face) over the band,
    bent about an axis farther from the mid-plane than the flap is thick
    (injective, isometric on the mid-plane). Mutates p. Returns (changed face
    indices, size, region)."""
    fids = part_indices(p, "flap")
    ffaces = np.flatnonzero(np.isin(p.part_id, fids)) if fids else np.zeros(0, np.int64)
    if len(ffaces) == 0:
        raise NotApplicable(f"{OP}.mode: 'flap_open' needs a 'flap' part; product {p.sku!r} ({p.kind}) has parts "
                         f"{[q.name for q in p.parts]}")
    m = p.mesh
    V, F = np.asarray(m.vertices), np.asarray(m.faces)
    nf, comp = face_components(F[ffaces], len(V))
    if prm.flap is not None and prm.flap >= nf:
        raise ParamError(f"{OP}.flap: index {prm.flap} out of range for {nf} flap(s)")
    k = int(prm.flap) if prm.flap is not None else int(rng.integers(nf))
    my = ffaces[comp == k]
    vids = np.unique(F[my])
    P = V[vids]
    lo, hi = P.min(0), P.max(0)
    ilo, ihi = V.min(0), V.max(0)
    ext = (hi - lo)[:2]
    a_ax, q = (0, 1) if ext[0] >= ext[1] else (1, 0)
    ax = np.zeros(3)
    ax[a_ax] = 1.0
    inward = np.zeros(3)
    if lo[q] - ilo[q] <= ihi[q] - hi[q]:   # hinge on the low side
        hinge = np.array([0.0, 0.0, lo[2]])
        hinge[q] = lo[q]
        inward[q] = 1.0
    else:
        hinge = np.array([0.0, 0.0, lo[2]])
        hinge[q] = hi[q]
        inward[q] = -1.0
    if np.dot(np.cross(ax, inward), [0, 0, 1]) < 0:
        ax = -ax
    rel = P - hinge
    r_max = float(np.sqrt(((rel - np.outer(rel @ ax, ax)) ** 2).sum(1)).max())
    if theta is None:
        w = prm.opening_mm / 1000.0
        if scale_w is not None:
            w = min(w * scale_w, 1.9 * r_max)
        if w > 2 * r_max:
            raise NotApplicable(f"{OP}.opening_mm: {prm.opening_mm!r} exceeds what this flap can open "
                                f"({2 * r_max * 1000:.1f} mm at 180 degrees)")
        # at most 155 degrees: a flap hanging in its wall's plane would cut a bowed
        # wall (carton bow_mm); 25 degrees off the wall clears a bow up to 0.4 mm per mm
        theta = min(2 * np.arcsin(min(1.0, w / (2 * r_max))), np.radians(MAX_OPEN_DEG))
    theta = float(theta)
    up3 = np.cross(ax, inward)
    Pb = P if bend is None else _bend(P, hinge, inward, up3, lo[2], hi[2], *bend)
    pivot = hinge
    if theta > np.pi:  # drooping: about the top of the fold, so the flap stays outside the wall
        near = np.abs((P - hinge) @ inward) < 2 * (hi[2] - lo[2])
        pivot = hinge + up3 * (float(P[near, 2].max()) - hinge[2])
    newP = _rotation(pivot, ax, inward, theta, Pb)

    # faces under the opened flap's footprint that face up just below it: interior
    fn0, _ = face_normals_of(m, my)
    under_side = my[fn0[:, 2] < -0.5]
    tape_ids = part_indices(p, "tape")
    tape_faces = np.flatnonzero(np.isin(p.part_id, tape_ids)) if tape_ids else np.zeros(0, np.int64)
    drop = np.zeros(len(F), bool)
    tape_boxes = []
    if len(tape_faces):
        nt, tcomp = face_components(F[tape_faces], len(V))
        for j in range(nt):
            tv = V[np.unique(F[tape_faces[tcomp == j]])]
            tlo, thi = tv.min(0), tv.max(0)
            if np.all(tlo[:2] <= hi[:2]) and np.all(thi[:2] >= lo[:2]) and thi[2] > lo[2] + 1e-4:
                drop[tape_faces[tcomp == j]] = True
                tape_boxes.append((tlo - 1e-3, thi + 1e-3))

    newV = V.copy()
    newV[vids] = newP
    m2 = trimesh.Trimesh(vertices=newV, faces=F, process=False)
    m2.face_attributes = m.face_attributes  # p is a private copy: no need to copy again
    ensure_optional(m2)

    # body top under the flap: refine the faces straddling the footprint edge.
    # Only faces with a vertex at the flap's bottom level can qualify.
    fl_lo, fl_hi = lo, hi
    excl = np.asarray(fids + tape_ids)

    def floor_sel(mesh, faces=None):
        Fm = np.asarray(mesh.faces) if faces is None else np.asarray(mesh.faces)[faces]
        T = np.asarray(mesh.vertices)[Fm]
        tlo, thi = T.min(1), T.max(1)
        nz = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])[:, 2]
        over = np.all(thi[:, :2] >= fl_lo[:2], 1) & np.all(tlo[:, :2] <= fl_hi[:2], 1)
        inside = np.all(tlo[:, :2] >= fl_lo[:2] - 1e-9, 1) & np.all(thi[:, :2] <= fl_hi[:2] + 1e-9, 1)
        level = (np.abs(T[:, :, 2] - fl_lo[2]).max(1) < 2e-3) & (nz > 0)
        pid_m = mesh.face_attributes["part_id"] if faces is None else mesh.face_attributes["part_id"][faces]
        return over & ~inside & level & ~np.isin(pid_m, excl)

    lvl_v = np.abs(newV[:, 2] - fl_lo[2]) < 2e-3
    lvl_f = np.flatnonzero(lvl_v[F].all(1) & ~drop)
    sel0 = np.zeros(len(F), bool)
    sel0[lvl_f[floor_sel(m2, lvl_f)]] = True
    patch = grow(F, sel0, len(V), 3) & ~drop
    m2, nfo = refine_where(m2, floor_sel, 0.006, patch=patch, max_levels=2)
    drop = drop[nfo]
    F2 = np.asarray(m2.faces)
    V2 = np.asarray(m2.vertices)
    pid2 = m2.face_attributes["part_id"]
    lvl_v2 = np.abs(V2[:, 2] - fl_lo[2]) < 2e-3
    cand = np.flatnonzero(lvl_v2[F2].all(1) & ~np.isin(pid2, excl))
    fnc, _ = face_normals_of(m2, cand)
    Cc = V2[F2[cand]].mean(1)
    floor = np.zeros(len(F2), bool)
    floor[cand[(fnc[:, 2] > 0.5) & np.all((Cc[:, :2] >= fl_lo[:2]) & (Cc[:, :2] <= fl_hi[:2]), 1)]] = True
    exposed = np.zeros(len(F2), bool)
    for tlo, thi in tape_boxes:
        vin = np.all((V2 >= tlo) & (V2 <= thi), 1)
        ti = np.flatnonzero(vin[F2].any(1))
        Ct = V2[F2[ti]].mean(1)
        exposed[ti[np.all((Ct >= tlo) & (Ct <= thi), 1)]] = True
    exposed &= ~drop & ~np.isin(pid2, tape_ids)
    moved_flap = np.isin(nfo, my)
    under = np.isin(nfo, under_side)
    paint(m2, np.flatnonzero(floor), np.full(3, INTERIOR_TINT), "interior")
    # the flap's former underside: the board's lighter inner liner
    board = p.parts[int(p.part_id[my[0]])].material == "cardboard"  # corrugated: paperboard has no inner liner
    paint(m2, np.flatnonzero(under), np.full(3, 1.0 if board else 0.9), "inner_liner" if board else "interior")
    changed = floor | exposed | moved_flap
    keep = ~drop
    if drop.any():
        m2 = drop_faces(m2, keep)
        changed = changed[keep]
    p.mesh = m2
    # collision: the open flap sticks out of the closed box hull
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    p.collision = tuple(p.collision) + (_rotation(pivot, ax, inward, theta, corners),)
    disp = float(np.linalg.norm(newP - P, axis=1).max())
    region = {"center_m": (0.5 * (lo + hi)).tolist(), "radius_m": float(np.linalg.norm(hi - lo)),
              "hinge_m": hinge.tolist(), "hinge_axis": ax.tolist(), "angle_deg": float(np.degrees(theta)),
              "flap": k}
    return np.flatnonzero(changed), {"opening_mm": disp * 1000.0}, region


#: a hollowed box keeps this fraction of its body height below the inside floor
FLOOR_KEEP = 0.3


def _board_m(p: Product) -> float:
    """Board thickness (m) of a carton: its build parameter, else 4 mm."""
    b = p.meta.get("board_mm") if isinstance(p.meta, dict) else None
    return float(np.clip(b, 1.0, 10.0)) / 1e3 if isinstance(b, (int, float)) else 4e-3


def _hollow(p: Product, blo: np.ndarray, bhi: np.ndarray) -> float:
    """Hollow the (solid) carton body under its opened flaps: a boolean pocket
    (manifold3d) one board thickness inside the walls, down to FLOOR_KEEP of the
    height, so the opened box shows its inside: inner-liner walls, a dark floor
    and the board's cut edge (core) on the rim. The body stays closed. Marks the
    changed faces in the private ``_chg`` attribute. Returns the floor's z (m)."""

    bid = part_indices(p, "body")[0]
    wall = _board_m(p)
    lo = np.array([blo[0] + wall, blo[1] + wall, blo[2] + FLOOR_KEEP * (bhi[2] - blo[2])])
    hi = np.array([bhi[0] - wall, bhi[1] - wall, bhi[2] + 5e-3])
    if np.any(hi - lo <= 2e-3):
        return float(bhi[2])
    box = trimesh.creation.box(extents=hi - lo)
    CV, CF = np.asarray(box.vertices) + (lo + hi) / 2, np.asarray(box.faces)
    chg = p.mesh.face_attributes.pop("_chg")
    m = p.mesh
    m.face_attributes["_chg"] = chg  # carried by split_part / inherit_labels with the labels
    pm, rest = PU.split_part(m, bid)
    m.face_attributes.pop("_chg")
    NV, NF, src, fid = PU.boolean_difference(pm, CV, CF)
    attrs, retri = PU.inherit_labels(pm, NV, NF, src, fid)
    cut = ~src
    cn, _ = normals_areas(NV, NF[cut])
    ci = np.flatnonzero(cut)
    flo = cn[:, 2] > 0.7
    attrs["finish"][ci] = np.where(flo, FINISH_IDS["interior"], FINISH_IDS["inner_liner"])
    attrs["tint"][ci] = np.where(flo[:, None], INTERIOR_TINT, 0.8).astype(np.float32)
    attrs["uv"][ci] = 0.0
    attrs["damage_id"][ci] = 0
    # what is left of the top under the flaps: the board's cut edge on the rim
    top = src & (attrs["finish"] == FINISH_IDS["interior"]) & (np.abs(NV[NF][:, :, 2] - bhi[2]).max(1) < 1e-6)
    attrs["finish"][top] = FINISH_IDS["core"]
    attrs["tint"][top] = 1.0
    attrs["_chg"][cut | retri | top] = 1
    bm = trimesh.Trimesh(vertices=NV, faces=NF, process=False)
    bm.face_attributes = {k: v for k, v in attrs.items() if k != "_chg"}
    rchg = rest.face_attributes.pop("_chg", np.zeros(len(rest.faces), np.int8))
    p.mesh = concatenate([rest, bm])
    p.mesh.face_attributes["_chg"] = np.concatenate([rchg, attrs["_chg"]]).astype(np.int8)
    return float(lo[2])


def _refine_chg(p: Product, select, max_edge_m: float, **kw) -> None:
    """:func:`damage_ops._surface.refine_where` on ``p.mesh``, carrying the
    private per-face ``_chg`` flags (box_open's changed faces) to the refined
    faces where the refinement did not. Mutates p."""
    chg = p.mesh.face_attributes["_chg"]
    p.mesh, nfo = S.refine_where(p.mesh, select, max_edge_m, **kw)
    if len(p.mesh.face_attributes.get("_chg", [])) != len(nfo):
        p.mesh.face_attributes["_chg"] = chg[nfo]


#: forced box_open: odds that a flap droops over its wall, that it is creased across
DROOP_P, BEND_P = 0.35, 0.5
#: forced box_open: odds that a flap's free edge is torn ragged (a box ripped open:
#: the flaps torn where the tape held them), the torn band's width as a fraction of
#: the flap's reach (the edge recedes by up to RAG_RECEDE x that band) and the
#: mesh resolution there (m)
RAG_P, RAG_BAND, RAG_RECEDE, RAG_EDGE_M = 0.7, 0.45, 0.85, 3.5e-3


def _rag_flaps(p: Product, fids: list[int], rng: np.random.Generator) -> list[dict]:
    """Tear the free edges of a forced box_open's flaps (each with odds RAG_P)
    while they still lie flat: the edge recedes toward the hinge by a(s) >= 0,
    1/f noise along the edge (wavelengths from a quarter of its length down to
    4 mm) plus, in half of them, a bite torn out at one end. The map moves flap
    vertices only along the flap's inward direction, u -> u - a(s) g(t), t the
    distance from the free edge, g = max(0, 1 - t / W) over a band W =
    RAG_BAND x reach, a <= RAG_RECEDE x W: at every s it is monotone in u, so the
    flap (a closed slab) stays free of self-intersection and closed. The band is
    refined to RAG_EDGE_M first; the torn edge's faces show the fluted core, the
    top liner's faces along it the lighter inner paper. Mutates p. Returns per
    flap (build order) {"torn": bool, "recede_mm": max a, "bite": bool}."""
    frames = _flap_frames(p, fids)
    plans = []
    for my, hinge, inward, reach in frames:
        if rng.uniform() >= RAG_P:
            plans.append(None)
            continue
        ax = np.cross([0.0, 0.0, 1.0], inward)
        V = np.asarray(p.mesh.vertices)
        P = V[np.unique(np.asarray(p.mesh.faces)[my])]
        s = (P - hinge) @ ax
        s0, s1 = float(s.min()), float(s.max())
        L = max(s1 - s0, 1e-3)
        W = RAG_BAND * reach
        A = RAG_RECEDE * W
        grid = np.linspace(s0, s1, max(int(L / 1e-3), 8))
        nz = R.pink_noise(rng, grid, 4e-3, max(0.25 * L, 8e-3), beta=1.7)
        nz = (nz - nz.min()) / max(float(np.ptp(nz)), 1e-12)
        a = 0.08 + 0.35 * nz
        bite = bool(rng.uniform() < 0.5)
        if bite:  # a piece torn out at one end of the edge
            end = s0 if rng.uniform() < 0.5 else s1
            wid = rng.uniform(0.15, 0.4) * L
            a = a + rng.uniform(0.4, 0.6) * np.exp(-(((grid - end) / wid) ** 2))
        a = A * np.clip(a, 0.0, 1.0)
        plans.append({"hinge": hinge, "inward": inward, "ax": ax, "reach": reach, "W": W,
                      "grid": grid, "a": a, "bite": bite})
    todo = [q for q in plans if q is not None]
    if not todo:
        return [{"torn": False, "recede_mm": 0.0, "bite": False} for _ in plans]
    fl = np.isin(p.part_id, fids)

    def band_sel(m, idx):
        T = np.asarray(m.vertices)[np.asarray(m.faces)[idx]]
        hit = np.zeros(len(idx), bool)
        for q in todo:
            t = q["reach"] - (T - q["hinge"]) @ q["inward"]
            hit |= (t.min(1) < q["W"] + 2e-3) & (np.abs((T - q["hinge"]) @ [0, 0, 1.0]).max(1) < 0.05)
        return hit & np.isin(m.face_attributes["part_id"][idx], fids)

    _refine_chg(p, band_sel, RAG_EDGE_M, max_levels=8, candidates=fl)
    ensure_optional(p.mesh)
    V = np.asarray(p.mesh.vertices).copy()
    F = np.asarray(p.mesh.faces)
    fl_faces = np.flatnonzero(np.isin(p.part_id, fids))
    nf, comp = face_components(F[fl_faces], len(V))
    out = []
    for k in range(nf):
        my = fl_faces[comp == k]
        vids = np.unique(F[my])
        Pk = V[vids]
        c = Pk.mean(0)
        # the plan whose (unrefined) flap this component is: its hinge frame holds c
        q = next((q for q in todo if 0 <= (c - q["hinge"]) @ q["inward"] <= q["reach"]
                  and abs((c - q["hinge"]) @ q["ax"] - 0.5 * (q["grid"][0] + q["grid"][-1])) <= 0.5 * np.ptp(q["grid"]) + 1e-6
                  and abs(c[2] - q["hinge"][2]) < 0.05), None)
        if q is None:
            out.append({"torn": False, "recede_mm": 0.0, "bite": False})
            continue
        u = (Pk - q["hinge"]) @ q["inward"]
        t = q["reach"] - u
        a = np.interp((Pk - q["hinge"]) @ q["ax"], q["grid"], q["a"])
        d = a * np.clip(1.0 - t / q["W"], 0.0, None)
        V[vids] = Pk - d[:, None] * q["inward"]
        # finishes: the torn edge (faces of the free-edge side) shows the fluted
        # core; the top liner's faces touching it the lighter inner paper
        edge_v = np.zeros(len(V), bool)
        edge_v[vids[t < 1e-4]] = True
        fn, _ = normals_areas(np.asarray(p.mesh.vertices), F[my])
        on_edge = edge_v[F[my]].all(1) & (np.abs(fn[:, 2]) < 0.5)
        liner = edge_v[F[my]].any(1) & (fn[:, 2] > 0.5)
        paint(p.mesh, my[on_edge], np.ones(3), "core")
        paint(p.mesh, my[liner], np.ones(3), "inner_liner")
        p.mesh.face_attributes["_chg"][my] = 1
        out.append({"torn": True, "recede_mm": float(a.max() * 1e3), "bite": q["bite"]})
    p.mesh.vertices = V
    return out


def _flap_frames(p: Product, fids: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Per flap component (build order): (its face indices, hinge point (3,),
    inward unit (3,), reach m), the hinge as :func:`_flap_open` finds it."""
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    ffaces = np.flatnonzero(np.isin(p.part_id, fids))
    nf, comp = face_components(F[ffaces], len(V))
    ilo, ihi = V.min(0), V.max(0)
    out = []
    for k in range(nf):
        my = ffaces[comp == k]
        P = V[np.unique(F[my])]
        lo, hi = P.min(0), P.max(0)
        q = 1 if (hi - lo)[0] >= (hi - lo)[1] else 0
        inward = np.zeros(3)
        hinge = np.array([0.0, 0.0, lo[2]])
        low = lo[q] - ilo[q] <= ihi[q] - hi[q]
        hinge[q] = lo[q] if low else hi[q]
        inward[q] = 1.0 if low else -1.0
        out.append((my, hinge, inward, float(hi[q] - lo[q])))
    return out


def _forced_draws(p: Product, fids: list[int], nf: int, prm: DeconstructionParams,
                  rng: np.random.Generator) -> list[dict]:
    """Per flap of a box opened by force: the hinge angle theta (radians): the
    neat opening's angle x U(0.7, 1.6) in [40, 175] degrees, or with odds
    DROOP_P (when the neat angle is past 60 degrees) drooping over the wall at
    195-240 degrees; and with odds BEND_P a crease across it, (u0, phi, band)
    for :func:`_bend`: u0 in U(0.35, 0.7) of its reach, |phi| 20-60 degrees,
    away from the wall when it droops, never folding it back below the rim.
    Refines the flaps across their creases (labels carried). Mutates p."""
    torn = _rag_flaps(p, fids, rng)
    frames = _flap_frames(p, fids)
    V = np.asarray(p.mesh.vertices)
    out = []
    for (my, hinge, inward, reach), tn in zip(frames, torn):
        zs = V[np.unique(np.asarray(p.mesh.faces)[my]), 2]
        w = min(prm.opening_mm / 1000.0 * rng.uniform(0.75, 1.25), 1.9 * reach)
        base = 2 * np.arcsin(min(1.0, w / (2 * reach)))
        if base > np.radians(60) and rng.uniform() < DROOP_P:
            theta = np.radians(rng.uniform(195, 240))
        else:
            theta = float(np.clip(base * rng.uniform(0.7, 1.6), np.radians(40), np.radians(175)))
        bend = None
        if theta > np.radians(60) and rng.uniform() < BEND_P:
            mag = np.radians(rng.uniform(20, 60))
            if theta > np.pi:
                sg = -1.0                      # droops: folds away from the wall
            else:
                sg = 1.0 if rng.uniform() < 0.5 else -1.0
                if sg < 0:
                    mag = min(mag, theta - np.radians(10))  # never turned down past the horizontal
            half = 0.5 * float(zs.max() - zs.min())
            band = max(0.012, 2.2 * mag * half)
            bend = (float(rng.uniform(0.35, 0.7) * reach), float(sg * mag), float(band))
        out.append({"theta": float(theta), "bend": bend, "hinge": hinge, "inward": inward, "faces": my, "torn": tn})
    bands = [(d["hinge"], d["inward"], d["bend"]) for d in out if d["bend"] is not None]
    if bands:
        fl = np.isin(p.part_id, fids)

        def sel(m, idx):
            T = np.asarray(m.vertices)[np.asarray(m.faces)[idx]]
            hit = np.zeros(len(idx), bool)
            for h, inw, (u0, _, band) in bands:
                u = (T - h) @ inw
                hit |= (u.max(1) > u0 - 2e-3) & (u.min(1) < u0 + band + 2e-3) & (np.abs(((T - h) @ [0, 0, 1.0])).max(1) < 0.05)
            return hit & np.isin(m.face_attributes["part_id"][idx], fids)

        _refine_chg(p, sel, min(b[2] for _, _, b in bands) / 5, max_levels=5, candidates=fl)
        ensure_optional(p.mesh)
    return out


def _dent_rim(p: Product, blo: np.ndarray, bhi: np.ndarray, rng: np.random.Generator) -> dict:
    """The rim of a box opened by force is dented: a d-cone (``fold.Pyramid``,
    3-4 ridges) at a random point of an end wall's top edge, pushed down and in
    (along (inward + 1.5 down)), 6-18 mm deep over 25-55 mm, as the crush op's
    shear (``crush.FoldField``: injective; its falloff ends before the nearest
    bbox wall along the push). Refines where the shear is not linear. Marks the
    moved faces in ``_chg``. Mutates p. Returns the region facts."""

    V = np.asarray(p.mesh.vertices)
    # on an end wall (the flaps hinge along the long walls: a dent there would bend
    # the hinge line under the opened flaps, whose faces are too coarse to follow it)
    ax = int(np.argmax(bhi[:2] - blo[:2]))
    hi_side = bool(rng.uniform() < 0.5)
    o = 1 - ax
    c = np.zeros(3)
    c[ax] = bhi[ax] if hi_side else blo[ax]
    c[o] = blo[o] + rng.uniform(0.3, 0.7) * (bhi[o] - blo[o])
    c[2] = bhi[2]
    inward = np.zeros(3)
    inward[ax] = -1.0 if hi_side else 1.0
    b = inward + np.array([0.0, 0.0, -1.5])
    b /= np.linalg.norm(b)
    R = float(rng.uniform(0.025, 0.055))
    T = _wall_depth(V, c, b)
    d = float(min(rng.uniform(0.006, 0.018), 0.45 * T, R))
    L = 0.85 * T
    beta = crease_band_m(R * 1e3)
    e1, e2 = _lateral_frame(b, np.eye(3)[o])
    k = int(rng.choice([3, 4]))
    prof = FD.Pyramid(d, R, FD.radiating_normals(rng, k), rng.uniform(0.75, 1.25, k), beta, 1.5 * R, None)
    fld = FoldField(c, b, e1, e2, prof, L)
    tol = interp_tol_m(d)
    rs = prof.support_radius()

    nonlinear = nonlinear_faces(fld.scalar, tol)

    Tm = V[np.asarray(p.mesh.faces)]
    cand = (np.linalg.norm(Tm.mean(1) - c, axis=1) - np.sqrt(((Tm - Tm.mean(1, keepdims=True)) ** 2).sum(2)).max(1)
            < rs + L)
    _refine_chg(p, nonlinear, crease_edge_m(R * 1e3), max_levels=6, candidates=cand, keep_geometry=False)
    V = np.asarray(p.mesh.vertices)
    disp = fld(V)
    dn = np.sqrt((disp ** 2).sum(1))
    moved = dn > change_threshold_m(float(dn.max()))
    F = np.asarray(p.mesh.faces)
    p.mesh.vertices = V + disp
    p.mesh.face_attributes["_chg"][moved[F].any(1)] = 1
    if p.collision:
        p.collision = tuple(np.asarray(cp) + fld(np.asarray(cp, np.float64)) for cp in p.collision)
    return {"center_m": c.tolist(), "direction": b.tolist(), "depth_mm": float(dn.max() * 1e3), "radius_m": R,
            "folds": k}


#: dunnage keeps this clearance (m) from an opened flap's bounding slab; it is
#: squashed toward the floor by 0.85 at most this many times to get clear
FLAP_CLEAR_M, SQUASH_STEPS = 0.01, 12


def _clear_of_flaps(p: Product, fids: list[int], flaps: list[dict], pieces: list, floor_z: float) -> list:
    """Dunnage rising above the rim must not pierce a flap that stands over the
    opening (any flap opened less than ~90 degrees leans over it): no vertex of a
    piece may lie in any opened flap's
    oriented bounding slab (hinge frame: along the flap, across it, along the
    hinge) grown by FLAP_CLEAR_M: a piece that does is squashed toward the floor
    (heights above floor_z x 0.85, up to SQUASH_STEPS times: paper and pillows
    give), and dropped if it never clears. Returns the pieces kept (squashed in
    place)."""
    V, F = np.asarray(p.mesh.vertices), np.asarray(p.mesh.faces)
    ffaces = np.flatnonzero(np.isin(p.part_id, fids))
    nf, comp = face_components(F[ffaces], len(V))
    boxes = []
    for k in range(min(nf, len(flaps))):
        f = flaps[k]
        h, ax = np.asarray(f["hinge_m"], float), np.asarray(f["hinge_axis"], float)
        inward = np.cross([0.0, 0.0, 1.0], ax)
        d = _rotation(np.zeros(3), ax, inward, np.radians(f["angle_deg"]), inward[None])[0]  # along the opened flap
        n = np.cross(ax, d)
        R3 = np.stack([d, n, ax])
        Q = (V[np.unique(F[ffaces[comp == k]])] - h) @ R3.T
        boxes.append((h, R3, Q.min(0) - FLAP_CLEAR_M, Q.max(0) + FLAP_CLEAR_M))

    def hits(X):
        return any(np.all(((X - h) @ R3.T >= lo) & ((X - h) @ R3.T <= hi), axis=1).any() for h, R3, lo, hi in boxes)

    kept = []
    for m in pieces:
        X = np.asarray(m.vertices)
        for _ in range(SQUASH_STEPS):
            if not hits(X):
                m.vertices = X
                kept.append(m)
                break
            X = X.copy()
            X[:, 2] = floor_z + (X[:, 2] - floor_z) * 0.85
    return kept


def _box_open(p: Product, prm: DeconstructionParams, rng: np.random.Generator):
    """Every flap of a carton swings open (each ``opening_mm`` x U(0.75, 1.25),
    capped at 1.9 x its reach), tape on the flaps peeled, the box's inside dark;
    optionally a contents box stands in the opening. Mutates p."""
    fids = part_indices(p, "flap")
    if not fids:
        raise NotApplicable(f"{OP}.mode: 'box_open' needs a 'flap' part; product {p.sku!r} ({p.kind}) has parts "
                         f"{[q.name for q in p.parts]}")
    F = np.asarray(p.mesh.faces)
    nf, _ = face_components(F[np.isin(p.part_id, fids)], len(p.mesh.vertices))
    ensure_optional(p.mesh)
    p.mesh.face_attributes["_chg"] = np.zeros(len(F), np.int8)
    flaps, disp = [], 0.0
    draws = _forced_draws(p, fids, nf, prm, rng) if prm.forced else [None] * nf
    for k in range(nf):
        one = DeconstructionParams(mode="flap_open", opening_mm=prm.opening_mm, flap=k)
        if draws[k] is None:
            faces, size, region = _flap_open(p, one, rng, scale_w=float(rng.uniform(0.75, 1.25)))
        else:
            faces, size, region = _flap_open(p, one, rng, theta=draws[k]["theta"], bend=draws[k]["bend"])
        p.mesh.face_attributes["_chg"][faces] = 1
        f = {key: region[key] for key in ("hinge_m", "hinge_axis", "angle_deg", "flap")}
        if draws[k] is not None:
            f.update(drooping=bool(draws[k]["theta"] > np.pi),
                     bend_deg=float(np.degrees(draws[k]["bend"][1])) if draws[k]["bend"] else 0.0,
                     torn=draws[k]["torn"]["torn"], torn_recede_mm=draws[k]["torn"]["recede_mm"],
                     torn_bite=draws[k]["torn"]["bite"])
        flaps.append(f)
        disp = max(disp, size["opening_mm"])
    V = np.asarray(p.mesh.vertices)
    body = np.isin(p.part_id, part_indices(p, "body"))
    bv = V[np.unique(np.asarray(p.mesh.faces)[body])] if body.any() else V
    blo, bhi = bv.min(0), bv.max(0)
    floor_z = bhi[2]
    if body.any():
        floor_z = _hollow(p, blo, bhi)
    show = bool(rng.uniform() < 0.5) if prm.contents is None else bool(prm.contents)
    kind = None
    if show:
        kinds = list(DN.KINDS)
        kind = str(kinds[int(rng.integers(len(kinds)))]) if prm.dunnage is None else prm.dunnage
    contents, material = [], None
    if show and kind == "box":
        # what was packed shows in the opening: a box standing on the inside floor
        ext = bhi - blo
        wall = 2 * _board_m(p)
        dims = np.array([(ext[0] - 2 * wall) * rng.uniform(0.45, 0.85), (ext[1] - 2 * wall) * rng.uniform(0.45, 0.85),
                         max(bhi[2] - floor_z, 0.01) * rng.uniform(0.6, 1.15)])
        ctr = np.array([(blo[0] + bhi[0]) / 2 + rng.uniform(-0.4, 0.4) * (ext[0] - 2 * wall - dims[0]) / 2,
                        (blo[1] + bhi[1]) / 2 + rng.uniform(-0.4, 0.4) * (ext[1] - 2 * wall - dims[1]) / 2,
                        floor_z + dims[2] / 2 + 1e-4])
        contents, material = [trimesh.creation.box(extents=dims).apply_translation(ctr)], prm.contents_material
    elif show:
        # dunnage fills the opening and rises above the rim: crumpled paper, bubble wrap, air pillows
        wall = 2 * _board_m(p)
        contents = DN.fill(kind, rng, blo + [wall, wall, 0], bhi - [wall, wall, 0], floor_z, bhi[2])
        material = DN.KINDS[kind]
    # lowered (squashed) where an opened flap leans over them; none left: nothing fits under the flaps
    contents = _clear_of_flaps(p, fids, flaps, contents, floor_z) if contents else []
    if not contents:
        show, kind = False, None
    else:
        ci = add_part(p, "contents", material)
        cms = [labelled_mesh(np.asarray(m.vertices), m.faces, ci) for m in contents]
        chg = p.mesh.face_attributes.pop("_chg")
        p.mesh = concatenate([p.mesh] + cms)      # (drops the private _chg key: restored below)
        p.mesh.face_attributes["_chg"] = np.concatenate([chg] + [np.ones(len(m.faces), np.int8) for m in cms])
        p.collision = tuple(p.collision) + (np.concatenate([np.asarray(m.vertices) for m in contents]),)
    rim = _dent_rim(p, blo, bhi, rng) if prm.forced and body.any() else None
    changed = np.flatnonzero(p.mesh.face_attributes.pop("_chg"))
    region = {"center_m": (0.5 * (blo + bhi) * [1, 1, 0] + [0, 0, bhi[2]]).tolist(), "rim_dent": rim,
              "radius_m": float(np.linalg.norm(bhi[:2] - blo[:2]) / 2), "normal": [0.0, 0.0, 1.0],
              "flaps": flaps, "angle_deg": float(min(f["angle_deg"] for f in flaps)), "contents": show,
              "dunnage": kind, "floor_m": float(floor_z)}
    return changed, {"opening_mm": disp}, region


# -- slits -------------------------------------------------------------------

def _main_parts(p: Product) -> list[int]:
    ids = part_indices(p, "body")
    return ids or [i for i, q in enumerate(p.parts) if q.name not in ("unit", "contents", "debris")]


def _default_length(p: Product, prm: DeconstructionParams) -> float:
    if prm.length_mm is not None:
        return prm.length_mm / 1000.0
    w = prm.opening_mm / 1000.0
    big = max(p.dims_mm) / 1000.0 if max(p.dims_mm) > 0 else float(np.ptp(p.mesh.vertices, axis=0).max())
    return float(min(max(2.5 * w, w + 0.02), 0.8 * big))


def _axis_choice(n0: np.ndarray, rng: np.random.Generator, prefer: np.ndarray | None) -> np.ndarray | None:
    cands = ([prefer] if prefer is not None else []) + list(np.eye(3)[rng.permutation(3)])
    for a in cands:
        t = a - np.dot(a, n0) * n0
        if np.linalg.norm(t) > 0.7:
            return t / np.linalg.norm(t)
    return None


def _slit(p: Product, rng: np.random.Generator, w: float, L: float, main_ids: list[int],
          center_face: int | None, footprint: tuple[np.ndarray, np.ndarray] | None = None,
          axis_pref: np.ndarray | None = None, n_try: int = 40):
    """Pick a slit site, refine around it and open the trough. Mutates p.mesh.
    Returns (changed (n,) bool, info, region)."""
    m = p.mesh
    V, F = np.asarray(m.vertices), np.asarray(m.faces)
    pid = p.part_id
    rb = float(np.hypot(L / 2, w + 0.004)) + 0.002
    seal_ids = part_indices(p, "seal")
    pool = None
    if center_face is None:
        if footprint is None:
            # candidates: a few hundred uniformly drawn faces (cost independent of
            # the mesh size), area weighted below
            cidx = rng.integers(0, len(F), 512)
            cidx = cidx[np.isin(pid[cidx], main_ids)]
            fn, fa = face_normals_of(m, cidx)
            good = (fn[:, 2] > -0.3) & (fa > 0)
            cidx, fa = cidx[good], fa[good]
            if not len(cidx):
                raise NotApplicable(f"{OP}: product {p.sku!r} has no upward or side face of parts {main_ids}")
            if seal_ids:
                sv = V[np.unique(F[np.isin(pid, seal_ids)])]
                slo, shi = sv.min(0), sv.max(0)
                C = V[F[cidx]].mean(1)
                dbox = np.linalg.norm(np.maximum(np.maximum(slo - C, C - shi), 0), axis=1)
                nearseal = dbox < rb + 0.03
                if nearseal.any():
                    cidx, fa = cidx[nearseal], fa[nearseal]
                ext = shi - slo
                axis_pref = np.eye(3)[int(np.argmax(ext[:2]))]
            pool = (cidx, fa / fa.sum())
        else:
            flo, fhi = footprint
            vin = np.all((V[:, :2] >= flo[:2]) & (V[:, :2] <= fhi[:2]), 1)
            near_f = np.flatnonzero(vin[F].any(1) & np.isin(pid, main_ids))
            C = V[F[near_f]].mean(1)
            fn, _ = face_normals_of(m, near_f)
            inside = np.all((C[:, :2] >= flo[:2]) & (C[:, :2] <= fhi[:2]), 1) & (fn[:, 2] > 0.7)
            if not inside.any():
                raise NotApplicable(f"{OP}: no cover face above the removed unit of product {p.sku!r}")
            cx = 0.5 * (flo + fhi)
            cand = near_f[inside]
            Cc = C[inside]
            top = cand[Cc[:, 2] > Cc[:, 2].max() - 1e-3]
            C = np.zeros((len(F), 3))
            C[cand] = Cc
            center_face = int(top[np.argmin(np.linalg.norm(C[top, :2] - cx[:2], axis=1))])
    tries = [center_face] if center_face is not None else None
    why = "no candidate face"
    for attempt in range(n_try if tries is None else 1):
        f = tries[0] if tries is not None else int(rng.choice(pool[0], p=pool[1]))
        c = V[F[f]].mean(0)
        n0 = face_normals_of(m, [f])[0][0]
        axis = _axis_choice(n0, rng, axis_pref)
        if axis is None:
            why = "slit axis not in the surface"
            continue
        # the band the trough moves (plus a margin) must be one flat-enough
        # patch of the main part, clear of other parts lying on it
        rel = V - c
        bb = np.cross(n0, axis)
        band_v = (np.abs(rel @ axis) < L / 2 + 0.002) & (np.abs(rel @ bb) < LIP_BAND * w + 0.004) \
            & (np.abs(rel @ n0) < rb)
        ball = band_v[F].any(1)
        bidx = np.flatnonzero(ball)
        bn, _ = face_normals_of(m, bidx)
        dots = bn @ n0
        front = dots > -0.3
        if footprint is None and (np.any(dots[front] < FLAT_DOT) or not np.all(np.isin(pid[bidx[front]], main_ids))):
            why = "surface not flat or clear of other parts"
            continue
        thick = ray_first_hit(m, c - 1e-6 * n0, -n0)
        depth = min(0.8 * w, 0.45 * thick)
        if depth < 3e-4:
            why = f"wall too thin ({thick * 1e3:.2f} mm)"
            continue
        break
    else:
        raise NotApplicable(f"{OP}: no room for a {L * 1e3:.0f} mm x {w * 1e3:.0f} mm slit on product {p.sku!r} "
                         f"({p.kind}) after {n_try if tries is None else 1} tries: {why}")
    b = np.cross(n0, axis)
    edge = float(np.clip(min(w / 4, L / 8), 4e-4, 8e-3))
    tband = LIP_BAND * w + 2.5 * edge + 0.001  # lips band + wall band (1.2 edge) + slack
    main = np.asarray(main_ids)

    def select(mesh):
        T = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
        rel = T.mean(1) - c
        el = np.sqrt(((T - np.roll(T, -1, axis=1)) ** 2).sum(2)).max(1)
        nrm = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]) @ n0
        return (np.abs(rel @ axis) < L / 2 + el) & (np.abs(rel @ b) < tband + el) & (nrm > 0) \
            & np.isin(mesh.face_attributes["part_id"], main)

    rel = V - c
    seed_v = (np.abs(rel @ axis) < L / 2 + 0.002) & (np.abs(rel @ b) < tband + 0.002) & (np.abs(rel @ n0) < rb)
    seed = seed_v[F].any(1)
    seed[f] = True
    patch = grow(F, seed, len(V), 3)
    m, nfo = refine_where(m, select, edge, patch=patch, by_area=footprint is not None)
    local = np.flatnonzero(patch[nfo])
    F2 = np.asarray(m.faces)
    ln, _ = face_normals_of(m, local)
    bad = (ln @ n0 < 0.3) | ~np.isin(m.face_attributes["part_id"][local], main)
    ok = np.zeros(len(m.vertices), bool)
    ok[F2[local].ravel()] = True
    ok[F2[local[bad]].ravel()] = False
    if footprint is not None:
        flo, fhi = footprint
        Vm = np.asarray(m.vertices)
        ok &= np.all((Vm[:, :2] >= flo[:2]) & (Vm[:, :2] <= fhi[:2]), 1)
    m, changed, info = trough(m, local, c, n0, axis, w, L, depth, ok)
    ensure_optional(m)
    sunk = np.flatnonzero(info["sunk_faces"])
    paint(m, sunk, np.full(3, INTERIOR_TINT), "interior")
    p.mesh = m
    region = {"center_m": c.tolist(), "radius_m": float(np.hypot(L / 2, w)), "normal": n0.tolist(),
              "axis": axis.tolist(), "length_m": L, "depth_m": info["depth_m"]}
    return changed, info, region


def _burst(p: Product, prm: DeconstructionParams, rng: np.random.Generator):
    w, L = prm.opening_mm / 1000.0, _default_length(p, prm)
    if L < w:
        raise ParamError(f"{OP}.length_mm: slit length {L * 1e3:.1f} mm shorter than opening_mm {prm.opening_mm!r}")
    changed, info, region = _slit(p, rng, w, L, _main_parts(p), prm.center)
    return np.flatnonzero(changed), {"opening_mm": info["opening_m"] * 1000.0}, region


def _contents_box(p: Product, prm: DeconstructionParams, rng: np.random.Generator, w: float, L: float):
    """A closed box of contents that fits through a w x L (m) opening, labelled
    with a new ``contents`` part of ``prm.contents_material``."""
    a = 0.8 * w
    dims = np.array([min(rng.uniform(1.0, 2.0) * a, max(a, 0.9 * L)), a, rng.uniform(0.5, 1.0) * a])
    box = trimesh.creation.box(extents=dims)
    ci = add_part(p, "contents", prm.contents_material)
    return labelled_mesh(box.vertices, box.faces, ci)


def _contents_out(p: Product, prm: DeconstructionParams, rng: np.random.Generator):
    w = prm.opening_mm / 1000.0
    ufaces, comp, n = units_of(p)
    extra = np.zeros(0, np.int64)
    if n >= 2:
        which = np.array([int(rng.integers(n))])
        cavity, lo, hi, removed = remove_units(p, ufaces, comp, n, which, want_meshes=True)
        ext = (hi[0] - lo[0])[:2]
        if w > 0.8 * ext.min():
            raise NotApplicable(f"{OP}.opening_mm: {prm.opening_mm!r} wider than 0.8 x the unit's short side "
                             f"({0.8 * ext.min() * 1e3:.1f} mm): the slit must open the cover above the unit")
        L = min(_default_length(p, prm), 0.9 * ext.max())
        L = max(L, w)
        axis = np.eye(3)[int(np.argmax(ext))]
        cover = [i for i, q in enumerate(p.parts) if q.name not in ("unit", "contents", "debris", "card")]
        cover = cover or [i for i, q in enumerate(p.parts) if q.name != "unit"]
        flag = np.zeros(len(p.mesh.faces), bool)
        flag[cavity] = True
        p.mesh.face_attributes["_cav"] = flag.astype(np.int8)
        changed, info, region = _slit(p, rng, w, L, cover, None, footprint=(lo[0], hi[0]), axis_pref=axis)
        extra = np.flatnonzero(p.mesh.face_attributes.pop("_cav"))
        sat = removed[0]
    elif part_indices(p, "flap"):
        # a carton spills its contents through an opened flap
        changed_idx, size, region = _flap_open(p, prm, rng)
        changed = np.zeros(len(p.mesh.faces), bool)
        changed[changed_idx] = True
        info = {"opening_m": size["opening_mm"] / 1000.0}
        sat = _contents_box(p, prm, rng, w, 2 * w)
    else:
        L = _default_length(p, prm)
        if L < w:
            raise ParamError(f"{OP}.length_mm: slit length {L * 1e3:.1f} mm shorter than opening_mm "
                             f"{prm.opening_mm!r}")
        changed, info, region = _slit(p, rng, w, L, _main_parts(p), prm.center)
        sat = _contents_box(p, prm, rng, w, L)
    V = np.asarray(sat.vertices, dtype=np.float64).copy()
    ext3 = np.ptp(V, axis=0)
    if ext3[2] > ext3[:2].max():  # a standing unit that fell out lies on its side
        V = np.column_stack([V[:, 0], -V[:, 2], V[:, 1]])  # +90 degrees about x (a rotation)
    lo3, hi3 = V.min(0), V.max(0)
    V -= np.array([(lo3[0] + hi3[0]) / 2, (lo3[1] + hi3[1]) / 2, lo3[2]])
    sm = trimesh.Trimesh(vertices=V, faces=np.asarray(sat.faces), process=False)
    sm.face_attributes = {k: np.array(v, copy=True) for k, v in sat.face_attributes.items()}
    ensure_optional(sm)
    p.satellites = tuple(p.satellites) + (Satellite(sm, float(rng.uniform(0.01, 0.08)), "contents"),)
    region = dict(region, satellite=len(p.satellites) - 1)
    faces = np.union1d(np.flatnonzero(changed), extra)
    return faces, {"opening_mm": info["opening_m"] * 1000.0}, region


@register(OP, DeconstructionParams, "deconstruction", opens_surface=False)
def deconstruction(product: Product, params: DeconstructionParams,
                   rng: np.random.Generator) -> tuple[Product, DamageRecord]:
    """Open or burst the packaging (see the module docstring for the modes).

    product: input item (not mutated); params: :class:`DeconstructionParams`;
    rng: every random choice. Returns (new product, record) with size
    {"opening_mm": measured on the result}.
    """
    prm = params
    if prm.center is not None and prm.center >= len(product.mesh.faces):
        raise ParamError(f"{OP}.center: face index {prm.center} out of range for a product with "
                         f"{len(product.mesh.faces)} faces")
    p = product.copy()
    if prm.mode == "flap_open":
        faces, size, region = _flap_open(p, prm, rng)
    elif prm.mode == "burst_seam":
        faces, size, region = _burst(p, prm, rng)
    elif prm.mode == "box_open":
        faces, size, region = _box_open(p, prm, rng)
    else:
        faces, size, region = _contents_out(p, prm, rng)
    p, rec = add_damage(p, faces, OP, size, dict(region, mode=prm.mode), asdict(prm))
    if prm.mode == "contents_out":
        p.satellites[-1].mesh.face_attributes["damage_id"][:] = len(p.damages)
    return p, rec
