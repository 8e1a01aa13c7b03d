"""Real co-located pairs: site discovery, pan-sharpened reference, registration, radiometry,
selection and the split by site (synthetic sites with a known answer, and the real WorldStrat
sites in ../shared/data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from colocated_site import ORIGIN, _truth, write_site
from rasterio.warp import Resampling, reproject

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.pairs.colocated import (
    ColocatedConfig,
    build_site_pairs,
    colocated_pairs,
    find_sites,
    split_sites,
)


def _truth_5m(seed: int, shift_m: tuple[float, float], gain: float) -> np.ndarray:
    """The synthetic truth as the S2 revisits see it, area-averaged to 5 m."""
    from scipy.ndimage import shift as nd_shift

    moved = nd_shift(_truth(seed), (0, shift_m[0] / 0.75, shift_m[1] / 0.75), order=1,
                     mode="nearest")  # fmt: skip
    out = np.zeros((4, 192, 192), np.float32)
    reproject(moved.astype(np.float32), out,
              src_transform=Affine(0.75, 0, ORIGIN[0], 0, -0.75, ORIGIN[1]), src_crs="EPSG:32633",
              dst_transform=Affine(5, 0, ORIGIN[0], 0, -5, ORIGIN[1]), dst_crs="EPSG:32633",
              resampling=Resampling.average)  # fmt: skip
    return out * gain


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[:, 8:-8, 8:-8] / 1e4, b[:, 8:-8, 8:-8] / 1e4
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_reference_is_registered_and_mapped_to_the_revisit(tmp_path):
    site = find_sites(write_site(tmp_path / "a", shift_m=(3.0, -4.0), gain=1.1))[0]
    pair = build_site_pairs(site)[0]
    rec = pair.record
    # the reference's content lay 0.3 px up and 0.4 px right of the revisit's
    assert rec["shift_lr_px"] == pytest.approx([-0.3, 0.4], abs=0.06)
    assert max(map(abs, rec["residual_shift_lr_px"])) <= 0.05
    # pan weights are fitted (the synthetic pan is 0.5 red + 0.3 green + 0.2 blue, no NIR)
    w = rec["pan_weights"]  # file order: red, green, blue, nir
    assert w[0] > w[1] > w[2] > w[3] and w[3] < 0.05
    assert pair.kept and pair.lr.dtype == np.uint16 and pair.hr.shape == (4, 192, 192)
    truth = _truth_5m(0, (3.0, -4.0), 1.1)
    good = _psnr(pair.hr.astype(np.float64), truth)
    unregistered = build_site_pairs(site, ColocatedConfig(register=False))[0]
    assert good > _psnr(unregistered.hr.astype(np.float64), truth) + 3
    assert good > 38
    # the mapped reference keeps the revisit's mean reflectance per band
    means = pair.hr.reshape(4, -1).mean(1) / pair.lr.reshape(4, -1).mean(1)
    assert np.abs(means - 1).max() < 0.005


def test_histogram_matching_and_multispectral_only(tmp_path):
    site = find_sites(write_site(tmp_path / "a"))[0]
    hist = build_site_pairs(site, ColocatedConfig(radiometry="histogram"))[0]
    assert hist.record["radiometry"] == "histogram" and "fit" not in hist.record
    lin = build_site_pairs(site)[0]
    no_pan = build_site_pairs(site, ColocatedConfig(pansharpen=False))[0]
    assert "multispectral only" in no_pan.record["reference"]
    truth = _truth_5m(0, (3.0, -4.0), 1.1)
    # the 1.5 m pan makes a sharper 5 m reference than the 6 m bands alone
    assert _psnr(lin.hr.astype(np.float64), truth) > _psnr(no_pan.hr.astype(np.float64), truth)


def test_selection_drops_distant_dates_with_reasons(tmp_path):
    write_site(tmp_path / "a", s2_dates=("2020-05-01", "2020-07-30"))
    pairs, summary = colocated_pairs(tmp_path, kept_only=False)
    dropped = [p for p in pairs if not p.kept]
    assert [p.s2_date for p in dropped] == ["2020-07-30"]
    assert "|delta| 87 d > 30 d" in dropped[0].record["dropped"]
    assert summary["kept"] == 1 and summary["total"] == 2
    kept, _ = colocated_pairs(tmp_path)
    assert [p.s2_date for p in kept] == ["2020-05-01"]


def test_split_is_by_whole_site_and_stable(tmp_path):
    for i in range(5):
        write_site(tmp_path / f"site{i}", seed=i, s2_dates=("2020-05-01", "2020-05-06"))
    pairs, summary = colocated_pairs(tmp_path)
    by_site: dict[str, set[str]] = {}
    for p in pairs:
        by_site.setdefault(p.site, set()).add(p.split)
    assert all(len(s) == 1 for s in by_site.values())  # no site in two splits
    splits = sorted(summary["sites"].values())
    assert splits.count("val") == 1 and splits.count("test") == 2 and splits.count("train") == 2
    # adding a site does not move the others out of test or val unless the counts change
    assert split_sites(sorted(by_site)) == summary["sites"]
    test_only, _ = colocated_pairs(tmp_path, splits=["test"])
    assert {p.split for p in test_only} == {"test"} and len(test_only) == 4


def test_bad_inputs_name_the_fix(tmp_path):
    with pytest.raises(ReadError, match=r"s2_l2a_<date>_B02B03B04B08\.tif"):
        find_sites(tmp_path)
    with pytest.raises(ReadError, match="does not exist"):
        find_sites(tmp_path / "nope")
    with pytest.raises(ConfigError, match="radiometry='gamma'"):
        ColocatedConfig(radiometry="gamma")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown split"):
        colocated_pairs(write_site(tmp_path / "a"), splits=["holdout"])
    site = tmp_path / "b"
    write_site(site)
    import rasterio

    s2 = next(site.glob("s2_*.tif"))
    with rasterio.open(s2) as src:
        data, profile = src.read(), src.profile
    profile.update(crs="EPSG:32632")
    with rasterio.open(s2, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(GridMismatchError, match="share a CRS"):
        build_site_pairs(find_sites(site)[0])


# ------------------------------------------------------------------------------ real sites
REAL_SPLIT = {
    "train": ["Landcover-31746", "Landcover-769356", "Landcover-772423", "UNHCR-CODs026832",
              "UNHCR-NGAs036021"],
    "val": ["Landcover-771536", "UNHCR-NERs009694"],
    "test": ["Landcover-770156", "UNHCR-CODs026828", "UNHCR-NERs009697"],
}  # fmt: skip
"""The split of the WorldStrat sites in ../shared/data (models were trained on train only and
their defaults chosen on val; the test sites are quoted in benchmarks/README.md)."""


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    return colocated_pairs(shared_data / "worldstrat", kept_only=False)


def test_real_sites_split_and_selection(real_pairs):
    pairs, summary = real_pairs
    got = {s: sorted(n for n, v in summary["sites"].items() if v == s) for s in REAL_SPLIT}
    assert got == REAL_SPLIT
    kept = [p for p in pairs if p.kept]
    assert len(kept) == 28 and summary["total"] == len(pairs) == 94
    for p in kept:
        r = p.record
        assert abs(r["delta_days"]) <= 30 and r["correlation"][2] >= 0.8
        assert max(map(abs, r["residual_shift_lr_px"])) <= 0.1
    reasons = " ".join(p.record["dropped"] for p in pairs if not p.kept)
    assert "|delta|" in reasons and "red correlation" in reasons
    json.dumps(summary)  # the summary is plain JSON (recorded in reports and stores)


def test_real_registration_improves_the_fit(shared_data):
    """The registered reference, degraded to 10 m, matches the real revisit better."""
    from s2scale.infer.consistency import degrade_block

    site = find_sites(shared_data / "worldstrat" / "UNHCR-NGAs036021")[0]
    on = {p.s2_date: p for p in build_site_pairs(site)}
    off = {p.s2_date: p for p in build_site_pairs(site, ColocatedConfig(register=False))}
    p_on, p_off = on["2020-12-05"], off["2020-12-05"]
    assert max(map(abs, p_on.record["shift_lr_px"])) > 0.3  # a real sub-pixel offset existed

    def err(p):
        d = degrade_block(p.hr.astype(np.float32), 2, (0.3,) * 4)[:, 8:-8, 8:-8]
        return float(np.mean((d - p.lr[:, 8:-8, 8:-8]) ** 2))

    assert err(p_on) < 0.8 * err(p_off)


# ------------------------------------------------------------------------------ evaluation
def test_evaluate_pairs_per_site_with_every_baseline(tmp_path, tiny_ckpt, lpips_weights):
    from click.testing import CliRunner

    from s2scale.cli import main

    for i in range(3):
        write_site(tmp_path / "sites" / f"site{i}", seed=i, s2_dates=("2020-05-01",))
    names = f"bicubic,lanczos,bicubic+projection,{tiny_ckpt},{tiny_ckpt}:raw"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["evaluate", "--pairs", str(tmp_path / "sites"),
                                       "--models", names, "--perceptual", "lpips",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["mode"] == "colocated"
    assert sorted(report["sites"]) == ["site0", "site1", "site2"]
    assert {p["split"] for p in report["sites"].values()} == {"train", "val", "test"}
    assert set(report["splits"]) == {"train", "val", "test"}
    models = report["models"]
    assert list(models) == names.split(",")
    for m in models.values():
        assert 20 < m["psnr_db"] < 60 and 0 <= m["lpips"] < 1
    # the three baselines differ; the (low-passed) projection moves bicubic towards the input
    assert models["lanczos"]["psnr_db"] != models["bicubic"]["psnr_db"]
    assert (models["bicubic+projection"]["consistency_psnr_db"]
            > models["bicubic"]["consistency_psnr_db"])  # fmt: skip
    assert (models[f"{tiny_ckpt}"]["consistency_psnr_db"]
            > models[f"{tiny_ckpt}:raw"]["consistency_psnr_db"] + 10)  # fmt: skip
    md = (out / "report.md").read_text()
    assert "## per site: PSNR dB / lpips" in md and "| site1 |" in md
    assert "sites by split" in md


def test_model_names_with_raw_and_unknown_ones(tiny_ckpt):
    from s2scale.evaluate.score import BASELINES, resolve_models

    entries, _ = resolve_models([*BASELINES, str(tiny_ckpt), f"{tiny_ckpt}:raw"])
    assert [e.baseline for e in entries[:3]] == list(BASELINES)
    assert [e.consistency for e in entries[3:]] == [True, False]
    assert entries[4].spec == str(tiny_ckpt)
    with pytest.raises(ConfigError, match="bicubic, lanczos, bicubic\\+projection"):
        resolve_models(["nearest"])


def test_pairs_command_writes_a_patch_store_split_by_site(tmp_path):
    from click.testing import CliRunner

    from s2scale.cli import main
    from s2scale.pairs import read_patch_provenance, read_patch_store

    for i in range(3):
        write_site(tmp_path / "sites" / f"site{i}", seed=i, s2_dates=("2020-05-01", "2020-05-06"))
    store = tmp_path / "pairs.zarr"
    args = ["pairs", "--colocated", str(tmp_path / "sites"), "--out", str(store),
            "--lr-patch-px", "32", "--stride-px", "32"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lr, hr, attrs = read_patch_store(store)
    assert lr.shape[1:] == (4, 32, 32) and hr.shape[1:] == (4, 64, 64)
    sites = attrs["provenance"]["sites"]
    prov = read_patch_provenance(store)
    for i, src in enumerate(attrs["sources"]):  # every patch has its site's split
        assert src["kind"] == "real-colocated" and src["split"] == sites[src["site"]]
        split_idx = ("train", "val", "test").index(src["split"])
        assert (prov["split"][prov["source"] == i] == split_idx).all()
    assert len(lr) == 3 * 2 * 9  # 3 sites x 2 revisits x 3 x 3 patches of 32 in 96 px
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = CliRunner().invoke(main, [*args, "--overwrite", "--seeds", "1"])
    assert bad.exit_code == 2 and "--colocated takes only" in bad.output
