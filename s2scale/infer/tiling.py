"""Halos and feathered sub-tile blending for chunked super-resolution (numpy only, pure).

A generator's output pixel depends on the LR input within its *receptive field*. Cutting an image
into pieces (Dask chunks, or GPU-sized sub-tiles of a chunk) and padding each piece (the networks
zero-pad at their input edge) changes the output only within that distance of a cut. Each piece
therefore gets ``halo_px`` LR pixels of context on every side, and only output farther than the
halo from a cut is used.

Default halos (:data:`HALO_PX`, LR = 10 m pixels, ``scale=2``) come from
``tests/infer/measure_halo.py``: for halos ``h = 0, 2, 4, ...`` it compares the output of an LR
crop holding an 8 x 8 px core plus ``h`` px of context (zero-padded by the network at the crop
edge, as a sub-tile or chunk is) with the output of the whole 120 x 120 px image, and reports the
smallest ``h`` whose largest core difference is < 0.5 DN (so rounded results agree within 1 DN);
"grad" is the radius holding 99.9 % of the input-gradient magnitude of a centre output pixel.
"full": default (paper) sizes, random init (seed 0). "small": 16 features and 2-8 blocks, random
init and after 150 Adam steps of L1 on synthetic fields (2x2 mean LR), ("random" / "trained").
"shipped": the checkpoints in ``s2scale/weights`` (fine-tuned on real co-located pairs), <0.5 DN
and the difference at the default halo.

=============  ==========================  ===========  ===========  ================  =======
name           theoretical RF radius       full: <0.5   small: <0.5  shipped: <0.5 DN  default
               (LR px)                     DN, grad     DN, random   (at the default)  halo
                                                        / trained
=============  ==========================  ===========  ===========  ================  =======
``srcnn``      6 (bicubic 2 + 9-5-5        6, 6         6 / 6        6 (0.001 DN)      8
               convs, RF 17 px at HR)
``srresnet``   40 (9x9 head, 16 blocks,    14, 13       12 / 14      12 (0.034 DN)     14
               9x9 tail at HR)
``esrgan``     ~350 (345 dense 3x3 convs)  6, 4         4 / 6        10 (0.029 DN)     12
``realesrgan`` ~700 (trunk at half LR)     10, 9        8 / 10       18 (0.077 DN)     20
``srvgg``      18 (3x3 convs, 16 + 2)      6, 0         6 / 8        (not shipped)     12
=============  ==========================  ===========  ===========  ================  =======

Deep nets' theoretical receptive fields are far larger than their *effective* ones: the influence
of an input pixel decays quickly with distance (Luo et al., 2016; RRDB's 0.2 residual scaling
makes random-init ESRGAN trunks nearly local). Training widened the fields by up to 8 px here
(Real-ESRGAN); the defaults add 2 px on top of what the shipped checkpoints need, because every
halo pixel is network work at every block edge. Other checkpoints can need more: check one with
``python tests/infer/measure_halo.py --checkpoint PATH`` or pass ``halo_px``.

Blending (:func:`tile_process`): sub-tiles overlap by ``overlap_px >= 2 * halo_px``. Each tile's
weight is a product of 1-D feather ramps that are 0 in the ``halo_px`` strip along every side that
borders another tile (that strip sees the tile edge like a no-data border: its receptive field is
cut), rise linearly across the rest of the overlap and are 1 elsewhere; sides on the block edge
are not feathered (the block's own halo is trimmed by the caller). Outputs are accumulated as
``sum(weight * output)`` and ``sum(weight)`` and divided, so the effective weights sum to 1 at
every pixel whatever the order of the tiles.

No data (0 in any band of the LR input) is masked again after the network: its HR children are 0.
With ``fill_radius_px`` (the default of :func:`s2scale.infer.upscale`) holes are first filled from
the valid pixels around them (:mod:`s2scale.infer.nodata`), so valid pixels next to a hole see
plausible reflectance instead of zeros. Without it, holes enter the network as 0 and get weight 0
in the blend; every sub-tile of a block sees the same input, so a valid pixel near no data is
equally affected in all tiles that hold it, and the ramps make sure each output comes from a tile
whose receptive field is not cut by a tile edge (where such a tile exists, which
``overlap_px >= 2 * halo_px`` guarantees). An optional ``project`` step (the radiometric
consistency projection of :mod:`s2scale.infer.consistency`) corrects the blended output before
rounding. Where the block's context is a mirror of its own pixels (``edges``: the source array
ended there), ``project`` sees only the real pixels and treats that side as the image edge, so
the output is consistent with its input there too (``degrade`` with mirrored borders).
Valid output is rounded and clipped to ``[1, 65535]`` so it never reads as no data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from s2scale.errors import ConfigError

if TYPE_CHECKING:
    from s2scale.infer.ops import ProjectionKernels

__all__ = [
    "BATCH_SIZE",
    "CPU_TILE_PX",
    "HALO_PX",
    "TILE_PX",
    "BatchPredict",
    "blend_weights",
    "check_tiling",
    "default_batch_size",
    "default_halo_px",
    "default_tile_px",
    "feather_1d",
    "fit_tile_px",
    "input_multiple",
    "network_px",
    "tile_process",
    "tile_starts",
    "valid_mask",
]

HALO_PX: dict[str, int] = {
    "srcnn": 8,
    "srresnet": 14,
    "esrgan": 12,
    "realesrgan": 20,
    "srvgg": 12,
}
"""Default halo in LR (10 m) pixels per registry name; see the module docstring for the numbers."""

TILE_PX: dict[str, int] = {"cuda": 1536, "cpu": 320}
"""Default largest sub-tile edge per device type, LR px (``tile_px=None`` picks it in the worker).

CUDA: a default work unit's network input (a 1,024 px region plus the model's and the
projection's context and the warp margin: about 1,100-1,300 px) is one tile, so sub-tiles do not
overlap at all and every output pixel of a unit passes through the network once; a 1,536 px tile
of the x2 generators needs a few GB of activations in bfloat16. CPU: the generators run fastest
per pixel on small tiles (cache), which outweighs the overlap: SRResNet, one thread, batch 1,
``channels_last``, 5 m output Mpx/s 0.25 / 0.28 / 0.25 / 0.23 / 0.18 / 0.16 at 192 / 256 / 320 /
384 / 512 / 768 px tiles (record ``throughput-20261207T030414``), i.e. 0.21 / 0.20 / 0.19 / 0.15
per output pixel at 256 / 320 / 384 / 512 px with a 36 px overlap; 256 and 320 are within the
noise of this machine, and 320 needs fewer tiles. Larger blocks are cut into the fewest tiles
of at most this edge (:func:`fit_tile_px`). :data:`CPU_TILE_PX` overrides it per generator."""

CPU_TILE_PX: dict[str, int] = {"realesrgan": 576}
"""CPU tile edges, LR px, of the generators that do not run fastest on :data:`TILE_PX`'s.

Real-ESRGAN's trunk runs at half the LR resolution (pixel-unshuffle), so its per-pixel speed
falls little with the tile edge while its 20 px network halo makes small tiles costly: a
default unit's network input (1,064 px at the block edge) is 4 x 4 tiles of 302 px at 320 px,
1.39 network px per output px; 2 x 2 tiles of 556 px at 576 px, 1.18; one tile at 1,152 px,
1.08, whose activations (about 85 MB per feature map) leave the cache. End to end on one thread,
1,024 px of a real scene, three interleaved runs each (record ``throughput-20261207T132851``,
``--models realesrgan --split-tiles 320 576 1152``), best / median 5 m output Mpx/s: 320 px
0.175 / 0.167, 576 px 0.198 / 0.180, 1,152 px 0.173 / 0.155."""


def default_tile_px(device_type: str, arch: str | None = None) -> int:
    """Default largest sub-tile edge for a device type (``"cuda"`` or anything else: CPU).

    ``arch`` (a registry name) picks :data:`CPU_TILE_PX` on the CPU where it has one.

    Examples
    --------
    >>> default_tile_px("cuda"), default_tile_px("cpu"), default_tile_px("cpu", "realesrgan")
    (1536, 320, 576)
    """
    if device_type != "cuda" and arch in CPU_TILE_PX:
        return CPU_TILE_PX[arch]
    return TILE_PX["cuda" if device_type == "cuda" else "cpu"]


BATCH_SIZE: dict[str, int] = {"cuda": 8, "cpu": 1}
"""Default sub-tiles per forward pass per device type (``batch_size=None`` picks it in the worker).

CUDA: 8 (the H100 record's best batch for 256 px tiles; a default unit is one 1,536 px tile
anyway). CPU: 1, because a batch's activations leave the cache: SRResNet, one thread,
``channels_last``, 256 px tiles, 5 m output Mpx/s 0.271 at batch 1 against 0.198 at batch 4
(record ``throughput-20261207T050800``, a 2-core Xeon with 48 MB L3); Real-ESRGAN 0.231 / 0.214."""


def default_batch_size(device_type: str) -> int:
    """:data:`BATCH_SIZE` of a device type (``"cuda"`` or anything else: the CPU's)."""
    return BATCH_SIZE["cuda" if device_type == "cuda" else "cpu"]


Window = tuple[slice, slice]
BatchPredict = Callable[[np.ndarray], np.ndarray]
"""``(N, C, h, w)`` float32 DN -> ``(N, C, h*scale, w*scale)`` DN: a numpy stand-in network."""


def default_halo_px(arch: str) -> int:
    """Default halo in LR pixels for a registry name.

    Examples
    --------
    >>> default_halo_px("srresnet")
    14
    """
    if arch not in HALO_PX:
        raise ConfigError(f"no default halo for {arch!r}; known: {sorted(HALO_PX)}; pass halo_px")
    return HALO_PX[arch]


def tile_starts(size: int, tile_px: int, overlap_px: int, align: int = 1) -> list[int]:
    """Starts of evenly spread tiles of ``tile_px`` covering ``[0, size)``, overlapping >= overlap.

    The last tile ends at ``size``; a size up to ``tile_px`` gives one tile of that size. With
    ``align > 1`` starts and tile edges are multiples of ``align`` (``size`` must be one).

    Examples
    --------
    >>> tile_starts(10, 4, 1)
    [0, 3, 6]
    >>> tile_starts(3, 4, 1)
    [0]
    >>> tile_starts(12, 6, 1, align=2)
    [0, 4, 6]
    """
    tile_px -= tile_px % align
    if size <= tile_px:
        return [0]
    size_a, tile_a, overlap_a = size // align, tile_px // align, -(-overlap_px // align)
    n = -(-(size_a - overlap_a) // (tile_a - overlap_a))
    return [int(v) * align for v in np.round(np.linspace(0, size_a - tile_a, n))]


def input_multiple(arch: str, scale: int) -> int:
    """Edge multiple a generator's input needs: Real-ESRGAN pixel-unshuffles by 4 // scale.

    Chunk and tile edges must then sit on multiples of it, or outputs shift by a phase.

    Examples
    --------
    >>> input_multiple("realesrgan", 2), input_multiple("srresnet", 2)
    (2, 1)
    """
    if arch == "realesrgan":
        return {1: 4, 2: 2}.get(scale, 1)
    return 1


def feather_1d(
    length: int, lo_overlap: int, hi_overlap: int, halo_px: int, *, scale: int = 1
) -> np.ndarray:
    """1-D blend weights of one tile of ``length`` LR px, at ``scale`` (HR px), float32.

    ``lo_overlap``/``hi_overlap`` are the overlaps with the neighbouring tile before/after it (0:
    no neighbour, no feathering). On a side with a neighbour the weight is 0 for ``halo_px`` px,
    then ramps linearly across the remaining ``overlap - 2 * halo_px`` px (a hard switch when
    that is 0). Ramps of two neighbours sharing an overlap sum to 1.

    Examples
    --------
    >>> feather_1d(6, 0, 4, 1).tolist()
    [1.0, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    n, h = length * scale, halo_px * scale
    dist = np.arange(n, dtype=np.float32)
    w = np.ones(n, np.float32)
    for overlap, d in ((lo_overlap, dist), (hi_overlap, dist[::-1])):
        if overlap <= 0:
            continue
        ramp = (overlap - 2 * halo_px) * scale
        if ramp > 0:
            w = np.minimum(w, np.clip((d - h + 0.5) / ramp, 0.0, 1.0))
        else:
            w = np.minimum(w, (d >= h).astype(np.float32))
    return w


def check_tiling(tile_px: int, overlap_px: int, halo_px: int, align: int = 1) -> None:
    """Raise ConfigError for inconsistent sub-tile, overlap and halo sizes (LR px).

    Examples
    --------
    >>> check_tiling(512, 40, 16)
    """
    if halo_px < 0 or overlap_px < 0:
        raise ConfigError(f"halo_px={halo_px} and overlap_px={overlap_px} must be >= 0")
    if overlap_px < 2 * halo_px:
        raise ConfigError(
            f"overlap_px={overlap_px} must be >= 2 * halo_px = {2 * halo_px} so that every output "
            "pixel has one sub-tile holding its whole receptive field; raise overlap_px"
        )
    if tile_px - tile_px % align <= -(-overlap_px // align) * align:
        raise ConfigError(
            f"tile_px={tile_px} must exceed overlap_px={overlap_px} (both rounded to multiples "
            f"of {align}, the model's input multiple); raise tile_px"
        )


def fit_tile_px(size: int, tile_px: int, overlap_px: int, align: int = 1) -> int:
    """The smallest tile edge <= ``tile_px`` that covers ``size`` with as few tiles as ``tile_px``.

    Tiles of ``tile_px`` that do not divide ``size`` evenly overlap by more than ``overlap_px``
    (three 512 px tiles over 1116 px overlap by 210 px); tiles of the fitted edge overlap by
    ``overlap_px`` (plus at most ``align`` px), so the network sees each pixel as few times as
    the tile count allows. A multiple of ``align``.

    Examples
    --------
    >>> fit_tile_px(1116, 512, 48), fit_tile_px(300, 512, 48), fit_tile_px(1116, 1116, 48)
    (404, 300, 1116)
    """
    tile_px -= tile_px % align
    if size <= tile_px:
        return size
    n = -(-(size - overlap_px) // (tile_px - overlap_px))
    fitted = -(-(size + (n - 1) * overlap_px) // n)
    return min(fitted + -fitted % align, tile_px)


def _axis_tiles(
    size: int, tile_px: int, overlap_px: int, align: int
) -> list[tuple[int, int, int, int]]:
    """``(start, stop, lo_overlap, hi_overlap)`` of the tiles along one axis."""
    tile_px = fit_tile_px(size, tile_px, overlap_px, align)
    starts = tile_starts(size, tile_px, overlap_px, align)
    stops = [min(s + tile_px - tile_px % align, size) for s in starts]
    out = []
    for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
        lo = stops[i - 1] - a if i > 0 else 0
        hi = b - starts[i + 1] if i + 1 < len(starts) else 0
        out.append((a, b, lo, hi))
    return out


def blend_weights(
    shape: tuple[int, int],
    tile_px: int,
    overlap_px: int,
    halo_px: int = 0,
    *,
    scale: int = 1,
    align: int = 1,
) -> Iterator[tuple[Window, np.ndarray]]:
    """Yield ``(LR window, HR weights)`` of the sub-tiles of an LR block of ``shape`` (y, x).

    Weights are float32 of shape ``(h*scale, w*scale)``, the outer product of :func:`feather_1d`
    along y and x. Summed over all tiles they are > 0 at every HR pixel. ``align``: see
    :func:`tile_starts`.

    Examples
    --------
    >>> [w.shape for _, w in blend_weights((6, 4), 4, 2)]
    [(4, 4), (4, 4)]
    """
    check_tiling(tile_px, overlap_px, halo_px, align)
    ys = _axis_tiles(shape[0], tile_px, overlap_px, align)
    xs = _axis_tiles(shape[1], tile_px, overlap_px, align)
    for y0, y1, ylo, yhi in ys:
        wy = feather_1d(y1 - y0, ylo, yhi, halo_px, scale=scale)
        for x0, x1, xlo, xhi in xs:
            wx = feather_1d(x1 - x0, xlo, xhi, halo_px, scale=scale)
            yield (slice(y0, y1), slice(x0, x1)), wy[:, None] * wx[None, :]


def valid_mask(block: np.ndarray) -> np.ndarray:
    """``(y, x)`` bool: True where every band of a ``(band, y, x)`` block is > 0 (not no data).

    Examples
    --------
    >>> valid_mask(np.array([[[1, 0]], [[2, 3]]], np.uint16)).tolist()
    [[True, False]]
    """
    return np.all(block > 0, axis=0)


def network_px(
    shape: tuple[int, int], tile_px: int, overlap_px: int, halo_px: int = 0, align: int = 1
) -> int:
    """LR px the network reads for one block of ``shape`` (all its sub-tiles together).

    Divided by the block's core area it is the network's work per output pixel (1 when the
    block is one tile and has no halo).

    Examples
    --------
    >>> network_px((1116, 1116), 512, 48, 20), network_px((1116, 1116), 2048, 48, 20)
    (1468944, 1245456)
    """
    return sum(w.size for _, w in blend_weights(shape, tile_px, overlap_px, halo_px, align=align))


def tile_process(
    block: np.ndarray,
    predict: BatchPredict,
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
) -> np.ndarray:
    """Upscale a ``(band, y, x)`` uint16 block through feathered, batched sub-tiles.

    The numpy face of :func:`s2scale.infer.ops.process_block` on the CPU (a
    :class:`~s2scale.infer.predictor.TorchPredictor` runs the same kernel on its device).

    Parameters
    ----------
    block
        ``(C, H, W)`` uint16 harmonised DN, 0 = no data.
    predict
        Batch upscaler, ``(N, C, h, w)`` float32 DN -> ``(N, C, h*scale, w*scale)`` DN (numpy);
        called with at most ``batch_size`` equally shaped tiles.
    scale
        Upscaling factor.
    tile_px, overlap_px, halo_px
        Largest sub-tile edge, overlap between neighbouring sub-tiles and the model's halo, in
        LR px; ``overlap_px >= 2 * halo_px``. Tiles are shrunk to the smallest edge that needs
        no more of them (:func:`fit_tile_px`).
    batch_size
        Sub-tiles per ``predict`` call.
    align
        Input multiple of the model (:func:`input_multiple`): the block is zero-padded at its
        far end to a multiple of it, and sub-tiles start on multiples of it.
    fill_radius_px
        Fill no-data holes (:mod:`s2scale.infer.nodata`, this many rounds) before the network;
        ``None`` feeds them as 0 and gives their HR children weight 0.
    context_px
        Outer ring of the block, LR px, that only feeds the fill: the network and the
        projection run on the block without it, and its output is 0 (the caller trims it). A
        multiple of ``align``.
    projection
        Kernels of the consistency projection (:func:`s2scale.infer.ops.projection_kernels`),
        applied to the blended output before rounding, with the filled input as ``lr``; None:
        no projection.
    edges
        LR px of the block, ``(top, bottom, left, right)``, that mirror its own pixels because the
        source array ended there (``numpy.pad`` ``"symmetric"``, Dask's ``boundary="reflect"``).
        The projection runs on the block without them (its filters mirror at that edge), and
        the network runs only on the ``halo_px`` of them next to the real pixels (the rest of
        their output is not computed; the caller trims them).

    Returns
    -------
    numpy.ndarray
        ``(C, H*scale, W*scale)`` uint16; 0 under LR no data (and in the ``context_px`` ring),
        else in ``[1, 65535]``.

    Raises
    ------
    ConfigError
        If ``overlap_px < 2 * halo_px``, ``tile_px <= overlap_px``, ``batch_size < 1`` or
        ``context_px`` leaves no block.

    Examples
    --------
    >>> nn = lambda t: t.repeat(2, axis=-2).repeat(2, axis=-1)
    >>> blk = np.arange(1, 37, dtype=np.uint16).reshape(1, 6, 6)
    >>> out = tile_process(blk, nn, scale=2, tile_px=4, overlap_px=2, halo_px=1)
    >>> bool((out == blk.repeat(2, axis=1).repeat(2, axis=2)).all())
    True
    """
    import torch

    from s2scale.infer.ops import process_block

    def forward(tiles: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(predict(tiles.numpy()), np.float32))

    check_tiling(tile_px, overlap_px, halo_px, align)
    with torch.inference_mode():
        out = process_block(
            torch.from_numpy(np.ascontiguousarray(block)), forward, scale=scale,
            tile_px=tile_px, overlap_px=overlap_px, halo_px=halo_px, batch_size=batch_size,
            align=align, fill_radius_px=fill_radius_px, context_px=context_px,
            projection=projection, edges=edges,
        )  # fmt: skip
    return out.numpy()
