"""Material library: how a part looks (PBR) and behaves (friction, density)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulator.core.errors import ConfigError
from simulator.core.paths import default_materials
from simulator.core.yamlio import check_keys, load_yaml, number, vector
from simulator.products.surface import TILES

_KEYS = {"pattern", "color", "roughness", "metallic", "alpha", "density_kg_m3", "friction", "restitution", "description"}


@dataclass(frozen=True)
class Material:
    """name; color: linear RGB in [0, 1]; roughness, metallic in [0, 1];
    alpha: 1 = opaque, < 1 = transparent (clear plastic, film);
    density_kg_m3 of the solid; friction, restitution for pybullet;
    pattern: surface tile (:data:`simulator.products.surface.TILES`: relief and
    colour variation) shown where no artwork is, or None."""

    name: str
    color: tuple[float, float, float]
    roughness: float = 0.8
    metallic: float = 0.0
    alpha: float = 1.0
    density_kg_m3: float = 500.0
    friction: float = 0.6
    restitution: float = 0.05
    pattern: str | None = None


def load_materials(path: str | Path | None = None) -> dict[str, Material]:
    """Load and validate a materials library YAML (default: the shipped one) ->
    {name: :class:`Material`}. Raises ConfigError naming file, key and value for an
    unknown key, a missing ``color``, a value out of range or an unknown pattern."""
    path = Path(path) if path is not None else default_materials()
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(path, "<root>", data, "must be a non-empty mapping of material name -> properties")
    out = {}
    for name, d in data.items():
        check_keys(path, str(name), d, _KEYS, required=("color",))
        out[name] = Material(
            name=str(name),
            color=tuple(number(path, f"{name}.color[{i}]", c, 0.0, 1.0)
                        for i, c in enumerate(vector(path, f"{name}.color", d["color"], 3))),
            roughness=number(path, f"{name}.roughness", d.get("roughness", 0.8), 0.0, 1.0),
            metallic=number(path, f"{name}.metallic", d.get("metallic", 0.0), 0.0, 1.0),
            alpha=number(path, f"{name}.alpha", d.get("alpha", 1.0), 0.0, 1.0, lo_open=True),
            density_kg_m3=number(path, f"{name}.density_kg_m3", d.get("density_kg_m3", 500.0), 0.0, 25000.0, lo_open=True),
            friction=number(path, f"{name}.friction", d.get("friction", 0.6), 0.0, 5.0),
            restitution=number(path, f"{name}.restitution", d.get("restitution", 0.05), 0.0, 1.0),
            pattern=_pattern(path, name, d.get("pattern")),
        )
    return out


def _pattern(path, name, value) -> str | None:

    if value is None:
        return None
    if not isinstance(value, str) or value not in TILES:
        raise ConfigError(path, f"{name}.pattern", value, f"must be one of {sorted(TILES)}")
    return value
