"""Image-quality metrics: PSNR, SSIM and LPIPS as pure functions.

The numpy functions take arrays of normalised reflectance or digital numbers with dims
``(band, y, x)`` (or ``(y, x)``) and return Python floats. The ``*_torch`` variants take batches
``(N, C, H, W)`` and return one value per image; the training loop uses them for validation.
torch, scikit-image and ``lpips`` are imported inside the functions that need them, so importing
this module stays cheap.

LPIPS needs ImageNet weights of its backbone (AlexNet or VGG16). The ``lpips`` package downloads
them at first use, which fails offline; :func:`lpips_score` therefore reads them from an explicit
path or from the torch hub cache and raises :class:`~s2scale.errors.CheckpointError` otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from s2scale.errors import CheckpointError, ConfigError, GridMismatchError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LPIPS_BACKBONE_FILES",
    "STLPIPS_NETS",
    "LpipsResult",
    "StLpipsResult",
    "column_seams",
    "load_stlpips",
    "lpips_score",
    "psnr",
    "psnr_torch",
    "seam_ratio",
    "ssim",
    "ssim_torch",
    "stlpips_score",
]

log = logging.getLogger(__name__)

LpipsNet = Literal["alex", "vgg"]

STLPIPS_NETS: tuple[str, ...] = ("alex", "vgg")
"""Backbones of ST-LPIPS shipped in ``stlpips-pytorch`` (AlexNet- and VGG16-shaped)."""

LPIPS_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""torchvision ImageNet weight files of the LPIPS backbones, as named in the torch hub cache."""

RGB_BANDS: tuple[int, int, int] = (2, 1, 0)
"""Indices of red, green and blue in s2scale's band order (blue, green, red, nir)."""

# Gaussian window of Wang et al. (2004) SSIM: 11 x 11 taps, sigma 1.5 px, K1 = 0.01, K2 = 0.03.
_SSIM_TAPS, _SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 11, 1.5, 0.01, 0.03


def _check_pair(a_shape: Sequence[int], b_shape: Sequence[int]) -> None:
    """Raise GridMismatchError unless both shapes are equal."""
    if tuple(a_shape) != tuple(b_shape):
        raise GridMismatchError(f"shapes differ: {tuple(a_shape)} vs {tuple(b_shape)}")


def _check_range(data_range: float) -> None:
    """Raise ConfigError unless ``data_range`` is positive."""
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0 (e.g. 1.0 or 10000), got {data_range!r}")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB.

    Parameters
    ----------
    a, b
        Arrays of equal shape, any dims (typically ``(band, y, x)``), any real dtype; computed in
        float64. No nodata handling: mask or crop before calling.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for normalised reflectance or ``10000`` DN.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ.

    Examples
    --------
    >>> a = np.zeros((1, 4, 4))
    >>> round(psnr(a, a + 0.1, data_range=1.0), 6)  # MSE = 0.01 -> 20 dB
    20.0
    """
    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean structural similarity (scikit-image, 7x7 uniform window), averaged over bands.

    Parameters
    ----------
    a, b
        Arrays of equal shape ``(band, y, x)`` (band axis 0) or ``(y, x)``, with ``y, x >= 7``;
        computed in float64.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for normalised reflectance.

    Returns
    -------
    float
        SSIM in ``[-1, 1]``; ``1.0`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ or the arrays are not 2-D or 3-D.

    Examples
    --------
    >>> a = np.random.default_rng(0).random((4, 16, 16))
    >>> ssim(a, a, data_range=1.0)
    1.0
    """
    from skimage.metrics import structural_similarity

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if a.ndim not in (2, 3):
        raise GridMismatchError(f"ssim expects (band, y, x) or (y, x), got shape {a.shape}")
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    channel_axis = 0 if a.ndim == 3 else None
    value = structural_similarity(a64, b64, data_range=data_range, channel_axis=channel_axis)
    return float(value)


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
    """SSIM per image of batches ``(N, C, H, W)`` with an 11x11 Gaussian window (sigma 1.5).

    Computed in float32 on the valid region (no padding), averaged over bands and pixels; needs
    ``H, W >= 11``. Values in ``[-1, 1]``, ``1`` for identical images. Close to, but not the same
    as, :func:`ssim`, which uses scikit-image's 7x7 uniform window.

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
    if a.ndim != 4 or min(a.shape[-2:]) < _SSIM_TAPS:
        raise GridMismatchError(f"ssim_torch expects (N, C, H>=11, W>=11), got {tuple(a.shape)}")
    a, b = a.float(), b.float()
    coords = torch.arange(_SSIM_TAPS, dtype=torch.float32, device=a.device) - _SSIM_TAPS // 2
    g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    chans = a.shape[1]
    window = (g[:, None] * g[None, :]).expand(chans, 1, _SSIM_TAPS, _SSIM_TAPS).contiguous()

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


@dataclass(frozen=True)
class LpipsResult:
    """An LPIPS score and what produced it."""

    value: float
    """Mean LPIPS distance over the batch (0 = identical, larger = less similar)."""
    net: str
    """Backbone network, ``"alex"`` or ``"vgg"``."""
    backbone: str
    """``"imagenet (<weights file>)"`` or ``"random (pnet_rand=True)"``; report it too."""


def _backbone_path(net: str, weights: str | Path | None) -> Path:
    """Return the backbone weight file or raise a CheckpointError saying how to provide it."""
    import torch

    name = LPIPS_BACKBONE_FILES[net]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    path = Path(weights) if weights is not None else cached
    if not path.is_file():
        where = f"weights={str(path)!r}" if weights is not None else f"the torch hub cache {cached}"
        raise CheckpointError(
            f"LPIPS ({net}) needs the torchvision ImageNet weights {name}, not found at {where}; "
            f"pass weights='/path/to/{name}', or copy the file to {cached} (set TORCH_HOME to "
            "move the cache); random_backbone=True gives an uncalibrated score instead"
        )
    return path


def _build_lpips(
    net: LpipsNet, weights: str | Path | None, random_backbone: bool
) -> tuple[torch.nn.Module, str]:
    """Build an ``lpips.LPIPS`` model without network access; return it and its backbone label."""
    import lpips
    import torch

    if net not in LPIPS_BACKBONE_FILES:
        raise ConfigError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    path = None if random_backbone else _backbone_path(net, weights)
    with warnings.catch_warnings():
        # lpips calls torchvision's deprecated ``pretrained=`` argument (a UserWarning).
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if path is None:
        log.warning("LPIPS with a random %s backbone: scores are not comparable to papers", net)
        return model, "random (pnet_rand=True)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # lpips keeps torchvision's ``features.{i}`` modules as ``slice{k}.{i}``.
        mapped = {}
        for key in model.net.state_dict():
            _, index, param = key.split(".")
            mapped[key] = state[f"features.{index}.{param}"]
        model.net.load_state_dict(mapped)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"cannot load LPIPS {net} backbone weights from {path}") from err
    return model, f"imagenet ({path.name})"


def _lpips_input(
    x: np.ndarray | torch.Tensor, rgb_bands: Sequence[int], data_range: float
) -> torch.Tensor:
    """``(N, 3, H, W)`` float32 RGB in ``[-1, 1]`` from ``(C, H, W)``/``(N, C, H, W)`` data."""
    import torch

    t = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).float().cpu()
    t = t[None] if t.ndim == 3 else t
    rgb = t[:, list(rgb_bands)].clamp(0.0, data_range)
    return rgb * (2.0 / data_range) - 1.0


def lpips_score(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    net: LpipsNet = "alex",
    weights: str | Path | None = None,
    random_backbone: bool = False,
    data_range: float = 1.0,
    rgb_bands: Sequence[int] = RGB_BANDS,
) -> LpipsResult:
    """LPIPS distance (Zhang et al. 2018, v0.1) between two images or batches, on RGB bands.

    LPIPS is defined on RGB images, so only the bands ``rgb_bands`` (red, green, blue; default
    ``(2, 1, 0)`` for s2scale's blue, green, red, nir order) are scored; NIR is ignored. Inputs
    are clipped to ``[0, data_range]`` and mapped linearly to ``[-1, 1]`` as LPIPS expects.

    Parameters
    ----------
    a, b
        numpy arrays or tensors of equal shape ``(C, H, W)`` or ``(N, C, H, W)``, ``C >= 3``, any
        real dtype, values in ``[0, data_range]``; ``H, W >= 32`` for AlexNet.
    net
        Backbone, ``"alex"`` (the LPIPS default) or ``"vgg"``.
    weights
        Path to torchvision's ImageNet weights of the backbone (``alexnet-owt-7be5be79.pth`` or
        ``vgg16-397923af.pth``). ``None`` reads them from ``torch.hub.get_dir()/checkpoints``.
        The LPIPS linear layers ship with the ``lpips`` package.
    random_backbone
        Use a randomly initialised backbone (``lpips.LPIPS(pnet_rand=True)``) instead of ImageNet
        weights; for smoke tests only, and labelled as such in the result.
    data_range
        Upper end of the input range, e.g. ``1.0`` for normalised reflectance.
    rgb_bands
        Indices of the red, green and blue bands along ``C``.

    Returns
    -------
    LpipsResult
        The mean distance over the batch and the backbone label.

    Raises
    ------
    CheckpointError
        If the backbone weights are neither at ``weights`` nor in the hub cache; the message names
        the file and where to put it.
    GridMismatchError
        If the shapes differ or have fewer than 3 bands.
    """
    import torch

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if len(a.shape) not in (3, 4) or a.shape[-3] < 3:
        raise GridMismatchError(f"LPIPS needs (C>=3, H, W) or (N, C>=3, H, W), got {a.shape}")
    model, label = _build_lpips(net, weights, random_backbone)

    with torch.no_grad():
        pa, pb = (_lpips_input(x, rgb_bands, data_range) for x in (a, b))
        value = float(model(pa, pb).mean())
    return LpipsResult(value=value, net=net, backbone=label)


@dataclass(frozen=True)
class StLpipsResult:
    """An ST-LPIPS score and its label."""

    value: float
    """Mean ST-LPIPS distance over the batch (0 = identical, larger = less similar)."""
    net: str
    """Backbone shape, ``"alex"`` or ``"vgg"``."""
    label: str
    """``"ST-LPIPS (shift-tolerant, <net>)"``: report it with the value; it is not LPIPS."""


@contextlib.contextmanager
def _stub_modules(names: Sequence[str]) -> Iterator[None]:
    """Temporarily provide empty modules for imports a package makes but never uses."""
    added = []
    for name in names:
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.embed = stub.summary = lambda *a, **k: None  # type: ignore[attr-defined]
            sys.modules[name] = stub
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def load_stlpips(net: LpipsNet = "alex") -> torch.nn.Module:
    """The shift-tolerant LPIPS network of ``stlpips-pytorch`` (frozen, eval mode, CPU, float32).

    ST-LPIPS (Ghildyal & Liu, ECCV 2022) has AlexNet- or VGG16-shaped backbones with anti-aliased
    (blur-pooled) strides, trained from scratch together with the linear heads on the BAPPS human
    similarity judgements; no ImageNet weights are involved, and the weights ship inside the
    ``stlpips-pytorch`` wheel, so this works offline. It is a different metric from LPIPS:
    report it as ST-LPIPS. The package imports ``IPython`` and ``torchsummary`` without using
    them; they are stubbed during the import if absent (and removed again afterwards).

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
        If ``stlpips-pytorch`` is not installed or its weights do not load.
    """
    if net not in STLPIPS_NETS:
        raise ConfigError(f"ST-LPIPS net must be one of {STLPIPS_NETS}, got {net!r}")
    try:
        with _stub_modules(("IPython", "torchsummary")):
            from stlpips_pytorch import stlpips
    except ImportError as err:
        raise CheckpointError(
            "ST-LPIPS needs the stlpips-pytorch package: pip install stlpips-pytorch"
        ) from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision/torch deprecations inside the package
            model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    except (OSError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"cannot load the ST-LPIPS {net} weights of stlpips-pytorch") from err
    model.eval().requires_grad_(False)
    return model


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
        real dtype, values in ``[0, data_range]`` (e.g. normalised reflectance); ``H, W >= 32``.
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
    import torch

    _check_pair(a.shape, b.shape)
    _check_range(data_range)
    if len(a.shape) not in (3, 4) or a.shape[-3] < 3 or min(a.shape[-2:]) < 32:
        raise GridMismatchError(
            f"ST-LPIPS needs (C>=3, H>=32, W>=32) or (N, C>=3, H>=32, W>=32), got {a.shape}"
        )
    network = model if model is not None else load_stlpips(net)

    with torch.no_grad():
        pa, pb = (_lpips_input(x, rgb_bands, data_range) for x in (a, b))
        value = float(network(pa, pb).mean())
    return StLpipsResult(value=value, net=net, label=f"ST-LPIPS (shift-tolerant, {net})")


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
