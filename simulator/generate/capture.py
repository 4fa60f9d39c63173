"""The capture maker: sample, damage and place the items of capture i, render every camera through its sensor model, and build capture.json."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
from dataclasses import replace
from typing import Any

import numpy as np

from damage_ops import Part, Product, labelled_mesh
from damage_ops.product import jsonable
from damage_ops.spill import puddle_mesh
from simulator.config.randomization import parse as parse_dr
from simulator.core.errors import PlacementError
from simulator.dataset.writers import DEPTH_SCALE_M
from simulator.generate.spec import GenerateSpec
from simulator.render.sensors import SensorDraws, apply_to_frames
from simulator.scene.damage import damage_item, seen_faces
from simulator.scene.draws import clutter_products, sample
from simulator.scene.placement import footprint_xy, item_target, place_beside, rest_like
from simulator.scene.scene import Distractor, Scene, SceneItem
from simulator.scene.streams import capture_streams, reference_streams

#: scenes drawn again when physics cannot place an item (then the capture fails)
PLACEMENT_REDRAWS = 3


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

    gc.collect()
    if gc.get_freeze_count() == 0:
        gc.freeze()
    if _LIBC is None:

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


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


class CaptureMaker:
    """Makes captures. Owns one physics client and one GL context; reuse it."""

    def __init__(self, spec: GenerateSpec, rig, catalog):
        # lazy: OpenGL and pybullet load only once a renderer and a physics world are made
        from simulator.render.renderer import BoothRenderer
        from simulator.scene.physics import PhysicsWorld

        self.spec, self.rig, self.catalog = spec, rig, catalog
        self.mix = catalog.damage.with_overrides(**spec.damage)

        self.dr = parse_dr(None, spec.randomization) if spec.randomization is not None else catalog.randomization
        self.world = PhysicsWorld()
        self.renderer = BoothRenderer(rig, catalog.materials)
        self.timings: dict[str, float] = {}
        _release_freed_memory()  # freezes what lives as long as this maker (see there)

    def close(self) -> None:
        """Release the GL context and the physics client, and let this maker's objects be
        garbage-collected again (gc.unfreeze). Call once; the context manager does."""

        self.renderer.close()
        self.world.close()
        gc.unfreeze()  # this maker's objects may be collected again

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def scene(self, index: int):
        """Sample, damage and place the items of capture ``index``.

        Returns the :class:`~simulator.scene.scene.Scene`: pristine and damaged
        products, placements, satellite poses, distractors (mess, clutter), the
        damage log, the sensor seed and the randomization draws."""

        streams = capture_streams(self.spec.seed, index)
        unplaceable = []
        for _draw in range(PLACEMENT_REDRAWS + 1):
            skus = [self.catalog.sample(streams["scene"]) for _ in range(self.spec.items_per_tray)]
            pristine = [self.catalog.build(s) for s in skus]
            try:
                if self.mix.where == "seen":
                    placements, products, logs = self._damage_where_seen(skus, pristine, streams, f"capture {index}")
                else:
                    placements, products, logs = self._damage_anywhere(skus, pristine, streams, f"capture {index}")
                break
            except PlacementError as e:
                # an item that will not come to rest on this tray (too big, rolls off):
                # draw the scene again from the same streams, and say so in the metadata
                unplaceable.append({"skus": [s.sku for s in skus], "error": str(e)})
        else:
            raise PlacementError(f"capture {index}: no placeable scene in {PLACEMENT_REDRAWS + 1} draws: {unplaceable}")
        sc = self.arrange(products, pristine, placements, logs, streams["placement"], allow_mess=True)
        sc = replace(sc, unplaceable_draws=tuple(unplaceable),
                     sensor_seed=int(streams["render"].integers(0, 2 ** 63 - 1)))
        return self._randomize(sc, streams["randomize"])

    def _damage_anywhere(self, skus, pristine, streams, where: str = ""):
        """Damage the items, then drop them: damage may land on the face an item
        comes to rest on (``where: anywhere``; the draws of earlier versions)."""
        products, logs = [], []
        for p in pristine:
            d, log = damage_item(p, self.mix, streams["damage"], where=where)
            products.append(d)
            logs.append(log)
        self._variants(skus, products, pristine, streams["variant"])
        placements = self.world.settle(products, self.rig.tray, streams["physics"], self.catalog.materials)
        return placements, products, logs

    def _damage_where_seen(self, skus, pristine, streams, where: str = ""):
        """Drop the pristine items, then damage each on faces a camera sees at its
        resting pose (``where: seen``); a damaged item keeps its pristine twin's
        pose (see :func:`rest_like`), so the counterfactual pair is exact."""
        placements = self.world.settle(pristine, self.rig.tray, streams["physics"], self.catalog.materials)
        cams = None if self.dr.viewpoints != "rig" else np.array([c.T_world_from_cam[:3, 3] for c in self.rig.cameras])
        products, logs = [], []
        for p, pl in zip(pristine, placements):
            d, log = damage_item(p, self.mix, streams["damage"], seen=seen_faces(pl.T_world_from_item, cams), where=where)
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

    def _randomize(self, sc: Scene, rng: np.random.Generator) -> Scene:
        """The scene with this capture's domain randomization drawn, and its clutter."""
        targets = [item_target(p, pl.T_world_from_item) for p, pl in zip(sc.products, sc.placements)]
        draws = sample(self.dr, self.rig, rng, targets)
        distractors = list(sc.distractors)
        if draws.clutter:
            occupied = [footprint_xy(p.mesh, pl.T_world_from_item) for p, pl in zip(sc.products, sc.placements)]
            occupied += [footprint_xy(d.product.mesh, d.T) for d in distractors]
            for prod, T, desc in clutter_products(draws.clutter, rng, self.rig.tray, occupied):
                distractors.append(Distractor(prod, T, "clutter", desc))
        return replace(sc, randomization=draws, distractors=tuple(distractors))

    def arrange(self, products, pristine, placements, logs, rng: np.random.Generator, allow_mess: bool) -> Scene:
        """The :class:`~simulator.scene.scene.Scene` of placed items: satellites
        (puddles, fallen contents) laid beside their items and, with
        ``allow_mess``, an unrelated mess (a hard negative) beside some intact
        items, at ``mix.mess_rate``. No randomization drawn yet.

        products / pristine / placements / logs: per item, as the damage and
        physics steps made them (the designer passes its own)."""

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

                substance = str(rng.choice(["liquid", "powder"]))
                area_cm2 = float(rng.uniform(20, 250))
                V, F, _top = puddle_mesh(rng, area_cm2 * 1e-4, substance, 0)

                mess = Product(sku="mess", kind="mesh", mesh=labelled_mesh(V, F, 0),
                               parts=(Part("debris", "liquid_spill" if substance == "liquid" else "powder"),))
                T = place_beside(occ, V[:, :2], float(rng.uniform(0.02, 0.08)), self.rig.tray, rng, occupied)
                if T is not None:
                    occupied.append(footprint_xy(mess.mesh, T))
                    distractors.append(Distractor(mess, T, "mess", {"substance": substance, "area_cm2": area_cm2}))
        return Scene(products=tuple(products), pristine=tuple(pristine), placements=tuple(placements),
                     satellite_poses=tuple(sat_poses), distractors=tuple(distractors), damage_log=tuple(logs))

    def scene_items(self, sc: Scene, pristine: bool = False) -> list[SceneItem]:
        """SceneItems of an arranged scene; ``pristine``: the counterfactual (same
        poses, damage and satellites removed; distractors kept)."""
        items, offset = [], 0
        for k, (prod, pl) in enumerate(zip(sc.pristine if pristine else sc.products, sc.placements)):
            poses = () if pristine else sc.satellite_poses[k]
            items.append(SceneItem(prod, pl.T_world_from_item, k + 1, offset, poses))
            offset += len(prod.damages)
        for d in sc.distractors:
            items.append(SceneItem(d.product, d.T, 0, 0, (), distractor=True))
        return items

    def make(self, index: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """Build, settle and render capture ``index``.

        Returns (capture.json dict, frames, pristine frames or None)."""
        return self.start(index).finish()

    def start(self, index: int) -> "PendingCapture":
        """:meth:`make` up to the clean renders: build, settle and render capture
        ``index`` (and its pristine pair); the sensor models run in
        :meth:`PendingCapture.finish`, which may run on another thread (the
        capture writer's) while this maker renders the next capture. The same
        outputs as :meth:`make` either way."""
        sc = self.scene(index)
        meta = self.metadata(sc, index=index)
        self.renderer.configure(sc.randomization)
        clean = self.renderer.render(self.scene_items(sc))
        clean_pair = None
        if self.mix.pairs and meta["damages"]:
            # same poses, lights and sensor noise seed: only the damage differs
            clean_pair = self.renderer.render(self.scene_items(sc, pristine=True))
            meta["pristine_pair"] = True
        self.renderer.configure(None)
        _release_freed_memory()
        # the pristine counterfactual has the same sensor seed: it replays these draws
        return PendingCapture(self.rig, meta, clean, clean_pair, sc.sensor_seed, share_draws=self.mix.pairs,
                              visibility=True)

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

    def metadata(self, sc: Scene, index: int | None = None, reference: dict | None = None) -> dict[str, Any]:
        """The capture.json dict of scene ``sc`` (as :meth:`scene` returns it): cameras
        (K pixels, T_world_from_cam metres, OpenCV axes; the randomized pose and focal
        length replace the nominal ones, which are kept as ``*_nominal``), items (dims
        mm, mass kg, parts, pose, physics, damage ids), damages (ids from 1 over the
        whole capture), distractors and hard-negative flags. ``index`` adds
        ``index``/``capture_id``; ``reference`` ({sku, pose}) marks a reference capture."""
        items, damages = [], []
        offset = 0
        for k, (prod, pl) in enumerate(zip(sc.products, sc.placements)):
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
                               for s, T in zip(prod.satellites, sc.satellite_poses[k])],
                "physics": {"settled": bool(pl.settled), "steps": int(pl.steps), "lin_speed_m_s": float(pl.lin_speed),
                            "ang_speed_rad_s": float(pl.ang_speed), "min_z_m": float(pl.min_z_m)},
                "damage_instance_ids": ids,
                "damage_log": jsonable(sc.damage_log[k]),
                "n_faces": int(len(prod.mesh.faces)),
                "generator": jsonable({k: v for k, v in prod.meta.items() if k != "design_variant"}),
                "design_variant": jsonable(prod.meta.get("design_variant")),
                "hard_negative": hard_negative_kind(prod),
            })
        kinds = sorted({it["hard_negative"] for it in items if it["hard_negative"]}
                       | ({"mess"} if any(d.kind == "mess" for d in sc.distractors) else set()))
        meta = {
            "format": "damagesim-capture/1",
            "seed": self.spec.seed,
            "rig": self.rig.name,
            "cameras": {c.name: {**c.to_json(), "depth_scale_m": DEPTH_SCALE_M} for c in self.rig.cameras},
            "items": items,
            "damages": damages,
            "distractors": [{"kind": "mess", **d.desc, "T_world": d.T.tolist()} if d.kind == "mess" else
                            {"kind": d.kind, **d.desc} for d in sc.distractors],
            "hard_negative": bool(kinds),
            "hard_negative_kinds": kinds,
            "pristine_pair": False,
            "unplaceable_draws": list(sc.unplaceable_draws),
        }
        meta["randomization"] = jsonable(sc.randomization.to_json())
        for name, d in sc.randomization.cameras.items():
            cam = meta["cameras"][name]
            cam["T_world_from_cam_nominal"], cam["K_nominal"] = cam["T_world_from_cam"], cam["K"]
            cam["T_world_from_cam"] = np.asarray(d.T_world_from_cam).tolist()  # the pose the image was taken from
            K = np.array(cam["K"])
            K[0, 0] *= d.focal_scale
            K[1, 1] *= d.focal_scale
            cam["K"] = K.tolist()
            cam["focal_scale"] = d.focal_scale
        if index is not None:
            meta = {"index": index, "capture_id": f"{index:06d}", **meta}
        if reference is not None:
            meta = {"reference": reference, **meta}
        return meta

    def make_reference(self, sku: str, pose: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A pristine reference capture of ``sku`` in a random resting pose."""
        meta, frames, _ = self.start_reference(sku, pose).finish()
        return meta, frames

    def start_reference(self, sku: str, pose: int) -> "PendingCapture":
        """:meth:`make_reference` up to the clean render (see :meth:`start`)."""
        streams = reference_streams(self.spec.seed, sku, pose)
        prod = self.catalog.build(sku)
        placements = self.world.settle([prod], self.rig.tray, streams["physics"], self.catalog.materials)
        sc = self.arrange([prod], [prod], placements, [[]], streams["placement"], allow_mess=False)
        seed = int(streams["render"].integers(0, 2 ** 63 - 1))
        sc = self._randomize(sc, streams["randomize"])
        meta = self.metadata(sc, reference={"sku": sku, "pose": pose})
        self.renderer.configure(sc.randomization)
        clean = self.renderer.render(self.scene_items(sc))
        self.renderer.configure(None)
        return PendingCapture(self.rig, meta, clean, None, seed, share_draws=False, visibility=False)


class PendingCapture:
    """A capture rendered but not yet through its sensor models: its capture.json
    dict (without the sensor draws and, with ``visibility``, without which
    cameras see what), clean frames, clean pristine frames or None.
    :meth:`finish` applies the sensor models (camera c of the rig draws from
    ``default_rng([sensor_seed, c])``; the pristine pair replays the damaged
    frames' draws) and records their draws in the dict, and the visible pixels
    (from the labels, which the sensor models never touch). It needs no GL
    context and no physics client, so it can run on a thread beside the next
    render. Its result is kept: a second call returns it."""

    def __init__(self, rig, meta: dict[str, Any], clean: dict[str, Any], clean_pair: dict[str, Any] | None,
                 sensor_seed: int, share_draws: bool, visibility: bool = True) -> None:
        self.rig, self.meta, self.sensor_seed = rig, meta, int(sensor_seed)
        self._clean, self._clean_pair, self._share = clean, clean_pair, share_draws
        self._visibility = visibility
        self._result = None

    def finish(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """Returns (capture.json dict, frames, pristine frames or None), as
        :meth:`CaptureMaker.make` does."""
        if self._result is not None:
            return self._result
        noise = SensorDraws() if self._share else None
        frames, draws = apply_to_frames(self.rig, self._clean, self.sensor_seed, noise)
        CaptureMaker._record_sensor(self.meta, draws, self.sensor_seed)
        if self._visibility:
            CaptureMaker._record_visibility(self.meta, frames)
        pair = None
        if self._clean_pair is not None:
            pair, _ = apply_to_frames(self.rig, self._clean_pair, self.sensor_seed, noise)
        self._clean = self._clean_pair = None  # the clean images are not kept beside the noisy ones
        self._result = (self.meta, frames, pair)
        return self._result
