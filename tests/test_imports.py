import subprocess
import sys


def test_packages_import_without_gl_physics_or_torch():
    code = (
        "import sys, damage_ops, simulator, harness, simulator.config.rig, simulator.config.catalog, simulator.products, "
        "simulator.generate.run, simulator.generate.capture, simulator.dataset.writers, simulator.tools.designer, "
        "simulator.tools.gallery, simulator.dataset.reader, simulator.cli, harness.cli, harness.data, harness.real\n"
        "bad = [m for m in ('OpenGL', 'pyrender', 'pybullet', 'torch') if m in sys.modules]\n"
        "print(','.join(bad))\n"
        "import os; print(os.environ.get('PYOPENGL_PLATFORM', ''))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYOPENGL_PLATFORM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    heavy, platform = out.stdout.splitlines()
    assert heavy == "", f"import pulled in {heavy}"
    assert platform == "", "importing the packages must not set PYOPENGL_PLATFORM"
