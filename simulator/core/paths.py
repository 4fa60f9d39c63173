"""Where shipped assets live."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    """The assets folder (override with DAMAGESIM_ASSETS)."""
    return Path(os.environ.get("DAMAGESIM_ASSETS", REPO_ROOT / "assets"))


def default_rig() -> Path:
    """The booth rig used when none is given, ``<assets>/rigs/booth_default.yaml``."""
    return assets_dir() / "rigs" / "booth_default.yaml"


def default_catalog() -> Path:
    """The catalog used when none is given, ``<assets>/catalogs/default.yaml``."""
    return assets_dir() / "catalogs" / "default.yaml"


def default_materials() -> Path:
    """The materials library used when none is given, ``<assets>/materials/default.yaml``."""
    return assets_dir() / "materials" / "default.yaml"
