"""The real Zürich orthophotos (0.5 m RGB, EPSG:2056) with a simulated Sentinel-2 over them.

End to end through the command line against a real STAC API (stac-fastapi-pgstac) whose COGs
are served by nginx with range requests. The Sentinel-2 scenes are SIMULATED from the
orthophotos themselves (pseudo-reflectance, 5 m average, the MSI's Gaussian PSF, 10 m area
mean, BOA offset) on tile 32TMT's own grid, on a clear day and a cloudy day; they are not
Sentinel-2 measurements.
"""

import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
import zarr
from scipy.ndimage import gaussian_filter
from services.stac_api import StacApiServer

from s2scale.grid import TargetGrid, tiles_for_aoi
from s2scale.pairs import area_downsample, nested_grid, open_orthophoto, orthophoto_to_hr
from s2scale.pairs.ortho_pixels import read_orthophoto
from s2scale.sim import SceneSpec, make_collection, make_item, with_base_href, write_cog
from s2scale.sim.scenes import tile_window

FLOWN = "2014-07-18"
CLEAR = datetime(2014, 7, 20, 10, 30, 0)
CLOUDY = datetime(2014, 7, 17, 10, 30, 0)


def _simulate_s2_over(orthos, root):
    """COGs and STAC items of two dates on the tile window around the orthophotos."""
    infos = [open_orthophoto(p, acquired=FLOWN) for p in orthos]
    b = np.array([i.footprint().bounds for i in infos])
    aoi = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    tile = next(t for t in tiles_for_aoi(aoi) if t.epsg == 32632)
    grid = tile_window(tile, aoi, margin_m=300.0)
    hr_grid = nested_grid(grid)
    rng = np.random.default_rng(0)
    refl = 0.04 + 0.2 * np.stack(  # background texture where no orthophoto is
        [gaussian_filter(rng.random(hr_grid.shape), 3.0) for _ in range(4)]
    )
    for path in orthos:
        rgb, transform, crs, _ = read_orthophoto(path)
        pseudo = 0.5 * (rgb.astype(np.float32) / 255.0) ** 2.2  # red, green, blue
        on = orthophoto_to_hr(pseudo, transform, crs, hr_grid)
        for band, k in ((0, 2), (1, 1), (2, 0)):  # -> blue, green, red
            refl[band] = np.where(np.isfinite(on[k]), on[k], refl[band])
    blurred = np.stack([gaussian_filter(r, 1.1, mode="nearest") for r in refl])  # 0.55 LR px
    lr = area_downsample(blurred, 2)
    g20 = TargetGrid(grid.crs, 20.0, grid.bounds)
    items = []
    for when, platform, scl_class in ((CLEAR, "sentinel-2a", 4), (CLOUDY, "sentinel-2b", 9)):
        spec = SceneSpec(when, platform, "05.10", 0.0)
        iid = f"S2{platform[-1].upper()}_{tile.name}_{when:%Y%m%d}_0_L2A"
        hrefs = {}
        for i, (key, name) in enumerate(
            (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"))
        ):
            hrefs[key] = f"cogs/{iid}/{name}.tif"
            dn = np.clip(np.round(lr[i] * 10000) + spec.offset, 1, 65535).astype(np.uint16)
            write_cog(root / hrefs[key], dn, crs=grid.crs, transform=grid.transform)
        hrefs["scl"] = f"cogs/{iid}/SCL.tif"
        scl = np.full(g20.shape, scl_class, np.uint8)
        write_cog(root / hrefs["scl"], scl, crs=grid.crs, transform=g20.transform,
                  resampling="nearest")  # fmt: skip
        stats = {"eo:cloud_cover": 100.0 if scl_class == 9 else 0.0}
        items.append(make_item(tile, spec, grid, hrefs, stats))
    return items, tile


@pytest.fixture(scope="module")
def api(shared_data, tmp_path_factory, range_server_factory, stac_server_python):
    root = tmp_path_factory.mktemp("zurich-s2")
    orthos = sorted((shared_data / "orthophoto").glob("*.tif"))
    items, tile = _simulate_s2_over(orthos, root)
    cogs = range_server_factory(root)
    items = with_base_href(items, cogs.url)
    collection = make_collection(items)
    collection["extent"]["temporal"]["interval"] = [["2014-01-01T00:00:00Z", None]]
    with StacApiServer([collection], items, server_python=stac_server_python) as server:
        yield server, orthos, tile


def test_real_orthophotos_through_the_cli_against_the_stac_api(api, tmp_path):
    server, orthos, tile = api
    config = tmp_path / "run.yaml"
    config.write_text("cluster: {kind: local, n_workers: 1, threads_per_worker: 2}\n")
    store = tmp_path / "zurich.zarr"
    cmd = [
        sys.executable, "-m", "s2scale.cli", "pairs", "--config", str(config),
        "--orthophotos", str(orthos[0].parent / "*.tif"), "--ortho-date", FLOWN,
        "--stac", server.url, "--out", str(store), "--observations", "2",
        "--lr-patch-px", "12", "--stride-px", "6",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["orthophotos"] == 2 and report["bands"] == ["blue", "green", "red"]
    assert report["observations_rejected"] == {"cloudy": 2, "nodata": 0}  # one per orthophoto
    assert report["groups"] == report["groups_computed"] == 2 and report["skipped"] == {}
    assert report["patches"] >= 10, {k: report[k] for k in ("dropped", "counts")}
    assert sum(report["counts"].values()) == report["patches"]
    group = zarr.open_group(str(store), mode="r")
    assert group["lr"].shape[1:] == (3, 12, 12) and group["hr"].shape[1:] == (3, 24, 24)
    assert set(np.asarray(group["ortho_id"][...])) == {"1091-322_00_big", "ref-img"}
    assert set(np.asarray(group["crs"][...])) == {f"EPSG:{tile.epsg}"}
    assert set(np.asarray(group["scene_id"][...])) == {f"S2A_{tile.name}_20140720_0_L2A"}
    assert float(np.median(group["ssim"][...])) > 0.8
    for src in group.attrs["sources"]:
        assert src["ortho"]["crs"] == "EPSG:2056" and src["ortho"]["date_source"] == "given"
        assert np.hypot(*src["offset_lr_px"]) < 0.2  # simulated from the orthophoto itself
        np.testing.assert_allclose(src["radiometry"]["hr_mean"], src["radiometry"]["lr_mean"],
                                   rtol=0.02)  # fmt: skip
