"""Run a command again after it failed, a bounded number of times, with a growing delay.

The Dask operator runs a ``DaskJob``'s job as a bare pod, which has no ``backoffLimit``: with
``restartPolicy: OnFailure`` the kubelet would restart a failing job for ever (holding its GPU
workers), with ``Never`` one transient failure (the scheduler not up yet, a lost node) ends it.
The job pod therefore uses ``Never`` and runs ``s2scale deploy retry --attempts N -- s2scale
upscale ...``: each attempt is a fresh process that resumes from the store's run manifest, and
after the last failure the pod fails, so the operator deletes the cluster.

``SIGTERM``/``SIGINT`` (pod deletion) are passed to the running command and end the retries.

Before the first attempt :func:`check_secret_env` checks that the Secret's keys reached the
environment: a missing Secret or key ends the job at once with a message naming them (the runner
mounts the Secret with ``optional: true`` so that it starts and can say so), instead of workers
waiting in ``CreateContainerConfigError`` with their GPUs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from s2scale.errors import ConfigError

__all__ = ["check_secret_env", "run_with_retries"]

log = logging.getLogger(__name__)

MAX_DELAY_S = 600.0
"""Longest wait between two attempts."""


def check_secret_env(
    keys: Sequence[str],
    *,
    secret: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Raise unless every one of ``keys`` is a non-empty variable of the environment.

    Parameters
    ----------
    keys
        Variable names the Secret must provide (``AWS_ACCESS_KEY_ID``, ...).
    secret
        Name of the Secret, for the message.
    environ
        The environment (default ``os.environ``).

    Raises
    ------
    ConfigError
        Names the missing keys (never any value) and how to create the Secret.

    Examples
    --------
    >>> check_secret_env(["HOME"], environ={"HOME": "/tmp"})
    """
    env = os.environ if environ is None else environ
    missing = [k for k in keys if not env.get(k)]
    if not missing:
        return
    name = secret or "SECRET"
    literals = " ".join(f"--from-literal={k}=..." for k in keys)
    raise ConfigError(
        f"the job's environment lacks {', '.join(missing)}, which the Secret {name!r} must "
        "provide (the Secret or the keys are missing); nothing was started. Create it with "
        f"`kubectl -n NAMESPACE create secret generic {name} {literals}` (delete and recreate "
        "it to change it), then apply the overlay again"
    )


def _exit_code(returncode: int) -> int:
    """A shell-style exit status: ``128 + N`` for a command killed by signal ``N``."""
    return 128 - returncode if returncode < 0 else returncode


def run_with_retries(
    command: Sequence[str],
    *,
    attempts: int,
    delay_s: float,
    max_delay_s: float = MAX_DELAY_S,
    report: Callable[[str], None] = log.warning,
) -> int:
    """Run ``command`` until it exits with 0, at most ``attempts`` times; return its exit status.

    Parameters
    ----------
    command
        Program and arguments (no shell).
    attempts
        Total runs allowed (``backoff_limit + 1``).
    delay_s
        Wait before the second attempt; doubled after each further failure, up to ``max_delay_s``.
    max_delay_s
        Longest wait.
    report
        Receives one line per failed attempt.

    Returns
    -------
    int
        0 after a successful attempt, else the last attempt's status (``128 + N`` for signal N).
        ``SIGTERM`` or ``SIGINT`` received here are forwarded to the command and end the retries.

    Raises
    ------
    ConfigError
        An empty command or ``attempts < 1``.
    """
    if not command:
        raise ConfigError("no command given to retry; put it after '--'")
    if attempts < 1:
        raise ConfigError(f"attempts={attempts} must be at least 1")
    stop = threading.Event()
    child: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        for p in child:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        delay = delay_s
        status = 1
        for attempt in range(1, attempts + 1):
            try:
                proc = subprocess.Popen(list(command))
            except OSError as err:
                raise ConfigError(f"cannot run {command[0]!r}: {err}") from err
            child[:] = [proc]
            status = _exit_code(proc.wait())
            if status == 0 or stop.is_set():
                return status
            if attempt == attempts:
                report(f"attempt {attempt}/{attempts} failed with exit status {status}; giving up")
                return status
            report(
                f"attempt {attempt}/{attempts} failed with exit status {status}; "
                f"running it again in {delay:g} s (it resumes what was written)"
            )
            if stop.wait(delay):
                return status
            delay = min(delay * 2, max_delay_s)
        return status
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
