"""Physics placement: items rest on the tray, free fall, determinism, decomposition."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pybullet as p
import pytest
import trimesh

from damage_ops.product import Part, Product, concatenate, labelled_mesh
from simulator.config.materials import load_materials
from simulator.config.rig import Tray
from simulator.core.errors import PlacementError
from simulator.scene import physics as P

TRAY = Tray(size_m=(0.6, 0.4), rim_height_m=0.025, rim_width_m=0.012, thickness_m=0.02)


# -- test products (until simulator/products lands) ----------------------------------------

def _lm(mesh: trimesh.Trimesh, part: int) -> trimesh.Trimesh:
    return labelled_mesh(mesh.vertices, mesh.faces, part)


def _centred(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mesh.apply_translation(-mesh.bounds.mean(0))
    return mesh


def make_box(sku="box-300x200x50", ext=(0.3, 0.2, 0.05), mass=0.5) -> Product:
    mesh = _lm(trimesh.creation.box(ext), 0)
    return Product(sku=sku, kind="carton", mesh=mesh, parts=(Part("body", "cardboard", True),),
                   mass_kg=mass, dims_mm=tuple(e * 1000 for e in ext))


def make_bottle(sku="bottle-70x230") -> Product:
    """Two parts: body cylinder and a narrower cap on top."""
    body = trimesh.creation.cylinder(radius=0.035, height=0.2, sections=32)
    cap = trimesh.creation.cylinder(radius=0.015, height=0.03, sections=16)
    cap.apply_translation([0, 0, 0.115])
    mesh = concatenate([_lm(body, 0), _lm(cap, 1)])
    mesh.vertices -= mesh.bounds.mean(0)
    return Product(sku=sku, kind="bottle", mesh=mesh,
                   parts=(Part("body", "rigid_plastic", True), Part("cap", "rigid_plastic")),
                   mass_kg=0.4, dims_mm=(70.0, 70.0, 230.0))


def make_u(sku="u-bracket") -> Product:
    """A watertight U-shape: its hull is ~1.9x its volume, so it gets decomposed."""
    a = trimesh.creation.box([0.2, 0.04, 0.08])
    a.apply_translation([0, -0.08, 0])
    b = trimesh.creation.box([0.2, 0.04, 0.08])
    b.apply_translation([0, 0.08, 0])
    c = trimesh.creation.box([0.04, 0.2, 0.08])
    c.apply_translation([-0.08, 0, 0])
    mesh = _centred(trimesh.boolean.union([a, b, c]))
    return Product(sku=sku, kind="mesh", mesh=_lm(mesh, 0), parts=(Part("body", "rigid_plastic"),),
                   mass_kg=0.3, dims_mm=(200.0, 200.0, 80.0))


@pytest.fixture(scope="module")
def mats():
    return load_materials()


@pytest.fixture(scope="module")
def world():
    with P.PhysicsWorld() as w:
        yield w


def world_vertices(product: Product, T: np.ndarray) -> np.ndarray:
    return np.asarray(product.mesh.vertices) @ T[:3, :3].T + T[:3, 3]


def assert_rests_on_tray(product: Product, pl: P.Placement, tray: Tray = TRAY, *, on_floor: bool = True):
    T = pl.T_world_from_item
    assert T.shape == (4, 4) and T.dtype == np.float64
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    assert pl.settled
    assert pl.lin_speed < 0.005 and pl.ang_speed < 0.05, (pl.lin_speed, pl.ang_speed)
    v = world_vertices(product, T)
    assert pl.min_z_m == pytest.approx(v[:, 2].min(), abs=1e-12)
    if on_floor:
        assert abs(pl.min_z_m) < 0.002, f"{product.sku}: lowest vertex at {pl.min_z_m * 1000:.3f} mm"
    sx, sy = tray.size_m
    assert np.abs(v[:, 0]).max() <= sx / 2 + 0.003 and np.abs(v[:, 1]).max() <= sy / 2 + 0.003


# -- conventions ---------------------------------------------------------------------------

def test_quaternion_round_trip_and_pybullet_convention():
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
        np.testing.assert_array_equal(P.quat_wxyz_to_xyzw(P.quat_xyzw_to_wxyz(q)), q)
        R = P.matrix_from_quat_wxyz(q)
        q2 = P.quat_wxyz_from_matrix(R)
        np.testing.assert_allclose(q2, q if q[0] >= 0 else -q, atol=1e-12)
        # Same rotation as pybullet's own matrix for the (x, y, z, w) quaternion.
        xyzw = P.quat_wxyz_to_xyzw(q)
        np.testing.assert_allclose(np.reshape(p.getMatrixFromQuaternion(xyzw.tolist()), (3, 3)), R, atol=1e-12)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, rng.standard_normal(3)
        pos, quat = P.pybullet_pose_from_matrix(T)
        np.testing.assert_allclose(P.matrix_from_pybullet_pose(pos, quat), T, atol=1e-12)


def test_random_rotation_is_proper_and_uniformish():
    rng = np.random.default_rng(1)
    Rs = np.array([P.random_rotation(rng) for _ in range(2000)])
    np.testing.assert_allclose(np.linalg.det(Rs), 1.0, atol=1e-12)
    # The image of z is uniform on the sphere: its mean is ~0 and z-coordinate variance 1/3.
    z = Rs[:, :, 2]
    assert np.abs(z.mean(0)).max() < 0.06
    assert abs(z[:, 2].var() - 1 / 3) < 0.03


def test_import_simulator_does_not_load_pybullet():
    code = "import sys, simulator, damage_ops; assert 'pybullet' not in sys.modules, 'pybullet loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- collision geometry --------------------------------------------------------------------

def test_convex_parts_use_their_hull():
    pieces = P.collision_pieces(make_box())
    assert len(pieces) == 1 and len(pieces[0]) == 8
    assert len(P.collision_pieces(make_bottle())) == 2  # one hull per part


def test_concave_part_is_decomposed_and_cached():
    u = make_u()
    pieces = P.collision_pieces(u)
    assert len(pieces) > 1
    # Pieces stay inside the part's hull (clipped), and cover most of the part.
    lo, hi = u.mesh.bounds
    for pc in pieces:
        assert np.all(pc >= lo - 1e-6) and np.all(pc <= hi + 1e-6)
    vol = sum(trimesh.convex.convex_hull(pc).volume for pc in pieces)
    assert 0.8 * u.mesh.volume < vol < 1.3 * u.mesh.volume


def test_decomposition_cache_returns_same_object():
    u = make_u()
    part = trimesh.Trimesh(u.mesh.vertices, u.mesh.faces, process=False)
    assert P.convex_decomposition(part) is P.convex_decomposition(part.copy())


def test_body_frame_is_com_and_principal_axes():
    b = make_bottle()
    m = P.body_model(b)
    com = b.mesh.center_mass
    np.testing.assert_allclose(m.T_body_from_item[:3, :3] @ com + m.T_body_from_item[:3, 3], 0, atol=1e-12)
    # The bottle's long axis (item z) is the principal axis with the smallest moment.
    axis = m.T_body_from_item[:3, :3] @ [0, 0, 1]
    assert abs(axis[int(np.argmin(m.inertia_diag))]) == pytest.approx(1.0, abs=1e-6)


def test_missing_material_is_an_error(mats):
    prod = make_box()
    prod.parts = (Part("body", "unobtainium"),)
    with pytest.raises(ValueError, match="unobtainium"):
        P.body_model(prod, mats)


# -- physics -------------------------------------------------------------------------------

def test_free_fall_matches_half_g_t_squared():
    """No damping, no contact: z(t) = z0 - g t^2 / 2 (Bullet's semi-implicit Euler is
    exactly z0 - g dt^2 n (n + 1) / 2, which is within g dt t / 2 of it)."""
    box = make_box(ext=(0.1, 0.1, 0.1))
    with P.PhysicsWorld(linear_damping=0.0, angular_damping=0.0) as w:
        w.reset_scene(TRAY)
        model = P.body_model(box)
        T0 = np.eye(4)
        T0[2, 3] = z0 = 1.0
        body = w.add_body(model, T0)
        dt, g = w.timestep, P.GRAVITY_M_S2
        for n in range(1, 91):  # 0.375 s: falls 0.69 m, still 0.25 m above the tray
            w.step()
            z = w.pose(body, model)[2, 3]
            t = n * dt
            assert z == pytest.approx(z0 - g * dt * dt * n * (n + 1) / 2, abs=1e-9)
            assert abs(z - (z0 - 0.5 * g * t * t)) <= 0.5 * g * dt * t + 1e-9
        np.testing.assert_allclose(w.pose(body, model)[:3, :3], np.eye(3), atol=1e-12)
        assert w.speeds(body)[0] == pytest.approx(g * 90 * dt, rel=1e-9)


@pytest.mark.parametrize("make", [make_box, make_bottle, make_u], ids=["box", "bottle", "u"])
def test_single_item_rests_on_tray(world, mats, make):
    prod = make()
    for seed in range(3):
        [pl] = world.settle([prod], TRAY, np.random.default_rng(seed), mats)
        assert_rests_on_tray(prod, pl)
        assert 0 < pl.steps <= world.max_steps


def test_without_materials_uses_defaults(world):
    prod = make_bottle()
    [pl] = world.settle([prod], TRAY, np.random.default_rng(7))
    assert_rests_on_tray(prod, pl)


def test_flat_box_settles_on_large_face(mats):
    """Every rest is on a face (one box axis vertical); the large face wins by far.

    The box is flat (50 / 300 < FLAT_RATIO), so it is dropped near face-down,
    tilted up to 20 degrees; a tilted drop could still leave it on a long side,
    so we ask for a clear majority rather than every drop.
    """
    prod = make_box()
    big = Tray(size_m=(1.0, 0.8), rim_height_m=0.025, rim_width_m=0.012)
    on_large = 0
    with P.PhysicsWorld() as w:
        for seed in range(10):
            for tray in (TRAY, big):
                [pl] = w.settle([prod], tray, np.random.default_rng(seed), mats)
                assert_rests_on_tray(prod, pl, tray)
                vertical = np.abs(pl.T_world_from_item[2, :3])  # world z of the item axes
                assert vertical.max() > np.cos(np.radians(2.0)), f"seed {seed}: box tilted, axes z {vertical}"
                if vertical[2] > np.cos(np.radians(2.0)):
                    on_large += 1
                    v = world_vertices(prod, pl.T_world_from_item)
                    assert v[:, 2].max() == pytest.approx(0.05, abs=0.002)
    assert on_large >= 14, f"only {on_large} of 20 drops ended on the large face"


def test_flat_items_drop_near_face_down_and_big_ones_stay_on_the_tray(mats):
    """A 344 x 276 x 25 mm mailer-like slab on the 600 x 400 mm booth tray: in a
    uniformly random orientation it toppled onto the rim in most drops; dropped
    near face-down it lands on the floor, lying flat, on the first or second try."""
    rng = np.random.default_rng(0)
    slab = make_box("slab-344x276x25", (0.344, 0.276, 0.025), mass=0.3)
    pts = np.asarray(slab.mesh.vertices)
    assert P.is_flat(pts) and not P.is_flat(np.asarray(make_bottle().mesh.vertices))
    for _ in range(50):
        R = P.flat_drop_rotation(rng, pts)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) == pytest.approx(1.0)
        up = R @ np.array([0.0, 0.0, 1.0])  # the slab's thin axis, in the world
        assert abs(up[2]) >= np.cos(np.radians(P.FLAT_TILT_DEG)) - 1e-9
    with P.PhysicsWorld() as w:
        for seed in range(8):
            [pl] = w.settle([slab], TRAY, np.random.default_rng(seed), mats, max_attempts=2)
            assert_rests_on_tray(slab, pl)
            assert abs(pl.T_world_from_item[2, 2]) > np.cos(np.radians(2.0))  # lying flat


def test_determinism_same_seed_and_reused_world(mats):
    prods = [make_box("a", (0.15, 0.1, 0.06)), make_bottle(), make_u()]
    with P.PhysicsWorld() as w:
        first = w.settle(prods, TRAY, np.random.default_rng(42), mats)
        again = w.settle(prods, TRAY, np.random.default_rng(42), mats)
        w.settle([make_box()], TRAY, np.random.default_rng(5), mats)  # something else in between
        after = w.settle(prods, TRAY, np.random.default_rng(42), mats)
        other = w.settle(prods, TRAY, np.random.default_rng(43), mats)
    fresh = P.settle(prods, TRAY, np.random.default_rng(42), mats)
    for run in (again, after, fresh):
        for a, b in zip(first, run):
            np.testing.assert_array_equal(a.T_world_from_item, b.T_world_from_item)
            assert (a.steps, a.lin_speed, a.ang_speed, a.min_z_m) == (b.steps, b.lin_speed, b.ang_speed, b.min_z_m)
    assert not np.array_equal(first[0].T_world_from_item, other[0].T_world_from_item)


def test_three_items_rest_without_interpenetration(world, mats):
    prods = [make_box("a", (0.15, 0.1, 0.06)), make_bottle(), make_u()]
    for seed in range(3):
        pls = world.settle(prods, TRAY, np.random.default_rng(seed), mats)
        assert len(pls) == 3
        for prod, pl in zip(prods, pls):
            assert_rests_on_tray(prod, pl, on_floor=False)
            assert pl.min_z_m > -0.002
        # Re-create the scene at the settled poses and measure overlaps with the solver's shapes.
        models = [P.body_model(pr, mats) for pr in prods]
        world.reset_scene(TRAY, mats)
        bodies = [world.add_body(m, pl.T_world_from_item) for m, pl in zip(models, pls)]
        p.performCollisionDetection(physicsClientId=world.client)
        for i in range(3):
            for j in range(i + 1, 3):
                pts = p.getClosestPoints(bodies[i], bodies[j], 0.0, physicsClientId=world.client)
                depth = min((c[8] for c in pts), default=0.0)
                assert depth > -0.003, f"seed {seed}: items {i} and {j} overlap by {-depth * 1000:.2f} mm"


def test_item_that_cannot_fit_raises_naming_sku(mats):
    rod = make_box("rod-1500", ext=(1.5, 0.05, 0.05), mass=1.0)
    tray = Tray(size_m=(0.6, 0.6), rim_height_m=0.03, rim_width_m=0.01)
    with pytest.raises(PlacementError, match="rod-1500"):
        P.settle([rod], tray, np.random.default_rng(0), mats, max_attempts=3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="timestep"):
        P.PhysicsWorld(timestep=0)
    with P.PhysicsWorld() as w, pytest.raises(ValueError, match="max_attempts"):
        w.settle([make_box()], TRAY, np.random.default_rng(0), max_attempts=0)


def test_settle_leaves_one_scene_in_the_world_and_its_shape_files(mats):
    """A long run must not accumulate physics state: after each settle the world
    holds the tray and this scene's items only, and the temporary .obj shape files
    are this scene's (pybullet's file cache is off, so nothing keeps the old ones)."""
    from pathlib import Path

    with P.PhysicsWorld() as w:
        scenes = [[make_box("a", (0.15, 0.1, 0.06)), make_bottle()], [make_u()], [make_box("b", (0.1, 0.1, 0.1))]]
        for k, prods in enumerate(scenes):
            w.settle(prods, TRAY, np.random.default_rng(k), mats)
            assert p.getNumBodies(physicsClientId=w.client) == 1 + len(prods)
            files = {f.name for f in Path(w._tmp.name).glob("*.obj")}
            assert files == {P.body_model(pr, mats).obj_name for pr in prods}

