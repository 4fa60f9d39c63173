"""Seed derivation: every random stream of damagesim comes from here.

A stream is named by a tuple of parts, integers (run seed, capture index,
camera index, ...) and strings (a SKU, a gallery cell); a string enters as
:func:`text_key`, the first 4 bytes of its sha256, so the same name gives the
same stream on every machine and Python version (``hash()`` is salted per
process). ``rng(a, b)`` equals ``np.random.default_rng([a, b])``."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


def text_key(text: str) -> int:
    """A stable 32-bit integer key of ``text``: the first 4 bytes of its UTF-8
    sha256, little-endian."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def seed_sequence(*parts: int | str) -> np.random.SeedSequence:
    """``SeedSequence([parts])``, strings replaced by their :func:`text_key`.
    Raises TypeError on a part that is neither (a float would round silently)."""
    entropy = []
    for p in parts:
        if isinstance(p, str):
            entropy.append(text_key(p))
        elif isinstance(p, (int, np.integer)) and not isinstance(p, bool):
            entropy.append(int(p))
        else:
            raise TypeError(f"seed part must be an int or a str, got {p!r}")
    return np.random.SeedSequence(entropy)


def rng(*parts: int | str) -> np.random.Generator:
    """A generator of the stream named by ``parts`` (see :func:`seed_sequence`)."""
    return np.random.default_rng(seed_sequence(*parts))


def streams(parts: Sequence[int | str], names: Sequence[str]) -> dict[str, np.random.Generator]:
    """Independent named generators spawned, in ``names`` order, from the stream
    ``parts``: appending a name never changes the earlier ones."""
    children = seed_sequence(*parts).spawn(len(names))
    return {name: np.random.default_rng(ss) for name, ss in zip(names, children)}
