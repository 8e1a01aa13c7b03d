import json

import pytest
import shapely
import shapely.ops
from shapely.geometry import box

from s2scale import grid
from s2scale.errors import ConfigError


def test_builtin_austria_is_austria():
    geom = grid.resolve_aoi("austria")
    minx, miny, maxx, maxy = geom.bounds
    assert 9.4 < minx < 9.6 and 17.1 < maxx < 17.2
    assert 46.3 < miny < 46.4 and 48.9 < maxy < 49.1
    assert geom.contains(shapely.Point(16.37, 48.21))  # Vienna
    assert not geom.contains(shapely.Point(11.58, 48.14))  # Munich


@pytest.mark.parametrize(
    "aoi",
    [
        "11.9,47.4,12.1,47.6",
        (11.9, 47.4, 12.1, 47.6),
        "POLYGON ((11.9 47.4, 12.1 47.4, 12.1 47.6, 11.9 47.6, 11.9 47.4))",
        box(11.9, 47.4, 12.1, 47.6),
    ],
)
def test_aoi_forms_agree(aoi):
    assert grid.resolve_aoi(aoi).bounds == pytest.approx((11.9, 47.4, 12.1, 47.6))


def test_aoi_geojson_file(tmp_path):
    path = tmp_path / "aoi.geojson"
    feat = {
        "type": "Feature",
        "properties": {},
        "geometry": shapely.geometry.mapping(box(1, 2, 3, 4)),
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    assert grid.resolve_aoi(str(path)).bounds == (1, 2, 3, 4)
    assert grid.resolve_aoi(path).bounds == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("aoi", "match"),
    [
        ("nowhere-land", "cannot understand AOI"),
        ("12.1,47.4,11.9,47.6", "min < max"),
        ("500000,5200000,510000,5210000", "longitude/latitude"),
        ("missing.geojson", "does not exist"),
        ("POINT (12 47)", "no area"),
    ],
)
def test_aoi_errors_name_the_value(aoi, match):
    with pytest.raises(ConfigError, match=match):
        grid.resolve_aoi(aoi)


@pytest.mark.parametrize(
    ("name", "epsg", "ulx", "uly"),
    [
        # Values from the real Earth Search v1 / Planetary Computer / Earth Search v0 items.
        ("24MVV", 32724, 399960.0, 9500020.0),
        ("24MWV", 32724, 499980.0, 9500020.0),
        ("24MXV", 32724, 600000.0, 9500020.0),
        ("24MUA", 32724, 300000.0, 9600040.0),
        ("47XML", 32647, 399960.0, 9100020.0),
        ("47XMJ", 32647, 399960.0, 8900040.0),
        ("46XES", 32646, 499980.0, 9200040.0),
        ("06VVN", 32606, 399960.0, 6800040.0),
        ("28QCH", 32628, 300000.0, 2300040.0),
    ],
)
def test_mgrs_tile_grid_matches_real_items(name, epsg, ulx, uly):
    t = grid.mgrs_tile(name)
    assert (t.epsg, t.ulx, t.uly) == (epsg, ulx, uly)
    assert t.shape(10.0) == (10980, 10980) and t.shape(20.0) == (5490, 5490)


def test_mgrs_tile_rejects_garbage():
    with pytest.raises(ConfigError, match="not an MGRS tile id"):
        grid.mgrs_tile("XYZ")


def test_real_item_footprints_lie_in_their_tiles(shared_data):
    items = json.loads(
        (shared_data / "stac/earthsearch_v1_sentinel-2-l2a_search_page.json").read_text()
    )
    for it in items["features"]:
        tile = grid.mgrs_tile(it["properties"]["grid:code"].split("-")[1])
        data = shapely.geometry.shape(it["geometry"])
        assert tile.footprint.buffer(1e-3).contains(data), it["id"]


def test_tiles_for_aoi_straddling_zone_boundary():
    tiles = grid.tiles_for_aoi("11.97,47.47,12.03,47.51")
    assert [t.name for t in tiles] == ["32TQT", "33TTN"]


def test_austria_tiles():
    names = {t.name for t in grid.tiles_for_aoi("austria")}
    # Tiles that certainly cover Austria (Vorarlberg, Salzburg, Vienna, Tyrol at 12 deg E).
    assert {"32TNT", "33UUP", "33UXP", "32TQT", "33TTN"} <= names
    union = shapely.union_all([grid.mgrs_tile(n).footprint for n in names])
    assert union.contains(grid.resolve_aoi("austria"))
    assert {int(n[:2]) for n in names} <= {32, 33, 34}


def test_utm_zone_boundary():
    assert grid.utm_zone_of(11.999999) == 32 and grid.utm_zone_of(12.0) == 33


def test_target_grid_nests_in_10m_utm_pixels():
    g = grid.target_grid("11.97,47.47,12.03,47.51", crs="EPSG:32633", resolution_m=5.0)
    assert all(b % 10 == 0 for b in g.bounds)
    rows, cols = g.shape
    assert rows % 2 == 0 and cols % 2 == 0
    y, x = g.coords()
    assert (x[0] - 2.5) % 10 == 0 and (y[0] + 2.5) % 10 == 0


def test_target_grid_default_is_laea():
    g = grid.target_grid("austria")
    assert g.crs == "EPSG:3035" and g.resolution_m == 5.0
    # Austria is about 570 km x 295 km.
    assert 560_000 < g.bounds[2] - g.bounds[0] < 580_000
    with pytest.raises(ConfigError, match="multiple of resolution_m"):
        grid.target_grid("austria", resolution_m=3.0)


def test_chunk_plan_keeps_only_aoi_chunks():
    g = grid.target_grid("austria")
    full = grid.plan_chunks(g, 4096)
    aoi = grid.plan_chunks(g, 4096, "austria")
    assert len(full) == full.total_chunks == aoi.total_chunks
    assert 0.4 * len(full) < len(aoi) < 0.8 * len(full)
    # Regions tile the grid without overlap.
    area = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in full)
    assert area == g.shape[0] * g.shape[1]
    with pytest.raises(ConfigError, match="chunk_px"):
        grid.plan_chunks(g, 0)


@pytest.mark.parametrize(("crs", "chunk_px"), [("EPSG:3035", 2048), ("EPSG:32633", 1536)])
def test_chunk_plan_is_exactly_the_chunks_that_touch_the_aoi(crs, chunk_px):
    # Reference: every chunk box projected to lon/lat and tested against Austria directly.
    from pyproj import Transformer

    g = grid.target_grid("austria", crs=crs)
    plan = grid.plan_chunks(g, chunk_px, "austria")
    austria = grid.resolve_aoi("austria")
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    t = g.transform
    rows, cols = g.shape
    expected = []
    for r0 in range(0, rows, chunk_px):
        for c0 in range(0, cols, chunk_px):
            r1, c1 = min(r0 + chunk_px, rows), min(c0 + chunk_px, cols)
            cell = shapely.segmentize(
                box(t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e), 500.0
            )
            ll = shapely.ops.transform(to_ll.transform, cell)
            if ll.intersects(austria):
                expected.append((r0, r1, c0, c1))
    assert list(plan.regions) == expected


def test_target_grid_is_an_odc_geobox():
    g = grid.target_grid("12.0,47.0,12.3,47.2", crs="EPSG:32633")
    gbox = g.geobox
    assert tuple(gbox.shape) == g.shape and gbox.crs == "EPSG:32633"
    y, x = g.coords()
    assert y[0] == g.bounds[3] - 2.5 and x[0] == g.bounds[0] + 2.5
    assert (y[:-1] > y[1:]).all() and len(x) == g.shape[1]
