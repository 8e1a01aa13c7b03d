"""Fixtures for the inference tests (helpers live in infer_helpers.py)."""

from __future__ import annotations

import pytest
from infer_helpers import BANDS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init SRResNet (num_feat=8, num_block=2, seed 0) saved as an s2scale checkpoint.

    The last bias is shifted by 0.25 (2500 DN) so that outputs sit inside the uint16 range instead
    of being clipped at 1, which would hide differences.
    """
    import torch

    from s2scale.models import build_generator, save_checkpoint

    net = build_generator("srresnet", bands=4, scale=2, seed=0, num_feat=8, num_block=2)
    with torch.no_grad():
        net.conv_last.bias += 0.25
    path = tmp_path_factory.mktemp("ckpt") / "tiny_srresnet.pt"
    save_checkpoint(path, net, bands=BANDS, normalization={"offset": 0.0, "scale": 10000.0})
    return str(path)
