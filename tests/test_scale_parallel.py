"""Parallel generation: identical output for 1 vs 2 worker processes (recycled
after every capture) and for the Ray backend; failures stop or skip as
documented and --resume finishes the run; an unwritable output is refused."""
import json
from pathlib import Path

import pytest

from tests._scale_helpers import N, assert_same_tree, base_dataset, generate


def test_two_recycled_workers_match_one(tmp_path, gl):
    base = base_dataset()
    generate(tmp_path / "w2", "--workers", "2", "--recycle", "1")
    assert_same_tree(base, tmp_path / "w2")
    lines = [json.loads(s) for s in (tmp_path / "w2" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(e["capture"] for e in lines) == list(range(N))


def test_ray_local_cluster_matches_one_worker(tmp_path, gl):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'damagesim[scale]')")
    base = base_dataset()
    generate(tmp_path / "ray", "--workers", "2", "--backend", "ray")  # ray.init(num_cpus=2)
    assert_same_tree(base, tmp_path / "ray")


def test_bad_capture_stops_then_skips_then_resume_completes(tmp_path, gl):
    out = tmp_path / "ds"
    r = generate(out, env={"DAMAGESIM_FAULT": "raise:1"}, check=False)
    assert r.returncode == 3, r.stderr
    assert "capture 1 failed" in r.stderr and "--resume" in r.stderr
    assert not (out / "captures" / "000001").exists()
    r = generate(out, "--resume", "--on-error", "skip", env={"DAMAGESIM_FAULT": "raise:2"}, check=False)
    assert r.returncode == 0, r.stderr
    assert "skipped: 2" in r.stderr
    card = json.loads((out / "dataset.json").read_text())
    assert list(card["failed_captures"]) == ["2"] and card["counts"]["captures"] == N - 1
    generate(out, "--resume")
    assert_same_tree(base_dataset(), out)


def test_worker_crash_stops_cleanly_and_resume_completes(tmp_path, gl):
    out = tmp_path / "ds"
    r = generate(out, "--workers", "2", env={"DAMAGESIM_FAULT": "crash:2"}, check=False)
    assert r.returncode == 3, r.stderr
    assert "worker process died" in r.stderr and "--resume" in r.stderr
    generate(out, "--resume", "--workers", "2")
    assert_same_tree(base_dataset(), out)


def test_unwritable_output_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = generate(blocker / "ds", check=False)
    assert r.returncode == 2
    assert "cannot write to output folder" in r.stderr or "--out" in r.stderr
    assert "Traceback" not in r.stderr
