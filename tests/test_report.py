"""pareto/index.html: self-contained, with per cell the front (error bars), hypervolume history and
lr/mix importance, and a sortable table of every trial; rendered in headless Chromium.

The run directory is the one test_results_cli builds the way a sweep writes it (no Ray).
"""

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_results_cli import make_run_dir

import orchestrator.results as results
from orchestrator.report import hypervolume_history, write_report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run = make_run_dir(tmp_path_factory.mktemp("report"))
    write_report(run)
    return run / "pareto" / "index.html"


def _images(page: str) -> list[tuple[str, bytes]]:
    return [(kind, base64.b64decode(data))
            for kind, data in re.findall(r'<img class="([a-z-]+)"[^>]*src="data:image/png;base64,([^"]+)"', page)]


def test_page_is_self_contained_with_every_figure(report):
    page = report.read_text()
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must fetch nothing"
    assert "http://" not in page and "https://" not in page
    kinds = [kind for kind, _ in _images(page)]
    assert page.count("<img") == len(kinds)   # every image is an inlined PNG
    assert kinds.count("pareto-front") == 2 and kinds.count("hypervolume") == 2
    assert kinds.count("importance") == 1   # tiny:soft has 5 finished trials, tiny:hard 1
    assert "needs 5 finished trials (has 1)" in page
    for _, png in _images(page):
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    trials = results.trials(report.parents[1])
    for key in trials["key"]:   # the sortable table lists every trial
        assert f"<td>{key}</td>" in page


def test_hypervolume_history_is_the_front_area_after_each_trial(report):
    trials = results.trials(report.parents[1])
    done = trials[(trials["cell"] == "tiny:soft") & (trials["status"] == "done")]
    objectives = [("calibration_error", "min"), ("capability_loss", "min")]
    curve, reference = hypervolume_history(done, objectives)
    assert list(curve["number"]) == [0, 1, 2, 3, 4]
    assert np.all(np.diff(curve["hypervolume"]) >= 0)
    # the five points form one front: its area against the reference, in vertical strips
    points = done.sort_values("calibration_error")[["calibration_error", "capability_loss"]].to_numpy()
    edges = [*points[1:, 0], reference[0]]
    area = sum((right - x) * (reference[1] - min(points[: i + 1, 1])) for i, ((x, _), right) in
               enumerate(zip(points, edges)))
    assert curve["hypervolume"].iloc[-1] == pytest.approx(area)


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"{CHROMIUM} is missing (Debian's `chromium` package; .ci/run installs it)")
def test_chromium_renders_every_image_and_sorts_the_table(report, tmp_path):
    """Headless Chromium loads the page; a probe appended to a copy reports how many images decoded
    (naturalWidth > 0) and what the trial table's first row is after a click on its lr header."""
    probe = """<script>window.addEventListener('load', function(){
      var imgs = Array.from(document.images), ok = imgs.filter(function(i){return i.complete && i.naturalWidth > 0;});
      var table = document.getElementById('trials'), heads = Array.from(table.tHead.rows[0].cells);
      heads.filter(function(h){return h.textContent === 'lr';})[0].click();
      var col = heads.findIndex(function(h){return h.textContent === 'lr';});
      var out = document.createElement('pre'); out.id = 'probe';
      out.textContent = 'images ' + ok.length + '/' + imgs.length + ' first-lr ' + table.tBodies[0].rows[0].cells[col].textContent;
      document.body.appendChild(out);});</script>"""
    copy = tmp_path / "index.html"
    copy.write_text(report.read_text().replace("</body>", probe + "</body>"))
    profile = tempfile.mkdtemp(prefix="cft-chromium-")
    try:
        dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                              "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
        shot = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900",
                               f"--screenshot={tmp_path / 'shot.png'}", report.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="probe">images (\d+)/(\d+) first-lr ([^<]+)</pre>', dom.stdout)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    loaded, total, first_lr = int(found[1]), int(found[2]), float(found[3])
    assert total == 5 and loaded == total
    assert first_lr == pytest.approx(pd.read_csv(report.parent / "trials.csv")["lr"].min(), rel=1e-3)
    assert shot.returncode == 0 and (tmp_path / "shot.png").read_bytes().startswith(PNG_MAGIC)
