"""Real-ESRGAN's second-order degradation model, applied on the fly to torch batches.

:func:`degrade_training` turns an HR batch ``(N, C, H, W)`` into an LR batch
``(N, C, H/scale, W/scale)``: blur -> random resize -> Gaussian or Poisson noise -> compression,
twice (the second blur with probability ``second_blur_prob``), then a resize to the exact LR size
with a final sinc filter, in random order with the last compression (Wang et al., "Real-ESRGAN",
ICCVW 2021, section 3).

Compression depends on the data:

* **3 bands, 8 bit (RGB)**: JPEG with quality ``U(jpeg_range)`` through ``torchvision.io``'s
  ``encode_jpeg``/``decode_jpeg`` on uint8 images, as in Real-ESRGAN (these functions are
  deprecated since torchvision 0.29 in favour of TorchCodec, which is not installed here; they
  emit a ``DeprecationWarning``); the output is rounded to 8 bit.
* **any other band count (e.g. blue, green, red, nir reflectance)**: JPEG has no physical meaning
  for Level-2A reflectance (it is never JPEG-compressed, and a 4-band JPEG does not exist). It is
  replaced by the two radiometric errors that do separate a Sentinel-2 pixel from an aerial
  reference: a random gain ``U(gain_range)`` and offset ``U(offset_range)`` per image and band
  (relative calibration and atmospheric-correction mismatch, a few percent; the MSI absolute
  radiometric uncertainty target is 5 %), followed by quantisation to ``quantization_step``
  (1/4096, the MSI's 12-bit radiometric resolution over the normalised range). The output is
  clipped to ``clip_range`` and quantised to the same step. Gain, offset and quantisation produce
  no 8x8 block artefacts a network could learn to remove where real S2 data has none.

Every random draw comes from the ``torch.Generator`` passed in, so equal seeds give equal outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.extras import import_extra
from s2scale.train.kernels import (
    KernelKind,
    _choice,
    _uniform,
    filter2d,
    random_blur_kernel,
    sinc_kernel,
)

__all__ = ["TrainingDegradationConfig", "degrade_training"]

Range = tuple[float, float]
ResizeMode = Literal["area", "bilinear", "bicubic"]

_KINDS: tuple[KernelKind, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


@dataclass(frozen=True)
class TrainingDegradationConfig:
    """Parameters of :func:`degrade_training`; defaults from Real-ESRGAN's x4plus training YAML.

    The defaults are those of Real-ESRGAN's ``train_realesrgan_x4plus.yml``. Noise sigmas are in
    8-bit units (divided by 255 for data in ``[0, 1]``), as published.
    """

    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    """Odd blur kernel sizes drawn uniformly; kernels are zero-padded to the largest."""
    kernel_kinds: tuple[KernelKind, ...] = _KINDS
    """Blur kernel families."""
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    """Probabilities of ``kernel_kinds`` in the first blur."""
    sinc_prob: float = 0.1
    """Probability that the first blur is a sinc kernel."""
    blur_sigma: Range = (0.2, 3.0)
    """Range of the first blur's sigma, pixels."""
    betag_range: Range = (0.5, 4.0)
    """Shape parameter range of generalised Gaussian kernels."""
    betap_range: Range = (1.0, 2.0)
    """Shape parameter range of plateau kernels."""
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Probabilities of up, down and keep in the first resize."""
    resize_range: Range = (0.15, 1.5)
    """Factor range of the first resize."""
    gaussian_noise_prob: float = 0.5
    """Probability of Gaussian (else Poisson) noise in the first stage."""
    noise_range: Range = (1.0, 30.0)
    """Gaussian noise sigma of the first stage, 8-bit units."""
    poisson_scale_range: Range = (0.05, 3.0)
    """Poisson noise scale of the first stage."""
    gray_noise_prob: float = 0.4
    """Probability that the noise is the same in all bands (grey) in the first stage."""
    jpeg_range: Range = (30.0, 95.0)
    """JPEG quality range (3-band data only)."""
    second_blur_prob: float = 0.8
    """Probability of the second blur."""
    kernel_probs2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    """Probabilities of ``kernel_kinds`` in the second blur."""
    sinc_prob2: float = 0.1
    """Probability that the second blur is a sinc kernel."""
    blur_sigma2: Range = (0.2, 1.5)
    """Range of the second blur's sigma, pixels."""
    resize_probs2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    """Probabilities of up, down and keep in the second resize."""
    resize_range2: Range = (0.3, 1.2)
    """Factor range of the second resize (relative to the LR size)."""
    gaussian_noise_prob2: float = 0.5
    """Probability of Gaussian (else Poisson) noise in the second stage."""
    noise_range2: Range = (1.0, 25.0)
    """Gaussian noise sigma of the second stage, 8-bit units."""
    poisson_scale_range2: Range = (0.05, 2.5)
    """Poisson noise scale of the second stage."""
    gray_noise_prob2: float = 0.4
    """Probability of grey noise in the second stage."""
    jpeg_range2: Range = (30.0, 95.0)
    """JPEG quality range of the second stage."""
    final_sinc_prob: float = 0.8
    """Probability of the final sinc filter (else identity)."""
    resize_modes: tuple[ResizeMode, ...] = ("area", "bilinear", "bicubic")
    """Interpolation modes drawn uniformly at each resize."""
    compression: Literal["auto", "jpeg", "radiometric"] = "auto"
    """``"auto"``: JPEG for 3 bands, the radiometric replacement otherwise."""
    gain_range: Range = (0.97, 1.03)
    """Per-band gain of the radiometric replacement."""
    offset_range: Range = (-0.005, 0.005)
    """Per-band offset of the radiometric replacement, normalised reflectance."""
    quantization_step: float = 1.0 / 4096
    """Quantisation step of the radiometric replacement (12 bit over ``[0, 1]``)."""
    clip_range: Range = (0.0, 1.0)
    """Values are clipped to this range after noise and at the end."""

    def __post_init__(self) -> None:
        probs = [
            self.sinc_prob,
            self.gaussian_noise_prob,
            self.gray_noise_prob,
            self.second_blur_prob,
            self.sinc_prob2,
            self.gaussian_noise_prob2,
            self.gray_noise_prob2,
            self.final_sinc_prob,
        ]
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ConfigError(f"degradation probabilities must lie in [0, 1], got {probs}")
        if not self.kernel_sizes or any(k < 3 or k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes must be odd and >= 3, got {self.kernel_sizes}")
        for name in ("kernel_probs", "kernel_probs2"):
            value = getattr(self, name)
            if len(value) != len(self.kernel_kinds) or min(value) < 0 or sum(value) <= 0:
                raise ConfigError(f"{name}={value} needs one weight >= 0 per kernel kind")
        for name in ("resize_probs", "resize_probs2"):
            if min(getattr(self, name)) < 0 or sum(getattr(self, name)) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} needs weights >= 0")
        for name in (
            "blur_sigma",
            "blur_sigma2",
            "resize_range",
            "resize_range2",
            "noise_range",
            "noise_range2",
            "poisson_scale_range",
            "poisson_scale_range2",
            "jpeg_range",
            "jpeg_range2",
            "gain_range",
            "offset_range",
            "clip_range",
        ):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"{name}=({low}, {high}) must be (low, high) with low <= high")
        if not self.quantization_step > 0:
            raise ConfigError(f"quantization_step must be > 0, got {self.quantization_step}")


def _kernels(
    gen: torch.Generator, n: int, cfg: TrainingDegradationConfig, second: bool
) -> torch.Tensor:
    """``(n, K, K)`` blur kernels of the first or second stage, float64."""
    return torch.stack(
        [
            random_blur_kernel(
                gen,
                sizes=cfg.kernel_sizes,
                kinds=cfg.kernel_kinds,
                kind_probs=cfg.kernel_probs2 if second else cfg.kernel_probs,
                sigma_range=cfg.blur_sigma2 if second else cfg.blur_sigma,
                betag_range=cfg.betag_range,
                betap_range=cfg.betap_range,
                sinc_prob=cfg.sinc_prob2 if second else cfg.sinc_prob,
                pad_to=max(cfg.kernel_sizes),
            )
            for _ in range(n)
        ]
    )


def _final_kernels(gen: torch.Generator, n: int, cfg: TrainingDegradationConfig) -> torch.Tensor:
    """``(n, K, K)`` final sinc kernels (cutoff ``U(pi/3, pi)``) or identity pulses."""
    size = max(cfg.kernel_sizes)
    pulse = torch.zeros(size, size, dtype=torch.float64)
    pulse[size // 2, size // 2] = 1.0
    out = []
    for _ in range(n):
        if _uniform(gen, 0.0, 1.0) < cfg.final_sinc_prob:
            k = cfg.kernel_sizes[int(torch.randint(len(cfg.kernel_sizes), (), generator=gen))]
            out.append(sinc_kernel(k, _uniform(gen, math.pi / 3, math.pi), pad_to=size))
        else:
            out.append(pulse)
    return torch.stack(out)


def _resize(
    x: torch.Tensor, size: tuple[int, int], gen: torch.Generator, modes: Sequence[ResizeMode]
) -> torch.Tensor:
    """Resize ``x`` to ``size`` with a mode drawn from ``modes``."""
    mode = modes[int(torch.randint(len(modes), (), generator=gen))]
    size = (max(1, size[0]), max(1, size[1]))
    return F.interpolate(
        x, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False})
    )


def _random_factor(gen: torch.Generator, probs: Sequence[float], bounds: Range) -> float:
    """Resize factor: ``U(1, high)`` (up), ``U(low, 1)`` (down) or 1 (keep)."""
    updown = _choice(gen, probs)
    if updown == 0:
        return _uniform(gen, 1.0, bounds[1])
    return _uniform(gen, bounds[0], 1.0) if updown == 1 else 1.0


def _noise(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    gaussian_prob: float,
    sigma: Range,
    poisson_scale: Range,
    gray_prob: float,
    clip: Range,
) -> torch.Tensor:
    """Add Gaussian (sigma in 8-bit units) or Poisson noise, colour or grey per image, and clip."""
    n, c, h, w = x.shape
    gray = torch.rand(n, generator=gen) < gray_prob
    if _uniform(gen, 0.0, 1.0) < gaussian_prob:
        sigmas = torch.tensor([_uniform(gen, *sigma) / 255.0 for _ in range(n)])
        colour = torch.randn((n, c, h, w), generator=gen)
        grey = torch.randn((n, 1, h, w), generator=gen).expand(n, c, h, w)
        noise = torch.where(gray.view(n, 1, 1, 1), grey, colour) * sigmas.view(n, 1, 1, 1)
    else:
        scales = torch.tensor([_uniform(gen, *poisson_scale) for _ in range(n)])
        img = (x.detach().cpu().float().clamp(0, 1) * 255).round() / 255
        noise = torch.empty_like(img)
        for i in range(n):
            src = img[i].mean(0, keepdim=True) if gray[i] else img[i]
            vals = 2 ** math.ceil(math.log2(max(2, len(torch.unique(src)))))
            shot = torch.poisson(src * vals, generator=gen) / vals - src
            noise[i] = shot.expand(c, h, w) * scales[i]
    return (x + noise.to(x)).clamp(*clip)


def _jpeg(x: torch.Tensor, gen: torch.Generator, quality: Range) -> torch.Tensor:
    """JPEG-compress each 3-band image in ``[0, 1]`` at quality ``U(quality)`` via torchvision."""
    tv_io = import_extra("torchvision.io", "train", "JPEG compression of the degradations")
    out = []
    for img in (x.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8):
        q = round(_uniform(gen, *quality))
        out.append(tv_io.decode_jpeg(tv_io.encode_jpeg(img, quality=q)).float() / 255)
    return torch.stack(out).to(x)


def _radiometric(
    x: torch.Tensor, gen: torch.Generator, cfg: TrainingDegradationConfig
) -> torch.Tensor:
    """Per-image, per-band gain and offset, then quantisation (the non-JPEG replacement)."""
    n, c = x.shape[:2]
    gain = torch.rand((n, c, 1, 1), generator=gen, dtype=torch.float64)
    offset = torch.rand((n, c, 1, 1), generator=gen, dtype=torch.float64)
    gain = cfg.gain_range[0] + (cfg.gain_range[1] - cfg.gain_range[0]) * gain
    offset = cfg.offset_range[0] + (cfg.offset_range[1] - cfg.offset_range[0]) * offset
    out = (x * gain.to(x) + offset.to(x)).clamp(*cfg.clip_range)
    return (out / cfg.quantization_step).round() * cfg.quantization_step


def degrade_training(
    hr: torch.Tensor, *, scale: int, config: TrainingDegradationConfig, generator: torch.Generator
) -> torch.Tensor:
    """Synthesise an LR batch from an HR batch with Real-ESRGAN's second-order degradations.

    Parameters
    ----------
    hr
        Float tensor ``(N, C, H, W)``, normalised reflectance (or RGB) in ``config.clip_range``
        (``[0, 1]`` by default), any device; ``H`` and ``W`` divisible by ``scale``.
    scale
        Downscaling factor (2 for 5 m -> 10 m).
    config
        Degradation parameters; ``TrainingDegradationConfig()`` gives Real-ESRGAN's defaults.
    generator
        CPU ``torch.Generator`` supplying every random draw.

    Returns
    -------
    torch.Tensor
        LR batch ``(N, C, H // scale, W // scale)``, same dtype and device as ``hr``, values in
        ``config.clip_range``, rounded to 8 bit (JPEG path) or to ``quantization_step``.

    Raises
    ------
    GridMismatchError
        If ``hr`` is not 4-D or its size is not divisible by ``scale``.
    ConfigError
        If ``compression="jpeg"`` is requested for data that does not have 3 bands.

    Examples
    --------
    >>> hr = torch.rand(2, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> lr = degrade_training(hr, scale=2, config=TrainingDegradationConfig(),
    ...              generator=torch.Generator().manual_seed(1))
    >>> lr.shape
    torch.Size([2, 4, 16, 16])
    """
    if hr.ndim != 4 or hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise GridMismatchError(
            f"hr must be (N, C, H, W) with H, W divisible by {scale}, got "
            f"{tuple(hr.shape)}; crop the patches"
        )
    n, c, h, w = hr.shape
    use_jpeg = config.compression == "jpeg" or (config.compression == "auto" and c == 3)
    if use_jpeg and c != 3:
        raise ConfigError(
            f"JPEG compression needs 3-band 8-bit data, got {c} bands; "
            "use compression='radiometric' or 'auto'"
        )
    cfg, gen, out_size = config, generator, (h // scale, w // scale)

    def compress(x: torch.Tensor, quality: Range) -> torch.Tensor:
        return _jpeg(x, gen, quality) if use_jpeg else _radiometric(x, gen, cfg)

    out = filter2d(hr, _kernels(gen, n, cfg, second=False))
    factor = _random_factor(gen, cfg.resize_probs, cfg.resize_range)
    out = _resize(out, (int(h * factor), int(w * factor)), gen, cfg.resize_modes)
    out = _noise(
        out,
        gen,
        gaussian_prob=cfg.gaussian_noise_prob,
        sigma=cfg.noise_range,
        poisson_scale=cfg.poisson_scale_range,
        gray_prob=cfg.gray_noise_prob,
        clip=cfg.clip_range,
    )
    out = compress(out, cfg.jpeg_range)
    kernels2 = _kernels(gen, n, cfg, second=True)
    if _uniform(gen, 0.0, 1.0) < cfg.second_blur_prob:
        out = filter2d(out, kernels2)
    factor = _random_factor(gen, cfg.resize_probs2, cfg.resize_range2)
    out = _resize(out, (int(h / scale * factor), int(w / scale * factor)), gen, cfg.resize_modes)
    out = _noise(
        out,
        gen,
        gaussian_prob=cfg.gaussian_noise_prob2,
        sigma=cfg.noise_range2,
        poisson_scale=cfg.poisson_scale_range2,
        gray_prob=cfg.gray_noise_prob2,
        clip=cfg.clip_range,
    )
    final = _final_kernels(gen, n, cfg)
    if _uniform(gen, 0.0, 1.0) < 0.5:  # resize + sinc, then compression
        out = filter2d(_resize(out, out_size, gen, cfg.resize_modes), final)
        out = compress(out, cfg.jpeg_range2)
    else:  # compression, then resize + sinc
        out = compress(out, cfg.jpeg_range2)
        out = filter2d(_resize(out, out_size, gen, cfg.resize_modes), final)
    out = out.clamp(*cfg.clip_range)
    step = 1.0 / 255 if use_jpeg else cfg.quantization_step
    return ((out / step).round() * step).to(hr.dtype)
