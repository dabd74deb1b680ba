"""Open HTML pages in headless Chromium and read back whether their Bokeh plots rendered.

Shared by the browser tests (the HTML report, the website). A copy of a page gets a small probe: a
script at the top of <head> records every error (uncaught exceptions, failed resource loads, unhandled
promise rejections, `console.error`, which is where BokehJS reports a document it cannot render), and a
script at the end of <body> polls BokehJS until its documents are idle and writes a JSON status into a
<pre id="probe-status">: how many plot views exist (walking `Bokeh.index`, the root views, down through
every child view), how many report `has_finished()`, and how many have drawn something (their primary
canvas is not one uniform colour). Chromium dumps the DOM after a virtual-time budget and the caller
reads the status back. The host resolver is disabled, so a page that needs the network fails.

Needs Chromium (Debian: `apt-get install -y chromium`); callers skip when `find_chromium()` is None.
Set ANOMALY_NB_ARTIFACTS to a folder to keep the screenshots.
"""
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROBE_HEAD = """<script>
window.__probe = {errors: []};
window.addEventListener('error', function (e) {
  var what = e.message || (e.target && (e.target.src || e.target.href)) || String(e);
  window.__probe.errors.push('error: ' + what);
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__probe.errors.push('unhandled rejection: ' + String(e.reason && (e.reason.stack || e.reason)));
});
(function () {
  var ce = console.error.bind(console);
  console.error = function () {
    window.__probe.errors.push('console.error: ' + Array.prototype.map.call(arguments, String).join(' '));
    ce.apply(null, arguments);
  };
})();
</script>
"""

PROBE_TAIL = """<script>
(function () {
  function painted(v) {  // has the plot drawn anything: is its canvas more than one uniform colour?
    try {
      var c = v.canvas_view.primary.canvas, w = c.width, h = c.height;
      if (!w || !h) return false;
      var d = c.getContext('2d').getImageData(0, 0, w, h).data;
      for (var i = 4; i < d.length; i += 4)
        if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2] || d[i + 3] !== d[3]) return true;
      return false;
    } catch (err) { window.__probe.errors.push('probe: ' + err); return false; }
  }
  function status() {
    var B = window.Bokeh, docs = (B && B.documents) || [];
    var views = B && B.index ? Array.from(B.index.all_views()) : [];
    var plots = views.filter(function (v) { return v.canvas_view != null && v.frame != null; });
    return {bokeh: B ? B.version : null, documents: docs.length,
            idle: docs.length > 0 && docs.every(function (d) { return d.is_idle; }),
            plots: plots.length,
            finished: plots.filter(function (v) { return v.has_finished(); }).length,
            painted: plots.filter(painted).length,
            errors: window.__probe.errors};
  }
  function write(s) {
    var el = document.getElementById('probe-status');
    if (!el) {
      el = document.createElement('pre'); el.id = 'probe-status'; el.style.display = 'none';
      document.body.appendChild(el);
    }
    el.textContent = JSON.stringify(s);
  }
  var timer = setInterval(function () {
    var s = status();
    s.done = s.idle && s.plots > 0 && s.finished === s.plots;
    write(s);
    if (s.done) clearInterval(timer);
  }, 100);
})();
</script>
"""


def find_chromium():
    "Path of a Chromium executable, or None."
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK): return c
    return None


def before_body_end(page: str, snippet: str) -> str:
    "Insert `snippet` before the page's closing </body> (the last one: BokehJS holds the string too)."
    i = page.rindex("</body>")
    return page[:i] + snippet + page[i:]


def with_probe(page: str) -> str:
    "The page with the error recorder first in <head> and the status writer last in <body>."
    assert page.lstrip().lower().startswith("<!doctype html>") and "</body>" in page, "not a full HTML page"
    page = page.replace("<head>", "<head>\n" + PROBE_HEAD, 1)  # the first: the page's own, before any script
    return before_body_end(page, PROBE_TAIL)


def render(page: Path, workdir: Path, budget_ms: int = 10000, shot_name: str | None = None,
           window: tuple[int, int] = (1400, 2000)) -> tuple[dict, Path]:
    "Open `page` in headless Chromium; return the probe's status and the path of a screenshot."
    exe = find_chromium()
    profile, shot = workdir / "chromium-profile", workdir / (shot_name or f"{page.stem}.png")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
           f"--virtual-time-budget={budget_ms}", f"--window-size={window[0]},{window[1]}", f"--screenshot={shot}",
           "--dump-dom", page.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=workdir)
    m = re.search(r'<pre id="probe-status"[^>]*>(.*?)</pre>', r.stdout, re.S)
    if m is None:
        err = "\n".join(l for l in r.stderr.splitlines() if "dbus" not in l)[-2000:]
        pytest.fail(f"Chromium (exit {r.returncode}) left no probe status in the DOM; stderr:\n{err}")
    return json.loads(html.unescape(m.group(1))), shot


def keep_artifact(path: Path) -> Path:
    "Copy `path` to $ANOMALY_NB_ARTIFACTS when it is set; return where it can be found."
    dest = os.environ.get("ANOMALY_NB_ARTIFACTS")
    if dest and path.is_file():
        Path(dest).mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(path, Path(dest) / path.name))
    return path
