"""Shared by tests/test_scale_*.py: run the real CLI in a subprocess and compare
datasets file by file. The base dataset is made once per test session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RIG = Path(__file__).parent / "data" / "rig_small.yaml"
N, SEED = 3, 5
#: small and cheap: 4 captures of the small rig, one reference pose per SKU
ARGS = ("--n", str(N), "--seed", str(SEED), "--rig", str(RIG), "--reference-poses", "1", "--quiet")
_CACHE: dict[str, Path] = {}


def cli(*args: str, env: dict | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True, env=e, **kw)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def generate(out: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return cli("generate", *ARGS, "--out", str(out), *extra, **kw)


def base_dataset() -> Path:
    """The uninterrupted one-worker reference run (capture folders)."""
    if "base" not in _CACHE:
        d = Path(tempfile.mkdtemp(prefix="damagesim-scale-base-"))
        generate(d / "ds")
        _CACHE["base"] = d / "ds"
    return _CACHE["base"]


def tree(root: Path, skip=("manifest.jsonl",)) -> dict[str, bytes]:
    """relative path -> bytes of every file (dataset.json without the fields that
    name the output folder or the code checkout)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if not p.is_file() or p.name in skip:
            continue
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        if rel == "dataset.md":  # names the code checkout, like code_version in the card
            data = b"\n".join(l for l in data.split(b"\n") if not l.startswith(b"- code:"))
        if rel == "dataset.json":
            card = json.loads(data)
            card["spec"].pop("out")
            card.pop("code_version")
            data = json.dumps(card, sort_keys=True).encode()
        out[rel] = data
    return out


def assert_same_tree(a: Path, b: Path, skip=("manifest.jsonl",)) -> None:
    ta, tb = tree(a, skip), tree(b, skip)
    assert sorted(ta) == sorted(tb), (sorted(set(ta) ^ set(tb)))[:10]
    diff = [k for k in ta if ta[k] != tb[k]]
    assert not diff, f"files differ: {diff[:10]}"
