"""The study engine and the degradation study: presets, the study directory, resuming, the trainer's
weights, and findings computed from hand-made data for every outcome."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from depthlab.studies import get_study
from depthlab.studies.degradation import PRESETS
from depthlab.studies.degradation.presets import BASE
from depthlab.studies.engine import StudyError, apply_preset_overrides, initial_model, read_study, run_study
from studies import TINY, tiny_preset, tiny_study

STUDY = get_study("degradation")


def test_presets_declare_the_recipes() -> None:
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert quick.data == "fashion-mnist" and quick.depths == (20, 56) and not quick.augment
    assert quick.eval_train and quick.test_at_end
    # Every preset runs at least 3 seeds (issue 14), and says so.
    assert all(p.seeds >= 3 for p in PRESETS.values())
    # quick runs 6: at width 0.5 three seeds did not resolve its headline again on fresh seeds (its notes).
    notes = (Path(__file__).resolve().parents[1] / "results" / "degradation-quick" / "NOTES.md").read_text()
    assert quick.seeds == 6 and "6 seed(s)" in quick.describe() and "six seeds" in quick.note
    assert "Six seeds, not three" in notes
    # A preset's note gives its reason in at most two sentences; its history is in the study's notes.
    assert all(p.note.count(". ") <= 1 for p in PRESETS.values())
    # Each preset is the base recipe with its changes: the quick preset changes its name, its note, the width
    # (0.5: stages 8/16/32, to fit its budget) and the seeds; standard and paper train the paper's widths.
    assert quick.replace(name="base", note="", width=1.0, seeds=3) == BASE
    assert quick.width == 0.5 and "width 0.5: stages 8/16/32" in quick.describe()
    assert PRESETS["standard"].width == paper.width == 1.0 == BASE.width
    # The regime: a fixed 2,000-image subset seen 15 times; a held-out curve of at least 6 points; the plateau
    # window (the last 10% of iterations) starts on a logged row.
    assert quick.train_subset == 2000 and quick.steps * quick.batch_size // quick.train_subset == 15
    assert quick.steps // quick.eval_every >= 6
    assert (quick.steps - round(0.1 * quick.steps)) % quick.log_every == 0
    # The standard preset asks ResNet-56 vs ResNet-20 on more images than quick (the four depths did not fit the
    # one-hour budget on a 2-core CPU: its note says so); its plateau window also starts on a logged row.
    standard = PRESETS["standard"]
    assert standard.depths == (20, 56) and standard.train_subset > quick.train_subset
    assert (standard.steps - round(0.1 * standard.steps)) % standard.log_every == 0
    assert "20/32/44/56" in notes and "budget" in standard.note
    # He et al. 2015 §4.2: batch 128, lr 0.1 ÷10 at 32k and 48k, stop at 64k, wd 1e-4, momentum 0.9, 45k/5k.
    assert (paper.data, paper.batch_size, paper.lr, paper.steps) == ("cifar10", 128, 0.1, 64000)
    assert (paper.schedule, paper.milestones) == ("step", (32000.0, 48000.0))
    assert (paper.weight_decay, paper.momentum, paper.val_size, paper.augment) == (1e-4, 0.9, 5000, True)
    assert 110 in paper.depths and paper.normalize == "pixel" and paper.train_subset is None
    config = paper.train_config("plain56", 3)
    assert (config.steps, config.epochs, config.seed, config.label_smoothing) == (64000, None, 3, 0.0)
    assert config.model_kwargs == {}  # CIFAR nets default to option-A shortcuts, as in the paper
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.steps = 1  # type: ignore[misc]


def test_resnet110_warms_up_at_lr_001_and_full_trains_on_every_image() -> None:
    from depthlab.train.optim import lr_factor

    specs = {s.name: s for s in STUDY.grid(PRESETS["paper"], range(1), "cpu", None)}
    deep, shallow = specs["resnet110-s0"].config, specs["resnet56-s0"].config
    assert (deep.warmup, deep.warmup_lr) == (400, 0.01) and shallow.warmup_lr is None
    lrs = [deep.lr * lr_factor(deep, s, 64000, 352) for s in (0, 399, 400, 31999, 32000, 48000)]
    assert lrs == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.001])
    full = apply_preset_overrides(PRESETS["paper"], ["full=true"]).train_config("resnet20", 0)
    assert full.val_size == 0 and not full.test_at_end


def test_every_net_of_a_preset_is_built_at_its_width() -> None:
    # quick: every run, and the BN-free twins and shattered-gradient nets of the tiny study derived from it,
    # at width 0.5; standard: the paper's widths, so no width keyword at all (its runs are the paper's nets).
    quick = STUDY.grid(PRESETS["quick"], range(2), "cpu", None)
    assert len(quick) == 8 and all(s.config.model_kwargs == {"width": 0.5} for s in quick)
    assert all(s.config.model_kwargs == {} for s in STUDY.grid(PRESETS["standard"], range(1), "cpu", None))
    wide = apply_preset_overrides(PRESETS["quick"], ["width=1"])
    assert wide.model_kwargs == {} and "width" not in wide.describe()
    with pytest.raises(StudyError, match="width must be a positive number.*got -1"):
        apply_preset_overrides(PRESETS["quick"], ["width=-1"])
    root, _, _ = tiny_study()
    assert json.loads((root / "analysis" / "shattered.json").read_text())["settings"]["width"] == 0.5
    twin = dataclasses.replace(
        tiny_preset().train_config("plain20", 0), model_kwargs={"width": 0.5, "norm": None}
    )
    convs = [m for m in initial_model(twin, _bundle()).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs][:1] + [convs[-1].out_channels] == [8, 32]


def test_overrides_are_typed_and_unknown_keys_rejected() -> None:
    p = apply_preset_overrides(
        PRESETS["quick"], ["steps=50", "depths=20,32", "augment=true", "val_size=none"]
    )
    assert (p.steps, p.depths, p.augment, p.val_size) == (50, (20, 32), True, None)
    with pytest.raises(StudyError, match="unknown preset key 'stpes'.*steps"):
        apply_preset_overrides(PRESETS["quick"], ["stpes=5"])
    with pytest.raises(ValueError, match="steps='many'"):
        apply_preset_overrides(PRESETS["quick"], ["steps=many"])
    with pytest.raises(StudyError, match="6n\\+2"):
        apply_preset_overrides(PRESETS["quick"], ["depths=21"])


def test_study_directory_and_results_schema() -> None:
    root, lines, _ = tiny_study()
    results = json.loads((root / "results.json").read_text())
    assert {"study", "preset", "dataset", "runs", "conditions", "findings", "evidence"} <= set(results)
    assert results["study"] == "degradation" and results["dataset"].startswith("synthetic")
    assert [r["model"] for r in results["runs"]] == ["plain20", "resnet20"]
    # results.json agrees with the run directories it was computed from.
    for r in results["runs"]:
        rows = [json.loads(x) for x in (root / "runs" / r["name"] / "metrics.jsonl").read_text().splitlines()]
        last = {row["split"]: row["error"] for row in rows}
        assert r["final_error"] == last
        # The eval-mode training error is over the whole 128-image training subset at the end, and the
        # intermediate held-out points over the 32-image validation subset.
        final = [row for row in rows if row["split"] == "train_eval"][-1]
        assert final["images"] == 128
        assert {row["images"] for row in rows if row["split"] == "val" and row["step"] < 4} == {32}
        assert [row["step"] for row in rows if row["split"] == "test"] == [
            4
        ]  # the test split only at the end
    assert results["findings"] == [e["text"] for e in results["evidence"]]
    # Every comparison is keyed (for `depthlab replicate`) and filed under a question the study answers.
    questions = {a["id"] for a in results["answers"]} | {"degradation", "vanishing", "shortcuts", "deeper_resnet",
                                                          "test_error",
                                                          "shattered", "responses"}  # fmt: skip
    for e in results["evidence"]:
        assert e["key"] and e["question"] in questions
        assert e["outcome"] in (None, "higher", "lower", "not resolved", "equivalent", "unknown")
    assert len({e["key"] for e in results["evidence"]}) == len(results["evidence"])
    for model in ("plain20", "resnet20"):
        diags = json.loads((root / "runs" / f"{model}-s0" / "diagnostics.json").read_text())
        assert set(diags) == {"init", "steps", "end"}
        assert set(diags["init"]) == {"train", "no_bn"} and set(diags["end"]) == {"train", "eval"}
        assert sorted(int(s) for s in diags["steps"]) == [2, 4]
    assert (root / "analysis" / "shattered.json").is_file()
    assert any("training for 4 iterations" in line for line in lines)


def test_no_bn_twins_are_bn_free_with_live_rescaled_branches() -> None:
    root, _, _ = tiny_study()
    for model in ("plain20", "resnet20"):
        d = json.loads((root / "runs" / f"{model}-s0" / "diagnostics.json").read_text())["init"]
        bn, nobn = d["train"], d["no_bn"]
        assert len(bn["layers"]) == len(nobn["layers"]) == 20
        # Without batch norm the loss and every gradient differ from the BN net built from the same seed.
        assert nobn["loss"] != bn["loss"]
        # The ResNet twin's branches are live at init (scaled by 1/√9, not SkipInit's 0); the plain twin has
        # no branch ratio.
        ratios = [b["branch_ratio"] for b in nobn["blocks"]]
        if model == "resnet20":
            assert len(ratios) == 9 and all(r > 0.01 for r in ratios)
        else:
            assert ratios == [None] * 9
    twin = dataclasses.replace(tiny_preset().train_config("resnet20", 0),
                               model_kwargs={"norm": None, "branch_scale": "1/sqrt(blocks)"})  # fmt: skip
    net = initial_model(twin, _bundle())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    shattered = json.loads((root / "analysis" / "shattered.json").read_text())
    assert "1/√blocks" in shattered["settings"]["no_bn"]
    assert {"lag1_autocorrelation", "depth", "residual", "bn"} <= set(shattered["results"][0])


def _bundle():
    from depthlab.train.setup import prepare_bundle

    return prepare_bundle(tiny_preset().train_config("plain20", 0))


def test_init_diagnostics_use_the_trainers_initial_weights() -> None:
    root, _, initial = tiny_study()
    study = read_study(root)
    from depthlab.train import config_from_dict

    run = study.runs[0]
    config = config_from_dict(run.config)
    ours = initial_model(config, _bundle()).state_dict()
    assert ours.keys() == initial[run.model].keys()
    assert all(torch.equal(ours[k], initial[run.model][k]) for k in ours)


def test_probes_during_training_do_not_change_the_run(tmp_path: Path) -> None:
    """The engine's run (with its probes every evaluation) ends with the weights of a plain train()."""
    from depthlab.train import train
    from depthlab.train.rundir import load_run_model

    root, _, _ = tiny_study()
    spec = next(s for s in STUDY.grid(tiny_preset(), range(1), "cpu", None) if s.name == "resnet20-s0")
    train(spec.config, tmp_path / "direct")
    a = load_run_model(root / "runs" / "resnet20-s0").state_dict()
    b = load_run_model(tmp_path / "direct").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_skips_completed_runs(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != "results.json"}
    lines: list[str] = []
    run_study(STUDY, tiny_preset(), copy, device="cpu", overrides=TINY, progress=lines.append)
    assert [x for x in lines if "skipped" in x] == [
        "[1/2] plain20-s0: already completed, skipped",
        "[2/2] resnet20-s0: already completed, skipped",
    ]
    assert {p: p.read_bytes() for p in before} == before  # nothing retrained or rewritten


def test_a_study_directory_refuses_other_settings(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    shutil.copytree(root, tmp_path / "study")
    with pytest.raises(StudyError, match="different settings \\(steps\\)"):
        run_study(STUDY, tiny_preset("steps=5"), tmp_path / "study", device="cpu")


def test_status_reads_the_settings_the_directory_was_made_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22: a directory made with --set values describes itself. ``--status`` with none of them (the
    plain quick preset, other seeds) lists the directory's grid — its runs, its steps — read from study.json;
    only a command that trains compares the command line's settings with the directory's."""
    from depthlab.cli import main
    from depthlab.studies.engine import recorded_settings, study_status

    root, _, _ = tiny_study()
    shutil.copytree(root, tmp_path / "study")
    recorded = recorded_settings(tmp_path / "study", STUDY)
    assert recorded is not None and recorded.preset == dataclasses.replace(tiny_preset(), seeds=1)
    assert (recorded.seeds, recorded.seed_offset, recorded.overrides) == (1, 0, tuple(TINY))
    states = study_status(STUDY, PRESETS["quick"], tmp_path / "study", seeds=6, seed_offset=4)
    assert [(s.name, s.state, s.status, s.total_steps) for s in states] == [
        ("plain20-s0", "done", "completed", 4),
        ("resnet20-s0", "done", "completed", 4),
    ]
    argv = ["experiment", "degradation", "--preset", "quick", "--out", str(tmp_path / "study"), "--status"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "plain20-s0   done (completed)  step 4/4" in out and "2 done, 0 running, 0 waiting" in out
    assert main([*argv, "--seeds", "3", "--set", "steps=99"]) == 0  # the command line's settings: unused
    assert "2 done, 0 running, 0 waiting" in capsys.readouterr().out
    with pytest.raises(StudyError, match="different settings"):  # training compares them
        run_study(STUDY, PRESETS["quick"], tmp_path / "study", device="cpu")
    assert main(["experiment", "vgg-depth", "--out", str(tmp_path / "study"), "--status"]) == 2
    assert "holds a 'degradation' study, not 'vgg-depth'" in capsys.readouterr().err
    # A directory nothing has started in: the command line's grid, every run waiting.
    fresh = study_status(STUDY, tiny_preset("seeds=2"), tmp_path / "fresh")
    assert [s.state for s in fresh] == ["waiting"] * 4


def test_an_interrupted_run_is_resumed_exactly(tmp_path: Path) -> None:
    lines: list[str] = []

    def interrupt_once(line: str) -> None:
        lines.append(line)
        if "plain20-s0: step 2/4" in line and not any("resuming" in x for x in lines):
            os.kill(os.getpid(), signal.SIGINT)  # the trainer turns Ctrl-C into a checkpoint and a stop

    preset = tiny_preset("shatter_points=0")
    run_study(STUDY, preset, tmp_path, device="cpu", progress=interrupt_once)
    summary = json.loads((tmp_path / "runs/plain20-s0/summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] < 4
    assert not (tmp_path / "runs/resnet20-s0").exists()  # the study stopped with the interrupted run

    run_study(STUDY, preset, tmp_path, device="cpu", progress=lines.append)
    assert any("plain20-s0: resuming" in x for x in lines)
    study = read_study(tmp_path)
    assert [(r.model, r.status, r.step) for r in study.runs] == [
        ("plain20", "completed", 4),
        ("resnet20", "completed", 4),
    ]
    assert [s for s, _ in study.runs[0].curves["train"]] == [1, 2, 3, 4]  # no row lost or repeated
    # The resumed run ends where the uninterrupted one did (same weights, bit for bit, on CPU).
    root, _, _ = tiny_study()
    from depthlab.train.rundir import load_run_model

    a = load_run_model(tmp_path / "runs/plain20-s0").state_dict()
    b = load_run_model(root / "runs/plain20-s0").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_study_and_analysis_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="unknown study 'degredation'; choose from: .*degradation"):
        get_study("degredation")
    with pytest.raises(StudyError, match="unknown analysis 'lesions'"):
        run_study(STUDY, tiny_preset(), tmp_path, analyses=["lesions"])


def test_shattered_gradient_nets_are_built_at_the_presets_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every net of the shattered-gradient lines (with BN and the BN-free twins) carries quick's width.
    import types

    import depthlab.studies.degradation.study as degradation
    from depthlab.studies.degradation.study import run_shattered

    calls: list[dict] = []

    def record(name: str, **kwargs: object) -> None:
        calls.append(kwargs)
        raise StopIteration  # the keywords are all this test needs

    monkeypatch.setattr(degradation, "create_model", record)
    bundle = types.SimpleNamespace(num_classes=4, in_channels=1)
    with pytest.raises(StopIteration):
        run_shattered(tiny_preset(), tmp_path, bundle, None, None, [0])
    assert calls and calls[0]["width"] == 0.5
