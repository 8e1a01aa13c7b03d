"""The block's work around the network as torch operations on the worker's device.

One block of :func:`s2scale.infer.upscale` (a uint16 ``(C, H, W)`` window with its halo) is
copied to the device once; everything between that copy and the copy of the uint16 result back
runs here, on CUDA or on the CPU alike, with no numpy in between:

- :func:`fill_holes`: no-data holes grown from the valid pixels around them
  (:mod:`s2scale.infer.nodata` explains the rule and the reach);
- :func:`blend_tiles`: the batched forward passes over the sub-tiles of the block and their
  feathered blend (:mod:`s2scale.infer.tiling` lays the tiles out);
- :func:`project`: the consistency projection ``sr + D^T (D D^T)^-1 L (lr - D sr)``
  (:mod:`s2scale.infer.consistency` explains it; ``L`` is the optional Gaussian low-pass);
- :func:`process_block`: all of it in order, then rounding, clipping and the no-data mask.

Separable filters are computed as shifted multiply-adds along one axis at a time (half-sample
symmetric borders, SciPy's ``mode="reflect"``): on the CPU that is 3-4x faster than a depthwise
``conv2d`` and faster than :func:`scipy.ndimage.correlate1d`, and on CUDA it is a few dozen
memory-bound kernels per block. ``D`` (PSF, then ``scale x scale`` means) is evaluated at the
low resolution directly (the PSF and the box filter combined, with stride ``scale``), so it costs
a quarter of a full-resolution pass; ``D^T`` is added into the output in place, row phase by row
phase; the residual's low-pass and inverse filter (46 taps per axis at the default strength)
are one FFT product (:func:`filter_lr`). Values are float32 throughout.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from s2scale.errors import ConfigError

__all__ = [
    "Forward",
    "ProjectionKernels",
    "blend_tiles",
    "correlate",
    "degrade",
    "fill_holes",
    "filter_lr",
    "process_block",
    "project",
    "project_",
    "projection_kernels",
    "stage_times",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
"""``(N, C, h, w)`` float32 on the device -> ``(N, C, h*scale, w*scale)``, in the units of
:func:`process_block`'s ``normalization`` (DN by default)."""

_STAGE_S: defaultdict[str, float] = defaultdict(float)  # seconds per stage, this process
_PIECE_PX = 64  # CPU filters along columns run in bands of this many rows
_ROWS_PX = 16  # CPU filters along rows run in bands of this many output rows


def stage_times(reset: bool = False) -> dict[str, float]:
    """Seconds this process spent in each stage of :func:`process_block` (fill, forward, ...).

    Stages are timed only on the CPU or after a device synchronisation (CUDA stages are
    synchronised only when timing is asked for: :func:`process_block` ``timed=True``).

    Examples
    --------
    >>> isinstance(stage_times(), dict)
    True
    """
    out = dict(_STAGE_S)
    if reset:
        _STAGE_S.clear()
    return out


@contextmanager
def _stage(name: str, device: torch.device, timed: bool) -> Any:
    """Add the wall time of the block to stage ``name`` (after a CUDA sync when ``timed``)."""
    if not timed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    _STAGE_S[name] += time.perf_counter() - t0


# ------------------------------------------------------------------------------ filters
def _symmetric_pad(x: torch.Tensor, lo: int, hi: int, dim: int) -> torch.Tensor:
    """``x`` with ``lo``/``hi`` half-sample symmetric samples added along ``dim``."""
    n = x.shape[dim]
    if lo == 0 and hi == 0:
        return x
    if lo <= n and hi <= n:
        parts = [x.narrow(dim, 0, lo).flip(dim), x, x.narrow(dim, n - hi, hi).flip(dim)]
        return torch.cat(parts, dim)
    index = np.pad(np.arange(n), (lo, hi), mode="symmetric")
    return x.index_select(dim, torch.from_numpy(index).to(x.device))


def _gather(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``x.index_select(dim, index)`` reading only the span of ``index`` (no copy of ``x``)."""
    lo, hi = int(index.min()), int(index.max())
    return x.narrow(dim, lo, hi - lo + 1).index_select(dim, (index - lo).to(x.device))


def correlate(
    x: torch.Tensor,
    kernels: torch.Tensor,
    dim: int,
    *,
    stride: int = 1,
    pad: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-channel 1-D correlation of ``(..., C, H, W)`` along ``dim``, symmetric borders.

    Parameters
    ----------
    x
        Float tensor; channels are the third axis from the end.
    kernels
        ``(C, L)`` one kernel per channel (centred at ``(L - 1) // 2`` when ``pad`` is None).
    dim
        ``-2`` (y) or ``-1`` (x).
    stride
        Keep every ``stride``-th output: ``out[i] = sum_m k[m] xp[stride * i + m]``.
    pad
        Symmetric samples added on each side first (default ``(L - 1) // 2``).
    out
        Add the result to this tensor (any strides, e.g. every other column of a larger
        array) instead of returning a new one; not with autograd.

    Returns
    -------
    torch.Tensor
        Same size along ``dim`` as ``x`` divided by ``stride`` (``stride`` must divide it);
        ``out`` itself when given.

    Examples
    --------
    >>> x = torch.arange(5.0).reshape(1, 1, 5)
    >>> correlate(x, torch.tensor([[1.0, 1.0, 1.0]]), -1).tolist()
    [[[1.0, 3.0, 6.0, 9.0, 11.0]]]
    >>> correlate(x, torch.tensor([[1.0]]), -1, out=torch.ones(1, 1, 5)).tolist()
    [[[1.0, 2.0, 3.0, 4.0, 5.0]]]
    """
    c, length = kernels.shape
    r = (length - 1) // 2 if pad is None else pad
    dim = dim % x.ndim
    n_out = (x.shape[dim] - 1) // stride + 1
    w = kernels.to(device=x.device, dtype=x.dtype).reshape(c, length, 1, 1)

    def tap(src: torch.Tensor, m: int, count: int) -> torch.Tensor:
        index: list[Any] = [slice(None)] * x.ndim
        index[dim] = slice(m, m + stride * (count - 1) + 1, stride)
        return src[tuple(index)]

    if torch.is_grad_enabled() and x.requires_grad:  # autograd: out of place
        xp = _symmetric_pad(x, r, length - 1 - r, dim)
        result = tap(xp, 0, n_out) * w[:, 0]
        for m in range(1, length):
            result = result + tap(xp, m, n_out) * w[:, m]
        return result if out is None else out + result
    shape = list(x.shape)
    shape[dim] = n_out
    if out is not None and list(out.shape) != shape:
        raise ConfigError(f"correlate: out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    dst = torch.empty(shape, dtype=x.dtype, device=x.device) if out is None else out
    n = x.shape[dim]
    # outputs [i0, i1) read only real samples: they need no padded copy of the input, only the
    # outputs near the two ends do (their samples gathered with the symmetric index)
    i0 = min(-(-r // stride), n_out)
    i1 = max(min((n - length + r) // stride + 1, n_out), i0)
    index = torch.from_numpy(np.pad(np.arange(n), (r, length - 1 - r), mode="symmetric"))

    def accumulate(into: torch.Tensor, source: Callable[[int], torch.Tensor]) -> None:
        """``into`` (+)= the sum over taps ``m`` of ``source(m) * w[:, m]`` (+ when ``out``)."""
        first = 0
        if out is None:
            torch.mul(source(0), w[:, 0], out=into)
            first = 1
        for m in range(first, length):
            into.addcmul_(source(m), w[:, m])

    def run(src: torch.Tensor, into: torch.Tensor) -> None:
        count = into.shape[dim]
        if count:
            accumulate(into, lambda m: tap(src, m, count))

    def taps(src: torch.Tensor, into: torch.Tensor, band: int = 0) -> None:
        """All outputs of ``src`` into ``into``; the inner ones in bands of ``band`` (0: one)."""
        if i0 > 0:
            run(_gather(src, dim, index[: stride * (i0 - 1) + length]), into.narrow(dim, 0, i0))
        step = band or max(i1 - i0, 1)
        for a in range(i0, i1, step):
            b = min(a + step, i1)
            run(src.narrow(dim, stride * a - r, stride * (b - 1 - a) + length),
                into.narrow(dim, a, b - a))  # fmt: skip
        if i1 < n_out:
            run(_gather(src, dim, index[stride * i1 :]), into.narrow(dim, i1, n_out - i1))

    other = x.ndim - 1 if dim == x.ndim - 2 else x.ndim - 2
    n_other = x.shape[other]
    if x.device.type != "cpu" or n_other <= 2 * _PIECE_PX:
        taps(x, dst)
        return dst
    # CPU: pieces that keep the sums in cache. Along rows: bands of output rows, whole rows
    # wide (their inputs are whole rows of ``x``, read in place); along columns: bands of rows.
    if dim == x.ndim - 2:
        taps(x, dst, _ROWS_PX)
        return dst
    for a in range(0, n_other, _PIECE_PX):
        size = min(_PIECE_PX, n_other - a)
        if stride == 1:
            taps(x.narrow(other, a, size), dst.narrow(other, a, size))
            continue
        # strided along rows: the taps would read every stride-th element (no vector loads),
        # so the padded band is split into its stride phases once, and each tap reads one
        # phase contiguously
        xp = _symmetric_pad(x.narrow(other, a, size), r, length - 1 - r, dim)
        phases = [xp.narrow(dim, p, xp.shape[dim] - p)[..., ::stride].contiguous()
                  for p in range(min(stride, length))]  # fmt: skip
        accumulate(dst.narrow(other, a, size),
                   lambda m, ph=phases: ph[m % stride].narrow(dim, m // stride, n_out))  # fmt: skip
    return dst


def _as_kernels(kernels: Sequence[np.ndarray]) -> torch.Tensor:
    """``(C, L)`` float32 of odd 1-D kernels, zero-padded about their centres to one length."""
    length = max(len(k) for k in kernels)
    out = np.zeros((len(kernels), length), np.float32)
    for i, k in enumerate(kernels):
        pad = (length - len(k)) // 2
        out[i, pad : pad + len(k)] = k
    return torch.from_numpy(out)


class ProjectionKernels:
    """The 1-D kernels of the consistency projection for one band set (float32, ``(C, L)``)."""

    def __init__(
        self,
        psf: Sequence[np.ndarray],
        inverse: Sequence[np.ndarray],
        lowpass_px: float,
        scale: int,
    ) -> None:
        self.scale = int(scale)
        self.psf = _as_kernels(psf)
        """The nominal PSF per band (odd length ``L``, half-length ``r``)."""
        self.r = (self.psf.shape[1] - 1) // 2
        box = np.ones(scale, np.float64) / scale
        self.psf_box = torch.from_numpy(
            np.stack([np.convolve(k, box) for k in self.psf.numpy().astype(np.float64)])
        ).float()
        """The PSF followed by the ``scale``-sample mean (length ``L + scale - 1``)."""
        self.phases, self.phase_offset = _phase_kernels(self.psf, self.scale)
        """``D^T``'s replicate-then-PSF in polyphase form (:func:`_phase_kernels`)."""
        self.phases_scaled = self.phases / (scale * scale)
        """:attr:`phases` divided by ``scale**2`` (the mean of ``D``'s transpose)."""
        self.inverse = _as_kernels(inverse)
        """The truncated inverse filter of ``D D^T`` per band."""
        self.lowpass: torch.Tensor | None = None
        """The residual's Gaussian low-pass (SciPy's ``gaussian_filter1d``, truncate 3), or None."""
        lr_kernel = self.inverse.double()
        if lowpass_px > 0:
            radius = int(3.0 * lowpass_px + 0.5)
            x = np.arange(-radius, radius + 1, dtype=np.float64)
            g = np.exp(-0.5 / lowpass_px**2 * x**2)
            self.lowpass = torch.from_numpy(np.tile(g / g.sum(), (len(psf), 1))).float()
            pairs = zip(self.lowpass.double().numpy(), lr_kernel.numpy(), strict=True)
            lr_kernel = torch.from_numpy(np.stack([np.convolve(a, b) for a, b in pairs]))
        self.lr_kernel = lr_kernel.float()
        """The low-pass and the inverse filter combined, ``(C, 2R + 1)`` (:func:`filter_lr`)."""
        self._responses: dict[tuple[int, int, str], torch.Tensor] = {}

    def lr_response(self, ny: int, nx: int, device: torch.device) -> torch.Tensor:
        """The 2-D frequency response of :attr:`lr_kernel` on an ``ny x nx`` FFT grid (cached)."""
        key = (ny, nx, str(device))
        if key not in self._responses:
            kern = self.lr_kernel.double().numpy()
            r = (kern.shape[1] - 1) // 2
            taps = np.arange(-r, r + 1)

            def response(n: int, real: bool) -> np.ndarray:
                line = np.zeros((kern.shape[0], n))
                np.add.at(line, (slice(None), taps % n), kern)
                return (np.fft.rfft(line) if real else np.fft.fft(line)).real

            ry, rx = response(ny, False), response(nx, True)
            both = torch.from_numpy(ry[:, :, None] * rx[:, None, :]).float()
            if len(self._responses) > 8:
                self._responses.clear()
            self._responses[key] = both.to(device)
        return self._responses[key]

    def to(self, device: torch.device) -> ProjectionKernels:
        """The same kernels on ``device``."""
        out = object.__new__(ProjectionKernels)
        out.__dict__.update(
            {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        )
        out._responses = {}
        return out


@functools.lru_cache(maxsize=16)
def projection_kernels(
    mtfs: tuple[float, ...], scale: int, taps: int, lowpass_px: float, device: str = "cpu"
) -> ProjectionKernels:
    """The (cached) kernels of the projection for nominal MTFs ``mtfs``, on ``device``.

    Examples
    --------
    >>> k = projection_kernels((0.3,), 2, 10, 4.0)
    >>> tuple(k.psf.shape), tuple(k.inverse.shape), tuple(k.lowpass.shape)
    ((1, 9), (1, 21), (1, 25))
    """
    if device != "cpu":
        return projection_kernels(mtfs, scale, taps, lowpass_px).to(torch.device(device))
    from s2scale.infer.consistency import inverse_filter, psf_1d

    return ProjectionKernels(
        [psf_1d(m, scale) for m in mtfs],
        [inverse_filter(float(m), scale, taps).astype(np.float32) for m in mtfs],
        lowpass_px,
        scale,
    )


def degrade(sr: torch.Tensor, k: ProjectionKernels) -> torch.Tensor:
    """``D sr``: the nominal PSF per band, then ``scale x scale`` means (strided, at LR)."""
    s = k.scale
    out = correlate(sr, k.psf_box, -2, stride=s, pad=k.r)
    return correlate(out, k.psf_box, -1, stride=s, pad=k.r)


def _phase_kernels(psf: torch.Tensor, scale: int) -> tuple[torch.Tensor, int]:
    """Polyphase form of "replicate ``scale`` times, then correlate with ``psf``" along one axis.

    Output sample ``scale * i + p`` is ``sum_d h[p, :, d] x[i + d + d0]``: ``h`` is ``(scale, C,
    D)``, ``d0`` the (negative) offset of its first tap. Exact, borders included: the symmetric
    extension of a replicated signal is the replicated symmetric extension.
    """
    c, length = psf.shape
    r = (length - 1) // 2
    d0 = (-r) // scale
    taps = (scale - 1 + r) // scale - d0 + 1
    h = torch.zeros((scale, c, taps), dtype=psf.dtype)
    for p in range(scale):
        for k in range(length):
            h[p, :, (p + k - r) // scale - d0] += psf[:, k]
    return h, d0


def _replicate_correlate(
    x: torch.Tensor, phases: torch.Tensor, k: ProjectionKernels, dim: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``correlate(x.repeat_interleave(scale, dim), psf, dim)`` without the replicated array.

    ``phases`` are the polyphase kernels of ``psf`` (:func:`_phase_kernels`); with ``out`` the
    result is added to it in place.
    """
    scale, d0 = k.scale, k.phase_offset
    dim = dim % x.ndim
    if out is None and dim == x.ndim - 1:  # columns: whole phases, then one interleaving copy
        return _stack_phases(x, phases, k, dim)
    shape = list(x.shape)
    shape[dim] *= scale
    dst = torch.zeros(shape, dtype=x.dtype, device=x.device) if out is None else out
    view = dst.unflatten(dim, (x.shape[dim], scale))
    for p in range(scale):
        correlate(x, phases[p], dim, pad=-d0, out=view.select(dim + 1, p))
    return dst


def _adjoint(
    res: torch.Tensor, k: ProjectionKernels, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``D^T res``: replicate each LR pixel ``scale x scale`` times / ``scale**2``, then the PSF.

    With ``out`` the result is added to it in place (no full-resolution temporary).
    """
    if torch.is_grad_enabled() and res.requires_grad:
        up = _stack_phases(res, k.phases, k, -2)
        result = _stack_phases(up, k.phases_scaled, k, -1)
        return result if out is None else out + result
    # columns first at the low resolution, then rows straight into ``out`` (whole rows at a
    # stride: no strided writes within a row)
    up = _replicate_correlate(res, k.phases, k, -1)
    return _replicate_correlate(up, k.phases_scaled, k, -2, out=out)


def _stack_phases(
    x: torch.Tensor, phases: torch.Tensor, k: ProjectionKernels, dim: int
) -> torch.Tensor:
    """:func:`_replicate_correlate` out of place: the phases, then one interleaving copy."""
    out = torch.stack(
        [correlate(x, phases[p], dim, pad=-k.phase_offset) for p in range(k.scale)],
        dim=dim % x.ndim + 1,
    )
    shape = list(x.shape)
    shape[dim] *= k.scale
    return out.reshape(shape)


def _fft_len(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3 and 5 (a fast FFT length).

    Examples
    --------
    >>> _fft_len(1069), _fft_len(1024)
    (1080, 1024)
    """
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def filter_lr(res: torch.Tensor, k: ProjectionKernels) -> torch.Tensor:
    """``(D D^T)^-1 L res``: the low-pass and the inverse filter of the projection at once.

    Both are separable and symmetric, so with half-sample symmetric borders the two in turn
    equal their combination (:attr:`ProjectionKernels.lr_kernel`) on the symmetric extension by
    its half-length ``R``, computed here as one FFT product (``~5x`` fewer operations than
    their ``2 x 46`` shifted multiply-adds at the default strength).
    """
    kern = k.lr_kernel
    r = (kern.shape[1] - 1) // 2
    h, w = res.shape[-2:]
    ny, nx = _fft_len(h + 2 * r), _fft_len(w + 2 * r)
    xp = _symmetric_pad(_symmetric_pad(res, r, r, res.ndim - 2), r, r, res.ndim - 1)
    spec = torch.fft.rfft2(xp, s=(ny, nx)) * k.lr_response(ny, nx, res.device)
    return torch.fft.irfft2(spec, s=(ny, nx))[..., r : r + h, r : r + w]


def _lr_residual(sr: torch.Tensor, lr: torch.Tensor, k: ProjectionKernels) -> torch.Tensor:
    """``(D D^T)^-1 L (lr - D sr)`` at the low resolution."""
    return filter_lr(lr.to(sr.dtype) - degrade(sr, k), k)


def project(sr: torch.Tensor, lr: torch.Tensor, k: ProjectionKernels) -> torch.Tensor:
    """``sr + D^T (D D^T)^-1 L (lr - D sr)``: ``sr (..., C, sH, sW)``, ``lr (..., C, H, W)``.

    ``L`` is the Gaussian low-pass of the residual (identity when ``lowpass_px`` is 0). Same
    operators and borders as :func:`s2scale.infer.consistency.project_block`.
    """
    res = _lr_residual(sr, lr, k)
    if torch.is_grad_enabled() and (sr.requires_grad or res.requires_grad):
        return sr + _adjoint(res, k)
    return _adjoint(res, k, out=sr.clone())


def project_(sr: torch.Tensor, lr: torch.Tensor, k: ProjectionKernels) -> torch.Tensor:
    """:func:`project` in place, without autograd.

    ``sr`` (any strides, e.g. a window of a larger array) gets the correction added and is
    returned.
    """
    return _adjoint(_lr_residual(sr, lr, k), k, out=sr)


# ------------------------------------------------------------------------------ no data
def _box3(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 sums of ``(..., H, W)`` with zeros outside."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    y = p[..., :-2, :] + p[..., 1:-1, :] + p[..., 2:, :]
    return y[..., :, :-2] + y[..., :, 1:-1] + y[..., :, 2:]


def _bbox(mask: torch.Tensor, pad: int) -> tuple[slice, slice]:
    """Rows and columns holding ``mask``'s True pixels, widened by ``pad`` (clipped)."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    h, w = mask.shape
    r0, r1, c0, c1 = (int(v) for v in (rows[0], rows[-1], cols[0], cols[-1]))
    ys = slice(max(r0 - pad, 0), min(r1 + pad + 1, h))
    return ys, slice(max(c0 - pad, 0), min(c1 + pad + 1, w))


def fill_holes(x: torch.Tensor, valid: torch.Tensor, radius_px: int) -> torch.Tensor:
    """Fill the holes (``~valid``) of a float ``(C, H, W)`` block by ``radius_px`` rounds of growth.

    Each round, every hole pixel with a known pixel among its 8 neighbours takes their mean;
    pixels still unknown after ``radius_px`` rounds take the band means of the valid pixels.
    Values under holes are ignored; valid pixels are returned unchanged (the rule of
    :func:`s2scale.infer.nodata.fill_nodata`, which rounds the result for integer blocks).
    """
    if bool(valid.all()) or not bool(valid.any()):
        return x
    vals = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
    known = valid.clone()
    for _ in range(radius_px):
        todo = ~known
        if not bool(todo.any()):
            break
        ys, xs = _bbox(todo, 1)
        sub_known = known[ys, xs]
        kf = sub_known.to(x.dtype)
        count = _box3(kf)
        new = ~sub_known & (count > 0)
        if not bool(new.any()):
            break
        total = _box3(vals[:, ys, xs] * kf)
        vals[:, ys, xs] = torch.where(new, total / count.clamp(min=1), vals[:, ys, xs])
        known[ys, xs] |= new
    if not bool(known.all()):
        means = (vals * valid).sum(dim=(-2, -1)) / valid.sum()
        vals = torch.where(known, vals, means[:, None, None])
    return vals


# ------------------------------------------------------------------------------ tiles
@functools.lru_cache(maxsize=32)
def _layout(
    shape: tuple[int, int],
    tile_px: int,
    overlap_px: int,
    halo_px: int,
    scale: int,
    align: int,
    device: str = "cpu",
    gain: float = 1.0,
) -> tuple[tuple[tuple[slice, slice], ...], torch.Tensor]:
    """LR windows of the sub-tiles of a block and their normalised HR weights, on ``device``.

    The weights ``(N, h*s, w*s)`` are divided by their sum over the block, so that they add up
    to 1 at every HR pixel and the blend needs no division, and multiplied by ``gain`` (the
    scale of the model's output units). Cached per device and gain: a layout's weights are
    copied to a GPU once, not once per block.
    """
    if device != "cpu" or gain != 1.0:
        windows, weights = _layout(shape, tile_px, overlap_px, halo_px, scale, align)
        return windows, (weights * gain).to(torch.device(device))
    from s2scale.infer.tiling import blend_weights

    tiles = list(blend_weights(shape, tile_px, overlap_px, halo_px, scale=scale, align=align))
    wsum = np.zeros((shape[0] * scale, shape[1] * scale), np.float32)
    for (wy, wx), w in tiles:
        wsum[wy.start * scale : wy.stop * scale, wx.start * scale : wx.stop * scale] += w
    weights = [
        w / wsum[wy.start * scale : wy.stop * scale, wx.start * scale : wx.stop * scale]
        for (wy, wx), w in tiles
    ]
    return tuple(w for w, _ in tiles), torch.from_numpy(np.stack(weights))


def blend_tiles(
    x: torch.Tensor,
    forward: Forward,
    *,
    scale: int,
    tile_px: int,
    overlap_px: int,
    halo_px: int,
    batch_size: int,
    align: int = 1,
    mask: torch.Tensor | None = None,
    normalization: tuple[float, float] = (0.0, 1.0),
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feathered, batched sub-tile prediction of a float ``(C, H, W)`` block, float32 DN out.

    ``H`` and ``W`` are multiples of the model's input multiple ``align``; the result is
    ``(C, H*scale, W*scale)``. ``mask`` (``(H, W)`` bool or None) zeroes the weights of
    masked-out HR children; pixels whose weights are all zero get 0. A block that is one
    sub-tile is one forward pass with no weights at all. ``normalization`` ``(offset, scale)``:
    ``forward`` takes ``(dn - offset) / scale`` and returns the same units; the blend weights
    carry ``scale`` (no pass of its own over the output). ``out`` (float32 ``(C, H*scale,
    W*scale)``, any strides, e.g. a window of a larger array) receives the result instead of a
    new tensor.
    """
    c, height, width = x.shape
    offset, gain = (float(v) for v in normalization)
    if (offset, gain) != (0.0, 1.0):
        x = (x - offset) / gain
    windows, w_all = _layout(
        (height, width), tile_px, overlap_px, halo_px, scale, align, str(x.device), gain
    )
    if len(windows) == 1 and mask is None:
        y = forward(x[None])[0].float()
        y = y if out is None else out.copy_(y)
        return y.mul_(gain).add_(offset) if (offset, gain) != (0.0, 1.0) else y
    shape = (c, height * scale, width * scale)
    if out is None:
        acc = torch.zeros(shape, dtype=torch.float32, device=x.device)
    elif tuple(out.shape) != shape:
        raise ConfigError(f"blend_tiles: out has shape {tuple(out.shape)}, expected {shape}")
    else:
        acc = out.zero_()
    wsum = mask_hr = None
    if mask is not None:  # masked children drop out: weights no longer sum to 1
        wsum = torch.zeros((height * scale, width * scale), dtype=torch.float32, device=x.device)
        mask_hr = mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1).to(torch.float32)
    for i in range(0, len(windows), batch_size):
        batch = windows[i : i + batch_size]
        pred = forward(torch.stack([x[:, wy, wx] for wy, wx in batch])).float()
        for j, (wy, wx) in enumerate(batch):
            hy = slice(wy.start * scale, wy.stop * scale)
            hx = slice(wx.start * scale, wx.stop * scale)
            w = w_all[i + j] if mask_hr is None else w_all[i + j] * mask_hr[hy, hx]
            acc[:, hy, hx].addcmul_(pred[j], w)
            if wsum is not None:
                wsum[hy, hx] += w
    if wsum is not None:
        # the weights carry ``gain``: their sum is ``gain`` where any tile counts (acc is 0
        # where none does)
        acc.div_(wsum.div_(gain).clamp_(min=1e-12))
    if offset != 0.0:
        acc += offset if wsum is None else torch.where(wsum > 0, offset, 0.0)
    return acc


# ------------------------------------------------------------------------------ the block
def process_block(
    block: torch.Tensor,
    forward: Forward,
    *,
    scale: int,
    tile_px: int,
    overlap_px: int,
    halo_px: int,
    batch_size: int = 1,
    align: int = 1,
    fill_radius_px: int | None = None,
    context_px: int = 0,
    projection: ProjectionKernels | None = None,
    edges: tuple[int, int, int, int] = (0, 0, 0, 0),
    timed: bool = False,
    normalization: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Upscale a uint16 ``(C, H, W)`` block on its device: fill, tiles, blend, projection.

    The torch kernel of :func:`s2scale.infer.tiling.tile_process` (same arguments, with
    ``projection`` the kernels of the consistency projection instead of a callable): the result
    is a uint16 ``(C, H*scale, W*scale)`` tensor on the block's device, 0 under LR no data and
    in the ``context_px`` ring, else in ``[1, 65535]``. ``timed`` adds each stage's wall time to
    :func:`stage_times` (synchronising CUDA around each stage). ``normalization`` ``(offset,
    scale)``: the model's units, ``(dn - offset) / scale`` in and out of ``forward`` (default:
    ``forward`` takes and returns DN); see :func:`blend_tiles`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    c, height, width = block.shape
    k = context_px
    if k < 0 or 2 * k >= min(height, width):
        raise ConfigError(
            f"context_px={k} must be >= 0 and leave a block: got a {height}x{width} px block; "
            "pass a block that includes the context on every side"
        )
    dev = block.device
    result = torch.empty((c, height * scale, width * scale), dtype=torch.uint16, device=dev)
    with _stage("fill", dev, timed):
        x = block.to(torch.float32)
        valid = (x > 0).all(dim=0)
        if not bool(valid.any()):
            return result.zero_()
        mask = None
        if fill_radius_px is not None:
            x = fill_holes(x, valid, fill_radius_px).round_().clamp_(1, 65535)
        elif not bool(valid.all()):
            mask = valid[k : height - k, k : width - k]
        inner = x[:, k : height - k, k : width - k]
        ih, iw = inner.shape[1:]
        # mirrored context beyond the network's halo only feeds the projection, which skips
        # mirrored sides: the network does not run there (its output there is trimmed)
        ct, cb, cl, cr = (max(int(e) - k - halo_px, 0) // align * align for e in edges)
        if ct + cb >= ih or cl + cr >= iw:
            ct = cb = cl = cr = 0
        net_in = inner[:, ct : ih - cb, cl : iw - cr]
        nh, nw = net_in.shape[1:]
        pad = (-nh % align, -nw % align)
        net_mask = None if mask is None else mask[ct : ih - cb, cl : iw - cr]
        if any(pad):
            net_in = torch.nn.functional.pad(net_in, (0, pad[1], 0, pad[0]))
            if net_mask is not None:
                net_mask = torch.nn.functional.pad(net_mask, (0, pad[1], 0, pad[0]))
    with _stage("network", dev, timed):
        sr = torch.empty((c, ih * scale, iw * scale), dtype=torch.float32, device=dev)
        ys, xs = slice(ct * scale, (ih - cb) * scale), slice(cl * scale, (iw - cr) * scale)
        for side in (sr[:, : ys.start], sr[:, ys.stop :], sr[:, ys, : xs.start],
                     sr[:, ys, xs.stop :]):  # fmt: skip
            side.zero_()  # mirrored context the network skips
        window = sr[:, ys, xs]
        blended = blend_tiles(
            net_in, forward, scale=scale, tile_px=tile_px, overlap_px=overlap_px,
            halo_px=halo_px, batch_size=batch_size, align=align, mask=net_mask,
            normalization=normalization, out=None if any(pad) else window,
        )  # fmt: skip
        if any(pad):  # the rows and columns padded to the input multiple are not output
            window.copy_(blended[:, : nh * scale, : nw * scale])
    with _stage("projection", dev, timed):
        if projection is not None:
            top, bottom, left, right = (max(int(e) - k, 0) for e in edges)
            if top + bottom >= ih or left + right >= iw:
                raise ConfigError(
                    f"edges={edges} leave no real pixels in a {height}x{width} px block with "
                    f"context_px={k}; the mirrored context must be narrower than the block"
                )
            hy = slice(top * scale, (ih - bottom) * scale)
            hx = slice(left * scale, (iw - right) * scale)
            project_(sr[:, hy, hx], inner[:, top : ih - bottom, left : iw - right], projection)
    with _stage("output", dev, timed):
        ks = k * scale
        sr = sr.round_().clamp_(1, 65535)
        valid_in = valid[k : height - k, k : width - k]
        if not bool(valid_in.all()):
            hr = valid_in.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            sr.masked_fill_(~hr, 0)
        result[:, ks : height * scale - ks, ks : width * scale - ks] = sr
        if ks:  # the context ring: no output
            result[:, :ks] = 0
            result[:, height * scale - ks :] = 0
            result[:, :, :ks] = 0
            result[:, :, width * scale - ks :] = 0
    return result
