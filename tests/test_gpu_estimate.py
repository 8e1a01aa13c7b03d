"""The dry run's time estimate reads only throughput records of the device kind asked for."""

from __future__ import annotations

import json

from s2scale.pipeline.estimate import THROUGHPUT_RECORDS_ENV, estimate_gpu_seconds


def _record(folder, name, device, mpx_s):
    rec = {
        "machine": {"gpus": ["NVIDIA H200"] if device == "cuda" else []},
        "results": {
            "device": device,
            "device_name": f"{device} box",
            "srresnet": {"end_to_end_mpx_s": mpx_s},
        },
    }
    (folder / f"throughput-{name}.json").write_text(json.dumps(rec))


def test_estimate_filters_records_by_device_kind(tmp_path, monkeypatch):
    monkeypatch.setenv(THROUGHPUT_RECORDS_ENV, str(tmp_path))
    _record(tmp_path, "20260101T000000", "cuda", 100.0)
    _record(tmp_path, "20260201T000000", "cpu", 0.5)  # newer, but a CPU record
    gpu = estimate_gpu_seconds("srresnet", 1_000_000_000, "cuda")
    assert gpu["device_kind"] == "cuda" and gpu["seconds"] == 10.0
    cpu = estimate_gpu_seconds("srresnet", 1_000_000_000, "cpu")
    assert cpu["device_kind"] == "cpu" and cpu["seconds"] == 2000.0
    auto = estimate_gpu_seconds("srresnet", 1_000_000_000, "auto")
    assert auto["device_kind"] == "cuda"


def test_estimate_says_when_no_record_fits(tmp_path, monkeypatch):
    monkeypatch.setenv(THROUGHPUT_RECORDS_ENV, str(tmp_path))
    _record(tmp_path, "20260201T000000", "cpu", 0.5)
    out = estimate_gpu_seconds("srresnet", 10**9, "cuda")
    assert out["seconds"] is None and "cuda" in out["note"]
    assert estimate_gpu_seconds("srresnet", 10**9, "auto")["device_kind"] == "cpu"
    assert estimate_gpu_seconds("realesrgan", 10**9, "cpu")["seconds"] is None


def test_records_passed_explicitly_are_the_only_ones_read(tmp_path, monkeypatch):
    env, given = tmp_path / "env", tmp_path / "given"
    env.mkdir(), given.mkdir()
    _record(env, "20260301T000000", "cpu", 0.5)
    _record(given, "20260101T000000", "cpu", 2.0)
    monkeypatch.setenv(THROUGHPUT_RECORDS_ENV, str(env))
    assert estimate_gpu_seconds("srresnet", 10**9, "cpu")["mpx_per_s"] == 0.5
    by_folder = estimate_gpu_seconds("srresnet", 10**9, "cpu", records=given)
    by_files = estimate_gpu_seconds("srresnet", 10**9, "cpu", records=list(given.iterdir()))
    assert by_folder["mpx_per_s"] == by_files["mpx_per_s"] == 2.0
    assert estimate_gpu_seconds("srresnet", 10**9, "cpu", records=[])["seconds"] is None


def test_deploy_sizing_sets_no_environment():
    from pathlib import Path

    import s2scale.deploy.sizing as sizing

    assert "environ" not in Path(sizing.__file__).read_text()
