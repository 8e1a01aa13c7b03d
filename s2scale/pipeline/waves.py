"""Run work units on a Dask cluster in bounded waves, with progress, retries and a watchdog.

The client holds the graphs of at most ``in_flight`` units at a time: it submits the next unit as
soon as one finishes (back-pressure), so client memory stays flat whatever the AOI. A unit whose
worker died is retried (``client.retry``, bounded); a unit that fails for another reason stops the
run with an error naming it, or with ``skip_errors`` is recorded and left for a later run. When no
worker (or no scheduler) is left for ``lost_timeout_s``, the run stops with
:class:`~s2scale.errors.ClusterError`; what was written stays and a rerun resumes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from s2scale.errors import ClusterError, ReadError

__all__ = ["WaveReport", "default_in_flight", "gpu_workers", "run_waves", "wait_for_gpu_workers"]

log = logging.getLogger(__name__)
U = TypeVar("U")

_POLL_S = 1.0


@dataclass
class WaveReport:
    """What :func:`run_waves` did."""

    units: int = 0
    """Units submitted."""
    finished: int = 0
    """Units that finished."""
    retried: int = 0
    """Resubmissions after a lost worker."""
    failed: list[dict[str, Any]] = field(default_factory=list)
    """Units left undone under ``skip_errors``: index, region and error."""
    seconds: float = 0.0
    """Wall time."""

    def to_json(self) -> dict[str, Any]:
        """JSON form for reports."""
        return {
            "units": self.units,
            "finished": self.finished,
            "retried": self.retried,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
        }


def gpu_workers(client: Any) -> list[str]:
    """Addresses of the workers that advertise a ``GPU`` resource."""
    info = client.scheduler_info(n_workers=-1)
    return sorted(
        addr
        for addr, w in info.get("workers", {}).items()
        if (w.get("resources") or {}).get("GPU", 0) >= 1
    )


def default_in_flight(client: Any) -> int:
    """Two units per GPU worker (one running, one being read), at least 2."""
    return max(2, 2 * len(gpu_workers(client)))


def wait_for_gpu_workers(client: Any, timeout_s: float) -> list[str]:
    """Wait (bounded) until a worker with a ``GPU`` resource is there; return their addresses."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = gpu_workers(client)
        if found:
            return found
        if time.monotonic() > deadline:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            raise ClusterError(
                f"no worker of the cluster ({n} workers) advertises the GPU resource after "
                f"{timeout_s:.0f} s; the model tasks need it: start workers with "
                "'dask worker ... --resources GPU=1' (dask-cuda: 'dask cuda worker ... "
                "--resources GPU=1'), or use --cluster local"
            )
        time.sleep(0.5)


@contextmanager
def _progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A units bar with ETA on stderr (rich), or a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"{label} units"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _is_lost_worker(exc: BaseException) -> bool:
    """A failure caused by a worker or connection that went away (worth a retry)."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker | CommClosedError)


def _scheduler_workers(client: Any, timeout_s: float) -> dict[str, Any]:
    """The scheduler's workers (``Client.scheduler_info``), or TimeoutError after ``timeout_s``.

    ``scheduler_info`` itself has no timeout; it runs in a daemon thread so that a scheduler
    that stopped answering cannot hold the run (or the interpreter's exit).
    """
    result: dict[str, Any] = {}

    def ask() -> None:
        try:
            result["info"] = client.scheduler_info(n_workers=-1)
        except Exception as err:  # handed to the caller below
            result["error"] = err

    thread = threading.Thread(target=ask, name="s2scale-watchdog", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in result:
        err = result["error"]
        raise err if isinstance(err, OSError | TimeoutError) else OSError(str(err))
    return dict(result["info"].get("workers", {}))


class _Watchdog:
    """Raises ClusterError when no worker or no scheduler was seen for ``timeout_s``."""

    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client, self.timeout_s = client, timeout_s
        self.since: float | None = None

    def check(self) -> None:
        problem = None
        if self.client.status != "running":
            problem = f"the Dask scheduler is unreachable (client {self.client.status})"
        else:
            try:
                n = len(_scheduler_workers(self.client, timeout_s=10.0))
            except (OSError, TimeoutError) as err:
                problem, n = f"the Dask scheduler does not answer ({err})", 0
            if problem is None and n == 0:
                problem = "the cluster has no workers"
        if problem is None:
            self.since = None
            return
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since >= self.timeout_s:
            raise ClusterError(
                f"{problem} for {now - self.since:.0f} s (lost_timeout_s={self.timeout_s:g}); "
                "stopped. Finished regions are kept: start workers (or the scheduler) and rerun "
                "the same command to resume"
            )
        log.warning("%s; waiting up to %.0f s", problem, self.timeout_s - (now - self.since))


def run_waves(
    client: Any,
    units: Sequence[U],
    submit: Callable[[U], Any],
    *,
    in_flight: int,
    retries: int = 2,
    lost_timeout_s: float = 120.0,
    skip_errors: bool = False,
    progress: bool = True,
    label: str = "upscale",
    describe: Callable[[U], dict[str, Any]] | None = None,
) -> WaveReport:
    """Submit ``units`` with at most ``in_flight`` on the cluster, until all have finished.

    ``submit(unit)`` returns the future whose completion means the unit is done (written and
    marked). Raises :class:`~s2scale.errors.ReadError` (a unit failed, not under ``skip_errors``)
    or :class:`~s2scale.errors.ClusterError` (workers or scheduler lost for ``lost_timeout_s``).
    """
    from distributed import wait
    from distributed.client import FuturesCancelledError

    describe = describe or (lambda u: {"unit": repr(u)})
    report = WaveReport()
    start = time.perf_counter()
    todo: Iterable[U] = iter(units)
    running: dict[Any, tuple[U, int]] = {}
    watchdog = _Watchdog(client, lost_timeout_s)
    with _progress_bar(len(units), label, progress) as advance:
        try:
            while True:
                while len(running) < in_flight:
                    unit = next(todo, None)  # type: ignore[call-overload]
                    if unit is None:
                        break
                    running[submit(unit)] = (unit, 0)
                    report.units += 1
                if not running:
                    break
                try:
                    with client.as_current():  # wait on *this* client, default or not
                        done, _ = wait(
                            list(running), timeout=_POLL_S, return_when="FIRST_COMPLETED"
                        )
                except TimeoutError:
                    watchdog.check()
                    continue
                except FuturesCancelledError:  # e.g. the scheduler connection was lost
                    done = {f for f in running if f.status != "pending"}
                for fut in done:
                    unit, attempt = running.pop(fut)
                    if fut.status == "finished":
                        report.finished += 1
                        advance(1)
                        continue
                    if fut.status == "cancelled":
                        while client.status != "running":  # ClusterError after the timeout
                            watchdog.check()
                            time.sleep(_POLL_S)
                        if attempt >= retries:
                            raise ClusterError(
                                f"work unit {describe(unit)} was cancelled {attempt + 1} times "
                                "(scheduler restarted or lost); rerun to resume"
                            )
                        report.retried += 1
                        running[submit(unit)] = (unit, attempt + 1)
                        continue
                    exc = fut.exception()
                    if _is_lost_worker(exc) and attempt < retries:
                        log.warning("unit %s lost its worker (%s); retrying", describe(unit), exc)
                        client.retry([fut])
                        running[fut] = (unit, attempt + 1)
                        report.retried += 1
                        continue
                    # Release the failed tasks, so that a rerun with the same client (and the
                    # same deterministic keys) computes them again instead of getting this error.
                    fut.release()
                    if skip_errors:
                        log.warning("unit %s failed, left empty: %s", describe(unit), exc)
                        report.failed.append({**describe(unit), "error": _message(exc)})
                        advance(1)
                        continue
                    raise ReadError(
                        f"work unit {describe(unit)} failed: {_message(exc)}; fix the input, or "
                        "rerun with --skip-errors to leave its region empty (listed in the "
                        "report) and go on; a later run fills it"
                    ) from exc
        finally:
            for fut in running:
                fut.cancel()
    report.seconds = time.perf_counter() - start
    return report


def _message(exc: BaseException | None) -> str:
    """``Type: message`` of an exception."""
    return "unknown error" if exc is None else f"{type(exc).__name__}: {exc}"
