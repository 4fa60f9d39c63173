"""Materials: procedural kraft board, printed marks, normal maps, surface tiles,
finishes, and that pyrender really shades the normal maps (grazing light)."""
import numpy as np
import pytest

from simulator.products import surface as S
from simulator.products.artwork import (
    KRAFT_DARK,
    KRAFT_LIGHT,
    STYLES,
    draw_board,
    kraft_board,
    paint_atlas,
    paint_atlas_maps,
)

PANELS = [(300, 250), (300, 250), (400, 250), (400, 250), (400, 300), (400, 150), (400, 150)]


def _srgb_to_linear(c):
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@pytest.mark.parametrize("style", ["kraft", "shipping"])
def test_atlas_maps_deterministic_and_match_paint_atlas(style):
    a = paint_atlas_maps(np.random.default_rng(5), PANELS, style)
    b = paint_atlas_maps(np.random.default_rng(5), PANELS, style)
    c = paint_atlas_maps(np.random.default_rng(6), PANELS, style)
    assert a.image.tobytes() == b.image.tobytes() and a.normal.tobytes() == b.normal.tobytes()
    assert a.image.tobytes() != c.image.tobytes()
    img, rects = paint_atlas(np.random.default_rng(5), PANELS, style)
    assert img.tobytes() == a.image.tobytes() and rects == a.rects  # the colour draws come first
    assert a.normal.shape == a.image.shape and a.normal.dtype == np.uint8


def test_kraft_board_colour_in_real_range():
    """Brown kraft liners land in sRGB (160-200, 120-160, 80-115) on average, red > green > blue."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        board = draw_board(rng, white_top_p=0.0)
        img = np.zeros((200, 300, 3), np.float32)
        kraft_board(img, rng, board, 2.0)
        m = img.reshape(-1, 3).mean(0) * 255
        assert (m >= KRAFT_DARK * 255 * 0.85).all() and (m <= KRAFT_LIGHT * 255 * 1.05).all(), m
        assert m[0] > m[1] > m[2]
        assert 2.0 < img.std(axis=(0, 1)).mean() * 255 < 20  # textured, not noisy
    white = draw_board(np.random.default_rng(0), white_top_p=1.0)
    assert white.white_top and min(white.color) > 0.75


def test_shipping_style_prints_a_white_label_on_the_primary_panel():
    a = paint_atlas_maps(np.random.default_rng(2), PANELS, "shipping", primary=4)
    u0, v0, u1, v1 = a.rects[4]
    H, W = a.image.shape[:2]
    pan = a.image[int((1 - v1) * H):int((1 - v0) * H), int(u0 * W):int(u1 * W)].astype(int)
    white = (pan.min(2) > 215).mean()
    dark = (pan.max(2) < 60).mean()  # thermal print on it
    assert white > 0.015 and dark > 0.0005
    assert "shipping" in STYLES


@pytest.mark.parametrize("surface", ["corrugated", "paper", "film", "bubble"])
def test_normal_maps_are_unit_and_face_out(surface):
    a = paint_atlas_maps(np.random.default_rng(1), PANELS[:3], "kraft", surface=surface)
    n = S.decode_normals(a.normal)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=0.012)
    assert (n[..., 2] > 0.5).all()
    assert n[..., 0].std() > 0.003  # there is relief


@pytest.mark.parametrize("name", sorted(S.TILES))
def test_tiles_are_seamless_unit_and_deterministic(name):
    c, n = S.tile(name)
    assert n.shape == (S.TILE_PX, S.TILE_PX, 3)
    d = S.decode_normals(n)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=0.012)
    # seamless: the jump across the wrap is no larger than a typical step inside
    f = d[..., 0] + d[..., 1]
    inner = np.abs(np.diff(f, axis=1)).mean()
    wrap = np.abs(f[:, 0] - f[:, -1]).mean()
    assert wrap < 3 * inner + 1e-3
    S.tile.cache_clear()
    assert S.tile(name)[1].tobytes() == n.tobytes()


def test_flute_normals_follow_the_height_slope():
    h = S.flute_height(8, 64, 4.0, 8.0, 0.2)
    n = S.normals_from_height(h, 4.0)
    slope = np.gradient(h[0]) * 4.0
    np.testing.assert_allclose(-n[0, :, 0] / n[0, :, 2], slope, atol=1e-5)
    assert np.abs(n[..., 1]).max() < 1e-6  # ridges along v: no tilt along v


def _quad_scene(gl, normal, light_dir):
    import pyrender

    from simulator.config.materials import Material
    from simulator.render.renderer import _pbr

    s = 0.2
    P = np.array([[-s, -s, 0], [s, -s, 0], [s, s, 0], [-s, -s, 0], [s, s, 0], [-s, s, 0]], np.float32)
    uv = (P[:, :2] / (2 * s) + 0.5).astype(np.float32)
    art = np.full((256, 256, 3), 180, np.uint8)
    mat = _pbr(Material("m", (0.5, 0.5, 0.5), roughness=0.9), art, textures={}, normal=normal)
    prim = pyrender.Primitive(positions=P, normals=np.tile([0, 0, 1.0], (6, 1)).astype(np.float32),
                              texcoord_0=uv, material=mat)
    scene = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[0.02] * 3)
    scene.add(pyrender.Mesh([prim]))
    cam = pyrender.IntrinsicsCamera(200, 200, 64, 64, znear=0.05, zfar=5)
    scene.add(cam, pose=np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.6], [0, 0, 0, 1.0]]))
    d = np.asarray(light_dir, np.float64)
    d /= np.linalg.norm(d)
    z = -d
    x = np.cross([0, 0, 1.0], z) if abs(z[2]) < 0.99 else np.array([1.0, 0, 0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    scene.add(pyrender.DirectionalLight(intensity=4.0), pose=T)
    r = pyrender.OffscreenRenderer(128, 128)
    try:
        rgb, _ = r.render(scene)
    finally:
        r.delete()
    return rgb.astype(np.float64).mean(2)


def test_grazing_light_shows_flute_ridges(gl):
    """A light 10 degrees above the surface, across the flutes: the normal map
    makes the brightness swing along u (across the flutes) far more than a flat
    surface does; along v (along the flutes) it stays even."""
    ppm = 256 / 400.0  # the quad is 400 mm wide, 256 px
    hgt = S.flute_height(256, 256, ppm, 7.9 * 4, 1.2)  # coarse flutes, so 128 px of view resolve them
    ridged = S.encode_normals(S.normals_from_height(hgt, ppm))
    flat = np.broadcast_to(S.FLAT_NORMAL, ridged.shape).copy()
    light = (-np.cos(np.radians(10)), 0.0, -np.sin(np.radians(10)))  # travelling along +x, grazing
    a = _quad_scene(gl, ridged, light)[32:96, 32:96]
    b = _quad_scene(gl, flat, light)[32:96, 32:96]
    across_a = a.mean(0).std()  # variation along image x = u
    across_b = b.mean(0).std()
    along_a = a.mean(1).std()
    assert across_a > 5 * max(across_b, 0.3), (across_a, across_b)
    assert across_a > 3 * along_a


def test_finishes_render_with_their_tiles(gl, materials):
    """core and inner_liner faces render lighter than the printed kraft and show
    their tile's stripes; every finish named in FINISHES has a look."""
    from damage_ops import FINISHES
    from damage_ops._opkit import paint
    from simulator.config.catalog import build_product
    from simulator.render.renderer import FINISH_LOOK, visual_mesh

    assert set(FINISHES) - {"base"} <= set(FINISH_LOOK)
    prod = build_product("carton", "c", {"art_style": "kraft"}, np.random.default_rng(0))
    assert prod.normal_map is not None and prod.copy().normal_map is prod.normal_map
    m = prod.mesh.copy()
    m.face_attributes = {k: np.array(v) for k, v in prod.mesh.face_attributes.items()}
    paint(m, np.arange(0, 40), (1.0, 1.0, 1.0), finish="core")
    paint(m, np.arange(40, 80), (1.0, 1.0, 1.0), finish="inner_liner")
    vm = visual_mesh(prod, materials, m, {})
    mats = [p.material for p in vm.primitives]
    tiles = [p for p in vm.primitives if p.material.normalTexture is not None and p.texcoord_0 is not None]
    assert len(tiles) >= 3  # printed board (atlas normal map), core, inner liner
    cols = np.array([mm.baseColorFactor[:3] for mm in mats])
    for fin in ("core", "inner_liner"):
        assert np.isclose(cols, FINISH_LOOK[fin]["color"], atol=1e-4).all(1).any(), fin


def test_tape_materials_glossy_and_clear_is_translucent(materials):
    for k in ("tape_brown", "tape_clear", "tape_white"):
        assert materials[k].roughness <= 0.3 and materials[k].pattern == "tape"
    assert materials["tape_clear"].alpha < 0.5 < materials["tape_brown"].alpha


def test_bad_pattern_names_the_key(tmp_path):
    from simulator.config.materials import load_materials
    from simulator.core.errors import ConfigError

    p = tmp_path / "m.yaml"
    p.write_text("x: {color: [0.1, 0.2, 0.3], pattern: velvet}\n")
    with pytest.raises(ConfigError, match="x.pattern"):
        load_materials(p)


def test_handling_wear_frays_edges_and_zero_wear_is_a_no_op():
    """wear 0 paints nothing and draws nothing; full wear leaves the outer mm of
    every edge lighter and greyer (raised liner fibre) than the panel inside;
    the same rng gives the same wear; labels (cover) take less of it."""
    from simulator.products.artwork import handling_wear

    def panel(seed):
        rng = np.random.default_rng(seed)
        img = np.zeros((300, 400, 3), np.float32)
        kraft_board(img, rng, draw_board(rng, white_top_p=0.0), 2.0)
        return img, rng

    img, rng = panel(3)
    before, state = img.copy(), rng.bit_generator.state
    handling_wear(img, rng, 2.0, 0.0)
    assert np.array_equal(img, before) and rng.bit_generator.state == state
    for seed in range(6):
        img, rng = panel(seed)
        rim = lambda a: np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3),  # noqa: E731
                                        a[:, :2].reshape(-1, 3), a[:, -2:].reshape(-1, 3)])
        sat = lambda c: (c.max(1) - c.min(1)) / c.max(1)  # noqa: E731
        rim0 = rim(img)
        handling_wear(img, rng, 2.0, 1.0)
        assert rim(img).mean() > rim0.mean() * 1.03, seed
        assert sat(rim(img)).mean() < sat(rim0).mean() - 0.02, seed
        again, rng2 = panel(seed)
        handling_wear(again, rng2, 2.0, 1.0)
        assert np.array_equal(img, again)
    img, rng = panel(1)
    covered, rngc = panel(1)
    base = img.copy()
    handling_wear(img, rng, 2.0, 1.0)
    handling_wear(covered, rngc, 2.0, 1.0, cover=np.ones(img.shape[:2], np.float32))
    assert np.abs(covered - base).mean() < 0.5 * np.abs(img - base).mean()
