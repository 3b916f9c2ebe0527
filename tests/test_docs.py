"""Every benchmark table quoted in docs/*.md is what its script makes of its committed JSON in
benchmarks/results/ (numbers in a doc are copied from a committed artifact, never typed)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
# block name -> (the script whose markdown_table renders it, the JSON it renders)
BENCH_BLOCKS = {
    "train_step_cuda": ("train_step", "train_step_cuda.json"),
    "gpu_workers": ("gpu_workers", "gpu_workers.json"),
    "time_to_accuracy_cuda": ("time_to_accuracy", "time_to_accuracy_cuda.json"),
    "train_throughput_cuda": ("train_throughput", "train_throughput_cuda.json"),
    "train_throughput": ("train_throughput", "train_throughput.json"),
}
BLOCK = re.compile(r"<!-- bench:([\w-]+):start -->\n(.*?)\n<!-- bench:\1:end -->", re.S)


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks() -> list[tuple[Path, str, str]]:
    return [
        (p, m.group(1), m.group(2))
        for p in sorted((ROOT / "docs").glob("*.md"))
        for m in BLOCK.finditer(p.read_text())
    ]


def test_docs_quote_the_gpu_benchmarks() -> None:
    named = {name for _, name, _ in _blocks()}
    assert set(BENCH_BLOCKS) <= named, f"docs lack the blocks {sorted(set(BENCH_BLOCKS) - named)}"


@pytest.mark.parametrize(
    "path,name,text", _blocks(), ids=lambda v: v if isinstance(v, str) and len(v) < 40 else ""
)
def test_each_bench_block_is_its_committed_json(path: Path, name: str, text: str) -> None:
    assert name in BENCH_BLOCKS, f"{path.name}: unknown bench block {name!r}; add it to BENCH_BLOCKS"
    script, file = BENCH_BLOCKS[name]
    record = json.loads((ROOT / "benchmarks" / "results" / file).read_text())
    assert text.strip() == _script(script).markdown_table(record), (
        f"{path.name}'s {name} block differs from benchmarks/results/{file}: regenerate it with "
        f"`python benchmarks/{script}.py --markdown --json benchmarks/results/{file}`"
    )
