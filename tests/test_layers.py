"""The layers hold (issue 24): top may import bottom, never the reverse.

cli → report → studies (the engine, each study, replication, the run-level "why" analyses) → analysis
(computes on models and tensors) → train → models, data → bottom (present, stats, io, errors, runtime).
The graph is read from the source by :mod:`import_graph` (``python tests/import_graph.py`` prints its
figures); each module's layer comes from its explicit table :data:`import_graph.LAYERS`.
"""

from __future__ import annotations

import pytest

from import_graph import LAYERS, Edge, circles, edges, figures, layer, modules, upward

GRAPH = edges()

# The one circle allowed: the model registry's. ``registry.create_model`` and ``list_models`` import the
# model families (whose ``@register_model`` fills the registry) on first use, and each family imports
# ``register_model``; the registry cannot import them at module level, or ``import depthlab.models`` would
# meet a half-initialised registry.
REGISTRY = "depthlab.registry"

# (importer, imported) → why a lower layer imports a higher one. At most two may ever be listed.
UPWARD: dict[tuple[str, str], str] = {}

# (module, function, imported module) → why the import sits inside the function. Only a real reason counts
# (never dodging a circle: move the code to its layer instead); heavy optional third-party libraries
# (matplotlib, captum, ray, tensorboard, ...) are not depthlab modules and are not listed.
DEFERRED: dict[tuple[str, str, str], str] = {
    ("depthlab.registry", "_ensure_loaded", "depthlab.models"): "the registry's circle: importing the model "
    "families registers them, and they import the registry",
    ("depthlab.registry", "create_model", "depthlab.models.pretrained"): "the registry's circle: pretrained "
    "imports the registry (and torchvision's weights), needed only for pretrained=True",
    ("depthlab.registry", "describe_models", "depthlab.models.base"): "the registry's circle: importing "
    "depthlab.models.base runs depthlab/models/__init__.py, which registers every family",
}


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for name in modules():
        try:
            layer(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"modules missing from import_graph.LAYERS: {unplaced}"
    assert all(isinstance(v, int) for v in LAYERS.values())
    with pytest.raises(KeyError):  # a new top-level module is placed by hand, never by default
        layer("depthlab.unplaced")


def test_the_graph_sees_imports_at_every_level() -> None:
    # A sanity check of the reader: known imports of each kind are found.
    found = {(e.source, e.target) for e in GRAPH}
    assert ("depthlab.cli.study", "depthlab.studies.run") in found  # module level
    assert ("depthlab.registry", "depthlab.models") in found  # inside a function
    assert ("depthlab.studies.declare", "depthlab.studies.results") in found  # TYPE_CHECKING
    assert len(GRAPH) > 300


def test_no_import_circle_but_the_registry() -> None:
    found = circles(GRAPH)
    others = [c for c in found if REGISTRY not in c]
    assert not others, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in others)
    for c in found:  # the registry's own circle holds the registry and the model zoo only
        assert all(m == REGISTRY or m == "depthlab.models" or m.startswith("depthlab.models.") for m in c), c


def test_at_most_two_imports_run_back_up_and_each_is_listed() -> None:
    assert len(UPWARD) <= 2
    found = {(e.source, e.target): e for e in upward(GRAPH)}
    unlisted = [_where(e) for key, e in sorted(found.items()) if key not in UPWARD]
    assert not unlisted, "a lower layer imports a higher one:\n" + "\n".join(unlisted)
    stale = [key for key in UPWARD if key not in found]
    assert not stale, f"UPWARD entries that match no import any more: {stale}"


def test_no_depthlab_import_inside_a_function_without_a_reason() -> None:
    deferred = [e for e in GRAPH if e.deferred and not e.type_only]
    unlisted = [_where(e) for e in deferred if (e.source, e.function, e.target) not in DEFERRED]
    assert not unlisted, (
        "depthlab imports inside functions (move them to the top, or the code to its layer):\n"
        + "\n".join(unlisted)
    )
    present = {(e.source, e.function, e.target) for e in deferred}
    stale = [key for key in DEFERRED if key not in present]
    assert not stale, f"DEFERRED entries that match no import any more: {stale}"


@pytest.mark.parametrize(
    ("source", "target", "up"),
    [
        ("depthlab.analysis.lesion", "depthlab.stats", False),
        ("depthlab.studies.why", "depthlab.analysis.lesion", False),
        ("depthlab.models.resnet", "depthlab.analysis.complexity", True),
        ("depthlab.io", "depthlab.train.checkpoint", True),
        ("depthlab.studies.results", "depthlab.report.html", True),
    ],
)
def test_an_arrow_is_upward_when_it_points_at_a_higher_layer(source: str, target: str, up: bool) -> None:
    assert bool(upward([Edge(source, target, 1, None, False)])) == up


def test_the_figures_print() -> None:
    text = figures()
    assert "internal imports:" in text and "circles: 1" in text and "upward imports: 0" in text


def _where(e: Edge) -> str:
    inside = f" in {e.function}()" if e.function else ""
    return f"  {e.source}:{e.line}{inside} imports {e.target} (layer {layer(e.source)} → {layer(e.target)})"
