"""The main job (`s2scale demo`) end to end on the built-in sample, as the README's command 1."""

import json
import subprocess
import sys

import rasterio
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from PIL import Image


def test_demo_main_job(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "s2scale.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout)
    assert json.loads((out / "report.json").read_text())["metrics"] == report["metrics"]
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
    # The shipped Real-ESRGAN beats bicubic perceptually (ST-LPIPS) and keeps PSNR close.
    assert m["sr"]["stlpips_alex"] < m["bicubic"]["stlpips_alex"]
    assert m["sr"]["psnr_db"] > m["bicubic"]["psnr_db"] - 1.0
    assert report["seams"]["within_5_percent"], report["seams"]
    assert report["upscale"]["random_weights"] is False
