"""Catalog tests on local catalogs and the real provider items in ../shared/data/stac."""

import json

import pytest

from s2scale import catalog
from s2scale.errors import ConfigError, NoScenesFoundError
from s2scale.items import MalformedItemError, normalize_item


def _load(shared_data, name):
    data = json.loads((shared_data / "stac" / name).read_text())
    if isinstance(data, list):
        return data
    return data.get("features", [data])


@pytest.mark.parametrize(
    ("name", "n", "epsg", "baseline", "offset", "tile"),
    [
        ("earthsearch_v1_sentinel-2-l2a_search_page.json", 4, 32724, "05.11", 1000, "24MVV"),
        ("planetarycomputer_sentinel-2-l2a_4items.json", 4, 32647, "05.10", 1000, "47XML"),
        (
            "planetarycomputer_S2B_MSIL2A_20190629T212529_R043_T06VVN.json",
            1,
            32606,
            "02.12",
            0,
            "06VVN",
        ),
        ("earthsearch_v0_S2A_28QCH_20200714_0_L2A.json", 1, 32628, "02.14", 0, "28QCH"),
    ],
)
def test_real_items_normalise(shared_data, name, n, epsg, baseline, offset, tile):
    items = _load(shared_data, name)
    assert len(items) == n
    scene = normalize_item(items[0])
    assert (scene.epsg, scene.processing_baseline, scene.boa_offset, scene.mgrs_tile) == (
        epsg,
        baseline,
        offset,
        tile,
    )
    assert set(scene.hrefs) == {"blue", "green", "red", "nir", "scl"}
    blue = scene.item["assets"]["blue"]
    assert blue["proj:epsg"] == epsg and blue["proj:shape"] == [10980, 10980]
    assert len(blue["proj:transform"]) == 6
    assert scene.item["assets"]["scl"]["proj:shape"] == [5490, 5490]
    assert scene.item["assets"]["scl"]["proj:transform"][0] == 20.0
    # Asset mapping: the provider's own key for B02 ends up as "blue".
    assert "B02" in scene.hrefs["blue"] or scene.hrefs["blue"].endswith("B02.tif")
    assert scene.reflectance_scale == pytest.approx(1e-4)


def test_proj_code_only_items_get_epsg(shared_data):
    item = _load(shared_data, "earthsearch_v1_sentinel-2-l2a_search_page.json")[0]
    del item["properties"]["proj:epsg"]
    item["properties"]["proj:code"] = "EPSG:32724"
    scene = normalize_item(item)
    assert scene.epsg == 32724
    assert scene.item["properties"]["proj:epsg"] == 32724
    assert scene.item["assets"]["red"]["proj:epsg"] == 32724


def test_offset_contradiction_is_malformed(shared_data):
    item = _load(shared_data, "earthsearch_v1_sentinel-2-l2a_search_page.json")[0]
    item["properties"]["s2:processing_baseline"] = "03.01"
    with pytest.raises(MalformedItemError, match=r"baseline 03\.01 implies 0"):
        normalize_item(item)


def test_missing_asset_is_malformed(shared_data):
    item = _load(shared_data, "planetarycomputer_sentinel-2-l2a_4items.json")[0]
    del item["assets"]["B08"]
    with pytest.raises(MalformedItemError, match="no 'nir' asset"):
        normalize_item(item)


@pytest.fixture
def local_catalog(shared_data, tmp_path):
    items = _load(shared_data, "earthsearch_v1_sentinel-2-l2a_search_page.json")
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path, items


def test_local_search_filters(local_catalog):
    path, items = local_catalog
    everything = catalog.search("-40.5,-6,-38,-4", "2025-07-01/2025-08-01", stac=path)
    assert len(everything) == 4
    assert [s.datetime for s in everything] == sorted(s.datetime for s in everything)
    clear = catalog.search(
        "-40.5,-6,-38,-4", "2025-07-01/2025-08-01", stac=path, max_cloud_cover=30
    )
    assert {s.id for s in clear} == {
        i["id"] for i in items if i["properties"]["eo:cloud_cover"] <= 30
    }
    # A small box touching only the westernmost tile.
    west = catalog.search("-39.89,-4.72,-39.88,-4.70", "2025-07-31", stac=path)
    assert [s.mgrs_tile for s in west] == ["24MVV"]


def test_local_search_no_scenes_names_aoi_and_dates(local_catalog):
    path, _ = local_catalog
    with pytest.raises(NoScenesFoundError, match=r"2024-01-01/2024-02-01.*widen the dates"):
        catalog.search("-40.5,-6,-38,-4", "2024-01-01/2024-02-01", stac=path)
    with pytest.raises(NoScenesFoundError, match=r"11\.9"):
        catalog.search("11.9,47.4,12.1,47.6", "2025-07-01/2025-08-01", stac=path)


def test_skip_malformed_items_only_when_asked(local_catalog, tmp_path):
    _, items = local_catalog
    del items[1]["assets"]["red"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with pytest.raises(MalformedItemError, match="no 'red' asset"):
        catalog.search("-40.5,-6,-38,-4", "2025-07-31", stac=path)
    result = catalog.search("-40.5,-6,-38,-4", "2025-07-31", stac=path, skip_errors=True)
    assert len(result) == 3
    assert [sid for sid, _ in result.skipped] == [items[1]["id"]]


def test_stac_geoparquet_gives_same_results(local_catalog, tmp_path):
    import stac_geoparquet.arrow as sgpa

    path, items = local_catalog
    table = sgpa.parse_stac_items_to_arrow(items)
    pq = tmp_path / "items.parquet"
    sgpa.to_parquet(table, pq)
    a = catalog.search("-40.5,-6,-38,-4", "2025-07-01/2025-08-01", stac=path, max_cloud_cover=40)
    b = catalog.search("-40.5,-6,-38,-4", "2025-07-01/2025-08-01", stac=pq, max_cloud_cover=40)
    assert [s.to_json() for s in a] == [s.to_json() for s in b]


def test_bad_arguments():
    with pytest.raises(ConfigError, match="START/END"):
        catalog.parse_datetime_range("2024-01-01/2024-02-01/2024-03-01")
    with pytest.raises(ConfigError, match="ends before it starts"):
        catalog.parse_datetime_range("2024-02-01/2024-01-01")
    with pytest.raises(ConfigError, match="neither an http"):
        catalog.search("austria", "2024-06-01/2024-06-02", stac="/nonexistent/catalog.json")
    with pytest.raises(ConfigError, match="max_cloud_cover"):
        catalog.search("austria", "2024-06-01/2024-06-02", stac="x.json", max_cloud_cover=150)
