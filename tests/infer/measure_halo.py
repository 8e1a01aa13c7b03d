"""Measure the effective receptive field of the registry generators (the halo ``infer`` needs).

Run: ``python tests/infer/measure_halo.py [--full] [--train-steps N] [--checkpoint PATH]``.
For each generator it prints, per halo ``h`` (LR px), the largest difference in DN (reflectance
x 10000) between the output of an LR crop holding the core plus ``h`` px of context on every side
(zero-padded by the network at the crop edge, exactly what a sub-tile or chunk sees) and the
output of the whole image, over the core's HR pixels. The smallest ``h`` with a difference
< 0.5 DN gives tiled == whole within 1 DN after rounding. It also prints the radius holding
99.9 % of the input-gradient mass of a centre output pixel. Input: a fixed-seed synthetic field
(smooth terrain + sharp parcels), reflectance 0.01-0.6. ``--train-steps`` first trains each net
briefly (L1, Adam) on such fields downsampled 2x2, to compare random init with a (tiny-)trained
net. Results are tabulated in :mod:`s2scale.infer.tiling`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from s2scale.models import build_generator, load_generator

FULL = {
    "srcnn": {},
    "srresnet": {},
    "esrgan": {},
    "realesrgan": {},
    "srvgg": {},
}
SMALL = {
    "srcnn": {"num_feat": 16, "num_feat_map": 8},
    "srresnet": {"num_feat": 16, "num_block": 4},
    "esrgan": {"num_feat": 16, "num_block": 2, "num_grow_ch": 8},
    "realesrgan": {"num_feat": 16, "num_block": 2, "num_grow_ch": 8},
    "srvgg": {"num_feat": 16, "num_conv": 8},
}


def field(size: int, seed: int, bands: int = 4) -> np.ndarray:
    """Synthetic reflectance (bands, size, size) float32 in [0.01, 0.6]."""
    rng = np.random.default_rng(seed)
    out = np.empty((bands, size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for b in range(bands):
        noise = rng.standard_normal((size // 8 + 2, size // 8 + 2))
        smooth = np.kron(noise, np.ones((8, 8)))[:size, :size]
        img = 0.2 + 0.05 * smooth
        for _ in range(size // 4):  # sharp parcels
            y0, x0 = rng.integers(0, size, 2)
            h, w = rng.integers(2, 12, 2)
            img[(yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)] = rng.uniform(0.02, 0.5)
        img += 0.01 * rng.standard_normal((size, size))
        out[b] = np.clip(img, 0.01, 0.6)
    return out


def train(net: torch.nn.Module, steps: int, seed: int = 0) -> None:
    """A few Adam steps of L1 on (2x2-mean LR, HR) pairs of synthetic fields."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for step in range(steps):
        hr = torch.from_numpy(np.stack([field(64, seed + 1000 + step * 8 + i) for i in range(8)]))
        lr = F.avg_pool2d(hr, 2)
        loss = (net(lr) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


@torch.inference_mode()
def crop_errors(
    net: torch.nn.Module, halos: list[int], core: int = 8, seed: int = 1
) -> list[float]:
    """Max |crop - whole| in DN over the core's HR pixels, per halo."""
    size = 2 * max(halos) + core + 32
    x = torch.from_numpy(field(size, seed))[None]
    whole = net(x)[0] * 10000
    s = whole.shape[-1] // size
    c0 = (size - core) // 2
    errs = []
    for h in halos:
        crop = x[..., c0 - h : c0 + core + h, c0 - h : c0 + core + h]
        out = net(crop)[0] * 10000
        sub = out[..., h * s : (h + core) * s, h * s : (h + core) * s]
        ref = whole[..., c0 * s : (c0 + core) * s, c0 * s : (c0 + core) * s]
        errs.append(float((sub - ref).abs().max()))
    return errs


def grad_radius(net: torch.nn.Module, size: int = 96, frac: float = 0.999) -> int:
    """Chebyshev radius (LR px) holding ``frac`` of |d out_centre / d input|."""
    x = torch.from_numpy(field(size, 2))[None].requires_grad_(True)
    out = net(x)
    c = out.shape[-1] // 2
    out[0, :, c, c].sum().backward()
    g = x.grad[0].abs().sum(0).numpy()
    cy = size // 2
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.maximum(abs(yy - cy), abs(xx - cy))
    total = g.sum()
    for r in range(size // 2 + 1):
        if g[dist <= r].sum() >= frac * total:
            return r
    return size // 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="default (paper-size) nets")
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--arch", nargs="*", default=list(FULL))
    parser.add_argument("--checkpoint", help="measure this s2scale checkpoint (4 bands)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    halos = list(range(0, 42, 2))
    sizes = FULL if args.full else SMALL
    for arch in [args.checkpoint] if args.checkpoint else args.arch:
        t0 = time.perf_counter()
        if args.checkpoint:
            net = load_generator(args.checkpoint, "cpu")
        else:
            net = build_generator(arch, bands=4, scale=2, seed=0, **sizes[arch]).eval()
        if args.train_steps:
            train(net, args.train_steps)
        errs = crop_errors(net, halos)
        ok = next((h for h, e in zip(halos, errs, strict=True) if e < 0.5), None)
        rad = grad_radius(net)
        tag = "checkpoint" if args.checkpoint else "full" if args.full else "small"
        print(
            f"{arch:10s} {tag} steps={args.train_steps}: halo for <0.5 DN = {ok}; "
            f"99.9% grad radius = {rad}; t={time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        print("   " + " ".join(f"h{h}:{e:.2g}" for h, e in zip(halos, errs, strict=True)))


if __name__ == "__main__":
    main()
