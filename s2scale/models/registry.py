"""Registry of generators and discriminators, built by name plus typed constructor kwargs.

The registry lists its classes explicitly (no folder scanning). ``in_bands`` and ``scale`` are set
by :func:`build_generator` from ``bands`` and ``scale``; every other constructor argument may be
passed as a keyword and is checked against the constructor's signature and annotations first, so
a typo fails when the model is built, not deep inside training.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from s2scale.errors import ConfigError
from s2scale.models.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from s2scale.models.rrdbnet import ESRGANGenerator, RealESRGANGenerator
from s2scale.models.srcnn import SRCNN
from s2scale.models.srresnet import SRResNet
from s2scale.models.srvgg import SRVGGNetCompact

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "SCALES",
    "build_discriminator",
    "build_generator",
]

GeneratorName = Literal["srcnn", "srresnet", "esrgan", "realesrgan", "srvgg"]
DiscriminatorName = Literal["vgg", "unet"]

GENERATORS: dict[str, type[nn.Module]] = {
    "srcnn": SRCNN,
    "srresnet": SRResNet,
    "esrgan": ESRGANGenerator,
    "realesrgan": RealESRGANGenerator,
    "srvgg": SRVGGNetCompact,
}
"""Generator classes by registry name; each maps ``(N, C, H, W) -> (N, C, H*s, W*s)``."""

DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "vgg": VGGStyleDiscriminator,
    "unet": UNetDiscriminatorSN,
}
"""Discriminator classes by registry name."""

SCALES: tuple[int, ...] = (2, 4)
"""Upscaling factors accepted by :func:`build_generator` (2 is 10 m -> 5 m)."""

_SET_BY_BUILDER = ("in_bands", "scale")
_MAY_BE_ZERO = frozenset({"num_block", "num_conv"})  # other int kwargs must be >= 1


def _lookup(kind: str, name: str, table: Mapping[str, type[nn.Module]]) -> type[nn.Module]:
    """Return ``table[name]`` or raise a ConfigError listing the known names."""
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(table))}")
    return table[name]


def _check_kwargs(name: str, cls: Callable[..., nn.Module], kwargs: Mapping[str, Any]) -> None:
    """Reject kwargs the constructor does not take or whose type does not match its annotation."""
    params = inspect.signature(cls).parameters
    allowed = [p for p in params if p not in _SET_BY_BUILDER]
    hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    for key, value in kwargs.items():
        if key in _SET_BY_BUILDER:
            raise ConfigError(f"{name!r}: pass {key!r} through bands=/scale=, not as a model kwarg")
        if key not in allowed:
            raise ConfigError(
                f"{name!r} got an unknown kwarg {key!r}; allowed kwargs: {', '.join(allowed)}"
            )
        hint = hints.get(key)
        if typing.get_origin(hint) is Literal:
            if value not in typing.get_args(hint):
                raise ConfigError(
                    f"{name!r}: {key}={value!r} is not one of {typing.get_args(hint)}"
                )
        elif hint in (int, bool, float, str):
            ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
            if hint is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise ConfigError(f"{name!r}: {key}={value!r} must be of type {hint.__name__}")
            low = 0 if key in _MAY_BE_ZERO else 1
            if hint is int and value < low:
                raise ConfigError(f"{name!r}: {key}={value!r} must be >= {low}")


def _check_bands(bands: int) -> None:
    """Require a positive integer band count."""
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ConfigError(
            f"bands must be a positive integer (3 for RGB, 4 for RGB+NIR), got {bands!r}"
        )


def _tag(model: nn.Module, **attrs: Any) -> None:
    """Set plain metadata attributes (not parameters or buffers) on ``model``."""
    for key, value in attrs.items():
        setattr(model, key, value)


def _build(cls: type[nn.Module], seed: int | None, **kwargs: Any) -> nn.Module:
    """Instantiate ``cls``; with ``seed``, initialise from a private RNG stream."""
    if seed is None:
        return cls(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def build_generator(
    name: str, bands: int = 4, scale: int = 2, *, seed: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a generator from its registry name and constructor kwargs.

    The module maps ``(N, bands, H, W) -> (N, bands, H*scale, W*scale)`` float tensors of
    normalised reflectance (roughly ``[0, 1]``). It carries the plain attributes ``arch`` (the
    registry name), ``bands`` (int), ``scale`` and ``build_kwargs`` (a copy of ``kwargs``) so that
    downstream code can check compatibility and :func:`~s2scale.models.weights.save_checkpoint`
    can record how to rebuild it. Parameters live on the CPU in float32; move them with ``.to()``.

    Parameters
    ----------
    name
        Registry name, one of ``"srcnn"``, ``"srresnet"``, ``"esrgan"``, ``"realesrgan"``,
        ``"srvgg"``.
    bands
        Number of spectral bands in and out (3 for RGB, 4 for RGB+NIR).
    scale
        Upscaling factor, 2 (10 m -> 5 m) or 4.
    seed
        If given, initialise the weights from ``torch.manual_seed(seed)`` in a forked RNG, leaving
        the global RNG untouched; equal seeds give equal weights.
    **kwargs
        Constructor arguments of the chosen class, e.g. ``num_feat=64, num_block=23``.

    Returns
    -------
    torch.nn.Module
        The freshly initialised generator in training mode.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the known ones), a bad band count or scale, or an
        unknown or mistyped kwarg (the message lists the allowed ones).

    Examples
    --------
    >>> net = build_generator("srvgg", bands=4, scale=2, num_feat=8, num_conv=1)
    >>> (net.arch, net.bands, net.scale)
    ('srvgg', 4, 2)
    """
    cls = _lookup("generator", name, GENERATORS)
    _check_bands(bands)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ConfigError(f"scale must be one of {SCALES} (2 is 10 m -> 5 m), got {scale!r}")
    _check_kwargs(name, cls, kwargs)
    model = _build(cls, seed, in_bands=bands, scale=scale, **kwargs)
    _tag(model, arch=name, bands=bands, scale=scale, build_kwargs=dict(kwargs))
    return model


def build_discriminator(
    name: str, bands: int = 4, *, seed: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a discriminator from its registry name and constructor kwargs.

    Parameters
    ----------
    name
        ``"vgg"`` (ESRGAN, ``(N, C, S, S) -> (N, 1)``; pass ``input_size=S``, default 192) or
        ``"unet"`` (Real-ESRGAN, ``(N, C, H, W) -> (N, 1, H, W)``).
    bands
        Number of spectral bands of the HR images.
    seed
        If given, initialise the weights from this seed without touching the global RNG.
    **kwargs
        Constructor arguments of the chosen class, e.g. ``num_feat=64``.

    Returns
    -------
    torch.nn.Module
        The discriminator, with plain attributes ``arch`` and ``bands``.

    Raises
    ------
    ConfigError
        For an unknown name, a bad band count, or an unknown or mistyped kwarg.

    Examples
    --------
    >>> build_discriminator("unet", bands=4, num_feat=4).arch
    'unet'
    """
    cls = _lookup("discriminator", name, DISCRIMINATORS)
    _check_bands(bands)
    _check_kwargs(name, cls, kwargs)
    model = _build(cls, seed, in_bands=bands, **kwargs)
    _tag(model, arch=name, bands=bands)
    return model
