"""State-dict surgery without file I/O: official BasicSR layouts and RGB -> RGB+NIR adaptation.

:func:`unwrap_basicsr` and :func:`infer_basicsr_kwargs` read the constructor arguments off an
official BasicSR / Real-ESRGAN state dict; :func:`adapt_bands` widens the first and last
convolutions of any registry generator to more bands. :func:`s2scale.models.weights.import_basicsr`
combines them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.registry import GENERATORS

__all__ = ["adapt_bands", "infer_basicsr_kwargs", "io_conv_names", "unwrap_basicsr"]

_RRDB = re.compile(r"body\.(\d+)\.rdb1\.conv1\.weight")
_BODY_CONV = re.compile(r"body\.(\d+)\.weight")


def unwrap_basicsr(obj: Any, source: str = "state dict") -> dict[str, torch.Tensor]:
    """Return the generator weights of a loaded BasicSR file.

    Takes ``params_ema`` if present, else ``params``, else the object itself, and strips a
    ``module.`` prefix left by ``DataParallel``.

    Raises
    ------
    CheckpointError
        If the result is not a dict of tensors.
    """
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params"):
            if key in obj:
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source} holds no state dict (expected params_ema/params/tensors)")
    out = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source} is not a state dict: non-tensor entries {bad[:5]}")
    return out


def _need(state_dict: Mapping[str, torch.Tensor], key: str, arch: str) -> torch.Tensor:
    """Fetch ``key`` or explain that this is not the expected layout."""
    if key not in state_dict:
        first = ", ".join(list(state_dict)[:4])
        raise CheckpointError(
            f"not a BasicSR {arch} state dict: {key!r} is missing (keys start with {first})"
        )
    return state_dict[key]


def _groups(channels: int, bands: int, what: str) -> int:
    """Channels per band (``channels == bands * groups``), or raise CheckpointError."""
    if channels % bands:
        raise CheckpointError(f"{what} has {channels} channels, not a multiple of {bands} bands")
    return channels // bands


def _square_root(n: int, what: str) -> int:
    """Integer square root of ``n`` or raise CheckpointError."""
    root = math.isqrt(n)
    if root * root != n:
        raise CheckpointError(f"{what}: {n} sub-pixel channels per band is not a square")
    return root


def infer_basicsr_kwargs(
    arch: str, state_dict: Mapping[str, torch.Tensor], bands: int = 3
) -> tuple[int, dict[str, Any]]:
    """Read ``scale`` and constructor kwargs off an official state dict.

    Parameters
    ----------
    arch
        ``"realesrgan"`` or ``"esrgan"`` (BasicSR ``RRDBNet``) or ``"srvgg"``
        (``SRVGGNetCompact``).
    state_dict
        The weights, e.g. from :func:`unwrap_basicsr`.
    bands
        Number of bands the weights were trained on (3 for the official RGB models).

    Returns
    -------
    tuple[int, dict]
        ``(scale, kwargs)`` for :func:`~s2scale.models.build_generator`.

    Raises
    ------
    CheckpointError
        If the state dict does not have the expected layout.
    """
    if arch in ("realesrgan", "esrgan"):
        first = _need(state_dict, "conv_first.weight", arch)
        blocks = sorted(int(m[1]) for k in state_dict if (m := _RRDB.fullmatch(k)))
        kwargs: dict[str, Any] = {"num_feat": first.shape[0], "num_block": len(blocks)}
        if blocks:
            kwargs["num_grow_ch"] = state_dict[f"body.{blocks[0]}.rdb1.conv1.weight"].shape[0]
        groups = _groups(first.shape[1], bands, "conv_first")
        if arch == "esrgan":
            if groups != 1:
                raise CheckpointError(
                    f"conv_first takes {first.shape[1]} channels for {bands} bands: this is a "
                    "pixel-unshuffle (Real-ESRGAN) layout; import it with arch='realesrgan'"
                )
            return (4 if "conv_up2.weight" in state_dict else 2), kwargs
        scales = {16: 1, 4: 2, 1: 4}  # unshuffle 4 / 2 / none
        if groups not in scales:
            raise CheckpointError(f"conv_first has {first.shape[1]} channels for {bands} bands")
        return scales[groups], kwargs
    if arch == "srvgg":
        convs = sorted(
            int(m[1])
            for k, v in state_dict.items()
            if (m := _BODY_CONV.fullmatch(k)) and v.ndim == 4
        )
        if len(convs) < 2:
            raise CheckpointError("not an SRVGGNetCompact state dict: fewer than two body convs")
        first = state_dict[f"body.{convs[0]}.weight"]
        last = state_dict[f"body.{convs[-1]}.weight"]
        scale = _square_root(_groups(last.shape[0], bands, "the last conv"), "the last conv")
        kwargs = {"num_feat": first.shape[0], "num_conv": len(convs) - 2}
        if "body.1.weight" in state_dict:
            kwargs["act_type"] = "prelu"
        return scale, kwargs
    raise ConfigError(f"cannot import arch {arch!r}; choose 'realesrgan', 'esrgan' or 'srvgg'")


def io_conv_names(arch: str, state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """Names of the band-facing first and last convolutions of a registry generator."""
    if arch not in GENERATORS:
        raise ConfigError(f"unknown generator {arch!r}; known: {', '.join(sorted(GENERATORS))}")
    if arch == "srvgg":
        convs = [int(m[1]) for k, v in state_dict.items() if (m := _BODY_CONV.fullmatch(k))]
        convs = [i for i in convs if state_dict[f"body.{i}.weight"].ndim == 4]
        return f"body.{min(convs)}", f"body.{max(convs)}"
    return "conv_first", "conv_last"


def adapt_bands(
    state_dict: Mapping[str, torch.Tensor], arch: str, from_bands: int = 3, to_bands: int = 4
) -> dict[str, torch.Tensor]:
    """Widen a generator's weights from ``from_bands`` to ``to_bands`` bands (e.g. RGB -> RGB+NIR).

    Only the band-facing convolutions change; the new bands are appended after the old ones.
    Channels are grouped per band as the layers see them: with pixel-unshuffle (Real-ESRGAN) the
    first convolution's channel ``c * g + k`` is sub-pixel ``k`` of band ``c``, and with a final
    pixel shuffle (SRVGG) the last convolution's channel ``c * s**2 + k`` is sub-pixel ``k`` of band
    ``c``; the rules below apply per sub-pixel ``k``.

    With ``K = from_bands``, ``J = to_bands - from_bands`` and ``m`` the mean of the first
    convolution's RGB input weights:

    * input: new bands get ``m * K / (K + J)``, old bands ``w_c - m * J / (K + J)``. The mean
      ("grey") part of the filter is shared evenly among all bands and the colour-difference part
      stays on the old bands, so the response to a flat spectrum keeps its magnitude;
    * output: new bands get the mean of the old bands' output weights and biases.

    Hence, if each new input band equals the mean of the old bands, the adapted network gives
    exactly (up to float rounding) the old outputs on the old bands, and their mean on the new
    bands. Fine-tuning on real NIR data starts from there.

    Parameters
    ----------
    state_dict
        Weights of a registry generator with ``from_bands`` bands (not modified).
    arch
        Registry name (``"srcnn"``, ``"srresnet"``, ``"esrgan"``, ``"realesrgan"``, ``"srvgg"``).
    from_bands, to_bands
        Band counts before and after, ``to_bands > from_bands >= 1``.

    Returns
    -------
    dict[str, torch.Tensor]
        New state dict for ``build_generator(arch, bands=to_bands, ...)``.

    Raises
    ------
    ConfigError
        For an unknown arch or band counts that do not grow.
    CheckpointError
        If the band-facing convolutions do not fit ``from_bands``.

    Examples
    --------
    >>> from s2scale.models import build_generator
    >>> rgb = build_generator("realesrgan", bands=3, num_feat=4, num_block=1, num_grow_ch=4)
    >>> sd = adapt_bands(rgb.state_dict(), "realesrgan", from_bands=3, to_bands=4)
    >>> tuple(sd["conv_first.weight"].shape)  # 4 bands x 4 sub-pixels
    (4, 16, 3, 3)
    """
    if not 1 <= from_bands < to_bands:
        raise ConfigError(
            f"adapt_bands needs to_bands > from_bands >= 1, got {from_bands}->{to_bands}"
        )
    first, last = io_conv_names(arch, state_dict)
    k, j = from_bands, to_bands - from_bands
    out = dict(state_dict)

    w = _need(state_dict, f"{first}.weight", arch)
    f_out, f_in, kh, kw = w.shape
    g = _groups(f_in, k, first)
    wv = w.double().reshape(f_out, k, g, kh, kw)  # channel c*g+p -> [c, p]
    mean = wv.mean(dim=1, keepdim=True)
    old = wv - mean * (j / (k + j))
    new = (mean * (k / (k + j))).expand(f_out, j, g, kh, kw)
    out[f"{first}.weight"] = torch.cat([old, new], 1).reshape(f_out, (k + j) * g, kh, kw).to(w)

    w = _need(state_dict, f"{last}.weight", arch)
    c_out, f_in, kh, kw = w.shape
    g = _groups(c_out, k, last)
    wv = w.double().reshape(k, g, f_in, kh, kw)
    new = wv.mean(dim=0, keepdim=True).expand(j, g, f_in, kh, kw)
    out[f"{last}.weight"] = torch.cat([wv, new], 0).reshape((k + j) * g, f_in, kh, kw).to(w)
    bias_key = f"{last}.bias"
    if bias_key in state_dict:
        b = state_dict[bias_key]
        bv = b.double().reshape(k, g)
        new_b = bv.mean(dim=0, keepdim=True).expand(j, g)
        out[bias_key] = torch.cat([bv, new_b], 0).reshape(-1).to(b)
    return out
