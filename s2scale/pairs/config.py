"""Configuration of the orthophoto + Sentinel-2 pair extraction (``s2scale pairs``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from s2scale.errors import ConfigError
from s2scale.pairs.ortho import ORTHO_BANDS
from s2scale.pairs.splits import STUDY_SPLIT
from s2scale.sentinel2 import BANDS, RESOLUTION_M

__all__ = ["PairsConfig"]


@dataclass(frozen=True)
class PairsConfig:
    """How orthophotos and Sentinel-2 observations become ``(lr, hr)`` training patches.

    The defaults are the reference study's: 96 x 96 LR / 192 x 192 HR patches, SSIM >= 0.45,
    observations within 30 days, split proportions 1500/374/208.
    """

    orthophotos: tuple[str, ...] = ()
    """Orthophoto files, folders, globs, STAC JSON files or a STAC API URL."""
    ortho_collection: str | None = None
    """Collection of orthophoto items when ``orthophotos`` is a STAC API URL."""
    ortho_date: str | None = None
    """Acquisition date (``YYYY-MM-DD``) for every orthophoto; overrides their metadata."""
    ortho_crs: str | None = None
    """CRS of orthophotos whose files have none (e.g. ``EPSG:31287``)."""
    ortho_bands: tuple[str, ...] | None = None
    """Meaning of each orthophoto band (``red``, ``green``, ``blue``, ``nir``, ``alpha``)."""
    bands: tuple[str, ...] | None = None
    """Bands of the patch store (Sentinel-2 asset keys in ``sentinel2.BANDS`` order); default
    all that the first orthophoto has (RGB -> blue, green, red; RGB+NIR -> + nir)."""
    window_days: int = 30
    """Largest time distance between an orthophoto and an observation, days."""
    observations: int = 1
    """Nearest clear observations per orthophoto (one task group each)."""
    composite: bool = False
    """Pair each orthophoto with the median composite of its observations instead."""
    min_clear: float = 0.9
    """Least clear and valid share (SCL) of the orthophoto's footprint in an observation."""
    mask_snow: bool = False
    """Also count snow (SCL 11) as not clear."""
    scale: int = 2
    """HR pixels per LR pixel along each axis (10 m -> 5 m)."""
    lr_patch_px: int = 96
    """LR patch edge in 10 m pixels (HR patches are ``scale`` times larger)."""
    stride_px: int | None = None
    """Step of the patch lattice in LR pixels; default ``lr_patch_px`` (no overlap)."""
    mean_filter_m: float = 2.5
    """Box filter of the orthophoto before area resampling to 5 m, metres (0: none)."""
    max_shift_px: float = 0.5
    """Patches displaced by more than this (phase correlation), LR pixels, are dropped."""
    coregister: bool = True
    """Correct each group's median displacement by moving the orthophoto on the fixed grid."""
    ssim_min: float | None = 0.45
    """SSIM filter: pairs below it are dropped (``None``: keep all)."""
    split_fractions: tuple[float, float, float] = STUDY_SPLIT
    """Train, val, test proportions of the spatial blocks."""
    split_crs: str = "EPSG:3035"
    """CRS of the fixed block grid of the split (one for all zones and orthophotos)."""
    block_m: float | None = None
    """Edge of the split blocks, metres; default 4 patches (3840 m at 96 px)."""
    seed: int = 0
    """Seed of the block draws."""
    groups_in_flight: int | None = None
    """Task groups on the cluster at once; default twice the cluster's threads."""
    chunk_patches: int = 16
    """Patches per Zarr chunk of the store's root arrays."""

    def __post_init__(self) -> None:
        for name in ("orthophotos", "ortho_bands", "bands", "split_fractions"):
            value = getattr(self, name)
            if isinstance(value, str):  # "a,b" from YAML or the command line
                object.__setattr__(self, name, tuple(v.strip() for v in value.split(",") if v))
            elif value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        fr = tuple(float(v) for v in self.split_fractions)
        object.__setattr__(self, "split_fractions", fr)
        if self.bands is not None:
            bad = [b for b in self.bands if b not in BANDS]
            if bad or not self.bands or len(set(self.bands)) != len(self.bands):
                raise ConfigError(f"pairs.bands={list(self.bands)}: choose from {list(BANDS)}")
            object.__setattr__(self, "bands", tuple(b for b in BANDS if b in self.bands))
        if self.ortho_bands is not None:
            bad = [b for b in self.ortho_bands if b not in (*ORTHO_BANDS, "alpha")]
            if bad:
                raise ConfigError(
                    f"pairs.ortho_bands: unknown names {bad}; use {list(ORTHO_BANDS)} or alpha"
                )
        if not 0 <= self.window_days <= 3660:
            raise ConfigError(f"pairs.window_days={self.window_days} must be within 0..3660")
        if self.observations < 1:
            raise ConfigError(f"pairs.observations={self.observations} must be >= 1")
        if not 0 <= self.min_clear <= 1:
            raise ConfigError(f"pairs.min_clear={self.min_clear} must be a share in 0..1")
        if self.scale != 2:
            raise ConfigError(
                f"pairs.scale={self.scale}: Sentinel-2 pairs are 10 m -> 5 m, scale 2"
            )
        if self.lr_patch_px < 8:
            raise ConfigError(
                f"pairs.lr_patch_px={self.lr_patch_px} must be >= 8 (the SSIM window is 7 px)"
            )
        if self.stride_px is not None and self.stride_px < 1:
            raise ConfigError(f"pairs.stride_px={self.stride_px} must be >= 1")
        if self.mean_filter_m < 0:
            raise ConfigError(f"pairs.mean_filter_m={self.mean_filter_m} must be >= 0")
        if not self.max_shift_px >= 0:
            raise ConfigError(f"pairs.max_shift_px={self.max_shift_px} must be >= 0")
        if self.ssim_min is not None and not -1 <= self.ssim_min <= 1:
            raise ConfigError(f"pairs.ssim_min={self.ssim_min} must be within -1..1")
        if len(fr) != 3 or min(fr) < 0 or sum(fr) <= 0:
            raise ConfigError(
                f"pairs.split_fractions={fr} must be three shares >= 0 (train, val, test)"
            )
        if self.block_m is not None and self.block_m < self.patch_m:
            raise ConfigError(
                f"pairs.block_m={self.block_m} is smaller than one patch ({self.patch_m} m); "
                "use a few patches, e.g. 4 x lr_patch_px x 10 m"
            )
        if self.groups_in_flight is not None and self.groups_in_flight < 1:
            raise ConfigError(f"pairs.groups_in_flight={self.groups_in_flight} must be >= 1")
        if self.chunk_patches < 1:
            raise ConfigError(f"pairs.chunk_patches={self.chunk_patches} must be >= 1")

    @property
    def patch_m(self) -> float:
        """LR patch edge in metres."""
        return self.lr_patch_px * RESOLUTION_M

    @property
    def lattice_m(self) -> float:
        """Step of the patch lattice in metres."""
        return (self.stride_px or self.lr_patch_px) * RESOLUTION_M

    @property
    def split_block_m(self) -> float:
        """Edge of the split blocks in metres."""
        return self.block_m if self.block_m is not None else 4 * self.patch_m

    def replace(self, **changes: Any) -> PairsConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the pairs a group makes (the store refuses other values)."""
        keep = (
            "ortho_date",
            "ortho_crs",
            "ortho_bands",
            "window_days",
            "observations",
            "composite",
            "min_clear",
            "mask_snow",
            "scale",
            "lr_patch_px",
            "stride_px",
            "mean_filter_m",
            "max_shift_px",
            "coregister",
            "ssim_min",
            "split_fractions",
            "split_crs",
            "seed",
        )
        out = {k: getattr(self, k) for k in keep}
        out["block_m"] = self.split_block_m
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
