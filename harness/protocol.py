"""The lift study: what a synthetic corpus is worth on real images.

Arms, for each real budget k and seed (``ARMS``):
  * ``real_only``: the backbone trained on the k real images alone;
  * ``synthetic_only``: trained on the synthetic corpus alone (no real image;
    one level, independent of k);
  * ``synthetic+k``: synthetic plus the same k real images;
  * ``shortcut``: logistic regression on trivial global features (brightness,
    near-white share, aspect) of the same k (at k = 0: of the synthetic views),
    the check that no arm wins by a shortcut.
Two modes (``StudyConfig.mode``): *frozen* computes the backbone's features
once (cached on disk) and trains a logistic or small MLP head; synthetic+k is
one head on both sets with the synthetic rows weighted (``synth_weight`` =
their share of the loss). *finetune* trains the whole network (CUDA when
present): synthetic+k pretrains on the synthetic corpus, then fine-tunes on k.

Index discipline (tested): the real data is split once into a *pool* and a
*test* set (group- and class-stratified, or the test set is a separate folder);
every run records the pool indices it trained on (``train_idx``); ``test_idx``
is disjoint from them. Metrics are threshold-free on the test set (VAND's
definitions), so no test image chooses anything. Budgets are nested per seed
(the first k of a seeded, class-stratified order of the pool: every k >= 2 has
both classes) and each seed draws different images, so lift across k is not
confounded by new draws. A budget above the pool size is capped and reported.

The headline is data-equivalence (:mod:`harness.equivalence`): the k at which
the real-only curve reaches the synthetic-only score.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from . import metrics as M
from .baselines import LogisticRegression, shortcut_features
from .data import ImageSet
from .equivalence import bootstrap_equivalence

__all__ = ["StudyConfig", "stratified_split", "budget_order", "resolve_budgets", "run_study", "parse_budgets",
           "ARMS", "MODES", "CNNTrainer", "FrozenTrainer", "aggregate"]

ARMS = ("real_only", "synthetic_only", "synthetic+k", "shortcut")
MODES = ("frozen", "finetune")


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
    seeds: runs per budget, each drawing different real images; test_frac:
    share of real data held out as the fixed test set (ignored with a separate
    test set); split_seed: seed of that split; synth_val_frac: synthetic
    captures held out to report the synthetic model's own validation AUROC;
    mode: frozen | finetune; head: :class:`harness.backbones.HeadConfig`
    (frozen; None = its defaults, logistic regression); synth_weight: share of the loss on the synthetic rows in the
    frozen synthetic+k head (class-balanced within each source);
    pretrain / finetune: :class:`harness.train.TrainConfig` (finetune mode;
    finetune also trains real_only, so both arms get identical steps on
    identical data); pretrain_per_seed: one synthetic model per seed (else one
    shared); width: scratch CNN width; n_boot: bootstrap resamples;
    device: auto|cpu|cuda; equivalence_metric: the VAND metric of the headline
    data-equivalence (all are in the JSON)."""

    budgets: tuple = (0, 2, 4, 8, 16, 32, None)
    seeds: int = 5
    test_frac: float = 0.4
    split_seed: int = 0
    synth_val_frac: float = 0.1
    mode: str = "frozen"
    head: object = None
    synth_weight: float = 0.5
    pretrain: object = None
    finetune: object = None
    pretrain_per_seed: bool = False
    width: int = 16
    n_boot: int = 1000
    device: str = "auto"
    equivalence_metric: str = "AUROC"

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if not 0 < self.test_frac < 1:
            raise ValueError(f"test_frac must be in (0, 1), got {self.test_frac}")
        if not self.budgets:
            raise ValueError("budgets must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 < self.synth_weight < 1:
            raise ValueError(f"synth_weight must be in (0, 1), got {self.synth_weight}")
        if self.equivalence_metric not in M.VAND_METRICS:
            raise ValueError(f"equivalence_metric must be one of {', '.join(M.VAND_METRICS)}, "
                             f"got {self.equivalence_metric!r}")
        if self.n_boot < 10:
            raise ValueError(f"n_boot must be >= 10, got {self.n_boot}")


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


# ----------------------------------------------------------------------------- trainers

def _loss_ends(losses: list[float]) -> dict:
    """Mean loss over the first and the last quarter of the steps."""
    q = max(1, len(losses) // 4)
    return {"loss_first": float(np.mean(losses[:q])), "loss_last": float(np.mean(losses[-q:]))}


@dataclass
class CNNTrainer:
    """Finetune mode: whole networks trained with :func:`harness.train.train`.

    factory(seed, seg_head) -> a fresh module whose forward gives
    ``(logit, seg or None)`` (the scratch DamageNet, or a pretrained
    :class:`harness.backbones.Backbone` with a new linear head). real_only
    starts from the factory (random init for scratch, ImageNet for
    EfficientNet-Lite0); synthetic+k starts from a copy of the synthetic model.
    """

    cfg: StudyConfig
    factory: Callable
    progress: bool = True
    log: list = field(default_factory=list)

    def pretrain(self, synth: ImageSet, seed: int):
        """A fresh model (seed ``seed``; with a seg head when ``synth`` has masks) trained
        on the synthetic views with ``cfg.pretrain``; its losses go to ``log``."""
        from .train import train

        m = self.factory(seed, synth.masks is not None)
        info = train(m, synth, self.cfg.pretrain, seed, self.cfg.device, self.progress, desc=f"pretrain s{seed}")
        self.log.append({"what": "pretrain", "seed": seed, "n": len(synth), "seconds": info["seconds"],
                         **_loss_ends(info["losses"])})
        return m

    def finetune(self, model, data: ImageSet, seed: int, desc: str):
        """Train a copy of ``model`` (a fresh factory model when None: the real-only arm)
        on ``data`` with ``cfg.finetune``; ``desc`` names the run in progress and
        ``log``. The input model is left as it is."""
        from .train import clone, train

        m = self.factory(seed, False) if model is None else clone(model)
        info = train(m, data, self.cfg.finetune, seed, self.cfg.device, self.progress, desc=desc)
        self.log.append({"what": desc, "seed": seed, "n": len(data), "seconds": info["seconds"],
                         **_loss_ends(info["losses"])})
        return m

    def score(self, model, data: ImageSet) -> np.ndarray:
        """Damage logits (n,) float64 of ``model`` on the RGB channels of ``data``."""
        from .train import predict

        return predict(model, data.images[..., :3], self.cfg.device, batch=64)


@dataclass
class FrozenTrainer:
    """Frozen mode: the backbone's features, computed once per image set
    (:func:`harness.backbones.cached_features`) in :meth:`prepare`, and a head
    (:func:`harness.backbones.train_head`) per run. Rows are found by the
    images' ``sources`` (unique ids), so subsets need no re-extraction.
    The synthetic+k head trains on synthetic and real rows together; the
    synthetic rows carry ``cfg.synth_weight`` of the loss, the real rows the
    rest, each class-balanced."""

    cfg: StudyConfig
    backbone: object
    feature_cache: str | None = None
    progress: bool = True
    echo: Callable[[str], None] = print
    log: list = field(default_factory=list)
    _rows: dict = field(default_factory=dict)
    _feats: list = field(default_factory=list)

    def prepare(self, sets: dict) -> None:
        """Extract (or read from ``feature_cache``) the backbone features of every set of
        ``sets`` ({name: ImageSet or None}), RGB channels only. ValueError when an
        image id (``sources``) occurs twice across the sets."""
        from .backbones import cached_features

        for name, s in sets.items():
            if s is None:
                continue
            f = cached_features(self.backbone, s.images[..., :3], self.feature_cache, device=self.cfg.device,
                                progress=self.progress, desc=f"{name} features", echo=self.echo)
            base = sum(len(x) for x in self._feats)
            for i, src in enumerate(s.sources):
                if src in self._rows:
                    raise ValueError(f"image id {src!r} appears twice (in {name} and before); ids must be unique")
                self._rows[src] = base + i
            self._feats.append(f)
        self._F = np.concatenate(self._feats) if self._feats else np.zeros((0, 1), np.float32)

    def features(self, data: ImageSet) -> np.ndarray:
        """(n, d) features of the rows of ``data``, looked up by ``sources``; ValueError
        for an image whose set was not given to :meth:`prepare`."""
        try:
            return self._F[[self._rows[s] for s in data.sources]]
        except KeyError as e:
            raise ValueError(f"no features for image {e.args[0]!r}: prepare() was not given its set") from None

    def _fit(self, X, y, w, seed, what, n):
        from .backbones import HeadConfig, train_head

        t = time.perf_counter()
        head = train_head(X, y, w, self.cfg.head or HeadConfig(), seed)
        self.log.append({"what": what, "seed": seed, "n": n, "seconds": time.perf_counter() - t,
                         "loss_first": head["losses"][0], "loss_last": head["losses"][-1]})
        return head

    def pretrain(self, synth: ImageSet, seed: int):
        """A head trained on the synthetic features: {``head``, ``X`` (n, d), ``y`` (n,)},
        the features and labels kept for the synthetic+k heads."""
        X = self.features(synth)
        return {"head": self._fit(X, synth.labels, None, seed, "pretrain", len(synth)), "X": X, "y": synth.labels}

    def finetune(self, model, data: ImageSet, seed: int, desc: str):
        """A head on the real rows of ``data``: alone when ``model`` is None (real-only),
        else together with ``model``'s synthetic rows, weighted ``cfg.synth_weight``
        synthetic vs ``1 - synth_weight`` real, each class-balanced. Returns {``head``}."""
        from .backbones import balanced_weights

        Xr = self.features(data)
        if model is None:
            return {"head": self._fit(Xr, data.labels, None, seed, desc, len(data))}
        X = np.concatenate([model["X"], Xr])
        y = np.concatenate([model["y"], data.labels])
        w = np.concatenate([balanced_weights(model["y"], self.cfg.synth_weight),
                            balanced_weights(data.labels, 1.0 - self.cfg.synth_weight)])
        return {"head": self._fit(X, y, w, seed, desc, len(y))}

    def score(self, model, data: ImageSet) -> np.ndarray:
        """Damage logits (n,) float64 of ``model``'s head on the features of ``data``."""
        from .backbones import head_scores

        return head_scores(model["head"], self.features(data))


# ----------------------------------------------------------------------------- the study

def run_study(real: ImageSet, synth: ImageSet | None, cfg: StudyConfig, trainer, real_test: ImageSet | None = None,
              progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    """Run the full protocol; returns the results dict (see :mod:`harness.report`).

    real: labelled real images (split into pool + test unless ``real_test``);
    synth: synthetic views (None: the synthetic arms are skipped); trainer: a
    :class:`FrozenTrainer` or :class:`CNNTrainer` (anything with ``pretrain``,
    ``finetune``, ``score`` and ``log``; ``prepare(sets)`` is called first
    when present).
    """

    t_start = time.perf_counter()
    if cfg.mode == "finetune" and (cfg.pretrain is None or cfg.finetune is None):
        raise ValueError("finetune mode needs StudyConfig.pretrain and .finetune (TrainConfig)")
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
    if synth is not None and synth.images.shape[3] != real.images.shape[3]:
        raise ValueError(f"synthetic images have {synth.images.shape[3]} channels, real {real.images.shape[3]}; "
                         "real data is RGB: load synthetic without depth")
    if hasattr(trainer, "prepare"):
        trainer.prepare({"real": real, "real test": real_test, "synthetic": synth})
    budgets = resolve_budgets(cfg.budgets, len(pool))
    for b in budgets:
        if b["capped"]:
            echo(f"lift: budget {b['requested']} capped to {b['used']} (real pool has {len(pool)} images)")

    res: dict = {"config": _cfg_dict(cfg), "split": split, "budgets": budgets,
                 "real": {"pool": pool.counts(), "test": test.counts(), "meta": real.meta},
                 "pool_sources": pool.sources, "test_sources": test.sources,
                 "test_idx": test_idx.tolist(), "pool_idx": pool_idx.tolist(), "runs": []}
    pretrained: dict[int, object] = {}
    if synth is not None:
        s_tr, s_val = stratified_split(synth.labels, synth.groups, cfg.synth_val_frac,
                                       np.random.default_rng([cfg.split_seed, 11]))
        synth_tr, synth_val = synth.subset(s_tr), synth.subset(s_val)
        res["synthetic"] = {"train": synth_tr.counts(), "val": synth_val.counts(), "meta": synth.meta}
        for seed in (range(cfg.seeds) if cfg.pretrain_per_seed else [0]):
            echo(f"lift: training on {len(synth_tr)} synthetic views (seed {seed})")
            m = trainer.pretrain(synth_tr, seed)
            res["synthetic"].setdefault("val_auroc", {})[str(seed)] = M.roc_auc(synth_val.labels,
                                                                                trainer.score(m, synth_val))
            pretrained[seed] = m
            scores = trainer.score(m, test)
            res["runs"].append({"arm": "synthetic_only", "seed": seed, "budget": "0", "k": 0, "train_idx": [],
                                "train_sources": [], "scores": [float(v) for v in scores],
                                "metrics": _run_metrics(test, scores)})
            echo(f"lift: synthetic only (seed {seed}): test AUROC {res['runs'][-1]['metrics']['AUROC']:.3f}, "
                 f"synthetic val AUROC {res['synthetic']['val_auroc'][str(seed)]:.3f}")
        res["synthetic"]["pretrain_seconds"] = sum(e["seconds"] for e in trainer.log if e["what"] == "pretrain")
    feats_test = shortcut_features(test.images, test.aspect)
    jobs = [(seed, b) for seed in range(cfg.seeds) for b in budgets]
    for seed, b in tqdm(jobs, desc="lift runs", unit="run", disable=not progress, leave=False):
        order = budget_order(pool.labels, np.random.default_rng([cfg.split_seed, 101, seed]))
        k = b["used"]
        tr = np.sort(order[:k])
        tr_set = pool.subset(tr)
        have_both = k > 0 and 0 < tr_set.labels.sum() < k
        for arm in ("real_only", "synthetic+k", "shortcut"):
            run = {"arm": arm, "seed": seed, "budget": b["requested"], "k": k,
                   "train_idx": [int(pool_idx[i]) for i in tr], "train_sources": [pool.sources[i] for i in tr]}
            if arm == "synthetic+k" and (synth is None or k == 0):
                continue  # k = 0 is synthetic_only
            if arm == "real_only" and k == 0:
                continue  # nothing to train on
            if arm == "shortcut" and k == 0 and synth is None:
                continue
            if arm in ("real_only", "shortcut") and k > 0 and not have_both:
                run["skipped"] = "budget has one class only"
                res["runs"].append(run)
                continue
            if arm == "shortcut":
                if k == 0:
                    lr = LogisticRegression().fit(shortcut_features(synth_tr.images, synth_tr.aspect), synth_tr.labels)
                    run["trained_on"] = "synthetic"
                else:
                    lr = LogisticRegression().fit(shortcut_features(tr_set.images, tr_set.aspect), tr_set.labels)
                scores = lr.decision_function(feats_test)
            else:
                base = pretrained[seed if cfg.pretrain_per_seed else 0] if arm == "synthetic+k" else None
                model = trainer.finetune(base, tr_set, 1000 * seed + k, desc=f"{arm} k={k} s{seed}")
                scores = trainer.score(model, test)
            run["metrics"] = _run_metrics(test, scores)
            run["scores"] = [float(v) for v in scores]
            res["runs"].append(run)
    res["summary"] = aggregate(test, res["runs"], budgets, np.random.default_rng([cfg.split_seed, 303]),
                               cfg.n_boot, cfg.equivalence_metric)
    res["train_log"] = trainer.log
    res["seconds"] = time.perf_counter() - t_start
    return res


def _run_metrics(test: ImageSet, scores: np.ndarray) -> dict:
    out = M.vand_point(test.labels, scores, test.severity)
    cats = M.vand_per_category(test.labels, scores, test.categories)
    if cats:
        out["per_category"] = cats
    return out


def _cfg_dict(cfg: StudyConfig) -> dict:
    d = asdict(cfg)
    d["budgets"] = ["all" if b is None else b for b in cfg.budgets]
    return d


def _quantiles(v: np.ndarray) -> list[float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    return [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))]


def aggregate(test: ImageSet, runs: list[dict], budgets: list[dict], rng: np.random.Generator,
              n_boot: int = 1000, equivalence_metric: str = "AUROC") -> dict:
    """Seed-averaged VAND metrics per (arm, k), lift = synthetic+k - real_only
    per k, and data-equivalence for every metric.

    Intervals: one set of stratified bootstrap resamples of the test images,
    shared by all cells, so differences between cells (lift) are paired; the
    data-equivalence bootstrap also resamples seeds. Per category: AUROC and
    AP_any of that category's positives against all negatives.
    Returns ``{"cells", "lift", "equivalence", "equivalence_metric"}``.
    """
    y = np.asarray(test.labels)
    sev = None if test.severity is None else np.asarray([v or "" for v in test.severity], dtype=object)
    cats = np.asarray([c or "" for c in test.categories], dtype=object)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    boots = [np.arange(len(y))] + [np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
                                   for _ in range(n_boot)]
    seeds = sorted({r["seed"] for r in runs})
    cells: dict = {}
    for r in runs:
        if "scores" in r:
            cells.setdefault((r["arm"], r["k"]), {})[r["seed"]] = np.asarray(r["scores"])
    # vals[(arm, k)][metric]: (n_boot + 1, n_seeds), NaN where a seed has no run
    counts = np.zeros((len(boots), len(y)))
    for b, idx in enumerate(boots):
        np.add.at(counts[b], idx, 1.0)
    vals: dict = {}
    cat_names = sorted({c for c in cats[y == 1] if c})
    for key, by_seed in cells.items():
        v = {m: np.full((len(boots), len(seeds)), np.nan) for m in M.VAND_METRICS}
        vc = {(c, m): np.full((len(boots), len(seeds)), np.nan) for c in cat_names for m in ("AUROC", "AP_any")}
        for j, sd in enumerate(seeds):
            if sd not in by_seed:
                continue
            w = M.vand_weighted(y, by_seed[sd], counts, sev, cats if cat_names else None)
            for m in M.VAND_METRICS:
                v[m][:, j] = w[m]
            for c, d in w.get("per_category", {}).items():
                vc[(c, "AUROC")][:, j], vc[(c, "AP_any")][:, j] = d["AUROC"], d["AP_any"]
        vals[key] = (v, vc)

    def summ(a: np.ndarray) -> dict:
        with np.errstate(all="ignore"), _no_nan_warnings():
            means = np.nanmean(a, axis=1)
            per_seed = a[0][np.isfinite(a[0])]
        return {"mean": float(means[0]), "ci95": _quantiles(means[1:]),
                "seed_min": float(per_seed.min()) if per_seed.size else float("nan"),
                "seed_max": float(per_seed.max()) if per_seed.size else float("nan")}

    out: dict = {"cells": [], "lift": [], "equivalence": {}, "equivalence_metric": equivalence_metric}
    for (arm, k), (v, vc) in sorted(vals.items(), key=lambda t: (t[0][1], ARMS.index(t[0][0]))):
        rec = {"arm": arm, "k": k, "seeds": len(cells[(arm, k)])}
        for m in M.VAND_METRICS:
            rec[m] = summ(v[m])
        if cat_names:
            rec["per_category"] = {c: {m: summ(vc[(c, m)]) for m in ("AUROC", "AP_any")} for c in cat_names}
        out["cells"].append(rec)
    for b in budgets:
        k = b["used"]
        if ("synthetic+k", k) not in vals or ("real_only", k) not in vals:
            continue
        rec = {"k": k, "budget": b["requested"]}
        for m in M.VAND_METRICS:
            with np.errstate(all="ignore"), _no_nan_warnings():
                d = np.nanmean(vals[("synthetic+k", k)][0][m], axis=1) - np.nanmean(vals[("real_only", k)][0][m],
                                                                                     axis=1)
            rec[m] = {"mean": float(d[0]), "ci95": _quantiles(d[1:])}
        out["lift"].append(rec)
    ks = sorted(k for (arm, k) in vals if arm == "real_only" and k >= 1)
    if ("synthetic_only", 0) in vals and ks:
        syn_seeds = [j for j, sd in enumerate(seeds) if sd in cells[("synthetic_only", 0)]]
        for m in M.VAND_METRICS:
            real = np.stack([vals[("real_only", k)][0][m] for k in ks], axis=1)  # (B+1, n_k, S)
            syn = vals[("synthetic_only", 0)][0][m][:, syn_seeds]
            if not np.isfinite(syn[0]).any():
                continue
            with _no_nan_warnings():
                out["equivalence"][m] = bootstrap_equivalence(ks, real, syn, np.random.default_rng([303, len(ks)]))
    return out


class _no_nan_warnings:
    """Silence numpy's 'mean of empty slice' for all-NaN columns (a metric that
    is undefined on a set, e.g. AP_major without major damage): NaN is the answer."""

    def __enter__(self):

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
