"""pyrender offscreen rendering of every booth camera, with exact label images.

Two passes per camera:

- colour pass: PBR materials, artwork textures, booth lights, 4x MSAA -> RGB;
- label pass: pyrender's SEG mode (MSAA off, no lighting, no blending): every
  (item, part, damage) face group is drawn in a unique flat colour that encodes
  a code; the codes decode into instance / part / damage-category /
  damage-instance images, and the same pass gives exact metric depth (a pixel's
  depth and labels always come from the same surface).

A depth-only camera (modality ``depth``) has no colour pass: its depth and
labels come from the label pass alone, and its ``rgb`` is the active-IR
amplitude image its own emitter would give (:func:`ir_amplitude`: the surface's
mean albedo x |cos incidence| x inverse square of range), shaded from the label
pass at no extra GL cost. Except a ToF camera: its dark-surface dropouts read
the colour image (dark print), so it keeps its colour pass and colour rgb
(:func:`depth_only`).

Set PYOPENGL_PLATFORM before importing this module (entry points call
:func:`simulator.render.glenv.configure`). EGL works on the CPU through Mesa llvmpipe
and on NVIDIA GPUs; OSMesa is the fallback.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyrender
import trimesh

from damage_ops import FINISHES, Product
from damage_ops.taxonomy import CATEGORY_IDS
from simulator.config.materials import Material
from simulator.config.rig import BoothRig, Camera
from simulator.core.conventions import cv_principal_point_to_gl, cv_to_gl, look_at, undistort_normalized
from simulator.products.surface import TILES
from simulator.products.surface import tile as surface_tile
from simulator.render.sensors import _incidence_cos, _luts, _srgb8_to_linear64
from simulator.scene import backgrounds
from simulator.scene.draws import jitter_materials
from simulator.scene.scene import Draws, SceneItem

#: label code 0 = nothing (no return), 1 = the booth/tray, >= 2 = item face groups
CODE_NONE, CODE_TRAY = 0, 1
#: stage timings kept per stage (BoothRenderer.timings)
TIMINGS_KEPT = 4096
#: per-corner normals bend only up to this angle from the face normal
_SMOOTH_COS = np.cos(np.radians(35.0))


@dataclass
class Frame:
    """What one camera sees. Shapes are (h, w) or (h, w, 3).

    rgb: uint8 sRGB; depth_m: float32 z-depth in meters along the optical axis
    (OpenCV), 0 = no return; instance: uint16 (0 = no item); part: uint8 global
    part id; damage_category: uint8 (0 = none); damage_instance: uint16
    capture-global damage id (0 = none).
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    instance: np.ndarray
    part: np.ndarray
    damage_category: np.ndarray
    damage_instance: np.ndarray
    depth_gt: np.ndarray | None = None  # noise-free depth when a sensor model altered depth_m
    #: depth-only cameras (no colour pass): (h, w) float32 linear reflectance of the
    #: surface seen (its material's mean albedo, 0 = no return) and |cos| of the
    #: incidence angle, both from the label pass; the sensor models reuse them
    reflectance: np.ndarray | None = None
    incidence_cos: np.ndarray | None = None


@dataclass(frozen=True)
class LensRemap:
    """How a distorted camera is rendered: a wider pinhole view (K_wide, size_wide)
    is remapped to the distorted image. For every output pixel: ``nearest`` (flat
    index into the wide image, for labels and depth: exact values, never blended),
    and ``idx4``/``w4`` (4 flat indices and bilinear weights, for RGB)."""

    K_wide: np.ndarray
    size_wide: tuple[int, int]
    map_x: np.ndarray  # (h, w) float32 wide-image column of each output pixel
    map_y: np.ndarray  # (h, w) float32 wide-image row

    @classmethod
    def for_camera(cls, cam: Camera, margin: int = 2) -> "LensRemap":
        """The remap of ``cam``: undistort every output pixel to find the extent of the
        pinhole view that covers the distorted image, plus ``margin`` pixels on each
        side. Raises ValueError when the distortion is so strong that the wide render
        would exceed 16384 x 16384 / 4 pixels."""
        w, h = cam.resolution
        K = cam.K
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        xu, yu = undistort_normalized((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], cam.distortion)
        fx, fy = K[0, 0], K[1, 1]
        x0, x1, y0, y1 = xu.min(), xu.max(), yu.min(), yu.max()
        cxw, cyw = -fx * x0 + margin, -fy * y0 + margin
        ww, hw = int(np.ceil(fx * (x1 - x0))) + 2 * margin + 1, int(np.ceil(fy * (y1 - y0))) + 2 * margin + 1
        if ww * hw > 4 * 16384 * 16384 // 16:
            raise ValueError(f"camera {cam.name}: distortion {cam.distortion} needs a {ww}x{hw} render; too large")
        Kw = np.array([[fx, 0, cxw], [0, fy, cyw], [0, 0, 1.0]])
        return cls(Kw, (ww, hw), (fx * xu + cxw).astype(np.float32), (fy * yu + cyw).astype(np.float32))

    def labels(self, img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Nearest-neighbour remap: label ids and depths are copied, never blended."""
        import cv2

        if img.dtype in (np.uint8, np.uint16, np.float32):
            return cv2.remap(img, self.map_x, self.map_y, cv2.INTER_NEAREST)
        idx = np.rint(self.map_y).astype(np.int64) * img.shape[1] + np.rint(self.map_x).astype(np.int64)
        return img.reshape(-1)[idx]

    def rgb(self, img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Bilinear remap of colour (what a lens does to a continuous image)."""
        import cv2

        return cv2.remap(np.ascontiguousarray(img), self.map_x, self.map_y, cv2.INTER_LINEAR)


def code_to_color(code: int) -> np.ndarray:
    """Label code (< 2**24) -> (3,) float64 flat colour of the label pass (R = bits
    0-7, G = 8-15, B = 16-23; :func:`decode_codes` inverts it)."""
    return np.array([code & 255, (code >> 8) & 255, (code >> 16) & 255], dtype=np.float64)


def decode_codes(seg: np.ndarray) -> np.ndarray:
    """(h, w, 3 or 4) uint8 label-pass colours -> (h, w) int64 codes."""
    if seg.shape[-1] == 4 and seg.flags.c_contiguous:
        return (seg.view(np.uint32)[..., 0] & 0xFFFFFF).astype(np.intp)  # little-endian RGBA -> R | G<<8 | B<<16
    s = seg.astype(np.int64)
    return s[..., 0] | (s[..., 1] << 8) | (s[..., 2] << 16)


def corner_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """(n, 3, 3) per face-corner normals: the angle-weighted normal of the faces that
    share the vertex and the face's (part, damage) label, where it is within 35
    degrees of the face normal, else the face normal (keeps box edges crisp).

    Angle weights (not area weights) make the normal independent of how a flat
    region is tessellated, so refining a mesh around a damage leaves the shading
    of the untouched surface exactly as it was.

    Smoothing within a label only keeps a damage from tilting the shading of the
    intact faces around it (and vice versa): outside the labelled region a
    damaged item shades exactly like its pristine counterfactual."""
    F = np.asarray(mesh.faces)
    fn = mesh.face_normals
    fa = mesh.face_attributes
    group = fa["part_id"].astype(np.int64) * (int(fa["damage_id"].max()) + 1) + fa["damage_id"].astype(np.int64) \
        if "part_id" in fa and "damage_id" in fa else np.zeros(len(F), np.int64)
    key = F.astype(np.int64) * (int(group.max()) + 1) + group[:, None]  # (n, 3) vertex-in-group ids
    uniq, inv = np.unique(key.ravel(), return_inverse=True)
    w = (fn[:, None, :] * mesh.face_angles[:, :, None]).reshape(-1, 3)
    acc = np.zeros((len(uniq), 3))
    np.add.at(acc, inv, w)
    vn = acc[inv].reshape(len(F), 3, 3)
    norm = np.linalg.norm(vn, axis=2, keepdims=True)
    vn = np.where(norm > 0, vn / np.maximum(norm, 1e-20), fn[:, None, :])
    dots = np.einsum("nij,nj->ni", vn, fn)
    out = np.where((dots > _SMOOTH_COS)[..., None], vn, fn[:, None, :])
    return out.astype(np.float32)


#: surface-finish overrides (damage_ops.FINISHES): colour multiplier or absolute
#: colour (linear RGB), roughness, metallic, whether the part's artwork (and its
#: normal map) stays visible, and an optional surface tile
#: (:data:`simulator.products.surface.TILES`) mapped by projected position:
#: - ``core``: the exposed fluted core at cuts, tears and crushed edges: light
#:   kraft with wavy flute stripes 8 mm apart and their relief (tile ``core``);
#: - ``inner_liner``: the inside face of the board (an opened box, a turned-back
#:   flap): lighter, greyer kraft with fibre and faint flutes (tile ``inner_liner``).
#: Ops set them with ``damage_ops._opkit.paint(mesh, faces, tint, finish=...)``.
FINISH_LOOK = {
    "liquid": {"mul": 0.6, "roughness": 0.05, "metallic": 0.0, "texture": True},
    "powder": {"color": (0.86, 0.84, 0.80), "roughness": 1.0, "metallic": 0.0, "texture": False},
    "interior": {"color": (0.30, 0.22, 0.14), "roughness": 0.95, "metallic": 0.0, "texture": False},
    "scuffed": {"mul": 1.0, "roughness": 1.0, "metallic": 0.0, "texture": True},
    "core": {"color": (0.62, 0.42, 0.22), "roughness": 0.95, "metallic": 0.0, "texture": False, "tile": "core"},
    "inner_liner": {"color": (0.62, 0.46, 0.30), "roughness": 0.9, "metallic": 0.0, "texture": False,
                    "tile": "inner_liner"},
}
#: textures kept uploaded per renderer (artwork, normal maps, tiles of a capture)
TEXTURES_KEPT = 16


def _pbr(material: Material, texture: np.ndarray | None, finish: str = "base",
         textures: dict | None = None, normal: np.ndarray | None = None,
         tile: str | None = None) -> pyrender.MetallicRoughnessMaterial:
    """PBR material of one (part material, finish). texture: the artwork (sRGB
    (H, W, 3) uint8, None = untextured); normal: the product's normal map in the
    artwork's layout; tile: a surface tile name used when no artwork shows (the
    finish's own tile wins over the material's). Base colours are linear RGB;
    textures are sRGB and decoded by pyrender's shader."""
    color, rough, metal, alpha = list(material.color), material.roughness, material.metallic, material.alpha
    if finish != "base":
        look = FINISH_LOOK[finish]
        if "color" in look:
            color = list(look["color"])
        else:
            color = [c * look["mul"] for c in color]
        rough, metal = look["roughness"], look["metallic"]
        if not look["texture"]:
            texture = normal = None
        if finish == "liquid":
            normal = None  # a wet film is smooth
        tile = look.get("tile", tile)
        if finish in ("interior", "powder", "core", "inner_liner"):
            alpha = 1.0
    base = color + [alpha]
    kw = {}
    cache = textures if textures is not None else {}
    if texture is not None:
        kw["baseColorTexture"] = _texture(texture, cache)
        mul = FINISH_LOOK[finish]["mul"] if finish != "base" else 1.0  # artwork kept: only the multiplier
        base = [mul, mul, mul, alpha]
        if normal is not None:
            kw["normalTexture"] = _texture(normal, cache)
    elif tile is not None:

        tc, tn = surface_tile(tile)
        if tc is not None:
            kw["baseColorTexture"] = _texture(tc, cache)
        kw["normalTexture"] = _texture(tn, cache)
    return pyrender.MetallicRoughnessMaterial(
        baseColorFactor=base, metallicFactor=metal, roughnessFactor=rough,
        alphaMode="BLEND" if alpha < 1.0 else "OPAQUE", doubleSided=alpha < 1.0, **kw,
    )


def _texture(img: np.ndarray, cache: dict) -> pyrender.Texture:
    """One pyrender Texture per array (same SKU -> same upload object).
    ``cache`` belongs to one renderer: a texture lives in one GL context."""
    hit = cache.get(id(img))
    if hit is not None and hit[0] is img:
        return hit[1]
    if len(cache) >= TEXTURES_KEPT:  # a capture needs a few; pyrender frees GL textures no scene uses
        cache.pop(next(iter(cache)))
    # upload as RGBA: an RGB row whose byte length is not a multiple of 4 breaks
    # GL's default 4-byte unpack alignment and reads past the row (garbage texels)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    tex = pyrender.Texture(source=rgba, source_channels="RGBA")
    cache[id(img)] = (img, tex)
    return tex


def projected_uv(tri: np.ndarray, tile_mm: float) -> np.ndarray:
    """(n, 3, 2) float32 tile coordinates of triangles (n, 3, 3) meters: each face
    is projected along the axis its normal is closest to, with (u, v, normal)
    right-handed (so a normal map's relief keeps its sign), ``tile_mm`` per repeat."""
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ax = np.abs(n).argmax(1)
    sgn = np.where(n[np.arange(len(n)), ax] >= 0, 1.0, -1.0)[:, None]
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    u = np.where((ax == 0)[:, None], sgn * y, np.where((ax == 1)[:, None], -sgn * x, sgn * x))
    v = np.where((ax == 2)[:, None], y, z)
    return (np.stack([u, v], -1) * (1000.0 / tile_mm)).astype(np.float32)


def visual_mesh(product: Product, materials: dict[str, Material], mesh: trimesh.Trimesh | None = None,
                textures: dict | None = None) -> pyrender.Mesh:
    """One pyrender primitive per (part, finish), unmerged so face-corner uv can
    have seams; the ``tint`` face attribute becomes a per-vertex colour multiplier.
    Printed parts show the artwork and the product's normal map through their uv;
    other parts (and the ``core`` / ``inner_liner`` finishes) show their surface
    tile through :func:`projected_uv`.

    mesh: draw this labelled mesh with the product's tables (a satellite) instead
    of ``product.mesh``."""

    m = product.mesh if mesh is None else mesh
    fa = m.face_attributes
    normals = corner_normals(m)
    tri = m.vertices[m.faces].astype(np.float32)
    finish = fa.get("finish")
    finish = np.zeros(len(m.faces), np.int64) if finish is None else finish.astype(np.int64)
    tint = fa.get("tint")
    key = fa["part_id"].astype(np.int64) * len(FINISHES) + finish
    prims = []
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        part, fin = product.parts[int(k) // len(FINISHES)], FINISHES[int(k) % len(FINISHES)]
        material = materials[part.material]
        tex = product.artwork if part.printed and product.artwork is not None else None
        nmap = product.normal_map if tex is not None else None
        tile = material.pattern
        mat = _pbr(material, tex, fin, textures, normal=nmap, tile=tile)
        colors = None
        if tint is not None and not np.all(tint[sel] == 1.0):
            c = np.repeat(tint[sel], 3, axis=0).astype(np.float32)
            colors = np.concatenate([c, np.ones((len(c), 1), np.float32)], axis=1)
        uv = None
        if mat.baseColorTexture is not None or mat.normalTexture is not None:
            shown = tex if fin == "base" or FINISH_LOOK[fin]["texture"] else None
            if shown is not None:
                uv = fa["uv"][sel].reshape(-1, 2)
            else:
                name = FINISH_LOOK[fin].get("tile", tile) if fin != "base" else tile
                uv = projected_uv(tri[sel].astype(np.float64), TILES[name][0]).reshape(-1, 2)
        prims.append(pyrender.Primitive(
            positions=tri[sel].reshape(-1, 3),
            normals=normals[sel].reshape(-1, 3),
            texcoord_0=uv,
            color_0=colors,
            material=mat,
            mode=pyrender.constants.GLTF.TRIANGLES,
        ))
    return pyrender.Mesh(primitives=prims)


def label_groups(product: Product, instance_id: int, damage_offset: int, mesh: trimesh.Trimesh | None = None):
    """Split an item's faces (or a satellite's, with ``mesh``) by (part, damage) label.

    Returns a list of (face indices, (instance, global part id, damage category id,
    damage instance id))."""
    m = product.mesh if mesh is None else mesh
    pid = m.face_attributes["part_id"].astype(np.int64)
    did = m.face_attributes["damage_id"].astype(np.int64)
    key = pid * (len(product.damages) + 1) + did
    out = []
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        p, d = int(pid[sel[0]]), int(did[sel[0]])
        cat = CATEGORY_IDS[product.damages[d - 1].category] if d else 0
        out.append((sel, (instance_id, product.parts[p].global_id, cat, damage_offset + d if d else 0)))
    return out


def _mean_albedo(color) -> float:
    """Mean of a linear RGB colour: the grey reflectance an IR emitter sees."""
    return float(np.mean(np.asarray(color, dtype=np.float64)[:3]))


def group_albedo(product: Product, materials: dict[str, Material], faces: np.ndarray,
                 mesh: trimesh.Trimesh | None = None, artwork_albedo: float | None = None) -> float:
    """Linear grey reflectance of one label group (faces of one part): the part's
    material colour, or the mean of the artwork (linear) on a printed part."""
    m = product.mesh if mesh is None else mesh
    part = product.parts[int(m.face_attributes["part_id"][faces[0]])]
    if part.printed and artwork_albedo is not None:
        return artwork_albedo
    return _mean_albedo(materials[part.material].color)


def _artwork_albedo(img: np.ndarray | None, cache: dict) -> float | None:
    """Mean linear value of an sRGB artwork (cached per array)."""
    if img is None:
        return None
    hit = cache.get(id(img))
    if hit is not None and hit[0] is img:
        return hit[1]

    v = float(_srgb8_to_linear64()[img[::4, ::4]].mean())
    if len(cache) >= TEXTURES_KEPT:
        cache.pop(next(iter(cache)))
    cache[id(img)] = (img, v)
    return v


def depth_only(cam: Camera) -> bool:
    """Whether a camera is rendered without a colour pass: modality ``depth`` and
    a depth model that never reads the colour image (ToF's dark dropouts do)."""
    sensor = getattr(cam, "sensor", None)
    return cam.modality == "depth" and not (sensor is not None and sensor.depth.model == "tof")


def ir_amplitude(depth_m: np.ndarray, cos_incidence: np.ndarray, reflectance: np.ndarray,
                 z_ref_m: float) -> np.ndarray:
    """Active-IR amplitude image of a depth camera, (h, w, 3) uint8 sRGB grey.

    depth_m, cos_incidence, reflectance: (h, w) metres / |cos| / linear albedo;
    z_ref_m: range at which a frontal white surface just saturates (the
    emitter lights the scene from the camera: irradiance falls as 1 / z^2).
    0 where there is no return."""

    z = np.maximum(depth_m, np.float32(1e-3))
    a = np.float32(z_ref_m) / z
    a *= a
    a *= cos_incidence
    a *= reflectance  # reflectance is 0 where nothing was hit
    _, to_srgb = _luts()
    n = to_srgb.shape[0]
    a *= np.float32(n)
    idx = np.clip(a, 0, n - 1, out=a).astype(np.uint16)
    g = np.take(to_srgb, idx)
    return np.repeat(g[..., None], 3, axis=2)


def tray_mesh(rig: BoothRig) -> trimesh.Trimesh:
    """Tray floor (top at z = 0) plus rim walls, world frame, meters."""
    t = rig.tray
    sx, sy = t.size_m
    parts = [trimesh.creation.box(extents=(sx + 2 * t.rim_width_m, sy + 2 * t.rim_width_m, t.thickness_m),
                                  transform=trimesh.transformations.translation_matrix((0, 0, -t.thickness_m / 2)))]
    if t.rim_height_m > 0 and t.rim_width_m > 0:
        h, w = t.rim_height_m, t.rim_width_m
        for sgn in (-1, 1):
            parts.append(trimesh.creation.box(extents=(sx + 2 * w, w, h), transform=trimesh.transformations.translation_matrix((0, sgn * (sy / 2 + w / 2), h / 2))))
            parts.append(trimesh.creation.box(extents=(w, sy, h), transform=trimesh.transformations.translation_matrix((sgn * (sx / 2 + w / 2), 0, h / 2))))
    return trimesh.util.concatenate(parts)


def _flat_primitive(vertices: np.ndarray, faces: np.ndarray) -> pyrender.Primitive:
    return pyrender.Primitive(positions=vertices[faces].reshape(-1, 3).astype(np.float32),
                              mode=pyrender.constants.GLTF.TRIANGLES)


class _OrderedScene(pyrender.Scene):
    """pyrender keeps nodes in sets ordered by object address, and sums lights and
    draws ties in that order: a run-to-run change of up to ~20 grey levels at
    grazing specular edges. Iterating nodes in name order makes RGB reproducible."""

    @property
    def light_nodes(self):
        return sorted(super().light_nodes, key=lambda n: n.name)

    @property
    def mesh_nodes(self):
        return sorted(super().mesh_nodes, key=lambda n: n.name)


_PCF_9x4 = """float PCF(sampler2D depths, vec2 size, vec2 uv, float compare){
    float result = 0.0;
    for(int x=-1; x<=1; x++){
        for(int y=-1; y<=1; y++){
            vec2 off = vec2(x,y)/size;
            result += texture2DShadowLerp(depths, size, uv+off, compare);
        }
    }
    return result/9.0;
}"""
_PCF_BILINEAR = """float PCF(sampler2D depths, vec2 size, vec2 uv, float compare){
    return texture2DShadowLerp(depths, size, uv, compare);
}"""


def _shader_dir(tmp: str) -> str:
    """pyrender's shaders with a cheaper shadow filter: its 3x3 PCF of bilinear
    compares costs 36 shadow-map reads per fragment and light, the bulk of a
    colour pass on a CPU rasteriser; one bilinear compare (4 reads) keeps
    shadow edges smooth at a 2048^2 shadow map. Everything else is unchanged."""

    src = Path(pyrender.__file__).parent / "shaders"
    dst = Path(tmp) / "shaders"
    shutil.copytree(src, dst)
    frag = (dst / "mesh.frag").read_text()
    if _PCF_9x4 in frag:  # a pyrender whose shader differs keeps its own filter
        (dst / "mesh.frag").write_text(frag.replace(_PCF_9x4, _PCF_BILINEAR))
    return str(dst)


def _read_framebuffer(inner, scene, flags, want_depth: bool):
    """pyrender's ``Renderer._read_main_framebuffer`` (resolve the multisample
    framebuffer, read it back), with the depth left out when ``want_depth`` is
    False (returned as None). The depth, when read, is linearised with the very
    float32 operations pyrender uses (the same values, bit for bit), in whole-image
    passes rather than through boolean-mask gathers and scatters."""
    from OpenGL.GL import (GL_COLOR_BUFFER_BIT, GL_DEPTH_BUFFER_BIT, GL_DEPTH_COMPONENT, GL_DRAW_FRAMEBUFFER,
                           GL_FLOAT, GL_LINEAR, GL_NEAREST, GL_READ_FRAMEBUFFER, GL_RGB, GL_RGBA, GL_UNSIGNED_BYTE,
                           glBindFramebuffer, glBlitFramebuffer, glReadPixels)

    width, height = inner._main_fb_dims[0], inner._main_fb_dims[1]
    depth_only_pass = bool(flags & pyrender.RenderFlags.DEPTH_ONLY)
    want_depth = want_depth or depth_only_pass
    glBindFramebuffer(GL_READ_FRAMEBUFFER, inner._main_fb_ms)
    glBindFramebuffer(GL_DRAW_FRAMEBUFFER, inner._main_fb)
    if not depth_only_pass:
        glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL_COLOR_BUFFER_BIT, GL_LINEAR)
    if want_depth:
        glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL_DEPTH_BUFFER_BIT, GL_NEAREST)
    glBindFramebuffer(GL_READ_FRAMEBUFFER, inner._main_fb)
    depth_im = None
    if want_depth:
        raw = np.frombuffer(glReadPixels(0, 0, width, height, GL_DEPTH_COMPONENT, GL_FLOAT),
                            dtype=np.float32).reshape((height, width))[::-1]
        far = raw == 1.0
        d = 2.0 * raw - 1.0
        z_near, z_far = scene.main_camera_node.camera.znear, scene.main_camera_node.camera.zfar
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if z_far is None:
                lin = 2 * z_near / (1.0 - d)
            else:
                lin = (2.0 * z_near * z_far) / (z_far + z_near - d * (z_far - z_near))
        lin[far] = 0.0
        depth_im = lin
    if depth_only_pass:
        return depth_im
    ch, fmt = (4, GL_RGBA) if flags & pyrender.RenderFlags.RGBA else (3, GL_RGB)
    color_im = np.frombuffer(glReadPixels(0, 0, width, height, fmt, GL_UNSIGNED_BYTE),
                             dtype=np.uint8).reshape((height, width, ch))[::-1]
    return color_im, depth_im


#: GL_RENDERER substrings of software rasterisers (Mesa llvmpipe, softpipe, swrast)
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software")


def _gl_renderer_name(r) -> str:
    """GL_RENDERER of an OffscreenRenderer's context ('' if it cannot be read)."""
    try:
        from OpenGL.GL import GL_RENDERER, glGetString

        r._platform.make_current()
        name = glGetString(GL_RENDERER)
        return name.decode() if isinstance(name, bytes) else str(name or "")
    except Exception:  # a platform without make_current, or no string: treated as unknown
        return ""


class BoothRenderer:
    """Renders scenes of placed items through every camera of a rig.

    Owns one offscreen GL context (one per process); reuse it across captures.
    """

    def __init__(self, rig: BoothRig, materials: dict[str, Material]):

        from pyrender.shader_program import ShaderProgramCache

        self.rig = rig
        self.materials = materials
        first = rig.cameras[0]
        self._r = pyrender.OffscreenRenderer(first.width, first.height)
        #: the GL renderer's name, and whether it rasterises on the CPU (llvmpipe and
        #: the like: its threads then keep every core busy while it renders)
        self.gl_renderer = _gl_renderer_name(self._r)
        self.software_gl = any(k in self.gl_renderer.lower() for k in SOFTWARE_GL)
        self._tmp = tempfile.TemporaryDirectory(prefix="damagesim-shaders-")
        self._r._renderer._program_cache = ShaderProgramCache(shader_dir=_shader_dir(self._tmp.name))
        self.scene = _OrderedScene(bg_color=list(rig.background_color) + [1.0],
                                    ambient_light=[rig.ambient] * 3)
        tm = tray_mesh(rig)
        tmat = materials[rig.tray.material]
        self._tray_tm = tm
        self._tray_plain = pyrender.Mesh.from_trimesh(tm, material=_pbr(tmat, None), smooth=False)
        self._tray_visual = self.scene.add(self._tray_plain, name="0000-tray-visual")
        self._tray_key: str | None = None  # the tray surface shown (None: flat colour)
        self._tray_label = self.scene.add(pyrender.Mesh(primitives=[_flat_primitive(tm.vertices, tm.faces)]),
                                          name="0000-tray-label")
        self._base_materials = materials
        self._light_nodes: list = []
        self._fresh_shadows: set = set()
        self._spot_shadows = any(l.shadows for l in rig.lights if l.type == "spot")
        self._add_lights(rig.lights)
        # Shadow maps depend on the lights and the scene, not on the camera: render
        # them once per scene and reuse them for every camera (pyrender would redo
        # the 2048^2 depth pass for each view).
        inner = self._r._renderer
        shadow_pass = inner._shadow_mapping_pass

        def cached_shadow_pass(scene, light_node, flags):
            if light_node.name not in self._fresh_shadows:
                shadow_pass(scene, light_node, flags)
                self._fresh_shadows.add(light_node.name)

        inner._shadow_mapping_pass = cached_shadow_pass
        # Read back only what a pass uses: the colour pass's depth (a multisample
        # depth resolve, a float readback and its linearisation) is never used,
        # the label pass's depth is (see _read_framebuffer).
        self._pass_depth = True
        if sys.platform != "darwin":  # pyrender resizes its reads there (HiDPI): keep its own
            inner._read_main_framebuffer = lambda scene, flags: _read_framebuffer(inner, scene, flags, self._pass_depth)
        # seconds per stage of the latest renders (bounded: a renderer lives for a whole run)
        self.timings: dict[str, deque[float]] = {}
        self._textures: dict = {}  # artwork id -> (array, pyrender.Texture) in this renderer's context
        self._albedos: dict = {}  # artwork id -> (array, mean linear albedo)
        self._cam_nodes = {}
        self._remaps: dict[str, LensRemap] = {}
        for cam in rig.cameras:
            K = cam.K
            if any(cam.distortion):
                # a distorted lens sees a wider field: render that pinhole view, remap
                remap = LensRemap.for_camera(cam)
                self._remaps[cam.name] = remap
                K = remap.K_wide
            cx, cy = cv_principal_point_to_gl(K[0, 2], K[1, 2])
            pc = pyrender.IntrinsicsCamera(fx=K[0, 0], fy=K[1, 1], cx=cx, cy=cy,
                                           znear=cam.range_m[0], zfar=cam.range_m[1])
            self._cam_nodes[cam.name] = self.scene.add(pc, pose=cv_to_gl(cam.T_world_from_cam), name=f"camera-{cam.name}")

    def _add_lights(self, lights) -> None:
        for n in self._light_nodes:
            self.scene.remove_node(n)
        self._light_nodes = []
        n_light = 0
        for light in lights:
            for typ, T_gl, intensity, cone in light.emitters():
                n_light += 1
                if light.type == "area":
                    # an area panel is a grid of wide, soft emitters: point lights (no shadow maps)
                    obj = pyrender.PointLight(color=light.color, intensity=intensity)
                elif typ == "spot":
                    obj = pyrender.SpotLight(color=light.color, intensity=intensity,
                                             innerConeAngle=cone * 0.6, outerConeAngle=cone)
                elif typ == "point":
                    obj = pyrender.PointLight(color=light.color, intensity=intensity)
                else:
                    obj = pyrender.DirectionalLight(color=light.color, intensity=intensity)
                self._light_nodes.append(self.scene.add(obj, pose=T_gl, name=f"light-{n_light:03d}"))
        self._fresh_shadows.clear()

    def configure(self, draws: Draws | None) -> None:
        """Apply one capture's domain-randomization draws (see
        :func:`simulator.scene.draws.sample`), or restore the rig as designed (None)."""
        draws = draws if draws is not None else Draws()
        rig = self.rig
        lights = list(rig.lights)
        if draws.lights is not None:
            lights = [replace(l, intensity=l.intensity * d.intensity_scale, color=tuple(d.color),
                              position_m=tuple(d.position_m))
                      for l, d in zip(rig.lights, draws.lights) if d.on]
        # exposure and white balance act on the light reaching the sensor: a gain on
        # every light and the ambient term, a per-channel gain on the light colours
        gain = float(draws.exposure if draws.exposure is not None else 1.0)
        wb = np.asarray(draws.white_balance if draws.white_balance is not None else (1.0, 1.0, 1.0), float)
        if gain != 1.0 or draws.white_balance is not None:
            lights = [replace(l, intensity=l.intensity * gain, color=tuple(np.asarray(l.color) * wb)) for l in lights]
        self._add_lights(lights)
        if draws.fill is not None:
            f = draws.fill
            dirs = np.asarray(f.directions, float)
            color = np.asarray(f.color, float) * wb
            for j, d in enumerate(dirs):
                # a directional light shines along its -z (GL): point -z from the sky down to the tray
                T = look_at(d, np.zeros(3), up=(0, 1, 0) if abs(d[2]) > 0.999 else (0, 0, 1)) @ np.diag([1.0, -1.0, -1.0, 1.0])
                obj = pyrender.DirectionalLight(color=color, intensity=f.intensity * gain / len(dirs))
                self._light_nodes.append(self.scene.add(obj, pose=T, name=f"light-fill-{j:02d}"))
        self.scene.ambient_light = np.array([rig.ambient * gain] * 3) * wb
        bg = draws.background_color if draws.background_color is not None else rig.background_color
        self.scene.bg_color = np.array(list(bg) + [1.0])
        shade = draws.tray_shade if draws.tray_shade is not None else 1.0
        base = np.asarray(self._base_materials[rig.tray.material].color, float) * shade
        delta = draws.tray_color_delta if draws.tray_color_delta is not None else (0.0, 0.0, 0.0)
        base = np.clip(base + np.asarray(delta), 0.0, 1.0)
        self._set_tray_surface(draws.tray_texture, base)
        for cam in rig.cameras:
            node = self._cam_nodes[cam.name]
            d = draws.cameras.get(cam.name)
            T = d.T_world_from_cam if d else cam.T_world_from_cam
            self.scene.set_pose(node, cv_to_gl(np.asarray(T)))
            if cam.name not in self._remaps:  # pinhole: the true focal length may differ
                fs = d.focal_scale if d else 1.0
                node.camera.fx, node.camera.fy = cam.K[0, 0] * fs, cam.K[1, 1] * fs
        self.materials = jitter_materials(self._base_materials, draws)

    def _set_tray_surface(self, desc: dict | None, base: np.ndarray) -> None:
        """Show the tray floor in flat colour ``base`` (linear RGB) or, with a
        surface description ``desc`` (:func:`simulator.scene.backgrounds.draw`),
        textured with that surface, shaded by the drawn tray shade. Only the
        visual node changes: the label pass draws the tray's own label mesh."""
        key = None if desc is None else json.dumps(desc, sort_keys=True)
        if key != self._tray_key:
            self.scene.remove_node(self._tray_visual)
            if desc is None:
                mesh = self._tray_plain
            else:
                tm, tmat = self._tray_tm, self._base_materials[self.rig.tray.material]
                img = backgrounds.texture(desc)
                tex = pyrender.Texture(source=np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], 2),
                                       source_channels="RGBA")
                tri = tm.vertices[tm.faces]
                uv = projected_uv(tri, float(desc["tile_mm"])).reshape(-1, 2)
                n = np.repeat(tm.face_normals, 3, axis=0).astype(np.float32)
                mat = pyrender.MetallicRoughnessMaterial(baseColorTexture=tex, metallicFactor=0.0,
                                                         roughnessFactor=float(tmat.roughness), alphaMode="OPAQUE")
                mesh = pyrender.Mesh(primitives=[pyrender.Primitive(
                    positions=tri.reshape(-1, 3).astype(np.float32), normals=n, texcoord_0=uv, material=mat,
                    mode=pyrender.constants.GLTF.TRIANGLES)])
            self._tray_visual = self.scene.add(mesh, name="0000-tray-visual")
            self._tray_key = key
        # a texture carries its own colour; the drawn shade still scales it (within
        # reason: a flat tray may be drawn 3x brighter, a texture would burn out)
        shade = float(np.mean(base)) / max(float(np.mean(self._base_materials[self.rig.tray.material].color)), 1e-6)
        f = np.clip(base, 0.0, 1.0) if desc is None else np.full(3, float(np.clip(shade, 0.5, 1.3)))
        for prim in self._tray_visual.mesh.primitives:
            prim.material.baseColorFactor = np.array([min(c, 1.0) for c in f] + [1.0])

    def close(self) -> None:
        """Delete the GL context and the temporary shader folder. Idempotent."""
        if self._r is not None:
            self._r.delete()
            self._r = None
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _render_size(self, cam: Camera) -> tuple[int, int]:
        return self._remaps[cam.name].size_wide if cam.name in self._remaps else cam.resolution

    def _resize(self, cam: Camera) -> None:
        size = self._render_size(cam)
        if (self._r.viewport_width, self._r.viewport_height) != size:
            self._r.viewport_width, self._r.viewport_height = size

    def render(self, items: list[SceneItem], cameras: list[str] | None = None,
               want_rgb: bool = True) -> dict[str, Frame]:
        """Render every camera (or the named ones). Returns camera name -> Frame."""
        visual_nodes, label_nodes = [], []
        self._fresh_shadows.clear()  # new scene content: shadow maps must be redone
        table = [(0, 0, 0, 0), (0, 0, 0, 0)]  # codes 0 (none) and 1 (tray)
        albedo = [0.0, _mean_albedo(self.materials[self.rig.tray.material].color)]  # per code, linear
        seg_map = {self._tray_label: code_to_color(CODE_TRAY)}
        cams = [self.rig.camera(n) for n in cameras] if cameras else list(self.rig.cameras)
        colour = want_rgb and not all(depth_only(c) for c in cams)  # any camera needs a colour pass
        t0 = time.perf_counter()
        try:
            for it in items:
                art = _artwork_albedo(it.product.artwork, self._albedos)
                for j, (m, T) in enumerate(it.pieces()):
                    if colour:
                        visual_nodes.append(self.scene.add(visual_mesh(it.product, self.materials, m, self._textures), pose=T,
                                                           name=f"item-{it.instance_id:04d}-{j:03d}-visual"))
                    groups = label_groups(it.product, it.instance_id, it.damage_offset, m)
                    if it.distractor:
                        groups = [(np.arange(len(m.faces)), (0, 0, 0, 0))]
                    for faces_sel, labels in groups:
                        code = len(table)
                        table.append(labels)
                        albedo.append(group_albedo(it.product, self.materials, faces_sel, m, art))
                        node = self.scene.add(pyrender.Mesh(primitives=[_flat_primitive(m.vertices, m.faces[faces_sel])]),
                                              pose=T, name=f"item-{it.instance_id:04d}-{j:03d}-label-{code:06d}")
                        label_nodes.append(node)
                        seg_map[node] = code_to_color(code)
            lut = np.array(table, dtype=np.int64)
            albedo_lut = np.array(albedo, dtype=np.float32)
            self._time("scene_setup", t0)
            # group by resolution: resizing the framebuffer is the costly part of a switch
            cams.sort(key=lambda c: (-np.prod(self._render_size(c)), c.name))
            out = {}
            for cam in cams:
                self._resize(cam)
                self.scene.main_camera_node = self._cam_nodes[cam.name]
                ir = depth_only(cam)
                fr = self._render_camera(label_nodes, seg_map, lut, want_rgb and not ir,
                                         albedo_lut if want_rgb and ir else None, self._remaps.get(cam.name))
                if fr.reflectance is not None:
                    fr = self._ir_frame(cam, fr)
                out[cam.name] = fr
            return {c.name: out[c.name] for c in (self.rig.camera(n) for n in (cameras or [c.name for c in self.rig.cameras]))}
        finally:
            for n in visual_nodes + label_nodes:
                self.scene.remove_node(n)

    def _set_visible(self, label_nodes, label: bool) -> None:
        self._tray_label.mesh.is_visible = label
        self._tray_visual.mesh.is_visible = not label
        for n in label_nodes:
            n.mesh.is_visible = label

    def _ir_frame(self, cam: Camera, fr: Frame) -> Frame:
        """A depth-only camera's rgb: the IR amplitude image, shaded from the label
        pass's depth and reflectance (the incidence kept for the depth model)."""


        t = time.perf_counter()
        c = _incidence_cos(fr.depth_m, cam.K)
        T_cam_from_world = np.linalg.inv(np.asarray(cam.T_world_from_cam, dtype=np.float64))
        z_ref = float(max(T_cam_from_world[2, 3], cam.range_m[0]))  # range of the tray centre
        out = replace(fr, rgb=ir_amplitude(fr.depth_m, c, fr.reflectance, z_ref), incidence_cos=c)
        self._time("ir_shading", t)
        return out

    def _time(self, key: str, t0: float) -> float:
        t = time.perf_counter()
        self.timings.setdefault(key, deque(maxlen=TIMINGS_KEPT)).append(t - t0)
        return t

    def _render_camera(self, label_nodes, seg_map, lut: np.ndarray, want_rgb: bool,
                       albedo_lut: np.ndarray | None = None, remap: LensRemap | None = None) -> Frame:
        """One camera: the colour pass (when ``want_rgb``) and the label pass.
        albedo_lut: per-code linear reflectance; given, the frame carries its
        reflectance image (a depth-only camera's, for its IR shading). remap: a
        distorted lens's (the passes render its wide pinhole view): the colour is
        remapped bilinearly, the label pass's colours (the codes) and depth by
        nearest neighbour, and the codes are decoded at the output size (the same
        labels as decoding first and remapping every label image)."""
        rgb = None
        t = time.perf_counter()
        if want_rgb:
            self._set_visible(label_nodes, False)
            flags = pyrender.RenderFlags.SHADOWS_SPOT if self._spot_shadows else pyrender.RenderFlags.NONE
            self._pass_depth = False  # the colour pass's depth is not used: not read back
            try:
                rgb, _ = self._r.render(self.scene, flags=flags)
            finally:
                self._pass_depth = True
            rgb = np.ascontiguousarray(rgb)
            t = self._time("colour_pass", t)
        self._set_visible(label_nodes, True)
        seg, depth = self._r.render(self.scene, flags=pyrender.RenderFlags.SEG | pyrender.RenderFlags.RGBA,
                                    seg_node_map=seg_map)
        t = self._time("label_pass", t)
        seg = np.ascontiguousarray(seg)
        if remap is not None:
            shape = remap.map_x.shape
            if rgb is not None:
                rgb = remap.rgb(rgb, shape)
            seg = remap.labels(seg, shape)  # (h, w, 4) uint8: every channel copied from the same pixel
            depth = remap.labels(np.ascontiguousarray(depth, dtype=np.float32), shape)
            t = self._time("lens_remap", t)
        codes = decode_codes(seg)
        if codes.max() >= len(lut):
            raise RuntimeError(f"label pass produced code {codes.max()} beyond the {len(lut)} drawn: blended labels")
        depth = np.where(codes == CODE_NONE, np.float32(0.0), depth).astype(np.float32, copy=False)
        if rgb is None:
            rgb = np.zeros(depth.shape + (3,), np.uint8)
        frame = Frame(
            rgb=rgb,
            depth_m=depth,
            instance=lut[:, 0].astype(np.uint16)[codes],
            part=lut[:, 1].astype(np.uint8)[codes],
            damage_category=lut[:, 2].astype(np.uint8)[codes],
            damage_instance=lut[:, 3].astype(np.uint16)[codes],
            reflectance=None if albedo_lut is None else albedo_lut[codes],
        )
        self._time("label_decode", t)
        return frame
