"""Parallel generation: identical output for 1 vs 2 worker processes (recycled
after every capture) and for the Ray backend; failures stop or skip as
documented and --resume finishes the run; an unwritable output is refused."""
import json
import os
import selectors
import signal
import subprocess
import sys

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


#: an existing cluster, owned by a separate process: prints its address, holds
#: the cluster until its stdin closes, then shuts it down
_RAY_HEAD = """
import sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


#: Ray's default for new clusters; a driver joining by address must ask for it
TOKEN = {"RAY_AUTH_MODE": "token"}


@pytest.fixture
def ray_cluster():
    """The address of a running Ray cluster that generation must join, not start.

    Started with ``ray.init`` in its own process rather than ``ray start --head``:
    ``ray start`` registers the cluster in /tmp/ray/ray_current_cluster, which
    every plain ``ray.init()`` on this machine would then join (other people's
    runs, tests running beside this one), and ``ray stop`` kills every Ray
    process of the machine. This cluster is just as external to the generator
    (it joins by address) and this test alone starts and ends it."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'damagesim[scale]')")
    p = subprocess.Popen([sys.executable, "-c", _RAY_HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True, env={**os.environ, **TOKEN})
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=120):
            pytest.fail("the Ray head process printed no address within 120 s")
        addr = p.stdout.readline().strip()
        assert addr.count(":") == 1, f"not an address: {addr!r} (exit status {p.poll()})"
        yield addr
    finally:
        p.stdin.close()  # the head shuts its cluster down
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the head and the processes it started, nothing else
            p.wait()


def test_ray_existing_cluster_by_address_matches_one_worker(tmp_path, gl, ray_cluster):
    base = base_dataset()
    out = tmp_path / "ray_addr"
    r = generate(out, "--backend", "ray", "--address", ray_cluster, env=TOKEN)
    assert "Started a local Ray instance" not in r.stderr
    assert_same_tree(base, out)
    lines = [json.loads(s) for s in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(e["capture"] for e in lines) == list(range(N))
    # the cluster outlives the run (the generator disconnects, it does not shut it down)
    code = f"import ray; ray.init(address={ray_cluster!r}); print(int(ray.cluster_resources()['CPU']))"
    alive = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, **TOKEN})
    assert alive.stdout.strip() == "2", alive.stderr[-2000:]


def test_ray_address_nobody_listens_on_is_refused_fast(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'damagesim[scale]')")
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago, nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = generate(tmp_path / "ds", "--backend", "ray", "--address", f"127.0.0.1:{port}", check=False, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "--address: no Ray cluster answers there" in r.stderr and f"127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ds" / "captures").exists()


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
