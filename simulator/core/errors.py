"""User-facing errors. Each names the file, the key and the bad value."""
from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

#: longest excerpt of a bad value quoted in a message, in characters
EXCERPT_CHARS = 120


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short repr of ``value`` for a message: nested containers and long
    strings cut (a 200k-element list must not make a megabyte message)."""

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 8, 8, 6, 6
    r.maxstring, r.maxother, r.maxlong = limit, limit, 40
    try:
        s = r.repr(value)
    except Exception:  # a repr that fails (a huge int) must not hide the error
        s = f"<{type(value).__name__}>"
    return s if len(s) <= limit else s[: limit - 3] + "..."


class DamagesimError(Exception):
    """Base class: the CLI prints the message and exits with status 2."""


class ConfigError(DamagesimError):
    """Bad configuration (rig, catalog, materials, spec)."""

    def __init__(self, file: str | Path | None, key: str, value: Any, problem: str):
        self.file, self.key, self.value, self.problem = (str(file) if file else None), key, value, problem
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key}: {problem} (got {excerpt(value)})")


class MeshError(DamagesimError):
    """A user mesh that cannot be used."""

    def __init__(self, file: str | Path, problem: str):
        self.file, self.problem = str(file), problem
        super().__init__(f"{file}: {problem}")


class DamageOpError(DamagesimError):
    """A damage op raised something other than NotApplicable: a bug in the op,
    not a refusal of the geometry. Names the op, the SKU, the params and where."""

    def __init__(self, op: str, sku: str, params: dict, where: str, cause: Exception):
        self.op, self.sku, self.params, self.where = op, sku, params, where
        at = f"{where}: " if where else ""
        super().__init__(f"{at}damage op {op!r} failed on SKU {sku!r} with params {params}: "
                         f"{type(cause).__name__}: {cause}")


class PlacementError(DamagesimError):
    """Physics could not place an item on the tray within its retry cap."""


class GenerationError(DamagesimError):
    """A capture failed or a worker died; completed captures are kept."""


class OutputError(DamagesimError):
    """The output folder cannot be written (permissions, read-only, full)."""
