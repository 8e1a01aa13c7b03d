"""Cube loading, masking, compositing and Zarr round trips on small hand-made COGs.

The COGs hold known values so that every pixel can be checked: DN = 1000 (BOA offset) + a
band-specific ramp, SCL with a cloud block and a no-data strip.
"""

import re

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import Affine

from s2scale import composite, cube, grid
from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.items import normalize_item

ROWS = COLS = 60  # 10 m pixels


def _write_cog(path, data, transform, epsg, dtype):
    profile = dict(
        driver="COG",
        dtype=dtype,
        count=1,
        width=data.shape[1],
        height=data.shape[0],
        crs=f"EPSG:{epsg}",
        transform=transform,
        nodata=0,
        compress="deflate",
        blocksize=64,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype), 1)


def _expected_dn(band_index, t, rows=ROWS, cols=COLS):
    r, c = np.mgrid[0:rows, 0:cols]
    return (200 + 100 * band_index + 10 * t + r + 2 * c).astype(np.uint16)


def _footprint(epsg, x0, y0):
    from pyproj import Transformer
    from shapely.geometry import box, mapping

    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    poly = box(x0, y0 - 10 * ROWS, x0 + 10 * COLS, y0)
    lon, lat = to_ll.transform(*poly.exterior.xy)
    return mapping(box(min(lon), min(lat), max(lon), max(lat)))


def make_scene(tmp_path, tile_name, t, *, baseline="05.10", cloud=None, nodata_cols=0):
    """Write one small scene on a window of a real MGRS tile grid; return its item dict."""
    tile = grid.mgrs_tile(tile_name)
    x0, y0 = tile.ulx + 6000.0, tile.uly - 6000.0  # on the tile's 60 m lattice
    offset = 1000 if baseline >= "04.00" else 0
    folder = tmp_path / f"{tile_name}_{t}"
    folder.mkdir()
    assets = {}
    for i, band in enumerate(["blue", "green", "red", "nir"]):
        dn = _expected_dn(i, t) + offset
        dn[:, :nodata_cols] = 0
        _write_cog(folder / f"{band}.tif", dn, Affine(10, 0, x0, 0, -10, y0), tile.epsg, "uint16")
        assets[band] = {
            "href": str(folder / f"{band}.tif"),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:shape": [ROWS, COLS],
            "proj:transform": [10, 0, x0, 0, -10, y0],
            "raster:bands": [
                {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -offset / 10000}
            ],
        }
    scl = np.full((ROWS // 2, COLS // 2), 4, np.uint8)
    if cloud is not None:
        r0, r1, c0, c1 = cloud
        scl[r0:r1, c0:c1] = 9
    scl[:, : nodata_cols // 2] = 0
    _write_cog(folder / "scl.tif", scl, Affine(20, 0, x0, 0, -20, y0), tile.epsg, "uint8")
    assets["scl"] = {
        "href": str(folder / "scl.tif"),
        "proj:shape": [ROWS // 2, COLS // 2],
        "proj:transform": [20, 0, x0, 0, -20, y0],
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"S2B_{tile_name}_2024070{t + 1}_0_L2A",
        "collection": "sentinel-2-l2a",
        "geometry": _footprint(tile.epsg, x0, y0),
        "properties": {
            "datetime": f"2024-07-0{t + 1}T10:00:00Z",
            "proj:code": f"EPSG:{tile.epsg}",
            "grid:code": f"MGRS-{tile_name}",
            "s2:processing_baseline": baseline,
            "eo:cloud_cover": 10.0,
        },
        "assets": assets,
    }


@pytest.fixture
def scenes(tmp_path):
    items = [
        make_scene(tmp_path, "33TTN", 0),
        make_scene(tmp_path, "33TTN", 1, cloud=(0, 10, 0, 10)),
        make_scene(tmp_path, "33TTN", 2, baseline="03.01", nodata_cols=4),
    ]
    return [normalize_item(it) for it in items]


def test_load_cube_exact_pixels_and_offsets(scenes):
    c = cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
    assert c.dims == ("time", "band", "y", "x") and c.dtype == np.uint16
    assert c.shape == (3, 5, ROWS, COLS)
    assert c.rio.crs.to_epsg() == 32633
    # Grid: pixel centres, exactly on the tile lattice.
    tile = grid.mgrs_tile("33TTN")
    assert float(c.x[0]) == tile.ulx + 6000 + 5 and float(c.y[0]) == tile.uly - 6000 - 5
    assert c.rio.transform() == Affine(10, 0, tile.ulx + 6000, 0, -10, tile.uly - 6000)
    values = c.compute(scheduler="sync")
    for t in range(3):
        for i, band in enumerate(["blue", "green", "red", "nir"]):
            expected = _expected_dn(i, t)
            got = values.sel(band=band).isel(time=t).values
            if t == 2:  # old baseline: no offset in the file; no-data strip stays 0
                expected[:, :4] = 0
            np.testing.assert_array_equal(got, expected)
    scl = values.sel(band="scl").values
    assert (scl[1, :20, :20] == 9).all() and (scl[1, 20:, 20:] == 4).all()
    assert list(c.boa_offset.values) == [1000, 1000, 0]


def test_mask_and_composite(scenes):
    c = cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
    masked = composite.mask_clouds(c)
    assert list(masked.band.values) == ["blue", "green", "red", "nir"]
    m = masked.compute(scheduler="sync").values
    assert (m[1, :, :20, :20] == 0).all() and (m[1, :, 20:, 20:] > 0).all()
    assert (m[2, :, :, :4] == 0).all()
    comp = composite.composite(masked).compute(scheduler="sync")
    count = comp.clear_count.values
    assert count[0, 0] == 1 and count[30, 30] == 3 and count[30, 0] == 2
    # Median of t=0,1,2 ramps = t=1 ramp where all three are clear.
    np.testing.assert_array_equal(
        comp.reflectance.values[:, 30:, 30:],
        np.stack([_expected_dn(i, 1) for i in range(4)])[:, 30:, 30:],
    )
    # Mean of two middle values (t=0 and t=2 where t=1 is cloudy): t=1 ramp again (even count).
    np.testing.assert_array_equal(
        comp.reflectance.values[:, 10:20, 10:20],
        np.stack([_expected_dn(i, 1) for i in range(4)])[:, 10:20, 10:20],
    )
    assert comp.rio.crs.to_epsg() == 32633


def test_composite_block_even_count_rounds_half_up():
    s = np.array([0, 3, 4, 0], dtype=np.uint16).reshape(4, 1, 1, 1)
    med, n = composite.composite_block(s)
    assert int(med[0, 0, 0]) == 4 and int(n[0, 0]) == 2
    empty = np.zeros((3, 2, 1, 1), np.uint16)
    med, n = composite.composite_block(empty)
    assert (med == 0).all() and (n == 0).all()


def test_zarr_round_trip_keeps_crs_and_transform(scenes, tmp_path):
    comp = composite.composite(
        composite.mask_clouds(
            cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
        )
    )
    store = tmp_path / "comp.zarr"
    cube.write_cube(comp, store, group="epsg32633")
    back = cube.read_cube(store, group="epsg32633")
    assert back.rio.crs.to_epsg() == 32633
    assert back.reflectance.rio.transform() == comp.rio.transform()
    xr.testing.assert_equal(back.reflectance.load(), comp.reflectance.compute(scheduler="sync"))
    import zarr

    assert zarr.open_group(str(store), mode="r").metadata.zarr_format == 3
    with pytest.raises(ConfigError, match="exists"):
        cube.write_cube(comp, store, group="epsg32633")
    with pytest.raises(ReadError, match="does not exist"):
        cube.read_cube(tmp_path / "missing.zarr")


def test_two_zones_need_separate_cubes(tmp_path):
    items = [make_scene(tmp_path, "32TQT", 0), make_scene(tmp_path, "33TTN", 1)]
    scenes = [normalize_item(it) for it in items]
    with pytest.raises(GridMismatchError, match="several UTM zones"):
        cube.load_cube(scenes)
    plans = cube.plan_cubes(scenes, "11.0,46.0,13.0,48.0")
    assert [p.epsg for p in plans] == [32632, 32633]
    assert all(p.shape == (ROWS, COLS) and len(p.scenes) == 1 for p in plans)


def test_check_assets_names_href_and_skips_when_asked(scenes, tmp_path):
    broken = scenes[1].hrefs["red"]
    with open(broken, "wb") as f:
        f.write(b"not a tiff at all")
    with pytest.raises(ReadError, match=re.escape(broken)):
        cube.check_assets(scenes)
    ok, skipped = cube.check_assets(scenes, skip_errors=True)
    assert [s.id for s in ok] == [scenes[0].id, scenes[2].id]
    assert [href for href, _ in skipped] == [broken]


def test_missing_cog_is_a_read_error(scenes):
    import os

    os.remove(scenes[0].hrefs["nir"])
    with pytest.raises(ReadError, match=r"nir\.tif"):
        cube.check_assets(scenes)


def test_graph_building_does_not_compute(scenes):
    import dask

    def fail(*args, **kwargs):
        raise AssertionError("graph construction computed something")

    with dask.config.set(scheduler=fail):
        c = cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
        composite.composite(composite.mask_clouds(c))


def test_odc_stac_loads_identical_pixels(scenes):
    """Independent cross-check of the loader: odc-stac reads the same raw pixels."""
    import pystac
    from odc.geo.geobox import GeoBox
    from odc.stac import load

    c = cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
    ours = c.compute(scheduler="sync")
    gbox = GeoBox((ROWS, COLS), c.rio.transform(), "EPSG:32633")
    items = [pystac.Item.from_dict(s.item) for s in scenes]
    theirs = load(
        items,
        bands=["blue", "green", "red", "nir", "scl"],
        geobox=gbox,
        dtype="uint16",
        nodata=0,
        resampling="nearest",
        groupby="id",
    )
    theirs = theirs.sortby("time")
    for t, scene in enumerate(scenes):
        for band in ["blue", "green", "red", "nir"]:
            raw = theirs[band].isel(time=t).values.astype(np.int32)
            expected = np.where(raw > 0, np.maximum(raw - scene.boa_offset, 1), 0)
            np.testing.assert_array_equal(ours.sel(band=band).isel(time=t).values, expected)
        np.testing.assert_array_equal(
            ours.sel(band="scl").isel(time=t).values, theirs["scl"].isel(time=t).values
        )


def test_overlapping_tiles_of_one_pass_are_one_observation(tmp_path):
    """A pass seen by two overlapping tiles counts once in the composite; another day again."""
    neighbour = tmp_path / "neighbour"
    neighbour.mkdir()
    items = [
        make_scene(tmp_path, "33TTN", 0),
        make_scene(neighbour, "33TTN", 0, nodata_cols=10),  # same pixels, tile edge at x=10
        make_scene(tmp_path, "33TTN", 1),
    ]
    items[1]["id"] = "S2B_33TUN_20240701_0_L2A"
    items[1]["properties"].update({"grid:code": "MGRS-33TUN", "datetime": "2024-07-01T10:00:04Z"})
    scenes = [normalize_item(it) for it in items]
    c = cube.load_cube(scenes, bands=("blue", "green", "red", "nir", "scl"), chunk_px=32)
    assert c.observation.dims == ("time",) and c.observation.dtype.kind == "i"
    assert c.observation.values.tolist() == [0, 0, 1]
    assert c.mgrs_tile.values.tolist() == ["33TTN", "33TUN", "33TTN"]
    masked = composite.mask_clouds(c)
    comp = composite.composite(masked).compute(scheduler="sync")
    assert (comp.clear_count.values == 2).all()
    ramps = [np.stack([_expected_dn(i, t) for i in range(4)]) for t in (0, 1)]
    np.testing.assert_array_equal(comp.reflectance.values, ramps[0] + 5)  # mean of both days
    # Counted per item (no observation coordinate), the overlap wins the median.
    per_item = composite.composite(masked.drop_vars("observation")).compute(scheduler="sync")
    count = per_item.clear_count.values
    assert (count[:, :10] == 2).all() and (count[:, 10:] == 3).all()
    np.testing.assert_array_equal(per_item.reflectance.values[:, :, 10:], ramps[0][:, :, 10:])
