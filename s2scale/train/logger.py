"""Training metrics to CSV and (when installed) TensorBoard, from rank 0 only.

Metric names are stable and slash-separated: ``train/loss_pixel``, ``train/loss_perceptual``,
``train/loss_gan``, ``train/loss_d``, ``train/lr``, ``val/psnr``, ``val/ssim``. The CSV has one
row per logging event with the fixed columns ``step, phase`` and :data:`METRICS` (empty where a
value was not logged), so it reads straight into pandas.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "MetricLogger"]

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = (
    "train/loss_pixel",
    "train/loss_lowfreq",
    "train/loss_perceptual",
    "train/loss_gan",
    "train/loss_d",
    "train/loss_total",
    "train/lr",
    "train/grad_norm",
    "val/psnr",
    "val/ssim",
)
"""Column names of ``metrics.csv`` after ``step`` and ``phase``."""

_COLUMNS = ("step", "phase", *METRICS)


class MetricLogger:
    """Append metric rows to ``<output_dir>/metrics.csv`` and TensorBoard events.

    Parameters
    ----------
    output_dir
        Run folder; created if needed.
    enabled
        False on ranks other than 0: every call is then a no-op.
    resume_step
        When resuming, rows with ``step > resume_step`` (written after the checkpoint by the
        interrupted run) are dropped so the CSV matches an uninterrupted run; ``None`` starts a
        new file.
    """

    def __init__(
        self, output_dir: Path, *, enabled: bool = True, resume_step: int | None = None
    ) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self._tb: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            self.rows = [
                {k: int(v) if k in ("step", "phase") else float(v) for k, v in r.items() if v}
                for r in kept
            ]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises ImportError when tensorboard is not installed
            log.warning(
                "tensorboard is not installed (pip install 's2scale[train]'); logging to %s only",
                self.path,
            )
        else:
            self._tb = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, phase: int, values: Mapping[str, float]) -> None:
        """Write one row; ``values`` keys must be in :data:`METRICS`."""
        if not self.enabled:
            return
        unknown = sorted(set(values) - set(METRICS))
        if unknown:
            raise KeyError(f"unknown metric names {unknown}; known: {list(METRICS)}")
        row = {"step": step, "phase": phase, **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=_COLUMNS).writerow(row)
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, float(value), step)
        log.debug("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in values.items()))

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
