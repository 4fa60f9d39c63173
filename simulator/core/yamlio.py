"""YAML loading with errors that name the file, and key checking helpers."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from simulator.core.errors import ConfigError, excerpt

#: a rig or catalog is a few kB: bigger files are refused before parsing
MAX_YAML_BYTES = 4 << 20
#: nesting depth of mappings and sequences (the composer recurses per level)
MAX_DEPTH = 64
#: values after alias expansion (an alias bomb expands exponentially)
MAX_NODES = 1_000_000


class _YamlLimit(Exception):
    """A limit of :data:`MAX_DEPTH` / :data:`MAX_NODES` was hit while composing."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and documents whose aliases expand
    past :data:`MAX_NODES` values, before any Python object is built."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _YamlLimit(f"is nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _expanded_size(node, {}, set())
        return node


def _expanded_size(node, memo: dict, active: set) -> int:
    """Values ``node`` stands for once every alias is expanded (memoised per
    node, so shared anchors cost one visit). Raises _YamlLimit past MAX_NODES
    or on an anchor that contains itself."""
    k = id(node)
    if k in memo:
        return memo[k]
    if k in active:
        raise _YamlLimit(f"has an anchor that contains itself (line {node.start_mark.line + 1})")
    n = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        active.add(k)
        kids = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
        for child in kids:
            n += _expanded_size(child, memo, active)
            if n > MAX_NODES:
                raise _YamlLimit(f"expands to more than {MAX_NODES:,} values (YAML aliases?), "
                                 f"near line {child.start_mark.line + 1}")
        active.discard(k)
    memo[k] = n
    return n


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with bounded cost: at most MAX_YAML_BYTES, UTF-8 text,
    nesting at most MAX_DEPTH, at most MAX_NODES values after alias expansion.
    Any failure is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "<file>", str(path), "file does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(path, "<file>", f"{size:,} bytes",
                              f"is larger than {MAX_YAML_BYTES >> 20} MiB; a rig or catalog is a few kB")
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, "<file>", str(path), f"cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, "<file>", raw[e.start:e.start + 8],
                          f"is not UTF-8 text (byte offset {e.start}); is it a YAML file?") from None
    if "\x00" in text:
        raise ConfigError(path, "<file>", raw[:8], f"is binary (NUL byte at offset {text.index(chr(0))}), not YAML text")
    try:
        return yaml.load(text, Loader=_Loader)
    except _YamlLimit as e:
        raise ConfigError(path, "<file>", str(path), str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if getattr(e, "problem", None) and mark is not None:
            msg = f"{e.problem} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            msg = " ".join(str(e).split())  # one line: PyYAML's messages span several
        raise ConfigError(path, "<file>", str(path), f"is not valid YAML: {msg}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer past Python's 4300-digit limit
        raise ConfigError(path, "<file>", str(path), f"cannot be parsed: {e}") from None


def check_keys(file: Path | str, where: str, d: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    """Raise ConfigError for a non-mapping, an unknown key or a missing key."""
    if not isinstance(d, dict):
        raise ConfigError(file, where or "<root>", d, "must be a mapping")
    allowed = set(allowed)
    for k in d:
        if k not in allowed:
            name = k if isinstance(k, str) and k.isprintable() and len(k) <= 40 else excerpt(k, 40)
            raise ConfigError(file, f"{where}.{name}" if where else str(name), d[k],
                              f"unknown key; allowed keys are {sorted(allowed)}")
    for k in required:
        if k not in d:
            raise ConfigError(file, f"{where}.{k}" if where else str(k), None, "required key is missing")
    return d


def number(file, key: str, v: Any, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float:
    """A finite float within [lo, hi] (or (lo, hi] with lo_open)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(file, key, v, "must be a number")
    try:
        x = float(v)
    except OverflowError:
        raise ConfigError(file, key, v, "is out of range") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ConfigError(file, key, v, "must be finite")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ConfigError(file, key, v, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and x > hi:
        raise ConfigError(file, key, v, f"must be <= {hi}")
    return x


def integer(file, key: str, v: Any, lo: int | None = None, hi: int | None = None, problem: str | None = None) -> int:
    """An integer (not a bool, not a float) within [lo, hi]; otherwise ConfigError
    naming ``file``, ``key`` and the value, with ``problem`` as the message
    (default: "must be an integer in lo..hi", ">= lo" or "<= hi")."""
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
        if problem is None:
            problem = ("must be an integer" + (f" in {lo}..{hi}" if lo is not None and hi is not None else
                                               f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else ""))
        raise ConfigError(file, key, v, problem)
    return int(v)


def vector(file, key: str, v: Any, n: int) -> list[float]:
    """A list of exactly ``n`` finite numbers (as floats); otherwise ConfigError naming
    ``file``, ``key`` (``key[i]`` for a bad element) and the value."""
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ConfigError(file, key, v, f"must be a list of {n} numbers")
    return [number(file, f"{key}[{i}]", x) for i, x in enumerate(v)]
