import numpy as np
import pytest


@pytest.fixture
def image():
    return np.random.default_rng(0).random((4, 32, 32))


@pytest.fixture
def no_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("S2SCALE_WEIGHTS", str(tmp_path / "weights"))
