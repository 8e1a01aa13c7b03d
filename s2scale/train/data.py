"""Training pairs: a torch Dataset of ``(lr, hr)`` patches and a resumable sampler.

Patches are uint16 harmonised digital numbers (reflectance x 10000) with dims ``(N, C, h, w)``
(LR) and ``(N, C, H, W)`` (HR, ``H = h * scale``), from numpy arrays or a Zarr patch store with
arrays ``lr`` and ``hr``. Items are float32 tensors normalised with ``x = (dn - offset) / scale``.

LR patches can be synthesised on the fly from the HR patches, either with the Sentinel-2
degradation model (``sensor_degradation``, :func:`s2scale.degradation.apply_degradation`: band
PSFs, misregistration and noise drawn from their ranges, in reflectance) or with Real-ESRGAN's
generic second-order model (``degradation``, :mod:`s2scale.train.degradations`).

All randomness (flips, rotations, on-the-fly degradations) is a pure function of
``(seed, epoch, index)``, so results do not depend on worker processes, and a run resumed at any
batch sees exactly the samples and augmentations of an uninterrupted run. The sampler yields
``(epoch, index)`` keys for that purpose; plain integer indices work too (epoch 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from s2scale.degradation import SensorDegradationConfig, apply_degradation, sample_params
from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.models.checkpoint import Normalization
from s2scale.sentinel2 import BANDS, DN_SCALE
from s2scale.train.degradations import TrainingDegradationConfig, degrade_training

__all__ = ["IgnoreEpoch", "PairDataset", "PatchArray", "ResumableSampler"]

Key = int | tuple[int, int]


class PatchArray(Protocol):
    """Anything indexable like a numpy array of patches: numpy, Zarr or h5py arrays."""

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, C, y, x)``."""
        ...

    def __getitem__(self, key: Any) -> Any: ...


def _dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """Apply one of the 8 flips/rotations (``code`` in 0..7) to the last two dims."""
    if code & 4:
        x = x.flip(-1)
    return torch.rot90(x, k=code % 4, dims=(-2, -1))


@dataclasses.dataclass(frozen=True, eq=False)
class PairDataset(Dataset):
    """``(lr, hr)`` float32 patch pairs, normalised, optionally augmented or degraded on the fly.

    Parameters
    ----------
    hr
        HR patches ``(N, C, H, W)``, uint16 DN (or any real dtype), e.g. ``zarr_group["hr"]``.
    lr
        LR patches ``(N, C, H / scale, W / scale)`` in the same units, or ``None`` to synthesise
        them from ``hr`` with ``degradation`` (Real-ESRGAN style training).
    scale
        Upscaling factor between ``lr`` and ``hr`` (2 for 10 m -> 5 m).
    normalization
        :class:`~s2scale.models.checkpoint.Normalization` or ``{"offset", "scale"}``; the same
        one must be stored in the model checkpoint.
    augment
        Apply a random flip/90 degree rotation (one of 8, the same for ``lr`` and ``hr``).
    degradation
        If given, ``lr`` is built from the normalised ``hr`` by
        :func:`~s2scale.train.degradations.degrade_training` (any ``lr`` passed is then ignored).
    sensor_degradation
        If given, ``lr`` is built from ``hr`` (as reflectance, ``dn / 10000``) by the Sentinel-2
        degradation model with parameters drawn from these ranges
        (:func:`s2scale.degradation.sample_params`); excludes ``degradation``.
    bands
        Band names of the channels (the Sentinel-2 model's PSF and noise are per band).
    seed
        Seed of augmentations and degradations.
    fixed_lr
        ``(N,)`` bool: pairs whose stored ``lr`` is always used, never synthesised (real
        co-located pairs: the real Sentinel-2 image is the input), even with a degradation.

    Raises
    ------
    GridMismatchError
        If the arrays are not 4-D or their shapes do not match ``scale``.
    ConfigError
        If neither ``lr`` nor a degradation is given, or both degradations are.

    Examples
    --------
    >>> hr = np.full((2, 4, 8, 8), 2500, dtype=np.uint16)
    >>> lr = np.full((2, 4, 4, 4), 2500, dtype=np.uint16)
    >>> ds = PairDataset(hr=hr, lr=lr, scale=2, normalization={"offset": 0, "scale": 10000})
    >>> x, y = ds[0]
    >>> tuple(x.shape), tuple(y.shape), float(y.max())
    ((4, 4, 4), (4, 8, 8), 0.25)
    """

    hr: PatchArray
    """HR patches ``(N, C, H, W)``."""
    lr: PatchArray | None = None
    """LR patches ``(N, C, H / scale, W / scale)`` or ``None``."""
    scale: int = 2
    """Upscaling factor."""
    normalization: Normalization | Mapping[str, Any] = dataclasses.field(
        default_factory=Normalization
    )
    """DN -> model input mapping."""
    augment: bool = True
    """Random flips and rotations."""
    degradation: TrainingDegradationConfig | None = None
    """Synthesise ``lr`` from ``hr`` on the fly (Real-ESRGAN model)."""
    sensor_degradation: SensorDegradationConfig | None = None
    """Synthesise ``lr`` from ``hr`` on the fly (Sentinel-2 model)."""
    bands: tuple[str, ...] = BANDS
    """Band names of the channels."""
    seed: int = 0
    """Seed of all randomness."""
    fixed_lr: np.ndarray | None = None
    """``(N,)`` bool: use the stored ``lr`` of these pairs even when a degradation is set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalization", Normalization.coerce(self.normalization))
        if self.fixed_lr is not None:
            fixed = np.asarray(self.fixed_lr, bool)
            if fixed.shape != (self.hr.shape[0],) or (fixed.any() and self.lr is None):
                raise GridMismatchError(
                    f"fixed_lr must be one bool per pair ({self.hr.shape[0]}) with lr given, "
                    f"got shape {fixed.shape}"
                )
            object.__setattr__(self, "fixed_lr", fixed)
        if len(self.hr.shape) != 4:
            raise GridMismatchError(f"hr must be (N, C, H, W), got shape {self.hr.shape}")
        n, c, h, w = self.hr.shape
        if h % self.scale or w % self.scale:
            raise GridMismatchError(f"hr patches {h}x{w} are not divisible by scale={self.scale}")
        object.__setattr__(self, "bands", tuple(self.bands))
        if self.degradation is not None and self.sensor_degradation is not None:
            raise ConfigError("PairDataset takes degradation or sensor_degradation, not both")
        if self.sensor_degradation is not None and len(self.bands) != c:
            raise GridMismatchError(
                f"hr has {c} bands but bands={self.bands}; pass the patches' band names"
            )
        if self.degradation is None and self.sensor_degradation is None:
            if self.lr is None:
                raise ConfigError("PairDataset needs lr patches or a degradation to build them")
            want = (n, c, h // self.scale, w // self.scale)
            if tuple(self.lr.shape) != want:
                raise GridMismatchError(
                    f"lr shape {tuple(self.lr.shape)} does not match hr {self.hr.shape} at "
                    f"scale={self.scale}; expected {want}"
                )

    @classmethod
    def from_zarr(cls, path: str | Path, **kwargs: Any) -> PairDataset:
        """Open a Zarr patch store with arrays ``lr`` and ``hr`` (read lazily, per item).

        ``kwargs`` are passed to the constructor. Raises :class:`~s2scale.errors.ReadError` if the
        store or one of the arrays cannot be opened.
        """
        import zarr

        try:
            group = zarr.open_group(str(path), mode="r")
            hr, lr = group["hr"], group["lr"]
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise ReadError(
                f"cannot open the patch store {str(path)!r} (arrays 'lr', 'hr')"
            ) from err
        return cls(hr=hr, lr=lr, **kwargs)

    def with_degradation(self, degradation: TrainingDegradationConfig | None) -> PairDataset:
        """Return a copy that synthesises ``lr`` with ``degradation`` (or not, for ``None``)."""
        return dataclasses.replace(self, degradation=degradation)

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    def _rng_seed(self, epoch: int, index: int) -> int:
        """Seed for one item, a pure function of (seed, epoch, index)."""
        seq = np.random.SeedSequence([self.seed, epoch, index])
        return int(seq.generate_state(1, dtype=np.uint32)[0])

    def _sensor_lr(self, hr: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        """LR of a normalised HR patch by the Sentinel-2 model, drawn for ``(epoch, index)``."""
        norm = self.normalization
        assert isinstance(norm, Normalization) and self.sensor_degradation is not None
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        refl = norm.denormalize(hr.double().numpy()) / DN_SCALE
        params = sample_params(self.sensor_degradation, rng, bands=self.bands)
        lr = apply_degradation(refl, params, self.scale, rng)
        return torch.from_numpy(norm.normalize(lr * DN_SCALE).astype(np.float32))

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(lr, hr)`` float32 tensors ``(C, h, w)`` and ``(C, H, W)``."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        norm = self.normalization
        assert isinstance(norm, Normalization)  # coerced in __post_init__
        hr = torch.from_numpy(norm.normalize(np.asarray(self.hr[index], dtype=np.float32)))
        gen = torch.Generator().manual_seed(self._rng_seed(epoch, index))
        code = int(torch.randint(8, (), generator=gen)) if self.augment else 0
        hr = _dihedral(hr, code)
        fixed = self.fixed_lr is not None and bool(self.fixed_lr[index])
        if fixed or (self.degradation is None and self.sensor_degradation is None):
            assert self.lr is not None  # checked in __post_init__
            lr = torch.from_numpy(norm.normalize(np.asarray(self.lr[index], dtype=np.float32)))
            lr = _dihedral(lr, code)
        elif self.degradation is not None:
            lr = degrade_training(
                hr[None], scale=self.scale, config=self.degradation, generator=gen
            )[0]
        else:
            lr = self._sensor_lr(hr, epoch, index)
        return lr.contiguous(), hr.contiguous()


class ResumableSampler(DistributedSampler):
    """DistributedSampler that yields ``(epoch, index)`` keys and can start mid-epoch.

    Shuffles with ``seed + epoch`` and shards over ``num_replicas`` ranks exactly like
    :class:`torch.utils.data.DistributedSampler` (one rank when not distributed). After
    ``set_state(epoch, start)`` the first ``start`` keys of that epoch's shard are skipped, which
    is how a resumed run continues at the exact batch where it stopped.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.start = 0

    def set_state(self, epoch: int, start: int) -> None:
        """Continue at position ``start`` of epoch ``epoch``."""
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


class IgnoreEpoch(Dataset):
    """Wrap a dataset indexed by integers so it accepts ``(epoch, index)`` sampler keys."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Key) -> Any:
        return self.dataset[key[1] if isinstance(key, tuple) else key]
