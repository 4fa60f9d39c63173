"""YAML loading with errors that name the file, and key checking helpers."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "<file>", str(path), "file does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(path, "<file>", str(path), f"is not valid YAML: {e}") from None


def check_keys(file: Path | str, where: str, d: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    """Raise ConfigError for a non-mapping, an unknown key or a missing key."""
    if not isinstance(d, dict):
        raise ConfigError(file, where or "<root>", d, "must be a mapping")
    allowed = set(allowed)
    for k in d:
        if k not in allowed:
            raise ConfigError(file, f"{where}.{k}" if where else str(k), d[k],
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
    x = float(v)
    if x != x or x in (float("inf"), float("-inf")):
        raise ConfigError(file, key, v, "must be finite")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ConfigError(file, key, v, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and x > hi:
        raise ConfigError(file, key, v, f"must be <= {hi}")
    return x


def vector(file, key: str, v: Any, n: int) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ConfigError(file, key, v, f"must be a list of {n} numbers")
    return [number(file, f"{key}[{i}]", x) for i, x in enumerate(v)]
