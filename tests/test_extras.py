"""A command or loader that needs an extra names the `pip install 's2scale[...]'` to run."""

from __future__ import annotations

import sys

import pytest
import torch
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.errors import MissingExtraError, S2ScaleError
from s2scale.extras import EXTRA_MODULES, check_extra, import_extra


def _hide(monkeypatch, *modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import raises, find_spec gives None


def test_error_names_the_extra(monkeypatch):
    check_extra("train", "the tests")  # the test environment has every extra
    _hide(monkeypatch, "lpips")
    with pytest.raises(
        MissingExtraError, match=r"LPIPS needs .*'lpips'.*pip install 's2scale\[eval\]'"
    ):
        import_extra("lpips", "eval", "LPIPS")
    with pytest.raises(ImportError, match=r"s2scale\[eval\]"):  # also an ImportError
        check_extra("eval", "scoring")
    assert issubclass(MissingExtraError, S2ScaleError)
    assert set(EXTRA_MODULES["eval"]) <= set(EXTRA_MODULES["train"])


def test_loaders_name_the_extra(monkeypatch):
    from s2scale.models import backbones
    from s2scale.train import degradations

    _hide(monkeypatch, "stlpips_pytorch", "stlpips_pytorch.stlpips", "lpips", "torchvision.io")
    with pytest.raises(MissingExtraError, match=r"ST-LPIPS.*s2scale\[eval\]"):
        backbones.load_stlpips("alex")
    with pytest.raises(MissingExtraError, match=r"LPIPS.*s2scale\[eval\]"):
        backbones.load_lpips_module("alex", random_backbone=True)
    with pytest.raises(MissingExtraError, match=r"JPEG.*s2scale\[train\]"):
        degradations._jpeg(torch.rand(1, 3, 8, 8), torch.Generator(), (90.0, 95.0))


@pytest.mark.parametrize(
    ("args", "hidden", "extra"),
    [
        (["demo", "--out", "demo"], "stlpips_pytorch", "eval"),
        (["evaluate", "--lr", "lr.tif", "--out", "o"], "lpips", "eval"),
        (["train", "--config", "srresnet", "--out", "w"], "tensorboard", "train"),
    ],
)
def test_commands_stop_before_any_work(monkeypatch, tmp_path, args, hidden, extra):
    _hide(monkeypatch, hidden)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr.tif").write_bytes(b"")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"pip install 's2scale[{extra}]'" in result.output and hidden in result.output
    assert not (tmp_path / "demo").exists()
