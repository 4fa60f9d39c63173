"""Static HTML report of a dataset (``damagesim report DATASET``).

Writes ``DATASET/report/index.html``: one self-contained page (inline CSS, JS and
SVG charts; no server, no network) with the dataset card, bar charts of counts
by product kind, damage category and severity, and a paged grid of captures
with toggles for damage masks, instance masks, boxes (the COCO bboxes of
``captures/<id>/annotations.json``), a depth view and pristine-vs-damaged pairs.

Images are referenced by relative paths, so the page works from ``file://`` and
when the dataset folder is moved. RGB images are the dataset's own files; mask
overlays (RGBA, transparent where there is no label) and colourised depth are
pre-rendered into ``DATASET/report/img/`` because a page opened from
``file://`` may not read pixels of local images in a canvas (Chromium treats
every file as its own origin).
"""
from __future__ import annotations

import html
import json
import os
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from damage_ops.taxonomy import CATEGORIES, SEVERITIES
from simulator.core.errors import DamagesimError
from simulator.core.yamlio import integer
from simulator.dataset.reader import FolderCapture, iter_dataset
from simulator.dataset.writers import DEPTH_SCALE_M
from simulator.tools.show import PALETTE, colorize_depth

#: overlays and depth views are stored at most this wide (the grid shows ~420 px)
MAX_W = 640


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _shrink(a: np.ndarray, nearest: bool) -> Image.Image:
    im = Image.fromarray(a)
    if im.width > MAX_W:
        im = im.resize((MAX_W, round(im.height * MAX_W / im.width)), Image.NEAREST if nearest else Image.BILINEAR)
    return im


def mask_overlay(labels: np.ndarray, alpha: int = 150, halo: bool = False) -> np.ndarray:
    """(h, w) integer labels -> (h, w, 4) uint8 RGBA: palette colour of each non-zero
    label at ``alpha``, label edges opaque, 0 transparent; ``halo``: a white ring
    just outside each labelled region (small damage on a same-coloured item stays
    visible)."""
    lab = labels.astype(np.int64)
    col = PALETTE[(lab - 1) % (len(PALETTE) - 1) + 1]
    m = lab > 0
    edge = np.zeros_like(m)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    out = np.zeros(lab.shape + (4,), np.uint8)
    out[..., :3] = col
    out[..., 3] = np.where(m, np.where(edge, 255, alpha), 0)
    if halo:

        ring = ndimage.binary_dilation(m, iterations=2) & ~m
        out[ring] = (255, 255, 255, 230)
    return out


def _bar_svg(title: str, counts: dict[str, int], colors: dict[str, str] | None = None, width: int = 360) -> str:
    """A horizontal bar chart as inline SVG."""
    items = list(counts.items())
    bar_h, gap, left, top = 18, 6, 120, 28
    h = top + len(items) * (bar_h + gap) + 8
    vmax = max([v for _, v in items] + [1])
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
           f'viewBox="0 0 {width} {h}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="4" y="16" class="ct">{html.escape(title)}</text>']
    for i, (k, v) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = (width - left - 50) * v / vmax
        c = (colors or {}).get(k, "#4878a8")
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" class="cl">{html.escape(str(k))}</text>'
                   f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{c}"><title>{html.escape(str(k))}: {v}</title></rect>'
                   f'<text x="{left + w + 4:.1f}" y="{y + 13}" class="cv">{v}</text>')
    out.append("</svg>")
    return "".join(out)


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DamagesimError(f"{path}: missing") from None
    except ValueError as e:
        raise DamagesimError(f"{path}: not valid JSON ({e})") from None


def _camera_views(cap, cap_id: str, name: str, cam: dict[str, Any], anns: list[dict[str, Any]],
                  pristine: bool, img_dir: Path, report_dir: Path) -> dict[str, Any]:
    """Write one camera's overlays and depth views; return its entry in the page
    data. cap: a simulator.dataset.reader.Capture (a folder, or a sample in a shard)."""

    files = cam["files"]
    scale = cam.get("depth_scale_m", DEPTH_SCALE_M)
    w, h = cam["resolution"]
    out: dict[str, Any] = {"w": w, "h": h, "modality": cam["modality"]}
    stem = img_dir / cap_id
    stem.mkdir(parents=True, exist_ok=True)

    def original(key: str, tag: str) -> str:
        """The dataset's own file by relative path; a shard member is copied out."""
        if isinstance(cap, FolderCapture):
            return _rel(cap.path / files[key], report_dir)
        p = stem / f"{name}-{tag}.png"
        p.write_bytes(cap.read(files[key]))
        return _rel(p, report_dir)

    out["rgb"] = original("rgb", "rgb")

    def depth_view(key: str, tag: str) -> str:
        d = cap.image(files[key]).astype(np.float64) * scale
        p = stem / f"{name}-{tag}.png"
        _shrink(colorize_depth(d), nearest=True).save(p, optimize=True)
        return _rel(p, report_dir)

    out["depth"] = depth_view("depth", "depth")
    inst = cap.image(files["instance"])
    p = stem / f"{name}-instance.png"
    _shrink(mask_overlay(inst), nearest=True).save(p, optimize=True)
    out["instance"] = _rel(p, report_dir)
    dmg = cap.image(files["damage_category"])
    out["damage_pixels"] = int((dmg > 0).sum())
    if out["damage_pixels"]:
        p = stem / f"{name}-damage.png"
        _shrink(mask_overlay(dmg, alpha=200, halo=True), nearest=True).save(p, optimize=True)
        out["damage"] = _rel(p, report_dir)
    out["boxes"] = [{"bbox": [round(float(x), 1) for x in a["bbox"]],
                     "type": a.get("attributes", {}).get("type", "item"),
                     "label": a.get("attributes", {}).get("sku") or a.get("attributes", {}).get("op", ""),
                     "cat": int(a.get("category_id", 0))} for a in anns]
    if pristine and "pristine/rgb" in files:
        out["pristine_rgb"] = original("pristine/rgb", "pristine-rgb")
        out["pristine_depth"] = depth_view("pristine/depth", "pristine-depth")
    return out


def build_report(dataset: str | Path, out: str | Path | None = None, limit: int = 500, per_page: int = 12) -> Path:
    """Write the report page (default DATASET/report/index.html) and its overlay
    images; returns the page's path. ``limit``: at most this many captures (the
    first ones) in the grid; ``per_page``: captures per page."""
    root = Path(dataset)
    for key, v in (("--limit", limit), ("--per-page", per_page)):
        integer(None, key, v, 1)
    card_path = root / "dataset.json"
    if not card_path.is_file():
        raise DamagesimError(f"{root}: not a dataset folder (no dataset.json)")
    card = _load_json(card_path)
    report_dir = Path(out) if out is not None else root / "report"
    try:
        return _build(root, card, report_dir, limit, per_page)
    except OSError as e:
        if e.filename is not None and Path(e.filename).resolve().is_relative_to(report_dir.resolve()):
            raise DamagesimError(f"cannot write the report to {report_dir} ({e.strerror or e}); give --out DIR "
                                 f"(e.g. for a read-only dataset)") from None
        raise DamagesimError(f"{root}: cannot read {e.filename or ''} ({e.strerror or e})") from None


def _build(root: Path, card: dict[str, Any], report_dir: Path, limit: int, per_page: int) -> Path:


    report_dir.mkdir(parents=True, exist_ok=True)
    img_dir = report_dir / "img"
    n = card.get("spec", {}).get("n")
    n = n if isinstance(n, int) else None
    total = card.get("counts", {}).get("captures")
    captures = []
    # folders and shard samples alike (a sharded dataset lists no capture folders)
    for cap in islice(iter_dataset(root, n), limit):
        try:
            meta = cap.meta
            anns = cap.json("annotations.json") if cap.has("annotations.json") else {}
        except ValueError as e:
            raise DamagesimError(f"{cap.where}: not valid JSON ({e})") from None
        cid = meta.get("capture_id", cap.name)
        cams = {name: _camera_views(cap, cid, name, cam, anns.get(name, []), bool(meta.get("pristine_pair")),
                                    img_dir, report_dir)
                for name, cam in meta["cameras"].items()}
        captures.append({
            "id": cid,
            "items": [{"sku": it["sku"], "kind": it["kind"], "damaged": it["damaged"]} for it in meta["items"]],
            "damages": [{"type": d.get("type"), "category": d["category"], "severity": d["severity"],
                         "size": {k: round(float(v), 2) for k, v in d.get("size", {}).items()
                                  if isinstance(v, (int, float))}} for d in meta["damages"]],
            "hard_negative": bool(meta.get("hard_negative")),
            "pair": bool(meta.get("pristine_pair")),
            "cameras": cams,
        })
    page = report_dir / "index.html"
    page.write_text(_page(root, card, captures, per_page, total if isinstance(total, int) else len(captures)))
    return page


_CSS = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23}
header{background:#1f2d3d;color:#fff;padding:14px 22px}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;opacity:.8}
section{padding:14px 22px}h2{font-size:16px;margin:8px 0}
table.card{border-collapse:collapse;background:#fff}table.card td,table.card th{border:1px solid #d8dbe0;padding:3px 8px;text-align:left;vertical-align:top}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{background:#fff;border:1px solid #d8dbe0}
.chart .ct{font-weight:600;font-size:13px}.chart .cl,.chart .cv{font-size:12px}
.controls{position:sticky;top:0;z-index:5;background:#fff;border:1px solid #d8dbe0;padding:8px 10px;display:flex;flex-wrap:wrap;gap:14px;align-items:center}
.controls label{cursor:pointer;user-select:none}.controls button{padding:3px 10px}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:14px;margin-top:12px}
.capture{background:#fff;border:1px solid #d8dbe0;border-radius:4px;padding:8px}.capture.damaged{border-left:4px solid #e6194b}
.capture h3{font-size:13px;margin:0 0 4px}.meta{font-size:12px;color:#555;margin-bottom:6px}
.pair{display:flex;gap:6px}.side{flex:1;min-width:0}.side .tag{font-size:11px;color:#666}
.view{position:relative;width:100%;line-height:0;background:#222}.view img,.view svg{width:100%;display:block}
.view .ov,.view svg.boxes{position:absolute;left:0;top:0;height:100%;display:none}
.view img.base-depth{display:none}
body.show-damage .view img.ov-damage{display:block}body.show-instance .view img.ov-instance{display:block}
body.show-boxes .view svg.boxes{display:block}
body.depth-view .view img.base-rgb{display:none}body.depth-view .view img.base-depth{display:block}
.side.pristine{display:none}body.show-pairs .side.pristine{display:block}
.camname{font-size:11px;color:#333;margin:6px 0 2px}.legend span{display:inline-block;margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
pre{background:#fff;border:1px solid #d8dbe0;padding:8px;overflow:auto;max-height:300px}
"""

_JS = r"""
(function(){
const D = JSON.parse(document.getElementById('data').textContent);
const state = {page: 0, camera: D.default_camera, filter: 'all'};
const grid = document.getElementById('grid');
function esc(s){return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function img(src, cls, alt){return '<img class="'+cls+'" src="'+esc(src)+'" alt="'+esc(alt)+'">';}
function boxes(v){
  let s = '<svg class="boxes" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '+v.w+' '+v.h+'" preserveAspectRatio="none">';
  for (const b of v.boxes){
    const dmg = b.type !== 'item';
    const col = dmg ? (D.damage_colors[b.cat - 100] || '#ff0') : '#00e5ff';
    const [x, y, w, h] = b.bbox;
    s += '<rect x="'+x+'" y="'+y+'" width="'+w+'" height="'+h+'" fill="none" stroke="'+col+'" stroke-width="'+Math.max(1.5, v.w/320)+'"' + (dmg ? ' stroke-dasharray="6 3"' : '') + '><title>'+esc(b.label || b.type)+'</title></rect>';
  }
  return s + '</svg>';
}
function view(c, name, v, pristine){
  let s = '<div class="view">';
  s += img(pristine ? v.pristine_rgb : v.rgb, 'base base-rgb', c.id+' '+name+(pristine?' pristine':'')+' rgb');
  s += img(pristine ? v.pristine_depth : v.depth, 'base base-depth', c.id+' '+name+' depth');
  if (!pristine){
    if (v.damage) s += img(v.damage, 'ov ov-damage', 'damage mask');
    s += img(v.instance, 'ov ov-instance', 'instance mask');
    s += boxes(v);
  }
  return s + '</div>';
}
function card(c){
  const dmg = c.damages.length > 0;
  let s = '<div class="capture'+(dmg?' damaged':'')+'" data-id="'+esc(c.id)+'">';
  s += '<h3>'+esc(c.id)+' · '+c.items.map(i => esc(i.kind)+' ('+esc(i.sku)+')').join(', ')+(c.hard_negative?' · hard negative':'')+'</h3>';
  s += '<div class="meta">'+(dmg ? c.damages.map(d => esc(d.type)+': '+esc(d.category)+' / '+esc(d.severity)+' '+Object.entries(d.size).slice(0,2).map(([k,v]) => esc(k)+'='+v).join(' ')).join('; ') : 'intact')+'</div>';
  const cams = state.camera === '*' ? Object.keys(c.cameras) : [state.camera];
  for (const name of cams){
    const v = c.cameras[name];
    if (!v) continue;
    s += '<div class="camname">'+esc(name)+' ['+esc(v.modality)+']'+(v.damage_pixels ? ' · '+v.damage_pixels+' damage px' : '')+'</div><div class="pair">';
    s += '<div class="side damaged">'+(c.pair ? '<div class="tag">damaged</div>' : '')+view(c, name, v, false)+'</div>';
    if (c.pair && v.pristine_rgb) s += '<div class="side pristine"><div class="tag">pristine counterfactual</div>'+view(c, name, v, true)+'</div>';
    s += '</div>';
  }
  return s + '</div>';
}
function selected(){
  return D.captures.filter(c => state.filter === 'all' || (state.filter === 'damaged' ? c.damages.length > 0 :
    state.filter === 'intact' ? c.damages.length === 0 : state.filter === 'pairs' ? c.pair : c.hard_negative));
}
function render(){
  const list = selected();
  const pages = Math.max(1, Math.ceil(list.length / D.per_page));
  state.page = Math.min(state.page, pages - 1);
  grid.innerHTML = list.slice(state.page * D.per_page, (state.page + 1) * D.per_page).map(card).join('') || '<p>no captures match</p>';
  document.getElementById('pageinfo').textContent = 'page '+(state.page+1)+' of '+pages+' ('+list.length+' captures)';
  document.getElementById('prev').disabled = state.page === 0;
  document.getElementById('next').disabled = state.page >= pages - 1;
}
const toggles = {'t-damage': 'show-damage', 't-instance': 'show-instance', 't-boxes': 'show-boxes', 't-depth': 'depth-view', 't-pairs': 'show-pairs'};
for (const [id, cls] of Object.entries(toggles)){
  const el = document.getElementById(id);
  const apply = () => document.body.classList.toggle(cls, el.checked);
  el.addEventListener('change', apply); apply();
}
document.getElementById('camera').addEventListener('change', e => {state.camera = e.target.value; render();});
document.getElementById('filter').addEventListener('change', e => {state.filter = e.target.value; state.page = 0; render();});
document.getElementById('prev').addEventListener('click', () => {state.page--; render();});
document.getElementById('next').addEventListener('click', () => {state.page++; render();});
render();
})();
"""


def _page(root: Path, card: dict[str, Any], captures: list[dict[str, Any]], per_page: int, total: int) -> str:
    counts = card.get("counts", {})
    rig = card.get("rig", {})
    spec = card.get("spec", {})
    cam_names = [c["name"] for c in rig.get("cameras", [])] or (list(captures[0]["cameras"]) if captures else [])
    default_cam = next((c["name"] for c in rig.get("cameras", []) if c.get("modality") in ("rgb", "rgbd")),
                       cam_names[0] if cam_names else "")
    dmg_colors = {i + 1: _hex(PALETTE[(i) % (len(PALETTE) - 1) + 1]) for i in range(len(CATEGORIES))}
    cat_colors = {c: dmg_colors[i + 1] for i, c in enumerate(CATEGORIES)}
    data = {"captures": captures, "per_page": per_page, "default_camera": default_cam,
            "damage_colors": {str(k): v for k, v in dmg_colors.items()}}
    e = html.escape
    rows = [
        ("dataset", e(str(root.resolve().name))),
        ("format", e(str(card.get("format", "")))),
        ("seed", e(str(card.get("seed", spec.get("seed", ""))))),
        ("rig", e(f"{rig.get('name', '')}: {rig.get('description', '')} ({len(rig.get('cameras', []))} cameras: "
                  + ", ".join(f"{c['name']} [{c['modality']}] {c['resolution'][0]}x{c['resolution'][1]}"
                              for c in rig.get("cameras", [])) + ")")),
        ("catalog", e(str(spec.get("catalog", "")))),
        ("code", e(json.dumps(card.get("code_version", {})))),
        ("captures", e(f"{counts.get('captures', total)} ({counts.get('frames', '?')} labelled frames; "
                       f"{counts.get('captures_with_damage', '?')} with damage, {counts.get('pristine_pairs', '?')} "
                       f"pristine pairs, {counts.get('hard_negative_captures', '?')} hard negatives, "
                       f"{counts.get('reference_captures', 0)} reference captures)")),
        ("damage mix", e(json.dumps(spec.get("damage_mix", {})))),
    ]
    card_html = "<table class='card'>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    shown = f"showing the first {len(captures)} of {total} captures" if len(captures) < total else f"{total} captures"
    charts = (_bar_svg("items by product kind", counts.get("items_by_kind", {}))
              + _bar_svg("damages by category", {c: counts.get("damages_by_category", {}).get(c, 0) for c in CATEGORIES}, cat_colors)
              + _bar_svg("damages by severity", {s: counts.get("damages_by_severity", {}).get(s, 0) for s in SEVERITIES},
                         {"minor": "#f5a623", "major": "#c0392b"}))
    legend = "".join(f"<span><i style='background:{cat_colors[c]}'></i>{e(c)}</span>" for c in CATEGORIES)
    md_path = root / card.get("files", {}).get("card_markdown", "dataset.md")
    md = md_path.read_text() if md_path.is_file() else ""
    cam_opts = "".join(f"<option value='{e(n)}'{' selected' if n == default_cam else ''}>{e(n)}</option>" for n in cam_names)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>damagesim report: {e(root.resolve().name)}</title><style>{_CSS}</style></head>
<body>
<header><h1>damagesim dataset report: {e(root.resolve().name)}</h1><p>{e(shown)}; static page, images by relative path</p></header>
<section id="card"><h2>Dataset card</h2>{card_html}
<details><summary>dataset.md</summary><pre>{e(md)}</pre></details></section>
<section id="charts"><h2>Counts</h2><div class="charts">{charts}</div></section>
<section id="browser"><h2>Captures</h2>
<div class="controls">
<label><input type="checkbox" id="t-damage" checked> damage masks</label>
<label><input type="checkbox" id="t-instance"> instance masks</label>
<label><input type="checkbox" id="t-boxes"> boxes</label>
<label><input type="checkbox" id="t-depth"> depth view</label>
<label><input type="checkbox" id="t-pairs" checked> pristine vs damaged</label>
<label>camera <select id="camera">{cam_opts}<option value="*">all cameras</option></select></label>
<label>show <select id="filter"><option value="all">all</option><option value="damaged">damaged</option>
<option value="intact">intact</option><option value="pairs">with pristine pair</option><option value="hard">hard negatives</option></select></label>
<button id="prev">&larr; prev</button><span id="pageinfo"></span><button id="next">next &rarr;</button>
<span class="legend">{legend}<span><i style="border:2px solid #00e5ff"></i>item box</span></span>
</div>
<div id="grid"></div></section>
<script type="application/json" id="data">{payload}</script>
<script>{_JS}</script>
</body></html>
"""


__all__ = ["build_report", "mask_overlay"]
