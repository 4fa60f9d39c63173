"""Bad input of every class stops generate before anything is written: exit
status 2, one message that names the file, key or flag and quotes (a short
excerpt of) the value, and no traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml
from click.testing import CliRunner

from simulator.cli import main

RIG = Path(__file__).parent / "data" / "rig_small.yaml"


def small_rig() -> dict:
    return yaml.safe_load(RIG.read_text())


def write_yaml(path: Path, d) -> Path:
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def mesh_catalog(tmp_path: Path, V, F, name="m.obj") -> Path:
    trimesh.Trimesh(np.asarray(V, float), np.asarray(F), process=False).export(str(tmp_path / name))
    return write_yaml(tmp_path / "cat.yaml", {"products": [
        {"kind": "mesh", "path": name, "units": "mm", "material": "rigid_plastic"}]})


def run_generate(tmp_path: Path, *args: str):
    """generate in this process (CliRunner): (exit code, stderr, output folder)."""
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["generate", "--n", "2", "--quiet", "--out", str(out), *args])
    return r, out


def assert_refused(r, out: Path, *words: str) -> str:
    """Exit 2, a one-line message with every word in it, nothing written."""
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("damagesim: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert len(lines[0]) < 1000, len(lines[0])
    assert not out.exists(), "bad input wrote output"
    return lines[0]


BOMB = "".join([f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi")])
BOMB = "a: &a [1,2,3,4,5,6,7,8,9]\n" + BOMB


@pytest.mark.parametrize("which", ["--rig", "--catalog"])
@pytest.mark.parametrize("content,words", [
    (bytes(range(256)) * 4, ("not UTF-8",)),
    (b"\x00\x01binary\x00", ("binary", "NUL")),
    (BOMB.encode(), ("expands to more than",)),
    (b"[" * 20000 + b"]" * 20000, ("nested more than",)),
    (b"a: &a [*a]\n", ("contains itself",)),
    (b"a: " + b"9" * 5000 + b"\n", ("cannot be parsed",)),
    (b"a: {b: 1\n", ("not valid YAML", "line")),
    (b"x: " + b"y" * (5 << 20) + b"\n", ("larger than",)),
], ids=["garbage", "nul", "alias-bomb", "deep", "recursive-anchor", "huge-int", "syntax", "too-big"])
def test_unparseable_yaml_is_refused(tmp_path, which, content, words):
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    r, out = run_generate(tmp_path, which, str(f))
    assert_refused(r, out, str(f), *words)


def test_huge_resolution_is_refused(tmp_path):
    d = small_rig()
    d["cameras"][0]["resolution"] = [16384, 16384]
    d["cameras"][0]["intrinsics"] = {"fx": 18000, "fy": 18000, "cx": 8191.5, "cy": 8191.5}
    r, out = run_generate(tmp_path, "--rig", str(write_yaml(tmp_path / "rig.yaml", d)))
    assert_refused(r, out, "rig.yaml", "cameras[0](top).resolution", "16384")


def test_render_larger_than_the_gl_context_is_refused(tmp_path, gl):
    """A distorted lens is rendered wider than its image: past the GL
    context's largest renderbuffer that is refused up front."""
    d = small_rig()
    d["cameras"][0].update(resolution=[16000, 400], intrinsics={"fx": 9000, "fy": 9000, "cx": 7999.5, "cy": 199.5},
                           distortion=[-0.3, 0.0, 0.0, 0.0, 0.0], position_mm=[0, 0, 9000],
                           range_mm=[100, 20000])
    r, out = run_generate(tmp_path, "--rig", str(write_yaml(tmp_path / "rig.yaml", d)))
    assert_refused(r, out, "rig.yaml", "cameras[0](top).resolution", "larger than this GL context renders")


def test_camera_in_the_tray_slab_is_refused(tmp_path):
    d = small_rig()
    d["cameras"][1].update(position_mm=[0, 0, -10], look_at_mm=[0, 0, 300], up=[0, 1, 0])
    r, out = run_generate(tmp_path, "--rig", str(write_yaml(tmp_path / "rig.yaml", d)))
    assert_refused(r, out, "rig.yaml", "cameras[1](oblique).position_mm", "[0, 0, -10]", "tray floor")


def test_many_cameras_warn(tmp_path):
    import warnings

    from simulator.generate.spec import GenerateSpec, prepare

    d = small_rig()
    cam = d["cameras"][1]
    d["cameras"] = [dict(cam, name=f"c{i}") for i in range(40)]
    rig = write_yaml(tmp_path / "rig.yaml", d)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        prepare(GenerateSpec(n=1, out=str(tmp_path / "out"), rig=str(rig)))
    msgs = [str(x.message) for x in w]
    assert any("40 cameras" in m and "rig.yaml" in m for m in msgs), msgs
    assert not (tmp_path / "out").exists()


def test_long_values_are_quoted_short(tmp_path):
    d = small_rig()
    d["cameras"][0]["distortion"] = list(range(200_000))
    r, out = run_generate(tmp_path, "--rig", str(write_yaml(tmp_path / "rig.yaml", d)))
    line = assert_refused(r, out, "rig.yaml", "cameras[0](top).distortion", "[0, 1, 2")
    assert len(line) < 400


@pytest.mark.parametrize("args,words", [
    (("--damage-rate", "2"), ("--damage-rate", "2")),
    (("--major-fraction", "-1"), ("--major-fraction", "-1")),
    (("--variants-per-sku", "0"), ("--variants-per-sku", "0")),
    (("--reference-poses", "99"), ("--reference-poses", "99")),
    (("--damages-per-item", "3-1"), ("--damages-per-item", "3, 1")),
    (("--categories", "deformation=-1"), ("--categories deformation", "-1")),
    (("--categories", "nosuch=1"), ("--categories", "nosuch")),
    (("--n", str(10 ** 12)), ("--n", "1000000000000")),
    (("--workers", str(10 ** 6)), ("--workers", "1000000")),
    (("--items", "0"), ("--items", "0")),
    (("--only", "7"), ("--only", "7")),
], ids=lambda x: x[0] if isinstance(x, tuple) and x and x[0].startswith("--") else None)
def test_bad_flags_name_the_flag(tmp_path, args, words):
    r, out = run_generate(tmp_path, "--rig", str(RIG), *args)
    line = assert_refused(r, out, *words)
    assert "command line" not in line


def test_catalog_randomization_error_names_the_file(tmp_path):
    cat = write_yaml(tmp_path / "cat.yaml", {"products": [{"kind": "carton"}], "randomization": "nosuch"})
    r, out = run_generate(tmp_path, "--rig", str(RIG), "--catalog", str(cat))
    assert_refused(r, out, "cat.yaml", "randomization.preset", "nosuch")


@pytest.mark.parametrize("case", ["zero-area", "single-triangle", "flat", "too-many-faces"])
def test_unusable_meshes_are_refused_at_load(tmp_path, monkeypatch, case):
    box = trimesh.creation.box(extents=[100, 80, 40])
    if case == "zero-area":
        V, F = np.zeros((3, 3)) + [[0, 0, 0], [50, 50, 50], [100, 100, 100]], np.array([[0, 1, 2]] * 8)
        V = np.vstack([V, [[0, 0, 0]]])
        words = ("0 face(s) with non-zero area",)
    elif case == "single-triangle":
        V, F = [[0, 0, 0], [100, 0, 0], [0, 100, 0]], [[0, 1, 2]]
        words = ("1 face(s) with non-zero area",)
    elif case == "flat":
        g = trimesh.creation.box(extents=[100, 80, 1e-4])
        V, F = g.vertices, g.faces
        words = ("flat",)
    else:
        from simulator.products import usermesh

        monkeypatch.setattr(usermesh, "MAX_FACES", 10)
        V, F = box.vertices, box.faces
        words = ("12 faces", "decimate")
    cat = mesh_catalog(tmp_path, V, F)
    r, out = run_generate(tmp_path, "--rig", str(RIG), "--catalog", str(cat))
    assert_refused(r, out, "cat.yaml", "products[0].path", "m.obj", *words)


def test_a_real_process_prints_no_traceback(tmp_path):
    """The same through the installed entry point (stderr as a user sees it)."""
    f = tmp_path / "bad.yaml"
    f.write_bytes(BOMB.encode())
    r = subprocess.run([sys.executable, "-m", "simulator.cli", "generate", "--rig", str(f), "--out",
                        str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and str(f) in r.stderr
    assert not (tmp_path / "out").exists()
