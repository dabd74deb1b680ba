"""The HTML report in a real browser: every Bokeh plot renders and no script fails (headless Chromium).

A copy of the report gets the probe of `browser.py` (errors recorded from the first script on; plot
views counted, finished and painted), Chromium renders it with the host resolver disabled, and the
test reads the status back. The package's own report is left untouched.

Needs Chromium (Debian: `apt-get install -y chromium`); skipped when it is not installed. Set
ANOMALY_NB_ARTIFACTS to a folder to keep the screenshot.
"""
import re

import pytest

from browser import before_body_end, find_chromium, keep_artifact, render, with_probe


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    "A report of a tiny synthetic category: (HTML path, number of plots in it)."
    if find_chromium() is None:
        pytest.skip("Chromium not found (/usr/bin/chromium or chromium on PATH); install it: apt-get install -y chromium")
    from bokeh.models import Plot
    from anomaly_nb.data import make_synthetic_category
    from anomaly_nb.pipeline import build_model
    from anomaly_nb.report import build_report, write_report
    tmp = tmp_path_factory.mktemp("report")
    cat = make_synthetic_category(tmp / "synth", n_train=8, n_test_good=4, n_test_defect=2, size=(48, 64))
    model = build_model("resnet18", weights="random", detector="gaussian", size=64, progress=False, device="cpu")
    table, pred = model.fit(cat, holdout=0.25, fpr=0.1).evaluate(cat)
    path = write_report(pred, tmp / "report.html", table, model.threshold, title="browser test")
    n_plots = len(list(build_report(pred, table, model.threshold).select({"type": Plot})))
    assert n_plots == 3 + 2 * 10  # image ROC, pixel ROC/PRO, histogram; each of the 10 test images as taken and with its map
    return path, n_plots


def test_report_renders_in_chromium(report, tmp_path):
    path, n_plots = report
    page = tmp_path / "report_probed.html"
    page.write_text(with_probe(path.read_text(encoding="utf-8")), encoding="utf-8")
    status, shot = render(page, tmp_path)
    keep_artifact(shot)
    assert status["errors"] == [], status["errors"]
    assert status["bokeh"] and status["documents"] == 1, status
    assert status["done"], f"BokehJS did not finish rendering: {status}"
    assert status["plots"] == status["finished"] == status["painted"] == n_plots, status
    assert shot.is_file() and shot.stat().st_size > 10_000


BREAKAGES = {
    # a script on the page throws: the plots still render, the error must be seen
    "script_error": lambda p: before_body_end(p, "<script>throw new Error('deliberately broken')</script>"),
    # the document names a model BokehJS does not know: nothing renders, BokehJS logs the failure
    "unknown_model": lambda p: p.replace('"name":"Figure"', '"name":"NoSuchFigure"'),
    # BokehJS itself missing, as when a CDN cannot be reached
    "no_bokehjs": lambda p: re.sub(r"<script>\s*/\* BEGIN bokeh\.min\.js \*/.*?</script>", "", p, count=1, flags=re.S),
}


@pytest.mark.parametrize("kind", list(BREAKAGES))
def test_probe_sees_a_broken_page(report, tmp_path, kind):
    "The check above is only worth something if it fails on a broken page."
    path, n_plots = report
    good = path.read_text(encoding="utf-8")
    broken = BREAKAGES[kind](good)
    assert broken != good, f"{kind}: the page was not changed"
    page = tmp_path / f"broken_{kind}.html"
    page.write_text(with_probe(broken), encoding="utf-8")
    status, _ = render(page, tmp_path)
    assert status["errors"], f"{kind}: no error recorded: {status}"
    if kind == "script_error":  # seen, though the plots are fine
        assert any("deliberately broken" in e for e in status["errors"]) and status["plots"] == n_plots, status
    else: assert not status["done"] and status["plots"] < n_plots, status
