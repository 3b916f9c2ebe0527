"""load_torchvision_weights: randomly initialised torchvision models and ours give the same outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import depthlab
from depthlab.models import GoogLeNetOutputs
from depthlab.models.torchvision_compat import torchvision_key_map

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


# (depthlab name, depthlab kwargs, torchvision kwargs, input side: the smallest the model accepts, assign).
# VGG is built on the meta device and loaded with assign=True: its 120M-weight head is never initialised.
PARITY = [
    ("alexnet", {}, {}, 63, False),
    ("vgg11_bn", {}, {}, 32, True),
    ("resnet18", {}, {}, 32, False),
    ("resnet50", {}, {}, 32, False),
    ("googlenet", {"variant": "torchvision", "aux_logits": False}, {"aux_logits": False}, 15, False),
    ("googlenet", {"variant": "torchvision"}, {"aux_logits": True}, 15, False),
]


def random_torchvision(name: str, num_classes: int = 10, **kwargs: object) -> nn.Module:
    """torchvision's ``name`` with every tensor random, BN running statistics included.

    Built on the meta device and filled in place: VGG's 100M-weight classifier costs one fill, not an init.
    """
    g = torch.Generator().manual_seed(1)
    if name == "googlenet":
        kwargs.setdefault("init_weights", False)
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(num_classes=num_classes, **kwargs)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=g)
                module.bias.normal_(0.0, 0.2, generator=g)
                module.running_mean.normal_(0.0, 0.2, generator=g)
                module.running_var.uniform_(0.5, 2.0, generator=g)
                module.num_batches_tracked.zero_()
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)  # He init: outputs stay O(1)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1, generator=g)
    return model.eval()


@pytest.mark.parametrize(("name", "kwargs", "tv_kwargs", "side", "assign"), PARITY)
def test_outputs_equal_torchvision(
    name: str, kwargs: dict[str, object], tv_kwargs: dict[str, object], side: int, assign: bool
) -> None:
    tv = random_torchvision(name, **tv_kwargs)
    with torch.device("meta" if assign else "cpu"):
        ours = depthlab.create_model(name, num_classes=10, **kwargs).eval()
    assert depthlab.load_torchvision_weights(ours, tv.state_dict(), assign=assign) is ours
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert expected.abs().max() > 0.1  # a meaningful comparison, not two vectors of zeros
    assert (got - expected).abs().max() <= 1e-5


def test_googlenet_training_outputs_and_aux_order() -> None:
    tv = random_torchvision("googlenet", aux_logits=True)
    ours = depthlab.create_model("googlenet", num_classes=10, variant="torchvision")
    depthlab.load_torchvision_weights(ours, tv.state_dict())
    for model in (tv, ours):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.eval()  # deterministic; batch norm keeps its training-mode batch statistics
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits, tv_aux2, tv_aux1 = tv(x)  # torchvision's order
        out = ours(x)
    assert isinstance(out, GoogLeNetOutputs)
    for a, b in ((out.logits, logits), (out.aux1, tv_aux1), (out.aux2, tv_aux2)):
        assert (a - b).abs().max() <= 1e-5


def test_googlenet_without_aux_ignores_the_checkpoints_aux_heads() -> None:
    tv = random_torchvision("googlenet", aux_logits=True)
    ours = depthlab.create_model("googlenet", num_classes=10, variant="torchvision", aux_logits=False)
    depthlab.load_torchvision_weights(ours, tv.state_dict())
    # ...but a model with aux heads needs them.
    tv_no_aux = random_torchvision("googlenet", aux_logits=False)
    with_aux = depthlab.create_model("googlenet", num_classes=10, variant="torchvision")
    with pytest.raises(ValueError, match=r"missing \d+ key\(s\): aux1\.conv\.conv\.weight"):
        depthlab.load_torchvision_weights(with_aux, tv_no_aux.state_dict())


@pytest.mark.parametrize(
    "name", ["alexnet", "vgg13", "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
)
def test_key_map_covers_every_tensor_of_torchvision(name: str) -> None:
    with torch.device("meta"):
        ours = depthlab.create_model(name)
        tv = getattr(torchvision.models, name)()
    names = torchvision_key_map(ours)
    assert sorted(names.values()) == sorted(tv.state_dict())
    tv_sd, our_sd = tv.state_dict(), ours.state_dict()
    assert all(our_sd[k].shape == tv_sd[v].shape for k, v in names.items())


def test_mismatch_names_missing_unexpected_and_shapes() -> None:
    ours = depthlab.create_model("resnet18", num_classes=10)
    sd = random_torchvision("resnet18", num_classes=1000).state_dict()
    del sd["layer2.1.conv2.weight"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        depthlab.load_torchvision_weights(ours, sd)
    msg = str(err.value)
    assert "missing 1 key(s): layer2.1.conv2.weight" in msg
    assert "unexpected 1 key(s): layer5.0.conv1.weight" in msg
    assert "fc.weight (checkpoint (1000, 512), model (10, 512))" in msg


def test_wrong_architecture_names_torchvision_keys() -> None:
    ours = depthlab.create_model("resnet34", num_classes=10)
    with pytest.raises(ValueError, match=r"missing \d+ key\(s\): layer1\.2\.conv1\.weight"):
        depthlab.load_torchvision_weights(ours, random_torchvision("resnet18").state_dict())


def test_checkpoint_without_num_batches_tracked_loads() -> None:
    tv = random_torchvision("resnet18")
    sd = {k: v for k, v in tv.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = depthlab.create_model("resnet18", num_classes=10).eval()
    depthlab.load_torchvision_weights(ours, sd)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max() <= 1e-5


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("googlenet", {}, "variant='torchvision'"),
        ("alexnet", {"variant": "paper"}, "variant='torchvision'"),
        ("vgg11", {"head": "small"}, "head='imagenet'"),
        ("resnet50", {"stride_on": "1x1"}, "stride_on='3x3'"),
        ("plain18", {}, "PlainBasicBlock"),
        ("preact_resnet18", {}, "PreActBlock"),
        ("resnet20", {}, "stem='imagenet'"),
        ("alexnet", {"norm": "batch"}, "no torchvision counterpart"),
        ("vgg16c", {}, "no VGG configuration 'C'"),  # same keys as vgg16, but 1×1 convs
        ("vgg11_lrn", {}, "no VGG configuration 'A-LRN'"),  # vgg11's weights would load silently
        ("resnet18", {"skipinit": True}, "skipinit=False"),
    ],
)
def test_unsupported_options_are_named(name: str, kwargs: dict[str, object], match: str) -> None:
    with torch.device("meta"):
        ours = depthlab.create_model(name, **kwargs)
    with pytest.raises(ValueError, match=match):
        torchvision_key_map(ours)


def test_bad_arguments_are_type_errors() -> None:
    with torch.device("meta"):
        ours = depthlab.create_model("resnet18")
        tv = torchvision.models.resnet18()
    with pytest.raises(TypeError, match="state_dict"):
        depthlab.load_torchvision_weights(ours, tv)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="supports AlexNet, VGG, ResNet, GoogLeNet"):
        depthlab.load_torchvision_weights(nn.Linear(2, 2), {})
