"""``damagesim lift``: the lift study and its pieces. Torch is imported only
inside the commands, so ``import simulator.cli`` stays light."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from harness import metrics as M
from harness.data import DatasetError, ImageSet, load_synthetic
from harness.real import load_real
from harness.report import markdown_table, write_report


def _fail(e: Exception) -> None:
    click.echo(f"damagesim lift: error: {e}", err=True)
    sys.exit(2)


def _need_torch(threads: int | None = None) -> None:
    """Import torch or exit naming the extra; set its CPU thread count (this is
    an entry point, so configuring the process here is fine)."""
    try:
        import torch
    except ImportError:
        _fail(RuntimeError('the lift harness needs torch: pip install torch==2.13.0 && pip install -e ".[harness]"'))
    if threads is not None:
        if threads < 1:
            _fail(ValueError(f"--threads must be >= 1, got {threads}"))
        torch.set_num_threads(threads)
        try:  # numpy's BLAS too (the frozen heads): spinning threads on shared cores cost 2x
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:
            pass


def _load_synth(paths, size, limit, cache, depth=False, min_damage_px=1):

    if cache is not None and Path(cache).is_file():
        click.echo(f"lift: synthetic views from cache {cache}", err=True)
        return ImageSet.load(cache)
    t = time.perf_counter()
    s = load_synthetic(list(paths), size=size, limit=limit, depth=depth, min_damage_px=min_damage_px,
                       progress=True)
    click.echo(f"lift: loaded {len(s)} synthetic views ({s.counts()['damaged']} damaged) in "
               f"{time.perf_counter() - t:.0f} s", err=True)
    if cache is not None:
        s.save(cache)
    return s


_common = [
    click.option("--size", default=64, show_default=True, type=int, help="Crop side in pixels (multiple of 16)."),
    click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda."),
    click.option("--width", default=16, show_default=True, type=int, help="CNN width (channels of the first stage)."),
    # measured on a shared 2-core box: 1 thread 75 ms/step, 2 threads 0.4-1.8 s/step
    # (OpenMP workers spin while descheduled by other processes)
    click.option("--threads", default=1, show_default=True, type=int,
                 help="torch CPU threads; 1 is fastest when other processes share the cores."),
]


def common(f):
    """Decorator: add the options every ``lift`` command shares (``--size``,
    ``--device``, ``--width``, ``--threads``) to a click command."""
    for o in reversed(_common):
        f = o(f)
    return f


@click.group()
def lift() -> None:
    """Measure how synthetic pretraining lifts damage detection on real images."""


_backbone_opts = [
    click.option("--backbone", default="efficientnet-lite0", show_default=True,
                 type=click.Choice(["scratch", "efficientnet-lite0"]),
                 help="Feature backbone: ImageNet EfficientNet-Lite0 (from the installed wheel) or the scratch CNN."),
    click.option("--weights", default=None, type=click.Path(dir_okay=False),
                 help="A torch state_dict of the backbone's architecture to use instead of its default weights."),
    click.option("--feature-cache", default="renders/feature-cache", show_default=True,
                 type=click.Path(file_okay=False), help="Folder of cached features (keyed by images+backbone+weights)."),
]


def backbone_options(f):
    """Decorator: add the feature-backbone options (``--backbone``, ``--weights``,
    ``--feature-cache``) to a click command."""
    for o in reversed(_backbone_opts):
        f = o(f)
    return f


def _backbone(name, weights, width=16, input_size=None):
    from .backbones import BackboneError, MissingExtraError, load_backbone

    try:
        return load_backbone(name, weights, input_size=input_size, width=width)
    except (BackboneError, MissingExtraError) as e:
        _fail(e)


@lift.command("study")
@click.option("--real", "real_dir", required=True,
              help="Real data: damaged/+intact/ folders, MVTec folder, COCO json, or "
                   "kaputt:ROOT[?split=train&defect_rate=0.01] (tested on Kaputt's test split).")
@click.option("--real-test", default=None,
              help="Separate real test set (then all of --real is the training pool).")
@click.option("--synthetic", "synth_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="damagesim dataset folder(s) (repeatable).")
@click.option("--synthetic-limit", default=None, type=int, help="Use the first N captures of each synthetic folder.")
@click.option("--cache", default=None, type=click.Path(dir_okay=False), help="npz cache of the synthetic views.")
@click.option("--min-damage-px", default=1, show_default=True, type=int,
              help="Visible damage pixels for a synthetic view to be damaged (smaller non-zero: view dropped).")
@backbone_options
@click.option("--mode", default="auto", show_default=True, type=click.Choice(["auto", "frozen", "finetune"]),
              help="frozen: cached features + a head; finetune: the whole network trained. "
                   "auto: frozen for efficientnet-lite0, finetune for scratch.")
@click.option("--head", default="logistic", show_default=True, type=click.Choice(["logistic", "mlp"]),
              help="Frozen mode: logistic regression or a one-hidden-layer MLP on the features.")
@click.option("--head-hidden", default=64, show_default=True, type=int, help="Hidden units of the MLP head.")
@click.option("--head-steps", default=300, show_default=True, type=int,
              help="Iterations of a head: L-BFGS (logistic) or full-batch AdamW (mlp).")
@click.option("--head-l2", default=1e-3, show_default=True, type=float, help="L2 penalty on the head's weights.")
@click.option("--synthetic-weight", default=0.5, show_default=True, type=float,
              help="Frozen synthetic+k head: share of the loss on the synthetic rows (the k real rows get the rest).")
@click.option("--budgets", default="0,2,4,8,16,32,all", show_default=True, help="Real budgets k.")
@click.option("--seeds", default=5, show_default=True, type=int,
              help="Runs per budget, each drawing other real images.")
@click.option("--test-frac", default=0.4, show_default=True, type=float)
@click.option("--split-seed", default=0, show_default=True, type=int)
@click.option("--pretrain-steps", default=300, show_default=True, type=int, help="Finetune mode: steps on synthetic.")
@click.option("--finetune-steps", default=40, show_default=True, type=int, help="Finetune mode: steps on k real.")
@click.option("--batch", default=32, show_default=True, type=int)
@click.option("--pretrain-per-seed", is_flag=True, help="One synthetic model per seed (default: one shared).")
@click.option("--n-boot", default=1000, show_default=True, type=int)
@click.option("--equivalence-metric", default="AUROC", show_default=True,
              type=click.Choice(["AP_any", "AP_major", "AUROC", "recall@50%precision", "recall@1%FPR"]),
              help="Metric of the headline data-equivalence (every metric's is in the JSON).")
@click.option("--out", default="renders/lift", show_default=True, type=click.Path(file_okay=False))
@click.option("--size", default=None, type=int,
              help="Image side loaded, multiple of 16 (default: the backbone's input, 224 / scratch 64).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--width", default=16, show_default=True, type=int, help="Scratch CNN width.")
@click.option("--threads", default=1, show_default=True, type=int,
              help="torch CPU threads; 1 is fastest when other processes share the cores.")
def study(real_dir, real_test, synth_dirs, synthetic_limit, cache, min_damage_px, backbone, weights, feature_cache,
          mode, head, head_hidden, head_steps, head_l2, synthetic_weight, budgets, seeds, test_frac, split_seed,
          pretrain_steps, finetune_steps, batch, pretrain_per_seed, n_boot, equivalence_metric, out, size, device,
          width, threads) -> None:
    """Full protocol: real only, synthetic only and synthetic + k real per
    budget k and seed, the shortcut baseline, VAND metrics with intervals and
    data-equivalence; writes OUT/results.{json,md} and OUT/lift.png."""
    _need_torch(threads)
    from .backbones import HeadConfig
    from .protocol import CNNTrainer, FrozenTrainer, StudyConfig, parse_budgets, run_study
    from .train import TrainConfig

    t0 = time.perf_counter()
    if mode == "auto":
        mode = "frozen" if backbone == "efficientnet-lite0" else "finetune"
    size = size or (224 if backbone == "efficientnet-lite0" else 64)
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        if size % 16:
            raise ValueError(f"--size must be a multiple of 16, got {size}")
        head_cfg = HeadConfig(hidden=head_hidden if head == "mlp" else 0, steps=head_steps, l2=head_l2)
        cfg = StudyConfig(budgets=parse_budgets(budgets), seeds=seeds, test_frac=test_frac, split_seed=split_seed,
                          mode=mode, head=head_cfg, synth_weight=synthetic_weight,
                          pretrain=TrainConfig(steps=pretrain_steps, batch=batch, lr=2e-3),
                          finetune=TrainConfig(steps=finetune_steps, batch=min(batch, 16), lr=1e-3, seg_weight=0.0),
                          pretrain_per_seed=pretrain_per_seed, width=width, n_boot=n_boot, device=device,
                          equivalence_metric=equivalence_metric)
        if mode == "frozen":
            trainer = FrozenTrainer(cfg, _backbone(backbone, weights, width, input_size=size), feature_cache,
                                    progress=True, echo=echo)
        else:
            trainer = CNNTrainer(cfg, _finetune_factory(backbone, weights, width, size))
        if real_test is None and real_dir.startswith("kaputt:"):  # Kaputt's own splits
            from .kaputt import kaputt_test_spec

            real_test = kaputt_test_spec(real_dir)
        real = load_real(real_dir, size=size, progress=True)
        test = load_real(real_test, size=size, progress=True) if real_test else None
        synth = (_load_synth(synth_dirs, size, synthetic_limit, cache, min_damage_px=min_damage_px)
                 if synth_dirs else None)
        echo(f"lift: loaded data in {time.perf_counter() - t0:.0f} s; backbone {backbone}, mode {mode}")
        res = run_study(real, synth, cfg, trainer, real_test=test, echo=echo)
    except (DatasetError, ValueError) as e:
        _fail(e)
    res["seconds"] = time.perf_counter() - t0
    res["command"] = " ".join(sys.argv)
    res["backbone"] = {"name": backbone, "weights": weights, "mode": mode, "input_size": size,
                       "head": head if mode == "frozen" else None}
    res["title"] = (f"{backbone} ({mode}{', ' + head + ' head' if mode == 'frozen' else ''}): damage detection "
                    f"vs. real budget (mean over {seeds} seeds, 95% CI)")
    paths = write_report(res, out)
    click.echo(markdown_table(res))
    click.echo(f"lift: wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    click.echo(f"lift: total wall time {res['seconds']:.0f} s ({res['seconds'] / 60:.1f} min)")


def _finetune_factory(backbone: str, weights, width: int, size: int):
    """factory(seed, seg_head) -> a fresh trainable network for finetune mode;
    the new head's init drawn from ``seed``."""
    import torch

    from .backbones import BackboneError, MissingExtraError, _load_into, _read_state_dict, load_backbone
    from .train import new_model

    try:  # fail before any data loads: a missing extra or a bad checkpoint
        if backbone == "efficientnet-lite0":
            load_backbone(backbone, weights, input_size=size)
        elif weights is not None:
            _load_into(new_model(0, 3, width, False), _read_state_dict(weights), weights, ("head.", "seg."))
    except (BackboneError, MissingExtraError) as e:
        _fail(e)

    def factory(seed: int, seg_head: bool):
        if backbone == "scratch":
            m = new_model(seed, 3, width, seg_head=seg_head)
            if weights is not None:
                _load_into(m, _read_state_dict(weights), weights, ("head.", "seg."))
            return m
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return load_backbone(backbone, weights, input_size=size)

    return factory


@lift.command("realism")
@click.option("--real", "real_dir", required=True, type=click.Path(exists=True),
              help="Real data: damaged/+intact/ folders, MVTec folder or COCO json.")
@click.option("--synthetic", "synth_dirs", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False), help="damagesim dataset folder(s) (repeatable).")
@click.option("--synthetic-limit", default=None, type=int, help="Use the first N captures of each synthetic folder.")
@click.option("--cache", default=None, type=click.Path(dir_okay=False), help="npz cache of the synthetic views.")
@click.option("--n-subsets", default=100, show_default=True, type=int)
@click.option("--subset-size", default=1000, show_default=True, type=int)
@click.option("--rows", default=6, show_default=True, type=int, help="Queries per panel of the neighbour picture.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default="renders/realism", show_default=True, type=click.Path(file_okay=False))
@backbone_options
@click.option("--threads", default=1, show_default=True, type=int, help="torch CPU threads.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
def realism_cmd(real_dir, synth_dirs, synthetic_limit, cache, n_subsets, subset_size, rows, seed, out, backbone,
                weights, feature_cache, threads, device) -> None:
    """KID x1000 between synthetic item crops and real images on the backbone's
    features (overall, damaged, per kind / category / severity), and a picture of
    nearest neighbours both ways; writes OUT/realism.{json,md,png}."""
    _need_torch(threads)


    from .backbones import cached_features
    from .realism import neighbours_picture, realism_markdown, realism_report

    t0 = time.perf_counter()
    bb = _backbone(backbone, weights)
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        real = load_real(real_dir, size=bb.input_size, progress=True)
        synth = _load_synth(synth_dirs, bb.input_size, synthetic_limit, cache)
        Fr = cached_features(bb, real.images, feature_cache, device=device, progress=True, desc="real features",
                             echo=echo)
        Fs = cached_features(bb, synth.images, feature_cache, device=device, progress=True,
                             desc="synthetic features", echo=echo)
        res = realism_report(real, synth, Fr, Fs, np.random.default_rng([seed, 1]), n_subsets, subset_size)
    except (DatasetError, ValueError) as e:
        _fail(e)
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    res["neighbours"] = neighbours_picture(real, synth, Fr, Fs, o / "realism.png", np.random.default_rng([seed, 2]),
                                           n_rows=rows)
    res.update(backbone=backbone, weights=weights, real=str(real_dir), synthetic=[str(d) for d in synth_dirs],
               synthetic_counts=synth.counts(), real_counts=real.counts(), command=" ".join(sys.argv),
               seconds=time.perf_counter() - t0)
    (o / "realism.json").write_text(json.dumps(res, indent=1))
    table = realism_markdown(res)
    (o / "realism.md").write_text(f"# Realism gauge (KID, {backbone} features)\n\n{table}\n"
                                  f"![nearest neighbours](realism.png)\n\nwall time {res['seconds']:.0f} s\n")
    click.echo(table)
    click.echo(f"lift: wrote {o / 'realism.json'}, {o / 'realism.md'}, {o / 'realism.png'}")
    click.echo(f"lift: total wall time {res['seconds']:.0f} s")


@lift.command("train")
@click.option("--synthetic", "synth_dirs", multiple=True, type=click.Path(exists=True, file_okay=False))
@click.option("--real", "real_dir", default=None, type=click.Path(exists=True))
@click.option("--init", default=None, type=click.Path(exists=True, dir_okay=False), help="Start from this checkpoint.")
@click.option("--steps", default=500, show_default=True, type=int)
@click.option("--batch", default=32, show_default=True, type=int)
@click.option("--lr", default=2e-3, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--limit", default=None, type=int, help="First N captures per synthetic folder.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint (.pt).")
@common
def train_cmd(synth_dirs, real_dir, init, steps, batch, lr, seed, limit, out, size, device, width, threads) -> None:
    """Train a damage CNN on synthetic views and/or real images; save a checkpoint."""
    _need_torch(threads)
    import torch

    from .train import TrainConfig, new_model, train

    try:
        if not synth_dirs and not real_dir:
            raise ValueError("give --synthetic DIR and/or --real DIR")
        data = _load_synth(synth_dirs, size, limit, None) if synth_dirs else load_real(real_dir, size=size)
        if synth_dirs and real_dir:
            raise ValueError("train on one source at a time: pretrain on --synthetic, then --init and --real")
        model = new_model(seed, data.images.shape[3], width, seg_head=data.masks is not None)
        if init:
            model.load_state_dict(torch.load(init, map_location="cpu")["state"], strict=False)
        info = train(model, data, TrainConfig(steps=steps, batch=batch, lr=lr), seed, device, progress=True)
    except (DatasetError, ValueError) as e:
        _fail(e)
    torch.save({"state": model.state_dict(), "in_ch": data.images.shape[3], "width": width, "size": size}, out)
    l = info["losses"]
    click.echo(f"lift: trained {steps} steps in {info['seconds']:.0f} s; loss {sum(l[:10]) / 10:.3f} -> "
               f"{sum(l[-10:]) / 10:.3f}; saved {out}")


@lift.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--real", "real_dir", default=None, type=click.Path(exists=True))
@click.option("--synthetic", "synth_dirs", multiple=True, type=click.Path(exists=True, file_okay=False))
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--device", default="auto", show_default=True)
def eval_cmd(checkpoint, real_dir, synth_dirs, seed, device) -> None:
    """Score a labelled set with CHECKPOINT; print AUROC, AP, recall@FPR with 95% CIs."""
    _need_torch()

    import torch

    from .train import new_model, predict

    ck = torch.load(checkpoint, map_location="cpu")
    try:
        data = load_real(real_dir, size=ck["size"]) if real_dir else _load_synth(synth_dirs, ck["size"], None, None)
    except (DatasetError, ValueError) as e:
        _fail(e)
    model = new_model(0, ck["in_ch"], ck["width"], seg_head=any(k.startswith("seg.") for k in ck["state"]))
    model.load_state_dict(ck["state"])
    s = predict(model, data.images, device)
    res = M.summarize(data.labels, s, np.random.default_rng(seed), data.categories)
    click.echo(json.dumps(res, indent=1))


@lift.command("baseline")
@click.option("--pairs", "pairs_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="damagesim dataset with reference captures (--reference-poses >= 1): kNN anomaly baseline.")
@click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Backbone for kNN features (default: a random-init CNN, seed --seed).")
@click.option("--real", "real_dir", default=None, type=click.Path(exists=True),
              help="Real data: shortcut baseline (trivial features, logistic regression) on a stratified split.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the metrics JSON here.")
@common
def baseline(pairs_dir, checkpoint, real_dir, seed, out, size, device, width, threads) -> None:
    """Reference-comparison (PatchCore-style kNN) and shortcut baselines."""



    result = {}
    try:
        if pairs_dir is None and real_dir is None:
            raise ValueError("give --pairs DIR (kNN baseline) and/or --real DIR (shortcut baseline)")
        if pairs_dir:
            _need_torch(threads)
            from .knn import knn_baseline

            result["knn"] = knn_baseline(pairs_dir, checkpoint, size=size, width=width, seed=seed, device=device)
        if real_dir:
            from .baselines import LogisticRegression, shortcut_features
            from .protocol import stratified_split

            real = load_real(real_dir, size=size)
            tr, te = stratified_split(real.labels, real.groups, 0.4, np.random.default_rng([seed, 7]))
            X = shortcut_features(real.images, real.aspect)
            lr = LogisticRegression().fit(X[tr], real.labels[tr])
            s = lr.decision_function(X[te])
            result["shortcut"] = M.summarize(real.labels[te], s, np.random.default_rng(seed))
            result["shortcut"]["weights"] = lr.w.tolist()
    except (DatasetError, ValueError) as e:
        _fail(e)
    text = json.dumps(result, indent=1)
    if out:
        Path(out).write_text(text)
    click.echo(text)


@lift.command("reference")
@click.option("--real", "real_spec", default=None,
              help="kaputt:ROOT[?split=test&defect_rate=..&image=crop]: Kaputt queries vs their item's references.")
@click.option("--synthetic", "synth_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="damagesim dataset made with --reference-poses >= 1: views vs their SKU's reference gallery.")
@click.option("--size", default=96, show_default=True, type=int, help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--n-boot", default=1000, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the metrics to this JSON file.")
def reference_cmd(real_spec, synth_dir, size, seed, n_boot, out) -> None:
    """Reference comparison: each query scored by the distance of its (pixel)
    features to the reference images of the same item; metrics with intervals."""

    from .kaputt import kaputt_reference_comparison, parse_kaputt_spec, synthetic_reference_comparison

    try:
        if (real_spec is None) == (synth_dir is None):
            raise ValueError("give one of --real kaputt:ROOT or --synthetic DIR")
        if real_spec is not None:
            root, opts = parse_kaputt_spec(real_spec)
            opts.setdefault("split", "test")
            res = kaputt_reference_comparison(root, size=size, n_boot=n_boot, progress=True,
                                              **{"seed": seed, **opts})
        else:
            res = synthetic_reference_comparison(synth_dir, size=size, seed=seed, n_boot=n_boot, progress=True)
    except (DatasetError, ValueError) as e:
        _fail(e)
    click.echo(f"reference comparison ({res['features']}): AUROC {res['auroc']['value']:.3f} "
               f"[{res['auroc']['ci95'][0]:.2f}, {res['auroc']['ci95'][1]:.2f}], AP {res['ap']['value']:.3f}, "
               f"queries {res['queries']}, references {res['references']}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=1))
