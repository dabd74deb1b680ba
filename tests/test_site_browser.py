"""The website as a reader sees it: the offline build of `anomaly-nb site`, opened in headless Chromium.

The site is built once from this repository's notebooks (`anomaly_nb.site.build_offline`: nbconvert, no
Quarto) into a temporary folder. Static checks read every page's HTML: every page is linked from the
listings and the sidebar, every relative link and anchor resolves, nothing is loaded from the network, no
page shows a path of the machine that built it or ran its notebooks, a virtual environment's folder, an
`In [ ]:` prompt or a warning on stderr; every exported function and class has its signature table;
post 2's nbdev-style front matter became a title block and its categories are listed; listing
descriptions show no raw backticks.

Then pages are opened in Chromium with the host resolver disabled (anything fetched from the network
fails) and the probes of `browser.py`: every Bokeh document draws (every plot view finishes and paints), no
script error, no element wider than its column, every image loaded, math typeset as MathML (no `$...$`
left), no two hover tooltips of a figure on the same side of the pointer, and the search box, typed into,
shows hits that lead to the right page and section.

Screenshots of the home page, a post and a reference page are saved (in $ANOMALY_NB_ARTIFACTS when set,
else in the test's temporary folder; `pytest -s` prints the paths); copies are committed in nbs/screenshots/.

Needs Chromium (Debian: `apt-get install -y chromium`); the browser tests are skipped when it is not installed.
"""
import html
import importlib
import os
import re
from html.parser import HTMLParser
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from browser import find_chromium, keep_artifact, render, with_probe, with_reader_probe

ROOT = Path(__file__).resolve().parents[1]


def site_pages():
    "The pages `anomaly-nb site` builds from this repository (empty if they cannot be listed)."
    from anomaly_nb.site import discover
    try: return discover(ROOT)
    except Exception: return []


PAGES = site_pages()
POSTS = [p for p in PAGES if p.kind == "post"]
REFERENCE = [p for p in PAGES if p.kind == "reference"]
LISTINGS = ["index.html", "blog/index.html", "reference/index.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The offline site of this repository, built into a temporary folder."
    from anomaly_nb.site import build_offline
    return build_offline(tmp_path_factory.mktemp("site") / "site", ROOT, progress=False)


@pytest.fixture(scope="module")
def info():
    from anomaly_nb.site import site_info
    return site_info(ROOT)


def read(site, dest): return (site / dest).read_text(encoding="utf-8")


def text_of(page: str) -> str:
    "What a reader sees of a page: its text without scripts, styles and tags."
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def chromium():
    if find_chromium() is None:
        pytest.skip("Chromium not found (/usr/bin/chromium or chromium on PATH); install it: apt-get install -y chromium")


def probed_copy(page: Path, query: str | None = None) -> Path:
    "A copy of `page` with the probes, beside it so that its relative links still resolve."
    copy = page.with_name(page.stem + "_probed.html")
    copy.write_text(with_reader_probe(page.read_text(encoding="utf-8"), query), encoding="utf-8")
    return copy


# ---- static checks of every page ------------------------------------------------------------------------

def test_there_are_posts_and_reference_pages():
    assert len(POSTS) >= 2, f"posts found under {ROOT / 'nbs' / 'blog' / 'posts'}: {POSTS}"
    names = {p.src.stem for p in REFERENCE}
    assert {"02_detectors", "02a_statistics", "07_plots", "09_report", "11_site"} <= names, names


def test_listings_and_sidebar_link_every_page(site):
    home, blog, ref = (read(site, d) for d in LISTINGS)
    for p in PAGES:
        assert (site / p.dest).is_file(), p.dest
        assert f'href="{p.dest}"' in home, f"index.html does not link {p.dest}"
    for p in POSTS: assert f'href="{p.dest[len("blog/"):]}"' in blog, f"blog/index.html does not link {p.dest}"
    for p in REFERENCE: assert f'href="{p.dest[len("reference/"):]}"' in ref, f"reference/index.html does not link {p.dest}"
    for p in PAGES:
        page = read(site, p.dest)
        side = re.search(r'<nav class="sidebar".*?</nav>', page, re.S).group(0)
        assert len(re.findall(r'<a href="[^"]+"', side)) >= len(PAGES) + 3, p.dest  # every page, home and the listings
        label = "Overview" if p.kind == "overview" else html.escape(p.title)
        assert re.findall(r'class="active" aria-current="page">([^<]*)<', side) == [label], p.dest


def test_listings_show_categories_and_no_raw_markdown(site):
    blog = read(site, "blog/index.html")
    gaussian = next(p for p in POSTS if "gaussian" in p.src.parent.name)
    assert gaussian.categories, "post 2's nbdev-style front matter lost its categories"
    for p in POSTS:
        for c in p.categories: assert f'<span class="category">{html.escape(c)}</span>' in blog, (p.title, c)
    for dest in LISTINGS:
        for d in re.findall(r'<div class="listing-description">(.*?)</div>', read(site, dest), re.S):
            assert "`" not in text_of(d), f"{dest}: raw backticks in {text_of(d)!r}"


def test_post_front_matter_becomes_a_title_block(site):
    for p in POSTS:
        page = read(site, p.dest)
        main = text_of(re.search(r'<main class="content".*?</main>', page, re.S).group(0))
        assert page.count(f"<h1>{html.escape(p.title)}</h1>") == 1, p.dest
        assert main.count(p.title) == 1, f"{p.dest}: the title shows {main.count(p.title)} times"
        assert not re.search(r"^\s*-?\s*(date|categories):", main, re.M), f"{p.dest} shows its front matter as text"
        assert p.date and p.date in main


def test_relative_links_and_anchors_resolve(site):
    ids = {}
    broken = []
    for page in sorted(site.rglob("*.html")):
        text = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", page.read_text(encoding="utf-8"), flags=re.S)  # tags, not code
        for url in re.findall(r'<(?:a|link|img|script)\b[^>]*?\b(?:href|src)="([^"]+)"', text):
            url = html.unescape(url)
            if re.match(r"[a-z][\w+.-]*:", url) or url.startswith("data:"): continue
            path, _, frag = url.partition("#")
            target = (page.parent / unquote(path)).resolve() if path else page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)} -> {url}")
                continue
            if frag and target.suffix == ".html":
                if target not in ids: ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(encoding="utf-8")))
                if html.unescape(frag) not in {html.unescape(i) for i in ids[target]}: broken.append(f"{page.relative_to(site)} -> {url} (no such anchor)")
    assert not broken, "\n".join(broken[:30])


def test_no_page_loads_from_the_network(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        bad = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not bad, f"{page.relative_to(site)} loads {bad}"


MACHINE = [str(ROOT), str(ROOT.parent) + "/", sys.prefix, str(Path.home()) + "/"]  # this machine's own paths
VENV = Path(sys.prefix).name  # the virtual environment's folder name ('.venv')
ANY_MACHINE = [VENV + "/", "/" + VENV, "site-packages/", "/tmp/tmp", "/tmp/pytest-", str(Path(tempfile.gettempdir()).resolve()) + "/",
               "/root/", "/home/", "/Users/", "C:\\"]  # what no output should show, whoever ran it


class _Outputs(HTMLParser):
    "Collects the text inside the cells' output areas (`div.jp-OutputArea`), scripts left out."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.script, self.text = 0, False, []
    def handle_starttag(self, tag, attrs):
        if tag == "script": self.script = True
        if tag == "div" and (self.depth or "jp-OutputArea" in (dict(attrs).get("class") or "").split()): self.depth += 1
    def handle_endtag(self, tag):
        if tag == "script": self.script = False
        if tag == "div" and self.depth: self.depth -= 1
    def handle_data(self, data):
        if self.depth and not self.script: self.text.append(data)


def outputs_of(raw: str) -> str:
    "The text of a page's cell outputs."
    p = _Outputs()
    p.feed(raw)
    return " ".join(p.text)


def test_no_machine_paths_prompts_or_warnings(site):
    "No page shows this machine's paths anywhere; no output shows any machine's; no prompt; no warning on stderr."
    found = []
    for page in sorted(site.rglob("*.html")):
        raw, name = page.read_text(encoding="utf-8"), page.relative_to(site)
        seen, outs = text_of(raw), outputs_of(raw)
        found += [f"{name}: {s!r}" for s in MACHINE if s in raw]
        found += [f"{name}: output shows {s!r}" for s in ANY_MACHINE if s in outs]
        found += [f"{name}: {VENV!r} in the text" for _ in [0] if re.search(rf"(?<![\w-]){re.escape(VENV)}(?![\w-])", seen)]
        found += [f"{name}: prompt {m!r}" for m in re.findall(r"(?:In|Out)\s*\[[\s\d]*\]:", seen)[:3]]
        for err in re.findall(r'data-mime-type="application/vnd.jupyter.stderr">(.*?)</div>', raw, re.S):
            if re.search(r"Warning\b", text_of(err)): found.append(f"{name}: {text_of(err).strip()[:200]!r}")
    assert not found, "\n".join(found[:30])


def test_every_exported_function_and_class_has_a_signature_table(site):
    "Every public function, class and method in `_modidx.py` has its block (an anchor on a heading) on a reference page."
    from anomaly_nb._modidx import d as modidx
    pages = {p.module for p in REFERENCE}
    anchors = set()
    for p in REFERENCE: anchors |= set(re.findall(r'<h[34] class="doc-name" id="([^"]+)"', read(site, p.dest)))
    missing = []
    for mod, syms in modidx["syms"].items():
        short = mod.split(".", 1)[1]
        if short not in pages: continue
        m = importlib.import_module(mod)
        for sym in syms:
            name = sym[len(mod) + 1:]
            if any(part.startswith("_") for part in name.split(".")): continue
            top = getattr(m, name.split(".")[0], None)
            if not (callable(top) or isinstance(top, type)): continue
            if name.lower() not in anchors: missing.append(sym)
    assert not missing, f"{len(missing)} exported names without a signature table: {missing[:20]}"
    stats = read(site, "reference/02a_statistics.html")
    block = re.search(r'<section class="doc doc-class"><h3 class="doc-name" id="gaussiandetector">.*?</section>', stats, re.S)
    assert block, "no signature block for GaussianDetector"
    assert '<th>Type</th><th>Default</th><th>Details</th>' in block.group(0) and "<code>neg_pca</code>" in block.group(0)


def test_backticked_names_link_to_their_entries(site):
    gaussian = next(p for p in POSTS if "gaussian" in p.src.parent.name)
    page = read(site, gaussian.dest)
    assert 'href="../../../reference/02a_statistics.html#gaussiandetector"' in page
    assert 'href="https://arxiv.org/abs/2005.14140"' in page, "post 2 does not link the paper"
    lunar = next(p for p in POSTS if "lunar" in p.src.parent.name)
    assert f'href="../{lunar.src.parent.name}/index.html"' in page, "post 2 does not link the companion post"


def test_math_is_mathml(site):
    for dest in ["reference/02a_statistics.html", next(p.dest for p in POSTS if "gaussian" in p.src.parent.name)]:
        page = read(site, dest)
        assert "<math" in page and 'class="math-error"' not in page, dest
        assert not re.search(r"\$[^$\s][^$\n]*\\[a-zA-Z]+[^$\n]*\$", text_of(page)), f"{dest} shows raw TeX"


def test_repository_link_in_every_page(site, info):
    assert info.repo_url.startswith("https://"), info
    for page in site.rglob("*.html"):
        foot = re.search(r'<footer class="site-footer">.*?</footer>', page.read_text(encoding="utf-8"), re.S)
        assert foot and f'href="{info.repo_url}"' in foot.group(0), page.relative_to(site)


def test_home_page_says_what_it_is_with_a_picture(site, info):
    home = read(site, "index.html")
    intro = text_of(re.search(r'<div class="home-intro">.*?</div>', home, re.S).group(0))
    assert len(intro.split()) > 40, intro
    assert info.image, "no picture configured (website: image: in nbdev.yml)"
    assert re.search(r'<figure class="home-figure"><img src="static/home.png"', home) and (site / "static" / "home.png").is_file()


def test_long_pages_have_a_table_of_contents(site):
    for dest in [POSTS[0].dest, "reference/02a_statistics.html", "reference/02_detectors.html"]:
        toc = re.search(r'<aside class="toc".*?</aside>', read(site, dest), re.S)
        assert toc and toc.group(0).count("<li") >= 3, dest


# ---- in the browser -------------------------------------------------------------------------------------

def reader_checks(status, dest):
    r = status.get("reader")
    assert r, f"{dest}: the reader probe wrote nothing"
    assert r["wide"] == [], f"{dest}: elements wider than their column: {r['wide']}"
    assert r["page_width"] <= r["window_width"], f"{dest}: the page scrolls sideways ({r['page_width']} > {r['window_width']})"
    assert r["broken_images"] == [], f"{dest}: images not loaded: {r['broken_images']}"
    assert r["math"] == r["math_drawn"], f"{dest}: {r['math'] - r['math_drawn']} formulas not drawn"
    assert r["raw_math"] == [] and r["prompts"] == [], (dest, r["raw_math"], r["prompts"])
    assert r["hovers"]["overlapping"] == 0, f"{dest}: figures whose hover tooltips overlap: {r['hovers']}"
    return r


BROWSED = [p.dest for p in POSTS] + LISTINGS + ["overview.html"] + [p.dest for p in REFERENCE]


@pytest.mark.parametrize("dest", BROWSED)
def test_page_in_chromium(site, dest, tmp_path):
    chromium()
    page = site / dest
    text = page.read_text(encoding="utf-8")
    n_roots = text.count("data-root-id=")
    if dest.startswith("blog/posts/"): assert n_roots > 0, f"{dest} shows no Bokeh plot (were its outputs saved?)"
    tall = n_roots > 0
    status, shot = render(probed_copy(page), tmp_path, budget_ms=20000 if tall else 4000,
                          shot_name=f"site-{dest.replace('/', '-')}.png", window=(1400, 4000 if tall else 1800))
    assert status["errors"] == [], status["errors"]
    if n_roots:
        assert status["bokeh"] and status["documents"] == n_roots, status
        assert status["done"], f"BokehJS did not finish rendering: {status}"
        assert status["plots"] >= n_roots and status["plots"] == status["finished"] == status["painted"], status
    r = reader_checks(status, dest)
    if "reference/07_plots" in dest: assert r["hovers"]["multi"] > 0, "07_plots shows no figure with two hover tools"
    if dest.endswith(("02a_statistics.html",)) or "gaussian" in dest: assert r["math"] > 0 and r["math_drawn"] == r["math"], r
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.parametrize("query, expected", [("KNNDetector", "reference/02c_neighbours.html#knndetector"),
                                              ("coreset LUNAR", "blog/posts/2026-11-23-patch-features-lunar/index.html"),
                                              ("negative PCA UMAP", "blog/posts/2026-11-23-image-features-gaussian/index.html")])
def test_search_box_finds_the_right_page(site, query, expected, tmp_path):
    chromium()
    start = site / "reference" / "00_core.html"  # hits link from wherever the reader is
    status, _ = render(probed_copy(start, query), tmp_path, budget_ms=3000)
    s = status["reader"].get("search")
    assert s and s["shown"] and s["hits"], f"no hits for {query!r}: {s}"
    hrefs = [h["href"] for h in s["hits"]]
    first = (start.parent / hrefs[0]).resolve()
    assert any((start.parent / h).resolve().relative_to(site.resolve()).as_posix().startswith(expected.split("#")[0]) for h in hrefs[:3]), hrefs[:5]
    if "#" in expected:
        assert hrefs[0].endswith(expected), f"first hit for {query!r} is {hrefs[0]}, expected {expected}"
        target = (start.parent / hrefs[0].split("#")[0]).resolve()
        assert f'id="{hrefs[0].split("#")[1]}"' in target.read_text(encoding="utf-8")
    assert first.is_file() or (start.parent / hrefs[0].split("#")[0]).resolve().is_file()


LUNAR_POST = "blog/posts/2026-11-23-patch-features-lunar/index.html"


@pytest.mark.parametrize("dest, name, section", [
    ("index.html", "home", None), (LUNAR_POST, "post", None),
    (LUNAR_POST, "post-comparison", "Compared-with-nearest-neighbours,-a-Gaussian-and-PaDiM"),
    ("reference/02a_statistics.html", "reference", None)])
def test_screenshots(site, dest, name, section, tmp_path):
    "Screenshots of what a reader sees (1400 pixels wide), kept with ANOMALY_NB_ARTIFACTS: the top of a page, or one section."
    chromium()
    if not (site / dest).is_file(): pytest.skip(f"{dest} is not part of this site")
    if section and not os.environ.get("ANOMALY_NB_ARTIFACTS"): pytest.skip("a section's screenshot is taken only to be kept (ANOMALY_NB_ARTIFACTS)")
    tall = 16000 if section else 1800
    status, shot = render(probed_copy(site / dest), tmp_path, budget_ms=20000, shot_name=f"{name}.png", window=(1400, tall))
    assert status["errors"] == [], status["errors"]
    if section:
        from PIL import Image
        top = status["reader"]["sections"][section]
        with Image.open(shot) as im: im.crop((0, max(0, top - 80), 1400, min(tall, top + 2300))).save(shot)
    print(f"screenshot of {dest}{'#' + section if section else ''}: {keep_artifact(shot)}")
    assert shot.stat().st_size > 50_000
