"""Named random streams of one capture or reference capture: capture i depends only on (seed, i)."""
from __future__ import annotations

import numpy as np

from simulator.core.seeds import streams, text_key

#: named random streams of one capture, in spawn order (append only: reordering
#: would change every existing dataset)
STREAMS = ("scene", "damage", "physics", "render", "placement", "randomize", "variant")


def capture_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators for one capture, determined by (seed, index) only."""
    return streams([seed, index], STREAMS)


def reference_streams(seed: int, sku: str, pose: int) -> dict[str, np.random.Generator]:
    """Streams of reference capture ``pose`` of ``sku``: depend on (seed, sku, pose)
    only; the 2**32 offset keeps them apart from capture streams (seed, i)."""
    return streams([seed, 2 ** 32 + text_key(sku), pose], STREAMS)
