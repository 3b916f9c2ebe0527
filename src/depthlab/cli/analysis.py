"""``depthlab summary``, ``depthlab compare`` and ``depthlab explain``: architecture analysis commands.

Every table states its conventions: MACs count Conv2d and Linear (per image); FLOPs = 2 × MACs.

JSON (``--json``), stable::

    {"conventions": str,
     "models": [{"name", "input_shape", "params", "macs", "flops", "depth", "receptive_field",
                 "activation_bytes"}]}

``summary --json`` adds to its one model ``"layers": [{"name", "type", "output_shape", "params", "macs",
"receptive_field"}]`` (the rows shown at ``--depth``). ``depth``: conv + linear layers on the longest path;
``receptive_field``: of the last feature map (before global pooling), in pixels; ``activation_bytes``: every
tensor a batch-1 forward pass allocates (float32).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from depthlab.analysis.complexity import CONVENTIONS, ModelSummary, summarize
from depthlab.analysis.explain import TOPICS, Explanation, explain
from depthlab.cli.study import add_lang_option
from depthlab.errors import MissingFileError, UsageError
from depthlab.i18n import N_, _, language
from depthlab.registry import create_model, model_info

CLASSIC_MODELS = ("alexnet", "vgg16", "googlenet", "resnet50")
DEFAULT_DEPTH = 3
_INPUT_RE = re.compile(r"^\d+([x×]\d+){0,2}$")


# ------------------------------------------------------------------------------------------- parsing
def parse_input(text: str, default_channels: int = 3) -> tuple[int, int, int]:
    """'3x224x224' → (3, 224, 224); 'HxW' and a single side 'S' take ``default_channels``."""
    clean = text.strip().lower().replace("×", "x")
    if not _INPUT_RE.match(clean):
        raise UsageError(f"malformed --input {text!r}: expected CxHxW (e.g. 3x224x224), HxW or one side")
    values = [int(v) for v in clean.split("x")]
    if any(v < 1 for v in values):
        raise UsageError(f"malformed --input {text!r}: every dimension must be at least 1")
    if len(values) == 1:
        values = [default_channels, values[0], values[0]]
    elif len(values) == 2:
        values = [default_channels, *values]
    return values[0], values[1], values[2]


def build_summary(name: str, input_text: str | None, num_classes: int = 1000) -> ModelSummary:
    """Build registered model ``name`` on the meta device (instant, no memory) and summarize it."""
    info = model_info(name)
    shape = parse_input(input_text, info.default_input[0]) if input_text else info.default_input
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, in_channels=shape[0])
    return summarize(model, shape)


def positive_int(text: str | int, option: str) -> int:
    """``text`` as a positive integer; ValueError naming ``option`` otherwise (one-line CLI error)."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} expects a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"{option} expects a positive integer, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary",
        help="per-layer table: output shape, params, MACs, receptive field, activations",
        description=f"Per-layer summary of a model ({CONVENTIONS}).",
    )
    p.add_argument("model", help="registered model name (see `depthlab models`)")
    p.add_argument("--input", help="input shape CxHxW (default: the model's, e.g. 3x224x224)")
    p.add_argument("--num-classes", default="1000", help="classifier outputs (default 1000)")
    p.add_argument(
        "--depth",
        default=str(DEFAULT_DEPTH),
        help=f"module nesting levels to show; deeper layers are folded into their parent (default {DEFAULT_DEPTH})",
    )
    p.add_argument("--json", action="store_true", help="print the stable JSON form instead of a table")
    p.set_defaults(func=run_summary)

    p = subparsers.add_parser(
        "compare",
        help="models side by side: params, MACs, FLOPs, depth, receptive field, activation memory",
        description=f"Compare models ({CONVENTIONS}). With no models: {', '.join(CLASSIC_MODELS)}.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"default: {' '.join(CLASSIC_MODELS)}")
    p.add_argument("--input", help="input shape CxHxW for every model (default: each model's own)")
    p.add_argument("--json", action="store_true", help="print the stable JSON form instead of a table")
    p.add_argument("--plot", metavar="FILE", help="also save a params-vs-MACs scatter plot (png, pdf, svg)")
    p.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    p.set_defaults(func=run_compare)

    p = subparsers.add_parser(
        "explain",
        help="the design arguments measured: " + ", ".join(TOPICS),
        description="Print a topic's table and the conclusion computed from it.",
    )
    p.add_argument("topic", metavar="TOPIC", help=" | ".join(TOPICS))
    p.add_argument("--json", action="store_true", help="print the table and conclusion as JSON (English)")
    add_lang_option(p)
    p.set_defaults(func=run_explain)


# ------------------------------------------------------------------------------------------ formatting
def human(n: float, unit: str = "") -> str:
    """1_234_567 → '1.23M' (SI prefixes: K, M, G, T)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{prefix}{unit}"
    return f"{n:g}{unit}"


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _shape(shape: Sequence[int] | None) -> str:
    return "--" if shape is None else "×".join(map(str, shape))


def _dump(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _console() -> Console:
    # Piped or redirected output gets a fixed width wide enough for the tables instead of 80 columns.
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _aux_note(name: str, s: ModelSummary) -> str | None:
    idle = sum(r.params for r in s.layers if r.is_leaf and r.output_shape is None)
    if idle:
        return f"{name}: {idle:,} of the {s.params:,} parameters are in layers that do not run in eval mode"
    return None


# ---------------------------------------------------------------------------------------------- summary
def run_summary(args: argparse.Namespace) -> int:
    depth = positive_int(args.depth, "--depth")
    s = build_summary(args.model, args.input, positive_int(args.num_classes, "--num-classes"))
    if args.json:
        _dump({"conventions": CONVENTIONS, "models": [s.to_json(args.model, depth)]})
        return 0
    table = Table(
        title=f"{args.model}: input {_shape(s.input_shape)}, batch 1",
        caption=f"{CONVENTIONS}; RF = receptive field side / jump in input pixels; "
        "activations = bytes the layer allocates in a forward pass",
    )
    for col, justify in (
        ("layer (type)", "left"),
        ("output shape", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("RF / jump", "right"),
        ("activations", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in s.rows(depth):
        rf = "--" if r.receptive_field is None else f"{r.receptive_field} / {r.rf_jump}"
        table.add_row(
            f"{'  ' * r.level}{r.name.rsplit('.', 1)[-1]} ({r.type})",
            _shape(r.output_shape),
            f"{r.params:,}" if r.params else "--",
            human(r.macs) if r.macs else "--",
            rf,
            mib(r.activation_bytes) if r.activation_bytes else "--",
        )
    console = _console()
    console.print(table)
    lines = [
        f"Total params: {s.params:,} (trainable {s.trainable_params:,})",
        f"MACs: {human(s.macs)}  FLOPs: {human(s.flops)}  (per image; FLOPs = 2 × MACs)",
        f"Depth (conv + linear layers on the longest path): {s.depth}",
        f"Receptive field of the last feature map: {s.receptive_field} px (jump {s.rf_jump})",
        f"Activations, forward (batch 1): {mib(s.activation_bytes)}; "
        f"saved for backward (training step): {mib(s.saved_bytes)}",
        f"Output: {_shape(s.output_shape)}",
    ]
    if note := _aux_note(args.model, s):
        lines.append(note)
    console.print("\n".join(lines), highlight=False)
    return 0


# ---------------------------------------------------------------------------------------------- compare
def run_compare(args: argparse.Namespace) -> int:
    names = list(args.models) or list(CLASSIC_MODELS)
    summaries = [(name, build_summary(name, args.input)) for name in names]
    if args.plot:
        plot_params_vs_macs(summaries, Path(args.plot))
    if args.json:
        _dump({"conventions": CONVENTIONS, "models": [s.to_json(n, layers=False) for n, s in summaries]})
        return 0
    if args.markdown:
        print(compare_markdown(summaries))
        return 0
    table = Table(title="depthlab compare (batch 1)", caption=CONVENTIONS)
    for col in ("model", "input", "params", "MACs", "FLOPs", "depth", "RF", "activations", "train saved"):
        table.add_column(col, justify="left" if col in ("model", "input") else "right")
    for name, s in summaries:
        table.add_row(
            name,
            _shape(s.input_shape),
            f"{s.params:,}",
            human(s.macs),
            human(s.flops),
            str(s.depth),
            str(s.receptive_field),
            mib(s.activation_bytes),
            mib(s.saved_bytes),
        )
    console = _console()
    console.print(table)
    notes = [
        "depth = conv + linear layers on the longest path; RF = receptive field of the last feature map "
        "(px); activations = all tensors of a forward pass; train saved = tensors kept for backward"
    ]
    notes += [n for name, s in summaries if (n := _aux_note(name, s))]
    if args.plot:
        notes.append(f"plot saved to {args.plot}")
    console.print("\n".join(notes), highlight=False)
    return 0


def compare_markdown(summaries: Sequence[tuple[str, ModelSummary]]) -> str:
    """The README's comparison table (batch 1): params, GMACs, GFLOPs, depth, receptive field, activations."""
    lines = [
        "| model | params | MACs | FLOPs | depth | receptive field | activations (batch 1) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries:
        lines.append(
            f"| {name} | {s.params:,} | {s.macs / 1e9:.3f} G | {s.flops / 1e9:.2f} G | {s.depth} | "
            f"{s.receptive_field} | {mib(s.activation_bytes)} |"
        )
    return "\n".join(lines)


def plot_params_vs_macs(summaries: Sequence[tuple[str, ModelSummary]], path: Path) -> Path:
    """Scatter of parameters vs MACs (log-log), one labelled point per model, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not path.parent.exists():
        raise MissingFileError(f"--plot: directory {str(path.parent)!r} does not exist")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    try:
        for name, s in summaries:
            ax.scatter(s.params, s.macs, s=36)
            ax.annotate(name, (s.params, s.macs), textcoords="offset points", xytext=(6, 4), fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("MACs per image (Conv2d + Linear; FLOPs = 2 × MACs)")
        shapes = sorted({_shape(s.input_shape) for _, s in summaries})
        ax.set_title(f"parameters vs compute, input {', '.join(shapes)}")
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(0.25)
        fig.tight_layout()
        try:
            fig.savefig(path)
        except ValueError as exc:  # unknown extension
            raise UsageError(f"--plot {str(path)!r}: {exc}") from None
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- explain
def _cell(value: object, column: str = "") -> str:
    if isinstance(value, int) and not isinstance(value, bool) and "macs" in column:
        return human(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# The explanations' column headings (their rows' field names, "_" written as a space), marked for the catalogues.
HEADINGS = (
    N_("k"), N_("receptive field"), N_("big kernel"), N_("stack weights"), N_("big weights"),
    N_("weights saved pct"), N_("stack macs"), N_("big macs"), N_("stack nonlinearities"), N_("big nonlinearities"),
    N_("module"), N_("branch"), N_("in channels"), N_("size"), N_("params with"), N_("params without"),
    N_("macs with"), N_("macs without"), N_("stage"), N_("out width"), N_("basic params"), N_("bottleneck params"),
    N_("basic macs"), N_("bottleneck macs"), N_("basic depth"), N_("bottleneck depth"), N_("basic rf"),
    N_("bottleneck rf"), N_("gamma"), N_("block"), N_("grad out norm"), N_("grad in norm"), N_("branch part"),
    N_("identity part"), N_("ratio"), N_("cosine"),
)  # fmt: skip


def render_explanation(e: Explanation, console: Console) -> None:
    """The table and its conclusion, headings in the current language (:func:`depthlab.i18n.language`)."""
    table = Table(title=e.title, caption="; ".join(e.notes) or None)
    for col in e.columns:
        table.add_column(
            _(col.replace("_", " ")), justify="left" if col in ("module", "branch", "block") else "right"
        )
    for row in e.rows:
        table.add_row(*(_cell(getattr(row, c), c) for c in e.columns))
    console.print(table)
    console.print(e.conclusion, highlight=False)


def run_explain(args: argparse.Namespace) -> int:
    if args.json:  # the stable form stays English, as results.json does
        _dump(explain(args.topic).to_json())
        return 0
    with language(args.lang):
        render_explanation(explain(args.topic), _console())
    return 0
