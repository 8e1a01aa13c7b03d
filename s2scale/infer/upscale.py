"""Seamless chunked super-resolution of a cube: the block kernel, the Dask graph, the public face.

Layers (STYLE section 2): :func:`upscale_block` (numpy kernel: a block with its halo in, the
trimmed core out), :func:`upscale_dask` (the graph over a Dask array; never computes) and
:func:`upscale` (``xarray.DataArray`` in and out: checks, model resolution, 5 m coordinates, CRS).

Overlap follows STYLE section 8: every block gets ``margin_px`` of context on each spatial side
with ``boundary="reflect"`` (so every block has the same margin and one trim rule fits all), the
kernel trims ``margin_px * scale`` itself. The graph is ``da.overlap.overlap`` + ``map_blocks``,
which is what ``da.map_overlap(..., trim=False)`` does, split so that only the model task carries
the ``GPU`` resource annotation: workers started with ``resources={"GPU": 1}`` then run one model
task at a time while reading, overlap assembly and writing run in their other threads. Low-level
task fusion can merge annotated with plain tasks and lose the annotation; with distributed,
compute under ``dask.config.set({"optimization.fuse.active": False})`` to be sure.

Only plain values enter the graph (a checkpoint path and :class:`TorchPredictor`'s fields, never
an ``nn.Module``); workers load the model once per process (:mod:`s2scale.infer.predictor`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.infer.consistency import band_mtfs, coerce_lowpass_px, consistency_radius_px
from s2scale.infer.predictor import DTypeName, Predictor, TorchPredictor
from s2scale.infer.tiling import TILE_PX, check_tiling, default_halo_px, input_multiple
from s2scale.models.spec import resolve_model

__all__ = [
    "ModelSetup",
    "prepare_model",
    "upscale",
    "upscale_block",
    "upscale_dask",
    "upscale_window_block",
]

log = logging.getLogger(__name__)

_DIMS = (("band", "y", "x"), ("time", "band", "y", "x"))


def upscale_block(
    block: np.ndarray,
    *,
    predict: Predictor,
    margin: int,
    scale: int,
    edges: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """Upscale a block that includes its halo and return the trimmed core.

    Parameters
    ----------
    block
        ``(..., C, y + 2*margin, x + 2*margin)`` uint16 DN, 0 = no data; leading dims (time)
        are processed one by one.
    predict
        ``(C, h, w) uint16 -> (C, h*scale, w*scale) uint16``.
    margin
        Halo on each spatial side, LR px.
    scale
        Upscaling factor.
    edges
        LR px per side (top, bottom, left, right) of the halo that mirror the block (the source
        array ended there), passed on to ``predict``.

    Returns
    -------
    numpy.ndarray
        ``(..., C, y*scale, x*scale)`` uint16.

    Examples
    --------
    >>> nn = lambda b, **_: b.repeat(2, axis=-2).repeat(2, axis=-1)
    >>> upscale_block(np.ones((1, 1, 4, 4), np.uint16), predict=nn, margin=1, scale=2).shape
    (1, 1, 4, 4)
    """
    flat = block.reshape(-1, *block.shape[-3:])
    c, h, w = block.shape[-3], block.shape[-2] * scale, block.shape[-1] * scale
    if len(flat) == 1:  # no copy
        out = predict(flat[0], edges=edges)[None]
    elif len(flat):
        out = np.stack([predict(b, edges=edges) for b in flat])
    else:
        out = np.zeros((0, c, h, w), np.uint16)
    out = out.reshape(*block.shape[:-3], c, h, w)
    m = margin * scale
    return out[..., m : h - m, m : w - m]


def _upscale_chunk(
    block: np.ndarray,
    *,
    margin: int,
    scale: int,
    predict: Predictor,
    mirror: tuple[bool, bool] = (False, False),
    nblocks: tuple[int, int] = (1, 1),
    block_id: tuple[int, ...] = (),
) -> np.ndarray:
    """Dask task: the kernel with a (plain-valued) predictor.

    ``mirror`` (y, x): that axis is one chunk that came without its halo; it is mirrored here
    by :func:`upscale_window_block` (``numpy.pad`` ``"symmetric"``: the values of Dask's
    ``boundary="reflect"``, for any width, also wider than the chunk). On the other axes a
    block at the array's edge (``block_id`` among ``nblocks`` y, x chunks) came with Dask's
    mirrored halo there; both kinds are passed on as ``edges``.
    """
    my, mx = (margin if m else 0 for m in mirror)
    iy, ix = block_id[-2:] if block_id else (0, 0)
    ny, nx = nblocks
    edges = (
        margin if iy == 0 and not mirror[0] else 0,
        margin if iy == ny - 1 and not mirror[0] else 0,
        margin if ix == 0 and not mirror[1] else 0,
        margin if ix == nx - 1 and not mirror[1] else 0,
    )
    return upscale_window_block(
        block, predict=predict, margin=margin, scale=scale, pad=(my, my, mx, mx), edges=edges
    )


def upscale_window_block(
    block: np.ndarray,
    *,
    predict: Predictor,
    margin: int,
    scale: int,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    crop: tuple[int, int, int, int] | None = None,
    edges: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """Upscale a window read with its halo, mirroring the halo where the window met an array edge.

    Parameters
    ----------
    block
        ``(..., y, x)`` uint16 DN (0 = no data): a core window plus ``margin`` px of real context
        on each side, less ``pad`` ``(top, bottom, left, right)`` px where the source array ended.
    predict, margin, scale
        As in :func:`upscale_block`; missing context is mirrored (``numpy.pad`` ``"symmetric"``,
        the same values as Dask's ``boundary="reflect"`` in :func:`upscale_dask`).
    pad
        Context missing on each side, in LR px.
    edges
        Context already mirrored on each side (Dask's ``boundary="reflect"``), in LR px; with
        ``pad`` it tells ``predict`` where the array ended.
    crop
        ``(row0, row1, col0, col1)`` of the upscaled core to return (default all of it).

    Returns
    -------
    numpy.ndarray
        ``(..., rows, cols)`` uint16 at ``scale`` times the resolution.

    Examples
    --------
    >>> nn = lambda b, **_: b.repeat(2, axis=-2).repeat(2, axis=-1)
    >>> b = np.arange(12, dtype=np.uint16).reshape(1, 3, 4)
    >>> upscale_window_block(b, predict=nn, margin=1, scale=2, pad=(1, 0, 0, 0)).shape
    (1, 4, 4)
    """
    top, bottom, left, right = pad
    if any(pad):
        width = ((0, 0),) * (block.ndim - 2) + ((top, bottom), (left, right))
        block = np.pad(block, width, mode="symmetric")
    mirrored = tuple(p + e for p, e in zip(pad, edges, strict=True))
    out = upscale_block(block, predict=predict, margin=margin, scale=scale, edges=mirrored)
    if crop is not None:
        a, b, c, d = crop
        out = out[..., a:b, c:d]
    return np.ascontiguousarray(out)


def _merge_tail(chunks: tuple[int, ...], min_px: int) -> tuple[int, ...]:
    """Merge a last chunk smaller than ``min_px`` into its neighbour (starts stay aligned)."""
    if len(chunks) > 1 and chunks[-1] < min_px:
        return (*chunks[:-2], chunks[-2] + chunks[-1])
    return chunks


def upscale_dask(
    arr: da.Array,
    predict: Predictor,
    *,
    margin_px: int,
    scale: int,
    chunk_px: int | None = None,
    align: int = 1,
) -> da.Array:
    """Build the lazy upscaling graph over a ``(band, y, x)`` or ``(time, band, y, x)`` array.

    Parameters
    ----------
    arr
        uint16 DN, 0 = no data. The band axis is merged into one chunk.
    predict
        Block upscaler; a :class:`TorchPredictor` keeps the graph small (plain values only).
    margin_px
        Halo per spatial side in LR px; spatial chunks must be >= ``2 * margin_px`` (a smaller
        last chunk is merged into its neighbour; an axis of one chunk may be of any size: its
        halo is mirrored inside the task).
    scale
        Upscaling factor.
    chunk_px
        Rechunk y and x to this edge first (None keeps the chunks).
    align
        The model's input multiple: ``margin_px`` and all chunks but the last must be multiples.

    Returns
    -------
    dask.array.Array
        ``(..., band, y*scale, x*scale)`` uint16, spatial chunks times ``scale``; the model tasks
        are annotated ``resources={"GPU": 1}``.

    Raises
    ------
    GridMismatchError
        If a spatial chunk is smaller than ``2 * margin_px`` or chunks are not aligned.
    """
    yx = (arr.ndim - 2, arr.ndim - 1)
    spec: dict[int, Any] = {arr.ndim - 3: -1}
    if chunk_px is not None:
        spec.update(dict.fromkeys(yx, chunk_px))
    arr = arr.rechunk(spec)
    regular = [c for ax in yx for c in arr.chunks[ax][:-1]]
    arr = arr.rechunk({ax: _merge_tail(arr.chunks[ax], 2 * margin_px) for ax in yx})
    if regular and min(regular) < 2 * margin_px:
        raise GridMismatchError(
            f"margin_px={margin_px} needs spatial chunks >= {2 * margin_px}px, got chunks of "
            f"{min(regular)}px (array {arr.shape[-2]}x{arr.shape[-1]}); increase "
            "chunk_px (cube.chunk_px) or lower halo_px"
        )
    if align > 1 and (
        margin_px % align or any(c % align for ax in yx for c in arr.chunks[ax][:-1])
    ):
        raise GridMismatchError(
            f"this model needs halo_px and spatial chunks in multiples of {align}, got "
            f"halo_px={margin_px} and chunks {arr.chunks[-2]} x {arr.chunks[-1]}; use an even "
            "chunk_px and halo_px"
        )
    # One-chunk axes get their (mirrored) halo inside the task, so they may be smaller than it.
    mirror = tuple(len(arr.chunks[ax]) == 1 for ax in yx)
    depth = {ax: 0 if m else margin_px for ax, m in zip(yx, mirror, strict=True)}
    padded = da.overlap.overlap(arr, depth=depth, boundary=dict.fromkeys(yx, "reflect"))
    out_chunks = (*arr.chunks[:-2], *(tuple(c * scale for c in arr.chunks[ax]) for ax in yx))
    with dask.annotate(resources={"GPU": 1}):
        return padded.map_blocks(
            _upscale_chunk,
            margin=margin_px,
            scale=scale,
            predict=predict,
            mirror=mirror,
            nblocks=(len(arr.chunks[yx[0]]), len(arr.chunks[yx[1]])),
            chunks=out_chunks,
            dtype=np.uint16,
            meta=np.empty((0,) * arr.ndim, np.uint16),
            token="upscale",
        )


def _hr_centres(centres: np.ndarray, res: float, scale: int) -> np.ndarray:
    """Pixel centres of the ``scale`` x ``scale`` children of each LR pixel centre."""
    offsets = (np.arange(scale) + 0.5) / scale - 0.5
    return (centres[:, None] + res * offsets[None, :]).ravel()


def _check_cube(cube: xr.DataArray) -> None:
    """Raise ConfigError for wrong type, dims or dtype."""
    if not isinstance(cube, xr.DataArray):
        raise ConfigError(f"upscale needs an xarray.DataArray, got {type(cube).__name__}")
    if cube.dims not in _DIMS:
        raise ConfigError(f"upscale needs dims {_DIMS[0]} or {_DIMS[1]}, got {cube.dims}")
    if cube.dtype != np.uint16:
        raise ConfigError(
            f"upscale needs uint16 harmonised DN (reflectance * 10000), got {cube.dtype}"
        )
    if cube.sizes["x"] < 2 or cube.sizes["y"] < 2:
        raise ConfigError(f"upscale needs at least 2x2 pixels, got {dict(cube.sizes)}")


@dataclass(frozen=True)
class ModelSetup:
    """A resolved model: the predictor that tasks carry and the facts that shape the graph."""

    predictor: TorchPredictor
    """Plain-valued predictor (checkpoint path, device, dtype, tiling) for the model tasks."""
    arch: str
    """Registry architecture name."""
    checkpoint: str | None
    """Absolute checkpoint path, or None for random weights."""
    bands: tuple[str, ...]
    """Band names the model expects, in order."""
    scale: int
    """Upscaling factor."""
    halo_px: int
    """Context per block side in LR px: the network's halo plus what the consistency projection
    and the no-data fill need (see :func:`prepare_model`)."""
    align: int
    """The model's input multiple (window offsets and halo are multiples of it)."""
    network_halo_px: int = 0
    """The network's own context in LR px (part of ``halo_px``)."""
    consistency: bool = False
    """Whether outputs are projected to be consistent with the input (radiometry kept)."""
    fill_nodata: bool = False
    """Whether no-data holes are filled before the network."""


def prepare_model(
    model: str | os.PathLike[str] = "srresnet",
    *,
    bands: Sequence[str] | int | None = None,
    halo_px: int | None = None,
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: DTypeName = "auto",
    compile: bool = False,
    random_weights: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    consistency: bool = True,
    fill_nodata: bool = True,
    consistency_lowpass_px: float | None = None,
) -> ModelSetup:
    """Resolve a model spec and check the tiling options (see :func:`upscale` for each option).

    ``bands`` are the input's band names (or their number); they must match the checkpoint's.
    Reads the checkpoint's header on the calling process; no model is built here.

    The context per block side (``ModelSetup.halo_px``) is ``h + c + f``: the network's halo
    ``h``, the consistency projection's reach ``c``
    (:func:`~s2scale.infer.consistency.consistency_radius_px`, 26 px for the nominal PSF and the
    default low-pass of 4 px; 0 when off) and the no-data fill's reach ``f = h + c`` (0 when
    off). A core output pixel depends on the network output within ``c`` of it, that on the
    filled input within ``h + c``, and a filled value within distance ``d`` of valid data on
    the input within ``d <= h + c``: so every chunking sees the same values and chunked results
    equal whole-array ones. The fill ring ``f`` is numpy only; the network runs on the block
    without it. All three are rounded up to the model's input multiple.

    Raises
    ------
    ConfigError, CheckpointError
        As :func:`upscale`.
    """
    if model_kwargs and not random_weights:
        raise ConfigError("model_kwargs only apply with random_weights=True")
    spec = resolve_model(model, random_weights=random_weights)
    checkpoint, arch, model_bands, scale = spec.checkpoint, spec.arch, spec.bands, spec.scale
    names = None if bands is None or isinstance(bands, int) else tuple(str(b) for b in bands)
    n_bands = len(names) if names is not None else bands
    if model_bands is None and n_bands is None:
        raise ConfigError("a random-weight model needs the input's bands (bands=...)")
    if model_bands is None:
        model_bands = names or tuple(f"band{i}" for i in range(n_bands))
    if (names is not None and names != model_bands) or (
        n_bands is not None and len(model_bands) != n_bands
    ):
        raise ConfigError(
            f"the cube has bands {list(names) if names else n_bands} but model {arch!r} "
            f"({checkpoint or 'random weights'}) expects {list(model_bands)}; select or reorder "
            "the cube's bands (cube.sel(band=[...])) or use a checkpoint for these bands"
        )
    halo = default_halo_px(arch) if halo_px is None else halo_px
    if isinstance(halo, bool) or not isinstance(halo, int) or halo < 0:
        raise ConfigError(f"halo_px must be an int >= 0, got {halo_px!r}")
    align = input_multiple(arch, scale)
    lowpass = coerce_lowpass_px(consistency_lowpass_px) if consistency else 0.0
    mtfs = band_mtfs(model_bands) if consistency else ()
    reach = consistency_radius_px(scale, mtfs, lowpass_px=lowpass) if consistency else 0
    reach += -reach % align
    fill = halo + reach if fill_nodata else 0
    fill += -fill % align
    overlap = 2 * halo + 8 if overlap_px is None else overlap_px
    overlap += -overlap % align
    check_tiling(tile_px or min(TILE_PX.values()), overlap, halo, align)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
    predict = TorchPredictor(
        checkpoint=checkpoint,
        arch=arch if checkpoint is None else None,
        model_kwargs=tuple(sorted((model_kwargs or {}).items())),
        bands=model_bands if checkpoint is None else (),
        scale=scale,
        seed=seed,
        device=device,
        dtype=dtype,
        tile_px=tile_px,
        overlap_px=overlap,
        halo_px=halo,
        batch_size=batch_size,
        compile=compile,
        fill_radius_px=fill if fill_nodata else None,
        context_px=fill,
        consistency_mtf=mtfs,
        consistency_lowpass_px=lowpass,
    )
    return ModelSetup(
        predictor=predict, arch=arch, checkpoint=checkpoint, bands=tuple(model_bands),
        scale=scale, halo_px=halo + reach + fill, align=align, network_halo_px=halo,
        consistency=consistency, fill_nodata=fill_nodata,
    )  # fmt: skip


def upscale(
    cube: xr.DataArray,
    model: str | os.PathLike[str] = "srresnet",
    *,
    halo_px: int | None = None,
    chunk_px: int | None = None,
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: DTypeName = "auto",
    compile: bool = False,
    random_weights: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    consistency: bool = True,
    fill_nodata: bool = True,
    consistency_lowpass_px: float | None = None,
) -> xr.DataArray:
    """Super-resolve a cube or composite lazily (10 m -> 5 m for ``scale=2``).

    Parameters
    ----------
    cube
        ``(band, y, x)`` or ``(time, band, y, x)`` uint16 harmonised DN (0 = no data) with
        pixel-centre coordinates and a rioxarray CRS; numpy- or Dask-backed.
    model
        A registry name (``"srresnet"``, ...: its shipped checkpoint ``s2scale/weights/<name>.pt``,
        or a random-init net with ``random_weights=True``) or a checkpoint path.
    halo_px
        The network's context per chunk side in 10 m px; default
        :data:`~s2scale.infer.tiling.HALO_PX` of the arch. The consistency projection and the
        no-data fill add their own (see :func:`prepare_model`; the total is the result's
        ``halo_px`` attribute).
    chunk_px
        Spatial chunk edge in 10 m px (numpy input: default 1024; Dask input: rechunk if given).
    tile_px, overlap_px, batch_size
        Largest sub-tile edge (None: the device's :data:`~s2scale.infer.tiling.TILE_PX`, or
        :data:`~s2scale.infer.tiling.CPU_TILE_PX` for the generator on the CPU;
        tiles shrink to the smallest edge that needs no more of them), sub-tile overlap
        (default ``2 * halo_px + 8``: the network's halo only; the projection and the fill add
        theirs at the block edge) and tiles per pass (None: the device's
        :data:`~s2scale.infer.tiling.BATCH_SIZE`).
    device, dtype, compile
        ``"auto"``/``"cuda"``/``"cpu"``; autocast dtype (``"auto"``: bfloat16 on CUDA, else
        float32); :func:`torch.compile`.
    random_weights
        Use an untrained ``model`` net (tests, benchmarks); recorded in the result's attrs.
    model_kwargs, seed
        Constructor kwargs and seed of the random-weight net.
    consistency
        Project each output so that, degraded with the nominal Sentinel-2 PSF and a ``scale x
        scale`` mean (:func:`s2scale.degradation.degrade_nominal`), it reproduces the input:
        band means and 10 m neighbourhoods keep the input's reflectance
        (:mod:`s2scale.infer.consistency`). Its effect on the shipped models is measured in
        ``benchmarks/README.md`` (real co-located pairs and the Wald protocol).
    consistency_lowpass_px
        Strength of the projection: the Gaussian (sigma, LR px) that smooths the residual
        first, so only the coarser inconsistency is corrected; 0 projects fully. Default
        :data:`~s2scale.infer.consistency.CONSISTENCY_LOWPASS_PX`.
    fill_nodata
        Fill no-data holes from the valid pixels around them before the network
        (:mod:`s2scale.infer.nodata`), so valid pixels next to clouds are not darkened; holes
        are no data (0) in the output either way.

    Returns
    -------
    xarray.DataArray
        Lazy, same dims, uint16 (0 = no data), ``scale`` times the pixels; 5 m pixel centres
        (each 10 m centre splits into centres at -/+ 2.5 m), same CRS, transform with the pixel
        size divided by ``scale`` and the same origin. Attrs ``model``, ``checkpoint``,
        ``halo_px`` (total context per chunk side), ``network_halo_px``, ``scale``,
        ``random_weights``, ``consistency`` and ``fill_nodata`` (0/1).

    Raises
    ------
    ConfigError
        Bad dims/dtype, unknown model name, bands that differ from the model's, inconsistent
        ``tile_px``/``overlap_px``/``halo_px``/``batch_size``.
    CheckpointError
        Missing or invalid checkpoint.
    GridMismatchError
        Chunks (but one spanning an axis) smaller than ``2 * halo_px``, or not aligned for
        Real-ESRGAN.

    Notes
    -----
    The model tasks carry ``resources={"GPU": 1}``; start GPU workers with that resource. Dask's
    low-level fusion drops the annotation (checked with dask/distributed 2026.8.0), and the
    distributed scheduler builds the graph with its *own* configuration: start it with
    ``DASK_OPTIMIZATION__FUSE__ACTIVE=False`` (an in-process ``LocalCluster`` follows the client's
    ``dask.config.set({"optimization.fuse.active": False})``). :func:`s2scale.mosaic.write_mosaic`
    refuses a fusing scheduler; :func:`s2scale.pipeline.run_upscale` pins model tasks explicitly.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> yx = {"y": 95.0 - 10 * np.arange(8), "x": 5.0 + 10 * np.arange(8)}
    >>> cube = xr.DataArray(
    ...     np.full((2, 8, 8), 1000, np.uint16), dims=("band", "y", "x"),
    ...     coords={"band": ["red", "nir"], **yx},
    ... ).rio.write_crs("EPSG:32633")
    >>> tiny = {"num_feat": 4, "num_conv": 1}
    >>> bare = {"consistency": False, "fill_nodata": False}  # 8 px: too small for their context
    >>> sr = upscale(cube, "srvgg", random_weights=True, model_kwargs=tiny, halo_px=2,
    ...              device="cpu", **bare)
    >>> sr.shape, sr.x.values[:2].tolist(), sr.attrs["random_weights"], sr.attrs["halo_px"]
    ((2, 16, 16), [2.5, 7.5], 1, 2)
    """
    _check_cube(cube)
    names = tuple(str(b) for b in cube["band"].values) if "band" in cube.coords else None
    setup = prepare_model(
        model, bands=names or cube.sizes["band"], halo_px=halo_px, tile_px=tile_px,
        overlap_px=overlap_px, batch_size=batch_size, device=device, dtype=dtype,
        compile=compile, random_weights=random_weights, model_kwargs=model_kwargs, seed=seed,
        consistency=consistency, fill_nodata=fill_nodata,
        consistency_lowpass_px=consistency_lowpass_px,
    )  # fmt: skip
    predict, halo, align, scale = setup.predictor, setup.halo_px, setup.align, setup.scale
    arch = setup.arch
    data = cube.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(1,) * (cube.ndim - 3) + (-1, 1024, 1024))
        chunk_px = chunk_px or 1024
    out = upscale_dask(data, predict, margin_px=halo, scale=scale, chunk_px=chunk_px, align=align)
    if random_weights:
        log.warning("upscale: %s with RANDOM weights (not a trained model)", arch)
    return _wrap(cube, out, setup)


def _wrap(cube: xr.DataArray, out: da.Array, setup: ModelSetup) -> xr.DataArray:
    """Wrap the upscaled array with 5 m coordinates, the cube's other coords, CRS and attrs."""
    scale, checkpoint = setup.scale, setup.checkpoint
    crs = cube.rio.crs
    t = cube.rio.transform()
    coords: dict[str, Any] = {
        str(k): v
        for k, v in cube.coords.items()
        if not {"y", "x"} & set(v.dims) and k != "spatial_ref"
    }
    coords["y"] = _hr_centres(cube["y"].values, t.e, scale)
    coords["x"] = _hr_centres(cube["x"].values, t.a, scale)
    attrs = {
        **cube.attrs,
        "model": setup.arch,
        "checkpoint": checkpoint or "",
        "halo_px": setup.halo_px,
        "network_halo_px": setup.network_halo_px,
        "scale": scale,
        "random_weights": int(checkpoint is None),
        "consistency": int(setup.consistency),
        "consistency_lowpass_px": setup.predictor.consistency_lowpass_px,
        "fill_nodata": int(setup.fill_nodata),
    }
    result = xr.DataArray(out, dims=cube.dims, coords=coords, attrs=attrs)
    result.name = cube.name  # not the Dask key name, which xarray would pick up
    if crs is not None:
        result = result.rio.write_crs(crs)
    hr = Affine(t.a / scale, t.b / scale, t.c, t.d / scale, t.e / scale, t.f)
    return result.rio.write_transform(hr)
