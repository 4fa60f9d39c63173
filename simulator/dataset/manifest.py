"""The run manifest (manifest.jsonl): one line per finished capture, written after its files, so a crash loses nothing and --resume knows what is done."""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from simulator.dataset.writers import write_text_atomic

MANIFEST = "manifest.jsonl"


# -- manifest ----------------------------------------------------------------------
class Manifest:
    """Append-only JSON-lines log, one fsync per line (a kill leaves at most a torn
    last line, which :meth:`repair` drops)."""

    def __init__(self, out: Path):
        self.path = Path(out) / MANIFEST

    def start_fresh(self) -> None:
        """Make the manifest empty (a new run, not a resume), atomically."""

        write_text_atomic(self.path, "")

    def repair(self) -> list[dict[str, Any]]:
        """Read the entries, truncating a torn last line. Returns them."""
        if not self.path.is_file():
            return []
        raw = self.path.read_bytes()
        keep = raw[: raw.rfind(b"\n") + 1]
        entries = []
        for line in keep.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                break  # cannot happen with whole lines; stop trusting the rest
        if len(keep) != len(raw):
            with open(self.path, "r+b") as f:
                f.truncate(len(keep))
                os.fsync(f.fileno())
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        """Append one line. On a full disk a write can be short: the file is cut
        back to its previous length and ENOSPC raised, so no torn line is ever
        followed by another one."""
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass  # repair() drops a torn last line on --resume
                raise
        finally:
            os.close(fd)


def logged_captures(entries: list[dict[str, Any]]) -> set[int]:
    """Indices the manifest ``entries`` record as completed."""
    return {int(e["capture"]) for e in entries if isinstance(e, dict) and isinstance(e.get("capture"), int)}


def clean_stale(out: Path) -> list[Path]:
    """Remove temporary and half-deleted folders/files left by a killed run."""
    gone = []
    for d in (out, out / "captures", out / "shards", out / "coco", out / "references",
              *(out / "references").glob("*")):
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.startswith((".tmp-", ".old-", ".del-", ".stage-")) or (
                    p.name.startswith(".") and p.name.endswith(".tmp")):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                gone.append(p)
    return gone
