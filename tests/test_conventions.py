import numpy as np
from scipy.spatial.transform import Rotation

from simulator.core.conventions import (
    cv_to_gl,
    gl_to_cv,
    intrinsics_matrix,
    look_at,
    m_to_mm,
    mm_to_m,
    project,
    unproject,
)


def _rand_pose(rng):
    q = rng.normal(size=4)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()
    T[:3, 3] = rng.normal(size=3)
    return T


def test_cv_gl_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(10):
        T = _rand_pose(rng)
        assert np.allclose(gl_to_cv(cv_to_gl(T)), T)
        G = cv_to_gl(T)
        # OpenGL cameras look along -z: the cv forward axis is the negated gl z axis
        assert np.allclose(G[:3, 2], -T[:3, 2]) and np.allclose(G[:3, 1], -T[:3, 1])


def test_mm_round_trip():
    x = np.array([0.0, 1.5, -2000.25])
    assert np.allclose(m_to_mm(mm_to_m(x)), x)


def test_look_at_axes():
    T = look_at([0, -1, 1], [0, 0, 0], up=[0, 0, 1])
    R = T[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    fwd = np.array([0, 1, -1]) / np.sqrt(2)
    assert np.allclose(R[:, 2], fwd)
    assert R[:, 1] @ np.array([0, 0, 1]) < 0  # image down points away from world up


def test_project_unproject_round_trip():
    rng = np.random.default_rng(1)
    K = intrinsics_matrix(600, 610, 320.3, 239.7)
    T = look_at([0.3, -0.8, 0.9], [0, 0, 0])
    uv, z = project(K, T, np.zeros((1, 3)))
    assert z[0] > 0
    depth = np.zeros((480, 640))
    u, v = rng.integers(0, 640, 50), rng.integers(0, 480, 50)
    depth[v, u] = rng.uniform(0.5, 2.0, 50)
    pts, pix = unproject(depth, K, T)
    uv2, z2 = project(K, T, pts)
    assert np.allclose(uv2, pix, atol=1e-9)
    assert np.allclose(z2, depth[pix[:, 1], pix[:, 0]])


def test_distortion_round_trip_within_a_tenth_of_a_pixel():
    from simulator.core.conventions import distort_normalized, undistort_normalized

    K = intrinsics_matrix(1500, 1500, 639.5, 479.5)
    rng = np.random.default_rng(3)
    u, v = rng.uniform(0, 1280, 2000), rng.uniform(0, 960, 2000)
    for dist in ([-0.12, 0.08, 0, 0, 0], [0.1, -0.05, 0.001, -0.002, 0.01], [-0.3, 0.12, 0.0005, 0.0005, -0.02]):
        xu, yu = undistort_normalized((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], dist)
        xd, yd = distort_normalized(xu, yu, dist)
        err = np.hypot(xd * K[0, 0] + K[0, 2] - u, yd * K[1, 1] + K[1, 2] - v)
        assert err.max() < 0.1, (dist, err.max())
