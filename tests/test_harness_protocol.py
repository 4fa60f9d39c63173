"""The lift protocol: test images never reach training or threshold choice
(asserted on the index sets the trainer actually receives), budgets are
stratified, nested and capped, and the CLI writes its report."""
import json

import numpy as np
import pytest

from harness.data import load_real, load_synthetic
from harness.protocol import (StudyConfig, budget_order, parse_budgets, resolve_budgets, run_study,
                              stratified_split)
from _harness_helpers import fake_real, fake_synthetic, one_torch_thread  # noqa: F401  (autouse fixture)



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

    def score(self, model, images):
        return -images[..., :3].astype(float).mean((1, 2, 3))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("h")
    real = load_real(fake_real(d / "real", 14, 10), size=16)
    syn = load_synthetic(fake_synthetic(d / "syn", n=6), size=16)
    return real, syn


def _cfg(**kw):
    from harness.train import TrainConfig

    return StudyConfig(budgets=(0, 4, 10, 100, None), seeds=2, pretrain=TrainConfig(steps=1),
                       finetune=TrainConfig(steps=1), n_boot=20, **kw)


def test_test_images_never_train_or_calibrate(data):
    real, syn = data
    spy = SpyTrainer()
    res = run_study(real, syn, _cfg(), trainer=spy, progress=False, echo=lambda m: None)
    test_idx = set(res["test_idx"])
    test_src = set(res["test_sources"])
    assert test_idx.isdisjoint(res["pool_idx"]) and len(test_idx) + len(res["pool_idx"]) == len(real)
    assert test_src == {real.sources[i] for i in test_idx}
    for r in res["runs"]:
        assert test_idx.isdisjoint(r["train_idx"]) and test_idx.isdisjoint(r["calib_idx"])
        assert set(r["calib_idx"]) <= set(r["train_idx"])
        assert len(r["train_idx"]) == r["k"]
    for what, sources in spy.seen:
        assert test_src.isdisjoint(sources), what
    assert spy.seen[0][0] == "pretrain" and all(s.startswith("syn/") for s in spy.seen[0][1])
    # the budget that exceeds the pool is capped and reported; 'all' == capped 100
    b = {x["requested"]: x for x in res["budgets"]}
    assert b["100"]["capped"] and b["100"]["used"] == len(res["pool_idx"]) and b["100"]["also"] == ["all"]
    assert {c["arm"] for c in res["summary"]["cells"]} == {"scratch", "synthetic", "shortcut"}
    assert [l["k"] for l in res["summary"]["lift"]] == [0, 4, 10, len(res["pool_idx"])]


def test_separate_test_set_and_overlap_error(data, tmp_path):
    real, syn = data
    other = load_real(fake_real(tmp_path / "t", 5, 5, seed=9), size=16)
    res = run_study(real, None, _cfg(), real_test=other, trainer=SpyTrainer(), progress=False, echo=lambda m: None)
    assert res["split"]["mode"] == "separate" and res["real"]["test"]["n"] == 10
    assert res["budgets"][-1]["used"] == len(real)
    with pytest.raises(ValueError, match="shares 24 images"):
        run_study(real, None, _cfg(), real_test=real, trainer=SpyTrainer(), progress=False)


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
                                  "--size", "32", "--width", "8", "--n-boot", "20", "--device", "cpu",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert (out / "lift.png").stat().st_size > 1000 and "| k (real) |" in (out / "results.md").read_text()
    assert {c["arm"] for c in res["summary"]["cells"]} == {"synthetic", "scratch", "shortcut"}
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
    from simulator.shards import export_shards

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
