"""Pretrained ImageNet models through torchvision's weights API and cache, tested offline: a state dict of a
randomly initialised torchvision model is placed in a temporary TORCH_HOME under the file name torchvision
itself would use, and depthlab's model must then compute torchvision's outputs."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import depthlab
from depthlab.cli import main
from depthlab.models.pretrained import (
    PRETRAINED,
    PretrainedWeightsError,
    imagenet_categories,
    pretrained_preprocessing,
    weights_path,
)

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, hash_prefix=None, progress=True):  # noqa: ANN001, ANN202
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


def _place(name: str, model: nn.Module, torch_home: Path) -> Path:
    # The file name convention of torch.hub.load_state_dict_from_url: the URL's last path component.
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = torch_home / "hub" / "checkpoints" / os.path.basename(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


def test_weights_path_is_torch_hubs_file(torch_home):
    assert weights_path("resnet50") == torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert len(imagenet_categories("resnet50")) == 1000 and imagenet_categories("resnet50")[0] == "tench"
    assert pretrained_preprocessing("googlenet").mean == (0.5, 0.5, 0.5)
    assert pretrained_preprocessing("vgg16").std == (0.229, 0.224, 0.225)
    assert set(PRETRAINED) <= set(depthlab.list_models())


def test_resnet18_from_the_cache_equals_torchvision(torch_home):
    tv = _randomise_bn(torchvision.models.resnet18(weights=None))
    _place("resnet18", tv, torch_home)
    ours = depthlab.create_model("resnet18", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert expected.abs().max() > 0.1
    assert (got - expected).abs().max() <= 1e-5


def test_googlenet_from_the_cache_drops_the_aux_heads_like_torchvision(torch_home):
    # torchvision's published GoogLeNet file holds aux heads; pretrained builds without them, as torchvision.
    tv = _randomise_bn(torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True))
    _place("googlenet", tv, torch_home)
    ours = depthlab.create_model("googlenet", pretrained=True).eval()
    assert ours.aux1 is None
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max() <= 1e-5  # tv eval mode returns the main logits only


def test_offline_without_the_file_names_it_in_one_line(torch_home):
    with pytest.raises(PretrainedWeightsError) as info:
        depthlab.create_model("resnet18", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_pretrained_refuses_unsupported_models_and_other_heads(torch_home):
    with pytest.raises(PretrainedWeightsError, match="torchvision publishes ImageNet weights for: alexnet"):
        depthlab.create_model("plain20", pretrained=True)
    with pytest.raises(ValueError, match="num_classes must be 1000"):
        depthlab.create_model("resnet18", pretrained=True, num_classes=10)


def _photo(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_explains_a_photo_with_a_pretrained_model(torch_home, tmp_path, capsys):
    tv = _randomise_bn(torchvision.models.resnet18(weights=None))
    _place("resnet18", tv, torch_home)
    photo = _photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    code = main(["attribute", "resnet18", "--pretrained", "--image", str(photo), "--methods", "gradcam,saliency",
                 "--no-sanity", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    # Top-5 names are ImageNet's, and the top one is torchvision's own prediction on the same tensor.
    from depthlab.studies.why import load_image

    prep = pretrained_preprocessing("resnet18")
    x = load_image(photo, size=224, channels=3, mean=prep.mean, std=prep.std, resize=prep.resize)
    with torch.no_grad():
        top = imagenet_categories("resnet18")[int(tv(x).argmax())]
    assert f"top-5 {top} " in printed
    assert (out / "attribution.json").is_file() and (out / "attribution.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_offline_and_unreadable_image_are_one_line_errors(torch_home, tmp_path, capsys):
    photo = _photo(tmp_path / "photo.png")
    assert (
        main(["attribute", "resnet18", "--pretrained", "--image", str(photo), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet18-f37072fd.pth" in err
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    _place("resnet18", torchvision.models.resnet18(weights=None), torch_home)
    assert (
        main(["attribute", "resnet18", "--pretrained", "--image", str(bad), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read image {bad}" in err
    assert main(["attribute", "resnet18", "--image", str(photo)]) == 2
    assert "add --pretrained" in capsys.readouterr().err
