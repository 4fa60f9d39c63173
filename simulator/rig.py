"""Booth rig: tray, lights and cameras, loaded from YAML and validated."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tray:
    """The tray items lie on. World origin at the centre of its top surface, z up.

    size_m: inner (x, y) size in meters; the floor spans [-x/2, x/2] x [-y/2, y/2]
    rim_height_m: height of the rim walls above the floor (0 = flat plate)
    rim_width_m: wall thickness
    thickness_m: floor thickness (the floor occupies z in [-thickness, 0])
    material: materials-library key
    """

    size_m: tuple[float, float] = (0.6, 0.4)
    rim_height_m: float = 0.03
    rim_width_m: float = 0.01
    thickness_m: float = 0.02
    material: str = "tray_surface"
