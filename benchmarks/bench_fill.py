"""The no-data fill on real co-located pairs: does filling holes keep valid pixels near them right?

Protocol ("real co-located S2/SPOT pairs", validation sites only, as for every default): each
kept revisit of the validation sites (:mod:`s2scale.pairs.colocated`) gets synthetic holes in its
10 m input, set to 0 DN (no data) in every band: discs of 4-14 px radius ("clouds") at seeded
positions and a no-data strip along one side ("swath edge"). The default model then runs with
``s2scale.upscale``'s defaults three ways:

- ``fill``: holes filled before the network (the default, reach ``h + c`` LR px: the network's
  halo plus the projection's reach, the least that keeps chunked results equal to whole ones;
  more reach cannot change a valid pixel, which sees filled values only within ``h + c``);
- ``no fill``: holes enter the network as 0.

Scored on the valid 5 m pixels within 10 LR px of a hole (the ring a hole can affect): PSNR
against the SPOT reference, mean absolute difference from the same model's output without holes
(DN), and the band-mean bias against that output (%). Run from a clean tree::

    S2SCALE_SHARED_DATA=../shared/data python benchmarks/bench_fill.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from _record import write_record
from scipy.ndimage import distance_transform_edt

import s2scale
from s2scale.config import InferConfig
from s2scale.evaluate.data import colocated_images
from s2scale.infer import prepare_model
from s2scale.metrics import psnr

RING_PX = 10
"""Valid LR pixels within this distance of a hole are scored."""


def punch_holes(shape: tuple[int, int], seed: int) -> np.ndarray:
    """``(y, x)`` bool, True where the synthetic holes are (discs and one edge strip)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    holes = np.zeros(shape, bool)
    for _ in range(max(2, h * w // 6000)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 14)
        holes |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    side = int(rng.integers(4))
    strip = int(rng.integers(6, 16))
    edge = [np.s_[:strip, :], np.s_[-strip:, :], np.s_[:, :strip], np.s_[:, -strip:]][side]
    holes[edge] = True
    return holes


def _run(lr: xr.DataArray, model: str, **kw: Any) -> np.ndarray:
    out = s2scale.upscale(lr, model, device="cpu", chunk_px=max(lr.shape[-2:]), **kw)
    return np.asarray(out.compute(scheduler="sync").values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=InferConfig().model)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    root = Path(os.environ.get("S2SCALE_SHARED_DATA", "../shared/data")) / "worldstrat"
    t0 = time.perf_counter()
    images, info = colocated_images(root, splits=("val",))
    setup = prepare_model(args.model, bands=4, device="cpu")
    reach = setup.predictor.fill_radius_px
    variants = {
        "fill": {},
        "no fill": {"fill_nodata": False},
    }
    rows: list[dict[str, Any]] = []
    for i, im in enumerate(images):
        lr = im.lr
        holes = punch_holes(lr.shape[-2:], seed=i)
        ring = (distance_transform_edt(~holes) <= RING_PX) & ~holes
        ring_hr = ring.repeat(2, 0).repeat(2, 1)
        clean = _run(lr, args.model)
        holed = lr.copy(data=np.where(holes, 0, lr.values).astype(np.uint16))
        row: dict[str, Any] = {"image": im.name, "hole_share": round(float(holes.mean()), 3)}
        for name, kw in variants.items():
            sr = _run(holed, args.model, **kw)
            a = sr[:, ring_hr].astype(np.float64)
            ref = im.hr[:, ring_hr].astype(np.float64)
            base = clean[:, ring_hr].astype(np.float64)
            row[name] = {
                "psnr_db_vs_spot": round(psnr(a / 1e4, ref / 1e4, 1.0), 3),
                "mad_dn_vs_no_holes": round(float(np.abs(a - base).mean()), 3),
                "bias_pct_vs_no_holes": [
                    round(float(v), 3) for v in (a.mean(axis=1) / base.mean(axis=1) - 1) * 100
                ],
            }
        spot = im.hr[:, ring_hr] / 1e4
        row["no holes"] = {"psnr_db_vs_spot": round(psnr(clean[:, ring_hr] / 1e4, spot, 1.0), 3)}
        rows.append(row)
        print(row, flush=True)
    means: dict[str, Any] = {}
    for name in (*variants, "no holes"):
        means[name] = {
            k: round(float(np.mean([r[name][k] for r in rows])), 3)
            for k in rows[0][name]
            if not isinstance(rows[0][name][k], list)
        }
    fill_better = means["fill"]["mad_dn_vs_no_holes"] < means["no fill"]["mad_dn_vs_no_holes"]
    results = {
        "protocol": "real co-located S2/SPOT pairs, validation sites, synthetic holes",
        "model": args.model, "fill_reach_px": reach, "ring_px": RING_PX, "pairs": len(rows),
        "rows": rows, "means": means,
        "decision": "fill on, reach h + c" if fill_better else "fill off",
        "seconds": round(time.perf_counter() - t0, 1),
        "data": {k: v for k, v in info.items() if k != "records"},
    }  # fmt: skip
    print(means)
    if not args.no_record:
        print(write_record("fill", {"model": args.model}, results))


if __name__ == "__main__":
    main()
