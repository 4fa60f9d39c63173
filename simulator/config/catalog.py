"""Product catalog: which SKUs exist, how often each is drawn, and how to build one.

A catalog YAML file::

    seed: 7                       # resolves SKU variants (dims, styles)
    materials: ../materials/default.yaml   # optional, relative to this file
    products:
      - kind: carton              # a generator kind (simulator.products.KINDS) or mesh
        name: carton              # SKU name prefix (default: the kind)
        skus: 6                   # variants; each draws its own params
        weight: 3                 # relative frequency of the entry (split over its SKUs)
        params:                   # scalar, [lo, hi] range or {choice: [...]}
          length_mm: [150, 450]
      - kind: mesh                # a user mesh, loaded (and checked) at catalog load
        path: meshes/mug.obj      # relative to this file
        units: mm
        material: rigid_plastic
        mass_kg: 0.3              # optional

SKU variants are resolved at load time: variant k of entry i draws its params
with ``np.random.SeedSequence([seed, i, k])``, so adding an entry never
changes the SKUs of the others. Every error names the file, the key and the
bad value (:class:`simulator.core.errors.ConfigError`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from damage_ops import Product
from damage_ops.spatial import prepare
from simulator.config.materials import Material, load_materials
from simulator.config.mix import parse_damage
from simulator.config.randomization import parse as parse_randomization
from simulator.core.errors import ConfigError, MeshError
from simulator.core.paths import default_catalog
from simulator.core.seeds import seed_sequence
from simulator.core.yamlio import check_keys, integer, load_yaml, number
from simulator.products import MODULES, build_product
from simulator.products.base import MAX_MM, draw
from simulator.products.usermesh import UNITS_M, load_user_mesh
from simulator.products.variants import design_variant

_ROOT_KEYS = {"seed", "materials", "products", "description", "damage", "randomization"}
_ENTRY_KEYS = {"kind", "name", "skus", "weight", "params", "description"}
_MESH_KEYS = {"kind", "name", "weight", "path", "units", "material", "mass_kg", "description"}
MAX_SKUS_PER_ENTRY = 10000


@dataclass(frozen=True)
class SkuSpec:
    """One SKU: kind, build seed, draw weight and fully resolved (scalar) params."""

    sku: str
    kind: str
    seed: int
    weight: float
    params: dict = field(default_factory=dict)


#: built products kept per process (each a mesh plus a ~1-3 MB artwork texture)
CACHE_SIZE = 12


@dataclass
class Catalog:
    """Loaded catalog. ``sample(rng)`` draws a SKU by weight; ``build(sku)``
    returns a fresh copy of that SKU's pristine product (built once, cached)."""

    path: Path
    seed: int
    skus: tuple[SkuSpec, ...]
    materials: dict[str, Material]
    damage: Any = None  # simulator.config.mix.DamageMix: the catalog's damage section
    randomization: Any = None  # simulator.config.randomization.Randomization
    _cache: dict[str, Product] = field(default_factory=dict, repr=False)
    _meshes: dict[str, Product] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        w = np.array([s.weight for s in self.skus], np.float64)
        self._p = w / w.sum()
        self._by_name = {s.sku: s for s in self.skus}

    def __len__(self) -> int:
        return len(self.skus)

    def kinds(self) -> tuple[str, ...]:
        """The product kinds of the catalog's SKUs, sorted, each once."""
        return tuple(sorted({s.kind for s in self.skus}))

    def get(self, name: str) -> SkuSpec:
        """The SKU named ``name``; KeyError naming the catalog file if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path}: no SKU named {name!r}") from None

    def sample(self, rng: np.random.Generator) -> SkuSpec:
        """One SKU drawn with probability proportional to its weight."""
        return self.skus[int(rng.choice(len(self.skus), p=self._p))]

    def build(self, sku: SkuSpec | str) -> Product:
        """The SKU's pristine product (deterministic from ``sku.seed``); a copy,
        so callers may not mutate the cache."""
        spec = self.get(sku) if isinstance(sku, str) else sku
        prod = self._cache.get(spec.sku)
        if prod is None:
            if spec.kind == "mesh":
                prod = self._meshes[spec.sku]
            else:
                prod = build_product(spec.kind, spec.sku, spec.params, np.random.default_rng(spec.seed))
            if len(self._cache) >= CACHE_SIZE:  # bounded: a long run must not grow with the catalog
                self._cache.pop(next(iter(self._cache)))
            prepare(prod.mesh)  # once per product; every copy carries it to the damage ops
            self._cache[spec.sku] = prod
        return prod.copy()

    def variant(self, sku: SkuSpec | str, k: int) -> Product:
        """Design variant ``k`` (>= 1) of the SKU: the pristine product with its
        artwork edited (:func:`simulator.products.variants.design_variant`) from a
        seed that depends on (SKU seed, k) only; a copy, cached like ``build``."""

        spec = self.get(sku) if isinstance(sku, str) else sku
        key = f"{spec.sku}#variant{int(k)}"
        prod = self._cache.get(key)
        if prod is None:
            seed = int(seed_sequence(spec.seed, int(k)).generate_state(1)[0])
            prod = design_variant(self.build(spec), int(k), seed)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = prod
        return prod.copy()


def _sku_seed(catalog_seed: int, entry: int, k: int) -> np.random.SeedSequence:
    return seed_sequence(catalog_seed, entry, k)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load, validate and resolve a catalog (default: the shipped one)."""
    path = Path(path) if path is not None else default_catalog()
    data = load_yaml(path)
    check_keys(path, "", data, _ROOT_KEYS, required=("products",))
    seed_v = data.get("seed", 0)
    seed_v = integer(path, "seed", seed_v, 0, problem="must be a non-negative integer")
    if "materials" in data:
        if not isinstance(data["materials"], str):
            raise ConfigError(path, "materials", data["materials"], "must be a path relative to the catalog file")
        mpath = (path.parent / data["materials"]).resolve()
        if not mpath.is_file():
            raise ConfigError(path, "materials", data["materials"], f"materials file {mpath} does not exist")
        materials = load_materials(mpath)
    else:
        materials = load_materials()
    entries = data["products"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(path, "products", entries, "must be a non-empty list of product entries")

    skus: list[SkuSpec] = []
    meshes: dict[str, Product] = {}
    counters: dict[str, int] = {}
    for i, e in enumerate(entries):
        where = f"products[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(path, where, e, "must be a mapping")
        kind = e.get("kind")
        if kind != "mesh" and (not isinstance(kind, str) or kind not in MODULES):
            raise ConfigError(path, f"{where}.kind", kind, f"unknown kind; expected one of {list(MODULES) + ['mesh']}")
        check_keys(path, where, e, _MESH_KEYS if kind == "mesh" else _ENTRY_KEYS,
                   required=("kind", "path", "units", "material") if kind == "mesh" else ("kind",))
        weight = number(path, f"{where}.weight", e.get("weight", 1.0), 0.0, 1e9, lo_open=True)
        prefix = e.get("name", kind)
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "/\\ \t\n"):
            raise ConfigError(path, f"{where}.name", prefix, "must be a non-empty name without spaces or slashes")

        if kind == "mesh":
            units, mat = e["units"], e["material"]
            if not isinstance(units, str) or units not in UNITS_M:
                raise ConfigError(path, f"{where}.units", units, f"must be one of {list(UNITS_M)}")
            if not isinstance(mat, str) or mat not in materials:
                raise ConfigError(path, f"{where}.material", mat, f"unknown material; known: {sorted(materials)}")
            if not isinstance(e["path"], str):
                raise ConfigError(path, f"{where}.path", e["path"], "must be a path relative to the catalog file")
            name = f"{prefix}-{counters.get(prefix, 0):03d}"
            counters[prefix] = counters.get(prefix, 0) + 1
            try:
                prod = load_user_mesh(path.parent / e["path"], units, mat, name)
            except MeshError as err:
                raise ConfigError(path, f"{where}.path", e["path"], f"unusable mesh: {err}") from None
            if "mass_kg" in e:
                prod.mass_kg = number(path, f"{where}.mass_kg", e["mass_kg"], 0.0, 100.0, lo_open=True)
            else:
                vol = abs(float(prod.mesh.volume)) if prod.mesh.is_watertight else 0.0
                # a product is mostly air and contents: a third of a solid block
                prod.mass_kg = float(np.clip(vol * materials[mat].density_kg_m3 / 3, 0.02, 10.0)) if vol else 0.5
            seed = int(_sku_seed(seed_v, i, 0).generate_state(1)[0])
            meshes[name] = prod
            skus.append(SkuSpec(name, "mesh", seed, weight, {"path": e["path"], "units": units, "material": mat}))
            continue

        mod = MODULES[kind]
        n = e.get("skus", 1)
        n = integer(path, f"{where}.skus", n, 1, MAX_SKUS_PER_ENTRY, f"must be an integer in [1, {MAX_SKUS_PER_ENTRY}]")
        params = e.get("params", {}) or {}
        check_keys(path, f"{where}.params", params, mod.PARAMS)
        for m in mod.MATERIALS:
            if m not in materials:
                raise ConfigError(path, f"{where}.kind", kind, f"needs material {m!r}, missing from the materials library")
        for k in range(n):
            rng = np.random.default_rng(_sku_seed(seed_v, i, k))
            resolved = {}
            for pname, spec in mod.PARAMS.items():
                value = params.get(pname, spec.default)
                try:
                    resolved[pname] = draw(pname, spec, value, rng)
                except (ValueError, TypeError) as err:
                    raise ConfigError(path, f"{where}.params.{pname}", value, str(err)) from None
            for pname, v in resolved.items():
                if isinstance(v, str) and ("material" in pname) and v != "auto" and v not in materials:
                    raise ConfigError(path, f"{where}.params.{pname}", v, f"unknown material; known: {sorted(materials)}")
            try:
                mod.check(resolved)
            except ValueError as err:
                raise ConfigError(path, f"{where}.params", params, f"SKU variant {k}: {err}") from None
            dims = mod.nominal_dims_mm(resolved)
            if max(dims) > MAX_MM:
                raise ConfigError(path, f"{where}.params", params, f"SKU variant {k} is {max(dims):g} mm long (> {MAX_MM:g} mm)")
            seed = int(rng.integers(0, 2 ** 63 - 1))
            name = f"{prefix}-{counters.get(prefix, 0):03d}"
            counters[prefix] = counters.get(prefix, 0) + 1
            skus.append(SkuSpec(name, kind, seed, weight / n, resolved))

    names = [s.sku for s in skus]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ConfigError(path, "products", dup, "duplicate SKU names")

    try:
        randomization = parse_randomization(path, data.get("randomization"))
    except ConfigError as e:  # a preset name is checked without the file: name it
        if e.file is not None:
            raise
        raise ConfigError(path, e.key, e.value, e.problem) from None
    cat = Catalog(path=path, seed=seed_v, skus=tuple(skus), materials=materials, damage=parse_damage(path, data.get("damage")),
                  randomization=randomization)
    cat._meshes = meshes
    return cat
