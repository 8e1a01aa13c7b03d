"""Real network services on 127.0.0.1 for tests: STAC API, range-capable file server, flaky proxy.

- :class:`StacApiServer` runs PostgreSQL + PostGIS with the pgstac schema and serves it with
  stac-fastapi-pgstac under uvicorn, so the catalog layer talks to the same software that backs
  public STAC APIs such as Earth Search.
- :class:`RangeFileServer` serves a folder with nginx, which answers HTTP range requests (``206``,
  ``Accept-Ranges: bytes``) the way a cloud bucket does, and logs each request with its ``Range``
  header so tests can prove that GDAL read only parts of a COG.
- :class:`FlakyProxy` answers the first requests with an error status and forwards the rest to an
  upstream server, for testing retries.

The server processes use their own binaries and virtual environment, installed by
``bash .ci/setup-services.sh``; nothing here starts a service at import time. Each server binds a
free port on 127.0.0.1 only and keeps its data, logs and pid files in a temporary folder that
``stop()`` removes.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import grp
import http.client
import http.server
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

from s2scale.errors import S2ScaleError

__all__ = [
    "FlakyProxy",
    "LoggedRequest",
    "RangeFileServer",
    "ServiceError",
    "StacApiServer",
    "range_server_available",
    "resolve_server_python",
    "stac_api_available",
]

log = logging.getLogger(__name__)

STAC_PYTHON_ENV = "S2SCALE_STAC_PYTHON"
"""Environment variable naming the python of the venv that has stac-fastapi-pgstac and pypgstac."""

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_STAC_PYTHON = _REPO_ROOT / ".ci" / "work" / "stac-venv" / "bin" / "python"
_SETUP_HINT = "run `bash .ci/setup-services.sh` in the repository"
_LOG_TAIL_CHARS = 4000

# Runs inside the server venv: create the pgstac schema, then load collections and items (ndjson).
_LOAD_SCRIPT = """
import sys
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate

dsn, collections, items, migrate = sys.argv[1:5]
with PgstacDB(dsn=dsn) as db:
    if migrate == "1":
        print("pgstac", Migrate(db).run_migration(), flush=True)
    loader = Loader(db=db)
    loader.load_collections(collections, Methods.upsert)
    loader.load_items(items, Methods.upsert)
"""


class ServiceError(S2ScaleError, RuntimeError):
    """A local test service is not installed, or did not start."""


# ----------------------------------------------------------------------------------- helpers


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    """Return the end of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<no log at {path}>"
    return text[-chars:] if text else f"<{path.name} is empty>"


def _port_open(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float,
) -> None:
    """Poll ``ready`` until it is true; raise with the log tail on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return
        code = proc.poll()
        if code is not None:
            raise ServiceError(f"{what} exited with code {code} while starting:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{what} was not ready after {timeout_s:.0f}s; log tail:\n{_tail(log_path)}"
            )
        time.sleep(0.1)


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float = 10.0) -> None:
    """Send ``sig`` to a process started in its own session, then SIGKILL its group if needed."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored signal %d; killing its process group", proc.pid, sig)
    # The process group id is the pid (start_new_session=True); kill leftovers such as workers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout_s)


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Return this process's environment without Python path settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(extra)
    return env


def _postgres_bindir() -> Path | None:
    """Return the bin folder of a PostgreSQL server that has PostGIS installed, newest first."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in map(Path, versions):
        version = bindir.parent.name
        postgis = Path(f"/usr/share/postgresql/{version}/extension/postgis.control")
        if postgis.exists() and all(
            (bindir / exe).exists() for exe in ("initdb", "postgres", "pg_isready")
        ):
            return bindir
    return None


def _nginx_binary() -> str | None:
    """Return the nginx executable, also where /usr/sbin is not on PATH."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def resolve_server_python(server_python: str | os.PathLike[str] | None = None) -> str:
    """Find the python of the virtual environment that runs the STAC API server.

    Parameters
    ----------
    server_python
        Explicit path. When None, the environment variable ``S2SCALE_STAC_PYTHON`` is used, then
        ``<repo>/.ci/work/stac-venv/bin/python`` (created by ``bash .ci/setup-services.sh``).

    Returns
    -------
    str
        Path of an executable python (symlinks are kept, so the venv is found through it).

    Raises
    ------
    ServiceError
        If no such python exists or it is not executable.
    """
    candidates: list[tuple[str, str]] = []
    if server_python is not None:
        candidates.append(("server_python", os.fspath(server_python)))
    elif os.environ.get(STAC_PYTHON_ENV):
        candidates.append((STAC_PYTHON_ENV, os.environ[STAC_PYTHON_ENV]))
    else:
        candidates.append(("default", str(_DEFAULT_STAC_PYTHON)))
    source, path = candidates[0]
    if not os.access(path, os.X_OK):
        raise ServiceError(
            f"no STAC API server python at {path!r} (from {source}); {_SETUP_HINT} to create "
            f"{_DEFAULT_STAC_PYTHON}, or set {STAC_PYTHON_ENV} to the python of a venv with "
            "stac-fastapi-pgstac[server]==7.2.0 and pypgstac[psycopg]==0.10.0"
        )
    return path


def stac_api_available() -> tuple[bool, str]:
    """Tell whether :class:`StacApiServer` can start here, and if not, why.

    Returns
    -------
    tuple of (bool, str)
        ``(True, "")`` when PostgreSQL with PostGIS and the server venv are installed, else
        ``(False, reason)`` with a reason fit for a pytest skip message.

    Examples
    --------
    >>> ok, reason = stac_api_available()
    >>> isinstance(ok, bool) and isinstance(reason, str)
    True
    """
    if _postgres_bindir() is None:
        return False, (
            "PostgreSQL server with PostGIS not found (/usr/lib/postgresql/*/bin and "
            f"postgis.control); {_SETUP_HINT}"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False, "running as root but there is no `postgres` user to run PostgreSQL"
    try:
        resolve_server_python()
    except ServiceError as err:
        return False, str(err)
    return True, ""


def range_server_available() -> tuple[bool, str]:
    """Tell whether :class:`RangeFileServer` can start here, and if not, why.

    Returns
    -------
    tuple of (bool, str)
        ``(True, "")`` when nginx is installed, else ``(False, reason)``.

    Examples
    --------
    >>> ok, reason = range_server_available()
    >>> ok or "nginx" in reason
    True
    """
    if _nginx_binary() is None:
        return False, f"nginx not found; {_SETUP_HINT} (Debian package nginx)"
    return True, ""


class _Service:
    """Start/stop bookkeeping shared by the servers: temp folder and context manager."""

    _tmpdir: Path | None = None
    _running: ClassVar[set[_Service]] = set()
    """Services with processes or files to clean up; stopped at exit if a caller forgot."""

    def start(self) -> Self:  # pragma: no cover - overridden
        """Start the service."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        """Stop the service."""
        raise NotImplementedError

    def _make_tmpdir(self, prefix: str) -> Path:
        self._tmpdir = Path(tempfile.mkdtemp(prefix=prefix))
        _Service._running.add(self)
        return self._tmpdir

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        _Service._running.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _stop_forgotten_services() -> None:
    """Stop servers still running when the interpreter exits, so no process outlives it."""
    for service in list(_Service._running):
        log.warning("stopping %s at exit; call stop() or use `with`", type(service).__name__)
        service.stop()


# ----------------------------------------------------------------------------------- STAC API


class StacApiServer(_Service):
    """A real STAC API (stac-fastapi-pgstac on PostgreSQL/PostGIS) on 127.0.0.1.

    PostgreSQL runs from a fresh temporary data folder (as the ``postgres`` user when this process
    is root, with ``trust`` authentication and TCP on 127.0.0.1 only); ``pypgstac`` creates the
    pgstac schema and loads the given collections and items; uvicorn serves the API. Cold start with
    a few items takes about 3 s.

    Parameters
    ----------
    collections
        STAC collection dicts; each item's ``collection`` must name one of them.
    items
        STAC item dicts (any extensions; geometry, bbox and datetime are indexed by pgstac).
    server_python
        Python of the server venv; see :func:`resolve_server_python`.
    startup_timeout_s
        Bound on each start phase (PostgreSQL, schema + load, API).
    transactions
        Enable the transactions extension (``POST /collections/{id}/items`` and friends).

    Examples
    --------
    >>> with StacApiServer([collection], items) as api:  # doctest: +SKIP
    ...     pystac_client.Client.open(api.url).search(bbox=bounds).item_collection()
    """

    def __init__(
        self,
        collections: Sequence[Mapping[str, Any]],
        items: Sequence[Mapping[str, Any]],
        *,
        server_python: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 60.0,
        transactions: bool = False,
    ) -> None:
        self._collections = [dict(c) for c in collections]
        self._items = [dict(i) for i in items]
        self._server_python_arg = server_python
        self._timeout_s = startup_timeout_s
        self._transactions = transactions
        self._postgres: subprocess.Popen[bytes] | None = None
        self._api: subprocess.Popen[bytes] | None = None
        self._pg_port: int | None = None
        self._api_port: int | None = None
        self._server_python: str | None = None

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:41234``."""
        if self._api_port is None:
            raise ServiceError("StacApiServer is not running; call start() or use `with`")
        return f"http://127.0.0.1:{self._api_port}"

    @property
    def dsn(self) -> str:
        """Connection string (libpq URI) of the pgstac database."""
        if self._pg_port is None:
            raise ServiceError("StacApiServer is not running; call start() or use `with`")
        return f"postgresql://postgres@127.0.0.1:{self._pg_port}/postgres"

    def start(self) -> Self:
        """Start PostgreSQL, load the data and serve the API; wait until it answers.

        Returns
        -------
        StacApiServer
            ``self``, running.

        Raises
        ------
        ServiceError
            If the binaries are missing or a phase fails or times out (with the log tail).
        """
        if self._api is not None:
            return self
        self._server_python = resolve_server_python(self._server_python_arg)
        bindir = _postgres_bindir()
        if bindir is None:
            raise ServiceError(f"PostgreSQL 15 with PostGIS is not installed; {_SETUP_HINT}")
        t0 = time.perf_counter()
        tmp = self._make_tmpdir("s2scale-stac-")
        try:
            self._start_postgres(bindir, tmp)
            self.load(self._collections, self._items, migrate=True)
            self._start_api(tmp)
        except BaseException:
            self.stop()
            raise
        log.info(
            "STAC API at %s with %d collections, %d items (took %.1fs)",
            self.url,
            len(self._collections),
            len(self._items),
            time.perf_counter() - t0,
        )
        return self

    def load(
        self,
        collections: Sequence[Mapping[str, Any]] = (),
        items: Sequence[Mapping[str, Any]] = (),
        *,
        migrate: bool = False,
    ) -> None:
        """Upsert more collections and items into the running server's database.

        Parameters
        ----------
        collections, items
            STAC dicts, as for the constructor.
        migrate
            Also create or upgrade the pgstac schema first (done once by :meth:`start`).

        Raises
        ------
        ServiceError
            If pypgstac fails; the message holds its output.
        """
        if self._tmpdir is None or self._server_python is None or self._pg_port is None:
            raise ServiceError("StacApiServer is not running; call start() or use `with`")
        n = len(list(self._tmpdir.glob("collections-*.ndjson")))
        coll_path = self._tmpdir / f"collections-{n}.ndjson"
        item_path = self._tmpdir / f"items-{n}.ndjson"
        coll_path.write_text("".join(json.dumps(c) + "\n" for c in collections))
        item_path.write_text("".join(json.dumps(i) + "\n" for i in items))
        log_path = self._tmpdir / "load.log"
        with log_path.open("ab") as out:
            try:
                result = subprocess.run(
                    [
                        self._server_python,
                        "-c",
                        _LOAD_SCRIPT,
                        self.dsn,
                        str(coll_path),
                        str(item_path),
                        "1" if migrate else "0",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_clean_env({}),
                    cwd=self._tmpdir,
                    timeout=self._timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as err:
                raise ServiceError(
                    f"pypgstac load did not finish in {self._timeout_s:.0f}s:\n{_tail(log_path)}"
                ) from err
        if result.returncode != 0:
            raise ServiceError(
                f"pypgstac migrate/load failed (exit {result.returncode}):\n{_tail(log_path)}"
            )

    def stop(self) -> None:
        """Stop the API and PostgreSQL and delete the temporary folder; safe to call twice."""
        _stop_process(self._api, signal.SIGTERM)
        # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting.
        _stop_process(self._postgres, signal.SIGINT)
        self._api = self._postgres = None
        self._api_port = self._pg_port = None
        self._remove_tmpdir()

    def _start_postgres(self, bindir: Path, tmp: Path) -> None:
        pgdata = tmp / "pgdata"
        pgdata.mkdir(mode=0o700)
        user: str | None = None
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the server as `postgres`, who needs to reach tmp.
            user = "postgres"
            try:
                pw = pwd.getpwnam(user)
            except KeyError as err:
                raise ServiceError(
                    "running as root, but there is no `postgres` user to run PostgreSQL as; "
                    "install Debian's postgresql-15 (it creates the user) or run as non-root"
                ) from err
            tmp.chmod(0o755)
            os.chown(pgdata, pw.pw_uid, pw.pw_gid)
        env = _clean_env({"HOME": str(tmp), "LC_ALL": "C.UTF-8"})
        init_log = tmp / "initdb.log"
        with init_log.open("wb") as out:
            result = subprocess.run(
                [
                    *(str(bindir / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres"),
                    *("-E", "UTF8", "--locale=C", "--no-sync"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                timeout=self._timeout_s,
                check=False,
            )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed (exit {result.returncode}):\n{_tail(init_log)}")
        self._pg_port = _free_port()
        pg_log = tmp / "postgres.log"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self._pg_port),
            "unix_socket_directories": "",
            # a throw-away database: trade durability for speed
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
            "max_connections": "50",
        }
        args = [str(bindir / "postgres"), "-D", str(pgdata)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with pg_log.open("wb") as out:
            self._postgres = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                start_new_session=True,
            )
        isready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self._pg_port)]
        _wait_for(
            lambda: subprocess.run(isready, env=env, check=False, timeout=10).returncode == 0,
            what="PostgreSQL",
            proc=self._postgres,
            log_path=pg_log,
            timeout_s=self._timeout_s,
        )

    def _start_api(self, tmp: Path) -> None:
        assert self._server_python is not None and self._pg_port is not None
        self._api_port = _free_port()
        api_log = tmp / "uvicorn.log"
        # stac-fastapi-pgstac 7.x reads PGUSER/PGPASSWORD/PGHOST/PGPORT/PGDATABASE (pydantic
        # settings; PGPASSWORD is required even with trust auth). cwd=tmp keeps it from reading
        # a stray `.env` file.
        env = _clean_env(
            {
                "PGHOST": "127.0.0.1",
                "PGPORT": str(self._pg_port),
                "PGUSER": "postgres",
                "PGPASSWORD": "unused-trust-auth",
                "PGDATABASE": "postgres",
                "DB_MIN_CONN_SIZE": "1",
                "DB_MAX_CONN_SIZE": "5",
                "ENABLE_TRANSACTIONS_EXTENSIONS": "true" if self._transactions else "false",
                "STAC_FASTAPI_TITLE": "s2scale test STAC API",
                "STAC_FASTAPI_DESCRIPTION": "pgstac on loopback, started by s2scale.sim",
                "STAC_FASTAPI_VERSION": "test",
                "STAC_FASTAPI_LANDING_ID": "s2scale-test",
            }
        )
        args = [self._server_python, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app"]
        args += ["--factory", "--host", "127.0.0.1", "--port", str(self._api_port)]
        args += ["--no-access-log", "--log-level", "info"]
        with api_log.open("wb") as out:
            self._api = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                start_new_session=True,
            )
        _wait_for(
            lambda: _http_ok(self.url + "/"),
            what="stac-fastapi-pgstac (uvicorn)",
            proc=self._api,
            log_path=api_log,
            timeout_s=self._timeout_s,
        )


def _http_ok(url: str) -> bool:
    """Tell whether ``GET url`` answers 200."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (OSError, http.client.HTTPException):
        return False


# ----------------------------------------------------------------------------------- nginx

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user_line}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    types {{
        image/tiff tif tiff;
        application/json json;
        application/geo+json geojson;
        text/plain txt;
        image/png png;
        image/jpeg jpg jpeg;
    }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    log_format s2scale "$request_method\\t$status\\t$uri\\t$http_range\\t$body_bytes_sent";
    access_log {tmp}/access.log s2scale;
    sendfile on;
    keepalive_timeout 30s;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        autoindex off;
    }}
}}
"""


class LoggedRequest(NamedTuple):
    """One request seen by :class:`RangeFileServer`."""

    path: str
    """URL path, e.g. ``/scene/B04.tif``."""
    status: int
    """HTTP status sent, e.g. 206 for a partial response."""
    range: str | None
    """The request's ``Range`` header (``"bytes=0-16383"``), or None without one."""


class RangeFileServer(_Service):
    """Serve a folder over HTTP with nginx, with byte-range support, as a cloud bucket does.

    nginx answers ``Range: bytes=a-b`` with ``206 Partial Content`` and advertises
    ``Accept-Ranges: bytes``, which is what GDAL's ``/vsicurl/`` needs to read COG tiles without
    downloading whole files. Every request is written to an access log; :meth:`requests` parses it.

    Parameters
    ----------
    root_dir
        Folder to serve; ``<root_dir>/a/b.tif`` is at ``<url>/a/b.tif``.
    startup_timeout_s
        Bound on the wait for nginx to accept connections.

    Examples
    --------
    >>> with RangeFileServer(tmp_path) as files:  # doctest: +SKIP
    ...     rasterio.open(files.url_for("cog.tif")).read(1, window=Window(0, 0, 64, 64))
    ...     assert any(r.status == 206 for r in files.requests())
    """

    def __init__(
        self, root_dir: str | os.PathLike[str], *, startup_timeout_s: float = 20.0
    ) -> None:
        self.root_dir = Path(root_dir).resolve()
        self._timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41235``."""
        if self._port is None:
            raise ServiceError("RangeFileServer is not running; call start() or use `with`")
        return f"http://127.0.0.1:{self._port}"

    def url_for(self, path: str | os.PathLike[str]) -> str:
        """Return the URL of a file given relative to (or inside) ``root_dir``.

        Parameters
        ----------
        path
            Relative path, or absolute path under ``root_dir``.

        Returns
        -------
        str
            Its http URL.
        """
        rel = Path(path)
        if rel.is_absolute():
            rel = rel.resolve().relative_to(self.root_dir)
        return f"{self.url}/{urllib.parse.quote(rel.as_posix())}"

    def start(self) -> Self:
        """Start nginx and wait until it accepts connections.

        Returns
        -------
        RangeFileServer
            ``self``, running.

        Raises
        ------
        ServiceError
            If nginx is missing, ``root_dir`` is not a folder, or nginx does not start in time.
        """
        if self._proc is not None:
            return self
        nginx = _nginx_binary()
        if nginx is None:
            raise ServiceError(range_server_available()[1])
        if not self.root_dir.is_dir():
            raise ServiceError(f"root_dir {str(self.root_dir)!r} is not a folder")
        tmp = self._make_tmpdir("s2scale-nginx-")
        self._port = _free_port()
        user_line = ""
        if os.geteuid() == 0:
            # Workers would switch to `nobody`, who cannot read pytest's 0700 tmp folders.
            user_line = (
                f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
            )
        conf = tmp / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                tmp=tmp, port=self._port, root=json.dumps(str(self.root_dir)), user_line=user_line
            )
        )
        self._access_log.touch()
        err_log = tmp / "error.log"
        with (tmp / "stderr.log").open("wb") as out:
            self._proc = subprocess.Popen(
                [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(err_log)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                start_new_session=True,
            )
        port = self._port
        try:
            _wait_for(
                lambda: _port_open(port),
                what="nginx",
                proc=self._proc,
                log_path=err_log,
                timeout_s=self._timeout_s,
            )
        except BaseException:
            self.stop()
            raise
        log.info("serving %s at %s", self.root_dir, self.url)
        return self

    def stop(self) -> None:
        """Stop nginx and delete its temporary folder; safe to call twice."""
        _stop_process(self._proc, signal.SIGTERM)
        self._proc = None
        self._port = None
        self._remove_tmpdir()

    @property
    def _access_log(self) -> Path:
        if self._tmpdir is None:
            raise ServiceError("RangeFileServer is not running; call start() or use `with`")
        return self._tmpdir / "access.log"

    def _records(self) -> list[list[str]]:
        lines = self._access_log.read_text(errors="replace").splitlines()
        return [fields for fields in (line.split("\t") for line in lines) if len(fields) == 5]

    def requests(self, *, method: str | None = None) -> list[LoggedRequest]:
        """Return the requests served so far, oldest first.

        Parameters
        ----------
        method
            Keep only this HTTP method (``"GET"``, ``"HEAD"``); None keeps all.

        Returns
        -------
        list of LoggedRequest
            ``(path, status, range)`` tuples; ``range`` is None for requests without a Range header.
        """
        return [
            LoggedRequest(path, int(status), None if rng == "-" else rng)
            for meth, status, path, rng, _ in self._records()
            if method is None or meth == method.upper()
        ]

    def bytes_sent(self) -> int:
        """Return the total number of response body bytes sent so far."""
        return sum(int(fields[4]) for fields in self._records())

    def clear_requests(self) -> None:
        """Forget the requests logged so far (nginx keeps appending to the same file)."""
        self._access_log.write_bytes(b"")


# ----------------------------------------------------------------------------------- flaky proxy

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class FlakyProxy(_Service):
    """HTTP proxy on 127.0.0.1 that fails the first ``fail_first_n`` requests, then forwards.

    Failed requests get ``status`` with a small JSON body. Later requests are forwarded to
    ``upstream_url`` with their method, path, query, body and headers (the ``Host`` header is kept,
    so a STAC API behind it writes links that point back at the proxy).

    Parameters
    ----------
    upstream_url
        Base URL to forward to, e.g. ``StacApiServer.url``; a path prefix is kept.
    fail_first_n
        How many requests to fail before forwarding.
    status
        Status code of the failures (500, 502, 503, 429, ...).

    Examples
    --------
    >>> with FlakyProxy(api.url, fail_first_n=1) as proxy:  # doctest: +SKIP
    ...     requests.get(proxy.url + "/").status_code  # 500, then 200 on a retry
    500
    """

    def __init__(self, upstream_url: str, fail_first_n: int = 1, status: int = 500) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ServiceError(f"upstream_url must be an http(s) URL, got {upstream_url!r}")
        if fail_first_n < 0 or not 100 <= status <= 599:
            raise ServiceError(
                f"need fail_first_n >= 0 and 100 <= status <= 599, got {fail_first_n}, {status}"
            )
        self._upstream = parsed
        self.fail_first_n = fail_first_n
        self.status = status
        self._lock = threading.Lock()
        self._count = 0
        self._failed = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the proxy, e.g. ``http://127.0.0.1:41236``."""
        if self._server is None:
            raise ServiceError("FlakyProxy is not running; call start() or use `with`")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def request_count(self) -> int:
        """Requests received so far, failed ones included."""
        with self._lock:
            return self._count

    @property
    def failed_count(self) -> int:
        """Requests answered with the injected failure status."""
        with self._lock:
            return self._failed

    def reset(self, fail_first_n: int | None = None) -> None:
        """Zero the counters, optionally with a new number of requests to fail."""
        with self._lock:
            self._count = self._failed = 0
            if fail_first_n is not None:
                self.fail_first_n = fail_first_n

    def start(self) -> Self:
        """Start serving in a background thread.

        Returns
        -------
        FlakyProxy
            ``self``, running.
        """
        if self._server is not None:
            return self
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FlakyProxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def _next_fails(self) -> bool:
        with self._lock:
            self._count += 1
            fail = self._count <= self.fail_first_n
            self._failed += fail
            return fail

    def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        up = self._upstream
        conn_cls = (
            http.client.HTTPSConnection if up.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_cls(up.hostname or "127.0.0.1", up.port, timeout=60)
        try:
            conn.putrequest(
                method, up.path.rstrip("/") + target, skip_host=True, skip_accept_encoding=True
            )
            for key, value in headers:
                conn.putheader(key, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()


def _make_handler(proxy: FlakyProxy) -> type[http.server.BaseHTTPRequestHandler]:
    """Build the request handler class bound to one proxy."""

    class _Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if proxy._next_fails():
                payload = json.dumps(
                    {"code": "InjectedFailure", "description": f"FlakyProxy: {proxy.status}"}
                ).encode()
                self._reply(proxy.status, [("Content-Type", "application/json")], payload)
                return
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            try:
                status, resp_headers, data = proxy._forward(self.command, self.path, headers, body)
            except (OSError, http.client.HTTPException) as err:
                log.warning("FlakyProxy: upstream failed: %s", err)
                self._reply(502, [("Content-Type", "text/plain")], f"upstream: {err}".encode())
                return
            kept = [(k, v) for k, v in resp_headers if k.lower() not in _HOP_BY_HOP]
            self._reply(status, kept, data)

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in {"server", "date"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("FlakyProxy: " + format, *args)

    return _Handler
