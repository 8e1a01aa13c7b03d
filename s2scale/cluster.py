"""Build or connect a Dask client; nothing else.

Kinds
-----
``local``
    :class:`distributed.LocalCluster` with worker *processes*. Every worker advertises one
    ``GPU`` resource: it is the accelerator slot that model tasks ask for (see
    :mod:`s2scale.infer`), so on CPU-only machines each worker runs one model task at a time
    while its other threads read, decode and write.
``local-gpu``
    :class:`dask_cuda.LocalCUDACluster`: one worker per visible GPU, each pinned to its GPU
    through ``CUDA_VISIBLE_DEVICES`` and advertising ``GPU=1``, with several threads so that
    reading and writing overlap with GPU compute. Needs ``pip install 's2scale[gpu]'``.
``address``
    Connect to a running scheduler (``tcp://host:8786``); workers must have been started with
    ``--resources GPU=1``.
``kubernetes``
    A Dask cluster from the dask-kubernetes operator (``KubeCluster``). Needs
    ``pip install 's2scale[deploy]'`` and a cluster with the operator installed; see ``deploy/``.
``auto``
    The scheduler in ``DASK_SCHEDULER_ADDRESS`` when set (the Dask operator sets it in a
    DaskJob's job pod), else ``local-gpu`` when CUDA GPUs are visible, else ``local``.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from s2scale.config import ClusterConfig
from s2scale.errors import S2ScaleError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterConfig", "close_client", "cuda_device_count", "make_client", "resolve_kind"]

log = logging.getLogger(__name__)

_STARTED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""Clients of :func:`make_client` -> the cluster object it started for them (local, local-gpu,
kubernetes). ``Client(cluster).close()`` leaves such a cluster running; :func:`close_client`
closes both."""


def _own(cluster: Any) -> Client:
    """A client of ``cluster``, recorded so that :func:`close_client` also closes the cluster."""
    from distributed import Client

    client = Client(cluster)
    _STARTED[client] = cluster
    return client


def close_client(client: Any) -> None:
    """Close a client of :func:`make_client` and the cluster it started (none for an address).

    A client connected to a running scheduler (``kind`` an address) is only disconnected: the
    scheduler and its workers belong to someone else.
    """
    cluster = _STARTED.pop(client, None)
    client.close()
    if cluster is not None:
        cluster.close()


def cuda_device_count() -> int:
    """Number of CUDA GPUs visible to this process (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_kind(cfg: ClusterConfig) -> str:
    """The concrete kind: ``auto`` becomes ``address``, ``local-gpu`` or ``local``."""
    if "://" in cfg.kind:
        return "address"
    if cfg.kind == "auto" and os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return "address"
    if cfg.kind == "auto":
        return "local-gpu" if cuda_device_count() > 0 else "local"
    return cfg.kind


def make_client(cfg: ClusterConfig | None = None) -> Client:
    """Start (or connect to) the cluster of ``cfg`` and return a client.

    The caller owns the client: close it with :func:`close_client`, which also closes a cluster
    started here (``client.close()`` alone leaves a local cluster's workers running).

    Raises
    ------
    S2ScaleError
        ``local-gpu`` without a visible CUDA GPU, or a scheduler that cannot be reached.
    ImportError
        When the extra that a kind needs is not installed (the message names it).
    """
    from distributed import Client, LocalCluster

    cfg = cfg or ClusterConfig()
    kind = resolve_kind(cfg)
    if kind == "local":
        n = cfg.n_workers or max(1, (os.cpu_count() or 2) // cfg.threads_per_worker)
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=cfg.threads_per_worker,
            processes=True,
            memory_limit=cfg.memory_limit,
            resources={"GPU": 1},
            dashboard_address=cfg.dashboard_address,
        )
        client = _own(cluster)
    elif kind == "local-gpu":
        client = _local_gpu_client(cfg)
    elif kind == "address":
        address = cfg.kind if "://" in cfg.kind else os.environ["DASK_SCHEDULER_ADDRESS"]
        try:
            client = Client(address, timeout=f"{cfg.connect_timeout_s}s")
        except OSError as err:
            raise S2ScaleError(
                f"cannot reach the Dask scheduler at {address}: {err}; check the address and "
                "that the scheduler is running"
            ) from err
    else:
        client = _kubernetes_client(cfg)
    log.info("cluster %s: %s (dashboard %s)", kind, client, client.dashboard_link)
    return client


def _local_gpu_client(cfg: ClusterConfig) -> Client:
    """One dask-cuda worker per GPU, each with a GPU resource."""
    n_gpus = cuda_device_count()
    if n_gpus == 0:
        raise S2ScaleError(
            "cluster 'local-gpu' was asked for but no CUDA GPU is visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); use "
            "--cluster local on CPU machines"
        )
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as err:
        raise ImportError(
            "cluster 'local-gpu' needs dask-cuda: pip install 's2scale[gpu]'"
        ) from err

    kwargs: dict[str, Any] = {
        "threads_per_worker": cfg.threads_per_worker,
        "resources": {"GPU": 1},
        "memory_limit": cfg.memory_limit,
        "dashboard_address": cfg.dashboard_address,
    }
    if cfg.n_workers is not None:
        kwargs["CUDA_VISIBLE_DEVICES"] = list(range(min(cfg.n_workers, n_gpus)))
    return _own(LocalCUDACluster(**kwargs))


def _kubernetes_client(cfg: ClusterConfig) -> Client:
    """A cluster from the dask-kubernetes operator."""
    try:
        from dask_kubernetes.operator import KubeCluster, make_cluster_spec
    except ImportError as err:
        raise ImportError(
            "cluster 'kubernetes' needs dask-kubernetes: pip install 's2scale[deploy]'"
        ) from err

    spec = make_cluster_spec(
        name=cfg.k8s_name,
        image=cfg.k8s_image,
        n_workers=cfg.n_workers or 1,
        resources={"limits": {"nvidia.com/gpu": str(cfg.k8s_gpus_per_worker)}},
        worker_command=[
            "dask",
            "worker",
            "--resources",
            "GPU=1",
            "--nthreads",
            str(cfg.threads_per_worker),
        ],
    )
    # The limits above apply to scheduler and workers alike; the scheduler needs no GPU.
    spec["spec"]["scheduler"]["spec"]["containers"][0]["resources"] = {}
    cluster = KubeCluster(custom_cluster_spec=spec, namespace=cfg.k8s_namespace)
    return _own(cluster)
