"""Small helpers shared by the pipeline modules: stage timing, search, URL redaction."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from s2scale import catalog
from s2scale.config import RunConfig
from s2scale.errors import ConfigError

__all__ = ["DEMO_DATETIME", "redact", "run_search", "timed"]

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
