import fsspec
import numpy as np
import pytest

from s2scale.cube import Zone
from s2scale.cubestore import create_cube_store, open_cube_store, write_cube_region
from s2scale.errors import GridMismatchError, ReadError

ZONES = (
    Zone(epsg=32632, bounds=(700_000.0, 5_200_000.0, 700_640.0, 5_200_320.0)),
    Zone(epsg=32633, bounds=(300_000.0, 5_200_000.0, 300_320.0, 5_200_320.0)),
)
BANDS = ("blue", "green")


def _create(path, **kw):
    args = {"bands": BANDS, "chunk_px": 16, "fingerprint": {"mask_snow": False}} | kw
    return create_cube_store(path, ZONES, **args)


def test_create_write_resume_and_refuse(tmp_path):
    path = tmp_path / "comp.zarr"
    store = _create(path)
    assert store.zones == ZONES and store.bands == BANDS and store.chunk_px == 16
    assert [store.done(z).shape for z in store.zones] == [(2, 4), (2, 2)]
    data = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    write_cube_region(data, path=store.path, group="epsg32633", window=(16, 32, 0, 16),
                      chunk_px=16)  # fmt: skip
    again = _create(path)
    assert again.done(ZONES[1]).tolist() == [[False, False], [True, False]]
    np.testing.assert_array_equal(again.reflectance(ZONES[1])[:, 16:, :16], data[:2])
    ds = again.open_zone(ZONES[0])
    assert ds.rio.crs.to_epsg() == 32632 and ds.rio.transform() == ZONES[0].transform
    with pytest.raises(GridMismatchError, match=r"chunk_px: 16 -> 32.*--overwrite"):
        _create(path, chunk_px=32)
    assert _create(path, chunk_px=32, overwrite=True).chunk_px == 32


def test_fsspec_url_and_foreign_paths(tmp_path):
    url = "memory://s2scale-cubestore/comp.zarr"
    try:
        store = _create(url)
        assert store.path == url and open_cube_store(url).zones == ZONES
    finally:
        fsspec.filesystem("memory").rm("/s2scale-cubestore", recursive=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.txt").write_text("x")
    with pytest.raises(GridMismatchError, match="not a Zarr store"):
        _create(tmp_path / "foreign")
    with pytest.raises(ReadError, match="no composite store"):
        open_cube_store(tmp_path / "missing.zarr")
