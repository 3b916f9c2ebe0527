"""``build_report(directory)``: one self-contained HTML page from any study directory (or directory of runs).

Inputs are run directories (config.json, environment.json, metrics.jsonl, summary.json, diagnostics.json),
the study's study.json and its ``analysis/*.json``; nothing is trained or evaluated. The page holds the
findings, the sections the study declares (tables and figures: PNG, base64 data URIs), a "Why it works"
section when lesion/landscape/attribution results exist, the models' parameters and MACs, per-run details,
the environment and the commands that reproduce it all. The template is rendered by jinja2 with
autoescaping on, so nothing read from disk can inject markup.

MACs count multiply-accumulates of Conv2d and Linear layers for one image at the runs' image size, as
:func:`depthlab.analysis.summarize` counts them (FLOPs = 2 × MACs).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from depthlab import create_model
from depthlab.analysis import summarize
from depthlab.i18n import _, language
from depthlab.present.format import pct
from depthlab.present.types import ReportFigure, Section
from depthlab.report.answers import group_findings
from depthlab.report.why import why_section
from depthlab.studies.declare import TRAIN_FIELDS, Recipe
from depthlab.studies.results import StudyResult, StudyRun, read_study, reproduce_commands
from depthlab.train import TrainConfig

__all__ = ["Report", "Figure", "ModelCost", "build_report", "model_costs", "render", "export_figures"]


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str
    png_base64: str
    name: str = ""


@dataclass(frozen=True)
class ModelCost:
    model: str
    params: int
    macs: int  # multiply-accumulates of Conv2d + Linear for one image
    input_shape: tuple[int, int, int]


@dataclass(frozen=True)
class Report:
    html: str
    num_runs: int
    figures: tuple[str, ...]  # titles, in page order
    pngs: tuple[tuple[str, bytes], ...] = ()  # (name, PNG bytes) of every figure


def _embed(fig: ReportFigure) -> Figure:
    return Figure(fig.title, fig.caption, base64.b64encode(fig.png).decode("ascii"), fig.name)


def model_costs(runs: Sequence[StudyRun]) -> list[ModelCost]:
    """Parameters and MACs of each distinct model of ``runs``, built as the runs built them, for one image
    at the runs' image size (:func:`depthlab.analysis.summarize`)."""

    out: dict[str, ModelCost] = {}
    for r in runs:
        if r.model in out or not r.data:
            continue
        kwargs = dict(r.config.get("model_kwargs", {}))
        num_classes = kwargs.pop("num_classes", r.data["num_classes"])
        in_channels = kwargs.pop("in_channels", r.data["in_channels"])
        shape = (int(in_channels), int(r.data["image_size"]), int(r.data["image_size"]))
        model = create_model(r.model, num_classes=num_classes, in_channels=in_channels, **kwargs)
        summary = summarize(model, shape)
        out[r.model] = ModelCost(r.model, summary.params, summary.macs, shape)
    return sorted(out.values(), key=lambda c: (c.model.rstrip("0123456789"), c.params))


def _environment(runs: Sequence[StudyRun]) -> tuple[list[tuple[str, str]], list[str]]:
    """The first run's environment as (key, value) rows, and notes on keys where runs differ."""
    envs = [r.environment for r in runs if r.environment]
    if not envs:
        return [], []
    first = envs[0]
    rows = []
    for key, value in first.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        rows.append((key, str(value)))
    notes = [
        _("runs differ in {key}: {values}").format(
            key=key, values=", ".join(sorted({str(e.get(key)) for e in envs}))
        )
        for key in first
        if key not in ("hostname",) and len({str(e.get(key)) for e in envs}) > 1
    ]
    return rows, notes


def build_report(
    directory: str | Path, *, reproduce_dir: str | None = None, lang: str | None = "en"
) -> Report:
    """Render the report of the study (or directory of runs) at ``directory`` in ``lang`` (``en``, ``ja``,
    ``ko``; ``None``: from the environment, :func:`depthlab.i18n.resolve_language`).

    ``reproduce_dir`` is the directory named in the reproduce commands (default: ``directory`` as given).
    The study is read back in that language (its answers and figures are built from translated templates;
    the findings' sentences stay English in this version, and the report says so).
    """
    root = Path(directory)
    with language(lang) as code:
        result = read_study(root)
        return render(result, reproduce_dir or str(directory), lang=code)


# Training fields the Setup table always shows; the others only where they differ from TrainConfig's defaults.
_ALWAYS = ("data", "steps", "batch_size", "optimizer", "lr", "schedule", "momentum", "weight_decay", "augment",
           "precision")  # fmt: skip


def _setup(preset: Recipe) -> list[tuple[str, str]]:
    """The preset as (name, value) rows: the report's Setup table (every setting in a table, none in prose) —
    the study's own fields, then the shared training fields that are not TrainConfig's defaults."""

    def text(value: object) -> str:
        if isinstance(value, tuple):
            return ", ".join(str(v) for v in value) or "—"
        return "—" if value is None else str(value)

    rows = [(f.name, text(getattr(preset, f.name))) for f in dataclasses.fields(preset)
            if f.name not in ("name", "note", "train")]  # fmt: skip
    defaults = TrainConfig()
    rows += [(k, text(getattr(preset.train, k))) for k in TRAIN_FIELDS
             if k in _ALWAYS or getattr(preset.train, k) != getattr(defaults, k)]  # fmt: skip
    return rows


def render(result: StudyResult, directory: str, lang: str = "en") -> Report:
    runs = list(result.runs)
    sections: list[Section] = list(result.study.sections(result)) if result.study is not None else []
    why = why_section(result)
    if why is not None:
        sections.append(why)
    pngs = tuple((f.name, f.png) for s in sections for f in s.figures)
    env_rows, env_notes = _environment(runs)
    preset = result.preset
    study = result.study
    title = (
        (_(study.title) if study else _("Runs"))
        + f" — {result.dataset}"
        + (_(", preset {name}").format(name=preset.name) if preset else "")
    )
    context = {
        "lang": lang,
        "setup": _setup(preset) if preset is not None else [],
        "title": title,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "claim": _(study.claim) if study else "",
        "preset": preset,
        "seeds": result.seeds,
        "overrides": result.overrides,
        "answers": [a.to_dict() for a in result.answers],
        "finding_groups": [
            {"question": q, "findings": [f.text for f in fs]}
            for q, fs in group_findings(result.answers, result.findings)
        ],
        "sections": [
            {
                "id": s.id,
                "title": s.title,
                "text": s.text,
                "tables": s.tables,
                "figures": [_embed(f) for f in s.figures],
            }
            for s in sections
        ],
        "runs": [
            {
                "label": r.condition,
                "name": r.name,
                "seed": r.seed,
                "status": r.status,
                "step": r.step,
                "train": pct(r.final.get("train_eval", r.final.get("train"))),
                "val": pct(r.final.get("val")),
                "test": pct(r.final.get("test")),
                "wall": f"{r.wall_seconds:.0f} s",
                "speed": f"{r.images_per_s:.0f}" if r.images_per_s else "—",
                "dir": str(r.run_dir),
            }
            for r in runs
        ],
        "costs": model_costs(runs),
        "environment": env_rows,
        "environment_notes": env_notes,
        "commands": reproduce_commands(result, directory),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("depthlab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(gettext=_, ngettext=_ngettext, newstyle=False)  # type: ignore[attr-defined]
    html = env.get_template("report.html").render(**context)
    titles = tuple(f.title for s in sections for f in s.figures)
    return Report(html=html, num_runs=len(runs), figures=titles, pngs=pngs)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _(singular if n == 1 else plural)


def export_figures(report: Report, folder: str | Path) -> list[Path]:
    """Write every figure of ``report`` as ``folder/NAME.png``; returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in report.pngs:
        path = out / f"{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths
