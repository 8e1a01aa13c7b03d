"""The job runner's command against a TLS scheduler and workers started as processes on loopback,
with the environment the manifests give the pods (TLS variables, Secret check variables)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_procs import NO_FUSE_ENV, ProcessCluster
from test_cluster_job import _config, wait_mid_run
from test_pipeline_upscale import _chunk_bytes, _done

from s2scale.deploy.pods import SECRET_KEYS_ENV, SECRET_NAME_ENV, tls_env

distributed = pytest.importorskip("distributed")


def _certs(folder: Path) -> None:
    """A CA and one key pair it signed: ``ca.crt``, ``tls.crt``, ``tls.key``, as in the README."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject, key, issuer, issuer_key, ca):
        b = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        b = b.public_key(key.public_key()).serial_number(x509.random_serial_number())
        b = b.not_valid_before(now - datetime.timedelta(days=1))
        b = b.not_valid_after(now + datetime.timedelta(days=1))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s2scale-dask-ca")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s2scale-dask")])
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(cert(ca_name, ca_key, ca_name, ca_key, True).public_bytes(pem))
    (folder / "tls.crt").write_bytes(cert(name, key, ca_name, ca_key, False).public_bytes(pem))
    (folder / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    _certs(folder)
    return folder


@pytest.fixture(scope="module")
def cluster(tls_dir):
    import dask

    env = {**NO_FUSE_ENV, **tls_env("scheduler", str(tls_dir)), **tls_env("worker", str(tls_dir))}
    workers = [{"name": "gpu", "resources": {"GPU": 1}}, {"name": "io"}]
    # the test process is a client of the TLS scheduler too (ProcessCluster's own checks)
    client_cfg = {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": str(tls_dir / "ca.crt"),
        "distributed.comm.tls.client.cert": str(tls_dir / "tls.crt"),
        "distributed.comm.tls.client.key": str(tls_dir / "tls.key"),
    }
    with dask.config.set(client_cfg), ProcessCluster(workers=workers, env=env) as procs:
        yield procs


def _runner_cmd(cluster, tls_dir, config: Path, store: Path, **env: str) -> tuple[list, dict]:
    """``s2scale deploy retry -- s2scale upscale ... --cluster auto`` and the runner pod's env."""
    full = {
        **os.environ,
        **tls_env("client", str(tls_dir)),
        "DASK_SCHEDULER_ADDRESS": cluster.address,
        SECRET_NAME_ENV: "s2scale-object-store",
        SECRET_KEYS_ENV: "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID": "test-key-id",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        **env,
    }
    full = {k: v for k, v in full.items() if v != ""}
    s2 = [sys.executable, "-m", "s2scale.cli"]
    cmd = [*s2, "deploy", "retry", "--attempts=2", "--delay-s=1", "--",
           *s2, "upscale", f"--config={config}", f"--out={store}", "--cluster=auto"]  # fmt: skip
    return cmd, full


def _runner(cluster, tls_dir, config: Path, store: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the runner's command to its end."""
    cmd, full = _runner_cmd(cluster, tls_dir, config, store, **env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=full)


def test_the_scheduler_speaks_only_tls(cluster):
    assert cluster.address.startswith("tls://")
    plain = cluster.address.replace("tls://", "tcp://")
    with pytest.raises((OSError, TimeoutError, RuntimeError)):
        import dask

        with dask.config.set({"distributed.comm.require-encryption": False}):
            distributed.Client(plain, timeout="3s", set_as_default=False)


def test_a_missing_credential_stops_the_runner_before_any_pixel(
    cluster, tls_dir, sample, tiny_ckpt, tmp_path
):
    store = tmp_path / "mosaic.zarr"
    out = _runner(cluster, tls_dir, _config(tmp_path, sample, tiny_ckpt), store,
                  AWS_SECRET_ACCESS_KEY="")  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "lacks AWS_SECRET_ACCESS_KEY" in out.stderr and "s2scale-object-store" in out.stderr
    assert "test-key-id" not in out.stderr + out.stdout
    assert not store.exists()


@pytest.fixture(scope="module")
def tls_reference(cluster, tls_dir, sample, tiny_ckpt, tmp_path_factory):
    """An undisturbed runner over TLS: its report and the chunk bytes of its mosaic."""
    tmp = tmp_path_factory.mktemp("tls-ref")
    store = tmp / "mosaic.zarr"
    out = _runner(cluster, tls_dir, _config(tmp, sample, tiny_ckpt), store)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), _chunk_bytes(store)


def test_the_runner_completes_over_tls_and_model_tasks_stay_on_the_gpu_worker(
    cluster, tls_reference
):
    from s2scale.infer import forward_count

    report, _ = tls_reference
    assert report["regions_failed"] == []
    # a failed attempt rerun by `deploy retry` resumes: computed + reused make the whole
    assert report["regions_computed"] + report["regions_reused"] == report["units"]
    with distributed.Client(cluster.address, timeout="20s", set_as_default=False) as client:
        counts = client.run(forward_count)
        workers = client.scheduler_info(n_workers=-1)["workers"]
    by_name = {str(w["name"]): counts[addr] for addr, w in workers.items()}
    assert by_name["gpu"] > 0 and by_name["io"] == 0


def test_a_killed_runner_and_a_killed_gpu_worker_resume_to_identical_bytes(
    cluster, tls_dir, tls_reference, sample, tiny_ckpt, tmp_path
):
    """The runner pod and the GPU worker die mid-run; a new runner resumes over TLS."""
    _, expected = tls_reference
    store = tmp_path / "mosaic.zarr"
    config = _config(tmp_path, sample, tiny_ckpt)
    cmd, env = _runner_cmd(cluster, tls_dir, config, store)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        done_at_kill = wait_mid_run(proc, store)
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its upscale child, as on eviction
        proc.wait(timeout=30)
        cluster.kill_worker("gpu")
        cluster.start_worker({"name": f"gpu-{time.monotonic_ns()}", "resources": {"GPU": 1}})
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _done(store) < 9
    out = _runner(cluster, tls_dir, config, store)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["regions_failed"] == [] and report["regions_reused"] >= done_at_kill
    assert report["regions_computed"] + report["regions_reused"] == report["units"] == 9
    assert _chunk_bytes(store) == expected
