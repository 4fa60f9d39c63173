"""The lift protocol: test images never reach training (asserted on the index
sets the trainer actually receives), budgets are stratified, nested and capped,
data-equivalence on constructed curves, frozen and finetune trainers learn, and
the CLI writes its report."""
import json

import numpy as np
import pytest
from _harness_helpers import block_efficientnet, fake_real, fake_synthetic, one_torch_thread  # noqa: F401  (autouse fixture)

from harness.data import load_synthetic
from harness.equivalence import bootstrap_equivalence, crossing_k, format_k
from harness.protocol import StudyConfig, budget_order, parse_budgets, resolve_budgets, run_study, stratified_split
from harness.real import load_real


class SpyTrainer:
    """Records every image the study trains or calibrates on; scores by darkness."""

    def __init__(self):
        self.seen, self.log = [], []

    def pretrain(self, data, seed):
        self.seen.append(("pretrain", list(data.sources)))
        return "model"

    def finetune(self, model, data, seed, desc):
        self.seen.append((desc, list(data.sources)))
        return "model"

    def score(self, model, data):
        return -data.images[..., :3].astype(float).mean((1, 2, 3))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("h")
    real = load_real(fake_real(d / "real", 14, 10), size=16)
    syn = load_synthetic(fake_synthetic(d / "syn", n=6), size=16)
    return real, syn


def _cfg(**kw):
    from harness.train import TrainConfig

    return StudyConfig(budgets=(0, 4, 10, 100, None), seeds=2, mode="finetune", pretrain=TrainConfig(steps=1),
                       finetune=TrainConfig(steps=1), n_boot=20, **kw)


def test_test_images_never_train_or_calibrate(data):
    real, syn = data
    spy = SpyTrainer()
    res = run_study(real, syn, _cfg(), spy, progress=False, echo=lambda m: None)
    test_idx = set(res["test_idx"])
    test_src = set(res["test_sources"])
    assert test_idx.isdisjoint(res["pool_idx"]) and len(test_idx) + len(res["pool_idx"]) == len(real)
    assert test_src == {real.sources[i] for i in test_idx}
    for r in res["runs"]:
        assert test_idx.isdisjoint(r["train_idx"])
        assert len(r["train_idx"]) == r["k"]
    # each seed draws different real images; budgets nest within a seed
    tr = {(r["seed"], r["k"]): set(r["train_idx"]) for r in res["runs"] if r["arm"] == "real_only"}
    assert tr[(0, 4)] != tr[(1, 4)] and tr[(0, 4)] <= tr[(0, 10)]
    for what, sources in spy.seen:
        assert test_src.isdisjoint(sources), what
    assert spy.seen[0][0] == "pretrain" and all(s.startswith("syn/") for s in spy.seen[0][1])
    # the budget that exceeds the pool is capped and reported; 'all' == capped 100
    b = {x["requested"]: x for x in res["budgets"]}
    assert b["100"]["capped"] and b["100"]["used"] == len(res["pool_idx"]) and b["100"]["also"] == ["all"]
    assert {c["arm"] for c in res["summary"]["cells"]} == {"real_only", "synthetic_only", "synthetic+k", "shortcut"}
    assert [l["k"] for l in res["summary"]["lift"]] == [4, 10, len(res["pool_idx"])]
    assert [c["k"] for c in res["summary"]["cells"] if c["arm"] == "synthetic_only"] == [0]
    eq = res["summary"]["equivalence"]["AUROC"]
    assert eq["ks"] == [4, 10, len(res["pool_idx"])] and len(eq["ci95"]) == 2


def test_separate_test_set_and_overlap_error(data, tmp_path):
    real, syn = data
    other = load_real(fake_real(tmp_path / "t", 5, 5, seed=9), size=16)
    res = run_study(real, None, _cfg(), SpyTrainer(), real_test=other, progress=False, echo=lambda m: None)
    assert res["split"]["mode"] == "separate" and res["real"]["test"]["n"] == 10
    assert res["budgets"][-1]["used"] == len(real)
    with pytest.raises(ValueError, match="shares 24 images"):
        run_study(real, None, _cfg(), SpyTrainer(), real_test=real, progress=False)


def test_split_is_stratified_and_keeps_groups_together():
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0])
    groups = ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"]
    pool, test = stratified_split(labels, groups, 0.4, np.random.default_rng(0))
    assert set(pool).isdisjoint(test) and len(pool) + len(test) == 10
    for g in set(groups):
        members = {i for i, x in enumerate(groups) if x == g}
        assert members <= set(pool) or members <= set(test)
    assert labels[test].sum() >= 2 and (labels[test] == 0).sum() >= 2


def test_budget_order_prefixes_are_stratified_and_nested():
    labels = np.array([1] * 30 + [0] * 10)
    o = budget_order(labels, np.random.default_rng(0))
    assert sorted(o) == list(range(40))
    assert set(labels[o[:2]]) == {0, 1}
    for k in (4, 10, 20):
        assert abs(labels[o[:k]].mean() - 0.75) <= 1 / k + 1e-9


def test_parse_and_resolve_budgets():
    assert parse_budgets("0, 10,all") == (0, 10, None)
    with pytest.raises(ValueError, match="'x' is not an integer"):
        parse_budgets("0,x")
    r = resolve_budgets((0, 10, 50, None), 20)
    assert [x["used"] for x in r] == [0, 10, 20] and r[2]["capped"] and r[2]["also"] == ["all"]


def test_cli_study_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from simulator.cli import main

    real = fake_real(tmp_path / "real", 8, 8)
    syn = fake_synthetic(tmp_path / "syn", n=4)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["lift", "study", "--real", str(real), "--synthetic", str(syn), "--budgets", "0,4",
                                  "--seeds", "1", "--pretrain-steps", "2", "--finetune-steps", "2", "--batch", "4",
                                  "--backbone", "scratch", "--size", "32", "--width", "8", "--n-boot", "20",
                                  "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["backbone"]["mode"] == "finetune"  # auto: finetune for the scratch CNN
    assert (out / "lift.png").stat().st_size > 1000 and "| k (real) |" in (out / "results.md").read_text()
    assert {c["arm"] for c in res["summary"]["cells"]} == {"synthetic_only", "synthetic+k", "real_only", "shortcut"}
    assert "total wall time" in r.output
    bad = CliRunner().invoke(main, ["lift", "study", "--real", str(tmp_path / "syn")])
    assert bad.exit_code == 2 and "pass it with --synthetic" in bad.output


def test_knn_reference_baseline(tmp_path):
    pytest.importorskip("torch")
    from harness.knn import knn_baseline

    res = knn_baseline(fake_synthetic(tmp_path / "syn", n=6, references=2), size=32, width=8, device="cpu")
    assert res["queries"] == {"n": 12, "damaged": 6, "intact": 6} and res["references"] == 8
    assert 0 <= res["auroc"]["value"] <= 1


def test_cli_train_and_eval_read_shards(tmp_path):
    """``damagesim lift train/eval --synthetic`` on a folder of shards: the same
    views, so the same checkpoint and the same scores as from capture folders."""
    torch = pytest.importorskip("torch")
    from click.testing import CliRunner

    from simulator.cli import main
    from simulator.dataset.shards import export_shards

    folders = fake_synthetic(tmp_path / "a" / "syn", n=6)
    export_shards(folders, tmp_path / "b" / "syn", shard_size=4)
    states, evals = [], []
    for src in (folders, tmp_path / "b" / "syn"):
        ck = tmp_path / f"{src.parent.name}.pt"
        r = CliRunner().invoke(main, ["lift", "train", "--synthetic", str(src), "--steps", "3", "--batch", "4",
                                      "--size", "32", "--width", "8", "--device", "cpu", "--out", str(ck)])
        assert r.exit_code == 0, r.output
        states.append(torch.load(ck, map_location="cpu")["state"])
        r = CliRunner().invoke(main, ["lift", "eval", str(ck), "--synthetic", str(src), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        evals.append(json.loads(r.stdout[r.stdout.index("{"):]))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert evals[0] == evals[1]


def test_crossing_k_known_answers():
    ks, v = [2, 4, 8, 16], [0.6, 0.7, 0.8, 0.9]
    # halfway between 4 and 8 in the metric = halfway in log k: sqrt(32)
    r = crossing_k(ks, v, 0.75)
    assert r["censored"] is None and r["k"] == pytest.approx(32 ** 0.5) and r["bracket"] == [4.0, 8.0]
    assert crossing_k(ks, v, 0.7)["k"] == pytest.approx(4.0)
    assert crossing_k(ks, v, 0.55) == {"k": None, "censored": "below", "k_num": 0.0, "bracket": None}
    assert crossing_k(ks, v, 0.6)["censored"] == "below"  # reached at the smallest budget: "< 2"
    never = crossing_k(ks, v, 0.95)
    assert never["censored"] == "above" and never["k_num"] == float("inf")
    # not monotone: the first crossing counts (between 2 and 4, 3/4 of the way in log k)
    assert crossing_k(ks, [0.6, 0.8, 0.7, 0.9], 0.75)["k"] == pytest.approx(2 ** 1.75)
    assert (format_k(0.0, 2, 32), format_k(float("inf"), 2, 32), format_k(5.66, 2, 32)) == ("<2", ">32", "5.7")
    with pytest.raises(ValueError, match="increasing and >= 1"):
        crossing_k([0, 2], [0.1, 0.2], 0.15)


def test_bootstrap_equivalence_interval():
    ks = [2, 4, 8, 16]
    curve = np.array([0.6, 0.7, 0.8, 0.9])
    B, S = 200, 5
    # no noise: every draw is the point estimate
    real = np.broadcast_to(curve[None, :, None], (B + 1, 4, S))
    syn = np.full((B + 1, 1), 0.75)
    r = bootstrap_equivalence(ks, real, syn, np.random.default_rng(0))
    assert r["k"] == pytest.approx(32 ** 0.5) and r["ci95"] == pytest.approx([32 ** 0.5] * 2)
    # noise over seeds and resamples: the interval brackets the point, within [2, 16]
    rng = np.random.default_rng(1)
    noisy = curve[None, :, None] + rng.normal(0, 0.02, (B + 1, 4, S))
    noisy[0] = curve[:, None]
    r = bootstrap_equivalence(ks, noisy, syn + rng.normal(0, 0.01, syn.shape) * (np.arange(B + 1) > 0)[:, None],
                              np.random.default_rng(0))
    lo, hi = r["ci95"]
    assert 2 < lo < r["k"] < hi < 16 and r["share_below"] == 0 and r["share_above"] == 0
    # a synthetic level the real curve never reaches: "> 16" with an infinite upper bound
    r = bootstrap_equivalence(ks, real, np.full((B + 1, 1), 0.97), np.random.default_rng(0))
    assert r["censored"] == "above" and r["ci95"] == [float("inf")] * 2 and r["share_above"] == 1.0


def test_frozen_study_heads_learn_and_weights_split(data, tmp_path):
    from harness.backbones import balanced_weights, load_backbone
    from harness.protocol import FrozenTrainer

    real, syn = data
    cfg = StudyConfig(budgets=(0, 4, None), seeds=2, n_boot=20, synth_weight=0.3)
    tr = FrozenTrainer(cfg, load_backbone("scratch", input_size=16, width=8), str(tmp_path / "fc"), progress=False,
                       echo=lambda m: None)
    res = run_study(real, syn, cfg, tr, progress=False, echo=lambda m: None)
    assert len(list((tmp_path / "fc").glob("feats-*.npz"))) == 2  # real and synthetic, once each
    heads = [e for e in res["train_log"] if e["what"] == "pretrain" or e["what"].startswith(("real_only",
                                                                                            "synthetic+k"))]
    assert len(heads) == 1 + 2 * 2 * 2 and all(e["loss_last"] < e["loss_first"] for e in heads)
    assert {(c["arm"], c["k"]) for c in res["summary"]["cells"]} >= {("synthetic_only", 0), ("real_only", 4),
                                                                      ("synthetic+k", 4), ("shortcut", 0)}
    # the synthetic+k head: synthetic rows 0.3 of the loss, class-balanced on each side
    w = np.concatenate([balanced_weights(syn.labels, 0.3), balanced_weights(real.labels[:4], 0.7)])
    assert w[:len(syn)].sum() == pytest.approx(0.3) and w.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="synth_weight must be in"):
        StudyConfig(synth_weight=1.0)


@pytest.mark.parametrize("backbone", ["scratch", "efficientnet-lite0"])
def test_finetune_trainer_loss_falls(data, backbone):
    import torch

    from harness.backbones import load_backbone
    from harness.protocol import CNNTrainer
    from harness.train import TrainConfig, new_model

    real, syn = data
    steps = (40, 30) if backbone == "scratch" else (16, 12)  # EfficientNet steps are slower
    if backbone == "scratch":
        factory = lambda seed, seg: new_model(seed, 3, 8, seg_head=seg)  # noqa: E731
    else:
        def factory(seed, seg):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return load_backbone(backbone, input_size=32)
    cfg = StudyConfig(mode="finetune", pretrain=TrainConfig(steps=steps[0], batch=8, lr=3e-3, augment=False),
                      finetune=TrainConfig(steps=steps[1], batch=8, lr=2e-3, augment=False, seg_weight=0.0),
                      device="cpu")
    t = CNNTrainer(cfg, factory, progress=False)
    m = t.pretrain(syn, 0)
    t.finetune(m, real, 1, "synthetic+k")
    t.finetune(None, real, 1, "real_only")
    assert [e["what"] for e in t.log] == ["pretrain", "synthetic+k", "real_only"]
    for e in t.log:
        assert e["loss_last"] < e["loss_first"], e
    assert t.score(m, real).shape == (len(real),)


def test_cli_study_frozen_and_missing_extra(tmp_path, monkeypatch):
    
    from click.testing import CliRunner

    from simulator.cli import main

    real = fake_real(tmp_path / "real", 8, 8)
    syn = fake_synthetic(tmp_path / "syn", n=4)
    args = ["lift", "study", "--real", str(real), "--synthetic", str(syn), "--budgets", "0,2,4,all", "--seeds", "2",
            "--n-boot", "20", "--feature-cache", str(tmp_path / "fc")]
    r = CliRunner().invoke(main, args + ["--backbone", "scratch", "--mode", "frozen", "--head", "mlp",
                                         "--size", "32", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["backbone"] == {"name": "scratch", "weights": None, "mode": "frozen", "input_size": 32, "head": "mlp"}
    assert "Data-equivalence" in r.output and "AUROC (headline)" in r.output
    block_efficientnet(monkeypatch)
    for mode in ("frozen", "finetune"):
        r = CliRunner().invoke(main, args + ["--mode", mode, "--out", str(tmp_path / "o2")])
        assert r.exit_code == 2 and "efficientnet-lite-pytorch" in r.output, r.output
        assert 'pip install -e ".[harness]"' in r.output and "Traceback" not in r.output
