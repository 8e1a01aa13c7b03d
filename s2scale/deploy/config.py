"""What a Kubernetes deployment adds to a run configuration: images, workers, resources, secrets.

:class:`DeployConfig` holds only what the cluster needs beyond :class:`~s2scale.config.RunConfig`
(which stays the single description of *what* is computed). Values are checked when the object
is built, so a typo fails in ``s2scale deploy render`` and not hours later on the cluster.

Sizes are Dask-style byte strings (``"48GiB"``, ``"512MiB"``); each is written to the manifests
twice with the same number of bytes: as a Kubernetes quantity (``48Gi``) for the container and as
the worker's ``--memory-limit`` (``48GiB``), so Dask spills, pauses and restarts a worker before
the kernel's OOM killer would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from s2scale import __version__
from s2scale.errors import ConfigError

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SECRET_KEYS",
    "MAX_NAME_LEN",
    "OBJECT_STORE_SCHEMES",
    "OVERLAYS",
    "RUN_AS_UID",
    "DeployConfig",
    "Toleration",
    "check_store_url",
    "parse_affinity",
    "parse_bytes",
    "parse_node_selector",
    "parse_toleration",
    "quantity",
]

DEFAULT_REPOSITORY = "ghcr.io/s2scale/s2scale"
"""Where the images of ``deploy/Dockerfile`` are published."""
DEFAULT_IMAGE = f"{DEFAULT_REPOSITORY}:{__version__}-cuda"
"""The CUDA image of this release (GPU workers)."""
RUN_AS_UID = 10001
"""User and group id of the ``s2scale`` user in both images; every pod runs as this user."""
OVERLAYS = ("small-aoi", "austria")
"""The kustomize overlays rendered beside the base."""
MAX_NAME_LEN = 53 - max(len(f"-{o}") for o in OVERLAYS)
"""The Dask operator allows 53 characters for a cluster name; overlays append a suffix."""
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
"""fsspec protocols accepted for the job's output (a pod's own disk is deleted with the pod)."""

DEFAULT_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""Keys of the object-store Secret that the job runner checks before any work (S3 stores)."""
DEFAULT_DEADLINE_S = 24 * 3600
"""The job runner's ``activeDeadlineSeconds`` when no plan gives an estimate."""
SMALL_AOI_DEADLINE_S = 2 * 3600
"""At most this long for the ``small-aoi`` smoke test."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_BINARY_UNITS = (("Gi", "GiB", 2**30), ("Mi", "MiB", 2**20), ("Ki", "KiB", 2**10))


def parse_bytes(text: str, what: str) -> int:
    """Bytes of a Dask-style size (``"48GiB"``, ``"8 GB"``); ``what`` names the option in errors.

    Examples
    --------
    >>> parse_bytes("48GiB", "--worker-memory")
    51539607552
    """
    from dask.utils import parse_bytes as dask_parse_bytes

    try:
        n = int(dask_parse_bytes(text))
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{what}={text!r} is not a size; give a number of bytes with a unit such as 48GiB"
        ) from err
    if n <= 0:
        raise ConfigError(f"{what}={text!r} must be a positive size such as 48GiB")
    return n


def quantity(n_bytes: int) -> tuple[str, str]:
    """``(Kubernetes quantity, Dask size)`` spelling the same number of bytes.

    Examples
    --------
    >>> quantity(48 * 2**30)
    ('48Gi', '48GiB')
    >>> quantity(1500)
    ('1500', '1500B')
    """
    for k8s_unit, dask_unit, size in _BINARY_UNITS:
        if n_bytes % size == 0:
            return f"{n_bytes // size}{k8s_unit}", f"{n_bytes // size}{dask_unit}"
    return str(n_bytes), f"{n_bytes}B"


@dataclass(frozen=True)
class Toleration:
    """One Kubernetes toleration of a node taint."""

    key: str
    """Taint key, e.g. ``nvidia.com/gpu``."""
    value: str | None = None
    """Taint value; ``None`` tolerates any value (operator ``Exists``)."""
    effect: str | None = None
    """``NoSchedule``, ``PreferNoSchedule``, ``NoExecute`` or ``None`` (any effect)."""

    def to_json(self) -> dict[str, str]:
        """The toleration as it appears in a pod spec."""
        out = {"key": self.key}
        if self.value is None:
            out["operator"] = "Exists"
        else:
            out |= {"operator": "Equal", "value": self.value}
        if self.effect is not None:
            out["effect"] = self.effect
        return out


def parse_toleration(text: str) -> Toleration:
    """``KEY[=VALUE][:EFFECT]`` as a :class:`Toleration`.

    Examples
    --------
    >>> parse_toleration("nvidia.com/gpu:NoSchedule").to_json()
    {'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}
    >>> parse_toleration("gpu=h100").to_json()
    {'key': 'gpu', 'operator': 'Equal', 'value': 'h100'}
    """
    rest, _, effect = text.partition(":")
    key, eq, value = rest.partition("=")
    hint = "give KEY[=VALUE][:EFFECT], e.g. nvidia.com/gpu:NoSchedule"
    if not _LABEL_KEY.match(key):
        raise ConfigError(f"toleration {text!r}: {key!r} is not a taint key; {hint}")
    if eq and not _LABEL_VALUE.match(value):
        raise ConfigError(f"toleration {text!r}: {value!r} is not a taint value; {hint}")
    if effect and effect not in _EFFECTS:
        raise ConfigError(
            f"toleration {text!r}: effect {effect!r} must be one of {', '.join(_EFFECTS)}; {hint}"
        )
    return Toleration(key=key, value=value if eq else None, effect=effect or None)


def parse_node_selector(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a node-selector pair.

    Examples
    --------
    >>> parse_node_selector("nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
    ('nvidia.com/gpu.product', 'NVIDIA-H100-80GB-HBM3')
    """
    key, eq, value = text.partition("=")
    if not eq or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
        raise ConfigError(
            f"node selector {text!r} is not KEY=VALUE with a label key and value, e.g. "
            "cloud.google.com/gke-accelerator=nvidia-h100-80gb"
        )
    return key, value


def parse_affinity(text: str) -> tuple[str, tuple[str, ...]]:
    """``KEY=VALUE[,VALUE...]``: GPU nodes must carry label ``KEY`` with one of the values.

    Examples
    --------
    >>> parse_affinity("nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,NVIDIA-H200")
    ('nvidia.com/gpu.product', ('NVIDIA-H100-80GB-HBM3', 'NVIDIA-H200'))
    """
    key, eq, values = text.partition("=")
    found = tuple(v for v in values.split(",") if v)
    if (
        not eq
        or not found
        or not _LABEL_KEY.match(key)
        or not all(_LABEL_VALUE.match(v) for v in found)
    ):
        raise ConfigError(
            f"node affinity {text!r} is not KEY=VALUE[,VALUE...] with a label key and values, "
            "e.g. nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,NVIDIA-H200"
        )
    return key, found


def _check_image(image: str, what: str) -> None:
    """An image reference with a version tag or a digest (never implicit or ``latest``)."""
    last = image.rsplit("/", 1)[-1]
    if not image or any(c.isspace() for c in image):
        raise ConfigError(f"{what}={image!r} is not an image reference such as {DEFAULT_IMAGE}")
    if "@sha256:" in last:
        return
    tag = last.partition(":")[2]
    if not tag or tag == "latest":
        raise ConfigError(
            f"{what}={image!r} has no version tag (or uses 'latest'); a job that resumes after a "
            "restart must run the same software each time: give a tag such as "
            f"{DEFAULT_IMAGE} or a digest (@sha256:...)"
        )


def check_store_url(url: str) -> None:
    """The job's output must be an object store URL without credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in OBJECT_STORE_SCHEMES or not parts.netloc:
        raise ConfigError(
            f"store {url!r} is not an object-store URL; the job writes where every pod can: give "
            f"{'|'.join(OBJECT_STORE_SCHEMES)}://BUCKET/PATH.zarr, e.g. s3://my-bucket/austria.zarr"
        )
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"store {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path} carries "
            "credentials or options in its URL; put credentials in the Secret (--secret) and "
            "give the plain URL"
        )
    if parts.path.strip("/") == "":
        raise ConfigError(f"store {url!r} names a bucket but no path; give s3://BUCKET/NAME.zarr")


@dataclass(frozen=True)
class DeployConfig:
    """How one run is laid out on Kubernetes with the Dask operator (see ``deploy/README.md``)."""

    store: str = "s3://s2scale-output/mosaic.zarr"
    """Output Zarr store of the base (object store URL; overlays write beside it)."""
    name: str = "s2scale"
    """Name of the ``DaskJob`` (and so of its Dask cluster); overlays append ``-<overlay>``."""
    namespace: str = "s2scale"
    """Namespace of everything rendered (created with the restricted Pod Security Standard)."""
    image: str = DEFAULT_IMAGE
    """Image of the GPU workers (``deploy/Dockerfile``, target ``cuda``)."""
    cpu_image: str | None = None
    """Image of scheduler, job runner and CPU workers; default: ``image`` with its tag's
    ``-cuda`` suffix replaced by ``-cpu`` (or ``image`` itself when the tag has no such suffix)."""
    gpu_workers: int = 4
    """GPU worker pods of the base and the ``austria`` overlay (one GPU each)."""
    worker_threads: int | None = None
    """Threads per GPU worker; default ``cluster.threads_per_worker`` of the run config."""
    worker_memory: str = "48GiB"
    """Memory of one GPU worker: container limit and Dask ``--memory-limit``."""
    worker_scratch: str = "50GiB"
    """Scratch disk (``emptyDir``) of one worker, its Dask local directory for spilled data."""
    cpu_workers: int = 0
    """CPU-only worker pods for reading, compositing and writing (0: none)."""
    cpu_worker_threads: int = 4
    """Threads per CPU worker."""
    cpu_worker_memory: str = "16GiB"
    """Memory of one CPU worker."""
    scheduler_memory: str = "8GiB"
    """Memory of the scheduler pod."""
    job_memory: str = "8GiB"
    """Memory of the job runner pod (the client that plans and submits the work units)."""
    gpu_node_selector: tuple[tuple[str, str], ...] = ()
    """``(label, value)`` pairs that GPU worker pods' nodes must carry."""
    gpu_tolerations: tuple[Toleration, ...] = ()
    """Taints of the GPU nodes that GPU workers tolerate."""
    secret: str = "s2scale-object-store"
    """Secret whose keys (``AWS_ACCESS_KEY_ID``, ...) become the environment of job and workers."""
    backoff_limit: int = 3
    """Reruns of the job after it failed; each one resumes from the store's run manifest."""
    retry_delay_s: float = 30.0
    """Wait before the first rerun; doubled each time."""
    models_claim: str | None = None
    """PersistentVolumeClaim mounted read-only at ``/models`` (checkpoints, torch backbones)."""
    small_aoi: str = "11.9,47.4,12.1,47.6"
    """AOI of the ``small-aoi`` overlay (a smoke test across the UTM 32/33 boundary)."""
    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
    """Keys the Secret must hold; the job runner checks them before any work and exits with an
    error naming the missing ones (``()``: no check, e.g. with workload identity)."""
    deadline_s: int = DEFAULT_DEADLINE_S
    """``activeDeadlineSeconds`` of the job runner: the whole job, retries included, ends after
    this long and the operator deletes its cluster (:func:`~s2scale.deploy.sizing.job_deadline_s`
    gives one from the plan's estimate). The ``small-aoi`` overlay uses at most 2 h."""
    idle_timeout_s: int = 3600
    """``idleTimeout`` of the Dask cluster: the operator deletes a cluster whose scheduler has had
    no work for this long (longer than the runner waits for workers)."""
    tls: bool | None = None
    """Dask TLS between scheduler, workers and runner, with certificates from ``tls_secret``;
    ``None``: on in the ``austria`` overlay only."""
    tls_secret: str = "s2scale-tls"
    """Secret with ``ca.crt``, ``tls.crt`` and ``tls.key`` (see ``deploy/README.md``)."""
    operator_namespace: str = "dask-operator"
    """Namespace of the Dask operator, allowed to reach the scheduler's dashboard (idle check)."""
    metrics_namespace: str | None = None
    """Namespace of a Prometheus allowed to scrape the dashboards (``None``: this one only)."""
    priority_class: str | None = None
    """``priorityClassName`` of every pod of the job."""
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets for pulling the images from a private registry."""
    gpu_affinity: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``(label, values)``: GPU workers' nodes must carry the label with one of the values."""

    def __post_init__(self) -> None:
        check_store_url(self.store)
        if not _DNS_LABEL.match(self.name) or len(self.name) > MAX_NAME_LEN:
            raise ConfigError(
                f"name {self.name!r} must be a lower-case DNS label (a-z, 0-9, '-') of at most "
                f"{MAX_NAME_LEN} characters (the operator's limit of 53 less the overlay suffix)"
            )
        if not _DNS_LABEL.match(self.namespace) or len(self.namespace) > 63:
            raise ConfigError(f"namespace {self.namespace!r} must be a lower-case DNS label")
        if not _DNS_SUBDOMAIN.match(self.secret) or len(self.secret) > 253:
            raise ConfigError(f"secret {self.secret!r} must be a lower-case DNS name")
        for what, value in (
            ("tls_secret", self.tls_secret),
            ("priority_class", self.priority_class),
            *(("image_pull_secrets", v) for v in self.image_pull_secrets),
        ):
            if value is not None and (not _DNS_SUBDOMAIN.match(value) or len(value) > 253):
                raise ConfigError(f"{what} {value!r} must be a lower-case DNS name")
        for what, value in (
            ("operator_namespace", self.operator_namespace),
            ("metrics_namespace", self.metrics_namespace),
        ):
            if value is not None and (not _DNS_LABEL.match(value) or len(value) > 63):
                raise ConfigError(f"{what} {value!r} must be a lower-case DNS label")
        for key in self.secret_keys:
            if not _ENV_NAME.match(key):
                raise ConfigError(
                    f"secret key {key!r} is not an environment variable name such as "
                    "AWS_ACCESS_KEY_ID"
                )
        for what, n, low in (
            ("deadline_s", self.deadline_s, 60),
            ("idle_timeout_s", self.idle_timeout_s, 60),
        ):
            if n < low:
                raise ConfigError(f"{what}={n} must be at least {low} seconds")
        if self.models_claim is not None and not _DNS_SUBDOMAIN.match(self.models_claim):
            raise ConfigError(f"models_claim {self.models_claim!r} must be a lower-case DNS name")
        _check_image(self.image, "image")
        _check_image(self.resolved_cpu_image, "cpu_image")
        for what, n, low in (
            ("gpu_workers", self.gpu_workers, 1),
            ("cpu_workers", self.cpu_workers, 0),
            ("cpu_worker_threads", self.cpu_worker_threads, 1),
            ("backoff_limit", self.backoff_limit, 0),
        ):
            if n < low:
                raise ConfigError(f"{what}={n} must be at least {low}")
        if self.worker_threads is not None and self.worker_threads < 1:
            raise ConfigError(f"worker_threads={self.worker_threads} must be at least 1")
        if not self.retry_delay_s >= 0:
            raise ConfigError(f"retry_delay_s={self.retry_delay_s} must be >= 0 seconds")
        for what in (
            "worker_memory",
            "worker_scratch",
            "cpu_worker_memory",
            "scheduler_memory",
            "job_memory",
        ):
            parse_bytes(getattr(self, what), what)

    @property
    def resolved_cpu_image(self) -> str:
        """The image of scheduler, job runner and CPU workers."""
        if self.cpu_image is not None:
            return self.cpu_image
        repo, sep, tag = self.image.rpartition(":")
        if sep and "/" not in tag and tag.endswith("-cuda"):
            return f"{repo}:{tag[: -len('-cuda')]}-cpu"
        return self.image
