"""The README's model table is generated from the registry; it must not drift."""

from __future__ import annotations

import re
from pathlib import Path

from depthlab.cli.models import markdown_table
from depthlab.registry import describe_models

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    head = text[: text.index("## ", text.index("make test"))]
    assert "make demo" in head and "make test" in head


def test_readme_model_table_is_current() -> None:
    text = README.read_text()
    match = re.search(r"<!-- models:start -->\n(.*?)\n<!-- models:end -->", text, re.S)
    assert match, "README.md lacks the <!-- models:start --> ... <!-- models:end --> block"
    expected = markdown_table(describe_models())
    assert match.group(1).strip() == expected, (
        "README model table is out of date: regenerate it with `depthlab models --markdown`"
    )


def test_readme_states_the_measured_resnet50_table1_macs() -> None:
    # The Analysis section quotes the measured ResNet-50 MACs next to the paper's 3.8 G (see
    # test_analysis.py::test_resnet50_table1_macs_against_the_published_3_8 for why they differ).
    import torch

    import depthlab
    from depthlab.analysis import summarize

    with torch.device("meta"):
        model = depthlab.create_model("resnet50", stride_on="1x1")
    gmacs = summarize(model, (3, 224, 224)).macs / 1e9
    text = " ".join(README.read_text().split())
    assert f"ResNet-50 measures {gmacs:.2f} G against the published 3.8" in text
