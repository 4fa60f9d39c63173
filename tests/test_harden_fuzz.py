"""Property-based fuzzing of the two user inputs, rig and catalog YAML: random
mutations of valid files (types, values, structure, raw bytes) either validate
or are refused with one line naming the file; never a traceback, never output.

Validation only (simulator.generate.spec.prepare, what generate runs before it
writes anything); nothing is rendered. CI runs FUZZ_EXAMPLES (default 60)
examples per input; ``FUZZ_EXAMPLES=500 FUZZ_STATS=path.json`` for a long run
that also counts the outcome classes."""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import trimesh
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core.errors import DamagesimError
from simulator.core.paths import default_catalog
from simulator.generate.spec import GenerateSpec, prepare

DATA = Path(__file__).parent / "data"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
STATS: Counter = Counter()
ROOT = Path(tempfile.mkdtemp(prefix="damagesim-fuzz-"))
trimesh.creation.box(extents=[120, 80, 40]).export(str(ROOT / "box.obj"))

RIGS = [yaml.safe_load((DATA / "rig_small.yaml").read_text()),
        yaml.safe_load((DATA.parent.parent / "assets" / "rigs" / "booth_default.yaml").read_text())]
CATALOG = yaml.safe_load(default_catalog().read_text())
CATALOG["products"].append({"kind": "mesh", "path": "box.obj", "units": "mm", "material": "rigid_plastic"})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.integers(), st.sampled_from([0, 1, -1, 16, 16384, 10 ** 30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-300, 1e300, math.nan, math.inf]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.sampled_from(["", "mm", "area", "rgb", "carton", "mesh", "booth", "../x.yaml", "box.obj"]))
keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                      st.dictionaries(keys, kids, max_size=4)),
                      max_leaves=12)


def _paths(node, prefix=()):
    """Every (path, value) in a YAML tree, the root included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(data, tree):
    """One random structural or value mutation of ``tree`` (a deep copy)."""
    tree = json.loads(json.dumps(tree))
    paths = list(_paths(tree))
    path, node = data.draw(st.sampled_from(paths), label="path")
    op = data.draw(st.sampled_from(["replace", "delete", "add_key", "wrap", "dup", "swap_type"]), label="op")
    if not path:
        return data.draw(values, label="root") if op in ("replace", "swap_type") else tree
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if op == "replace":
        parent[last] = data.draw(values, label="value")
    elif op == "delete":
        del parent[last]
    elif op == "add_key" and isinstance(node, dict):
        node[data.draw(keys, label="key")] = data.draw(values, label="value")
    elif op == "wrap":
        parent[last] = [node]
    elif op == "dup" and isinstance(node, list) and node:
        node.append(node[data.draw(st.integers(0, len(node) - 1))])
    elif op == "swap_type":
        parent[last] = str(node) if not isinstance(node, str) else data.draw(st.integers())
    return tree


def _bytes_mutation(data, text: bytes) -> bytes:
    b = bytearray(text)
    for _ in range(data.draw(st.integers(1, 4), label="n_byte_edits")):
        i = data.draw(st.integers(0, max(0, len(b) - 1)), label="at")
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="byte_op")
        if kind == "flip" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and b:
            del b[i:i + data.draw(st.integers(1, 16))]
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


def _check(data, which: str) -> None:
    base = data.draw(st.sampled_from(RIGS), label="rig") if which == "rig" else CATALOG
    tree = base
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        tree = _mutate(data, tree)
    try:
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode()
    except yaml.YAMLError:
        text = b"x: 1\n"
    if data.draw(st.booleans(), label="byte_level"):
        text = _bytes_mutation(data, text)
    d = Path(tempfile.mkdtemp(dir=ROOT))
    (d / "box.obj").symlink_to(ROOT / "box.obj")
    f = d / f"{which}.yaml"
    f.write_bytes(text)
    out = d / "out"
    spec = GenerateSpec(n=1, out=str(out), rig=str(f) if which == "rig" else str(DATA / "rig_small.yaml"),
                        catalog=str(f) if which == "catalog" else str(default_catalog()))
    try:
        prepare(spec)
        STATS[f"{which}: valid"] += 1
    except DamagesimError as e:
        msg = str(e)
        assert not any(c in msg for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), msg  # one line
        assert len(msg) < 2000, len(msg)
        assert str(f) in msg, msg  # names the file
        STATS[f"{which}: refused: {_class(msg)}"] += 1
    assert not out.exists()


def _class(msg: str) -> str:
    """Outcome class of a message: its key with indices dropped, and its problem's first words."""
    import re

    rest = msg.split(": ", 1)[1]
    key, _, problem = rest.partition(": ")
    key = re.sub(r"\[\d+\]|\([^)]*\)", "", key)
    return f"{key}: {' '.join(problem.split()[:3])}"


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(st.data())
def test_fuzzed_rigs_validate_or_refuse_cleanly(data):
    _check(data, "rig")


@SETTINGS
@given(st.data())
def test_fuzzed_catalogs_validate_or_refuse_cleanly(data):
    _check(data, "catalog")


@pytest.fixture(scope="module", autouse=True)
def _stats():
    yield
    if os.environ.get("FUZZ_STATS"):
        Path(os.environ["FUZZ_STATS"]).write_text(json.dumps(dict(STATS.most_common()), indent=1))
