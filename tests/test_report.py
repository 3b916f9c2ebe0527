"""``depthlab report``: one self-contained HTML page, checked in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from markupsafe import escape

from depthlab import create_model
from depthlab.cli import main
from depthlab.report import build_report, model_costs
from depthlab.studies.engine import read_study
from studies import tiny_study  # the shared tiny study (run once per session)

# Screenshots are kept only when asked: DEPTHLAB_TEST_ARTIFACTS=DIR.
ARTIFACTS = os.environ.get("DEPTHLAB_TEST_ARTIFACTS")
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)

# Appended to a copy of the report: once everything has loaded, write what the page looks like into the DOM,
# where `chromium --dump-dom` can read it.
PROBE = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const result = {
    images: imgs.length,
    broken: imgs.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt),
    widths: imgs.map((i) => i.naturalWidth),
    tables: Array.from(document.querySelectorAll("table[id]")).map((t) => t.id),
    result_rows: document.querySelectorAll("#results-table tbody tr").length,
    findings: document.querySelectorAll("details.findings ul.findings li").length,
    answers: document.querySelectorAll("#answers-table tbody tr").length,
    lang: document.documentElement.lang,
    answers_header: Array.from(document.querySelectorAll("#answers-table thead th")).map((t) => t.textContent),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def test_report_from_the_study(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    out = tmp_path / "report.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # Self-contained: every image is a data URI, nothing is fetched.
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)
    # Fig. 6, the running error, the block-gradient panels, the ratio during training, shattered gradients,
    # Fig. 7.
    assert html.count('src="data:image/png;base64,') == 6
    for table in ("results-table", "gradients-table", "models-table", "runs-table", "environment-table"):
        assert f'id="{table}"' in html
    study = read_study(root)
    assert study.findings
    for finding in study.findings:
        assert str(escape(finding.text)) in html
    for title in ("Shattered gradients", "One gradient measure for every condition", "ResNet paper Fig. 6"):
        assert title in html
    assert "depthlab study degradation --preset quick --seeds 1 --set " in html
    assert f"depthlab report {root}" in html


def test_macs_and_params_match_an_independent_count() -> None:
    root, _, _ = tiny_study()
    costs = {c.model: c for c in model_costs(read_study(root).runs)}
    # The tiny study derives from quick, so its nets are built at quick's width (0.5).
    model = create_model("resnet20", num_classes=4, in_channels=1, width=0.5)
    assert costs["resnet20"].params == sum(p.numel() for p in model.parameters())
    assert costs["plain20"].params == costs["resnet20"].params  # option A: the shortcuts are free
    # MACs of conv and linear layers by hand, from the output sizes seen by forward hooks.
    macs = 0

    def count(m: torch.nn.Module, i: tuple[torch.Tensor, ...], o: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, torch.nn.Conv2d):
            macs += o.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            macs += o.numel() * m.in_features

    for m in model.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 8, 8))
    assert costs["resnet20"].macs == macs
    assert costs["resnet20"].input_shape == (1, 8, 8)


def test_everything_read_from_disk_is_escaped(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    env_path = copy / "runs/plain20-s0/environment.json"
    env = json.loads(env_path.read_text())
    env["cpu"] = '<img src=x onerror="alert(1)">'
    env_path.write_text(json.dumps(env))
    html = build_report(copy).html
    assert '<img src=x onerror="alert(1)">' not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_a_plain_directory_of_runs_gets_train_commands(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    shutil.copytree(root / "runs", tmp_path / "runs")
    report = build_report(tmp_path)
    assert report.num_runs == 2
    assert "depthlab train plain20 " in report.html and "--set=steps=4" in report.html


def test_figures_are_exported_as_png_and_markdown_quotes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = tiny_study()
    assert (
        main(["report", str(root), "--out", str(tmp_path / "r.html"), "--figures", str(tmp_path / "figs")])
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "shattered_gradients.png" in names and "fig6_error_curves.png" in names
    assert all((tmp_path / "figs" / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    capsys.readouterr()
    assert main(["report", str(root), "--markdown"]) == 0
    out = capsys.readouterr().out
    results = json.loads((root / "results.json").read_text())
    assert all(f"- {sentence}" in out for sentence in results["findings"])
    assert "| plain-20 | 1 |" in out


def test_missing_directory_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no run directories" in capsys.readouterr().err


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not found: run `make browser` (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    html = build_report(root).html
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    common += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, f"the probe did not run; chromium printed: {dom[:500]}"
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["images"] == 6 and probe["broken"] == [] and min(probe["widths"]) > 100
    assert {"results-table", "models-table", "runs-table", "gradients-table"} <= set(probe["tables"])
    assert probe["result_rows"] == 1 and probe["findings"] >= 5
    assert probe["answers"] == len(json.loads((root / "results.json").read_text())["answers"]) >= 1

    folder = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,4000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: run `make browser`")
@pytest.mark.parametrize("lang", ["ja", "ko"])
def test_a_japanese_or_korean_report_renders_in_headless_chromium(lang: str, tmp_path: Path) -> None:
    """Issue 25: the report in the reader's language renders, says its language, and shows every answer, under
    the catalogue's column headings (the msgids, looked up independently of the report's code)."""
    import gettext

    from depthlab.i18n import DOMAIN, LOCALE_DIR

    root, _, _ = tiny_study()
    probe = _chromium_probe(build_report(root, lang=lang).html, tmp_path)
    assert probe["lang"] == lang
    assert probe["answers"] == len(json.loads((root / "results.json").read_text())["answers"]) >= 1
    catalogue = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang])
    for english in ("question", "verdict"):
        assert catalogue.gettext(english) != english  # translated, so the check below can fail
        assert catalogue.gettext(english) in probe["answers_header"]
    assert probe["broken"] == [] and min(probe["widths"]) > 100
    if ARTIFACTS:  # a screenshot for a person to look at (the glyphs: the figure test checks them)
        folder = Path(ARTIFACTS)
        folder.mkdir(parents=True, exist_ok=True)
        page = tmp_path / "report.html"
        common = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ]
        subprocess.run(
            [*common, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={folder / f'report.{lang}.png'}",
             "--window-size=1200,3000", page.as_uri()],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip


def test_study_analyses_feed_the_why_it_works_section(tmp_path: Path) -> None:
    """`--analyses lesion` runs after training (skipping the finished runs) and the report shows it."""
    from depthlab.studies import get_study
    from depthlab.studies.engine import run_study
    from studies import TINY, tiny_preset

    root, _, _ = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    lines: list[str] = []
    run_study(get_study("degradation"), tiny_preset(), copy, device="cpu", overrides=TINY, progress=lines.append,
              analyses=["lesion"])  # fmt: skip
    assert "analysis: lesion" in lines
    for name in ("plain20-s0", "resnet20-s0"):
        assert (copy / "runs" / name / "analysis" / "lesion.json").is_file()
    assert (copy / "runs" / "resnet20-s0" / "analysis" / "paths.json").is_file()  # residual nets only
    assert not (copy / "runs" / "plain20-s0" / "analysis" / "paths.json").exists()
    html = build_report(copy).html
    assert 'id="why"' in html and "Lesion study" in html and "Path lengths" in html


def _chromium_probe(html: str, tmp_path: Path) -> dict:
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    common += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, f"the probe did not run; chromium printed: {dom[:500]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: run `make browser`")
@pytest.mark.parametrize("study", ["inception-aux", "vgg-depth"])
def test_other_study_reports_render_in_headless_chromium(study: str, tmp_path: Path) -> None:
    """The same report command renders the inception-aux and vgg-depth studies, findings and figures."""
    from studies import tiny_aux_study, tiny_vgg_study

    root, _ = tiny_aux_study() if study == "inception-aux" else tiny_vgg_study()
    report = build_report(root)
    probe = _chromium_probe(report.html, tmp_path)
    assert probe["images"] == len(report.figures) >= 2 and probe["broken"] == []
    assert min(probe["widths"]) > 100 and {"models-table", "runs-table"} <= set(probe["tables"])
    results = json.loads((root / "results.json").read_text())
    assert probe["findings"] == len(results["findings"]) >= 2
