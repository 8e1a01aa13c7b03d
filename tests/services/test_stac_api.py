"""Tests of the real test services: STAC API (pgstac), nginx range server, flaky proxy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from s2scale.errors import S2ScaleError
from services.stac_api import (
    FlakyProxy,
    ServiceError,
    StacApiServer,
    resolve_server_python,
)

COLLECTION_ID = "sentinel-2-l2a"
# Loopback only: never send test traffic through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _collection() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION_ID,
        "title": "Sentinel-2 Level-2A (test)",
        "description": "Earth Search v1 shaped test collection",
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
        },
    }


def _item(item_id: str, bbox: list[float], when: str, *, epsg: int, cloud: float) -> dict[str, Any]:
    """An item shaped like Earth Search v1 ``sentinel-2-l2a`` (see shared/data/stac)."""
    west, south, east, north = bbox
    tile = item_id.split("_")[1]
    base = f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/{item_id}"

    def band(key: str, name: str, gsd: int, dtype: str = "uint16") -> dict[str, Any]:
        raster: dict[str, Any] = {"nodata": 0, "data_type": dtype, "spatial_resolution": gsd}
        if dtype == "uint16":
            raster |= {"scale": 0.0001, "offset": -0.1}
        size = 109800 // gsd
        return {
            "href": f"{base}/{name}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": key,
            "gsd": gsd,
            "proj:shape": [size, size],
            "proj:transform": [gsd, 0, 499980, 0, -gsd, 5300040],
            "raster:bands": [raster],
            "roles": ["data", "reflectance"] if dtype == "uint16" else ["data"],
        }

    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": COLLECTION_ID,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "bbox": bbox,
        "properties": {
            "datetime": when,
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "eo:cloud_cover": cloud,
            "proj:code": f"EPSG:{epsg}",
            "mgrs:utm_zone": int(tile[:2]),
            "mgrs:latitude_band": tile[2],
            "mgrs:grid_square": tile[3:],
            "grid:code": f"MGRS-{tile}",
            "s2:processing_baseline": "05.10",
            "earthsearch:boa_offset_applied": True,
        },
        "links": [],
        "assets": {
            "blue": band("blue", "B02", 10),
            "green": band("green", "B03", 10),
            "red": band("red", "B04", 10),
            "nir": band("nir", "B08", 10),
            "scl": band("scl", "SCL", 20, dtype="uint8"),
        },
    }


VIENNA_BBOX = [16.2, 48.1, 16.5, 48.3]
ITEMS = [
    _item(
        "S2A_33UXP_20240701_0_L2A",
        [15.6, 47.7, 17.1, 48.7],
        "2024-07-01T09:56:11Z",
        epsg=32633,
        cloud=3.5,
    ),
    _item(
        "S2B_33UXP_20240716_0_L2A",
        [15.6, 47.7, 17.1, 48.7],
        "2024-07-16T10:06:09Z",
        epsg=32633,
        cloud=41.0,
    ),
    _item(
        "S2A_32TPT_20240705_0_L2A",
        [10.3, 46.8, 11.7, 47.8],
        "2024-07-05T10:16:01Z",
        epsg=32632,
        cloud=12.0,
    ),
]


@pytest.fixture(scope="module")
def stac_api(stac_server_python: str) -> Iterator[StacApiServer]:
    with StacApiServer([_collection()], ITEMS, server_python=stac_server_python) as api:
        yield api


def _search_ids(url: str, **kwargs: Any) -> set[str]:
    from pystac_client import Client

    return {item.id for item in Client.open(url).search(**kwargs).items()}


def test_search_by_bbox_and_datetime(stac_api: StacApiServer) -> None:
    url = stac_api.url
    assert _search_ids(url, collections=[COLLECTION_ID], bbox=VIENNA_BBOX) == {
        "S2A_33UXP_20240701_0_L2A",
        "S2B_33UXP_20240716_0_L2A",
    }
    assert _search_ids(
        url, collections=[COLLECTION_ID], bbox=VIENNA_BBOX, datetime="2024-07-10/2024-07-31"
    ) == {"S2B_33UXP_20240716_0_L2A"}
    assert _search_ids(url, collections=[COLLECTION_ID], datetime="2024-07-02/2024-07-06") == {
        "S2A_32TPT_20240705_0_L2A"
    }
    assert _search_ids(url, bbox=[0.0, 0.0, 1.0, 1.0]) == set()


def test_items_keep_their_fields(stac_api: StacApiServer) -> None:
    from pystac_client import Client

    client = Client.open(stac_api.url)
    [item] = client.search(ids=["S2A_32TPT_20240705_0_L2A"]).items()
    assert item.properties["proj:code"] == "EPSG:32632"
    assert item.properties["eo:cloud_cover"] == 12.0
    red = item.assets["red"].to_dict()
    assert red["raster:bands"][0]["scale"] == 0.0001
    assert red["raster:bands"][0]["offset"] == -0.1
    assert red["proj:transform"][0] == 10
    assert item.get_self_href().startswith(stac_api.url)


def test_load_adds_items_to_running_server(stac_api: StacApiServer) -> None:
    extra = _item(
        "S2A_33TWN_20240720_0_L2A",
        [14.9, 46.0, 16.3, 47.0],
        "2024-07-20T10:00:00Z",
        epsg=32633,
        cloud=0.5,
    )
    stac_api.load(items=[extra])
    assert _search_ids(stac_api.url, datetime="2024-07-19/2024-07-21") == {extra["id"]}


def test_stop_removes_everything(stac_server_python: str) -> None:
    api = StacApiServer([_collection()], [], server_python=stac_server_python).start()
    url, tmpdir = api.url, api._tmpdir
    assert tmpdir is not None and tmpdir.is_dir()
    with _OPENER.open(url + "/collections", timeout=10) as resp:
        ids = [c["id"] for c in json.load(resp)["collections"]]
    assert ids == [COLLECTION_ID]
    api.stop()
    api.stop()  # idempotent
    assert not tmpdir.exists()
    with pytest.raises(ServiceError, match="not running"):
        _ = api.url
    with pytest.raises(urllib.error.URLError):
        _OPENER.open(url + "/", timeout=2)


def test_failed_start_raises_with_log_and_cleans_up(stac_server_python: str, tmp_path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'boom: pypgstac is broken' >&2\nexit 3\n")
    fake.chmod(0o755)
    api = StacApiServer([_collection()], ITEMS, server_python=fake)
    with pytest.raises(ServiceError, match=r"(?s)exit 3.*boom: pypgstac is broken"):
        api.start()
    assert api._tmpdir is None and api._postgres is None


def test_missing_server_python_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"setup-services\.sh") as info:
        resolve_server_python(tmp_path / "no-such-python")
    assert isinstance(info.value, S2ScaleError)
    assert isinstance(info.value, RuntimeError)


# ----------------------------------------------------------------------------- range server


@pytest.fixture(scope="module")
def cog_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    import rasterio
    from rasterio.transform import from_origin

    root = tmp_path_factory.mktemp("cogs")
    data = np.random.default_rng(42).integers(0, 10000, size=(1024, 1024), dtype=np.uint16)
    profile = {
        "driver": "COG",
        "width": 1024,
        "height": 1024,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(600000, 5350000, 10, 10),
        "blocksize": 256,
        "compress": "deflate",
        "overviews": "none",
    }
    (root / "scene").mkdir()
    with rasterio.open(root / "scene" / "B04.tif", "w", **profile) as dst:
        dst.write(data, 1)
    (root / "hello.txt").write_text("hello, range\n")
    return root, data


def test_cog_window_read_uses_range_requests(range_server_factory, cog_dir) -> None:
    import rasterio
    from rasterio.windows import Window

    root, data = cog_dir
    server = range_server_factory(root)
    server.clear_requests()
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MAX_RETRY="0"),
        rasterio.open(server.url_for("scene/B04.tif")) as src,
    ):
        assert src.crs.to_epsg() == 32633
        window = src.read(1, window=Window(300, 500, 64, 64))
    np.testing.assert_array_equal(window, data[500:564, 300:364])

    gets = server.requests(method="GET")
    assert gets, "GDAL made no GET requests"
    assert all(r.path == "/scene/B04.tif" for r in gets)
    assert all(r.status == 206 and r.range and r.range.startswith("bytes=") for r in gets)
    file_size = (root / "scene" / "B04.tif").stat().st_size
    assert server.bytes_sent() < file_size / 2


def test_range_header_gets_206(range_server_factory, cog_dir) -> None:
    root, _ = cog_dir
    server = range_server_factory(root)
    server.clear_requests()
    head = urllib.request.Request(server.url_for("hello.txt"), method="HEAD")
    with _OPENER.open(head, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Length"] == "13"
    request = urllib.request.Request(server.url_for("hello.txt"), headers={"Range": "bytes=7-11"})
    with _OPENER.open(request, timeout=10) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == "bytes 7-11/13"
        assert resp.read() == b"range"
    assert server.requests() == [("/hello.txt", 200, None), ("/hello.txt", 206, "bytes=7-11")]
    assert server.requests(method="head") == [("/hello.txt", 200, None)]


# ----------------------------------------------------------------------------- flaky proxy


def test_flaky_proxy_fails_then_forwards(range_server_factory, cog_dir) -> None:
    root, _ = cog_dir
    server = range_server_factory(root)
    with FlakyProxy(server.url, fail_first_n=1, status=500) as proxy:
        with pytest.raises(urllib.error.HTTPError) as info:
            _OPENER.open(proxy.url + "/hello.txt", timeout=10)
        assert info.value.code == 500
        info.value.close()
        request = urllib.request.Request(proxy.url + "/hello.txt", headers={"Range": "bytes=0-4"})
        with _OPENER.open(request, timeout=10) as resp:
            assert resp.status == 206
            assert resp.read() == b"hello"
        assert (proxy.request_count, proxy.failed_count) == (2, 1)
    assert server.requests()[-1] == ("/hello.txt", 206, "bytes=0-4")


def test_flaky_proxy_forwards_post_body(stac_api: StacApiServer) -> None:
    with FlakyProxy(stac_api.url, fail_first_n=2, status=503) as proxy:
        body = json.dumps({"collections": [COLLECTION_ID], "bbox": VIENNA_BBOX}).encode()
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as info:
                _OPENER.open(proxy.url + "/search", data=body, timeout=10)
            assert info.value.code == 503
            info.value.close()
        request = urllib.request.Request(
            proxy.url + "/search", data=body, headers={"Content-Type": "application/json"}
        )
        with _OPENER.open(request, timeout=10) as resp:
            page = json.load(resp)
        assert {f["id"] for f in page["features"]} == {
            "S2A_33UXP_20240701_0_L2A",
            "S2B_33UXP_20240716_0_L2A",
        }
        # The Host header is forwarded, so the API's links point back at the proxy.
        root = next(link for link in page["links"] if link["rel"] == "root")
        assert root["href"].startswith(proxy.url)
        assert proxy.failed_count == 2


def test_flaky_proxy_rejects_bad_arguments() -> None:
    with pytest.raises(ServiceError, match="http"):
        FlakyProxy("ftp://example.org")
    with pytest.raises(ServiceError, match="status"):
        FlakyProxy("http://127.0.0.1:1", status=42)
