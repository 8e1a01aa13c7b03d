"""The s2scale generator checkpoint format: metadata classes and validation (no file I/O).

A checkpoint is a ``torch.save``'d dict, read back with ``torch.load(weights_only=True)``::

    {"format": "s2scale-generator", "format_version": 1,
     "arch": "realesrgan", "kwargs": {"num_feat": 64, ...},  # registry name + constructor kwargs
     "bands": ["blue", "green", "red", "nir"],  # band names, in input channel order
     "scale": 2,
     "normalization": {"kind": "reflectance", "offset": 0.0, "scale": 10000.0},
     "training": {...}, "metrics": {...},  # free-form summaries (plain data only)
     "dtype": "float32" | "float16", "state_dict": {...}}

The normalisation means ``x_model = (dn - offset) / scale`` where ``dn`` is the harmonised uint16
Sentinel-2 L2A digital number (reflectance x 10000), and the model output maps back the same way.
Inference therefore needs nothing but the checkpoint. Reading and writing files is done by
:mod:`s2scale.models.weights`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.registry import GENERATORS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "Normalization",
    "check_plain",
    "coerce_band_names",
    "describe_mismatch",
    "parse_checkpoint",
]

FORMAT = "s2scale-generator"
FORMAT_VERSION = 1
DType = Literal["float32", "float16"]
T = TypeVar("T")

_REQUIRED = ("arch", "kwargs", "bands", "scale", "normalization", "dtype", "state_dict")


@dataclass(frozen=True)
class Normalization:
    """How digital numbers map to model inputs: ``x = (dn - offset) / scale``.

    Examples
    --------
    >>> norm = Normalization(offset=0.0, scale=10000.0)
    >>> norm.normalize(2500.0), norm.denormalize(0.25)
    (0.25, 2500.0)
    """

    kind: Literal["reflectance"] = "reflectance"
    """What ``dn`` is: harmonised surface reflectance x 10000 stored as uint16."""
    offset: float = 0.0
    """Subtracted from ``dn`` first, in DN units."""
    scale: float = 10000.0
    """Divides ``dn - offset``; 10000 maps reflectance 1.0 to 1.0."""

    def __post_init__(self) -> None:
        if self.kind != "reflectance":
            raise ConfigError(f"normalization kind must be 'reflectance', got {self.kind!r}")
        if not (math.isfinite(self.offset) and math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(
                f"normalization needs a finite offset and a finite scale > 0, got "
                f"offset={self.offset!r}, scale={self.scale!r}"
            )

    def normalize(self, dn: T) -> T:
        """Map digital numbers (array, tensor or float) to model inputs."""
        return (dn - self.offset) / self.scale  # type: ignore[operator,return-value]

    def denormalize(self, x: T) -> T:
        """Map model outputs back to digital numbers (float; round and clip to store as uint16)."""
        return x * self.scale + self.offset  # type: ignore[operator,return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict as stored in the checkpoint."""
        return {"kind": self.kind, "offset": float(self.offset), "scale": float(self.scale)}

    @classmethod
    def coerce(cls, value: Normalization | Mapping[str, Any]) -> Normalization:
        """Accept a Normalization or its dict form; raise ConfigError for anything else."""
        if isinstance(value, Normalization):
            return value
        if not isinstance(value, Mapping) or set(value) - {"kind", "offset", "scale"}:
            raise ConfigError(
                "normalization must be a Normalization or a dict with keys kind, offset, scale; "
                f"got {value!r}"
            )
        try:
            offset, scale = float(value.get("offset", 0.0)), float(value.get("scale", 10000.0))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"normalization offset/scale must be numbers, got {value!r}") from err
        return cls(kind=value.get("kind", "reflectance"), offset=offset, scale=scale)


@dataclass(frozen=True)
class Checkpoint:
    """A validated generator checkpoint: metadata plus the state dict."""

    arch: str
    """Registry name of the generator, a key of :data:`~s2scale.models.GENERATORS`."""
    kwargs: dict[str, Any]
    """Constructor kwargs other than ``in_bands`` and ``scale``."""
    bands: tuple[str, ...]
    """Band names in input/output channel order, e.g. ``("blue", "green", "red", "nir")``."""
    scale: int
    """Upscaling factor."""
    normalization: Normalization
    """Input/output normalisation of the model."""
    dtype: DType = "float32"
    """Storage dtype of the floating-point tensors in ``state_dict``."""
    training: dict[str, Any] = field(default_factory=dict)
    """Free-form training summary (data, steps, losses, git commit, ...)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Free-form validation metrics, e.g. ``{"val/psnr": 31.2}``."""
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    """Parameters and buffers by name, on the CPU."""
    path: str | None = None
    """Where it was read from, if it was read from a file."""
    format_version: int = FORMAT_VERSION
    """Version of the checkpoint format."""

    def to_payload(self) -> dict[str, Any]:
        """Return the plain dict that :func:`torch.save` writes."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": self.arch,
            "kwargs": dict(self.kwargs),
            "bands": list(self.bands),
            "scale": self.scale,
            "normalization": self.normalization.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
            "dtype": self.dtype,
            "state_dict": self.state_dict,
        }


def check_plain(value: Any, where: str) -> None:
    """Require plain data (what ``torch.load(weights_only=True)`` can read back)."""
    if value is None or isinstance(value, str | int | float | bool | torch.Tensor):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise ConfigError(f"{where} has a non-string key {key!r}")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise ConfigError(
        f"{where} is a {type(value).__name__}; checkpoints hold plain data only "
        "(dict, list, str, int, float, bool, None, tensors): convert it, e.g. with str()"
    )


def coerce_band_names(bands: Sequence[str], where: str) -> tuple[str, ...]:
    """Require a non-empty sequence of distinct band names."""
    if isinstance(bands, str) or not isinstance(bands, Sequence):
        raise ConfigError(f"{where}: bands must be a list of band names, got {bands!r}")
    names = tuple(bands)
    if (
        not names
        or not all(isinstance(b, str) and b for b in names)
        or len(set(names)) < len(names)
    ):
        raise ConfigError(
            f"{where}: bands must be distinct non-empty names such as "
            f"['blue', 'green', 'red', 'nir'], got {bands!r}"
        )
    return names


def describe_mismatch(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], limit: int = 5
) -> str:
    """Describe missing, unexpected and mis-shaped keys; empty when the layouts match."""
    missing = sorted(expected.keys() - got.keys())
    unexpected = sorted(got.keys() - expected.keys())
    wrong = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(got[k].shape)}"
        for k in sorted(expected.keys() & got.keys())
        if expected[k].shape != got[k].shape
    ]
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("wrong shapes", wrong),
    ):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label} {len(items)}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def parse_checkpoint(obj: Any, where: str) -> Checkpoint:
    """Validate a loaded payload and turn it into a Checkpoint."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and ({"params", "params_ema"} & obj.keys() or "format" not in obj):
            hint = (
                "; an official BasicSR/Real-ESRGAN .pth is read with s2scale.models.import_basicsr"
            )
        raise CheckpointError(f"{where} is not an s2scale generator checkpoint{hint}")
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format_version={version!r}; this s2scale reads version {FORMAT_VERSION}"
        )
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise CheckpointError(f"{where} is incomplete: missing {', '.join(missing)}")
    if obj["arch"] not in GENERATORS:
        raise CheckpointError(
            f"{where} has unknown arch {obj['arch']!r}; known: {', '.join(sorted(GENERATORS))}"
        )
    state = obj["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: state_dict must be a dict of tensors")
    if obj["dtype"] not in ("float32", "float16") or not isinstance(obj["kwargs"], dict):
        raise CheckpointError(f"{where}: bad dtype {obj['dtype']!r} or kwargs {obj['kwargs']!r}")
    scale = obj["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise CheckpointError(f"{where}: scale must be a positive integer, got {scale!r}")
    try:
        names = coerce_band_names(obj["bands"], where)
        norm = Normalization.coerce(obj["normalization"])
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    return Checkpoint(
        arch=obj["arch"],
        kwargs=dict(obj["kwargs"]),
        bands=names,
        scale=scale,
        normalization=norm,
        dtype=obj["dtype"],
        training=dict(obj.get("training") or {}),
        metrics=dict(obj.get("metrics") or {}),
        state_dict=state,
        path=where,
    )
