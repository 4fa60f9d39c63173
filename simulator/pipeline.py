"""Generation pipeline: sample items, settle them with physics, render every camera,
write one capture folder per sample, then the COCO files and the dataset card.

Capture i depends only on (seed, i): its random streams come from
``np.random.SeedSequence([seed, i])``, the physics world is reset for every
capture and the renderer keeps no per-capture state.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from damage_ops.product import jsonable

from .errors import ConfigError
from .sensors import SensorDraws, apply_to_frames
from .paths import default_catalog, default_rig
from .writers import DEPTH_SCALE_M, list_captures, reference_dir, write_capture, write_card, write_coco

#: named random streams of one capture, in spawn order (append only: reordering
#: would change every existing dataset)
STREAMS = ("scene", "damage", "physics", "render", "placement", "randomize", "variant")
#: most captures in one dataset (the manifest, the COCO files and the card are
#: built in memory; 10^7 is the top of the corpus sizes researchers ask for)
MAX_CAPTURES = 10 ** 7
#: scenes drawn again when physics cannot place an item (then the capture fails)
PLACEMENT_REDRAWS = 3


@dataclass(frozen=True)
class GenerateSpec:
    """What to generate. Paths are stored as given (strings) in the dataset card."""

    n: int = 10
    seed: int = 0
    out: str = "renders/default"
    rig: str = field(default_factory=lambda: str(default_rig()))
    catalog: str = field(default_factory=lambda: str(default_catalog()))
    items_per_tray: int = 1
    #: command-line overrides of the catalog's damage mix (simulator.corpus.DamageMix fields)
    damage: dict = field(default_factory=dict)
    #: domain randomization preset name or mapping (None = the catalog's section)
    randomization: Any = None

    def validate(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_CAPTURES:
            raise ConfigError(None, "--n", self.n, f"must be an integer in 1..{MAX_CAPTURES:,} (a larger corpus: "
                                                   f"several datasets with different --seed)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(None, "--seed", self.seed, "must be an integer >= 0")
        if not isinstance(self.items_per_tray, int) or not 1 <= self.items_per_tray <= 8:
            raise ConfigError(None, "--items", self.items_per_tray, "must be an integer in 1..8")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _release_freed_memory() -> None:
    """Free this capture's garbage now and give the memory back to the OS.

    Every trimesh.Trimesh is a reference cycle (the mesh and its visual, ray and
    permutate helpers point at each other), so a discarded product's arrays wait
    for a full garbage collection, which Python runs only once the oldest
    generation grew by a quarter: in a 600-capture run RSS swung by up to 300 MB
    and drifted up ~0.4 MB per capture; collecting here keeps it flat. The
    objects alive when a CaptureMaker is made (modules, rig, catalog, GL context)
    are frozen out of later passes (gc.freeze; CaptureMaker.close unfreezes), so
    a pass walks only what captures made (measured ~38 -> ~9 ms a capture, mostly
    freeing that capture's garbage). Then malloc_trim: glibc keeps freed blocks
    in its arenas otherwise (no-op off glibc)."""
    global _LIBC
    import gc

    gc.collect()
    if gc.get_freeze_count() == 0:
        gc.freeze()
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def capture_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators for one capture, determined by (seed, index) only."""
    children = np.random.SeedSequence([seed, index]).spawn(len(STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(STREAMS, children)}


def reference_streams(seed: int, sku: str, pose: int) -> dict[str, np.random.Generator]:
    """Streams of reference capture ``pose`` of ``sku``: depend on (seed, sku, pose)
    only; the 2**32 offset keeps them apart from capture streams (seed, i)."""
    key = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:4], "little")
    children = np.random.SeedSequence([seed, 2 ** 32 + key, pose]).spawn(len(STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(STREAMS, children)}


#: ops whose site is a face index parameter ``center`` (the others pick their own site)
CENTERED_OPS = ("crush", "puncture", "spill", "tear")


def damage_item(product, mix, rng: np.random.Generator, max_tries: int = 6, seen=None):
    """Apply the corpus damage mix to one pristine product.

    seen: None (damage anywhere), or a function mesh -> (n_faces,) bool of the
    faces some camera can see (the product at its resting pose). Then ops that
    take a site are given one drawn among the seen exposed faces, and a damage
    none of whose faces is seen (an op that picks its own site, e.g. a flap that
    opens on the resting face) is rejected and drawn again; a damage that lives
    only on satellites (a puddle beside the item) is always seen.

    Returns (product, log): the damaged product (or the input when the draw says
    intact) and a list of what was tried, including ops that could not apply
    (capped at ``max_tries`` draws per damage)."""
    from damage_ops._surface import pick_exposed_face
    from damage_ops.base import ParamError, apply
    from damage_ops.sampling import applicable_ops, sample_params
    from damage_ops.taxonomy import CATEGORIES

    log: list[dict[str, Any]] = []
    if rng.random() >= mix.rate:
        return product, log
    lo, hi = mix.per_item
    for _ in range(int(rng.integers(lo, hi + 1))):
        for _try in range(max_tries):
            cats = [c for c in CATEGORIES if mix.category_weights.get(c, 0) > 0 and applicable_ops(product, c)]
            if not cats:
                break
            w = np.array([mix.category_weights[c] for c in cats], float)
            cat = str(rng.choice(cats, p=w / w.sum()))
            op = str(rng.choice(applicable_ops(product, cat)))
            sev = "major" if rng.random() < mix.major_fraction else "minor"
            params = sample_params(op, sev, product, rng)
            if seen is not None and op in CENTERED_OPS and "center" not in params:
                mask = seen(product.mesh)
                if not mask.any():
                    log.append({"op": op, "severity": sev, "params": params, "error": "no seen face to damage"})
                    continue
                params = {**params, "center": int(pick_exposed_face(product.mesh, rng, mask))}
            try:
                damaged, rec = apply(product, op, params, rng)
            except (ParamError, ValueError, RuntimeError) as e:
                # an op that cannot apply here (no room, a boolean the geometry
                # kernel rejects): logged, and another damage is drawn
                log.append({"op": op, "severity": sev, "params": params, "error": f"{type(e).__name__}: {e}"})
                continue
            if seen is not None and not _damage_seen(damaged, seen):
                log.append({"op": op, "severity": sev, "params": params, "error": "damage on no face a camera sees"})
                continue
            product = damaged
            log.append({"op": op, "severity": sev, "params": params, "applied": rec.severity})
            break
    return product, log


def _damage_seen(product, seen) -> bool:
    """The newest damage of ``product`` has a face in ``seen(mesh)``, or lives only
    on satellites (they lie on the tray beside the item, in view)."""
    did = len(product.damages)
    faces = np.asarray(product.mesh.face_attributes["damage_id"]) == did
    if not faces.any():
        return any((np.asarray(s.mesh.face_attributes["damage_id"]) == did).any() for s in product.satellites)
    return bool((faces & seen(product.mesh)).any())


def seen_faces(T_world_from_item: np.ndarray, cameras: np.ndarray | None, tray_clearance_m: float = 0.004):
    """A function mesh -> (n_faces,) bool: faces of an item resting at
    ``T_world_from_item`` that some camera can see: facing a camera position
    (``cameras``: (c, 3) world meters; None = cameras anywhere above the tray,
    as with random or close-up viewpoints: facing up or sideways) and not lying
    within ``tray_clearance_m`` of the item's lowest point (the face it rests on).
    Occlusion by other parts is left to the ops' exposed-face tests."""
    T = np.asarray(T_world_from_item, float)
    R, t = T[:3, :3], T[:3, 3]

    def mask(mesh) -> np.ndarray:
        n = np.asarray(mesh.face_normals) @ R.T
        c = np.asarray(mesh.triangles_center) @ R.T + t
        z0 = float((np.asarray(mesh.vertices) @ R[2]).min() + t[2])
        off_floor = c[:, 2] > z0 + tray_clearance_m
        if cameras is None:
            facing = n[:, 2] > -0.3
        else:
            facing = np.zeros(len(c), bool)
            for p in np.asarray(cameras, float):
                v = p - c
                facing |= np.einsum("ij,ij->i", v, n) > 0.05 * np.linalg.norm(v, axis=1)
        return off_floor & facing

    return mask


def rest_like(product, pristine, placement):
    """The placement of a damaged product that takes its pristine twin's resting
    pose: the same pose, lowered or raised so its lowest point is where the
    pristine one's was (damage on seen faces leaves the resting face in place;
    this removes the millimetres a crushed or opened item gains or loses)."""
    from dataclasses import replace

    T = np.array(placement.T_world_from_item, float)
    z = lambda m: float((np.asarray(m.vertices) @ T[2, :3]).min() + T[2, 3])  # noqa: E731
    T[2, 3] += z(pristine.mesh) - z(product.mesh)
    return replace(placement, T_world_from_item=T, min_z_m=float(placement.min_z_m))


def item_target(product, T: np.ndarray):
    """The close-up target of one placed item: its world bounding sphere and the
    outward normals of its damages (area-weighted mean over each damage's faces)."""
    from .randomization import Target

    T = np.asarray(T, float)
    V = np.asarray(product.mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    lo, hi = V.min(0), V.max(0)
    normals = []
    did = np.asarray(product.mesh.face_attributes["damage_id"])
    if product.damages:
        fn = np.asarray(product.mesh.face_normals) * np.asarray(product.mesh.area_faces)[:, None]
        for j in range(1, len(product.damages) + 1):
            sel = did == j
            if sel.any():
                v = fn[sel].sum(0) @ T[:3, :3].T
                if np.linalg.norm(v) > 1e-12:
                    normals.append(v / np.linalg.norm(v))
    return Target(center=(lo + hi) / 2, radius=float(np.linalg.norm(hi - lo) / 2),
                  damage_normals=np.array(normals).reshape(-1, 3))


def visible_pixels(frames: dict) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Per camera, how many pixels show each damage instance and each item:
    ({damage id: {camera: px}}, {instance id: {camera: px}}), zero counts left out."""
    dmg: dict[int, dict[str, int]] = {}
    inst: dict[int, dict[str, int]] = {}
    for cam, fr in frames.items():
        for table, img in ((dmg, fr.damage_instance), (inst, fr.instance)):
            counts = np.bincount(np.asarray(img, np.int64).ravel())
            for i in np.flatnonzero(counts[1:]) + 1:
                table.setdefault(int(i), {})[cam] = int(counts[i])
    return dmg, inst


def hard_negative_kind(product) -> str | None:
    """``design_variant`` (intact, another printed design of its SKU),
    ``artwork_print`` (intact, damage-looking print) or None."""
    if product.damages:
        return None
    if product.meta.get("design_variant"):
        return "design_variant"
    if str(product.meta.get("art_style", "")).endswith("_print"):
        return "artwork_print"
    return None


def footprint_xy(mesh, T: np.ndarray) -> np.ndarray:
    """(k, 2) world xy of the mesh's vertices after T (for placing things beside it)."""
    V = np.asarray(mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    return V[:, :2]


def place_beside(item_xy: np.ndarray, piece_xy: np.ndarray, gap_m: float, tray, rng: np.random.Generator,
                 occupied: list[np.ndarray] = (), tries: int = 16) -> np.ndarray | None:
    """A (4, 4) pose (rotation about z + translation) that puts a piece lying on
    the tray ``gap_m`` beside an item, inside the tray, clear of ``occupied``
    footprints. Directions are tried from a random start; None if none fits."""
    sx, sy = tray.size_m
    c = item_xy.mean(0)
    start = rng.uniform(0, 2 * np.pi)
    yaw = rng.uniform(0, 2 * np.pi)
    R = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    P = (piece_xy - piece_xy.mean(0)) @ R.T
    for k in range(tries):
        a = start + 2 * np.pi * k / tries
        d = np.array([np.cos(a), np.sin(a)])
        reach = (item_xy - c) @ d
        back = -(P @ d)
        pos = c + d * (reach.max() + gap_m + back.max())
        Q = P + pos
        if (np.abs(Q[:, 0]) > sx / 2 - 0.005).any() or (np.abs(Q[:, 1]) > sy / 2 - 0.005).any():
            continue
        if any(_overlap(Q, o) for o in occupied):
            continue
        T = np.eye(4)
        T[:2, :2] = R
        T[:2, 3] = pos - R @ piece_xy.mean(0)
        T[2, 3] = 2e-4  # a hair above the floor: no z-fighting with the tray
        return T
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Axis-aligned bounding boxes of two xy point sets overlap."""
    return bool((a.min(0) <= b.max(0)).all() and (b.min(0) <= a.max(0)).all())


class CaptureMaker:
    """Makes captures. Owns one physics client and one GL context; reuse it."""

    def __init__(self, spec: GenerateSpec, rig, catalog):
        from .physics import PhysicsWorld
        from .render import BoothRenderer

        self.spec, self.rig, self.catalog = spec, rig, catalog
        self.mix = catalog.damage.with_overrides(**spec.damage)
        from .randomization import parse as parse_dr

        self.dr = parse_dr(None, spec.randomization) if spec.randomization is not None else catalog.randomization
        self.world = PhysicsWorld()
        self.renderer = BoothRenderer(rig, catalog.materials)
        self.timings: dict[str, float] = {}
        _release_freed_memory()  # freezes what lives as long as this maker (see there)

    def close(self) -> None:
        import gc

        self.renderer.close()
        self.world.close()
        gc.unfreeze()  # this maker's objects may be collected again

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def scene(self, index: int):
        """Sample, damage and place the items of capture ``index``.

        Returns a dict with pristine and damaged products, placements, satellite
        poses, distractors (unrelated mess) and the damage log."""
        from .errors import PlacementError

        streams = capture_streams(self.spec.seed, index)
        unplaceable = []
        for _draw in range(PLACEMENT_REDRAWS + 1):
            skus = [self.catalog.sample(streams["scene"]) for _ in range(self.spec.items_per_tray)]
            pristine = [self.catalog.build(s) for s in skus]
            try:
                if self.mix.where == "seen":
                    placements, products, logs = self._damage_where_seen(skus, pristine, streams)
                else:
                    placements, products, logs = self._damage_anywhere(skus, pristine, streams)
                break
            except PlacementError as e:
                # an item that will not come to rest on this tray (too big, rolls off):
                # draw the scene again from the same streams, and say so in the metadata
                unplaceable.append({"skus": [s.sku for s in skus], "error": str(e)})
        else:
            raise PlacementError(f"capture {index}: no placeable scene in {PLACEMENT_REDRAWS + 1} draws: {unplaceable}")
        sc = self._arrange(products, pristine, placements, logs, streams["placement"], allow_mess=True)
        sc["unplaceable_draws"] = unplaceable
        sc["sensor_seed"] = int(streams["render"].integers(0, 2 ** 63 - 1))
        self._randomize(sc, streams["randomize"])
        return sc

    def _damage_anywhere(self, skus, pristine, streams):
        """Damage the items, then drop them: damage may land on the face an item
        comes to rest on (``where: anywhere``; the draws of earlier versions)."""
        products, logs = [], []
        for p in pristine:
            d, log = damage_item(p, self.mix, streams["damage"])
            products.append(d)
            logs.append(log)
        self._variants(skus, products, pristine, streams["variant"])
        placements = self.world.settle(products, self.rig.tray, streams["physics"], self.catalog.materials)
        return placements, products, logs

    def _damage_where_seen(self, skus, pristine, streams):
        """Drop the pristine items, then damage each on faces a camera sees at its
        resting pose (``where: seen``); a damaged item keeps its pristine twin's
        pose (see :func:`rest_like`), so the counterfactual pair is exact."""
        placements = self.world.settle(pristine, self.rig.tray, streams["physics"], self.catalog.materials)
        cams = None if self.dr.viewpoints != "rig" else np.array([c.T_world_from_cam[:3, 3] for c in self.rig.cameras])
        products, logs = [], []
        for p, pl in zip(pristine, placements):
            d, log = damage_item(p, self.mix, streams["damage"], seen=seen_faces(pl.T_world_from_item, cams))
            products.append(d)
            logs.append(log)
        self._variants(skus, products, pristine, streams["variant"])
        on_floor = [abs(pl.min_z_m) < 2e-3 for pl in placements]
        placements = [rest_like(d, p, pl) if (d is not p and floor) else pl
                      for d, p, pl, floor in zip(products, pristine, placements, on_floor)]
        return placements, products, logs

    def _variants(self, skus, products, pristine, rng: np.random.Generator) -> None:
        for k, s in enumerate(skus):
            v = self._design_variant(s, products[k], rng)
            if v is not None:  # the counterfactual shows the same design
                products[k] = pristine[k] = v

    def _design_variant(self, sku, product, rng: np.random.Generator):
        """A packaging design variant of an intact item with artwork, drawn at
        ``mix.variant_rate`` (a hard negative), or None. Both draws are always
        made, so one item's outcome never shifts another's."""
        draw, k = rng.random(), int(rng.integers(1, self.mix.variants_per_sku + 1))
        if draw >= self.mix.variant_rate or product.damages or product.artwork is None:
            return None
        return self.catalog.variant(sku, k)

    def _randomize(self, sc: dict, rng: np.random.Generator) -> None:
        """Draw this capture's domain randomization and its clutter."""
        from .randomization import clutter_products, sample

        targets = [item_target(p, pl.T_world_from_item) for p, pl in zip(sc["products"], sc["placements"])]
        sc["randomization"] = sample(self.dr, self.rig, rng, targets)
        n = sc["randomization"].get("clutter", 0)
        if n:
            occupied = [footprint_xy(p.mesh, pl.T_world_from_item) for p, pl in zip(sc["products"], sc["placements"])]
            occupied += [footprint_xy(d["product"].mesh, d["T"]) for d in sc["distractors"]]
            for prod, T, desc in clutter_products(n, rng, self.rig.tray, occupied):
                sc["distractors"].append({"product": prod, "T": T, "kind": "clutter", "desc": desc})

    def _arrange(self, products, pristine, placements, logs, rng, allow_mess: bool):
        """Lay satellites (puddles, fallen contents) beside their items and, for
        intact items, maybe an unrelated mess (hard negative)."""
        from damage_ops import Part, Product

        occupied = [footprint_xy(p.mesh, pl.T_world_from_item) for p, pl in zip(products, placements)]
        sat_poses, distractors = [], []
        for p, pl, occ in zip(products, placements, list(occupied)):
            poses = []
            for sat in p.satellites:
                T = place_beside(occ, np.asarray(sat.mesh.vertices)[:, :2], sat.gap_m, self.rig.tray, rng, occupied)
                if T is None:  # no room on the tray: put it under the item's footprint edge, still labelled
                    T = place_beside(occ, np.asarray(sat.mesh.vertices)[:, :2], sat.gap_m, self.rig.tray, rng, [])
                if T is None:
                    T = np.eye(4)
                    T[:2, 3] = occ.mean(0)
                poses.append(T)
                occupied.append(footprint_xy(sat.mesh, T))
            sat_poses.append(tuple(poses))
        if allow_mess:
            for p, pl, occ in zip(products, placements, occupied[: len(products)]):
                if p.damages or rng.random() >= self.mix.mess_rate:
                    continue
                from damage_ops.spill import puddle_mesh

                substance = str(rng.choice(["liquid", "powder"]))
                area_cm2 = float(rng.uniform(20, 250))
                V, F, _top = puddle_mesh(rng, area_cm2 * 1e-4, substance, 0)
                from damage_ops import labelled_mesh

                mess = Product(sku="mess", kind="mesh", mesh=labelled_mesh(V, F, 0),
                               parts=(Part("debris", "liquid_spill" if substance == "liquid" else "powder"),))
                T = place_beside(occ, V[:, :2], float(rng.uniform(0.02, 0.08)), self.rig.tray, rng, occupied)
                if T is not None:
                    occupied.append(footprint_xy(mess.mesh, T))
                    distractors.append({"product": mess, "T": T, "substance": substance, "area_cm2": area_cm2})
        return {"products": products, "pristine": pristine, "placements": placements, "satellite_poses": sat_poses,
                "distractors": distractors, "damage_log": logs}

    def scene_items(self, sc: dict, pristine: bool = False) -> list:
        """SceneItems of an arranged scene; ``pristine``: the counterfactual (same
        poses, damage and satellites removed; distractors kept)."""
        from .render import SceneItem

        items, offset = [], 0
        for k, (prod, pl) in enumerate(zip(sc["pristine"] if pristine else sc["products"], sc["placements"])):
            poses = () if pristine else sc["satellite_poses"][k]
            items.append(SceneItem(prod, pl.T_world_from_item, k + 1, offset, poses))
            offset += len(prod.damages)
        for d in sc["distractors"]:
            items.append(SceneItem(d["product"], d["T"], 0, 0, (), distractor=True))
        return items

    def make(self, index: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """Build, settle and render capture ``index``.

        Returns (capture.json dict, frames, pristine frames or None)."""
        sc = self.scene(index)
        meta = self.metadata(sc, index=index)
        self.renderer.configure(sc["randomization"])
        # the pristine counterfactual has the same sensor seed: it replays these draws
        noise = SensorDraws() if self.mix.pairs else None
        frames, draws = apply_to_frames(self.rig, self.renderer.render(self.scene_items(sc)), sc["sensor_seed"], noise)
        self._record_sensor(meta, draws, sc["sensor_seed"])
        self._record_visibility(meta, frames)
        pair = None
        if self.mix.pairs and meta["damages"]:
            # same poses, lights and sensor noise seed: only the damage differs
            pair, _ = apply_to_frames(self.rig, self.renderer.render(self.scene_items(sc, pristine=True)),
                                      sc["sensor_seed"], noise)
            meta["pristine_pair"] = True
        self.renderer.configure(None)
        _release_freed_memory()
        return meta, frames, pair

    @staticmethod
    def _record_visibility(meta: dict, frames: dict) -> None:
        """Which cameras see each damage and each item, with how many pixels."""
        dmg, inst = visible_pixels(frames)
        for d in meta["damages"]:
            px = dmg.get(d["damage_instance_id"], {})
            d["visible_px"] = px
            d["seen_by"] = sorted(px)
        for it in meta["items"]:
            it["visible_px"] = inst.get(it["instance_id"], {})

    @staticmethod
    def _record_sensor(meta: dict, draws: dict, sensor_seed: int) -> None:
        meta["sensor_seed"] = int(sensor_seed)
        for name, d in draws.items():
            meta["cameras"][name]["sensor_draws"] = jsonable(d)

    def metadata(self, sc: dict, index: int | None = None, reference: dict | None = None) -> dict[str, Any]:
        items, damages = [], []
        offset = 0
        for k, (prod, pl) in enumerate(zip(sc["products"], sc["placements"])):
            iid = k + 1
            ids = []
            for j, rec in enumerate(prod.damages):
                did = offset + j + 1
                ids.append(did)
                damages.append({"damage_instance_id": did, "instance_id": iid, **rec.to_json()})
            offset += len(prod.damages)
            items.append({
                "instance_id": iid, "sku": prod.sku, "kind": prod.kind,
                "dims_mm": [float(x) for x in prod.dims_mm], "mass_kg": float(prod.mass_kg),
                "damaged": bool(prod.damages),
                "parts": [{"index": i, "name": p.name, "global_id": p.global_id, "material": p.material,
                           "printed": p.printed} for i, p in enumerate(prod.parts)],
                "T_world_from_item": pl.T_world_from_item.tolist(),
                "satellites": [{"kind": s.kind, "T_world_from_satellite": T.tolist()}
                               for s, T in zip(prod.satellites, sc["satellite_poses"][k])],
                "physics": {"settled": bool(pl.settled), "steps": int(pl.steps), "lin_speed_m_s": float(pl.lin_speed),
                            "ang_speed_rad_s": float(pl.ang_speed), "min_z_m": float(pl.min_z_m)},
                "damage_instance_ids": ids,
                "damage_log": jsonable(sc["damage_log"][k]),
                "n_faces": int(len(prod.mesh.faces)),
                "generator": jsonable({k: v for k, v in prod.meta.items() if k != "design_variant"}),
                "design_variant": jsonable(prod.meta.get("design_variant")),
                "hard_negative": hard_negative_kind(prod),
            })
        kinds = sorted({it["hard_negative"] for it in items if it["hard_negative"]}
                       | ({"mess"} if any(d.get("kind", "mess") == "mess" for d in sc["distractors"]) else set()))
        meta = {
            "format": "damagesim-capture/1",
            "seed": self.spec.seed,
            "rig": self.rig.name,
            "cameras": {c.name: {**c.to_json(), "depth_scale_m": DEPTH_SCALE_M} for c in self.rig.cameras},
            "items": items,
            "damages": damages,
            "distractors": [{"kind": "mess", "substance": d["substance"], "area_cm2": d["area_cm2"],
                             "T_world": d["T"].tolist()} if d.get("kind", "mess") == "mess" else
                            {"kind": d["kind"], **d["desc"]} for d in sc["distractors"]],
            "hard_negative": bool(kinds),
            "hard_negative_kinds": kinds,
            "pristine_pair": False,
            "unplaceable_draws": sc.get("unplaceable_draws", []),
        }
        dr = sc.get("randomization", {})
        meta["randomization"] = jsonable({k: v for k, v in dr.items() if k != "cameras"})
        for name, d in dr.get("cameras", {}).items():
            cam = meta["cameras"][name]
            cam["T_world_from_cam_nominal"], cam["K_nominal"] = cam["T_world_from_cam"], cam["K"]
            cam["T_world_from_cam"] = np.asarray(d["T_world_from_cam"]).tolist()  # the pose the image was taken from
            K = np.array(cam["K"])
            K[0, 0] *= d["focal_scale"]
            K[1, 1] *= d["focal_scale"]
            cam["K"] = K.tolist()
            cam["focal_scale"] = d["focal_scale"]
        if index is not None:
            meta = {"index": index, "capture_id": f"{index:06d}", **meta}
        if reference is not None:
            meta = {"reference": reference, **meta}
        return meta

    def make_reference(self, sku: str, pose: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A pristine reference capture of ``sku`` in a random resting pose."""
        streams = reference_streams(self.spec.seed, sku, pose)
        prod = self.catalog.build(sku)
        placements = self.world.settle([prod], self.rig.tray, streams["physics"], self.catalog.materials)
        sc = self._arrange([prod], [prod], placements, [[]], streams["placement"], allow_mess=False)
        seed = int(streams["render"].integers(0, 2 ** 63 - 1))
        self._randomize(sc, streams["randomize"])
        meta = self.metadata(sc, reference={"sku": sku, "pose": pose})
        self.renderer.configure(sc["randomization"])
        frames, draws = apply_to_frames(self.rig, self.renderer.render(self.scene_items(sc)), seed)
        self.renderer.configure(None)
        self._record_sensor(meta, draws, seed)
        return meta, frames


def prepare(spec: GenerateSpec):
    """Validate everything before any output exists. Returns (rig, catalog)."""
    from .catalog import load_catalog
    from .rig import load_rig

    spec.validate()
    rig = load_rig(spec.rig)
    catalog = load_catalog(spec.catalog)
    catalog.damage.with_overrides(**spec.damage)  # bad overrides fail here, before any output
    if spec.randomization is not None:
        from .randomization import parse as parse_dr

        parse_dr(None, spec.randomization)
    missing = sorted({rig.tray.material} - set(catalog.materials))
    if missing:
        raise ConfigError(rig.path, "tray.material", missing[0], "is not in the materials library")
    out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", str(out), "exists and is not a directory")
    card = out / "dataset.json"
    if card.is_file():
        try:
            old = json.loads(card.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("spec"), dict):
            diff = spec_differences(old, spec, rig)
            if diff:
                raise ConfigError(None, "--out", str(out),
                                  f"holds a dataset generated with another spec ({'; '.join(diff)}); "
                                  f"choose another --out or delete it")
    check_render_limits(rig)
    from .rig import rig_warnings
    import warnings

    for w in rig_warnings(rig):
        warnings.warn(w, stacklevel=2)
    return rig, catalog


#: render sides every GL context we run on holds (llvmpipe and GPU drivers
#: allow 16384); only a rig that renders larger pays for asking the context
GL_SAFE_SIDE = 4096


def check_render_limits(rig) -> None:
    """Every camera's render (the wider pinhole view of a distorted lens
    included) must fit the GL context's largest renderbuffer and viewport;
    checked here, before any output, not as a raw GL error in a worker."""
    sizes = {i: (_wide_size(cam) if any(cam.distortion) else cam.resolution) for i, cam in enumerate(rig.cameras)}
    if max(max(s) for s in sizes.values()) <= GL_SAFE_SIDE:
        return
    limit = gl_max_render_size()
    for i, (w, h) in sizes.items():
        cam = rig.cameras[i]
        if max(w, h) > limit:
            wide = "" if (w, h) == cam.resolution else f" (its lens distortion needs a {w}x{h} pinhole render)"
            raise ConfigError(rig.path, f"cameras[{i}]({cam.name}).resolution", list(cam.resolution),
                              f"is larger than this GL context renders{wide}: at most {limit} pixels a side")


def _wide_size(cam) -> tuple[int, int]:
    """(w, h) of the pinhole render a distorted camera needs (what
    render.LensRemap computes from every pixel), from the image border and a
    coarse grid: cheap enough for every generate, a few pixels generous."""
    from .conventions import undistort_normalized

    w, h = cam.resolution
    K = cam.K
    us = np.unique(np.r_[np.linspace(0, w - 1, 65), [0, w - 1]])
    vs = np.unique(np.r_[np.linspace(0, h - 1, 65), [0, h - 1]])
    u, v = np.meshgrid(us, vs)
    xu, yu = undistort_normalized((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], cam.distortion)
    return (int(np.ceil(K[0, 0] * (xu.max() - xu.min()))) + 9, int(np.ceil(K[1, 1] * (yu.max() - yu.min()))) + 9)


def gl_max_render_size() -> int:
    """min(GL_MAX_RENDERBUFFER_SIZE, GL_MAX_VIEWPORT_DIMS) of a fresh offscreen context."""
    import pyrender
    from OpenGL import GL

    r = pyrender.OffscreenRenderer(16, 16)
    try:
        return int(min(int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE)), *[int(x) for x in
                                                                            GL.glGetIntegerv(GL.GL_MAX_VIEWPORT_DIMS)]))
    finally:
        r.delete()


def _same_file(a: str, b: str) -> bool:
    """Two spellings of one file, or two files with the same bytes (a copy)."""
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes())
    except OSError:
        return False


def spec_differences(card: dict[str, Any], spec: GenerateSpec, rig) -> list[str]:
    """What differs between the spec a dataset was made with (its card) and
    ``spec``, as short "field: there X, here Y" strings; empty when the same
    dataset would come out. The output path (the dataset may have been moved,
    copied, or named by another path spelling) and ``n`` (a run may be grown)
    are not compared; the rig is compared by content, the catalog as a file."""
    from .errors import excerpt

    old, mine = card["spec"], spec.to_json()
    out = []
    for k, v in mine.items():
        if k in ("n", "out"):
            continue
        was = old.get(k)
        if k == "rig":
            if isinstance(card.get("rig"), dict):
                a = {x: y for x, y in card["rig"].items() if x != "path"}
                b = {x: y for x, y in rig.to_json().items() if x != "path"}
                if json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
                    out.append(f"rig: {excerpt(was, 60)} there, {excerpt(v, 60)} here, with other content")
                continue
            same = isinstance(was, str) and _same_file(was, v)
        elif k == "catalog":
            same = isinstance(was, str) and _same_file(was, v)
        else:
            same = json.loads(json.dumps(was)) == json.loads(json.dumps(v))
        if not same:
            out.append(f"{k}: {excerpt(was, 60)} there, {excerpt(v, 60)} here")
    return out


def generate(spec: GenerateSpec, only: int | None = None,
             progress: Callable[[int], None] | None = None, run=None) -> dict[str, Any]:
    """Generate ``spec.n`` captures (or just capture ``only``) and (re)write the
    COCO files and the dataset card. Returns the card.

    run: simulator.parallel.RunOptions (workers, backend, resume, shards, on_error);
    default: one in-process worker, capture folders, stop on the first error."""
    from .parallel import RunOptions, check_writable, output_error, run_captures

    run = run if run is not None else RunOptions()
    run.validate()
    rig, catalog = prepare(spec)
    if only is not None and not 0 <= only < spec.n:
        raise ConfigError(None, "--only", only, f"must be in 0..{spec.n - 1} (--n {spec.n})")
    if only is not None and run.shards:
        raise ConfigError(None, "--only", only, "cannot be combined with --shards (shards are written whole)")
    out = Path(spec.out)
    check_writable(out)
    indices = [only] if only is not None else list(range(spec.n))
    report = run_captures(spec, indices, run, progress)
    mix = catalog.damage.with_overrides(**spec.damage)
    try:
        card = finalize(out, spec, rig, mix, shard_size=run.shard_size if run.shards else None)
        if report.failed:
            from .writers import write_json_atomic

            card["failed_captures"] = {str(i): e for i, e in sorted(report.failed.items())}
            write_json_atomic(out / "dataset.json", card)
    except OSError as e:
        raise output_error(out, e) from None
    return card


def finalize(out: Path, spec: GenerateSpec, rig, mix, shard_size: int | None = None) -> dict[str, Any]:
    """Write COCO per camera and the dataset card from the captures on disk
    (captures with index < n; stale ones from a larger earlier run are ignored).
    Captures packed in shards/ are read from the shards."""
    from .shards import SHARD_DIR, finalize_with_shards, shard_files

    rig_json = rig.to_json()
    spec_json = {**spec.to_json(), "damage_mix": mix.to_json()}
    if shard_files(Path(out) / SHARD_DIR):
        return finalize_with_shards(out, spec_json, rig_json, spec.n, shard_size)
    caps = [c for c in list_captures(out) if int(c.name) < spec.n]
    coco = write_coco(out, rig_json, caps)
    return write_card(out, spec_json, rig_json, caps, coco)
