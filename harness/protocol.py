"""The lift study: for each real budget k and seed, (a) a CNN trained from
scratch on k real images, (b) the synthetic-pretrained CNN fine-tuned on the
same k, and the shortcut baseline on the same k; all scored on one fixed real
test set that never enters training or threshold choice.

Index discipline (tested): the real data is split once into a *pool* and a
*test* set (group- and class-stratified, or the test set is a separate folder);
every run records the pool indices it trained on (``train_idx``) and calibrated
its threshold on (``calib_idx``), both subsets of the pool; ``test_idx`` is
disjoint from both. Budgets are nested per seed (the first k of a seeded,
class-stratified order of the pool), so lift across k is not confounded by
drawing new images. A budget above the pool size is capped and reported.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import metrics as M
from .baselines import LogisticRegression, shortcut_features
from .data import ImageSet

__all__ = ["StudyConfig", "stratified_split", "budget_order", "resolve_budgets", "run_study", "parse_budgets",
           "ARMS"]

ARMS = ("scratch", "synthetic", "shortcut")


def parse_budgets(text: str) -> tuple[int | None, ...]:
    """``"0,10,25,all"`` -> ``(0, 10, 25, None)``; None = all available."""
    out = []
    for tok in text.split(","):
        tok = tok.strip().lower()
        if tok == "all":
            out.append(None)
            continue
        try:
            v = int(tok)
        except ValueError:
            raise ValueError(f"budget {tok!r} is not an integer or 'all' (in {text!r})") from None
        if v < 0:
            raise ValueError(f"budget must be >= 0, got {v} (in {text!r})")
        out.append(v)
    if not out:
        raise ValueError(f"no budgets in {text!r}")
    return tuple(out)


@dataclass(frozen=True)
class StudyConfig:
    """budgets: real training images per run (None = all of the pool);
    seeds: runs per budget; test_frac: share of real data held out as the fixed
    test set (ignored with a separate test set); split_seed: seed of that split;
    synth_val_frac: synthetic captures held out to pick the k = 0 threshold;
    pretrain / finetune: :class:`harness.train.TrainConfig` (finetune also
    trains the scratch arm, so both arms get identical steps on identical data);
    pretrain_per_seed: pretrain one synthetic model per seed (else one shared);
    width: CNN width; n_boot: bootstrap resamples; device: auto|cpu|cuda."""

    budgets: tuple = (0, 10, 25, 50, 100, None)
    seeds: int = 3
    test_frac: float = 0.4
    split_seed: int = 0
    synth_val_frac: float = 0.1
    pretrain: object = None
    finetune: object = None
    pretrain_per_seed: bool = False
    width: int = 16
    n_boot: int = 1000
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if not 0 < self.test_frac < 1:
            raise ValueError(f"test_frac must be in (0, 1), got {self.test_frac}")
        if not self.budgets:
            raise ValueError("budgets must not be empty")


def _group_labels(labels: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique groups, each group's label (damaged if any member is) and the member->group index."""
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    glab = np.zeros(len(uniq), np.int64)
    np.maximum.at(glab, inv, labels)
    return uniq, glab, inv


def stratified_split(labels: np.ndarray, groups: Sequence[str], test_frac: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(pool_idx, test_idx)``, sorted int64 arrays.

    Whole groups go to one side; each class (of groups) contributes
    round(test_frac * n_class) groups to the test side, at least one and at
    most n_class - 1 when the class has 2+ groups.
    """
    labels = np.asarray(labels)
    _, glab, inv = _group_labels(labels, groups)
    test_groups = []
    for c in (0, 1):
        g = np.where(glab == c)[0]
        if g.size == 0:
            continue
        n_test = int(round(test_frac * g.size))
        if g.size >= 2:
            n_test = min(max(n_test, 1), g.size - 1)
        test_groups.append(rng.permutation(g)[:n_test])
    is_test = np.isin(inv, np.concatenate(test_groups) if test_groups else np.zeros(0, np.int64))
    return np.where(~is_test)[0], np.where(is_test)[0]


def budget_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded order of ``range(n)`` whose every prefix is class-stratified:
    positives and negatives are shuffled separately and interleaved at their
    overall rate, with one of each first. The first k = a budget of k."""
    labels = np.asarray(labels)
    pos, neg = rng.permutation(np.where(labels == 1)[0]), rng.permutation(np.where(labels == 0)[0])
    n = len(labels)
    rate = pos.size / n if n else 0.0
    out, i, j = [], 0, 0
    if pos.size and neg.size:
        out, i, j = [pos[0], neg[0]], 1, 1
    while i + j < n:
        if i < pos.size and (j >= neg.size or i < round(rate * (i + j + 1))):
            out.append(pos[i])
            i += 1
        else:
            out.append(neg[j])
            j += 1
    return np.asarray(out, np.int64)


def resolve_budgets(budgets: Sequence[int | None], n_pool: int) -> list[dict]:
    """``[{"requested": "10"|"all", "used": int, "capped": bool}]``, duplicates of a
    used size (after capping) dropped but kept in ``"also"``."""
    out: list[dict] = []
    for b in budgets:
        used = n_pool if b is None else min(b, n_pool)
        rec = {"requested": "all" if b is None else str(b), "used": int(used), "capped": b is not None and b > n_pool}
        dup = next((o for o in out if o["used"] == used), None)
        if dup is not None:
            dup.setdefault("also", []).append(rec["requested"])
        else:
            out.append(rec)
    return out


def _threshold(y: np.ndarray, s: np.ndarray, fpr: float = 0.01) -> float | None:
    if y.sum() == 0 or y.sum() == len(y):
        return None
    return M.threshold_at_fpr(y, s, fpr)


@dataclass
class _Trainer:
    """Torch side of the study, separate so tests can spy on what trains."""

    cfg: StudyConfig
    in_ch: int
    progress: bool = True
    log: list = field(default_factory=list)

    def pretrain(self, synth: ImageSet, seed: int):
        from .train import new_model, train

        m = new_model(seed, self.in_ch, self.cfg.width, seg_head=synth.masks is not None)
        info = train(m, synth, self.cfg.pretrain, seed, self.cfg.device, self.progress, desc=f"pretrain s{seed}")
        self.log.append({"what": "pretrain", "seed": seed, "n": len(synth), "seconds": info["seconds"],
                         "loss_first": float(np.mean(info["losses"][:20])),
                         "loss_last": float(np.mean(info["losses"][-20:]))})
        return m

    def finetune(self, model, data: ImageSet, seed: int, desc: str):
        from .train import clone, new_model, train

        m = new_model(seed, self.in_ch, self.cfg.width, seg_head=False) if model is None else clone(model)
        info = train(m, data, self.cfg.finetune, seed, self.cfg.device, self.progress, desc=desc)
        self.log.append({"what": desc, "seed": seed, "n": len(data), "seconds": info["seconds"]})
        return m

    def score(self, model, images: np.ndarray) -> np.ndarray:
        from .train import predict

        return predict(model, images, self.cfg.device)


def run_study(real: ImageSet, synth: ImageSet | None, cfg: StudyConfig, real_test: ImageSet | None = None,
              trainer: _Trainer | None = None, progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    """Run the full protocol; returns the results dict (see :mod:`harness.report`).

    real: labelled real images (split into pool + test unless ``real_test``);
    synth: synthetic views for pretraining (None: the synthetic arm is skipped).
    """
    t_start = time.perf_counter()
    if cfg.pretrain is None or cfg.finetune is None:
        raise ValueError("StudyConfig.pretrain and .finetune must be TrainConfig instances")
    if real_test is None:
        pool_idx, test_idx = stratified_split(real.labels, real.groups, cfg.test_frac,
                                              np.random.default_rng([cfg.split_seed, 7]))
        pool, test = real.subset(pool_idx), real.subset(test_idx)
        split = {"mode": "stratified", "test_frac": cfg.test_frac, "split_seed": cfg.split_seed}
    else:
        overlap = set(real.sources) & set(real_test.sources)
        if overlap:
            raise ValueError(f"--real-test shares {len(overlap)} images with --real, e.g. {sorted(overlap)[0]}")
        pool_idx, test_idx = np.arange(len(real)), np.arange(len(real_test))
        pool, test = real, real_test
        split = {"mode": "separate"}
    for name, s in (("real pool", pool), ("real test", test)):
        c = s.counts()
        if c["damaged"] == 0 or c["intact"] == 0:
            raise ValueError(f"{name} needs damaged and intact images, got {c}")
    in_ch = 3
    if synth is not None and synth.images.shape[3] != real.images.shape[3]:
        raise ValueError(f"synthetic images have {synth.images.shape[3]} channels, real {real.images.shape[3]}; "
                         "real data is RGB: load synthetic without depth")
    trainer = trainer or _Trainer(cfg, in_ch, progress)
    budgets = resolve_budgets(cfg.budgets, len(pool))
    for b in budgets:
        if b["capped"]:
            echo(f"lift: budget {b['requested']} capped to {b['used']} (real pool has {len(pool)} images)")

    res: dict = {"config": _cfg_dict(cfg), "split": split, "budgets": budgets,
                 "real": {"pool": pool.counts(), "test": test.counts(), "meta": real.meta},
                 "pool_sources": pool.sources, "test_sources": test.sources,
                 "test_idx": test_idx.tolist(), "pool_idx": pool_idx.tolist(), "runs": []}
    # synthetic: train / val split by capture, val picks the k = 0 threshold
    pretrained: dict[int, object] = {}
    if synth is not None:
        s_tr, s_val = stratified_split(synth.labels, synth.groups, cfg.synth_val_frac,
                                       np.random.default_rng([cfg.split_seed, 11]))
        synth_tr, synth_val = synth.subset(s_tr), synth.subset(s_val)
        res["synthetic"] = {"train": synth_tr.counts(), "val": synth_val.counts(), "meta": synth.meta}
        for seed in (range(cfg.seeds) if cfg.pretrain_per_seed else [0]):
            echo(f"lift: pretraining on {len(synth_tr)} synthetic views (seed {seed})")
            m = trainer.pretrain(synth_tr, seed)
            sv = trainer.score(m, synth_val.images)
            res["synthetic"].setdefault("val_auroc", {})[str(seed)] = M.roc_auc(synth_val.labels, sv)
            pretrained[seed] = (m, _threshold(synth_val.labels, sv))
        res["synthetic"]["pretrain_seconds"] = sum(e["seconds"] for e in trainer.log if e["what"] == "pretrain")
    feats_test = shortcut_features(test.images, test.aspect)
    for seed in range(cfg.seeds):
        order = budget_order(pool.labels, np.random.default_rng([cfg.split_seed, 101, seed]))
        for b in budgets:
            k = b["used"]
            tr = np.sort(order[:k])
            tr_set = pool.subset(tr)
            have_both = k > 0 and 0 < tr_set.labels.sum() < k
            for arm in ARMS:
                run = {"arm": arm, "seed": seed, "budget": b["requested"], "k": k,
                       "train_idx": [int(pool_idx[i]) for i in tr], "calib_idx": [],
                       "train_sources": [pool.sources[i] for i in tr]}
                if arm == "synthetic" and synth is None:
                    continue
                if arm == "scratch" and k == 0:
                    continue  # nothing to train on: chance
                if arm == "shortcut":
                    if k == 0 and synth is None:
                        continue
                    if k == 0:
                        lr = LogisticRegression().fit(shortcut_features(synth_tr.images, synth_tr.aspect),
                                                      synth_tr.labels)
                        run["trained_on"] = "synthetic"
                    elif not have_both:
                        run["skipped"] = "budget has one class only"
                        res["runs"].append(run)
                        continue
                    else:
                        lr = LogisticRegression().fit(shortcut_features(tr_set.images, tr_set.aspect), tr_set.labels)
                    scores = lr.decision_function(feats_test)
                    th = None
                    if k > 0:
                        th = _threshold(tr_set.labels, lr.decision_function(
                            shortcut_features(tr_set.images, tr_set.aspect)))
                        run["calib_idx"] = run["train_idx"]
                else:
                    base = pretrained[seed if cfg.pretrain_per_seed else 0] if arm == "synthetic" else None
                    if k == 0:
                        model, th = base
                        run["calib"] = "synthetic val"
                    else:
                        model = trainer.finetune(base[0] if base else None, tr_set, 1000 * seed + k,
                                                 desc=f"{arm} k={k} s{seed}")
                        th = _threshold(tr_set.labels, trainer.score(model, tr_set.images))
                        run["calib_idx"] = run["train_idx"]
                        run["calib"] = "real train (in-sample)"
                    scores = trainer.score(model, test.images)
                rng = np.random.default_rng([cfg.split_seed, 202, seed, k, ARMS.index(arm)])
                run["metrics"] = M.summarize(test.labels, scores, rng, test.categories, th, n_boot=max(cfg.n_boot // 5, 50))
                run["scores"] = [float(v) for v in scores]
                run["threshold"] = th
                if th is not None:
                    neg, pos = test.labels == 0, test.labels == 1
                    run["at_threshold"] = {"test_fpr": float((scores[neg] >= th).mean()),
                                           "test_recall": float((scores[pos] >= th).mean())}
                res["runs"].append(run)
                if progress:
                    echo(f"lift: seed {seed} k={k:>4} {arm:<9} AUROC {run['metrics']['auroc']['value']:.3f}")
    res["summary"] = aggregate(test.labels, res["runs"], budgets, cfg.seeds,
                               np.random.default_rng([cfg.split_seed, 303]), cfg.n_boot)
    res["train_log"] = trainer.log
    res["seconds"] = time.perf_counter() - t_start
    return res


def _cfg_dict(cfg: StudyConfig) -> dict:
    d = asdict(cfg)
    d["budgets"] = ["all" if b is None else b for b in cfg.budgets]
    return d


_AGG_METRICS = {"auroc": M.roc_auc, "ap": M.average_precision,
                "recall@fpr0.01": lambda y, s: M.recall_at_fpr(y, s, 0.01)["value"],
                "recall@fpr0.001": lambda y, s: M.recall_at_fpr(y, s, 0.001)["value"]}


def aggregate(y: np.ndarray, runs: list[dict], budgets: list[dict], seeds: int, rng: np.random.Generator,
              n_boot: int = 1000) -> dict:
    """Seed-averaged metrics per (arm, k) and lift = synthetic - scratch per k,
    with 95% intervals from a stratified bootstrap over test images shared by
    all cells (so the lift interval is paired). Chance for k = 0 scratch:
    AUROC 0.5, AP = prevalence, recall@FPR = FPR."""
    y = np.asarray(y)
    cells: dict = {}
    for r in runs:
        if "scores" in r:
            cells.setdefault((r["arm"], r["k"]), []).append(np.asarray(r["scores"]))
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    boots = [np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)] for _ in range(n_boot)]

    def seed_mean(fn, scs, idx=None):
        return float(np.mean([fn(y if idx is None else y[idx], s if idx is None else s[idx]) for s in scs]))

    chance = {"auroc": 0.5, "ap": float(y.mean()), "recall@fpr0.01": 0.01, "recall@fpr0.001": 0.001}
    out: dict = {"cells": [], "lift": []}
    for (arm, k), scs in sorted(cells.items(), key=lambda t: (t[0][1], ARMS.index(t[0][0]))):
        rec = {"arm": arm, "k": k, "seeds": len(scs)}
        for name, fn in _AGG_METRICS.items():
            vals = np.array([seed_mean(fn, scs, b) for b in boots])
            per_seed = [fn(y, s) for s in scs]
            rec[name] = {"mean": seed_mean(fn, scs), "ci95": [float(np.quantile(vals, 0.025)),
                                                               float(np.quantile(vals, 0.975))],
                         "seed_min": float(np.min(per_seed)), "seed_max": float(np.max(per_seed))}
        out["cells"].append(rec)
    for b in budgets:
        k = b["used"]
        syn = cells.get(("synthetic", k))
        if syn is None:
            continue
        scr = cells.get(("scratch", k))
        rec = {"k": k, "budget": b["requested"], "vs": "scratch" if scr is not None else "chance"}
        for name, fn in _AGG_METRICS.items():
            def diff(idx):
                a = seed_mean(fn, scr, idx) if scr is not None else chance[name]
                return seed_mean(fn, syn, idx) - a
            vals = np.array([diff(bi) for bi in boots])
            rec[name] = {"mean": diff(None), "ci95": [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]}
        out["lift"].append(rec)
    return out
