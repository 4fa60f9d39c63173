"""Named random streams of one capture or reference capture: capture i depends only on (seed, i)."""
from __future__ import annotations

import hashlib

import numpy as np

#: named random streams of one capture, in spawn order (append only: reordering
#: would change every existing dataset)
STREAMS = ("scene", "damage", "physics", "render", "placement", "randomize", "variant")


def capture_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators for one capture, determined by (seed, index) only."""
    children = np.random.SeedSequence([seed, index]).spawn(len(STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(STREAMS, children)}


def reference_streams(seed: int, sku: str, pose: int) -> dict[str, np.random.Generator]:
    """Streams of reference capture ``pose`` of ``sku``: depend on (seed, sku, pose)
    only; the 2**32 offset keeps them apart from capture streams (seed, i)."""
    key = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:4], "little")
    children = np.random.SeedSequence([seed, 2 ** 32 + key, pose]).spawn(len(STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(STREAMS, children)}
