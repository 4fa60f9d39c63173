"""Parallel generation: local worker processes or a Ray cluster, resume, errors.

One task = one capture index ``i``. Capture i depends only on (seed, i), so the
output does not depend on which worker makes it, in what order, or on which
backend: every worker writes its capture folder atomically (temporary folder +
rename, :func:`simulator.dataset.writers.write_capture`) and the parent process writes
the manifest, the shards, the COCO files and the card.

Backends
- in-process (``workers == 1`` and no ``recycle``): one CaptureMaker in this process.
- ``local``: ``workers`` processes from a *spawn* context (never fork: a forked
  GL context or pybullet client is undefined behaviour); each owns one GL context
  (BoothRenderer) and one pybullet client (CaptureMaker) and is replaced by a
  fresh process after ``recycle`` captures, which keeps memory flat on long runs.
- ``ray``: the same task as a Ray remote function, ``max_calls=recycle`` (Ray
  replaces the worker process after that many captures). ``address=None`` starts
  a local cluster with ``num_cpus=workers`` (always a new one: never a cluster
  that ``ray start`` or RAY_ADDRESS would make ``ray.init`` join); otherwise
  joins that cluster, whose nodes must share the output folder and have
  damagesim installed. Ray does not turn token authentication on for an
  explicit address: for a cluster that uses it (the default of ``ray start``
  and ``ray.init`` clusters) set ``RAY_AUTH_MODE=token`` and provide the token.

Resume: the source of truth is the disk (a capture folder appears only when
complete; a shard only when complete). ``manifest.jsonl`` in the dataset folder is
an append-only, fsync'ed log of completed captures, packed shards and failures;
``--resume`` repairs it (a torn last line from a kill is dropped), removes stale
``.tmp-*``/``.del-*`` folders, and makes only the captures not yet on disk.

Errors
- a capture whose generation raises: ``on_error="stop"`` (default) lets the
  captures in flight finish, records them, then raises :class:`GenerationError`
  naming the capture; ``"skip"`` records the failure in the manifest and the card
  (``failed_captures``) and goes on; a later ``--resume`` retries it.
- a worker process that dies (crash, OOM kill): the run stops with
  :class:`GenerationError`; completed captures are kept; rerun with ``--resume``.
- the run itself stopped (Ctrl-C, SIGTERM from ``timeout``, Slurm, systemd,
  Kubernetes): the parent kills its worker processes and removes their
  temporaries; a parent killed outright (SIGKILL, OOM) takes its workers with
  it (``PR_SET_PDEATHSIG`` on Linux, and every worker polls that its parent is
  alive). Captures a worker had finished but the parent not yet logged are
  added to the manifest by ``--resume``.
- the output folder unwritable or full: :class:`OutputError` with the path and
  the OS error, whether a worker or this process (manifest, shard packing, COCO,
  card) hits it, and also with ``on_error="skip"`` (every later capture would
  fail the same way); completed captures are kept, temporaries removed, a
  manifest line cut short is cut back; free space and rerun with ``--resume``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from simulator.core.errors import ConfigError, GenerationError
from simulator.core.yamlio import integer
from simulator.dataset.manifest import Manifest, clean_stale, logged_captures
from simulator.dataset.shards import ShardPacker, shard_files, shard_range
from simulator.dataset.writers import check_writable, list_captures, output_error
from simulator.generate.worker import (
    _THREAD_ENV,
    _WORKER,
    FAULT_ENV,
    _reported,
    _task,
    _threads_per_worker,
    _worker_init,
    start_one,
)

BACKENDS = ("local", "ray")

ON_ERROR = ("stop", "skip")

#: most worker processes (or Ray tasks in flight per window): each holds a GL
#: context and ~0.4 GB
MAX_WORKERS = 1024


@dataclass(frozen=True)
class RunOptions:
    """How to run a generation (not what to generate: that is GenerateSpec)."""

    workers: int = 1
    backend: str = "local"
    address: str | None = None
    #: captures per worker process before it is replaced (None: never for one
    #: in-process worker, DEFAULT_RECYCLE for worker processes)
    recycle: int | None = None
    resume: bool = False
    shards: bool = False
    shard_size: int = 256
    on_error: str = "stop"
    gl: str | None = None

    def validate(self) -> None:
        """Check every option; a bad one raises ConfigError named by its command-line
        flag (``--workers``, ``--backend``, ``--address``, ``--recycle``,
        ``--shard-size``, ``--on-error``)."""
        integer(None, "--workers", self.workers, 1, MAX_WORKERS)
        if self.backend not in BACKENDS:
            raise ConfigError(None, "--backend", self.backend, f"must be one of {BACKENDS}")
        if self.address is not None and self.backend != "ray":
            raise ConfigError(None, "--address", self.address, "needs --backend ray")
        if self.recycle is not None and (not isinstance(self.recycle, int) or self.recycle < 1):
            raise ConfigError(None, "--recycle", self.recycle, "must be an integer >= 1")
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            raise ConfigError(None, "--shard-size", self.shard_size, "must be an integer >= 1")
        if self.on_error not in ON_ERROR:
            raise ConfigError(None, "--on-error", self.on_error, f"must be one of {ON_ERROR}")

    @property
    def in_process(self) -> bool:
        return self.backend == "local" and self.workers == 1 and self.recycle is None


DEFAULT_RECYCLE = 200


@dataclass
class RunReport:
    """Outcome of a run: ``made`` capture indices (sorted), ``skipped_done`` captures
    already on disk (``--resume``), ``failed`` {index: error message} (with
    ``--on-error skip``), ``worker_rss_mb`` {worker pid: resident memory in MB after
    each of its captures}, ``seconds`` of wall-clock time."""
    made: list[int]
    skipped_done: int
    failed: dict[int, str]
    worker_rss_mb: dict[int, list[float]]
    seconds: float




# -- backends: each yields result dicts as tasks complete ------------------------------
def _in_process(spec, todo: list[int], opts: RunOptions) -> Iterator[dict]:
    """One capture is written (CaptureWriter's thread) while the next one is
    made: its report is yielded, so its manifest line written, only once its
    folder is on disk. A capture that fails while being made is reported before
    another one is started, so a stop leaves nothing made beyond it; only a
    failed write (or a failure in the sensor models, which run in the writer's
    job) can find the next capture already made (in flight: it is finished and
    reported too)."""
    inflight = None  # Future of the report of the capture being written

    def written(f) -> dict:
        return _reported(None, f.result) | {"index": pending_index[f]}

    pending_index: dict = {}
    try:
        for i in todo:
            started = _reported(i, lambda: start_one(spec, i, opts.gl))
            if not isinstance(started, dict):
                pending_index[started] = i
            if inflight is not None:
                stop = yield written(inflight)
                inflight = None
                if stop:
                    if isinstance(started, dict):
                        yield started
                    else:
                        inflight = started
                    break
            if isinstance(started, dict):  # it failed before anything was queued
                if (yield started):
                    break
            else:
                inflight = started
        if inflight is not None:
            f, inflight = inflight, None
            yield written(f)
    finally:
        if inflight is not None:  # closed early: no thread may write on after this
            _reported(None, inflight.result)
        if "writer" in _WORKER:
            _WORKER.pop("writer").close()
            _WORKER.pop("queued_refs", None)
        if "maker" in _WORKER:
            _WORKER.pop("maker").close()
            _WORKER.pop("key", None)


def _local(spec, todo: list[int], opts: RunOptions) -> Iterator[dict]:

    recycle = opts.recycle or DEFAULT_RECYCLE
    ex = ProcessPoolExecutor(max_workers=opts.workers, mp_context=mp.get_context("spawn"),
                             max_tasks_per_child=recycle, initializer=_worker_init, initargs=(os.getpid(),))
    pending: dict[Any, int] = {}

    def wait_one():
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return sorted(done, key=lambda f: pending[f])

    def result(f, i):
        try:
            return f.result()
        except BrokenProcessPool:
            lost = sorted([i, *pending.values()])
            raise GenerationError(
                f"a worker process died while making capture(s) {lost} (crash or out-of-memory kill); "
                f"completed captures are kept: rerun with --resume") from None

    # worker processes inherit the environment when they start (also when one is
    # recycled): share the cores out among them for llvmpipe and the BLAS pools
    threads = _threads_per_worker(opts.workers)
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    if threads:
        for k in _THREAD_ENV:
            os.environ.setdefault(k, str(threads))
    finished = False
    try:
        # bounded window: a 10^7 run never holds 10^7 futures
        yield from _windowed(todo, 2 * opts.workers, pending, lambda i: ex.submit(_task, spec, i, opts.gl, threads),
                             wait_one, result)
        finished = True
    finally:
        if finished:
            ex.shutdown(wait=True, cancel_futures=True)
        else:
            # stopped from outside (Ctrl-C, SIGTERM, an error in this process, the
            # generator closed): the captures in flight are dropped, not waited for;
            # their workers ignore SIGINT/SIGTERM, so they are killed here
            for p in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    p.kill()
                except (OSError, ValueError):
                    pass
            for p in list((getattr(ex, "_processes", None) or {}).values()):
                p.join(5)
            ex.shutdown(wait=False, cancel_futures=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _windowed(todo: list[int], window: int, pending: dict, submit, wait_some, result) -> Iterator[dict]:
    """Keep at most ``window`` tasks in flight; yield results in completion order.
    ``pending`` maps each in-flight handle to its capture index (the caller's
    cleanup reads it). A truthy value sent back stops submitting new tasks."""
    it = iter(todo)
    stopping = False
    while True:
        while not stopping and len(pending) < window:
            i = next(it, None)
            if i is None:
                break
            pending[submit(i)] = i
        if not pending:
            return
        for h in wait_some():
            i = pending.pop(h)
            stopping = yield result(h, i)


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on: ray.init would retry for
    minutes (and ignore SIGTERM meanwhile). Other forms (``ray://``) are left to Ray."""

    m = re.fullmatch(r"\[?([^\s/\[\]]+?)\]?:(\d+)", address)
    if m is None:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(None, "--address", address,
                          f"no Ray cluster answers there ({e.strerror or type(e).__name__}); start one "
                          f"(ray start --head) or give the address it printed") from None


def _ray(spec, todo: list[int], opts: RunOptions) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise ConfigError(None, "--backend", "ray",
                          "needs Ray: pip install 'damagesim[scale]' (the 'scale' extra)") from None
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {k: v for k, v in os.environ.items() if k in ("PYOPENGL_PLATFORM", FAULT_ENV)}}
        if opts.address:
            _check_reachable(opts.address)
            try:
                ray.init(address=opts.address, log_to_driver=False, runtime_env=env)
            except Exception as e:  # ConnectionError is an OSError: never report it as a disk problem
                raise ConfigError(None, "--address", opts.address, (
                    f"cannot join the Ray cluster ({type(e).__name__}: {e}); is it running? A cluster with "
                    f"token authentication (Ray's default) also needs RAY_AUTH_MODE=token here and its token "
                    f"(RAY_AUTH_TOKEN, or ~/.ray/auth_token)")) from None
        else:
            # "local": always a new cluster of our own, never one that `ray start`
            # or RAY_ADDRESS would otherwise make ray.init join
            # no runtime_env: the cluster's processes inherit this environment, so the
            # workers Ray prestarts at init can take the tasks (a runtime_env would
            # make Ray start new ones and leave those idle)
            ray.init(address="local", num_cpus=opts.workers, include_dashboard=False, log_to_driver=False)
        started = True
    remote = ray.remote(num_cpus=1, max_calls=opts.recycle or DEFAULT_RECYCLE, max_retries=0)(_task)
    pending: dict[Any, int] = {}

    def result(ref, i):
        try:
            return ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError) as e:
            raise GenerationError(f"a Ray worker died while making capture {i} ({type(e).__name__}); "
                                  f"completed captures are kept: rerun with --resume") from None

    try:
        yield from _windowed(todo, 2 * max(opts.workers, int(ray.cluster_resources().get("CPU", 1))), pending,
                             lambda i: remote.remote(spec, i, opts.gl, _threads_per_worker(opts.workers)),
                             lambda: ray.wait(list(pending), num_returns=1)[0], result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# -- the driver -----------------------------------------------------------------------
def completed_on_disk(out: Path, n: int, shard_size: int | None) -> set[int]:
    """Indices < n whose capture is complete on disk (a capture folder, or a
    sample in a complete shard)."""

    done = {int(p.name) for p in list_captures(out) if p.name.isdigit() and int(p.name) < n}

    for k, _ in shard_files(out / "shards"):
        if shard_size:
            done.update(i for i in shard_range(k, shard_size, n))
    return done


def run_captures(spec, indices: list[int], opts: RunOptions,
                 progress: Callable[[int], None] | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> RunReport:
    """Make ``indices`` of ``spec`` with the backend of ``opts``; see the module doc.

    progress: called with the number of captures just completed; on_result:
    called with each completed capture's report (index, pid, rss_mb, seconds
    and cpu_seconds spent in the worker: what benchmarks/scaling.py reads)."""

    out = Path(spec.out)
    check_writable(out)
    t0 = time.perf_counter()
    manifest = Manifest(out)
    packer = ShardPacker(out, spec.n, opts.shard_size) if opts.shards else None
    gen = None
    try:
        if opts.resume:
            clean_stale(out)
            logged = logged_captures(manifest.repair())
            if packer is not None:
                packer.recover()
            done = completed_on_disk(out, spec.n, opts.shard_size if opts.shards else None)
            # captures a worker wrote after its run was killed, before the parent
            # logged them: on disk, so complete; the manifest says so from now on
            for i in sorted(done - logged):
                manifest.append({"capture": i})
        else:
            done = set()
            if len(indices) == spec.n:
                manifest.start_fresh()
        todo = [i for i in indices if i not in done]
        if progress is not None and len(indices) - len(todo):
            progress(len(indices) - len(todo))
        made: list[int] = []
        failed: dict[int, str] = {}
        rss: dict[int, list[float]] = {}
        backend = _in_process if opts.in_process else _local if opts.backend == "local" else _ray
        gen = backend(spec, todo, opts)
        stop_error: str | None = None
        oserr = None
        r = next(gen, None)
        while r is not None:
            i = r["index"]
            if "oserror" in r:
                oserr = oserr or r["oserror"]
                stop_error = stop_error or "disk"
            elif "error" in r:
                failed[i] = r["error"]
                manifest.append({"failed": i, "error": r["error"]})
                if opts.on_error == "stop":
                    stop_error = stop_error or f"capture {i} failed: {r['error']}\n{r.get('trace', '')}"
            else:
                made.append(i)
                manifest.append({"capture": i})
                if r.get("rss_mb") is not None:
                    rss.setdefault(r["pid"], []).append(r["rss_mb"])
                if packer is not None:
                    packer.completed(i, manifest)
                if progress is not None:
                    progress(1)
                if on_result is not None:
                    on_result(r)
            try:
                r = gen.send(stop_error is not None)
            except StopIteration:
                r = None
        if oserr is not None:
            e = OSError(oserr[0], oserr[1], oserr[2])
            raise output_error(out, e)
        if stop_error is not None:
            raise GenerationError(f"{stop_error.rstrip()}\n(the run stopped; {len(made)} captures made in this run "
                                  f"are kept; fix the cause and rerun with --resume, or use --on-error skip)")
        if packer is not None:
            packer.flush(manifest, final=True)
    except OSError as e:
        raise output_error(out, e) from None
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: stop the workers first, then remove what they left
        # half-written (for local workers only: a Ray cluster may still be writing)
        if gen is not None:
            gen.close()
            gen = None
        if opts.backend == "local":
            clean_stale(out)
        raise
    finally:
        if gen is not None:
            gen.close()  # an error here (manifest, shard) stops the workers too: queued tasks cancelled
    return RunReport(made=sorted(made), skipped_done=len(indices) - len(todo), failed=failed, worker_rss_mb=rss,
                     seconds=time.perf_counter() - t0)
