"""An S3-compatible object store on 127.0.0.1 for tests: moto's server mode in its own process.

:class:`S3Server` starts ``python -m moto.server`` on a free port and hands out the environment a
client needs (``AWS_ENDPOINT_URL``, a fresh random key pair, a region), so code under test reads
its credentials from the environment only, as in production. Each server gets new random
credentials, which makes "the credential appears nowhere" assertions meaningful. Nothing starts
at import time; ``stop()`` ends the process and removes its log folder.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from services.stac_api import ServiceError, _free_port, _stop_process, _tail, _wait_for

__all__ = ["S3Server", "s3_server_available"]

_NEEDED = {"moto": "moto[server]", "flask": "moto[server]", "s3fs": "s3fs"}


def s3_server_available() -> tuple[bool, str]:
    """Tell whether :class:`S3Server` can start here (and s3fs can talk to it), and if not, why.

    Examples
    --------
    >>> ok, reason = s3_server_available()
    >>> ok or "pip install" in reason
    True
    """
    missing = sorted({pkg for mod, pkg in _NEEDED.items() if importlib.util.find_spec(mod) is None})
    if missing:
        return False, f"S3 test server needs: pip install {' '.join(missing)}"
    return True, ""


class S3Server:
    """moto's S3 API on ``http://127.0.0.1:<free port>``.

    Parameters
    ----------
    region
        ``AWS_REGION`` handed to clients.
    start_timeout_s
        How long the server may take to answer.
    """

    def __init__(self, *, region: str = "eu-central-1", start_timeout_s: float = 30.0) -> None:
        self.region = region
        self.start_timeout_s = start_timeout_s
        self.access_key_id = "AKIA" + secrets.token_hex(8).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self.session_token = secrets.token_urlsafe(24)
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def secrets(self) -> tuple[str, str, str]:
        """The key id, secret key and session token: strings no output may contain."""
        return self.access_key_id, self.secret_access_key, self.session_token

    def env(self) -> dict[str, str]:
        """Environment variables of a client of this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        ok, reason = s3_server_available()
        if not ok:
            raise ServiceError(reason)
        self._dir = Path(tempfile.mkdtemp(prefix="s2scale-s3-"))
        log = self._dir / "moto.log"
        self.port = _free_port()
        with log.open("wb") as fh:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for(
                self._ready,
                what="moto S3 server",
                proc=self._proc,
                log_path=log,
                timeout_s=self.start_timeout_s,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def create_bucket(self, name: str) -> None:
        """Create a bucket through the S3 API (with this server's credentials)."""
        import s3fs

        fs = s3fs.S3FileSystem(
            key=self.access_key_id,
            secret=self.secret_access_key,
            token=self.session_token,
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": self.region},
        )
        fs.mkdir(name)

    def log_text(self) -> str:
        """The server's log so far."""
        return _tail(self._dir / "moto.log", 10**7) if self._dir else ""

    def stop(self) -> None:
        """Stop the server and remove its folder; idempotent."""
        _stop_process(self._proc, signal.SIGTERM)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
