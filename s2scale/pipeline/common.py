"""Small helpers shared by the pipeline modules: stage timing, search, URL redaction, the client."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s2scale import catalog
from s2scale.config import ClusterConfig, RunConfig
from s2scale.errors import ConfigError

__all__ = ["DEMO_DATETIME", "open_client", "redact", "run_search", "run_token", "timed"]

log = logging.getLogger(__name__)

DEMO_DATETIME = "2024-06-01/2024-08-31"
"""The summer of the built-in sample (its 2021 scene is left out)."""


@contextlib.contextmanager
def timed(stage: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long a stage took (failures included) and record it in ``timings``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        log.debug("%s took %.1fs", stage, dt)
        if timings is not None:
            timings[stage] = round(timings.get(stage, 0.0) + dt, 3)


def run_search(cfg: RunConfig) -> catalog.SearchResult:
    """Search the catalog of ``cfg.catalog``."""
    c = cfg.catalog
    if not c.stac:
        raise ConfigError("no STAC source given; pass --stac URL|FILE (or catalog.stac in YAML)")
    return catalog.search(
        c.aoi,
        c.datetime,
        stac=c.stac,
        max_cloud_cover=c.max_cloud_cover,
        collection=c.collection,
        skip_errors=c.skip_errors,
    )


def redact(url: str | Path) -> str:
    """A store URL safe to print (see :func:`s2scale.mosaic.redact_url`)."""
    from s2scale.mosaic import redact_url

    return redact_url(url)


def open_client(cluster: ClusterConfig, client: Any, timings: dict[str, float]) -> tuple[Any, bool]:
    """The given client, or a new one for ``cluster`` and ``True`` (then the caller closes it)."""
    if client is not None:
        return client, False
    from s2scale.cluster import make_client

    with timed("cluster", timings):
        client = make_client(cluster)
    log.warning("dashboard: %s", client.dashboard_link)
    return client, True


def run_token(fingerprint: Any, target: str) -> str:
    """Eight characters naming one run's write tasks (equal inputs give equal task keys)."""
    from dask.base import tokenize

    return tokenize(fingerprint, target)[:8]
