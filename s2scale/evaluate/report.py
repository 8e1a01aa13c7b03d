"""Files of ``s2scale evaluate``: ``report.json``, ``report.md``, ``crops.png``, ``metrics.png``.

Figures are drawn with Pillow (already needed by the quicklooks), so no plotting library is
required.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2scale.errors import ConfigError

__all__ = ["METRIC_COLUMNS", "choose_crops", "crops_figure", "markdown", "metrics_figure"]

METRIC_COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("psnr_db", "PSNR (dB)", True),
    ("ssim", "SSIM", True),
    ("lpips", "LPIPS", False),
    ("stlpips", "ST-LPIPS", False),
    ("bias_max_abs_pct", "max abs bias (%)", False),
    ("spectral_angle_deg", "SAM (deg)", False),
    ("consistency_psnr_db", "consistency PSNR (dB)", True),
    ("spectral_angle_vs_lr_deg", "SAM vs input (deg)", False),
    ("hf_energy_ratio", "HF energy / bicubic", None),
)
"""``(key, column title, higher is better)`` of the table and of ``metrics.png``; ``None``: no
direction (more high-frequency energy is detail or noise; compare with the reference's)."""


def _fmt(value: Any, key: str = "") -> str:
    """A table cell."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(f"{v:+.2f}" for v in value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf"
        digits = 2 if key.endswith(("_db", "_deg")) else 3 if key.endswith("_pct") else 4
        return f"{value:.{digits}f}"
    return str(value)


def _title(key: str, perceptual: Mapping[str, Any] | None) -> str:
    """Column title; the perceptual column carries the metric's full label."""
    if key in ("lpips", "stlpips") and perceptual:
        return str(perceptual["label"])
    return dict((k, t) for k, t, _ in METRIC_COLUMNS)[key]


def _table(
    models: Mapping[str, Mapping[str, Any]], perceptual: Mapping[str, Any] | None
) -> list[str]:
    """Markdown table of the models' scores (columns present in any row)."""
    keys = [k for k, _, _ in METRIC_COLUMNS if any(k in m for m in models.values())]
    has_bias = any("bias_pct" in m for m in models.values())
    head = ["model", *(_title(k, perceptual) for k in keys)]
    if has_bias:
        head.append("bias per band (%, b/g/r/nir)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in models.items():
        cells = [name]
        for k in keys:
            cell = _fmt(row.get(k), k)
            if f"{k}_std" in row:
                cell += f" ± {_fmt(row[f'{k}_std'], k)}"
            cells.append(cell)
        if has_bias:
            cells.append(_fmt(row.get("bias_pct")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: what was scored, how, and the table(s)."""
    data, p = report["data"], report.get("perceptual")
    lines = ["# s2scale evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in data.items()
              if k not in ("splits", "records", "sites") and v is not None]  # fmt: skip
    if data.get("records"):
        kept = sum(not r.get("dropped") for r in data["records"])
        by_split = {s: ", ".join(sorted(n for n, v in data["sites"].items() if v == s))
                    for s in ("train", "val", "test")}  # fmt: skip
        lines.append(f"- pairs: {kept} of {len(data['records'])} kept; sites by split: "
                     + "; ".join(f"{s}: {names}" for s, names in by_split.items()))  # fmt: skip
    if p:
        lines.append(f"- perceptual metric: {p['label']}; backbone: {p['backbone']}; "
                     f"{p['input']}")  # fmt: skip
    lines.append(f"- scores: {report['notes']['scores']}")
    if report.get("skipped"):
        lines.append("- skipped: " + "; ".join(f"{k} ({v})" for k, v in report["skipped"].items()))
    lines += ["", *_table(report["models"], p), ""]
    if report.get("reference"):
        ratio = report["reference"]["hf_energy_ratio"]
        lines += [f"The reference's own HF energy / bicubic: {_fmt(ratio)} (more in an output "
                  "than in the reference is added noise or invented detail).", ""]  # fmt: skip
    for split, part in (report.get("splits") or {}).items():
        lines += [f"## split `{split}` ({part['n']} patches)", "", *_table(part["models"], p), ""]
    if report.get("sites"):
        lines += _site_table(report["sites"], p)
    cards = report.get("model_cards", {})
    if any(c.get("parameters") for c in cards.values()):
        lines += ["## models", "", "| model | arch | parameters | file (MB) | card |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, c in cards.items():
            lines.append(f"| {name} | {c.get('arch')} | {c.get('parameters', 0):,} | "
                         f"{c.get('size_mb', '-')} | {c.get('card_title') or '-'} |")  # fmt: skip
        lines.append("")
    lines += [f"Figures: {report['files']['crops']} (crops), {report['files']['metrics']} (bars).",
              ""]  # fmt: skip
    return "\n".join(lines)


def _site_table(sites: Mapping[str, Any], p: Mapping[str, Any] | None) -> list[str]:
    """Per-site PSNR (and perceptual) of every model, one row per site."""
    names = list(next(iter(sites.values()))["models"])
    key = p["metric"] if p else None
    head = "| site | split | pairs | " + " | ".join(names) + " |"
    lines = ["## per site: PSNR dB" + (f" / {key}" if key else ""), "", head,
             "|---|---|---|" + "---|" * len(names)]  # fmt: skip
    for site, part in sites.items():
        cells = []
        for n in names:
            m = part["models"][n]
            cell = _fmt(m.get("psnr_db"), "psnr_db")
            if key and key in m:
                cell += f" / {_fmt(m[key], key)}"
            cells.append(cell)
        lines.append(f"| {site} | {part['split']} | {part['n']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_json(report: Mapping[str, Any], path: Path) -> None:
    """``report.json`` (non-finite floats written as strings ``"inf"``)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return str(obj)
        if isinstance(obj, Mapping):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        return obj

    path.write_text(json.dumps(clean(report), indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------ figures
def choose_crops(image: np.ndarray, n: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``n`` non-overlapping ``size`` crops with the most texture.

    Texture is the standard deviation of the RGB mean (bands 0-2) in each crop, on a grid of
    candidates ``size // 2`` apart; crops with no data (0) are skipped.

    Examples
    --------
    >>> img = np.zeros((3, 64, 64)) + 1
    >>> img[:, 32:, 32:] += np.random.default_rng(0).random((3, 32, 32)) - 0.5
    >>> choose_crops(img, 1, 32)
    [(32, 32)]
    """
    lum = np.asarray(image[:3], np.float64).mean(axis=0)
    ok = np.all(np.asarray(image) > 0, axis=0)
    h, w = lum.shape
    if n <= 0 or h < size or w < size:
        return []
    step = max(1, size // 2)
    cands = []
    for r in sorted({*range(0, h - size + 1, step), h - size}):
        for c in sorted({*range(0, w - size + 1, step), w - size}):
            if ok[r : r + size, c : c + size].all():
                cands.append((float(lum[r : r + size, c : c + size].std()), r, c))
    chosen: list[tuple[int, int]] = []
    for _, r, c in sorted(cands, reverse=True):
        if all(abs(r - r2) >= size or abs(c - c2) >= size for r2, c2 in chosen):
            chosen.append((r, c))
        if len(chosen) == n:
            break
    return chosen


def _rgb8(img: np.ndarray, lo: float, hi: float, zoom: int) -> np.ndarray:
    """``(y, x, 3)`` uint8 of bands red, green, blue (indices 2, 1, 0), stretched and zoomed."""
    rgb = np.asarray(img, np.float32)[[2, 1, 0]]
    out = np.clip((rgb - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
    return out.repeat(zoom, axis=1).repeat(zoom, axis=2).transpose(1, 2, 0)


def crops_figure(
    titles: Sequence[str],
    rows: Sequence[Sequence[np.ndarray]],
    path: Path,
    *,
    zoom: int = 2,
) -> Path:
    """``crops.png``: one row per crop, one column per image, titles on top.

    Each row holds ``len(titles)`` equally sized ``(band, s, s)`` DN crops (the LR repeated to
    the output grid first). A row is stretched from the 2nd to the 98th percentile of its last
    crop's RGB (the reference, or the last model), the same for every crop of the row.
    """
    from PIL import Image, ImageDraw

    if not titles:
        raise ConfigError("crops_figure needs at least one column")
    size = max((r[0].shape[-1] for r in rows), default=32)
    tile, gap, title_px = size * zoom, 4, 18
    width = len(titles) * tile + (len(titles) - 1) * gap
    canvas = Image.new("RGB", (width, title_px + max(len(rows), 1) * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(titles):
        draw.text((j * (tile + gap) + 2, 3), str(title)[: max(tile // 6, 4)], fill="black")
    for i, crops in enumerate(rows):
        if len(crops) != len(titles):
            raise ConfigError(f"row {i} has {len(crops)} crops for {len(titles)} titles")
        ref = np.asarray(crops[-1], np.float32)[[2, 1, 0]]
        lo, hi = np.percentile(ref[ref > 0], (2, 98)) if (ref > 0).any() else (0.0, 1.0)
        for j, crop in enumerate(crops):
            arr = _rgb8(crop, float(lo), float(hi), zoom)
            canvas.paste(Image.fromarray(np.ascontiguousarray(arr), "RGB"),
                         (j * (tile + gap), title_px + i * (tile + gap)))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def metrics_figure(
    models: Mapping[str, Mapping[str, Any]],
    path: Path,
    *,
    perceptual: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    title: str = "",
) -> Path:
    """``metrics.png``: one panel of horizontal bars per metric, one bar per model.

    The best model of each panel is drawn dark; each title says whether higher or lower is
    better, or gives the reference's value (``reference``, e.g. its ``hf_energy_ratio``).
    """
    from PIL import Image, ImageDraw

    reference = reference or {}
    keys = [(k, t, up) for k, t, up in METRIC_COLUMNS if any(
        isinstance(m.get(k), float) and math.isfinite(m[k]) for m in models.values())]  # fmt: skip
    names = list(models)
    panel_w, bar_h, label_w, pad = 380, 16, 120, 10
    panel_h = 28 + len(names) * (bar_h + 4) + pad
    per_row = 3
    n_rows = max(1, math.ceil(len(keys) / per_row))
    head = 22 if title else 4
    canvas = Image.new("RGB", (per_row * panel_w, head + n_rows * panel_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 5), title, fill="black")
    for p, (key, name, up) in enumerate(keys):
        x0, y0 = (p % per_row) * panel_w, head + (p // per_row) * panel_h
        label = _title(key, perceptual) if key in ("lpips", "stlpips") else name
        if up is None:
            hint = f"reference: {_fmt(reference[key], key)}" if key in reference else "no best"
        else:
            hint = f"{'higher' if up else 'lower'} is better"
        draw.text((x0 + 6, y0 + 4), f"{label} ({hint})", fill="black")
        values = {n: models[n].get(key) for n in names}
        finite = [v for v in values.values() if isinstance(v, float) and math.isfinite(v)]
        lo = min(0.0, *finite)
        hi = max(*finite, lo + 1e-9) if len(finite) > 1 else max(finite[0], lo + 1e-9)
        best = None if up is None else (max if up else min)(finite)
        span = panel_w - label_w - 70
        for i, n in enumerate(names):
            y = y0 + 24 + i * (bar_h + 4)
            draw.text((x0 + 6, y + 2), n[:18], fill="black")
            v = values[n]
            if not (isinstance(v, float) and math.isfinite(v)):
                draw.text((x0 + label_w, y + 2), "-", fill="black")
                continue
            length = int(span * (v - lo) / (hi - lo)) if hi > lo else 0
            colour = (40, 70, 140) if v == best else (150, 170, 210)
            draw.rectangle([x0 + label_w, y, x0 + label_w + max(length, 1), y + bar_h], fill=colour)
            draw.text((x0 + label_w + max(length, 1) + 4, y + 2), _fmt(v, key), fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
