"""Scenes of one pass are one observation: grouping, merging and compositing by observation.

Overlapping MGRS tiles of one orbit pass repeat the same acquisition as two time slices; the
composite must count it once. Numpy-level tests here; the one through ``load_cube`` is in
``test_cube.py`` (it reuses that file's COG writer).
"""

from datetime import UTC, datetime

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from s2scale import composite, cube
from s2scale.errors import ConfigError
from s2scale.items import Scene, normalize_item


def _scene(when, lon, *, platform="sentinel-2a", tile="33TTN", geometry=True, bbox=False):
    """A Scene with just what grouping reads: datetime, platform and footprint."""
    item = {"id": f"{tile}_{when}", "properties": {}}
    if platform is not None:
        item["properties"]["platform"] = platform
    box = [lon - 0.7, 46.9, lon + 0.7, 47.9]
    if geometry:
        x0, y0, x1, y1 = box
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        item["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    if bbox:
        item["bbox"] = box
    return Scene(
        id=item["id"],
        collection="sentinel-2-l2a",
        datetime=datetime.fromisoformat(when).replace(tzinfo=UTC),
        mgrs_tile=tile,
        epsg=32600 + int(tile[:2]),
        cloud_cover=None,
        processing_baseline="05.10",
        boa_offset=1000,
        reflectance_scale=1e-4,
        hrefs={},
        item=item,
    )


# ------------------------------------------------------------------------------ observation_ids
def test_same_pass_groups_and_other_days_or_platforms_stay_separate():
    scenes = [
        _scene("2024-07-01T10:00:00", 12.9, tile="32TQT"),
        _scene("2024-07-01T10:00:03", 13.6, tile="33TTN"),  # same pass, neighbouring tile
        _scene("2024-07-04T10:10:00", 13.6),  # another day
        _scene("2024-07-01T10:00:00", 13.6, platform="Sentinel-2B"),  # another satellite
        _scene("2024-07-04T10:10:02", 12.9, tile="32TQT"),  # back to the second pass
        _scene("2024-07-01T10:00:04", 14.2, platform="SENTINEL-2A", tile="33TUN"),  # case
    ]
    ids = cube.observation_ids(scenes)
    assert ids.dtype == np.int64
    assert ids.tolist() == [0, 0, 1, 2, 1, 0]
    assert cube.observation_ids([]).tolist() == []


def test_solar_day_not_utc_day():
    # 23:30 and 00:10 UTC at 30 deg E (+2 h) are both 2 July locally: one observation.
    east = [_scene("2024-07-01T23:30:00", 30.0), _scene("2024-07-02T00:10:00", 30.0)]
    assert cube.observation_ids(east).tolist() == [0, 0]
    # Same UTC day, but at 100 deg W (-6 h) 02:00 UTC is still 1 July: two observations.
    west = [_scene("2024-07-02T02:00:00", -100.0), _scene("2024-07-02T20:00:00", -100.0)]
    assert cube.observation_ids(west).tolist() == [0, 1]
    # Without a platform property, scenes group by solar day alone.
    bare = [_scene("2024-07-01T10:00:00", 13.0, platform=None)] * 2
    assert cube.observation_ids(bare).tolist() == [0, 0]


def test_footprint_centre_falls_back_to_bbox_then_zone_meridian():
    when = ("2024-07-01T23:30:00", "2024-07-02T00:30:00")
    # Centre 30 deg E (+2 h) from the bbox: both on 2 July.
    bbox_only = [_scene(w, 30.0, geometry=False, bbox=True) for w in when]
    assert cube.observation_ids(bbox_only).tolist() == [0, 0]
    # No footprint: zone 33's meridian, 15 deg E (+1 h): 2 July 00:30 and 01:30.
    no_footprint = [_scene(w, 30.0, geometry=False) for w in when]
    assert cube.observation_ids(no_footprint).tolist() == [0, 0]
    late = [_scene("2024-07-01T22:00:00", 30.0, geometry=False), no_footprint[0]]
    assert cube.observation_ids(late).tolist() == [0, 1]


def test_national_catalog_one_observation_per_day_across_zones():
    from s2scale.sim.sample import national_items

    scenes = [normalize_item(it) for it in national_items()]
    ids = cube.observation_ids(scenes)
    days = [s.datetime.date() for s in scenes]
    assert len(set(ids.tolist())) == len(set(days))
    for i in set(ids.tolist()):
        members = [s for s, j in zip(scenes, ids, strict=True) if j == i]
        assert len({s.datetime.date() for s in members}) == 1
        assert {s.mgrs_tile for s in members} == {s.mgrs_tile for s in scenes}
        assert len({s.zone for s in members}) > 1  # one pass spans several UTM zones


# ---------------------------------------------------------------------- merge_observations_block
def test_merge_takes_first_valid_pixel_in_time_order():
    a = np.array([[[0, 4]], [[3, 4]]], np.uint16)  # (band=2, y=1, x=2); x=0 invalid (band 0)
    b = np.array([[[5, 6]], [[5, 6]]], np.uint16)
    c = np.array([[[7, 8]], [[7, 8]]], np.uint16)
    stack = np.stack([a, b, c])
    out = composite.merge_observations_block(stack, np.array([0, 0, 1]))
    assert out.shape == (2, 2, 1, 2) and out.dtype == np.uint16
    np.testing.assert_array_equal(out[0], np.array([[[5, 4]], [[5, 4]]]))  # x=0 from b, x=1 a
    np.testing.assert_array_equal(out[1], c)
    # Ids without a slice give all-zero observations; no slices give none.
    assert (composite.merge_observations_block(stack, np.array([0, 0, 2]))[1] == 0).all()
    empty = composite.merge_observations_block(stack[:0], np.array([], np.int64))
    assert empty.shape == (0, 2, 1, 2)


@pytest.mark.parametrize(
    "groups", [np.array([0, 1]), np.array([0, -1, 1]), np.array([0.0, 1.0, 2.0]), np.zeros((3, 1))]
)
def test_merge_rejects_bad_groups(groups):
    with pytest.raises(ConfigError, match="one non-negative integer id per time slice"):
        composite.merge_observations_block(np.ones((3, 1, 2, 2), np.uint16), groups)


# --------------------------------------------------------------------------------- composites
def _overlap_stack():
    """Pass A seen by two overlapping tiles (one with a no-data strip), then pass B."""
    base = (
        np.arange(1, 17, dtype=np.uint16).reshape(1, 4, 4)
        * np.array([1, 2], np.uint16)[:, None, None]
    )
    a1 = base + 100
    a1[:, :, :1] = 0  # tile 1 ends left of x=1
    a2 = base + 100  # the same acquisition from the neighbouring tile
    a2[:, :, 3:] = 0  # tile 2 ends right of x=3
    b = base + 300
    return np.stack([a1, a2, b]), np.array([0, 0, 1]), base


def _reference(stack, groups):
    """Brute force per pixel: first valid slice per observation, then the median."""
    n_bands, ny, nx = stack.shape[1:]
    med = np.zeros((n_bands, ny, nx), np.uint16)
    count = np.zeros((ny, nx), np.uint16)
    for y in range(ny):
        for x in range(nx):
            picks = {}
            for t, g in enumerate(groups):
                if g not in picks and (stack[t, :, y, x] > 0).all():
                    picks[g] = stack[t, :, y, x].astype(float)
            count[y, x] = len(picks)
            if picks:
                med[:, y, x] = np.floor(np.median(list(picks.values()), axis=0) + 0.5)
    return med, count


def test_overlapping_tiles_of_one_pass_count_once():
    stack, groups, base = _overlap_stack()
    med, count = composite.composite_block(stack, groups)
    assert (count == 2).all()  # A and B everywhere, whichever tile saw A
    np.testing.assert_array_equal(med, base + 200)  # mean of A (+100) and B (+300)
    # Counted per item, the overlap (x=1, 2) is seen three times and A wins the median.
    med_items, count_items = composite.composite_block(stack)
    assert count_items[:, 1:3].tolist() == [[3, 3]] * 4
    np.testing.assert_array_equal(med_items[:, :, 1:3], (base + 100)[:, :, 1:3])


def test_composite_block_matches_brute_force_reference():
    rng = np.random.default_rng(0)
    stack = rng.integers(1, 50, size=(7, 3, 5, 6)).astype(np.uint16)
    stack[rng.random(stack.shape) < 0.3] = 0
    groups = np.array([0, 0, 1, 2, 2, 2, 3])
    med, count = composite.composite_block(stack, groups)
    ref_med, ref_count = _reference(stack, groups)
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_array_equal(med, ref_med)


def _as_cube(stack, observation=None, chunks=None):
    t, b, y, x = stack.shape
    coords = {
        "time": np.arange(t).astype("datetime64[D]"),
        "band": ["blue", "green", "red", "nir"][:b],
        "y": 5.0 - 10.0 * np.arange(y),
        "x": 5.0 + 10.0 * np.arange(x),
    }
    if observation is not None:
        coords["observation"] = ("time", np.asarray(observation))
    data = da.from_array(stack, chunks=chunks) if chunks else stack
    return xr.DataArray(data, dims=("time", "band", "y", "x"), coords=coords).rio.write_crs(
        "EPSG:32633"
    )


def test_composite_uses_the_observation_coordinate():
    stack, groups, base = _overlap_stack()
    comp = composite.composite(_as_cube(stack, groups))
    assert (comp.clear_count.values == 2).all()
    np.testing.assert_array_equal(comp.reflectance.values, base + 200)
    # Sparse or unordered ids (e.g. after selecting times) mean the same grouping.
    same = composite.composite(_as_cube(stack, [7, 7, 3]))
    xr.testing.assert_identical(same, comp)


def test_cube_without_observation_behaves_as_before():
    stack, _, _ = _overlap_stack()
    comp = composite.composite(_as_cube(stack))
    med, count = composite.composite_block(stack)
    np.testing.assert_array_equal(comp.reflectance.values, med)
    np.testing.assert_array_equal(comp.clear_count.values, count)
    # ... which is what one observation per slice gives.
    xr.testing.assert_identical(composite.composite(_as_cube(stack, [0, 1, 2])), comp)


def test_observation_must_be_integer_along_time():
    stack, _, _ = _overlap_stack()
    with pytest.raises(ConfigError, match="'observation' must hold integer ids"):
        composite.composite(_as_cube(stack, [0.0, 0.0, 1.0]))


@pytest.mark.parametrize("with_observation", [True, False])
def test_dask_and_numpy_paths_agree_in_one_task_per_chunk(with_observation):
    rng = np.random.default_rng(1)
    stack = rng.integers(1, 1000, size=(6, 4, 8, 10)).astype(np.uint16)
    stack *= (rng.random((6, 1, 8, 10)) >= 0.4).astype(np.uint16)  # whole pixels masked
    obs = [0, 0, 1, 1, 1, 2] if with_observation else None
    lazy = composite.composite(_as_cube(stack, obs, chunks=(1, 1, 4, 5)))
    eager = composite.composite(_as_cube(stack, obs))
    xr.testing.assert_identical(lazy.compute(scheduler="sync"), eager)
    ref_med, ref_count = _reference(stack, obs if obs else range(6))
    np.testing.assert_array_equal(eager.reflectance.values, ref_med)
    np.testing.assert_array_equal(eager.clear_count.values, ref_count)
    # Median and count come from the same single layer of one task per spatial chunk.
    layers = [
        {k for k in v.data.dask.layers if k.startswith("_composite_chunk")}
        for v in (lazy.reflectance, lazy.clear_count)
    ]
    assert layers[0] == layers[1] and len(layers[0]) == 1
    (name,) = layers[0]
    assert len(lazy.reflectance.data.dask.layers[name]) == 2 * 2
