"""damagesim simulator: products, booth rig, physics placement, rendering, writers, CLI.

Importing this package loads no OpenGL, pybullet or torch: those are imported
inside the modules that use them (render, physics, harness).
"""
__version__ = "0.1.0"
