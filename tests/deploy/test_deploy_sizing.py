"""`s2scale deploy plan`: GPUs x hours from the plan and the benchmark records of one device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.config import RunConfig
from s2scale.deploy.sizing import plan_gpu_hours, record_device, select_records
from s2scale.errors import ConfigError
from s2scale.sim import SAMPLE_AOI

REPO = Path(__file__).resolve().parents[2]
AOI = ",".join(map(str, SAMPLE_AOI))
SUMMER = "2024-06-01/2024-08-31"


def _record(folder: Path, time: str, rate: float, *, gpu: str | None, model: str) -> Path:
    machine = {"cpu_count": 16} | ({"gpus": [gpu]} if gpu else {})
    path = folder / f"throughput-{time}.json"
    path.write_text(
        json.dumps(
            {
                "benchmark": "throughput",
                "time": time,
                "machine": machine,
                "results": {"device": "cuda" if gpu else "cpu", model: {"end_to_end_mpx_s": rate}},
            }
        )
    )
    return path


@pytest.fixture
def records(tmp_path, tiny_ckpt):
    folder = tmp_path / "records"
    folder.mkdir()
    model = tiny_ckpt.stem
    _record(folder, "20260101T000000", 0.5, gpu=None, model=model)
    _record(folder, "20260201T000000", 20.0, gpu="NVIDIA H200", model=model)
    _record(folder, "20260301T000000", 9.0, gpu="NVIDIA A10G", model="other")
    return folder


def _cfg(sample, ckpt):
    cfg = RunConfig().replace("catalog", stac=str(sample.catalog), aoi=AOI, datetime=SUMMER)
    return cfg.replace("infer", model=str(ckpt)).replace("mosaic", chunk_px=256)


def test_records_are_chosen_by_device(records):
    assert len(select_records(records)) == 3
    assert [p.name for p in select_records(records, "cpu")] == ["throughput-20260101T000000.json"]
    assert len(select_records(records, "cuda")) == 2
    assert [p.name for p in select_records(records, "h200")] == ["throughput-20260201T000000.json"]
    with pytest.raises(ConfigError, match="records of: NVIDIA A10G, NVIDIA H200, cpu"):
        select_records(records, "B200")
    with pytest.raises(ConfigError, match=r"bench_throughput\.py"):
        select_records(records.parent / "none")
    assert record_device(json.loads(next(records.glob("*0201*")).read_text())) == "NVIDIA H200"


@pytest.mark.parametrize(("device", "rate"), [("cpu", 0.5), ("H200", 20.0), (None, 20.0)])
def test_gpu_hours_follow_the_devices_throughput(sample, tiny_ckpt, records, device, rate):
    plan = plan_gpu_hours(_cfg(sample, tiny_ckpt), gpus=4, records=records, device=device)
    assert plan["mpx_per_s"] == rate
    assert plan["units"] > 4 and plan["output_mpx"] > 0
    assert plan["gpu_hours"] == pytest.approx(plan["output_mpx"] / rate / 3600, rel=0.05, abs=0.01)
    assert plan["wall_hours"] == pytest.approx(plan["gpu_hours"] / 4, abs=0.01)


def test_a_device_without_a_record_of_the_model_is_an_error(sample, tiny_ckpt, records):
    with pytest.raises(ConfigError, match="no throughput record for"):
        plan_gpu_hours(_cfg(sample, tiny_ckpt), gpus=1, records=records, device="A10G")


def test_plan_cli_with_the_shipped_records(sample):
    res = CliRunner().invoke(
        main,
        [
            "deploy",
            "plan",
            "--stac",
            str(sample.catalog),
            "--aoi",
            AOI,
            "--datetime",
            SUMMER,
            "--model",
            "realesrgan",
            "--workers",
            "8",
            "--records",
            str(REPO / "benchmarks/results"),
            "--bench-device",
            "cpu",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    newest = [
        path
        for path in sorted((REPO / "benchmarks/results").glob("throughput-*.json"))
        if "end_to_end_mpx_s" in json.loads(path.read_text())["results"].get("realesrgan", {})
    ][-1]
    rate = json.loads(newest.read_text())["results"]["realesrgan"]["end_to_end_mpx_s"]
    assert plan["record"] == newest.name and plan["mpx_per_s"] == rate
    assert plan["device"] == "cpu" and plan["gpus"] == 8
    assert plan["device_name"] == json.loads(newest.read_text())["results"]["device_name"]
    text = (
        CliRunner()
        .invoke(
            main,
            [
                "deploy",
                "plan",
                "--stac",
                str(sample.catalog),
                "--aoi",
                AOI,
                "--datetime",
                SUMMER,
                "--records",
                str(REPO / "benchmarks/results"),
                "--workers",
                "8",
            ],
        )
        .output
    )
    assert "GPU-hours" in text and "on 8 GPU workers" in text


def test_plan_cli_needs_records(sample, monkeypatch):
    monkeypatch.delenv("S2SCALE_THROUGHPUT_RECORDS", raising=False)
    res = CliRunner().invoke(main, ["deploy", "plan", "--stac", str(sample.catalog), "--aoi", AOI])
    assert res.exit_code == 2 and "--records DIR" in res.output
