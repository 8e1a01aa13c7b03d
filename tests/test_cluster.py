import os
import time

import pytest

from s2scale.cluster import close_client, make_client, resolve_kind
from s2scale.config import ClusterConfig, RunConfig
from s2scale.errors import ConfigError, S2ScaleError


def test_local_cluster_has_processes_and_gpu_slots():
    cfg = ClusterConfig(kind="local", n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = make_client(cfg)
    try:
        info = client.scheduler_info()["workers"]
        assert len(info) == 2
        assert all(w["resources"] == {"GPU": 1} for w in info.values())
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2  # real worker processes
    finally:
        close_client(client)
    # the cluster started for the client is gone with it: no worker process keeps running
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its parent counts as gone
        return f.read().split()[2] != "Z"


def test_auto_picks_local_without_gpu(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setattr("s2scale.cluster.cuda_device_count", lambda: 0)
    assert resolve_kind(ClusterConfig()) == "local"
    monkeypatch.setattr("s2scale.cluster.cuda_device_count", lambda: 2)
    assert resolve_kind(ClusterConfig()) == "local-gpu"
    assert resolve_kind(ClusterConfig(kind="tcp://10.0.0.1:8786")) == "address"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://scheduler:8786")  # as in a DaskJob pod
    assert resolve_kind(ClusterConfig()) == "address"


def test_local_gpu_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("s2scale.cluster.cuda_device_count", lambda: 0)
    with pytest.raises(S2ScaleError, match="no CUDA GPU is visible"):
        make_client(ClusterConfig(kind="local-gpu"))


def test_missing_extras_name_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_extras(name, *args, **kwargs):
        if name.startswith(("dask_cuda", "dask_kubernetes")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_extras)
    monkeypatch.setattr("s2scale.cluster.cuda_device_count", lambda: 1)
    with pytest.raises(ImportError, match=r"s2scale\[gpu\]"):
        make_client(ClusterConfig(kind="local-gpu"))
    with pytest.raises(ImportError, match=r"s2scale\[deploy\]"):
        make_client(ClusterConfig(kind="kubernetes"))


def test_unreachable_scheduler():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(S2ScaleError, match=f"127.0.0.1:{port}"):
        make_client(ClusterConfig(kind=f"tcp://127.0.0.1:{port}", connect_timeout_s=2))


def test_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="'gpu-farm' is unknown"):
        ClusterConfig(kind="gpu-farm")
    path = tmp_path / "run.yaml"
    path.write_text("cluster:\n  kind: local\n  n_wrkers: 3\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['n_wrkers'\] in section 'cluster'"):
        RunConfig.from_yaml(path)
    path.write_text("clustr: {}\n")
    with pytest.raises(ConfigError, match=r"unknown config sections \['clustr'\]"):
        RunConfig.from_yaml(path)
    path.write_text("catalog:\n  max_cloud_cover: 40\ncluster:\n  kind: local\n")
    cfg = RunConfig.from_yaml(path)
    assert cfg.catalog.max_cloud_cover == 40 and cfg.cluster.kind == "local"
