"""Sheet of boxes opened by force and mangled crushes on a kraft parcel
(docs/opened_modes.png): a picture to put beside real damaged parcels, not a
timing benchmark.

Tiles: ``deconstruction`` ``box_open`` (forced: flaps at scattered angles,
drooping, creased, the rim dented; with and without contents) and ``crush``
``mangle`` at a major size, each with its own seed, on the transfer catalog's
first carton, seen obliquely from above under one grazing key light (the
renderer of ``benchmarks/crush_modes_sheet.py``), damaged faces outlined red
in the inset.

    python benchmarks/opened_modes_sheet.py [--out docs/opened_modes.png] [--size 360] [--n 4]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repo: benchmarks/damage_ops.py must not shadow the package

from PIL import Image, ImageDraw  # noqa: E402

import damage_ops.crush  # noqa: E402,F401
import damage_ops.deconstruction  # noqa: E402,F401
from crush_modes_sheet import _outline, _top_center_face, render  # noqa: E402
from damage_ops.base import apply  # noqa: E402
from simulator.config.catalog import load_catalog  # noqa: E402
from simulator.core.paths import assets_dir  # noqa: E402


#: the dunnage row: one kind per tile
DUNNAGE_ROW = object()
DUNNAGE_KINDS = ("paper_kraft", "paper_pink", "bubble_wrap", "air_pillows")


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "opened_modes.png"))
    ap.add_argument("--size", type=int, default=360)
    ap.add_argument("--n", type=int, default=4, help="tiles per row")
    a = ap.parse_args(argv)
    cat = load_catalog(assets_dir() / "catalogs" / "transfer.yaml")
    cartons = [s for s in cat.skus if s.kind == "carton"]
    rows = [("box_open", {"mode": "box_open", "opening_mm": 110.0}),
            ("box_open + contents", {"mode": "box_open", "opening_mm": 110.0, "contents": True}),
            ("box_open + dunnage: kraft paper, pink paper, bubble wrap, air pillows",
             {"mode": "box_open", "opening_mm": 110.0, "contents": True, "dunnage": DUNNAGE_ROW}),
            ("mangle", {"mode": "mangle", "depth_mm": 30.0, "radius_mm": 60.0})]
    S, head = a.size, 16
    sheet = Image.new("RGB", (S * a.n, (S + head) * len(rows)), (30, 30, 30))
    dr = ImageDraw.Draw(sheet)
    for i, (title, prm) in enumerate(rows):
        for j in range(a.n):
            base = cat.build(cartons[j % len(cartons)])
            prm_j = dict(prm)
            if prm_j.get("dunnage") is DUNNAGE_ROW:
                prm_j["dunnage"] = DUNNAGE_KINDS[j % len(DUNNAGE_KINDS)]
            op = "crush" if prm["mode"] == "mangle" else "deconstruction"
            if op == "crush":
                prm_j["center"] = _top_center_face(base)
            q, rec = apply(base, op, prm_j, np.random.default_rng([i, j]))
            lab = np.flatnonzero(q.damage_id == len(q.damages))
            # the opened box stands on its bottom; shift so it rests on z = 0 for the view
            rgb, _ = render(q, cat.materials, S, 200, 25)
            _, mask = render(q, cat.materials, S // 3, 200, 35, mask_faces=lab)
            x, y = j * S, i * (S + head)
            sheet.paste(Image.fromarray(rgb), (x, y + head))
            inset = _outline(render(q, cat.materials, S // 3, 200, 35)[0], mask)
            sheet.paste(Image.fromarray(inset), (x + S - S // 3, y + head))
            if op == "crush":
                what = "+".join(c["mode"] for c in rec.region["components"])
            else:
                what = " ".join(f"{f['angle_deg']:.0f}" + ("b" if f.get("bend_deg") else "") for f in rec.region["flaps"])
                what = f"flaps {what}, rim {rec.region['rim_dent']['depth_mm']:.0f} mm" if rec.region.get("rim_dent") else what
            dr.text((x + 4, y + 2), f"{title}: {what}"[:70], fill=(235, 235, 235))
            print(title, j, what, rec.severity, flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


if __name__ == "__main__":
    print(main())
