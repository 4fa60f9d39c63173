"""Procedural product generators: closed parts, exact dims, determinism."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from damage_ops import PART_NAMES
from simulator.config.materials import load_materials
from simulator.products import GENERATORS, KINDS, MODULES, build_product
from simulator.products.artwork import STYLES, make_artwork, paint_atlas

SEEDS = (0, 1, 7, 12345)
MATERIALS = load_materials()


@pytest.fixture(scope="module")
def built():
    """(kind, seed) -> Product, each built once for the module."""
    return {(k, s): build_product(k, f"{k}-t{s}", {}, np.random.default_rng(s)) for k in KINDS for s in SEEDS}


def part_mesh(prod, i):
    faces = prod.mesh.faces[prod.part_id == i]
    used, inv = np.unique(faces, return_inverse=True)
    return trimesh.Trimesh(prod.mesh.vertices[used], inv.reshape(-1, 3), process=False)


def test_registry_has_all_kinds():
    assert set(GENERATORS) == {"carton", "mailer", "blister", "bottle", "pouch", "multipack"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_product_is_valid_and_parts_closed(built, kind, seed):
    prod = built[(kind, seed)]
    prod.validate()
    assert prod.kind == kind
    assert 1000 <= len(prod.mesh.faces) <= 12000
    assert (prod.damage_id == 0).all()
    for i, part in enumerate(prod.parts):
        assert part.name in PART_NAMES[1:]
        assert part.material in MATERIALS
        m = part_mesh(prod, i)
        assert len(m.faces) > 0, part
        assert m.is_watertight, (kind, seed, part)
        assert m.is_winding_consistent, (kind, seed, part)
        assert m.volume > 0, (kind, seed, part, m.volume)
        assert m.area_faces.min() > 1e-12, (kind, seed, part)
        srt = np.sort(m.faces, axis=1)
        assert len(np.unique(srt, axis=0)) == len(srt), "duplicate faces"
        assert (m.faces[:, 0] != m.faces[:, 1]).all() and (m.faces[:, 1] != m.faces[:, 2]).all() \
            and (m.faces[:, 0] != m.faces[:, 2]).all()
    assert set(np.unique(prod.part_id)) == set(range(len(prod.parts))), "every part has faces"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_dims_match_params_and_bbox_centred(built, kind, seed):
    prod = built[(kind, seed)]
    mod = MODULES[kind]
    lo, hi = prod.mesh.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-9)
    ext = (hi - lo) * 1000
    np.testing.assert_allclose(ext, prod.dims_mm, atol=1e-6)
    np.testing.assert_allclose(ext, mod.nominal_dims_mm(prod.meta), atol=1.0)
    for name, spec in mod.PARAMS.items():  # resolved params lie in the default ranges
        v = prod.meta[name]
        if spec.kind == "choice":
            assert v in spec.choices
        else:
            assert spec.default[0] <= v <= spec.default[1], (name, v)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_mass_collision_artwork(built, kind, seed):
    prod = built[(kind, seed)]
    lo, hi = MODULES[kind].MASS_RANGE_KG
    assert lo <= prod.mass_kg <= hi
    assert len(prod.collision) >= 1
    blo, bhi = prod.mesh.bounds
    for c in prod.collision:
        assert c.ndim == 2 and c.shape[1] == 3 and len(c) >= 4
        assert (c >= blo - 1e-6).all() and (c <= bhi + 1e-6).all()
        assert trimesh.convex.convex_hull(c).volume > 0
    art = prod.artwork
    assert art.dtype == np.uint8 and art.ndim == 3 and art.shape[2] == 3
    assert max(art.shape[:2]) <= 1024 and min(art.shape[:2]) >= 8
    printed = np.isin(prod.part_id, [i for i, p in enumerate(prod.parts) if p.printed])
    assert printed.any()
    uv = prod.uv[printed]
    assert (uv >= 0).all() and (uv <= 1).all()
    assert np.ptp(uv[..., 0]) > 0.1 and np.ptp(uv[..., 1]) > 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic(kind):
    a = build_product(kind, "s", {}, np.random.default_rng(3))
    b = build_product(kind, "s", {}, np.random.default_rng(3))
    c = build_product(kind, "s", {}, np.random.default_rng(4))
    assert a.mesh.vertices.tobytes() == b.mesh.vertices.tobytes()
    assert a.mesh.faces.tobytes() == b.mesh.faces.tobytes()
    for k in ("part_id", "damage_id", "uv"):
        assert a.mesh.face_attributes[k].tobytes() == b.mesh.face_attributes[k].tobytes()
    assert a.artwork.tobytes() == b.artwork.tobytes()
    assert a.meta == b.meta and a.mass_kg == b.mass_kg
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.collision, b.collision))
    assert a.meta != c.meta or a.artwork.tobytes() != c.artwork.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_params_only_art_varies(kind):
    base = build_product(kind, "s", {}, np.random.default_rng(0)).meta
    a = build_product(kind, "s", base, np.random.default_rng(1))
    assert a.meta == base
    np.testing.assert_allclose(a.dims_mm, MODULES[kind].nominal_dims_mm(base), atol=1.0)


def unit_components(prod):
    ids = [i for i, p in enumerate(prod.parts) if p.name == "unit"]
    faces = prod.mesh.faces[np.isin(prod.part_id, ids)]
    return len(trimesh.graph.connected_components(trimesh.graph.face_adjacency(faces), nodes=np.arange(len(faces))))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
@pytest.mark.parametrize("seed", [0, 5])
def test_blister_unit_count(n, seed):
    prod = build_product("blister", "b", {"units": n}, np.random.default_rng(seed))
    assert unit_components(prod) == n
    assert len(prod.part_faces("unit")) > 0


@pytest.mark.parametrize("n", [4, 6, 8])
@pytest.mark.parametrize("unit_kind", ["can", "bottle"])
def test_multipack_unit_count(n, unit_kind):
    params = {"units": n, "unit_kind": unit_kind}
    if unit_kind == "bottle":
        params.update(unit_diameter_mm=62.0, unit_height_mm=220.0)
    prod = build_product("multipack", "m", params, np.random.default_rng(n))
    assert unit_components(prod) == n
    film = part_mesh(prod, [p.name for p in prod.parts].index("film"))
    assert film.is_watertight and film.volume > 0
    units = prod.mesh.vertices[np.unique(prod.mesh.faces[prod.part_faces("unit")])]
    assert film.bounds[0].min() <= units.min() and (units.max(0) <= film.bounds[1] + 1e-9).all()


@pytest.mark.parametrize("params", [
    {"length_mm": 450, "width_mm": 300, "height_mm": 300},
    {"length_mm": 150, "width_mm": 100, "height_mm": 60},
])
def test_carton_extremes(params):
    prod = build_product("carton", "c", params, np.random.default_rng(0))
    np.testing.assert_allclose(prod.dims_mm, [params["length_mm"], params["width_mm"], params["height_mm"]], atol=1e-6)
    assert len(prod.mesh.faces) <= 12000
    names = {p.name for p in prod.parts}
    assert names == {"body", "flap", "tape"}


@pytest.mark.parametrize("material", ["glass", "rigid_plastic"])
@pytest.mark.parametrize("shape", ["wine", "water", "sauce"])
def test_bottle_shapes(material, shape):
    prod = build_product("bottle", "b", {"material": material, "shape": shape, "height_mm": 300, "diameter_mm": 95},
                         np.random.default_rng(0))
    assert prod.parts[0].material == material
    # the label is proud of the body, the cap sits on top
    lab = part_mesh(prod, 2)
    body = part_mesh(prod, 0)
    r_lab = np.linalg.norm(lab.vertices[:, :2], axis=1).max()
    r_body = np.linalg.norm(body.vertices[:, :2], axis=1).max()
    assert r_lab > r_body
    cap = part_mesh(prod, 1)
    assert cap.bounds[1, 2] == pytest.approx(prod.mesh.bounds[1, 2])


def test_pouch_valve_toggle():
    with_v = build_product("pouch", "p", {"valve": True}, np.random.default_rng(0))
    without = build_product("pouch", "p", {"valve": False}, np.random.default_rng(0))
    assert "valve" in [p.name for p in with_v.parts]
    assert "valve" not in [p.name for p in without.parts]


def test_pouch_laminate_relief_and_crimped_seal():
    """The pouch body carries a normal map of film wrinkles in the artwork's
    layout (unit normals facing out, with relief); its unprinted seal shows
    the knurled ``crimp`` tile."""
    from simulator.products import surface as S

    prod = build_product("pouch", "p", {}, np.random.default_rng(3))
    assert prod.normal_map is not None and prod.normal_map.shape == prod.artwork.shape
    n = S.decode_normals(prod.normal_map)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=0.012)
    assert (n[..., 2] > 0.5).all() and n[..., 0].std() > 0.003
    seal = [p for p in prod.parts if p.name == "seal"][0]
    assert not seal.printed and MATERIALS[seal.material].pattern == "crimp"
    c, nm = S.tile("crimp")
    assert S.decode_normals(nm)[..., 0].std() > 0.02  # a pressed knurl, not a flat band


@pytest.mark.parametrize("bad", [
    ("carton", {"length_mm": -5}),
    ("carton", {"length_mm": 5000}),
    ("carton", {"colour": "red"}),
    ("bottle", {"material": "metal"}),
    ("blister", {"units": 0}),
    ("multipack", {"units": 5}),
    ("carton", {"length_mm": [300, 200]}),
])
def test_bad_params_raise(bad):
    kind, params = bad
    with pytest.raises(ValueError):
        build_product(kind, "x", params, np.random.default_rng(0))


def test_unknown_kind_and_bad_rng():
    with pytest.raises(ValueError, match="unknown product kind 'sofa'"):
        build_product("sofa", "x", {}, np.random.default_rng(0))
    with pytest.raises(TypeError):
        build_product("carton", "x", {}, 0)


@pytest.mark.parametrize("style", STYLES)
def test_artwork_styles(style):
    a = make_artwork(np.random.default_rng(0), 256, 384, style=style)
    b = make_artwork(np.random.default_rng(0), 256, 384, style=style)
    assert a.shape == (256, 384, 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert a.std() > 2  # not a flat image


def test_hard_negative_styles_differ_from_retail():
    base = make_artwork(np.random.default_rng(2), 256, 256, style="retail")
    for style in ("crack_print", "splash_print"):
        assert make_artwork(np.random.default_rng(2), 256, 256, style=style).tobytes() != base.tobytes()


def test_artwork_bad_style():
    with pytest.raises(ValueError, match="unknown artwork style"):
        make_artwork(np.random.default_rng(0), 64, 64, style="graffiti")


def test_atlas_rects_disjoint():
    img, rects = paint_atlas(np.random.default_rng(0), [(450, 300), (300, 300), (450, 100), (60, 30)], "retail")
    assert img.dtype == np.uint8 and max(img.shape[:2]) <= 1024
    r = np.array(rects)
    assert ((r >= 0) & (r <= 1)).all() and (r[:, 2] > r[:, 0]).all() and (r[:, 3] > r[:, 1]).all()
    for i in range(len(r)):
        for j in range(i + 1, len(r)):
            overlap = min(r[i, 2], r[j, 2]) > max(r[i, 0], r[j, 0]) and min(r[i, 3], r[j, 3]) > max(r[i, 1], r[j, 1])
            assert not overlap


def test_import_is_light():
    code = ("import sys, simulator.products, simulator.config.catalog; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('OpenGL', 'pybullet', 'torch', 'pyrender')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("edge", [0.004, 0.007, 0.012])
def test_polygon_cap_tiles_the_ring_evenly(edge):
    """capped_loft's planar caps: the loft stays one closed, outward surface of the
    ring's volume, each cap tiles its (here waisted, non-convex) outline with
    triangles about ``edge`` on a side, none a sliver."""
    from simulator.products import _geom as G

    o = G.rounded_rect(0.1, 0.05, 0.03, n_arc=8, step=0.012)
    o[:, 1] *= 1 - 0.08 * np.cos(np.pi * o[:, 0] / 0.1) ** 2  # pinched sides
    rings = np.stack([np.column_stack([o, np.full(len(o), z)]) for z in (0.0, 0.05, 0.1)])
    V, F, UV = G.capped_loft(rings, cap_edge=edge)
    m = trimesh.Trimesh(V, F, process=False)
    assert m.is_watertight and m.is_winding_consistent
    area = 0.5 * abs(np.sum(o[:, 0] * np.roll(o[:, 1], -1) - np.roll(o[:, 0], -1) * o[:, 1]))
    assert m.volume == pytest.approx(area * 0.1, rel=1e-9)
    assert UV.shape == (len(F), 3, 2) and not UV.any()
    top = np.all(np.abs(V[F][..., 2] - 0.1) < 1e-12, axis=1)
    assert np.allclose(m.face_normals[top], [0, 0, 1])
    T = V[F[top]]
    e = np.linalg.norm(T - np.roll(T, 1, axis=1), axis=2)
    assert e.max() < max(2.5 * edge, 0.02) and np.median(e) == pytest.approx(edge, rel=0.2)
    assert (e.min(1) / e.max(1)).min() > 0.25
    with pytest.raises(ValueError, match="not planar"):
        bent = rings[-1].copy()
        bent[0, 2] += 0.01
        G.polygon_cap(bent, edge)
