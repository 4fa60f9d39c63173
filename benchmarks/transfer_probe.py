"""What a synthetic corpus teaches about real photos, per damage category.

Trains a frozen-ImageNet probe (EfficientNet-Lite0 features, the harness's
logistic head) on synthetic item crops ONLY and scores it on every image of a
real set, which it never trains on. Prints, and writes to ``--out``:

- AUROC on the real set with a stratified bootstrap interval, and the AUROC of
  each real damage type (its damaged photos against all intact ones);
- KID x1000 between synthetic and real features (overall, damaged only);
- with ``--ablate``: the same probe retrained on the corpus without each
  synthetic damage category (its damaged views dropped, intact ones kept), and
  on intact views plus that one category only: which synthetic damage teaches
  which real damage. Drawn as a heatmap (``ablation.png``).

A damaged view's category is the category with the most visible damage pixels
in it (``harness.data``). Real per-image damage types come from the real set's
``manifest.csv`` (columns ``file`` and ``damage_types``, ``;``-separated) when
it has one, else from ``damaged/<type>/`` sub-folders.

    python benchmarks/transfer_probe.py --real ../shared/real-dev renders/transfer --ablate --out docs/ablation

The peer of the figures is the real set itself: the same probe trained on real
photos is the ceiling (``lift study``), chance is 0.5.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import metrics as M  # noqa: E402
from harness.backbones import HeadConfig, cached_features, head_scores, load_backbone, train_head  # noqa: E402
from harness.data import load_synthetic  # noqa: E402
from harness.real import load_real  # noqa: E402
from harness.realism import kid  # noqa: E402


def real_types(real, root: Path) -> list[set[str]]:
    """Per real image, its set of damage types (empty for intact)."""
    man = root / "manifest.csv"
    by_file: dict[str, set[str]] = {}
    if man.is_file():
        with open(man, newline="") as f:
            for row in csv.DictReader(f):
                t = (row.get("damage_types") or "").strip()
                by_file[Path(row.get("file", "")).name] = {x for x in t.split(";") if x and x != "none"}
    out = []
    for src, lab, cat in zip(real.sources, real.labels, real.categories):
        if not lab:
            out.append(set())
        elif Path(src).name in by_file:
            out.append(by_file[Path(src).name] or {"unknown"})
        else:
            out.append({cat or "damaged"})
    return out


def evaluate(Fs, ys, Fr, yr, types, rng, n_boot) -> dict:
    head = train_head(Fs, ys, cfg=HeadConfig(), seed=0)
    s = head_scores(head, Fr)
    lo, hi = M.bootstrap_ci(yr, s, M.roc_auc, rng, n_boot=n_boot)
    res = {"train_views": int(len(ys)), "train_damaged": int(np.sum(ys)), "auroc": M.roc_auc(yr, s), "auroc_ci95": [lo, hi], "ap": M.average_precision(yr, s),
           "recall_at_50_precision": M.recall_at_precision(yr, s, 0.5), "per_real_type": {}}
    neg = yr == 0
    for t in sorted({t for ts in types for t in ts}):
        pos = np.array([t in ts for ts in types])
        idx = pos | neg
        res["per_real_type"][t] = {"n": int(pos.sum()), "auroc": M.roc_auc(yr[idx], s[idx])}
    return res


def heatmap(rows: list[tuple[str, dict]], cols: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A = np.array([[r["auroc"]] + [r["per_real_type"].get(c, {}).get("auroc", np.nan) for c in cols] for _, r in rows])
    fig, ax = plt.subplots(figsize=(1.6 + 1.25 * (len(cols) + 1), 0.9 + 0.42 * len(rows)))
    im = ax.imshow(A, cmap="RdYlGn", vmin=0.4, vmax=1.0, aspect="auto")
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            if np.isfinite(A[i, j]):
                ax.text(j, i, f"{A[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols) + 1), ["all real"] + [f"real {c}" for c in cols], rotation=25, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{n} ({r['train_damaged']} damaged views)" for n, r in rows], fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="AUROC on real photos")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("synthetic", nargs="+", help="damagesim dataset folder(s)")
    ap.add_argument("--real", required=True, help="real set (damaged/ + intact/ folders, MVTec, COCO, kaputt:ROOT)")
    ap.add_argument("--limit", type=int, default=None, help="first N captures of each synthetic folder")
    ap.add_argument("--min-damage-px", type=int, default=50)
    ap.add_argument("--size", type=int, default=224, help="crop side (the backbone's input)")
    ap.add_argument("--cache", default="renders/.feature_cache")
    ap.add_argument("--ablate", action="store_true", help="leave-one-category-out and one-category-only probes")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default=None, help="folder for probe.json, probe.md (and ablation.png)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    bb = load_backbone("efficientnet-lite0")
    real = load_real(a.real, size=a.size)
    syn = load_synthetic(a.synthetic, size=a.size, min_damage_px=a.min_damage_px, limit=a.limit, progress=True)
    Fr = cached_features(bb, real.images, a.cache, progress=True, desc="real features")
    Fs = cached_features(bb, syn.images, a.cache, progress=True, desc="synthetic features")
    yr, ys = np.asarray(real.labels), np.asarray(syn.labels)
    types = real_types(real, Path(a.real)) if not str(a.real).startswith("kaputt:") else \
        [({c} if c else set()) for c in real.categories]
    rng = np.random.default_rng(0)
    cats = np.array(syn.categories)
    res = {"synthetic": [str(p) for p in a.synthetic], "real": str(a.real), "views": int(len(ys)),
           "damaged_views": int(ys.sum()), "real_images": int(len(yr)),
           "synthetic_categories": {c: int((cats == c).sum()) for c in sorted(set(cats[ys == 1]))}}
    res["probe"] = evaluate(Fs, ys, Fr, yr, types, rng, a.n_boot)
    k_all = kid(Fs, Fr, rng, n_subsets=50, subset_size=100)
    k_dmg = kid(Fs[ys == 1], Fr[yr == 1], rng, n_subsets=50, subset_size=100)
    res["kid_x1000"] = {"all": 1000 * k_all["mean"], "all_std": 1000 * k_all["std"],
                        "damaged": 1000 * k_dmg["mean"], "damaged_std": 1000 * k_dmg["std"]}
    p = res["probe"]
    print(f"views {len(ys)} ({int(ys.sum())} damaged) · real {len(yr)} · AUROC {p['auroc']:.3f} "
          f"[{p['auroc_ci95'][0]:.2f}, {p['auroc_ci95'][1]:.2f}] · KID x1000 {res['kid_x1000']['all']:.0f} "
          f"± {res['kid_x1000']['all_std']:.0f} (damaged {res['kid_x1000']['damaged']:.0f})")
    for t, v in p["per_real_type"].items():
        print(f"  real {t:20s} n={v['n']:3d}  AUROC {v['auroc']:.3f}")
    rows = [("all synthetic categories", p)]
    if a.ablate:
        res["ablation"] = {}
        for c in res["synthetic_categories"]:
            drop = (ys == 1) & (cats == c)
            only = (ys == 0) | ((ys == 1) & (cats == c))
            r_wo = evaluate(Fs[~drop], ys[~drop], Fr, yr, types, rng, a.n_boot)
            r_only = evaluate(Fs[only], ys[only], Fr, yr, types, rng, a.n_boot)
            res["ablation"][c] = {"without": r_wo, "only": r_only}
            rows += [(f"without {c}", r_wo), (f"only {c}", r_only)]
            print(f"  without {c:15s} AUROC {r_wo['auroc']:.3f}   only {c:15s} AUROC {r_only['auroc']:.3f}")
    res["seconds"] = time.perf_counter() - t0
    print(f"time {res['seconds']:.0f} s")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(res, indent=1))
        cols = list(p["per_real_type"])
        lines = [f"# Transfer probe: {', '.join(res['synthetic'])} → {res['real']}", "",
                 f"{res['views']} synthetic views ({res['damaged_views']} damaged), {res['real_images']} real images "
                 "(scored, never trained on). KID ×1000: "
                 f"{res['kid_x1000']['all']:.0f} ± {res['kid_x1000']['all_std']:.0f} (damaged "
                 f"{res['kid_x1000']['damaged']:.0f}).", "",
                 "| synthetic training set | AUROC (all real) | " + " | ".join(f"real {c}" for c in cols) + " |",
                 "|---|---|" + "---|" * len(cols)]
        for name, r in rows:
            lines.append(f"| {name} | {r['auroc']:.3f} [{r['auroc_ci95'][0]:.2f}, {r['auroc_ci95'][1]:.2f}] | "
                         + " | ".join(f"{r['per_real_type'].get(c, {}).get('auroc', float('nan')):.3f}" for c in cols)
                         + " |")
        (out / "probe.md").write_text("\n".join(lines) + "\n")
        if a.ablate:
            heatmap(rows, cols, out / "ablation.png", "frozen EfficientNet-Lite0 probe trained on synthetic crops only")
        print(f"wrote {out}/probe.json, probe.md" + (", ablation.png" if a.ablate else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
