"""User-facing errors. Each names the file, the key and the bad value."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class DamagesimError(Exception):
    """Base class: the CLI prints the message and exits with status 2."""


class ConfigError(DamagesimError):
    """Bad configuration (rig, catalog, materials, spec)."""

    def __init__(self, file: str | Path | None, key: str, value: Any, problem: str):
        self.file, self.key, self.value, self.problem = (str(file) if file else None), key, value, problem
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key}: {problem} (got {value!r})")


class MeshError(DamagesimError):
    """A user mesh that cannot be used."""

    def __init__(self, file: str | Path, problem: str):
        self.file, self.problem = str(file), problem
        super().__init__(f"{file}: {problem}")


class PlacementError(DamagesimError):
    """Physics could not place an item on the tray within its retry cap."""
