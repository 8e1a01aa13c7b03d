"""Blur kernels of the Real-ESRGAN degradation model, drawn with a ``torch.Generator``.

Kernels are ``(k, k)`` float64 tensors that sum to 1, ``k`` odd. The covariance of the anisotropic
kernels is ``R(theta) diag(sigma_x**2, sigma_y**2) R(theta)^T`` (Real-ESRGAN, Wang et al. 2021);
the generalised Gaussian is ``exp(-0.5 * (x^T S^-1 x) ** beta)`` and the plateau kernel
``1 / (1 + (x^T S^-1 x) ** beta)``; the sinc kernel is the circular low-pass
``omega_c * J1(omega_c r) / (2 pi r)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from scipy import special

__all__ = [
    "KernelKind",
    "bivariate_kernel",
    "filter2d",
    "random_blur_kernel",
    "sinc_kernel",
]

KernelKind = Literal[
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"
]


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    """One draw from U(low, high) using ``gen``."""
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _choice(gen: torch.Generator, probs: Sequence[float]) -> int:
    """Index drawn with the (unnormalised) probabilities ``probs``."""
    weights = torch.tensor(list(probs), dtype=torch.float64)
    return int(torch.multinomial(weights, 1, generator=gen))


def _grid(size: int) -> torch.Tensor:
    """``(size, size, 2)`` pixel offsets from the kernel centre, float64."""
    ax = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def bivariate_kernel(
    size: int,
    sigma_x: float,
    sigma_y: float,
    theta: float,
    *,
    beta: float = 1.0,
    shape: Literal["gaussian", "generalized", "plateau"] = "gaussian",
) -> torch.Tensor:
    """Return a normalised ``(size, size)`` float64 kernel of one of the three bivariate families.

    Examples
    --------
    >>> k = bivariate_kernel(7, 1.0, 1.0, 0.0)
    >>> k.shape, round(float(k.sum()), 6), bool(k[3, 3] == k.max())
    (torch.Size([7, 7]), 1.0, True)
    """
    cos, sin = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sigma_x**2, sigma_y**2], dtype=torch.float64)) @ rot.T
    grid = _grid(size)
    quad = torch.einsum("ijk,kl,ijl->ij", grid, torch.linalg.inv(cov), grid)
    if shape == "gaussian":
        kernel = torch.exp(-0.5 * quad)
    elif shape == "generalized":
        kernel = torch.exp(-0.5 * quad.pow(beta))
    else:
        kernel = 1.0 / (1.0 + quad.pow(beta))
    return kernel / kernel.sum()


def sinc_kernel(size: int, omega_c: float, pad_to: int = 0) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernel with cutoff ``omega_c`` rad/px, optionally zero-padded.

    Examples
    --------
    >>> k = sinc_kernel(7, math.pi / 2, pad_to=21)
    >>> k.shape, round(float(k.sum()), 6)
    (torch.Size([21, 21]), 1.0)
    """
    r = _grid(size).norm(dim=-1).numpy()
    with_r = omega_c * special.j1(omega_c * r) / (2 * math.pi * r.clip(min=1e-12))
    kernel = torch.from_numpy(with_r)
    kernel[size // 2, size // 2] = omega_c**2 / (4 * math.pi)  # limit at r = 0
    kernel = kernel / kernel.sum()
    if pad_to > size:
        pad = (pad_to - size) // 2
        kernel = F.pad(kernel, (pad, pad, pad, pad))
    return kernel


def random_blur_kernel(
    gen: torch.Generator,
    *,
    sizes: Sequence[int],
    kinds: Sequence[KernelKind],
    kind_probs: Sequence[float],
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
    sinc_prob: float,
    pad_to: int,
) -> torch.Tensor:
    """Draw one Real-ESRGAN blur kernel, zero-padded to ``(pad_to, pad_to)``, float64.

    With probability ``sinc_prob`` a sinc kernel (cutoff ``U(pi/3, pi)`` for sizes < 13, else
    ``U(pi/5, pi)``), otherwise one of ``kinds`` with ``kind_probs``; isotropic kinds use
    ``sigma_x == sigma_y`` and ``theta = 0``; ``beta`` is drawn below or above 1 with equal odds.
    Sizes are odd; ``pad_to`` must be at least the largest size.
    """
    size = int(sizes[int(torch.randint(len(sizes), (), generator=gen))])
    if _uniform(gen, 0.0, 1.0) < sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, _uniform(gen, low, math.pi), pad_to=pad_to)
    kind = kinds[_choice(gen, kind_probs)]
    sigma_x = _uniform(gen, *sigma_range)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y, theta = _uniform(gen, *sigma_range), _uniform(gen, -math.pi, math.pi)
    beta, shape = 1.0, "gaussian"
    if kind.startswith("generalized") or kind.startswith("plateau"):
        lo, hi = betag_range if kind.startswith("generalized") else betap_range
        below = _uniform(gen, 0.0, 1.0) < 0.5  # as BasicSR: U(lo, 1) or U(1, hi), equal odds
        beta = _uniform(gen, lo, 1.0) if below else _uniform(gen, 1.0, hi)
        shape = "generalized" if kind.startswith("generalized") else "plateau"
    kernel = bivariate_kernel(size, sigma_x, sigma_y, theta, beta=beta, shape=shape)  # type: ignore[arg-type]
    pad = (pad_to - size) // 2
    return F.pad(kernel, (pad, pad, pad, pad)) if pad > 0 else kernel


def filter2d(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image ``(N, C, H, W)`` with its own kernel ``(N, k, k)`` (reflect padding).

    Returns a tensor of the same shape and dtype as ``images``; ``k`` must be odd.

    Examples
    --------
    >>> x = torch.rand(2, 4, 8, 8)
    >>> delta = torch.zeros(2, 3, 3)
    >>> delta[:, 1, 1] = 1
    >>> torch.equal(filter2d(x, delta), x)
    True
    """
    n, c, h, w = images.shape
    k = kernels.shape[-1]
    # Reflect padding needs a margin smaller than the image; tiny images fall back to replicate.
    mode = "reflect" if k // 2 < min(h, w) else "replicate"
    padded = F.pad(images, (k // 2, k // 2, k // 2, k // 2), mode=mode)
    weight = kernels.to(images).repeat_interleave(c, dim=0)[:, None]  # (N*C, 1, k, k)
    out = F.conv2d(padded.reshape(1, n * c, h + k - 1, w + k - 1), weight, groups=n * c)
    return out.reshape(n, c, h, w)
