"""``depthlab models [PATTERN ...] [--width W ...] [--markdown]``: the registry as a table; with ``--width``,
the width-scalable models at those widths at study scale (:mod:`depthlab.analysis.narrow`). Several patterns
list the models any of them matches, pattern by pattern, each once."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from depthlab.analysis.narrow import STUDY_CLASSES, STUDY_INPUT, WidthRow, describe_widths
from depthlab.errors import UsageError
from depthlab.registry import ModelRow, describe_models


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list registered models with their parameter counts")
    p.add_argument(
        "pattern", nargs="*", default=["*"], help="fnmatch patterns, e.g. 'resnet*' plain56 (default: all)"
    )
    p.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    p.add_argument(
        "--width",
        nargs="+",
        type=float,
        metavar="W",
        help=f"width multipliers: list the models that have one (VGG, GoogLeNet, ResNet) at each, at "
        f"{STUDY_CLASSES} classes and a {'×'.join(map(str, STUDY_INPUT))} input, as the studies train them",
    )
    p.set_defaults(func=run)


def markdown_table(rows: list[ModelRow]) -> str:
    lines = ["| model | family | params | inference params | input |", "|---|---|---:|---:|---|"]
    for r in rows:
        shape = "×".join(map(str, r.default_input))
        lines.append(f"| `{r.name}` | {r.family} | {r.params:,} | {r.inference_params:,} | {shape} |")
    return "\n".join(lines)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _settings(row: WidthRow) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.settings) or "default"


def _params(row: WidthRow) -> str:
    # GoogLeNet: every parameter (with the aux heads a training step updates), then those of inference.
    extra = f" ({row.inference_params:,} inference)" if row.inference_params != row.params else ""
    return f"{row.params:,}{extra}"


def _by_model(rows: list[WidthRow]) -> tuple[list[float], dict[str, list[WidthRow]]]:
    widths = list(dict.fromkeys(r.width for r in rows))
    models: dict[str, list[WidthRow]] = {}
    for r in rows:
        models.setdefault(r.name, []).append(r)
    return widths, models


def markdown_width_table(rows: list[WidthRow]) -> str:
    """One line per model, params and MACs at each width (the README's narrow-variant table)."""
    widths, models = _by_model(rows)
    header = ["model", "settings"] + [f"{kind} at width {w:g}" for w in widths for kind in ("params", "MACs")]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (2 * len(widths))]
    for name, group in models.items():
        cells = [f"`{name}`", _settings(group[0])] + [c for r in group for c in (_params(r), f"{r.macs:,}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _unique(rows: list) -> list:
    """``rows`` without repeats of the same model (a model two patterns match is listed once)."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for r in rows:
        k = (r.name, getattr(r, "width", None))
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _patterns(args: argparse.Namespace) -> str:
    return " ".join(repr(p) for p in args.pattern)


def _run_widths(args: argparse.Namespace) -> int:
    rows = _unique([r for pattern in args.pattern for r in describe_widths(args.width, pattern)])
    if args.markdown:
        print(markdown_width_table(rows))
        return 0
    widths, models = _by_model(rows)
    table = Table(
        title=f"width-scalable models matching {_patterns(args)} ({rows[0].num_classes} classes, one "
        f"{_shape(rows[0].input_shape)} image; MACs count Conv2d and Linear, eval mode)"
    )
    table.add_column("model")
    table.add_column("settings")
    for w in widths:
        table.add_column(f"params at width {w:g}", justify="right")
        table.add_column(f"MACs at width {w:g}", justify="right")
    for name, group in models.items():
        table.add_row(name, _settings(group[0]), *[c for r in group for c in (_params(r), f"{r.macs:,}")])
    Console().print(table)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.width is not None:
        return _run_widths(args)
    rows = _unique([r for pattern in args.pattern for r in describe_models(pattern)])
    if not rows:
        raise UsageError(f"no model matches {_patterns(args)}; try `depthlab models` for all names")
    if args.markdown:
        print(markdown_table(rows))
        return 0
    table = Table(title=f"depthlab models matching {_patterns(args)} (1000 classes, default settings)")
    table.add_column("model")
    table.add_column("family")
    table.add_column("params", justify="right")
    table.add_column("inference params", justify="right")  # without aux heads (GoogLeNet)
    table.add_column("input")
    for r in rows:
        table.add_row(
            r.name, r.family, f"{r.params:,}", f"{r.inference_params:,}", "×".join(map(str, r.default_input))
        )
    Console().print(table)
    return 0
