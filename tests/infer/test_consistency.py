from __future__ import annotations

import numpy as np
import pytest
from infer_helpers import BANDS, nn_upsample
from scipy.ndimage import gaussian_filter

from s2scale.degradation import NOMINAL_MTF, degrade_nominal
from s2scale.errors import ConfigError, GridMismatchError
from s2scale.infer.consistency import (
    CONSISTENCY_TAPS,
    band_mtfs,
    consistency_radius_px,
    degrade_block,
    inverse_filter,
    project_block,
)
from s2scale.infer.ops import projection_kernels
from s2scale.infer.tiling import tile_process

MTFS = band_mtfs(BANDS)
R = consistency_radius_px(2, MTFS)


def _hr(seed: int, shape=(4, 96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.uniform(300, 4000, shape), (0, 1.2, 1.2))
    return base.astype(np.float32)


def test_degrade_block_is_degrade_nominal():
    hr = _hr(0)
    np.testing.assert_allclose(degrade_block(hr, 2, MTFS), degrade_nominal(hr, 2), rtol=1e-5)


def test_inverse_filter_inverts_d_dt():
    h = inverse_filter(0.3, 2)
    assert len(h) == 2 * CONSISTENCY_TAPS + 1 and h.sum() == pytest.approx(2.0)
    np.testing.assert_allclose(h, h[::-1])
    # D D^T (D D^T)^-1 is (nearly) the identity: an LR impulse is reproduced
    lr = np.zeros((1, 61, 61), np.float32)
    lr[0, 30, 30] = 1000.0
    out = project_block(np.zeros((1, 122, 122), np.float32), lr, scale=2, mtfs=(0.3,))
    back = degrade_block(out, 2, (0.3,))
    assert np.abs(back - lr).max() < 3.0  # 0.3 % of the impulse, the worst case (all Nyquist)
    with pytest.raises(ConfigError, match="taps"):
        inverse_filter(0.3, 2, -1)


def test_projection_reproduces_the_input_within_half_a_percent():
    hr = _hr(1)
    lr = degrade_block(hr, 2, MTFS)
    for sr in (
        hr * 0.9 + 50,  # darker and offset
        nn_upsample(lr),  # blocky
        gaussian_filter(hr, (0, 2.5, 2.5)),  # too smooth
        np.full_like(hr, 1000.0),  # nothing right
    ):
        out = project_block(sr.astype(np.float32), lr, scale=2, mtfs=MTFS)
        before = np.abs(degrade_block(sr, 2, MTFS) - lr) / lr
        after = (np.abs(degrade_block(out, 2, MTFS) - lr) / lr)[:, R:-R, R:-R]
        assert after.max() < 0.005, after.max()
        assert after.max() < before.max() / 10
        np.testing.assert_allclose(out.mean(axis=(1, 2)), lr.mean(axis=(1, 2)), rtol=1e-4)


def test_projection_never_moves_away_from_a_consistent_truth():
    hr = _hr(2)
    lr = degrade_block(hr, 2, MTFS)
    rng = np.random.default_rng(0)
    for sr in (hr + rng.normal(0, 150, hr.shape), hr * 0.95, nn_upsample(lr)):
        out = project_block(sr.astype(np.float32), lr, scale=2, mtfs=MTFS)
        inner = np.s_[:, 2 * R : -2 * R, 2 * R : -2 * R]
        assert np.linalg.norm((out - hr)[inner]) <= np.linalg.norm((sr - hr)[inner])


def test_projection_of_a_consistent_image_changes_little():
    hr = _hr(3)
    lr = degrade_block(hr, 2, MTFS)
    out = project_block(hr, lr, scale=2, mtfs=MTFS)
    np.testing.assert_allclose(out[:, 2 * R : -2 * R, 2 * R : -2 * R],
                               hr[:, 2 * R : -2 * R, 2 * R : -2 * R], atol=0.5)  # fmt: skip


def test_projection_is_local_within_its_radius():
    hr = _hr(4, (1, 240, 240))
    lr = degrade_block(hr, 2, (0.3,))
    sr = hr * 0.9
    base = project_block(sr, lr, scale=2, mtfs=(0.3,))
    c = 60  # LR centre pixel: HR rows/cols 2c, 2c + 1
    for dist, changes in ((R + 1, False), (R - 1, True)):
        bumped = sr.copy()
        bumped[0, 2 * (c + dist), 2 * c] += 5000.0  # HR pixel `dist` LR px away
        out = project_block(bumped, lr, scale=2, mtfs=(0.3,))
        moved = np.abs(out - base)[0, 2 * c : 2 * c + 2, 2 * c : 2 * c + 2].max()
        assert bool(moved > 1e-3) == changes, (dist, moved)


def test_errors():
    with pytest.raises(ConfigError, match=r"\['swir'\].*consistency=False"):
        band_mtfs(["red", "swir"])
    with pytest.raises(GridMismatchError, match="one MTF per band"):
        project_block(np.zeros((2, 8, 8)), np.ones((2, 4, 4)), scale=2, mtfs=(0.3,))
    with pytest.raises(GridMismatchError, match="H\\*2"):
        project_block(np.zeros((1, 8, 6)), np.ones((1, 4, 4)), scale=2, mtfs=(0.3,))
    assert band_mtfs(BANDS) == tuple(NOMINAL_MTF[b] for b in BANDS)


def test_tile_process_projects_and_masks():
    # a block with the spectrum of a real 10 m image: a finer scene seen through the PSF
    block = np.rint(degrade_block(_hr(5, (4, 120, 120)), 2, MTFS)).astype(np.uint16)
    block[:, 20:26, 30:40] = 0
    darken = lambda t: 0.8 * nn_upsample(t.astype(np.float32))  # noqa: E731
    kw = dict(scale=2, tile_px=32, overlap_px=8, halo_px=2, fill_radius_px=20)
    raw = tile_process(block, darken, **kw)
    out = tile_process(block, darken, projection=projection_kernels(MTFS, 2, 10, 0.0), **kw)
    valid_hr = nn_upsample(np.all(block > 0, axis=0))
    assert (out[:, ~valid_hr] == 0).all() and (out[:, valid_hr] >= 1).all()
    core = np.s_[:, R:-R, R:-R]
    lr = np.where(block > 0, block, 1).astype(np.float64)
    far = np.ones(block.shape[1:], bool)  # away from the hole, where D sees only valid pixels
    far[20 - 4 : 26 + 4, 30 - 4 : 40 + 4] = False
    errs = []
    for img in (raw, out):
        err = np.abs(degrade_nominal(np.where(valid_hr, img, 0), 2) - lr) / lr
        errs.append(err[core][:, far[R:-R, R:-R]].max())
    assert errs[0] > 0.1 and errs[1] < 0.005, errs


def test_tile_process_projection_knows_the_array_edge():
    # a block whose context is a mirror of its own pixels (the array ended on every side), and a
    # "network" that adds a texture of its own, so its output in the mirror is no mirror
    real = np.rint(degrade_block(_hr(6, (4, 64, 56)), 2, MTFS)).astype(np.uint16)
    e = 12
    block = np.pad(real, ((0, 0), (e, e), (e, e)), mode="symmetric")

    def model(t):
        texture = np.random.default_rng(1).normal(0, 300, (2 * t.shape[-2], 2 * t.shape[-1]))
        return nn_upsample(t.astype(np.float32)) + texture.astype(np.float32)

    kw = dict(scale=2, tile_px=48, overlap_px=8, halo_px=2)
    project = projection_kernels(MTFS, 2, CONSISTENCY_TAPS, 0.0)
    lr = real.astype(np.float64)
    errs = []
    for edges in ((0, 0, 0, 0), (e, e, e, e)):
        out = tile_process(block, model, projection=project, edges=edges, **kw)
        core = out[:, 2 * e : -2 * e, 2 * e : -2 * e].astype(np.float64)
        errs.append((np.abs(degrade_nominal(core, 2) - lr) / lr).max())
    # told where the array ended, the output is consistent up to its edge (measured 0.05 %);
    # projecting through the mirror leaves the asymmetry of its output there in (measured 2 %)
    assert errs[1] < 0.005 and errs[0] > 0.01, errs
    with pytest.raises(ConfigError, match=r"edges=.*leave no real pixels"):
        tile_process(block, model, projection=project, edges=(40, 40, 0, 0), **kw)


# ------------------------------------------------- real Sentinel-2, shipped models (Wald protocol)
@pytest.fixture(scope="module")
def wald_pair(shared_data):
    import rasterio
    from infer_helpers import make_cube

    path = shared_data / "s2" / "S2_L3A_Theia_Bouconne_2018_7dates_x_10bands.tif"
    with rasterio.open(path) as src:
        hr = src.read(indexes=[1, 2, 3, 4])[:, :240, :224].astype(np.float64)  # 2018-04-29
    lr = np.clip(np.rint(degrade_nominal(hr, 2)), 1, 65535).astype(np.uint16)
    return hr, make_cube(*lr.shape[1:]).copy(data=lr)


@pytest.mark.parametrize("model", ["srcnn", "srresnet", "esrgan", "realesrgan"])
def test_shipped_models_keep_radiometry(wald_pair, model):
    """The radiometry promise on real Sentinel-2 (Wald protocol): with the default (low-pass)
    projection every band's mean stays within 0.5 % of the input; the full projection
    (``consistency_lowpass_px=0``) reproduces the input pixel by pixel, up to the array edge."""
    from s2scale.infer import upscale

    _, cube = wald_pair
    lr = cube.values.astype(np.float64)
    out = upscale(cube, model, device="cpu").values.astype(np.float64)
    full = upscale(cube, model, device="cpu", consistency_lowpass_px=0).values.astype(np.float64)
    raw = upscale(cube, model, device="cpu", consistency=False).values.astype(np.float64)
    # defaults: the mean of every band within 0.5 %, and 16 x 16 LR-pixel means within 1 %
    bias = out.mean(axis=(1, 2)) / lr.mean(axis=(1, 2)) - 1
    assert np.abs(bias).max() < 0.005, bias
    blocks = degrade_nominal(out, 2)[:, :112, :96].reshape(4, 7, 16, 6, 16).mean(axis=(2, 4))
    ref = lr[:, :112, :96].reshape(4, 7, 16, 6, 16).mean(axis=(2, 4))
    assert np.percentile(np.abs(blocks / ref - 1), 99) < 0.01
    # full projection: degrade_nominal(output) == input within 0.5 % (99.9 % of the pixels; the
    # rest sit at clipped DN), also along the image's edge (the outer 2 LR px), where the
    # projection treats the array's end as an edge instead of projecting through the mirror
    err = np.abs(degrade_nominal(full, 2) - lr) / lr
    assert np.percentile(err, 99.9) < 0.005
    ring = np.ones(lr.shape[1:], bool)
    ring[2:-2, 2:-2] = False
    assert np.percentile(err[:, ring], 99.9) < 0.005, err[:, ring].max()
    # the control: without any projection the fine consistency is lost
    raw_err = np.abs(degrade_nominal(raw, 2) - lr) / lr
    assert np.percentile(raw_err, 99.9) > 2 * np.percentile(err, 99.9)


def test_lowpass_projection_keeps_means_but_not_fine_inconsistency():
    """A low-passed residual corrects the coarse inconsistency (means) and leaves fine detail."""
    rng = np.random.default_rng(5)
    hr = _hr(3, shape=(4, 200, 200))
    lr = degrade_block(hr, 2, MTFS)
    noisy_lr = lr + rng.normal(0, 40, lr.shape).astype(np.float32)  # fine, not in the truth
    sr = (hr * 0.95).astype(np.float32)  # 5 % dark: a coarse inconsistency
    full = project_block(sr, noisy_lr, scale=2, mtfs=MTFS)
    soft = project_block(sr, noisy_lr, scale=2, mtfs=MTFS, lowpass_px=2.0)
    r = consistency_radius_px(2, MTFS, lowpass_px=2.0)
    inner = np.s_[:, r * 2 : -r * 2, r * 2 : -r * 2]
    for out in (full, soft):  # both restore the band means (the radiometry)
        means = out[inner].mean(axis=(1, 2)) / hr[inner].mean(axis=(1, 2))
        assert np.abs(means - 1).max() < 0.003
    err_full = np.sqrt(np.mean((full - hr)[inner] ** 2))
    err_soft = np.sqrt(np.mean((soft - hr)[inner] ** 2))
    err_raw = np.sqrt(np.mean((sr - hr)[inner] ** 2))
    # the full projection pushes the input's noise into the output; the low-pass does not
    assert err_soft < 0.7 * err_full and err_soft < 0.5 * err_raw
    np.testing.assert_array_equal(project_block(sr, lr, scale=2, mtfs=MTFS, lowpass_px=0.0),
                                  project_block(sr, lr, scale=2, mtfs=MTFS))  # fmt: skip
    assert r == consistency_radius_px(2, MTFS) + 6
    with pytest.raises(ConfigError, match="lowpass_px"):
        project_block(sr, lr, scale=2, mtfs=MTFS, lowpass_px=-1.0)


@pytest.mark.parametrize("lowpass", [0.0, 2.0])
def test_lowpass_projection_is_chunk_invariant(tiny_ckpt, lowpass):
    """Chunked upscale with the projection (any strength) equals the whole array (<= 1 DN)."""
    import s2scale
    from s2scale.evaluate.data import lr_from_array

    rng = np.random.default_rng(2)
    dn = np.clip(gaussian_filter(rng.uniform(300, 4000, (4, 300, 280)), (0, 1.5, 1.5)), 1, None)
    cube = lr_from_array(dn.astype(np.uint16))
    kw = {"device": "cpu", "consistency_lowpass_px": lowpass}
    whole = s2scale.upscale(cube, tiny_ckpt, chunk_px=300, **kw).compute(scheduler="sync")
    parts = s2scale.upscale(cube, tiny_ckpt, chunk_px=136, **kw).compute(scheduler="sync")
    diff = np.abs(whole.values.astype(int) - parts.values.astype(int))
    assert diff.max() <= 1
    assert whole.attrs["consistency_lowpass_px"] == lowpass
    with pytest.raises(ConfigError, match="consistency_lowpass_px"):
        s2scale.upscale(cube, tiny_ckpt, consistency_lowpass_px=-2)
