"""Model specs -> one record: the one resolver of registry names, checkpoints, random weights.

A model spec is what a user writes after ``--model`` or in ``infer.model``: a registry name
(``"srresnet"``: the shipped checkpoint ``s2scale/weights/srresnet.pt``), a checkpoint path
(``runs/x/best.pt``), or a registry name with ``random_weights=True`` (an untrained net for tests
and benchmarks). :func:`resolve_model` turns any of them into a :class:`ModelSpec`; inference,
evaluation, the pipeline, deploy and the CLI all go through it. :func:`read_checkpoint` reads one
checkpoint file (the format is described in :mod:`s2scale.models.checkpoint`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.checkpoint import Checkpoint, parse_checkpoint
from s2scale.models.registry import GENERATORS

__all__ = [
    "SHIPPED",
    "ModelSpec",
    "is_registry_name",
    "model_name",
    "read_checkpoint",
    "resolve_model",
    "weights_path",
]

SHIPPED: tuple[str, ...] = ("srcnn", "srresnet", "esrgan", "realesrgan")
"""Registry names with a checkpoint shipped in ``s2scale/weights/<name>.pt`` (model card
``<name>.md`` beside it), each trained by its config in ``s2scale/configs/train``."""

_HOW_TO_GET = (
    "train one with `s2scale train --config run.yaml`, or convert official weights with "
    "s2scale.models.import_basicsr(...) followed by s2scale.models.save_checkpoint(...)"
)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; its legacy pickle format


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: what to build and from which weights (plain values only)."""

    name: str
    """Registry name, or the checkpoint's file stem: the key of benchmark records and reports."""
    arch: str
    """Registry architecture name."""
    checkpoint: str | None
    """Absolute checkpoint path; None for random weights."""
    bands: tuple[str, ...] | None
    """Band names the weights expect, in channel order; None for random weights (any bands)."""
    scale: int
    """Upscaling factor."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor kwargs stored in the checkpoint (empty for random weights)."""
    parameters: int | None = None
    """Number of stored weights; None for random weights."""

    @property
    def random_weights(self) -> bool:
        """Whether the model is an untrained net (no checkpoint)."""
        return self.checkpoint is None


def weights_path(name: str) -> Path:
    """Where the shipped checkpoint of registry model ``name`` lives (it may not exist).

    Examples
    --------
    >>> weights_path("srresnet").name
    'srresnet.pt'
    """
    return Path(str(resources.files("s2scale"))) / "weights" / f"{name}.pt"


def is_registry_name(model: object) -> bool:
    """Whether a spec is a registry name (its weights are the shipped ones); reads nothing.

    Examples
    --------
    >>> is_registry_name("srresnet"), is_registry_name("/models/srresnet.pt")
    (True, False)
    """
    return isinstance(model, str) and model in GENERATORS


def model_name(model: str | os.PathLike[str] | ModelSpec) -> str:
    """The name a model spec goes by (registry name or checkpoint file stem); reads nothing.

    Examples
    --------
    >>> model_name("srresnet"), model_name("runs/a/best.pt")
    ('srresnet', 'best')
    """
    if isinstance(model, ModelSpec):
        return model.name
    if is_registry_name(model):
        return str(model)
    return Path(model).stem


def _checkpoint_file(model: str | os.PathLike[str]) -> Path:
    """The file a spec names: the shipped checkpoint of a registry name, else the path itself."""
    if not is_registry_name(model):
        return Path(model)
    path = weights_path(str(model))
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint for model {model!r}: it has no shipped weights (expected {path}; "
            f"shipped: {', '.join(SHIPPED)}); train them (`s2scale train --config {model}` where "
            "a config ships, see s2scale/configs/train), pass model=PATH to a checkpoint "
            "(PATH.pt), or random_weights=True for an untrained net (tests and benchmarks only)"
        )
    return path


def _check_torch_file(p: Path) -> None:
    """Raise CheckpointError unless ``p`` exists and starts like a ``torch.save`` file."""
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist; {_HOW_TO_GET}")
    with p.open("rb") as f:
        head = f.read(4)
    if head.startswith(_TORCH_MAGIC):
        return
    raise CheckpointError(
        f"cannot read checkpoint {str(p)!r}: it is not a file written by torch.save (it starts "
        f"with {head!r}); pass a registry name ({', '.join(SHIPPED)}) or an s2scale checkpoint "
        f"(*.pt); {_HOW_TO_GET}"
    )


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by ``save_checkpoint`` (weights on the CPU).

    Parameters
    ----------
    path
        The checkpoint file, or a registry name with shipped weights (:data:`SHIPPED`).

    Returns
    -------
    Checkpoint
        Metadata and state dict (tensors in the stored dtype).

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, not a checkpoint at all, not an s2scale checkpoint,
        of another format version, incomplete, or names an unknown arch.
    """
    p = _checkpoint_file(path)
    _check_torch_file(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"cannot read checkpoint {str(p)!r}: {err}; is it complete and an s2scale checkpoint? "
            f"{_HOW_TO_GET}"
        ) from err
    return parse_checkpoint(obj, str(p))


def resolve_model(
    model: str | os.PathLike[str] | ModelSpec, *, random_weights: bool = False
) -> ModelSpec:
    """Resolve a model spec into one record (the checkpoint is read and checked here).

    Parameters
    ----------
    model
        A registry name (its shipped weights), a checkpoint path, or an already resolved
        :class:`ModelSpec` (returned as is).
    random_weights
        An untrained net of registry architecture ``model`` (scale 2; tests and benchmarks).

    Returns
    -------
    ModelSpec
        Name, architecture, absolute checkpoint path (None for random weights), band names and
        scale.

    Raises
    ------
    ConfigError
        An unknown name that is not a path, or ``random_weights`` with a checkpoint path.
    CheckpointError
        A registry name without shipped weights, or a missing or invalid checkpoint.

    Examples
    --------
    >>> spec = resolve_model("srvgg", random_weights=True)
    >>> spec.arch, spec.checkpoint, spec.random_weights
    ('srvgg', None, True)
    """
    if isinstance(model, ModelSpec):
        return model
    if not is_registry_name(model):
        path = Path(model)
        if isinstance(model, str) and not path.suffix and len(path.parts) == 1:
            raise ConfigError(
                f"unknown model {model!r}; use a registry name ({', '.join(sorted(GENERATORS))}) "
                "or a checkpoint path (*.pt)"
            )
        if random_weights:
            raise ConfigError("random_weights=True needs a registry name, not a checkpoint path")
    elif random_weights:
        return ModelSpec(name=str(model), arch=str(model), checkpoint=None, bands=None, scale=2)
    path = _checkpoint_file(model)
    ckpt = read_checkpoint(path)
    return ModelSpec(
        name=model_name(model),
        arch=ckpt.arch,
        checkpoint=str(path.resolve()),
        bands=ckpt.bands,
        scale=ckpt.scale,
        kwargs=dict(ckpt.kwargs),
        parameters=int(sum(t.numel() for t in ckpt.state_dict.values())),
    )
