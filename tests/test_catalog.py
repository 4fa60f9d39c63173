"""Catalog loading, SKU resolution, sampling, building and validation errors."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import trimesh
import yaml

from simulator.config.catalog import Catalog, SkuSpec, load_catalog
from simulator.core.errors import ConfigError
from simulator.core.paths import default_catalog, default_materials
from simulator.products import KINDS, MODULES


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def write(tmp_path, data, name="cat.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def minimal():
    return {"seed": 3, "products": [
        {"kind": "carton", "skus": 2, "weight": 2, "params": {"length_mm": [200, 300], "width_mm": 150}},
        {"kind": "bottle", "skus": 1, "params": {"material": "glass"}},
    ]}


def test_default_catalog_loads(cat):
    assert isinstance(cat, Catalog)
    assert cat.path == default_catalog()
    assert set(cat.kinds()) == set(KINDS)
    assert all(isinstance(s, SkuSpec) for s in cat.skus)
    assert len({s.sku for s in cat.skus}) == len(cat.skus)
    assert "carton-000" in {s.sku for s in cat.skus}
    assert {"cardboard", "glass"} <= set(cat.materials)


def test_default_catalog_ranges_and_footprint(cat):
    for s in cat.skus:
        mod = MODULES[s.kind]
        for name, spec in mod.PARAMS.items():
            assert name in s.params
        dims = mod.nominal_dims_mm(s.params)
        a, b = sorted(dims[:2], reverse=True)
        # footprint in the lying / standing pose fits the 600 x 400 mm tray with room
        assert min(a, b) <= 300 and max(a, b) <= 450 or max(dims) <= 450, (s.sku, dims)
        if s.kind == "carton":
            assert 150 <= s.params["length_mm"] <= 450 and 100 <= s.params["width_mm"] <= 300
            assert 60 <= s.params["height_mm"] <= 300
        if s.kind == "bottle":
            assert 150 <= s.params["height_mm"] <= 300 and 50 <= s.params["diameter_mm"] <= 95
        if s.kind == "blister":
            assert 2 <= s.params["units"] <= 5


def test_resolution_deterministic_and_independent(tmp_path):
    a = load_catalog(write(tmp_path, minimal(), "a.yaml"))
    b = load_catalog(write(tmp_path, minimal(), "b.yaml"))
    assert [(s.sku, s.seed, s.params) for s in a.skus] == [(s.sku, s.seed, s.params) for s in b.skus]
    # appending an entry leaves the existing SKUs unchanged
    more = minimal()
    more["products"].append({"kind": "mailer", "skus": 3})
    c = load_catalog(write(tmp_path, more, "c.yaml"))
    assert [(s.sku, s.seed, s.params) for s in c.skus[:3]] == [(s.sku, s.seed, s.params) for s in a.skus]
    other = minimal()
    other["seed"] = 4
    d = load_catalog(write(tmp_path, other, "d.yaml"))
    assert [s.params for s in d.skus] != [s.params for s in a.skus]
    assert [s.sku for s in a.skus] == ["carton-000", "carton-001", "bottle-000"]
    assert a.skus[0].params["width_mm"] == 150
    assert 200 <= a.skus[0].params["length_mm"] <= 300


def test_sample_is_deterministic_and_weighted(cat):
    x = [cat.sample(np.random.default_rng(11)).sku for _ in range(3)]
    assert len(set(x)) == 1
    r1, r2 = np.random.default_rng(0), np.random.default_rng(0)
    assert [cat.sample(r1).sku for _ in range(50)] == [cat.sample(r2).sku for _ in range(50)]


def test_sample_weights(tmp_path):
    data = {"seed": 0, "products": [{"kind": "carton", "weight": 9}, {"kind": "mailer", "weight": 1}]}
    c = load_catalog(write(tmp_path, data))
    rng = np.random.default_rng(0)
    kinds = [c.sample(rng).kind for _ in range(2000)]
    frac = kinds.count("carton") / len(kinds)
    assert 0.86 < frac < 0.94


def test_build_cached_copy_and_deterministic(tmp_path):
    c = load_catalog(write(tmp_path, minimal()))
    spec = c.skus[0]
    a = c.build(spec)
    a.validate()
    a.mesh.vertices[:] = 0.0  # mutating the copy must not reach the cache
    a.mesh.face_attributes["damage_id"][:] = 7
    b = c.build(spec)
    assert np.ptp(b.mesh.vertices, axis=0).min() > 0
    assert (b.damage_id == 0).all()
    fresh = load_catalog(c.path).build(spec.sku)
    assert fresh.mesh.vertices.tobytes() == b.mesh.vertices.tobytes()
    assert fresh.artwork.tobytes() == b.artwork.tobytes()
    assert b.sku == spec.sku and b.kind == "carton"
    np.testing.assert_allclose(b.dims_mm, MODULES["carton"].nominal_dims_mm(spec.params), atol=1.0)


def test_mesh_entry(tmp_path):
    m = trimesh.creation.box(extents=[100.0, 60.0, 30.0])
    (tmp_path / "meshes").mkdir()
    m.export(str(tmp_path / "meshes" / "thing.obj"))
    data = {"seed": 1, "products": [{"kind": "mesh", "path": "meshes/thing.obj", "units": "mm",
                                     "material": "rigid_plastic", "weight": 2}]}
    c = load_catalog(write(tmp_path, data))
    assert c.skus[0].sku == "mesh-000" and c.skus[0].kind == "mesh"
    p = c.build(c.skus[0])
    np.testing.assert_allclose(p.mesh.extents, [0.1, 0.06, 0.03], atol=1e-6)
    assert 0.02 <= p.mass_kg <= 10


def test_custom_materials_file(tmp_path):
    mats = yaml.safe_load(default_materials().read_text())
    (tmp_path / "mats.yaml").write_text(yaml.safe_dump(mats))
    data = minimal()
    data["materials"] = "mats.yaml"
    c = load_catalog(write(tmp_path, data))
    assert set(c.materials) == set(mats)
    del mats["cardboard"]
    (tmp_path / "mats.yaml").write_text(yaml.safe_dump(mats))
    with pytest.raises(ConfigError, match="cardboard"):
        load_catalog(write(tmp_path, data))


def set_in(data, path, value):
    d = data
    for k in path[:-1]:
        d = d[k]
    if value is DELETE:
        del d[path[-1]]
    else:
        d[path[-1]] = value


DELETE = object()

BAD = [
    # (where to change, new value, key expected in the message, value expected in the message)
    (("products", 0, "colour"), "red", "products[0].colour", "red"),
    (("products", 0, "kind"), "sofa", "products[0].kind", "sofa"),
    (("products", 1, "params", "material"), "unobtainium", "products[1].params.material", "unobtainium"),
    (("products", 0, "params", "length_mm"), [400, 200], "products[0].params.length_mm", "[400, 200]"),
    (("products", 0, "params", "length_mm"), -10, "products[0].params.length_mm", "-10"),
    (("products", 0, "params", "length_mm"), 0, "products[0].params.length_mm", "0"),
    (("products", 0, "params", "width_mm"), 2500, "products[0].params.width_mm", "2500"),
    (("products", 0, "params", "shiny"), True, "products[0].params.shiny", "True"),
    (("products", 0, "weight"), 0, "products[0].weight", "0"),
    (("products", 0, "weight"), -2, "products[0].weight", "-2"),
    (("products", 0, "skus"), 0, "products[0].skus", "0"),
    (("products", 0, "skus"), 2.5, "products[0].skus", "2.5"),
    (("seed",), -1, "seed", "-1"),
    (("seed",), "abc", "seed", "abc"),
    (("products",), [], "products", "[]"),
    (("materials",), "missing.yaml", "materials", "missing.yaml"),
]


@pytest.mark.parametrize("where,value,key,shown", BAD, ids=[".".join(map(str, b[0])) + "=" + repr(b[1]) for b in BAD])
def test_bad_input_raises_config_error(tmp_path, where, value, key, shown):
    data = copy.deepcopy(minimal())
    set_in(data, where, value)
    path = write(tmp_path, data, "badcat.yaml")
    with pytest.raises(ConfigError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert "badcat.yaml" in msg and key in msg and shown in msg, msg


@pytest.mark.parametrize("entry,key,shown", [
    ({"kind": "blister", "params": {"units": 0}}, "products[0].params.units", "0"),
    ({"kind": "blister", "params": {"units": [3, 1]}}, "products[0].params.units", "[3, 1]"),
    ({"kind": "multipack", "params": {"units": {"choice": [4, 5]}}}, "products[0].params.units", "5"),
    ({"kind": "bottle", "params": {"height_mm": 100, "diameter_mm": 95}}, "products[0].params", "100"),
    ({"kind": "mesh", "path": "nope.obj", "units": "mm", "material": "cardboard"}, "products[0].path", "nope.obj"),
    ({"kind": "mesh", "path": "x.obj", "units": "parsec", "material": "cardboard"}, "products[0].units", "parsec"),
    ({"kind": "mesh", "path": "x.obj", "units": "mm", "material": "jelly"}, "products[0].material", "jelly"),
    ({"kind": "mesh", "units": "mm", "material": "cardboard"}, "products[0].path", "None"),
])
def test_bad_entries(tmp_path, entry, key, shown):
    path = write(tmp_path, {"seed": 0, "products": [entry]}, "badcat.yaml")
    with pytest.raises(ConfigError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert "badcat.yaml" in msg and key in msg and shown in msg, msg


def test_broken_mesh_entry_names_both_files(tmp_path):
    (tmp_path / "broken.stl").write_bytes(b"\x00\x01garbage")
    path = write(tmp_path, {"products": [{"kind": "mesh", "path": "broken.stl", "units": "mm",
                                          "material": "cardboard"}]}, "badcat.yaml")
    with pytest.raises(ConfigError) as e:
        load_catalog(path)
    assert "badcat.yaml" in str(e.value) and "broken.stl" in str(e.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_catalog(tmp_path / "nothere.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("products: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_catalog(p)
