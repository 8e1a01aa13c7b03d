"""The command-line contract: sample, search, cube (and its dry run), errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.sim import SAMPLE_AOI

AOI = ",".join(map(str, SAMPLE_AOI))
SUMMER = "2024-06-01/2024-08-31"


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_help_explains_every_command():
    out = run("--help").output
    for cmd in ("sample", "search", "cube", "demo"):
        assert cmd in out
    cube_help = run("cube", "--help").output
    for opt in ("--stac", "--aoi", "--datetime", "--max-cloud", "--out", "--dry-run", "--chunk-px"):
        assert opt in cube_help


def test_search_json(sample):
    res = run(
        "search",
        "--stac",
        str(sample.catalog),
        "--aoi",
        AOI,
        "--datetime",
        SUMMER,
        "--max-cloud",
        "80",
        "--json",
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    scenes = data["scenes"]
    assert scenes and all(s["cloud_cover"] <= 80 for s in scenes)
    first = scenes[0]
    assert set(first) >= {
        "id",
        "datetime",
        "mgrs_tile",
        "crs",
        "cloud_cover",
        "boa_offset",
        "hrefs",
    }
    assert {s["crs"] for s in scenes} == {"EPSG:32632", "EPSG:32633"}
    assert set(first["hrefs"]) == {"blue", "green", "red", "nir", "scl"}


def test_cube_writes_zarr_per_zone(sample, tmp_path):
    out = tmp_path / "comp.zarr"
    res = run(
        "cube",
        "--stac",
        str(sample.catalog),
        "--aoi",
        AOI,
        "--datetime",
        SUMMER,
        "--out",
        str(out),
        "--chunk-px",
        "256",
    )
    assert res.exit_code == 0, res.output
    from s2scale.cube import read_cube

    for epsg in (32632, 32633):
        ds = read_cube(out, group=f"epsg{epsg}")
        assert ds.rio.crs.to_epsg() == epsg
        refl = ds.reflectance.values
        assert refl.dtype.name == "uint16" and (refl > 0).mean() > 0.95
        assert int(ds.clear_count.max()) >= 2
    # Refuses to overwrite, with exit code 2 and a one-line message.
    again = run(
        "cube", "--stac", str(sample.catalog), "--aoi", AOI, "--datetime", SUMMER, "--out", str(out)
    )
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.timeout(60)  # the plan must not read pixels: benchmarks/bench_foundation.py times it
def test_national_dry_run_reads_no_pixels(national_sample):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2scale.cli",
            "cube",
            "--stac",
            str(national_sample.catalog),
            "--aoi",
            "austria",
            "--datetime",
            SUMMER,
            "--out",
            "unused.zarr",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] is True and plan["scenes"] > 300
    assert [z["crs"] for z in plan["zones"]] == ["EPSG:32632", "EPSG:32633", "EPSG:32634"]
    assert len(plan["tiles"]) == 27 and plan["units"] > 100 and plan["tasks_total"] > 0
    assert plan["tasks_per_unit"]["max"] < 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--aoi", "-3.8,40.3,-3.6,40.5"], "no 'sentinel-2-l2a' scenes"),
        (["--aoi", "nowhere"], "cannot understand AOI 'nowhere'"),
        (["--datetime", "2024-13-01/2024-14-01"], "cannot parse"),
    ],
)
def test_bad_input_exits_2_with_message(sample, args, message):
    base = {"--stac": str(sample.catalog), "--aoi": AOI, "--datetime": SUMMER}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    res = run("search", *[x for kv in base.items() for x in kv])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
