"""The GPU workers' start-up check: clear errors on this CPU-only machine, and a real worker
process with the preload that exits instead of running the model on its CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from cluster_procs import REPO_ROOT, ProcessCluster

from s2scale.deploy import gpucheck
from s2scale.errors import ClusterError


def _fake_gpu(monkeypatch, capability=(9, 0), arch=("sm_80", "sm_90")):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)


def test_no_cuda_device_is_an_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ClusterError, match="no usable CUDA device") as info:
        gpucheck.check_cuda()
    assert "nvidia.com/gpu" in str(info.value) and "driver" in str(info.value)


def test_a_cpu_build_of_torch_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ClusterError, match="CPU build"):
        gpucheck.check_cuda()


def test_a_gpu_without_kernels_in_the_build_is_an_error(monkeypatch):
    _fake_gpu(monkeypatch, capability=(6, 0))
    with pytest.raises(ClusterError, match=r"compute capability 6\.0"):
        gpucheck.check_cuda()


def test_a_failing_test_convolution_is_an_error(monkeypatch):
    _fake_gpu(monkeypatch)

    def broken(self, *a, **k):
        raise RuntimeError("CUDA error: no kernel image is available for execution")

    monkeypatch.setattr(torch.Tensor, "cuda", broken)
    with pytest.raises(ClusterError, match="test convolution on NVIDIA H100 failed"):
        gpucheck.check_cuda()


def test_a_usable_gpu_passes_and_the_versions_are_logged(monkeypatch, caplog):
    _fake_gpu(monkeypatch)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    found = gpucheck.check_cuda()
    assert found["device"] == "NVIDIA H100" and found["capability"] == "9.0"
    assert found["torch"] == torch.__version__ and found["cuda"] == "13.0"
    monkeypatch.setattr(gpucheck, "check_cuda", lambda: found)
    with caplog.at_level("INFO", logger="distributed.worker"):
        gpucheck.dask_setup(type("W", (), {"name": "gpu-0"})())
    assert "torch" in caplog.text and "CUDA build 13.0" in caplog.text


def test_a_worker_with_the_preload_exits_on_a_machine_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    with ProcessCluster(workers=[]) as cluster:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                cluster.address,
                "--preload=s2scale.deploy.gpucheck",
                "--resources=GPU=1",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
            env=cluster.env,
        )
        assert out.returncode != 0
        assert "GPU worker: torch" in out.stderr and "no usable CUDA device" in out.stderr
        assert cluster.scheduler_workers() == {}
