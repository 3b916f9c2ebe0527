"""The Japanese and Korean catalogues (issue 25): every message a reader sees is translated with the msgid's
{fields}, the committed .mo files are what the .po files compile to, figures draw their CJK labels without
missing glyphs, and the report, the README answers table, `report --results` and `explain` follow --lang
while English output stays as it was."""

from __future__ import annotations

import io
import json
import re
import shutil
import string
import warnings
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from markupsafe import escape

from depthlab.cli import main
from depthlab.i18n import LOCALE_DIR, _, language
from depthlab.present.plots import CJK_FONTS, Curve, plot_error_curves, png_bytes, pyplot
from depthlab.report import build_report
from depthlab.report.readme import answers_markdown
from depthlab.studies.degradation.answers import QUESTIONS
from depthlab.studies.results import read_study, results_json
from studies import tiny_study

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("ja", "ko")
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, kanji, hangul


def _extracted() -> set[str]:
    """The msgids `make locales` extracts now (babel.cfg from the repository root, as the Makefile runs it)."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    return {
        m[2] if isinstance(m[2], str) else m[2][0]
        for m in extract_from_dir(str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS)
    }


def _catalogue(lang: str):  # noqa: ANN202 - babel's Catalog
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "depthlab.po").open("rb") as f:
        return read_po(f, locale=lang)


def _fields(text: str) -> set[tuple[str, str, str | None]]:
    """The {name:spec!conversion} fields of a str.format template."""
    return {(n, spec, conv) for _, n, spec, conv in string.Formatter().parse(text) if n is not None}


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    ids = _extracted()
    assert len(ids) > 300 and "Setup" in ids and "supported" in ids  # the template and the N_ marks are read
    return ids


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated_with_the_msgids_fields(lang: str, extracted: set[str]) -> None:
    """Babel's own python_format checker is not used: it reads "10% of" as a %-placeholder, and depthlab's
    messages are str.format templates, checked here field by field (name, format spec, conversion)."""
    messages = {m.id: m for m in _catalogue(lang) if m.id}
    assert set(messages) == extracted, "run `make locales` (a message was added or removed) and translate"
    untranslated = sorted(i for i, m in messages.items() if not m.string or m.fuzzy)
    assert not untranslated, f"{lang}: {len(untranslated)} messages without a translation: {untranslated[:5]}"
    mismatched = [(i, m.string) for i, m in messages.items() if _fields(m.string) != _fields(i)]
    assert not mismatched, f"{lang}: fields differ from the msgid's: {mismatched[:3]}"


@pytest.mark.parametrize("lang", LANGS)
def test_the_committed_mo_is_what_the_po_compiles_to(lang: str) -> None:
    buf = io.BytesIO()
    write_mo(buf, _catalogue(lang))
    buf.seek(0)
    compiled = {(m.id, m.string) for m in read_mo(buf) if m.id}
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "depthlab.mo").open("rb") as f:
        committed = {(m.id, m.string) for m in read_mo(f) if m.id}
    assert committed == compiled, "the .mo is stale: run `make locales` and commit the .mo files"


def test_the_verdicts_and_states_are_translated_as_the_glossary_says() -> None:
    glossary = (LOCALE_DIR / "GLOSSARY.md").read_text()
    for word in ("supported", "contradicted", "not resolved", "still falling", "flat", "rising"):
        row = next(line for line in glossary.splitlines() if line.startswith(f"| {word} |"))
        ja, ko = (cell.strip() for cell in row.strip("|").split("|")[1:3])
        for lang, expected in (("ja", ja), ("ko", ko)):
            with language(lang):
                assert _(word) == expected, (lang, word)


# ---------------------------------------------------------------------------------------------- figures
def _cjk_font() -> bool:
    from matplotlib import font_manager

    pyplot()
    return any(f.name in CJK_FONTS for f in font_manager.fontManager.ttflist)


NO_CJK_FONT = "no Noto Sans CJK font: run `make fonts` (apt-get install fonts-noto-cjk)"


def _draw_without_missing_glyphs(draw) -> None:  # noqa: ANN001
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"(?s).*Glyph .* missing")
        draw()


def _curves() -> list[Curve]:
    return [Curve(f"plain-{d}", d, r, ((0, 60.0), (8, 40.0)), ((0, 62.0), (8, 45.0))) for d in (20, 56)
            for r in (False, True)]  # fmt: skip


@pytest.mark.parametrize("lang", LANGS)
def test_figures_draw_japanese_and_korean_labels_without_missing_glyphs(lang: str) -> None:
    if not _cjk_font():
        pytest.skip(NO_CJK_FONT)
    root, _lines, _weights = tiny_study()
    with language(lang):
        assert CJK.search(_("iterations"))
        _draw_without_missing_glyphs(lambda: png_bytes(plot_error_curves(_curves(), held_out_name="test")))
        # Every figure of the study's report, drawn in the language (its sections draw them).
        result = read_study(root)
        figures = []
        _draw_without_missing_glyphs(
            lambda: figures.extend(f for s in result.study.sections(result) for f in s.figures)
        )
        assert len(figures) == 6 and all(CJK.search(f.title) for f in figures)


def test_the_glyph_check_catches_a_font_without_cjk_glyphs() -> None:
    """The check above is not vacuous: with DejaVu Sans alone, a Japanese label warns."""
    plt = pyplot()
    with plt.rc_context({"font.family": ["DejaVu Sans"]}), language("ja"):
        with pytest.raises(UserWarning, match="Glyph"):
            _draw_without_missing_glyphs(lambda: png_bytes(plot_error_curves(_curves())))


# ----------------------------------------------------------------------------------------------- report
def test_a_japanese_report_has_lang_a_japanese_answers_table_and_says_the_findings_stay_english() -> None:
    root, _lines, _weights = tiny_study()
    html = build_report(root, lang="ja").html
    assert '<html lang="ja">' in html and 'id="english-findings"' in html
    assert "以下の所見は、このバージョンでは英語のままです。" in html
    table = html[html.index('id="answers-table"') : html.index("</table>", html.index('id="answers-table"'))]
    assert '<th class="l">問い</th>' in table and '<th class="l">判定</th>' in table
    answers = read_study(root).answers  # English: the default language
    assert answers and len(re.findall(r"<tr><td", table)) == len(answers)
    with language("ja"):
        for a in answers:
            assert _(QUESTIONS[a.id]) in table and f">{_(a.verdict)}</td>" in table
    # The findings stay English, word for word (those read back in Japanese are the English ones).
    with language("ja"):
        findings = read_study(root).findings
    assert findings and [f.text for f in findings] == [f.text for f in read_study(root).findings]
    for finding in findings:
        assert CJK.search(finding.text) is None and str(escape(finding.text)) in html


def test_an_english_report_is_unchanged() -> None:
    root, _lines, _weights = tiny_study()
    html = build_report(root, lang="en").html
    assert '<html lang="en">' in html and 'id="english-findings"' not in html
    assert CJK.search(html) is None and '<th class="l">question</th>' in html


def test_the_markdown_answers_follow_the_language_and_english_is_results_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _lines, _weights = tiny_study()
    assert main(["report", str(root), "--markdown", "--answers", "--lang", "en"]) == 0
    english = capsys.readouterr().out
    assert english == answers_markdown(json.loads((root / "results.json").read_text())) + "\n"
    assert english.startswith("| question | verdict | key numbers (95% CI) | the paper |")
    assert main(["report", str(root), "--markdown", "--answers", "--lang", "ko"]) == 0
    korean = capsys.readouterr().out
    assert korean.startswith("| 질문 | 판정 | 주요 수치 (95% 신뢰구간) | 논문 |")
    with language("ko"):  # every question and verdict in Korean, from the catalogue
        for a in read_study(root).answers:
            assert _(QUESTIONS[a.id]) != QUESTIONS[a.id] and _(QUESTIONS[a.id]) in korean
            assert f"**{_(a.verdict)}**" in korean
    assert korean.count("\n") == english.count("\n")


def test_report_results_writes_the_study_read_back_in_the_language(tmp_path: Path) -> None:
    root, _lines, _weights = tiny_study()
    out = tmp_path / "results.ja.json"
    assert main(["report", str(root), "--results", str(out), "--lang", "ja"]) == 0
    record = json.loads(out.read_text())
    english = json.loads((root / "results.json").read_text())
    assert record["language"] == "ja"
    assert {k: v for k, v in record.items() if k not in ("language", "answers")} == {
        k: v for k, v in english.items() if k != "answers"
    }  # everything but the answers is results.json's (the findings stay English)
    assert [a["id"] for a in record["answers"]] == [a["id"] for a in english["answers"]]
    assert [a["verdict"] for a in record["answers"]] == [a["verdict"] for a in english["answers"]]
    assert all(CJK.search(a["question"]) and CJK.search(a["paper"]) for a in record["answers"])
    with language("en"):
        assert results_json(read_study(root)) == english


def test_explain_speaks_the_language_and_its_json_stays_english(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "vgg-stack", "--lang", "ja"]) == 0
    out = capsys.readouterr().out
    assert "3×3 畳み込みを k 個重ねると" in out and "受容野" in out
    assert main(["explain", "vgg-stack", "--lang", "ja", "--json"]) == 0
    assert CJK.search(capsys.readouterr().out) is None


def test_the_study_command_prints_its_answers_in_the_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo LANG=ja` runs `depthlab study … --lang ja`: re-run on a finished study (every run is skipped),
    it prints the answers under the Japanese headings, says once that the findings below are English, prints
    them in English, and leaves results.json English."""
    from studies import TINY

    root, _lines, _weights = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    english = (copy / "results.json").read_text()
    args = [
        "study",
        "degradation",
        "--preset",
        "quick",
        "--out",
        str(copy),
        "--device",
        "cpu",
        "--lang",
        "ja",
    ]
    assert main([*args, *(x for kv in TINY for x in ("--set", kv))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    with language("ja"):
        assert _("answers") != "answers" and _("answers") in out and _("question") in out
        assert out.count(_("The findings below are in English in this version.")) == 1
        for a in read_study(copy).answers:
            assert _(a.verdict) in out
    for finding in read_study(copy).findings:
        assert " ".join(finding.text.split())[:40] in out  # rich wraps lines: compare with spaces collapsed
    assert (copy / "results.json").read_text() == english
