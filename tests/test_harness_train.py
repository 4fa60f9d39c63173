"""The CNN trains: its loss falls on tiny generated data, and training is
reproducible from its seed without touching torch's global RNG."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _harness_helpers import fake_synthetic, one_torch_thread  # noqa: E402,F401  (autouse fixture)

from harness.data import load_synthetic  # noqa: E402
from harness.train import TrainConfig, new_model, predict, train  # noqa: E402


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return load_synthetic(fake_synthetic(tmp_path_factory.mktemp("syn"), n=16), size=32)


def test_loss_falls_and_scores_separate(syn):
    cfg = TrainConfig(steps=60, batch=16, lr=5e-3, augment=False)
    m = new_model(0, 3, 8, seg_head=True)
    state = torch.random.get_rng_state()
    info = train(m, syn, cfg, seed=0, device="cpu")
    assert torch.equal(state, torch.random.get_rng_state()), "training must not reseed the global RNG"
    first, last = np.mean(info["losses"][:10]), np.mean(info["losses"][-10:])
    assert last < 0.6 * first, (first, last)
    s = predict(m, syn.images, "cpu")
    assert s.shape == (len(syn),) and s[syn.labels == 1].mean() > s[syn.labels == 0].mean()


def test_training_is_seeded(syn):
    cfg = TrainConfig(steps=3, batch=8)
    a, b = new_model(1, 3, 8), new_model(1, 3, 8)
    la = train(a, syn, cfg, seed=5, device="cpu")["losses"]
    lb = train(b, syn, cfg, seed=5, device="cpu")["losses"]
    assert la == lb


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        TrainConfig(steps=0)
    m = new_model(0, 3, 8)
    with pytest.raises(ValueError, match="input must have 3 channels"):
        m(torch.zeros(1, 5, 32, 32))
