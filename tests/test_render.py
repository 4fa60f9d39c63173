"""Rendering invariants: depth is metric and lands on the mesh, projections agree
with the rig metadata pixel for pixel, and labels are exact."""
import numpy as np
import pytest
import trimesh
from conftest import box_product

from simulator.config.rig import load_rig
from simulator.core.conventions import project, unproject
from simulator.dataset.writers import depth_to_png


@pytest.fixture(scope="module")
def default_renderer(gl, materials):
    from simulator.render.renderer import BoothRenderer

    rig = load_rig()
    with BoothRenderer(rig, materials) as r:
        yield r


def _pose(rz_deg=25.0, xyz=(0.03, -0.02, 0.05)):
    T = trimesh.transformations.rotation_matrix(np.radians(rz_deg), [0, 0, 1])
    T[:3, 3] = xyz
    return T


def test_depth_unprojects_onto_the_mesh_surface(default_renderer):
    from simulator.scene.scene import SceneItem

    prod = box_product((0.2, 0.15, 0.1))
    T = _pose(xyz=(0.03, -0.02, 0.05))
    frames = default_renderer.render([SceneItem(prod, T, 1)])
    world_mesh = prod.mesh.copy()
    world_mesh.apply_transform(T)
    for cam in default_renderer.rig.cameras:
        f = frames[cam.name]
        item = f.instance == 1
        assert item.sum() > 500, f"{cam.name} barely sees the item"
        for depth, tol in ((f.depth_m.astype(np.float64), 1e-3), (depth_to_png(f.depth_m) / 1000.0, 1e-3)):
            d = np.where(item, depth, 0.0)
            pts, _ = unproject(d, cam.K, cam.T_world_from_cam, cam.distortion)
            sel = np.random.default_rng(0).choice(len(pts), size=min(3000, len(pts)), replace=False)
            _, dist, _ = trimesh.proximity.closest_point(world_mesh, pts[sel])
            assert np.percentile(dist, 99.5) < tol, f"{cam.name}: max {dist.max() * 1000:.2f} mm"
        # tray floor pixels land on z = 0
        floor = (f.instance == 0) & (f.depth_m > 0)
        pts, _ = unproject(np.where(floor, f.depth_m, 0.0).astype(np.float64), cam.K, cam.T_world_from_cam, cam.distortion)
        inner = (np.abs(pts[:, 0]) < 0.28) & (np.abs(pts[:, 1]) < 0.18)
        assert inner.sum() > 1000
        assert np.abs(pts[inner, 2]).max() < 1e-3


def test_known_point_projects_where_the_renderer_draws_it(default_renderer):
    """A 10 mm sphere at a known world point: its mask centroid in every camera is
    the point's projection through K and T_world_from_cam (no half-pixel shift)."""
    from damage_ops import Part, Product, labelled_mesh
    from simulator.scene.scene import SceneItem

    s = trimesh.creation.icosphere(subdivisions=4, radius=0.01)
    prod = Product(sku="marker", kind="mesh", mesh=labelled_mesh(s.vertices, s.faces, 0),
                   parts=(Part("body", "rigid_plastic"),))
    for p in ([0.0, 0.0, 0.05], [0.117, -0.083, 0.021], [-0.2, 0.12, 0.1]):
        T = np.eye(4)
        T[:3, 3] = p
        frames = default_renderer.render([SceneItem(prod, T, 1)], want_rgb=False)
        for cam in default_renderer.rig.cameras:
            m = frames[cam.name].instance == 1
            assert m.sum() >= 4, cam.name
            v, u = np.nonzero(m)
            uv, _ = project(cam.K, cam.T_world_from_cam, np.array([p]), cam.distortion)
            err = np.hypot(u.mean() - uv[0, 0], v.mean() - uv[0, 1])
            # through a distorted lens the wide pinhole render is resampled
            # nearest-neighbour (exact label values), which locally shifts a small
            # blob by a whole pixel: positions are good to half a pixel
            tol = 0.55 if any(cam.distortion) else 0.2
            assert err < tol, f"{cam.name} at {p}: centroid off by {err:.3f} px"


def test_labels_are_exact_and_damage_lies_inside_items(default_renderer):
    from simulator.scene.scene import SceneItem

    prod_a = box_product((0.2, 0.15, 0.1), damaged_faces=[0, 1, 4, 5, 8, 9], sku="a")
    prod_b = box_product((0.12, 0.1, 0.08), damaged_faces=[2, 3], sku="b")
    frames = default_renderer.render([SceneItem(prod_a, _pose(10, (-0.12, 0.0, 0.05)), 1, 0),
                                      SceneItem(prod_b, _pose(-30, (0.16, 0.05, 0.04)), 2, 1)])
    seen_damage = set()
    for name, f in frames.items():
        assert set(np.unique(f.instance)) <= {0, 1, 2}
        assert set(np.unique(f.part)) <= {0, 1, 2}  # background, body, flap
        assert set(np.unique(f.damage_category)) <= {0, 1}
        assert set(np.unique(f.damage_instance)) <= {0, 1, 2}
        item = f.instance > 0
        assert np.array_equal(f.part > 0, item)
        assert not ((f.damage_instance > 0) & ~item).any(), name
        assert np.array_equal(f.damage_category > 0, f.damage_instance > 0)
        # damage instance k belongs to the item that carries it
        assert (f.instance[f.damage_instance == 1] == 1).all() and (f.instance[f.damage_instance == 2] == 2).all()
        # every item pixel has a depth, and the depth comes from the same surface as the labels
        assert (f.depth_m[item] > 0).all()
        seen_damage |= set(np.unique(f.damage_instance)) - {0}
    assert seen_damage == {1, 2}


def test_label_images_have_no_blended_edges(default_renderer):
    """Label values only come from the set of drawn labels, even along edges, and
    the RGB pass (MSAA) does blend there: proof the passes differ."""
    from simulator.scene.scene import SceneItem

    prod = box_product((0.2, 0.15, 0.1), damaged_faces=[0, 1])
    f = default_renderer.render([SceneItem(prod, _pose(33, (0, 0, 0.05)), 1)], cameras=["rgb_front"])["rgb_front"]
    assert set(np.unique(f.instance)) == {0, 1}
    edge = np.zeros_like(f.instance, bool)
    edge[:, 1:] = f.instance[:, 1:] != f.instance[:, :-1]
    assert edge.sum() > 100


def test_gl_objects_of_earlier_captures_are_freed(default_renderer, monkeypatch):
    """A long run must not accumulate GL buffers or textures: after each render,
    every pyrender primitive and texture that was ever uploaded and still holds
    its GL object belongs to the scene just drawn (pyrender frees the others when
    the next scene is drawn)."""
    from dataclasses import replace

    import pyrender

    from simulator.scene.scene import SceneItem

    uploaded = []  # strong references: a freed Python object would hide a leaked GL object
    for cls in (pyrender.Primitive, pyrender.Texture):
        def add(self, _orig=cls._add_to_context):
            uploaded.append(self)
            return _orig(self)
        monkeypatch.setattr(cls, "_add_to_context", add)
    r = default_renderer
    inner = r._r._renderer
    art = np.full((16, 16, 3), 200, np.uint8)
    textured = box_product((0.2, 0.15, 0.1), damaged_faces=[0, 1], sku="a")
    textured = replace(textured, artwork=art, parts=tuple(replace(pt, printed=True) for pt in textured.parts))
    scenes = [[SceneItem(textured, _pose(), 1, 0),
               SceneItem(box_product((0.1, 0.1, 0.08), sku="b"), _pose(-30, (0.16, 0.05, 0.04)), 2, 1)],
              [SceneItem(box_product((0.12, 0.1, 0.08), sku="c"), _pose(40), 1, 0)]]
    for k, items in enumerate(scenes + scenes):
        r.render(items, cameras=[r.rig.cameras[0].name])
        live = [o for o in uploaded if o._in_context()]
        drawn = {id(pr) for m in inner._meshes for pr in m.primitives}
        drawn |= {id(t) for t in inner._mesh_textures | inner._shadow_textures}
        stale = [o for o in live if id(o) not in drawn]
        assert not stale, f"render {k}: {len(stale)} GL objects of earlier scenes not freed"
        art_live = [o for o in live if isinstance(o, pyrender.Texture) and o not in inner._shadow_textures]
        assert bool(art_live) == (k % 2 == 0)  # the textured scene's artwork, freed after it
