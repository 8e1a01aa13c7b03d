"""Fixtures for the model tests: tiny generator configs (`device` is in tests/conftest.py)."""

from __future__ import annotations

import pytest

# Tiny constructor kwargs per registry name (style guide: num_feat=4..8, num_block=1).
TINY_KWARGS: dict[str, dict] = {
    "srcnn": {"num_feat": 8, "num_feat_map": 4},
    "srresnet": {"num_feat": 8, "num_block": 1},
    "esrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "srvgg": {"num_feat": 8, "num_conv": 1},
}


@pytest.fixture
def tiny_kwargs() -> dict[str, dict]:
    """Tiny constructor kwargs by generator name (a fresh copy per test)."""
    return {name: dict(kwargs) for name, kwargs in TINY_KWARGS.items()}
