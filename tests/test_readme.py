"""The README and the docs pages quote generated tables and committed artifacts; they must not drift. Blocks
may sit in README.md or any docs/*.md page (the deep dives moved there, issue 24); the README's first screen
quotes the demo's answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depthlab.cli.models import markdown_table
from depthlab.registry import describe_models

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


class _Pages:
    """README.md and every docs page as one text, for the quoted blocks wherever they now sit."""

    @staticmethod
    def read_text() -> str:
        return "\n".join(p.read_text() for p in [README, *DOCS])


PAGES = _Pages()


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    head = text[: text.index("## ", text.index("make test"))]
    assert "make demo" in head and "make test" in head


def test_readme_model_table_is_current() -> None:
    text = PAGES.read_text()
    match = re.search(r"<!-- models:start -->\n(.*?)\n<!-- models:end -->", text, re.S)
    assert match, "README.md lacks the <!-- models:start --> ... <!-- models:end --> block"
    expected = markdown_table(describe_models())
    assert match.group(1).strip() == expected, (
        "README model table is out of date: regenerate it with `depthlab models --markdown`"
    )


def test_readme_narrow_table_is_current() -> None:
    """The narrow-variant table is the output of the command it names, and says so."""
    import contextlib
    import io
    import shlex

    from depthlab.cli import main

    text = " ".join(PAGES.read_text().split())
    match = re.search(r"<!-- narrow:start --> (.*?) <!-- narrow:end -->", text)
    assert match, "README.md lacks the <!-- narrow:start --> ... <!-- narrow:end --> block"
    command = (
        "depthlab models googlenet 'vgg*' resnet20 plain20 resnet56 plain56 --width 1 0.5 0.25 --markdown"
    )
    assert f"`{command}`" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(shlex.split(command)[1:]) == 0
    assert match.group(1).strip() == " ".join(out.getvalue().split()), (
        f"README narrow-variant table is out of date: regenerate it with `{command}`"
    )
    # It lists the nets the quick degradation study trains, at the width it trains them.
    for name in ("resnet20", "plain20", "resnet56", "plain56"):
        assert f"| `{name}` | default |" in match.group(1)


def test_readme_states_the_measured_resnet50_table1_macs() -> None:
    # The Analysis section quotes the measured ResNet-50 MACs next to the paper's 3.8 G (see
    # test_analysis.py::test_resnet50_table1_macs_against_the_published_3_8 for why they differ).
    import torch

    import depthlab
    from depthlab.analysis import summarize

    with torch.device("meta"):
        model = depthlab.create_model("resnet50", stride_on="1x1")
    gmacs = summarize(model, (3, 224, 224)).macs / 1e9
    text = " ".join(PAGES.read_text().split())
    assert f"ResNet-50 measures {gmacs:.2f} G against the published 3.8" in text


ROOT = README.parent
RESULT_BLOCK = re.compile(
    r"<!-- results:(?P<name>[\w-]+):start -->\n(?P<body>.*?)\n<!-- results:(?P=name):end -->", re.S
)


def test_readme_quotes_the_committed_study_results_verbatim() -> None:
    """Every results block is what `depthlab report DIR --markdown` makes of results/NAME/results.json."""
    import json

    from depthlab.report.readme import results_markdown

    blocks = {m["name"]: m["body"] for m in RESULT_BLOCK.finditer(PAGES.read_text())}
    assert "degradation-quick" in blocks, "README.md lacks the <!-- results:degradation-quick:start --> block"
    for name, body in blocks.items():
        path = ROOT / "results" / name / "results.json"
        assert path.is_file(), f"README quotes results/{name}/results.json, which is not committed"
        expected = results_markdown(json.loads(path.read_text()))
        assert body.strip() == expected, (
            f"README block {name} differs from results/{name}/results.json: regenerate it with "
            f"`depthlab report results/{name} --markdown`"
        )


def test_readme_timings_and_figures_come_from_committed_artifacts() -> None:
    """Wall times quoted in the README equal the committed timing/benchmark JSON; every figure it shows
    exists in the repository."""
    import json

    text = " ".join(PAGES.read_text().split())
    for timing in sorted(ROOT.glob("results/*/timing.json")):
        seconds = json.loads(timing.read_text())["wall_seconds"]
        quoted = f"{timing.parent.name} took {seconds} s ({seconds / 60:.1f} min)"
        assert quoted in text, f"README must quote {timing.relative_to(ROOT)} as '{quoted}'"
    for page in [README, *DOCS]:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / image).is_file(), (
                f"{page.name} shows {image}, which is not in the repository"
            )


def test_readme_speed_claims_are_the_committed_benchmark_results() -> None:
    """The throughput table and the summary timing are what benchmarks/ wrote to benchmarks/results/."""
    import importlib.util
    import json

    text = PAGES.read_text()
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = json.loads((ROOT / "benchmarks" / "results" / "train_throughput.json").read_text())
    match = re.search(
        r"<!-- bench:train_throughput:start -->\n(.*?)\n<!-- bench:train_throughput:end -->", text, re.S
    )
    assert match, "README.md lacks the <!-- bench:train_throughput:start --> block"
    assert match.group(1).strip() == module.markdown_table(record), (
        "README throughput table differs from benchmarks/results/train_throughput.json: regenerate it with "
        "`python benchmarks/train_throughput.py --markdown`"
    )
    assert f"{record['peak_flops'] / 1e9:.0f} GFLOP/s" in text
    summary = json.loads((ROOT / "benchmarks" / "results" / "summary_speed.json").read_text())
    end_to_end = summary["timings"]["end to end (fresh process, table printed)"]["min_s"]
    assert f"takes {end_to_end:.1f} s end to end" in " ".join(text.split())


def test_readme_compare_table_is_current() -> None:
    from depthlab.cli.analysis import CLASSIC_MODELS, build_summary, compare_markdown

    match = re.search(r"<!-- compare:start -->\n(.*?)\n<!-- compare:end -->", PAGES.read_text(), re.S)
    assert match, "README.md lacks the <!-- compare:start --> block"
    expected = compare_markdown([(name, build_summary(name, None)) for name in CLASSIC_MODELS])
    assert match.group(1).strip() == expected, "regenerate it with `depthlab compare --markdown`"


REPLICATION_BLOCK = re.compile(
    r"<!-- replication:(?P<name>[\w-]+):start -->\n(?P<body>.*?)\n<!-- replication:(?P=name):end -->", re.S
)


def test_every_committed_result_has_a_replication_that_the_readme_quotes() -> None:
    """results/NAME is committed only with results/NAME-replication: the same study and preset on fresh seeds,
    its replication.json (`depthlab replicate --pooled`) naming exactly the two seed lists, the pooled study
    of both in results/NAME-replication/pooled, and the README quoting `replication_markdown` of it
    verbatim."""
    import json

    from depthlab.report.readme import replication_markdown

    blocks = {m["name"]: m["body"] for m in REPLICATION_BLOCK.finditer(PAGES.read_text())}
    originals = [
        p.parent
        for p in sorted(ROOT.glob("results/*/results.json"))
        if not p.parent.name.endswith("-replication")
    ]
    assert originals, "no study results are committed under results/"
    for original in originals:
        name = original.name
        twin = original.with_name(f"{name}-replication")
        path = twin / "replication.json"
        if not path.is_file() and (twin / "status.json").is_file():
            # A replication that could not be finished (the GPU time ran out) is committed as what it is: the
            # status of its directory (`depthlab study … --status --status-json`), never as a result, and the
            # docs say how far it got.
            status = json.loads((twin / "status.json").read_text())
            a = json.loads((original / "results.json").read_text())
            assert status["completed"] < status["total"] and not set(status["seeds"]) & set(a["seed_list"])
            quoted = f"its replication on fresh seeds {status['seeds'][0]}–{status['seeds'][-1]} did not finish: {status['completed']} of its {status['total']} runs completed"
            assert quoted in " ".join(PAGES.read_text().split()), f"the docs must say '{quoted}'"
            continue
        assert path.is_file(), f"results/{name} is committed without {path.relative_to(ROOT)}"
        record = json.loads(path.read_text())
        a = json.loads((original / "results.json").read_text())
        b = json.loads((twin / "results.json").read_text())
        assert record["fresh_seeds"] and not set(record["seeds_a"]) & set(record["seeds_b"])
        assert list(record["seeds_a"]) == list(a["seed_list"]) and list(record["seeds_b"]) == list(
            b["seed_list"]
        )
        assert record["study"] == a["study"] == b["study"] and record["preset"] == a["preset"] == b["preset"]
        # The pooled study (`depthlab pool`) sits in the replication's pooled/: exactly both seed lists.
        pooled = json.loads((twin / "pooled" / "results.json").read_text())
        assert record["seeds_pooled"] == pooled["seed_list"] == sorted(a["seed_list"] + b["seed_list"])
        assert pooled["study"] == a["study"] and pooled["preset"] == a["preset"]
        by_key = {e["key"]: e for e in pooled["evidence"] if e.get("key")}
        for f in record["findings"]:
            assert f["outcome_pooled"] == by_key[f["key"]]["outcome"], f["key"]
        assert name in blocks, f"README.md lacks the <!-- replication:{name}:start --> block"
        assert blocks[name].strip() == replication_markdown(record), (
            f"README replication block {name} differs from {path.relative_to(ROOT)}: regenerate it with "
            f"`depthlab replicate results/{name} results/{name}-replication --markdown`"
        )


def test_readme_degradation_preset_table_matches_the_presets() -> None:
    """Each CPU preset's row names its depths, iterations and training-subset size as the code defines them."""
    from depthlab.studies.degradation.presets import PRESETS

    rows = {
        line.split("|")[1].strip(): line for line in PAGES.read_text().splitlines() if line.startswith("| ")
    }
    for name in ("quick", "standard"):
        preset = PRESETS[name]
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert cells[2] == ", ".join(map(str, preset.depths)), (name, cells)
        assert cells[3] == f"{preset.steps:,}", (name, cells)
        assert f"{preset.train_subset:,}-image training subset" in cells[1], (name, cells)
        assert f"{preset.seeds} seeds" in cells[4], (name, cells)
        width = (
            f"width {preset.width:g} (stages {preset.stage_widths}" if preset.width != 1 else "paper's widths"
        )
        assert width in cells[4], (name, cells)


def test_readme_quotes_the_committed_workers_benchmark() -> None:
    """The several-workers claim is benchmarks/results/study_workers.json: each run trained once, the same
    checkpoints and results as one worker, and both wall times."""
    import json

    record = json.loads((ROOT / "benchmarks" / "results" / "study_workers.json").read_text())
    assert all(n == 1 for n in record["times_trained"].values()) and record["times_trained"]
    assert record["weights_identical"] and record["results_equal"]
    text = " ".join(PAGES.read_text().split())
    quoted = (
        f"one worker took {record['one_worker_seconds']} s and {record['workers']} workers "
        f"{record['workers_seconds']} s ({record['speedup']}×)"
    )
    assert quoted in text, f"README must quote benchmarks/results/study_workers.json as '{quoted}'"


def test_readme_quotes_the_committed_thread_split_benchmark() -> None:
    """`make demo`'s one single-thread worker per core rests on benchmarks/results/thread_split.json: the
    README quotes every row, and the narrow nets the quick preset trains gain from the split."""
    import json

    record = json.loads((ROOT / "benchmarks" / "results" / "thread_split.json").read_text())
    text = " ".join(PAGES.read_text().split())
    for row in record["results"]:
        assert row["ratio"] == round(row["split_images_per_s"] / row["together_images_per_s"], 2)
        quoted = (
            f"{row['model']} at width {row['width']:g}: {row['together_images_per_s']:g} vs "
            f"{row['split_images_per_s']:g} images/s ({row['ratio']:.2f}×)"
        )
        assert quoted in text, f"README must quote benchmarks/results/thread_split.json as '{quoted}'"
    narrow = [r for r in record["results"] if r["width"] == 0.5]
    assert narrow and all(r["ratio"] > 1 for r in narrow), "the README's reason for split workers must hold"


def test_readme_first_screen_is_short() -> None:
    """What a learner sees before the Contents — what depthlab is, the two commands, the demo's answers and
    one figure — fits in 120 lines (issue 24)."""
    text = README.read_text()
    assert text.index("## Contents") > 0
    assert len(text[: text.index("## Contents")].splitlines()) <= 120


def test_readme_quotes_the_demos_answers_and_its_replication_headline() -> None:
    import json

    from depthlab.report.readme import answers_markdown, replication_headline

    text = README.read_text()
    answers = re.search(
        r"<!-- answers:degradation-quick:start -->\n(.*?)<!-- answers:degradation-quick:end -->", text, re.S
    )
    assert answers, "README.md lacks the <!-- answers:degradation-quick:start --> block"
    results = json.loads((ROOT / "results" / "degradation-quick" / "results.json").read_text())
    assert answers.group(1).strip() == answers_markdown(results), (
        "the README's answers differ from results/degradation-quick/results.json: regenerate them with "
        "`depthlab report results/degradation-quick --markdown --answers`"
    )
    headline = re.search(
        r"<!-- headline:degradation-quick:start -->\n(.*?)<!-- headline:degradation-quick:end -->", text, re.S
    )
    assert headline, "README.md lacks the <!-- headline:degradation-quick:start --> block"
    record = json.loads((ROOT / "results" / "degradation-quick-replication" / "replication.json").read_text())
    assert headline.group(1).strip() == replication_headline(record)
    # The headline follows `replicated` (issue 23): it says "replicated" only when the record does.
    assert ("**replicated**" in headline.group(1)) == bool(record["replicated"])


@pytest.mark.parametrize("lang", ["ja", "ko"])
def test_the_japanese_and_korean_readmes_quote_the_demos_answers_in_their_language(lang: str) -> None:
    """README.ja.md and README.ko.md (issue 25): the two commands with LANG, and the demo's answers table as
    `depthlab report results/degradation-quick --markdown --answers --lang LANG` prints it from the committed
    results.LANG.json — the same study as results.json (every other key equal, the same questions and verdicts),
    read back in that language; the English README links both on its first screen."""
    import json

    from depthlab.i18n import language
    from depthlab.report.readme import answers_markdown

    page = ROOT / f"README.{lang}.md"
    text = page.read_text()
    head = text[: text.index("## ")]
    assert f"make demo LANG={lang}" in head and "make test" in head
    english = json.loads((ROOT / "results" / "degradation-quick" / "results.json").read_text())
    translated = json.loads((ROOT / "results" / "degradation-quick" / f"results.{lang}.json").read_text())
    assert translated["language"] == lang
    assert {k: v for k, v in translated.items() if k not in ("language", "answers")} == {
        k: v for k, v in english.items() if k != "answers"
    }, f"results.{lang}.json is not of the study results.json records: rewrite it with `make publish-demo`"
    assert [(a["id"], a["verdict"]) for a in translated["answers"]] == [
        (a["id"], a["verdict"]) for a in english["answers"]
    ]
    block = re.search(
        r"<!-- answers:degradation-quick:start -->\n(.*?)<!-- answers:degradation-quick:end -->", text, re.S
    )
    assert block, f"{page.name} lacks the <!-- answers:degradation-quick:start --> block"
    with language(lang):
        expected = answers_markdown(translated)
    assert block.group(1).strip() == expected, (
        f"{page.name}'s answers differ from results/degradation-quick/results.{lang}.json: regenerate them with "
        f"`depthlab report results/degradation-quick --markdown --answers --lang {lang}`"
    )
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]", expected)  # in the language, not English
    first_screen = README.read_text()[: README.read_text().index("## Contents")]
    assert f"(README.{lang}.md)" in first_screen
