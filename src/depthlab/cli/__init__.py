"""The ``depthlab`` command line: the only code in depthlab that parses arguments or prints.

Each command group lives in its own module exposing ``add_parser(subparsers)``; a command's ``func(args)``
returns the exit code. Errors caused by the user's input become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from depthlab import __version__
from depthlab.errors import DepthlabError

# Command-group modules, in the order their commands appear in --help.
COMMAND_MODULES = ("models", "analysis", "train", "study", "why")
USER_ERRORS = (DepthlabError, ValueError, TypeError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthlab",
        description="Build, measure, train and explain VGG, GoogLeNet, ResNet and plain networks.",
    )
    parser.add_argument("--version", action="version", version=f"depthlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"depthlab.cli.{name}").add_parser(subparsers)
    return parser


def error(message: str) -> int:
    print(f"depthlab: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        # str(KeyError) would add quotes; every user error carries its message as the first argument.
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        return error(" ".join(message.split("\n")[:1]) if "\n" in message else message)
    except KeyboardInterrupt:
        print("depthlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `depthlab compare --json | head`: the reader left; silence the flush at exit too.
        sys.stdout = None  # type: ignore[assignment]
        return 0
