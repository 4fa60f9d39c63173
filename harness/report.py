"""Study reports: JSON (everything), a markdown table and a PNG plot of metric
vs. real budget k per arm, the synthetic-only level as a horizontal line and
the data-equivalence marked."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .equivalence import format_k
from .metrics import VAND_METRICS

__all__ = ["write_report", "markdown_table", "plot", "equivalence_text"]

_LABEL = {"real_only": "real only", "synthetic_only": "synthetic only", "synthetic+k": "synthetic + k real",
          "shortcut": "shortcut LR (trivial features)"}
_COLORS = {"real_only": "tab:blue", "synthetic_only": "tab:orange", "synthetic+k": "tab:green", "shortcut": "tab:gray"}


def _fmt(m: dict | None, key: str = "mean") -> str:
    if m is None or not math.isfinite(_f(m.get(key))):
        return "n/a"
    lo, hi = (_f(v) for v in m["ci95"])
    return f"{m[key]:.3f} [{lo:.2f}, {hi:.2f}]"


def _arm_label(c: dict) -> str:
    return "shortcut LR on synthetic" if c["arm"] == "shortcut" and c["k"] == 0 else _LABEL[c["arm"]]


def _defined(cells: list[dict], metric: str) -> bool:
    return any(math.isfinite(_f(c[metric]["mean"])) for c in cells)


def _f(v) -> float:
    """A JSON number back as float (null = NaN)."""
    return math.nan if v is None else float(v)


def _eq_nums(eq: dict) -> dict:
    """An equivalence record with its k_num and ci95 as numbers again (a
    results.json read back has null for the censored 0 / inf, and the text)."""
    def num(v, text):
        if v is not None:
            return v
        return 0.0 if text.startswith("<") else math.inf if text.startswith(">") else math.nan
    if "k_text" not in eq:
        return eq
    return {**eq, "k_num": num(eq["k_num"], eq["k_text"]),
            "ci95": [num(v, t) for v, t in zip(eq["ci95"], eq["ci95_text"])]}


def equivalence_text(eq: dict) -> str:
    """``"7.3 real images [95% CI 3.1, >32]"`` from an equivalence record."""
    eq = _eq_nums(eq)
    kmin, kmax = eq["ks"][0], eq["ks"][-1]
    pt = format_k(eq["k_num"], kmin, kmax)
    lo, hi = (format_k(v, kmin, kmax) for v in eq["ci95"])
    return f"{pt} real images [95% CI {lo}, {hi}]"


def markdown_table(res: dict) -> str:
    """Rows per (k, arm) with the VAND metrics (seed mean [95% bootstrap CI]),
    then lift rows, data-equivalence, per-category AUROC and notes (capped
    budgets, too few negatives, the shortcut warning)."""
    s = res["summary"]
    cells = s["cells"]
    metrics = [m for m in VAND_METRICS if _defined(cells, m)]
    kname = {b["used"]: b["requested"] + (f" (capped to {b['used']})" if b["capped"] else "") +
             (f" (= {', '.join(b['also'])})" if b.get("also") else "") for b in res["budgets"]}
    lines = ["| k (real) | arm | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for c in cells:
        k = "0" if c["k"] == 0 else kname.get(c["k"], c["k"])
        lines.append(f"| {k} | {_arm_label(c)} | " + " | ".join(_fmt(c[m]) for m in metrics) + " |")
    if s["lift"]:
        lines += ["", "| k (real) | lift: (synthetic + k) - (real only) | " + " | ".join(metrics) + " |",
                  "|---|---|" + "---|" * len(metrics)]
        for r in s["lift"]:
            lines.append(f"| {kname.get(r['k'], r['k'])} | | " + " | ".join(_fmt(r[m]) for m in metrics) + " |")
    eqm = s.get("equivalence_metric", "AUROC")
    eq = s.get("equivalence", {})
    if eq:
        lines += ["", "**Data-equivalence** (the k at which the real-only curve reaches the synthetic-only score, "
                  "interpolated in log k; 95% CI from a bootstrap over seeds and test images):", ""]
        t = res["real"]["test"]
        for m in metrics:
            if m == "recall@50%precision" and t["damaged"] >= t["intact"]:
                continue  # trivially 1 (see the note below)
            if m in eq:
                e = eq[m]
                star = " (headline)" if m == eqm else ""
                lines.append(f"- {m}{star}: synthetic only {e['target']:.3f} = **{equivalence_text(e)}**; "
                             f"bootstrap draws below k={e['ks'][0]:g}: {e['share_below']:.0%}, "
                             f"above k={e['ks'][-1]:g}: {e['share_above']:.0%}")
    cat_cells = [c for c in cells if "per_category" in c]
    if cat_cells:
        cats = sorted(cat_cells[0]["per_category"])
        lines += ["", "| k | arm | " + " | ".join(f"AUROC {c}" for c in cats) + " |", "|---|---|" + "---|" * len(cats)]
        for c in cat_cells:
            lines.append(f"| {c['k']} | {_arm_label(c)} | "
                         + " | ".join(_fmt(c["per_category"][x]["AUROC"]) for x in cats) + " |")
    t = res["real"]["test"]
    notes = [f"Test set: {t['n']} real images ({t['damaged']} damaged, {t['intact']} intact), "
             f"{res['split']['mode']} split; never used for training. Metrics are threshold-free on the test set."]
    if t["intact"] < 100:
        notes.append(f"recall@1%FPR: only {t['intact']} negatives (< 100); the value is recall at zero false "
                     "positives, a lower bound, and the interval is wide.")
    if t["intact"] < 1000:
        notes.append(f"recall@0.1%FPR: not reported (needs >= 1000 negatives, the test set has {t['intact']}).")
    if t["damaged"] >= t["intact"]:
        notes.append(f"recall@50%precision: the test set is {t['damaged'] / t['n']:.0%} damaged, so calling "
                     "everything damaged already has precision >= 50% and this recall is 1 for any scorer; "
                     "it says nothing here.")
    if "AP_major" not in metrics:
        notes.append("AP_major: not reported (the test set has no severity labels).")
    capped = [b for b in res["budgets"] if b["capped"]]
    if capped:
        notes.append("Capped budgets: " + ", ".join(f"{b['requested']} -> {b['used']}" for b in capped)
                     + f" (real pool has {res['real']['pool']['n']} images).")
    notes.append("Cells: mean over seeds [95% CI from a stratified bootstrap of test images, paired across cells]; "
                 "each seed draws different real images (nested across k).")
    sc = [c for c in cells if c["arm"] == "shortcut"]
    md = [c for c in cells if c["arm"] != "shortcut"]
    if sc and md:
        best_sc = max(_f(c["AUROC"]["mean"]) for c in sc)
        best_md = max(_f(c["AUROC"]["mean"]) for c in md)
        if best_sc >= best_md - 0.05:
            notes.append(f"WARNING: the shortcut baseline (best AUROC {best_sc:.3f}) scores near the models "
                         f"(best {best_md:.3f}): the data may have a brightness/background/aspect shortcut.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(res: dict, path: str | Path, metrics: tuple[str, ...] | None = None) -> None:
    """PNG: one panel per metric, metric vs. k (log scale) for real only,
    synthetic + k and the shortcut with 95% bands; synthetic only (and the
    shortcut trained on synthetic) as horizontal lines; the data-equivalence
    k (point and interval) marked on the synthetic-only line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    s = res["summary"]
    cells = s["cells"]
    eqm = s.get("equivalence_metric", "AUROC")
    if metrics is None:
        t = res["real"]["test"]
        # recall@50%precision is 1 for any scorer when the test set is >= 50% damaged
        r50 = "recall@50%precision" if t["damaged"] < t["intact"] else "recall@1%FPR"
        metrics = tuple(dict.fromkeys([eqm] + [m for m in ("AUROC", "AP_any", r50) if _defined(cells, m)]))
    ks = sorted({c["k"] for c in cells if c["k"] > 0})
    kmin, kmax = (ks[0], ks[-1]) if ks else (1, 2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), dpi=90)
    for ax, m in zip(np.atleast_1d(axes), metrics):
        for arm in ("real_only", "synthetic+k", "shortcut"):
            cs = sorted((c for c in cells if c["arm"] == arm and c["k"] > 0), key=lambda c: c["k"])
            if not cs:
                continue
            x = [c["k"] for c in cs]
            ax.plot(x, [_f(c[m]["mean"]) for c in cs], "o-", color=_COLORS[arm], label=_LABEL[arm], lw=1.5, ms=4)
            ax.fill_between(x, [_f(c[m]["ci95"][0]) for c in cs], [_f(c[m]["ci95"][1]) for c in cs],
                            color=_COLORS[arm], alpha=0.15)
        for c in cells:
            if c["k"] != 0:
                continue
            arm = c["arm"]
            lab = _LABEL[arm] if arm == "synthetic_only" else "shortcut LR on synthetic"
            if not math.isfinite(_f(c[m]["mean"])):
                continue
            ax.axhline(_f(c[m]["mean"]), color=_COLORS[arm], lw=1.5 if arm == "synthetic_only" else 0.8,
                       ls="--" if arm == "synthetic_only" else ":", label=lab)
            if arm == "synthetic_only":
                ax.axhspan(*(_f(v) for v in c[m]["ci95"]), color=_COLORS[arm], alpha=0.08)
        eq = s.get("equivalence", {}).get(m)
        if eq is not None:
            eq = _eq_nums(eq)
            lo, hi = (min(max(v, kmin / 1.5), kmax * 1.5) for v in eq["ci95"])
            y = eq["target"]
            ax.plot([lo, hi], [y, y], color="k", lw=3, alpha=0.35, solid_capstyle="butt")
            if eq["censored"] is None:
                ax.plot([eq["k"]], [y], "kD", ms=7, label=f"data-equivalence {eq['k']:.1f}")
            else:
                xk = kmin / 1.5 if eq["censored"] == "below" else kmax * 1.5
                ax.plot([xk], [y], "k<" if eq["censored"] == "below" else "k>", ms=8,
                        label=f"data-equivalence {format_k(eq['k_num'], kmin, kmax)}")
        ax.set_xscale("log", base=2)
        if ks:
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.set_xlim(kmin / 1.8, kmax * 1.8)
        ax.set_xlabel("real training images k (log scale)")
        ax.set_ylabel(m)
        if m == "AUROC":
            ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")
    fig.suptitle(res.get("title", "damage detection vs. real budget (mean over seeds, 95% CI)"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _finite(x):
    """JSON-safe copy: NaN and +-inf become null (strict JSON has neither);
    censored data-equivalence bounds are kept as text in ``ci95_text``."""
    if isinstance(x, dict):
        out = {k: _finite(v) for k, v in x.items()}
        if "k_num" in x and "ci95" in x and "ks" in x:
            out["ci95_text"] = [format_k(v, x["ks"][0], x["ks"][-1]) for v in x["ci95"]]
            out["k_text"] = format_k(x["k_num"], x["ks"][0], x["ks"][-1])
        return out
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def write_report(res: dict, out_dir: str | Path) -> dict:
    """Write ``results.json``, ``results.md`` and ``lift.png`` into ``out_dir``;
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "plot": out / "lift.png"}
    paths["json"].write_text(json.dumps(_finite(res), indent=1, default=float))
    head = f"# Lift study\n\nwall time {res.get('seconds', float('nan')):.0f} s\n\n"
    paths["markdown"].write_text(head + markdown_table(res))
    plot(res, paths["plot"])
    return {k: str(v) for k, v in paths.items()}
