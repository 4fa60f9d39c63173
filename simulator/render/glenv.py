"""Choose the OpenGL platform for headless rendering. Call from entry points only,
before anything imports OpenGL (pyrender, simulator.render.renderer)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

PLATFORMS = ("egl", "osmesa")


def _egl_works() -> bool:
    """True when libEGL loads and a display initialises (Mesa llvmpipe on a CPU
    machine, the NVIDIA driver on a GPU one). Uses ctypes, not PyOpenGL, so the
    platform can still be chosen afterwards."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return False
    # the way pyrender opens it: the first EGL device through EGL_EXT_platform_device
    # (no X server needed); fall back to the default display
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    egl.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    egl.eglTerminate.argtypes = [ctypes.c_void_p]
    dpy = None
    q = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
    g = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if q and g:
        query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int))(q)
        get_dpy = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)(g)
        devices = (ctypes.c_void_p * 8)()
        n = ctypes.c_int()
        if query(8, devices, ctypes.byref(n)) and n.value > 0:
            dpy = get_dpy(0x313F, devices[0], None)  # EGL_PLATFORM_DEVICE_EXT
    if not dpy:
        egl.eglGetDisplay.restype = ctypes.c_void_p
        egl.eglGetDisplay.argtypes = [ctypes.c_void_p]
        dpy = egl.eglGetDisplay(None)
    if not dpy:
        return False
    major, minor = ctypes.c_int(), ctypes.c_int()
    ok = bool(egl.eglInitialize(dpy, ctypes.byref(major), ctypes.byref(minor)))
    if ok:
        egl.eglTerminate(dpy)
    return ok


def configure(platform: str | None = None) -> str:
    """Set PYOPENGL_PLATFORM (unless already set) and return it.

    platform: "egl", "osmesa" or None = auto (EGL if it initialises, else OSMesa)."""
    if "PYOPENGL_PLATFORM" in os.environ and platform is None:
        return os.environ["PYOPENGL_PLATFORM"]
    if platform is None:
        platform = "egl" if _egl_works() else "osmesa"
    if platform not in PLATFORMS:
        raise ValueError(f"unknown GL platform {platform!r}; expected one of {PLATFORMS}")
    os.environ.setdefault("PYOPENGL_PLATFORM", platform)
    return os.environ["PYOPENGL_PLATFORM"]
