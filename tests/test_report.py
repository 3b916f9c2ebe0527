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
from depthlab.experiments.degradation import read_study
from depthlab.report import build_report, model_costs
from test_experiment import tiny_study  # the shared tiny study (run once per session)

# The screenshot is kept only when DEPTHLAB_TEST_ARTIFACTS names a folder; otherwise it goes to tmp_path.
ARTIFACTS = Path(os.environ["DEPTHLAB_TEST_ARTIFACTS"]) if os.environ.get("DEPTHLAB_TEST_ARTIFACTS") else None
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
    findings: document.querySelectorAll("#findings + ul li").length,
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
    # Fig. 6, Fig. 7, weight gradients at init and at the end, block-output gradients without BN.
    assert html.count('src="data:image/png;base64,') == 5
    for table in ("results-table", "diagnostics-table", "models-table", "runs-table", "environment-table"):
        assert f'id="{table}"' in html
    study = read_study(root)
    for sentence in study.findings:
        assert str(escape(sentence)) in html
    assert "depthlab experiment degradation --preset quick --seeds 1 --set " in html
    assert f"depthlab report {root}" in html


def test_macs_and_params_match_an_independent_count() -> None:
    root, _, _ = tiny_study()
    costs = {c.model: c for c in model_costs(read_study(root).runs)}
    model = create_model("resnet20", num_classes=4, in_channels=1)
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
    assert probe["images"] == 5 and probe["broken"] == [] and min(probe["widths"]) > 100
    assert {"results-table", "models-table", "runs-table", "diagnostics-table"} <= set(probe["tables"])
    assert probe["result_rows"] == 1 and probe["findings"] >= 3

    shot_dir = ARTIFACTS or tmp_path
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,4000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
