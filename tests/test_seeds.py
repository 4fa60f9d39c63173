"""The one seed-derivation helper: stable names, the same streams as the
formulas datasets were made with, no silent float seeds."""
import hashlib

import numpy as np
import pytest

from simulator.core.seeds import rng, seed_sequence, streams, text_key
from simulator.scene.streams import STREAMS, capture_streams, reference_streams


def test_text_key_is_the_sha256_prefix_and_stable():
    assert text_key("carton-000") == int.from_bytes(hashlib.sha256(b"carton-000").digest()[:4], "little")
    assert text_key("a") != text_key("b")


def test_rng_equals_default_rng_of_the_list():
    a, b = rng(3, 17).random(8), np.random.default_rng([3, 17]).random(8)
    assert np.array_equal(a, b)
    c = rng(3, "sku").random(4)
    assert np.array_equal(c, np.random.default_rng([3, text_key("sku")]).random(4))


def test_capture_and_reference_streams_keep_their_formulas():
    got = capture_streams(7, 12)
    kids = np.random.SeedSequence([7, 12]).spawn(len(STREAMS))
    for name, ss in zip(STREAMS, kids):
        assert np.array_equal(got[name].integers(0, 2 ** 62, 5), np.random.default_rng(ss).integers(0, 2 ** 62, 5))
    key = int.from_bytes(hashlib.sha256(b"mailer-003").digest()[:4], "little")
    ref = reference_streams(7, "mailer-003", 2)
    kids = np.random.SeedSequence([7, 2 ** 32 + key, 2]).spawn(len(STREAMS))
    assert np.array_equal(ref["physics"].random(3), np.random.default_rng(kids[STREAMS.index("physics")]).random(3))


def test_streams_are_independent_and_append_only():
    s3 = streams([1, 2], ("a", "b", "c"))
    s2 = streams([1, 2], ("a", "b"))
    assert np.array_equal(s3["a"].random(4), s2["a"].random(4))
    assert not np.array_equal(s3["b"].random(4), s3["c"].random(4))


@pytest.mark.parametrize("bad", [1.5, True, None, (1, 2)])
def test_a_part_that_is_not_int_or_str_is_refused(bad):
    with pytest.raises(TypeError, match="seed part"):
        seed_sequence(1, bad)

