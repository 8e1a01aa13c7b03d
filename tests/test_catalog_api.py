"""Search and load through real services on loopback: stac-fastapi-pgstac and nginx.

The simulated sample's COGs are served by nginx (HTTP range requests, as from a bucket); its
items, and the national metadata-only catalog, are loaded into a real STAC API.
"""

import json
import re

import numpy as np
import pytest
from services.stac_api import FlakyProxy, StacApiServer

from s2scale import catalog, cube
from s2scale.errors import ConfigError, NoScenesFoundError, ReadError, StacApiError
from s2scale.sim import SAMPLE_AOI, with_base_href

AOI = ",".join(map(str, SAMPLE_AOI))
SUMMER = "2024-06-01/2024-08-31"
NATIONAL = "sentinel-2-l2a-austria"  # the national items live in their own collection here


def _items(path):
    return json.loads(path.read_text())["features"]


@pytest.fixture(scope="module")
def cog_server(sample, range_server_factory):
    return range_server_factory(sample.root)


@pytest.fixture(scope="module")
def api(sample, national_sample, cog_server, stac_server_python):
    national = [{**it, "collection": NATIONAL} for it in _items(national_sample.catalog)]
    items = with_base_href(_items(sample.catalog), cog_server.url) + national
    collection = json.loads(sample.collection.read_text())
    collection["extent"]["temporal"]["interval"] = [["2015-06-23T00:00:00Z", None]]
    collection["extent"]["spatial"]["bbox"] = [[-180, -90, 180, 90]]
    collections = [collection, {**collection, "id": NATIONAL}]
    with StacApiServer(collections, items, server_python=stac_server_python) as server:
        yield server


def test_api_and_local_catalog_agree(api, sample):
    for cloud in (None, 50.0):
        remote = catalog.search(AOI, SUMMER, stac=api.url, max_cloud_cover=cloud)
        local = catalog.search(AOI, SUMMER, stac=sample.catalog, max_cloud_cover=cloud)
        assert [s.id for s in remote] == [s.id for s in local]
        assert [s.cloud_cover for s in remote] == [s.cloud_cover for s in local]
        assert all(s.hrefs["blue"].startswith("http://127.0.0.1") for s in remote)
    everything = catalog.search(AOI, SUMMER, stac=api.url)
    clear = catalog.search(AOI, SUMMER, stac=api.url, max_cloud_cover=50.0)
    assert 0 < len(clear) < len(everything)
    assert all(s.cloud_cover <= 50.0 for s in clear)


def test_datetime_and_bbox_filters(api):
    old = catalog.search(AOI, "2021-01-01/2021-12-31", stac=api.url)
    assert {s.processing_baseline for s in old} == {"03.01"} and {s.boa_offset for s in old} == {0}
    new = catalog.search(AOI, SUMMER, stac=api.url)
    assert {s.boa_offset for s in new} == {1000}
    assert {s.mgrs_tile for s in new} >= {"32TQT", "33TTN"}
    vienna = catalog.search(
        "16.3,48.15,16.45,48.25", "2024-06-01/2024-06-10", stac=api.url, collection=NATIONAL
    )
    assert {s.mgrs_tile for s in vienna} <= {"33UXP", "33UWP", "33UXQ", "33UWQ"}
    assert vienna and all(s.hrefs["red"].startswith("s3://") for s in vienna)


def test_more_than_one_page(api, national_sample):
    proxy = FlakyProxy(api.url, fail_first_n=0).start()
    try:
        result = catalog.search(
            "austria", SUMMER, stac=proxy.url, page_size=100, collection=NATIONAL
        )
    finally:
        proxy.stop()
    local = catalog.search("austria", SUMMER, stac=national_sample.catalog)
    assert len(result) == len(local) > 300
    assert [s.id for s in result] == [s.id for s in local]
    assert proxy.request_count >= 4  # landing page, collections and at least 2 search pages


def test_two_utm_zones_group(api):
    result = catalog.search(AOI, SUMMER, stac=api.url)
    zones = result.by_zone()
    assert list(zones) == [32632, 32633]
    assert {s.mgrs_tile for s in zones[32632]} == {"32TQT"}
    assert [p.epsg for p in cube.plan_cubes(result, AOI)] == [32632, 32633]


def test_unknown_collection_lists_available(api):
    with pytest.raises(ConfigError, match=r"'sentinel-1-grd' is not offered.*sentinel-2-l2a"):
        catalog.search(AOI, SUMMER, stac=api.url, collection="sentinel-1-grd")


def test_empty_results_name_aoi_and_dates(api):
    with pytest.raises(NoScenesFoundError, match=re.escape("2019-01-01/2019-02-01")):
        catalog.search(AOI, "2019-01-01/2019-02-01", stac=api.url)
    with pytest.raises(NoScenesFoundError, match=r"-3\.8"):  # AOI in Spain: outside coverage
        catalog.search("-3.8,40.3,-3.6,40.5", SUMMER, stac=api.url)


@pytest.mark.timeout(30)  # bounded: 2 retries with a 2 s timeout must not hang
def test_unreachable_api_fails_within_bounded_time():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StacApiError, match=f"127.0.0.1:{port}"):
        catalog.search(AOI, SUMMER, stac=f"http://127.0.0.1:{port}", timeout_s=2, max_retries=2)


def test_http_500_then_success(api, sample):
    proxy = FlakyProxy(api.url, fail_first_n=2, status=500).start()
    try:
        result = catalog.search(AOI, SUMMER, stac=proxy.url, max_retries=3)
    finally:
        proxy.stop()
    assert proxy.failed_count == 2
    assert len(result) == len(catalog.search(AOI, SUMMER, stac=sample.catalog))


def test_http_500_forever_is_a_clear_error(api):
    proxy = FlakyProxy(api.url, fail_first_n=1000, status=503).start()
    try:
        with pytest.raises(StacApiError, match="after 2 retries"):
            catalog.search(AOI, SUMMER, stac=proxy.url, max_retries=2)
    finally:
        proxy.stop()
    assert proxy.request_count == 3


def test_cube_over_http_range_requests_equals_local(api, sample, cog_server):
    remote = catalog.search(AOI, SUMMER, stac=api.url, max_cloud_cover=50)
    local = catalog.search(AOI, SUMMER, stac=sample.catalog, max_cloud_cover=50)
    cog_server.clear_requests()
    zone = 32633
    bands = ("blue", "green", "red", "nir", "scl")
    a = cube.load_cube(remote.by_zone()[zone], bands=bands, chunk_px=256).compute(scheduler="sync")
    b = cube.load_cube(local.by_zone()[zone], bands=bands, chunk_px=256).compute(scheduler="sync")
    np.testing.assert_array_equal(a.values, b.values)
    assert (a.values > 0).mean() > 0.5
    reqs = cog_server.requests(method="GET")
    assert reqs and all(r.status == 206 and r.range.startswith("bytes=") for r in reqs)


def test_missing_and_corrupt_cogs_over_http(api, sample, cog_server):
    from s2scale.items import normalize_item

    scenes = list(catalog.search(AOI, SUMMER, stac=api.url))
    (sample.root / "corrupt").mkdir(exist_ok=True)
    (sample.root / "corrupt" / "B08.tif").write_bytes(b"II*\x00" + b"\x17" * 4000)
    missing = scenes[0].hrefs["nir"].replace(".tif", "-missing.tif")
    corrupt = cog_server.url_for("corrupt/B08.tif")
    broken = []
    for scene, href in ((scenes[0], missing), (scenes[1], corrupt)):
        item = json.loads(json.dumps(scene.item))
        item["assets"]["nir"]["href"] = href
        broken.append(normalize_item(item))
        with pytest.raises(ReadError, match=re.escape(href)):
            cube.check_assets([broken[-1], *scenes[2:]])
    ok, skipped = cube.check_assets([*broken, *scenes[2:]], skip_errors=True)
    assert len(ok) == len(scenes) - 2
    assert [h for h, _ in skipped] == [missing, corrupt]
