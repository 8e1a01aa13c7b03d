"""Shared pytest fixtures.

Environment variables read here:

- ``S2SCALE_TEST_DEVICE``: torch device for model tests (default ``"cpu"``).
- ``S2SCALE_STAC_PYTHON``: python of the STAC API server venv (``bash .ci/setup-services.sh``).
- ``CI``: when ``"true"``, a missing test service or missing real reference data
  (``../shared/data``) fails the test instead of skipping it, so CI never passes by silently
  skipping the real-service and real-data tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from services.stac_api import (
    RangeFileServer,
    range_server_available,
    resolve_server_python,
    stac_api_available,
)

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():  # the real reference data, for training recipes and CLI subprocesses
    os.environ.setdefault("S2SCALE_SHARED_DATA", str(SHARED_DATA))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI=true so a missing service or data folder cannot hide tests."""
    if _in_ci():
        pytest.fail(f"CI=true but a test prerequisite is unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stac_server_python() -> str:
    """Python of the venv that runs stac-fastapi-pgstac; pass it to ``StacApiServer``."""
    ok, reason = stac_api_available()
    if not ok:
        _skip_or_fail(reason)
    return resolve_server_python()


@pytest.fixture(scope="session")
def range_server_factory() -> Iterator[Callable[[Path], RangeFileServer]]:
    """Serve a folder with nginx (range requests); one server per folder, stopped at session end.

    Servers are shared: call ``server.clear_requests()`` before asserting on ``requests()``.
    """
    ok, reason = range_server_available()
    if not ok:
        _skip_or_fail(reason)
    servers: dict[Path, RangeFileServer] = {}

    def start(root_dir: Path) -> RangeFileServer:
        key = Path(root_dir).resolve()
        if key not in servers:
            servers[key] = RangeFileServer(key).start()
        return servers[key]

    yield start
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Torch device from ``S2SCALE_TEST_DEVICE`` (default ``cpu``)."""
    import torch

    name = os.environ.get("S2SCALE_TEST_DEVICE", "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"S2SCALE_TEST_DEVICE={name!r} but CUDA is not available", pytrace=False)
    return dev


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real reference data in ``../shared/data`` beside the repository.

    Skips where that folder is absent (a user's checkout); fails under ``CI=true``, where the
    real-data tests must run.
    """
    if not SHARED_DATA.is_dir():
        _skip_or_fail(f"real reference data not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lpips_weights() -> Path:
    """The imported LPIPS AlexNet weights (``s2scale weights import-lpips``); CI fills the cache."""
    from s2scale.models.backbones import IMPORT_HINT, find_lpips_weights, lpips_weights_path

    path = find_lpips_weights("alex")
    if path is None:
        _skip_or_fail(
            f"LPIPS weights not imported ({lpips_weights_path('alex')} missing); {IMPORT_HINT}"
        )
    assert path is not None  # _skip_or_fail does not return
    return path


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory):
    """The built-in simulated sample, written once per session (read-only for tests)."""
    from s2scale.sim import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), seed=0)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RGB+NIR srvgg checkpoint (random weights) standing in for the shipped generators."""
    from s2scale.models import build_generator, save_checkpoint

    net = build_generator("srvgg", bands=4, scale=2, num_feat=8, num_conv=2, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, net, bands=["blue", "green", "red", "nir"],
                    normalization={"offset": 0.0, "scale": 10000.0})  # fmt: skip
    return path


@pytest.fixture(scope="session")
def national_sample(tmp_path_factory: pytest.TempPathFactory):
    """The metadata-only national catalog (no pixels)."""
    from s2scale.sim import write_sample

    return write_sample(tmp_path_factory.mktemp("national"), national=True)
