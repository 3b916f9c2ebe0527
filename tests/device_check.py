"""A static check for tensors made on one device that meet tensors on another.

On a GPU a tensor factory without ``device=`` (``torch.hann_window(n)``, ``torch.arange(n)``, ...) makes a CPU
tensor; the first operation that combines it with the model's CUDA tensors fails ("Expected all tensors to be
on the same device"). The CPU never shows it: there the default device *is* the model's. This check reads the
source instead of running it, so it sees every such call on any machine:

* a call of a torch tensor factory (:data:`FACTORIES`, e.g. ``torch.zeros``, ``torch.hann_window``,
  ``torch.Generator``) without a ``device=`` keyword. Code that means the CPU says so (``device="cpu"``, with a
  comment why at the line); ``*_like`` factories and ``tensor.new_*`` inherit their argument's device and are
  fine.
* ``.numpy()`` on anything but ``.cpu()``'s result (a CUDA tensor has no NumPy view): write
  ``.cpu().numpy()``, which costs nothing on the CPU.

Where neither rule can be met, :func:`violations` takes an allow-list of ``(path, function, call)`` with the
reason, and reports entries that no longer match a call (a stale exemption is an error too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# torch's tensor factories that take ``device=`` (those torch.set_default_device redirects, plus
# torch.Generator, whose device must match the tensors it draws).
FACTORIES = frozenset(
    {
        "arange", "as_tensor", "asarray", "bartlett_window", "blackman_window", "empty", "empty_strided",
        "eye", "full", "hamming_window", "hann_window", "kaiser_window", "linspace", "logspace", "ones",
        "rand", "randint", "randn", "randperm", "range", "scalar_tensor", "tensor", "tril_indices",
        "triu_indices", "zeros", "Generator", "fft.fftfreq", "fft.rfftfreq",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Violation:
    path: str  # as given to check_source
    line: int
    function: str  # qualified name of the enclosing function ("<module>" at the top level)
    call: str  # "torch.hann_window" or ".numpy()"
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}: {self.call} {self.rule}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.path, self.function, self.call)


def _dotted(node: ast.expr) -> str | None:
    """``torch.fft.rfftfreq`` for the expression ``torch.fft.rfftfreq`` (names and attributes only)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.scope: list[str] = []
        self.torch_names = {"torch"}  # `import torch` (and `import torch as t`)
        self.direct: dict[str, str] = {}  # `from torch import zeros as z` → {"z": "zeros"}
        self.found: list[Violation] = []

    # ---------------------------------------------------------------------------------- bookkeeping
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "torch":
                self.torch_names.add(alias.asname or "torch")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in ("torch", "torch.fft"):
            prefix = "" if node.module == "torch" else "fft."
            for alias in node.names:
                if prefix + alias.name in FACTORIES:
                    self.direct[alias.asname or alias.name] = prefix + alias.name

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _report(self, node: ast.AST, call: str, rule: str) -> None:
        function = ".".join(self.scope) or "<module>"
        self.found.append(Violation(self.path, node.lineno, function, call, rule))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------------ rules
    def _factory(self, func: ast.expr) -> str | None:
        if isinstance(func, ast.Name):
            return self.direct.get(func.id)
        name = _dotted(func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        return rest if head in self.torch_names and rest in FACTORIES else None

    def visit_Call(self, node: ast.Call) -> None:
        factory = self._factory(node.func)
        if factory is not None and not any(k.arg == "device" for k in node.keywords):
            self._report(node, f"torch.{factory}", "without device=")
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "numpy" and not node.args:
            receiver = func.value
            on_cpu = (
                isinstance(receiver, ast.Call)
                and isinstance(receiver.func, ast.Attribute)
                and receiver.func.attr == "cpu"
            )
            if not on_cpu:
                self._report(node, ".numpy()", "on a tensor not moved by .cpu()")
        self.generic_visit(node)


def check_source(source: str, path: str = "<source>") -> list[Violation]:
    """The violations in one module's source."""
    visitor = _Visitor(path)
    visitor.visit(ast.parse(source, filename=path))
    return visitor.found


def violations(
    files: Iterable[Path], root: Path, allowed: Mapping[tuple[str, str, str], str] = {}
) -> tuple[list[Violation], list[tuple[str, str, str]]]:
    """(violations not in ``allowed``, entries of ``allowed`` that match no call) over ``files``; paths are
    relative to ``root`` with forward slashes."""
    found: list[Violation] = []
    for f in sorted(files):
        found += check_source(f.read_text(), f.relative_to(root).as_posix())
    keys = {v.key for v in found}
    return [v for v in found if v.key not in allowed], [k for k in allowed if k not in keys]
