"""Tests of s2scale.mosaic: feathering, reprojection, the lazy graph, Zarr resume, COG/STAC/PNG."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import dask.array as da
import fsspec
import numpy as np
import pystac
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pyproj import Transformer

from s2scale.errors import GridMismatchError
from s2scale.grid import TargetGrid, target_grid
from s2scale.mosaic import (
    blend_block,
    export_cog,
    feather_weights_block,
    mosaic,
    normalise_weights_block,
    open_mosaic,
    quicklook,
    reproject_block,
    write_mosaic,
    write_stac,
)

BANDS = ["blue", "green", "red"]
AOI = "11.98,47.492,12.02,47.508"  # straddles 12 deg E, the UTM 32/33 boundary
OFFSET_DN = 200


# ------------------------------------------------------------------------------------- synthetic
def _field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """'True' ground DN (3 bands) from EPSG:3035 metres: diagonal waves plus a gentle ramp."""
    phase = 2 * np.pi * (x / 310.0 + y / 170.0)
    base = 2500 + 600 * np.sin(phase) + 0.05 * (x - 4.4e6)
    return np.stack([base, 0.8 * base + 300, 1.2 * base - 200])


def _zone_source(epsg, lon_range, lat_range, *, offset=0, lon_valid=None):
    """A 5 m UTM result of one zone: the field rendered on the zone's grid (+ offset)."""
    lon, lat = np.meshgrid(np.linspace(*lon_range, 20), np.linspace(*lat_range, 20))
    ex, ny = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    bounds = (
        np.floor(ex.min() / 10) * 10,
        np.floor(ny.min() / 10) * 10,
        np.ceil(ex.max() / 10) * 10,
        np.ceil(ny.max() / 10) * 10,
    )
    grid = TargetGrid(crs=f"EPSG:{epsg}", resolution_m=5.0, bounds=bounds)
    y, x = grid.coords()
    xx, yy = np.meshgrid(x, y)
    lx, ly = Transformer.from_crs(epsg, 3035, always_xy=True).transform(xx, yy)
    data = np.clip(np.rint(_field(lx, ly) + offset), 1, 65535).astype(np.uint16)
    if lon_valid is not None:
        lon_px, _ = Transformer.from_crs(epsg, 4326, always_xy=True).transform(xx, yy)
        data[:, (lon_px < lon_valid[0]) | (lon_px >= lon_valid[1])] = 0
    arr = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": BANDS, "y": y, "x": x})
    return arr.rio.write_crs(f"EPSG:{epsg}")


def _utm_source(data: np.ndarray, x0=500_000.0, y0=5_260_000.0, chunks=None):
    """A (band, y, x) uint16 array on EPSG:32633 at 5 m with upper-left corner (x0, y0)."""
    _, rows, cols = data.shape
    y = y0 - 2.5 - 5.0 * np.arange(rows)
    x = x0 + 2.5 + 5.0 * np.arange(cols)
    values = da.from_array(data, chunks=chunks) if chunks else data
    arr = xr.DataArray(values, dims=("band", "y", "x"), coords={"band": BANDS, "y": y, "x": x})
    return arr.rio.write_crs("EPSG:32633")


@pytest.fixture(scope="module")
def zones():
    """Zone 32 valid up to 12.005 E, zone 33 (+200 DN) from 11.995 E: a 0.01 deg overlap."""
    lat = (47.49, 47.51)
    return {
        "feather": [
            _zone_source(32632, (11.975, 12.01), lat, lon_valid=(0, 12.005)),
            _zone_source(32633, (11.99, 12.025), lat, offset=OFFSET_DN, lon_valid=(11.995, 99)),
        ],
        "hard": [
            _zone_source(32632, (11.975, 12.01), lat, lon_valid=(0, 12.0)),
            _zone_source(32633, (11.99, 12.025), lat, offset=OFFSET_DN, lon_valid=(12.0, 99)),
        ],
        "grid": target_grid(AOI),
    }


@pytest.fixture
def no_compute():
    """Fail if anything computes inside the block (xarray's raise_if_dask_computes idea)."""

    def scheduler(*args, **kwargs):
        raise AssertionError("graph building must not compute")

    with dask.config.set(scheduler=scheduler):
        yield


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


# --------------------------------------------------------------------------------------- kernels
@st.composite
def _masks(draw):
    rows = draw(st.integers(1, 24))
    cols = draw(st.integers(1, 24))
    n = draw(st.integers(1, 4))
    seeds = draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n))
    density = draw(st.floats(0.0, 1.0))
    masks = [np.random.default_rng(s).random((rows, cols)) < density for s in seeds]
    edges = draw(st.tuples(*[st.booleans()] * 4))
    return masks, edges, draw(st.sampled_from([0, 1, 2.5, 8]))


@settings(max_examples=60, deadline=None)
@given(_masks())
def test_feather_weights_sum_to_one_where_any_source_is_valid(case):
    masks, edges, feather_px = case
    raw = [feather_weights_block(m, feather_px, edge_is_nodata=edges) for m in masks]
    for m, w in zip(masks, raw, strict=True):
        assert w.dtype == np.float32
        assert ((w > 0) == m).all()  # positive exactly where valid
        assert (w <= 1).all()
    total = normalise_weights_block(raw).sum(axis=0)
    any_valid = np.any(masks, axis=0)
    np.testing.assert_allclose(total[any_valid], 1.0, rtol=1e-6)
    assert (total[~any_valid] == 0).all()


def test_feather_weights_of_a_window_match_the_whole_source():
    rng = np.random.default_rng(0)
    valid = np.ones((120, 140), bool)
    valid[rng.random(valid.shape) < 0.002] = False
    valid[40:60, 50:90] = False
    whole = feather_weights_block(valid, 10)
    # A window cut out of the source: its cut sides are not edges; keep a 10+ px margin.
    win = feather_weights_block(valid[20:110, 30:140], 10, edge_is_nodata=(0, 0, 0, 1))
    np.testing.assert_array_equal(win[11:-11, 11:], whole[31:99, 41:])
    assert whole[0, 70] == pytest.approx(0.1)  # the array edge counts as no data: 1 px / 10 px


def test_blend_block_rounds_and_keeps_valid_pixels_nonzero():
    values = [np.full((1, 1, 3), 0.2, np.float32), np.full((1, 1, 3), 1000.4, np.float32)]
    weights = [np.array([[1.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])]
    assert blend_block(values, weights).tolist() == [[[1, 500, 0]]]


def test_reproject_block_nested_is_a_copy_and_warps_keep_nodata_out():
    rng = np.random.default_rng(1)
    values = rng.integers(1, 5000, (2, 30, 40)).astype(np.uint16)
    weights = np.ones((30, 40), np.float32)
    weights[:, :10] = 0
    src_t = rasterio.Affine(5, 0, 500_000, 0, -5, 5_260_000)
    dst_t = rasterio.Affine(5, 0, 499_950, 0, -5, 5_260_050)  # 10 px left, 10 px up
    v, w = reproject_block(
        values,
        weights,
        src_transform=src_t,
        src_crs="EPSG:32633",
        dst_transform=dst_t,
        dst_crs="EPSG:32633",
        dst_shape=(50, 60),
    )
    np.testing.assert_array_equal(v[:, 10:40, 20:50], values[:, :, 10:])
    assert (w[10:40, 20:50] == 1).all() and w.sum() == 30 * 30
    # The same block onto EPSG:3035: values stay within the source range, no 0 leaks in.
    dst3035 = rasterio.Affine(5, 0, 4_793_000, 0, -5, 2_737_000)
    v2, w2 = reproject_block(
        values,
        weights,
        src_transform=src_t,
        src_crs="EPSG:32633",
        dst_transform=dst3035,
        dst_crs="EPSG:3035",
        dst_shape=(1000, 1000),
    )
    if (w2 > 0).any():
        inside = v2[:, w2 > 0]
        assert inside.min() >= values.min() - 1e-3 and inside.max() <= values.max() + 1e-3


# ----------------------------------------------------------------------------------------- graph
def test_single_source_on_utm_grid_is_reproduced_exactly(sync):
    rng = np.random.default_rng(2)
    data = rng.integers(1, 10_000, (3, 70, 90)).astype(np.uint16)
    data[:, 30:40, 20:35] = 0  # a hole
    src = _utm_source(data, chunks=(3, 32, 32))
    grid = TargetGrid("EPSG:32633", 5.0, (499_900.0, 5_259_550.0, 500_600.0, 5_260_100.0))
    out = mosaic([src], grid, chunk_px=48, feather_px=16).values
    np.testing.assert_array_equal(out[:, 20:90, 20:110], data)
    assert out.sum() == data.astype(np.int64).sum()  # 0 outside the source


def test_graph_building_does_not_compute(zones, no_compute):
    out = mosaic(zones["feather"], zones["grid"], chunk_px=128, feather_px=32, aoi=AOI)
    assert isinstance(out.data, da.Array) and out.dtype == np.uint16
    assert out.rio.crs.to_epsg() == 3035 and out.rio.transform() == zones["grid"].transform
    assert out.data.chunks[1][0] == 128 and list(out["band"].values) == BANDS


def _seam_profile(m: np.ndarray, grid: TargetGrid) -> tuple[dict[int, float], float]:
    """Mean |x-gradient| by signed distance (px) from the 12 E meridian, and far from it."""
    y, x = grid.coords()
    lon, _ = Transformer.from_crs(grid.crs, 4326, always_xy=True).transform(*np.meshgrid(x, y))
    east = (lon < 12.0).sum(axis=1)  # index of the first column east of 12 E, per row
    grad = np.abs(np.diff(m.astype(np.float64), axis=2)).mean(axis=0)[20:-20]
    dist = (np.arange(grad.shape[1])[None, :] - (east[:, None] - 1))[20:-20]
    profile = {d: grad[dist == d].mean() for d in range(-100, 101)}
    far = grad[(np.abs(dist) > 100) & (np.abs(dist) < 200)].mean()
    return profile, far


def test_feathering_hides_a_radiometric_offset_between_zones(zones, sync):
    grid = zones["grid"]
    feathered = mosaic(zones["feather"], grid, chunk_px=256, feather_px=32).values
    hard = mosaic(zones["hard"], grid, chunk_px=256, feather_px=0).values
    assert (feathered > 0).all() and (hard > 0).all()
    prof, far = _seam_profile(feathered, grid)
    worst = max(abs(v / far - 1) for v in prof.values())
    assert worst < 0.05, f"feathered seam: gradient differs by {worst:.1%} near 12 E"
    prof_hard, far_hard = _seam_profile(hard, grid)
    assert prof_hard[0] / far_hard > 2.0  # a hard cut shows the 200 DN step
    # Far from the seam both mosaics are zone 33 alone.
    assert abs(int(hard[0, 200, -30]) - int(feathered[0, 200, -30])) <= 1


def test_result_does_not_depend_on_the_region_cut(zones, sync):
    grid = zones["grid"]
    a = mosaic(zones["feather"], grid, chunk_px=256, feather_px=32).values
    b = mosaic(zones["feather"], grid, chunk_px=160, feather_px=32).values
    assert a.tobytes() == b.tobytes()


def test_holes_are_filled_by_the_other_source(sync):
    a = np.full((3, 80, 80), 1000, np.uint16)
    b = np.full((3, 80, 80), 3000, np.uint16)
    a[:, 20:60, 20:60] = 0  # hole in a only
    a[:, 0:10, 0:10] = 0  # hole in both
    b[:, 0:10, 0:10] = 0
    grid = TargetGrid("EPSG:32633", 5.0, (500_000.0, 5_259_600.0, 500_400.0, 5_260_000.0))
    out = mosaic([_utm_source(a), _utm_source(b)], grid, chunk_px=64, feather_px=8).values
    assert (out[:, 35:45, 35:45] == 3000).all()  # centre of a's hole: b alone
    assert (out[:, 0:10, 0:10] == 0).all()  # no source: stays no data
    assert (out[:, 10:, 10:] > 0).all()
    assert (out[:, 40, 40:] >= 2000).all() and (out[:, 40, 75] == 2000).all()


# ------------------------------------------------------------------------------------------ zarr
def _small_mosaic(chunk_px=32) -> tuple[xr.DataArray, TargetGrid]:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 10_000, (3, 100, 90)).astype(np.uint16)
    grid = TargetGrid("EPSG:32633", 5.0, (500_000.0, 5_259_500.0, 500_450.0, 5_260_000.0))
    return mosaic([_utm_source(data)], grid, chunk_px=chunk_px, feather_px=4), grid


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_write_mosaic_resumes_after_a_crash_with_identical_bytes(tmp_path, sync):
    arr, grid = _small_mosaic()
    fp = {"model": "nearest", "feather_px": 4}
    clean = write_mosaic(arr, tmp_path / "clean.zarr", grid=grid, config_fingerprint=fp)
    assert (clean.regions_total, clean.regions_computed, clean.regions_reused) == (12, 12, 0)

    calls = {"n": 0}

    def flaky(block):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("worker killed")
        return block

    broken = arr.copy(data=arr.data.map_blocks(flaky, dtype=np.uint16))
    store = tmp_path / "resumed.zarr"
    with pytest.raises(RuntimeError, match="worker killed"):
        write_mosaic(broken, store, grid=grid, config_fingerprint=fp)
    rerun = write_mosaic(arr, store, grid=grid, config_fingerprint=fp)
    assert 0 < rerun.regions_reused < 12 and not rerun.created
    assert rerun.regions_computed + rerun.regions_reused == 12
    assert _files(store) == _files(tmp_path / "clean.zarr")
    again = write_mosaic(arr, store, grid=grid, config_fingerprint=fp)
    assert (again.regions_computed, again.regions_reused) == (0, 12)

    ds = xr.open_zarr(store, consolidated=False)
    assert ds.rio.crs.to_epsg() == 32633 and ds.rio.transform() == grid.transform
    assert ds["reflectance"].encoding["chunks"] == (3, 32, 32)
    np.testing.assert_array_equal(ds["reflectance"].values, arr.values)
    # the reflectance codec: Blosc zstd with bit shuffle (resumable.reflectance_compressors)
    meta = json.loads((store / "reflectance" / "zarr.json").read_text())
    blosc = [c["configuration"] for c in meta["codecs"] if c["name"] == "blosc"]
    assert blosc and blosc[0]["cname"] == "zstd" and blosc[0]["shuffle"] == "bitshuffle"


def test_write_mosaic_refuses_another_grid_or_fingerprint(tmp_path, sync):
    arr, grid = _small_mosaic()
    store = tmp_path / "m.zarr"
    write_mosaic(arr, store, grid=grid, config_fingerprint={"v": 1})
    before = _files(store)
    other_grid = TargetGrid("EPSG:32633", 5.0, (500_100.0, 5_259_400.0, 500_550.0, 5_259_900.0))
    other = mosaic([_utm_source(arr.values)], other_grid, chunk_px=32)
    with pytest.raises(GridMismatchError, match="overwrite=True") as err:
        write_mosaic(other, store, grid=other_grid, config_fingerprint={"v": 1})
    assert "500100.0" in str(err.value) and "500000.0" in str(err.value)
    with pytest.raises(GridMismatchError, match="config_fingerprint"):
        write_mosaic(arr, store, grid=grid, config_fingerprint={"v": 2})
    assert _files(store) == before  # nothing touched
    report = write_mosaic(arr, store, grid=grid, config_fingerprint={"v": 2}, overwrite=True)
    assert report.created and report.regions_computed == 12
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.txt").write_text("x")
    with pytest.raises(GridMismatchError, match="not a Zarr store"):
        write_mosaic(arr, tmp_path / "foreign", grid=grid, config_fingerprint={})


def test_write_mosaic_to_fsspec_urls(tmp_path, sync):
    arr, grid = _small_mosaic(chunk_px=50)
    url = "memory://s2scale-tests/m.zarr"
    try:
        report = write_mosaic(arr, url, grid=grid, config_fingerprint={}, regions=[(0, 50, 0, 50)])
        assert report.regions_total == 1 and report.store == url
        out = open_mosaic(url)["reflectance"].values
        np.testing.assert_array_equal(out[:, :50, :50], arr.values[:, :50, :50])
        assert (out[:, 50:, :] == 0).all()  # unwritten regions read as no data
    finally:
        fsspec.filesystem("memory").rm("/s2scale-tests", recursive=True)
    file_url = (tmp_path / "f.zarr").as_uri()
    write_mosaic(arr, file_url, grid=grid, config_fingerprint={})
    np.testing.assert_array_equal(open_mosaic(file_url)["reflectance"].values, arr.values)


# ------------------------------------------------------------------------------------ COG & STAC
def test_export_cog_and_stac(tmp_path, sync):
    rng = np.random.default_rng(4)
    data = rng.integers(1, 4000, (3, 700, 600)).astype(np.uint16)
    data[:, :50, :50] = 0
    grid = TargetGrid("EPSG:32633", 5.0, (500_000.0, 5_256_500.0, 500_000.0 + 3000, 5_260_000.0))
    arr = mosaic([_utm_source(data, chunks=(3, 256, 256))], grid, chunk_px=256, feather_px=4)
    write_mosaic(arr, tmp_path / "m.zarr", grid=grid, config_fingerprint={})
    full = export_cog(tmp_path / "m.zarr", tmp_path / "cogs" / "full.tif")
    part = export_cog(
        arr, tmp_path / "cogs" / "part.tif", bounds=(500_500, 5_258_000, 501_000, 5_259_000)
    )
    with rasterio.open(full) as src:
        assert src.crs.to_epsg() == 32633 and src.transform == grid.transform
        assert src.profile["tiled"] and src.block_shapes[0] == (512, 512)
        assert src.compression.name.lower() == "deflate" and src.nodata == 0
        tags = src.tags(ns="IMAGE_STRUCTURE")
        assert tags.get("LAYOUT") == "COG" and tags.get("PREDICTOR") == "2"
        assert src.overviews(1) == [2]
        assert src.descriptions == tuple(BANDS) and src.scales[0] == pytest.approx(1e-4)
        np.testing.assert_array_equal(src.read(), data)
    with rasterio.open(part) as src:
        assert (src.height, src.width) == (200, 100) and src.transform.c == 500_500
        np.testing.assert_array_equal(src.read(), data[:, 200:400, 100:200])

    coll_path = write_stac(
        tmp_path / "stac",
        cogs=[full, part],
        grid=grid,
        properties={"datetime": "2024-06-01T00:00:00Z/2024-08-31T23:59:59Z"},
    )
    coll = pystac.Collection.from_file(str(coll_path))
    items = list(coll.get_items())
    assert sorted(i.id for i in items) == ["full", "part"]
    for item in items:
        d = json.loads(Path(item.get_self_href()).read_text())
        pystac.Item.from_dict(d)
        assert d["properties"]["proj:code"] == "EPSG:32633" and d["properties"]["gsd"] == 5.0
        assert d["properties"]["start_datetime"].startswith("2024-06-01")
        assert "s2scale" in d["properties"]["processing:software"]
        asset = d["assets"]["reflectance"]
        assert not Path(asset["href"]).is_absolute()
        assert (Path(item.get_self_href()).parent / asset["href"]).resolve() == (
            tmp_path / "cogs" / f"{item.id}.tif"
        )
        assert asset["raster:bands"][0]["scale"] == pytest.approx(1e-4)
        assert asset["raster:bands"][0]["offset"] == 0
        assert [b["common_name"] for b in asset["eo:bands"]] == BANDS
        assert all("://" not in ln["href"] and ln["href"][0] != "/" for ln in d["links"])
    assert d["properties"]["proj:shape"] in ([700, 600], [200, 100])


def test_quicklook_png_has_expected_size(tmp_path):
    a = np.full((3, 40, 60), 1000, np.uint16)
    b = np.full((3, 50, 30), 3000, np.uint16)
    path = quicklook([("bicubic", a), ("super-resolved", b)], tmp_path / "q.png")
    with Image.open(path) as img:
        assert img.size == (60 + 4 + 30, 50 + 20) and img.mode == "RGB"
        px = np.asarray(img)
    assert tuple(px[30, 10]) == (127, 127, 127) and tuple(px[30, 80]) == (255, 255, 255)


def test_write_mosaic_on_a_threaded_local_cluster(zones, tmp_path):
    distributed = pytest.importorskip("distributed")
    grid = zones["grid"]
    arr = mosaic(zones["feather"], grid, chunk_px=256, feather_px=32, aoi=AOI)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        report = write_mosaic(arr, tmp_path / "m.zarr", grid=grid, config_fingerprint={})
    assert report.regions_computed == report.regions_total == 6
    with dask.config.set(scheduler="sync"):
        expected = arr.values
    np.testing.assert_array_equal(open_mosaic(tmp_path / "m.zarr")["reflectance"].values, expected)


def test_each_source_chunk_is_computed_once():
    """Regions share the source chunks they overlap instead of recomputing them."""
    import threading

    calls = []
    lock = threading.Lock()

    def expensive(block):
        if block.size:  # skip dask's meta inference call
            with lock:
                calls.append(block.shape)
        return block

    data = np.full((3, 96, 96), 1000, np.uint16)
    src = _utm_source(data, chunks=(3, 32, 32))
    src = src.copy(data=src.data.map_blocks(expensive, dtype=np.uint16))
    grid = TargetGrid("EPSG:32633", 5.0, (500_000.0, 5_260_000.0 - 480.0, 500_480.0, 5_260_000.0))
    out = mosaic([src], grid, chunk_px=40, feather_px=4).compute(scheduler="sync")
    assert (out.values == 1000).all()
    assert len(calls) == 9  # 3 x 3 source chunks, although 9 overlapping regions need them


def test_resampling_kernels_keep_detail_in_order_and_no_data_out():
    # A textured 5 m UTM image warped onto EPSG:3035: bilinear blurs, cubic keeps most detail,
    # lanczos nearly all; a no-data hole stays no data and values stay in the data range.
    from affine import Affine
    from scipy import ndimage

    from s2scale.mosaic.blend import reproject_block

    rng = np.random.default_rng(3)
    img = ndimage.gaussian_filter(rng.uniform(500, 4000, (2, 160, 160)), (0, 0.8, 0.8))
    weights = np.ones((160, 160), np.float32)
    weights[70:90, 70:90] = 0
    src_t = Affine(5.0, 0, 330_000.0, 0, -5.0, 5_822_040.0)

    def hf(a):
        core = a[:, 20:-20, 20:-20]
        return float(np.mean([np.var(b - ndimage.gaussian_filter(b, 1.0)) for b in core]))

    from pyproj import Transformer

    # place the destination block inside the source footprint
    x, y = Transformer.from_crs(32633, 3035, always_xy=True).transform(330_400.0, 5_821_640.0)
    dst_t = Affine(5.0, 0, round(x / 5) * 5 - 300, 0, -5.0, round(y / 5) * 5 + 300)
    energy = {}
    for kernel in ("bilinear", "cubic", "lanczos"):
        vals, w = reproject_block(img, weights, src_transform=src_t, src_crs="EPSG:32633",
                                  dst_transform=dst_t, dst_crs="EPSG:3035", dst_shape=(100, 100),
                                  resampling=kernel)  # fmt: skip
        assert (w > 0).mean() > 0.9 and (w == 0).any()  # the hole is there
        assert (vals[:, w == 0] == 0).all()
        assert vals[:, w > 0.5].min() > 0 and vals.max() < 65535
        energy[kernel] = hf(np.where(w > 0, vals, vals[:, w > 0].mean()))
    assert energy["bilinear"] < energy["cubic"] < energy["lanczos"]
