"""A real multi-process Dask cluster for tests: one OS process per scheduler and per worker.

Unlike :class:`distributed.LocalCluster`, every process is started with :class:`subprocess.Popen`
from the test's own interpreter (``python -m distributed.cli.dask_scheduler`` /
``python -m distributed.cli.dask_worker``), as on a real cluster, so tests can SIGKILL a worker or
the scheduler and watch what the rest of the system does::

    with ProcessCluster(workers=[{"resources": {"GPU": 1}}, {}]) as cluster:
        with distributed.Client(cluster.address) as client:
            ...
        cluster.kill_worker("w0")          # SIGKILL, no restart
        cluster.wait_for_workers(["w1"])   # the scheduler has dropped w0

Design choices:

- Workers run with ``--no-nanny``: the ``Popen`` pid *is* the worker, so :meth:`kill_worker`
  kills exactly that worker and nothing restarts it (with a nanny, the nanny would respawn it).
  Each process starts in its own session (process group) and kills go to the whole group, so
  anything a worker spawned dies with it.
- Everything binds to 127.0.0.1 with random ports; the scheduler's address comes from its
  ``--scheduler-file``. No dashboards.
- Every wait is bounded; a failed start raises :class:`ClusterStartError` with the tail of every
  process log. Logs live in a temporary directory (kept only when ``log_dir`` is given).
- Orphan guards in case the test process itself is killed: the scheduler exits after
  ``idle_timeout`` without clients, workers exit ``death_timeout`` after losing the scheduler.
- The scheduler optimises graphs with its own config: pass ``env=NO_FUSE_ENV`` to keep resource
  annotations (see :data:`NO_FUSE_ENV`).
- Workers import ``s2scale`` from this checkout: same interpreter, ``cwd`` at the repository
  root, ``PYTHONPATH`` = the root plus the test process's ``sys.path``, so functions defined in
  test modules (pickled by reference) can be used with ``client.run``/``submit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_FUSE_ENV = {"DASK_OPTIMIZATION__FUSE__ACTIVE": "False"}
"""``env=`` for graphs with resource annotations (``s2scale.infer.upscale``'s ``GPU``).

With a separately started scheduler, ``dask.config.set({"optimization.fuse.active": False})`` in
the client is not enough (checked with dask/distributed 2026.8.0): the scheduler optimises the
graph with *its own* config, fuses, and the ``GPU`` annotation is lost, so model tasks also run
on GPU-less workers. ``LocalCluster`` hides this because its scheduler shares the client's config.
"""


class ClusterStartError(RuntimeError):
    """The scheduler or a worker did not come up in time (message holds the log tails)."""


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.popen.poll() is None


def _tail(path: Path, n_lines: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return f"<no log: {err}>"
    return "\n".join(lines[-n_lines:])


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group of ``popen`` (its own session), else to the process."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class ProcessCluster:
    """A scheduler and workers, each its own OS process, on 127.0.0.1.

    Parameters
    ----------
    workers
        One mapping per worker, keys (all optional): ``name`` (default ``w<i>``), ``resources``
        (e.g. ``{"GPU": 1}``), ``nthreads``, ``memory_limit``, ``env`` (extra variables).
    nthreads, memory_limit
        Defaults for every worker.
    env
        Extra environment variables for every process.
    start_timeout
        Seconds for the scheduler file to appear and again for all workers to register.
    death_timeout
        Seconds a worker keeps retrying after losing the scheduler before it exits.
    idle_timeout
        Seconds without clients after which the scheduler exits (orphan guard).
    log_dir
        Where the logs go; default a temporary directory removed by :meth:`close`.
    """

    def __init__(
        self,
        workers: Sequence[Mapping[str, Any]] = ({},),
        *,
        nthreads: int = 1,
        memory_limit: str = "2GB",
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        death_timeout: float = 30.0,
        idle_timeout: float = 300.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.worker_specs = [dict(w) for w in workers]
        names = [str(w.get("name", f"w{i}")) for i, w in enumerate(self.worker_specs)]
        if len(set(names)) != len(names):
            raise ValueError(f"worker names must be unique, got {names}")
        for spec, name in zip(self.worker_specs, names, strict=True):
            spec["name"] = name
        self.nthreads = nthreads
        self.memory_limit = memory_limit
        self.start_timeout = start_timeout
        self.death_timeout = death_timeout
        self.idle_timeout = idle_timeout
        self._own_dir = log_dir is None
        self.log_dir = Path(
            tempfile.mkdtemp(prefix="s2scale-procs-") if log_dir is None else log_dir
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = self._base_env(env)
        self.scheduler: _Proc | None = None
        self.workers: dict[str, _Proc] = {}
        self.address = ""
        self._closed = False

    # ---------------------------------------------------------------- start
    def _base_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        # the test process's import path (pytest prepends test dirs), so functions defined in
        # test modules unpickle on the workers; the checkout first so ``s2scale`` is this one
        paths = [str(REPO_ROOT), *(p for p in sys.path if p and os.path.isdir(p))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["PYTHONUNBUFFERED"] = "1"
        env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
        env.setdefault("OMP_NUM_THREADS", "1")  # torch in each worker: do not oversubscribe
        env.update(extra or {})
        return env

    def _popen(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> _Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
        return _Proc(name, popen, log)

    def start(self) -> ProcessCluster:
        """Start the scheduler, then all workers; return once every worker is registered."""
        try:
            self._start_scheduler()
            for spec in self.worker_specs:
                self.start_worker(spec, wait=False)
            self.wait_for_workers([s["name"] for s in self.worker_specs], self.start_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start_scheduler(self) -> None:
        sched_file = self.log_dir / "scheduler.json"
        self.scheduler = self._popen(
            "scheduler",
            [
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
                "--idle-timeout",
                f"{self.idle_timeout}s",
            ],
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.scheduler.alive():
                raise ClusterStartError(self._report("the scheduler exited during start"))
            with contextlib.suppress(OSError, ValueError):
                self.address = json.loads(sched_file.read_text())["address"]
                if self.address:
                    return
            time.sleep(0.05)
        raise ClusterStartError(self._report(f"no scheduler file after {self.start_timeout}s"))

    def start_worker(self, spec: Mapping[str, Any], *, wait: bool = True) -> str:
        """Start one more worker process (``spec`` as in ``workers``); return its name."""
        name = str(spec.get("name", f"w{len(self.workers)}"))
        if name in self.workers:
            raise ValueError(f"a worker named {name!r} was already started")
        args = [
            "-m",
            "distributed.cli.dask_worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            str(spec.get("nthreads", self.nthreads)),
            "--memory-limit",
            str(spec.get("memory_limit", self.memory_limit)),
            "--no-nanny",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
            "--death-timeout",
            f"{self.death_timeout}s",
            "--local-directory",
            str(self.log_dir / f"{name}-space"),
        ]
        resources = spec.get("resources") or {}
        if resources:
            args += ["--resources", ",".join(f"{k}={v}" for k, v in resources.items())]
        self.workers[name] = self._popen(name, args, spec.get("env"))
        self.workers[name].extra["resources"] = dict(resources)
        if wait:
            self.wait_for_workers([*self.live_worker_names(), name], self.start_timeout)
        return name

    # ---------------------------------------------------------------- query
    def scheduler_workers(self, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        """``{name: worker info}`` as the scheduler sees it now (a short-lived client asks)."""
        import distributed

        with distributed.Client(
            self.address, timeout=f"{timeout}s", set_as_default=False
        ) as client:
            info = client.scheduler_info(n_workers=-1)
        return {str(w["name"]): w for w in info["workers"].values()}

    def wait_for_workers(self, names: Iterable[str], timeout: float = 30.0) -> None:
        """Wait until the scheduler lists exactly ``names`` (a worker dying early raises)."""
        want = set(names)
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while True:
            for name in want:
                proc = self.workers.get(name)
                if proc is None or not proc.alive():
                    raise ClusterStartError(self._report(f"worker {name!r} is not running"))
            if self.scheduler is None or not self.scheduler.alive():
                raise ClusterStartError(self._report("the scheduler is not running"))
            with contextlib.suppress(OSError, TimeoutError):
                seen = set(self.scheduler_workers(timeout=max(1.0, deadline - time.monotonic())))
            if seen == want:
                return
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    self._report(
                        f"after {timeout}s the scheduler lists {sorted(seen)}, "
                        f"expected {sorted(want)}"
                    )
                )
            time.sleep(0.1)

    @property
    def worker_pids(self) -> dict[str, int]:
        """``{name: pid}`` of every started worker (alive or not)."""
        return {name: p.popen.pid for name, p in self.workers.items()}

    @property
    def scheduler_pid(self) -> int | None:
        """Pid of the scheduler process."""
        return None if self.scheduler is None else self.scheduler.popen.pid

    def live_worker_names(self) -> list[str]:
        """Names of worker processes still running."""
        return [name for name, p in self.workers.items() if p.alive()]

    def all_pids(self) -> list[int]:
        """Pids of every process this cluster started."""
        procs = [*self.workers.values(), *([self.scheduler] if self.scheduler else [])]
        return [p.popen.pid for p in procs]

    def logs(self, n_lines: int = 25) -> str:
        """The last ``n_lines`` of every process log."""
        procs = [*([self.scheduler] if self.scheduler else []), *self.workers.values()]
        parts = []
        for p in procs:
            rc = p.popen.poll()
            state = "running" if rc is None else f"exited rc={rc}"
            parts.append(
                f"--- {p.name} (pid {p.popen.pid}, {state}) {p.log}\n{_tail(p.log, n_lines)}"
            )
        return "\n".join(parts)

    def _report(self, what: str) -> str:
        return f"{what}\n{self.logs()}"

    # ---------------------------------------------------------------- kill
    def _worker(self, name_or_index: str | int) -> _Proc:
        if isinstance(name_or_index, int):
            return list(self.workers.values())[name_or_index]
        return self.workers[name_or_index]

    def kill_worker(
        self, name_or_index: str | int, sig: int = signal.SIGKILL, *, timeout: float = 10.0
    ) -> int:
        """Send ``sig`` to a worker's process group and wait (bounded) for it to exit.

        No nanny runs, so nothing restarts the worker. Returns its exit code (``-sig``).
        """
        proc = self._worker(name_or_index)
        _signal_group(proc.popen, sig)
        try:
            return proc.popen.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(self._report(f"worker {proc.name!r} survived {sig!r}")) from err

    def kill_all_workers(self, sig: int = signal.SIGKILL, *, timeout: float = 10.0) -> None:
        """:meth:`kill_worker` on every live worker (signals all first, then waits)."""
        live = [p for p in self.workers.values() if p.alive()]
        for p in live:
            _signal_group(p.popen, sig)
        for p in live:
            self.kill_worker(p.name, sig, timeout=timeout)

    def kill_scheduler(self, sig: int = signal.SIGKILL, *, timeout: float = 10.0) -> int:
        """Kill the scheduler; workers exit ``death_timeout`` later (or on :meth:`close`)."""
        if self.scheduler is None:
            raise RuntimeError("no scheduler was started")
        _signal_group(self.scheduler.popen, sig)
        return self.scheduler.popen.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """SIGTERM all (workers first), SIGKILL what is left after ``timeout``; idempotent."""
        if self._closed:
            return
        self._closed = True
        # workers first (they may still talk to the scheduler while closing), then the scheduler
        for group in (list(self.workers.values()), [self.scheduler] if self.scheduler else []):
            for p in group:
                _signal_group(p.popen, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for p in group:
                try:
                    p.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(p.popen, signal.SIGKILL)
                    p.popen.wait(5)
                # the group may hold children that outlived their leader
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
        if self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> ProcessCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
