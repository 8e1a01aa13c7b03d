"""Orthophoto headers, dates, bands, listing and rendering onto the Sentinel-2 grid."""

import json
import warnings

import numpy as np
import pytest
import rasterio
from conftest import write_like

from s2scale.errors import ConfigError
from s2scale.grid import TargetGrid
from s2scale.pairs import (
    list_orthophotos,
    nested_grid,
    open_orthophoto,
    pair_window,
    read_ortho_window,
    render_hr,
)
from s2scale.pairs.ortho import BandMismatchError, MissingCRSError, MissingDateError


def test_sample_orthophoto_carries_its_date(small_sample):
    info = open_orthophoto(small_sample.orthophoto)
    assert info.id == "ortho_31287" and info.crs == "EPSG:31287"
    assert info.acquired.date().isoformat() == "2024-07-10"
    assert info.date_source == "metadata:ACQUISITION_DATE"
    assert info.bands == ("red", "green", "blue", "nir") and info.resolution_m == 1.0
    given = open_orthophoto(small_sample.orthophoto, acquired="2024-06-01")
    assert given.acquired.date().isoformat() == "2024-06-01" and given.date_source == "given"


def test_tiff_datetime_and_missing_date(small_sample, tmp_path):
    tiff = write_like(small_sample.orthophoto, tmp_path / "a.tif",
                      tags={"TIFFTAG_DATETIME": "2023:05:04 09:00:00"})  # fmt: skip
    info = open_orthophoto(tiff)
    assert info.acquired.isoformat() == "2023-05-04T09:00:00+00:00"
    bare = write_like(small_sample.orthophoto, tmp_path / "b.tif", tags={})
    with pytest.raises(MissingDateError, match="--ortho-date"):
        open_orthophoto(bare)
    assert open_orthophoto(bare, acquired="2023-05-04").acquired.day == 4
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        open_orthophoto(bare, acquired="4 May 2023")


def test_missing_crs_is_a_clear_error(small_sample, tmp_path):
    no_crs = write_like(small_sample.orthophoto, tmp_path / "nocrs.tif", crs=None)
    with pytest.raises(MissingCRSError, match=r"no CRS.*--ortho-crs"):
        open_orthophoto(no_crs)
    assert open_orthophoto(no_crs, crs="EPSG:31287").crs == "EPSG:31287"
    plain = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=3,
                           dtype="uint8") as dst:  # fmt: skip
            dst.write(np.ones((3, 8, 8), np.uint8))
    with pytest.raises(MissingCRSError, match="not georeferenced"):
        open_orthophoto(plain, acquired="2024-01-01")


def test_band_names_and_band_count_mismatch(small_sample, tmp_path):
    with rasterio.open(small_sample.orthophoto) as src:
        rgb = src.read([1, 2, 3])
    plain_rgb = write_like(small_sample.orthophoto, tmp_path / "rgb.tif", data=rgb,
                           descriptions=(None, None, None))  # fmt: skip
    info = open_orthophoto(plain_rgb)
    assert info.bands == ("red", "green", "blue")
    assert info.band_index(["blue", "green", "red"]) == [3, 2, 1]
    with pytest.raises(BandMismatchError, match=r"missing \['nir'\].*--bands"):
        info.band_index(["blue", "green", "red", "nir"])
    with pytest.raises(BandMismatchError, match="one name per band"):
        open_orthophoto(plain_rgb, bands=("red", "green", "blue", "nir"))
    swapped = open_orthophoto(small_sample.orthophoto, bands=("nir", "red", "green", "blue"))
    assert swapped.band_index(["red"]) == [2]
    esa = write_like(small_sample.orthophoto, tmp_path / "esa.tif",
                     descriptions=("B08", "B04", "B03", "B02"))  # fmt: skip
    assert open_orthophoto(esa).bands == ("nir", "red", "green", "blue")


def test_listing_globs_folders_and_stac(small_sample, tmp_path):
    folder = small_sample.orthophoto.parent
    assert [s.href for s in list_orthophotos([str(folder / "*.tif")])] == [
        str(small_sample.orthophoto)
    ]
    assert len(list_orthophotos([folder, small_sample.orthophoto])) == 1  # duplicates once
    items = {
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature", "id": "flight-7", "properties": {"datetime": "2024-07-09T09:00:00Z"},
            "geometry": None, "assets": {"image": {"href": "orthophoto/ortho_31287.tif",
                                                   "type": "image/tiff; application=geotiff"}},
        }],
    }  # fmt: skip
    stac = small_sample.root / "orthos.json"
    stac.write_text(json.dumps(items))
    (src,) = list_orthophotos([stac])
    info = open_orthophoto(src.href, ortho_id=src.id, stac_datetime=src.datetime)
    assert info.id == "flight-7" and info.date_source == "stac" and info.acquired.day == 9
    with pytest.raises(ConfigError, match="matches no file"):
        list_orthophotos([str(tmp_path / "*.tif")])
    with pytest.raises(ConfigError, match="does not exist"):
        list_orthophotos([tmp_path / "missing.tif"])
    with pytest.raises(ConfigError, match="--ortho-collection"):
        list_orthophotos(["http://127.0.0.1:9/stac"])


def test_render_moves_the_content_never_the_grid(small_sample):
    info = open_orthophoto(small_sample.orthophoto)
    bounds = pair_window(info, 32633, lattice_m=320.0)
    lr_grid = TargetGrid("EPSG:32633", 10.0, bounds)
    hr_grid = nested_grid(lr_grid)
    from rasterio.warp import transform_bounds

    window = read_ortho_window(
        info, transform_bounds("EPSG:32633", info.crs, *bounds), ["blue", "green", "red"]
    )
    base = render_hr(window, hr_grid)
    moved = render_hr(window, hr_grid, (0.0, 1.0))  # one LR pixel = two HR pixels east
    assert base.shape == moved.shape == (3, *hr_grid.shape)
    rows = np.isfinite(base).all(0).any(1)
    a, b = base[:, rows, 40:-40], moved[:, rows, 42:-38]
    ok = np.isfinite(a).all(0) & np.isfinite(b).all(0)
    assert ok.mean() > 0.5
    assert np.abs(a - b)[:, ok].mean() < 0.05 * np.abs(a[:, ok] - a[:, ok].mean()).mean()
    # outside the orthophoto: no data
    assert np.isnan(base[:, 0, 0]).all()
    # the blue band is the file's third band
    assert np.nanmean(base[0]) == pytest.approx(np.nanmean(render_hr(
        read_ortho_window(info, transform_bounds("EPSG:32633", info.crs, *bounds), ["blue"]),
        hr_grid)[0]), rel=1e-6)  # fmt: skip


def test_all_zero_pixels_and_nodata_are_invalid(small_sample, tmp_path):
    with rasterio.open(small_sample.orthophoto) as src:
        data = src.read()
    data[:, :100, :] = 0
    data[0, 500, 500] = 7
    holed = write_like(small_sample.orthophoto, tmp_path / "holed.tif", data=data)
    info = open_orthophoto(holed)
    win = read_ortho_window(info, info.bounds, ["red", "green"])
    assert not win.valid[:100].any() and win.valid[100:].all()
    with rasterio.open(holed, "r+") as dst:
        dst.nodata = 7
    win = read_ortho_window(open_orthophoto(holed), info.bounds, ["red", "green"])
    assert not win.valid[500, 500] and win.valid[501, 501]
