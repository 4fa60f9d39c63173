"""A dataset on a shared disk: files and folders get the modes the umask asks
for (not mkstemp's 0600 / mkdtemp's 0700), and --resume / --only accept the
same dataset by any path spelling, after a copy, and with the rig named by
another path; a different spec is refused naming the fields that differ."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests._scale_helpers import ARGS, RIG, assert_same_tree, base_dataset, cli


@pytest.mark.parametrize("mask,fmode,dmode", [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)])
def test_modes_follow_the_umask(tmp_path, gl, mask, fmode, dmode):
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--n", "1", "--rig", str(RIG),
                        "--reference-poses", "1", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, preexec_fn=lambda: os.umask(mask))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pybullet build time" not in r.stdout + r.stderr  # pybullet's import banner is silenced
    files = [p for p in out.rglob("*") if p.is_file()]
    dirs = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert len(files) > 20 and len(dirs) > 5
    bad = [(str(p.relative_to(out)), oct(stat.S_IMODE(p.stat().st_mode))) for p in files
           if stat.S_IMODE(p.stat().st_mode) != fmode]
    bad += [(str(p.relative_to(out)), oct(stat.S_IMODE(p.stat().st_mode))) for p in dirs
            if stat.S_IMODE(p.stat().st_mode) != dmode]
    assert not bad, bad[:10]


def test_resume_and_only_from_another_spelling_and_after_a_copy(tmp_path, gl):
    base = base_dataset()
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    (tmp_path / "sub").mkdir()
    # a relative, roundabout spelling of a copy of the dataset
    cli("generate", *ARGS, "--out", "sub/../copy", "--resume", cwd=tmp_path)
    assert_same_tree(base, copy)
    # --only by yet another spelling, and the rig by a relative path: capture 1
    # is remade, identically (the card then records the rig as given)
    os.remove(copy / "captures" / "000001" / "top" / "rgb.png")
    args = [a if a != str(RIG) else os.path.relpath(RIG, tmp_path) for a in ARGS]
    cli("generate", *args, "--out", str(tmp_path / "." / "sub" / ".." / "copy"), "--only", "1", cwd=tmp_path)
    assert_same_tree(base / "captures", copy / "captures")
    assert_same_tree(base / "coco", copy / "coco")
    r = cli("validate", str(copy), check=False)
    assert r.returncode == 0, r.stdout


def test_another_spec_is_refused_naming_the_fields(tmp_path):
    base = base_dataset()
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    args = list(ARGS)
    args[args.index("--seed") + 1] = "6"
    r = cli("generate", *args, "--items", "2", "--out", str(copy), "--resume", check=False)
    assert r.returncode == 2, r.stderr
    assert "seed: 5 there, 6 here" in r.stderr and "items_per_tray: 1 there, 2 here" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    rig2 = tmp_path / "rig2.yaml"
    rig2.write_text(RIG.read_text().replace("ambient: 0.1", "ambient: 0.2"))
    args = [a if a != str(RIG) else str(rig2) for a in ARGS]
    r = cli("generate", *args, "--out", str(copy), "--resume", check=False)
    assert r.returncode == 2 and "rig:" in r.stderr and "other content" in r.stderr, r.stderr
