"""Crash and resume: a generate process group killed with SIGKILL at random
moments, then rerun with --resume, ends with every capture exactly once and every
file byte-identical to an uninterrupted run (capture folders and shards)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests._scale_helpers import ARGS, assert_same_tree, base_dataset, cli, generate

#: generate options per trial; the kill times come from a seeded rng per trial
TRIALS = [(), ("--shards", "--shard-size", "1"), ("--shards", "--shard-size", "2", "--workers", "2")]


def _captures_logged(out) -> int:
    m = out / "manifest.jsonl"
    return m.read_bytes().count(b'"capture"') if m.is_file() else 0


def _kill_at(out, extra, after: int, delay: float) -> bool:
    """Start a generate, SIGKILL it ``delay`` s after ``after`` more captures are
    logged (0: ``delay`` s after start). Points in the run, not wall times, so
    the kills land mid-run however fast generation is. Returns whether it was
    killed (False: it finished first)."""
    start = _captures_logged(out)
    p = subprocess.Popen([sys.executable, "-m", "simulator.cli", "generate", *ARGS, "--out", str(out), *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while after and p.poll() is None and _captures_logged(out) - start < after:
            if time.monotonic() > deadline:
                raise AssertionError("generate made no progress in 300 s")
            time.sleep(0.01)
        p.wait(timeout=delay)
        return False  # finished before the kill
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the CLI and every worker it started
        p.wait()
        return True
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.parametrize("trial", range(len(TRIALS)))
def test_sigkill_then_resume_gives_the_uninterrupted_dataset(tmp_path, gl, trial):
    base = base_dataset()
    extra = TRIALS[trial]
    rng = np.random.default_rng(1000 + trial)
    out = tmp_path / "ds"
    kills = 0
    # two kills per trial (during start-up / the first capture, or just after
    # capture 1 or 2 lands: mid-write, mid-shard-pack, mid-reference), then a clean resume
    for _ in range(2):
        after = int(rng.integers(0, 3))
        delay = float(rng.uniform(1.0, 3.0) if after == 0 else rng.uniform(0.0, 0.5))
        kills += _kill_at(out, (*extra, "--resume"), after, delay)
    generate(out, *extra, "--resume")
    assert kills >= 1
    # exactly once, nothing stale
    assert not [p for p in out.rglob(".*")]
    if "--shards" in extra:
        size = extra[extra.index("--shard-size") + 1]
        cli("export", "shards", str(base), "--out", str(tmp_path / "ref_shards"), "--shard-size", size)
        for f in sorted((tmp_path / "ref_shards").glob("shard-*.tar")):
            assert (out / "shards" / f.name).read_bytes() == f.read_bytes(), f.name
        assert not list((out / "captures").iterdir())
        assert_same_tree(base / "references", out / "references")
        import json

        a, b = (json.loads((d / "dataset.json").read_text())["counts"] for d in (base, out))
        assert a == b
    else:
        assert_same_tree(base, out)
    r = cli("validate", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
