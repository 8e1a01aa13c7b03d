"""The one model-spec resolver: registry names, checkpoint paths, random weights."""

from __future__ import annotations

import pytest

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models import ModelSpec, model_name, resolve_model, weights_path
from s2scale.models import spec as model_spec


def test_checkpoint_path_resolves_to_its_header(tiny_ckpt):
    spec = resolve_model(tiny_ckpt)
    assert spec == resolve_model(str(tiny_ckpt))
    assert (spec.name, spec.arch, spec.scale) == ("tiny", "srvgg", 2)
    assert spec.bands == ("blue", "green", "red", "nir")
    assert spec.checkpoint == str(tiny_ckpt.resolve()) and not spec.random_weights
    assert spec.kwargs == {"num_feat": 8, "num_conv": 2} and spec.parameters > 0
    assert resolve_model(spec) is spec
    assert model_name(tiny_ckpt) == model_name(spec) == "tiny"


def test_registry_name_uses_the_shipped_weights(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(model_spec, "weights_path", lambda name: tiny_ckpt)
    spec = resolve_model("srresnet")  # the registry name wins; the checkpoint says srvgg
    assert spec.name == "srresnet" and spec.checkpoint == str(tiny_ckpt.resolve())
    monkeypatch.setattr(model_spec, "weights_path", lambda name: tmp_path / f"{name}.pt")
    with pytest.raises(CheckpointError, match=r"no checkpoint for model 'esrgan'.*model=PATH"):
        resolve_model("esrgan")


def test_random_weights():
    spec = resolve_model("srvgg", random_weights=True)
    assert spec == ModelSpec(name="srvgg", arch="srvgg", checkpoint=None, bands=None, scale=2)
    assert spec.random_weights


def test_bad_specs_name_the_fix(tiny_ckpt, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown model 'srgan'.*srresnet.*\*\.pt"):
        resolve_model("srgan")
    with pytest.raises(ConfigError, match="needs a registry name"):
        resolve_model(tiny_ckpt, random_weights=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model(tmp_path / "nope.pt")


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(CheckpointError) as err:
        resolve_model(text)
    message = str(err.value)
    assert str(text) in message and "not a file written by torch.save" in message
    assert "registry name" in message and "s2scale train" in message
    assert "list index" not in message


def test_weights_path_is_the_package_folder():
    assert weights_path("srresnet").parent.name == "weights"
    assert weights_path("srresnet").parent.parent.name == "s2scale"
