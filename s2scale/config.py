"""Typed, frozen run configuration; one YAML section per stage.

Example ``run.yaml``::

    catalog:
      stac: https://earth-search.aws.element84.com/v1
      aoi: austria
      datetime: 2024-06-01/2024-08-31
      max_cloud_cover: 60
    cube:
      chunk_px: 1024

Unknown sections or keys are rejected by name. Credentials never go here: they come from the
environment (e.g. ``AWS_*``), read by the libraries that need them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2scale.errors import ConfigError

__all__ = [
    "CLUSTER_KINDS",
    "CatalogConfig",
    "ClusterConfig",
    "CubeConfig",
    "InferConfig",
    "MosaicConfig",
    "RunConfig",
    "diff_entries",
]

CLUSTER_KINDS = ("auto", "local", "local-gpu", "address", "kubernetes")


@dataclass(frozen=True)
class CatalogConfig:
    """Where and what to search."""

    stac: str = ""
    """STAC API URL or local catalog path."""
    aoi: str = "austria"
    """``austria``, a GeoJSON path, WKT or ``minx,miny,maxx,maxy`` in degrees."""
    datetime: str = "2024-06-01/2024-08-31"
    """``START/END`` interval."""
    max_cloud_cover: float | None = None
    """Keep scenes with at most this ``eo:cloud_cover`` (percent)."""
    collection: str = "sentinel-2-l2a"
    """STAC collection id."""
    skip_errors: bool = False
    """Skip (and count) malformed items and unreadable assets instead of failing."""

    def __post_init__(self) -> None:
        if self.max_cloud_cover is not None and not 0 <= self.max_cloud_cover <= 100:
            raise ConfigError(
                f"catalog.max_cloud_cover={self.max_cloud_cover} must be a percentage in 0..100"
            )


@dataclass(frozen=True)
class CubeConfig:
    """How scenes become cubes and composites."""

    chunk_px: int = 1024
    """Spatial chunk edge of the 10 m cubes, in pixels."""
    mask_snow: bool = False
    """Also mask SCL class 11 (snow/ice)."""
    time_chunk: int = 8
    """Scenes read one after another by one task (stackstac's time chunk)."""

    def __post_init__(self) -> None:
        if not 16 <= self.chunk_px <= 16384:
            raise ConfigError(f"cube.chunk_px={self.chunk_px} must be within 16..16384")
        if not 1 <= self.time_chunk <= 1024:
            raise ConfigError(f"cube.time_chunk={self.time_chunk} must be within 1..1024")


@dataclass(frozen=True)
class ClusterConfig:
    """Which Dask cluster to run on."""

    kind: str = "auto"
    """``auto``, ``local``, ``local-gpu``, ``kubernetes``, or a scheduler address."""
    n_workers: int | None = None
    """Workers of a local cluster (default: 1 per GPU, or half the cores for ``local``)."""
    threads_per_worker: int = 2
    """Threads per worker: one runs the model, the others read and write."""
    memory_limit: str = "auto"
    """Memory limit per worker (``"auto"`` splits the machine's memory)."""
    connect_timeout_s: float = 20.0
    """How long to wait for a remote scheduler (``address``)."""
    dashboard_address: str = ":0"
    """Dashboard address of local clusters; ``":0"`` picks a free port."""
    k8s_name: str = "s2scale"
    """Name of the DaskCluster resource (``kubernetes``)."""
    k8s_namespace: str | None = None
    """Kubernetes namespace (default: the current one)."""
    k8s_image: str = "ghcr.io/s2scale/s2scale:latest"
    """Container image of scheduler and workers (``kubernetes``)."""
    k8s_gpus_per_worker: int = 1
    """``nvidia.com/gpu`` limit per worker pod (``kubernetes``)."""
    k8s_priority_class: str | None = None
    """``priorityClassName`` of the job's pods (``s2scale deploy render``; its
    ``--priority-class`` overrides it)."""
    k8s_image_pull_secrets: tuple[str, ...] = ()
    """Secrets to pull the images with (``deploy render``; ``--image-pull-secret`` overrides)."""
    k8s_gpu_node_selector: tuple[str, ...] = ()
    """``KEY=VALUE`` node labels GPU workers must have (``deploy render``;
    ``--gpu-node-selector`` overrides)."""
    k8s_gpu_affinity: tuple[str, ...] = ()
    """``KEY=VALUE[,VALUE...]`` required node affinity of GPU workers, e.g.
    ``nvidia.com/gpu.product=NVIDIA-H200`` (``deploy render``; ``--gpu-affinity`` overrides)."""
    units_in_flight: int | None = None
    """Work units whose graphs are on the cluster at once (default: 2 per GPU worker)."""
    unit_retries: int = 2
    """Times a unit is resubmitted after its worker died, before the run fails."""
    lost_timeout_s: float = 120.0
    """How long a run waits with no workers (or no scheduler) before it fails."""

    def __post_init__(self) -> None:
        for name in ("k8s_image_pull_secrets", "k8s_gpu_node_selector", "k8s_gpu_affinity"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if self.kind not in CLUSTER_KINDS and "://" not in self.kind:
            raise ConfigError(
                f"cluster kind {self.kind!r} is unknown; choose one of "
                f"{', '.join(CLUSTER_KINDS)} or a scheduler address such as tcp://scheduler:8786"
            )
        if self.n_workers is not None and self.n_workers < 1:
            raise ConfigError(f"n_workers={self.n_workers} must be at least 1")
        if self.threads_per_worker < 1:
            raise ConfigError(f"threads_per_worker={self.threads_per_worker} must be at least 1")
        if self.units_in_flight is not None and self.units_in_flight < 1:
            raise ConfigError(f"units_in_flight={self.units_in_flight} must be at least 1")
        if self.unit_retries < 0:
            raise ConfigError(f"unit_retries={self.unit_retries} must be >= 0")
        if not self.lost_timeout_s > 0:
            raise ConfigError(f"lost_timeout_s={self.lost_timeout_s} must be > 0 seconds")


@dataclass(frozen=True)
class InferConfig:
    """How the super-resolution model runs over the composites."""

    model: str = "srresnet"
    """Registry name of a shipped generator (``srresnet``, ``realesrgan``) or a checkpoint path."""
    halo_px: int | None = None
    """Context per chunk side in 10 m pixels; default derived from the model's receptive field."""
    tile_px: int | None = None
    """Largest sub-tile edge in 10 m pixels; None: the device's default
    (``s2scale.infer.tiling.TILE_PX``: 1536 on CUDA, 320 on the CPU; 576 for Real-ESRGAN on
    the CPU, ``CPU_TILE_PX``)."""
    batch_size: int | None = None
    """Sub-tiles per forward pass; None: the device's default
    (``s2scale.infer.tiling.BATCH_SIZE``: 8 on CUDA, 1 on the CPU)."""
    device: str = "auto"
    """``auto`` (the worker's GPU when there is one), ``cuda`` or ``cpu``."""
    dtype: str = "auto"
    """Autocast dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``bfloat16``, ``float16``."""
    compile: bool = False
    """Compile the model with torch.compile on first use in each worker."""
    random_weights: bool = False
    """Use an untrained network (benchmarks only); recorded in every output."""
    consistency: bool = True
    """Project the output so that, degraded by the nominal Sentinel-2 PSF, it reproduces the 10 m
    input (keeps the mean reflectance per band and 10 m neighbourhood);
    :mod:`s2scale.infer.consistency`."""
    consistency_lowpass_px: float | None = None
    """Strength of the projection: Gaussian low-pass (sigma, 10 m px) of its residual, 0 = full
    projection; None: the package default (``CONSISTENCY_LOWPASS_PX``)."""
    fill_nodata: bool = True
    """Fill no-data holes (clouds, swath edges) before the network and mask them again after, so
    valid pixels next to holes are not darkened; :mod:`s2scale.infer.nodata`."""

    def __post_init__(self) -> None:
        if self.halo_px is not None and self.halo_px < 0:
            raise ConfigError(f"infer.halo_px={self.halo_px} must be >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"infer.batch_size={self.batch_size} must be >= 1")
        if self.consistency_lowpass_px is not None and not self.consistency_lowpass_px >= 0:
            raise ConfigError(
                f"infer.consistency_lowpass_px={self.consistency_lowpass_px} must be >= 0 "
                "(10 m px; 0: full projection)"
            )


@dataclass(frozen=True)
class MosaicConfig:
    """The national output grid and how zone results are blended onto it."""

    crs: str = "EPSG:3035"
    """CRS of the national grid (a UTM CRS nests the 5 m pixels exactly)."""
    resolution_m: float = 5.0
    """Output pixel size."""
    chunk_px: int = 2048
    """Edge of one output region (written independently, Zarr chunk size); multiple of 256."""
    feather_px: int = 64
    """Width of the distance-based feathering in tile and zone overlaps, in output pixels."""
    resampling: str = "cubic"
    """Resampling onto the national grid: ``cubic`` (default), ``lanczos``, ``bilinear`` or
    ``nearest``. On real Sentinel-2 SR output cubic loses 0.07 dB and keeps 91 % of the
    high-frequency energy (bilinear 0.72 dB, 73 %; lanczos 0.00 dB, 99 % at a third of cubic's
    warp speed); benchmarks/bench_resampling.py."""
    cog: bool = True
    """Also export a Cloud-Optimised GeoTIFF (with a STAC item) of the mosaic."""

    def __post_init__(self) -> None:
        if self.chunk_px < 256 or self.chunk_px % 256:
            raise ConfigError(f"mosaic.chunk_px={self.chunk_px} must be a multiple of 256")
        if self.feather_px < 0:
            raise ConfigError(f"mosaic.feather_px={self.feather_px} must be >= 0")
        if self.resampling not in ("cubic", "lanczos", "bilinear", "nearest"):
            raise ConfigError(
                f"mosaic.resampling={self.resampling!r}; choose cubic, lanczos, bilinear or nearest"
            )


@dataclass(frozen=True)
class RunConfig:
    """All stage configs of one run."""

    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    """STAC search."""
    cube: CubeConfig = field(default_factory=CubeConfig)
    """Cube loading and compositing."""
    infer: InferConfig = field(default_factory=InferConfig)
    """Super-resolution inference."""
    mosaic: MosaicConfig = field(default_factory=MosaicConfig)
    """National mosaic."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The Dask cluster."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from nested dicts, rejecting unknown sections and keys by name."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"unknown config sections {unknown}; known: {sorted(sections)}")
        kwargs = {}
        for name, value in data.items():
            sub_cls = _SECTION_TYPES[name]
            keys = {f.name for f in dataclasses.fields(sub_cls)}
            bad = sorted(set(value or {}) - keys)
            if bad:
                raise ConfigError(f"unknown keys {bad} in section {name!r}; known: {sorted(keys)}")
            kwargs[name] = sub_cls(**(value or {}))
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a YAML run configuration."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {str(path)!r}: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config {str(path)!r} must be a mapping of sections")
        return cls.from_dict(data)

    def replace(self, section: str, **changes: Any) -> RunConfig:
        """A copy with some keys of one section changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)}
        )


_SECTION_TYPES: dict[str, type] = {
    "catalog": CatalogConfig,
    "cube": CubeConfig,
    "infer": InferConfig,
    "mosaic": MosaicConfig,
    "cluster": ClusterConfig,
}


def diff_entries(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Entries of two nested dicts (run manifests) that differ, as ``key.subkey: old -> new``.

    Examples
    --------
    >>> diff_entries({"a": 1, "f": {"dtype": "float32"}}, {"a": 1, "f": {"dtype": "bfloat16"}})
    ["f.dtype: 'float32' -> 'bfloat16'"]
    """
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_entries(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
