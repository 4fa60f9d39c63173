"""A full output device: generate stops with exit status 2 and a message naming
the output folder; it leaves no temporary or torn file (every capture, reference
and shard on disk is byte-identical to the uninterrupted run's, the manifest
lists only captures that are on disk); after space is freed, --resume finishes
the run with every capture exactly once. The device is a small tmpfs mounted
for the test (root and a container that allows mount; skipped otherwise)."""
import json
import os
import subprocess

import pytest

from tests._scale_helpers import N, assert_same_tree, base_dataset, cli, generate

PAGE = 4096


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs at tmp_path/mnt, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot run mount to make a small file system to fill: {e}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root where mount is allowed): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _pages(d):
    """Bytes ``d`` takes on a tmpfs: every file rounded up to whole pages."""
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in d.rglob("*") if p.is_file())


def _fill(mnt, leave: int):
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - leave))
    return filler


def _capture_ids_on_disk(out, shard_size):
    from simulator.dataset.shards import iter_shard, shard_files

    folders = sorted(p.name for p in (out / "captures").iterdir()) if (out / "captures").is_dir() else []
    packed = [k for _, p in shard_files(out / "shards") for k, _ in iter_shard(p)]
    return folders, packed


TRIALS = {
    # the capture being written by the worker (here: in-process) hits the full disk
    "folders": (),
    # shard 0 is packed by the parent right after capture 0: the tar hits the full disk
    "shards": ("--shards", "--shard-size", "1"),
}


@pytest.mark.parametrize("trial", sorted(TRIALS))
def test_full_disk_stops_clean_and_resume_completes(tmp_path, gl, small_fs, trial):
    base = base_dataset()
    extra = TRIALS[trial]
    out = small_fs / "ds"
    # room for capture 0 and its reference, and half of capture 1
    sku0 = json.loads((base / "captures/000000/capture.json").read_text())["items"][0]["sku"]
    leave = (_pages(base / "captures/000000") + _pages(base / "references" / sku0)
             + _pages(base / "captures/000001") // 2 + 8 * PAGE)
    filler = _fill(small_fs, leave)

    r = generate(out, *extra, check=False)
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"cannot write to output folder {out}: the output device is full" in r.stderr, r.stderr[-3000:]
    assert "--resume" in r.stderr and "Traceback" not in r.stderr and "(None)" not in r.stderr
    # nothing torn, nothing temporary: what is there is what the uninterrupted run made
    assert [p.relative_to(out).as_posix() for p in out.rglob(".*")] == []
    folders, packed = _capture_ids_on_disk(out, 1)
    for c in folders:
        assert_same_tree(base / "captures" / c, out / "captures" / c)
    for ref in out.glob("references/*/*"):
        assert_same_tree(base / ref.relative_to(out), ref)
    if packed:
        cli("export", "shards", str(base), "--out", str(tmp_path / "ref_shards"), "--shard-size", "1")
        for f in sorted((out / "shards").glob("shard-*.tar")):
            assert f.read_bytes() == (tmp_path / "ref_shards" / f.name).read_bytes(), f.name
    raw = (out / "manifest.jsonl").read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    listed = [e["capture"] for e in map(json.loads, raw.splitlines()) if "capture" in e]
    assert set(f"{i:06d}" for i in listed) <= set(folders) | set(packed)
    assert len(folders) + len(packed) >= 1  # it stopped mid-run, not before the first capture
    assert len(set(folders) | set(packed)) < N

    filler.unlink()
    r = generate(out, *extra, "--resume", check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not list(out.rglob(".*"))
    lines = [json.loads(s) for s in (out / "manifest.jsonl").read_text().splitlines()]
    listed = [e["capture"] for e in lines if "capture" in e]
    assert len(listed) == len(set(listed))  # never recorded twice
    if "--shards" in extra:
        folders, packed = _capture_ids_on_disk(out, 1)
        assert folders == [] and packed == [f"{i:06d}" for i in range(N)]
        assert_same_tree(base / "references", out / "references")
    else:
        assert_same_tree(base, out)
    r = cli("validate", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
