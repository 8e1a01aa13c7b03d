"""Fixtures of the deployment tests: kubectl (kustomize), the S3 server, a small sample AOI.

Under ``CI=true`` a missing tool or service fails its tests instead of skipping them, as the
service fixtures of ``tests/conftest.py`` do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from services.s3 import S3Server, s3_server_available

KUBECTL_MIN = (1, 27)
"""kubectl with kustomize v5 (``patches`` with targets, escaped ``/`` in field paths)."""


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI=true so a missing tool cannot hide tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but a test tool or service is unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """Path of a kubectl whose built-in kustomize renders the overlays offline."""
    path = shutil.which("kubectl")
    if path is None:
        skip_or_fail("kubectl is not installed (needed for `kubectl kustomize`)")
    out = subprocess.run(
        [path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60
    )
    try:
        info = json.loads(out.stdout)["clientVersion"]
        version = (int(info["major"]), int("".join(c for c in info["minor"] if c.isdigit())))
    except (ValueError, KeyError):
        skip_or_fail(f"cannot read the kubectl version: {out.stdout[:200]} {out.stderr[:200]}")
    if version < KUBECTL_MIN:
        skip_or_fail(f"kubectl {version} is older than {KUBECTL_MIN}")
    return path


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session, with the bucket ``s2scale-test``."""
    ok, reason = s3_server_available()
    if not ok:
        skip_or_fail(reason)
    with S3Server() as server:
        server.create_bucket("s2scale-test")
        yield server
