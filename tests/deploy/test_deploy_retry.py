"""`s2scale deploy retry`: bounded reruns of the job's command, signals passed on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.deploy.retry import run_with_retries
from s2scale.errors import ConfigError

# fails until it has run `n` times (counted in a file), then exits 0
FLAKY = (
    "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
    "k = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(k)); "
    "sys.exit(0 if k >= int(sys.argv[2]) else 3)"
)


def _flaky(tmp_path, succeed_on: int) -> tuple[list[str], object]:
    counter = tmp_path / "runs"
    return [sys.executable, "-c", FLAKY, str(counter), str(succeed_on)], counter


def test_a_failing_command_is_rerun_until_it_succeeds(tmp_path):
    cmd, counter = _flaky(tmp_path, 3)
    lines = []
    assert run_with_retries(cmd, attempts=4, delay_s=0.01, report=lines.append) == 0
    assert counter.read_text() == "3"
    assert len(lines) == 2 and "attempt 1/4 failed with exit status 3" in lines[0]
    assert "running it again in 0.02 s" in lines[1]  # the delay doubles


def test_retries_are_bounded_and_the_last_status_is_returned(tmp_path):
    cmd, counter = _flaky(tmp_path, 10)
    lines = []
    assert run_with_retries(cmd, attempts=3, delay_s=0, report=lines.append) == 3
    assert counter.read_text() == "3" and "giving up" in lines[-1]


def test_a_command_killed_by_a_signal_reports_128_plus_n(tmp_path):
    cmd = [sys.executable, "-c", "import os,signal; os.kill(os.getpid(), signal.SIGKILL)"]
    assert run_with_retries(cmd, attempts=1, delay_s=0, report=lambda _: None) == 128 + 9


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="after '--'"):
        run_with_retries([], attempts=2, delay_s=0)
    with pytest.raises(ConfigError, match="attempts=0"):
        run_with_retries(["true"], attempts=0, delay_s=0)
    with pytest.raises(ConfigError, match="cannot run"):
        run_with_retries(["/nonexistent/s2scale"], attempts=1, delay_s=0)


def test_cli_exits_with_the_commands_status(tmp_path):
    cmd, counter = _flaky(tmp_path, 2)
    res = CliRunner().invoke(
        main, ["deploy", "retry", "--attempts", "2", "--delay-s", "0", "--", *cmd]
    )
    assert res.exit_code == 0, res.output
    assert counter.read_text() == "2" and "attempt 1/2 failed" in res.output


@pytest.mark.timeout(60)
def test_sigterm_reaches_the_command_and_ends_the_retries(tmp_path):
    """As on pod deletion: tini sends SIGTERM to `s2scale deploy retry`."""
    marker = tmp_path / "started"
    child = f"import pathlib,time; pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(120)"
    log = tmp_path / "retry.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s2scale.cli",
                "deploy",
                "retry",
                "--attempts",
                "5",
                "--delay-s",
                "0",
                "--",
                sys.executable,
                "-c",
                child,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 40
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), log.read_text()
        marker.unlink()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 128 + signal.SIGTERM
        assert not marker.exists()  # not started again
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
