"""Tensors made on one device meeting tensors on another: checked on the CPU, where such a bug is invisible.

Issue 21: every study crashed on a GPU in ``spectral_slope``, where ``torch.hann_window(n)`` (a CPU tensor)
multiplied a signal on cuda:0. On the CPU the default device is the model's device, so no CPU test could see
it. Two checks that can, on any machine:

* static (:mod:`device_check`): every torch tensor factory in the code that meets model tensors (analysis,
  studies, report, cli) names its device, and ``.numpy()`` is only called on ``.cpu()``'s result;
* dynamic: each analysis runs with its model and inputs on the CPU while the *default* device is ``meta``
  (``with torch.device("meta")``). A factory without ``device=`` then makes a meta tensor, and the first
  operation that mixes it with the CPU tensors fails, as a CPU tensor meeting a CUDA one does on a GPU.

Both are shown to catch the original ``hann_window`` line, re-introduced into a temporary copy of the module.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from depthlab.analysis import attribution, evaluation, gradients, landscape, lesion, paths, shattered
from depthlab.analysis.evaluation import EvalResult
from depthlab.models.resnet import ResNet
from device_check import check_source, violations

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "depthlab"
# The code that meets model tensors. data/ and train/ move their host tensors to the device explicitly
# (their loaders and trainer are tested on the GPU by test_gpu.py); models/ and layers.py make parameters,
# which follow the module's .to().
CHECKED = ("analysis", "studies", "report", "cli", "present", "stats.py")
# (path, function, call) → why it cannot name a device. Empty: every CPU-only site says device="cpu" at the
# line, with its reason in a comment there.
ALLOWED: dict[tuple[str, str, str], str] = {}

# spectral_slope's lines before and after the fix (the original: git show 5a3f8ab:src/depthlab/analysis/shattered.py).
ORIGINAL_LINE = "x = (x - x.mean()) * torch.hann_window(x.numel(), periodic=False, dtype=torch.float64)"
ORIGINAL = f"""    {ORIGINAL_LINE}
    power = torch.fft.rfft(x).abs() ** 2
    k = torch.arange(1, power.numel(), dtype=torch.float64)
"""
FIXED = """    # The window and the frequencies live on the signal's device (a CUDA signal on a GPU run).
    window = torch.hann_window(x.numel(), periodic=False, dtype=torch.float64, device=x.device)
    x = (x - x.mean()) * window
    power = torch.fft.rfft(x).abs() ** 2
    k = torch.arange(1, power.numel(), dtype=torch.float64, device=x.device)
"""

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ static
def test_every_tensor_factory_that_meets_model_tensors_names_its_device() -> None:
    paths = [PACKAGE / part for part in CHECKED]
    files = [f for p in paths for f in (p.rglob("*.py") if p.is_dir() else [p])]
    assert len(files) > 40  # the walk found the packages (an empty walk would pass anything)
    bad, stale = violations(files, SRC, ALLOWED)
    assert not bad, "tensors made without a device:\n" + "\n".join(map(str, bad))
    assert not stale, f"allow-list entries that match no call any more: {stale}"


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("w = torch.hann_window(n)", ["torch.hann_window"]),
        ("w = torch.hann_window(n, device=x.device)", []),
        ("k = torch.fft.rfftfreq(n)", ["torch.fft.rfftfreq"]),
        ("g = torch.Generator().manual_seed(0)", ["torch.Generator"]),
        ("g = torch.Generator(device='cpu')", []),
        ("z = torch.zeros_like(x)", []),  # inherits x's device
        ("z = x.new_zeros(3)", []),
        ("a = x.numpy()", [".numpy()"]),
        ("a = x.detach().cpu().numpy()", []),
        ("a = np.zeros(3)", []),  # NumPy is the host's
    ],
)
def test_the_checker_flags_factories_without_a_device(line: str, flagged: list[str]) -> None:
    source = f"import numpy as np\nimport torch\n\ndef f(x, n):\n    {line}\n"
    assert [v.call for v in check_source(source)] == flagged


def test_the_checker_follows_import_aliases() -> None:
    source = (
        "import torch as T\nfrom torch import arange as ar\nfrom torch.fft import rfftfreq\n"
        "def f(n):\n    return T.ones(n), ar(n), rfftfreq(n), T.ones(n, device='cpu')\n"
    )
    found = check_source(source, "m.py")
    assert [(v.call, v.function, v.line) for v in found] == [
        ("torch.ones", "f", 5), ("torch.arange", "f", 5), ("torch.fft.rfftfreq", "f", 5)
    ]  # fmt: skip


def test_the_allow_list_exempts_named_sites_and_reports_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import torch\n\ndef draw(n):\n    return torch.randperm(n)\n")
    files = [tmp_path / "m.py"]
    bad, stale = violations(files, tmp_path)
    assert [str(v) for v in bad] == ["m.py:4 in draw: torch.randperm without device="]
    bad, stale = violations(files, tmp_path, {("m.py", "draw", "torch.randperm"): "index draws"})
    assert bad == [] and stale == []
    bad, stale = violations(files, tmp_path, {("m.py", "gone", "torch.zeros"): "was removed"})
    assert len(bad) == 1 and stale == [("m.py", "gone", "torch.zeros")]


def _original_shattered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ModuleType]:
    """A temporary copy of shattered.py with spectral_slope's original lines put back, as source and module."""
    source = (PACKAGE / "analysis" / "shattered.py").read_text()
    assert source.count(FIXED) == 1
    original = source.replace(FIXED, ORIGINAL)
    path = tmp_path / "shattered_original.py"
    path.write_text(original)
    spec = importlib.util.spec_from_file_location("shattered_original", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return original, module


def test_the_static_check_catches_the_original_hann_window_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, _ = _original_shattered(tmp_path, monkeypatch)
    found = check_source(original, "src/depthlab/analysis/shattered.py")
    assert [(v.function, v.call) for v in found] == [
        ("spectral_slope", "torch.hann_window"), ("spectral_slope", "torch.arange")
    ]  # fmt: skip
    assert original.splitlines()[found[0].line - 1].strip() == ORIGINAL_LINE


# ----------------------------------------------------------------------------------------------- dynamic
def test_the_dynamic_check_catches_the_original_hann_window_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, module = _original_shattered(tmp_path, monkeypatch)
    signal = torch.randn(64, dtype=torch.float64)
    assert math.isfinite(module.spectral_slope(signal))  # on one device it works, as on the CPU it did
    with torch.device("meta"), pytest.raises(RuntimeError, match="device"):
        module.spectral_slope(signal)
    # The fixed function gives the same slope with or without a foreign default device.
    with torch.device("meta"):
        fixed = shattered.spectral_slope(signal)
    assert fixed == module.spectral_slope(signal)


def tiny() -> ResNet:
    # 5 residual blocks: stages (2, 2, 1), widths 4/8/8, option-A shortcuts; 3 classes, 1 channel.
    return ResNet(
        "basic", layers=(2, 2, 1), widths=(4, 8, 8), stem="cifar", num_classes=3, in_channels=1, shortcut="A"
    ).eval()


X = torch.randn(12, 1, 8, 8, generator=torch.Generator(device="cpu").manual_seed(0), device="cpu")
Y = torch.arange(12, device="cpu") % 3


def _ce(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, labels)


CASES = {
    "spectral_slope": lambda m: shattered.spectral_slope(X.flatten()[:64].double()),
    "lag1_autocorrelation": lambda m: shattered.lag1_autocorrelation(X.flatten()[:64]),
    "shattered_gradients": lambda m: shattered.shattered_gradients(m, X[0], X[1], 0, reference=X, points=16),
    "diagnose (train)": lambda m: gradients.diagnose(m, X, Y, mode="train"),
    "diagnose (eval)": lambda m: gradients.diagnose(m, X, Y, mode="eval"),
    "output_gradients": lambda m: gradients.output_gradients(m, X, Y, ["stem", "stages.2"], {"ce": _ce}),
    "evaluate": lambda m: evaluation.evaluate(m, X, Y, batch_size=5),
    "lesion_study": lambda m: lesion.lesion_study(m, X, Y, draws=2, max_swaps=2),
    "path_study": lambda m: paths.path_study(m, X, Y, samples=2, batch=4),
    "loss_landscape": lambda m: landscape.loss_landscape(
        m, X, Y, landscape.LandscapeConfig(points=5, grid=3, span=0.5, radius=0.5, pairs=2)
    ),
    # Integrated gradients is left out: Captum builds its step sizes on the default device and moves them to
    # the gradient's (correct on a GPU, but a meta tensor cannot be moved). Its own device handling is
    # exercised on the GPU by tests/test_gpu_studies.py.
    "attribute_images": lambda m: attribution.attribute_images(m, X[:3], methods=("gradcam", "saliency")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_analysis_makes_its_tensors_on_its_inputs_device(name: str) -> None:
    if name == "attribute_images":
        pytest.importorskip("captum", reason="attributions need Captum")
    model = tiny()
    expected = CASES[name](model)  # everything on one device
    with torch.device("meta"):
        got = CASES[name](model)  # factories without device= would make meta tensors and fail
    # The same numbers: the foreign default changed where nothing was made.
    assert _numbers(got) == _numbers(expected)


def _numbers(result: object) -> object:
    """The comparable content of an analysis result (wall times left out)."""
    if isinstance(result, tuple):  # attribute_images: (result, maps)
        return _numbers(result[0])
    if isinstance(result, float):
        return result
    if isinstance(result, EvalResult):
        return (result.loss, result.correct.tolist())
    return {k: v for k, v in result.to_dict().items() if k != "wall_time_s"}  # type: ignore[attr-defined]


def test_the_shattered_gradient_preparation_makes_its_tensors_on_the_images_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study-level step that crashed on the GPU, run with the images on the CPU and the default device
    meta. Its nets are built by ``create_model`` on the default device and then moved to the images' (as on
    a GPU run, where the default is the CPU): here they are built on the CPU explicitly."""
    import depthlab.studies.degradation.study as degradation
    from depthlab.studies import get_study
    from depthlab.studies.degradation.study import run_shattered
    from depthlab.studies.engine import apply_preset_overrides

    build = degradation.create_model

    def on_cpu(*args: object, **kwargs: object) -> torch.nn.Module:
        with torch.device("cpu"):
            return build(*args, **kwargs)

    monkeypatch.setattr(degradation, "create_model", on_cpu)
    preset = apply_preset_overrides(
        get_study("degradation").presets["quick"], ["depths=20", "width=0.25", "shatter_points=16"]
    )

    class Bundle:
        num_classes, in_channels = 3, 1

    images = torch.randn(4, 1, 8, 8, device="cpu")
    labels = torch.tensor([0, 1, 2, 0], device="cpu")
    with torch.device("meta"):
        run_shattered(preset, tmp_path, Bundle(), images, labels, [0, 1])
    results = json.loads((tmp_path / "analysis" / "shattered.json").read_text())["results"]
    assert len(results) == 8  # plain/ResNet × BN/no BN × 2 seeds
    assert all(math.isfinite(r["spectral_slope"]) and len(r["directional"]) == 16 for r in results)
