"""One worker's share of a run: its capture maker, making and writing one capture or reference, thread limits, and the fault injection the hardening tests use."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from simulator.config.catalog import load_catalog
from simulator.config.rig import load_rig
from simulator.dataset.writers import _DISK_ERRNOS, CaptureWriter, reference_dir, write_capture
from simulator.generate.capture import CaptureMaker
from simulator.render.glenv import configure

#: test hook: "crash:I" kills the worker process at capture I, "raise:I" makes
#: capture I fail with an exception (read in the worker, never in the parent)
FAULT_ENV = "DAMAGESIM_FAULT"


# -- worker side ---------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _worker_init(parent_pid: int) -> None:
    """Initializer of every local worker process: die with the run.

    SIGINT/SIGTERM are ignored here: the parent gets them too (a terminal's
    Ctrl-C, or a job manager signalling the whole group) and stops its workers
    itself, so a worker never dies mid-capture and gets reported as a crash.
    If the parent disappears without that (SIGKILL, OOM kill), the kernel kills
    this process (PR_SET_PDEATHSIG), and a watcher thread exits it as soon as
    its parent is gone (other systems; and the gap before prctl took effect)."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.uname().sysname == "Linux":
        try:

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass  # the watcher below still ends this process
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="damagesim-parent-watch", daemon=True).start()


def _maker(spec, gl: str | None, threads: int | None = None):
    """This process's CaptureMaker (one GL context + one pybullet client), made on
    first use and kept for the life of the process. threads: render threads for
    a CPU (llvmpipe) context, so N workers share the cores instead of each
    starting one thread per core (a user's LP_NUM_THREADS wins; the GPU path
    ignores it; llvmpipe's pixels do not depend on it)."""
    key = json.dumps(spec.to_json(), sort_keys=True)
    if _WORKER.get("key") != key:
        if "maker" in _WORKER:
            _WORKER.pop("maker").close()

        if threads:
            os.environ.setdefault("LP_NUM_THREADS", str(int(threads)))
        configure(gl)

        _WORKER["maker"] = CaptureMaker(spec, load_rig(spec.rig), load_catalog(spec.catalog))
        _WORKER["key"] = key
        _WORKER["count"] = 0
    return _WORKER["maker"]


def _fault(i: int) -> None:
    f = os.environ.get(FAULT_ENV, "")
    kind, _, at = f.partition(":")
    if at and at.isdigit() and int(at) == i:
        if kind == "crash":
            os._exit(70)
        if kind == "raise":
            raise RuntimeError(f"injected fault at capture {i} ({FAULT_ENV}={f})")


def _stage_reference(out: Path, sku: str, pose: int, meta, frames, pool=None) -> bool:
    """Put a made reference capture in place. Race-free: it is built in a private
    staging folder and renamed into place; when another writer got there first
    the rename fails and this copy is dropped (both are the same bytes: a
    reference depends only on (seed, sku, pose)). Returns True if this call wrote it."""

    final = reference_dir(out, sku, pose)
    stage = final.parent / f".stage-{final.name}-{os.getpid()}-{time.monotonic_ns()}"
    write_capture(out, pose, meta, frames, root_dir=stage, pool=pool)
    try:
        os.rename(stage, final)  # fails if final exists (non-empty): someone else won
        return True
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            shutil.rmtree(stage, ignore_errors=True)
            raise
        shutil.rmtree(stage, ignore_errors=True)
        return False


def ensure_reference(maker, out: Path, sku: str, pose: int) -> bool:
    """Write reference ``pose`` of ``sku`` unless present (see _stage_reference).
    Returns True if this call wrote it."""

    if (reference_dir(out, sku, pose) / "capture.json").is_file():
        return False
    meta, frames = maker.make_reference(sku, pose)
    return _stage_reference(out, sku, pose, meta, frames)


def _writer(threads: int | None):
    """This process's CaptureWriter; its PNG threads: the worker's share of the
    cores (at most 4: encoding is a fraction of a capture's work)."""
    if "writer" not in _WORKER:

        _WORKER["writer"] = CaptureWriter(min(4, threads or os.cpu_count() or 1))
        _WORKER["queued_refs"] = set()
    return _WORKER["writer"]


def _sensors(maker, pending):
    """Where a rendered capture's sensor models run: in the writer's job, beside
    the next render, when the GL renderer is a GPU (the CPU is free while it
    renders); here, now, on a software rasteriser (llvmpipe keeps every core
    busy while it renders, and work beside it only contends: measured on 2
    cores, no faster and more CPU time per capture). Same outputs either way."""
    if getattr(maker.renderer, "software_gl", True):
        pending.finish()  # kept: the job's finish() returns it
    return pending


def start_one(spec, index: int, gl: str | None = None, threads: int | None = None):
    """Render capture ``index`` and the references of its SKUs that are missing
    (here), and queue their writing (and, on a GPU, their sensor models: see
    _sensors) on this process's CaptureWriter (its thread: beside the next
    capture's render).
    Returns a Future of make_one's report: it resolves once every file of the
    capture is on disk and its folder renamed into place (so a manifest line
    written after it names a complete capture). References are queued first: a
    capture on disk is one that resume skips, so it must never exist without its
    references (the writer runs jobs in order; a kill in between loses both or
    only the capture)."""

    t0 = time.perf_counter()
    maker = _maker(spec, gl, threads)
    writer = _writer(threads)
    _fault(index)
    out = Path(spec.out)
    pending = _sensors(maker, maker.start(index))
    meta = pending.meta
    queued = _WORKER["queued_refs"]
    refs = []
    for sku in sorted({it["sku"] for it in meta["items"]}):
        for k in range(maker.mix.reference_poses):
            key = (str(out), sku, k)
            if key in queued or (reference_dir(out, sku, k) / "capture.json").is_file():
                continue
            queued.add(key)  # an earlier capture's job writes it: not rendered twice
            refs.append((key, _sensors(maker, maker.start_reference(sku, k))))

    def job(pool):
        # on the writer's thread, beside the next capture's render: sensor models
        # (unless done above), then the references' folders, then the capture's
        # (each atomically)
        try:
            for (_o, sku, k), rpending in refs:
                rmeta, rframes, _ = rpending.finish()
                _stage_reference(out, sku, k, rmeta, rframes, pool=pool)
            meta, frames, pair = pending.finish()
            write_capture(out, index, meta, frames, {"pristine": pair} if pair else None, pool=pool)
        finally:
            queued.difference_update(key for key, _ in refs)  # on disk now, or to be made again
        _WORKER["count"] = _WORKER.get("count", 0) + 1
        return {"index": index, "pid": os.getpid(), "rss_mb": _rss_mb(), "n_in_worker": _WORKER["count"],
                "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time()}

    return writer.submit(job)


def make_one(spec, index: int, gl: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """The task, identical in every backend: make capture ``index``, write the
    references of its SKUs that are missing, then its folder, atomically
    (start_one, waited for). Returns a small report."""
    return start_one(spec, index, gl, threads).result()


#: thread-pool sizes a worker process inherits: llvmpipe's render threads, BLAS
_THREAD_ENV = ("LP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _threads_per_worker(workers: int) -> int | None:
    """Render threads per worker process: this machine's cores shared out (None
    for one worker: llvmpipe's own default)."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def _reported(index: int, fn) -> dict[str, Any]:
    """fn() with exceptions turned into a picklable report (a capture that fails
    is data for the parent, not a crash of the worker)."""
    try:
        return fn()
    except OSError as e:
        if e.errno in _DISK_ERRNOS:
            return {"index": index, "oserror": [e.errno, e.strerror, None if e.filename is None else str(e.filename)]}
        return {"index": index, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=6)}
    except Exception as e:  # a bad capture: reported, never silently lost
        return {"index": index, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=6)}


def _task(spec, index: int, gl: str | None, threads: int | None = None) -> dict[str, Any]:
    """make_one, its exceptions reported (see _reported)."""
    return _reported(index, lambda: make_one(spec, index, gl, threads))
