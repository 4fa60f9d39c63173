"""The typed scene of one capture: what the capture maker draws, arranges and
renders (items with their poses, satellites, distractors, the damage log and
the randomization draws), as frozen dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SceneItem:
    """An item placed in the scene.

    instance_id: 1-based id written in the instance image
    damage_offset: capture-global damage instance id = damage_offset + damage_id
    satellite_poses: T_world_from_satellite (4, 4) for each of product.satellites
        (pieces on the tray beside the item, drawn with the item's labels)
    """

    product: Any
    T_world_from_item: np.ndarray
    instance_id: int
    damage_offset: int = 0
    satellite_poses: tuple[np.ndarray, ...] = ()
    distractor: bool = False  # clutter, not an item: drawn in RGB, labelled as background

    def pieces(self):
        """(mesh, T_world_from_mesh) of the item and each placed satellite."""
        out = [(self.product.mesh, np.asarray(self.T_world_from_item, dtype=np.float64))]
        for sat, T in zip(self.product.satellites, self.satellite_poses):
            out.append((sat.mesh, np.asarray(T, dtype=np.float64)))
        return out


@dataclass(frozen=True)
class LightDraw:
    """One rig light in this capture: ``on`` (dropout), its intensity scale,
    linear RGB colour and world position (m)."""

    name: str
    on: bool
    intensity_scale: float
    color: list
    position_m: list


@dataclass(frozen=True)
class CameraDraw:
    """The true pose (4x4, OpenCV camera axes, m) and focal-length scale of a
    camera in this capture (the rig holds the nominal, calibrated ones)."""

    T_world_from_cam: np.ndarray
    focal_scale: float


@dataclass(frozen=True)
class FillDraw:
    """The sky/fill hemisphere: total intensity, unit directions towards the sky
    (k, 3) and linear RGB colour."""

    intensity: float
    directions: list
    color: list


@dataclass(frozen=True)
class Draws:
    """One capture's domain-randomization draws
    (:func:`simulator.scene.draws.sample`), applied by
    ``BoothRenderer.configure`` and recorded in capture.json.

    A field is None where its range does not vary (``preset: off`` draws
    nothing), so the draws of older settings stay unchanged."""

    preset: str | None = None
    lights: tuple[LightDraw, ...] | None = None
    background_color: list | None = None
    tray_shade: float | None = None
    cameras: dict[str, CameraDraw] = field(default_factory=dict)
    material_shade: float | None = None
    material_roughness_delta: float | None = None
    clutter: int = 0
    fill: FillDraw | None = None
    exposure: float | None = None
    white_balance: list | None = None
    tray_color_delta: list | None = None
    tray_texture: dict | None = None

    def to_json(self) -> dict[str, Any]:
        """The draws as capture.json's ``randomization`` holds them: the fields that
        were drawn, in draw order; the camera draws are recorded per camera instead."""
        out: dict[str, Any] = {"preset": self.preset}
        if self.lights is None:
            return out
        out["lights"] = [vars(light).copy() for light in self.lights]
        out["background_color"] = self.background_color
        out["tray_shade"] = self.tray_shade
        out["material_shade"] = self.material_shade
        out["material_roughness_delta"] = self.material_roughness_delta
        out["clutter"] = self.clutter
        if self.fill is not None:
            out["fill"] = vars(self.fill).copy()
        for k in ("exposure", "white_balance", "tray_color_delta", "tray_texture"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


@dataclass(frozen=True)
class Distractor:
    """Something on the tray that is not a catalog item: ``kind`` "mess" (an
    unrelated puddle or powder: a hard negative; ``desc`` has substance and
    area_cm2) or "clutter" (a plain object; ``desc`` says what), at pose ``T``
    (4x4 world from object)."""

    product: Any
    T: np.ndarray
    kind: str
    desc: dict


@dataclass(frozen=True)
class Scene:
    """The arranged scene of one capture (or reference capture).

    products / pristine: the items as damaged and their pristine twins (the
    counterfactual), one per tray slot; placements: their physics placements;
    satellite_poses: per item, the world poses of its satellites (puddles,
    fallen contents); distractors: mess and clutter; damage_log: per item, the
    damage draws tried (:func:`simulator.scene.damage.damage_item`);
    unplaceable_draws: scenes drawn again because physics could not place them;
    sensor_seed: the seed of every camera's sensor-noise draws; randomization:
    the domain-randomization draws."""

    products: tuple
    pristine: tuple
    placements: tuple
    satellite_poses: tuple
    distractors: tuple[Distractor, ...]
    damage_log: tuple
    unplaceable_draws: tuple = ()
    sensor_seed: int | None = None
    randomization: Draws = field(default_factory=Draws)
