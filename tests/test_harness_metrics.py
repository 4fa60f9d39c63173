"""Harness metrics against scikit-learn on known inputs (ties included)."""
import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from harness import metrics as M  # noqa: E402
from harness.baselines import LogisticRegression, patchcore_scores, shortcut_features  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_ap_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + 0.8 * y, 1)  # rounding makes ties
    assert M.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert M.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


def test_roc_curve_and_recall_at_fpr_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    fpr, tpr, _ = M.roc_curve(y, s)
    f2, t2, _ = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    for f in (0.01, 0.1):
        r = M.recall_at_fpr(y, s, f)
        assert r["value"] == pytest.approx(t2[f2 <= f].max())
        assert r["resolvable"] == (r["n_neg"] >= 1 / f)


def test_known_values_and_small_negative_warning():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert M.roc_auc(y, s) == 0.75
    assert M.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))
    r = M.recall_at_fpr(y, s, 0.001)
    assert not r["resolvable"] and "only 2 negatives" in r["note"]
    assert r["value"] == 0.5  # recall at zero false positives
    assert np.isnan(M.roc_auc(np.ones(3, int), np.arange(3.0)))


def test_threshold_and_per_category_recall():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.0, 0.2, 0.4, 0.3, 0.6, 0.9])
    th = M.threshold_at_fpr(y, s, 0.0)
    assert th == 0.6
    rec = M.per_category_recall(y, s, ["", "", "", "dent", "dent", "hole"], th)
    assert rec == {"dent": {"recall": 0.5, "n": 2}, "hole": {"recall": 1.0, "n": 1}}


def test_bootstrap_ci_brackets_value_and_is_seeded():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 100)
    s = rng.normal(size=100) + y
    a = M.bootstrap_ci(y, s, M.roc_auc, np.random.default_rng(0), 300)
    b = M.bootstrap_ci(y, s, M.roc_auc, np.random.default_rng(0), 300)
    assert a == b and a[0] < M.roc_auc(y, s) < a[1]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="equal length"):
        M.roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="0/1"):
        M.roc_auc([0, 2], [0.1, 0.2])


def test_logistic_regression_matches_sklearn_ranking():
    from sklearn.linear_model import LogisticRegression as SkLR

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=300) > 0).astype(int)
    ours = LogisticRegression(l2=0.0).fit(X, y).decision_function(X)
    theirs = SkLR(C=1e6, max_iter=1000).fit(X, y).decision_function(X)
    np.testing.assert_allclose(ours, theirs, rtol=1e-2, atol=2e-2)


def test_shortcut_features_and_patchcore():
    imgs = np.zeros((2, 8, 8, 3), np.uint8)
    imgs[1] = 255
    f = shortcut_features(imgs, np.array([1.0, 2.0]))
    np.testing.assert_allclose(f, [[0, 0, 1], [1, 1, 2]])
    q = np.zeros((2, 4, 2))
    q[1, 0] = [3, 4]
    s = patchcore_scores(q, [np.zeros((5, 2)), np.zeros((5, 2))])
    np.testing.assert_allclose(s, [0.0, 5.0])


def test_vand_point_matches_the_single_metrics():
    from harness.metrics import (
        VAND_METRICS,
        ap_major,
        average_precision,
        recall_at_fpr,
        recall_at_precision,
        roc_auc,
        vand_per_category,
        vand_point,
    )

    rng = np.random.default_rng(5)
    y = np.r_[np.ones(40), np.zeros(1200)].astype(int)
    s = rng.normal(size=y.size) + 1.5 * y
    s[:5] = s[-5:]  # ties across classes
    sev = ["major" if i % 3 == 0 else "minor" for i in range(40)] + [""] * 1200
    p = vand_point(y, s, sev)
    assert tuple(p) == VAND_METRICS
    assert p["AUROC"] == pytest.approx(roc_auc(y, s), abs=1e-12)
    assert p["AP_any"] == pytest.approx(average_precision(y, s), abs=1e-12)
    assert p["AP_major"] == pytest.approx(ap_major(y, s, sev), abs=1e-12)
    assert p["recall@50%precision"] == recall_at_precision(y, s, 0.5)
    assert p["recall@1%FPR"] == recall_at_fpr(y, s, 0.01)["value"]
    assert p["recall@0.1%FPR"] == recall_at_fpr(y, s, 0.001)["value"]
    # 0.1% needs >= 1000 negatives; no severity -> no AP_major
    few = vand_point(y[:100], s[:100])
    assert np.isnan(few["recall@0.1%FPR"]) and np.isnan(few["AP_major"]) and np.isfinite(few["recall@1%FPR"])
    cats = ["dent" if i < 20 else "hole" for i in range(40)] + [""] * 1200
    pc = vand_per_category(y, s, cats)
    keep = np.r_[np.ones(20, bool), np.zeros(20, bool), np.ones(1200, bool)]
    assert pc["dent"]["AUROC"] == pytest.approx(roc_auc(y[keep], s[keep])) and pc["dent"]["n_pos"] == 20


def test_vand_weighted_equals_vand_point_on_each_resample():
    """The one-sort bootstrap (counts per sample) gives exactly the metrics of
    each expanded resample, ties, severity and categories included."""
    from harness.metrics import VAND_METRICS, vand_per_category, vand_point, vand_weighted

    rng = np.random.default_rng(0)
    for _ in range(8):
        n = int(rng.integers(6, 50))
        y = rng.integers(0, 2, n)
        y[:2] = (1, 0)
        s = np.round(rng.normal(size=n) + y, 1)  # ties
        sev = [("major" if rng.random() < 0.5 else "minor") if v else "" for v in y]
        cat = [("a" if rng.random() < 0.5 else "b") if v else "" for v in y]
        pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
        idxs = [np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)] for _ in range(20)]
        C = np.stack([np.bincount(i, minlength=n) for i in idxs])
        W = vand_weighted(y, s, C, sev, cat)
        for b, i in enumerate(idxs):
            p = vand_point(y[i], s[i], [sev[j] for j in i])
            for m in VAND_METRICS:
                assert W[m][b] == pytest.approx(p[m], abs=1e-9, nan_ok=True), m
            for c, d in vand_per_category(y[i], s[i], [cat[j] for j in i]).items():
                for m in ("AUROC", "AP_any"):
                    assert W["per_category"][c][m][b] == pytest.approx(d[m], abs=1e-9, nan_ok=True)
