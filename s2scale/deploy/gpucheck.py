"""Fail a GPU worker at start when its CUDA is unusable, instead of running the model on its CPU.

A GPU worker whose CUDA cannot be used (the node's driver older than the image's CUDA build, a
broken device plugin, no GPU assigned) would otherwise resolve ``device: auto`` to the CPU and
hold its GPU for days at CPU speed. The rendered GPU workers run ``dask cuda worker
--preload=s2scale.deploy.gpucheck``: Dask calls :func:`dask_setup` before the worker registers,
and an error there ends the worker process with the message of :func:`check_cuda`, so the pod
fails at once (``kubectl logs`` shows why) and the run config's ``infer.device: cuda`` is never
met by a CPU.

:func:`check_cuda` checks, in order: torch sees a CUDA device; the device's compute capability
is one this torch build has kernels for; a tiny convolution on the GPU equals the same one on the
CPU. It logs torch's version, its CUDA build and the driver's version once.
"""

from __future__ import annotations

import logging
from typing import Any

from s2scale.errors import ClusterError

__all__ = ["check_cuda", "cuda_versions", "dask_setup"]

log = logging.getLogger(__name__)

FIX = (
    "check that the pod got a GPU (resources nvidia.com/gpu, the NVIDIA device plugin on the "
    "node) and that the node's driver supports the image's CUDA build (deploy/Dockerfile, "
    "deploy/constraints-cuda.txt; `nvidia-smi` on the node shows the highest CUDA it supports)"
)
"""What to look at, appended to every error."""


def _driver_version() -> str:
    """The NVIDIA driver's version from NVML (``unknown`` without pynvml or a driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # only informative: any NVML failure reads as unknown
        return "unknown"
    return version.decode() if isinstance(version, bytes) else str(version)


def cuda_versions() -> dict[str, Any]:
    """``torch``, ``cuda`` (torch's CUDA build, ``None`` for a CPU build) and ``driver``.

    Examples
    --------
    >>> sorted(cuda_versions())
    ['cuda', 'driver', 'torch']
    """
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda, "driver": _driver_version()}


def _arch_ok(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a build with ``arch_list`` (``sm_80``, ``compute_90``) runs on ``capability``.

    Examples
    --------
    >>> _arch_ok((8, 6), ["sm_75", "sm_80", "sm_86"])
    True
    >>> _arch_ok((6, 1), ["sm_75", "sm_80"])
    False
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit():
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True  # binary compatible within a major version
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True  # PTX, compiled for the device at load time
    return False


def check_cuda() -> dict[str, Any]:
    """Check that this process can run the model on its CUDA GPU; return the versions.

    Returns
    -------
    dict
        :func:`cuda_versions` plus ``device`` (the GPU's name) and ``capability`` (``"9.0"``).

    Raises
    ------
    ClusterError
        No usable CUDA device, a device this torch build has no kernels for, or a forward pass
        on the GPU that fails or differs from the CPU's; the message names the versions and the
        fix.
    """
    import torch

    versions = cuda_versions()
    where = (
        f"torch {versions['torch']} (CUDA build {versions['cuda']}), driver {versions['driver']}"
    )
    if versions["cuda"] is None:
        raise ClusterError(
            f"GPU worker: {where}: this torch is a CPU build; the GPU workers need the cuda "
            f"image (deploy/Dockerfile --target cuda); {FIX}"
        )
    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        raise ClusterError(
            f"GPU worker: {where}: torch sees no usable CUDA device "
            f"(torch.cuda.is_available() is False); the model would run on the CPU; {FIX}"
        )
    index = torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    capability = tuple(torch.cuda.get_device_capability(index))
    arch_list = list(torch.cuda.get_arch_list())
    if not _arch_ok(capability, arch_list):  # type: ignore[arg-type]
        raise ClusterError(
            f"GPU worker: {where}: {name} has compute capability "
            f"{capability[0]}.{capability[1]}, which this torch build has no kernels for "
            f"({', '.join(arch_list)}); run the GPU workers on newer GPUs or build the image "
            "with a torch that supports this one"
        )
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((1, 4, 16, 16), generator=gen)
        w = torch.rand((4, 4, 3, 3), generator=gen)
        want = torch.nn.functional.conv2d(x, w, padding=1)
        got = torch.nn.functional.conv2d(x.cuda(), w.cuda(), padding=1).cpu()
        torch.cuda.synchronize()
    except RuntimeError as err:
        raise ClusterError(
            f"GPU worker: {where}: a test convolution on {name} failed ({err}); {FIX}"
        ) from err
    # TF32 convolutions on Ampere and later differ from the CPU by ~1e-3 relative
    if not torch.allclose(got, want, rtol=1e-2, atol=1e-2):
        raise ClusterError(
            f"GPU worker: {where}: a test convolution on {name} differs from the CPU's "
            f"(max abs diff {float((got - want).abs().max()):.3g}); {FIX}"
        )
    return {**versions, "device": name, "capability": f"{capability[0]}.{capability[1]}"}


def dask_setup(worker: Any) -> None:
    """Dask preload hook (``dask cuda worker --preload=s2scale.deploy.gpucheck``).

    Runs :func:`check_cuda` before the worker registers with the scheduler and logs the versions
    once; an error ends the worker with its message.
    """
    try:
        found = check_cuda()
    except ClusterError as err:
        # Dask logs and ignores an Exception from a preload and starts the worker anyway (checked
        # with distributed 2026.8.0); SystemExit is not an Exception, so it ends the worker process,
        # and then `dask cuda worker` and the pod, with the message.
        log.critical("%s", err)
        raise SystemExit(f"s2scale: {err}") from err
    # the worker's own logger: Dask has given it a handler, so the line lands in the pod's log
    logging.getLogger("distributed.worker").info(
        "GPU worker %s: torch %s, CUDA build %s, driver %s, %s (capability %s)",
        getattr(worker, "name", "?"),
        found["torch"],
        found["cuda"],
        found["driver"],
        found["device"],
        found["capability"],
    )
