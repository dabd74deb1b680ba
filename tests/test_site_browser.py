"""The website in a real browser: the offline build of `anomaly-nb site`, every post opened in headless Chromium.

The site is built from this repository's notebooks (`anomaly_nb.site.build_offline`: nbconvert, no
Quarto) into a temporary folder. Each post gets the probe of `browser.py` and is rendered with the host
resolver disabled, so anything fetched from the network fails: every Bokeh document the post shows must
render, every plot view must finish and paint, and no script error may occur. The listing pages and the
reference pages must load without errors too. A screenshot of each post is saved (in
$ANOMALY_NB_ARTIFACTS when set, else in the test's temporary folder; the path is printed, see `pytest -s`).

Needs Chromium (Debian: `apt-get install -y chromium`); skipped when it is not installed.
"""
import re
from pathlib import Path

import pytest

from browser import find_chromium, keep_artifact, render, with_probe

ROOT = Path(__file__).resolve().parents[1]


def site_pages():
    "The pages `anomaly-nb site` builds from this repository (empty if they cannot be listed)."
    from anomaly_nb.site import discover
    try: return discover(ROOT)
    except Exception: return []


POSTS = [p for p in site_pages() if p.kind == "post"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The offline site of this repository, built into a temporary folder."
    if find_chromium() is None:
        pytest.skip("Chromium not found (/usr/bin/chromium or chromium on PATH); install it: apt-get install -y chromium")
    from anomaly_nb.site import build_offline
    return build_offline(tmp_path_factory.mktemp("site") / "site", ROOT, progress=False)


def probed_copy(page: Path) -> Path:
    "A copy of `page` with the probe, beside it so that its relative links still resolve."
    copy = page.with_name(page.stem + "_probed.html")
    copy.write_text(with_probe(page.read_text(encoding="utf-8")), encoding="utf-8")
    return copy


def test_there_are_posts():
    assert POSTS, f"no posts found under {ROOT / 'nbs' / 'blog' / 'posts'}"


def test_listings_link_every_page(site):
    pages = site_pages()
    home = (site / "index.html").read_text(encoding="utf-8")
    blog = (site / "blog" / "index.html").read_text(encoding="utf-8")
    for p in pages:
        assert (site / p.dest).is_file(), p.dest
        assert f'href="{p.dest}"' in home, f"index.html does not link {p.dest}"
    for p in POSTS: assert f'href="{p.dest[len("blog/"):]}"' in blog, f"blog/index.html does not link {p.dest}"
    assert any(p.kind == "reference" for p in pages)


def test_no_page_loads_from_the_network(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        bad = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not bad, f"{page.relative_to(site)} loads {bad}"


@pytest.mark.parametrize("post", POSTS, ids=[p.src.parent.name for p in POSTS])
def test_post_renders_in_chromium(site, post, tmp_path):
    page = site / post.dest
    n_roots = page.read_text(encoding="utf-8").count("data-root-id=")
    assert n_roots > 0, f"{post.dest} shows no Bokeh plot (were its outputs saved?)"
    status, shot = render(probed_copy(page), tmp_path, budget_ms=20000, shot_name=f"site-{post.src.parent.name}.png",
                          window=(1400, 4000))
    print(f"screenshot of {post.dest}: {keep_artifact(shot)}")
    assert status["errors"] == [], status["errors"]
    assert status["bokeh"] and status["documents"] == n_roots, status
    assert status["done"], f"BokehJS did not finish rendering: {status}"
    assert status["plots"] >= n_roots and status["plots"] == status["finished"] == status["painted"], status
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.parametrize("dest", ["index.html", "blog/index.html", "reference/index.html", "reference/07_plots.html"])
def test_other_pages_load_without_errors(site, dest, tmp_path):
    if not (site / dest).is_file(): pytest.skip(f"{dest} is not part of this site")
    status, _ = render(probed_copy(site / dest), tmp_path, budget_ms=3000)
    assert status["errors"] == [], status["errors"]
