from __future__ import annotations

import pytest
import torch

import depthlab
from depthlab.registry import describe_models, model_info


def test_list_models_patterns() -> None:
    names = depthlab.list_models()
    assert len(names) == len(set(names))
    assert depthlab.list_models("resnet2*") == ["resnet20"]
    assert set(depthlab.list_models("plain*")) == {
        f"plain{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110, 1202)
    }
    assert depthlab.list_models("nothing-like-this*") == []


def test_unknown_model_names_the_closest() -> None:
    with pytest.raises(ValueError, match="resnet50") as err:
        depthlab.create_model("resnet5O")
    assert "resnet5O" in str(err.value)


def test_unknown_kwarg_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="bogus") as err:
        depthlab.create_model("resnet20", bogus=1)
    assert "shortcut" in str(err.value)


def test_user_kwargs_override_builder_defaults() -> None:
    m = depthlab.create_model("resnet20", num_classes=10, shortcut="B")
    proj = [n for n, _ in m.named_modules() if n.endswith("shortcut.conv")]
    assert len(proj) == 2  # the two downsampling blocks now project


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_num_classes(bad: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        depthlab.create_model("resnet20", num_classes=bad)


def test_describe_models_uses_meta_and_counts() -> None:
    (row,) = describe_models("resnet18")
    assert row.params == 11_689_512 and row.family == "resnet" and row.default_input == (3, 224, 224)
    assert model_info("resnet20").default_input == (3, 32, 32)


def test_every_model_has_the_shared_surface() -> None:
    for name in depthlab.list_models():
        with torch.device("meta"):
            m = depthlab.create_model(name, num_classes=10)
        for attr in ("stem", "stages", "head", "feature_info", "min_input_size"):
            assert hasattr(m, attr), (name, attr)
        assert callable(m.forward_features) and callable(m.forward_head)
        reductions = [f.reduction for f in m.feature_info]
        assert reductions == sorted(reductions), name
