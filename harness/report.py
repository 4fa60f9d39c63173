"""Study reports: JSON (everything), a markdown table and a PNG plot of metric
vs. real budget k with 95% intervals."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["write_report", "markdown_table", "plot"]

_LABEL = {"scratch": "(a) scratch, real only", "synthetic": "(b) synthetic-pretrained + fine-tuned",
          "shortcut": "shortcut LR (trivial features)"}


def _fmt(m: dict | None, key: str = "mean") -> str:
    if m is None or m.get(key) is None or (isinstance(m[key], float) and math.isnan(m[key])):
        return "n/a"
    lo, hi = m["ci95"]
    return f"{m[key]:.3f} [{lo:.2f}, {hi:.2f}]"


def markdown_table(res: dict) -> str:
    """One row per (k, arm): AUROC, AP, recall@FPR 1% and 0.1% (seed mean
    [95% bootstrap CI]); then lift rows. Notes on capped budgets and too few
    negatives."""
    s = res["summary"]
    lines = ["| k (real) | arm | AUROC | AP | recall@FPR1% | recall@FPR0.1% |", "|---|---|---|---|---|---|"]
    kname = {b["used"]: b["requested"] + (f" (capped to {b['used']})" if b["capped"] else "") +
             (f" (= {', '.join(b['also'])})" if b.get("also") else "") for b in res["budgets"]}
    for c in s["cells"]:
        lines.append(f"| {kname.get(c['k'], c['k'])} | {_LABEL[c['arm']]} | {_fmt(c['auroc'])} | {_fmt(c['ap'])} | "
                     f"{_fmt(c['recall@fpr0.01'])} | {_fmt(c['recall@fpr0.001'])} |")
    lines += ["", "| k (real) | lift (b) - (a) | AUROC | AP | recall@FPR1% |", "|---|---|---|---|---|"]
    for r in s["lift"]:
        lines.append(f"| {kname.get(r['k'], r['k'])} | vs {r['vs']} | {_fmt(r['auroc'])} | {_fmt(r['ap'])} | "
                     f"{_fmt(r['recall@fpr0.01'])} |")
    t = res["real"]["test"]
    notes = [f"Test set: {t['n']} real images ({t['damaged']} damaged, {t['intact']} intact), "
             f"{res['split']['mode']} split; never used for training or threshold choice."]
    for f, need in ((0.01, 100), (0.001, 1000)):
        if t["intact"] < need:
            notes.append(f"FPR {f:g}: only {t['intact']} negatives (< {need}); the value is recall at zero false "
                         "positives, a lower bound, and the interval is wide.")
    capped = [b for b in res["budgets"] if b["capped"]]
    if capped:
        notes.append("Capped budgets: " + ", ".join(f"{b['requested']} -> {b['used']}" for b in capped)
                     + f" (real pool has {res['real']['pool']['n']} images).")
    notes.append("Cells: mean over seeds [95% CI from a stratified bootstrap of test images, paired across cells]. "
                 "k = 0 lift is against chance (no real data to train (a) on).")
    sc = [c for c in s["cells"] if c["arm"] == "shortcut"]
    md = [c for c in s["cells"] if c["arm"] != "shortcut"]
    if sc and md:
        best_sc = max(c["auroc"]["mean"] for c in sc)
        best_md = max(c["auroc"]["mean"] for c in md)
        if best_sc >= best_md - 0.05:
            notes.append(f"WARNING: the shortcut baseline (best AUROC {best_sc:.3f}) scores near the CNNs "
                         f"(best {best_md:.3f}): the data may have a brightness/background/aspect shortcut.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(res: dict, path: str | Path, metrics: tuple[str, ...] = ("auroc", "ap", "recall@fpr0.01")) -> None:
    """PNG: one panel per metric, metric vs. k for each arm with 95% bands."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cells = res["summary"]["cells"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), dpi=90)
    colors = {"scratch": "tab:blue", "synthetic": "tab:orange", "shortcut": "tab:gray"}
    ks = sorted({c["k"] for c in cells})
    xpos = {k: i for i, k in enumerate(ks)}
    for ax, m in zip(np.atleast_1d(axes), metrics):
        for arm in ("scratch", "synthetic", "shortcut"):
            cs = sorted((c for c in cells if c["arm"] == arm), key=lambda c: c["k"])
            if not cs:
                continue
            x = [xpos[c["k"]] for c in cs]
            y = [c[m]["mean"] for c in cs]
            lo = [c[m]["ci95"][0] for c in cs]
            hi = [c[m]["ci95"][1] for c in cs]
            ax.plot(x, y, "o-", color=colors[arm], label=_LABEL[arm], lw=1.5, ms=4)
            ax.fill_between(x, lo, hi, color=colors[arm], alpha=0.15)
        if m == "auroc":
            ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("real training images k")
        ax.set_ylabel(m)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(res.get("title", "damage detection vs. real budget (mean over seeds, 95% CI)"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(res: dict, out_dir: str | Path) -> dict:
    """Write ``results.json``, ``results.md`` and ``lift.png`` into ``out_dir``;
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "plot": out / "lift.png"}
    paths["json"].write_text(json.dumps(res, indent=1, default=float))
    head = f"# Lift study\n\nwall time {res.get('seconds', float('nan')):.0f} s\n\n"
    paths["markdown"].write_text(head + markdown_table(res))
    plot(res, paths["plot"])
    return {k: str(v) for k, v in paths.items()}
