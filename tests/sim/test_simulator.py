"""Tests of the scene simulator: landscape, S2 scenes, truth, orthophoto, STAC items, sample."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.windows
import shapely
from shapely.geometry import shape

from s2scale.grid import TargetGrid, mgrs_tile, resolve_aoi
from s2scale.sim import (
    SAMPLE_AOI,
    SAMPLE_SCENES,
    SCL,
    SPECTRA,
    Cover,
    Landscape,
    SceneSpec,
    render_truth,
    scene_layers,
    simulate_scene,
    tile_window,
    with_base_href,
    write_sample,
)

REAL_PAGE = (
    Path(__file__).resolve().parents[3]
    / "shared/data/stac/earthsearch_v1_sentinel-2-l2a_search_page.json"
)
SMALL_AOI = (11.995, 47.488, 12.005, 47.492)
SMALL = dict(aoi=SMALL_AOI, margin_m=120.0, scenes=SAMPLE_SCENES[:2], ortho_size_m=(200.0, 150.0))


@pytest.fixture(scope="module")
def items(sample):
    return json.loads(sample.catalog.read_text())["features"]


def _read(info, item, key):
    with rasterio.open(info.root / item["assets"][key]["href"]) as src:
        return src.read(1)


def _by_date(items, day):
    return [it for it in items if it["properties"]["datetime"].startswith(day)]


# --------------------------------------------------------------------------------- default sample
def test_default_sample_layout(sample, items):
    info = sample
    assert info.tiles == ("32TQT", "33TTN")
    assert len(items) == 12 == len(info.item_ids)
    assert {it["properties"]["proj:code"] for it in items} == {"EPSG:32632", "EPSG:32633"}
    dates = [d for d in info.dates if d.startswith("2024")]
    assert len(dates) == 5 and all("2024-06-01" <= d <= "2024-08-31" for d in dates)
    assert [d for d in info.dates if d.startswith("2021-07")] == ["2021-07-14"]
    for day in info.dates:  # both tiles observed on each date
        assert {it["properties"]["grid:code"] for it in _by_date(items, day)} == {
            "MGRS-32TQT",
            "MGRS-33TTN",
        }
    assert (info.root / "collection.json").is_file() and info.orthophoto.is_file()
    assert [p.name for p in info.truth] == ["truth_5m_epsg32632.tif", "truth_5m_epsg32633.tif"]
    manifest = json.loads(info.manifest.read_text())
    assert manifest["seed"] == 0 and manifest["tiles"] == ["32TQT", "33TTN"]


def test_items_parse_and_look_like_earth_search(sample, items):
    info = sample
    real = json.loads(REAL_PAGE.read_text())["features"][0] if REAL_PAGE.is_file() else None
    pystac.ItemCollection.from_dict(json.loads(info.catalog.read_text()))
    pystac.Collection.from_dict(json.loads(info.collection.read_text()))
    for it in items:
        item = pystac.Item.from_dict(it)
        props = it["properties"]
        assert item.collection_id == "sentinel-2-l2a"
        assert "proj:epsg" not in props and props["proj:code"].startswith("EPSG:326")
        day = props["datetime"][:10].replace("-", "")
        assert it["id"] == f"{it['id'][:3]}_{props['grid:code'][5:]}_{day}_0_L2A"
        assert set(it["assets"]) == {"blue", "green", "red", "nir", "scl"}
        for key, asset in it["assets"].items():
            assert "://" not in asset["href"] and not asset["href"].startswith("/")
            assert (info.root / asset["href"]).is_file()
            if real is not None:
                assert set(asset) <= set(real["assets"][key]) | {"href"}
        if real is not None:
            assert {
                k for k in real["properties"] if k.startswith(("mgrs:", "grid:", "view:sun"))
            } <= set(props)


def test_proj_transform_matches_files_and_lattice(sample, items):
    info = sample
    for it in items:
        tile = mgrs_tile(it["properties"]["grid:code"][5:])
        for asset in it["assets"].values():
            with rasterio.open(info.root / asset["href"]) as src:
                assert list(src.transform)[:6] == asset["proj:transform"]
                assert [src.height, src.width] == asset["proj:shape"]
                assert src.crs.to_epsg() == tile.epsg
            t = asset["proj:transform"]
            assert (t[2] - tile.ulx) % 60 == 0 and (tile.uly - t[5]) % 60 == 0
            assert (t[0] * asset["proj:shape"][1]) % 60 == 0
        footprint = shape(it["geometry"])
        assert footprint.contains(
            shapely.box(*SAMPLE_AOI).intersection(tile.footprint).buffer(-1e-4)
        )


def test_dn_convention_by_baseline(sample, items):
    info = sample
    for it in items:
        props = it["properties"]
        new = props["s2:processing_baseline"] >= "04.00"
        assert props["earthsearch:boa_offset_applied"] is new
        rb = it["assets"]["blue"]["raster:bands"][0]
        assert (rb["scale"], rb["offset"], rb["nodata"]) == (0.0001, -0.1 if new else 0.0, 0)
        assert new == props["datetime"].startswith("2024")
    clear = {
        it["properties"]["grid:code"]: _read(info, it, "red")
        for it in _by_date(items, "2024-07-08")
    }
    old = {
        it["properties"]["grid:code"]: _read(info, it, "red")
        for it in _by_date(items, "2021-07-14")
    }
    for code, dn in clear.items():
        assert 1200 < np.median(dn) < 1800  # vegetation red ~0.03-0.05 plus the 1000 offset
        assert 200 < np.median(old[code]) < 800  # harmonised, no offset
        assert abs(np.median(dn) - 1000 - np.median(old[code])) < 150


def test_nodata_only_beyond_swath_edge(sample, items):
    info = sample
    for it in items:
        scl = _read(info, it, "scl")
        nodata10 = np.repeat(np.repeat(scl == SCL["nodata"], 2, 0), 2, 1)
        for key in ("blue", "green", "red", "nir"):
            np.testing.assert_array_equal(_read(info, it, key) == 0, nodata10)
        pct = it["properties"]["s2:nodata_pixel_percentage"]
        assert pct == pytest.approx(100 * (scl == 0).mean(), abs=1e-4)
        assert (pct > 10) == it["properties"]["datetime"].startswith("2024-07-28")


def test_scl_classes_follow_clouds(sample, items):
    info = sample
    for it in items:
        scl = _read(info, it, "scl")
        assert set(np.unique(scl)) <= {0, 3, 4, 5, 6, 8, 9, 10, 11}
        blue = _read(info, it, "blue").astype(float)
        offset = 1000 if it["properties"]["earthsearch:boa_offset_applied"] else 0
        refl = (blue - offset) / 1e4
        up = np.repeat(np.repeat(scl, 2, 0), 2, 1)
        if (up == 9).any():
            assert refl[up == 9].mean() > 0.35 and refl[up == 4].mean() < 0.06
        valid = scl > 0
        cover = 100 * np.isin(scl, (8, 9, 10)).sum() / valid.sum()
        assert it["properties"]["eo:cloud_cover"] == pytest.approx(cover, abs=1e-4)
    cc = {
        d: np.mean([it["properties"]["eo:cloud_cover"] for it in _by_date(items, d)])
        for d in info.dates
    }
    assert cc["2024-07-08"] < 5 and cc["2024-07-13"] > 60  # nearly clear, very cloudy
    cirrus = _read(info, _by_date(items, "2024-06-18")[0], "scl")
    assert (cirrus == SCL["cirrus"]).mean() > 0.02
    cloudy = _read(info, _by_date(items, "2024-08-12")[0], "scl")
    assert (cloudy == SCL["shadow"]).mean() > 0.01


def test_cogs_are_valid(sample):
    info = sample
    for path in [*info.cogs[:10], *info.truth, info.orthophoto]:
        with rasterio.open(path) as src:
            assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.profile["tiled"] and src.profile["blockxsize"] in (256, 512)
            assert src.profile["compress"] == "deflate"
            assert src.overviews(1), path
            if path != info.orthophoto:
                assert src.nodata == 0


def test_truth_matches_s2_geometry(sample):
    info = sample
    for path in info.truth:
        with rasterio.open(path) as src:
            assert src.dtypes[0] == "uint16" and src.res == (5.0, 5.0) and src.count == 4
            assert (src.bounds.left % 10, src.bounds.top % 10) == (0, 0)  # nested in 10 m pixels
            # A 600 m square inside the window, checked against fresh renders of the same world.
            x0, y1 = src.bounds.left + 1000.0, src.bounds.top - 1000.0
            grid = TargetGrid(src.crs.to_string(), 5.0, (x0, y1 - 600.0, x0 + 600.0, y1))
            window = rasterio.windows.from_bounds(*grid.bounds, transform=src.transform)
            truth = src.read(window=window).astype(np.float64) / 1e4
        # GDAL's average resampling depends slightly on the destination extent: ~1e-3 at most.
        np.testing.assert_allclose(truth, render_truth(grid), atol=1.5e-3)
        plain10 = render_truth(TargetGrid(grid.crs, 10.0, grid.bounds), psf_sigma_m=0)
        mean2 = truth.reshape(4, 60, 2, 60, 2).mean(axis=(2, 4))
        assert np.abs(mean2 - plain10).mean() < 0.003
        assert np.corrcoef(mean2.ravel(), plain10.ravel())[0, 1] > 0.995


def test_orthophoto_own_crs_and_radiometry(sample, items):
    info = sample
    with rasterio.open(info.orthophoto) as src:
        ortho = src.read()
        assert src.crs.to_epsg() == 31287 and src.res == (1.0, 1.0)
        assert src.dtypes[0] == "uint8" and src.count == 4
        assert src.descriptions == ("red", "green", "blue", "nir")
    s2_red = (_read(info, _by_date(items, "2024-07-08")[0], "red").astype(float) - 1000) / 1e4
    ortho_red = ortho[0] / 255.0
    # Same scene, different radiometry: the quantiles differ a lot, so matching has work to do.
    assert abs(np.median(ortho_red) - np.median(s2_red)) > 0.1
    assert np.std(ortho_red) > 2 * np.std(s2_red)


# ------------------------------------------------------------------------------ national catalog
def test_national_catalog_covers_austria(tmp_path):
    info = write_sample(tmp_path, national=True)
    assert not list(tmp_path.rglob("*.tif"))
    feats = json.loads(info.catalog.read_text())["features"]
    assert len(feats) >= 300 and len(info.tiles) == 27
    union = shapely.union_all([shape(f["geometry"]) for f in feats])
    assert union.contains(resolve_aoi("austria"))
    for f in feats[::50]:
        pystac.Item.from_dict(f)
        assert f["assets"]["blue"]["href"].startswith("s3://s2scale-sample/")
        assert f["assets"]["blue"]["proj:shape"] == [10980, 10980]
    pystac.Collection.from_dict(json.loads(info.collection.read_text()))


# ---------------------------------------------------------------------------- small and fast
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_sample(tmp_path / "a", seed=3, **SMALL)
    b = write_sample(tmp_path / "b", seed=3, **SMALL)
    c = write_sample(tmp_path / "c", seed=4, **SMALL)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert a.cogs[0].read_bytes() != c.cogs[0].read_bytes()


def test_nested_renders_agree():
    ls = Landscape(seed=2)
    g10 = TargetGrid("EPSG:32632", 10.0, (727000.0, 5262000.0, 727600.0, 5262600.0))
    r10 = ls.render(g10.crs, g10.transform, g10.shape)
    g5 = TargetGrid(g10.crs, 5.0, g10.bounds)
    r5 = ls.render(g5.crs, g5.transform, g5.shape)
    mean2 = r5.reshape(4, 60, 2, 60, 2).mean(axis=(2, 4))
    assert np.abs(mean2 - r10).mean() < 1e-3
    # Position-defined: a sub-window renders the same values.
    sub = TargetGrid(g10.crs, 10.0, (727200.0, 5262200.0, 727400.0, 5262400.0))
    np.testing.assert_allclose(
        ls.render(sub.crs, sub.transform, sub.shape), r10[:, 20:40, 20:40], atol=1e-4
    )


def test_spectra_are_realistic():
    veg = SPECTRA[[Cover.MEADOW, Cover.MAIZE, Cover.DECIDUOUS]]
    assert (veg[:, 2] >= 0.02).all() and (veg[:, 2] <= 0.05).all()
    assert (veg[:, 3] >= 0.3).all() and (veg[:, 3] <= 0.45).all()
    assert SPECTRA[Cover.WATER, 3] < 0.05
    bright = SPECTRA[[Cover.ROAD, Cover.ROOF_GREY, Cover.ROOF_RED], :3].mean(axis=1)
    assert (bright > 2 * SPECTRA[Cover.MEADOW, :3].mean()).all()
    fine = Landscape(seed=0).rasterize((4471000.0, 2708000.0, 4472000.0, 2712600.0), 2.5)
    assert set(np.unique(fine.cover)) >= {int(c) for c in Cover}


def test_clouds_are_shared_by_overlapping_tiles():
    ls = Landscape(seed=5)
    spec = SceneSpec(datetime(2024, 7, 1, 10, 15), cloud_cover=0.5)
    aoi = (11.99, 47.485, 12.01, 47.495)
    scenes = []
    for name in ("32TQT", "33TTN"):
        grid = tile_window(mgrs_tile(name), aoi, margin_m=60)
        scenes.append(simulate_scene(ls, grid, spec, seed=5, layers=scene_layers(ls, grid)))
    cover = [s.percent(SCL["cloud_medium"], SCL["cloud_high"]) for s in scenes]
    assert abs(cover[0] - cover[1]) < 10


def test_with_base_href():
    feats = [{"assets": {"blue": {"href": "cogs/x/B02.tif"}, "abs": {"href": "s3://b/k.tif"}}}]
    url = with_base_href(feats, "http://127.0.0.1:8123/")[0]["assets"]
    assert url["blue"]["href"] == "http://127.0.0.1:8123/cogs/x/B02.tif"
    assert url["abs"]["href"] == "s3://b/k.tif"
    local = with_base_href(feats, "/data/sample")[0]["assets"]["blue"]["href"]
    assert local == "/data/sample/cogs/x/B02.tif"
    assert feats[0]["assets"]["blue"]["href"] == "cogs/x/B02.tif"  # input untouched
