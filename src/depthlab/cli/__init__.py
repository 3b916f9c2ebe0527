"""The ``depthlab`` command line: the only code in depthlab that parses arguments or prints.

Each command group lives in its own module exposing ``add_parser(subparsers)``; a command's ``func(args)``
returns the exit code.

Exit codes:

* 0 — success;
* 2 — an error caused by the user's input: a :class:`~depthlab.errors.DepthlabError` raised where the input
  is validated (including a run another process is training, :class:`~depthlab.errors.RunHeldError`),
  printed as one line on stderr;
* 3 — an error of the environment: the operating system refused a file operation (disk full or over
  quota, permission denied, read-only file system, a run directory deleted while training): one line
  naming the file, what the OS said and what to do (:class:`~depthlab.errors.EnvironmentFault`, or any
  :class:`OSError` with one of those errnos);
* 1 — anything else, which is a bug in depthlab: its traceback is printed, followed by a line asking to
  report it;
* 130 — Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import traceback
from collections.abc import Sequence

from depthlab import __version__
from depthlab.errors import DepthlabError, EnvironmentFault
from depthlab.train.rundir import environment_cause, environment_message

# Command-group modules, in the order their commands appear in --help.
COMMAND_MODULES = ("models", "analysis", "train", "study", "why")
EXIT_BUG, EXIT_INPUT, EXIT_ENVIRONMENT = 1, 2, 3


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


def error(message: str, code: int = EXIT_INPUT) -> int:
    print(f"depthlab: error: {message}", file=sys.stderr)
    return code


def environment_error(exc: OSError, argv: Sequence[str], command: str) -> str:
    """The one line of an error of the environment. A fault met while training a run says how to continue
    it; for any command but ``train`` that is the command as typed (it resumes the run itself)."""

    if isinstance(exc, EnvironmentFault):
        if command == "train" or exc.run_dir is None:
            return one_line(exc)
        again = shlex.join(["depthlab", *argv])
        return environment_message(
            exc, run_dir=exc.run_dir, step=exc.step, deleted=exc.deleted, command=again
        )
    return environment_message(exc)


def one_line(exc: BaseException) -> str:
    """The message of a user error, on one line (its first line)."""
    # str(KeyError) would add quotes; every user error carries its message as the first argument.
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    return message.strip().split("\n", 1)[0] or type(exc).__name__


def bug(exc: BaseException) -> int:
    """An exception depthlab did not raise on purpose: keep the traceback, ask for a report."""
    traceback.print_exception(exc, file=sys.stderr)
    print(
        f"depthlab: internal error ({type(exc).__name__}); this is a bug in depthlab, not in your input. "
        "Please report it to the depthlab maintainers with the traceback above and the command you ran.",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EnvironmentFault as exc:
        return error(environment_error(exc, argv, args.command), EXIT_ENVIRONMENT)
    except DepthlabError as exc:
        return error(one_line(exc))
    except OSError as exc:
        cause = environment_cause(exc)
        if cause is not None:
            return error(environment_error(cause, argv, args.command), EXIT_ENVIRONMENT)
        if isinstance(exc, BrokenPipeError):
            # `depthlab compare --json | head`: the reader left; silence the flush at exit too.
            sys.stdout = None  # type: ignore[assignment]
            return 0
        return bug(exc)
    except KeyboardInterrupt:
        print("depthlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return bug(exc)
