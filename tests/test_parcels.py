"""Parcels and mailers: RSC cartons with their tape styles, wrinkled mailers.

Strong invariants: every piece closed, dims exact, determinism, tape on the
board and never in it, the seam gap as asked, mailer wrinkles present but the
bag still two non-crossing sheets, printed faces with a usable uv frame."""
from __future__ import annotations

import manifold3d
import numpy as np
import pytest
import trimesh

from simulator.products import build_product
from simulator.products import carton as C
from simulator.products import mailer as M

STYLES = ("strip", "h_tape", "retaped")
N_STRIPS = {"strip": 1, "h_tape": 3, "retaped": 2}


def components(prod, part: str) -> list[trimesh.Trimesh]:
    """The closed pieces of one part, as separate meshes."""
    ids = [i for i, p in enumerate(prod.parts) if p.name == part]
    faces = prod.mesh.faces[np.isin(prod.part_id, ids)]
    sub = trimesh.Trimesh(prod.mesh.vertices, faces, process=False)
    out = []
    for c in trimesh.graph.connected_components(sub.face_adjacency, nodes=np.arange(len(faces)), min_len=1):
        used, inv = np.unique(faces[c], return_inverse=True)
        out.append(trimesh.Trimesh(prod.mesh.vertices[used], inv.reshape(-1, 3), process=False))
    return out


def to_manifold(m: trimesh.Trimesh) -> manifold3d.Manifold:
    return manifold3d.Manifold(manifold3d.Mesh(vert_properties=np.asarray(m.vertices, np.float32),
                                               tri_verts=np.asarray(m.faces, np.uint32)))


@pytest.fixture(scope="module")
def cartons():
    """(style, seed) -> carton with worn tape (every feature kind drawn)."""
    return {(s, k): build_product("carton", f"c-{s}-{k}", {"tape_style": s, "tape_wear": 1.0}, np.random.default_rng(k))
            for s in STYLES for k in (0, 3)}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed", (0, 3))
def test_carton_pieces_closed_and_dims_exact(cartons, style, seed):
    prod = cartons[(style, seed)]
    prod.validate()
    lo, hi = prod.mesh.bounds
    np.testing.assert_allclose((hi - lo) * 1000, C.nominal_dims_mm(prod.meta), atol=1e-6)
    tapes, flaps = components(prod, "tape"), components(prod, "flap")
    assert len(tapes) == N_STRIPS[style]
    assert len(flaps) == 2
    for m in tapes + flaps + components(prod, "body"):
        assert m.is_watertight and m.is_winding_consistent and m.volume > 0


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed", (0, 3))
def test_tape_lies_on_the_board_and_never_in_it(cartons, style, seed):
    prod = cartons[(style, seed)]
    board = [to_manifold(m) for m in components(prod, "body") + components(prod, "flap")]
    tapes = components(prod, "tape")
    for i, t in enumerate(tapes):
        mt = to_manifold(t)
        assert abs(mt.volume() - t.volume) < 1e-3 * t.volume  # the same closed solid
        for b in board:  # no volume shared with the board beyond 1 mm^3
            assert (mt ^ b).volume() < 1e-9, (style, seed, i)
        for u in tapes[i + 1:]:  # stacked strips ride over each other
            assert (mt ^ to_manifold(u)).volume() < 1e-9, (style, seed, i)
    # and on it: each strip lies on what is under it (the board and the strips
    # laid before it): its inner surface touches (5th percentile of its vertices'
    # distances under 0.35 mm: the clearance plus the chord lift over the domed
    # flaps), most of it within a millimetre, lifted edges and peeled ends at most
    # a few millimetres off
    under = components(prod, "body") + components(prod, "flap")
    for i, t in enumerate(tapes):
        _, d, _ = trimesh.proximity.closest_point(trimesh.util.concatenate(under), t.vertices)
        assert np.percentile(d, 5) < 0.35e-3, (style, seed, i)
        assert np.median(d) < 1.0e-3, (style, seed, i)
        assert d.max() < 4.5e-3, (style, seed, i)
        under.append(t)


@pytest.mark.parametrize("gap", (0.5, 2.0, 6.0))
def test_seam_gap_between_flaps(gap):
    prod = build_product("carton", "c", {"seam_gap_mm": gap, "tape_width_mm": 50.0}, np.random.default_rng(1))
    a, b = sorted(components(prod, "flap"), key=lambda m: m.vertices[:, 1].mean())
    measured = (b.vertices[:, 1].min() - a.vertices[:, 1].max()) * 1000
    # the per-axis fit stretches y by well under a percent
    assert measured == pytest.approx(gap, rel=0.01)


@pytest.mark.parametrize("material", C.TAPE_MATERIALS)
def test_tape_material_and_reuse_param(material):
    prod = build_product("carton", "c", {"tape_material": material, "art_style": "shipping", "reuse_p": 1.0},
                         np.random.default_rng(2))
    assert [p.material for p in prod.parts if p.name == "tape"] == [material]
    assert prod.meta["reuse_p"] == 1.0


@pytest.mark.parametrize("kind,params", [("carton", {"tape_style": "h_tape", "tape_wear": 1.0}),
                                         ("carton", {"tape_style": "retaped"}),
                                         ("mailer", {"style": "poly", "art_style": "shipping"}),
                                         ("mailer", {"style": "padded", "art_style": "plain"})])
def test_deterministic(kind, params):
    a = build_product(kind, "s", params, np.random.default_rng(5))
    b = build_product(kind, "s", params, np.random.default_rng(5))
    c = build_product(kind, "s", params, np.random.default_rng(6))
    assert a.mesh.vertices.tobytes() == b.mesh.vertices.tobytes()
    assert a.mesh.faces.tobytes() == b.mesh.faces.tobytes()
    assert a.artwork.tobytes() == b.artwork.tobytes() and a.normal_map.tobytes() == b.normal_map.tobytes()
    assert a.mesh.vertices.tobytes() != c.mesh.vertices.tobytes()


def bag_sheets(prod):
    """(top z, bottom z) of the body at the lattice points it has on both sheets."""
    body = components(prod, "body")[0]
    V = body.vertices
    key = np.round(V[:, :2] * 1e7).astype(np.int64)
    order = np.lexsort((V[:, 2], key[:, 1], key[:, 0]))
    k, z = key[order], V[order, 2]
    first = np.r_[True, np.any(k[1:] != k[:-1], axis=1)]
    idx = np.flatnonzero(first)
    last = np.r_[idx[1:] - 1, len(k) - 1]
    return z[last], z[idx], k[idx]


@pytest.mark.parametrize("style", ("poly", "padded"))
@pytest.mark.parametrize("seed", (0, 4))
def test_mailer_wrinkled_closed_and_exact(style, seed):
    params = {"style": style, "length_mm": 320.0, "width_mm": 240.0, "thickness_mm": 30.0}
    smooth = build_product("mailer", "m", dict(params, wrinkle=0.0), np.random.default_rng(seed))
    wr = build_product("mailer", "m", dict(params, wrinkle=1.0), np.random.default_rng(seed))
    for prod in (smooth, wr):
        prod.validate()
        assert 1000 <= len(prod.mesh.faces) <= 12000
        lo, hi = prod.mesh.bounds
        np.testing.assert_allclose((hi - lo) * 1000, (320.0, 240.0, 30.0), atol=1e-6)
        for part in ("body", "seal"):
            (m,) = components(prod, part)
            assert m.is_watertight and m.is_winding_consistent and m.volume > 0
        top, bot, _ = bag_sheets(prod)
        assert (top - bot >= -1e-9).all()  # the two sheets never cross (they meet at the weld)
    # same lattice, same artwork (painted before the wrinkles are drawn): the
    # wrinkles are the only difference, and they are there
    assert smooth.mesh.faces.tobytes() == wr.mesh.faces.tobytes()
    t0, _, k0 = bag_sheets(smooth)
    t1, _, k1 = bag_sheets(wr)
    assert (k0 == k1).all()
    dz = np.abs(t1 - t0) * 1000
    assert dz.max() > (0.5 if style == "poly" else 0.2)
    # creased, not a smooth pillow: along the wrinkles the top bends at its edges
    # by several degrees more than the smooth pillow does (same faces, same order)
    a, b = components(smooth, "body")[0], components(wr, "body")[0]
    assert (a.face_adjacency == b.face_adjacency).all()
    top = (b.vertices[b.faces][:, :, 2].min(1) > 0)[b.face_adjacency].all(1)
    bend = np.degrees(np.abs(b.face_adjacency_angles - a.face_adjacency_angles))[top]
    if style == "poly":
        assert np.percentile(bend, 99) > 3.0 and bend.max() > 6.0
    else:  # stiffer: fewer, softer wrinkles
        assert bend.max() > 1.5


@pytest.mark.parametrize("style", ("poly", "padded"))
@pytest.mark.parametrize("art", ("plain", "shipping"))
def test_mailer_print_is_light_and_uv_frames_usable(style, art):
    for seed in range(6):
        prod = build_product("mailer", "m", {"style": style, "art_style": art}, np.random.default_rng(seed))
        printed = [i for i, p in enumerate(prod.parts) if p.printed]
        assert printed == [0, 1]  # the seal flap shows the front print too
        uv = prod.uv[np.isin(prod.part_id, printed)]
        # the shader derives the normal map's tangent frame from uv derivatives:
        # a face with degenerate uv renders black
        area = np.abs(np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]))
        assert area.min() > 0
        # plain film or paper colours (the dark brand ink made padded envelopes near-black)
        H, W = prod.artwork.shape[:2]
        c = uv.mean(1)
        px = prod.artwork[((1 - c[:, 1]) * H).astype(int).clip(0, H - 1), (c[:, 0] * W).astype(int).clip(0, W - 1)]
        lum = px.astype(float).mean(1) / 255
        assert np.median(lum) > (0.1 if style == "poly" else 0.4), seed


@pytest.mark.parametrize("style", STYLES)
def test_carton_printed_faces_have_a_uv_frame(cartons, style):
    """The body top (seen through the seam gap) and the flaps' cut edges too:
    with a normal map, a face whose corners share one uv renders black."""
    for seed in (0, 3):
        prod = cartons[(style, seed)]
        assert prod.normal_map is not None
        printed = [i for i, p in enumerate(prod.parts) if p.printed]
        uv = prod.uv[np.isin(prod.part_id, printed)]
        area = np.abs(np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]))
        assert area.min() > 0 and (uv >= 0).all() and (uv <= 1).all()


def test_mailer_shipping_label_on_the_front():
    prod = build_product("mailer", "m", {"art_style": "shipping", "style": "poly"}, np.random.default_rng(1))
    art = prod.artwork.astype(float) / 255
    y0, y1, x0, x1 = M._panel_box(_front_rect(prod), art.shape)
    panel = art[y0:y1, x0:x1]
    dark = panel.mean(2) < 0.3  # barcode bars and print on the white label
    assert dark.mean() > 0.002


def _front_rect(prod):
    """uv rect of the +z print: the uv range of the body's upward faces."""
    body = prod.part_id == 0
    up = prod.mesh.face_normals[:, 2] > 0.95
    uv = prod.uv[body & up].reshape(-1, 2)
    return (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())


def test_bad_carton_params_named():
    with pytest.raises(ValueError, match="tape_style"):
        build_product("carton", "c", {"tape_style": "duct"}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="seam_gap_mm"):
        build_product("carton", "c", {"seam_gap_mm": 20.0, "tape_width_mm": 48.0}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="reuse_p"):
        build_product("carton", "c", {"reuse_p": 1.5}, np.random.default_rng(0))


def test_product_sheet_renders_the_named_skus(tmp_path, gl):
    from PIL import Image

    from simulator.tools.gallery import render_product_sheet

    out = render_product_sheet(tmp_path / "sheet.png", None, skus=["carton-000", "mailer-000"], cols=2)
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape == (360 + 16, 2 * 480, 3)
    for tile in (im[16:, :480], im[16:, 480:]):  # each tile shows an item: not one flat colour
        assert tile.reshape(-1, 3).std(0).max() > 10
    with pytest.raises(KeyError, match="no SKU named"):
        render_product_sheet(tmp_path / "x.png", None, skus=["nope"])


@pytest.mark.parametrize("seed", (0, 5))
def test_long_walls_bow_and_edges_keep_their_shape(seed):
    """bow_mm moves only the long side walls, along y: the middle of each stands
    off its boundary (the vertical edges, the square top edge) by 0.5-1 x
    bow_mm out, or 0.3-0.6 x in; every other vertex, and the mesh, stays."""
    params = {"length_mm": 400, "width_mm": 300, "height_mm": 200, "edge_round_mm": 3.0}
    flat = build_product("carton", "c", dict(params, bow_mm=0.0), np.random.default_rng(seed))
    bowed = build_product("carton", "c", dict(params, bow_mm=4.0), np.random.default_rng(seed))
    assert np.array_equal(flat.mesh.faces, bowed.mesh.faces)
    v0, v1 = flat.mesh.vertices, bowed.mesh.vertices
    np.testing.assert_allclose(v1[:, [0, 2]], v0[:, [0, 2]], atol=1e-9)
    body = np.unique(flat.mesh.faces[flat.part_id == [p.name for p in flat.parts].index("body")])
    walls, rims, mids = [], [], []
    for sgn in (-1, 1):
        y = sgn * v0[body, 1]
        on = body[y > y.max() - 1e-7]                       # the flat wall of the unbowed box
        x, z = v0[on, 0], v0[on, 2]
        mids.append(on[(np.abs(x) < 0.03) & (np.abs(z - z.mean()) < 0.03)])  # the bbox is centred
        rims.append(on[np.abs(x) > np.abs(x).max() - 1e-6])  # its vertical edges' planes
        walls.append(on[(np.abs(x) < np.abs(x).max() - 1e-6) & (z > z.min() + 1e-6) & (z < z.max() - 1e-6)])
        assert len(mids[-1]) and len(rims[-1])
    # fit_pieces maps y by one affine map (the bow widens the bbox): recover it
    # from the two rims, which the bow leaves in place
    ya, yb = v0[rims[0][0], 1], v0[rims[1][0], 1]
    a = (v1[rims[1][0], 1] - v1[rims[0][0], 1]) / (yb - ya)
    b = v1[rims[0][0], 1] - a * ya
    still = np.setdiff1d(np.arange(len(v0)), np.concatenate(walls))
    np.testing.assert_allclose(v1[still, 1], a * v0[still, 1] + b, atol=1e-9)
    for sgn, mid in zip((-1, 1), mids):
        off = sgn * (v1[mid, 1] - (a * v0[mid, 1] + b)).mean()
        assert 0.3 * 4e-3 * 0.85 <= abs(off) <= 4e-3, off


def test_branded_poly_mailer_prints_its_logo_in_a_contrasting_ink(monkeypatch):
    """A branded poly mailer carries its logo across the back panel in an ink
    far from the film colour; an unbranded plain one has no such ink."""
    from simulator.products.base import resolve

    def far_share(branded, art_style, seed):
        monkeypatch.setattr(M, "BRANDED_P", branded)
        rng = np.random.default_rng(seed)
        p = resolve("mailer", M.PARAMS, {"style": "poly", "art_style": art_style}, rng)
        art, rects, _ = M._paint(rng, p, False)
        y0, y1, x0, x1 = M._panel_box(rects[1], art.shape)
        back = art[y0 + 2:y1 - 2, x0 + 2:x1 - 2].astype(float)
        film = np.median(back.reshape(-1, 3), axis=0)
        return (np.abs(back - film).max(-1) > 60).mean()

    for seed in range(4):
        assert 0.003 < far_share(1.0, "shipping", seed) < 0.5, seed
        assert far_share(0.0, "plain", seed) < 0.001, seed
