"""Open HTML pages in headless Chromium and read back whether their Bokeh plots rendered.

Shared by the browser tests (the HTML report, the website). A copy of a page gets a small probe: a
script at the top of <head> records every error (uncaught exceptions, failed resource loads, unhandled
promise rejections, `console.error`, which is where BokehJS reports a document it cannot render), and a
script at the end of <body> polls BokehJS until its documents are idle and writes a JSON status into a
<pre id="probe-status">: how many plot views exist (walking `Bokeh.index`, the root views, down through
every child view), how many report `has_finished()`, and how many have drawn something (their primary
canvas is not one uniform colour). Chromium dumps the DOM after a virtual-time budget and the caller
reads the status back. The host resolver is disabled, so a page that needs the network fails.

`with_reader_probe` adds what a reader would notice (READER_PROBE, written into <pre id="reader-status">): elements
wider than the column that holds them (the main column, the sidebar, the table of contents; content inside a box
that scrolls is not counted), images that did not load, MathML elements and whether they are drawn, `$...$` or
`In [ ]:` left in the text, Bokeh figures whose hover tools would draw their tooltips on top of each other, and,
when a query is given, the hits the site's search box shows for it.

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


READER_PROBE = r"""<script>
(function () {
  // what a reader sees: overflow, images, math, prompts, overlapping tooltips, and (when asked) the search box at work
  function hovers() {
    var B = window.Bokeh, multi = 0, overlapping = 0;
    if (!B || !B.documents) return {multi: 0, overlapping: 0};
    B.documents.forEach(function (doc) {
      Array.from(doc.all_models || []).forEach(function (m) {
        var t = m.toolbar && m.toolbar.tools;
        if (!t || !t.filter) return;
        var h = t.filter(function (x) { return x && x.tooltips !== undefined && x.attachment !== undefined; });
        if (h.length < 2) return;
        multi++;
        if (new Set(h.map(function (x) { return x.attachment; })).size < h.length) overlapping++;
      });
    });
    return {multi: multi, overlapping: overlapping};
  }
  function clipped(el, col) {  // inside a box of the column that scrolls or clips, or text inside a <pre>: the box is checked
    for (var a = el.parentElement; a && a !== col; a = a.parentElement) {
      var o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden' || a.tagName === 'PRE') return true;
    }
    return false;
  }
  function proseText() {  // the text of the Markdown cells and page headers, without code and math
    var out = [];
    document.querySelectorAll('main .jp-RenderedMarkdown, main .page-header, main .home-intro').forEach(function (box) {
      var w = document.createTreeWalker(box, NodeFilter.SHOW_TEXT, {acceptNode: function (n) {
        for (var a = n.parentElement; a && a !== box; a = a.parentElement)
          if (/^(CODE|PRE|MATH|SCRIPT|STYLE)$/i.test(a.tagName)) return NodeFilter.FILTER_REJECT;
        return NodeFilter.FILTER_ACCEPT; }});
      while (w.nextNode()) out.push(w.currentNode.nodeValue);
    });
    return out.join(' ');
  }
  function name(el) {
    var c = typeof el.className === 'string' ? el.className.split(' ').slice(0, 2).join('.') : '';
    return el.tagName.toLowerCase() + (c ? '.' + c : '') + (el.id ? '#' + el.id : '');
  }
  function check() {
    var out = {wide: [], images: 0, broken_images: [], math: 0, math_drawn: 0};
    ['main.content', 'nav.sidebar', 'aside.toc'].forEach(function (sel) {
      var col = document.querySelector(sel);
      if (!col || col.offsetParent === null) return;
      var cr = col.getBoundingClientRect();
      col.querySelectorAll('*').forEach(function (el) {
        var r = el.getBoundingClientRect();
        if (!r.width || clipped(el, col)) return;
        if (r.right > cr.right + 2 || r.left < cr.left - 2)
          out.wide.push(sel + ' > ' + name(el) + ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + '] outside [' + Math.round(cr.left) + ', ' + Math.round(cr.right) + ']');
      });
    });
    out.wide = out.wide.slice(0, 10);
    out.page_width = document.documentElement.scrollWidth; out.window_width = window.innerWidth;
    document.querySelectorAll('img').forEach(function (img) {
      out.images++;
      if (!img.complete || !img.naturalWidth) out.broken_images.push((img.getAttribute('src') || '').slice(0, 80));
    });
    document.querySelectorAll('math').forEach(function (m) { out.math++; if (m.getBoundingClientRect().width > 0) out.math_drawn++; });
    var main = document.querySelector('main.content'), text = main ? main.innerText : '';
    out.raw_math = (proseText().match(/\$[^$\s][^$\n]{0,80}\$/g) || []).slice(0, 5);
    out.prompts = (text.match(/(In|Out) ?\[[ \d]*\]:/g) || []).slice(0, 5);
    out.hovers = hovers();
    out.sections = {};  // where each section starts on the page, for screenshots of one section
    document.querySelectorAll('main h2[id]').forEach(function (h) { out.sections[h.id] = Math.round(h.getBoundingClientRect().top + window.scrollY); });
    var q = window.__probe_query, input = document.getElementById('search-input');
    if (q && input && window.SEARCH_INDEX) {
      input.value = q;
      input.dispatchEvent(new Event('input'));
      var box = document.getElementById('search-results');
      out.search = {shown: box && getComputedStyle(box).display !== 'none',
                    hits: Array.from(document.querySelectorAll('#search-results a.search-hit')).map(function (a) {
                      return {href: a.getAttribute('href'), text: a.innerText}; })};
    }
    var el = document.getElementById('reader-status');
    if (!el) { el = document.createElement('pre'); el.id = 'reader-status'; el.style.display = 'none'; document.body.appendChild(el); }
    el.textContent = JSON.stringify(out);
  }
  setInterval(check, 300);
})();
</script>
"""


def with_reader_probe(page: str, query: str | None = None) -> str:
    "`with_probe(page)` plus the reader checks; `query` is typed into the search box."
    page = with_probe(page)
    if query is not None:
        page = page.replace("<head>", "<head>\n<script>window.__probe_query = " + json.dumps(query) + ";</script>", 1)
    return before_body_end(page, READER_PROBE)


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
    status = json.loads(html.unescape(m.group(1)))
    reader = re.search(r'<pre id="reader-status"[^>]*>(.*?)</pre>', r.stdout, re.S)
    if reader is not None: status["reader"] = json.loads(html.unescape(reader.group(1)))
    return status, shot


def keep_artifact(path: Path) -> Path:
    "Copy `path` to $ANOMALY_NB_ARTIFACTS when it is set; return where it can be found."
    dest = os.environ.get("ANOMALY_NB_ARTIFACTS")
    if dest and path.is_file():
        Path(dest).mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(path, Path(dest) / path.name))
    return path
