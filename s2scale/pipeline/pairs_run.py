"""Training pairs from orthophotos and STAC Sentinel-2, extracted on a Dask cluster.

:func:`plan_pairs` reads the orthophotos' headers, searches the Sentinel-2 catalog once per
acquisition date (over those orthophotos' footprints, within ``window_days``) and lists each
orthophoto's candidate observations (:func:`s2scale.pairs.candidate_observations`); it reads no
pixels. :func:`run_stac_pairs` then runs two stages in bounded waves
(:func:`~s2scale.pipeline.waves.run_waves`: back-pressure, retries, watchdog, progress bar):

1. **survey**: one task per orthophoto reads the SCL of its candidates, nearest in time first,
   until ``observations`` are clear over it, and records the choice in the store;
2. **pairs**: one task group per (orthophoto x chosen observation) - read the Sentinel-2
   window, read the orthophoto window, make and write the pairs (:func:`s2scale.pairs.
   extract_group`) - whose record in the store marks it finished.

A rerun skips recorded surveys and groups; the store's root arrays are then rebuilt from all
finished groups in group order, so an interrupted and resumed run gives the same store as an
uninterrupted one. Bad inputs (no CRS, no date, bands that do not fit, no scene, no clear
observation) stop the run with a message naming the orthophoto and the fix, or with
``skip_errors`` are counted in the report and left out.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from s2scale import catalog
from s2scale.cluster import close_client
from s2scale.config import CatalogConfig, ClusterConfig, RunConfig
from s2scale.errors import ConfigError, NoScenesFoundError, S2ScaleError
from s2scale.pairs import (
    GroupSpec,
    Observation,
    OrthoInfo,
    PairsConfig,
    PairStore,
    candidate_observations,
    list_orthophotos,
    open_orthophoto,
    pair_window,
)
from s2scale.pairs.extract import extract_group, read_lr, read_ortho, survey_task
from s2scale.pairs.ortho import (
    BandMismatchError,
    MissingCRSError,
    MissingDateError,
)
from s2scale.pipeline.common import open_client, redact, timed
from s2scale.pipeline.waves import run_waves
from s2scale.sentinel2 import BANDS, RESOLUTION_M

__all__ = [
    "SKIP_REASONS",
    "Candidates",
    "PairsPlan",
    "plan_pairs",
    "run_stac_pairs",
]

log = logging.getLogger(__name__)

SKIP_REASONS = ("unreadable", "no_crs", "no_date", "bands", "no_scene", "cloudy", "nodata")
"""Why an orthophoto may be left out (counted in the report under ``skip_errors``)."""


@dataclass(frozen=True)
class Candidates:
    """An orthophoto's zone, pair window and candidate observations (nearest first)."""

    ortho: OrthoInfo
    """The orthophoto."""
    epsg: int
    """UTM zone of the pairs."""
    bounds: tuple[float, float, float, float]
    """Pair window in that zone (10 m, on the patch lattice)."""
    observations: tuple[Observation, ...]
    """Candidate observations, nearest in time first."""


@dataclass
class PairsPlan:
    """What :func:`run_stac_pairs` will do; built once from headers and one search per date."""

    bands: tuple[str, ...]
    """Bands of the patch store."""
    candidates: dict[str, Candidates]
    """Per orthophoto id, its candidates."""
    orthophotos: int = 0
    """Orthophotos given."""
    scenes: int = 0
    """Sentinel-2 scenes found."""
    searches: int = 0
    """Catalog searches made (one per acquisition date)."""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """Orthophotos left out: ``ortho``, ``reason`` (:data:`SKIP_REASONS`) and ``error``."""

    def to_json(self) -> dict[str, Any]:
        """JSON summary (the dry run)."""
        return {
            "orthophotos": self.orthophotos,
            "bands": list(self.bands),
            "searches": self.searches,
            "scenes": self.scenes,
            "candidates": {
                oid: {
                    "crs": f"EPSG:{c.epsg}",
                    "window": list(c.bounds),
                    "acquired": c.ortho.acquired.date().isoformat(),
                    "observations": [o.to_json() for o in c.observations],
                }
                for oid, c in self.candidates.items()
            },
            "skipped": _count(self.skipped),
            "skipped_orthophotos": self.skipped,
        }


def _count(skipped: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(s["reason"] for s in skipped)
    return {r: counts[r] for r in SKIP_REASONS if counts[r]}


class _Skips:
    """Collects bad inputs; raises the first one unless ``skip_errors``."""

    def __init__(self, skip_errors: bool) -> None:
        self.skip_errors = skip_errors
        self.items: list[dict[str, Any]] = []

    def add(self, ortho: str, reason: str, err: S2ScaleError) -> None:
        if not self.skip_errors:
            raise err
        log.warning("orthophoto %s left out (%s): %s", ortho, reason, err)
        self.items.append({"ortho": ortho, "reason": reason, "error": str(err)})


def _open_all(cfg: PairsConfig, skips: _Skips, max_workers: int = 8) -> tuple[list[OrthoInfo], int]:
    """Headers of every orthophoto (a thread pool; errors in input order) and their number."""
    sources = list_orthophotos(cfg.orthophotos, collection=cfg.ortho_collection)
    if not sources:
        raise ConfigError("no orthophoto given; pass --orthophotos PATH_OR_GLOB")

    def one(src: Any) -> OrthoInfo | S2ScaleError:
        try:
            return open_orthophoto(
                src.href,
                ortho_id=src.id,
                crs=cfg.ortho_crs,
                acquired=cfg.ortho_date,
                bands=cfg.ortho_bands or src.bands,
                stac_datetime=src.datetime,
            )
        except S2ScaleError as err:
            return err

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        results = list(pool.map(one, sources))
    infos = []
    for src, res in zip(sources, results, strict=True):
        if isinstance(res, OrthoInfo):
            infos.append(res)
            continue
        reason = {
            MissingCRSError: "no_crs",
            MissingDateError: "no_date",
            BandMismatchError: "bands",
        }.get(type(res), "unreadable")
        skips.add(src.href, reason, res)
    ids = Counter(i.id for i in infos)
    dup = sorted(i for i, n in ids.items() if n > 1)
    if dup:
        raise ConfigError(
            f"orthophoto ids {dup} are not unique (ids are file stems or STAC item ids); "
            "rename the files or give them as a STAC collection with unique item ids"
        )
    return infos, len(sources)


def _store_bands(cfg: PairsConfig, infos: Sequence[OrthoInfo]) -> tuple[str, ...]:
    """The store's bands: as configured, or those of the first orthophoto."""
    if cfg.bands is not None:
        return cfg.bands
    if not infos:
        return tuple(BANDS)
    return tuple(b for b in BANDS if b in infos[0].bands)


def _search(
    infos: Sequence[OrthoInfo], cat: CatalogConfig, window_days: int
) -> tuple[dict[str, list[Any]], int, int]:
    """One catalog search per acquisition date; the scenes found for each orthophoto id."""
    by_date: dict[Any, list[OrthoInfo]] = defaultdict(list)
    for info in infos:
        by_date[info.acquired.date()].append(info)
    found: dict[str, list[Any]] = {}
    n_scenes = 0
    for day, group in sorted(by_date.items()):
        b = [i.footprint(4326).bounds for i in group]
        box = (
            min(x[0] for x in b),
            min(x[1] for x in b),
            max(x[2] for x in b),
            max(x[3] for x in b),
        )
        aoi = ",".join(f"{v:.7f}" for v in box)
        window = timedelta(days=window_days)
        try:
            result = catalog.search(
                aoi,
                f"{(day - window).isoformat()}/{(day + window).isoformat()}",
                stac=cat.stac,
                max_cloud_cover=cat.max_cloud_cover,
                collection=cat.collection,
                skip_errors=cat.skip_errors,
            )
            scenes = list(result.scenes)
        except NoScenesFoundError:
            scenes = []
        n_scenes += len(scenes)
        for info in group:
            found[info.id] = scenes
    return found, n_scenes, len(by_date)


def plan_pairs(cfg: PairsConfig, cat: CatalogConfig) -> PairsPlan:
    """Headers, one search per acquisition date and each orthophoto's candidates; no pixels.

    Raises
    ------
    ConfigError
        No STAC source, no orthophoto, or duplicate orthophoto ids.
    NoScenesFoundError, MissingCRSError, MissingDateError, BandMismatchError, ReadError
        For the first bad orthophoto, unless ``cat.skip_errors``.
    """
    if not cat.stac:
        raise ConfigError("no Sentinel-2 STAC source given; pass --stac URL|FILE")
    skips = _Skips(cat.skip_errors)
    infos, n_given = _open_all(cfg, skips)
    bands = _store_bands(cfg, infos)
    usable = []
    for info in infos:
        try:
            info.band_index(bands)
            usable.append(info)
        except BandMismatchError as err:
            skips.add(info.id, "bands", err)
    found, n_scenes, n_searches = _search(usable, cat, cfg.window_days)
    candidates: dict[str, Candidates] = {}
    for info in usable:
        epsg, observations = candidate_observations(
            info, found[info.id], window_days=cfg.window_days
        )
        if epsg is None or not observations:
            skips.add(
                info.id,
                "no_scene",
                NoScenesFoundError(
                    f"no {cat.collection!r} scene in {redact(cat.stac)} overlaps orthophoto "
                    f"{info.id!r} (lon/lat {tuple(round(v, 4) for v in info.footprint().bounds)}) "
                    f"within {cfg.window_days} days of {info.acquired.date()}; check --stac and "
                    "--ortho-date, widen --window-days, or pass --skip-errors to leave it out"
                ),
            )
            continue
        bounds = pair_window(info, epsg, lattice_m=cfg.lattice_m)
        candidates[info.id] = Candidates(info, epsg, bounds, tuple(observations))
    return PairsPlan(
        bands=bands,
        candidates=candidates,
        orthophotos=n_given,
        scenes=n_scenes,
        searches=n_searches,
        skipped=skips.items,
    )


def _in_flight(client: Any, cfg: PairsConfig, cluster: ClusterConfig) -> int:
    """Groups on the cluster at once: as configured, else twice the cluster's threads."""
    if cfg.groups_in_flight or cluster.units_in_flight:
        return int(cfg.groups_in_flight or cluster.units_in_flight)  # type: ignore[arg-type]
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    return max(2, 2 * sum(int(w.get("nthreads", 1)) for w in workers))


def _groups(
    plan: PairsPlan, surveys: dict[str, dict[str, Any]], cfg: PairsConfig, skips: _Skips
) -> list[GroupSpec]:
    """The task groups of the surveyed orthophotos (their accepted observations)."""
    specs = []
    for oid, cand in plan.candidates.items():
        rec = surveys.get(oid)
        if rec is None:  # its survey failed under skip_errors
            continue
        accepted = [o for o in cand.observations if o.key in rec["accepted"]]
        if not accepted:
            read = rec.get("read", [])
            reason = "cloudy" if any(r.get("reason") == "cloudy" for r in read) else "nodata"
            shares = ", ".join(f"{r['key']}: clear {r['clear']:.0%}" for r in read)
            skips.add(
                oid,
                reason,
                NoScenesFoundError(
                    f"no observation within {cfg.window_days} days of orthophoto {oid!r} "
                    f"({cand.ortho.acquired.date()}) is clear and valid over it ({shares}; needed "
                    f"{cfg.min_clear:.0%}); widen --window-days, lower --min-clear, or pass "
                    "--skip-errors to leave it out"
                ),
            )
            continue
        if cfg.composite:
            specs.append(
                GroupSpec(
                    f"{oid}__composite",
                    cand.ortho,
                    tuple(accepted),
                    cand.bounds,
                    plan.bands,
                    composite=True,
                )
            )
        else:
            specs += [
                GroupSpec(f"{oid}__{o.key}", cand.ortho, (o,), cand.bounds, plan.bands)
                for o in accepted
            ]
    return specs


def run_stac_pairs(
    cfg: PairsConfig,
    run: RunConfig,
    out: str | Path,
    *,
    client: Any | None = None,
    progress: bool = True,
    overwrite: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make a training patch store from orthophotos and Sentinel-2, on a Dask cluster.

    Parameters
    ----------
    cfg
        Orthophotos and how pairs are made.
    run
        ``run.catalog`` (``stac``, ``collection``, ``max_cloud_cover``, ``skip_errors``) and
        ``run.cluster``; the catalog's AOI and dates are not used (they come from the
        orthophotos).
    out
        The pair store (Zarr v3): created, or resumed when it was made with the same
        configuration.
    client
        A distributed client (default: one from ``run.cluster``, closed at the end).
    progress
        Show progress bars (surveys, then groups) with ETA on stderr.
    overwrite
        Replace a store of another configuration.
    dry_run
        Return the plan (orthophotos, scenes, candidates per orthophoto) without reading pixels.

    Returns
    -------
    dict
        Counts per split, drops per reason, skipped inputs per reason, groups computed, reused
        and failed, pairs per second and timings.

    Raises
    ------
    NoScenesFoundError, MissingCRSError, MissingDateError, BandMismatchError
        For a bad orthophoto, unless ``run.catalog.skip_errors``.
    GridMismatchError
        ``out`` holds a pair store of another configuration (the message names the entries).
    ReadError, ClusterError
        A task group failed (without ``skip_errors``), or the cluster was lost.
    """
    timings: dict[str, float] = {}
    with timed("plan", timings):
        plan = plan_pairs(cfg, run.catalog)
    report: dict[str, Any] = {**plan.to_json(), "out": redact(out), "timings_s": timings}
    if dry_run:
        report["dry_run"] = True
        return report
    if not plan.candidates:
        raise NoScenesFoundError(
            f"none of the {plan.orthophotos} orthophotos can be paired (left out: "
            f"{_count(plan.skipped)}); see 'skipped_orthophotos' with --dry-run"
        )
    cat = run.catalog
    fingerprint = {
        "pairs": cfg.fingerprint(),
        "catalog": {
            "stac": cat.stac,
            "collection": cat.collection,
            "max_cloud_cover": cat.max_cloud_cover,
        },
    }
    store = PairStore.create(
        out,
        fingerprint=fingerprint,
        bands=plan.bands,
        lr_patch_px=cfg.lr_patch_px,
        scale=cfg.scale,
        overwrite=overwrite,
    )
    from dask.base import tokenize

    token = tokenize(fingerprint, store.path)[:8]
    skips = _Skips(cat.skip_errors)
    skips.items = list(plan.skipped)
    margin_m = (cfg.max_shift_px + 1.0) * RESOLUTION_M + cfg.mean_filter_m
    client, own = open_client(run.cluster, client, timings)
    try:
        report["dashboard"] = client.dashboard_link
        in_flight = _in_flight(client, cfg, run.cluster)
        common: dict[str, Any] = dict(
            in_flight=in_flight,
            retries=run.cluster.unit_retries,
            lost_timeout_s=run.cluster.lost_timeout_s,
            skip_errors=cat.skip_errors,
            progress=progress,
        )

        def submit_survey(oid: str) -> Any:
            c = plan.candidates[oid]
            return client.submit(
                survey_task,
                c.ortho,
                c.observations,
                c.bounds,
                wanted=cfg.observations,
                min_clear=cfg.min_clear,
                mask_snow=cfg.mask_snow,
                store=store.path,
                key=f"pairs-survey-{token}-{oid}",
            )

        surveyed = store.surveys()
        todo_s = [oid for oid in plan.candidates if oid not in surveyed]
        with timed("survey", timings):
            waves_s = run_waves(
                client,
                todo_s,
                submit_survey,
                label="survey",
                describe=lambda oid: {"survey": oid},
                **common,
            )
        specs = _groups(plan, store.surveys(), cfg, skips)

        def submit_group(spec: GroupSpec) -> Any:
            c = plan.candidates[spec.ortho.id]
            lr = client.submit(
                read_lr, spec, mask_snow=cfg.mask_snow, key=f"pairs-lr-{token}-{spec.gid}"
            )
            ortho = client.submit(
                read_ortho,
                c.ortho,
                c.bounds,
                c.epsg,
                plan.bands,
                margin_m=margin_m,
                key=f"pairs-ortho-{token}-{spec.ortho.id}",
            )
            return client.submit(
                extract_group,
                spec,
                lr,
                ortho,
                cfg=cfg,
                store=store.path,
                key=f"pairs-group-{token}-{spec.gid}",
            )

        done = store.done_groups()
        todo_g = [s for s in specs if s.gid not in done]
        log.info("pairs: %d groups, %d finished before", len(specs), len(specs) - len(todo_g))
        t0 = time.perf_counter()
        with timed("groups", timings):
            waves_g = run_waves(
                client,
                todo_g,
                submit_group,
                label="pairs",
                describe=lambda s: {"group": s.gid},
                **common,
            )
        groups_s = time.perf_counter() - t0
    finally:
        if own:
            close_client(client)
    records = store.done_groups()
    new = [records[s.gid] for s in todo_g if s.gid in records]
    summary = _summary(records, skips.items, store.surveys())
    with timed("consolidate", timings):
        written = store.consolidate(
            chunk_patches=cfg.chunk_patches,
            provenance={
                "builder": "s2scale.pipeline.pairs_run.run_stac_pairs",
                "fingerprint": fingerprint,
                "summary": summary,
            },
        )
    made = sum(int(r["patches"]) for r in new)
    report.update(summary)
    report.update(
        {
            "patches": written["patches"],
            "counts": written["counts"],
            "groups": len(specs),
            "groups_computed": waves_g.finished,
            "groups_reused": len(specs) - len(todo_g),
            "groups_failed": waves_g.failed,
            "surveys_computed": waves_s.finished,
            "surveys_reused": len(plan.candidates) - len(todo_s),
            "surveys_failed": waves_s.failed,
            "retried": waves_s.retried + waves_g.retried,
            "patches_computed": made,
            "pairs_per_s": round(made / groups_s, 3) if groups_s > 0 and made else 0.0,
        }
    )
    report.pop("candidates", None)
    if not written["patches"]:
        log.warning("pairs: no pair was kept; see 'dropped' and 'skipped' in the report")
    return report


def _summary(
    records: dict[str, dict[str, Any]],
    skipped: Sequence[dict[str, Any]],
    surveys: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Drops per reason over all groups, inputs left out, observations rejected."""
    dropped: Counter[str] = Counter()
    for rec in records.values():
        dropped.update(rec.get("dropped", {}))
    rejected: Counter[str] = Counter(
        r["reason"] for s in surveys.values() for r in s.get("read", []) if not r["accepted"]
    )
    return {
        "dropped": {k: dropped[k] for k in ("shift", "ssim", "split_guard")},
        "skipped": _count(skipped),
        "skipped_orthophotos": list(skipped),
        "observations_rejected": {k: rejected[k] for k in ("cloudy", "nodata")},
    }
