"""The layering is visible in the imports: no import cycle anywhere in
simulator/, damage_ops/ and harness/ (function-level imports included), and
simulator never imports harness (harness registers its CLI through an entry
point)."""
from __future__ import annotations

import shutil
from pathlib import Path

from _import_graph import PACKAGES, find_cycle, import_edges, modules

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycle():
    edges = import_edges(ROOT)
    assert len(edges) > 300  # the graph really was read (every module, every import)
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


def test_simulator_and_damage_ops_never_import_harness():
    bad = [(a, b, line) for a, b, line, _ in import_edges(ROOT)
           if a.split(".")[0] in ("simulator", "damage_ops") and b.split(".")[0] == "harness"]
    assert not bad, f"imports of harness from below it: {bad}"
    bad = [(a, b, line) for a, b, line, _ in import_edges(ROOT) if a.startswith("damage_ops") and b.startswith("simulator")]
    assert not bad, f"damage_ops imports simulator: {bad}"


def test_every_module_is_seen():
    mods = modules(ROOT)
    for pkg in PACKAGES:
        assert pkg in mods
    assert "simulator.generate.capture" in mods and "simulator.dataset.reader" in mods


def _copy_tree(dst: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def test_a_planted_cycle_is_caught(tmp_path):
    """A function-local import that closes a loop (config -> generate -> config) is found."""
    _copy_tree(tmp_path)
    rig = tmp_path / "simulator" / "config" / "rig.py"
    rig.write_text(rig.read_text() + "\n\ndef _planted():\n    from simulator.generate.spec import GenerateSpec\n"
                   "    return GenerateSpec\n")
    cycle = find_cycle(import_edges(tmp_path))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert "simulator.config.rig" in cycle and "simulator.generate.spec" in cycle


def test_a_planted_relative_cycle_is_caught(tmp_path):
    """A module-level relative import that closes a loop inside damage_ops is found."""
    _copy_tree(tmp_path)
    tax = tmp_path / "damage_ops" / "taxonomy.py"
    tax.write_text(tax.read_text() + "\nfrom .product import Product  # noqa: E402,F401\n")
    cycle = find_cycle(import_edges(tmp_path))
    assert cycle is not None and "damage_ops.taxonomy" in cycle and "damage_ops.product" in cycle


def test_a_planted_harness_import_is_caught(tmp_path):
    _copy_tree(tmp_path)
    w = tmp_path / "simulator" / "dataset" / "writers.py"
    w.write_text(w.read_text() + "\n\ndef _planted():\n    import harness.metrics\n    return harness.metrics\n")
    assert any(a == "simulator.dataset.writers" and b.startswith("harness") for a, b, *_ in import_edges(tmp_path))
