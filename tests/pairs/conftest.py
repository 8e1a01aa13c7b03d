"""Fixtures of the pair tests: a small simulated sample, orthophoto tiles, an in-process cluster.

``small_sample`` is the simulator over a 2 x 2 km area east of 12 deg E (tiles 32TQT and
33TTN) on three dates: two clear passes (2024-07-08 Sentinel-2B, 2024-07-12 Sentinel-2A) and an
all-cloudy one (2024-07-11 Sentinel-2C); its 1 m orthophoto (EPSG:31287, 1600 x 1200 m) was
flown on 2024-07-10 (date in its metadata).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

SMALL_AOI = (12.04, 47.48, 12.07, 47.50)
CLEAR_1 = datetime(2024, 7, 8, 10, 15, 59)
CLOUDY = datetime(2024, 7, 11, 10, 15, 51)
CLEAR_2 = datetime(2024, 7, 12, 10, 15, 51)


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    from s2scale.sim import SceneSpec, write_sample

    scenes = (
        SceneSpec(CLEAR_1, "sentinel-2b", "05.10", 0.0),
        SceneSpec(CLEAR_2, "sentinel-2a", "05.10", 0.0),
        SceneSpec(CLOUDY, "sentinel-2c", "05.10", 1.0),
    )
    return write_sample(
        tmp_path_factory.mktemp("pairs-sample"),
        aoi=SMALL_AOI,
        margin_m=300.0,
        scenes=scenes,
        ortho_size_m=(1600.0, 1200.0),
    )


def write_like(src_path, dst_path, *, data=None, transform=None, crs="keep", tags="keep",
               descriptions="keep", window=None):  # fmt: skip
    """Copy a GeoTIFF with some of its data, grid, CRS, tags or band names changed."""
    from rasterio.windows import Window

    with rasterio.open(src_path) as src:
        win = Window(*window) if window is not None else None
        arr = src.read(window=win) if data is None else data
        profile = src.profile | {
            "driver": "GTiff",
            "count": arr.shape[0],
            "height": arr.shape[1],
            "width": arr.shape[2],
            "dtype": arr.dtype,
            "transform": transform
            or (src.window_transform(win) if win is not None else src.transform),
        }
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        profile["tiled"] = False
        if crs != "keep":
            profile["crs"] = crs
        src_tags = src.tags() if tags == "keep" else tags
        names = src.descriptions if descriptions == "keep" else descriptions
    Path(dst_path).parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(arr)
        if src_tags:
            dst.update_tags(**src_tags)
        for i, name in enumerate(names or (), start=1):
            if name:
                dst.set_band_description(i, name)
    return Path(dst_path)


def shifted_copy(src_path, dst_path, dx_m, dy_m):
    """The orthophoto with its georeference moved by (dx_m, dy_m) in its CRS (a known error)."""
    with rasterio.open(src_path) as src:
        t = Affine.translation(dx_m, dy_m) * src.transform
    return write_like(src_path, dst_path, transform=t)


def cut_tiles(src_path, out_dir, nx, ny):
    """Cut an orthophoto into ``nx x ny`` tiles (files ``tile_<row>_<col>.tif``)."""
    with rasterio.open(src_path) as src:
        h, w = src.height, src.width
    ys = np.linspace(0, h, ny + 1).astype(int)
    xs = np.linspace(0, w, nx + 1).astype(int)
    out = []
    for r in range(ny):
        for c in range(nx):
            window = (xs[c], ys[r], xs[c + 1] - xs[c], ys[r + 1] - ys[r])
            out.append(write_like(src_path, Path(out_dir) / f"tile_{r}_{c}.tif", window=window))
    return out


@pytest.fixture(scope="module")
def client():
    """A local Dask cluster: one worker process with two threads.

    A worker process rather than an in-process cluster: rasterio silences a warning of its own
    with ``warnings.catch_warnings``, which is not thread-safe, so under the suite's
    ``filterwarnings = error`` worker threads sharing the test process would fail at random.
    """
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c
