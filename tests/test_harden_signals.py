"""A run stopped from outside leaves nothing behind: after SIGTERM (what
timeout, Slurm, systemd and Kubernetes send) or SIGKILL of the generate process
alone, no process of the run is alive within seconds, and --resume then gives
the uninterrupted dataset with a manifest that lists every capture once."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._scale_helpers import RIG, assert_same_tree, cli

ARGS6 = ("--n", "6", "--seed", "5", "--rig", str(RIG), "--reference-poses", "1", "--quiet")
_REF: dict[str, Path] = {}


def _reference(tmp_path_factory) -> Path:
    if "ref" not in _REF:
        d = tmp_path_factory.mktemp("ref") / "ds"
        cli("generate", *ARGS6, "--out", str(d))
        _REF["ref"] = d
    return _REF["ref"]


def _session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(p.name))
    return out


def _logged(out: Path) -> int:
    m = out / "manifest.jsonl"
    return m.read_bytes().count(b'"capture"') if m.is_file() else 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workers_die_with_their_run_and_resume_completes(tmp_path, tmp_path_factory, gl, sig):
    ref = _reference(tmp_path_factory)
    out = tmp_path / "ds"
    p = subprocess.Popen([sys.executable, "-m", "simulator.cli", "generate", *ARGS6, "--out", str(out),
                          "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _logged(out) < 1 and p.poll() is None:
            assert time.monotonic() < deadline, "no capture in 300 s"
            time.sleep(0.02)
        assert p.poll() is None, "the run finished before it could be stopped"
        workers = [q for q in _session_pids(p.pid) if q != p.pid]
        assert workers, "no worker processes seen"
        os.kill(p.pid, sig)  # the parent only: its workers must follow by themselves
        rc = p.wait(timeout=60)
        err = p.stderr.read().decode()
        deadline = time.monotonic() + 5
        while _session_pids(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _session_pids(p.pid) == [], f"processes of the run still alive: {_session_pids(p.pid)}"
    finally:
        for q in _session_pids(p.pid):
            os.kill(q, signal.SIGKILL)
        if p.poll() is None:
            p.kill()
    if sig == signal.SIGTERM:
        assert rc == 143, err
        assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err, err
        assert not list(out.rglob(".tmp-*")), "SIGTERM left temporaries"
    else:
        assert rc == -signal.SIGKILL
    # a capture finished after the parent was gone must not be lost from the manifest
    r = cli("generate", *ARGS6, "--out", str(out), "--workers", "2", "--resume")
    assert "pybullet build time" not in r.stdout + r.stderr  # not from the workers either
    assert_same_tree(ref, out)
    entries = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    logged = sorted(e["capture"] for e in entries if "capture" in e)
    assert logged == list(range(6)), logged
    r = cli("validate", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_validate_flags_a_manifest_that_disagrees_with_the_disk(tmp_path_factory, tmp_path):
    import shutil

    ref = _reference(tmp_path_factory)
    d = tmp_path / "ds"
    shutil.copytree(ref, d)
    m = d / "manifest.jsonl"
    lines = m.read_text().splitlines()
    m.write_text("\n".join(l for l in lines if json.loads(l).get("capture") != 2) + "\n")
    r = cli("validate", str(d), check=False)
    assert r.returncode == 1
    assert "manifest.jsonl" in r.stdout and "000002" in r.stdout, r.stdout
    m.write_text("\n".join(lines + [json.dumps({"capture": 5}), json.dumps({"capture": 9})]) + "\n")
    shutil.rmtree(d / "captures" / "000005")
    r = cli("validate", str(d), check=False)
    assert r.returncode == 1 and "lists captures that are not on disk: ['000005']" in r.stdout, r.stdout
