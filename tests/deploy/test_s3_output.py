"""Output to an S3-compatible object store (moto's server on 127.0.0.1), as the Kubernetes job
writes it: credentials from the environment only, the client killed mid-run and rerun, the same
bytes as a local run, and no credential in logs, reports, store metadata or STAC items."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_pipeline_upscale import SUMMER, _chunk_bytes

AOI = "11.98,47.475,12.02,47.505"  # inside the sample, across 12° E: 9 units of 256 px
BUCKET = "s2scale-test"


def _config(tmp_path: Path, sample, ckpt, *, cog: bool) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"catalog: {{stac: '{sample.catalog}', aoi: '{AOI}', datetime: '{SUMMER}'}}\n"
        "cube: {chunk_px: 256}\n"
        f"infer: {{model: '{ckpt}', consistency: false, fill_nodata: false}}\n"
        f"mosaic: {{chunk_px: 256, cog: {str(cog).lower()}}}\n"
        "cluster: {kind: local, n_workers: 2, threads_per_worker: 1, units_in_flight: 1}\n"
    )
    return path


def _upscale(config: Path, out: str, *verbosity: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "s2scale.cli",
        *verbosity,
        "upscale",
        "--config",
        str(config),
        "--out",
        out,
    ]


def _env(server) -> dict[str, str]:
    return {**os.environ, **server.env()}


def _fs(server):
    import s3fs

    return s3fs.S3FileSystem(
        key=server.access_key_id,
        secret=server.secret_access_key,
        token=server.session_token,
        endpoint_url=server.endpoint_url,
        client_kwargs={"region_name": server.region},
        skip_instance_cache=True,
    )


def _s3_done(fs, root: str) -> int:
    """Regions marked done in the store at ``root`` (bucket/path), read chunk by chunk."""
    found = fs.find(f"{root}/_s2scale/done/c") if fs.exists(f"{root}/_s2scale/done/c") else []
    return len(found)


def _s3_chunks(fs, root: str) -> dict[str, bytes]:
    base = f"{root}/reflectance/"
    return {p[len(base) :]: fs.cat_file(p) for p in fs.find(base)}


def _assert_no_secret(server, where: str, text: str) -> None:
    for value in server.secrets:
        assert value not in text, f"a credential appears in {where}"


@pytest.fixture(scope="module")
def local_run(sample, tiny_ckpt, s3_server, tmp_path_factory):
    """An undisturbed run to a local store (COG + STAC), with the credentials in the env."""
    tmp = tmp_path_factory.mktemp("local")
    store = tmp / "mosaic.zarr"
    out = subprocess.run(
        _upscale(_config(tmp, sample, tiny_ckpt, cog=True), str(store), "-v"),
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(s3_server),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return {"store": store, "report": out.stdout, "log": out.stderr, "chunks": _chunk_bytes(store)}


@pytest.fixture(scope="module")
def s3_run(sample, tiny_ckpt, s3_server, local_run, tmp_path_factory):
    """A run to s3:// whose client (and local cluster) is SIGKILLed mid-run, then rerun."""
    tmp = tmp_path_factory.mktemp("s3")
    root = f"{BUCKET}/{uuid.uuid4().hex[:8]}/mosaic.zarr"
    cmd = _upscale(_config(tmp, sample, tiny_ckpt, cog=True), f"s3://{root}", "-v")
    fs = _fs(s3_server)
    killed_log = tmp / "killed.log"
    with killed_log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(s3_server), start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        while _s3_done(fs, root) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster die at once
        proc.wait()
    done_before = _s3_done(fs, root)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(s3_server))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return {
        "root": root,
        "fs": fs,
        "done_before": done_before,
        "killed_rc": proc.returncode,
        "killed_log": killed_log.read_text(),
        "report": rerun.stdout,
        "log": rerun.stderr,
        "tmp": tmp,
        "cmd": cmd,
    }


def test_a_killed_run_to_s3_resumes_to_the_same_bytes(s3_run, local_run):
    r = s3_run
    assert r["killed_rc"] == -signal.SIGKILL, r["killed_log"][-2000:]
    assert 2 <= r["done_before"] < 9, r["killed_log"][-2000:]
    report = json.loads(r["report"])
    assert report["out"] == f"s3://{r['root']}"
    assert report["regions_reused"] == r["done_before"]
    assert report["regions_computed"] == 9 - r["done_before"]
    assert _s3_done(r["fs"], r["root"]) == 9
    assert _s3_chunks(r["fs"], r["root"]) == local_run["chunks"]
    assert "cog" not in report  # COG and STAC are written next to local stores only


def test_no_credential_in_logs_reports_store_metadata_or_stac(s3_run, local_run, s3_server):
    r = s3_run
    for where, text in [
        ("the killed run's log", r["killed_log"]),
        ("the rerun's log", r["log"]),
        ("the rerun's report", r["report"]),
        ("the local run's log", local_run["log"]),
        ("the local run's report", local_run["report"]),
    ]:
        _assert_no_secret(s3_server, where, text)
    assert "upscale" in r["log"] or "dashboard" in r["log"]  # the logs are not empty
    fs = r["fs"]
    metadata = [p for p in fs.find(r["root"]) if p.endswith("zarr.json")]
    assert f"{r['root']}/_s2scale/zarr.json" in metadata  # the run manifest (zarr attrs)
    for path in metadata:
        _assert_no_secret(s3_server, f"s3://{path}", fs.cat_file(path).decode())
    local = local_run["store"]
    for path in local.rglob("zarr.json"):
        _assert_no_secret(s3_server, str(path), path.read_text())
    report = json.loads(local_run["report"])
    stac_files = list(Path(report["stac"]).parent.rglob("*.json"))
    assert len(stac_files) >= 2  # the collection and its item
    for path in stac_files:
        _assert_no_secret(s3_server, str(path), path.read_text())


def test_debug_logging_does_not_leak_credentials(s3_run, s3_server):
    """A rerun of the finished store with -vv: it plans, opens the store and writes nothing."""
    cmd = [*s3_run["cmd"]]
    cmd.insert(cmd.index("upscale"), "-vv")
    cmd.remove("-v")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(s3_server))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["regions_computed"] == 0
    _assert_no_secret(s3_server, "the -vv log", out.stderr)
