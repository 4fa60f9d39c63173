"""The one damage-drawing loop: it catches only NotApplicable."""
from dataclasses import replace

import numpy as np
import pytest


def test_the_damage_loop_catches_only_not_applicable(monkeypatch):
    """NotApplicable draws again (logged); any other exception inside an op fails
    loudly, naming the op, the SKU, the params and where."""
    from damage_ops import base
    from damage_ops.base import NotApplicable
    from simulator.core.errors import DamageOpError
    from simulator.scene.damage import draw_damage
    from tests.conftest import box_product

    p = box_product()
    calls = []

    def refuse(product, params, rng):
        calls.append(1)
        raise NotApplicable("crush: no room here")

    monkeypatch.setitem(base.REGISTRY, "crush", replace(base.REGISTRY["crush"], fn=refuse))
    damaged, rec, log = draw_damage(p, lambda r: ("crush", "minor"), np.random.default_rng(0), max_tries=3)
    assert damaged is None and rec is None and len(calls) == 3
    assert [e["error"] for e in log] == ["NotApplicable: crush: no room here"] * 3

    def bug(product, params, rng):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setitem(base.REGISTRY, "crush", replace(base.REGISTRY["crush"], fn=bug))
    with pytest.raises(DamageOpError, match=r"capture 5: damage op 'crush' failed on SKU .* IndexError: index 7"):
        draw_damage(p, lambda r: ("crush", "minor"), np.random.default_rng(0), where="capture 5")
