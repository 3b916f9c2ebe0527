"""Mixed precision (issue 15): which CPUs get bf16 under ``auto``, what a run records, that the monitor (the
study engine's gradient diagnostics and probes) measures in fp32, that a bf16 run resumes bit for bit, and
(slow) that bf16 reaches fp32's test accuracy within the seed CI.

Issue 22: the tests that touch ``auto`` on this machine run twice (the ``cpu_bf16`` fixture: as a CPU without
native bf16 and as one with it, through ``DEPTHLAB_CPU_BF16``), so both kinds are covered on either kind;
the tests of the detection itself remove the switch (``cpu_bf16_detected``)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depthlab.errors import UsageError
from depthlab.train import ConfigError, TrainConfig, read_metrics, train
from depthlab.train import loop as loop_module
from depthlab.train import precision as precision_module
from depthlab.train.precision import cpu_bf16_flags, cpu_bf16_switch, resolve_precision

pytestmark = pytest.mark.usefixtures("one_thread_module")

DATA = "synthetic:size=8,train=64,test=16,classes=4"
TINY = TrainConfig(
    model="resnet20", data=DATA, epochs=None, steps=6, batch_size=16, lr=0.05, log_every=2, eval_every=2,
    checkpoint_every=2, device="cpu", precision="bf16",
)  # fmt: skip


def cpuinfo(*flag_lines: str, vmx: str = "") -> str:
    """/proc/cpuinfo text with one processor per ``flag_lines`` entry (and, like Intel VMs, a ``vmx flags``
    line after each, which is not the CPU's flags)."""
    blocks = []
    for i, flags in enumerate(flag_lines):
        lines = [f"processor\t: {i}", "model name\t: Test CPU", f"flags\t\t: {flags}"]
        if vmx:
            lines.append(f"vmx flags\t: {vmx}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


NATIVE = cpuinfo(
    "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"
)
AMX = cpuinfo("fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8")
EMULATED = cpuinfo("fpu sse2 avx avx2 fma f16c", "fpu sse2 avx avx2 fma f16c")  # e.g. an AMD EPYC of Zen 3


# ---------------------------------------------------------------------------------------------- detection
def test_native_bf16_is_read_from_every_processors_flags():
    assert cpu_bf16_flags(NATIVE) == ("avx512_bf16",)
    assert cpu_bf16_flags(AMX) == ("avx512_bf16", "amx_bf16")
    assert cpu_bf16_flags(cpuinfo("amx_bf16 amx_tile")) == ("amx_bf16",)
    assert cpu_bf16_flags(EMULATED) == ()
    # AVX-512 without its BF16 extension (Skylake-X) is not native bf16, whatever the other avx512 flags say
    assert cpu_bf16_flags(cpuinfo("avx512f avx512bw avx512_vnni avx512_fp16")) == ()
    # a hybrid CPU whose small cores lack the flag: not native
    assert cpu_bf16_flags(cpuinfo("avx2 avx512_bf16", "avx2")) == ()
    # "vmx flags" lines (virtualisation features) are not processor flags: they must not empty the set
    assert cpu_bf16_flags(cpuinfo("avx512f avx512_bf16", vmx="vnmi preemption_timer ept")) == ("avx512_bf16",)
    assert cpu_bf16_flags("") == ()


def test_auto_picks_bf16_only_where_it_is_native():
    assert resolve_precision("auto", "cpu", cpuinfo=NATIVE).used == "bf16"
    assert resolve_precision("auto", "cpu", cpuinfo=AMX).used == "bf16"
    assert resolve_precision("auto", "cpu", cpuinfo=EMULATED).used == "fp32"
    assert resolve_precision("auto", "cuda", cpuinfo=EMULATED).used == "bf16"  # CUDA: bf16 as always
    assert resolve_precision("bf16", "cpu", cpuinfo=EMULATED).used == "bf16"  # forced: emulated, slow
    assert resolve_precision("fp32", "cpu", cpuinfo=NATIVE).used == "fp32"
    info = resolve_precision("auto", "cpu", cpuinfo=NATIVE)
    assert info.to_dict() == {
        "requested": "auto",
        "used": "bf16",
        "device": "cpu",
        "cpu_bf16_flags": ["avx512_bf16"],
        "cpu_bf16_switch": None,
    }
    with pytest.raises(UsageError, match="choose from: auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        TrainConfig(precision="half")


@pytest.mark.usefixtures("cpu_bf16_detected")
def test_this_machines_answer_agrees_with_torchs_cpuid():
    """A second method: ATen's own CPU feature check (cpuid), against our reading of /proc/cpuinfo."""
    if not Path("/proc/cpuinfo").is_file() or not hasattr(torch.cpu, "_is_avx512_bf16_supported"):
        pytest.skip("needs Linux /proc/cpuinfo and torch's CPU feature queries")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert bool(cpu_bf16_flags()) == native
    assert resolve_precision("auto", "cpu").used == ("bf16" if native else "fp32")


# -------------------------------------------------------------------------------------------- the switch
def test_the_switch_decides_what_this_cpu_counts_as(cpu_bf16):
    """DEPTHLAB_CPU_BF16 replaces this machine's /proc/cpuinfo flags (whatever they are) and says so; forced
    precisions and CUDA are not affected, and an explicit cpuinfo text is judged by its own flags."""
    assert cpu_bf16_switch() is cpu_bf16
    info = resolve_precision("auto", "cpu")
    assert info.used == ("bf16" if cpu_bf16 else "fp32")
    assert info.cpu_bf16_switch == ("1" if cpu_bf16 else "0") == info.to_dict()["cpu_bf16_switch"]
    assert info.cpu_bf16_flags == cpu_bf16_flags()  # the flags stay what the CPU lists: the record says both
    assert resolve_precision("fp32", "cpu").used == "fp32" and resolve_precision("bf16", "cpu").used == "bf16"
    cuda = resolve_precision("auto", "cuda")
    assert cuda.used == "bf16" and cuda.cpu_bf16_switch is None  # not a CPU: the switch did not decide
    assert resolve_precision("auto", "cpu", cpuinfo=EMULATED).used == "fp32"
    assert resolve_precision("auto", "cpu", cpuinfo=NATIVE).used == "bf16"
    assert resolve_precision("auto", "cpu", cpuinfo=NATIVE).cpu_bf16_switch is None


@pytest.mark.parametrize("value", ["2", "yes", "true", "on", "01"])
def test_a_bad_switch_value_names_itself_and_the_choices(monkeypatch, value):
    monkeypatch.setenv("DEPTHLAB_CPU_BF16", value)
    choices = "choose from: 0 (no native bf16), 1 (native bf16)"
    message = f"DEPTHLAB_CPU_BF16='{value}' is not a valid value; {choices}"
    with pytest.raises(UsageError, match=re.escape(message)):
        resolve_precision("auto", "cpu")
    # checked on any device and for any precision: a misspelt value is never silently ignored
    with pytest.raises(UsageError, match=re.escape(message)):
        resolve_precision("fp32", "cuda")


def test_an_unset_or_empty_switch_leaves_the_detection_to_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision_module, "CPUINFO", fake)
    for value in (None, "", " "):
        if value is None:
            monkeypatch.delenv("DEPTHLAB_CPU_BF16", raising=False)
        else:
            monkeypatch.setenv("DEPTHLAB_CPU_BF16", value)
        assert cpu_bf16_switch() is None
        for text, used in ((NATIVE, "bf16"), (EMULATED, "fp32")):
            fake.write_text(text)
            info = resolve_precision("auto", "cpu")
            assert (info.used, info.cpu_bf16_switch) == (used, None)


# ------------------------------------------------------------------------------------------------ runs
def _weights(run: Path) -> dict[str, torch.Tensor]:
    pointer = json.loads((run / "checkpoints" / "last.json").read_text())
    return load_file(run / "checkpoints" / pointer["weights"])


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "images_per_s"} for row in read_metrics(run)]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted 6-step bf16 run (forced: this CPU may emulate bf16)."""
    out = tmp_path_factory.mktemp("bf16") / "reference"
    train(TINY, out)
    return out


@pytest.mark.usefixtures("cpu_bf16_detected")
def test_auto_on_a_native_cpu_trains_in_bf16_and_records_it(tmp_path, monkeypatch, bf16_run):
    fake = tmp_path / "cpuinfo"
    fake.write_text(NATIVE)
    monkeypatch.setattr(precision_module, "CPUINFO", fake)
    auto = tmp_path / "auto"
    train(dataclasses.replace(TINY, precision="auto"), auto)
    assert json.loads((auto / "config.json").read_text())["precision"] == "bf16"  # resolved, not "auto"
    environment = json.loads((auto / "environment.json").read_text())
    assert environment["precision"] == {
        "requested": "auto", "used": "bf16", "device": "cpu", "cpu_bf16_flags": ["avx512_bf16"],
        "cpu_bf16_switch": None,
    }  # fmt: skip
    assert _same_weights(auto, bf16_run) and _rows(auto) == _rows(bf16_run)  # the same as forced bf16

    fake.write_text(EMULATED)
    fp32 = tmp_path / "fp32"
    train(dataclasses.replace(TINY, precision="auto"), fp32)
    assert json.loads((fp32 / "config.json").read_text())["precision"] == "fp32"
    assert json.loads((fp32 / "environment.json").read_text())["precision"]["used"] == "fp32"
    assert not _same_weights(fp32, bf16_run)  # bf16 autocast really changed the arithmetic


def test_auto_under_the_switch_trains_as_that_kind_of_cpu_and_records_it(tmp_path, cpu_bf16, bf16_run):
    """A run with ``precision=auto`` under DEPTHLAB_CPU_BF16=1 is the forced-bf16 run bit for bit; under =0
    it is not (fp32); either way config.json holds the resolved precision and environment.json the switch."""
    out = tmp_path / "auto"
    train(dataclasses.replace(TINY, precision="auto"), out)
    used = "bf16" if cpu_bf16 else "fp32"
    assert json.loads((out / "config.json").read_text())["precision"] == used
    recorded = json.loads((out / "environment.json").read_text())["precision"]
    switch = "1" if cpu_bf16 else "0"
    assert (recorded["requested"], recorded["used"], recorded["cpu_bf16_switch"]) == ("auto", used, switch)
    assert _same_weights(out, bf16_run) is cpu_bf16
    assert (_rows(out) == _rows(bf16_run)) is cpu_bf16


def test_training_runs_under_autocast_and_the_monitor_in_fp32(tmp_path, monkeypatch):
    """The forward passes of training and evaluation run in bf16; the monitor — where the study engine
    computes gradient diagnostics and probes — runs outside autocast, on fp32 parameters, and a forward
    pass it makes yields fp32 activations."""
    seen: list[tuple[str, bool]] = []
    phase = ["train"]
    build = loop_module.build_model

    def build_with_hook(config, bundle):  # noqa: ANN001, ANN202
        model = build(config, bundle)
        model.register_forward_pre_hook(
            lambda m, args: seen.append((phase[0], torch.is_autocast_enabled("cpu")))
        )
        return model

    monitored: list[dict] = []

    def monitor(model: torch.nn.Module, step: int) -> None:
        phase[0] = "monitor"
        x = torch.randn(4, 3, 8, 8)
        out = model.eval()(x)
        model.train()
        monitored.append(
            {
                "autocast": torch.is_autocast_enabled("cpu"),
                "params": {p.dtype for p in model.parameters()},
                "out": out.dtype,
            }
        )
        phase[0] = "train"

    monkeypatch.setattr(loop_module, "build_model", build_with_hook)
    train(TINY, tmp_path / "run", monitor=monitor)
    assert [s for s in seen if s[0] == "train"] and all(on for phase_, on in seen if phase_ == "train")
    assert [on for phase_, on in seen if phase_ == "monitor"] == [False] * 3
    assert monitored == [{"autocast": False, "params": {torch.float32}, "out": torch.float32}] * 3


def test_an_interrupted_bf16_run_resumes_bit_identically(tmp_path, bf16_run, cpu_bf16):
    """Interrupted after step 3 (Ctrl-C: it stops after step 4 with a checkpoint), resumed with
    ``precision=auto`` — which picks fp32 for a new run on a CPU without native bf16, but keeps the run's bf16
    on either kind of CPU — it ends with the uninterrupted run's weights and metrics, bit for bit."""
    out = tmp_path / "interrupted"

    def ctrl_c(event) -> None:  # noqa: ANN001
        if event.kind == "step" and event.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(TINY, out, callback=ctrl_c)
    assert first.status == "interrupted" and first.step == 4
    assert not _same_weights(out, bf16_run)
    with pytest.raises(ConfigError, match="precision: 'bf16' → 'fp32'"):
        train(dataclasses.replace(TINY, precision="fp32"), out, resume=True)
    resumed = train(dataclasses.replace(TINY, precision="auto"), out, resume=True)
    assert resumed.status == "completed" and resumed.step == 6
    assert _same_weights(out, bf16_run) and _rows(out) == _rows(bf16_run)
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"


# ------------------------------------------------------------------------------------------------ parity
PARITY_SEEDS = (0, 1, 2)
PARITY = TrainConfig(
    model="resnet20", data="fashion-mnist", epochs=None, steps=150, batch_size=64, lr=0.1, train_subset=6400,
    test_subset=2000, val_size=0, log_every=50, eval_every=150, device="cpu",
)  # fmt: skip


@pytest.mark.slow
def test_bf16_reaches_the_fp32_test_accuracy_within_the_seed_ci(tmp_path):
    """The default recipe (ResNet-20, SGD + Nesterov, one-cycle, label smoothing, crop + flip) for 150 steps
    on a fixed 6,400-image Fashion-MNIST subset, 3 seeds in each precision: the Welch 95% CI of the
    test-error difference contains 0, and both nets learned (test error far below chance, 90%)."""
    pytest.importorskip("scipy")
    from depthlab.data import DatasetNotFoundError
    from depthlab.stats import estimate, welch

    errors: dict[str, list[float]] = {"fp32": [], "bf16": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # real training, run alone (under the CPU lock): all cores
    try:
        for precision, values in errors.items():
            for seed in PARITY_SEEDS:
                config = dataclasses.replace(PARITY, precision=precision, seed=seed)
                try:
                    summary = train(config, tmp_path / f"{precision}-{seed}")
                except DatasetNotFoundError:
                    pytest.skip("Fashion-MNIST is not installed (make data)")
                values.append(summary.final["test_error"])
    finally:
        torch.set_num_threads(threads)
    bf16, fp32 = estimate(errors["bf16"]), estimate(errors["fp32"])
    assert bf16 is not None and fp32 is not None
    assert max(errors["bf16"] + errors["fp32"]) < 0.35, errors
    difference = welch("bf16", bf16, "fp32", fp32)
    assert difference.ci is not None
    assert difference.ci.low <= 0 <= difference.ci.high, difference.to_dict()
    assert difference.outcome == "not resolved"
