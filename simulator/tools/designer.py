"""Booth designer: see what a camera layout can see and which damage it can resolve,
before buying hardware.

Two entry points (``damagesim rig preview`` / ``damagesim rig report``):

- :func:`rig_preview`: one PNG, the booth seen from outside (tray, lights, each
  camera's frustum, labelled) next to a mosaic of every camera's view of a
  reference item.
- :func:`rig_report`: surface coverage at a resolution and damage detectability,
  for one rig or side by side for two, as JSON + markdown + PNG plots.

Measures (all from renders of settled items, label pass only):

- **Coverage** at X px/mm: surface points are drawn area-uniformly on each item
  (so a fraction of points is a fraction of area). A point is *seen* by a camera
  when it projects inside the image, faces the camera, and the rendered depth
  and instance at its pixel are its own (not occluded). Its *resolution* is the
  smaller singular value of the projection's Jacobian restricted to the surface
  tangent plane, in px/mm: the sampling density in the worst direction on the
  surface, which accounts for distance, obliquity and off-axis position
  (``f / z`` for a fronto-parallel patch on the axis). Coverage = fraction of
  area seen by >= 1 camera at >= X px/mm.
- **Detectability** of damage instances (by Kaputt category and severity):
  *RGB*: the damage shows >= P pixels in the label pass of at least one RGB
  camera. *Depth*: in at least one depth camera, at least ``min_depth_pixels``
  pixels of the damage (or, as each sampled item carries one damage, of the
  item in either frame: a missing unit leaves no damage label where it was)
  change depth against the pristine counterfactual
  (same pose, damage removed) by more than 3 sigma of that camera's noise at
  the pixel's range (:func:`simulator.render.noise_models.camera_sigma_z`: the
  camera's sensor model, else a model picked by its ``device`` string).

Every random choice draws from generators derived from the report seed and the
item index, so item k is the same product, damage and pose for both rigs of a
comparison (when the trays match): the comparison is paired.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from damage_ops.sampling import applicable_ops
from damage_ops.taxonomy import CATEGORIES, SEVERITIES
from simulator.config.catalog import load_catalog
from simulator.config.rig import BoothRig, Camera, load_rig
from simulator.core.conventions import intrinsics_matrix, look_at, project
from simulator.core.errors import ConfigError, PlacementError
from simulator.core.seeds import rng as seeded_rng
from simulator.core.seeds import streams
from simulator.core.yamlio import integer
from simulator.generate.capture import CaptureMaker
from simulator.generate.spec import GenerateSpec
from simulator.render.noise_models import camera_model, camera_sigma_z
from simulator.scene.damage import draw_damage
from simulator.scene.scene import SceneItem
from simulator.tools.show import colorize_depth

#: px/mm thresholds of the coverage curves
CURVE_PX_PER_MM = tuple(round(x, 2) for x in np.arange(0.0, 4.01, 0.1))
#: seed-sequence stream ids (append only)
_STREAM_COVERAGE, _STREAM_DAMAGE, _STREAM_PREVIEW = 0, 1, 2


# ---------------------------------------------------------------------------
# geometry: surface samples, visibility, resolution
# ---------------------------------------------------------------------------

def sample_surface(mesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-uniform random points on a triangle mesh.

    Returns (points (n, 3) float64 in the mesh frame, meters; unit normals (n, 3);
    face index (n,) int64)."""
    V = np.asarray(mesh.vertices, np.float64)
    F = np.asarray(mesh.faces, np.int64)
    tri = V[F]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    if area.sum() <= 0:
        raise ValueError("sample_surface: mesh has zero area")
    face = rng.choice(len(F), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    pts = np.einsum("nk,nkd->nd", w, tri[face])
    nrm = cross[face] / np.maximum(np.linalg.norm(cross[face], axis=1, keepdims=True), 1e-300)
    return pts, nrm, face


def resolution_px_per_mm(camera: Camera, points_w: np.ndarray, normals_w: np.ndarray) -> np.ndarray:
    """Surface sampling density (n,) px/mm at world points with unit normals.

    The smaller singular value of d(u, v)/d(surface) over the tangent plane: the
    pixel density along the surface's worst direction (distance, obliquity and
    off-axis position included). 0 for points behind the camera."""
    T_cw = np.linalg.inv(camera.T_world_from_cam)
    p = points_w @ T_cw[:3, :3].T + T_cw[:3, 3]
    nrm = normals_w @ T_cw[:3, :3].T
    # tangent basis t1, t2 perpendicular to the normal
    a = np.where(np.abs(nrm[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    t1 = np.cross(nrm, a)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(nrm, t1)
    x, y, z = p[:, 0], p[:, 1], np.where(p[:, 2] > 1e-9, p[:, 2], np.inf)
    fx, fy = camera.K[0, 0], camera.K[1, 1]

    def jac(t):  # (n, 2): image motion (px/m) for unit surface motion along t
        du = fx / z * t[:, 0] - fx * x / z ** 2 * t[:, 2]
        dv = fy / z * t[:, 1] - fy * y / z ** 2 * t[:, 2]
        return du, dv

    a11, a21 = jac(t1)
    a12, a22 = jac(t2)
    S = a11 ** 2 + a12 ** 2 + a21 ** 2 + a22 ** 2
    det = a11 * a22 - a12 * a21
    smin = np.sqrt(np.maximum((S - np.sqrt(np.maximum(S ** 2 - 4 * det ** 2, 0.0))) / 2, 0.0))
    return np.where(p[:, 2] > 1e-9, smin / 1000.0, 0.0)


def _project(cam: Camera, points_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uv (n, 2) pixels, z (n,) meters) through the camera's lens (distortion
    included where the rig gives one)."""
    if any(cam.distortion):
        return project(cam.K, cam.T_world_from_cam, points_w, cam.distortion)
    return project(cam.K, cam.T_world_from_cam, points_w)


def clean_depth(frame) -> np.ndarray:
    """The frame's noise-free depth (h, w) meters: ``depth_gt`` when a sensor
    model put noise into ``depth_m``, else ``depth_m``."""
    gt = getattr(frame, "depth_gt", None)
    return frame.depth_m if gt is None else gt


def surface_visibility(camera: Camera, depth_m: np.ndarray, instance: np.ndarray, instance_id: int,
                       points_w: np.ndarray, normals_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which surface points a camera sees, and at what resolution.

    depth_m: (h, w) float32 meters, instance: (h, w) uint16 (the camera's label pass)
    points_w, normals_w: (n, 3) world meters / unit normals of item ``instance_id``
    Returns (seen (n,) bool, px_per_mm (n,) float64; 0 where not seen).

    Seen = projects inside the image, within range, faces the camera, and the
    pixel shows this instance at the point's depth (tolerance 1 mm plus 1.5x the
    surface's depth change across one pixel, from the obliquity)."""
    uv, z = _project(camera, points_w)
    h, w = depth_m.shape
    centre = camera.T_world_from_cam[:3, 3]
    view = centre - points_w
    dist = np.linalg.norm(view, axis=1)
    cos = np.einsum("nd,nd->n", normals_w, view) / np.maximum(dist, 1e-12)
    ui = np.rint(np.nan_to_num(uv[:, 0], nan=-1)).astype(np.int64)
    vi = np.rint(np.nan_to_num(uv[:, 1], nan=-1)).astype(np.int64)
    ok = (z > camera.range_m[0]) & (z < camera.range_m[1]) & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (cos > 1e-3)
    idx = np.flatnonzero(ok)
    d = depth_m[vi[idx], ui[idx]].astype(np.float64)
    inst = instance[vi[idx], ui[idx]]
    tan = np.sqrt(np.maximum(1 - cos[idx] ** 2, 0)) / cos[idx]
    tol = 0.001 + 1.5 * z[idx] / camera.K[0, 0] * np.minimum(tan, 20.0)
    seen = np.zeros(len(points_w), bool)
    seen[idx] = (inst == instance_id) & (d > 0) & (np.abs(d - z[idx]) <= tol)
    res = np.zeros(len(points_w))
    res[seen] = resolution_px_per_mm(camera, points_w[seen], normals_w[seen])
    return seen, res


# ---------------------------------------------------------------------------
# damage detectability from a damaged frame and its pristine counterfactual
# ---------------------------------------------------------------------------

def damage_signal(camera: Camera, damaged, pristine, damage_instance_id: int,
                  instance_id: int | None = None) -> dict[str, Any]:
    """What one camera sees of one damage instance.

    damaged, pristine: :class:`simulator.render.Frame` of the same pose with and
    without the damage.
    instance_id: when the damaged item carries this damage only, its instance id:
        the depth signature then also counts pixels where the item's surface
        changed without being labelled damage in the damaged frame (where a
        missing unit or burst contents used to be, the tray under a moved flap);
        None = the damage's own pixels only.
    Returns {"pixels": damage pixels in the label pass, "depth_pixels": pixels
    of the signature whose |depth change| against the pristine frame exceeds
    3 sigma_z(z) of the camera (0 for RGB-only cameras), "max_snr": largest
    |dz| / sigma_z there}."""
    m = damaged.damage_instance == damage_instance_id
    out = {"pixels": int(m.sum()), "depth_pixels": 0, "max_snr": 0.0}
    if camera.modality == "rgb":
        return out
    region = m
    if instance_id is not None:
        region = m | (damaged.instance == instance_id) | (pristine.instance == instance_id)
    zd = clean_depth(damaged).astype(np.float64)
    zp = clean_depth(pristine).astype(np.float64)
    # a return in one frame and none in the other (a hole onto the void) is a change too:
    # compare against the camera's far limit there
    far = camera.range_m[1]
    sel = region & ((zd > 0) | (zp > 0))
    a = np.where(zd[sel] > 0, zd[sel], far)
    b = np.where(zp[sel] > 0, zp[sel], far)
    sig = camera_sigma_z(camera, np.minimum(a, b))
    snr = np.abs(a - b) / sig
    out["depth_pixels"] = int((snr > 3.0).sum())
    out["max_snr"] = float(snr.max()) if snr.size else 0.0
    return out


def is_rgb(camera: Camera) -> bool:
    """Whether ``camera`` takes colour images (modality ``rgb`` or ``rgbd``)."""
    return camera.modality in ("rgb", "rgbd")


def is_depth(camera: Camera) -> bool:
    """Whether ``camera`` takes depth images (modality ``depth`` or ``rgbd``)."""
    return camera.modality in ("depth", "rgbd")


def detect(signals: dict[str, dict[str, Any]], rig: BoothRig, min_pixels: int, min_depth_pixels: int) -> dict[str, bool]:
    """Per-damage verdicts from :func:`damage_signal` of every camera:
    {"rgb": >= min_pixels in an RGB camera, "depth": >= min_depth_pixels over 3 sigma
    in a depth camera, "any": either}."""
    rgb = any(signals[c.name]["pixels"] >= min_pixels for c in rig.cameras if is_rgb(c))
    dep = any(signals[c.name]["depth_pixels"] >= min_depth_pixels for c in rig.cameras if is_depth(c))
    return {"rgb": bool(rgb), "depth": bool(dep), "any": bool(rgb or dep)}


# ---------------------------------------------------------------------------
# the evaluation loop
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportSettings:
    """n: items for coverage and damaged items for detectability;
    seed: report seed; px_per_mm: coverage resolution threshold X;
    min_pixels: P, RGB damage pixels needed; min_depth_pixels: depth pixels over
    3 sigma needed; points: surface samples per item."""

    n: int = 24
    seed: int = 0
    px_per_mm: float = 0.5
    min_pixels: int = 25
    min_depth_pixels: int = 4
    points: int = 4000

    def validate(self) -> None:
        """Check every setting; a bad one raises ConfigError named by its flag (``--n``,
        ``--seed``, ``--min-pixels``, ``--min-depth-pixels``, ``--points``,
        ``--px-per-mm``)."""
        for key, v, lo in (("--n", self.n, 1), ("--seed", self.seed, 0), ("--min-pixels", self.min_pixels, 1),
                           ("--min-depth-pixels", self.min_depth_pixels, 1), ("--points", self.points, 100)):
            integer(None, key, v, lo)
        if not (isinstance(self.px_per_mm, (int, float)) and math.isfinite(self.px_per_mm) and 0 <= self.px_per_mm <= 100):
            raise ConfigError(None, "--px-per-mm", self.px_per_mm, "must be a number in [0, 100]")


def _streams(seed: int, stream: int, k: int) -> dict[str, np.random.Generator]:
    names = ("sku", "damage", "physics", "placement", "points")
    return streams([seed, stream, k], names)


class RigEvaluator:
    """Renders sampled items through one rig. Owns a GL context and a physics
    client (through :class:`simulator.generate.capture.CaptureMaker`); close it."""

    def __init__(self, rig: BoothRig, catalog):

        self.rig, self.catalog = rig, catalog
        spec = GenerateSpec(n=1, rig=rig.path, catalog=str(catalog.path))
        self.maker = CaptureMaker(spec, rig, catalog)

    def close(self) -> None:
        """Release the renderer's GL context and the physics client."""
        self.maker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def coverage_item(self, settings: ReportSettings, k: int) -> dict[str, Any]:
        """Coverage samples of item k: {"sku", "kind", "seen": {camera: (n,) bool},
        "res": {camera: (n,) px/mm}}."""
        st = _streams(settings.seed, _STREAM_COVERAGE, k)
        sku = self.catalog.sample(st["sku"])
        prod = self.catalog.build(sku)
        pl = self.maker.world.settle([prod], self.rig.tray, st["physics"], self.catalog.materials)[0]
        T = pl.T_world_from_item
        pts, nrm, _ = sample_surface(prod.mesh, settings.points, st["points"])
        pw = pts @ T[:3, :3].T + T[:3, 3]
        nw = nrm @ T[:3, :3].T
        frames = self.maker.renderer.render([SceneItem(prod, T, 1)], want_rgb=False)
        seen, res = {}, {}
        for cam in self.rig.cameras:
            f = frames[cam.name]
            seen[cam.name], res[cam.name] = surface_visibility(cam, clean_depth(f), f.instance, 1, pw, nw)
        return {"sku": prod.sku, "kind": prod.kind, "seen": seen, "res": res}

    def damage_item(self, settings: ReportSettings, k: int) -> dict[str, Any]:
        """Damage item k: category and severity cycle through every (category,
        severity) cell; SKU, op and params are drawn. Returns a record with the
        per-camera signals, or {"skipped": reason}."""

        cells = [(c, s) for c in CATEGORIES for s in SEVERITIES]
        cat, sev = cells[k % len(cells)]
        st = _streams(settings.seed, _STREAM_DAMAGE, k)
        prod = None
        for _ in range(32):
            cand = self.catalog.build(self.catalog.sample(st["sku"]))
            if applicable_ops(cand, cat):
                prod = cand
                break
        if prod is None:
            return {"category": cat, "severity": sev, "skipped": f"no SKU in the catalog takes a {cat} op"}
        ops = applicable_ops(prod, cat)
        damaged, rec, log = draw_damage(prod, lambda r: (str(r.choice(ops)), sev), st["damage"],
                                        where=f"rig report damage item {k}")
        if damaged is None:
            last = log[-1] if log else {"op": None, "error": ""}
            return {"category": cat, "severity": sev, "sku": prod.sku,
                    "skipped": f"{last['op']} failed {len(log)} times: {last.get('error', '')}"}
        op = log[-1]["op"]
        try:
            pl = self.maker.world.settle([damaged], self.rig.tray, st["physics"], self.catalog.materials)
        except PlacementError as e:
            return {"category": cat, "severity": sev, "sku": prod.sku, "skipped": str(e)}
        sc = self.maker.arrange([damaged], [prod], pl, [[]], st["placement"], allow_mess=False)
        fd = self.maker.renderer.render(self.maker.scene_items(sc), want_rgb=False)
        fp = self.maker.renderer.render(self.maker.scene_items(sc, pristine=True), want_rgb=False)
        # one damage on one item: every depth change between the frames is that damage's
        signals = {c.name: damage_signal(c, fd[c.name], fp[c.name], 1, instance_id=1) for c in self.rig.cameras}
        return {"sku": prod.sku, "kind": prod.kind, "op": op, "category": rec.category, "severity": rec.severity,
                "requested_severity": sev, "size": {k2: float(v) for k2, v in rec.size.items()},
                "signals": signals, "detected": detect(signals, self.rig, settings.min_pixels, settings.min_depth_pixels)}


def _frac(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def summarize_coverage(rig: BoothRig, items: list[dict[str, Any]], px_per_mm: float) -> dict[str, Any]:
    """Aggregate :meth:`RigEvaluator.coverage_item` results (equal points per item,
    so every item weighs the same whatever its size)."""
    names = [c.name for c in rig.cameras]
    seen = {n: np.concatenate([it["seen"][n] for it in items]) for n in names}
    res = {n: np.concatenate([it["res"][n] for it in items]) for n in names}

    def cov(cams, thr):
        ok = np.zeros(len(seen[names[0]]), bool)
        for n in cams:
            ok |= seen[n] & (res[n] >= thr)
        return ok

    rgb = [c.name for c in rig.cameras if is_rgb(c)]
    dep = [c.name for c in rig.cameras if is_depth(c)]
    kinds = sorted({it["kind"] for it in items})
    per_item = [len(it["seen"][names[0]]) for it in items]
    item_kind = np.repeat([it["kind"] for it in items], per_item)
    rig_ok = cov(names, px_per_mm)
    return {
        "px_per_mm": px_per_mm,
        "n_items": len(items),
        "n_points": int(len(rig_ok)),
        "rig": _frac(rig_ok),
        "rgb_cameras": _frac(cov(rgb, px_per_mm)) if rgb else None,
        "depth_cameras": _frac(cov(dep, px_per_mm)) if dep else None,
        "seen_at_any_resolution": _frac(cov(names, 0.0)),
        "per_camera": {n: _frac(cov([n], px_per_mm)) for n in names},
        "by_kind": {k: _frac(rig_ok[item_kind == k]) for k in kinds},
        "items": [{"sku": it["sku"], "kind": it["kind"]} for it in items],
        "curve": {"px_per_mm": list(CURVE_PX_PER_MM),
                  "rig": [_frac(cov(names, t)) for t in CURVE_PX_PER_MM],
                  "per_camera": {n: [_frac(cov([n], t)) for t in CURVE_PX_PER_MM] for n in names}},
    }


def summarize_detectability(rig: BoothRig, recs: list[dict[str, Any]], settings: ReportSettings) -> dict[str, Any]:
    """Aggregate :meth:`RigEvaluator.damage_item` results by (category, severity)."""
    done = [r for r in recs if "skipped" not in r]
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for cat in CATEGORIES:
        cells[cat] = {}
        for sev in SEVERITIES + ("all",):
            sel = [r for r in done if r["category"] == cat and (sev == "all" or r["severity"] == sev)]
            cells[cat][sev] = {"n": len(sel), **{m: (float(np.mean([r["detected"][m] for r in sel])) if sel else None)
                                                 for m in ("rgb", "depth", "any")}}
    overall = {"n": len(done), **{m: (float(np.mean([r["detected"][m] for r in done])) if done else None)
                                  for m in ("rgb", "depth", "any")}}
    per_cam = {}
    for c in rig.cameras:
        if is_rgb(c):
            hit = [r["signals"][c.name]["pixels"] >= settings.min_pixels for r in done]
        else:
            hit = [r["signals"][c.name]["depth_pixels"] >= settings.min_depth_pixels for r in done]
        per_cam[c.name] = float(np.mean(hit)) if hit else None
    return {"min_pixels": settings.min_pixels, "min_depth_pixels": settings.min_depth_pixels,
            "overall": overall, "by_category": cells, "per_camera": per_cam,
            "skipped": [r for r in recs if "skipped" in r], "damages": done}


def camera_table(rig: BoothRig) -> list[dict[str, Any]]:
    """Per camera: modality, device, noise family, resolution and, at the tray
    centre, distance, ground sampling (px/mm) and depth sigma (mm)."""
    out = []
    for c in rig.cameras:
        centre = c.T_world_from_cam[:3, 3]
        z = float(project(c.K, c.T_world_from_cam, np.zeros((1, 3)))[1][0])
        res = float(resolution_px_per_mm(c, np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]]))[0])
        row = {"name": c.name, "modality": c.modality, "device": c.device, "resolution": list(c.resolution),
               "distance_to_tray_centre_m": float(np.linalg.norm(centre)), "tray_centre_px_per_mm": res}
        if is_depth(c):
            row["noise_model"] = camera_model(c)
            row["sigma_z_mm_at_tray_centre"] = float(camera_sigma_z(c, z)) * 1000
        out.append(row)
    return out


def evaluate_rig(rig: BoothRig, catalog, settings: ReportSettings,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Coverage and detectability of one rig: the JSON-ready result."""
    cov_items, dmg = [], []
    with RigEvaluator(rig, catalog) as ev:
        for k in range(settings.n):
            cov_items.append(ev.coverage_item(settings, k))
            if progress:
                progress(1)
        for k in range(settings.n):
            dmg.append(ev.damage_item(settings, k))
            if progress:
                progress(1)
    return {"rig": rig.name, "path": rig.path, "description": rig.description, "cameras": camera_table(rig),
            "coverage": summarize_coverage(rig, cov_items, settings.px_per_mm),
            "detectability": summarize_detectability(rig, dmg, settings)}


# ---------------------------------------------------------------------------
# report files: JSON, markdown, PNG plots
# ---------------------------------------------------------------------------

def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def report_markdown(results: list[dict[str, Any]], settings: ReportSettings, catalog_path: str) -> str:
    """The side-by-side markdown table (one column per rig)."""
    names = [r["rig"] for r in results]
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"

    def row(label, vals):
        return f"| {label} | " + " | ".join(vals) + " |\n"

    s = f"# Booth rig report: {' vs '.join(names)}\n\n"
    s += (f"{settings.n} items for coverage ({settings.points} surface points each) and {settings.n} damaged items "
          f"(cycling through category x severity), catalog `{catalog_path}`, seed {settings.seed}.\n"
          f"Coverage: share of product surface seen by >= 1 camera at >= {settings.px_per_mm:g} px/mm (worst direction "
          f"on the surface). RGB detectable: >= {settings.min_pixels} damage pixels in an RGB camera. Depth detectable: "
          f">= {settings.min_depth_pixels} pixels of the damage (or of the item, which carries this one damage) whose "
          f"depth changes against the pristine counterfactual by > 3 sigma of the camera's noise at that range "
          f"(simulator/noise_models.py).\n\n")
    s += head
    s += row("cameras (rgb / depth)", [f"{sum(c['modality'] in ('rgb', 'rgbd') for c in r['cameras'])} / "
                                       f"{sum(c['modality'] in ('depth', 'rgbd') for c in r['cameras'])}" for r in results])
    s += row(f"**coverage @ {settings.px_per_mm:g} px/mm, any camera**", [f"**{_pct(r['coverage']['rig'])}**" for r in results])
    s += row("coverage, RGB cameras only", [_pct(r["coverage"]["rgb_cameras"]) for r in results])
    s += row("coverage, depth cameras only", [_pct(r["coverage"]["depth_cameras"]) for r in results])
    s += row("seen at any resolution", [_pct(r["coverage"]["seen_at_any_resolution"]) for r in results])
    kinds = sorted({k for r in results for k in r["coverage"]["by_kind"]})
    for k in kinds:
        s += row(f"coverage, {k}", [_pct(r["coverage"]["by_kind"].get(k)) for r in results])
    s += row("**damage detectable, any modality**", [f"**{_pct(r['detectability']['overall']['any'])}** "
                                                     f"(n={r['detectability']['overall']['n']})" for r in results])
    s += row("damage detectable, RGB", [_pct(r["detectability"]["overall"]["rgb"]) for r in results])
    s += row("damage detectable, depth", [_pct(r["detectability"]["overall"]["depth"]) for r in results])
    for cat in CATEGORIES:
        for sev in SEVERITIES:
            cells = [r["detectability"]["by_category"][cat][sev] for r in results]
            if not any(c["n"] for c in cells):
                continue
            s += row(f"{cat} / {sev}: RGB, depth (n)",
                     [f"{_pct(c['rgb'])}, {_pct(c['depth'])} (n={c['n']})" for c in cells])
    s += "\n## Cameras\n\n"
    for r in results:
        s += f"**{r['rig']}** ({r['path']})\n\n| camera | modality | device | resolution | px/mm at tray centre | depth sigma at tray centre |\n|---|---|---|---|---|---|\n"
        for c in r["cameras"]:
            sig = f"{c['sigma_z_mm_at_tray_centre']:.2f} mm: {c['noise_model']}" if "noise_model" in c else "–"
            s += (f"| {c['name']} | {c['modality']} | {c['device']} | {c['resolution'][0]}x{c['resolution'][1]} | "
                  f"{c['tray_centre_px_per_mm']:.2f} | {sig} |\n")
        s += "\nper camera: coverage " + ", ".join(f"{n} {_pct(v)}" for n, v in r["coverage"]["per_camera"].items())
        s += "; damage detected " + ", ".join(f"{n} {_pct(v)}" for n, v in r["detectability"]["per_camera"].items())
        sk = r["detectability"]["skipped"]
        if sk:
            s += f"\n\nskipped damage samples: {len(sk)} (" + "; ".join(sorted({x['skipped'][:80] for x in sk})) + ")"
        s += "\n\n"
    s += "Plots: coverage.png (coverage against the px/mm threshold), detectability.png (by category).\n"
    return s


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _percent_frame(d: ImageDraw.ImageDraw, box: tuple, title: str, font, small) -> None:
    """Title, plot frame and 0-100% horizontal grid of a panel; box = (L, R, T, B) px."""
    L, R, T, B = box
    d.text((L, 8), title, fill="black", font=font)
    d.rectangle([L, T, R, B], outline=(80, 80, 80))
    for i in range(0, 11, 2):
        y = B - (B - T) * i / 10
        d.line([L, y, R, y], fill=(225, 225, 225))
        d.text((L - 34, y - 6), f"{i * 10}%", fill="black", font=small)


def _coverage_panel(r: dict[str, Any], W: int = 560, H: int = 380) -> Image.Image:
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    f, fs = _font(14), _font(11)
    L, R, T, B = 50, W - 150, 30, H - 40
    xs = r["coverage"]["curve"]["px_per_mm"]
    xmax = xs[-1]
    _percent_frame(d, (L, R, T, B), f"{r['rig']}: surface coverage vs resolution", f, fs)
    for x in range(0, int(xmax) + 1):
        px = L + (R - L) * x / xmax
        d.line([px, T, px, B], fill=(225, 225, 225))
        d.text((px - 3, B + 4), str(x), fill="black", font=fs)
    d.text(((L + R) / 2 - 50, B + 20), "threshold, px/mm", fill="black", font=fs)
    series = list(r["coverage"]["curve"]["per_camera"].items()) + [("rig (any)", r["coverage"]["curve"]["rig"])]
    for j, (name, ys) in enumerate(series):
        col = (0, 0, 0) if name == "rig (any)" else _COLORS[j % len(_COLORS)]
        pts = [(L + (R - L) * x / xmax, B - (B - T) * (y if y == y else 0)) for x, y in zip(xs, ys)]
        d.line(pts, fill=col, width=3 if name == "rig (any)" else 2)
        d.line([R + 10, T + 10 + 18 * j, R + 30, T + 10 + 18 * j], fill=col, width=3)
        d.text((R + 35, T + 4 + 18 * j), name, fill="black", font=fs)
    thr = r["coverage"]["px_per_mm"]
    if thr <= xmax:
        px = L + (R - L) * thr / xmax
        d.line([px, T, px, B], fill=(200, 0, 0), width=1)
    return im


def _detect_panel(r: dict[str, Any], W: int = 560, H: int = 380) -> Image.Image:
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    f, fs = _font(14), _font(11)
    L, R, T, B = 50, W - 90, 30, H - 60
    _percent_frame(d, (L, R, T, B), f"{r['rig']}: damage detectable (by category, all severities)", f, fs)
    mets = [("rgb", _COLORS[0]), ("depth", _COLORS[1]), ("any", (60, 60, 60))]
    gw = (R - L) / len(CATEGORIES)
    for i, cat in enumerate(CATEGORIES):
        cell = r["detectability"]["by_category"][cat]["all"]
        x0 = L + gw * i + gw * 0.12
        bw = gw * 0.76 / len(mets)
        for j, (m, col) in enumerate(mets):
            v = cell[m]
            if v is None:
                continue
            d.rectangle([x0 + j * bw, B - (B - T) * v, x0 + (j + 1) * bw - 2, B], fill=col)
        d.text((L + gw * i + 4, B + 4), cat[:11], fill="black", font=fs)
        d.text((L + gw * i + 4, B + 18), f"n={cell['n']}", fill=(90, 90, 90), font=fs)
    for j, (m, col) in enumerate(mets):
        d.rectangle([R + 10, T + 10 + 18 * j, R + 24, T + 20 + 18 * j], fill=col)
        d.text((R + 30, T + 8 + 18 * j), m, fill="black", font=fs)
    return im


def _side_by_side(panels: list[Image.Image]) -> Image.Image:
    W = sum(p.width for p in panels)
    out = Image.new("RGB", (W, max(p.height for p in panels)), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width
    return out


def rig_report(rig_path: str | Path, compare: str | Path | None = None, catalog: str | Path | None = None,
               settings: ReportSettings = ReportSettings(), out: str | Path | None = None,
               progress: Callable[[int], None] | None = None) -> Path:
    """Evaluate one rig (or two, side by side) and write rig_report.json,
    rig_report.md, coverage.png and detectability.png into ``out`` (default
    renders/rig_report/<rig>[_vs_<rig2>]). Returns the output folder."""

    settings.validate()
    rigs = [load_rig(rig_path)] + ([load_rig(compare)] if compare is not None else [])
    cat = load_catalog(catalog)
    for r in rigs:
        if r.tray.material not in cat.materials:
            raise ConfigError(r.path, "tray.material", r.tray.material, "is not in the materials library")
    if out is None:
        out = Path("renders/rig_report") / "_vs_".join(r.name for r in rigs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", str(out), "exists and is not a directory")
    results = [evaluate_rig(r, cat, settings, progress) for r in rigs]
    out.mkdir(parents=True, exist_ok=True)
    doc = {"format": "damagesim-rig-report/1", "settings": asdict(settings), "catalog": str(cat.path),
           "curve_px_per_mm": list(CURVE_PX_PER_MM), "rigs": results}
    (out / "rig_report.json").write_text(json.dumps(doc, indent=1, default=_json_default))
    (out / "rig_report.md").write_text(report_markdown(results, settings, str(cat.path)))
    _side_by_side([_coverage_panel(r) for r in results]).save(out / "coverage.png")
    _side_by_side([_detect_panel(r) for r in results]).save(out / "detectability.png")
    return out


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ---------------------------------------------------------------------------
# preview: the booth from outside + every camera's view
# ---------------------------------------------------------------------------

def outside_camera(rig: BoothRig, width: int = 960, height: int = 720, hfov_deg: float = 50.0,
                   direction=(0.95, -1.55, 0.9)) -> Camera:
    """A virtual camera outside the booth that frames the tray, every light and
    every camera (plus a margin), looking from ``direction`` (world, from the
    centre of the booth's bounding box towards the eye)."""
    sx, sy = rig.tray.size_m
    pts = [np.array([x, y, 0.0]) for x in (-sx / 2, sx / 2) for y in (-sy / 2, sy / 2)]
    pts += [c.T_world_from_cam[:3, 3] for c in rig.cameras] + [np.array(l.position_m) for l in rig.lights]
    P = np.array(pts)
    centre = (P.min(0) + P.max(0)) / 2
    dirn = np.asarray(direction, float) / np.linalg.norm(direction)
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    K = intrinsics_matrix(f, f, (width - 1) / 2, (height - 1) / 2)
    dist = 1.0
    for _ in range(200):
        T = look_at(centre + dirn * dist, centre, up=(0, 0, 1))
        uv, z = project(K, T, P)
        if (z > 0.1).all() and (np.abs(uv[:, 0] - K[0, 2]) < 0.42 * width).all() and (np.abs(uv[:, 1] - K[1, 2]) < 0.40 * height).all():
            break
        dist *= 1.05
    return Camera(name="outside_view", modality="rgb", resolution=(width, height), K=K, distortion=(0.0,) * 5,
                  T_world_from_cam=T, range_m=(0.05, 50.0), device="preview")


def frustum_points(cam: Camera, max_len_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(apex (3,), far corners (4, 3)) world meters: the image corners' rays, cut
    at the tray plane z = 0, at the far range, and at ``max_len_m`` (default 1.3x
    the distance to the tray centre, so grazing rays do not run off the picture)."""
    C = cam.T_world_from_cam[:3, 3]
    if max_len_m is None:
        max_len_m = 1.3 * float(np.linalg.norm(C))
    R = cam.T_world_from_cam[:3, :3]
    Kinv = np.linalg.inv(cam.K)
    w, h = cam.width, cam.height
    corners = []
    for u, v in ((-0.5, -0.5), (w - 0.5, -0.5), (w - 0.5, h - 0.5), (-0.5, h - 0.5)):
        d = R @ (Kinv @ np.array([u, v, 1.0]))
        d /= np.linalg.norm(d)
        t = min(max_len_m, cam.range_m[1])
        if d[2] < -1e-6:
            t = min(t, -C[2] / d[2])
        corners.append(C + d * t)
    return C, np.array(corners)


def _draw_booth(img: Image.Image, rig: BoothRig, view: Camera) -> Image.Image:
    """Overlay lights, frustums and labels (projected through ``view``) on a render."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    f, fb = _font(13), _font(15)

    def P(pts):
        uv, _ = project(view.K, view.T_world_from_cam, np.atleast_2d(pts))
        return [tuple(map(float, p)) for p in uv]

    sx, sy = rig.tray.size_m
    tray = P([[-sx / 2, -sy / 2, 0], [sx / 2, -sy / 2, 0], [sx / 2, sy / 2, 0], [-sx / 2, sy / 2, 0]])
    d.line(tray + tray[:1], fill=(40, 40, 40, 255), width=2)
    d.text(P([[sx / 2, -sy / 2, 0]])[0], f"  tray {sx * 1000:.0f} x {sy * 1000:.0f} mm", fill=(20, 20, 20, 255), font=f)
    for l in rig.lights:
        p = np.array(l.position_m)
        (lp,), (lt,) = P(p), P(np.array(l.target_m))
        d.line([lp, lt], fill=(230, 170, 0, 140), width=1)
        if l.type == "area":
            em = l.emitters()
            T = em[0][1]
            ex, ey = T[:3, 0] * l.size_m[0] / 2, T[:3, 1] * l.size_m[1] / 2
            quad = P([p - ex - ey, p + ex - ey, p + ex + ey, p - ex + ey])
            d.polygon(quad, fill=(255, 215, 0, 110), outline=(200, 150, 0, 255))
        d.ellipse([lp[0] - 7, lp[1] - 7, lp[0] + 7, lp[1] + 7], fill=(255, 200, 0, 255), outline=(120, 80, 0, 255))
        d.text((lp[0] + 9, lp[1] - 7), f"{l.name} ({l.type})", fill=(120, 70, 0, 255), font=f)
    # ImageDraw overwrites RGBA pixels instead of blending: translucent footprints
    # go on a layer of their own, lines and labels on top
    fills = Image.new("RGBA", base.size, (0, 0, 0, 0))
    for i, cam in enumerate(rig.cameras):
        col = _COLORS[i % len(_COLORS)]
        fp = Image.new("RGBA", base.size, (0, 0, 0, 0))
        ImageDraw.Draw(fp).polygon(P(frustum_points(cam)[1]), fill=col + (30,))
        fills = Image.alpha_composite(fills, fp)
    layer = Image.alpha_composite(fills, layer)
    d = ImageDraw.Draw(layer)
    for i, cam in enumerate(rig.cameras):
        col = _COLORS[i % len(_COLORS)]
        C, far = frustum_points(cam)
        (c2,), f2 = P(C), P(far)
        d.line(f2 + f2[:1], fill=col + (255,), width=1)
        for q in f2:
            d.line([c2, q], fill=col + (220,), width=2)
    for i, cam in enumerate(rig.cameras):
        col = _COLORS[i % len(_COLORS)]
        C, far = frustum_points(cam)
        (c2,) = P(C)
        near = C + (far - C) * (0.09 / np.linalg.norm(far - C, axis=1, keepdims=True))
        n2 = P(near)
        d.polygon(n2, fill=col + (200,), outline=(0, 0, 0, 255))
        label = f"{cam.name} [{cam.modality}] {cam.width}x{cam.height}"
        tw = d.textlength(label, font=fb)
        d.rectangle([c2[0] + 8, c2[1] - 22, c2[0] + 14 + tw, c2[1] - 2], fill=(255, 255, 255, 215))
        d.text((c2[0] + 11, c2[1] - 21), label, fill=col + (255,), font=fb)
    return Image.alpha_composite(base, layer).convert("RGB")


def rig_preview(rig_path: str | Path, out_png: str | Path | None = None, catalog: str | Path | None = None,
                sku: str | None = None, seed: int = 0, tile_w: int = 320) -> Path:
    """Write the preview PNG of a rig: outside view with frustums (left) and each
    camera's view of a settled reference item (right). Returns the PNG path
    (default renders/rig_preview_<rig>.png)."""
    # lazy: OpenGL and pybullet load only once a renderer and a physics world are made
    from simulator.render.renderer import BoothRenderer
    from simulator.scene.physics import PhysicsWorld

    rig = load_rig(rig_path)
    cat = load_catalog(catalog)
    if rig.tray.material not in cat.materials:
        raise ConfigError(rig.path, "tray.material", rig.tray.material, "is not in the materials library")
    if sku is not None and sku not in {s.sku for s in cat.skus}:
        raise ConfigError(cat.path, "--sku", sku, f"no such SKU; e.g. {[s.sku for s in cat.skus[:5]]}")
    prod = cat.build(sku if sku is not None else cat.skus[0])
    rng = seeded_rng(seed, _STREAM_PREVIEW, 0)
    with PhysicsWorld() as world:
        pl = world.settle([prod], rig.tray, rng, cat.materials)[0]
    view = outside_camera(rig)
    big = replace(rig, cameras=rig.cameras + (view,))
    with BoothRenderer(big, cat.materials) as r:
        frames = r.render([SceneItem(prod, pl.T_world_from_item, 1)])
    left = _draw_booth(Image.fromarray(frames[view.name].rgb), rig, view)
    ImageDraw.Draw(left).text((12, 10), f"rig {rig.name}: {rig.description or rig.path}", fill=(0, 0, 0), font=_font(16))
    tiles = []
    if len(rig.cameras) <= 2:
        tile_w = int(tile_w * 1.3)
    for i, cam in enumerate(rig.cameras):
        fr = frames[cam.name]
        a = fr.rgb if is_rgb(cam) else colorize_depth(clean_depth(fr))
        im = Image.fromarray(a)
        im = im.resize((tile_w, max(1, round(im.height * tile_w / im.width))), Image.BILINEAR)
        lab = Image.new("RGB", (tile_w, im.height + 20), (30, 30, 30))
        lab.paste(im, (0, 20))
        ImageDraw.Draw(lab).text((4, 3), f"{cam.name} [{cam.modality}] {cam.width}x{cam.height}",
                                 fill=_COLORS[i % len(_COLORS)], font=_font(13))
        tiles.append(lab)
    cols = 2 if len(tiles) > 2 else 1
    rows = math.ceil(len(tiles) / cols)
    row_h = [max(t.height for t in tiles[i * cols:(i + 1) * cols]) for i in range(rows)]
    mos_h = sum(row_h) + 24
    H = max(left.height, mos_h)
    sheet = Image.new("RGB", (left.width + cols * tile_w, H), (30, 30, 30))
    sheet.paste(left, (0, 0))
    d = ImageDraw.Draw(sheet)
    d.text((left.width + 6, 4), f"views of {prod.sku} ({prod.kind})", fill=(235, 235, 235), font=_font(13))
    y = 24
    for i in range(rows):
        for j, t in enumerate(tiles[i * cols:(i + 1) * cols]):
            sheet.paste(t, (left.width + j * tile_w, y))
        y += row_h[i]
    out = Path(out_png) if out_png else Path("renders") / f"rig_preview_{rig.name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


__all__ = ["ReportSettings", "RigEvaluator", "camera_table", "damage_signal", "detect", "evaluate_rig",
           "frustum_points", "outside_camera", "resolution_px_per_mm", "rig_preview", "rig_report",
           "sample_surface", "summarize_coverage", "summarize_detectability", "surface_visibility"]
