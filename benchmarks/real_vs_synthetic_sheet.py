"""Real photos beside synthetic item crops, one row per damage category (and intact).

    python benchmarks/real_vs_synthetic_sheet.py --real ../shared/real-dev --synthetic DATASET --out sheet.png

Real categories come from the real folder's manifest.csv (``label``, ``file``,
``damage_types`` with crush/dent, tear, puncture/hole, open/deconstructed), mapped to
Kaputt categories; synthetic crops are cut from the instance masks by the harness's
loader (a view is damaged when >= --min-px damage pixels are visible) and grouped
by the category of their visible damage. Writes one PNG: per row, --per real
thumbnails on the left, --per synthetic crops on the right.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root before benchmarks/ (its damage_ops.py)
from harness.data import load_synthetic  # noqa: E402

REAL_TO_KAPUTT = {"crush/dent": "deformation", "tear": "penetration", "puncture/hole": "penetration",
                  "open/deconstructed": "deconstruction"}
ROWS = ("deformation", "penetration", "deconstruction", "intact")


def real_rows(root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {r: [] for r in ROWS}
    man = root / "manifest.csv"
    if not man.is_file():
        raise SystemExit(f"{man}: no manifest.csv (needs columns label, file, damage_types)")
    with man.open() as f:
        for row in csv.DictReader(f):
            if row["label"] == "intact":
                out["intact"].append(root / row["file"])
                continue
            for t in row["damage_types"].split(";"):
                cat = REAL_TO_KAPUTT.get(t.strip())
                if cat and root / row["file"] not in out[cat]:
                    out[cat].append(root / row["file"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True, type=Path)
    ap.add_argument("--synthetic", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--per", type=int, default=6, help="thumbnails per side and row")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--min-px", type=int, default=50)
    ap.add_argument("--limit", type=int, default=400, help="synthetic captures to read")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    real = real_rows(a.real)
    syn = load_synthetic(a.synthetic, size=a.size, min_damage_px=a.min_px, limit=a.limit)
    cats = np.array([c if lab else "intact" for c, lab in zip(syn.categories, syn.labels)])
    s, n, lab_w = a.size, a.per, 120
    sheet = Image.new("RGB", (lab_w + 2 * n * (s + 2) + 20, 24 + len(ROWS) * (s + 4)), (24, 24, 24))
    d = ImageDraw.Draw(sheet)
    d.text((lab_w, 6), "real (real-dev, CC BY 4.0)", fill=(230, 230, 230))
    d.text((lab_w + n * (s + 2) + 20, 6), f"synthetic ({a.synthetic.name})", fill=(230, 230, 230))
    for r, cat in enumerate(ROWS):
        y = 24 + r * (s + 4)
        d.text((6, y + s // 2), cat, fill=(255, 220, 120))
        picks = real[cat]
        for j, p in enumerate(rng.permutation(len(picks))[:n] if picks else []):
            im = Image.open(picks[p]).convert("RGB").resize((s, s))
            sheet.paste(im, (lab_w + j * (s + 2), y))
        idx = np.flatnonzero(np.char.startswith(cats, cat) if cat != "intact" else cats == "intact")
        for j, i in enumerate(rng.permutation(idx)[:n]):
            sheet.paste(Image.fromarray(syn.images[i][..., :3]), (lab_w + n * (s + 2) + 20 + j * (s + 2), y))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
