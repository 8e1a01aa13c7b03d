"""The built wheel works without the checkout: demo and a national dry run from another folder.

The demo is the main job (the README's command 1): its outputs and scores are checked here.

The wheel is built from this tree and installed into a fresh virtual environment; its
dependencies come from the test environment's site-packages, added as a plain path (so the
editable install of the checkout is not activated there). Commands run with the new
interpreter, from a temporary folder, with ``PYTHONPATH`` cleared.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import rasterio
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(REPO), "-w", str(tmp / "dist")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("s2scale-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib,
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    deps = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    Path(purelib, "_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    return python


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "S2SCALE_SHARED_DATA")}
    return subprocess.run(
        [str(python), "-m", "s2scale.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_wheel_is_used_and_holds_no_test_services(wheel_python, tmp_path):
    code = (
        "import importlib.util, s2scale, s2scale.sim, s2scale.train.recipes as r; "
        "print(s2scale.__file__); print(importlib.util.find_spec('s2scale.testing')); "
        "print(sorted(p.name for p in r.CONFIG_DIR.glob('*.yaml')))"
    )
    proc = subprocess.run([str(wheel_python), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True)  # fmt: skip
    where, testing, configs = proc.stdout.splitlines()
    assert str(REPO) not in where and "site-packages" in where
    assert testing == "None"
    shipped = sorted(p.name for p in (REPO / "s2scale" / "configs" / "train").glob("*.yaml"))
    assert configs == str(shipped) and "srresnet.yaml" in shipped


@pytest.mark.timeout(900)
def test_demo_and_dry_run_from_another_folder(wheel_python, tmp_path):
    """The README's command 1 (the main job) from the installed wheel, then a national dry run."""
    demo = _run(wheel_python, tmp_path, "demo", "--out", "demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = tmp_path / "demo"
    report = json.loads(demo.stdout)
    assert json.loads((out / "report.json").read_text())["metrics"] == report["metrics"]
    assert report["upscale"]["regions_computed"] == report["upscale"]["units"]
    assert "| sr |" in (out / "report.md").read_text()
    # The national mosaic: EPSG:3035, 5 m, uint16 reflectance of all four bands.
    ds = xr.open_zarr(out / "mosaic.zarr", consolidated=False)
    assert ds["reflectance"].rio.crs.to_epsg() == 3035
    assert list(ds.band.values) == ["blue", "green", "red", "nir"]
    with rasterio.open(out / "mosaic.tif") as cog:
        assert cog.profile["tiled"] and cog.overviews(1) and cog.crs.to_epsg() == 3035
    assert (out / "mosaic-stac" / "collection.json").is_file()
    with Image.open(out / "quicklook.png") as png:
        assert png.size[0] > 3 * png.size[1]  # four panels side by side
    m = report["metrics"]
    # The default model (SRResNet) beats bicubic perceptually and keeps PSNR close.
    assert m["perceptual_metric"].startswith(("LPIPS", "ST-LPIPS"))
    assert m["sr"]["perceptual"] < m["bicubic"]["perceptual"]
    assert m["sr"]["psnr_db"] > m["bicubic"]["psnr_db"] - 1.0
    assert report["seams"]["no_step"], report["seams"]
    assert report["upscale"]["random_weights"] is False
    sample = _run(wheel_python, tmp_path, "sample", "--national", "--out", "national")
    assert sample.returncode == 0, sample.stderr[-3000:]
    plan = _run(wheel_python, tmp_path, "upscale", "--stac", "national/catalog.json", "--aoi",
                "austria", "--datetime", "2024-06-01/2024-08-31", "--out", "austria.zarr",
                "--dry-run")  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    summary = json.loads(plan.stdout)
    assert summary["units"] > 800 and 0 < summary["tasks_total"] <= 500_000
    assert not (tmp_path / "austria.zarr").exists()
