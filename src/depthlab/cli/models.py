"""``depthlab models [PATTERN] [--markdown]``: the registry as a table."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from depthlab.registry import ModelRow, describe_models


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*' (default: all)")
    p.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    p.set_defaults(func=run)


def markdown_table(rows: list[ModelRow]) -> str:
    lines = ["| model | family | params | inference params | input |", "|---|---|---:|---:|---|"]
    for r in rows:
        shape = "×".join(map(str, r.default_input))
        lines.append(f"| `{r.name}` | {r.family} | {r.params:,} | {r.inference_params:,} | {shape} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = describe_models(args.pattern)
    if not rows:
        raise ValueError(f"no model matches {args.pattern!r}; try `depthlab models` for all names")
    if args.markdown:
        print(markdown_table(rows))
        return 0
    table = Table(title=f"depthlab models matching {args.pattern!r} (1000 classes, default settings)")
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
